"""The filing as a plain domain object (transitions cannot attach to a SQLModel object)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime

from states.vocabulary import Category, Channel, Document, FilingState, InsuranceType, Kind


@dataclass
class Filing:
    """One filing. `state` and `version` change only through a transition."""

    id: str
    kind: Kind
    insurance_type: InsuranceType
    insured_region: str
    treatment_region: str
    person_key: str  # keyed hash of the ID number: lookups without storing it
    person_masked: str  # e.g. 3502**********1234
    channel: Channel  # where it was filed (L7)
    filed_by: str  # actor id (opaque)
    on_behalf: bool  # filed from a linked family account (L8)
    policy_region: str
    policy_version: str
    start_date: date
    created_at: datetime
    updated_at: datetime
    documents: frozenset[Document] = frozenset()
    by_commitment: bool = False  # 承诺制 (V6)
    student: bool = False  # M7
    flexible_employment: bool = False  # M8
    consent_given: bool = False  # notice confirmed and commitment signed (M11)
    state: FilingState = FilingState.DRAFT
    version: int = 1
    effective_on: date | None = None  # the local date it took effect
    valid_until: date | None = None  # last valid day; None: indefinite (V1)
    lock_until: date | None = None  # last day of the cancel/change lock (V2, V4)
    entitlement_pending: bool = False  # V6: two-way entitlement waits for documents
    supersedes: str | None = None  # the filing this one replaced by a change (L5)
    reason: str | None = None  # reason code of a rejection or cancellation
    note: str | None = None  # the words given with that reason (never personal data)
    admission_id: str | None = None  # the admission a deemed or retro filing is for (§5)
    deemed: bool = False  # E1: 视同已备案, made by the engine for an emergency admission
    hospital_reviewed: bool = False  # E4: the hospital's medical office stamped the referral
    continues_deductible: bool = False  # E4: the referral continues the deductible
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def category(self) -> Category:
        return self.kind.category

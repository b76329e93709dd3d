"""Request and response bodies of the HTTP API (pydantic, as FastAPI expects).

Requests forbid unknown fields, so a body cannot set what only the engine sets (state,
version, organisation, audit fields): FastAPI answers 422 naming the field. Responses carry
masked personal data only: a person is `person_masked`, never the number or its lookup hash.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    StringConstraints,
    field_validator,
)

from states.vocabulary import Channel, Document, FilingState, Institution, InsuranceType, Kind
from workflow.api import plain as plain  # re-exported: the routes call m.plain

ID_NUMBER = Field(
    min_length=15,
    max_length=18,
    description="resident ID number (居民身份证号码); checked, masked and hashed on arrival",
)
REGION = Field(pattern=r"^\d{6}$", description="GB/T 2260 region code")
SUBJECT_ID = r"^[0-9a-z]{1,32}$"
_ISO = re.compile(r"^\d{4}-\d{2}-\d{2}")


def _iso_text(value: Any) -> Any:
    """Dates and instants arrive as ISO 8601 text, as the document says: pydantic's lax mode
    would also read a number (or false) as a Unix time."""
    if isinstance(value, date) or (isinstance(value, str) and _ISO.match(value)):
        return value
    raise ValueError("must be ISO 8601 text: YYYY-MM-DD, or a date-time")


def _utc(value: datetime) -> datetime:
    """An instant without an offset is read as UTC (as the audit export reads one). One whose
    UTC falls outside years 1 to 9999 (`9999-12-31T23:59:59-01:00`) is refused, not a 500."""
    try:
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    except OverflowError:
        raise ValueError("must fall between years 1 and 9999 in UTC") from None


def _no_control_characters(value: Any) -> Any:
    """Text from a caller holds no control characters (NUL, escapes, DEL, C1) nor lone
    surrogates: no field of this API has a use for them, PostgreSQL refuses NUL in text and
    no driver encodes a lone surrogate, and in logs or exports they can forge lines."""
    texts = value if isinstance(value, list) else [value]
    if any(isinstance(t, str) and not _PLAIN.fullmatch(t) for t in texts):
        raise ValueError("must not hold control characters")
    return value


_PLAIN = re.compile(r"[^\x00-\x1f\x7f-\x9f\ud800-\udfff]*")


# An audit event's name (`submit`, `access`, `decide_coverage`), as a filter value.
EventName = Annotated[str, StringConstraints(pattern=r"^[a-z0-9_]{1,40}$")]
IsoDate = Annotated[date, BeforeValidator(_iso_text)]
IsoDateTime = Annotated[datetime, BeforeValidator(_iso_text), AfterValidator(_utc)]


class Body(BaseModel):
    """A request body: unknown fields refused, and no text field holds a control character."""

    model_config = ConfigDict(extra="forbid")

    @field_validator("*", mode="before")
    @classmethod
    def _plain_text(cls, value: Any) -> Any:
        return _no_control_characters(value)


class FilingIn(Body):
    """A new filing (a draft), or a change's replacement (L5)."""

    id_number: str = ID_NUMBER
    kind: Kind
    insurance_type: InsuranceType
    insured_region: str = REGION
    treatment_region: str = REGION
    start_date: IsoDate | None = None
    documents: list[Document] = Field(default_factory=list, max_length=32)
    by_commitment: StrictBool = False
    student: StrictBool = False
    flexible_employment: StrictBool = False
    consent_given: StrictBool = False
    card_number: str | None = Field(default=None, max_length=32)
    card_settlement_enabled: StrictBool | None = None
    admission_id: str | None = Field(default=None, pattern=SUBJECT_ID)


_NOTE = Field(
    default=None,
    max_length=200,
    description="words beside the reason code; refused when they hold anything shaped like an "
    "ID, mobile or card number",
)


class ReasonIn(Body):
    reason: str = Field(
        min_length=1, max_length=40, description="a reason code of config.toml's [reasons]"
    )
    note: str | None = _NOTE


class OptionalReasonIn(Body):
    reason: str | None = Field(default=None, min_length=1, max_length=40)
    note: str | None = _NOTE


class DocumentsIn(Body):
    documents: list[Document] = Field(max_length=32)


class PersonIn(Body):
    id_number: str = ID_NUMBER
    effective_only: StrictBool = False


class StopInsuranceIn(Body):
    id_number: str = ID_NUMBER
    insurance_type: InsuranceType


class AdmissionIn(Body):
    id_number: str = ID_NUMBER
    insurance_type: InsuranceType
    insured_region: str = REGION
    treatment_region: str = REGION
    hospital_code: str = Field(min_length=1, max_length=32)
    admitted_on: IsoDate
    institution: Institution = Institution.HOSPITAL
    networked: StrictBool = True
    care: str = Field(default="inpatient", max_length=24)
    emergency: StrictBool = False
    referral: StrictBool = False
    transfer_first: StrictBool = False
    chronic_enabled: StrictBool = False
    chronic_declared: StrictBool = False


class DischargeIn(Body):
    discharged_on: IsoDate
    system_fault: StrictBool = False


class FireIn(Body):
    subject_id: str = Field(pattern=SUBJECT_ID)
    kind: str = Field(min_length=1, max_length=32)
    due_at: IsoDateTime


class FireDueIn(Body):
    limit: int = Field(default=500, ge=1, le=10_000, strict=True)


class CheckpointIn(Body):
    count: int = Field(ge=0, strict=True)
    head_hash: str = Field(pattern=r"^[0-9a-f]{64}$")


# -- responses --------------------------------------------------------------------------------


class FilingOut(BaseModel):
    id: str
    version: int
    state: FilingState
    kind: Kind
    insurance_type: InsuranceType
    insured_region: str
    treatment_region: str
    person_masked: str
    channel: Channel
    filed_by: str
    on_behalf: bool
    policy_region: str
    policy_version: str
    start_date: date
    created_at: datetime
    updated_at: datetime
    documents: list[str]
    by_commitment: bool
    student: bool
    flexible_employment: bool
    consent_given: bool
    effective_on: date | None
    valid_until: date | None
    lock_until: date | None
    entitlement_pending: bool
    supersedes: str | None
    reason: str | None
    note: str | None
    admission_id: str | None
    deemed: bool
    hospital_reviewed: bool
    continues_deductible: bool


class ChangeOut(BaseModel):
    old: FilingOut
    new: FilingOut


class AdmissionOut(BaseModel):
    id: str
    version: int
    status: str
    person_masked: str
    insurance_type: str
    insured_region: str
    treatment_region: str
    hospital_code: str
    institution: str
    networked: bool
    care: str
    admitted_on: date
    emergency: bool
    referral: bool
    transfer_first: bool
    chronic_enabled: bool
    chronic_declared: bool
    policy_region: str
    policy_version: str
    hospital_org: str | None
    created_at: datetime
    updated_at: datetime
    discharged_on: date | None
    settlement: str | None
    settled_at: datetime | None
    system_fault: bool
    deemed_filing_id: str | None
    route: str | None
    route_rule: str | None
    extension: str | None
    claim_id: str | None


class CoverageOut(BaseModel):
    admission_id: str
    day: date
    basis: str
    filing_id: str | None
    direct_settlement: bool
    reimbursable: bool
    ratio_reduction_points: int
    ratio_percent_of_local: int
    continues_deductible: bool
    manual: dict[str, Any] | None
    rule_id: str
    parts: list[dict[str, Any]]


class DischargeOut(BaseModel):
    admission: AdmissionOut
    coverage: CoverageOut


class ClaimOut(BaseModel):
    id: str
    version: int
    status: str
    admission_id: str
    route_rule: str
    counted_from: date
    last_day: date
    due_at: datetime
    provisional: bool
    documents_required: list[Any]
    documents_supplied: list[str]
    self_share_first_percent: int
    reduction_percent: int


class AuditOut(BaseModel):
    seq: int
    filing_id: str | None
    event: str
    from_state: str | None
    to_state: str | None
    outcome: str
    rule_id: str | None
    reason: str
    inputs: dict[str, Any]
    actor_id: str
    actor_role: str
    actor_org: str | None
    channel: str
    on_behalf: bool
    policy_region: str | None
    policy_version: str | None
    request_id: str
    correlation_id: str
    at: datetime
    prev_hash: str
    hash: str


class DeadlineOut(BaseModel):
    kind: str
    due_at: datetime
    fired_at: datetime | None
    outcome: str | None
    provisional: bool
    rule_id: str


class FilingPage(BaseModel):
    items: list[FilingOut]
    next_cursor: str | None = Field(description="pass as `cursor` for the next page; null: end")


class AuditPage(BaseModel):
    items: list[AuditOut]
    next_cursor: str | None


class CheckpointOut(BaseModel):
    count: int
    head_hash: str


class VerificationOut(BaseModel):
    ok: bool
    count: int
    head_hash: str
    problems: list[str]


class BatchOut(BaseModel):
    result: dict[str, Any]


class Problem(BaseModel):
    """RFC 9457 problem details, with the engine's fields where they apply."""

    type: str
    title: str
    status: int
    detail: str
    request_id: str
    code: str
    rule_id: str | None = None
    field: str | None = None
    subject_id: str | None = None
    event: str | None = None
    state: str | None = None
    inputs: dict[str, Any] | None = None
    errors: list[dict[str, str]] | None = None

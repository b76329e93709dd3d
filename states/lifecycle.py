"""What a filing must be to be created, and what a transition changes on it.

`check_application` refuses a bad application before anything is written (K7, K8, M9, M10,
V1/V3 start dates, within the input bounds of states.bounds). `apply_effects` computes what
entering a state means: the dates of validity and of the cancel lock (V1–V4, C1, C2, C5) and
the commitment entitlement (V6).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from states.admissions import Admission
from states.bounds import DateBounds, check_not_after, check_not_before
from states.errors import InvalidInput
from states.filing import Filing
from states.guards import Attempt, commitment_pending
from states.periods import PeriodOutOfRange, start_of_local_day, validity_end
from states.policy import Policy
from states.regions import EXCLUDED_PROVINCES, is_province_level, province_of, same_area
from states.table import Transition
from states.vocabulary import Category, Channel, Document, FilingState, InsuranceType, Kind


@dataclass(frozen=True)
class Application:
    """What an applicant asks for. Personal data (ID and card numbers) is handled by the caller:
    only the card number's prefix is judged here (M9) and it is never stored."""

    kind: Kind
    insurance_type: InsuranceType
    insured_region: str
    treatment_region: str
    channel: Channel
    start_date: date | None = None
    documents: frozenset[Document] = frozenset()
    by_commitment: bool = False
    student: bool = False
    flexible_employment: bool = False
    consent_given: bool = False
    card_number: str | None = None
    card_settlement_enabled: bool | None = None
    admission_id: str | None = None  # a retro filing (E2): for this admission, already begun


def check_application(
    app: Application,
    policy: Policy,
    today: date,
    *,
    first_filing: bool,
    region_exists: Callable[[str], bool],
    bounds: DateBounds,
    admission: Admission | None = None,
) -> None:
    """Raise `InvalidInput` naming the field and rule if the application cannot be filed.
    A retro filing passes its `admission`; whether it is still in time is the submit guard's
    (E2, E3, E5, E7), so a late one is refused and recorded rather than never written.
    A start date lies within `bounds` of today: a validity is never counted from or to the
    edge of the calendar."""
    if app.kind not in policy.kinds:
        raise InvalidInput(
            "kind",
            policy.rule("kinds"),
            f"{policy.title} does not file kind {app.kind.value}; "
            f"it files {', '.join(sorted(policy.kinds))}",
        )
    if app.kind is Kind.POSTED_WORKER and app.insurance_type not in policy.posted_worker_insurance:
        raise InvalidInput(
            "insurance_type",
            policy.rule("posted_worker_insurance"),
            "a posted worker files under "
            + " or ".join(sorted(t.value for t in policy.posted_worker_insurance))
            + " insurance here",
        )
    for name in ("insured_region", "treatment_region"):
        code = getattr(app, name)
        if not (isinstance(code, str) and len(code) == 6 and code.isdigit()):
            if name == "treatment_region" and isinstance(code, str) and code.isalpha():
                raise InvalidInput(name, "K7", "filings never cover treatment abroad (出国)")
            raise InvalidInput(name, "K8", "must be a six-digit GB/T 2260 region code")
        if province_of(code) in EXCLUDED_PROVINCES:
            place = EXCLUDED_PROVINCES[province_of(code)]
            raise InvalidInput(name, "K7", f"filings never cover {place} (不含港澳台)")
        if not region_exists(code):
            raise InvalidInput(name, "K8", f"{code} is not a current GB/T 2260 region code")
    if is_province_level(app.treatment_region):
        raise InvalidInput(
            "treatment_region", "K8", "name the city or county of treatment, not the province"
        )
    if same_area(app.insured_region, app.treatment_region, policy.scope):
        where = "province" if policy.scope == "province" else "city"
        raise InvalidInput(
            "treatment_region",
            policy.rule("scope"),
            f"treatment inside the insured {where} needs no filing "
            f"({'省内' if where == 'province' else '市内'}异地就医无需备案)",
        )
    validity_rule = "V3" if app.kind.category is Category.TEMPORARY else "V1"
    if admission is not None:
        if app.start_date is not None:
            check_not_before("start_date", app.start_date, today, bounds)
        _check_retro(app, admission, policy)
    elif app.start_date is not None and app.start_date < today:
        # A filing starts today or later; only a retro filing (E2) starts earlier.
        raise InvalidInput(
            "start_date", validity_rule, "a filing cannot start before the day it is made"
        )
    elif app.start_date is not None:
        check_not_after("start_date", app.start_date, today, bounds)
    if app.by_commitment and not (
        policy.commitment_allowed and app.kind.category is Category.LONG_TERM
    ):
        raise InvalidInput(
            "by_commitment", "V6", "filing by commitment is only for long-term kinds where allowed"
        )
    if app.card_number is not None:
        prefix = next(
            (p for p in policy.replace_card_prefixes if app.card_number.startswith(p)), None
        )
        if prefix is not None:
            raise InvalidInput(
                "card_number",
                policy.rule("replace_card_prefixes"),
                f"a social security card numbered {prefix}… must be replaced before filing: "
                "apply for a new card (更换社保卡), then file with it",
            )
    if (
        first_filing
        and policy.check_card_settlement_on_first_filing
        and app.card_settlement_enabled is not True
    ):
        raise InvalidInput(
            "card_settlement_enabled",
            policy.rule("check_card_settlement_on_first_filing"),
            "a first filing needs the card's cross-province settlement function confirmed enabled",
        )


def _check_retro(app: Application, admission: Admission, policy: Policy) -> None:
    """E2: a retro filing is the admitted person's, for that place, starting by admission and
    still valid on the admission day (V5), so that it covers it."""
    if app.insurance_type is not admission.insurance_type:
        raise InvalidInput("insurance_type", "E2", "must match the admission's insurance type")
    if app.insured_region != admission.insured_region:
        raise InvalidInput("insured_region", "E2", "must match the admission's insured region")
    if not same_area(app.treatment_region, admission.treatment_region, "city"):
        raise InvalidInput(
            "treatment_region", "E2", "must name the city of the admission it is filed for"
        )
    if app.start_date is None or app.start_date > admission.admitted_on:
        raise InvalidInput(
            "start_date",
            "E2",
            f"a retro filing starts on or before the admission date ({admission.admitted_on})",
        )
    long_term = app.kind.category is Category.LONG_TERM
    months = policy.long_term_validity_months if long_term else policy.temporary_validity_months
    if months and validity_end(app.start_date, months=months).last_day < admission.admitted_on:
        raise InvalidInput(
            "start_date",
            "E2",
            f"a filing starting {app.start_date} would have ended before the admission on "
            f"{admission.admitted_on}, so it could not cover it",
        )


def apply_effects(filing: Filing, row: Transition, attempt: Attempt) -> None:
    """Change the filing's own fields for a transition that has passed its guards."""
    if row.dest is FilingState.EFFECTIVE and row.source is not FilingState.EFFECTIVE:
        _take_effect(filing, attempt.policy, attempt.today)
    if row.event == "deem":
        # E1: covers its own admission from the admission day, for the whole stay (V5).
        filing.effective_on = filing.start_date
    if row.event == "stamp":
        filing.hospital_reviewed = True
    if row.event == "supply_documents":
        filing.documents = filing.documents | attempt.supplied
        filing.entitlement_pending = commitment_pending(attempt.policy, filing)
    if row.event in (
        "reject",
        "cancel",
        "change",
        "withdraw",
        "stop_insurance",
        "close_window",
        "supersede",
    ):
        filing.reason = attempt.reason or row.event
        filing.note = attempt.note


def _take_effect(filing: Filing, policy: Policy, today: date) -> None:
    """V1–V4: validity and the lock count from the day the filing takes effect: the day it is
    approved (or submitted, where effect is instant), or its start date if that is later. A
    review that takes days never shortens the validity the policy promises."""
    # A retro filing (E2) takes effect from its start date, on or before the admission.
    effective_on = filing.start_date if filing.admission_id else max(today, filing.start_date)
    filing.effective_on = effective_on
    # E4: a referral continues the deductible where the region says so.
    filing.continues_deductible = (
        filing.kind is Kind.REFERRAL
        and filing.channel is Channel.HOSPITAL_SYSTEM  # the hospital's own referral (E4)
        and policy.referral_continues_deductible
    )
    if filing.category is Category.LONG_TERM:
        validity, lock = policy.long_term_validity_months, policy.long_term_cancel_lock_months
    else:
        validity, lock = policy.temporary_validity_months, policy.temporary_cancel_lock_months
    try:
        valid_until = validity_end(effective_on, months=validity).last_day if validity else None
        lock_until = validity_end(effective_on, months=lock).last_day if lock else None
    except PeriodOutOfRange:
        # A draft made before start dates were bounded (states.bounds) may start at the end
        # of the calendar: refused by name, so it can still be withdrawn, never a crash.
        raise InvalidInput(
            "start_date",
            "V1" if filing.category is Category.LONG_TERM else "V3",
            "the validity or lock counted from this start date would end outside the calendar",
        ) from None
    filing.valid_until, filing.lock_until = valid_until, lock_until
    filing.entitlement_pending = commitment_pending(policy, filing)


def expiry_reminders_at(valid_until: date | None, policy: Policy) -> list[datetime]:
    """V1/V3: when to remind that a validity ends: at the start (local) of the day each of
    `expiry_reminder_days` before its last valid day, earliest first."""
    if valid_until is None:
        return []
    return [
        start_of_local_day(valid_until - timedelta(days=lead))
        for lead in policy.expiry_reminder_days  # longest lead first
    ]

"""Guards: facts that must hold for a transition, each with the rule that demands it.

A guard returns `None` when the fact holds, or a `Denial` naming the rule, the reason and the
inputs it judged (dates, counts, codes; never personal data), which the audit trail records.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from states.admissions import Admission, filing_window, retro_denial, window_inputs
from states.denial import Denial
from states.documents import kind_documents_missing, missing_documents, waived_by_commitment
from states.filing import Filing
from states.periods import WorkCalendar, end_of_local_day
from states.policy import Policy
from states.reasons import REASON_CODE
from states.vocabulary import ONLINE_CHANNELS, Category, Channel, Document, Kind


@dataclass(frozen=True)
class Attempt:
    """Everything a guard may judge: the filing, its pinned policy, the time, and the request."""

    filing: Filing
    policy: Policy
    event: str
    now: datetime
    today: date  # local date (Asia/Shanghai) of `now`
    reason: str | None = None
    supplied: frozenset[Document] = frozenset()
    # How many other filings are effective in the same L6 scope. Asked only by the guard that
    # needs it, so transitions that cannot make a filing effective never pay for the query.
    other_effective: Callable[[], int] = lambda: 0
    # The admission a deemed or retro filing is tied to (§5), and the calendar its windows
    # are counted on (C3, C6).
    admission: Admission | None = None
    calendar: WorkCalendar | None = None
    actor_id: str = ""  # who attempts it (E4: the reviewer is not the applicant)
    note: str | None = None  # words given with the reason code, checked for personal data


Guard = Callable[[Attempt], Denial | None]


def documents_complete(a: Attempt) -> Denial | None:
    """M1–M8: every required document is present (or waived by commitment, V6)."""
    missing = missing_documents(a.policy, a.filing)
    if not missing:
        return None
    return Denial(
        missing[0].rule_id,
        "missing documents: " + "; ".join(f"{m.describe()} ({m.rule_id})" for m in missing),
        {
            "missing": [list(m.any_of) for m in missing],
            "rules": sorted({m.rule_id for m in missing}),
        },
    )


def consent_given(a: Attempt) -> Denial | None:
    """M11: an online filing confirms the notice and signs the commitment letter."""
    if (
        a.filing.channel in ONLINE_CHANNELS
        and a.policy.online_consent_required
        and not a.filing.consent_given
    ):
        return Denial(
            a.policy.rule("online_consent_required"),
            "an online filing needs the notice (告知书) confirmed "
            "and the commitment (承诺书) signed",
            {"channel": a.filing.channel.value},
        )
    return None


def one_effective_per_scope(a: Attempt) -> Denial | None:
    """L6: one effective filing per person, insurance type and treatment region."""
    if a.policy.one_effective_per_scope and a.other_effective() > 0:
        return Denial(
            a.policy.rule("one_effective_per_scope"),
            "the person already has an effective filing for this insurance type and treatment "
            "region; cancel it first",
            {
                "insurance_type": a.filing.insurance_type.value,
                "treatment_region": a.filing.treatment_region,
            },
        )
    return None


def reason_given(a: Attempt) -> Denial | None:
    """L1: a rejection says why, as a reason code (free text could carry personal data)."""
    if a.reason is None or not REASON_CODE.match(a.reason):
        return Denial("L1", "a rejection needs a reason code such as missing_documents", {})
    return None


def cancel_lock_elapsed(a: Attempt) -> Denial | None:
    """V2/V4: no cancel or change inside the lock after taking effect."""
    lock_until = a.filing.lock_until
    if lock_until is None or a.today > lock_until:
        return None
    key = (
        "long_term_cancel_lock_months"
        if a.filing.category is Category.LONG_TERM
        else "temporary_cancel_lock_months"
    )
    allowed_from = lock_until + timedelta(days=1)
    return Denial(
        a.policy.rule(key),
        f"the filing cannot be cancelled or changed within {getattr(a.policy, key)} months of "
        f"taking effect on {a.filing.effective_on}; the lock ends on {lock_until}, "
        f"so it can be cancelled from {allowed_from}",
        {
            "effective_on": str(a.filing.effective_on),
            "lock_ends_on": str(lock_until),
            "allowed_from": str(allowed_from),
            "today": str(a.today),
        },
    )


def validity_over(valid_until: date | None, now: datetime) -> bool:
    """V1/V3: whether a validity ending on `valid_until` is over at `now` (24:00 local, C5)."""
    return valid_until is not None and now >= end_of_local_day(valid_until)


def validity_ended(a: Attempt) -> Denial | None:
    """V1/V3: a filing expires only once its last valid day is over (24:00 local, C5)."""
    until = a.filing.valid_until
    rule = "V1" if a.filing.category is Category.LONG_TERM else "V3"
    if until is None:
        return Denial(rule, "the filing is valid indefinitely (长期有效)", {})
    ends_at = end_of_local_day(until)
    if validity_over(until, a.now):
        return None
    return Denial(
        rule,
        f"the filing is valid until the end of {until}",
        {"valid_until": str(until), "ends_at": ends_at.isoformat(), "now": a.now.isoformat()},
    )


def entitlement_pending(a: Attempt) -> Denial | None:
    """V6: supplying documents applies to a commitment filing still waiting for them."""
    if not a.filing.entitlement_pending:
        return Denial("V6", "the filing is not waiting for documents", {})
    return None


def pending_documents_supplied(a: Attempt) -> Denial | None:
    """V6: the supplied documents complete what the commitment stood in for."""
    have = a.filing.documents | a.supplied
    missing = kind_documents_missing(a.policy, a.filing, have)
    if missing:
        return Denial(
            "V6",
            "still missing: " + "; ".join(f"{m.describe()} ({m.rule_id})" for m in missing),
            {"missing": [list(m.any_of) for m in missing]},
        )
    return None


def emergency_admission(a: Attempt) -> Denial | None:
    """E1: a filing is deemed made only for an emergency admission, where the region says so."""
    adm = a.admission
    if adm is None or not adm.emergency or not a.filing.deemed:
        return Denial("E1", "only an emergency admission is treated as already filed", {})
    if not a.policy.emergency_deemed_filed:
        return Denial(a.policy.rule("emergency_deemed_filed"), "this region deems no filing", {})
    return None


def filing_window_closed(a: Attempt) -> Denial | None:
    """E3: the deemed filing lapses once the window to file is over or the person was
    discharged without filing."""
    adm = a.admission
    if adm is None or a.calendar is None:
        return Denial("E3", "the deemed filing has no admission to judge", {})
    window = filing_window(adm, a.policy, a.calendar)
    if window is None:
        return Denial("E3", "this region sets no window to file after an emergency admission", {})
    if adm.discharged_on is not None and window.before_discharge:
        return None
    if window.end.is_over(a.now):
        return None
    return Denial(
        window.rule,
        f"the window to file is open until the end of {window.end.last_day}",
        {"admitted_on": str(adm.admitted_on), "now": a.now.isoformat(), **window_inputs(window)},
    )


def retro_in_time(a: Attempt) -> Denial | None:
    """E2, E3, E5, E7: a filing made for an admission already begun is submitted in time."""
    if a.filing.admission_id is None:
        return None
    if a.admission is None or a.calendar is None:
        return Denial("E2", "the admission the filing is for was not found", {})
    return retro_denial(a.admission, a.policy, a.calendar, a.now)


def _hospital_referral(a: Attempt) -> bool:
    return (
        a.filing.kind is Kind.REFERRAL
        and a.filing.channel is Channel.HOSPITAL_SYSTEM
        and a.policy.referral_hospital_review
    )


def hospital_review_done(a: Attempt) -> Denial | None:
    """E4: a hospital reports a referral only after its medical (or insurance) office reviewed
    and stamped the clinical department's application."""
    if _hospital_referral(a) and not a.filing.hospital_reviewed:
        return Denial(
            a.policy.rule("referral_hospital_review"),
            "the hospital's medical or insurance office must review and stamp the referral "
            "application before it is reported (医务科审核盖章)",
            {"kind": a.filing.kind.value, "channel": a.filing.channel.value},
        )
    return None


def referral_to_review(a: Attempt) -> Denial | None:
    """E4: the medical office reviews a hospital's own referral application, once."""
    if not _hospital_referral(a):
        return Denial(
            "E4",
            "the medical office reviews referrals the hospital applies for, where the region "
            "asks for it",
            {"kind": a.filing.kind.value, "channel": a.filing.channel.value},
        )
    if a.filing.hospital_reviewed:
        return Denial("E4", "the referral application is already reviewed", {})
    if a.actor_id == a.filing.filed_by:
        return Denial(
            "E4",
            "the medical office reviews what the clinical department applied for: the reviewer "
            "cannot be the applicant",
            {},
        )
    return None


# Routing conditions: they choose between two rows of one event and refuse nothing.
def review_required(a: Attempt) -> bool:
    """L1: whether this region reviews filings from this channel before they take effect."""
    return a.filing.channel not in a.policy.instant_channels


def instant_effect(a: Attempt) -> bool:
    return not review_required(a)


GUARDS: dict[str, Guard] = {
    g.__name__: g
    for g in (
        documents_complete,
        consent_given,
        one_effective_per_scope,
        reason_given,
        cancel_lock_elapsed,
        validity_ended,
        entitlement_pending,
        pending_documents_supplied,
        emergency_admission,
        filing_window_closed,
        retro_in_time,
        hospital_review_done,
        referral_to_review,
    )
}
ROUTES: dict[str, Callable[[Attempt], bool]] = {
    "review_required": review_required,
    "instant_effect": instant_effect,
}


def commitment_pending(policy: Policy, filing: Filing) -> bool:
    """V6: an effective commitment filing lacks two-way entitlement until documents arrive."""
    return waived_by_commitment(policy, filing) and bool(
        kind_documents_missing(policy, filing, filing.documents)
    )

"""The coverage decision: for one admission (or visit) on one day of care, which filing covers it,
whether it settles directly, at what ratio, and, where the person must pay first, the manual
reimbursement claim's deadline and documents, each part with the rule that decided it.

A pure function: the service passes the admission, its pinned policy, the person's filings of the
same insurance type and the calendar, then records the decision in the audit trail.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from states.admissions import Admission, Care, Extension, extension_threshold, filing_window
from states.filing import Filing
from states.periods import (
    PeriodEnd,
    WorkCalendar,
    act_deadline,
    end_of_local_day,
    local_date,
)
from states.policy import Policy, Requirement
from states.regions import same_area
from states.vocabulary import Category, Document, FilingState, Institution, Kind

# States in which a filing may still cover an admission that began inside its validity (V5):
# an expired filing covers a stay that began before it expired; one cancelled, changed or
# lapsed mid-stay covers a stay that began before the day it ended.
_COVERING_STATES = frozenset({FilingState.EFFECTIVE, FilingState.EXPIRED})
_ENDED_EARLY = frozenset({FilingState.CANCELLED, FilingState.LAPSED})


@dataclass(frozen=True)
class Part:
    """One part of a decision and the rule that decided it."""

    part: str  # filing, direct_settlement, ratio, pharmacy, manual_reimbursement, retro, ...
    rule_id: str
    reason: str


@dataclass(frozen=True)
class ManualClaim:
    """P5, P6: the claim the person files at the insured place after paying in full."""

    counted_from: date | None  # None: counted from discharge, which has not happened yet
    deadline: PeriodEnd | None
    documents: tuple[Requirement, ...]
    self_share_first_percent: int  # P3: borne by the person before the region's treatment
    reduction_percent: int  # P4: lower reimbursement for temporary filers


@dataclass(frozen=True)
class Coverage:
    admission_id: str
    day: date  # the day of care judged
    basis: str  # "filing", "deemed", "no_filing_needed" or "none"
    filing_id: str | None
    direct_settlement: bool
    reimbursable: bool  # False: nothing is paid back at all (P3 pharmacy, E6 not_covered)
    ratio_reduction_points: int  # P4: points off the insured place's ratio
    ratio_percent_of_local: int  # P4: share of the in-city ratio (100 = the same)
    continues_deductible: bool  # E4
    manual: ManualClaim | None
    rule_id: str  # the rule that decided the outcome (why it settles directly, or why not)
    parts: tuple[Part, ...] = field(default=())

    @property
    def rules(self) -> list[str]:
        return sorted({p.rule_id for p in self.parts})

    def as_inputs(self) -> dict[str, Any]:
        """The decision as audit inputs: dates, codes and rule ids, never personal data."""
        out: dict[str, Any] = {
            "day": str(self.day),
            "rule_id": self.rule_id,
            "basis": self.basis,
            "filing_id": self.filing_id,
            "direct_settlement": self.direct_settlement,
            "reimbursable": self.reimbursable,
            "ratio_reduction_points": self.ratio_reduction_points,
            "ratio_percent_of_local": self.ratio_percent_of_local,
            "continues_deductible": self.continues_deductible,
            "parts": [[p.part, p.rule_id, p.reason] for p in self.parts],
        }
        if self.manual is not None:
            m = self.manual
            out["manual"] = {
                "counted_from": str(m.counted_from) if m.counted_from else None,
                "last_day": str(m.deadline.last_day) if m.deadline else None,
                "provisional": m.deadline.provisional if m.deadline else None,
                "documents": [list(g) for g in m.documents],
                "self_share_first_percent": m.self_share_first_percent,
                "reduction_percent": m.reduction_percent,
            }
        return out


def covering_filing(admission: Admission, filings: Iterable[Filing]) -> Filing | None:
    """V5: the filing whose validity contains the admission date covers the whole stay, even
    past its expiry. A filed one wins over the deemed one (E1)."""
    deemed = None
    for f in filings:
        if f.deemed:
            if f.admission_id == admission.id and f.state is FilingState.DEEMED:
                deemed = f
            continue
        ended_after_admission = f.state in _ENDED_EARLY and admission.admitted_on < local_date(
            f.updated_at
        )
        if (
            (f.state in _COVERING_STATES or ended_after_admission)
            and f.insurance_type is admission.insurance_type
            and f.effective_on is not None
            and f.effective_on <= admission.admitted_on
            and (f.valid_until is None or admission.admitted_on <= f.valid_until)
            and same_area(f.treatment_region, admission.treatment_region, "city")
        ):
            return f
    return deemed


def claim_documents(
    policy: Policy,
    admission: Admission,
    *,
    accident: bool = False,
    outside_drugs: bool = False,
    by_proxy: bool = False,
) -> tuple[Requirement, ...]:
    """P5: the region's base documents plus those the situation adds (seed 003)."""
    docs = list(policy.documents_reimbursement)
    if admission.referral:
        docs.append((Document.REFERRAL_CERTIFICATE,))
    if admission.emergency:
        docs.append((Document.EMERGENCY_DIAGNOSIS,))
    if accident:
        docs.append((Document.ACCIDENT_PROOF, Document.PERSONAL_COMMITMENT))
    if outside_drugs:
        docs.append((Document.OUTSIDE_DRUG_RECEIPTS,))
    if by_proxy:
        docs.append((Document.PROXY_AUTHORISATION,))
    return tuple(docs)


def claim_counted_from(admission: Admission, policy: Policy) -> date | None:
    """P6: the day a claim's period counts from: the discharge (a visit's own day), or where the
    region counts from the receipt (Shanghai), the day of settlement. None while unknown."""
    if policy.reimbursement_from == "receipt" and admission.settled_at is not None:
        return local_date(admission.settled_at)
    if admission.care is not Care.INPATIENT:
        return admission.admitted_on  # a visit's expense date
    return admission.discharged_on


def claim_deadline(
    policy: Policy, counted_from: date | None, calendar: WorkCalendar
) -> PeriodEnd | None:
    """P6: months from the expense or discharge date (or the receipt's date, Shanghai), a
    deadline to act: a last day on a rest day moves on (C3), provisional in an unknown year (C6)."""
    if counted_from is None:
        return None
    return act_deadline(counted_from, calendar=calendar, months=policy.reimbursement_months)


def claim_reminder_at(policy: Policy, last_day: date) -> datetime | None:
    """P6: when to remind that a claim lapses: as the day `reimbursement_reminder_days` before
    its last day ends; None where the policy sets no reminder."""
    if not policy.reimbursement_reminder_days:
        return None
    return end_of_local_day(last_day - timedelta(days=policy.reimbursement_reminder_days))


def decide(
    admission: Admission,
    policy: Policy,
    filings: Iterable[Filing],
    calendar: WorkCalendar,
    day: date | None = None,
) -> Coverage:
    """Decide coverage of `admission` on `day` (default: the admission day)."""
    day = day or admission.admitted_on
    parts: list[Part] = []
    emergency_or_other = "emergency" if admission.emergency else "other"

    if same_area(admission.insured_region, admission.treatment_region, policy.scope):
        where = "province" if policy.scope == "province" else "city"
        parts.append(
            Part("filing", policy.rule("scope"), f"care inside the insured {where} needs no filing")
        )
        if same_area(admission.insured_region, admission.treatment_region, "city"):
            percent = 100  # care at home is not cross-region care: the in-city ratio itself
            parts.append(Part("ratio", "P2", "care in the insured city: the in-city ratio"))
        else:
            percent = policy.in_scope_ratio_percent[emergency_or_other]
            parts.append(
                Part(
                    "ratio",
                    policy.rule("in_scope_ratio_percent"),
                    f"{percent}% of the in-city ratio ({emergency_or_other})",
                )
            )
        direct, manual_reason = _settles_directly(admission, parts)
        return _result(
            admission,
            policy,
            calendar,
            day,
            "no_filing_needed",
            None,
            direct,
            manual_reason or policy.rule("scope"),
            0,
            percent,
            False,
            parts,
        )

    filing = covering_filing(admission, filings)
    if filing is None:
        return _uncovered(admission, policy, calendar, day, parts)

    if filing.deemed:
        basis, filing_rule = "deemed", "E1"
        parts.append(
            Part("filing", "E1", "the emergency admission is treated as already filed (视同已备案)")
        )
        window = filing_window(admission, policy, calendar)
        if window is not None:
            parts.append(
                Part(
                    "filing",
                    window.rule,
                    f"deemed only until a filing is made by the end of {window.end.last_day}"
                    + (" and before discharge" if window.before_discharge else ""),
                )
            )
    else:
        basis = "filing"
        rule = filing_rule = "V5" if filing.state is not FilingState.EFFECTIVE else "P1"
        parts.append(
            Part(
                "filing",
                rule,
                f"filing {filing.id} ({filing.kind.value}) was valid on the admission date "
                f"{admission.admitted_on}" + (" and covers the whole stay" if rule == "V5" else ""),
            )
        )

    direct, manual_reason = _settles_directly(admission, parts)
    reimbursable = True
    threshold = extension_threshold(admission, policy)
    if threshold is not None and day > threshold and admission.extension is not Extension.GRANTED:
        state = admission.extension.value if admission.extension else "not requested"
        rule = policy.rule("after_extension_missing")
        if policy.after_extension_missing == "not_covered":
            reimbursable = False
            parts.append(
                Part(
                    "extension",
                    rule,
                    f"day {(day - admission.admitted_on).days} of a "
                    f"referred stay past {threshold} without an extension ({state}) is not covered",
                )
            )
        else:
            parts.append(
                Part(
                    "extension",
                    rule,
                    f"day {(day - admission.admitted_on).days} of a "
                    f"referred stay past {threshold} without an extension ({state}): "
                    "no direct settlement, claim manual reimbursement",
                )
            )
        direct, manual_reason = False, manual_reason or rule

    kind = Kind.EMERGENCY if filing.deemed else filing.kind
    points = 0
    if kind.category is Category.TEMPORARY:
        points = policy.temporary_ratio_reduction_points[kind]
        parts.append(
            Part(
                "ratio",
                policy.rule("temporary_ratio_reduction_points"),
                f"a temporary filing ({kind.value}) is paid {points} points lower",
            )
        )
    else:
        parts.append(Part("ratio", "P2", "the insured place's ratio (参保地政策)"))
    return _result(
        admission,
        policy,
        calendar,
        day,
        basis,
        filing.id,
        direct,
        manual_reason or filing_rule,
        points,
        100,
        filing.continues_deductible,
        parts,
        reimbursable=reimbursable,
        temporary=kind.category is Category.TEMPORARY,
    )


def _settles_directly(admission: Admission, parts: list[Part]) -> tuple[bool, str | None]:
    """P1, P5, P7: direct settlement needs a networked institution that is working, and for
    outpatient chronic diseases an enabled institution and a declared disease."""
    if not admission.networked:
        parts.append(
            Part(
                "direct_settlement",
                "P5",
                "the institution is not networked for "
                "cross-region settlement: pay in full, claim manual reimbursement",
            )
        )
        return False, "P5"
    if admission.system_fault:
        parts.append(
            Part(
                "direct_settlement",
                "P5",
                "direct settlement failed (system fault): claim manual reimbursement",
            )
        )
        return False, "P5"
    if admission.care is Care.CHRONIC_OUTPATIENT and not (
        admission.chronic_enabled and admission.chronic_declared
    ):
        missing = (
            "the institution is not enabled"
            if not admission.chronic_enabled
            else ("the person did not declare the disease")
        )
        parts.append(Part("direct_settlement", "P7", f"outpatient chronic disease: {missing}"))
        return False, "P7"
    parts.append(Part("direct_settlement", "P1", "settles directly at a networked institution"))
    return True, None


def _uncovered(
    admission: Admission, policy: Policy, calendar: WorkCalendar, day: date, parts: list[Part]
) -> Coverage:
    parts.append(Part("filing", "P5", "no effective filing covers the admission date"))
    if not admission.settled and policy.retro_filing_before_settlement:
        parts.append(
            Part(
                "retro",
                policy.rule("retro_filing_before_settlement"),
                "a filing made before discharge settlement still settles directly (出院结算前补办)",
            )
        )
    if admission.institution is Institution.PHARMACY and not policy.unfiled_pharmacy_reimbursed:
        parts.append(
            Part(
                "pharmacy",
                policy.rule("unfiled_pharmacy_reimbursed"),
                "drugs bought at a designated pharmacy without a filing are not "
                "reimbursed (不予报销)",
            )
        )
        return Coverage(
            admission.id,
            day,
            "none",
            None,
            False,
            False,
            0,
            100,
            False,
            None,
            policy.rule("unfiled_pharmacy_reimbursed"),
            tuple(parts),
        )
    share = policy.unfiled_self_share_percent
    if share:
        parts.append(
            Part(
                "self_share",
                policy.rule("unfiled_self_share_percent"),
                f"the person first bears {share}%, then the region's treatment applies",
            )
        )
    rule = policy.rule("unfiled_self_share_percent") if share else "P5"
    return _result(
        admission,
        policy,
        calendar,
        day,
        "none",
        None,
        False,
        rule,
        0,
        100,
        False,
        parts,
        self_share=share,
    )


def _result(
    admission: Admission,
    policy: Policy,
    calendar: WorkCalendar,
    day: date,
    basis: str,
    filing_id: str | None,
    direct: bool,
    rule_id: str,
    points: int,
    percent: int,
    continues_deductible: bool,
    parts: list[Part],
    *,
    reimbursable: bool = True,
    self_share: int = 0,
    temporary: bool = False,
) -> Coverage:
    manual = None
    if not direct and reimbursable:
        counted_from = claim_counted_from(admission, policy)
        deadline = claim_deadline(policy, counted_from, calendar)
        reduction = policy.manual_temporary_reduction_percent if temporary else 0
        manual = ManualClaim(
            counted_from, deadline, claim_documents(policy, admission), self_share, reduction
        )
        when = (
            f"by the end of {deadline.last_day}"
            + (
                " (provisional: that year's holidays are not yet known, C6)"
                if deadline.provisional
                else ""
            )
            if deadline
            else f"within {policy.reimbursement_months} months of discharge"
        )
        parts.append(
            Part(
                "manual_reimbursement",
                policy.rule("reimbursement_months"),
                f"claim manual reimbursement {when}",
            )
        )
        parts.append(
            Part(
                "documents",
                policy.rule("documents_reimbursement"),
                "documents: " + "; ".join(" or ".join(g) for g in manual.documents),
            )
        )
        if reduction:
            parts.append(
                Part(
                    "ratio",
                    policy.rule("manual_temporary_reduction_percent"),
                    f"manual reimbursement for a temporary filing is at most {reduction}% lower",
                )
            )
    if continues_deductible:
        parts.append(
            Part("deductible", "E4", "the referral continues the deductible (连续计算起付标准)")
        )
    return Coverage(
        admission.id,
        day,
        basis,
        filing_id,
        direct,
        reimbursable,
        points,
        percent,
        continues_deductible,
        manual,
        rule_id,
        tuple(parts),
    )

"""Admissions: a person's stay (or visit) at a hospital or pharmacy away from home, and the
windows that its dates open (§5).

An admission is recorded by the hospital through its information system (L7). Its dates decide
whether a filing made after it still counts (E2, E3, E5, E7), when a referred stay needs an
extension (E6), and from when a manual reimbursement claim is counted (P6).

Like the filing table, the admission's events are data: `ADMISSION_EVENTS` says in which status
each event applies and which rule refuses it elsewhere; the guards below say when it may happen.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from enum import StrEnum

from states.bounds import DateBounds, check_not_before
from states.codes import CodePattern
from states.denial import Denial
from states.errors import InvalidInput
from states.periods import (
    PeriodEnd,
    WorkCalendar,
    act_deadline,
    end_of_local_day,
    start_of_local_day,
    working_days_deadline,
)
from states.policy import Policy
from states.regions import EXCLUDED_PROVINCES, is_province_level, province_of
from states.vocabulary import Document, Institution, InsuranceType, Role, Settlement

_HOSPITAL_CODE_LIMIT = 32


class AdmissionStatus(StrEnum):
    ADMITTED = "admitted"  # in hospital (or the visit is open)
    DISCHARGED = "discharged"  # discharged and settled (出院结算)


class Care(StrEnum):
    INPATIENT = "inpatient"  # 住院
    OUTPATIENT = "outpatient"  # 普通门诊
    CHRONIC_OUTPATIENT = "chronic_outpatient"  # 门诊慢特病 (P7)


class Extension(StrEnum):
    """E6: the extension of a referred stay past the threshold (延期申请)."""

    REQUESTED = "requested"
    GRANTED = "granted"
    REFUSED = "refused"


@dataclass(frozen=True)
class Visit:
    """What a hospital reports when a person is admitted (or visits, or buys drugs)."""

    insurance_type: InsuranceType
    insured_region: str
    treatment_region: str
    hospital_code: str
    admitted_on: date
    institution: Institution = Institution.HOSPITAL
    networked: bool = True
    care: Care = Care.INPATIENT
    emergency: bool = False
    referral: bool = False
    transfer_first: bool = False
    chronic_enabled: bool = False
    chronic_declared: bool = False


def check_visit(
    visit: Visit,
    today: date,
    *,
    region_exists: Callable[[str], bool],
    bounds: DateBounds,
    hospital_code: CodePattern,
) -> None:
    """Bad input names its field and rule; nothing is written. The hospital code matches the
    pattern config.toml gives it (P1)."""
    for name in ("insured_region", "treatment_region"):
        code = getattr(visit, name)
        if not (isinstance(code, str) and len(code) == 6 and code.isdigit()):
            raise InvalidInput(name, "K8", "must be a six-digit GB/T 2260 region code")
        if province_of(code) in EXCLUDED_PROVINCES:
            raise InvalidInput(name, "K7", "filings never cover Hong Kong, Macao or Taiwan")
        if not region_exists(code):
            raise InvalidInput(name, "K8", f"{code} is not a current GB/T 2260 region code")
    if is_province_level(visit.treatment_region):
        raise InvalidInput("treatment_region", "K8", "name the city or county of treatment")
    hospital_code.check("hospital_code", visit.hospital_code)
    if len(visit.hospital_code) > _HOSPITAL_CODE_LIMIT:  # the column's width
        raise InvalidInput("hospital_code", "P1", f"at most {_HOSPITAL_CODE_LIMIT} characters")
    if visit.admitted_on > today:
        raise InvalidInput("admitted_on", "E2", "an admission is recorded once it has begun")
    check_not_before("admitted_on", visit.admitted_on, today, bounds)
    if visit.transfer_first and not visit.referral:
        raise InvalidInput("transfer_first", "E5", "only a referral transfers first")
    if visit.institution is Institution.PHARMACY and visit.care is not Care.OUTPATIENT:
        raise InvalidInput("care", "P3", "a pharmacy purchase is outpatient care")
    if visit.institution is Institution.PHARMACY and (visit.emergency or visit.referral):
        raise InvalidInput("institution", "P3", "emergencies and referrals are hospital care")


def check_discharge(
    admitted_on: date, discharged_on: date, today: date, bounds: DateBounds
) -> None:
    """E2: the discharge (settlement) date falls between the admission date and today, and
    not further back than the input bounds allow."""
    if discharged_on < admitted_on or discharged_on > today:
        raise InvalidInput("discharged_on", "E2", "must fall between the admission date and today")
    check_not_before("discharged_on", discharged_on, today, bounds)


@dataclass
class Admission:
    """One stay or visit. Personal data is held as in `Filing`: a keyed hash and a masked form."""

    id: str
    person_key: str
    person_masked: str
    insurance_type: InsuranceType
    insured_region: str
    treatment_region: str
    hospital_code: str  # the institution's own code (opaque here)
    institution: Institution
    networked: bool  # 联网定点: can settle across regions directly (P1)
    care: Care
    admitted_on: date  # the local admission (or visit, or transfer, E5) date
    emergency: bool  # flagged by the hospital as 急诊抢救 (E1, E3)
    referral: bool  # 转诊转院 (E4, E5, E6)
    transfer_first: bool  # E5: transferred before the referral was filed
    policy_region: str  # the insured region's policy, pinned at admission
    policy_version: str
    hospital_org: str | None
    created_at: datetime
    updated_at: datetime
    chronic_enabled: bool = False  # P7: the institution settles this chronic disease directly
    chronic_declared: bool = False  # P7: the person declared the disease
    status: AdmissionStatus = AdmissionStatus.ADMITTED
    version: int = 1
    discharged_on: date | None = None
    settlement: Settlement | None = None
    settled_at: datetime | None = None
    system_fault: bool = False  # P5: direct settlement failed for a system fault
    deemed_filing_id: str | None = None  # E1
    route: str | None = None  # "manual_reimbursement" once routed (P5)
    route_rule: str | None = None  # the rule that routed it (E2, E3, E5, E6, P3, P5)
    extension: Extension | None = None  # E6
    claim_id: str | None = None  # the manual reimbursement claim, once opened (P6)

    @property
    def settled(self) -> bool:
        return self.settlement is not None


@dataclass(frozen=True)
class AdmissionEvent:
    event: str
    sources: frozenset[AdmissionStatus]
    dest: AdmissionStatus | None  # None: the status stays
    roles: frozenset[Role]
    rule: str  # the rule that refuses it in any other status


_IN = frozenset({AdmissionStatus.ADMITTED})
_HOSPITAL = frozenset({Role.HOSPITAL, Role.OFFICER, Role.ADMINISTRATOR})
_AGENCY = frozenset({Role.OFFICER, Role.ADMINISTRATOR})
# Who records admissions (a hospital, or the agency for it) and who files a manual
# reimbursement claim (the person, or a proxy at the agency's counter, P5).
ADMITTERS = _HOSPITAL
CLAIMANTS = frozenset({Role.INSURED, Role.OFFICER, Role.ADMINISTRATOR})

ADMISSION_EVENTS: dict[str, AdmissionEvent] = {
    e.event: e
    for e in (
        AdmissionEvent(
            "discharge", _IN, AdmissionStatus.DISCHARGED, _HOSPITAL | {Role.SYSTEM}, "E2"
        ),
        AdmissionEvent("request_extension", _IN, None, _HOSPITAL | {Role.INSURED}, "E6"),
        AdmissionEvent("grant_extension", _IN, None, _AGENCY, "E6"),
        AdmissionEvent("refuse_extension", _IN, None, _AGENCY, "E6"),
    )
}


# -- windows -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Window:
    """A period within which a filing made after admission still counts."""

    rule: str
    end: PeriodEnd
    before_discharge: bool  # the window also closes at discharge (E3, E5)


def filing_window(admission: Admission, policy: Policy, calendar: WorkCalendar) -> Window | None:
    """The window a retro filing for this admission must meet, beyond E2's "before discharge
    settlement": E3 (emergency, days), E5 (referral transferred first, days), E7 (emergency,
    working days). None where only E2 applies."""
    if admission.emergency and policy.emergency_filing_window_days:
        days = policy.emergency_filing_window_days
        return Window("E3", act_deadline(admission.admitted_on, calendar=calendar, days=days), True)
    if admission.referral and admission.transfer_first and policy.referral_report_window_days:
        days = policy.referral_report_window_days
        return Window("E5", act_deadline(admission.admitted_on, calendar=calendar, days=days), True)
    if admission.emergency and policy.treat_first_working_days:
        end = working_days_deadline(
            admission.admitted_on, policy.treat_first_working_days, calendar=calendar
        )
        return Window("E7", end, False)
    return None


def window_inputs(window: Window) -> dict[str, object]:
    end = window.end
    return {
        "window_rule": window.rule,
        "last_day": str(end.last_day),
        "computed_last_day": str(end.computed_last_day),
        "ends_at": end.ends_at.isoformat(),
        "provisional": end.provisional,
        "period_rules": list(end.rules),
    }


def retro_denial(
    admission: Admission, policy: Policy, calendar: WorkCalendar, now: datetime
) -> Denial | None:
    """E2, E3, E5, E7: whether a filing for an admission that has already begun may still be
    submitted now. Refusals name the rule that closed the door: after discharge, the window's
    own "before discharge" (E3, E5) where the region sets such a window, else E2's "before
    discharge settlement" (E7's window counts working days and does not close at discharge)."""
    inputs: dict[str, object] = {
        "admitted_on": str(admission.admitted_on),
        "now": now.isoformat(),
    }
    if not policy.retro_filing_before_settlement:
        return Denial(
            policy.rule("retro_filing_before_settlement"),
            "this region accepts no filing after admission",
            inputs,
        )
    window = filing_window(admission, policy, calendar)
    if admission.discharged_on is not None:
        inputs["discharged_on"] = str(admission.discharged_on)
        if window is not None and window.before_discharge:
            return Denial(
                window.rule,
                f"the filing had to be made before discharge (discharged on "
                f"{admission.discharged_on})",
                {**inputs, **window_inputs(window)},
            )
    if admission.settled:
        return Denial(
            policy.rule("retro_filing_before_settlement"),
            "the admission was settled on discharge; a filing after settlement no longer gives "
            "direct settlement (出院结算前补办): claim manual reimbursement instead (P5)",
            {
                **inputs,
                "settled_at": admission.settled_at.isoformat() if admission.settled_at else None,
            },
        )
    if window is None:
        return None
    if window.end.is_over(now):
        extended = (
            f" (moved from {window.end.computed_last_day} past rest days, C3)"
            if window.end.last_day != window.end.computed_last_day
            else ""
        )
        return Denial(
            window.rule,
            f"the window to file closed at the end of {window.end.last_day}{extended}",
            {**inputs, **window_inputs(window)},
        )
    return None


# -- the extension of a referred stay (E6) ----------------------------------------------------


def extension_threshold(admission: Admission, policy: Policy) -> date | None:
    """E6: the last day a referred stay is covered without an extension: the stay "passes 60
    days" from the next day on. Counted in calendar days from admission (C1); it is a length of
    stay, not a deadline to act, so rest days do not move it (C5)."""
    if not (admission.referral and policy.extension_after_days):
        return None
    return admission.admitted_on + timedelta(days=policy.extension_after_days)


def window_reminder_at(window: Window, policy: Policy) -> datetime | None:
    """E3/E5/E7: when to remind that a filing window closes: at the start (local) of the day
    `window_reminder_days` before its last day; None where the policy sets no reminder."""
    if not policy.window_reminder_days:
        return None
    return start_of_local_day(window.end.last_day - timedelta(days=policy.window_reminder_days))


def extension_reminder_at(admission: Admission, policy: Policy) -> datetime | None:
    """E6: when to remind that an extension is due: `extension_reminder_days` before the end of
    the threshold day."""
    last = extension_threshold(admission, policy)
    if last is None or not policy.extension_reminder_days:
        return None
    return end_of_local_day(last - timedelta(days=policy.extension_reminder_days))


def extension_denial(
    event: str, admission: Admission, policy: Policy, supplied: frozenset[Document]
) -> Denial | None:
    rule = policy.rule("extension_after_days")
    if extension_threshold(admission, policy) is None:
        return Denial(
            rule,
            "an extension applies to a referred stay where the region sets a threshold",
            {"referral": admission.referral, "extension_after_days": policy.extension_after_days},
        )
    if event == "request_extension":
        if admission.extension in (Extension.REQUESTED, Extension.GRANTED):
            return Denial(rule, f"an extension is already {admission.extension.value}", {})
        if Document.CONTINUED_STAY_CERTIFICATE not in supplied:
            return Denial(
                rule,
                "an extension request needs the treating hospital's documents showing that "
                "continued hospitalisation is needed (需继续住院治疗相关资料)",
                {"missing": [Document.CONTINUED_STAY_CERTIFICATE.value]},
            )
        return None
    if admission.extension is not Extension.REQUESTED:
        state = admission.extension.value if admission.extension else "not requested"
        return Denial(rule, f"no extension request is waiting (it is {state})", {})
    return None


def claims_days_past_threshold(admission: Admission, policy: Policy) -> bool:
    """E6: a discharged referred stay that passed the threshold without a granted extension has
    its days past it claimed by hand, where the region says so (else they are not covered)."""
    threshold = extension_threshold(admission, policy)
    return (
        threshold is not None
        and admission.discharged_on is not None
        and admission.discharged_on > threshold
        and admission.extension is not Extension.GRANTED
        and policy.after_extension_missing == "manual_reimbursement"
    )

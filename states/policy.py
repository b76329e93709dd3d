"""Regional policies as data.

A policy is parsed from the mapping that config.toml holds: a national default and regions that
inherit from it and override what differs. Every value is written as `{ value = ..., rule = "ID" }`
so each behaviour can be traced to its rule in the rules catalogue (`states.catalogue`). Parsing
is strict: an unknown key, a value of the wrong shape or a missing rule id is refused with an
error naming the key.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any

from states.errors import PolicyConfigError
from states.vocabulary import Channel, Document, InsuranceType, Kind

NATIONAL = "national"
_RULE_ID = re.compile(r"^[A-Z]\d{1,2}$")
_REGION = re.compile(r"^\d{6}$")

Requirement = tuple[Document, ...]
"""A group of documents any one of which will do (M4: posting certificate or labour contract)."""


def _bool(v: Any) -> bool:
    if not isinstance(v, bool):
        raise ValueError("must be true or false")
    return v


def _months(v: Any) -> int:
    if not isinstance(v, int) or isinstance(v, bool) or not 0 <= v <= 120:
        raise ValueError("must be a whole number of months from 0 to 120")
    return v


def _long_term_validity(v: Any) -> int:
    """V1: indefinite (0) or not shorter than a year."""
    months = _months(v)
    if 0 < months < 12:
        raise ValueError("must be 0 (indefinite) or at least 12 months (V1: at least a year)")
    return months


def _temporary_validity(v: Any) -> int:
    """V3: at least six months (不少于6个月)."""
    months = _months(v)
    if months < 6:
        raise ValueError("must be at least 6 months (V3: 不少于6个月)")
    return months


def _scope(v: Any) -> str:
    if v not in ("province", "city"):
        raise ValueError('must be "province" or "city"')
    return str(v)


def _channels(v: Any) -> frozenset[Channel]:
    if not isinstance(v, list):
        raise ValueError("must be a list of channel names")
    try:
        channels = frozenset(Channel(c) for c in v)
    except ValueError as exc:
        raise ValueError(f"unknown channel ({exc}); known: {', '.join(Channel)}") from None
    if Channel.SYSTEM in channels:
        raise ValueError("the engine's own channel files nothing")
    return channels


def _kinds(v: Any) -> frozenset[Kind]:
    if not isinstance(v, list) or not v:
        raise ValueError("must be a non-empty list of kinds (K1–K6)")
    try:
        return frozenset(Kind(k) for k in v)
    except ValueError as exc:
        raise ValueError(f"unknown kind ({exc}); known: {', '.join(Kind)}") from None


def _insurance_types(v: Any) -> frozenset[InsuranceType]:
    if not isinstance(v, list) or not v:
        raise ValueError("must be a non-empty list of insurance types")
    try:
        return frozenset(InsuranceType(t) for t in v)
    except ValueError as exc:
        known = ", ".join(InsuranceType)
        raise ValueError(f"unknown insurance type ({exc}); known: {known}") from None


def _prefixes(v: Any) -> tuple[str, ...]:
    if not isinstance(v, list) or not all(isinstance(p, str) and p.isdigit() for p in v):
        raise ValueError("must be a list of digit strings")
    return tuple(v)


def _whole(low: int, high: int, what: str) -> Callable[[Any], int]:
    def parse(v: Any) -> int:
        if not isinstance(v, int) or isinstance(v, bool) or not low <= v <= high:
            raise ValueError(f"must be a whole number of {what} from {low} to {high}")
        return v

    return parse


def _working_days(v: Any) -> int:
    """E7: 0 (no treat-first path) or 3 to 10 working days."""
    days = _whole(0, 10, "working days")(v)
    if 0 < days < 3:
        raise ValueError("must be 0 (no treat-first path) or from 3 to 10 working days (E7)")
    return days


def _points_by_kind(v: Any) -> Mapping[Kind, int]:
    """P4: ratio points taken off per temporary kind: referral and emergency at most 10, other
    temporary at most 20 (N22)."""
    caps = {Kind.REFERRAL: 10, Kind.EMERGENCY: 10, Kind.OTHER_TEMPORARY: 20}
    if not isinstance(v, Mapping) or set(v) != {k.value for k in caps}:
        raise ValueError("must give points for exactly K4, K5 and K6")
    out = {}
    for kind, cap in caps.items():
        out[kind] = _whole(0, cap, f"ratio points for {kind.value} (P4 caps it at {cap})")(
            v[kind.value]
        )
    return MappingProxyType(out)


def _percent_of_local(v: Any) -> Mapping[str, int]:
    """P4 (seed 003, Shenzhen): where no filing is needed, the share of the in-city ratio paid,
    for emergencies and for everything else."""
    if not isinstance(v, Mapping) or set(v) != {"emergency", "other"}:
        raise ValueError("must give percentages for exactly emergency and other")
    return MappingProxyType({k: _whole(1, 100, "percent")(v[k]) for k in ("emergency", "other")})


def _lead_days(v: Any) -> tuple[int, ...]:
    """Reminder lead times in days before a validity ends, e.g. [30, 7]: each sent once."""
    if not isinstance(v, list):
        raise ValueError("must be a list of whole numbers of days, e.g. [30, 7]")
    days = [_whole(1, 180, "days")(d) for d in v]
    if len(set(days)) != len(days):
        raise ValueError("each lead time may appear once")
    return tuple(sorted(days, reverse=True))


def _reimbursement_from(v: Any) -> str:
    """P6: what the claim period counts from."""
    if v not in ("discharge", "receipt"):
        raise ValueError('must be "discharge" (expense or discharge date) or "receipt"')
    return str(v)


def _after_extension_missing(v: Any) -> str:
    """E6: what happens to the days of a referred stay past the threshold without an extension."""
    if v not in ("manual_reimbursement", "not_covered"):
        raise ValueError('must be "manual_reimbursement" or "not_covered"')
    return str(v)


def _requirements(v: Any) -> tuple[Requirement, ...]:
    if not isinstance(v, list) or not all(isinstance(g, list) and g for g in v):
        raise ValueError("must be a list of non-empty lists of document names (any one of a list)")
    try:
        return tuple(tuple(Document(d) for d in group) for group in v)
    except ValueError as exc:
        raise ValueError(f"unknown document ({exc}); known: {', '.join(Document)}") from None


def _required_documents(v: Any) -> tuple[Requirement, ...]:
    """Documents a rule requires (M1–M5, M7, M8, P5): at least one. Only M6 (an emergency is
    deemed filed) and a kind with nothing beyond M1 (K6) may require none."""
    groups = _requirements(v)
    if not groups:
        raise ValueError("must list at least one document: its rule requires documents")
    return groups


# key -> (parser, the rules it may cite)
_FIELDS: dict[str, tuple[Callable[[Any], Any], frozenset[str]]] = {
    "scope": (_scope, frozenset({"K8"})),
    "kinds": (_kinds, frozenset({"K1", "K2", "K3", "K4", "K5", "K6"})),
    "posted_worker_insurance": (_insurance_types, frozenset({"K3"})),
    "instant_channels": (_channels, frozenset({"L1"})),
    "one_effective_per_scope": (_bool, frozenset({"L6"})),
    "long_term_validity_months": (_long_term_validity, frozenset({"V1"})),
    "long_term_cancel_lock_months": (_months, frozenset({"V2"})),
    "temporary_validity_months": (_temporary_validity, frozenset({"V3"})),
    "temporary_cancel_lock_months": (_months, frozenset({"V4", "V2"})),
    "commitment_allowed": (_bool, frozenset({"V6"})),
    "replace_card_prefixes": (_prefixes, frozenset({"M9"})),
    "check_card_settlement_on_first_filing": (_bool, frozenset({"M10"})),
    "online_consent_required": (_bool, frozenset({"M11"})),
    "documents_all": (_required_documents, frozenset({"M1"})),
    "documents_student": (_required_documents, frozenset({"M7"})),
    "documents_flexible_employment": (_required_documents, frozenset({"M8"})),
    # Hospital-side paths (§5) and paying (§6).
    "emergency_deemed_filed": (_bool, frozenset({"E1"})),
    "emergency_filing_window_days": (_whole(0, 30, "days"), frozenset({"E3"})),
    "retro_filing_before_settlement": (_bool, frozenset({"E2"})),
    "referral_hospital_review": (_bool, frozenset({"E4"})),
    "referral_continues_deductible": (_bool, frozenset({"E4"})),
    "referral_report_window_days": (_whole(0, 30, "days"), frozenset({"E5"})),
    "extension_after_days": (_whole(0, 365, "days"), frozenset({"E6"})),
    "extension_reminder_days": (_whole(0, 30, "days"), frozenset({"E6"})),
    "after_extension_missing": (_after_extension_missing, frozenset({"E6"})),
    "treat_first_working_days": (_working_days, frozenset({"E7"})),
    "unfiled_self_share_percent": (_whole(0, 100, "percent"), frozenset({"P3"})),
    "unfiled_pharmacy_reimbursed": (_bool, frozenset({"P3"})),
    "temporary_ratio_reduction_points": (_points_by_kind, frozenset({"P4"})),
    "in_scope_ratio_percent": (_percent_of_local, frozenset({"P4"})),
    "manual_temporary_reduction_percent": (
        _whole(0, 20, "percent (P4: at most 20)"),
        frozenset({"P4"}),
    ),
    "reimbursement_months": (_whole(1, 24, "months"), frozenset({"P6"})),
    "reimbursement_from": (_reimbursement_from, frozenset({"P6"})),
    "reimbursement_reminder_days": (_whole(0, 90, "days"), frozenset({"P6"})),
    "documents_reimbursement": (_required_documents, frozenset({"P5"})),
    # Reminders the scheduler sends before a deadline (jobs/); the rule is the deadline's.
    "expiry_reminder_days": (_lead_days, frozenset({"V1", "V3"})),
    "window_reminder_days": (_whole(0, 10, "days"), frozenset({"E3", "E5", "E7"})),
    # Each kind's own documents cite that kind's rule (K6 has none beyond M1).
    **{
        f"documents_{kind}": (_required_documents if required else _requirements, frozenset({rule}))
        for kind, rule, required in (
            ("K1", "M2", True),
            ("K2", "M3", True),
            ("K3", "M4", True),
            ("K4", "M5", True),
            ("K5", "M6", False),  # an emergency is deemed filed: none may be asked
            ("K6", "M1", False),  # M1's documents only (documents_all)
        )
    },
}
_META = frozenset({"version", "title"})
_KEYS = tuple(_FIELDS)
# The keys of §5 and §6, set on Policy by name.
_HOSPITAL_SIDE = _KEYS[
    _KEYS.index("emergency_deemed_filed") : _KEYS.index("window_reminder_days") + 1
]


@dataclass(frozen=True)
class Policy:
    """One region's resolved policy at one version. Immutable: a filing pins it."""

    region: str
    version: str
    title: str
    scope: str
    kinds: frozenset[Kind]  # the kinds this region files (§1)
    posted_worker_insurance: frozenset[InsuranceType]  # who may file as a posted worker (K3)
    instant_channels: frozenset[Channel]
    one_effective_per_scope: bool
    long_term_validity_months: int  # 0: indefinite (长期有效)
    long_term_cancel_lock_months: int
    temporary_validity_months: int
    temporary_cancel_lock_months: int
    commitment_allowed: bool
    replace_card_prefixes: tuple[str, ...]
    check_card_settlement_on_first_filing: bool
    online_consent_required: bool
    documents_all: tuple[Requirement, ...]
    documents_student: tuple[Requirement, ...]
    documents_flexible_employment: tuple[Requirement, ...]
    documents_by_kind: Mapping[Kind, tuple[Requirement, ...]]
    emergency_deemed_filed: bool  # E1
    emergency_filing_window_days: int  # E3: 0 = the deemed filing stands without a filing
    retro_filing_before_settlement: bool  # E2
    referral_hospital_review: bool  # E4: the medical office stamps before the report
    referral_continues_deductible: bool  # E4
    referral_report_window_days: int  # E5: 0 = no transfer-first path
    extension_after_days: int  # E6: 0 = no extension needed
    extension_reminder_days: int  # E6: reminder lead time before the threshold
    after_extension_missing: str  # E6
    treat_first_working_days: int  # E7: 0 = no treat-first path
    unfiled_self_share_percent: int  # P3
    unfiled_pharmacy_reimbursed: bool  # P3
    temporary_ratio_reduction_points: Mapping[Kind, int]  # P4
    in_scope_ratio_percent: Mapping[str, int]  # P4 (Shenzhen)
    manual_temporary_reduction_percent: int  # P4
    reimbursement_months: int  # P6
    reimbursement_from: str  # P6
    reimbursement_reminder_days: int  # P6
    documents_reimbursement: tuple[Requirement, ...]  # P5
    expiry_reminder_days: tuple[int, ...]  # V1/V3: reminders before a validity ends
    window_reminder_days: int  # E3/E5/E7: a reminder before a filing window closes; 0 = none
    rules: Mapping[str, str] = field(repr=False)
    """key -> the rule id config.toml cites for it, for explanations and audit."""
    filled_from_current: tuple[str, ...] = ()
    """Keys a stored snapshot lacked (added to the schema later), taken from today's default."""

    def rule(self, key: str) -> str:
        return self.rules[key]

    def to_document(self) -> dict[str, Any]:
        """The resolved policy as plain data, in the same `{value, rule}` shape as config.toml."""
        out: dict[str, Any] = {"version": self.version, "title": self.title}
        for key in _FIELDS:
            out[key] = {"value": _plain(self._value(key)), "rule": self.rules[key]}
        return out

    def content_hash(self) -> str:
        blob = json.dumps(self.to_document(), sort_keys=True, ensure_ascii=False)
        return hashlib.sha256(blob.encode()).hexdigest()

    def _value(self, key: str) -> Any:
        if key.startswith("documents_K"):
            return self.documents_by_kind[Kind(key.removeprefix("documents_"))]
        return getattr(self, key)


def _plain(v: Any) -> Any:
    if isinstance(v, Mapping):
        return {str(k): v[k] for k in sorted(v)}
    if isinstance(v, frozenset):
        return sorted(str(x) for x in v)
    if isinstance(v, tuple):
        return [_plain(x) for x in v]
    return v


def parse_policies(raw: Mapping[str, Any]) -> dict[str, Policy]:
    """Parse `[policy.*]` tables: `national` is complete; each region overrides it. Refused with
    every problem found in any of them, each naming its key."""
    problems: list[tuple[str, str]] = []
    if not isinstance(raw, Mapping):
        raise PolicyConfigError("policy", "must be a table of policies")
    if NATIONAL not in raw:
        problems.append(("policy.national", "the national default policy is missing"))
    base = _values(NATIONAL, raw[NATIONAL], None, problems) if NATIONAL in raw else {}
    regions: dict[str, dict[str, tuple[Any, str]]] = {}
    for region, table in raw.items():
        if region == NATIONAL:
            continue
        if not _REGION.match(region):
            problems.append((f"policy.{region}", "a region must be a six-digit GB/T 2260 code"))
            continue
        regions[region] = _values(region, table, base, problems)
    if problems:
        raise PolicyConfigError.of(problems)
    return {
        NATIONAL: _build(NATIONAL, base),
        **{region: _build(region, values) for region, values in regions.items()},
    }


def _parse_table(
    region: str, table: Any, base: dict[str, tuple[Any, str]] | None
) -> dict[str, tuple[Any, str]]:
    problems: list[tuple[str, str]] = []
    values = _values(region, table, base, problems)
    if problems:
        raise PolicyConfigError.of(problems)
    return values


def _values(
    region: str,
    table: Any,
    base: dict[str, tuple[Any, str]] | None,
    problems: list[tuple[str, str]],
) -> dict[str, tuple[Any, str]]:
    """A policy table's values (key -> (value, rule)) over `base`; with no base, it must set
    every key. Each problem is added to `problems`, naming its key."""
    where = f"policy.{region}"
    if not isinstance(table, Mapping):
        problems.append((where, "must be a table"))
        return {}
    values: dict[str, tuple[Any, str]] = dict(base or {})
    for key in ("version", "title"):
        if not isinstance(table.get(key), str) or not table[key]:
            problems.append((f"{where}.{key}", "is required and must be a non-empty string"))
        else:
            values[key] = (table[key], "")
    for key, entry in table.items():
        if key in _META:
            continue
        if key not in _FIELDS:
            problems.append((f"{where}.{key}", "unknown key"))
            continue
        parser, allowed_rules = _FIELDS[key]
        if not isinstance(entry, Mapping) or set(entry) != {"value", "rule"}:
            problems.append(
                (
                    f"{where}.{key}",
                    'must be written as { value = ..., rule = "ID" } naming its rule',
                )
            )
            continue
        rule = entry["rule"]
        if not isinstance(rule, str) or not _RULE_ID.match(rule) or rule not in allowed_rules:
            problems.append(
                (
                    f"{where}.{key}.rule",
                    f"must name the rule it implements, one of {sorted(allowed_rules)}",
                )
            )
        try:
            values[key] = (parser(entry["value"]), rule)
        except ValueError as exc:
            problems.append((f"{where}.{key}", str(exc)))
    if base is None:
        problems.extend(
            (f"{where}.{key}", "the national default must set it")
            for key in sorted(set(_FIELDS) - set(values))
            if key not in table  # a key set wrongly is already named
        )
    return values


def _build(region: str, values: Mapping[str, tuple[Any, str]]) -> Policy:
    v = {k: val for k, (val, _) in values.items()}
    rules = MappingProxyType({k: r for k, (_, r) in values.items() if k in _FIELDS})
    return Policy(
        region=region,
        version=v["version"],
        title=v["title"],
        scope=v["scope"],
        kinds=v["kinds"],
        posted_worker_insurance=v["posted_worker_insurance"],
        instant_channels=v["instant_channels"],
        one_effective_per_scope=v["one_effective_per_scope"],
        long_term_validity_months=v["long_term_validity_months"],
        long_term_cancel_lock_months=v["long_term_cancel_lock_months"],
        temporary_validity_months=v["temporary_validity_months"],
        temporary_cancel_lock_months=v["temporary_cancel_lock_months"],
        commitment_allowed=v["commitment_allowed"],
        replace_card_prefixes=v["replace_card_prefixes"],
        check_card_settlement_on_first_filing=v["check_card_settlement_on_first_filing"],
        online_consent_required=v["online_consent_required"],
        documents_all=v["documents_all"],
        documents_student=v["documents_student"],
        documents_flexible_employment=v["documents_flexible_employment"],
        documents_by_kind=MappingProxyType({k: v[f"documents_{k.value}"] for k in Kind}),
        **{key: v[key] for key in _HOSPITAL_SIDE},
        rules=rules,
    )


def policy_from_document(
    region: str, doc: Mapping[str, Any], current_national: Policy | None = None
) -> Policy:
    """Rebuild a pinned policy from its stored snapshot (the output of `Policy.to_document`).

    A snapshot written before a policy key existed lacks that key: the rule it configures did
    not exist when the filing was made. Such keys take the current national default's value
    and are listed in `filled_from_current`, so the gap is visible rather than fatal."""
    stored = {k: v for k, v in doc.items() if k in _FIELDS or k in _META}
    missing = sorted(set(_FIELDS) - set(stored))
    if missing and current_national is None:
        raise PolicyConfigError(f"policy.{region}.{missing[0]}", "missing from the stored snapshot")
    base = None
    if missing and current_national is not None:
        base = _parse_table(NATIONAL, current_national.to_document(), None)
    policy = _build(region, _parse_table(region, stored, base))
    return replace(policy, filled_from_current=tuple(missing))


def policy_for(region: str, policies: Mapping[str, Policy]) -> Policy:
    """The policy of an insured region: the region itself, its city, its province, else national."""
    for candidate in (region, region[:4] + "00", region[:2] + "0000"):
        if candidate in policies:
            return policies[candidate]
    return policies[NATIONAL]

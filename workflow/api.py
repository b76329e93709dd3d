"""The Python API a back-office imports: open once, then one call per command and query.

from workflow import FilingEngine, Actor
engine = FilingEngine.open("config.toml")
filing = engine.create(...)
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Iterable
from dataclasses import replace
from datetime import date, datetime
from enum import Enum, StrEnum
from typing import Any, TypeVar

import sqlalchemy as sa
import structlog

from states.admissions import Admission, Care, Visit
from states.coverage import Coverage
from states.errors import InvalidInput, PolicyConfigError
from states.filing import Filing
from states.lifecycle import Application
from states.periods import WorkCalendar
from states.policy import Policy
from states.reasons import INSURANCE_STOPPED
from states.vocabulary import Document, Institution, InsuranceType, Kind
from workflow import audit, outbox, sweep
from workflow.calendar import build_calendar
from workflow.clock import system_clock
from workflow.config import Settings, load_settings
from workflow.context import Seal
from workflow.db import create_engine, upgrade
from workflow.hospital import Claim
from workflow.logs import configure_logging
from workflow.outbox import Reminder
from workflow.service import Actor, Clock, Deadline, FilingService, Request
from workflow.store import Store
from workflow.sweep import Batch, Recomputed

_E = TypeVar("_E", bound=StrEnum)


class FilingEngine:
    """The engine, embedded. Thread-safe: each call is its own unit of work."""

    def __init__(self, service: FilingService) -> None:
        self._service = service

    @classmethod
    def open(
        cls,
        config: str | os.PathLike[str] | None = None,
        *,
        database_url: str | None = None,
        clock: Clock = system_clock,
        settings: Settings | None = None,
        migrate: bool = True,
        read_only: bool = False,
    ) -> FilingEngine:
        """Open with a config path (default: FILING_CONFIG or ./config.toml) and optionally a
        database URL overriding it; `clock` returns the current UTC-aware instant.

        `read_only` opens for queries and verification only (auditors): no migration, no
        policy pinning, and every command refuses. A PostgreSQL database is not opened with the
        development person key unless FILING_ALLOW_DEVELOPMENT_KEY=1."""
        if settings is None:
            settings = load_settings(config, database_url=database_url)
        elif database_url is not None:
            settings = replace(settings, database_url=database_url)
        if not structlog.is_configured():
            # An application that configured structlog keeps its own setup; otherwise log as
            # config.toml says (JSON to stderr off a terminal), never onto stdout.
            configure_logging(settings.log_format, settings.log_level, stdlib=False)
        if (
            settings.person_key_is_development_default
            and settings.database_url.startswith("postgresql")
            and os.environ.get("FILING_ALLOW_DEVELOPMENT_KEY") != "1"
        ):
            raise PolicyConfigError(
                "FILING_PERSON_KEY",
                "a shared database needs a secret person key; set FILING_PERSON_KEY "
                "(or FILING_ALLOW_DEVELOPMENT_KEY=1 for a throwaway database)",
            )
        engine = create_engine(settings)
        created = False
        if migrate and not read_only:
            created = not _has_schema(engine)
            upgrade(engine)
        calendar = build_calendar(settings.calendar_years)
        service = FilingService(engine, settings, calendar, clock, read_only=read_only)
        if not read_only:
            service.pin_policies()
        if settings.person_key_is_development_default and created:
            # Once per database, when it is made: every later command on it would say the same
            # (and a reader of the README would see it after every command).
            structlog.get_logger("workflow").warning(
                "person_key.development_default",
                hint="set FILING_PERSON_KEY: this database's person lookups use a development "
                "key (said once, when the database is created)",
            )
        return cls(service)

    @property
    def settings(self) -> Settings:
        return self._service.settings

    @property
    def calendar(self) -> WorkCalendar:
        """The working-day calendar in force: chinese-calendar plus the years in config (C6)."""
        return self._service.calendar

    @property
    def clock(self) -> Clock:
        return self._service.clock

    @property
    def store(self) -> Store:
        """The unit-of-work store (the scheduler's outbox and heartbeats use it)."""
        return self._service.store

    @property
    def sql_engine(self) -> sa.Engine:
        return self._service.engine

    def close(self) -> None:
        self._service.engine.dispose()

    def __enter__(self) -> FilingEngine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- commands ----------------------------------------------------------------------------

    def create(
        self,
        *,
        id_number: str,
        kind: Kind | str,
        insurance_type: InsuranceType | str,
        insured_region: str,
        treatment_region: str,
        actor: Actor,
        start_date: date | None = None,
        documents: Iterable[Document | str] = (),
        by_commitment: bool = False,
        student: bool = False,
        flexible_employment: bool = False,
        consent_given: bool = False,
        card_number: str | None = None,
        card_settlement_enabled: bool | None = None,
        admission_id: str | None = None,
        request_id: str | None = None,
        correlation_id: str | None = None,
        seal: Seal | None = None,
    ) -> Filing:
        """Draft a filing. `card_number` is judged (M9) and never stored.

        With `admission_id` it is a retro filing (补办, E2) for an admission already begun: its
        `start_date` (default: the admission date) is on or before the admission, and its submit
        is refused once the window closed (E2 settlement, E3, E5, E7), which routes the admission
        to manual reimbursement."""
        app = _application(
            kind, insurance_type, insured_region, treatment_region, actor, start_date, documents,
            by_commitment, student, flexible_employment, consent_given, card_number,
            card_settlement_enabled,
        )  # fmt: skip
        if admission_id is not None:
            if start_date is None:
                start_date = self._service.get_admission(admission_id).admitted_on
            app = replace(app, admission_id=admission_id, start_date=start_date)
        return self._service.create(
            app, id_number, actor, Request.new(request_id, correlation_id, seal)
        )

    def submit(self, filing_id: str, actor: Actor, **kw: Any) -> Filing:
        """Submit a draft: under review, or effective at once where the policy says so (L1)."""
        return self._fire(filing_id, "submit", actor, **kw)

    def stamp(self, filing_id: str, actor: Actor, **kw: Any) -> Filing:
        """E4: the hospital's medical (or insurance) office reviews and stamps a referral its
        clinical department applied for; only then can the hospital report (submit) it."""
        return self._fire(filing_id, "stamp", actor, **kw)

    def approve(self, filing_id: str, actor: Actor, **kw: Any) -> Filing:
        return self._fire(filing_id, "approve", actor, **kw)

    def reject(
        self, filing_id: str, actor: Actor, *, reason: str, note: str | None = None, **kw: Any
    ) -> Filing:
        """Reject under review; `reason` is a code of config.toml's `[reasons]` such as
        `missing_documents`, `note` optional words (refused if they hold personal data)."""
        return self._fire(filing_id, "reject", actor, reason=reason, note=note, **kw)

    def withdraw(self, filing_id: str, actor: Actor, **kw: Any) -> Filing:
        return self._fire(filing_id, "withdraw", actor, **kw)

    def cancel(
        self,
        filing_id: str,
        actor: Actor,
        *,
        reason: str | None = None,
        note: str | None = None,
        **kw: Any,
    ) -> Filing:
        """Cancel an effective filing, refused inside the lock (V2, V4); `reason` and `note`
        as for `reject`."""
        return self._fire(filing_id, "cancel", actor, reason=reason, note=note, **kw)

    def supply_documents(
        self, filing_id: str, actor: Actor, documents: Iterable[Document | str], **kw: Any
    ) -> Filing:
        """V6: complete a commitment filing; two-way entitlement starts once nothing is missing."""
        supplied = frozenset(_enum(Document, d, "documents") for d in documents)
        return self._fire(filing_id, "supply_documents", actor, supplied=supplied, **kw)

    def stop_insurance(self, filing_id: str, actor: Actor, **kw: Any) -> Filing:
        """停保: the person's insurance stopped; the filing lapses."""
        return self._fire(filing_id, "stop_insurance", actor, reason=INSURANCE_STOPPED, **kw)

    def expire(self, filing_id: str, actor: Actor, **kw: Any) -> Filing:
        """Expire a filing whose validity is over (normally fired by the scheduler)."""
        return self._fire(filing_id, "expire", actor, **kw)

    def change(
        self,
        filing_id: str,
        *,
        id_number: str,
        kind: Kind | str,
        insurance_type: InsuranceType | str,
        insured_region: str,
        treatment_region: str,
        actor: Actor,
        start_date: date | None = None,
        documents: Iterable[Document | str] = (),
        by_commitment: bool = False,
        student: bool = False,
        flexible_employment: bool = False,
        consent_given: bool = False,
        card_number: str | None = None,
        card_settlement_enabled: bool | None = None,
        expected_version: int | None = None,
        request_id: str | None = None,
        correlation_id: str | None = None,
        seal: Seal | None = None,
    ) -> tuple[Filing, Filing]:
        """L5: file a replacement for `filing_id`, which is cancelled when the replacement takes
        effect (at once where effect is instant, else on approval). Returns (old, new)."""
        app = _application(
            kind, insurance_type, insured_region, treatment_region, actor, start_date, documents,
            by_commitment, student, flexible_employment, consent_given, card_number,
            card_settlement_enabled,
        )  # fmt: skip
        return self._service.change(
            filing_id,
            app,
            id_number,
            actor,
            Request.new(request_id, correlation_id, seal),
            expected_version=expected_version,
        )

    def stop_insurance_for_person(
        self,
        id_number: str,
        insurance_type: InsuranceType | str,
        actor: Actor,
        *,
        regions: tuple[str, ...] = (),
        request_id: str | None = None,
        correlation_id: str | None = None,
    ) -> list[Filing]:
        """停保: every open filing (draft, under review, effective) of the person under this
        insurance type lapses, in one transaction; with `regions`, only those insured in them
        (an agency's). Returns the lapsed filings."""
        return self._service.stop_insurance_for_person(
            id_number,
            _enum(InsuranceType, insurance_type, "insurance_type"),
            actor,
            Request.new(request_id, correlation_id),
            regions,
        )

    def _fire(
        self,
        filing_id: str,
        event: str,
        actor: Actor,
        *,
        reason: str | None = None,
        note: str | None = None,
        supplied: frozenset[Document] = frozenset(),
        expected_version: int | None = None,
        request_id: str | None = None,
        correlation_id: str | None = None,
    ) -> Filing:
        return self._service.fire(
            filing_id,
            event,
            actor,
            Request.new(request_id, correlation_id),
            reason=reason,
            note=note,
            supplied=supplied,
            expected_version=expected_version,
        )

    # -- the hospital side (§5, §6) ------------------------------------------------------------

    def admit(
        self,
        *,
        id_number: str,
        insurance_type: InsuranceType | str,
        insured_region: str,
        treatment_region: str,
        hospital_code: str,
        admitted_on: date,
        actor: Actor,
        institution: Institution | str = Institution.HOSPITAL,
        networked: bool = True,
        care: Care | str = Care.INPATIENT,
        emergency: bool = False,
        referral: bool = False,
        transfer_first: bool = False,
        chronic_enabled: bool = False,
        chronic_declared: bool = False,
        request_id: str | None = None,
        correlation_id: str | None = None,
        seal: Seal | None = None,
    ) -> Admission:
        """Record an admission (or visit, or pharmacy purchase) reported by a hospital. An
        emergency without a covering filing is deemed filed (E1): see `deemed_filing_id`."""
        visit = Visit(
            insurance_type=_enum(InsuranceType, insurance_type, "insurance_type"),
            insured_region=insured_region,
            treatment_region=treatment_region,
            hospital_code=hospital_code,
            admitted_on=admitted_on,
            institution=_enum(Institution, institution, "institution"),
            networked=networked,
            care=_enum(Care, care, "care"),
            emergency=emergency,
            referral=referral,
            transfer_first=transfer_first,
            chronic_enabled=chronic_enabled,
            chronic_declared=chronic_declared,
        )
        return self._service.admit(
            visit, id_number, actor, Request.new(request_id, correlation_id, seal)
        )

    def discharge(
        self,
        admission_id: str,
        discharged_on: date,
        actor: Actor,
        *,
        system_fault: bool = False,
        expected_version: int | None = None,
        request_id: str | None = None,
        correlation_id: str | None = None,
    ) -> tuple[Admission, Coverage]:
        """出院结算: settle directly where covered, else route to manual reimbursement and open
        a claim with its deadline (P5, P6). Returns the admission and the decision."""
        return self._service.discharge(
            admission_id,
            discharged_on,
            actor,
            Request.new(request_id, correlation_id),
            system_fault=system_fault,
            expected_version=expected_version,
        )

    def request_extension(
        self,
        admission_id: str,
        actor: Actor,
        documents: Iterable[Document | str],
        **kw: Any,
    ) -> Admission:
        """E6: ask to extend a referred stay past the threshold, with the treating hospital's
        documents (continued_stay_certificate)."""
        supplied = frozenset(_enum(Document, d, "documents") for d in documents)
        return self._extension(admission_id, "request_extension", actor, supplied, **kw)

    def grant_extension(self, admission_id: str, actor: Actor, **kw: Any) -> Admission:
        return self._extension(admission_id, "grant_extension", actor, frozenset(), **kw)

    def refuse_extension(self, admission_id: str, actor: Actor, **kw: Any) -> Admission:
        return self._extension(admission_id, "refuse_extension", actor, frozenset(), **kw)

    def _extension(
        self,
        admission_id: str,
        event: str,
        actor: Actor,
        supplied: frozenset[Document],
        *,
        expected_version: int | None = None,
        request_id: str | None = None,
        correlation_id: str | None = None,
    ) -> Admission:
        return self._service.extension(
            admission_id,
            event,
            actor,
            Request.new(request_id, correlation_id),
            supplied,
            expected_version=expected_version,
        )

    def coverage(
        self,
        admission_id: str,
        actor: Actor,
        *,
        day: date | None = None,
        request_id: str | None = None,
        correlation_id: str | None = None,
    ) -> Coverage:
        """The coverage decision for a day of an admission (default: its first day): the filing
        that covers it (or the deemed one, or none), direct settlement, ratio, pharmacy rule,
        and the manual reimbursement claim's deadline and documents, each with its rule. The
        decision is recorded in the audit trail."""
        return self._service.coverage(
            admission_id, day, actor, Request.new(request_id, correlation_id)
        )

    def file_claim(
        self,
        claim_id: str,
        actor: Actor,
        documents: Iterable[Document | str],
        *,
        expected_version: int | None = None,
        request_id: str | None = None,
        correlation_id: str | None = None,
    ) -> Claim:
        """P5, P6: file a manual reimbursement claim with its documents before its deadline."""
        supplied = frozenset(_enum(Document, d, "documents") for d in documents)
        return self._service.file_claim(
            claim_id,
            supplied,
            actor,
            Request.new(request_id, correlation_id),
            expected_version=expected_version,
        )

    def fire_deadline(
        self,
        subject_id: str,
        kind: str,
        due_at: datetime,
        *,
        request_id: str | None = None,
    ) -> str | None:
        """Apply one due deadline row (the scheduler calls this for every due row): "fired",
        "retired" when its subject moved on, or None if it was already settled."""
        return self._service.fire_deadline(subject_id, kind, due_at, Request.new(request_id))

    def fire_due(self, *, limit: int = 500, request_id: str | None = None) -> Batch:
        """Apply up to `limit` due deadline rows, earliest first, in one transaction: what the
        daemon's sweep calls until nothing is due. Expiries, closed windows, extension and claim
        deadlines are guarded transitions; a reminder that fires is written to the outbox once;
        a row that no longer applies is marked retired and recorded as refused."""
        return sweep.fire_due(self._service, Request.new(request_id), limit=limit)

    def recompute_provisional(self, *, request_id: str | None = None) -> list[Recomputed]:
        """C6: recount provisional deadlines whose year the calendar now knows; each change is
        audited (`recompute_deadline`)."""
        return sweep.recompute_provisional(self._service, Request.new(request_id))

    def vet_reminders(self, claimed: list[Reminder], worker: str) -> list[Reminder]:
        """Of reminders a deliverer claimed, those still worth sending; the rest are abandoned
        (their subject moved on, or what they warned of passed) and recorded."""
        return sweep.vet_reminders(self._service, Request.new(), worker, claimed)

    def backfill_reminders(self) -> int:
        """Expiry reminders, still ahead, for effective filings that have none."""
        return sweep.backfill_reminders(self._service, Request.new())

    def reminders(self, subject_id: str | None = None) -> list[Reminder]:
        """The outbox: every reminder written, delivered or not, with its attempts and error."""
        return outbox.reminders(self._service.store, subject_id)

    def get_admission(self, admission_id: str) -> Admission:
        return self._service.get_admission(admission_id)

    def get_claim(self, claim_id: str) -> Claim:
        return self._service.get_claim(claim_id)

    # -- queries -----------------------------------------------------------------------------

    def get(self, filing_id: str) -> Filing:
        return self._service.get(filing_id)

    def list_for_person(self, id_number: str) -> list[Filing]:
        """Every filing of a person (L3), oldest first."""
        return self._service.for_person(id_number)

    def effective_filings(self, id_number: str) -> list[Filing]:
        """有效备案记录 (L3): effective and inside validity today."""
        return self._service.for_person(id_number, effective_only=True)

    def history(self, filing_id: str) -> list[dict[str, Any]]:
        """Every attempt on the filing, applied or denied, with its rule and inputs."""
        return self._service.history(filing_id)

    def deadlines(self, filing_id: str) -> list[Deadline]:
        return self._service.deadlines(filing_id)

    def policy(self, filing_id: str) -> Policy:
        """The policy version the filing is pinned to."""
        return self._service.policy_of(self._service.get(filing_id))

    def checkpoint(self) -> audit.Checkpoint:
        """Count and head hash of the audit trail: keep it outside the database."""
        return self._service.checkpoint()

    def verify(
        self,
        against: audit.Checkpoint | None = None,
        *,
        progress: Callable[[int], None] | None = None,
    ) -> audit.Verification:
        """Walk the whole audit chain; with a checkpoint, also detect truncation and rewrites.
        `progress` is told the number of records walked, every 10,000 and at the end."""
        return self._service.verify(against, progress)


def _has_schema(engine: sa.Engine) -> bool:
    """Whether the database has been migrated before (Alembic's version table is there)."""
    with engine.connect().execution_options(sqlite_begin="DEFERRED") as conn:
        return sa.inspect(conn).has_table("alembic_version")


def _application(
    kind: Kind | str,
    insurance_type: InsuranceType | str,
    insured_region: str,
    treatment_region: str,
    actor: Actor,
    start_date: date | None,
    documents: Iterable[Document | str],
    by_commitment: bool,
    student: bool,
    flexible_employment: bool,
    consent_given: bool,
    card_number: str | None,
    card_settlement_enabled: bool | None,
) -> Application:
    docs = frozenset(_enum(Document, d, "documents") for d in documents)
    return Application(
        kind=_enum(Kind, kind, "kind"),
        insurance_type=_enum(InsuranceType, insurance_type, "insurance_type"),
        insured_region=insured_region,
        treatment_region=treatment_region,
        channel=actor.channel,
        start_date=start_date,
        documents=docs,
        by_commitment=by_commitment,
        student=student,
        flexible_employment=flexible_employment,
        consent_given=consent_given,
        card_number=card_number,
        card_settlement_enabled=card_settlement_enabled,
    )


def _enum(cls: type[_E], value: Any, field: str, rule: str | None = None) -> _E:
    """A word of the vocabulary. An unknown word is a malformed request, not a rule's refusal
    (no rule id, so not recorded)."""
    try:
        return cls(value)
    except ValueError:
        raise InvalidInput(field, rule, f"must be one of {', '.join(cls)}") from None


def plain(value: Any) -> Any:
    """A result as JSON-ready data (for the HTTP API, the CLI, an embedding back-office):
    dataclasses to dicts, enums to their values, sets to sorted lists. The person's lookup
    hash is dropped: with a known key it could be matched against every possible ID number,
    and the masked form is there to show."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {
            f.name: plain(getattr(value, f.name))
            for f in dataclasses.fields(value)
            if f.name not in ("person_key", "extra")
        }
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, frozenset | set):
        return sorted(plain(v) for v in value)
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    return value

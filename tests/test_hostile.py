"""Hostile input stops nothing: a deadline row no reader takes is set aside alone while every
other row fires; instants of any year round-trip; dates a caller gives are range-checked against
the clock ([input]); far instants, huge cursors and control characters are 422s (exit 2 on the
command line) naming the field, never a 500 or a traceback, on SQLite and PostgreSQL."""

from __future__ import annotations

import base64
import json
import tomllib
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, time, timedelta, timezone
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given
from hypothesis import settings as examples
from hypothesis import strategies as st
from typer.testing import CliRunner

from jobs.cli import app as cli_app
from jobs.daemon import status
from states.bounds import DateBounds
from states.errors import FilingError, InvalidInput, PolicyConfigError
from states.periods import (
    PeriodOutOfRange,
    act_deadline,
    add_months,
    calendar_from,
    end_of_local_day,
    start_of_local_day,
    validity_end,
    working_days_deadline,
)
from tests.conftest import ROOT, Clock, draft, effective
from tests.http_world import (
    B_ID,
    C_ID,
    H1,
    JIANGMEN,
    Http,
    Keys,
    admission_body,
    audit_of,
    issue_keys,
    jiangmen_body,
    k1_body,
    problem,
    roomy,
)
from workflow import Actor, Channel, FilingEngine, Role
from workflow.config import Settings, settings_from_mapping
from workflow.http import create_app
from workflow.tables import deadline_t


def _raw_deadline(
    engine: FilingEngine, subject: str, kind: str, due_sql: str = ":due", **params: Any
) -> None:
    """A deadline row written by hand, as an old bug or an operator's SQL would leave it."""
    with engine.store.write() as tx:
        tx.run(
            "INSERT INTO deadline_record (subject_id, kind, due_at, provisional, rule_id, "
            f"created_at, attempts) VALUES (:s, :k, {due_sql}, :p, 'E3', :at, 0)",
            {"s": subject, "k": kind, "p": False, "at": engine.clock(), **params},
        )


@pytest.mark.parametrize("year", [1, 999, 1000, 2026, 9999])
def test_an_instant_of_any_year_reads_back_as_written_by_the_engine_and_by_sqlalchemy(
    any_engine: FilingEngine, year: int
) -> None:
    at = datetime(year, 1, 11, 15, 54, 17, 250, tzinfo=UTC)

    _raw_deadline(any_engine, "y", "expire", due=at)

    with any_engine.store.read() as tx:
        assert tx.scalar("SELECT COUNT(*) FROM deadline_record WHERE due_at = :d", {"d": at}) == 1
        assert tx.one("SELECT due_at FROM deadline_record WHERE subject_id = 'y'") == {"due_at": at}
    with any_engine.sql_engine.connect() as conn:
        stored = conn.execute(sa.select(deadline_t.c.due_at)).scalar_one()
    assert stored == at


# -- A. one bad row stops no timer -------------------------------------------------------------


runner = CliRunner()


# A due instant no reader takes, as each database keeps it: on SQLite the text strftime('%Y')
# gave for year 1 (no zero padding), on PostgreSQL a year before year 1.
UNREADABLE = {
    "sqlite": "'1-01-11 15:54:17.000000'",
    "postgresql": "'0044-03-15 12:00:00+00 BC'",
}


def _pending(engine: FilingEngine) -> dict[tuple[str, str], tuple[int, str | None]]:
    """(subject, kind) -> (attempts, last_error) of every row not yet fired."""
    with engine.store.read() as tx:
        rows = tx.all(
            "SELECT subject_id, kind, attempts, last_error FROM deadline_record "
            "WHERE fired_at IS NULL"
        )
    return {(r["subject_id"], r["kind"]): (r["attempts"], r["last_error"]) for r in rows}


@pytest.fixture
def with_bad_rows(any_engine: FilingEngine, clock: Clock) -> str:
    """A filing whose expiry and both reminders are due, beside two bad rows written by hand:
    one whose instant cannot be read, one of a kind nobody knows. Returns the filing's id."""
    filing = effective(any_engine)
    expire_at = next(d.due_at for d in any_engine.deadlines(filing.id) if d.kind == "expire")
    clock.now = expire_at + timedelta(days=1)
    _raw_deadline(
        any_engine, "adm0unreadable", "filing_window", UNREADABLE[any_engine.store.dialect]
    )
    _raw_deadline(any_engine, "adm0unknown", "no_such_kind", due=expire_at)
    return filing.id


def test_a_deadline_row_that_cannot_be_read_or_applied_is_set_aside_and_every_other_fires(
    any_engine: FilingEngine, with_bad_rows: str
) -> None:
    batch = any_engine.fire_due(limit=50)

    outcomes = sorted((a.subject_id, a.kind, a.outcome) for a in batch.applied)
    assert outcomes == sorted([
        (with_bad_rows, "expire", "fired"),
        (with_bad_rows, "expiry_reminder", "retired"),  # late: the expiry is past
        (with_bad_rows, "expiry_reminder", "retired"),
        ("adm0unknown", "no_such_kind", "failed"),
        ("adm0unreadable", "filing_window", "failed"),
    ])  # fmt: skip
    assert any_engine.get(with_bad_rows).state.value == "expired"
    assert _pending(any_engine) == {
        ("adm0unknown", "no_such_kind"): (1, "InvalidInput"),
        ("adm0unreadable", "filing_window"): (1, "unreadable stored value"),
    }
    assert any_engine.fire_due(limit=50).claimed == 0  # set aside: they wait their backoff
    assert any_engine.verify().ok


def test_daemon_status_shows_the_rows_set_aside_with_their_errors(
    any_engine: FilingEngine, with_bad_rows: str, clock: Clock
) -> None:
    before = status(any_engine)  # not yet swept: the unreadable row is shown as stored
    any_engine.fire_due(limit=50)

    shown = status(any_engine)

    assert before["due_backlog"] == 5 and before["set_aside"] == []
    assert (shown["due_backlog"], shown["lag_seconds"], shown["failing_deadlines"]) == (0, 0.0, 2)
    retry_at = (clock.now + timedelta(seconds=30)).isoformat()
    expire_at = (clock.now - timedelta(days=1)).isoformat()
    by_subject = {r["subject_id"]: r for r in shown["set_aside"]}
    assert by_subject["adm0unknown"] == {
        "subject_id": "adm0unknown", "kind": "no_such_kind", "due_at": expire_at,
        "attempts": 1, "error": "InvalidInput", "retry_at": retry_at,
    }  # fmt: skip
    unreadable = by_subject["adm0unreadable"]
    assert (unreadable["kind"], unreadable["error"]) == ("filing_window", "unreadable stored value")
    assert unreadable["due_at"].startswith(("1-01-11 15:54:17", "0044-03-15"))  # as stored


def test_filing_daemon_status_prints_a_bad_row_instead_of_a_traceback(
    any_engine: FilingEngine, with_bad_rows: str, db_url: str
) -> None:
    result = runner.invoke(
        cli_app,
        ["daemon", "status", "--config", str(ROOT / "config.toml"), "--database-url", db_url],
        env={"FILING_PERSON_KEY": "test-person-key"},
    )

    assert result.exit_code == 0, result.output
    shown = json.loads(result.stdout)
    assert shown["lag_seconds"] is None  # the oldest due instant cannot be read
    assert shown["due_backlog"] == 5


def test_a_deadline_row_that_cannot_be_read_leaves_the_recount_of_the_others_running(
    any_engine: FilingEngine, clock: Clock
) -> None:
    _raw_deadline(
        any_engine, "adm0unreadable", "filing_window", UNREADABLE[any_engine.store.dialect]
    )
    with any_engine.store.write() as tx:
        tx.run("UPDATE deadline_record SET provisional = :p", {"p": True})

    assert any_engine.recompute_provisional() == []  # read past it, nothing to recount


@pytest.fixture
def world(
    open_engine: Callable[..., FilingEngine], db_url: str, settings: Settings
) -> Iterator[tuple[FilingEngine, Http, Keys]]:
    engine = open_engine(db_url, settings=roomy(settings))
    keys = issue_keys(engine)
    with TestClient(create_app(engine)) as client:
        yield engine, Http(client), keys


def _written(engine: FilingEngine) -> tuple[int, ...]:
    """Rows a refused request must not add."""
    with engine.store.read() as tx:
        return tuple(
            int(tx.scalar(f"SELECT COUNT(*) FROM {table}"))
            for table in ("filing_record", "admission_record", "deadline_record", "audit_record")
        )


def _with_its_denied_record(
    engine: FilingEngine, r: Any, before: tuple[int, ...], rule: str = "R2"
) -> tuple[int, ...]:
    """A refusal by a rule writes one thing: its denied record, under the request's id."""
    [record] = audit_of(engine, r.headers["x-request-id"])
    assert (record["outcome"], record["rule_id"]) == ("denied", rule)
    return (*before[:3], before[3] + 1)


def test_fire_due_and_recompute_answer_200_beside_a_row_that_cannot_be_read(
    world: tuple[FilingEngine, Http, Keys],
) -> None:
    engine, http, k = world
    _raw_deadline(engine, "adm0unreadable", "filing_window", UNREADABLE[engine.store.dialect])

    swept = http.ok("POST", "/deadlines/fire-due", k.admin, json={"limit": 10})
    recounted = http.ok("POST", "/deadlines/recompute", k.admin)

    assert swept["result"]["applied"] == [
        {"subject_id": "adm0unreadable", "kind": "filing_window", "due_at": None,
         "outcome": "failed"},
    ]  # fmt: skip
    assert recounted == {"result": []}


# -- dates a caller gives are range-checked against the clock ([input]) ------------------------


TODAY = date(2026, 3, 2)  # the clock's local date in these tests


HOSPITAL = Actor("his-1", Role.HOSPITAL, Channel.HOSPITAL_SYSTEM, organisation="H1")


@pytest.mark.parametrize(
    ("start_date", "kind", "rule"),
    [("9999-12-31", "K2", "R2"), ("2027-03-04", "K2", "R2"), ("9999-12-31", "K5", "R2")],
)
def test_a_start_date_past_the_input_bound_is_refused_at_create_naming_its_rule(
    world: tuple[FilingEngine, Http, Keys], start_date: str, kind: str, rule: str
) -> None:
    engine, http, k = world
    before = _written(engine)

    r = http.post("/filings", k.c, json=jiangmen_body(C_ID, kind, start_date=start_date))

    got = problem(r, 422)
    assert (got["field"], got["rule_id"]) == ("start_date", rule)
    assert _written(engine) == _with_its_denied_record(engine, r, before)
    assert "2027-03-03" in got["detail"] and "input.ahead_days" in got["detail"]


def test_a_start_date_at_the_input_bound_is_accepted(
    world: tuple[FilingEngine, Http, Keys],
) -> None:
    _, http, k = world

    r = http.post("/filings", k.c, json=jiangmen_body(C_ID, start_date="2027-03-03"))

    assert r.status_code == 201, r.text


@pytest.mark.parametrize(
    ("admitted_on", "status"),
    [(date(1, 1, 1), 422), (TODAY - timedelta(days=731), 422), (TODAY - timedelta(days=730), 201)],
)
def test_an_admission_date_past_the_input_bound_is_refused_naming_r2(
    world: tuple[FilingEngine, Http, Keys], admitted_on: date, status: int
) -> None:
    engine, http, k = world
    before = _written(engine)

    r = http.post(
        "/admissions", k.h1, json=admission_body(B_ID, H1, JIANGMEN, admitted_on, emergency=True)
    )

    assert r.status_code == status, r.text
    if status == 422:
        got = problem(r, 422)
        assert (got["field"], got["rule_id"]) == ("admitted_on", "R2")
        assert _written(engine) == _with_its_denied_record(engine, r, before)


def test_a_discharge_date_past_the_input_bound_is_refused_naming_r2(
    world: tuple[FilingEngine, Http, Keys], clock: Clock
) -> None:
    engine, http, k = world
    adm = http.ok("POST", "/admissions", k.h1, json=admission_body(B_ID, H1, JIANGMEN, TODAY))
    clock.advance(days=800)
    before = _written(engine)

    r = http.post(
        f"/admissions/{adm['id']}/discharge",
        k.h1,
        if_match="*",
        json={"discharged_on": "2026-03-05"},
    )

    got = problem(r, 422)
    assert (got["field"], got["rule_id"]) == ("discharged_on", "R2")
    assert _written(engine) == _with_its_denied_record(engine, r, before)


def test_a_retro_start_date_past_the_input_bound_is_refused_naming_r2(
    world: tuple[FilingEngine, Http, Keys],
) -> None:
    engine, http, k = world
    adm = http.ok(
        "POST", "/admissions", k.h1, json=admission_body(B_ID, H1, JIANGMEN, TODAY, emergency=True)
    )
    before = _written(engine)

    r = http.post(
        "/filings",
        k.h1,
        # K2: valid indefinitely (V1), so only the bound keeps year 1 out
        json=jiangmen_body(B_ID, "K2", admission_id=adm["id"], start_date="0001-01-01"),
    )

    got = problem(r, 422)
    assert (got["field"], got["rule_id"]) == ("start_date", "R2")
    assert _written(engine) == _with_its_denied_record(engine, r, before)


def test_a_coverage_day_past_the_input_bound_is_refused_naming_r2(
    world: tuple[FilingEngine, Http, Keys],
) -> None:
    engine, http, k = world
    adm = http.ok("POST", "/admissions", k.h1, json=admission_body(B_ID, H1, JIANGMEN, TODAY))
    before = _written(engine)

    r = http.get(f"/admissions/{adm['id']}/coverage", k.h1, params={"day": "9999-12-31"})

    got = problem(r, 422)
    assert (got["field"], got["rule_id"]) == ("day", "R2")
    assert _written(engine) == _with_its_denied_record(engine, r, before)


@pytest.mark.parametrize(
    ("table", "key"),
    [
        ({"past_days": 0}, "input.past_days"),
        ({"past_days": "730"}, "input.past_days"),
        ({"ahead_days": True}, "input.ahead_days"),
        ({"ahead_days": -1}, "input.ahead_days"),
        ({"ahead_days": 1.5}, "input.ahead_days"),
        ({"future_days": 5}, "input.future_days"),
    ],
)
def test_a_bad_input_section_is_refused_naming_its_key(table: dict[str, Any], key: str) -> None:
    raw = tomllib.loads((ROOT / "config.toml").read_text(encoding="utf-8"))
    raw["input"] = table

    with pytest.raises(PolicyConfigError) as refused:
        settings_from_mapping(raw, environ={})

    assert refused.value.key == key


def test_the_input_section_sets_the_bounds_the_engine_applies(
    open_engine: Callable[..., FilingEngine], sqlite_url: str
) -> None:
    raw = tomllib.loads((ROOT / "config.toml").read_text(encoding="utf-8"))
    raw["input"] = {"past_days": 10, "ahead_days": 0}
    settings = settings_from_mapping(raw, environ={"FILING_PERSON_KEY": "k"})
    engine = open_engine(sqlite_url, settings=settings)

    assert settings.input == DateBounds(past_days=10, ahead_days=0)
    with pytest.raises(InvalidInput) as ahead:
        draft(engine, start_date=TODAY + timedelta(days=1))
    with pytest.raises(InvalidInput) as back:
        engine.admit(
            id_number=B_ID, insurance_type="employee", insured_region="440700",
            treatment_region="440100", hospital_code="H1", actor=HOSPITAL,
            admitted_on=TODAY - timedelta(days=11),
        )  # fmt: skip
    assert (ahead.value.field, back.value.field) == ("start_date", "admitted_on")
    assert draft(engine, start_date=TODAY).state.value == "draft"


# -- period arithmetic refuses by name ---------------------------------------------------------


CALENDAR = calendar_from([date(9999, 12, 31)], [], [9999])  # the calendar's last day a holiday


@pytest.mark.parametrize(
    ("count", "rule"),
    [
        (lambda: add_months(date(9999, 12, 31), 6), "C2"),
        (lambda: validity_end(date(9999, 12, 31), months=6), "C2"),
        (lambda: validity_end(date(9999, 12, 30), days=5), "C1"),
        (lambda: act_deadline(date(9999, 12, 30), calendar=CALENDAR, days=1), "C3"),
        (lambda: working_days_deadline(date(9999, 12, 28), 5, calendar=CALENDAR), "E7"),
        (lambda: end_of_local_day(date.max), "C4"),
        (lambda: start_of_local_day(date.min), "C4"),
        (lambda: end_of_local_day(date.min, time(0)), "C4"),
    ],
)
def test_a_period_counted_past_the_calendar_is_refused_by_name(
    count: Callable[[], object], rule: str
) -> None:
    with pytest.raises(PeriodOutOfRange) as refused:
        count()

    assert refused.value.rule_id == rule
    assert isinstance(refused.value, FilingError)


@pytest.mark.parametrize(
    ("kind", "token", "step"), [("K1", "a", "submit"), ("K2", "jm", "approve")]
)
def test_a_draft_made_before_start_dates_were_bounded_is_refused_by_name_and_can_be_withdrawn(
    world: tuple[FilingEngine, Http, Keys], kind: str, token: str, step: str
) -> None:
    engine, http, k = world
    body = k1_body() if kind == "K1" else jiangmen_body(C_ID)
    filing = http.ok("POST", "/filings", getattr(k, token), json=body)
    with engine.store.write() as tx:  # as an earlier version let it be written
        tx.run(
            "UPDATE filing_record SET start_date = :d WHERE id = :id",
            {"d": date(9999, 12, 31), "id": filing["id"]},
        )
    if step == "approve":
        http.ok("POST", f"/filings/{filing['id']}/submit", k.jm, if_match='"1"')
    before = _written(engine)

    r = http.post(f"/filings/{filing['id']}/{step}", getattr(k, token), if_match="*")

    got = problem(r, 422)
    assert (got["field"], got["rule_id"]) == ("start_date", "V1")
    assert _written(engine) == _with_its_denied_record(engine, r, before, "V1")
    withdrawn = http.post(f"/filings/{filing['id']}/withdraw", getattr(k, token), if_match="*")
    assert withdrawn.status_code == 200 and withdrawn.json()["state"] == "withdrawn"


# -- far instants, cursors, control characters: 422 naming the field ---------------------------


FAR_INSTANTS = ["9999-12-31T23:59:59-01:00", "0001-01-01T00:00:00+01:00"]


@pytest.mark.parametrize("value", FAR_INSTANTS)
@pytest.mark.parametrize("field", ["since", "until"])
def test_an_audit_filter_outside_years_1_to_9999_in_utc_is_a_422_naming_it(
    world: tuple[FilingEngine, Http, Keys], field: str, value: str
) -> None:
    engine, http, k = world
    before = _written(engine)

    r = http.get("/audit", k.admin, params={field: value})

    assert (problem(r, 422)["field"], _written(engine)) == (field, before)


@pytest.mark.parametrize("value", FAR_INSTANTS)
def test_a_due_at_outside_years_1_to_9999_in_utc_is_a_422_naming_it(
    world: tuple[FilingEngine, Http, Keys], value: str
) -> None:
    engine, http, k = world
    before = _written(engine)

    r = http.post(
        "/deadlines/fire", k.admin, json={"subject_id": "abc", "kind": "expire", "due_at": value}
    )

    assert (problem(r, 422)["field"], _written(engine)) == ("due_at", before)


def _cursor(value: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps({"after": value}).encode()).decode().rstrip("=")


@pytest.mark.parametrize("value", [2**63, 2**64, -1, "a\x00b", "x" * 33, "019c\n"])
def test_a_cursor_past_what_the_database_holds_is_a_422(
    world: tuple[FilingEngine, Http, Keys], value: Any
) -> None:
    _, http, k = world
    filing = http.ok("POST", "/filings", k.c, json=jiangmen_body(C_ID))
    adm = http.ok("POST", "/admissions", k.h1, json=admission_body(B_ID, H1, JIANGMEN, TODAY))
    paths = (
        ["/audit", f"/filings/{filing['id']}/history", f"/admissions/{adm['id']}/history"]
        if isinstance(value, int)
        else ["/filings"]
    )

    for path in paths:
        r = http.get(path, k.admin, params={"cursor": _cursor(value)})
        assert (problem(r, 422)["code"], r.json()["field"]) == ("invalid_cursor", "cursor"), path


CONTROL = ["a\x00b", "a\x1b[2J", "a\x7f", "a\x85"]


@pytest.mark.parametrize("text", CONTROL)
def test_control_characters_in_a_body_are_a_422_naming_the_field(
    world: tuple[FilingEngine, Http, Keys], text: str
) -> None:
    engine, http, k = world
    filing = http.ok("POST", "/filings", k.c, json=jiangmen_body(C_ID))
    http.ok("POST", f"/filings/{filing['id']}/submit", k.c, if_match='"1"')
    before = _written(engine)
    calls = [
        ("kind", "/deadlines/fire", k.admin,
         {"subject_id": filing["id"], "kind": f"expire{text}", "due_at": "2026-03-01T00:00:00Z"}),
        ("card_number", "/filings", k.c, jiangmen_body(C_ID, card_number=f"4407{text}")),
        ("hospital_code", "/admissions", k.h1,
         admission_body(B_ID, f"H1{text}", JIANGMEN, TODAY)),
        ("care", "/admissions", k.h1, admission_body(B_ID, H1, JIANGMEN, TODAY, care=text)),
        ("reason", f"/filings/{filing['id']}/reject", k.jm, {"reason": f"missing{text}"}),
    ]  # fmt: skip

    for field, path, token, body in calls:
        r = http.post(path, token, json=body, if_match="*")
        got = problem(r, 422)
        assert (got["field"], got["code"]) == (field, "invalid_input"), path
        assert "control characters" in got["detail"] and text not in r.text
    assert _written(engine) == before


@pytest.mark.parametrize("text", CONTROL)
def test_control_characters_in_a_query_filter_are_a_422_naming_it(
    world: tuple[FilingEngine, Http, Keys], text: str
) -> None:
    _, http, k = world

    r = http.get("/audit", k.admin, params={"event": f"submit{text}"})

    assert problem(r, 422)["field"].startswith("event")


@pytest.mark.parametrize("path", ["/filings/{}", "/filings/{}/history", "/admissions/{}",
                                  "/admissions/{}/coverage", "/claims/{}"])  # fmt: skip
def test_an_id_in_a_path_that_no_id_is_shaped_like_is_a_404(
    world: tuple[FilingEngine, Http, Keys], path: str
) -> None:
    _, http, k = world

    r = http.get(path.format("a%00b"), k.admin)

    assert problem(r, 404)["code"] == "not_found"


def test_a_key_id_no_key_is_shaped_like_is_a_401(world: tuple[FilingEngine, Http, Keys]) -> None:
    _, http, _ = world

    r = http.get("/filings", "fk_" + "\x00" * 12 + "_secret")

    assert problem(r, 401)["code"] == "not_authenticated"


# -- the command line --------------------------------------------------------------------------


@pytest.mark.parametrize(("option", "value"), [
    ("--until", "9999-12-31T23:59:59-01:00"), ("--since", "0001-01-01T00:00:00+01:00"),
])  # fmt: skip
def test_an_export_bound_outside_years_1_to_9999_in_utc_exits_2_naming_the_option(
    engine: FilingEngine, sqlite_url: str, option: str, value: str
) -> None:
    result = runner.invoke(
        cli_app,
        ["audit", "export", option, value, "--config", str(ROOT / "config.toml"),
         "--database-url", sqlite_url],
        env={"FILING_PERSON_KEY": "test-person-key"},
    )  # fmt: skip

    assert result.exit_code == 2, result.output
    assert option in result.output and "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)


# -- any date, any instant, in every date field: answered, never a 500 -------------------------


# Fixed offsets in whole minutes, as ISO 8601 text carries them, up to a day either way; and
# dates and instants anywhere, the calendar's edges and today's neighbourhood most of all.
OFFSETS = st.integers(-(24 * 60 - 1), 24 * 60 - 1).map(lambda m: timezone(timedelta(minutes=m)))


DATES = st.one_of(
    st.dates(),
    st.dates(max_value=date(1, 1, 3)),
    st.dates(min_value=date(9999, 12, 29)),
    st.dates(min_value=date(2023, 1, 1), max_value=date(2028, 12, 31)),
)


INSTANTS = st.one_of(
    st.datetimes(timezones=OFFSETS),
    # hypothesis takes naive bounds and attaches a zone from `timezones`
    st.datetimes(max_value=datetime(1, 1, 2), timezones=OFFSETS),  # noqa: DTZ001
    st.datetimes(min_value=datetime(9999, 12, 30), timezones=OFFSETS),  # noqa: DTZ001
)


@examples(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(day=DATES, at=INSTANTS)
def test_any_date_or_instant_in_a_date_field_is_answered_and_never_a_500(
    world: tuple[FilingEngine, Http, Keys], day: date, at: datetime
) -> None:
    _, http, k = world
    adm = http.ok("POST", "/admissions", k.h1, json=admission_body(B_ID, H1, JIANGMEN, TODAY))
    instant = at.isoformat()
    calls = [
        ("admitted_on", http.post("/admissions", k.h1,
                                  json=admission_body(B_ID, H1, JIANGMEN, day))),
        ("start_date", http.post("/filings", k.c,
                                 json=jiangmen_body(C_ID, start_date=day.isoformat()))),
        ("day", http.get(f"/admissions/{adm['id']}/coverage", k.h1,
                         params={"day": day.isoformat()})),
        ("discharged_on", http.post(f"/admissions/{adm['id']}/discharge", k.h1, if_match="*",
                                    json={"discharged_on": day.isoformat()})),
        ("since", http.get("/audit", k.admin, params={"since": instant})),
        ("until", http.get("/audit", k.admin, params={"until": instant})),
        ("due_at", http.post("/deadlines/fire", k.admin,
                             json={"subject_id": adm["id"], "kind": "report_window",
                                   "due_at": instant})),
    ]  # fmt: skip

    for field, r in calls:
        assert r.status_code < 500, (field, r.text)
        if r.status_code == 422:
            assert problem(r, 422)["field"] == field

"""Policies as data: parsed strictly from config.toml, inherited from the national default,
every value citing its rule, refused at start with a message naming the key."""

from __future__ import annotations

import copy
import dataclasses
import json
import tomllib
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from states.catalogue import RULES
from states.errors import PolicyConfigError
from states.policy import NATIONAL, policy_for, policy_from_document
from states.vocabulary import Channel, Kind
from workflow.api import FilingEngine
from workflow.cli import app
from workflow.config import Settings, settings_from_mapping

ROOT = Path(__file__).resolve().parents[1]
RAW = tomllib.loads((ROOT / "config.toml").read_text(encoding="utf-8"))


def _with(change: Any) -> dict[str, Any]:
    raw = copy.deepcopy(RAW)
    change(raw)
    return raw


def _refused(raw: dict[str, Any]) -> PolicyConfigError:
    with pytest.raises(PolicyConfigError) as caught:
        settings_from_mapping(raw, environ={})
    return caught.value


def test_the_shipped_config_defines_the_five_policies(settings: Settings) -> None:
    assert set(settings.policies) == {NATIONAL, "350200", "440700", "440300", "310000"}


def test_a_region_inherits_what_it_does_not_override(settings: Settings) -> None:
    xiamen, national = settings.policies["350200"], settings.policies[NATIONAL]
    assert xiamen.long_term_cancel_lock_months == 3 and national.long_term_cancel_lock_months == 6
    assert xiamen.temporary_validity_months == national.temporary_validity_months == 6
    assert settings.policies["440700"].scope == "city" and xiamen.scope == "province"
    assert Channel.MINI_PROGRAM in xiamen.instant_channels and not national.instant_channels


def test_every_value_of_every_policy_cites_a_rule_that_exists(settings: Settings) -> None:
    for policy in settings.policies.values():
        assert policy.rules, policy.region
        assert set(policy.rules.values()) <= set(RULES), policy.region


def test_a_district_code_takes_its_city_policy_and_an_unknown_region_the_national_one(
    settings: Settings,
) -> None:
    assert policy_for("350203", settings.policies).region == "350200"
    assert policy_for("310104", settings.policies).region == "310000"
    assert policy_for("110105", settings.policies).region == NATIONAL


def test_a_stored_policy_rebuilds_to_the_same_content(settings: Settings) -> None:
    for policy in settings.policies.values():
        rebuilt = policy_from_document(policy.region, policy.to_document())
        assert rebuilt == policy
        assert rebuilt.content_hash() == policy.content_hash()


def test_an_unknown_key_is_refused_naming_it() -> None:
    err = _refused(
        _with(lambda r: r["policy"]["350200"].update(cancel_lok_months={"value": 3, "rule": "V2"}))
    )
    assert err.key == "policy.350200.cancel_lok_months" and "unknown key" in str(err)


def test_a_bad_value_is_refused_naming_the_key() -> None:
    err = _refused(
        _with(lambda r: r["policy"]["440700"].update(scope={"value": "county", "rule": "K8"}))
    )
    assert err.key == "policy.440700.scope" and "province" in err.problem


def test_a_value_without_its_rule_id_is_refused() -> None:
    err = _refused(_with(lambda r: r["policy"]["350200"].update(long_term_cancel_lock_months=3)))
    assert err.key == "policy.350200.long_term_cancel_lock_months" and "rule" in err.problem


def test_a_value_citing_the_wrong_rule_is_refused() -> None:
    err = _refused(
        _with(
            lambda r: r["policy"]["350200"].update(
                long_term_cancel_lock_months={"value": 3, "rule": "K1"}
            )
        )
    )
    assert err.key == "policy.350200.long_term_cancel_lock_months.rule"


def test_an_unknown_document_or_channel_is_refused() -> None:
    err = _refused(
        _with(
            lambda r: r["policy"][NATIONAL].update(
                documents_K4={"value": [["referal"]], "rule": "M5"}
            )
        )
    )
    assert err.key == "policy.national.documents_K4" and "referal" in err.problem
    err = _refused(
        _with(
            lambda r: r["policy"][NATIONAL].update(
                instant_channels={"value": ["fax"], "rule": "L1"}
            )
        )
    )
    assert err.key == "policy.national.instant_channels"


def test_the_national_default_must_set_every_value() -> None:
    err = _refused(_with(lambda r: r["policy"][NATIONAL].pop("temporary_validity_months")))
    assert err.key == "policy.national.temporary_validity_months"


def test_a_region_must_be_a_six_digit_code_and_have_a_version() -> None:
    err = _refused(_with(lambda r: r["policy"].update({"xiamen": {"version": "1", "title": "x"}})))
    assert err.key == "policy.xiamen"
    err = _refused(_with(lambda r: r["policy"]["350200"].pop("version")))
    assert err.key == "policy.350200.version"


def test_an_unknown_section_or_database_key_is_refused() -> None:
    assert _refused(_with(lambda r: r.update(databse={}))).key == "databse"
    assert _refused(_with(lambda r: r["database"].update(pool=3))).key == "database.pool"


def test_holidays_for_a_later_year_are_read_from_config() -> None:
    raw = _with(
        lambda r: r["calendar"].update(
            years={"2027": {"holidays": ["2027-10-01"], "workdays": ["2027-09-26"]}}
        )
    )
    settings = settings_from_mapping(raw, environ={})
    assert settings.calendar_years[2027].holidays == frozenset(
        {__import__("datetime").date(2027, 10, 1)}
    )


def test_a_holiday_outside_its_year_is_refused() -> None:
    err = _refused(
        _with(lambda r: r["calendar"].update(years={"2027": {"holidays": ["2028-01-01"]}}))
    )
    assert err.key == "calendar.years.2027.holidays"


def test_environment_overrides_the_database_and_secrets_come_from_it() -> None:
    settings = settings_from_mapping(
        RAW,
        environ={
            "FILING_DATABASE_URL": "sqlite:////var/lib/filing/filings.db",
            "FILING_PERSON_KEY": "k",
        },
    )
    assert settings.database_url == "sqlite:////var/lib/filing/filings.db"
    assert settings.person_key == b"k" and not settings.person_key_is_development_default
    assert settings_from_mapping(RAW, environ={}).person_key_is_development_default


def test_every_kind_has_its_documents_in_every_policy(settings: Settings) -> None:
    for policy in settings.policies.values():
        assert set(policy.documents_by_kind) == set(Kind)


@pytest.mark.parametrize(
    ("key", "value", "rule"),
    [
        ("temporary_validity_months", 3, "V3"),
        ("long_term_validity_months", 6, "V1"),
    ],
)
def test_a_validity_shorter_than_the_policy_allows_is_refused(
    key: str, value: int, rule: str
) -> None:
    err = _refused(
        _with(lambda r: r["policy"][NATIONAL].update({key: {"value": value, "rule": rule}}))
    )
    assert err.key == f"policy.national.{key}" and rule in err.problem


def test_the_engines_own_channel_cannot_be_an_instant_channel() -> None:
    err = _refused(
        _with(
            lambda r: r["policy"]["350200"].update(
                instant_channels={"value": ["system"], "rule": "L1"}
            )
        )
    )
    assert err.key == "policy.350200.instant_channels"


def test_a_kinds_documents_must_cite_that_kinds_rule() -> None:
    err = _refused(
        _with(lambda r: r["policy"][NATIONAL].update(documents_K6={"value": [], "rule": "M6"}))
    )
    assert err.key == "policy.national.documents_K6.rule"


def test_a_snapshot_stored_before_a_key_existed_still_loads(settings: Settings) -> None:
    national = settings.policies[NATIONAL]
    old_snapshot = settings.policies["350200"].to_document()
    del old_snapshot["commitment_allowed"]  # as if written before V6 was configurable
    rebuilt = policy_from_document("350200", old_snapshot, national)
    assert rebuilt.filled_from_current == ("commitment_allowed",)
    assert rebuilt.commitment_allowed == national.commitment_allowed
    assert rebuilt.long_term_cancel_lock_months == 3  # what was stored still rules


# -- every setting checked in one place, every problem named --------------------------------------


def _set(section: str, key: str, value: Any) -> Any:
    return lambda r: r.setdefault(section, {}).update({key: value})


@pytest.mark.parametrize(
    ("change", "key", "problem"),
    [
        (_set("logging", "level", "verbose"), "logging.level",
         "must be one of debug, info, warning, error"),
        (_set("database", "url", "mysql://x/y"), "database.url", "sqlite:/// or postgresql://"),
        (_set("database", "url", "not a url"), "database.url", "must be a database URL"),
        (_set("http", "rate_limit_storage", "bogus://"), "http.rate_limit_storage",
         "storage URI"),
        (_set("calendar", "years", {"2027": {"holidays": 5}}), "calendar.years.2027.holidays",
         "must be a list"),
        (_set("calendar", "years", {"2027": {"holidays": ["27 Jan"]}}),
         "calendar.years.2027.holidays[0]", "YYYY-MM-DD"),
        (_set("http", "host", "not a host!"), "http.host", "IP address or a host name"),
        (_set("database", "busy_timeout_ms", True), "database.busy_timeout_ms",
         "must be a whole number"),
        (_set("database", "busy_timeout_ms", 1e12), "database.busy_timeout_ms",
         "must be a whole number"),
        (_set("database", "busy_timeout_ms", 10**12), "database.busy_timeout_ms",
         "must be at most 600000"),
        (_set("http", "rate_limit", "0/second"), "http.rate_limit", "at least one request"),
        (_set("http", "anonymous_rate_limit", "0/minute"), "http.anonymous_rate_limit",
         "at least one request"),
        (_set("http", "max_in_flight", 0), "http.max_in_flight", "must be at least 1"),
        (_set("http", "keep_alive_seconds", "long"), "http.keep_alive_seconds",
         "must be a whole number"),
        (_set("scheduler", "sweep_seconds", True), "scheduler.sweep_seconds", "must be a number"),
        (lambda r: r["policy"][NATIONAL].update(documents_all={"value": [], "rule": "M1"}),
         "policy.national.documents_all", "at least one document"),
        (lambda r: r["policy"]["350200"].update(documents_K1={"value": [], "rule": "M2"}),
         "policy.350200.documents_K1", "at least one document"),
        (lambda r: r["policy"][NATIONAL].update(documents_reimbursement={"value": [],
                                                                         "rule": "P5"}),
         "policy.national.documents_reimbursement", "at least one document"),
    ],
)  # fmt: skip
def test_a_bad_setting_is_refused_naming_its_key(change: Any, key: str, problem: str) -> None:
    err = _refused(_with(change))

    assert err.problems == ((key, err.problem),)
    assert problem in err.problem


def test_an_emergency_or_other_temporary_kind_may_ask_no_documents_of_its_own(
    settings: Settings,
) -> None:
    national = settings.policies[NATIONAL]
    assert national.documents_by_kind[Kind.EMERGENCY] == ()
    assert national.documents_by_kind[Kind.OTHER_TEMPORARY] == ()


def test_every_problem_is_reported_not_only_the_first() -> None:
    def break_everything(r: dict[str, Any]) -> None:
        r["logging"]["level"] = "verbose"
        r["database"]["busy_timeout_ms"] = 1e12
        r["http"]["rate_limit"] = "0/second"
        r["http"]["porte"] = 80
        r["policy"][NATIONAL]["documents_all"] = {"value": [], "rule": "M1"}
        r["policy"]["440700"]["scope"] = {"value": "county", "rule": "K8"}
        r["webhooks"] = {}

    err = _refused(_with(break_everything))

    assert [key for key, _ in err.problems] == [
        "webhooks",
        "database.busy_timeout_ms",
        "logging.level",
        "http.rate_limit",
        "http.porte",
        "policy.national.documents_all",
        "policy.440700.scope",
    ]
    assert all(key in str(err) for key, _ in err.problems)


def test_a_bad_value_from_the_environment_names_the_variable() -> None:
    with pytest.raises(PolicyConfigError) as caught:
        settings_from_mapping(
            RAW, environ={"FILING_LOG_FORMAT": "xml", "FILING_DATABASE_URL": "mysql://x/y"}
        )

    assert [key for key, _ in caught.value.problems] == ["FILING_DATABASE_URL", "FILING_LOG_FORMAT"]


def test_an_error_never_quotes_the_value_it_refuses() -> None:
    secret = "redis-password-123"
    err = _refused(_with(_set("http", "rate_limit_storage", f"bogus://:{secret}@host")))

    assert secret not in str(err)


def test_the_engine_refuses_a_database_it_cannot_run_on_naming_the_key(
    settings: Settings,
) -> None:
    with pytest.raises(PolicyConfigError) as caught:
        FilingEngine.open(database_url="mysql://x/y", settings=settings)

    assert caught.value.key == "database.url"


def test_a_copy_of_the_settings_is_checked_like_the_file(settings: Settings) -> None:
    with pytest.raises(PolicyConfigError) as caught:
        dataclasses.replace(settings, log_level="verbose")

    assert caught.value.key == "logging.level"


def test_policies_validate_names_every_bad_key_of_the_issue_with_exit_2(tmp_path: Path) -> None:
    text = (ROOT / "config.toml").read_text(encoding="utf-8")
    bad = (
        text.replace('level = "info"', 'level = "verbose"')
        .replace('url = "sqlite:///filings.db"', 'url = "mysql://x/y"')
        .replace("busy_timeout_ms = 5000", "busy_timeout_ms = true")
        .replace('rate_limit = "50/second"', 'rate_limit = "0/second"')
        .replace('rate_limit_storage = "memory://"', 'rate_limit_storage = "bogus://"')
        .replace('host = "127.0.0.1"', 'host = "local host"')
        .replace(
            'documents_all = { value = [["identity"], ["declaration_form"]], rule = "M1" }',
            'documents_all = { value = [], rule = "M1" }',
        )
        + "\n[calendar.years.2027]\nholidays = 5\n"
    )
    (tmp_path / "bad.toml").write_text(bad, encoding="utf-8")

    result = CliRunner().invoke(
        app, ["policies", "validate", "--config", str(tmp_path / "bad.toml")]
    )

    assert result.exit_code == 2
    keys = [p["key"] for p in json.loads(result.stdout)["problems"]]
    assert keys == [
        "database.url",
        "database.busy_timeout_ms",
        "logging.level",
        "calendar.years.2027.holidays",
        "http.host",
        "http.rate_limit",
        "http.rate_limit_storage",
        "policy.national.documents_all",
    ]
    assert "Traceback" not in result.stderr
    assert len(result.stderr.splitlines()) == len(keys)

"""The rules catalogue stands for every rule id the project cites: the code, config.toml, the
errors it raises and the README cite only ids the catalogue holds, each region's overrides cite
rules its sources set, and RULES.md is the catalogue as `filing policies rules` writes it."""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path

import pytest
from typer.testing import CliRunner

from states.catalogue import NATIONAL, REGION_NAMES, RULES, SECTIONS, markdown, table
from workflow.cli import app
from workflow.config import Settings

ROOT = Path(__file__).resolve().parent.parent
RULE_ID = re.compile(r"\b[KLVMEPCAR]\d{1,2}\b")
# Where rule ids are cited: code (rule_id=..., Denial("E3", ...), InvalidInput(..., "M1", ...),
# comments and docstrings), config.toml (rule = "..."), and the documents a reader follows.
CITING = [
    *(p for package in ("states", "workflow", "jobs") for p in (ROOT / package).rglob("*.py")),
    ROOT / "config.toml",
    ROOT / "README.md",
    ROOT / "ARCHITECTURE.md",
]


def cited_in(path: Path) -> set[str]:
    return set(RULE_ID.findall(path.read_text(encoding="utf-8")))


@pytest.mark.parametrize("path", CITING, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_rule_id_cited_is_in_the_catalogue(path: Path) -> None:
    unknown = cited_in(path) - set(RULES)

    assert not unknown, f"{path.relative_to(ROOT)} cites rules not in the catalogue: {unknown}"


def test_every_rule_of_the_catalogue_is_cited_by_the_code_or_config() -> None:
    cited = set().union(*(cited_in(p) for p in CITING if p.name != "catalogue.py"))

    assert {"K8", "M1", "E3", "C6", "A1", "A5"} <= cited  # the scan finds what it should
    assert set(RULES) <= cited


def test_each_rule_has_a_title_a_section_and_a_source() -> None:
    for rule_id, rule in RULES.items():
        assert rule.id == rule_id and RULE_ID.fullmatch(rule_id), rule_id
        assert rule.title and rule.sources, rule_id
        assert rule.section == SECTIONS[rule_id[0]]
        assert set(rule.regions) <= set(REGION_NAMES), rule_id


def test_the_regions_of_the_catalogue_are_the_regions_config_gives_a_policy(
    settings: Settings,
) -> None:
    assert set(REGION_NAMES) == set(settings.policies)


def test_a_region_that_differs_from_the_national_default_cites_a_rule_its_sources_set() -> None:
    policies = tomllib.loads((ROOT / "config.toml").read_text(encoding="utf-8"))["policy"]
    national = policies[NATIONAL]
    checked = 0
    for region, section in policies.items():
        for key, entry in section.items():
            if region == NATIONAL or not isinstance(entry, dict):
                continue  # the national default, or a region's version and title
            if entry["value"] == national[key]["value"]:
                continue  # restates the default: the region sets nothing of its own
            assert region in RULES[entry["rule"]].regions, (region, key, entry["rule"])
            checked += 1
    assert checked >= 20


def test_rules_md_is_the_catalogue_as_the_command_writes_it() -> None:
    result = CliRunner().invoke(app, ["policies", "rules", "--markdown"])

    assert result.exit_code == 0, result.output
    assert result.stdout == markdown()
    assert (ROOT / "RULES.md").read_text(encoding="utf-8") == result.stdout, (
        "RULES.md is stale: regenerate it with `filing policies rules --markdown > RULES.md`"
    )


def test_the_rules_command_prints_every_rule_as_a_table_or_as_json() -> None:
    runner = CliRunner()

    shown = runner.invoke(app, ["policies", "rules"])
    as_json = runner.invoke(app, ["policies", "rules", "--json"])

    assert shown.exit_code == 0 and shown.stdout == table()
    rows = shown.stdout.split("\n\n")[0].splitlines()[1:]
    assert [row.split()[0] for row in rows if not row.startswith(" ")] == list(RULES)
    records = json.loads(as_json.stdout)
    assert [r["id"] for r in records] == list(RULES)
    e3 = next(r for r in records if r["id"] == "E3")
    assert e3["regions"] == ["440700"]
    assert e3["sources"] == [
        {
            "document": "Jiangmen guide (seed 001)",
            "where": "第三类情形",
            "passage": "在参保人入院10日内,且出院之前办理异地就医备案手续",
        }
    ]


def test_asking_for_json_and_markdown_at_once_is_a_usage_error() -> None:
    result = CliRunner().invoke(app, ["policies", "rules", "--json", "--markdown"])

    assert result.exit_code == 2

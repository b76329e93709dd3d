"""The audit export: filters, batching, the masking guard, and re-verification of a file."""

from __future__ import annotations

import csv
import io
import json
import sqlite3
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import PERSON, Clock, draft, effective, id_number, local
from workflow import FilingEngine
from workflow import export as ex
from workflow.identity import mask_personal_data


def _export(
    engine: FilingEngine,
    path: Path,
    filters: ex.Filters | None = None,
    fmt: str = "jsonl",
    batch: int = ex.BATCH,
) -> dict[str, Any]:
    filters = filters or ex.Filters()
    database = engine.checkpoint()
    rows = ex.records(engine.store, filters, database.count, batch=batch)
    with path.open("wb") as out:
        done = ex.write_export(rows, out, fmt, database, filters, engine.clock())
    return done.to_dict()


def _lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def _inject(db: Path, seq: int, inputs: str) -> None:
    """What a bug elsewhere could do: an audit record whose inputs hold an unmasked number."""
    conn = sqlite3.connect(db)
    conn.execute("DROP TRIGGER audit_record_no_update")
    conn.execute("UPDATE audit_record SET inputs = ? WHERE seq = ?", (inputs, seq))
    conn.commit()
    conn.close()


@pytest.fixture
def trail(engine: FilingEngine, clock: Clock) -> FilingEngine:
    """Three people's filings over two days: Beijing (national policy), Jiangmen, Xiamen."""
    effective(engine)  # Beijing 110000 -> Shenzhen: create, submit, approve
    jiangmen = draft(
        engine,
        id_number=id_number(2, region="440703", born="20000101"),
        kind="K4",
        insured_region="440703",
        treatment_region="440100",
    )
    clock.advance(days=1)
    engine.withdraw(jiangmen.id, PERSON)
    draft(engine, id_number=id_number(3), kind="K1", insured_region="350200")
    return engine


def test_the_masking_guard_masks_id_numbers_and_mobiles_but_not_hashes() -> None:
    text = "id 35020319900101123X, tel 13800138000; hash " + "1" * 64 + " id x 123456789012345678"

    masked = mask_personal_data(text)

    assert "3502**********123X" in masked and "35020319900101123X" not in masked
    assert "138****8000" in masked and "13800138000" not in masked
    assert "1" * 64 in masked  # a run of digits inside a longer token is not a number
    assert "1234**********5678" in masked


def test_an_id_number_injected_into_a_record_comes_out_masked(
    trail: FilingEngine, tmp_path: Path
) -> None:
    leaked = id_number(9, region="440703", born="20000101")
    _inject(tmp_path / "filings.db", 2, json.dumps({"note": f"caller {leaked}", "n": 13912345678}))

    checkpoint = _export(trail, tmp_path / "out.jsonl")

    text = (tmp_path / "out.jsonl").read_text(encoding="utf-8")
    assert leaked not in text and "13912345678" not in text
    record = _lines(tmp_path / "out.jsonl")[1]
    assert record["inputs"] == {
        "note": f"caller {leaked[:4]}{'*' * 10}{leaked[-4:]}",
        "n": "139****5678",
    }
    assert checkpoint["masked_seqs"] == [2]


def test_an_id_number_written_after_a_letter_comes_out_masked(
    trail: FilingEngine, tmp_path: Path
) -> None:
    leaked = id_number(9, region="350203", born="19900101")
    _inject(tmp_path / "filings.db", 2, json.dumps({"reason": f"r{leaked}", "tel": "t13912345678"}))

    checkpoint = _export(trail, tmp_path / "out.jsonl")

    text = (tmp_path / "out.jsonl").read_text(encoding="utf-8")
    assert leaked not in text and "13912345678" not in text
    assert _lines(tmp_path / "out.jsonl")[1]["inputs"] == {
        "reason": f"r{leaked[:4]}{'*' * 10}{leaked[-4:]}",
        "tel": "t139****5678",
    }
    assert checkpoint["masked_seqs"] == [2]


def test_a_record_masked_at_export_is_reported_not_called_tampered(
    trail: FilingEngine, tmp_path: Path
) -> None:
    _inject(tmp_path / "filings.db", 2, json.dumps({"note": id_number(9)}))
    checkpoint = _export(trail, tmp_path / "out.jsonl")

    result = ex.verify_export(tmp_path / "out.jsonl", checkpoint)

    assert result.ok, result.problems
    assert result.masked_seqs == (2,)


def test_a_whole_export_verifies_and_ends_at_the_databases_head(
    trail: FilingEngine, tmp_path: Path
) -> None:
    checkpoint = _export(trail, tmp_path / "out.jsonl", batch=2)  # several batches

    result = ex.verify_export(tmp_path / "out.jsonl", checkpoint)

    records = _lines(tmp_path / "out.jsonl")
    assert result.ok, result.problems
    assert [r["seq"] for r in records] == list(range(1, trail.checkpoint().count + 1))
    assert (records[-1]["seq"], records[-1]["hash"]) == (
        checkpoint["count"],
        checkpoint["head_hash"],
    )
    assert checkpoint["exported"] == len(records) == result.records


def test_a_csv_export_round_trips_and_verifies(trail: FilingEngine, tmp_path: Path) -> None:
    checkpoint = _export(trail, tmp_path / "out.csv", fmt="csv")

    result = ex.verify_export(tmp_path / "out.csv", checkpoint)
    records = [r for _, r in ex.read_export(tmp_path / "out.csv", "csv")]

    assert result.ok, result.problems
    assert result.records == trail.checkpoint().count
    first = records[0]
    assert isinstance(first, dict)
    assert first["from_state"] is None and first["on_behalf"] is False and first["seq"] == 1


def test_a_csv_export_keeps_an_empty_text_apart_from_none() -> None:
    record: dict[str, Any] = {c: "x" for c in ex.COLUMNS}
    record.update(seq=7, inputs={"a": 1}, on_behalf=True, actor_org="", rule_id=None)
    out = io.BytesIO()

    ex.write_export([record], out, "csv", ex.Checkpoint(7, "h"), ex.Filters(), datetime.now(UTC))
    row = list(csv.reader(io.StringIO(out.getvalue().decode())))[1]
    back = ex._record_from_csv(row)

    assert back["actor_org"] == "" and back["rule_id"] is None and back["on_behalf"] is True
    assert back["inputs"] == '{"a":1}' and back["seq"] == 7


@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
def test_an_edited_record_in_an_export_fails_verification(
    trail: FilingEngine, tmp_path: Path, fmt: str
) -> None:
    path = tmp_path / f"out.{fmt}"
    checkpoint = _export(trail, path, fmt=fmt)
    path.write_text(path.read_text().replace("officer-1", "officer-2", 1), encoding="utf-8")

    result = ex.verify_export(path, checkpoint)

    assert not result.ok
    assert "the file's SHA-256 differs from the checkpoint's (the file changed)" in result.problems
    assert any("content does not match its hash" in p for p in result.problems)


def test_a_record_dropped_from_a_whole_export_fails_verification_even_with_a_fresh_sha(
    trail: FilingEngine, tmp_path: Path
) -> None:
    path = tmp_path / "out.jsonl"
    checkpoint = _export(trail, path)
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    path.write_text("".join(lines[:2] + lines[3:]), encoding="utf-8")
    checkpoint = {**checkpoint, "sha256": ex.file_sha256(path), "exported": len(lines) - 1}

    result = ex.verify_export(path, checkpoint)

    assert "record 4: does not follow the record before it" not in result.problems
    assert "record 4: the whole trail was exported, a record is missing" in result.problems


def test_a_truncated_whole_export_does_not_reach_the_checkpoints_head(
    trail: FilingEngine, tmp_path: Path
) -> None:
    path = tmp_path / "out.jsonl"
    checkpoint = _export(trail, path)
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    path.write_text("".join(lines[:-1]), encoding="utf-8")
    checkpoint = {**checkpoint, "sha256": ex.file_sha256(path), "exported": len(lines) - 1}

    result = ex.verify_export(path, checkpoint)

    assert result.problems == [
        "the last record is not the checkpoint's head (the trail was cut or rewritten)"
    ]


def test_the_filing_filter_keeps_one_filings_records(trail: FilingEngine, tmp_path: Path) -> None:
    filing_id = trail.list_for_person(id_number(1, region="110105"))[0].id

    checkpoint = _export(trail, tmp_path / "out.jsonl", ex.Filters(filing_id=filing_id))

    records = _lines(tmp_path / "out.jsonl")
    assert [r["event"] for r in records] == ["create", "submit", "approve"]
    assert {r["filing_id"] for r in records} == {filing_id}
    assert ex.verify_export(tmp_path / "out.jsonl", checkpoint).ok


@pytest.mark.parametrize(
    ("region", "insured"),
    [("440000", {"440703"}), ("440700", {"440703"}), ("350200", {"350200"}), ("310000", set())],
)
def test_the_region_filter_covers_the_codes_under_it(
    trail: FilingEngine, tmp_path: Path, region: str, insured: set[str]
) -> None:
    _export(trail, tmp_path / "out.jsonl", ex.Filters(region=region))

    found = {trail.get(r["filing_id"]).insured_region for r in _lines(tmp_path / "out.jsonl")}

    assert found == insured


def test_the_time_and_event_filters_keep_what_they_name(
    trail: FilingEngine, tmp_path: Path
) -> None:
    day_two = local(2026, 3, 3, 0, 0)
    since_day_two = ex.Filters(since=day_two)
    only_day_one = ex.Filters(until=day_two)
    creates = ex.Filters(events=("create", "withdraw"))

    _export(trail, tmp_path / "a.jsonl", since_day_two)
    _export(trail, tmp_path / "b.jsonl", only_day_one)
    _export(trail, tmp_path / "c.jsonl", creates)

    assert [r["event"] for r in _lines(tmp_path / "a.jsonl")] == ["withdraw", "create"]
    assert [r["event"] for r in _lines(tmp_path / "b.jsonl")] == [
        "create", "submit", "approve", "create",
    ]  # fmt: skip
    assert [r["event"] for r in _lines(tmp_path / "c.jsonl")] == [
        "create",
        "create",
        "withdraw",
        "create",
    ]


def test_a_record_outside_a_filtered_exports_filters_fails_verification(
    trail: FilingEngine, tmp_path: Path
) -> None:
    path = tmp_path / "out.jsonl"
    whole = _export(trail, path)
    as_if_filtered = {**whole, "filters": ex.Filters(events=("create",)).to_dict()}

    result = ex.verify_export(path, as_if_filtered)

    assert "record 2: outside the export's filters" in result.problems


def test_an_export_leaves_out_records_appended_after_its_checkpoint(
    trail: FilingEngine, tmp_path: Path
) -> None:
    database = trail.checkpoint()
    effective(trail, id_number=id_number(5, region="110105"))  # written during the export

    rows = list(ex.records(trail.store, ex.Filters(), database.count, batch=2))

    assert [r["seq"] for r in rows] == list(range(1, database.count + 1))


def test_dates_and_instants_are_read_as_utc() -> None:
    assert ex.parse_instant("2026-03-02") == datetime(2026, 3, 2, tzinfo=UTC)
    assert ex.parse_instant("2026-03-02T08:00:00+08:00") == datetime(2026, 3, 2, tzinfo=UTC)
    assert ex.parse_instant("2026-03-02T08:00:00") == datetime(2026, 3, 2, 8, tzinfo=UTC)
    with pytest.raises(ValueError, match="not an ISO date or instant"):
        ex.parse_instant("yesterday")

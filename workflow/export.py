"""The audit export an auditor takes away, and its re-verification without the database.

An export is the audit trail, or a filtered part of it, as JSON Lines or CSV, read in `seq`
order in batches (keyset on `seq`) so that a trail of millions of records streams through in
flat memory. Beside it goes a checkpoint: the database chain's checkpoint when the export was
taken (count + head hash, so `filing verify --against` reads it too), the filters, the number of
records and the SHA-256 of the file's bytes. `verify_export` checks a file against it later:
the bytes, every record's own hash, the links between consecutive records and, for a whole
trail, its head.

Records are masked when they are written (workflow.identity); every exported record still
passes through `mask_record`, a guard against an ID number or mobile number that reached a
record some other way. A record the guard had to change can no longer match its hash: the
checkpoint lists it (`masked_seqs`) and the verifier reports it rather than calling it tampered.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time
from pathlib import Path
from typing import IO, Any

from states.regions import prefix_of
from workflow.audit import GENESIS_HASH, HASHED_FIELDS, Checkpoint, canonical_inputs, record_hash
from workflow.identity import mask_personal_data
from workflow.store import Store

FORMATS = ("jsonl", "csv")
BATCH = 2000
COLUMNS: tuple[str, ...] = (*HASHED_FIELDS, "hash")
# Columns the table allows to be NULL. A CSV cell cannot tell NULL from an empty text, so a CSV
# row names its NULL columns in one more column, `nulls`, and both round-trip exactly.
NULLABLE = frozenset(
    {
        "filing_id",
        "from_state",
        "to_state",
        "rule_id",
        "actor_org",
        "policy_region",
        "policy_version",
    }
)
CSV_COLUMNS: tuple[str, ...] = (*COLUMNS, "nulls")

Progress = Callable[[int], None]
"""Told how far an export (the last seq read) or a verification (records read) has got."""


def _mask_value(value: Any) -> Any:
    if isinstance(value, str):
        return mask_personal_data(value)
    if isinstance(value, bool):
        return value
    if isinstance(value, int):  # an ID number or a phone number written as a number
        text = str(value)
        masked = mask_personal_data(text)
        return value if masked == text else masked
    if isinstance(value, Mapping):
        return {mask_personal_data(str(k)): _mask_value(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_mask_value(v) for v in value]
    return value


def mask_record(record: Mapping[str, Any]) -> tuple[dict[str, Any], bool]:
    """The record with every text field (and every text inside `inputs`) masked, and whether
    anything had to be masked."""
    masked = {k: _mask_value(v) for k, v in record.items()}
    return masked, masked != record


# -- filters ------------------------------------------------------------------------------------


def parse_instant(text: str) -> datetime:
    """An ISO instant (`2026-03-02T08:00:00+08:00`) or date (`2026-03-02`, its 00:00 UTC). An
    instant without an offset is read as UTC."""
    try:
        if len(text) == 10:
            return datetime.combine(date.fromisoformat(text), time(), tzinfo=UTC)
        instant = datetime.fromisoformat(text)
        return instant.replace(tzinfo=UTC) if instant.tzinfo is None else instant.astimezone(UTC)
    except ValueError:
        raise ValueError("not an ISO date or instant") from None
    except OverflowError:  # 9999-12-31T23:59:59-01:00 is in year 10000 in UTC
        raise ValueError("outside years 1 to 9999 in UTC") from None


def region_prefix(code: str) -> str:
    """GB/T 2260: a province (`440000`) covers `44xxxx`, a city (`440700`) covers `4407xx`, a
    district (`440703`) itself."""
    if len(code) != 6 or not code.isdigit():
        raise ValueError("not a six-digit GB/T 2260 region code")
    return prefix_of(code)


@dataclass(frozen=True)
class Filters:
    """What an export kept. `since` is inclusive and `until` exclusive: `--since 2026-03-01
    --until 2026-03-02` is the first of March (UTC)."""

    filing_id: str | None = None
    region: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    events: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.region is not None:
            region_prefix(self.region)

    @property
    def whole_trail(self) -> bool:
        return self == Filters()

    def to_dict(self) -> dict[str, Any]:
        return {
            "filing": self.filing_id,
            "region": self.region,
            "since": self.since.isoformat() if self.since else None,
            "until": self.until.isoformat() if self.until else None,
            "events": list(self.events),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Filters:
        return cls(
            filing_id=data.get("filing"),
            region=data.get("region"),
            since=parse_instant(data["since"]) if data.get("since") else None,
            until=parse_instant(data["until"]) if data.get("until") else None,
            events=tuple(data.get("events") or ()),
        )

    def admits(self, record: Mapping[str, Any]) -> bool:
        """Whether a record meets the filters that can be judged from the record alone (the
        region may need the filing's row)."""
        try:
            at = parse_instant(str(record["at"]))
        except ValueError:
            return False
        return (
            (self.filing_id is None or record["filing_id"] == self.filing_id)
            and (not self.events or record["event"] in self.events)
            and (self.since is None or at >= self.since)
            and (self.until is None or at < self.until)
        )


def _in_region(param: str) -> str:
    """A record is in a region if its policy region is, or the insured region of its subject:
    the filing, the admission, or a claim's admission."""
    return (
        f"(a.policy_region LIKE :{param}"
        f" OR a.filing_id IN (SELECT id FROM filing_record WHERE insured_region LIKE :{param})"
        f" OR a.filing_id IN (SELECT id FROM admission_record WHERE insured_region LIKE :{param})"
        " OR a.filing_id IN (SELECT c.id FROM claim_record c JOIN admission_record m"
        f" ON m.id = c.admission_id WHERE m.insured_region LIKE :{param}))"
    )


def _query(filters: Filters, scope: tuple[str, ...] = ()) -> tuple[str, dict[str, Any]]:
    """The records meeting `filters` and, if `scope` names regions, in one of them (what a
    region-scoped API key may read), after seq `:after` up to `:upto`, `:batch` at a time."""
    where = ["a.seq > :after", "a.seq <= :upto"]
    params: dict[str, Any] = {}
    if filters.filing_id is not None:
        where.append("a.filing_id = :filing_id")
        params["filing_id"] = filters.filing_id
    if filters.region is not None:
        where.append(_in_region("region"))
        params["region"] = region_prefix(filters.region) + "%"
    if scope:
        where.append("(" + " OR ".join(_in_region(f"scope{i}") for i in range(len(scope))) + ")")
        params.update({f"scope{i}": region_prefix(r) + "%" for i, r in enumerate(scope)})
    if filters.since is not None:
        where.append("a.at >= :since")
        params["since"] = filters.since
    if filters.until is not None:
        where.append("a.at < :until")
        params["until"] = filters.until
    if filters.events:
        names = [f":event{i}" for i in range(len(filters.events))]
        where.append(f"a.event IN ({', '.join(names)})")
        params.update({f"event{i}": e for i, e in enumerate(filters.events)})
    sql = f"SELECT a.* FROM audit_record a WHERE {' AND '.join(where)} ORDER BY a.seq LIMIT :batch"
    return sql, params


def page(
    store: Store, filters: Filters, *, after: int, limit: int, scope: tuple[str, ...] = ()
) -> list[dict[str, Any]]:
    """One page of the records meeting `filters` within `scope`, after seq `after`, in export
    form and through the masking guard (the HTTP API's audit pages)."""
    sql, params = _query(filters, scope)
    with store.read() as tx:
        rows = tx.all(sql, {**params, "after": after, "upto": 2**62, "batch": limit})
    return [mask_record(_export_form(r))[0] for r in rows]


def records(
    store: Store,
    filters: Filters,
    upto: int,
    *,
    batch: int = BATCH,
    progress: Progress | None = None,
) -> Iterator[dict[str, Any]]:
    """The records meeting `filters` up to seq `upto` (the checkpoint's count: records
    appended while the export runs are left out on every database), in seq order, `batch` at
    a time, each in export form: `at` in ISO UTC as the hash covers it, `inputs` parsed."""
    sql, params = _query(filters)
    after = 0
    with store.read() as tx:
        while True:
            rows = tx.all(sql, {**params, "after": after, "upto": upto, "batch": batch})
            for row in rows:
                yield _export_form(row)
            if len(rows) < batch:
                break
            after = rows[-1]["seq"]
            if progress is not None:
                progress(after)
    if progress is not None:
        progress(upto)


def _export_form(row: Mapping[str, Any]) -> dict[str, Any]:
    record = {c: row[c] for c in COLUMNS}
    record["at"] = row["at"].astimezone(UTC).isoformat()
    record["inputs"] = json.loads(row["inputs"])
    record["on_behalf"] = bool(row["on_behalf"])
    return record


# -- writing ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Exported:
    """What the checkpoint file holds."""

    database: Checkpoint
    filters: Filters
    format: str
    exported: int
    sha256: str
    masked_seqs: tuple[int, ...]
    exported_at: datetime

    def to_dict(self) -> dict[str, Any]:
        return {
            **self.database.to_dict(),
            "format": self.format,
            "filters": self.filters.to_dict(),
            "exported": self.exported,
            "sha256": self.sha256,
            "masked_seqs": list(self.masked_seqs),
            "exported_at": self.exported_at.isoformat(),
        }


class _HashingWriter:
    """Writes bytes through and hashes exactly what was written."""

    def __init__(self, out: IO[bytes]) -> None:
        self.out = out
        self.digest = hashlib.sha256()

    def write(self, data: bytes) -> None:
        self.out.write(data)
        self.digest.update(data)


def write_export(
    rows: Iterable[Mapping[str, Any]],
    out: IO[bytes],
    fmt: str,
    database: Checkpoint,
    filters: Filters,
    now: datetime,
) -> Exported:
    """Write `rows` (from `records`) to `out`, each through the masking guard."""
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {', '.join(FORMATS)}")
    sink = _HashingWriter(out)
    encode = _jsonl_line if fmt == "jsonl" else _csv_line
    if fmt == "csv":
        sink.write(_csv_row(list(CSV_COLUMNS)))
    count = 0
    masked_seqs: list[int] = []
    for row in rows:
        record, masked = mask_record(row)
        if masked:
            masked_seqs.append(record["seq"])
        sink.write(encode(record))
        count += 1
    return Exported(database, filters, fmt, count, sink.digest.hexdigest(), tuple(masked_seqs), now)


def _jsonl_line(record: Mapping[str, Any]) -> bytes:
    return (json.dumps(record, ensure_ascii=False) + "\n").encode()


def _csv_line(record: Mapping[str, Any]) -> bytes:
    cells: list[str] = []
    for column in COLUMNS:
        value = record[column]
        if value is None:
            cells.append("")
        elif column == "inputs":
            cells.append(canonical_inputs(value))
        elif column == "on_behalf":
            cells.append("true" if value else "false")
        else:
            cells.append(str(value))
    cells.append(" ".join(c for c in COLUMNS if record[c] is None))
    return _csv_row(cells)


def _csv_row(cells: list[str]) -> bytes:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerow(cells)
    return buffer.getvalue().encode()


# -- verifying ----------------------------------------------------------------------------------


@dataclass
class ExportVerification:
    records: int = 0
    first_seq: int | None = None
    last_seq: int | None = None
    masked_seqs: tuple[int, ...] = ()
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "records": self.records,
            "first_seq": self.first_seq,
            "last_seq": self.last_seq,
            "masked_seqs": list(self.masked_seqs),
            "problems": self.problems,
        }


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def read_export(path: Path, fmt: str) -> Iterator[tuple[int, dict[str, Any] | str]]:
    """(line number, record) for each record of an export file, or (line number, problem) for
    a line that is not a record."""
    with path.open(encoding="utf-8", newline="") as f:
        if fmt == "jsonl":
            for number, line in enumerate(f, 1):
                try:
                    yield number, _record_from_json(json.loads(line))
                except (ValueError, KeyError, TypeError) as exc:
                    yield number, f"line {number}: not an audit record ({_why(exc)})"
            return
        reader = csv.reader(f)
        header = next(reader, None)
        if header != list(CSV_COLUMNS):
            yield 1, "line 1: the CSV header is not the export's columns"
            return
        for row in reader:
            number = reader.line_num
            try:
                yield number, _record_from_csv(row)
            except (ValueError, KeyError, TypeError) as exc:
                yield number, f"line {number}: not an audit record ({_why(exc)})"


def _why(exc: Exception) -> str:
    # The exception's type only: its message could quote the line, personal data included.
    return f"missing field {exc}" if isinstance(exc, KeyError) else type(exc).__name__


def _record_from_json(data: Any) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise TypeError("not an object")
    record = {c: data[c] for c in COLUMNS}
    if not isinstance(record["seq"], int) or not isinstance(record["inputs"], dict):
        raise TypeError("seq or inputs of the wrong type")
    record["inputs"] = canonical_inputs(record["inputs"])
    return record


def _record_from_csv(row: list[str]) -> dict[str, Any]:
    if len(row) != len(CSV_COLUMNS):
        raise ValueError("wrong number of cells")
    cells = dict(zip(CSV_COLUMNS, row, strict=True))
    nulls = set(cells.pop("nulls").split())
    if not nulls <= NULLABLE:
        raise ValueError("a column that cannot be empty is named empty")
    record: dict[str, Any] = {c: None if c in nulls else v for c, v in cells.items()}
    record["seq"] = int(record["seq"])
    if record["on_behalf"] not in ("true", "false"):
        raise ValueError("on_behalf must be true or false")
    record["on_behalf"] = record["on_behalf"] == "true"
    return record


def verify_export(
    path: Path, checkpoint: Mapping[str, Any], progress: Progress | None = None
) -> ExportVerification:
    """Re-verify an export against its checkpoint: the file's bytes, each record's own hash,
    the links between records whose seqs are consecutive, the filters, and for a whole trail
    that it is the whole chain (from seq 1 to the checkpoint's head). Problems name seqs and
    lines, never content."""
    database = Checkpoint.from_dict(checkpoint)
    fmt = str(checkpoint.get("format", "jsonl"))
    if fmt not in FORMATS:
        raise ValueError(f"the checkpoint's format must be one of {', '.join(FORMATS)}")
    filters = Filters.from_dict(checkpoint.get("filters") or {})
    excused = frozenset(int(s) for s in checkpoint.get("masked_seqs") or ())
    result = ExportVerification()
    problems = result.problems
    if file_sha256(path) != checkpoint.get("sha256"):
        problems.append("the file's SHA-256 differs from the checkpoint's (the file changed)")
    previous: Mapping[str, Any] | None = None
    masked: list[int] = []
    for number, item in read_export(path, fmt):
        if isinstance(item, str):
            problems.append(item)
            continue
        record = item
        seq = record["seq"]
        result.records += 1
        if result.first_seq is None:
            result.first_seq = seq
        if previous is not None and seq <= previous["seq"]:
            problems.append(f"record {seq} (line {number}): out of sequence order")
        if record_hash(record) != record["hash"]:
            if seq in excused:
                masked.append(seq)
            else:
                problems.append(f"record {seq}: content does not match its hash")
        if previous is not None and seq == previous["seq"] + 1:
            if record["prev_hash"] != previous["hash"]:
                problems.append(f"record {seq}: does not follow the record before it")
        elif previous is None and seq == 1 and record["prev_hash"] != GENESIS_HASH:
            problems.append("record 1: does not start the chain")
        if not filters.admits(record):
            problems.append(f"record {seq}: outside the export's filters")
        if filters.whole_trail and seq != (previous["seq"] + 1 if previous else 1):
            problems.append(f"record {seq}: the whole trail was exported, a record is missing")
        previous = record
        if progress is not None and result.records % 1000 == 0:
            progress(result.records)
    result.last_seq = previous["seq"] if previous else None
    if result.records != checkpoint.get("exported"):
        problems.append(
            f"the file has {result.records} records, the checkpoint says "
            f"{checkpoint.get('exported')}"
        )
    if filters.whole_trail:
        head = (previous["seq"], previous["hash"]) if previous else (0, GENESIS_HASH)
        if head != (database.count, database.head_hash):
            problems.append(
                "the last record is not the checkpoint's head (the trail was cut or rewritten)"
            )
    if progress is not None:
        progress(result.records)
    result.masked_seqs = tuple(masked)
    return result


def checkpoint_path(output: Path) -> Path:
    """Where the checkpoint goes by default: beside the export."""
    return output.with_name(output.name + ".checkpoint.json")

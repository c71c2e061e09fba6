"""Attack on parquet1 (sources.check_parquet, CheckedParquet, _descriptor_name, _dictionary_columns,
SourceFile.checked): each Parquet input decoded once by PyArrow, kept open, and read by Polars as
/proc/self/fd/N.

Tried, and held:
- every byte of a dictionary-encoded column's chunk (its dictionary page, its data page: indices
  out of range, a bit width, a page header) overwritten with 00/FF/7F/03/80, 1,367 files through
  `report` in one process: never a panic, never a traceback, never a line on stderr; every refused
  file is one line naming its path (indices out of the dictionary: "Value at position 56 out of
  bounds: 3"; a dictionary of bytes that are not UTF-8: "Invalid UTF8 sequence").
- hypothesis damaging small Parquet files with dictionary, plain, mixed (dictionary in one row
  group, plain in another) and large_string columns (test below).

Broken, fixed here:
- a Parquet input replaced by rename after its check: SourceFile.expected_rows opened the path
  again, and the run stopped with "cannot read input: parquet: File out of specification",
  naming no file. It reads the checked file, as every other read.
- `audit --invoice x.parquet --invoice-format focus`: the format named, detect (the only place a
  Parquet invoice was checked) was skipped, and Polars read a damaged invoice unchecked: a panic
  and a Rust backtrace, exit 1 ("Thrift out of range"; "offset + length <= self.length"). The FOCUS
  reader now checks it and reads the checked file (invoices._checked_parquet).
- the Spark engine on any Parquet input: its plans are serialized and collected by executors, in
  other processes, where /proc/self/fd/N names nothing ("the Spark job failed: FileNotFoundError:
  ... /proc/self/fd/12") or another file of that process. A run whose plans are shipped now reads
  Parquet by path (sources.one_reading(shipped=True)).
"""

from __future__ import annotations

import json
from decimal import Decimal as D
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from analyzer import Options, analyze
from analyzer.cli import main

MODELS = ["claude-sonnet-4-5", "claude-opus-4-6", "claude-haiku-4-5"]


def _table(n: int = 30) -> pa.Table:
    return pa.table({
        "request_id": [f"req_{i:04d}" for i in range(n)],
        "timestamp": [f"2026-10-01T00:{i % 60:02d}:00Z" for i in range(n)],
        "model": [MODELS[i % 3] for i in range(n)],
        "input_tokens": [str(1000) for _ in range(n)],
        "output_tokens": [str(100) for _ in range(n)],
    })


def _write(path: Path, n: int = 30, **kw) -> str:
    pq.write_table(_table(n), path, compression="NONE", **kw)
    return str(path)


# 10 requests of each model, 1,000 in / 100 out:
# Sonnet 4.5 ($3/$15 per MTok): 10 x (3,000 + 1,500) / 1e6 = 0.045
# Opus 4.6 ($5/$25): 10 x (5,000 + 2,500) / 1e6 = 0.075
# Haiku 4.5 ($1/$5): 10 x (1,000 + 500) / 1e6 = 0.015
COST = D("0.135")


def test_spark_reads_a_parquet_input(tmp_path):
    """The plans run on Spark's executors, in other processes: never by this one's descriptors."""
    pytest.importorskip("pyspark")
    from analyzer import engine_spark
    from analyzer.writers import render

    path = _write(tmp_path / "log.parquet")
    session = engine_spark.session("local[2]")
    try:
        reps = [json.loads(render(run([path], ["model"], Options()), "json"))
                for run in (analyze, engine_spark.analyze)]
        acc = engine_spark.price([path], str(tmp_path / "rows.csv"), "csv", Options())
    finally:
        session.stop()
    assert reps[0] == reps[1]
    assert D(reps[1]["totals"]["cost"]) == COST and reps[1]["accounting"]["priced"] == 30
    assert acc.priced == 30
    rows = (tmp_path / "rows.csv").read_text()
    assert "/proc/self/fd" not in rows and rows.count("\n") == 31


DAMAGED = Path(__file__).parents[2] / "fixtures" / "damaged-parquet"
SAMPLE = Path(__file__).parents[2] / "fixtures" / "sample" / "october.csv"


@pytest.mark.parametrize("name, said", [
    ("sample-footer-file-rows.parquet", "its footer counts 31 rows, its row groups 16"),
    ("sample-encoding.parquet", "Unknown encoding type."),
    ("hourly-levels.parquet", "Number of decoded rep / def levels do not match num_values in page header"),
])
def test_a_damaged_focus_invoice_named_by_its_format_is_one_line(tmp_path, name, said):
    """--invoice-format focus skipped detect, the only place a Parquet invoice was checked: Polars
    read it unchecked and panicked (a Rust backtrace, exit 1)."""
    invoice = tmp_path / "focus.parquet"
    invoice.write_bytes((DAMAGED / name).read_bytes())
    r = CliRunner().invoke(main, ["audit", str(SAMPLE), "--invoice", str(invoice), "--invoice-format", "focus"])
    assert r.exit_code == 2, r.output
    assert r.output == f"llm-cost: error: {invoice}: cannot read (damaged Parquet: {said})\n"


def _replaced_after_check(monkeypatch, path: Path, new: bytes) -> None:
    """The file at `path` replaced by rename (a new inode) right after the run checked it: as a
    collector rotating its export while llm-cost reads it."""
    from analyzer import sources

    checked = sources.check_parquet

    def check_then_replace(p):
        found = checked(p)
        if p == str(path):
            (path.parent / "new.tmp").write_bytes(new)
            (path.parent / "new.tmp").replace(path)
        return found
    monkeypatch.setattr(sources, "check_parquet", check_then_replace)


@pytest.mark.parametrize("new", ["text", "damaged", "other rows"])
@pytest.mark.parametrize("command", [["report", "--format", "json"], ["price"]])
def test_a_parquet_input_replaced_after_its_check_is_read_as_checked(tmp_path, monkeypatch, new, command):
    """SourceFile.expected_rows (sizing the dedupe passes) opened the path again: a file replaced
    since stopped the run, "cannot read input: parquet: File out of specification", naming no file;
    or counted the new file's rows. Every read is of the checked file now."""
    path = tmp_path / "log.parquet"
    _write(path)
    other = tmp_path / "other.parquet"
    _write(other, n=90)
    data = {"text": b"hello\n", "damaged": (DAMAGED / "sample-encoding.parquet").read_bytes(),
            "other rows": other.read_bytes()}[new]
    _replaced_after_check(monkeypatch, path, data)
    out = tmp_path / ("out.json" if command[0] == "report" else "out.csv")
    r = CliRunner().invoke(main, [*command, str(path), "-o", str(out)])
    assert r.exit_code == 0, r.output
    if command[0] == "report":
        rep = json.loads(out.read_text())
        assert (D(rep["totals"]["cost"]), rep["accounting"]["rows_read"]) == (COST, 30)
    else:
        lines = out.read_text().splitlines()
        assert len(lines) == 31 and all(f",{path}," in line for line in lines[1:])

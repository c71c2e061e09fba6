"""Parquet that Polars' reader panics on: a damaged page, or a column of bytes.

A panic is not an error Python code can rely on catching (pyo3's PanicException is a BaseException,
and Rust prints a backtrace on stderr first), so every Parquet input is decoded once by PyArrow before
Polars reads it (sources.check_parquet). The damaged files are fixtures/damaged-parquet/ (see
its README for where each came from)."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import polars as pl
import pytest
from click.testing import CliRunner

from analyzer.cli import main

DAMAGED = Path(__file__).parents[2] / "fixtures" / "damaged-parquet"
CASES = {
    "hourly-index-count.parquet": "Invalid number of indices: 0",
    "hourly-levels.parquet": "Number of decoded rep / def levels do not match num_values in page header",
    "spend-bit-width.parquet": "Invalid or corrupted bit_width 182. Maximum allowed is 32.",
    "sample-column-metadata.parquet": "Invalid column metadata (corrupt file?)",
    "sample-encoding.parquet": "Unknown encoding type.",
    # (PyArrow aborted the process reading this chunk's statistics: "terminate called after throwing
    # an instance of 'parquet::ParquetException'", no line at all; tests/test_fuzz.py, December 2026)
    "usage-physical-type.parquet": "column 'context_window' in row group 1 is of type UNKNOWN, its schema says "
                                   "BYTE_ARRAY",
}


@pytest.mark.parametrize("command", ["report", "price"])
@pytest.mark.parametrize("name", sorted(CASES))
def test_a_damaged_page_is_one_line_naming_the_file(tmp_path, name, command):
    path = DAMAGED / name
    extra = ["-o", str(tmp_path / "rows.csv")] if command == "price" else []
    r = CliRunner().invoke(main, [command, str(path), "--quarantine", str(tmp_path / "q.jsonl"), *extra])
    assert r.exit_code == 2, r.output
    assert r.output == f"llm-cost: error: {path}: cannot read (damaged Parquet: {CASES[name]})\n"
    assert not (tmp_path / "rows.csv").exists() and not (tmp_path / "q.jsonl").exists()


def test_a_damaged_file_found_in_a_tree_is_refused_too(tmp_path):
    """Found by a walk beside good logs: refused, not skipped (a log the walk found could hold spend)."""
    (tmp_path / "logs").mkdir()
    good = pl.read_csv(Path(__file__).parents[2] / "fixtures" / "sample" / "october.csv", infer_schema=False)
    good.write_parquet(tmp_path / "logs" / "good.parquet")
    (tmp_path / "logs" / "bad.parquet").write_bytes((DAMAGED / "sample-encoding.parquet").read_bytes())
    r = CliRunner().invoke(main, ["report", str(tmp_path / "logs")])
    assert r.exit_code == 2, r.output
    assert r.output.startswith(f"llm-cost: error: {tmp_path / 'logs' / 'bad.parquet'}: cannot read (damaged Parquet:")


def _canonical(request_id, model) -> pl.DataFrame:
    return pl.DataFrame({"request_id": request_id, "timestamp": ["2026-11-01T00:00:00Z"] * 2,
                         "model": model, "input_tokens": [1000, 2000], "output_tokens": [100, 0]})


def test_a_column_of_bytes_holding_text_is_read_as_text(tmp_path):
    """BINARY without the UTF-8 annotation is how older Spark and Hive write strings. Polars panicked
    writing such a column into a record's text ("Writing BinaryView to JSON")."""
    path = tmp_path / "bytes.parquet"
    _canonical([b"r1", b"r2"], [b"claude-sonnet-4-5"] * 2).write_parquet(path)
    r = CliRunner().invoke(main, ["report", str(path), "--by", "model", "--format", "json", "-o", str(tmp_path / "r.json")])
    assert r.exit_code == 0, r.output
    rep = json.loads((tmp_path / "r.json").read_text())
    # Sonnet 4.5, $3 in / $15 out per MTok: 3,000 x 3 + 100 x 15 = 10,500 / 1e6
    assert [(row["model"], Decimal(row["cost"])) for row in rep["rows"]] == [("claude-sonnet-4-5-20250929", Decimal("0.0105"))]


def test_a_column_of_bytes_that_are_not_text_is_refused_naming_it(tmp_path):
    path = tmp_path / "bytes.parquet"
    _canonical([b"\xff\xfe", b"r2"], ["claude-sonnet-4-5"] * 2).write_parquet(path)
    r = CliRunner().invoke(main, ["report", str(path)])
    assert r.exit_code == 2, r.output
    assert r.output == f"llm-cost: error: {path}: cannot read (column 'request_id' holds bytes that are not UTF-8 text)\n"


def test_a_damaged_parquet_invoice_is_one_line(tmp_path):
    """`audit --invoice` reads a FOCUS invoice as Parquet too."""
    logs = Path(__file__).parents[2] / "fixtures" / "sample" / "october.csv"
    invoice = tmp_path / "focus.parquet"
    invoice.write_bytes((DAMAGED / "sample-encoding.parquet").read_bytes())
    r = CliRunner().invoke(main, ["audit", str(logs), "--invoice", str(invoice)])
    assert r.exit_code == 2, r.output
    assert r.output == f"llm-cost: error: {invoice}: cannot read (damaged Parquet: Unknown encoding type.)\n"


# ----------------------------------------------------------------------------------------------
# A store's data file with the damage of usage-physical-type.parquet


def _chunk_type_offset(data: bytes, column: str) -> int:
    """The byte of the footer holding the type of `column`'s chunk in row group 1: Thrift's compact
    encoding of ColumnMetaData opens with field 1, the type (0x15, then the type as a zigzag varint),
    then field 2, the encodings (0x19, a list header and one byte each), then field 3, the path in
    the schema (0x19 0x18, the name's length and the name)."""
    import re

    footer = len(data) - 8 - int.from_bytes(data[-8:-4], "little")
    name = column.encode()
    for m in re.finditer(rb"\x15[\x00-\x0f]\x19([\x15-\xf5])", data[footer:]):
        k = footer + m.end() + (m.group(1)[0] >> 4)
        if data[k:k + 3] == b"\x19\x18" + bytes([len(name)]) and data[k + 3:k + 3 + len(name)] == name:
            return footer + m.start() + 1
    raise AssertionError(f"no chunk of {column} found")


def test_a_store_data_file_whose_chunk_type_is_damaged_is_one_line_naming_it(tmp_path):
    """PyArrow aborted the process reading a store data file's footer statistics when a chunk's type
    was not its schema's (one footer byte, as in usage-physical-type.parquet): `store compact`,
    summarizing a file without a summary, died with "terminate called ...", no line. Run in a child
    process: an abort would kill pytest."""
    import os
    import shutil
    import subprocess
    import sys

    import pyarrow.parquet as pq

    from analyzer import store

    root = Path(__file__).parents[2]
    st = tmp_path / "store"
    store.ingest([str(root / "fixtures" / "sample")], str(st))
    (part,) = (st / "_llm_month=2026-11").glob("*.parquet")  # (a month of one file: compact leaves it as it is)
    shutil.rmtree(st / "_llm_cost" / "summary")  # (a store older than summaries: compact writes them)
    data = bytearray(part.read_bytes())
    data[_chunk_type_offset(bytes(data), "input_tokens")] = 0x4D  # (the fixture's byte: type UNKNOWN)
    part.write_bytes(bytes(data))
    md = pq.ParquetFile(part).metadata
    j = [md.schema.column(i).name for i in range(md.num_columns)].index("input_tokens")
    assert (md.row_group(0).column(j).physical_type, md.schema.column(j).physical_type) == ("UNKNOWN", "INT64")
    rel = f"_llm_month=2026-11/{part.name}"
    why = "damaged Parquet: column 'input_tokens' in row group 1 is of type UNKNOWN, its schema says INT64"

    def run(*args):
        return subprocess.run([sys.executable, "-m", "analyzer", *args, str(st)], capture_output=True, text=True,
                              cwd=root, env={**os.environ, "PYTHONPATH": str(root)})

    r = run("store", "compact")
    assert "terminate" not in r.stderr
    assert (r.returncode, r.stdout) == (2, "")
    assert r.stderr == f"llm-cost: error: damaged store: {st}: data file {rel}: {why} (see `llm-cost store status {st}`)\n"
    r = run("store", "status")
    assert r.returncode == 1 and f"DAMAGED: {rel}: {why}\n" in r.stdout and r.stdout.endswith("damaged\n")

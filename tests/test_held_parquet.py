"""Checked Parquet files held open for Polars (analyzer/held.py): how long (a scope: a pipeline call,
a CLI command, a store file's ingest; never the process), and a file written again after its check
(the same inode: the kept descriptor reads the new bytes) stopping the run in one line naming it,
on every command that reads Parquet, also when the write lands while Polars reads and it panics."""

from __future__ import annotations

import gc
import json
import os
from decimal import Decimal as D
from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from analyzer import analyze, held, price_requests, sources
from analyzer.cli import main

ROOT = Path(__file__).resolve().parents[1]
DAMAGED = ROOT / "fixtures" / "damaged-parquet"
SAMPLE = ROOT / "fixtures" / "sample" / "october.csv"
MODELS = ["claude-sonnet-4-5", "claude-opus-4-6", "claude-haiku-4-5"]
# 10 requests of each model, 1,000 in / 100 out: 10 x (3,000 + 1,500 + 5,000 + 2,500 + 1,000 + 500) / 1e6
COST = D("0.135")


def _write(path: Path, n: int = 30) -> str:
    pq.write_table(pa.table({
        "request_id": [f"req_{path.stem}_{i:04d}" for i in range(n)],
        "timestamp": [f"2026-10-01T00:{i % 60:02d}:00Z" for i in range(n)],
        "model": [MODELS[i % 3] for i in range(n)],
        "input_tokens": [1000] * n,
        "output_tokens": [100] * n,
    }), path, compression="NONE")
    return str(path)


def _open_descriptors(folder: Path) -> int:
    """This process's descriptors of files in `folder` (the logs)."""
    names = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            names.append(os.readlink(f"/proc/self/fd/{fd}"))
        except OSError:
            continue
    return sum(name.startswith(f"{folder}/") for name in names)


def _overwrite(path, damaged: str = "hourly-levels.parquet") -> None:
    with open(path, "r+b") as f:  # (the same inode: a descriptor kept open reads these bytes)
        f.write((DAMAGED / damaged).read_bytes())
        f.truncate()


def _overwritten_after_check(monkeypatch, path: Path) -> None:
    checked = sources.check_parquet

    def check_then_overwrite(p):
        found = checked(p)
        if p == str(path):
            _overwrite(p)
        return found
    monkeypatch.setattr(sources, "check_parquet", check_then_overwrite)
    from analyzer import invoices
    monkeypatch.setattr(invoices, "check_parquet", check_then_overwrite)


def _focus_invoice(path: Path) -> str:
    pl.read_csv(ROOT / "fixtures" / "invoices" / "focus_sample.csv", infer_schema=False).with_columns(
        pl.col("BilledCost").cast(pl.Float64)).write_parquet(path)
    return str(path)


@pytest.mark.parametrize("command", ["report", "price", "whatif", "audit log", "audit invoice", "ingest"])
def test_a_parquet_file_written_again_after_its_check_is_one_line_on_every_command(tmp_path, monkeypatch, capfd,
                                                                                   command):
    """Was (report): the kept descriptor read the new bytes, unchecked: a panic and a Rust backtrace,
    exit 1. The file is compared with its stamp before Polars reads it: one line naming it, exit 2."""
    log = tmp_path / "log.parquet"
    _write(log)
    target = log
    args = {"report": ["report", str(log)], "price": ["price", str(log), "-o", str(tmp_path / "rows.csv")],
            "whatif": ["whatif", str(log), "--batch"],
            "audit log": ["audit", str(log), "--invoice", str(ROOT / "fixtures" / "invoices" / "focus_sample.csv")],
            "ingest": ["ingest", str(log), "--store", str(tmp_path / "store")]}.get(command)
    if command == "audit invoice":
        target = tmp_path / "focus.parquet"
        args = ["audit", str(SAMPLE), "--invoice", _focus_invoice(target), "--invoice-format", "focus"]
    _overwritten_after_check(monkeypatch, target)
    r = CliRunner().invoke(main, [*args, "--quarantine", str(tmp_path / "q.jsonl")] if command != "ingest" else args)
    assert r.exit_code == 2, r.output
    assert r.output.startswith(f"llm-cost: error: {target}: ") and r.output.count("\n") == 1, r.output
    assert "panicked" not in capfd.readouterr().err  # (refused before Polars read a byte of it)
    assert not (tmp_path / "rows.csv").exists()


@pytest.mark.parametrize("command", ["report", "price"])
def test_a_parquet_file_written_again_while_polars_reads_it_is_one_line(tmp_path, monkeypatch, capfd, command):
    """The write lands after the last comparison before the read (the file's plans made, not yet run):
    Polars reads the new bytes and panics (PanicException). The comparison after the failure names
    the file. (The damaged file is the log itself with bytes overwritten: same size, same columns.)"""
    log = tmp_path / "log.parquet"
    log.write_bytes((DAMAGED / "hourly.parquet").read_bytes())  # (the undamaged file: bytes, not a writer's output)
    assert log.stat().st_size == (DAMAGED / "hourly-levels.parquet").stat().st_size
    scan = sources.SourceFile.scan_parquet
    plans = []

    def scan_then_overwrite(self):
        lf = scan(self)  # (compared with its stamp here: the same)
        plans.append(self.path)
        if len(plans) == 3:  # (the peek's 2 scans, then the file's plan: the last, read next)
            _overwrite(self.path)
        return lf
    monkeypatch.setattr(sources.SourceFile, "scan_parquet", scan_then_overwrite)
    out = tmp_path / "rows.csv"
    r = CliRunner().invoke(main, [command, str(log), *(["-o", str(out)] if command == "price" else [])])
    assert len(plans) == 3
    assert "panicked" in capfd.readouterr().err  # (Polars read the new bytes: the race, not a refusal before)
    assert r.exit_code == 2, r.output
    assert r.output == f"llm-cost: error: {log}: changed while being read (written again); run again\n"
    assert not out.exists()


def test_a_polars_panic_on_a_file_that_did_not_change_is_one_line(tmp_path, monkeypatch):
    """A damaged file the check lets through (here: no check at all) makes Polars panic: one line,
    exit 2, not a traceback (the panic's own lines on stderr cannot be kept from it)."""
    log = tmp_path / "log.parquet"
    log.write_bytes((DAMAGED / "hourly-levels.parquet").read_bytes())
    monkeypatch.setattr(sources, "_check_parquet", lambda file, pa, pq: ())
    r = CliRunner().invoke(main, ["report", str(log)])
    assert r.exit_code == 2, r.output
    assert r.output.startswith("llm-cost: error: cannot read input: Polars failed (") and r.output.count("\n") == 1


def test_pipeline_calls_keep_no_descriptor_open(tmp_path):
    """_CHECKED_OPEN kept every checked file open until the process ended (a quarter of the
    process's descriptors, then read by path): a library pricing logs night after night ran out.
    Now a call's files are closed when it returns; price_requests' rows hold theirs until closed."""
    logs = [_write(tmp_path / f"log{i}.parquet") for i in range(5)]
    before = 0
    for _ in range(3):
        report = analyze(logs, ["model"])
        assert report.totals["cost"] == 5 * COST
    assert _open_descriptors(tmp_path) == before
    rows, acc = price_requests(logs)
    assert _open_descriptors(tmp_path) == before + 5  # (held for the rows, read when they are written)
    with rows:
        assert rows.lazy().select(pl.col("cost").sum()).collect().item() == 5 * COST
    assert _open_descriptors(tmp_path) == before
    rows, acc = price_requests(logs)
    rows = rows.with_columns(pl.lit(1).alias("x"))  # (the derived rows hold them too)
    gc.collect()
    assert rows.lazy().select(pl.len()).collect().item() == 150
    del rows
    gc.collect()  # (rows dropped unclosed: closed when nothing refers to them)
    assert _open_descriptors(tmp_path) == before


def test_cli_commands_keep_no_descriptor_open(tmp_path):
    log = _write(tmp_path / "log.parquet")
    runner, before = CliRunner(), 0
    for args in (["report", log, "-q"], ["price", log, "-o", str(tmp_path / "rows.csv"), "-q"],
                 ["ingest", log, "--store", str(tmp_path / "store"), "-q"]):
        r = runner.invoke(main, args)
        assert r.exit_code == 0, r.output
        assert _open_descriptors(tmp_path) == before, args


def test_a_store_ingest_checks_a_parquet_file_once(tmp_path, monkeypatch):
    """The ingest opens a file three times (empty?, its format, its rows): checked once, in the scope
    of the file's ingest, while the file there is the one checked."""
    log = _write(tmp_path / "log.parquet")
    calls = []
    check = sources._check_parquet
    monkeypatch.setattr(sources, "_check_parquet", lambda *a: calls.append(1) or check(*a))
    r = CliRunner().invoke(main, ["ingest", log, "--store", str(tmp_path / "store"), "-q"])
    assert r.exit_code == 0, r.output
    assert len(calls) == 1


@pytest.mark.parametrize("change", ["none", "renamed over", "written again"])
def test_past_the_descriptor_cap_files_are_read_by_path_and_compared(tmp_path, monkeypatch, change):
    """Past a quarter of the process's descriptors, Polars reads a checked file by its path: a file
    replaced or written again since its check is refused (never read unchecked); one unchanged is read."""
    monkeypatch.setattr(held, "_descriptor_cap", lambda: 0)
    log = tmp_path / "log.parquet"
    _write(log)
    checked = sources.check_parquet

    def then_changed(p):
        found = checked(p)
        assert found.source == p  # (by path)
        if change == "renamed over":
            (tmp_path / "new").write_bytes((DAMAGED / "hourly-levels.parquet").read_bytes())
            os.replace(tmp_path / "new", p)
        elif change == "written again":
            _overwrite(p)
        return found
    monkeypatch.setattr(sources, "check_parquet", then_changed)
    r = CliRunner().invoke(main, ["report", str(log), "--format", "json", "-q"])
    if change == "none":
        assert r.exit_code == 0, r.output
        assert D(json.loads(r.output)["totals"]["cost"]) == COST
    else:
        assert r.exit_code == 2, r.output
        why = "replaced by another file" if change == "renamed over" else "written again"
        assert r.output.startswith(f"llm-cost: error: {log}: changed while being read ({why}"), r.output


def test_a_parquet_file_written_again_during_its_check_is_one_line(tmp_path, monkeypatch):
    """The check read some pages of the old bytes and some of the new: it vouches for neither."""
    log = tmp_path / "log.parquet"
    _write(log)
    other = tmp_path / "other.parquet"
    _write(other, n=31)
    check = sources._check_parquet

    def check_then_overwrite(file, pa, pq):
        found = check(file, pa, pq)
        with open(log, "r+b") as f:
            f.write(other.read_bytes())
        return found
    monkeypatch.setattr(sources, "_check_parquet", check_then_overwrite)
    r = CliRunner().invoke(main, ["report", str(log)])
    assert r.exit_code == 2, r.output
    assert r.output == f"llm-cost: error: {log}: cannot read (it changed while it was checked: run again)\n"

"""`--engine spark` gives the Polars engine's report: every decimal and every accounting count.

One local Spark session for the whole test session (local[2]: starting one costs seconds). Each case
runs both engines on the same input and compares the JSON reports, which hold the rows, the totals
and the accounting; the quarantine file's path is the only text allowed to differ."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

pytest.importorskip("pyspark")

from analyzer import Options, analyze  # noqa: E402
from analyzer.writers import render  # noqa: E402

from .make_golden import CASES  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
DIALECTS = sorted(p.name for p in (ROOT / "fixtures" / "dialects").iterdir() if p.is_dir() and p.name != "custom-mapping")
BATCH_TIME = "2026-11-20T10:00:00Z"  # (Message Batches results carry no time: not the files' mtime)


@pytest.fixture(scope="session")
def spark():
    from analyzer import engine_spark

    session = engine_spark.session("local[2]")
    yield session
    session.stop()


def both(spark, paths, by, tmp_path, **opts) -> tuple[dict, dict]:
    from analyzer import engine_spark

    cwd = os.getcwd()
    os.chdir(ROOT)  # (relative paths: file names in the reports are the same on every machine)
    try:
        out = []
        for engine, run in (("polars", analyze), ("spark", engine_spark.analyze)):
            q = tmp_path / f"{engine}.jsonl"
            report = run(paths, by, Options(quarantine=str(q), **opts))
            text = json.loads(render(report, "json").replace(str(q), "<quarantine>"))
            out.append(text)
            if q.exists():
                text["quarantined_records"] = q.read_text()
        return out[0], out[1]
    finally:
        os.chdir(cwd)


@pytest.mark.parametrize("name,by", [(n, b) for n, b, _ in CASES])
def test_golden_cases_equal(spark, name, by, tmp_path):
    tz = "Europe/Berlin" if "berlin" in name else "UTC"
    polars, spark_ = both(spark, ["fixtures/sample"], by, tmp_path, tz=tz)
    assert polars["accounting"]["duplicates"] and polars["accounting"]["quarantined"]  # (the sample has both)
    assert spark_ == polars


@pytest.mark.parametrize("dialect", DIALECTS)
def test_every_dialect_equal(spark, dialect, tmp_path):
    polars, spark_ = both(spark, [f"fixtures/dialects/{dialect}"], ["day", "model", "source"], tmp_path,
                          batch_time=BATCH_TIME)
    assert polars["accounting"]["rows_read"] > 0
    assert spark_ == polars


@pytest.mark.parametrize("path,window", [("fixtures/accounting", {"since": "2026-10-01"}),
                                         ("fixtures/hostile", {"until": "2026-11-01"})])
def test_hostile_inputs_and_dates_equal(spark, path, window, tmp_path):
    # Counts past the per-row cap, poisoned cache fields, hostile shapes; rows outside the dates.
    polars, spark_ = both(spark, [path], ["day", "model"], tmp_path, **window)
    a = polars["accounting"]
    assert a["rows_read"] > 0 and (a["filtered_out"] > 0 if "since" in window else True)
    assert spark_ == polars


def test_duplicates_across_files_and_no_dedupe(spark, tmp_path):
    # The same export twice (a retried download) in two scans, which Spark runs as separate tasks: the
    # duplicates are found across them. With --no-dedupe, Claude Code's own repeats are still merged.
    paths = ["fixtures/sample/october.csv", "fixtures/sample/november.jsonl", "fixtures/dialects/claude-code"]
    copy = tmp_path / "again.csv"
    copy.write_bytes((ROOT / "fixtures/sample/october.csv").read_bytes())
    for dedupe in (True, False):
        polars, spark_ = both(spark, [*paths, str(copy)], ["model"], tmp_path, dedupe=dedupe)
        assert polars["accounting"]["repeats"] > 0
        assert (polars["accounting"]["duplicates"] > 1) == dedupe
        assert spark_ == polars


def test_audit_equal(spark, tmp_path):
    from analyzer import engine_spark
    from analyzer.audit import run
    from analyzer.audit_writers import render as render_audit

    cwd = os.getcwd()
    os.chdir(ROOT)
    try:
        texts = [render_audit(run(["fixtures/audit/logs.csv"], "fixtures/audit/cost_report.json",
                                  Options(quarantine=str(tmp_path / "q.jsonl")), "0.01", ["day", "model"],
                                  analyze=analyze_), "json")
                 for analyze_ in (None, engine_spark.analyze)]
    finally:
        os.chdir(cwd)
    assert texts[1] == texts[0] and "claude" in texts[0]


def test_cli_engine_spark(spark, tmp_path):
    from click.testing import CliRunner

    from analyzer.cli import main

    out = {}
    for engine in ("polars", "spark"):
        res = CliRunner().invoke(main, ["report", str(ROOT / "fixtures/sample"), "--by", "model", "--format", "csv",
                                        "--quarantine", str(tmp_path / "q.jsonl"), "--engine", engine, "-q"])
        assert res.exit_code == 0, res.output
        out[engine] = res.output
    assert out["spark"] == out["polars"] and "claude" in out["polars"]
    # --master is a Spark option: with the Polars engine it is a mistake, said in one line.
    res = CliRunner().invoke(main, ["report", str(ROOT / "fixtures/sample"), "--master", "local[2]"])
    assert res.exit_code == 2 and "--master: applies to --engine spark" in res.output

"""`--engine spark` gives the Polars engine's report: every decimal and every accounting count.

One local Spark session for the whole test session (local[2]: starting one costs seconds). Each case
runs both engines on the same input and compares the JSON reports, which hold the rows, the totals
and the accounting; the quarantine file's path is the only text allowed to differ."""

from __future__ import annotations

import json
import os
from decimal import Decimal
from pathlib import Path

import pytest

pytest.importorskip("pyspark")

from analyzer import (  # noqa: E402
    Options,
    analyze,
    sources,  # noqa: E402
)
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


def test_a_record_of_several_rows_gets_one_verdict_on_both_engines(spark, tmp_path):
    # A bad step quarantines its whole response (tests/test_record_verdict.py): the Spark engine runs the
    # same window in each scan's plan (a record's rows come from one line, never split across scans).
    from .test_record_verdict import BAD_STEPS, BROKEN, CLEAN, PLAIN, _stepped

    for name, extra in (("fast", []), ("robust", [BROKEN])):
        path = tmp_path / f"{name}.jsonl"
        path.write_text("".join(x + "\n" for x in [PLAIN, *[_stepped(f"msg_{k}", s) for k, (s, _) in BAD_STEPS.items()],
                                                   CLEAN, *extra]))
        polars, spark_ = both(spark, [str(path)], ["model"], tmp_path, batch_time=BATCH_TIME)
        assert polars["accounting"]["quarantined"] == len(BAD_STEPS) + len(extra)
        assert polars["totals"]["input_tokens"] == 2500
        assert len(polars["quarantined_records"].splitlines()) == len(BAD_STEPS) + len(extra)
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


# --- price and whatif ----------------------------------------------------------------------------

def _price_both(paths, out_dir: Path, fmt: str, **opts) -> tuple[bytes, bytes, dict, dict]:
    """Both engines' `price` output bytes (Spark's from one file) and accountings."""
    from analyzer import engine_spark, price_requests
    from analyzer.writers import sink_rows

    cwd = os.getcwd()
    os.chdir(ROOT)
    try:
        rows, acc = price_requests(paths, Options(quarantine=str(out_dir / "q1.jsonl"), **opts))
        sink_rows(rows, fmt, str(out_dir / f"polars.{fmt}"))
        spark_acc = engine_spark.price(paths, str(out_dir / f"spark.{fmt}"), fmt,
                                       Options(quarantine=str(out_dir / "q2.jsonl"), **opts))
    finally:
        os.chdir(cwd)
    polars, spark_ = acc.as_dict(), spark_acc.as_dict()
    for a in (polars, spark_):
        a.pop("quarantine_file")
    return (out_dir / f"polars.{fmt}").read_bytes(), (out_dir / f"spark.{fmt}").read_bytes(), polars, spark_


def test_price_every_dialect_equal(spark, tmp_path):
    # Every format in one run (one Spark job): the same rows, columns, types and exact decimals,
    # in the same order: the very bytes of the Polars engine's Parquet file.
    paths = [f"fixtures/dialects/{d}" for d in DIALECTS]
    polars, spark_, acc, spark_acc = _price_both(paths, tmp_path, "parquet", batch_time=BATCH_TIME)
    assert spark_acc == acc and acc["repeats"] > 0 and acc["priced"] > 50
    assert spark_ == polars


@pytest.mark.parametrize("fmt,dedupe", [("csv", True), ("jsonl", False)])
def test_price_duplicates_across_files_equal(spark, tmp_path, fmt, dedupe):
    # The sample (a duplicate, quarantined rows, an unknown model) and a second copy of an export:
    # the losing copies are found on the cluster and left out of the rows, as by the Polars engine.
    copy = tmp_path / "again.csv"
    copy.write_bytes((ROOT / "fixtures/sample/october.csv").read_bytes())
    paths = ["fixtures/sample", "fixtures/dialects/claude-code", str(copy)]
    polars, spark_, acc, spark_acc = _price_both(paths, tmp_path, fmt, dedupe=dedupe)
    assert spark_acc == acc and acc["quarantined"] == 6 and acc["repeats"] > 0
    assert (acc["duplicates"] > 1) == dedupe
    assert spark_.decode() == polars.decode()


def test_price_directory_of_parts(spark, tmp_path):
    # `-o rows.parquet/`: one part per file scan, written by its task, then _SUCCESS; read together
    # in part order they are the Polars engine's rows. A directory that holds files is refused.
    import polars as pl

    from analyzer import engine_spark, price_requests
    from analyzer.errors import OutputError

    paths = [str(ROOT / "fixtures/sample/october.csv"), str(ROOT / "fixtures/sample/november.jsonl")]
    out = tmp_path / "rows.parquet"
    opts = Options(quarantine=str(tmp_path / "q.jsonl"))
    engine_spark.price(paths, f"{out}/", "parquet", opts)
    assert sorted(p.name for p in out.iterdir()) == ["_SUCCESS", "part-00000.parquet", "part-00001.parquet"]
    rows, _ = price_requests(paths, opts)
    expected = rows.lazy().collect()
    got = pl.concat([pl.read_parquet(out / f"part-0000{i}.parquet") for i in range(2)])
    assert got.equals(expected) and got.schema == expected.schema and got["cost"].drop_nulls().len() > 10
    with pytest.raises(OutputError, match="not an empty directory"):
        engine_spark.price(paths, f"{out}/", "parquet", opts)


def test_duplicates_removed_on_the_cluster(spark, tmp_path, monkeypatch):
    # 300 requests, each logged twice in another file (the copy with fewer output tokens first), plus a
    # quarantined copy that must not displace a good one: the driver receives only groups (one model,
    # a few statuses), never the rows of repeated ids, and the counts are hand-checked.
    from analyzer import engine_spark

    header = "request_id,timestamp,model,input_tokens,output_tokens\n"
    early = "".join(f"r{i},2026-10-01T10:00:00Z,claude-sonnet-4-5,100,{5 + i % 3}\n" for i in range(300))
    full = "".join(f"r{i},2026-10-01T10:00:00Z,claude-sonnet-4-5,100,10\n" for i in range(300))
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "a.csv").write_text(header + early + "r7,2026-10-01T10:00:00Z,claude-sonnet-4-5,100,oops\n")
    (logs / "b.csv").write_text(header + full)
    seen = []
    collect = engine_spark._collect
    monkeypatch.setattr(engine_spark, "_collect", lambda df, t: seen.append(collect(df, t)) or seen[-1])
    polars, spark_ = both(spark, [str(logs)], ["model"], tmp_path)
    assert spark_ == polars
    a = polars["accounting"]
    assert (a["rows_read"], a["priced"], a["duplicates"], a["quarantined"]) == (601, 300, 300, 1)
    # Every kept copy is the complete one: 300 x 10 output tokens; 300 x 100 input tokens.
    assert (polars["totals"]["output_tokens"], polars["totals"]["input_tokens"]) == (3000, 30000)
    assert max(df.height for df in seen) <= 4


def test_a_copy_its_labels_quarantine_does_not_compete_on_the_cluster(spark, tmp_path):
    # Label checks run on the driver, after the window: each scan's plan says whether a row's labels
    # will pass them (labels.fit), and a row that will not does not compete (pipeline._competing).
    from .test_dedupe_labels import BAD, copy, cost

    logs = tmp_path / "logs"
    logs.mkdir()
    first, second = [], []
    for i, (labels, _) in enumerate(BAD.values()):
        first += [copy(64 + 10 * i, rid=f"b{i}", **labels), copy(64, rid=f"v{i}")]  # bad first, more tokens
        second += [copy(64, rid=f"b{i}"), copy(64, rid=f"v{i}", **labels)]  # bad second, as many tokens
    first.append(copy(640, rid="t", service_tier=" STANDARD "))  # valid once cleaned: it wins
    second.append(copy(64, rid="t"))
    (logs / "a.jsonl").write_text("".join(x + "\n" for x in first))
    (logs / "b.jsonl").write_text("".join(x + "\n" for x in second))
    polars, spark_ = both(spark, [str(logs)], ["model"], tmp_path)
    assert spark_ == polars
    a = polars["accounting"]
    assert (a["rows_read"], a["priced"], a["duplicates"], a["quarantined"]) == (22, 11, 1, 10)
    assert len(polars["quarantined_records"].splitlines()) == 10
    assert Decimal(polars["totals"]["cost"]) == 10 * cost(64) + cost(640)
    rows, spark_rows, acc, spark_acc = _price_both([str(logs)], tmp_path, "csv")
    assert spark_acc == acc and spark_rows.decode() == rows.decode()
    assert (acc["priced"], acc["duplicates"], acc["quarantined"]) == (11, 1, 10)


def _whatif_both(spark, paths, scenario, by, tmp_path, **opts) -> tuple[str, str]:
    from analyzer import engine_spark
    from analyzer import whatif as whatif_

    cwd = os.getcwd()
    os.chdir(ROOT)
    try:
        texts = []
        for engine, groups in (("polars", None), ("spark", engine_spark.analyze_groups)):
            q = tmp_path / f"{engine}.jsonl"
            result = whatif_.run(paths, scenario, by, Options(quarantine=str(q), **opts), analyze_groups=groups)
            texts.append(whatif_.render(result, "json").replace(str(q), "<quarantine>"))
        return texts[0], texts[1]
    finally:
        os.chdir(cwd)


@pytest.mark.parametrize("swap,batch,where,by", [
    ((("claude-sonnet-4-5", "claude-haiku-4-5"),), False, (), ["model"]),
    ((), True, (("model", "claude-opus-5-5"),), ["day", "model"]),
])
def test_whatif_equal(spark, tmp_path, swap, batch, where, by):
    from analyzer.whatif import Scenario

    polars, spark_ = _whatif_both(spark, ["fixtures/sample", "fixtures/dialects/claude-code"],
                                  Scenario(swaps=swap, batch=batch, where=where), by, tmp_path)
    assert spark_ == polars and json.loads(polars)["accounting"]["rows_read"] > 0


def test_cli_price_and_whatif_engine_spark(spark, tmp_path):
    from click.testing import CliRunner

    from analyzer.cli import main

    sample = str(ROOT / "fixtures/sample")
    out = {}
    for engine in ("polars", "spark"):
        res = CliRunner().invoke(main, ["price", sample, "-o", str(tmp_path / f"{engine}.jsonl"), "--quarantine",
                                        str(tmp_path / "q.jsonl"), "--engine", engine, "-q"])
        assert res.exit_code == 0, res.output
        res = CliRunner().invoke(main, ["whatif", sample, "--swap", "claude-sonnet-4-5=claude-haiku-4-5", "--format",
                                        "csv", "--quarantine", str(tmp_path / "q.jsonl"), "--engine", engine, "-q"])
        assert res.exit_code == 0, res.output
        out[engine] = ((tmp_path / f"{engine}.jsonl").read_text(), res.output)
    assert out["spark"] == out["polars"] and "claude-haiku-4-5" in out["polars"][1]
    # A directory of parts is Spark's; the Polars engine writes one file.
    (tmp_path / "d.parquet").mkdir()
    (tmp_path / "d.parquet" / "x").write_text("")
    for engine, slash, said in (("polars", "", "a directory; per-request rows are written to a file"),
                                ("spark", "/", "not an empty directory")):
        res = CliRunner().invoke(main, ["price", sample, "-o", str(tmp_path / "d.parquet") + slash, "--engine", engine])
        assert res.exit_code == 2 and said in res.output, res.output


def test_price_hostile_outputs_and_empty_input(spark, tmp_path):
    # A log with a header and no rows: the same empty file from both engines. An output whose
    # directory does not exist is one line before any Spark work; so is a file where a new
    # directory of parts is asked for.
    from analyzer import engine_spark
    from analyzer.errors import OutputError

    empty = tmp_path / "empty.csv"
    empty.write_text("request_id,timestamp,model,input_tokens,output_tokens\n")
    polars, spark_, acc, spark_acc = _price_both([str(empty)], tmp_path, "csv")
    assert spark_acc == acc and acc["rows_read"] == 0 and spark_ == polars
    with pytest.raises(OutputError, match="no such directory"):
        engine_spark.price([str(empty)], str(tmp_path / "nowhere" / "rows.csv"), "csv")
    (tmp_path / "file.csv").write_text("x")
    with pytest.raises(OutputError, match="not an empty directory"):
        engine_spark.price([str(empty)], str(tmp_path / "file.csv") + "/", "csv")


# --- price at scale: nothing per request on the driver; a killed run's directory; hostile runs ----

def _logs_with_copies(root: Path) -> Path:
    """300 requests in three files of two formats, 250 of them logged again in another file: r0-r199
    first as an early partial record (fewer output tokens: loses to the complete one), r100-r149 a
    third time, complete (a tie: the first file wins), and one quarantined copy of r7."""
    logs = root / "logs"
    logs.mkdir()
    header = "request_id,timestamp,model,input_tokens,output_tokens\n"
    row = "r{},2026-10-01T10:00:00Z,claude-sonnet-4-5,100,{}\n"
    (logs / "a.csv").write_text(header + "".join(row.format(i, 5 + i % 3) for i in range(200))
                                + "r7,2026-10-01T10:00:00Z,claude-sonnet-4-5,100,-3\n")
    (logs / "b.csv").write_text(header + "".join(row.format(i, 10) for i in range(300)))
    (logs / "c.jsonl").write_text("".join(
        json.dumps({"request_id": f"r{i}", "timestamp": "2026-10-01T10:00:00Z", "model": "claude-sonnet-4-5",
                    "input_tokens": 100, "output_tokens": 10}) + "\n" for i in range(100, 150)))
    return logs


def test_price_losers_stay_on_the_executors(spark, tmp_path, monkeypatch):
    # Copies across files (so across Spark tasks, and shuffle partitions): the driver receives the
    # groups and one count per file that has losers, never a row key; the rows are the Polars
    # engine's, byte for byte, and the kept copies are the complete ones, priced by hand.
    import polars as pl

    from analyzer import engine_spark

    logs = _logs_with_copies(tmp_path)
    collected, per_file = [], []
    collect, write_losers = engine_spark._collect, engine_spark._write_losers
    monkeypatch.setattr(engine_spark, "_collect", lambda df, t: collected.append(collect(df, t)) or collected[-1])
    monkeypatch.setattr(engine_spark, "_write_losers", lambda *a: per_file.append(write_losers(*a)) or per_file[-1])
    polars, spark_, acc, spark_acc = _price_both([str(logs)], tmp_path, "parquet")
    assert spark_ == polars and spark_acc == acc
    assert (acc["rows_read"], acc["priced"], acc["duplicates"], acc["quarantined"]) == (551, 300, 250, 1)
    assert max(df.height for df in collected) <= 4 and not any("_dupkey" in df.columns for df in collected)
    assert [sorted(counts.values()) for counts in per_file] == [[(50, 0), (200, 0)]]  # a.csv and c.jsonl lose
    rows = pl.read_parquet(tmp_path / "spark.parquet")
    assert rows["output_tokens"].to_list() == [10] * 300 and rows["source_file"].str.ends_with("b.csv").all()
    # 300 x (100 input x $3 + 10 output x $15) per million tokens
    assert sum(rows["cost"].to_list(), Decimal(0)) == 300 * (100 * Decimal(3) + 10 * Decimal(15)) / 10**6
    assert not list(tmp_path.glob(".llm-cost-parts-*"))


def test_killed_driver_leaves_a_directory_the_next_run_removes(spark, tmp_path):
    # A real `kill -9` of a `price -o FILE` driver once its executors have written into the run's
    # directory: the directory stays (nobody was left to remove it). The next run beside the same
    # output recognises it by its marker and its driver gone, says so and removes it; a directory
    # of the same kind of name that llm-cost did not make is not touched, nor one of another host.
    import signal
    import subprocess
    import sys
    import time

    from analyzer import engine_spark

    logs = _logs_with_copies(tmp_path)
    out = tmp_path / "out"
    out.mkdir()
    mine = out / ".llm-cost-parts-users-own"  # (no marker: not llm-cost's)
    mine.mkdir()
    (mine / "part-00000.parquet").write_text("the user's")
    elsewhere = out / ".llm-cost-parts-elsewhere"
    elsewhere.mkdir()
    (elsewhere / engine_spark.MARKER).write_text(json.dumps({"tool": "llm-cost", "pid": 1, "started": None,
                                                              "host": "another-host", "output": "x"}))
    proc = subprocess.Popen([sys.executable, "-m", "analyzer", "price", str(logs), "-o", str(out / "rows.csv"),
                             "--engine", "spark", "--master", "local[1]", "-q", "--quarantine", str(tmp_path / "q")],
                            cwd=ROOT, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 300
        while not list(out.glob(".llm-cost-parts-*/losers/file-*.parquet")) and proc.poll() is None:
            assert time.monotonic() < deadline, "the run wrote no losers in 300 s"
            time.sleep(0.05)
        assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
        os.kill(proc.pid, signal.SIGKILL)  # the driver alone
        proc.wait()
        time.sleep(1)
    finally:
        with __import__("contextlib").suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)  # (then the rest of what it started: the JVM, its workers)
        proc.wait()
        proc.stderr.close()
    stale = [p for p in out.glob(".llm-cost-parts-*") if p not in (mine, elsewhere)]
    assert len(stale) == 1 and (stale[0] / engine_spark.MARKER).exists() and not (out / "rows.csv").exists()
    said = []
    acc = engine_spark.price([str(logs)], str(out / "rows.csv"), "csv", Options(quarantine=str(tmp_path / "q")),
                             warn=said.append)
    assert acc.priced == 300 and (out / "rows.csv").read_text().count("\n") == 301
    assert not stale[0].exists() and (mine / "part-00000.parquet").read_text() == "the user's" and elsewhere.exists()
    assert len(said) == 2 and any(f"removed {stale[0]}, left by an interrupted price run (pid {proc.pid}" in s
                                  for s in said)
    assert any(str(elsewhere) in s and "another machine" in s for s in said)
    assert sorted(p.name for p in out.iterdir()) == [".llm-cost-parts-elsewhere", ".llm-cost-parts-users-own",
                                                     "rows.csv"]


def test_stale_directory_recognised_only_by_its_marker(tmp_path):
    # Only a directory whose marker says llm-cost, this host, and a process that has ended (or a
    # pid since given to another process) is removed, and in it only the files a run writes.
    import socket

    from analyzer import engine_spark

    def made(name: str, pid: int, started, extra: str | None = None) -> Path:
        d = tmp_path / name
        (d / "losers").mkdir(parents=True)
        (d / engine_spark.MARKER).write_text(json.dumps({"tool": "llm-cost", "pid": pid, "started": started,
                                                          "host": socket.gethostname(), "output": "x"}))
        (d / "losers" / "file-3.parquet").write_text("")
        (d / "part-00001.parquet").write_text("")
        if extra:
            (d / extra).write_text("not llm-cost's")
        return d

    alive = made(".llm-cost-parts-alive", os.getpid(), sources.process_started(os.getpid()))
    reused = made(".llm-cost-parts-reused", os.getpid(), -1)  # (this pid, but not the process that wrote it)
    dead = made(".llm-cost-parts-dead", 2**22 + 12345, None)  # (beyond pid_max: no such process)
    foreign = made(".llm-cost-parts-foreign", 2**22 + 12345, None, extra="notes.txt")
    said = engine_spark.clear_stale(str(tmp_path))
    assert alive.exists() and not reused.exists() and not dead.exists()
    assert sorted(p.name for p in foreign.rglob("*")) == ["notes.txt"]
    assert any("it holds files llm-cost does not write" in s for s in said) and len(said) == 3


def test_priced_parquet_bytes_do_not_depend_on_the_input_batches(tmp_path):
    # The same rows, read in batches of another size (other files; Spark's parts), make the same
    # Parquet file: row groups are a fixed number of rows, not wherever an input batch ended.
    # (Found at 1M rows: Spark's -o rows.parquet held equal rows in other row groups.)
    import polars as pl

    from analyzer.pipeline import PricedRows
    from analyzer.writers import PRICED_ROW_GROUP, sink_rows

    n = PRICED_ROW_GROUP + 7_001
    rows = pl.DataFrame({"source_row": range(n), "model": ["claude-sonnet-4-5"] * n,
                         "cost": pl.Series([i % 1000 for i in range(n)]).cast(pl.Decimal(38, 12))})
    out = []
    for group in (1_000, 50_000, n):
        src, dst = tmp_path / f"in-{group}.parquet", tmp_path / f"out-{group}.parquet"
        rows.write_parquet(src, row_group_size=group)
        sink_rows(PricedRows([pl.scan_parquet(src)]), "parquet", str(dst))
        out.append(dst.read_bytes())
    assert out[0] == out[1] == out[2] and pl.read_parquet(tmp_path / f"out-{n}.parquet").equals(rows)


def _hostile_logs(root: Path) -> Path:
    logs = root / "lo gs %41%"
    logs.mkdir()
    header = "request_id,timestamp,model,input_tokens,output_tokens\n"
    (logs / "empty.csv").write_text("")
    (logs / "header only.csv").write_text(header)
    (logs / "bad%20.csv").write_text(header + "q1,not a time,claude-sonnet-4-5,1,1\n"
                                     "q2,2026-10-01T10:00:00Z,claude-sonnet-4-5,-1,1\n"
                                     "q3,2026-10-01T10:00:00Z,claude-sonnet-4-5,1.5,1\n")
    edges = ["1969-12-31T23:59:59.999999Z", "1970-01-01T00:00:00Z", "9999-12-31T23:59:59.999999Z",
             "10000-01-01T00:00:00Z", "2026-10-01T00:00:00+14:00", "2026-09-30T23:59:59-12:00",
             "2028-02-29T23:59:59.999999Z", "2026-03-29T02:30:00", "0", "1790000000000"]
    (logs / "edges.csv").write_text(header + "".join(f"e{i},{t},claude-sonnet-4-5,{i + 1},7\n"
                                                     for i, t in enumerate(edges)))
    (logs / "edges.jsonl").write_text("".join(json.dumps({"request_id": f"j{i}", "timestamp": t, "model": "claude-opus-4-1",
                                                          "input_tokens": 3, "output_tokens": i})
                                              + "\n" for i, t in enumerate([0, 1790000000, 1790000000123, -1])))
    (logs / "again.csv").write_text(header + "e4,2026-10-01T00:00:00+14:00,claude-sonnet-4-5,5,9\n")
    return logs


def test_price_hostile_inputs_equal(spark, tmp_path):
    # In a directory named with spaces and `%` (written to one too): an empty file, a header without
    # rows (scans with no rows: tasks and partitions with nothing), a file whose every row is
    # quarantined, timestamps at the edges (before 1970, the last microsecond of 9999, a year
    # beyond, far offsets, naive, epoch s and ms), and a copy across files. The same bytes, the
    # same accounting as the Polars engine, as one file and as a directory of parts.
    import polars as pl

    from analyzer import engine_spark

    logs = _hostile_logs(tmp_path)
    out = tmp_path / "out %25 dir"
    out.mkdir()
    polars, spark_, acc, spark_acc = _price_both([str(logs)], out, "parquet")
    assert spark_ == polars and spark_acc == acc
    # (epoch 0 and -1 are no times of a usage log; 1969 and 1970 are before any price; the copy with
    # more tokens, in again.csv, wins)
    assert [acc[k] for k in ("rows_read", "priced", "unpriced", "duplicates", "quarantined")] == [18, 7, 2, 1, 8]
    engine_spark.price([str(logs)], f"{out}/parts %1.parquet/", "parquet", Options(quarantine=str(out / "q.jsonl")))
    parts = sorted((out / "parts %1.parquet").iterdir())
    assert parts[0].name == "_SUCCESS" and len(parts) > 2
    got = pl.concat([pl.read_parquet(p) for p in parts[1:]])
    assert got.equals(pl.read_parquet(out / "polars.parquet")) and got.height == acc["priced"] + acc["unpriced"]
    assert not list(out.glob(".llm-cost-parts-*"))


def test_spark_failing_mid_job(spark, tmp_path, monkeypatch):
    # An input file gone after the aggregate, before the tasks price its rows: the job fails. One
    # line, exit 2; no output, no half directory of parts, no work directory left behind.
    from click.testing import CliRunner

    from analyzer import engine_spark
    from analyzer.cli import main

    logs = _logs_with_copies(tmp_path)
    plans = engine_spark._price_plans

    def then_lose_a_file(*a):
        out = plans(*a)
        (logs / "b.csv").rename(tmp_path / "b.csv")
        return out

    monkeypatch.setattr(engine_spark, "_price_plans", then_lose_a_file)
    out = tmp_path / "out"
    out.mkdir()
    for target in (out / "rows.parquet", f"{out}/parts.csv/"):
        res = CliRunner().invoke(main, ["price", str(logs), "-o", str(target), "--engine", "spark", "-q",
                                        "--quarantine", str(tmp_path / "q.jsonl")])
        lines = res.output.strip().splitlines()
        assert res.exit_code == 2 and len(lines) == 1, res.output
        assert lines[0].startswith("llm-cost: error: the Spark job failed:") and "b.csv" in lines[0], lines[0]
        assert list(out.iterdir()) == []
        (tmp_path / "b.csv").rename(logs / "b.csv")


def test_price_directory_existing_or_not(spark, tmp_path):
    # `-o DIR/`: an existing empty directory is filled (the parts appear together, renamed into
    # place); a symbolic link to one is refused (renaming would replace the link, not fill it).
    from analyzer import engine_spark
    from analyzer.errors import OutputError

    sample = [str(ROOT / "fixtures/sample/october.csv")]
    opts = Options(quarantine=str(tmp_path / "q.jsonl"))
    (tmp_path / "empty").mkdir()
    engine_spark.price(sample, f"{tmp_path}/empty/", "jsonl", opts)
    assert sorted(p.name for p in (tmp_path / "empty").iterdir()) == ["_SUCCESS", "part-00000.jsonl"]
    (tmp_path / "target").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "target")
    with pytest.raises(OutputError, match="not an empty directory"):
        engine_spark.price(sample, f"{tmp_path}/link/", "jsonl", opts)
    assert list((tmp_path / "target").iterdir()) == []


def test_a_record_with_a_step_that_cannot_be_priced_is_unpriced_whole_on_both_engines(spark, tmp_path):
    # A step the book cannot price makes its whole response unpriced (tests/test_record_verdict.py): the
    # Spark engine names the records in each scan's plan and aggregates again, as the Polars engine does.
    from .test_record_verdict import BROKEN, CLEAN, PLAIN, STEPS, UNKNOWN, _stepped

    records = [_stepped(f"msg_{k}", s) for k, (s, _) in STEPS.items() if k != "dated"]
    for name, extra in (("fast", []), ("robust", [BROKEN])):
        path = tmp_path / f"{name}.jsonl"
        path.write_text("".join(x + "\n" for x in [PLAIN, *records, CLEAN, *extra]))
        polars, spark_ = both(spark, [str(path)], ["model"], tmp_path, batch_time=BATCH_TIME)
        a = polars["accounting"]
        assert (a["priced"], a["unpriced"], a["unpriced_models"]) == (2, 3, {UNKNOWN: 3})
        assert polars["totals"]["input_tokens"] == 2500
        assert spark_ == polars
    polars, spark_, acc, spark_acc = _price_both([str(path)], tmp_path, "csv", batch_time=BATCH_TIME)
    assert spark_acc == acc and acc["unpriced"] == 3
    assert spark_.decode() == polars.decode() and polars.decode().count("another part of its request") == 3


@pytest.mark.parametrize("robust", [False, True])
def test_a_record_of_more_fields_than_the_header_is_quarantined_on_both_engines(spark, tmp_path, robust):
    # (the executors read the CSV file with the same reader: tests/test_csv_ragged.py)
    t = "2026-10-01T09:15:00Z,claude-sonnet-4-5"
    records = [f"r1,{t},1000,100", f"r2,{t},1,200,350", f"r3,{t},1000,100,", f"r4,{t},1000,100,,x",
               *([f"r5,{t},1.5,100"] if robust else [])]
    path = tmp_path / "log.csv"
    path.write_text("\n".join(["request_id,timestamp,model,input_tokens,output_tokens", *records, ""]))
    polars, spark_ = both(spark, [str(path)], ["model"], tmp_path)
    assert polars["accounting"]["quarantined"] == 2 + robust
    assert polars["totals"]["input_tokens"] == 2000
    assert "more fields than the header's 5 (field 6: 350;" in polars["quarantined_records"]
    assert spark_ == polars

"""The store of nightly runs: idempotent, crash-safe ingests, reports and re-pricing from it."""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path

import polars as pl
import pytest
from click.testing import CliRunner
from polars.testing import assert_frame_equal

from analyzer import pipeline, schema, store, writers
from analyzer.cli import main

from .conftest import SAMPLE, canonical_frame, write_frame

SONNET = "claude-sonnet-4-5"  # $3 input, $15 output per MTok: 1,000 in + 100 out = $0.0045


def req(rid, day="2026-10-10", model=SONNET, inp=1000, out=100, **kw):
    return {"request_id": rid, "timestamp": f"{day}T10:00:00Z", "model": model, "input_tokens": inp,
            "output_tokens": out, **kw}


def log(path: Path, rows: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_frame(canonical_frame(rows), path)


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def json_report(root, by=("month", "model"), **opts) -> str:
    """The report as JSON, with the store's own path (in its notes) left out, to compare stores."""
    return writers.render(store.report(str(root), list(by), pipeline.Options(**opts)), "json").replace(str(root), "STORE")


def test_ingest_twice_gives_the_same_store_and_report(tmp_path):
    st = tmp_path / "store"
    first = store.ingest([str(SAMPLE)], str(st))
    assert [f.status for f in first.files] == ["ingested", "ingested"]
    before, report = tree(st), json_report(st)
    again = store.ingest([str(SAMPLE)], str(st))
    assert [f.status for f in again.files] == ["unchanged", "unchanged"]
    assert tree(st) == before
    assert json_report(st) == report
    s = store.status(str(st))
    assert s["consistent"] and s["files"] == 2 and s["rows_read"] == 25 and s["quarantined"] == 4
    assert s["months"] == {"2026-10": 14, "2026-11": 6} and not s["uncommitted"] and not s["damaged_parts"]
    assert len(list((st / "_llm_cost" / "quarantine").iterdir())) == 2  # each file's unreadable rows, kept
    assert [v["command"] for v in store.history(str(st))] == ["ingest", "ingest"]  # the second run: no version


@pytest.mark.parametrize("by", [["month", "model"], ["day", "workspace", "model"], ["discount_type"], ["component"],
                                ["model", "service_tier", "context_tier"], ["week"], ["quarter", "model"], ["year"], []])
def test_report_from_store_equals_report_from_logs(tmp_path, by, quarantine):
    st = tmp_path / "store"
    store.ingest([str(SAMPLE)], str(st))
    logs = pipeline.analyze([str(SAMPLE)], by, pipeline.Options(quarantine=quarantine))
    stored = store.report(str(st), by)
    assert_frame_equal(stored.rows, logs.rows)
    assert stored.totals == logs.totals
    a, b = stored.accounting, logs.accounting
    assert (a.rows_read, a.priced, a.unpriced, a.duplicates, a.quarantined) == (
        b.rows_read, b.priced, b.unpriced, b.duplicates, b.quarantined)
    assert a.unpriced_reasons == b.unpriced_reasons and a.balanced


def test_report_window_reads_its_months_and_accounts_for_the_rest(tmp_path):
    st = tmp_path / "store"
    store.ingest([str(log(tmp_path / "in" / "a.csv", [req("a", "2026-09-30"), req("b", "2026-10-01"),
                                                      req("c", "2026-10-31"), req("d", "2026-11-01")]))], str(st))
    rep = store.report(str(st), ["month"], pipeline.Options(since="2026-10-01", until="2026-10-31"))
    assert rep.rows["month"].to_list() == ["2026-10"] and rep.totals["cost"] == Decimal("0.009")
    a = rep.accounting
    assert (a.rows_read, a.priced, a.filtered_out) == (4, 2, 2) and a.balanced
    # The months outside the window are not opened: a broken part there does not matter.
    month = st / "_llm_month=2026-09"
    (month / os.listdir(month)[0]).write_bytes(b"garbage")
    assert store.report(str(st), ["month"], pipeline.Options(since="2026-10-01")).totals["cost"] == Decimal("0.0135")


def test_shared_request_ids_across_files_and_nights_count_once(tmp_path):
    st = tmp_path / "store"
    night1 = log(tmp_path / "n1" / "a.csv", [req("a"), req("b"), req("c")])
    overlapping = log(tmp_path / "n1" / "b.jsonl", [req("c"), req("d")])  # c again, e.g. two exporters
    store.ingest([str(night1.parent)], str(st))
    night2 = log(tmp_path / "n2" / "a.csv", [req("d", "2026-10-11"), req("e", "2026-10-11")])
    result = store.ingest([str(night2)], str(st))
    assert result.files[0].accounting.duplicates == 1 and result.files[0].stored == 1
    rep = store.report(str(st), ["model"])
    assert rep.totals["requests"] == 5 and rep.totals["cost"] == Decimal("0.0225")  # 5 x 0.0045
    assert (rep.accounting.rows_read, rep.accounting.duplicates) == (7, 2)
    assert store.status(str(st))["consistent"]
    assert overlapping.exists()


def test_changed_file_replaces_its_rows(tmp_path):
    st = tmp_path / "store"
    path = log(tmp_path / "in" / "day.csv", [req("a"), req("b")])
    store.ingest([str(path)], str(st))
    log(path, [req("a", out=200), req("c")])  # re-exported: a grew, b gone, c new
    result = store.ingest([str(path)], str(st))
    assert result.files[0].status == "replaced" and result.files[0].accounting.duplicates == 0
    rep = store.report(str(st), ["model"])
    # a: 1000 x 3/1e6 + 200 x 15/1e6 = 0.006; c: 0.0045
    assert rep.totals["cost"] == Decimal("0.0105") and rep.accounting.rows_read == 2
    assert store.status(str(st))["consistent"]
    # One commit replaced the rows: the version before it still reports the old content (a and b).
    old = store.report(str(st), ["model"], version=0)
    assert old.totals["cost"] == Decimal("0.009") and old.accounting.rows_read == 2
    assert pl.scan_delta(str(st)).select("request_id").collect().sort("request_id")["request_id"].to_list() == ["a", "c"]


def test_same_content_under_another_name_is_a_no_op(tmp_path):
    st = tmp_path / "store"
    path = log(tmp_path / "in" / "day.csv", [req("a")])
    store.ingest([str(path)], str(st))
    copy = tmp_path / "copy" / "day.csv"
    copy.parent.mkdir()
    shutil.copy(path, copy)
    assert store.ingest([str(copy)], str(st)).files[0].status == f"same content as {path}"


def test_uncommitted_files_of_a_killed_run_are_ignored_then_compacted_away(tmp_path):
    st = tmp_path / "store"
    store.ingest([str(SAMPLE)], str(st))
    report = json_report(st)
    # What a run killed before its commit leaves: a data file no version of the log names.
    orphan = st / "_llm_month=2026-12" / "part-00000-0b2c4c1e-5d5e-4c57-9c38-2f1f1a7f7d11-c000.zstd.parquet"
    orphan.parent.mkdir()
    orphan.write_bytes(b"half a part")
    mine = st / "_llm_month=2026-12" / "notes.txt"  # not named like a data file: never ours to delete
    mine.write_text("keep me")
    s = store.status(str(st))
    assert s["uncommitted"] == ["_llm_month=2026-12/" + orphan.name] and s["consistent"]
    assert json_report(st) == report  # readers follow the log, never the directory listing
    assert store.ingest([str(SAMPLE)], str(st)).files[0].status == "unchanged"
    result = store.compact(str(st))
    assert result.uncommitted_removed == ["_llm_month=2026-12/" + orphan.name]
    assert not orphan.exists() and mine.read_text() == "keep me"
    assert json_report(st) == report and not store.status(str(st))["uncommitted"]


def test_a_second_run_waits_then_exits_2_naming_the_holder(tmp_path):
    st = tmp_path / "store"
    with store.locked(str(st), "ingest", create=True):
        r = run("ingest", SAMPLE, "--store", st, "--wait", "0.3")
    assert r.exit_code == 2
    assert f"locked by pid {os.getpid()}" in r.stderr and "--wait" in r.stderr
    assert run("ingest", SAMPLE, "--store", st, "--wait", "0").exit_code == 0  # released


def test_a_stale_lock_of_a_dead_process_is_taken_over(tmp_path):
    st = tmp_path / "store"
    st.mkdir()
    (st / "_llm_cost").mkdir()
    (st / "_llm_cost" / "lock").write_text(json.dumps({"pid": 2**22 + 7, "host": "cron-box", "command": "ingest",
                                          "started": "2026-11-24T02:00:00+00:00"}))
    r = run("ingest", SAMPLE, "--store", st, "--wait", "0")
    assert r.exit_code == 0, r.output
    assert "pid 4194311 on cron-box" in r.stderr and "taking it over" in r.stderr
    assert (st / "_llm_cost" / "lock").read_text() == ""  # released cleanly


OVERLAY = ('[[model]]\nid = "claude-sonnet-4-5-20250929"\n[[model.period]]\nfrom = 2026-10-11\n'
           'input = 2.4\ncache_write_5m = 3\ncache_write_1h = 4.8\ncache_read = 0.24\noutput = 12\n'
           'source = "contract"\n')


def test_reprice_with_an_overlay_changes_exactly_the_hand_computed_delta(tmp_path):
    st = tmp_path / "store"
    rows = [req("a", "2026-10-10"), req("b", "2026-10-11", inp=200_000, out=3_000), req("c", "2026-11-02", inp=7),
            req("d", "2026-11-03", model="claude-haiku-4-5", inp=1000, out=100)]
    store.ingest([str(log(tmp_path / "in" / "a.csv", rows))], str(st))
    overlay = tmp_path / "negotiated.toml"
    overlay.write_text(OVERLAY)
    before = store.report(str(st), ["month"]).totals["cost"]
    result = store.reprice(str(st), pipeline.Options(prices=(str(overlay),), since="2026-10-11"))
    # b: 200,000 x (3 - 2.4)/1e6 + 3,000 x (15 - 12)/1e6 = 0.12 + 0.009; c: 7 x 0.6/1e6 + 100 x 3/1e6
    # a (before the contract) and d (another model) do not change; months 2026-10 and 2026-11 are rewritten.
    delta = -(Decimal("0.129") + Decimal("0.0000042") + Decimal("0.0003"))
    assert result.difference == delta
    assert dict(zip(result.changes["month"], result.changes["difference"])) == {
        "2026-10": Decimal("-0.129"), "2026-11": Decimal("-0.0003042")}
    assert result.changes.filter(pl.col("model") != "claude-sonnet-4-5-20250929")["difference"].sum() == 0
    after = store.report(str(st), ["month"])
    assert after.totals["cost"] - before == delta
    # The version before the re-pricing still says what the store said then; so does a time.
    assert store.report(str(st), ["month"], version=result.version - 1).totals["cost"] == before
    assert store.history(str(st))[0]["command"] == "reprice"
    ingested = store.history(str(st))[-1]["price_book"]
    assert after.book.version == ", ".join(sorted({result.book.version, ingested}))
    s = store.status(str(st))
    # a, before --since, keeps the book it was ingested with; b, c, d carry the new one
    assert s["consistent"] and s["repricings"] == 1 and s["price_books"] == {ingested: 1, result.book.version: 3}
    # Without reprice, a new shipped book would not touch the stored costs: reports never re-price.
    assert run("report", "--store", st, "--prices", overlay).exit_code == 2


def test_reprice_cli_prints_old_new_and_difference(tmp_path):
    st = tmp_path / "store"
    store.ingest([str(log(tmp_path / "in" / "a.csv", [req("a", "2026-10-12")]))], str(st))
    overlay = tmp_path / "negotiated.toml"
    overlay.write_text(OVERLAY)
    r = run("reprice", "--store", st, "--prices", overlay, "--since", "2026-10-01")
    assert r.exit_code == 0, r.output
    # 1,000 x 0.6/1e6 + 100 x 3/1e6 = 0.0009
    assert "claude-sonnet-4-5-20250929" in r.stdout and "exact difference -0.000900000000 USD" in r.stdout


def test_empty_files_are_remembered_and_bad_input_is_one_line(tmp_path):
    st = tmp_path / "store"
    night = tmp_path / "in"
    log(night / "a.csv", [req("a")])
    (night / "b.csv").write_text("")
    result = store.ingest([str(night)], str(st))
    assert [f.status for f in result.files] == ["ingested", "empty"]
    assert [f.status for f in store.ingest([str(night)], str(st)).files] == ["unchanged", "unchanged"]
    r = run("report", "--store", st, "--by", "colour")
    assert r.exit_code == 2 and "--by 'colour'" in r.stderr and "workspace" in r.stderr
    r = run("ingest", night, "--store", st, "--since", "2026-10-01")
    assert r.exit_code == 2  # ingest has no --since: a store keeps whole files
    r = run("reprice", "--store", st, "--since", "2027-01-01")
    assert r.exit_code == 0 and "nothing to re-price" in r.stdout


def test_cli_ingest_report_status(tmp_path):
    st = tmp_path / "store"
    r = run("ingest", SAMPLE, "--store", st)
    assert r.exit_code == 0, r.output
    assert "ingested 2 of 2 files" in r.stderr and "rows read 25" in r.stderr
    r = run("report", "--store", st, "--by", "month,workspace,model", "--since", "2026-11-01", "--format", "json")
    doc = json.loads(r.stdout)
    assert doc["group_by"] == ["month", "workspace", "model"] and {row["month"] for row in doc["rows"]} == {"2026-11"}
    r = run("store", "status", st)
    assert r.exit_code == 0 and "2026-10 (14), 2026-11 (6)" in r.stdout and "consistent" in r.stdout
    assert run("report", SAMPLE, "--store", st).exit_code == 2
    assert run("report").exit_code == 2
    r = run("store", "status", tmp_path)
    assert r.exit_code == 2 and "not an llm-cost store" in r.stderr
    r = run("ingest", SAMPLE, "--store", st, "--prices", tmp_path / "nope.toml")
    assert r.exit_code == 2 and "nope.toml" in r.stderr


# ----------------------------------------------------------------------------------------------
# Crash injection: kill -9 at random moments of an ingest, then run it again.

CRASH_RUNS = 50


def _nights(root: Path) -> list[Path]:
    """Three nights of logs with shared ids across files and nights, quarantined and unpriced rows."""
    nights = []
    for n in range(3):
        day = f"2026-10-{10 + n:02d}"
        rows = [req(f"r{n}-{i}", day, inp=1000 + i, out=10 * i) for i in range(400)]
        rows += [req(f"r{n - 1}-{i}", day) for i in range(5)] if n else []  # repeated from the night before
        rows += [req(f"x{n}", day, model="claude-nope")]
        night = root / f"night{n}"
        log(night / "a.csv", rows[:200])
        log(night / "b.jsonl", rows[200:])
        log(night / "c.csv", rows[:50] + [req(f"bad{n}", "not-a-time")])  # repeats a.csv; one unreadable row
        nights.append(night)
    return nights


def _rows_report(root, by) -> str:
    """The report from the stored rows alone (no summary, no rollup read)."""
    real = store._grain, store._whole_months
    store._grain, store._whole_months = (lambda *a, **k: None), (lambda *a, **k: set())
    try:
        return json_report(root, by)
    finally:
        store._grain, store._whole_months = real


def _rolled_up(root) -> bool:
    """Each month's rollup names exactly that month's data files that have a summary (a compaction
    killed before it summarized its files leaves them to their rows until the next compact)."""
    files = store._file_sizes(str(root), store._table(str(root)))
    for month, sizes in files.items():
        have = store._rollup_of(str(root), month)
        if (have[1] if have else {}) != {r: n for r, n in sizes.items() if store._summary_of(str(root), r, "day", n)}:
            return False
    return True


def test_a_first_commit_killed_inside_delta_rs_leaves_no_version_and_ingests_again(tmp_path):
    """delta-rs makes `_delta_log/` before it writes the first commit into it: a kill between the two
    (the crash test hit it) leaves the directory empty, or holding a temporary file. That is no
    version: the store is as before its first ingest, which runs again."""
    night = log(tmp_path / "n0" / "a.csv", [req("a"), req("b")])
    st = tmp_path / "store"
    store.ingest([str(night)], str(st))
    expected = json_report(st, ("day", "model"))
    shutil.rmtree(st / "_delta_log")
    shutil.rmtree(st / "_llm_cost" / "files")  # (written after the first commit)
    (st / "_delta_log").mkdir()
    (st / "_delta_log" / "_commit_0f1e2d3c.json.tmp").write_text("{}")
    r = run("store", "status", st)
    assert r.exit_code == 2 and "first ingest did not finish" in r.stderr, r.stderr
    assert [f.status for f in store.ingest([str(night)], str(st)).files] == ["ingested"]
    assert json_report(st, ("day", "model")) == expected
    (st / "_delta_log" / "00000000000000000000.json").unlink()  # a log that lost its commits is damage
    r = run("store", "status", st)
    assert r.exit_code != 0 and "damaged store" in r.stderr, r.stderr


@pytest.mark.slow
def test_kill_minus_9_at_random_moments_leaves_a_store_that_reports_as_a_clean_run(tmp_path):
    nights = _nights(tmp_path / "logs")
    clean = tmp_path / "clean"
    for night in nights:
        store.ingest([str(night)], str(clean))
    expected = json_report(clean, ("day", "model"))
    monthly = json_report(clean, ("month", "model"))  # (from the month's rollup)
    assert _rolled_up(clean) and monthly == _rows_report(clean, ("month", "model"))
    st = tmp_path / "store"
    rng = random.Random(4)
    # A checkpoint every 2 versions (10 in use): kills land while checkpoints are written too.
    launch = "import analyzer.store as s; s.CHECKPOINT_EVERY = 2; from analyzer.cli import main; main(prog_name='llm-cost')"
    cmd = [sys.executable, "-c", launch, "ingest", "--store", str(st), "--wait", "5", "-q"]
    start = time.monotonic()
    proc = subprocess.run([*cmd, str(nights[0])], capture_output=True)
    full = time.monotonic() - start  # how long one night takes, to spread the kills over it
    assert proc.returncode == 0, proc.stderr
    shutil.rmtree(st)
    killed = torn = 0
    for i in range(CRASH_RUNS):
        night = nights[i * len(nights) // CRASH_RUNS]
        if i and night != nights[(i - 1) * len(nights) // CRASH_RUNS]:  # finish a night before the next
            subprocess.run([*cmd, str(nights[nights.index(night) - 1])], check=True)
        started = time.monotonic()
        p = subprocess.Popen([*cmd, str(night)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(full * rng.uniform(0.3, 0.95))  # the first ~0.3 is starting Python and importing
        # Keep the delays spread over a whole run although the machine's load changes its length:
        # a run that ended first says runs are quicker now; a killed one, that they may be longer.
        if p.poll() is None:
            os.kill(p.pid, signal.SIGKILL)
            killed += 1
            full *= 1.05
        else:
            full = time.monotonic() - started
        p.wait()
        if store._kind(str(st)) == "delta":  # whatever moment it died at, the store is whole (or has no version)
            status = store.status(str(st))
            assert not status["damaged_parts"]
            torn += bool(status["uncommitted"])  # killed between writing a data file and committing it
            # ... and its rollups (written after each commit, maybe not at all) report as its rows.
            assert json_report(st, ("month", "model")) == _rows_report(st, ("month", "model"))
    print(f"{killed} of {CRASH_RUNS} ingests killed, {torn} with files written but not committed; "
          f"one night takes {full:.2f} s")
    assert killed >= CRASH_RUNS // 3, f"only {killed} runs were killed: the delays are too long"
    subprocess.run([*cmd, str(nights[-1])], check=True)
    assert json_report(st, ("day", "model")) == expected
    assert json_report(st, ("month", "model")) == monthly and _rolled_up(st)
    store.compact(str(st))  # removes what killed runs wrote but never committed
    s = store.status(str(st))
    c = store.status(str(clean))
    same = ("files", "rows_stored", "rows_read", "duplicates", "repeats", "not_billable", "quarantined", "first",
            "last", "months", "price_books", "consistent")
    assert s["consistent"] and not s["uncommitted"] and {k: s[k] for k in same} == {k: c[k] for k in same}
    assert not [p for p in st.rglob("*") if p.name.startswith(".llm-cost-")]
    # Kills landed while summaries were written too: after compact each data file has its summaries
    # and no summary outlives its data file.
    parts = {p.relative_to(st) for p in st.glob("_llm_month=*/*.parquet")}
    summaries = {p.relative_to(st / store.SUMMARY) for p in (st / store.SUMMARY).rglob("*.parquet")}
    months = {p.parts[0] for p in parts}
    assert s["unsummarized"] == 0 and summaries == {Path(g) / p for g in store.GRAINS for p in parts} | {
        Path(store.ROLLUP).relative_to(store.SUMMARY) / m / store.ROLLUP_NAME for m in months}


def test_log_reading_options_are_refused_with_a_store(tmp_path):
    from click.testing import CliRunner

    from analyzer.cli import main

    for args in (["--dialect", "canonical"], ["--no-dedupe"], ["--quarantine", "q.jsonl"], ["--batch-time", "2026-01-01"]):
        r = CliRunner().invoke(main, ["report", "--store", str(tmp_path / "s"), *args])
        assert r.exit_code == 2 and "applies to reading log files, not to --store" in r.stderr, args


def test_every_format_ingests_into_one_store_and_the_accounting_balances(tmp_path):
    """Files with different columns (dimensions) share a store; repeats, not-billable records and a
    request's extra iteration rows are accounted as in a report from the logs."""
    from .conftest import ROOT

    formats = ROOT / "fixtures" / "dialects"
    inputs = [str(formats / "claude-code"), str(formats / "anthropic-batch"),
              str(formats / "anthropic-messages" / "responses.jsonl"), str(SAMPLE),
              str(formats / "litellm-spendlogs" / "litellm_spendlogs.csv")]
    st = str(tmp_path / "st")
    opts = pipeline.Options(batch_time="2026-11-20T10:00:00Z", quarantine=str(tmp_path / "q.jsonl"))
    for path in inputs:  # one night each: every later ingest reads the ids of parts with other columns
        store.ingest([path], st, opts)
    s = store.status(st)
    # repeats: the two streamed lines of one Claude Code message, and its sidechain copy (same message id)
    assert s["consistent"] and s["repeats"] == 2 and s["not_billable"] == 6  # 4 + a LiteLLM cache hit and failure
    stored = store.report(st, ["model"])
    logs = pipeline.analyze(inputs, ["model"], opts)
    assert stored.accounting.balanced and stored.totals["cost"] == logs.totals["cost"]
    for k in ("rows_read", "priced", "unpriced", "duplicates", "repeats", "not_billable", "quarantined"):
        assert getattr(stored.accounting, k) == getattr(logs.accounting, k), k


# ----------------------------------------------------------------------------------------------
# Delta Lake: other engines, versions, history, compaction


def test_another_engine_reads_what_report_store_sums(tmp_path):
    st = tmp_path / "store"
    store.ingest([str(SAMPLE)], str(st))
    rep = store.report(str(st), ["month"])
    rows = pl.scan_delta(str(st)).filter(pl.col("unpriced_reason").is_null())
    by_month = rows.group_by("_llm_month").agg(pl.col("cost").sum()).sort("_llm_month").collect()
    assert dict(zip(by_month["_llm_month"], by_month["cost"])) == dict(zip(rep.rows["month"], rep.rows["cost"]))
    assert pl.scan_delta(str(st)).collect_schema()["cost"] == pl.Decimal(38, 12)  # exact, as llm-cost sums it
    duckdb = pytest.importorskip("duckdb")  # optional; its delta_scan needs an extension download, so via Arrow
    import deltalake

    rows = deltalake.DeltaTable(str(st)).to_pyarrow_dataset()  # noqa: F841 - DuckDB finds it by name
    total = duckdb.sql("select sum(cost) from rows where unpriced_reason is null").fetchall()[0][0]
    assert Decimal(total) == rep.totals["cost"]


def test_report_as_of_a_version_or_a_time_and_history(tmp_path):
    st = tmp_path / "store"
    store.ingest([str(log(tmp_path / "n1" / "a.csv", [req("a")]))], str(st))
    between = dt_now()
    time.sleep(0.05)
    store.ingest([str(log(tmp_path / "n2" / "a.csv", [req("b", "2026-10-11"), req("c", "2026-10-11")]))], str(st))
    assert store.report(str(st), ["model"]).totals["cost"] == Decimal("0.0135")  # 3 x 0.0045
    assert store.report(str(st), ["model"], version=0).totals["cost"] == Decimal("0.0045")
    at = store.report(str(st), ["model"], as_of=between)
    assert at.totals["cost"] == Decimal("0.0045") and at.accounting.rows_read == 1 and at.accounting.balanced
    r = run("report", "--store", st, "--version", "0", "--format", "json")
    assert r.exit_code == 0 and json.loads(r.stdout)["totals"]["cost"] == "0.004500000000"
    assert run("report", "--store", st, "--version", "9").exit_code == 2
    r = run("report", "--store", st, "--as-of", "2020-01-01")  # before the store existed: not its first version
    assert r.exit_code == 2 and "no version at or before 2020-01-01" in r.stderr
    assert run("report", SAMPLE, "--version", "0").exit_code == 2  # versions are the store's
    h = run("store", "history", st, "--json")
    versions = json.loads(h.stdout)
    assert [(v["version"], v["command"], v["rows_added"]) for v in versions] == [(1, "ingest", 2), (0, "ingest", 1)]
    assert versions[0]["file"] == str(tmp_path / "n2" / "a.csv") and versions[0]["price_book"]


def dt_now() -> str:
    import datetime as dt

    return dt.datetime.now(dt.UTC).isoformat()


def test_compact_merges_small_files_keeps_time_travel_and_the_report(tmp_path):
    st = tmp_path / "store"
    for n in range(4):
        store.ingest([str(log(tmp_path / f"n{n}" / "a.csv", [req(f"r{n}", f"2026-10-1{n}")]))], str(st))
    before, first = json_report(st), store.report(str(st), ["model"], version=0).totals
    assert store.status(str(st))["data_files"] == 4
    r = run("store", "compact", st)
    assert r.exit_code == 0 and "4 data files -> 1" in r.stdout
    assert json_report(st) == before and store.status(str(st))["data_files"] == 1
    assert store.report(str(st), ["model"], version=0).totals == first  # retained: 7 days of versions
    assert store.history(str(st))[0]["command"] == "compact"
    store.compact(str(st), retention_days=0)  # no time travel kept: the replaced files go
    assert len(list((st / "_llm_month=2026-10").glob("*.parquet"))) == 1
    assert json_report(st) == before


def test_two_ingests_at_once_count_shared_ids_once(tmp_path):
    st = tmp_path / "store"
    a = log(tmp_path / "a" / "a.csv", [req(f"r{i}") for i in range(40)])
    b = log(tmp_path / "b" / "b.csv", [req(f"r{i}") for i in range(20, 60)])  # 20 ids in both
    cmd = [sys.executable, "-m", "analyzer", "ingest", "--store", str(st), "--wait", "60", "-q"]
    procs = [subprocess.Popen([*cmd, str(p)], stderr=subprocess.PIPE) for p in (a, b)]
    assert all(p.wait() == 0 for p in procs), [p.stderr.read() for p in procs]
    rep = store.report(str(st), ["model"])
    assert rep.totals["requests"] == 60 and rep.accounting.duplicates == 20 and rep.accounting.balanced
    assert rep.totals["cost"] == 60 * Decimal("0.0045")


# Two writers without the lock (two machines sharing a store): each reads the table, then waits
# until the other has read it too, so both commits are built on the same version and one must lose.
RACER = """
import contextlib, os, sys, time
from analyzer import store
store.locked = lambda *a, **k: contextlib.nullcontext()
read, gate = store._read_file, sys.argv[3]
def wait_for_the_other(*a, **k):
    out = read(*a, **k)
    if not os.path.exists(f"{gate}.{os.getpid()}"):
        open(f"{gate}.{os.getpid()}", "w").close()
        deadline = time.monotonic() + 60
        while len([f for f in os.listdir(os.path.dirname(gate)) if f.startswith("gate.")]) < 2:
            assert time.monotonic() < deadline, "the other writer never read the table"
            time.sleep(0.02)
    return out
store._read_file = wait_for_the_other
r = store.ingest([sys.argv[1]], sys.argv[2], warn=lambda m: print(m, file=sys.stderr))
print(r.files[0].status, r.files[0].stored)
"""


def test_two_writers_without_the_lock_conflict_and_the_loser_rechecks_its_repeats(tmp_path):
    """Delta's optimistic concurrency, not the lock, keeps two writers from double counting: both
    read version 0 and check their ids against it; the second commit fails (a commit is never
    rebased onto a version its repeat check did not read), re-checks against the winner's rows and
    commits without the shared ids."""
    st = tmp_path / "store"
    store.ingest([str(log(tmp_path / "n0" / "z.csv", [req("z")]))], str(st))
    a = log(tmp_path / "a" / "a.csv", [req(f"r{i}") for i in range(40)])
    b = log(tmp_path / "b" / "b.csv", [req(f"r{i}") for i in range(20, 60)])  # 20 ids in both
    script = tmp_path / "racer.py"
    script.write_text(RACER)
    (tmp_path / "g").mkdir()
    from .conftest import ROOT

    # (PYTHONPATH: the script's own directory comes first on its path, not this checkout)
    procs = [subprocess.Popen([sys.executable, str(script), str(p), str(st), str(tmp_path / "g" / "gate")],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              env={**os.environ, "PYTHONPATH": str(ROOT)}) for p in (a, b)]
    outs = [p.communicate(timeout=300) for p in procs]
    assert all(p.returncode == 0 for p in procs), outs
    stored = sorted(int(out.split()[-1]) for out, _ in outs)
    assert stored == [20, 40]  # the loser stored only the ids the winner had not
    assert sum("another writer committed" in err for _, err in outs) == 1, outs
    rep = store.report(str(st), ["model"])
    assert rep.totals["requests"] == 61 and rep.accounting.duplicates == 20 and rep.accounting.balanced
    assert rep.accounting.rows_read == 81 and rep.accounting.files == 3  # both nights' records (test_store_race.py)
    assert rep.totals["cost"] == 61 * Decimal("0.0045")
    assert store.status(str(st))["consistent"] and store.history(str(st))[0]["version"] == 2
    assert not list((st / "_llm_cost").glob(".spool-*"))  # and the loser's first data files are gone
    assert not store.status(str(st))["uncommitted"]


def test_a_commit_built_on_a_stale_version_is_a_conflict_not_a_rebase(tmp_path):
    st = tmp_path / "store"
    store.ingest([str(log(tmp_path / "n0" / "z.csv", [req("z")]))], str(st))
    stale = store._table(str(st))
    store.ingest([str(log(tmp_path / "n1" / "a.csv", [req("a")]))], str(st))  # version 1, unseen by `stale`
    frame = pl.concat([pl.read_parquet(p, hive_partitioning=False) for p in sorted(st.glob("_llm_month=*/*.parquet"))])
    rows = store._MonthFiles(str(st), "x", frame.schema, None, pl.DataFrame(schema={"_h1": pl.UInt64, "_h2": pl.UInt64}))
    rows.append(frame)
    rows.close(frame.clear().lazy())
    assert [r.split("/")[0] for r in rows.written] == [f"{store.MONTH}=2026-10"]
    with pytest.raises(store._Conflict):
        store._write_rows(str(st), stale, rows, {"0" * 64}, {"path": "x"}, "book", 1)
    assert store._table(str(st)).version() == 1 and not store.status(str(st))["uncommitted"]


# ----------------------------------------------------------------------------------------------
# Safety (issue 13 §1-3): foreign directories, paths, damaged logs, internal columns


def test_a_directory_that_is_not_a_store_is_refused_and_left_alone(tmp_path):
    d = tmp_path / "d"
    (d / "rows" / "2024").mkdir(parents=True)
    ledger = d / "rows" / "2024" / "ledger.csv"
    ledger.write_text("a,b\n1,2\n")
    for args in (["ingest", SAMPLE, "--store", d], ["report", "--store", d], ["store", "status", d],
                 ["store", "compact", d], ["store", "history", d], ["reprice", "--store", d]):
        r = run(*args)
        assert r.exit_code == 2 and "not an llm-cost store" in r.stderr, args
    assert tree(d) == {"rows/2024/ledger.csv": b"a,b\n1,2\n"}
    other = tmp_path / "other-delta"  # somebody else's Delta table: not ours either
    import deltalake

    deltalake.write_deltalake(str(other), pl.DataFrame({"x": [1]}).to_arrow())
    snapshot = tree(other)
    assert "not an llm-cost store" in run("ingest", SAMPLE, "--store", other).stderr
    assert tree(other) == snapshot


def test_the_old_layout_is_refused_with_the_upgrade_hint_and_upgrades_to_equal_reports(tmp_path):
    from analyzer import store_legacy

    from .conftest import ROOT

    st = tmp_path / "old"
    shutil.copytree(ROOT / "fixtures" / "store-v1", st)
    # The old manifest records the absolute paths the fixture was ingested from: point them at this clone.
    (st / "manifest.json").write_text((st / "manifest.json").read_text().replace("/work/wt/store", str(ROOT)))
    old = writers.render(store_legacy.report(str(st), ["month", "model"]), "json")
    r = run("report", "--store", st)
    assert r.exit_code == 2 and "store upgrade" in r.stderr
    assert run("ingest", SAMPLE, "--store", st).exit_code == 2
    r = run("store", "upgrade", st)
    assert r.exit_code == 0 and "equal before and after" in r.stdout, r.output
    new = json_report(st)
    assert json.loads(new)["accounting"]["quarantine_file"] == "STORE/_llm_cost/quarantine"  # moved there
    assert store._comparable(new) == store._comparable(old.replace(str(st), "STORE"))
    assert len(list((st / "_llm_cost" / "quarantine").iterdir())) == 2
    assert (st / "manifest.json").exists() and (st / "rows").is_dir()  # the old files are left, not deleted
    assert store.status(str(st))["consistent"]
    # Ingesting the same logs again changes nothing: their hashes came along. (The fixture recorded the
    # paths of the worktree it was made in: under another path the same bytes are "same content as".)
    statuses = [f.status for f in store.ingest([str(SAMPLE)], str(st)).files]
    assert all(s == "unchanged" or s.startswith("same content as /") for s in statuses), statuses
    assert json_report(st) == new
    assert run("store", "upgrade", st).exit_code == 2  # once


def test_the_old_layout_with_a_hostile_manifest_is_refused(tmp_path):
    from .conftest import ROOT

    for doc in ("[]", '{"format": 1}', '{"format": 1, "files": {"x": {"parts": [{"file": "../x.parquet"}], '
                '"accounting": {}}}}', "{not json"):
        st = tmp_path / f"old{hash(doc)}"
        shutil.copytree(ROOT / "fixtures" / "store-v1", st)
        (st / "manifest.json").write_text(doc)
        r = run("store", "upgrade", st)
        assert r.exit_code == 2 and "damaged store" in r.stderr, (doc, r.output)
        assert not (st / "_delta_log").exists()


def test_a_symlinked_lock_or_meta_directory_is_refused_and_its_target_untouched(tmp_path):
    st = tmp_path / "store"
    store.ingest([str(log(tmp_path / "in" / "a.csv", [req("a")]))], str(st))
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    (st / "_llm_cost" / "lock").unlink()
    (st / "_llm_cost" / "lock").symlink_to(victim)
    r = run("ingest", SAMPLE, "--store", st)
    assert r.exit_code == 2 and "damaged store" in r.stderr and "lock" in r.stderr
    assert victim.read_text() == "precious"
    st2 = tmp_path / "store2"
    store.ingest([str(log(tmp_path / "in2" / "a.csv", [req("a")]))], str(st2))
    shutil.move(st2 / "_llm_cost", tmp_path / "elsewhere")
    (st2 / "_llm_cost").symlink_to(tmp_path / "elsewhere")
    r = run("report", "--store", st2)
    assert r.exit_code == 2 and "damaged store" in r.stderr
    st3 = tmp_path / "store3"  # a quarantine directory that leads elsewhere: no quarantine file written there
    store.ingest([str(log(tmp_path / "in3" / "a.csv", [req("a")]))], str(st3))
    (tmp_path / "elsewhere3").mkdir()
    if (st3 / "_llm_cost" / "quarantine").is_dir():  # (made, empty, by the first ingest)
        (st3 / "_llm_cost" / "quarantine").rmdir()
    (st3 / "_llm_cost" / "quarantine").symlink_to(tmp_path / "elsewhere3")
    r = run("ingest", SAMPLE, "--store", st3)  # SAMPLE has unreadable rows: a quarantine file
    assert r.exit_code == 2 and "damaged store" in r.stderr and not list((tmp_path / "elsewhere3").iterdir())
    st4 = tmp_path / "store4"  # a month directory that leads elsewhere: no data file written there
    store.ingest([str(log(tmp_path / "in4" / "a.csv", [req("a")]))], str(st4))
    shutil.move(st4 / "_llm_month=2026-10", tmp_path / "elsewhere4")
    (st4 / "_llm_month=2026-10").symlink_to(tmp_path / "elsewhere4")
    before = sorted(p.name for p in (tmp_path / "elsewhere4").iterdir())
    r = run("ingest", log(tmp_path / "in4" / "b.csv", [req("b")]), "--store", st4)
    assert r.exit_code == 2 and "damaged store" in r.stderr and "symlink" in r.stderr
    assert sorted(p.name for p in (tmp_path / "elsewhere4").iterdir()) == before


def test_a_damaged_log_or_part_is_one_line_never_a_traceback(tmp_path):
    st = tmp_path / "store"
    store.ingest([str(log(tmp_path / "in" / "a.csv", [req("a")]))], str(st))
    store.ingest([str(log(tmp_path / "in2" / "b.csv", [req("b", "2026-11-02")]))], str(st))
    part = next((st / "_llm_month=2026-11").glob("*.parquet"))
    data = part.read_bytes()
    part.write_bytes(data[: len(data) // 2])  # truncated
    r = run("store", "status", st)
    assert r.exit_code == 1 and "DAMAGED: _llm_month=2026-11/" in r.stdout and r.stdout.strip().endswith("damaged")
    r = run("report", "--store", st)
    assert r.exit_code == 2 and r.stderr.startswith("llm-cost: error: damaged store") and "Traceback" not in r.output
    assert store.report(str(st), ["model"], pipeline.Options(until="2026-10-31")).totals["requests"] == 1
    part.unlink()
    r = run("report", "--store", st)
    assert r.exit_code == 2 and part.name in r.stderr
    commit = st / "_delta_log" / "00000000000000000001.json"
    commit.write_text("{ not a commit")
    for args in (["report", "--store", st], ["store", "status", st], ["store", "history", st],
                 ["ingest", SAMPLE, "--store", st]):
        r = run(*args)
        assert r.exit_code == 2 and "damaged store" in r.stderr and "Traceback" not in r.output, (args, r.output)


INTERNAL_NAMES = [*store.INTERNAL, "rate_id", "source_sha256", "month"]  # today's and the old store's


@pytest.mark.parametrize("name", INTERNAL_NAMES)
def test_a_log_column_named_like_an_internal_column_cannot_collide(tmp_path, name):
    st = tmp_path / "store"
    rows = canonical_frame([req("a", "2026-10-10"), req("b", "2026-11-10")]).with_columns(pl.lit("mine").alias(name))
    rows.write_csv(tmp_path / "a.csv")
    store.ingest([str(tmp_path / "a.csv")], str(st))
    rep = store.report(str(st), ["month"])
    assert rep.totals["cost"] == Decimal("0.009") and rep.accounting.balanced
    overlay = tmp_path / "o.toml"
    overlay.write_text(OVERLAY)
    assert store.reprice(str(st), pipeline.Options(prices=(str(overlay),))).parts == 2
    assert store.status(str(st))["consistent"]
    stored = pl.scan_delta(str(st)).collect()
    assert stored["_llm_month"].sort().to_list() == ["2026-10", "2026-11"]  # ours, whatever the log said
    if not name.startswith("_"):  # the log's own column: kept as a dimension, with its values
        # (under log_<name> when it is named like a built-in --by key: `month` is the time bucket)
        col = schema.dimension_names([name])[name]
        assert col == (f"log_{name}" if name in pipeline.TIME_BUCKETS else name)
        assert stored[col].to_list() == ["mine", "mine"]
        assert store.report(str(st), [col]).rows[col].to_list() == ["mine"]


def test_a_log_naming_a_file_outside_the_table_is_damage_and_the_file_untouched(tmp_path):
    st = tmp_path / "store"
    store.ingest([str(log(tmp_path / "in" / "a.csv", [req("a")]))], str(st))
    outside = tmp_path / "outside.parquet"
    part = next((st / "_llm_month=2026-10").glob("*.parquet"))
    shutil.copy(part, outside)
    commit = st / "_delta_log" / "00000000000000000000.json"
    commit.write_text(commit.read_text().replace(f"_llm_month=2026-10/{part.name}", "../outside.parquet"))
    snapshot = outside.read_bytes()
    overlay = tmp_path / "o.toml"
    overlay.write_text(OVERLAY)
    for args in (["report", "--store", st], ["reprice", "--store", st, "--prices", overlay], ["store", "compact", st]):
        r = run(*args)
        assert r.exit_code == 2 and "damaged store" in r.stderr, (args, r.output)
    assert outside.read_bytes() == snapshot


@pytest.mark.slow
def test_kill_minus_9_during_compact_leaves_a_store_that_reports_the_same(tmp_path):
    st = tmp_path / "store"
    for n in range(6):
        store.ingest([str(log(tmp_path / f"n{n}" / "a.csv", [req(f"r{n}-{i}", f"2026-1{n % 2}-1{n}")
                                                             for i in range(300)]))], str(st))
    expected = json_report(st, ("day", "model"))
    monthly = json_report(st, ("month", "model"))  # (from the months' rollups)
    cmd = [sys.executable, "-m", "analyzer", "store", "compact", str(st), "--retention-days", "0"]
    trial = tmp_path / "trial"
    shutil.copytree(st, trial)
    start = time.monotonic()
    subprocess.run([*cmd[:-3], str(trial)], check=True, capture_output=True)
    full = time.monotonic() - start  # how long one compaction takes, to spread the kills over it
    rng = random.Random(7)
    killed = 0
    for _ in range(8):
        p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(full * rng.uniform(0.4, 1.0))
        if p.poll() is None:
            os.kill(p.pid, signal.SIGKILL)
            killed += 1
        p.wait()
        assert json_report(st, ("day", "model")) == expected
        # A kill between the compaction's commit and its rollups leaves rollups naming files gone:
        # not read, the merged files' summaries are.
        assert json_report(st, ("month", "model")) == monthly == _rows_report(st, ("month", "model"))
        assert not store.status(str(st))["damaged_parts"]
        store.ingest([str(log(tmp_path / f"m{_}" / "a.csv", [req(f"r0-{_}", "2026-10-10")]))], str(st))  # a repeat
        expected = json_report(st, ("day", "model"))
        monthly = json_report(st, ("month", "model"))
        assert _rolled_up(st) and monthly == _rows_report(st, ("month", "model"))
    print(f"{killed} of 8 compactions killed; one takes {full:.2f} s")
    assert subprocess.run(cmd).returncode == 0 and json_report(st, ("day", "model")) == expected
    assert json_report(st, ("month", "model")) == monthly and _rolled_up(st)
    assert store.status(str(st))["consistent"]


def test_a_run_killed_between_its_rows_commit_and_the_files_table_is_replayed_from_the_log(tmp_path, monkeypatch):
    st = tmp_path / "store"
    store.ingest([str(log(tmp_path / "n1" / "a.csv", [req("a")]))], str(st))
    night2 = log(tmp_path / "n2" / "b.csv", [req("a"), req("b")])

    def die(*args, **kwargs):
        raise KeyboardInterrupt  # as if killed right after the rows commit

    with monkeypatch.context() as m:
        m.setattr(store, "_write_files", die)
        with pytest.raises(KeyboardInterrupt):
            store.ingest([str(night2)], str(st))
    # Readers already see the file's record, replayed from the commit's metadata ...
    rep = store.report(str(st), ["model"])
    assert rep.totals["cost"] == Decimal("0.009") and rep.accounting.rows_read == 3 and rep.accounting.balanced
    assert store.status(str(st))["consistent"]
    # ... and the next run records it in the files table and knows the file.
    result = store.ingest([str(night2)], str(st))
    assert result.recovered == [str(night2)] and result.files[0].status == "unchanged"
    assert store._recorded(str(st)) == 1 and json_report(st) == json_report(st)


def _nightly_requests():
    from hypothesis import strategies as hs

    # A request: (id, day in Oct/Nov, input tokens); the same id always has the same content, as an
    # exporter repeating a request writes it. Each night is a list of them (ids repeat across nights).
    request = hs.tuples(hs.integers(0, 25), hs.sampled_from(["2026-10-30", "2026-10-31", "2026-11-01"]))
    return hs.lists(hs.lists(request, min_size=0, max_size=8), min_size=1, max_size=3)


def test_property_nights_in_any_split_report_as_the_logs_together(tmp_path_factory):
    """However requests are spread over nights and files (repeated within and across them), the store
    reports what a report of all the logs together says: same rows, same exact total, same duplicates."""
    from hypothesis import HealthCheck, given, settings

    @settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(_nightly_requests())
    def check(nights):
        root = tmp_path_factory.mktemp("prop")
        content = {}
        files = []
        for n, night in enumerate(nights):
            rows = []
            for rid, day in night:
                day = content.setdefault(rid, day)  # one content per id
                rows.append(req(f"r{rid}", day, inp=1000 + rid))
            path = log(root / "logs" / f"night{n}.csv", rows) if rows else None
            # A file with the same bytes as an earlier one is, for the store, that file again (a no-op
            # by design, see test_same_content_under_another_name_is_a_no_op): left out of both sides.
            if path is not None and all(path.read_bytes() != f.read_bytes() for f in files):
                files.append(path)
        for f in files:
            store.ingest([str(f)], str(root / "st"))
        if not files:
            return
        by = ["month", "model"]
        logs = pipeline.analyze([str(f) for f in files], by, pipeline.Options(quarantine=str(root / "q.jsonl")))
        stored = store.report(str(root / "st"), by)
        assert_frame_equal(stored.rows, logs.rows)
        assert stored.totals == logs.totals
        # hand count: every distinct id is one request of 1000 + id input and 100 output tokens at $3/$15
        assert stored.totals["cost"] == sum((Decimal(1000 + r) * 3 + 100 * 15) / 10**6 for r in content)
        assert stored.accounting.duplicates == logs.accounting.duplicates and stored.accounting.balanced

    check()


def test_compact_removes_a_quarantine_write_a_killed_run_left_and_nothing_else(tmp_path):
    # kill -9 during the quarantine file's atomic write leaves its temporary name behind (the random
    # kill test hit it now and then): status names it, compact removes it, a look-alike stays.
    st = tmp_path / "store"
    store.ingest([str(SAMPLE)], str(st))
    q = st / store.QUARANTINE
    left = q / ".llm-cost-0123456789abcdef.tmp"
    left.write_text('{"raw": "half a quarantine file')
    mine = q / ".llm-cost-notes.tmp"  # not the writer's pattern: never ours to delete
    mine.write_text("a user's note")
    assert os.path.join(store.QUARANTINE, left.name) in store.status(str(st))["uncommitted"]
    store.compact(str(st))
    assert not left.exists() and mine.read_text() == "a user's note"
    assert not store.status(str(st))["uncommitted"]


# ----------------------------------------------------------------------------------------------
# Issue 13 leftovers: repair, masking, case of dimension names, --wait


def test_a_cut_short_last_commit_is_one_line_and_store_repair_goes_back_without_deleting(tmp_path):
    st = tmp_path / "store"
    c = log(tmp_path / "c.csv", [req("a")])
    d = log(tmp_path / "d.csv", [req("b", "2026-11-10")])
    store.ingest([str(c)], str(st))
    store.ingest([str(d)], str(st))
    last = st / "_delta_log" / "00000000000000000001.json"
    last.write_bytes(last.read_bytes()[:100])  # a commit cut short
    before = {p for p in tree(st) if "_llm_month=" in p}
    r = run("report", "--store", st)
    assert r.exit_code == 2 and "damaged store" in r.stderr and "store repair" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    r = run("store", "repair", st)
    assert r.exit_code == 0 and "back at version 0" in r.stdout and str(d) in r.stdout, r.output
    assert {p for p in tree(st) if "_llm_month=" in p} == before  # no data file deleted
    assert len(list((st / "_llm_cost" / "repaired").iterdir())) == 1  # the damaged commit, kept
    assert store.report(str(st), ["model"]).totals["cost"] == Decimal("0.0045")
    assert store.ingest([str(d)], str(st)).files[0].status == "ingested"  # forgotten: read again
    assert store.report(str(st), ["model"]).totals["cost"] == Decimal("0.009")
    assert run("store", "repair", st).stdout.strip().endswith("nothing to repair (version 1)")


def test_a_lost_last_commit_is_repaired_from_the_files_table_of_the_version_before(tmp_path):
    st = tmp_path / "store"
    store.ingest([str(log(tmp_path / "c.csv", [req("a")]))], str(st))
    store.ingest([str(log(tmp_path / "d.csv", [req("b")]))], str(st))
    (st / "_delta_log" / "00000000000000000001.json").unlink()
    r = run("store", "status", st)
    assert r.exit_code == 2 and "store repair" in r.stderr
    assert run("store", "repair", st).exit_code == 0
    assert store.status(str(st))["files"] == 1 and store.report(str(st), ["model"]).accounting.balanced


def test_repair_refuses_when_more_than_the_last_commit_is_damaged_and_changes_nothing(tmp_path):
    st = tmp_path / "store"
    for n in range(3):
        store.ingest([str(log(tmp_path / f"{n}.csv", [req(f"r{n}")]))], str(st))
    first = st / "_delta_log" / "00000000000000000001.json"
    first.write_text("{")
    snapshot = tree(st)
    r = run("store", "repair", st)
    assert r.exit_code == 2 and "changed nothing" in r.stderr
    assert {k: v for k, v in tree(st).items() if k != "_llm_cost/lock"} == \
        {k: v for k, v in snapshot.items() if k != "_llm_cost/lock"}


def test_quarantine_files_the_store_writes_mask_keys(tmp_path):
    key = "sk-ant-api03-" + "A" * 40 + "a1B2"
    bad = tmp_path / "a.csv"
    bad.write_text("request_id,timestamp,model,input_tokens,output_tokens,api_key\n"
                   f"a,2026-10-10T10:00:00Z,{SONNET},1000,100,{key}\nb,2026-10-10T10:00:00Z,{SONNET},lots,100,{key}\n")
    store.ingest([str(bad)], str(tmp_path / "st"))
    text = "".join(p.read_text() for p in (tmp_path / "st" / "_llm_cost" / "quarantine").iterdir())
    assert "lots" in text and key not in text and "a1B2" in text


def test_by_a_dimension_matches_its_column_case_insensitively_as_from_logs(tmp_path):
    a = tmp_path / "a.csv"
    a.write_text(f"request_id,timestamp,model,input_tokens,output_tokens,Team\na,2026-10-10T10:00:00Z,{SONNET},1000,100,x\n"
                 f"b,2026-10-10T10:00:00Z,{SONNET},1000,100,y\n")
    store.ingest([str(a)], str(tmp_path / "st"))
    from_store = run("report", "--store", tmp_path / "st", "--by", "team", "--format", "csv", "-q")
    from_log = run("report", a, "--by", "team", "--format", "csv", "-q")
    assert from_store.exit_code == 0, from_store.output
    assert from_store.stdout == from_log.stdout and from_log.stdout.startswith("Team,")


def test_a_log_with_team_and_Team_is_refused_in_one_line_naming_both(tmp_path):  # noqa: N802
    both = tmp_path / "a.csv"
    both.write_text(f"request_id,timestamp,model,input_tokens,output_tokens,Team,team\na,2026-10-10T10:00:00Z,{SONNET},1,1,x,y\n")
    r = run("ingest", both, "--store", tmp_path / "st")
    assert r.exit_code == 2 and "'Team' and 'team'" in r.stderr and len(r.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("wait", ["nan", "inf", "-1"])
def test_wait_must_be_a_finite_number_of_seconds(tmp_path, wait):
    a = log(tmp_path / "a.csv", [req("a")])
    for args in (["ingest", a, "--store", tmp_path / "st"], ["store", "compact", tmp_path / "st"],
                 ["reprice", "--store", tmp_path / "st"], ["store", "repair", tmp_path / "st"]):
        r = run(*args, "--wait", wait)
        assert r.exit_code == 2 and "--wait" in r.stderr and "Traceback" not in r.output, (args, r.output)

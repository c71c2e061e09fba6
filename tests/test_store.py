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

from analyzer import pipeline, store, writers
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
    assert s["months"] == {"2026-10": 14, "2026-11": 6} and not s["leftovers"]
    assert len(list((st / "quarantine").iterdir())) == 2  # each file's unreadable rows, kept


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
    (st / "rows" / "month=2026-09" / os.listdir(st / "rows" / "month=2026-09")[0]).write_bytes(b"garbage")
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
    old_parts = {p["file"] for p in store.Manifest.read(str(st)).parts()}
    log(path, [req("a", out=200), req("c")])  # re-exported: a grew, b gone, c new
    result = store.ingest([str(path)], str(st))
    assert result.files[0].status == "replaced" and result.files[0].accounting.duplicates == 0
    rep = store.report(str(st), ["model"])
    # a: 1000 x 3/1e6 + 200 x 15/1e6 = 0.006; c: 0.0045
    assert rep.totals["cost"] == Decimal("0.0105") and rep.accounting.rows_read == 2
    assert not any((st / name).exists() for name in old_parts)
    assert store.status(str(st))["consistent"]


def test_same_content_under_another_name_is_a_no_op(tmp_path):
    st = tmp_path / "store"
    path = log(tmp_path / "in" / "day.csv", [req("a")])
    store.ingest([str(path)], str(st))
    copy = tmp_path / "copy" / "day.csv"
    copy.parent.mkdir()
    shutil.copy(path, copy)
    assert store.ingest([str(copy)], str(st)).files[0].status == f"same content as {path}"


def test_leftovers_of_a_killed_run_are_removed_by_the_next(tmp_path):
    st = tmp_path / "store"
    store.ingest([str(SAMPLE)], str(st))
    report = json_report(st)
    orphan = st / "rows" / "month=2026-12" / "part-0123456789abcdef.parquet"
    orphan.parent.mkdir()
    orphan.write_bytes(b"half a part")
    (st / ".llm-cost-abc.tmp").write_bytes(b"half a manifest")
    s = store.status(str(st))
    assert sorted(s["leftovers"]) == [".llm-cost-abc.tmp", "rows/month=2026-12/part-0123456789abcdef.parquet"]
    assert json_report(st) == report  # reports read only what the manifest names
    assert sorted(store.ingest([str(SAMPLE)], str(st)).recovered) == sorted(s["leftovers"])
    assert not store.status(str(st))["leftovers"] and not orphan.parent.exists()


def test_a_second_run_waits_then_exits_2_naming_the_holder(tmp_path):
    st = tmp_path / "store"
    with store.locked(str(st), "ingest"):
        r = run("ingest", SAMPLE, "--store", st, "--wait", "0.3")
    assert r.exit_code == 2
    assert f"locked by pid {os.getpid()}" in r.stderr and "--wait" in r.stderr
    assert run("ingest", SAMPLE, "--store", st, "--wait", "0").exit_code == 0  # released


def test_a_stale_lock_of_a_dead_process_is_taken_over(tmp_path):
    st = tmp_path / "store"
    st.mkdir()
    (st / ".lock").write_text(json.dumps({"pid": 2**22 + 7, "host": "cron-box", "command": "ingest",
                                          "started": "2026-11-24T02:00:00+00:00"}))
    r = run("ingest", SAMPLE, "--store", st, "--wait", "0")
    assert r.exit_code == 0, r.output
    assert "pid 4194311 on cron-box" in r.stderr and "taking it over" in r.stderr
    assert (st / ".lock").read_text() == ""  # released cleanly


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
    ingested = store.Manifest.read(str(st)).files[str(tmp_path / "in" / "a.csv")]["price_book"]
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


@pytest.mark.slow
def test_kill_minus_9_at_random_moments_leaves_a_store_that_reports_as_a_clean_run(tmp_path):
    nights = _nights(tmp_path / "logs")
    clean = tmp_path / "clean"
    for night in nights:
        store.ingest([str(night)], str(clean))
    expected = json_report(clean, ("day", "model"))
    st = tmp_path / "store"
    rng = random.Random(4)
    cmd = [sys.executable, "-m", "analyzer", "ingest", "--store", str(st), "--wait", "5", "-q"]
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
        if (st / "manifest.json").exists():  # whatever moment it died at, the store is whole
            status = store.status(str(st))
            assert not status["missing_parts"]
            torn += bool(status["leftovers"])  # killed between writing a file and naming it
    print(f"{killed} of {CRASH_RUNS} ingests killed, {torn} with files written but not committed; "
          f"one night takes {full:.2f} s")
    assert killed >= CRASH_RUNS // 3, f"only {killed} runs were killed: the delays are too long"
    subprocess.run([*cmd, str(nights[-1])], check=True)
    assert json_report(st, ("day", "model")) == expected
    s = store.status(str(st))
    assert s["consistent"] and not s["leftovers"] and s == {**store.status(str(clean)), "store": s["store"],
                                                            "last_ingest": s["last_ingest"], "bytes": s["bytes"]}
    assert not [p for p in st.rglob("*") if p.name.startswith(".llm-cost-")]


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
    assert s["consistent"] and s["repeats"] == 2 and s["not_billable"] == 6  # 4 + a LiteLLM cache hit and failure
    stored = store.report(st, ["model"])
    logs = pipeline.analyze(inputs, ["model"], opts)
    assert stored.accounting.balanced and stored.totals["cost"] == logs.totals["cost"]
    for k in ("rows_read", "priced", "unpriced", "duplicates", "repeats", "not_billable", "quarantined"):
        assert getattr(stored.accounting, k) == getattr(logs.accounting, k), k

"""Attacks on the store's rule for a request seen on two nights (storeid1: a later night's copy with
more tokens removes the stored one from its data file). The goal: `report --store` equals `report` of
all the nights' files, in any ingest order, and the accounting adds up the same. Each defect test is
an input where it did not; the fixed ones failed before their fix, the others are strict xfails that
say what is wrong. The rest guard what held under attack (kills, compaction, time travel)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from analyzer import pipeline, store

from ..test_store import json_report, log, req
from ..test_store_copies import ingest_in_order, same_as_logs

ROOT = Path(__file__).parent.parent.parent
FIXTURES = ROOT / "fixtures" / "dialects"


def at(rid, stamp, model="claude-sonnet-4-5", inp=1000, out=100, **kw):
    """A request stamped at `stamp` (the helper `req` stamps 10:00 of a day)."""
    return {**req(rid, model=model, inp=inp, out=out, **kw), "timestamp": stamp}


def _files_accounting(st: Path) -> dict[str, dict]:
    """Each ingested file's accounting, by its directory's name (a night)."""
    records = store._files(str(st), store._table(str(st))).values()
    return {Path(r["path"]).parent.name: r["accounting"] for r in records}


# ----------------------------------------------------------------------------------------------
# Fixed


def test_a_displaced_copy_from_a_stream_file_is_a_repeat_as_in_a_report(tmp_path):
    """An Anthropic Messages stream (SSE events as JSON Lines) repeats its records: the format
    decides per file (a stream does, a file of whole responses does not). Night 1's export was cut
    after the first delta (40 output tokens); night 2 has the whole stream (310). Night 2's copy
    displaces night 1's, which a report of both files counts as a repeat (a stream's copy).

    Was: counted as a duplicate. Whether the file repeats records was kept in the ingest's commit
    but not in the files table (not one of its columns), so the next night found no word of it and
    fell back to the format's name, which for a per-file format says no. Now the files table keeps
    it (`repeats_records`; a files table written before lacks it and falls back as before)."""
    lines = (FIXTURES / "anthropic-messages" / "stream.jsonl").read_text().splitlines()
    n1, n2 = tmp_path / "n1" / "s.jsonl", tmp_path / "n2" / "s.jsonl"
    for path, text in ((n1, lines[:5]), (n2, lines)):
        path.parent.mkdir()
        path.write_text("\n".join(text) + "\n")
        os.utime(path, (1794830400, 1794830400))  # (no times in a stream: the file's; the same night)
    st = tmp_path / "store"
    results = ingest_in_order(st, [n1, n2])
    assert results[1].displaced == 1
    rep = same_as_logs(st, [n1, n2])
    # rows read: the events with usage, 2 + 5; stored: msg_stream_01 and msg_stream_02 of night 2;
    # the other 5 are repeats (none a duplicate), night 1's both (one of them displaced)
    assert (rep.accounting.rows_read, rep.accounting.duplicates, rep.accounting.repeats) == (7, 0, 5)
    assert _files_accounting(st)["n1"]["repeats"] == 2 and _files_accounting(st)["n1"]["duplicates"] == 0
    assert store._files(str(st), store._table(str(st)))[str(n1)]["repeats_records"] is True


def test_a_files_table_without_the_repeats_column_still_reads(tmp_path):
    """A store whose files table was written before `repeats_records` was one of its columns reads
    as before: a record without it falls back to its format's name."""
    n1 = log(tmp_path / "n1" / "a.csv", [req("r1", "2026-11-10")])
    n2 = log(tmp_path / "n2" / "b.csv", [req("r1", "2026-11-10", out=500)])
    st = tmp_path / "store"
    store.ingest([str(n1)], str(st))
    files = st / "_llm_cost" / "files"
    old = pl.read_delta(str(files)).drop("repeats_records")
    import deltalake

    deltalake.write_deltalake(str(files), old.to_arrow(), mode="overwrite", schema_mode="overwrite",
                              commit_properties=store._commit("files", **{store.K_VERSION: 0}))
    assert "repeats_records" not in pl.read_delta(str(files)).columns
    assert ingest_in_order(st, [n2])[0].displaced == 1
    assert same_as_logs(st, [n1, n2]).accounting.duplicates == 1


# ----------------------------------------------------------------------------------------------
# Strict xfails


def test_replacing_the_winning_file_brings_back_the_copy_it_displaced(tmp_path):
    """A night's copy displaced another file's stored copy; then the night's file is replaced (same
    path, new content without the request). Was: the request was in no file (the displaced copy
    removed from its data file, and its own file unchanged, so never ingested again). Now the
    displacing night's record names the copies it displaced (kept whole in `_llm_cost/displaced/`),
    and the replacing commit stores them again."""
    n1 = log(tmp_path / "n1" / "a.csv", [req("r1", "2026-11-10"), req("r2", "2026-11-10")])
    n2 = log(tmp_path / "n2" / "b.csv", [req("r1", "2026-11-10", out=500)])
    st = tmp_path / "store"
    assert ingest_in_order(st, [n1, n2])[1].displaced == 1
    log(n2, [req("r3", "2026-11-10")])  # b.csv exported again: r1 was not its request after all
    assert ingest_in_order(st, [n1, n2])[1].status == "replaced"
    # a.csv's r1 (1000 x 3 + 100 x 15 = 4,500 / 1e6), r2 the same, r3 the same: 3 requests
    rep = store.report(str(st), ["month"])
    assert (rep.totals["requests"], rep.totals["cost"]) == (3, Decimal("0.0135"))
    rep = same_as_logs(st, [n1, n2])
    assert (rep.accounting.rows_read, rep.accounting.duplicates) == (3, 0)
    assert _files_accounting(st)["n1"]["priced"] == 2 and _files_accounting(st)["n1"]["duplicates"] == 0
    # the version before still says what it said: r1 with 500 output (3,000 + 7,500), r2 4,500
    assert store.report(str(st), ["month"], version=1).totals["cost"] == Decimal("0.015")


def _sidechain_nights(tmp_path):
    """Night 1: a Claude Code transcript; night 2: a subagent's sidechain replay of one of its
    messages, with more output tokens (900; the main chain's copy says 136)."""
    src = next((FIXTURES / "claude-code").rglob("*.jsonl"))
    lines = src.read_text().splitlines()
    side = []
    for line in lines:
        o = json.loads(line)
        if o.get("message", {}).get("id") == "msg_015oRrxAaM8CuSF2MFET9J3i":
            o["isSidechain"] = True
            o["message"]["usage"]["output_tokens"] = 900
            side.append(json.dumps(o))
    n1, n2 = tmp_path / "n1" / "s.jsonl", tmp_path / "n2" / "agent-x.jsonl"
    for path, text in ((n1, lines), (n2, side)):
        path.parent.mkdir()
        path.write_text("\n".join(text) + "\n")
    return n1, n2


@pytest.mark.parametrize("order", [(0, 1), (1, 0)])
def test_a_sidechain_copy_never_beats_the_main_chain_on_any_night(tmp_path, order):
    """A sidechain replay never beats the main chain's copy in a report, whatever its tokens: the
    store keeps each row's rank (`_llm_rank`) and compares copies across nights by rank, then tokens.
    Was: by tokens alone, so a later night's sidechain copy with more tokens displaced the stored
    main-chain copy. Main chain first, the sidechain copy is a repeat; sidechain first, the main
    chain's copy (fewer tokens) displaces it."""
    n1, n2 = _sidechain_nights(tmp_path)
    nights = [(n1, n2)[i] for i in order]
    st = tmp_path / "store"
    results = ingest_in_order(st, nights)
    assert results[1].displaced == (1 if order == (1, 0) else 0)
    rows = store.report(str(st), ["model"]).rows
    assert rows.filter(pl.col("model") == "claude-opus-4-6")["output_tokens"].to_list() == [136]
    same_as_logs(st, nights)
    stored = pl.read_delta(str(st))
    assert stored.filter(pl.col("request_id") == "msg_015oRrxAaM8CuSF2MFET9J3i")[store.RANK].to_list() == [0]
    # re-priced rows keep their rank: the sidechain copy, again on a later night, still loses
    store.reprice(str(st), pipeline.Options(prices=(str(ROOT / "fixtures" / "prices" / "negotiated.toml"),)))
    assert pl.read_delta(str(st))[store.RANK].null_count() == 0
    again = tmp_path / "n3" / "agent-y.jsonl"
    again.parent.mkdir()
    again.write_text(n2.read_text().replace('"output_tokens": 900', '"output_tokens": 950'))
    assert '"output_tokens": 950' in again.read_text()
    assert ingest_in_order(st, [again])[0].displaced == 0


def test_a_store_written_without_the_rank_column_reads_it_as_neutral(tmp_path):
    """A store whose data files were written before `_llm_rank` (here: the column dropped from every
    row, as the code before wrote them) reads a missing rank as 0, the neutral rank: copies of it
    compete by tokens, as before; the first night after brings the column (Delta's writer adds it),
    and the nights after rank their copies."""
    import deltalake

    n1 = log(tmp_path / "n1" / "a.csv", [req("r1", "2026-11-10"), req("r2", "2026-11-10")])
    n2 = log(tmp_path / "n2" / "b.csv", [req("r1", "2026-11-10", out=500), req("r3", "2026-11-10")])
    st = tmp_path / "store"
    store.ingest([str(n1)], str(st))
    old = pl.read_delta(str(st)).drop(store.RANK)
    deltalake.write_deltalake(str(st), old.to_arrow(), mode="overwrite", schema_mode="overwrite",
                              partition_by=[store.MONTH], commit_properties=store._commit("ingest"))
    store._write_files(str(st), store._files(str(st), store._table(str(st))), store._table(str(st)).version())
    assert store.RANK not in pl.read_delta(str(st)).columns
    same_as_logs(st, [n1])
    # (a new column: the night goes through Delta's writer, which leaves a stored copy in place)
    assert ingest_in_order(st, [n2])[0].displaced == 0
    assert store.RANK in pl.read_delta(str(st)).columns
    n3 = log(tmp_path / "n3" / "c.csv", [req("r2", "2026-11-10", out=700)])
    assert ingest_in_order(st, [n3])[0].displaced == 1  # r2's stored copy, written without a rank
    rep = store.report(str(st), ["month"])
    # r1 as stored (1000 x 3 + 100 x 15 = 4,500), r2 with 700 output (3,000 + 10,500), r3 4,500
    assert (rep.totals["requests"], rep.totals["cost"]) == (3, Decimal("0.0045") + Decimal("0.0135") + Decimal("0.0045"))
    assert rep.accounting.balanced and store.status(str(st))["consistent"]


# ----------------------------------------------------------------------------------------------
# What held


def test_three_nights_rising_falling_and_equal_in_every_order(tmp_path):
    """One id on three nights (and twice within the middle one) with tokens rising, falling, equal
    and mixed, ingested in every order: the store reports as the files in that order."""
    import itertools

    for values in ((100, 200, 300), (300, 200, 100), (200, 200, 200), (100, 300, 200)):
        nights = []
        for n, out in enumerate(values):
            rows = [req("r1", "2026-11-10", out=out, workspace=f"w{n}"), req(f"own{n}", "2026-11-10", out=7 + n)]
            if n == 1:
                rows.append(req("r1", "2026-11-10", out=out - 50, workspace="wx"))
            nights.append(log(tmp_path / "-".join(map(str, values)) / f"n{n}" / f"f{n}.csv", rows))
        for order in itertools.permutations(nights):
            st = order[0].parent.parent / ("st-" + "".join(p.parent.name for p in order))
            ingest_in_order(st, list(order))
            rep = same_as_logs(st, list(order), ("workspace", "model"))
            assert rep.totals["requests"] == 4 and rep.accounting.duplicates == 3


def test_displacing_in_two_months_and_files_keeps_every_other_row_exactly(tmp_path):
    """A night whose fuller copies lie in two months and two data files (one of them another
    night's, one compacted later): every other row of those files survives, column for column, as a
    price of the files gives it; time travel, compaction and a reprice still agree."""
    n0 = log(tmp_path / "n0" / "z.csv", [at(f"z{i}", "2026-11-01T02:00:00Z", out=5) for i in range(10)])
    n1 = log(tmp_path / "n1" / "a.csv", [at(f"r{i}", "2026-10-31T23:00:00Z" if i % 2 else "2026-11-01T01:00:00Z",
                                            inp=1000 + i, out=10 + i, workspace=f"w{i % 3}") for i in range(300)])
    n2 = log(tmp_path / "n2" / "b.csv", [at(f"r{i}", "2026-11-01T00:30:00Z", out=9999) for i in (1, 2, 3, 4, 7)]
             + [at("r5", "2026-10-31T23:59:00Z", model="claude-nope", out=99999), at("z3", "2026-11-01T02:00:00Z", out=6)])
    st = tmp_path / "store"
    results = ingest_in_order(st, [n0, n1, n2])
    assert [r.displaced for r in results] == [0, 0, 7]
    files = [n0, n1, n2]
    for by in (("month", "workspace", "model"), ("day", "model")):
        same_as_logs(st, files, by)
    priced, _ = pipeline.price_requests([str(f) for f in files], pipeline.Options(quarantine=str(tmp_path / "q")))
    want = priced.lazy().collect()
    got = pl.read_delta(str(st))
    cols = [c for c in want.columns if c in got.columns]
    assert len(cols) > 30 and got.height == want.height == 310
    assert_frame_equal(want.select(cols).sort("request_id"), got.select(cols).sort("request_id"))
    before = store.report(str(st), ["month"], version=1)  # the two nights before the displacing one
    assert before.totals == pipeline.analyze([str(n0), str(n1)], ["month"], pipeline.Options(
        quarantine=str(tmp_path / "q2"))).totals
    store.compact(str(st), retention_days=0)
    same_as_logs(st, files)
    store.reprice(str(st), pipeline.Options(prices=(str(ROOT / "fixtures" / "prices" / "negotiated.toml"),)))
    assert store.status(str(st))["consistent"] and store.report(str(st), ["month"]).accounting.balanced


# kill -9 at each step of an ingest that displaces stored copies, then the ingest again: the store
# is at the version before or after the night (never between), and ends as a clean run.
KILLER = """
import functools, os, signal, sys
import deltalake
import analyzer.store as s
s.CHECKPOINT_EVERY = 2
s.ROW_GROUP = 4
owner, name, when, nth = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
target = {"months": s._MonthFiles, "store": s, "delta": deltalake.DeltaTable}[owner]
real = getattr(target, name)
calls = [0]
@functools.wraps(real)
def f(*a, **k):
    calls[0] += 1
    if calls[0] == nth and when == "before":
        os.kill(os.getpid(), signal.SIGKILL)
    out = real(*a, **k)
    if calls[0] == nth and when == "after":
        os.kill(os.getpid(), signal.SIGKILL)
    return out
setattr(target, name, f)
from analyzer.cli import main
main(sys.argv[5:], prog_name="llm-cost")
"""
KILL_POINTS = [("store", "_repeats", "after", 1), ("months", "displace", "before", 1),
               ("months", "_note", "after", 3), ("months", "displace", "after", 1),
               ("months", "summarize", "after", 1), ("delta", "create_write_transaction", "before", 1),
               ("delta", "create_write_transaction", "after", 1), ("store", "_checkpoint", "before", 1),
               ("store", "_write_files", "before", 1), ("store", "_write_rollups", "before", 1),
               ("store", "_write_summaries", "after", 2)]


@pytest.fixture(scope="module")
def displacing_nights(tmp_path_factory):
    root = tmp_path_factory.mktemp("kill")
    n0 = log(root / "n0" / "z.csv", [at(f"z{i}", "2026-11-01T02:00:00Z", out=5) for i in range(6)])
    n1 = log(root / "n1" / "a.csv", [at(f"r{i}", "2026-10-31T23:00:00Z" if i % 2 else "2026-11-01T01:00:00Z",
                                        out=10 + i) for i in range(30)])
    n2 = log(root / "n2" / "b.csv", [at(f"r{i}", "2026-11-01T00:30:00Z", out=9999) for i in (1, 2, 3, 4, 7, 20)]
             + [at("z3", "2026-11-01T02:00:00Z", out=60), at("new", "2026-11-01T02:00:00Z")])
    base = root / "base"
    for night in (n0, n1):
        _cli(base, "none", "", "", 0, night)
    clean = root / "clean"
    shutil.copytree(base, clean)
    _cli(clean, "none", "", "", 0, n2)
    return root, [n0, n1, n2], base, json_report(base, ("day", "model")), json_report(clean, ("day", "model"))


def _cli(st: Path, owner: str, name: str, when: str, nth: int, *files: Path) -> int:
    launch = KILLER if owner != "none" else "import sys; from analyzer.cli import main; main(sys.argv[5:], prog_name='llm-cost')"
    cmd = [sys.executable, "-c", launch, owner, name, when, str(nth), "ingest", *map(str, files), "--store", str(st), "-q"]
    p = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert p.returncode in (0, -signal.SIGKILL), p.stderr
    return p.returncode


@pytest.mark.slow
@pytest.mark.parametrize("point", KILL_POINTS, ids=lambda p: f"{p[1]}-{p[2]}-{p[3]}")
def test_kill_minus_9_at_each_step_of_a_displacing_ingest(tmp_path, displacing_nights, point):
    root, files, base, before, after = displacing_nights
    st = tmp_path / "store"
    shutil.copytree(base, st)
    assert _cli(st, *point, files[2]) == -signal.SIGKILL  # (each point is reached by this night)
    assert json_report(st, ("day", "model")) in (before, after)
    assert not store.status(str(st))["damaged_parts"]
    _cli(st, "none", "", "", 0, *files)
    assert json_report(st, ("day", "model")) == after
    same_as_logs(st, files)
    store.compact(str(st), retention_days=0)
    assert not store.status(str(st))["uncommitted"]
    same_as_logs(st, files)



def test_a_store_reached_through_a_symlinked_directory_displaces_copies(tmp_path):
    """/data -> /mnt/disk/data: delta-rs resolves the symlink, so the table names its data files
    under the real directory. Was: the first night with a fuller copy of a stored request failed,
    "damaged store: ../../real/st/_llm_month=.../part-...parquet is not a data file of the store"
    (the path of the file to rewrite was taken relative to the directory as given). Now relative to
    the table's own root."""
    real = tmp_path / "real"
    real.mkdir()
    (tmp_path / "link").symlink_to(real)
    st = tmp_path / "link" / "store"
    n1 = log(tmp_path / "n1" / "a.csv", [req("r1", "2026-11-10"), req("r2", "2026-11-10")])
    n2 = log(tmp_path / "n2" / "b.csv", [req("r1", "2026-11-10", out=500)])
    assert [r.displaced for r in ingest_in_order(st, [n1, n2])] == [0, 1]
    rep = same_as_logs(st, [n1, n2])
    assert rep.totals["cost"] == Decimal("0.0105") + Decimal("0.0045")  # r1 with 500 output, r2
    assert not [p for p in tmp_path.rglob("*.parquet") if not p.resolve().is_relative_to(real)]


def test_a_month_report_through_a_symlinked_store_counts_each_request_once(tmp_path):
    """Through a symlinked store directory every path the table names is under the resolved one
    ('../../real/store/...' relative to the directory as given). Was (before storeid1 too): a
    month's rollup never covered its data files, so `report --store --by month` summed the rollup
    and the files' own summaries: every request twice (`--by day`, from day cells, was right).
    Now each command resolves the store's directory once, first."""
    real = tmp_path / "real"
    real.mkdir()
    (tmp_path / "link").symlink_to(real)
    st = tmp_path / "link" / "store"
    n1 = log(tmp_path / "n1" / "a.csv", [req("r1", "2026-11-10"), req("r2", "2026-11-10")])
    n2 = log(tmp_path / "n2" / "b.csv", [req("r3", "2026-11-11", team="x")])  # a new column: Delta's writer
    n3 = log(tmp_path / "n3" / "c.csv", [req("r9", "2026-11-10")])
    ingest_in_order(st, [n1, n2, n3])
    assert store.report(str(st), ["day"]).totals["requests"] == 4
    assert store.report(str(st), ["month"]).totals["requests"] == 4
    same_as_logs(st, [n1, n2, n3])
    store.reprice(str(st), pipeline.Options(prices=(str(ROOT / "fixtures" / "prices" / "negotiated.toml"),)))
    store.compact(str(st))
    rep = store.report(str(st), ["month"])
    assert rep.totals["requests"] == 4 and rep.accounting.balanced and store.status(str(st))["consistent"]
    through, direct = (store.report(str(root), ["month", "model"]) for root in (st, real / "store"))
    assert_frame_equal(through.rows, direct.rows)


def test_two_ingests_at_once_displacing_the_same_copies(tmp_path):
    """Two nights, each with fuller copies of the same stored requests (one with more tokens than
    the other for some, less for others), ingested by two processes at once: the lock puts one
    after the other, and the store reports as the files in the order they were committed."""
    n1 = log(tmp_path / "n1" / "a.csv", [req(f"r{i}", "2026-11-10", out=100) for i in range(30)])
    n2 = log(tmp_path / "n2" / "b.csv", [req(f"r{i}", "2026-11-10", out=500 if i % 2 else 50) for i in range(30)])
    n3 = log(tmp_path / "n3" / "c.csv", [req(f"r{i}", "2026-11-10", out=300) for i in range(0, 30, 3)]
             + [req("c", "2026-11-11")])
    st = tmp_path / "store"
    store.ingest([str(n1)], str(st))
    cmd = "import sys; from analyzer.cli import main; main(sys.argv[1:], prog_name='llm-cost')"
    procs = [subprocess.Popen([sys.executable, "-c", cmd, "ingest", str(f), "--store", str(st), "-q"],
                              env={**os.environ, "PYTHONPATH": str(ROOT)}, stderr=subprocess.PIPE, text=True)
             for f in (n2, n3)]
    assert [p.communicate()[1] for p in procs] == ["", ""] and all(p.returncode == 0 for p in procs)
    records = store._files(str(st), store._table(str(st))).values()
    order = [Path(r["path"]) for r in sorted(records, key=lambda r: r["rows_version"])]
    assert order[0] == n1 and set(order[1:]) == {n2, n3}
    rep = same_as_logs(st, order)
    assert rep.totals["requests"] == 31 and rep.accounting.duplicates == 40

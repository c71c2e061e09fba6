"""A night's month files summarized beside its pricing: a month the log (in time order) has left
behind is closed and summarized by one worker thread while the later months are priced. The
summaries, reports and crash safety are those of the summaries written one after the other at the
end (store.SUMMARY_AHEAD = False)."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from analyzer import pipeline, store, writers

from .test_store import _rolled_up, _rows_report, json_report, log, req

MONTHS = ["2026-08", "2026-09", "2026-10"]


def _rows(months: list[str], per: int = 120) -> list[dict]:
    """Requests in time order over `months` (a block of `per` each, some sharing an id within the
    month: duplicates), the way a nightly export of a backfill would be."""
    rows = []
    for k, month in enumerate(months):
        for i in range(per):
            day = f"{month}-{1 + i % 27:02d}"
            rows.append(req(f"{month}-{k}-{i % (per - 5)}", day, model=["claude-sonnet-4-5", "claude-haiku-4-5"][i % 2],
                            inp=1000 + 7 * i, out=10 * i, workspace=f"w{i % 3}"))
    return rows


def _night(path: Path, months: list[str], per: int = 120) -> Path:
    """A night of `_rows` as Parquet (which is priced in slices: see writers.write_rows)."""
    return log(path, _rows(months, per))


def _summary_frames(st: Path) -> dict[str, pl.DataFrame]:
    """Each grain's summaries of the store, all files together, in one order (file names aside)."""
    out = {}
    for grain in store.GRAINS:
        frames = [pl.read_parquet(p) for p in sorted((st / store.SUMMARY / grain).rglob("*.parquet"))]
        df = pl.concat(frames, how="diagonal_relaxed")
        out[grain] = df.select(sorted(df.columns)).sort(pl.all())
    return out


@pytest.fixture
def small_slices(monkeypatch):
    monkeypatch.setattr(writers, "SLICE_ROWS", 50)  # (priced 50 rows at a time: months end mid-night)


def test_a_month_left_behind_is_summarized_while_the_next_is_priced(tmp_path, monkeypatch, small_slices):
    night = _night(tmp_path / "night.parquet", MONTHS)
    calls = []
    real, close = store._write_summaries, store._MonthFiles.close
    pricing = threading.Event()
    two = threading.Semaphore(0)

    def spy(root, part, *a, **k):
        calls.append((part.split("/")[0], threading.current_thread() is threading.main_thread(), pricing.is_set()))
        two.release()
        return real(root, part, *a, **k)

    def closing(self, empty):
        # The last slice is appended: August's and September's summaries began before this (the
        # worker may not have run yet on a busy machine, so wait for them here, where the code
        # before waited for nothing and summarized them only after close).
        got = [two.acquire(timeout=60) for _ in range(2)]
        pricing.set()
        assert store.SUMMARY_AHEAD is False or all(got)
        return close(self, empty)

    monkeypatch.setattr(store, "_write_summaries", spy)
    monkeypatch.setattr(store._MonthFiles, "close", closing)
    st = tmp_path / "store"
    store.ingest([str(night)], str(st))
    # August and September were summarized in the worker while the night was still being priced;
    # October (the last) once the night was priced.
    assert calls == [("_llm_month=2026-08", False, False), ("_llm_month=2026-09", False, False),
                     ("_llm_month=2026-10", False, True)]
    assert store.status(str(st))["unsummarized"] == 0 and _rolled_up(st)
    # The same summaries as the sequential code's, and the same reports, from summaries and rows.
    monkeypatch.setattr(store, "SUMMARY_AHEAD", False)
    monkeypatch.setattr(store._MonthFiles, "close", close)
    calls.clear()
    pricing.set()
    seq = tmp_path / "sequential"
    store.ingest([str(night)], str(seq))
    assert [c[1:] for c in calls] == [(True, True)] * 3
    ahead, before = _summary_frames(st), _summary_frames(seq)
    for grain in store.GRAINS:
        assert_frame_equal(ahead[grain], before[grain])
    for by in (("month", "model"), ("day", "workspace"), ("hour", "model_raw")):
        assert json_report(st, by) == json_report(seq, by) == _rows_report(st, by)
    rep = store.report(str(st), ["month"], pipeline.Options())
    assert rep.totals["cost"] == pipeline.analyze([str(night)], ["month"], pipeline.Options()).totals["cost"]


def test_a_month_that_comes_back_gets_a_second_file_and_nothing_is_lost(tmp_path, small_slices):
    """A log not quite in time order: August's file is closed when September's rows begin, then more
    of August comes. It goes to a second August file (both summarized), and no month is closed
    early again that night; the store reports as the log does."""
    rows, more = _rows(["2026-08"]), _rows(["2026-09", "2026-10"])
    late = [req(f"late-{i}", f"2026-08-{10 + i % 5:02d}", inp=500 + i) for i in range(60)]
    night = log(tmp_path / "night.parquet", [*rows[:100], *more[:100], *late, *rows[100:], *more[100:]])
    st = tmp_path / "store"
    result = store.ingest([str(night)], str(st))
    parts = sorted(p.parent.name for p in st.glob("_llm_month=*/*.parquet"))
    assert parts == ["_llm_month=2026-08", "_llm_month=2026-08", "_llm_month=2026-09", "_llm_month=2026-10"]
    assert store.status(str(st))["unsummarized"] == 0 and _rolled_up(st)
    direct = pipeline.analyze([str(night)], ["month", "model"], pipeline.Options())
    assert result.accounting.priced == direct.accounting.priced and result.accounting.duplicates == direct.accounting.duplicates
    for by in (("month", "model"), ("day", "workspace")):
        assert json_report(st, by) == _rows_report(st, by)
    assert store.report(str(st), ["month", "model"], pipeline.Options()).totals["cost"] == direct.totals["cost"]


# A process that prices 50 rows at a time (so months end mid-night) and kills itself with SIGKILL
# inside the summary worker: at the start of its `n`-th summary, or right after it was written.
KILLER = """
import os, signal, threading, analyzer.store as s, analyzer.writers as w
w.SLICE_ROWS = 50
real, seen = s._write_summaries, []
def killing(root, part, *a, **k):
    seen.append(part)
    if threading.current_thread() is not threading.main_thread() and len(seen) == {n} and {before}:
        os.kill(os.getpid(), signal.SIGKILL)
    out = real(root, part, *a, **k)
    if threading.current_thread() is not threading.main_thread() and len(seen) == {n} and not {before}:
        os.kill(os.getpid(), signal.SIGKILL)
    return out
s._write_summaries = killing
from analyzer.cli import main
main(prog_name='llm-cost')
"""


@pytest.mark.parametrize(("n", "before"), [(1, True), (1, False), (2, True), (2, False)])
def test_kill_minus_9_inside_the_summaries_beside_pricing_leaves_a_whole_store(tmp_path, n, before):
    first = _night(tmp_path / "n1" / "a.parquet", ["2026-06", "2026-07"])
    night = _night(tmp_path / "n2" / "a.parquet", MONTHS)
    clean = tmp_path / "clean"
    for f in (first, night):
        store.ingest([str(f)], str(clean))
    st = tmp_path / "store"
    store.ingest([str(first)], str(st))
    before_kill = json_report(st, ("month", "model"))
    killer = KILLER.format(n=n, before=before)
    p = subprocess.run([sys.executable, "-c", killer, "ingest", str(night), "--store", str(st), "-q"],
                       capture_output=True)
    assert p.returncode == -signal.SIGKILL, p.stderr  # (killed in the worker, while pricing ran)
    status = store.status(str(st))
    assert not status["damaged_parts"] and status["uncommitted"]  # written, never committed
    # The killed night is not in the store; what it wrote is invisible to reports (summaries too).
    assert json_report(st, ("month", "model")) == before_kill == _rows_report(st, ("month", "model"))
    store.ingest([str(night)], str(st))
    for by in (("month", "model"), ("day", "workspace")):
        assert json_report(st, by) == json_report(clean, by) == _rows_report(st, by)
    store.compact(str(st))
    s = store.status(str(st))
    assert not s["uncommitted"] and s["unsummarized"] == 0 and _rolled_up(st)
    parts = {p.relative_to(st) for p in st.glob("_llm_month=*/*.parquet")}
    summaries = {p.relative_to(st / store.SUMMARY) for g in store.GRAINS
                 for p in (st / store.SUMMARY / g).rglob("*.parquet")}
    assert summaries == {Path(g) / p for g in store.GRAINS for p in parts}  # (none outlives its data file)
    assert not [p for p in st.rglob("*") if p.name.startswith(".llm-cost-")]
    assert json_report(st, ("month", "model")) == json_report(clean, ("month", "model"))


def test_a_failed_pricing_stops_the_summaries_and_removes_what_they_wrote(tmp_path, monkeypatch, small_slices):
    """An error while a later month is priced (here: the disk, as October's rows are written) ends
    the run; the summary worker is stopped and waited for, and neither the month files nor the
    summaries it wrote stay behind."""
    night = _night(tmp_path / "night.parquet", MONTHS)
    st = tmp_path / "store"
    store.ingest([str(_night(tmp_path / "first.parquet", ["2026-06"]))], str(st))
    august = threading.Event()
    real_summaries, real_write = store._write_summaries, store._MonthFiles._write

    def summaries(root, part, *a, **k):
        out = real_summaries(root, part, *a, **k)
        august.set()
        return out

    def write(self, month, rows):
        if month == "2026-10":
            assert august.wait(60)  # (August's summaries are written: there is something to remove)
            raise store.StoreError("cannot write: No space left on device")
        return real_write(self, month, rows)

    monkeypatch.setattr(store, "_write_summaries", summaries)
    monkeypatch.setattr(store._MonthFiles, "_write", write)
    before = {p.relative_to(st) for p in st.rglob("*") if p.is_file()}
    with pytest.raises(store.StoreError, match="No space left"):
        store.ingest([str(night)], str(st))
    after = {p.relative_to(st) for p in st.rglob("*") if p.is_file()}
    assert {p for p in after - before if "quarantine" not in p.parts} == set()
    assert not store.status(str(st))["uncommitted"]

"""Attacks on the store's per-file summaries (issue 18): each test is the smallest store that made
`report --store` read from summaries differ from the same report read from rows, or from
`llm-cost report` of the same logs, with exit 0. Each failed before its fix in analyzer/store.py."""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
from decimal import Decimal
from pathlib import Path

import hypothesis.strategies as hs
import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings

from analyzer import pipeline, store, writers

from ..test_store import log, req, run

HEAD = "request_id,timestamp,model,input_tokens,output_tokens\n"


def _store(tmp_path: Path, *nights: str) -> Path:
    st = tmp_path / "store"
    for n, text in enumerate(nights):
        night = tmp_path / f"n{n}.csv"
        night.write_text(HEAD + text)
        store.ingest([str(night)], str(st))
    return st


def _json(st: Path, by: list[str], **opts) -> dict:
    return json.loads(writers.render(store.report(str(st), by, pipeline.Options(**opts)), "json"))


def _summaries(st: Path, grain: str = "day") -> list[Path]:
    return sorted((st / store.SUMMARY / grain).rglob("*.parquet"))


# ----------------------------------------------------------------------------------------------
# --by block: an unpriced request opens a 5-hour window in a report of the logs


def test_by_block_from_the_store_counts_unpriced_requests_in_the_windows_as_the_logs_do(tmp_path):
    # 10:00 opens a window to 15:00; the unpriced request at 15:30 opens the next, 15:00-20:00, so
    # the priced one at 16:10 belongs to the 15:00 window (the store said 16:00: it left the
    # unpriced request out of the windows).
    text = ("a,2026-03-10T10:00:00Z,claude-sonnet-4-5,1000,100\n"
            "b,2026-03-10T15:30:00Z,gpt-nope,1000,100\n"
            "c,2026-03-10T16:10:00Z,claude-sonnet-4-5,1000,100\n")
    st = _store(tmp_path, text)
    logs = pipeline.analyze([str(tmp_path / "n0.csv")], ["block"], pipeline.Options())
    assert logs.rows["block"].to_list() == ["2026-03-10 10:00", "2026-03-10 15:00"]
    assert store.report(str(st), ["block"]).rows["block"].to_list() == logs.rows["block"].to_list()


# ----------------------------------------------------------------------------------------------
# A month directory of the summaries that leads elsewhere


def test_a_symlinked_month_directory_of_the_summaries_is_refused_and_not_written_through(tmp_path):
    st = _store(tmp_path, "a,2026-10-10T10:00:00Z,claude-sonnet-4-5,1000,100\n")
    month = st / store.SUMMARY / "day" / "_llm_month=2026-10"
    elsewhere = tmp_path / "elsewhere"
    shutil.move(month, elsewhere)
    month.symlink_to(elsewhere)
    for p in elsewhere.glob("*.parquet"):  # what it leads to says 1,000 more requests
        pl.read_parquet(p).with_columns(pl.col("requests") + 1000).write_parquet(p)
    before = sorted(os.listdir(elsewhere))
    night = log(tmp_path / "n9.csv", [req("b", "2026-10-11")])
    for args in (["report", "--store", st], ["ingest", night, "--store", st], ["store", "compact", st],
                 ["store", "status", st]):
        r = run(*args)
        assert r.exit_code == 2 and "damaged store" in r.stderr and "symlink" in r.stderr, (args, r.output)
    assert sorted(os.listdir(elsewhere)) == before  # no summary written outside the store


# ----------------------------------------------------------------------------------------------
# A summary that is not its data file's: damaged, emptied, another file's, foreign


def _spoil(day: Path, how: str) -> None:
    if how == "truncated":  # (a disk error; a power loss after a rename the disk had not written)
        day.write_bytes(day.read_bytes()[:-20])
    elif how == "zero bytes":
        day.write_bytes(b"")
    elif how == "no rows":
        pl.read_parquet(day).head(0).write_parquet(day)
    elif how == "foreign":
        pl.DataFrame({"x": [1, 2]}).write_parquet(day)
    elif how == "other file's":  # the summary of another data file, copied over it
        other = next(p for p in _summaries(day.parents[2].parent.parent) if p != day)
        shutil.copyfile(other, day)


@pytest.mark.parametrize("how", ["truncated", "zero bytes", "no rows", "foreign", "other file's"])
def test_a_summary_that_is_not_its_data_files_is_not_read_and_compact_rewrites_it(tmp_path, how):
    st = _store(tmp_path, "a,2026-10-10T10:00:00Z,claude-sonnet-4-5,1000,100\n"
                          "b,2026-10-10T11:00:00Z,claude-sonnet-4-5,1000,100\n",
                "c,2026-10-12T10:00:00Z,claude-haiku-4-5,1000,100\n")
    expected = _json(st, ["month", "model"])
    assert expected["totals"]["requests"] == 3 and len(_summaries(st)) == 2
    day = _summaries(st)[0]
    _spoil(day, how)
    assert _json(st, ["month", "model"]) == expected  # read from the data file's rows instead
    s = store.status(str(st))
    assert s["unsummarized"] == 1 and s["consistent"]
    r = run("store", "status", st)
    assert r.exit_code == 0 and "1 data file without a summary" in r.output, r.output
    store.compact(str(st))
    assert store.status(str(st))["unsummarized"] == 0
    assert _json(st, ["month", "model"]) == expected


def test_a_summary_path_that_is_not_a_file_is_left_alone_and_the_rows_are_read(tmp_path):
    st = _store(tmp_path, "a,2026-10-10T10:00:00Z,claude-sonnet-4-5,1000,100\n")
    expected = _json(st, ["month"])
    day = _summaries(st)[0]
    day.unlink()
    os.mkfifo(day)  # compact would have written into it, and waited for a reader for ever
    assert _json(st, ["month"]) == expected
    store.compact(str(st))
    assert store.status(str(st))["unsummarized"] == 1 and _json(st, ["month"]) == expected
    assert _json(st, ["month"])["totals"]["cost"] == str(Decimal("0.0045").quantize(Decimal("1E-12")))


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(minutes=hs.lists(hs.tuples(hs.integers(0, 30 * 60), hs.booleans()), min_size=1, max_size=12),
       tz=hs.sampled_from(["UTC", "Asia/Kathmandu", "America/St_Johns"]))
def test_windows_of_a_store_are_the_windows_of_its_logs(tmp_path_factory, minutes, tz):
    # Any mix of priced and unpriced requests over a day and a half: the same windows and sums.
    tmp = tmp_path_factory.mktemp("blocks")
    t0 = dt.datetime(2026, 3, 7, 20, tzinfo=dt.UTC)
    text = "".join(f"r{i},{(t0 + dt.timedelta(minutes=m)).strftime('%Y-%m-%dT%H:%M:%SZ')},"
                   f"{'claude-sonnet-4-5' if priced else 'gpt-nope'},1000,100\n" for i, (m, priced) in enumerate(minutes))
    st = _store(tmp, text)
    logs = json.loads(writers.render(pipeline.analyze([str(tmp / "n0.csv")], ["block"], pipeline.Options(tz=tz)), "json"))
    stored = _json(st, ["block"], tz=tz)
    assert (stored["rows"], stored["totals"]) == (logs["rows"], logs["totals"])

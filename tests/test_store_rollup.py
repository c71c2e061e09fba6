"""Month rollups (issue 18): one summary of each month's data files together, for reports of long
histories. A report from a rollup equals the report from the files' hour cells and from the rows,
for every question a rollup answers, at every version, after ingest, compact, reprice, a replaced
file, and runs killed before the rollup was written; a question it cannot answer (--by day, a
zone whose month does not start at UTC midnight, a window cutting a month) reads the month as before."""

from __future__ import annotations

import datetime as dt
import json
import os
import random
import shutil
from pathlib import Path

import hypothesis.strategies as hs
import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings

from analyzer import pipeline, store, writers

from .test_store_summary import BY_KEYS, ZONES, _build, _night

SINCE = hs.one_of(hs.none(), hs.sampled_from(["2026-11-01", "2026-10-28", "2026-11-01T00:00:00+01:00",
                                               "2026-12-01", "2026-10-01"]))


def _json(st: Path, by, version=None, **opts) -> dict | str:
    try:
        return json.loads(writers.render(store.report(str(st), list(by), pipeline.Options(**opts), version=version),
                                         "json"))
    except Exception as e:  # noqa: BLE001 - every path must refuse alike
        return f"{type(e).__name__}: {e}"


def _three(st: Path, by, version=None, **opts) -> tuple:
    """(with rollups, from the files' hour cells alone, from the rows), and the months rolled up."""
    real_grain, real_whole, real_grains = store._grain, store._whole_months, store.GRAINS
    rolled: list[str] = []
    real_of = store._rollup_of

    def spy(root, month):
        have = real_of(root, month)
        if have is not None:
            rolled.append(month)
        return have

    try:
        store._rollup_of = spy
        with_rollups = _json(st, by, version, **opts)
        store._rollup_of = real_of
        store._whole_months = lambda *a, **k: set()
        store.GRAINS = {"hour": "1h"}
        hours = _json(st, by, version, **opts)
        store._grain = lambda *a, **k: None
        rows = _json(st, by, version, **opts)
    finally:
        store._grain, store._whole_months, store.GRAINS, store._rollup_of = real_grain, real_whole, real_grains, real_of
    return with_rollups, hours, rows, rolled


def _rollups(st: Path) -> dict[str, dict[str, int]]:
    out = {}
    for month in sorted(p.name.split("=")[1] for p in (st / store.ROLLUP).glob("_llm_month=*")):
        have = store._rollup_of(str(st), month)
        if have:
            out[month] = have[1]
    return out


def _files(st: Path) -> dict[str, dict[str, int]]:
    return store._file_sizes(str(st), store._table(str(st)))


@pytest.fixture(scope="module")
def stores(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("rollup")
    return {"plain": _build(tmp, 21, 4, 200, False), "compacted": _build(tmp, 22, 3, 200, True)}


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(which=hs.sampled_from(["plain", "compacted"]), by=hs.lists(hs.sampled_from(BY_KEYS), max_size=3, unique=True),
       tz=hs.sampled_from([*ZONES, "Europe/London", "Etc/GMT+0"]), since=SINCE, version=hs.sampled_from([None, 0, 2]))
def test_report_from_rollups_equals_hour_cells_equals_rows(stores, which, by, tz, since, version):
    rolled, hours, rows, _ = _three(stores[which], by, version, tz=tz, since=since)
    assert rolled == hours == rows


@settings(max_examples=5, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=hs.integers(0, 10**6), nights=hs.integers(1, 4), compact=hs.booleans(),
       by=hs.lists(hs.sampled_from(["month", "year", "quarter", "model", "workspace", "team", "discount_type"]),
                   max_size=2, unique=True))
def test_random_stores_roll_up_to_the_rows(tmp_path, seed, nights, compact, by):
    st = _build(tmp_path, seed, nights, 50, compact)
    try:
        rolled, hours, rows, months = _three(st, by)
        assert rolled == hours == rows
        assert sorted(months) == sorted(_files(st))  # in UTC nothing splits a month: every month rolled up
        assert _rollups(st) == _files(st)  # each rollup names exactly its month's files
    finally:
        shutil.rmtree(st)


def test_which_questions_a_rollup_answers(stores):
    st = stores["plain"]
    cases = {
        (("month", "model"), "UTC", None): ["2026-10", "2026-11"],
        (("model",), "UTC", None): ["2026-10", "2026-11"],
        (("year", "workspace"), "UTC", None): ["2026-10", "2026-11"],
        (("month",), "UTC", "2026-11-01"): ["2026-11"],  # (October is outside: not read at all)
        (("month",), "UTC", "2026-10-28"): ["2026-11"],  # the window cuts October: its day cells
        (("day",), "UTC", None): [],
        (("week",), "UTC", None): [],
        (("month",), "Europe/Berlin", None): [],  # Berlin's month starts at 22:00 or 23:00 UTC
        (("month",), "Asia/Kolkata", None): [],
        (("month", "source_file"), "UTC", None): [],  # not kept in a rollup: the files' summaries
        (("block",), "UTC", None): [],
    }
    for (by, tz, since), months in cases.items():
        rolled, hours, rows, used = _three(st, by, tz=tz, since=since)
        assert (used, rolled) == (months, rows), (by, tz, since)
        assert hours == rows


def _spoil(path: Path, extra: int) -> None:
    df = pl.read_parquet(path)
    first = pl.int_range(pl.len()) == pl.col("unpriced_reason").is_null().arg_max()
    df.with_columns(pl.when(first).then(pl.col("requests") + extra).otherwise(pl.col("requests"))
                    ).write_parquet(path, metadata=pl.read_parquet_metadata(path))


def test_a_rollup_is_read_and_is_kept_by_ingest_replace_compact_and_reprice(tmp_path):
    st = _build(tmp_path, 5, 3, 80, False)
    assert _rollups(st) == _files(st)
    base = _json(st, ["month"])
    # Live: changing the rollup changes a report by month in UTC (and only that).
    october = Path(store._rollup_path(str(st), "2026-10"))
    original = october.read_bytes()
    _spoil(october, 1000)
    assert _json(st, ["month"])["totals"]["requests"] == base["totals"]["requests"] + 1000
    assert _json(st, ["day"])["totals"]["requests"] == base["totals"]["requests"]
    october.write_bytes(original)
    # A night: the rollup grows by its file (from the old rollup and the new file's day summary).
    rng, ids = random.Random(9), []
    night = _night(tmp_path / "more" / "n.csv", rng, 70, dt.datetime(2026, 11, 3, tzinfo=dt.UTC), 1, ids)
    store.ingest([str(night)], str(st))
    assert _rollups(st) == _files(st)
    rolled, hours, rows, _ = _three(st, ["month", "model"])
    assert rolled == hours == rows
    # The same file changed: its rows are replaced (files removed), and the month's rollup rebuilt.
    pl.read_csv(night).head(20).write_csv(night)
    store.ingest([str(night)], str(st))
    assert _rollups(st) == _files(st)
    rolled, hours, rows, _ = _three(st, ["month", "model"])
    assert rolled == hours == rows and rolled["totals"]["requests"] < _three(st, ["month"], version=3)[0]["totals"][
        "requests"]
    # Compact and reprice rewrite files: their months' rollups name the new ones.
    store.compact(str(st), retention_days=0)
    assert _rollups(st) == _files(st)
    assert _three(st, ["month", "workspace"])[0] == _three(st, ["month", "workspace"])[2]
    store.reprice(str(st), pipeline.Options(prices=("fixtures/prices/negotiated.toml",), since="2026-11-01"))
    assert _rollups(st) == _files(st)
    rolled, hours, rows, months = _three(st, ["month", "model"])
    assert rolled == hours == rows and months == ["2026-10", "2026-11"]
    assert not [p for p in st.rglob("*") if p.name.startswith(".llm-cost-")]


def test_a_rollup_behind_its_version_covers_what_it_names_and_the_rest_is_read(tmp_path, monkeypatch):
    """A run killed after its commit and before its rollup leaves the old rollup: right for the
    files it names; the version's other files are read from their summaries. A rollup naming a
    file the version lacks (a report of an older version, or after compact) is not read."""
    st = _build(tmp_path, 8, 3, 80, False)  # (the third night reaches November)
    monkeypatch.setattr(store, "_write_rollups", lambda *a, **k: 0)  # as if killed before each rollup
    rng, ids = random.Random(2), []
    for k in range(2):
        store.ingest([str(_night(tmp_path / "late" / f"n{k}.csv", rng, 60,
                                 dt.datetime(2026, 11, 1 + k, tzinfo=dt.UTC), 1, ids))], str(st))
    assert _rollups(st) != _files(st)
    for version in (None, 0, 1, 3):
        rolled, hours, rows, used = _three(st, ["month", "model"], version)
        assert rolled == hours == rows, version
    assert _three(st, ["month"])[3] == ["2026-10", "2026-11"]  # old rollups + the new files' own summaries
    monkeypatch.undo()
    store.compact(str(st), retention_days=30)
    assert _rollups(st) == _files(st)
    rolled, hours, rows, _ = _three(st, ["month", "model"], 1)  # version 1's files: not all in the new rollups
    assert rolled == hours == rows


@pytest.mark.parametrize("damage", ["fifo", "symlink", "garbage", "other-month", "outside", "empty"])
def test_a_damaged_or_foreign_rollup_is_not_read(tmp_path, damage):
    st = _build(tmp_path, 3, 3, 60, False)  # (October and November)
    expected = _three(st, ["month", "model"])[2]
    target = Path(store._rollup_path(str(st), "2026-10"))
    other = Path(store._rollup_path(str(st), "2026-11"))
    target.unlink()
    if damage == "fifo":
        os.mkfifo(target)
    elif damage == "symlink":
        target.symlink_to(other)
    elif damage == "garbage":
        target.write_bytes(b"PAR1 not a parquet file PAR1")
    elif damage == "other-month":
        shutil.copy(other, target)
    elif damage == "outside":  # a rollup naming files outside its month (or the store)
        df = pl.read_parquet(other)
        meta = {store.ROLLUP_OF: json.dumps({"month": "2026-10", "parts": {"../../etc/passwd": 1}})}
        df.write_parquet(target, metadata=meta)
    else:
        target.write_bytes(b"")
    rolled, _, rows, used = _three(st, ["month", "model"])
    assert rolled == rows == expected and used == ["2026-11"]
    # The next ingest writes it again, except over what is not a file (left alone, never read).
    rng = random.Random(1)
    store.ingest([str(_night(tmp_path / "x" / "n.csv", rng, 10, dt.datetime(2026, 10, 29, tzinfo=dt.UTC), 1, []))],
                 str(st))
    rolled, _, rows, used = _three(st, ["month", "model"])
    assert rolled == rows
    assert used == (["2026-11"] if damage in ("fifo", "symlink") else ["2026-10", "2026-11"])


def test_a_symlinked_rollup_directory_is_damage(tmp_path):
    st = _build(tmp_path, 4, 1, 20, False)
    month = next((st / store.ROLLUP).iterdir())
    aside = tmp_path / "aside"
    month.rename(aside)
    month.symlink_to(aside)
    with pytest.raises(store.StoreError, match="symlink"):
        store.report(str(st), ["month"])


def test_counts_past_64_bits_in_a_month_leave_it_to_its_files(tmp_path, monkeypatch):
    big = 999_999_999_999
    monkeypatch.setattr(store, "INT64_MAX", 2 * big)  # each file's sums fit; the month's do not
    st = tmp_path / "st"
    for k in range(3):
        path = tmp_path / f"n{k}.csv"
        pl.DataFrame({"request_id": [f"r{k}"], "timestamp": [f"2026-10-1{k}T10:00:00Z"], "model": ["claude-sonnet-4-5"],
                      "input_tokens": [big], "output_tokens": [1]}).write_csv(path)
        store.ingest([str(path)], str(st))
    assert not _rollups(st)
    assert store.report(str(st), ["month"]).totals["input_tokens"] == 3 * big

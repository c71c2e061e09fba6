"""Reports from a store's summaries equal reports from its rows (issue 18).

Every data file has a summary per grain (exact sums by UTC hour or day and every text column); a
report reads them where its question allows (store._grain) and the rows elsewhere. These tests
compare the two paths on random stores and questions, and check that a summary is read only for
the data files of the version reported, and that a missing summary only costs time."""

from __future__ import annotations

import datetime as dt
import json
import os
import random
import shutil
from decimal import Decimal
from pathlib import Path

import hypothesis.strategies as hs
import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings

from analyzer import pipeline, store, writers

MODELS = ["claude-sonnet-4-5", "claude-haiku-4-5", "us.anthropic.claude-sonnet-4-5-20250929-v1:0", "claude-nope"]
ZONES = ["UTC", "Asia/Kolkata", "Asia/Kathmandu", "America/New_York", "Europe/Berlin", "Australia/Eucla",
         "Pacific/Chatham"]
BY_KEYS = ["hour", "day", "week", "month", "quarter", "year", "block", "model", "model_raw", "discount_type",
           "service_tier", "workspace", "team", "component", "context_tier", "price_book", "source_file"]


def _night(path: Path, rng: random.Random, n: int, start: dt.datetime, days: int, ids: list[str]) -> Path:
    """A canonical CSV of n random requests over `days` days from `start`, at random seconds
    (so hours and days split in every zone), some repeating ids of earlier nights."""
    rows = []
    for i in range(n):
        t = start + dt.timedelta(seconds=rng.randrange(days * 86400))
        rid = rng.choice(ids) if ids and rng.random() < 0.1 else f"{path.stem}-{i}"
        cached = rng.random() < 0.3
        rows.append({
            "request_id": rid, "timestamp": t.strftime("%Y-%m-%dT%H:%M:%SZ"), "model": rng.choice(MODELS),
            "input_tokens": rng.randrange(0, 300_000), "output_tokens": rng.randrange(0, 5000),
            "cache_read_tokens": rng.randrange(1, 9000) if cached else 0,
            "cache_write_5m_tokens": rng.randrange(1, 900) if rng.random() < 0.2 else 0,
            "service_tier": rng.choice(["standard", "batch"]),
            "workspace": rng.choice(["w1", "w2", None]), "team": rng.choice(["a", "b", None]),
            "reported_cost": rng.choice([None, "0.5", "0.000001"]),
        })
    ids.extend(r["request_id"] for r in rows)
    path.parent.mkdir(parents=True, exist_ok=True)
    pl.DataFrame(rows, schema={"request_id": pl.String, "timestamp": pl.String, "model": pl.String,
                               "input_tokens": pl.Int64, "output_tokens": pl.Int64, "cache_read_tokens": pl.Int64,
                               "cache_write_5m_tokens": pl.Int64, "service_tier": pl.String, "workspace": pl.String,
                               "team": pl.String, "reported_cost": pl.String}).write_csv(path)
    return path


def _build(tmp: Path, seed: int, nights: int, per: int, compact: bool) -> Path:
    rng = random.Random(seed)
    st = tmp / f"store-{seed}"
    ids: list[str] = []
    start = dt.datetime(2026, 10, 27, tzinfo=dt.UTC)  # across October's end, New York's and Berlin's DST change
    for k in range(nights):
        night = _night(tmp / f"logs-{seed}" / f"n{k}.csv", rng, per, start + dt.timedelta(days=2 * k), 3, ids)
        store.ingest([str(night)], str(st))
    if compact:
        store.compact(str(st), retention_days=30)
    return st


def _rows_only(monkeypatch):
    """The report as it was before summaries: every row scanned."""
    monkeypatch.setattr(store, "_grain", lambda *a, **k: None)
    monkeypatch.setattr(store, "_whole_months", lambda *a, **k: set())


def _json(st: Path, by: list[str], version: int | None = None, **opts) -> dict:
    rep = store.report(str(st), by, pipeline.Options(**opts), version=version)
    return json.loads(writers.render(rep, "json"))


def _both(st: Path, by, version=None, **opts) -> tuple[dict | str, dict | str, str | None]:
    """(from summaries, from rows, the grain the first used)."""
    used: list[str | None] = []
    real = store._grain

    def spy(*a, **k):
        used.append(real(*a, **k))
        return used[-1]

    def one(grain_fn, whole_fn=store._whole_months):
        store._grain, store._whole_months = grain_fn, whole_fn
        try:
            return _json(st, by, version, **opts)
        except Exception as e:  # noqa: BLE001 - both paths must refuse alike
            return f"{type(e).__name__}: {e}"
        finally:
            store._grain, store._whole_months = real, real_whole

    real_whole = store._whole_months
    summed = one(spy)
    rows = one(lambda *a, **k: None, lambda *a, **k: set())
    return summed, rows, used[0] if used else None


WINDOW = hs.one_of(
    hs.none(),
    hs.sampled_from(["2026-10-28", "2026-11-01", "2026-11-02T05:00:00Z", "2026-10-30T18:30:00Z",
                     "2026-11-01T00:07:00Z", "2026-10-29T23:59:59Z"]),
)


@pytest.fixture(scope="module")
def stores(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("summary")
    return {"plain": _build(tmp, 1, 3, 300, False), "compacted": _build(tmp, 2, 3, 300, True)}


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(which=hs.sampled_from(["plain", "compacted"]), by=hs.lists(hs.sampled_from(BY_KEYS), max_size=3, unique=True),
       tz=hs.sampled_from(ZONES), since=WINDOW, until=WINDOW, version=hs.sampled_from([None, 0, 1, 2]))
def test_a_report_from_summaries_equals_the_report_from_rows(stores, which, by, tz, since, until, version):
    summed, rows, _ = _both(stores[which], by, version, tz=tz, since=since, until=until)
    assert summed == rows


def test_summaries_are_used_where_they_answer_and_not_where_they_cannot(stores):
    st = stores["plain"]
    at = dt.datetime.fromisoformat
    cases = {
        (("month", "model"), "UTC", None, None): ("day", []),
        (("day", "workspace"), "UTC", "2026-10-28", "2026-11-01"): ("day", []),
        (("hour",), "UTC", None, None): ("hour", []),
        (("day",), "Europe/Berlin", None, None): ("hour", []),  # midnight in Berlin is 22:00 or 23:00 UTC
        # 18:30 UTC, Kolkata's midnight, splits an hour: that hour of each day is read from the rows
        (("day",), "Asia/Kolkata", None, None): ("hour", 61),
        (("hour",), "Asia/Kolkata", None, None): None,  # every hour split: the rows answer
        (("model",), "UTC", "2026-10-28T10:30:00Z", None): ("hour", [at("2026-10-28T10:00:00+00:00")]),
        (("model",), "UTC", "2026-10-28T10:00:00Z", None): ("hour", []),
        (("block",), "UTC", None, None): None,  # a 5-hour window needs each request's time
    }
    for (by, tz, since, until), grain in cases.items():
        summed, rows, used = _both(st, list(by), tz=tz, since=since, until=until)
        if used is not None and isinstance(grain[1], int):
            used = (used[0], len(used[1]))  # (one a day of October and November)
        assert (used, summed) == (grain, rows), (by, tz, since, until)


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=hs.integers(0, 10**6), nights=hs.integers(1, 3), compact=hs.booleans(),
       by=hs.lists(hs.sampled_from(BY_KEYS), max_size=3, unique=True), tz=hs.sampled_from(ZONES), since=WINDOW)
def test_random_stores_report_alike_from_summaries_and_rows(tmp_path, seed, nights, compact, by, tz, since):
    st = _build(tmp_path, seed, nights, 60, compact)
    try:
        summed, rows, _ = _both(st, by, tz=tz, since=since)
        assert summed == rows
    finally:
        shutil.rmtree(st)


def _summaries(st: Path) -> list[Path]:
    """The data files' own summaries (not the months' rollups)."""
    return sorted(p for g in store.GRAINS for p in (st / store.SUMMARY / g).rglob("*.parquet"))


def _spoil_summary(path: Path, extra_requests: int) -> None:
    df = pl.read_parquet(path)
    first_priced = (pl.int_range(pl.len()) == pl.col("unpriced_reason").is_null().arg_max())  # one group
    # (its metadata kept: it names the data file the summary stands for, without which it is not read)
    df.with_columns(pl.when(first_priced).then(pl.col("requests") + extra_requests).otherwise(pl.col("requests"))
                    ).write_parquet(path, metadata=pl.read_parquet_metadata(path))


def test_every_data_file_has_a_summary_per_grain_read_only_for_its_own_version(tmp_path):
    st = _build(tmp_path, 7, 2, 50, False)
    parts = sorted(p.relative_to(st) for p in st.glob("_llm_month=*/*.parquet"))
    assert [p.relative_to(st / store.SUMMARY) for p in _summaries(st)] == sorted(
        Path(g) / p for g in store.GRAINS for p in parts)
    base = _json(st, ["day"])["totals"]["requests"]
    # A summary is read for its data file: changing it changes the report (so the path is live) ...
    # (of a file the last version names: a night that replaced a stored copy with a fuller one
    # removed the file that held it, kept on disk for --version, with its summaries)
    live = {os.path.relpath(u, st) for u in store._parts(store._table(str(st)), None)}
    day = next(p for p in _summaries(st) if str(p.relative_to(st / store.SUMMARY / "day")) in live)
    original = day.read_bytes()
    _spoil_summary(day, 1000)
    assert _json(st, ["day"])["totals"]["requests"] == base + 1000
    day.write_bytes(original)
    # ... and a summary whose file no version names (a run killed before its commit) is never read.
    orphan = st / store.SUMMARY / "day" / "_llm_month=2026-10" / "part-00000-00000000-0000-0000-0000-000000000000-c000.zstd.parquet"
    orphan.parent.mkdir(parents=True, exist_ok=True)
    orphan.write_bytes(original)
    _spoil_summary(orphan, 5)
    assert _json(st, ["day"])["totals"]["requests"] == base
    store.compact(str(st), retention_days=30)  # nothing to merge away... but the orphan goes
    assert not orphan.exists()


def test_a_store_without_summaries_reports_the_same_and_compact_writes_them(tmp_path, monkeypatch):
    st = _build(tmp_path, 11, 2, 80, False)
    expected = _json(st, ["day", "model"], tz="America/New_York")
    shutil.rmtree(st / store.SUMMARY)  # a store written before summaries (or killed between writes)
    assert _json(st, ["day", "model"], tz="America/New_York") == expected
    assert store.status(str(st))["unsummarized"] == store.status(str(st))["data_files"] > 0
    assert store.status(str(st))["consistent"]
    store.compact(str(st))
    assert store.status(str(st))["unsummarized"] == 0 and _summaries(st)
    assert _json(st, ["day", "model"], tz="America/New_York") == expected


def test_compact_and_reprice_write_the_summaries_of_their_files_and_remove_the_vacuumed(tmp_path):
    st = _build(tmp_path, 13, 3, 80, False)
    before = _json(st, ["month", "model"])
    store.compact(str(st), retention_days=0)
    parts = {p.name for p in st.glob("_llm_month=*/*.parquet")}
    names = {p.name for p in _summaries(st)}
    assert names == parts and len(_summaries(st)) == len(parts) * len(store.GRAINS)
    assert _json(st, ["month", "model"]) == before
    store.reprice(str(st), pipeline.Options(since="2026-10-28", until="2026-10-29"))
    assert store.status(str(st))["unsummarized"] == 0
    assert _json(st, ["month", "model"])["totals"]["cost"] == before["totals"]["cost"]  # same book, same costs


def test_a_summary_of_a_truncated_data_file_is_not_trusted(tmp_path):
    st = _build(tmp_path, 17, 1, 20, False)
    part = next(st.glob("_llm_month=*/*.parquet"))
    part.write_bytes(part.read_bytes()[:-10])
    with pytest.raises(store.StoreError, match="damaged store: .* bytes, the log says"):
        store.report(str(st), ["month"])


def test_counts_that_could_overflow_a_summary_leave_the_file_to_its_rows(tmp_path, monkeypatch):
    big = 999_999_999_999
    # (2^63 would need ~9.2M rows of a trillion tokens in one cell; the bound is lowered to see it)
    monkeypatch.setattr(store, "INT64_MAX", big)
    path = tmp_path / "big.csv"
    pl.DataFrame({"request_id": ["a", "b"], "timestamp": ["2026-10-10T10:00:00Z"] * 2,
                  "model": ["claude-sonnet-4-5"] * 2, "input_tokens": [big, big], "output_tokens": [1, 1]}
                 ).write_csv(path)
    st = tmp_path / "st"
    store.ingest([str(path)], str(st))
    assert not _summaries(st) and store.status(str(st))["unsummarized"] == 1
    rep = store.report(str(st), ["model"])
    assert rep.totals["input_tokens"] == 2 * big
    assert rep.totals["cost"] == Decimal(2 * big) * 3 / 10**6 + Decimal(2) * 15 / 10**6


def test_a_first_ingest_killed_before_its_commit_says_so_and_how_to_recover(tmp_path):
    st = tmp_path / "store"
    (st / "_llm_cost").mkdir(parents=True)
    part = "part-00000-0b2c4c1e-5d5e-4c57-9c38-2f1f1a7f7d11-c000.zstd.parquet"
    (st / "_llm_month=2026-10").mkdir()
    (st / "_llm_month=2026-10" / part).write_bytes(b"half a part")
    summary = st / store.SUMMARY / "day" / "_llm_month=2026-10" / part  # written before the commit
    summary.parent.mkdir(parents=True)
    summary.write_bytes(b"a summary of it")
    for call in (lambda: store.report(str(st), ["model"]), lambda: store.status(str(st))):
        with pytest.raises(store.StoreError, match="first ingest did not finish .* run the ingest again"):
            call()
    night = tmp_path / "n.csv"
    night.write_text("request_id,timestamp,model,input_tokens,output_tokens\na,2026-10-10T10:00:00Z,claude-sonnet-4-5,1000,100\n")
    store.ingest([str(night)], str(st))
    assert store.report(str(st), ["model"]).totals["cost"] == Decimal("0.0045")
    store.compact(str(st))
    assert not summary.exists() and not (st / "_llm_month=2026-10" / part).exists()
    # (a summary a killed run left half-written, under atomic_write's temporary name, goes too)
    half = st / store.SUMMARY / "hour" / "_llm_month=2026-10" / ".llm-cost-0123456789abcdef.tmp"
    half.write_bytes(b"half")
    store.compact(str(st))
    assert not half.exists() and store.status(str(st))["unsummarized"] == 0


def test_status_notices_a_lost_commit_file_a_checkpoint_stands_for(tmp_path, monkeypatch):
    monkeypatch.setattr(store, "CHECKPOINT_EVERY", 2)
    st = _build(tmp_path, 19, 3, 10, False)  # versions 0, 1, 2; a checkpoint at 2
    assert store.status(str(st))["missing_commits"] == []
    (st / "_delta_log" / f"{2:020d}.json").unlink()
    s = store.status(str(st))
    assert s["missing_commits"] == [2] and s["version"] == 2 and s["consistent"]
    from click.testing import CliRunner

    from analyzer.cli import main

    r = CliRunner().invoke(main, ["store", "status", str(st)])
    assert "commit file of version 2 is missing" in r.output and r.exit_code == 0


def test_a_symlinked_summary_directory_is_refused_and_a_symlinked_summary_not_read(tmp_path):
    st = _build(tmp_path, 23, 1, 20, False)
    expected = _json(st, ["month"])
    one = _summaries(st)[0]
    elsewhere = tmp_path / "elsewhere.parquet"
    one.rename(elsewhere)
    _spoil_summary(elsewhere, 7)
    one.symlink_to(elsewhere)  # a summary that is not the store's own file: never read
    assert _json(st, ["month"]) == expected
    one.unlink()
    outside = tmp_path / "outside"
    (st / store.SUMMARY).rename(outside)
    (st / store.SUMMARY).symlink_to(outside)  # the next summary written would land outside the store
    with pytest.raises(store.StoreError, match="damaged store: .*summary is not a directory of this store"):
        store.report(str(st), ["month"])
    with pytest.raises(store.StoreError, match="not a directory of this store"):
        store.ingest([str(tmp_path / "logs-23" / "n0.csv")], str(st))


def test_a_file_a_summary_would_hardly_shrink_is_left_to_its_rows(tmp_path, monkeypatch):
    monkeypatch.setattr(store, "PROBE_ROWS", 16)  # (64K in use: a backfill of months at a few hundred an hour)
    head = "request_id,timestamp,model,input_tokens,output_tokens\n"
    spread = tmp_path / "spread.csv"  # one request an hour: as many hour cells as rows
    spread.write_text(head + "".join(f"s{i},2026-10-{1 + i // 24:02d}T{i % 24:02d}:00:00Z,claude-sonnet-4-5,1000,100\n"
                                     for i in range(40)))
    dense = tmp_path / "dense.csv"  # forty requests in one hour: one cell
    dense.write_text(head + "".join(f"d{i},2026-11-01T10:{i:02d}:00Z,claude-sonnet-4-5,1000,100\n" for i in range(40)))
    st = tmp_path / "st"
    store.ingest([str(spread), str(dense)], str(st))
    assert {p.parent.name for p in _summaries(st)} == {"_llm_month=2026-11"}
    assert store.status(str(st))["unsummarized"] == 1
    rep = store.report(str(st), ["month"])
    assert rep.totals["requests"] == 80 and rep.totals["cost"] == 80 * Decimal("0.0045")


def _summary_frames(root: Path, rel: str) -> dict[str, pl.DataFrame]:
    out = {}
    for grain in store.GRAINS:
        f = pl.read_parquet(store._summary_path(str(root), rel, grain))
        out[grain] = f.select(sorted(f.columns)).sort(pl.all())
    return out


_SLICE_ROW = hs.fixed_dictionaries({
    # (hours over 3 days, and some nulls: windows split at UTC days, null timestamps go with the first)
    "timestamp": hs.one_of(hs.none(), hs.integers(0, 3 * 86400 - 1).map(
        lambda s: dt.datetime(2026, 10, 30, tzinfo=dt.UTC) + dt.timedelta(seconds=s))),
    "model": hs.sampled_from(["a", "b", None]), "workspace": hs.sampled_from(["w1", "w2"]),
    "requests": hs.sampled_from([1, 0, None]), "input_tokens": hs.integers(0, 2**40),
    "cache_read_tokens": hs.sampled_from([0, 5]), "output_tokens": hs.integers(0, 10),
    "cost": hs.decimals(0, 10**6, places=12, allow_nan=False), "reported_cost": hs.sampled_from([None, Decimal("0.5")]),
})


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=hs.lists(_SLICE_ROW, min_size=0, max_size=40), window=hs.integers(1, 7))
def test_summary_in_windows_equals_one_pass(tmp_path, monkeypatch, rows, window):
    """A file summarized a few rows' worth of whole UTC days at a time (the aggregation of a merged
    file's 2.5M rows in one pass held 1.6 GiB) gives exactly the cells of one pass over all rows."""
    schema = {"request_id": pl.String, "timestamp": pl.Datetime("us", "UTC"), "model": pl.String,
              "workspace": pl.String, "requests": pl.Int64, "input_tokens": pl.Int64, "cache_read_tokens": pl.Int64,
              "output_tokens": pl.Int64, "cost": pl.Decimal(38, 12), "reported_cost": pl.Decimal(38, 12)}
    frame = pl.DataFrame([{"request_id": str(i), **r} for i, r in enumerate(rows)], schema=schema, orient="row")
    rel = "_llm_month=2026-10/part-00000-00000000-0000-0000-0000-000000000000-c000.zstd.parquet"
    monkeypatch.setattr(store, "SPARSE", 0)  # (summarize however many cells: this compares, not chooses)
    got = {}
    for name, size in (("one-pass", 10**9), ("windows", window)):
        root = tmp_path / name
        root.joinpath(rel).parent.mkdir(parents=True, exist_ok=True)
        frame.write_parquet(root / rel, row_group_size=3)
        monkeypatch.setattr(store, "WINDOW_ROWS", size)
        assert len(store._write_summaries(str(root), rel)) == len(store.GRAINS)
        got[name] = _summary_frames(root, rel)
    for grain in store.GRAINS:
        assert got["windows"][grain].equals(got["one-pass"][grain]), grain
    # and the one pass is the plain sum of the rows: the file's cost in every grain
    total = sum((r["cost"] for r in rows), Decimal(0))
    assert all(got["one-pass"][g]["cost"].sum() == total for g in store.GRAINS)
    days = {r["timestamp"].date() for r in rows if r["timestamp"] is not None}
    monkeypatch.setattr(store, "WINDOW_ROWS", 1)
    assert len(store._day_windows(pl.scan_parquet(tmp_path / "windows" / rel))) == max(1, len(days))


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=hs.integers(0, 10**6), nights=hs.integers(2, 5), per=hs.integers(1, 60), drop_team=hs.booleans(),
       window=hs.sampled_from([1, 7, 10**9]), target=hs.sampled_from([None, 40_000]))
def test_compact_sums_the_merged_files_summaries_to_the_summary_of_its_rows(tmp_path_factory, monkeypatch, seed,
                                                                             nights, per, drop_team, window, target):
    """`store compact` sums a merged file's summary from the summaries of the files it merges: the
    cells (UTC hour or day, text columns, cache use) are the same and sums add, so it equals the
    summary computed from the merged file's rows, also when one night lacks a dimension (nulls),
    nights overlap in days (cells of two sources merge) and in ids (duplicates)."""
    tmp = tmp_path_factory.mktemp("compactsum")
    monkeypatch.setattr(store, "SPARSE", 0)  # (summarize however many cells: this compares, not chooses)
    monkeypatch.setattr(store, "WINDOW_ROWS", window)
    monkeypatch.setattr(store, "COMPACT_TARGET", target)  # (small: a month packed into several new files)
    rng = random.Random(seed)
    st, ids = tmp / "st", []
    start = dt.datetime(2026, 10, 30, tzinfo=dt.UTC)  # nights of 3 days, a day apart: they share days
    for k in range(nights):
        night = _night(tmp / "logs" / f"n{k}.csv", rng, per, start + dt.timedelta(days=k), 3, ids)
        if drop_team and k == 0:
            pl.read_csv(night, infer_schema=False).drop("team").write_csv(night)
        store.ingest([str(night)], str(st))
    used: list[tuple[str, list[str]]] = []
    real = store._write_summaries

    def spy(root, part, sources=None):
        if sources is not None:
            used.append((part, sources))
        return real(root, part, sources)

    monkeypatch.setattr(store, "_write_summaries", spy)
    months = [f.split("/")[0] for f in store._row_counts(str(st), store._table(str(st)))]
    store.compact(str(st), retention_days=0)
    if len(set(months)) < len(months) and target is None:  # a month of two files or more: merged
        assert used, "compact summed no merged file from its sources' summaries"
    for part, sources in used:
        assert sources
        summed = _summary_frames(st, part)
        for grain in store.GRAINS:
            Path(store._summary_path(str(st), part, grain)).unlink()
        assert len(real(str(st), part)) == len(store.GRAINS)  # from the merged file's rows
        from_rows = _summary_frames(st, part)
        for grain in store.GRAINS:
            assert summed[grain].equals(from_rows[grain]), grain
    monkeypatch.undo()
    summed, rows, grain = _both(st, ["month", "team"])
    assert summed == rows and grain[0] == "day"


def test_a_night_bringing_a_new_column_gets_its_summaries(tmp_path):
    """A night with a column the table lacks is written by delta-rs (schema merge) and summarized
    after its commit. The files to summarize were listed after the write, through the DeltaTable
    the write had already moved to the new version, so they were taken as old: none got a summary."""
    head = "request_id,timestamp,model,input_tokens,output_tokens"
    a, b = tmp_path / "a.csv", tmp_path / "b.csv"
    a.write_text(f"{head}\na1,2026-10-10T10:00:00Z,claude-sonnet-4-5,1000,100\n")
    b.write_text(f"{head},team\nb1,2026-10-11T10:00:00Z,claude-sonnet-4-5,1000,100,x\n")
    st = tmp_path / "st"
    store.ingest([str(a)], str(st))
    store.ingest([str(b)], str(st))
    assert len(store._table(str(st)).file_uris()) == 2
    assert store.status(str(st))["unsummarized"] == 0


def test_compact_maps_a_month_packed_into_several_files_to_their_sources(tmp_path, monkeypatch):
    """delta-rs packs a month into several new files when it is over its target size; the log says
    which files went, not where. Each source goes to the one new file holding its rows' log-file
    hashes, and every new file's summary summed from its sources equals the one from its rows."""
    monkeypatch.setattr(store, "SPARSE", 0)
    rng, st, ids = random.Random(3), tmp_path / "st", []
    for k in range(8):  # eight one-day nights of October, ~30 KB each; packed ~2 a file below
        store.ingest([str(_night(tmp_path / "logs" / f"n{k}.csv", rng, 300,
                                 dt.datetime(2026, 10, 3 + k, tzinfo=dt.UTC), 1, ids))], str(st))
    # A target of 2.5 files packs them two a file, whatever size the writer makes them (~23-30 KB).
    sizes = [os.path.getsize(store._local(u)) for u in store._table(str(st)).file_uris()]
    monkeypatch.setattr(store, "COMPACT_TARGET", int(sum(sizes) / len(sizes) * 2.5))
    seen = []
    real = store._merged_from
    monkeypatch.setattr(store, "_merged_from", lambda *a: seen.append((a[1], a[2], real(*a))) or seen[-1][2])
    store.compact(str(st), retention_days=0)
    before, after, mapping = seen[0]
    made = [f for f in after if f not in before]
    assert len(made) >= 2 and set(mapping) == set(made)
    assert sorted(x for v in mapping.values() for x in v) == sorted(before)  # each source in one file
    for part in made:
        summed = _summary_frames(st, part)
        for grain in store.GRAINS:
            Path(store._summary_path(str(st), part, grain)).unlink()
        store._write_summaries(str(st), part)
        from_rows = _summary_frames(st, part)
        assert all(summed[g].equals(from_rows[g]) for g in store.GRAINS)
    summed, rows, grain = _both(st, ["day", "model", "team"])
    assert summed == rows and grain[0] == "day"


def test_a_summary_sums_only_the_measures_that_hold_a_value_and_in_64_bits(tmp_path, monkeypatch):
    """The month writer notes the money columns that are 0 or null in every row (the footers hold no
    money statistics) and a summary writes them as 0 instead of summing them in every cell; counts
    whose footer statistics bound every sum under 2^63 are summed in Int64. The cells are those of
    the summary from the file's rows alone, summed in 128 bits."""
    head = "request_id,timestamp,model,input_tokens,output_tokens,reported_cost,workspace\n"
    october = tmp_path / "october.csv"  # no reported cost: no web search, no reported cost to sum
    october.write_text(head + "".join(f"o{i},2026-10-10T{i % 3:02d}:00:00Z,claude-sonnet-4-5,{1000 + i},100,,w{i % 2}\n"
                                      for i in range(30)))
    november = tmp_path / "november.csv"  # one reported cost
    november.write_text(head + "n0,2026-11-02T10:00:00Z,claude-haiku-4-5,10,1,0.25,w1\n"
                        + "".join(f"n{i},2026-11-02T1{i % 2}:00:00Z,claude-haiku-4-5,10,1,,w1\n" for i in range(1, 9)))
    calls: list[tuple[bool, tuple[str, ...]]] = []
    real = store._cell_sums

    def spy(cells, keys, every, wide, measures=None):
        calls.append((wide, measures))
        return real(cells, keys, every, wide, measures)

    monkeypatch.setattr(store, "_cell_sums", spy)
    st = tmp_path / "st"
    summed = {}
    for night in (october, november):
        calls.clear()
        store.ingest([str(night)], str(st))
        summed[night.stem] = [c for c in calls if c[1] is not None and "input_tokens" in c[1]][-1]
    unvalued = {"cost_web_search", "cost_web_fetch", "reported_cost", store.REPORTED_ROWS, "web_search_requests"}
    for name, (wide, measures) in summed.items():
        assert not wide, name
        assert {"input_tokens", "cost", pipeline.ROWS} <= set(measures), name  # (savings: 0, no discount)
    assert not unvalued & set(summed["october"][1])
    assert {"reported_cost", store.REPORTED_ROWS} <= set(summed["november"][1])
    assert not {"cost_web_search", "web_search_requests"} & set(summed["november"][1])
    monkeypatch.setattr(store, "_cell_sums", real)
    monkeypatch.setattr(store, "_sums_fit", lambda *a: False)
    for uri in store._table(str(st)).file_uris():
        rel = os.path.relpath(uri, st)
        got = _summary_frames(st, rel)
        assert store._write_summaries(str(st), rel)  # (from its rows alone, all measures, Int128)
        want = _summary_frames(st, rel)
        for grain in store.GRAINS:
            assert got[grain].equals(want[grain]), (rel, grain)
            assert got[grain].schema == want[grain].schema
    rep = store.report(str(st), ["month"])
    assert rep.totals["reported_cost"] == Decimal("0.25")


def test_an_hour_summary_has_dictionaries_for_text_and_statistics_for_time_only(tmp_path):
    """PyArrow's defaults (a dictionary and statistics for every column) cost 2 of the 3 CPU s of
    writing a 2.6M-row month's 1.1M hour cells: reports filter cells by time alone, and a cell's
    sums nearly all differ."""
    import pyarrow.parquet as pq

    night = tmp_path / "night.csv"
    night.write_text("request_id,timestamp,model,input_tokens,output_tokens,workspace\n"
                     + "".join(f"r{i},2026-10-10T{i % 5:02d}:00:00Z,claude-sonnet-4-5,{i},1,w{i % 3}\n" for i in range(40)))
    st = tmp_path / "st"
    store.ingest([str(night)], str(st))
    (hour,) = (st / store.SUMMARY / "hour").rglob("*.parquet")
    md = pq.ParquetFile(hour).metadata
    frame = pl.read_parquet(hour)
    for i in range(md.num_columns):
        col = md.row_group(0).column(i)
        name = col.path_in_schema
        assert col.is_stats_set == (name == "timestamp"), name
        assert col.has_dictionary_page == (frame.schema[name] == pl.String), name
    assert frame["requests"].sum() == 40

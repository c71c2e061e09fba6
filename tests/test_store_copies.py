"""One request id on two nights with different content: the store keeps the copy a report of all the
nights' files keeps (dedupe.losers: the most tokens; on a tie, the copy read first), whatever the order
of the ingests when the copies differ in tokens, and the nights' order otherwise.

Before, the copy stored first stayed: a later night's fuller copy (a retried export with the final
counts) was counted as a duplicate, and `report --store` said less than `report` of the same files."""

from __future__ import annotations

import shutil
from decimal import Decimal
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from analyzer import pipeline, store

from .test_store import log, req

OPUS = "claude-opus-4-1"  # $15 input, $75 output per MTok
HAIKU = "claude-haiku-4-5"  # $1 input, $5 output per MTok


def at(rid, stamp, model="claude-sonnet-4-5", inp=1000, out=100):
    """A request stamped at `stamp` (the helper `req` stamps 10:00 of a day)."""
    return {**req(rid, model=model, inp=inp, out=out), "timestamp": stamp}


def ingest_in_order(st: Path, nights: list[Path]) -> list[store.FileResult]:
    return [f for night in nights for f in store.ingest([str(night)], str(st)).files]


def same_as_logs(st: Path, files: list[Path], by=("month", "model")) -> pipeline.Report:
    """The store's report equals a report of the files (in this order): rows, totals, accounting."""
    logs = pipeline.analyze([str(f) for f in files], list(by), pipeline.Options(quarantine=str(st) + ".q.jsonl"))
    stored = store.report(str(st), list(by))
    assert_frame_equal(stored.rows, logs.rows)
    assert stored.totals == logs.totals
    for k in ("rows_read", "priced", "unpriced", "duplicates", "repeats", "not_billable", "quarantined"):
        assert getattr(stored.accounting, k) == getattr(logs.accounting, k), k
    assert stored.accounting.balanced and store.status(str(st))["consistent"]
    return stored


@pytest.fixture
def fuller(tmp_path):
    """Night 1 logs r1 early (100 output tokens); night 2 again with its final counts (500), r2
    unchanged, and r3 new."""
    n1 = log(tmp_path / "n1" / "a.csv", [req("r1", "2026-11-10"), req("r2", "2026-11-10", inp=2000, out=200)])
    n2 = log(tmp_path / "n2" / "b.csv", [req("r1", "2026-11-10", out=500), req("r2", "2026-11-10", inp=2000, out=200),
                                         req("r3", "2026-11-11", inp=10, out=1)])
    return n1, n2


# r1 with 500 output: 1000 x 3 + 500 x 15 = 10,500 / 1e6; r2: 2000 x 3 + 200 x 15 = 9,000; r3: 10 x 3 + 15 = 45
FULL = Decimal("0.010500") + Decimal("0.009000") + Decimal("0.000045")


@pytest.mark.parametrize("order", [(0, 1), (1, 0)])
def test_a_fuller_copy_counts_whichever_night_is_ingested_first(tmp_path, fuller, order):
    st = tmp_path / "store"
    nights = [fuller[i] for i in order]
    results = ingest_in_order(st, nights)
    rep = same_as_logs(st, nights)
    assert rep.totals["cost"] == FULL and rep.totals["requests"] == 3 and rep.totals["output_tokens"] == 701
    a = rep.accounting
    assert (a.rows_read, a.priced, a.duplicates) == (5, 3, 2)  # r1's early copy and r2's second copy
    if order == (0, 1):
        # the second night stores r1 and r3 (r2's copy is a duplicate: a tie, the stored copy stays),
        # and r1's early copy, stored the night before, is removed from its file and now a duplicate
        assert (results[1].stored, results[1].displaced, results[1].accounting.duplicates) == (2, 1, 1)
        records = {Path(r["path"]).name: r["accounting"] for r in store._files(str(st), store._table(str(st))).values()}
        assert records["a.csv"]["duplicates"] == 1 and records["a.csv"]["priced"] == 1
        assert records["b.csv"]["duplicates"] == 1 and records["b.csv"]["priced"] == 2
        # the version before still says what it said (r1 early: 1000 x 3 + 100 x 15 = 4,500)
        old = store.report(str(st), ["month"], version=0)
        assert old.totals["cost"] == Decimal("0.0045") + Decimal("0.009")
    else:
        assert (results[1].stored, results[1].displaced, results[1].accounting.duplicates) == (0, 0, 2)
    # and the rows any Delta reader sees: one row per request, r1's with 500 output tokens
    rows = pl.read_delta(str(st)).sort("request_id")
    assert rows["request_id"].to_list() == ["r1", "r2", "r3"] and rows["output_tokens"].to_list() == [500, 200, 1]
    assert rows["cost"].sum() == FULL
    # compacted, and the file that held r1's early copy vacuumed: the same report
    store.compact(str(st), retention_days=0)
    assert len(list(st.glob("_llm_month=*/*.parquet"))) == 1
    assert same_as_logs(st, nights).totals == rep.totals


def test_price_rows_of_the_files_are_the_stored_rows(tmp_path, fuller):
    st = tmp_path / "store"
    ingest_in_order(st, list(fuller))
    priced, _ = pipeline.price_requests([str(f) for f in fuller], pipeline.Options(quarantine=str(tmp_path / "q")))
    cols = ["request_id", "model", "input_tokens", "output_tokens", "cost"]
    assert_frame_equal(priced.lazy().collect().select(cols).sort("request_id"),
                       pl.read_delta(str(st)).select(cols).sort("request_id"))


def test_a_fuller_copy_across_the_month_end_moves_the_request_to_its_month(tmp_path):
    # r1 logged at 23:30 on October 31 by one exporter, at 00:10 on November 1 by the next night's,
    # with another model name and its final counts: one request, the fuller copy (in November).
    n1 = log(tmp_path / "n1" / "a.csv", [at("r1", "2026-10-31T23:30:00Z"),
                                         at("r2", "2026-10-31T11:00:00Z", inp=2000, out=200),
                                         at("r2", "2026-10-31T11:00:00Z", inp=2000, out=300)])  # twice in one night
    n2 = log(tmp_path / "n2" / "b.csv", [at("r1", "2026-11-01T00:10:00Z", OPUS, out=500),
                                         at("r2", "2026-11-01T01:00:00Z", HAIKU, inp=1000, out=200),
                                         at("r4", "2026-11-01T01:00:00Z", HAIKU, inp=5, out=5),
                                         at("r4", "2026-11-01T01:00:00Z", HAIKU, inp=5, out=6)])
    for order in ((n1, n2), (n2, n1)):
        st = tmp_path / f"store-{order[0].parent.name}"
        ingest_in_order(st, list(order))
        rep = same_as_logs(st, list(order))
        by_month = dict(zip(rep.rows["month"].to_list(), rep.rows["cost"].to_list(), strict=False))
        # October: r2's fullest copy, 2000 x 3 + 300 x 15 = 10,500. November: r1 on Opus,
        # 1000 x 15 + 500 x 75 = 52,500, and r4's fuller copy on Haiku, 5 x 1 + 6 x 5 = 35.
        assert rep.rows["month"].to_list() == ["2026-10", "2026-11", "2026-11"]
        assert by_month["2026-10"] == Decimal("0.0105")
        assert rep.totals["cost"] == Decimal("0.0105") + Decimal("0.0525") + Decimal("0.000035")
        assert (rep.accounting.rows_read, rep.accounting.duplicates) == (7, 4)
        assert store.status(str(st))["months"] == {"2026-10": 1, "2026-11": 2}


def test_an_unpriced_copy_and_a_priced_one_trade_places(tmp_path):
    # r1: night 1's copy names an unknown model, night 2's is fuller and priced; r2 the other way round
    n1 = log(tmp_path / "n1" / "a.csv", [req("r1", model="claude-sonnett-9"), req("r2", inp=2000, out=200)])
    n2 = log(tmp_path / "n2" / "b.csv", [req("r1", out=500), req("r2", model="claude-sonnett-9", inp=2000, out=900)])
    st = tmp_path / "store"
    ingest_in_order(st, [n1, n2])
    rep = same_as_logs(st, [n1, n2])
    a = rep.accounting
    assert (a.rows_read, a.priced, a.unpriced, a.duplicates) == (4, 1, 1, 2)
    assert a.unpriced_models == {"claude-sonnett-9": 1}
    assert rep.totals["cost"] == Decimal("0.0105")  # r1: 1000 x 3 + 500 x 15
    # Every stored row of night 1 lost: its file is removed, none added for it.
    assert store.status(str(st))["months"] == {"2026-10": 2}


def test_copies_alike_in_tokens_keep_the_first_night(tmp_path):
    """A tie (same tokens, other content: here the model and workspace) is the one case where the
    order matters, as it does for a report: the copy read first (the night ingested first) stays."""
    n1 = log(tmp_path / "n1" / "a.csv", [req("r1", workspace="a")])
    n2 = log(tmp_path / "n2" / "b.csv", [req("r1", model=OPUS, workspace="b")])
    for nights, cost in (([n1, n2], Decimal("0.0045")), ([n2, n1], Decimal("0.0225"))):  # Sonnet / Opus
        st = tmp_path / f"store-{nights[0].parent.name}"
        ingest_in_order(st, nights)
        assert same_as_logs(st, nights, ("workspace", "model")).totals["cost"] == cost


def test_identical_copies_are_one_request_whatever_the_order(tmp_path):
    rows = [req("r1", "2026-11-10"), req("r2", "2026-11-10", inp=2000, out=200)]
    n1 = log(tmp_path / "n1" / "a.csv", rows)
    n2 = log(tmp_path / "n2" / "a.csv", [*rows, req("r9", "2026-11-10", inp=1, out=1)])  # the same and one more
    for nights in ([n1, n2], [n2, n1]):
        st = tmp_path / f"store-{nights[0].parent.name}"
        results = ingest_in_order(st, nights)
        rep = same_as_logs(st, nights)
        assert rep.totals["requests"] == 3 and rep.accounting.duplicates == 2
        assert not any(r.displaced for r in results)


def test_a_far_copy_is_another_request_to_the_store(tmp_path):
    """The repeat check looks a day either side of a night's days (it never reads the history): a
    copy stamped further away is a second request, where a report of the files counts it once."""
    n1 = log(tmp_path / "n1" / "a.csv", [req("r1", "2026-11-01")])
    n2 = log(tmp_path / "n2" / "b.csv", [req("r1", "2026-11-05", out=500)])
    st = tmp_path / "store"
    ingest_in_order(st, [n1, n2])
    stored = store.report(str(st), ["month"])
    logs = pipeline.analyze([str(n1), str(n2)], ["month"], pipeline.Options(quarantine=str(tmp_path / "q")))
    assert (stored.totals["requests"], stored.totals["cost"]) == (2, Decimal("0.0045") + Decimal("0.0105"))
    assert (logs.totals["requests"], logs.totals["cost"]) == (1, Decimal("0.0105"))


def test_a_replaced_file_keeps_the_stored_copies_of_other_files(tmp_path):
    """A night whose file replaces its earlier content is committed by Delta's writer, which cannot
    also rewrite other nights' files: there the stored copy of another file stays (docs/store.md)."""
    n1 = log(tmp_path / "n1" / "a.csv", [req("r1")])
    n2 = log(tmp_path / "n2" / "b.csv", [req("r2")])
    st = tmp_path / "store"
    ingest_in_order(st, [n1, n2])
    log(n2, [req("r1", out=500), req("r2")])  # re-exported with a fuller copy of night 1's r1
    result = store.ingest([str(n2)], str(st)).files[0]
    assert result.status == "replaced" and result.displaced == 0 and result.accounting.duplicates == 1
    rep = store.report(str(st), ["month"])
    assert rep.totals["cost"] == Decimal("0.009") and rep.accounting.balanced  # r1 as stored: 4,500 + r2
    assert store.status(str(st))["consistent"]


def test_claude_code_copies_on_two_nights_are_repeats_as_in_a_report(tmp_path):
    """A transcript exported again the next night (the session went on): its copies of stored
    messages are repeats, as a report of both exports counts them, not duplicates."""
    src = next((Path(__file__).parent.parent / "fixtures" / "dialects" / "claude-code").rglob("*.jsonl"))
    n1, n2 = tmp_path / "n1" / "s.jsonl", tmp_path / "n2" / "s.jsonl"
    for p in (n1, n2):
        p.parent.mkdir()
        shutil.copy(src, p)
    with n2.open("a") as f:
        f.write("\n")  # (other bytes: not the same file again)
    st = tmp_path / "store"
    ingest_in_order(st, [n1, n2])
    rep = same_as_logs(st, [n1, n2])
    assert rep.accounting.duplicates == 0 and rep.accounting.repeats > 0


def _nights_with_other_content():
    from hypothesis import strategies as hs

    # A copy: (id, output tokens, model). An id keeps its day (copies stamped days apart are another
    # request to the store: test_a_far_copy_is_another_request_to_the_store); the rest varies, ties too.
    copy = hs.tuples(hs.integers(0, 6), hs.sampled_from([100, 200, 300]), hs.sampled_from(["claude-sonnet-4-5", OPUS]))
    return hs.lists(hs.lists(copy, min_size=1, max_size=6), min_size=1, max_size=4)


def test_property_nights_with_other_copies_report_as_the_logs_together(tmp_path_factory):
    """However an id's copies differ from night to night and within a night (tokens, model), the
    store ingested night by night reports what a report of the nights' files in that order says."""
    from hypothesis import HealthCheck, given, settings

    days = ["2026-10-31", "2026-11-01"]

    @settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(_nights_with_other_content())
    def check(nights):
        root = tmp_path_factory.mktemp("copies")
        files = []
        for n, night in enumerate(nights):
            path = log(root / f"n{n}" / "a.csv", [req(f"r{i}", days[i % 2], model=m, out=out) for i, out, m in night])
            if all(path.read_bytes() != f.read_bytes() for f in files):  # (the same bytes: that file again)
                files.append(path)
        st = root / "st"
        ingest_in_order(st, files)
        rep = same_as_logs(st, files)
        # hand count: each id once, its copy with the most output tokens, the first such in file order
        best: dict[int, tuple[int, str]] = {}
        for f in files:
            for row in pl.read_csv(f).iter_rows(named=True):
                i = int(row["request_id"][1:])
                if i not in best or row["output_tokens"] > best[i][0]:
                    best[i] = (row["output_tokens"], row["model"])
        rate = {"claude-sonnet-4-5": (3, 15), OPUS: (15, 75)}
        assert rep.totals["cost"] == sum(Decimal(1000 * rate[m][0] + out * rate[m][1]) / 10**6 for out, m in best.values())

    check()


def test_a_run_killed_before_the_files_table_still_counts_the_displaced_copy(tmp_path, fuller, monkeypatch):
    """The stored copies a night displaced are counted by their file's record. A run killed after the
    rows commit, before the files table is written, leaves that in the commit's metadata: any reader
    replays it, and the accounting adds up."""
    st = tmp_path / "store"
    n1, n2 = fuller
    store.ingest([str(n1)], str(st))
    with monkeypatch.context() as m:
        m.setattr(store, "_write_files", lambda *a, **k: None)  # (killed right after the commit)
        m.setattr(store, "_write_rollups", lambda *a, **k: 0)
        assert store.ingest([str(n2)], str(st)).files[0].displaced == 1
    assert store._recorded(str(st)) == 0  # the files table is still the first night's
    rep = same_as_logs(st, [n1, n2])
    assert rep.totals["cost"] == FULL and (rep.accounting.rows_read, rep.accounting.duplicates) == (5, 2)
    again = store.ingest([str(n1), str(n2)], str(st))  # the next run writes the replayed records down
    assert [f.status for f in again.files] == ["unchanged", "unchanged"] and again.recovered == [str(n2)]
    assert store._recorded(str(st)) == 1
    assert same_as_logs(st, [n1, n2]).totals == rep.totals


def test_a_stored_file_without_a_later_column_is_rewritten_as_it_was(tmp_path):
    """Night 1 has no `team` column, night 2 brings it (the table gains it), night 3 has a fuller
    copy of a night 1 request: night 1's file, which lacks `team`, is written again without it."""
    def night(path: Path, rows: list[dict]) -> Path:
        path.parent.mkdir(parents=True)
        pl.DataFrame(rows).write_csv(path)
        return path

    n1 = night(tmp_path / "n1" / "a.csv", [req("r1"), req("r2", inp=2000)])
    n2 = night(tmp_path / "n2" / "b.csv", [req("r3", team="x")])
    n3 = night(tmp_path / "n3" / "c.csv", [req("r1", out=500, team="y")])
    st = tmp_path / "store"
    results = ingest_in_order(st, [n1, n2, n3])
    assert results[2].displaced == 1
    rep = same_as_logs(st, [n1, n2, n3], ("team", "model"))
    # r1: 1000 x 3 + 500 x 15 = 10,500 (team y); r2: 2000 x 3 + 100 x 15 = 7,500; r3: 4,500 (team x)
    assert dict(zip(rep.rows["team"].to_list(), rep.rows["cost"].to_list(), strict=True)) == {
        None: Decimal("0.0075"), "x": Decimal("0.0045"), "y": Decimal("0.0105")}

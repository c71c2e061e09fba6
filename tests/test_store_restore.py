"""A night's copy displaces another file's stored copy (test_store_copies.py); when the displacing
night's file is later replaced (same path, new content), the copies it had displaced come back in
the replacing commit: the best of each request's, as a report of the files the store now holds
keeps it (the replaced file read last). Before, the request was in no file."""

from __future__ import annotations

import os
from decimal import Decimal
from pathlib import Path

import deltalake
import polars as pl
import pytest

from analyzer import store

from .test_store import log, req
from .test_store_copies import at, ingest_in_order, same_as_logs


def replace(path: Path, rows: list[dict]) -> store.FileResult:
    """`path` exported again with `rows`, and ingested: its earlier rows replaced."""
    log(path, rows)
    return path


def _records(st: Path) -> dict[str, dict]:
    return {Path(r["path"]).parent.name: r for r in store._files(str(st), store._table(str(st))).values()}


def _output_tokens(st: Path, rid: str) -> list[int]:
    return pl.read_delta(str(st)).filter(pl.col("request_id") == rid)["output_tokens"].to_list()


@pytest.fixture
def chain(tmp_path):
    """r1 on three nights, each copy fuller than the last (100, 500, 900 output tokens): ingested
    in order, night 2 displaces night 1's copy and night 3 night 2's. r2..r4: one night each."""
    return [log(tmp_path / f"n{n}" / f"{n}.csv", [req("r1", "2026-11-10", out=out), req(f"r{n + 1}", "2026-11-10")])
            for n, out in ((1, 100), (2, 500), (3, 900))]


def test_replacing_the_last_winner_brings_back_the_copy_it_displaced_and_so_on(tmp_path, chain):
    n1, n2, n3 = chain
    st = tmp_path / "store"
    assert [r.displaced for r in ingest_in_order(st, chain)] == [0, 1, 1]
    replace(n3, [req("r4", "2026-11-10")])
    (r,) = ingest_in_order(st, [n3])
    assert (r.status, r.restored) == ("replaced", 1)
    assert _output_tokens(st, "r1") == [500]  # night 2's copy, the best of those left
    # r1 (1000 x 3 + 500 x 15 = 10,500 / 1e6), r2, r3, r4 (4,500 each)
    assert same_as_logs(st, [n1, n2, n3]).totals["cost"] == Decimal("0.0105") + 3 * Decimal("0.0045")
    assert _records(st)["n2"]["accounting"]["duplicates"] == 0 and _records(st)["n1"]["accounting"]["duplicates"] == 1
    replace(n2, [req("r3", "2026-11-10")])
    assert ingest_in_order(st, [n2])[0].restored == 1
    assert _output_tokens(st, "r1") == [100]  # night 1's, displaced two nights before
    rep = same_as_logs(st, [n1, n3, n2])
    assert (rep.totals["requests"], rep.totals["cost"], rep.accounting.duplicates) == (4, 4 * Decimal("0.0045"), 0)


def test_a_displaced_copy_carried_by_a_replaced_record_still_comes_back(tmp_path, chain):
    """Night 2 is replaced while night 3 holds r1: nothing comes back (night 3's copy still wins),
    and night 1's copy, which night 2 had displaced, is named by night 2's new record. When night 3
    is replaced, night 2's old copy is gone with its content: night 1's comes back."""
    n1, n2, n3 = chain
    st = tmp_path / "store"
    ingest_in_order(st, chain)
    replace(n2, [req("r3", "2026-11-10")])
    assert ingest_in_order(st, [n2])[0].restored == 0
    assert _output_tokens(st, "r1") == [900]
    same_as_logs(st, [n1, n3, n2])
    assert _records(st)["n2"]["displaced_rows"]  # (night 1's copy, carried)
    replace(n3, [req("r4", "2026-11-10")])
    assert ingest_in_order(st, [n3])[0].restored == 1
    assert _output_tokens(st, "r1") == [100]
    same_as_logs(st, [n1, n2, n3])


@pytest.mark.parametrize(("out", "kept", "restored"), [(300, 300, 0), (50, 100, 1), (100, 100, 1)])
def test_the_new_content_s_own_copy_competes_with_the_displaced_one(tmp_path, out, kept, restored):
    """The replacing content has a copy of the request too: it is stored when it beats the displaced
    copy (more tokens), else the displaced one comes back and the new copy is a duplicate (on a tie,
    too: the other file was ingested first, and the replaced one is read last)."""
    n1 = log(tmp_path / "n1" / "a.csv", [req("r1", "2026-11-10"), req("r2", "2026-11-10")])
    n2 = log(tmp_path / "n2" / "b.csv", [req("r1", "2026-11-10", out=500)])
    st = tmp_path / "store"
    ingest_in_order(st, [n1, n2])
    replace(n2, [req("r1", "2026-11-10", out=out, workspace="new"), req("r3", "2026-11-10")])
    r = ingest_in_order(st, [n2])[0]
    assert (r.restored, r.accounting.duplicates) == (restored, restored)
    assert _output_tokens(st, "r1") == [kept]
    rep = same_as_logs(st, [n1, n2], ("workspace", "model"))
    assert (rep.totals["requests"], rep.accounting.duplicates) == (3, 1)
    if not restored:  # night 1's copy stays displaced, named by the new record: a later change brings it back
        replace(n2, [req("r3", "2026-11-10")])
        assert ingest_in_order(st, [n2])[0].restored == 1
        assert _output_tokens(st, "r1") == [100]
        same_as_logs(st, [n1, n2])


def test_a_displaced_copy_comes_back_to_its_own_month_after_a_compaction(tmp_path):
    """The displaced copy is kept whole in the store's own directory, not in the data file time travel
    keeps until `store compact` vacuums it: it comes back after a compaction too, into its month
    (October 31, 23:30; the fuller copy was stamped November 1), with ids SQL would misread."""
    ids = ["r'1", 'r"2', "r\\3", "r;4 OR 1=1", "ré5%"]
    n1 = log(tmp_path / "n1" / "a.csv", [at(i, "2026-10-31T23:30:00Z") for i in ids] + [at("k", "2026-10-31T12:00:00Z")])
    n2 = log(tmp_path / "n2" / "b.csv", [at(i, "2026-11-01T00:10:00Z", out=500) for i in ids])
    st = tmp_path / "store"
    assert [r.displaced for r in ingest_in_order(st, [n1, n2])] == [0, 5]
    assert store.status(str(st))["months"] == {"2026-10": 1, "2026-11": 5}
    store.compact(str(st), retention_days=0)
    replace(n2, [at("new", "2026-11-01T00:10:00Z")])
    assert ingest_in_order(st, [n2])[0].restored == 5
    assert store.status(str(st))["months"] == {"2026-10": 6, "2026-11": 1}
    assert sorted(pl.read_delta(str(st))["request_id"].to_list()) == sorted([*ids, "k", "new"])
    same_as_logs(st, [n1, n2])
    store.compact(str(st), retention_days=0)
    same_as_logs(st, [n1, n2])


def test_a_copy_whose_own_file_changed_since_does_not_come_back(tmp_path):
    """Night 1's copy was displaced, then night 1's file changed (its rows replaced): the copy is of
    content the store no longer holds, and stays out when night 2 is replaced."""
    n1 = log(tmp_path / "n1" / "a.csv", [req("r1", "2026-11-10"), req("r2", "2026-11-10")])
    n2 = log(tmp_path / "n2" / "b.csv", [req("r1", "2026-11-10", out=500)])
    st = tmp_path / "store"
    ingest_in_order(st, [n1, n2])
    replace(n1, [req("r2", "2026-11-10")])
    ingest_in_order(st, [n1])
    replace(n2, [req("r3", "2026-11-10")])
    assert ingest_in_order(st, [n2])[0].restored == 0
    rep = same_as_logs(st, [n1, n2])
    assert (rep.totals["requests"], rep.accounting.duplicates) == (2, 0)


def test_a_files_table_without_the_displaced_rows_column_still_reads(tmp_path):
    """A files table written before `displaced_rows` was one of its columns reads as before: its
    records name no displaced copies (those nights' copies cannot come back)."""
    n1 = log(tmp_path / "n1" / "a.csv", [req("r1", "2026-11-10")])
    st = tmp_path / "store"
    store.ingest([str(n1)], str(st))
    files = st / "_llm_cost" / "files"
    old = pl.read_delta(str(files)).drop("displaced_rows")
    deltalake.write_deltalake(str(files), old.to_arrow(), mode="overwrite", schema_mode="overwrite",
                              commit_properties=store._commit("files", **{store.K_VERSION: 0}))
    n2 = log(tmp_path / "n2" / "b.csv", [req("r1", "2026-11-10", out=500)])
    assert ingest_in_order(st, [n2])[0].displaced == 1
    replace(n1, [req("r1", "2026-11-10"), req("r9", "2026-11-10")])
    ingest_in_order(st, [n1])
    same_as_logs(st, [n2, n1])


def test_a_record_naming_a_file_outside_its_directory_is_damage(tmp_path):
    n1 = log(tmp_path / "n1" / "a.csv", [req("r1", "2026-11-10")])
    n2 = log(tmp_path / "n2" / "b.csv", [req("r1", "2026-11-10", out=500)])
    st = tmp_path / "store"
    ingest_in_order(st, [n1, n2])
    files = st / "_llm_cost" / "files"
    table = pl.read_delta(str(files)).with_columns(pl.lit('["../../n1/a.csv"]').alias("displaced_rows"))
    deltalake.write_deltalake(str(files), table.to_arrow(), mode="overwrite",
                              commit_properties=store._commit("files", **{store.K_VERSION: 1}))
    replace(n2, [req("r3", "2026-11-10")])
    with pytest.raises(store.StoreError, match="damaged store: .*names '../../n1/a.csv'"):
        store.ingest([str(n2)], str(st))


def _nights_then_a_replacement():
    from hypothesis import strategies as hs

    # Each night: which of the ids 0..5 it has (each night's copies are fuller than every earlier
    # night's: ingested in order, every later copy displaces the stored one). Then one night's file
    # is replaced: which, and its new copies (id, output tokens) of 0..7.
    nights = hs.lists(hs.sets(hs.integers(0, 5), min_size=1), min_size=2, max_size=4)
    return nights.flatmap(lambda ns: hs.tuples(hs.just(ns), hs.integers(0, len(ns) - 1), hs.lists(
        hs.tuples(hs.integers(0, 7), hs.sampled_from(["low", "middle", "high"])), max_size=5, unique_by=lambda c: c[0])))


def test_property_replacing_any_night_reports_as_the_files_it_holds(tmp_path_factory):
    """However the nights' copies displaced each other, replacing any night's file (with copies of
    its own, fewer or more tokens than the copies it had displaced) leaves the store reporting what
    a report of the files it holds says, the replaced file read last; and the accounting adds up.

    (The new content's copy of a request another file holds is given fewer tokens than that file's:
    a fuller one is the known limit of a replacing commit, which leaves a stored copy in place.)"""
    from hypothesis import HealthCheck, given, settings

    @settings(max_examples=int(os.environ.get("RESTORE_N", "12")), deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(_nights_then_a_replacement())
    def check(case):
        nights, k, new = case
        root = tmp_path_factory.mktemp("restore")
        files = [log(root / f"n{n}" / f"{n}.csv", [req(f"r{i}", "2026-11-10", out=100 * (n + 1)) for i in sorted(ids)]
                                                  + [req(f"own{n}", "2026-11-10")])
                 for n, ids in enumerate(nights)]
        st = root / "st"
        ingest_in_order(st, files)
        same_as_logs(st, files)
        held_elsewhere = {i for n, ids in enumerate(nights) if n != k for i in ids} - (
            set(nights[k]) - {i for n, ids in enumerate(nights) if n > k for i in ids})
        rows = []
        for i, size in new:
            out = {"low": 50, "middle": 100 * (k + 1) - 50, "high": 100 * (k + 1) + 50}[size]
            rows.append(req(f"r{i}", "2026-11-10", out=50 if i in held_elsewhere else out))
        replace(files[k], rows + [req("fresh", "2026-11-10")])
        assert ingest_in_order(st, [files[k]])[0].status == "replaced"
        same_as_logs(st, [f for n, f in enumerate(files) if n != k] + [files[k]])

    check()


def test_compact_removes_the_displaced_copies_no_record_names(tmp_path, chain):
    """Replacing night 3 brings night 2's copy back: night 3's old record, and the file of copies it
    named, are no longer needed. `store compact` removes that file, and keeps the ones records name."""
    n1, n2, n3 = chain
    st = tmp_path / "store"
    ingest_in_order(st, chain)
    kept = st / "_llm_cost" / "displaced"
    assert len(list(kept.iterdir())) == 2
    replace(n3, [req("r4", "2026-11-10")])
    ingest_in_order(st, [n3])
    named = {f for r in _records(st).values() for f in store._shadow_files(str(st), r)}
    assert len(named) == 1 and len(list(kept.iterdir())) == 2
    (kept / "notes.txt").write_text("not ours")
    store.compact(str(st), retention_days=0)
    assert {str(p.relative_to(st)) for p in kept.iterdir()} == named | {"_llm_cost/displaced/notes.txt"}
    replace(n2, [req("r3", "2026-11-10")])
    assert ingest_in_order(st, [n2])[0].restored == 1
    same_as_logs(st, [n1, n3, n2])


# kill -9 at each step of a replacing ingest that brings copies back, then the ingest again: the
# store is at the version before or after it (never between), and ends as a clean run.
REPLACE_KILL_POINTS = [("store", "_restore", "after", 1), ("store", "_write_displaced", "after", 1),
                       ("dl", "write_deltalake", "before", 1), ("dl", "write_deltalake", "after", 1),
                       ("store", "_write_files", "before", 1), ("store", "_summarize_missing", "before", 1),
                       ("store", "_write_rollups", "before", 1)]


def _kill_cli(st: Path, owner: str, name: str, when: str, nth: int, *files: Path) -> int:
    import signal
    import subprocess
    import sys

    from .hostile.test_attack9 import KILLER, ROOT

    killer = KILLER.replace('"delta": deltalake.DeltaTable}', '"delta": deltalake.DeltaTable, "dl": deltalake}')
    launch = killer if owner != "none" else "import sys; from analyzer.cli import main; main(sys.argv[5:], prog_name='llm-cost')"
    cmd = [sys.executable, "-c", launch, owner, name, when, str(nth), "ingest", *map(str, files), "--store", str(st), "-q"]
    p = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert p.returncode in (0, -signal.SIGKILL), p.stderr
    return p.returncode


@pytest.fixture(scope="module")
def replacing_night(tmp_path_factory):
    import shutil

    from .test_store import json_report

    root = tmp_path_factory.mktemp("kill-replace")
    n1 = log(root / "n1" / "a.csv", [at(f"r{i}", "2026-10-31T23:00:00Z" if i % 2 else "2026-11-01T01:00:00Z", out=10 + i)
                                     for i in range(30)])
    n2 = log(root / "n2" / "b.csv", [at(f"r{i}", "2026-11-01T00:30:00Z", out=9999) for i in (1, 2, 3, 4, 7, 20)])
    base = root / "base"
    for night in (n1, n2):
        _kill_cli(base, "none", "", "", 0, night)
    replace(n2, [at("r2", "2026-11-01T00:30:00Z", out=5), at("r3", "2026-11-01T00:30:00Z", out=99999),
                 at("new", "2026-11-01T02:00:00Z")])
    clean = root / "clean"
    shutil.copytree(base, clean)
    _kill_cli(clean, "none", "", "", 0, n2)
    return [n1, n2], base, json_report(base, ("day", "model")), json_report(clean, ("day", "model"))


@pytest.mark.slow
@pytest.mark.parametrize("point", REPLACE_KILL_POINTS, ids=lambda p: f"{p[1]}-{p[2]}-{p[3]}")
def test_kill_minus_9_at_each_step_of_a_replacing_ingest(tmp_path, replacing_night, point):
    import shutil
    import signal

    from .test_store import json_report

    files, base, before, after = replacing_night
    st = tmp_path / "store"
    shutil.copytree(base, st)
    assert before != after
    assert _kill_cli(st, *point, files[1]) == -signal.SIGKILL  # (each point is reached by this night)
    assert json_report(st, ("day", "model")) in (before, after)
    _kill_cli(st, "none", "", "", 0, *files)
    assert json_report(st, ("day", "model")) == after
    rep = same_as_logs(st, files)
    assert rep.totals["requests"] == 31  # r0..r29 and new; r3 the new content's, the others night 1's
    store.compact(str(st), retention_days=0)
    same_as_logs(st, files)


def test_a_file_changed_to_another_file_s_bytes_brings_back_what_it_displaced(tmp_path):
    """A file changed to another's bytes loses its rows and is forgotten (a copy is never recorded):
    the copies its rows had displaced come back in that commit too."""
    n1 = log(tmp_path / "n1" / "a.csv", [req("r1", "2026-11-10"), req("r2", "2026-11-10")])
    n2 = log(tmp_path / "n2" / "b.csv", [req("r1", "2026-11-10", out=500)])
    n3 = log(tmp_path / "n3" / "c.csv", [req("r9", "2026-11-10")])
    st = tmp_path / "store"
    ingest_in_order(st, [n1, n2, n3])
    n2.write_bytes(n3.read_bytes())
    assert store.ingest([str(n2)], str(st)).files[0].status == f"replaced (same content as {n3})"
    assert _output_tokens(st, "r1") == [100]
    rep = same_as_logs(st, [n1, n3])
    assert (rep.totals["requests"], rep.accounting.duplicates) == (3, 0)


def test_a_copy_that_lost_at_its_own_ingest_comes_back_too(tmp_path):
    """Night 2's copy lost to night 1's stored one (fewer tokens): a duplicate, never stored. When
    night 1's file is replaced without the request, night 2's copy is the request's only copy: it
    comes back. (The night's losing copies are kept whole too, in a file its record names.)"""
    n1 = log(tmp_path / "n1" / "a.csv", [req("r1", "2026-11-10", out=500)])
    n2 = log(tmp_path / "n2" / "b.csv", [req("r1", "2026-11-10"), req("r2", "2026-11-10")])
    st = tmp_path / "store"
    r = ingest_in_order(st, [n1, n2])[1]
    assert (r.displaced, r.accounting.duplicates) == (0, 1)
    replace(n1, [req("r3", "2026-11-10")])
    assert ingest_in_order(st, [n1])[0].restored == 1
    assert _output_tokens(st, "r1") == [100]
    rep = same_as_logs(st, [n2, n1])
    assert (rep.totals["requests"], rep.accounting.duplicates) == (3, 0)


def _nights_in_any_order_then_replacements():
    from hypothesis import strategies as hs

    # Nights of copies (id 0..5, output tokens), ingested in the order drawn; then one or two
    # replacements: which night, and its new copies (id 0..7, output tokens).
    copy = hs.tuples(hs.integers(0, 5), hs.sampled_from([100, 200, 300]))
    nights = hs.lists(hs.lists(copy, min_size=1, max_size=5, unique_by=lambda c: c[0]), min_size=2, max_size=4)
    new = hs.lists(hs.tuples(hs.integers(0, 7), hs.sampled_from([50, 100, 200, 300, 400])), max_size=5,
                   unique_by=lambda c: c[0])
    return nights.flatmap(lambda ns: hs.tuples(hs.just(ns), hs.lists(hs.tuples(hs.integers(0, len(ns) - 1), new),
                                                                        min_size=1, max_size=2)))


def _nights_then_replacements_hold(root: Path, case) -> None:
    """Nights ingested in order, then their replacements: after every ingest the store reports what a
    report of the files it holds says (see the property below)."""
    nights, steps = case
    files = [log(root / f"n{n}" / f"{n}.csv", [req(f"r{i}", "2026-11-10", out=out, workspace=f"w{n}")
                                              for i, out in night]) for n, night in enumerate(nights)]
    st = root / "st"
    ingest_in_order(st, files)
    order = list(files)
    same_as_logs(st, order, ("workspace", "model"))
    for step, (k, new) in enumerate(steps):
        sha = _records(st)[f"n{k}"]["sha256"]
        held = pl.read_delta(str(st)).filter(pl.col(store.SHA) != sha)
        holder = dict(zip(held["request_id"].to_list(), held["output_tokens"].to_list()))
        rows = [req(f"r{i}", "2026-11-10", out=min(out, holder.get(f"r{i}", out)), workspace=f"x{step}")
                for i, out in new]
        replace(files[k], rows + [req(f"fresh{step}", "2026-11-10")])
        assert ingest_in_order(st, [files[k]])[0].status == "replaced"
        order = [f for f in order if f != files[k]] + [files[k]]
        same_as_logs(st, order, ("workspace", "model"))


def test_property_any_order_and_replacements_report_as_the_files_held(tmp_path_factory):
    """Nights whose copies of a request differ in tokens, ingested in any order (a copy displaces
    the stored one or loses to it), then one night's file replaced, or two: after every ingest the
    store reports what a report of the files it holds says (in the order of their last ingest), and
    the accounting adds up. (A replacing night's copy of a request another file holds is given no
    more tokens than that file's: a fuller one is the known limit of a replacing commit.)"""
    from hypothesis import HealthCheck, given, settings

    @settings(max_examples=int(os.environ.get("RESTORE_N", "15")), deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(_nights_in_any_order_then_replacements())
    def check(case):
        _nights_then_replacements_hold(tmp_path_factory.mktemp("orders"), case)

    check()


# Found by the property above on a random seed: night 1's copies all lost (a night that stored
# nothing, which made no commit then), so its record shared night 0's rows version, and replacing
# night 2 brought back night 1's copy of r2 where a report keeps night 0's (a tie of tokens: the
# file read first). Every ingest is a version of its own now.
def test_four_nights_then_one_replaced_report_as_the_files_held(tmp_path):
    case = ([[(0, 100), (5, 100), (3, 300), (2, 200)], [(3, 100), (2, 200), (0, 100)],
             [(0, 100), (1, 100), (2, 300), (5, 100)], [(2, 200), (0, 300)]],
            [(2, [(6, 300), (2, 100)])])
    _nights_then_replacements_hold(tmp_path, case)


def test_a_carried_copy_waits_for_its_holder_whatever_the_replacing_content_s_days(tmp_path):
    """Night A's copy of r1 lost to x.csv's, which lost to z.csv's. x.csv is then replaced twice, by
    content of other days: night A's copy waits, carried from record to record, and comes back when
    z.csv is replaced (x.csv's own copy of r1 is gone with its first content)."""
    a = log(tmp_path / "a" / "a.csv", [req("r1", "2026-11-10")])
    x = log(tmp_path / "x" / "x.csv", [req("r1", "2026-11-10", out=500)])
    z = log(tmp_path / "z" / "z.csv", [req("r1", "2026-11-10", out=900)])
    st = tmp_path / "store"
    ingest_in_order(st, [a, x, z])
    for day, rid in (("2026-11-20", "r9"), ("2026-11-25", "r8")):
        replace(x, [req(rid, day)])
        assert ingest_in_order(st, [x])[0].restored == 0
        same_as_logs(st, [a, z, x])
    replace(z, [req("r7", "2026-11-10")])
    assert ingest_in_order(st, [z])[0].restored == 1
    assert _output_tokens(st, "r1") == [100]
    same_as_logs(st, [a, x, z])


def test_a_night_whose_copies_all_lost_is_a_version_of_its_own_and_loses_the_tie(tmp_path):
    """Night 1's only copy ties night 0's (stored first, so night 1 stores nothing): its ingest is a
    version of its own all the same (delta-rs commits no delete that matches nothing), so when
    night 2's fuller copy goes, the copy back is night 0's, the one a report reads first."""
    n0, n1, n2 = (log(tmp_path / f"n{n}" / f"{n}.csv", [req("r1", "2026-11-10", out=out, workspace=f"w{n}")])
                  for n, out in ((0, 100), (1, 100), (2, 500)))
    st = tmp_path / "store"
    assert [(r.stored, r.displaced) for r in ingest_in_order(st, [n0, n1, n2])] == [(1, 0), (0, 0), (1, 1)]
    assert [(h["version"], Path(h["file"]).name, h["rows_added"]) for h in store.history(str(st))] == [
        (2, "2.csv", 1), (1, "1.csv", 0), (0, "0.csv", 1)]
    assert {n: r["rows_version"] for n, r in _records(st).items()} == {"n0": 0, "n1": 1, "n2": 2}
    replace(n2, [req("r2", "2026-11-10")])
    assert ingest_in_order(st, [n2])[0].restored == 1
    assert pl.read_delta(str(st)).filter(pl.col("request_id") == "r1")["workspace"].to_list() == ["w0"]
    same_as_logs(st, [n0, n1, n2], ("workspace", "model"))


def _responses_in_any_order_then_replacements():
    from hypothesis import strategies as hs

    from .hostile.test_attack14 import HAIKU, UNKNOWN

    # A copy of a Messages response: its id, its first row's input tokens and its later steps (model,
    # tokens; an unknown model leaves the response unpriced whole). Copies of one response differ in
    # their steps as well as in their tokens, so a copy fuller as a record may have a smaller first row.
    step = hs.tuples(hs.sampled_from([HAIKU, HAIKU, UNKNOWN]), hs.sampled_from([100, 200]))

    def copies(ids: int, least: int):
        copy = hs.tuples(hs.integers(0, ids), hs.sampled_from([100, 200, 300]), hs.lists(step, max_size=2))
        return hs.lists(copy, min_size=least, max_size=4, unique_by=lambda c: c[0])

    nights = hs.lists(copies(3, 1), min_size=2, max_size=4)
    # a replacement: None, exported again empty; else its copies (ids 0..5: some new)
    new = hs.one_of(hs.none(), copies(5, 0))
    return nights.flatmap(lambda ns: hs.tuples(hs.just(ns), hs.lists(hs.tuples(hs.integers(0, len(ns) - 1), new),
                                                                        min_size=1, max_size=2)))


def _response(i: int, first: int, steps: list, workspace: str) -> str:
    import json

    from .hostile.test_attack14 import _k, _msg

    return json.dumps({**json.loads(_msg(f"msg_{i}", [_k(first), *[_k(t, m) for m, t in steps]])), "workspace": workspace})


def _responses_then_replacements_hold(root: Path, case) -> None:
    """As _nights_then_replacements_hold, with responses of several rows (Messages JSONL)."""
    from analyzer.schema import COUNT_COLUMNS

    from .hostile.test_attack14 import _write

    nights, steps = case
    files = [Path(_write(root / f"n{n}" / f"{n}.jsonl", [_response(i, first, s, f"w{n}") for i, first, s in night]))
             for n, night in enumerate(nights)]
    # (a file never replaced: the logs keep a workspace when every night is exported again empty)
    files.insert(0, Path(_write(root / "base" / "base.jsonl", [_response(8, 5, [], "base")])))
    st = root / "st"
    ingest_in_order(st, files)
    order = list(files)
    same_as_logs(st, order, ("workspace", "model"))
    for step, (k, new) in enumerate(steps):
        path = files[k + 1]  # (files[0]: the base)
        sha = _records(st)[f"n{k}"]["sha256"]
        # A copy of a response another file holds is given no more tokens than that file's copy (the
        # known limit of a replacing commit): its first row alone, and no more than the held copy.
        held = pl.read_delta(str(st)).filter(pl.col(store.SHA) != sha).group_by(
            pl.col("request_id").str.replace(r"#\d+$", "")).agg(pl.sum_horizontal(COUNT_COLUMNS).sum())
        holder = dict(zip(*held.to_dict(as_series=False).values()))
        lines = []
        for i, first, s in new or []:
            top = holder.get(f"msg_{i}")
            if top is not None and first + sum(t for _, t in s) > top:
                first, s = min(first, top), []
            lines.append(_response(i, first, s, f"x{step}"))
        # (exported again empty: blank lines, as many as the step's number, so that no two files are
        # alike, which would make it a copy of the other)
        _write(path, [""] * step if new is None else [*lines, _response(9, 7, [], f"x{step}")])
        assert ingest_in_order(st, [path])[0].status == "replaced"
        order = [f for f in order if f != path] + [path]
        same_as_logs(st, order, ("workspace", "model"))


def test_property_responses_of_several_rows_report_as_the_files_held(tmp_path_factory):
    """The property above with responses of several rows (a Messages response's steps, some of an
    unknown model): a copy brought back comes back whole, and competes with the replacing content's
    copy whole (dedupe.losers), so that after every ingest the store still reports what a report of
    the files it holds says. (Row by row, a kept copy's step the earlier content lacked stayed out,
    and a replacing copy fuller as a record but with a smaller first row was stored mixed with the
    kept one.)"""
    from hypothesis import HealthCheck, given, settings

    @settings(max_examples=int(os.environ.get("RESTORE_N", "15")), deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(_responses_in_any_order_then_replacements())
    def check(case):
        _responses_then_replacements_hold(tmp_path_factory.mktemp("responses"), case)

    check()


def test_a_copy_kept_by_two_records_comes_back_once(tmp_path):
    """c.csv's copy of r1 lost to a.csv's (kept by c.csv's record), came back when a.csv was
    replaced, then was displaced by e.csv's (kept by e.csv's record too): two kept files hold it.
    When e.csv is replaced it comes back once, its tokens counted once against other copies."""
    a = log(tmp_path / "a" / "a.csv", [req("r1", "2026-11-10", out=300)])
    c = log(tmp_path / "c" / "c.csv", [req("r1", "2026-11-10", out=100)])
    e = log(tmp_path / "e" / "e.csv", [req("r1", "2026-11-10", out=200)])
    st = tmp_path / "store"
    ingest_in_order(st, [a, c])
    replace(a, [req("r2", "2026-11-10")])
    assert ingest_in_order(st, [a])[0].restored == 1
    assert [r.displaced for r in ingest_in_order(st, [e])] == [1]
    assert len({f for r in _records(st).values() for f in store._shadow_files(str(st), r)}) == 2
    # e.csv's new copy of r1 (1,150 tokens) beats c.csv's (1,100), which, counted twice (2,200),
    # would have won.
    replace(e, [req("r1", "2026-11-10", out=150), req("r9", "2026-11-10")])
    assert ingest_in_order(st, [e])[0].restored == 0
    assert _output_tokens(st, "r1") == [150]
    same_as_logs(st, [c, a, e])
    replace(e, [req("r9", "2026-11-10")])
    assert ingest_in_order(st, [e])[0].restored == 1
    assert _output_tokens(st, "r1") == [100]
    same_as_logs(st, [c, a, e])

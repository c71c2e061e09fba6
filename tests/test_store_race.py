"""Two writers without the lock (Delta's optimistic concurrency), their steps forced, in one process,
into the orders that lost a file's record: each test fails without its fix (see docs/store.md,
Concurrent writers). The racing processes themselves: tests/test_store.py."""

from __future__ import annotations

import contextlib
import sys
import threading
from decimal import Decimal

import deltalake

from analyzer import store

from .test_store import log, req

WAIT = 120  # seconds a forced step waits for the other writer's (never reached when it works)


def nights(tmp_path):
    """A store of one request (version 0) and two nights sharing 20 of their 40 ids each."""
    st = tmp_path / "store"
    store.ingest([str(log(tmp_path / "n0" / "z.csv", [req("z")]))], str(st))
    a = log(tmp_path / "a" / "a.csv", [req(f"r{i}") for i in range(40)])
    b = log(tmp_path / "b" / "b.csv", [req(f"r{i}") for i in range(20, 60)])
    return st, a, b


def assert_whole(st, a, b):
    """Both nights recorded, and every account adds up: 81 rows read = 61 stored + 20 duplicates."""
    records = store._files(str(st), store._table(str(st)))
    assert sorted(records) == sorted([str(a), str(b), str(st.parent / "n0" / "z.csv")])
    assert [records[str(p)]["accounting"]["duplicates"] for p in (a, b)] in ([0, 20], [20, 0])
    status = store.status(str(st))
    assert (status["files"], status["rows_read"], status["rows_stored"], status["duplicates"]) == (3, 81, 61, 20)
    assert status["consistent"], status
    rep = store.report(str(st), ["model"])
    assert rep.totals["requests"] == 61 and rep.totals["cost"] == 61 * Decimal("0.0045")
    assert rep.accounting.rows_read == 81 and rep.accounting.duplicates == 20 and rep.accounting.balanced


def test_the_loser_reading_the_records_while_the_winner_writes_them_keeps_the_winners_file(tmp_path, monkeypatch):
    """The order that failed under load: both read version 0; `a` commits version 1; `b`'s commit
    fails, and `b` opens the files table (still of version 0) just before `a` writes its record
    there. delta-rs then gave that table's history as `a`'s new commit numbered 0, so `b` read the
    files table of version 0 as if it were `a`'s, replayed nothing, and wrote its own record over a
    files table without `a` (status: 2 files, 41 rows read for 61 stored + 20 duplicates)."""
    st, a, b = nights(tmp_path)
    monkeypatch.setattr(store, "locked", lambda *a, **k: contextlib.nullcontext())
    me = threading.current_thread
    both_read, a_committed, b_retries = threading.Barrier(2, timeout=WAIT), threading.Event(), threading.Event()
    b_opened, a_recorded = threading.Event(), threading.Event()

    read, first = store._read_file, set()

    def read_then_wait(*args, **kw):  # both check their repeats against version 0
        out = read(*args, **kw)
        if me().name not in first:
            first.add(me().name)
            both_read.wait()
        return out

    append = store._append

    def a_commits_first(*args, **kw):
        if me().name == "b":
            assert a_committed.wait(WAIT)
        append(*args, **kw)
        if me().name == "a":
            a_committed.set()

    write_files = store._write_files

    def a_records_late(*args, **kw):
        if me().name == "a":
            assert b_opened.wait(WAIT)
        write_files(*args, **kw)
        if me().name == "a":
            a_recorded.set()

    class Table(deltalake.DeltaTable):  # b, re-reading the records, opens the files table: now a records
        def __init__(self, path, *args, **kw):
            super().__init__(path, *args, **kw)
            if me().name == "b" and b_retries.is_set() and not b_opened.is_set() \
                    and sys._getframe(1).f_code.co_name == "_files":
                b_opened.set()
                assert a_recorded.wait(WAIT)

    monkeypatch.setattr(store, "_read_file", read_then_wait)
    monkeypatch.setattr(store, "_append", a_commits_first)
    monkeypatch.setattr(store, "_write_files", a_records_late)
    monkeypatch.setattr(deltalake, "DeltaTable", Table)
    results, errors = {}, []

    def ingest(path, warn):
        try:
            results[me().name] = store.ingest([str(path)], str(st), warn=warn)
        except BaseException as e:  # noqa: BLE001 - raised again below, in the test's thread
            errors.append(e)
            for event in (a_committed, b_opened, a_recorded):
                event.set()  # (the other thread is not left waiting)

    threads = [threading.Thread(target=ingest, name="a", args=(a, lambda m: None)),
               threading.Thread(target=ingest, name="b", args=(b, lambda m: b_retries.set()))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(WAIT * 3)
    assert not errors, errors
    assert b_opened.is_set() and a_recorded.is_set()  # (the order was forced)
    assert (results["a"].files[0].stored, results["b"].files[0].stored) == (40, 20)
    assert store._table(str(st)).version() == 2
    assert_whole(st, a, b)


def test_a_winner_reading_the_table_after_the_losers_commit_records_its_own_version(tmp_path, monkeypatch):
    """`a` commits version 1; before `a` reads the table again, `b` ingests (version 2) and records
    both files. `a` read the table at version 2 and wrote its records (without `b`) as those of
    version 2: `b` was forgotten, its accounting too (and `a`'s rows version, which orders the copies
    brought back on a tie, was wrong)."""
    st, a, b = nights(tmp_path)
    monkeypatch.setattr(store, "locked", lambda *a, **k: contextlib.nullcontext())
    append, other = store._append, []

    def then_the_other(*args, **kw):
        append(*args, **kw)
        if not other:
            other.append(None)
            other[0] = store.ingest([str(b)], str(st))

    monkeypatch.setattr(store, "_append", then_the_other)
    assert store.ingest([str(a)], str(st)).files[0].stored == 40 and other[0].files[0].stored == 20
    records = store._files(str(st), store._table(str(st)))
    assert (records[str(a)]["rows_version"], records[str(b)]["rows_version"]) == (1, 2)
    assert_whole(st, a, b)


def test_a_report_while_a_writer_commits_is_not_a_damaged_store(tmp_path, monkeypatch):
    """A reader opens the log (version 1); a writer commits version 2 and records it in the files
    table; the reader then finds the files table ahead of the log it read: that is a commit landing
    between its two reads (the nightly ingest while someone reports), not commits lost from the log."""
    st, a, b = nights(tmp_path)
    store.ingest([str(a)], str(st))
    recorded, other = store._recorded, []

    def after_a_commit(root):
        if not other:
            other.append(None)
            other[0] = store.ingest([str(b)], root)
        return recorded(root)

    monkeypatch.setattr(store, "_recorded", after_a_commit)
    rep = store.report(str(st), ["model"])
    assert other and rep.totals["requests"] == 61 and rep.accounting.rows_read == 81
    monkeypatch.undo()
    assert_whole(st, a, b)

"""Attacks on the store's copies across nights (store3: `_llm_rank`, `_llm_cost/displaced/`,
`_restore` on replace, compact of unnamed kept files; attack14: reprice `_blamed`).

Invariant: after any sequence of ingests, `report --store` equals `report` of the files the store
holds (in the order of their last ingest), accounting included (`same_as_logs`).

What held: hypothesis sequences (340 examples) of up to 5 steps over 3 files and 3 request ids:
a file written (new, or replacing its content: copies dropped, re-added, fewer tokens), a file
changed to another's bytes, compact, reprice; copies stamped on both sides of a month's end and in
one file twice; request ids with quotes, backslashes, SQL, line breaks, emoji (named in Delta's
predicate); a kept copies file overwritten with garbage, cut in half or another table (one
`damaged store:` line, exit 2, the store as before); a Claude Code sidechain copy stored first,
repriced and compacted, then the main chain's copy (rank wins, and the sidechain comes back on
replace); two ingests at once, one replacing (the lock); a store written by 051ac69 then
ingested into (a copy displaced then is lost on replace: the documented limit).
Known limits not re-reported: copies more than a day apart are two requests; a replacing content's
fuller copy of a request another file holds stays a duplicate.

What broke:
- A replacing ingest bringing back ~10K copies (a 1M night with 1% copies) died of SIGSEGV with no
  message, on every try: delta-rs recursed on the predicate naming each copy past the main
  thread's 8 MiB stack. Fixed: that write runs on a thread whose stack fits its names.
  Left: the predicate's cost grows with the names (100K copies back into 200K stored rows: 9.8 CPU
  s, 1.32 GiB); committing them as add/remove actions, as a night's displacement is, would bound it.
- A kept copies file named by a record and deleted by hand (or replaced by a directory, or damaged)
  was not seen by `store status` ("consistent"); the replacing ingest skipped a missing one in
  silence (the request in no file, still counted a duplicate). Fixed: status names the file
  DAMAGED, and a replacing ingest stops before pricing with one line naming it (exit 2, the store
  as it was); new nights still ingest. An interrupt just after a replacing commit removed the
  kept copies file that commit's record names (the cleanup of a run that failed before it):
  fixed, the cleanup keeps the files the last commit names.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from analyzer import store

from ..test_store import json_report, log, req
from ..test_store_copies import same_as_logs


def at(rid, stamp, **kw):
    return {**req(rid, **kw), "timestamp": stamp}


STAMPS = ["2026-10-31T23:00:00Z", "2026-11-01T01:00:00Z", "2026-11-01T20:00:00Z"]  # one request's copies: within a day


def _sequences():
    from hypothesis import strategies as hs

    copy = hs.tuples(hs.integers(0, 2), hs.sampled_from([100, 200, 300]), hs.integers(0, len(STAMPS) - 1))
    content = hs.lists(copy, min_size=0, max_size=4)
    op = hs.one_of(hs.tuples(hs.just("write"), hs.integers(0, 2), content),
                   hs.tuples(hs.just("copy"), hs.integers(0, 2), hs.integers(0, 2)),
                   hs.tuples(hs.just("compact"), hs.just(0), hs.just(0)),
                   hs.tuples(hs.just("reprice"), hs.just(0), hs.just(0)))
    return hs.lists(op, min_size=1, max_size=5)


def _held(st: Path) -> dict[str, str]:
    """path -> sha256 of the files the store holds."""
    if not (st / "_delta_log").exists():
        return {}
    return {r["path"]: r["sha256"] for r in store._files(str(st), store._table(str(st))).values()}


def _run(root: Path, ops) -> None:
    st = root / "st"
    paths = [root / f"f{k}" / f"{k}.csv" for k in range(3)]
    order: list[Path] = []  # the files the store holds, by last ingest
    for step, (kind, k, arg) in enumerate(ops):
        if kind in ("compact", "reprice"):
            if (st / "_delta_log").exists():
                # (reprice with the book the rows were priced with: the same money, rows rewritten)
                store.compact(str(st), retention_days=0) if kind == "compact" else store.reprice(str(st))
        else:
            path = paths[k]
            held = _held(st)
            if kind == "copy":
                if not paths[arg].exists() or arg == k:
                    continue
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(paths[arg].read_bytes())
            else:
                rows = arg
                if str(path) in held:
                    # The known limit: a replacing content's copy of a request another file holds
                    # never beats it; give it no more tokens than the holder's.
                    stored = pl.read_delta(str(st)).filter(pl.col(store.SHA) != held[str(path)])
                    holder = dict(zip(stored["request_id"].to_list(), stored["output_tokens"].to_list()))
                    rows = [(i, min(out, holder.get(f"r{i}", out)), s) for i, out, s in rows]
                log(path, [at(f"r{i}", STAMPS[s], out=out, workspace=f"w{step}") for i, out, s in rows]
                    + [at(f"own{step}", STAMPS[1])])
            store.ingest([str(path)], str(st))
            order = [p for p in order if p != path] + [path]
            order = [p for p in order if str(p) in _held(st)]  # (a file changed to a held file's bytes is forgotten)
        if order:
            same_as_logs(st, order, ("workspace", "model"))


def test_property_sequences_of_writes_copies_and_compactions(tmp_path_factory):
    from hypothesis import HealthCheck, given, settings

    @settings(max_examples=int(__import__("os").environ.get("A16_N", "40")), deadline=None,
              suppress_health_check=[HealthCheck.too_slow])
    @given(_sequences())
    def check(ops):
        _run(tmp_path_factory.mktemp("seq"), ops)

    check()


def _cli(*args):
    import os
    import subprocess
    import sys

    from .test_attack9 import ROOT

    return subprocess.run([sys.executable, "-m", "analyzer", *map(str, args)], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})


MANY = 20_000  # copies brought back by one replacing ingest: 2% of a night of 1M requests


@pytest.mark.slow
def test_a_replacing_ingest_that_brings_back_thousands_of_copies_commits(tmp_path):
    """The replacing commit names each copy it brings back in Delta's predicate; delta-rs recursed
    on it past the main thread's stack (8K short ids passed, 10K did not): SIGSEGV, no message, on
    every try, so the file could never be ingested again."""
    a = log(tmp_path / "a" / "a.csv", [req(f"r{i}", "2026-11-10") for i in range(MANY)])
    b = log(tmp_path / "b" / "b.csv", [req(f"r{i}", "2026-11-10", out=500) for i in range(MANY)])
    st = tmp_path / "st"
    for f in (a, b):
        assert store.ingest([str(f)], str(st)).files[0].displaced == (MANY if f == b else 0)
    log(b, [req("z", "2026-11-10")])
    p = _cli("ingest", b, "--store", st, "-q")
    assert p.returncode == 0, (p.returncode, p.stderr[-300:])  # was -11 (SIGSEGV), stderr empty
    same_as_logs(st, [a, b])


@pytest.mark.parametrize("damage", ["delete", "directory"])
def test_a_kept_copies_file_deleted_by_hand_stops_a_replace_with_one_line(tmp_path, damage):
    """A kept copies file a record names, deleted (or a directory in its place): `store status` names
    it DAMAGED, and a replacing ingest, which would leave r1 in no file (still counted a duplicate),
    stops before pricing: one line naming the file and what to do, exit 2, the store as it was. A
    new night still ingests; the file put back, the replace goes through."""
    a = log(tmp_path / "a" / "a.csv", [req("r1", "2026-11-10"), req("r2", "2026-11-10")])
    b = log(tmp_path / "b" / "b.csv", [req("r1", "2026-11-10", out=500)])
    st = tmp_path / "st"
    for f in (a, b):
        store.ingest([str(f)], str(st))
    (kept,) = (st / "_llm_cost" / "displaced").iterdir()
    good = kept.read_bytes()
    kept.unlink()
    if damage == "directory":
        kept.mkdir()
    rel = str(kept.relative_to(st))
    s = store.status(str(st))
    assert not s["consistent"] and s["damaged_parts"] == {rel: "missing (a file of kept copies a record names)"}
    p = _cli("store", "status", st)
    assert p.returncode != 0 and f"DAMAGED: {rel}: missing" in p.stdout + p.stderr
    log(b, [req("z", "2026-11-10")])
    before = (store._table(str(st)).version(), _held(st), json_report(st, ("workspace", "model")),
              sorted(p.name for p in (st / "_llm_cost").rglob("*")))
    p = _cli("ingest", b, "--store", st)
    assert p.returncode == 2 and p.stderr.count("\n") == 1, p.stderr
    assert p.stderr.startswith(f"llm-cost: error: damaged store: {st}: {rel} is missing (copies kept for {b}'s "
                               f"record, which come back when a file is replaced); not replacing {b}. Put the file "
                               f"back (from a backup), or ingest the logs again into a new store; `llm-cost store "
                               f"status {st}` lists the damage")
    assert (store._table(str(st)).version(), _held(st), json_report(st, ("workspace", "model")),
            sorted(p.name for p in (st / "_llm_cost").rglob("*"))) == before
    c = log(tmp_path / "c" / "c.csv", [req("r9", "2026-11-10")])
    assert _cli("ingest", c, "--store", st, "-q").returncode == 0  # (a new night reads no kept copies)
    if damage == "directory":
        kept.rmdir()
    kept.write_bytes(good)
    assert _cli("ingest", b, "--store", st, "-q").returncode == 0
    rep = same_as_logs(st, [a, c, b])
    assert (rep.totals["requests"], rep.accounting.duplicates) == (4, 0)


def test_an_interrupt_just_after_a_replacing_commit_keeps_the_copies_its_record_names(tmp_path, monkeypatch):
    """The replacing commit's record names a new kept copies file (its own copy of r1 lost to the
    copy brought back); interrupted after the commit, while the new data file was summarized, the
    run's cleanup removed that file as if never committed: the next replace then stopped at it."""
    a = log(tmp_path / "a" / "a.csv", [req("r1", "2026-11-10"), req("r2", "2026-11-10")])
    b = log(tmp_path / "b" / "b.csv", [req("r1", "2026-11-10", out=500)])
    st = tmp_path / "st"
    for f in (a, b):
        store.ingest([str(f)], str(st))
    log(b, [req("r1", "2026-11-10", out=50), req("r3", "2026-11-10")])
    version = store._table(str(st)).version()

    def interrupted(*args, **kw):
        raise KeyboardInterrupt

    with monkeypatch.context() as m:
        m.setattr(store, "_summarize_missing", interrupted)
        with pytest.raises(KeyboardInterrupt):
            store.ingest([str(b)], str(st))
    assert store._table(str(st)).version() == version + 1  # (committed)
    assert store.status(str(st))["damaged_parts"] == {}
    same_as_logs(st, [a, b])
    log(b, [req("r4", "2026-11-10")])
    assert store.ingest([str(b)], str(st)).files[0].status == "replaced"
    same_as_logs(st, [a, b])


def test_a_damaged_kept_copies_file_is_one_line_at_the_replacing_ingest(tmp_path):
    """(held) A kept copies file overwritten with garbage, or with another table's rows: the replacing
    ingest of the file whose record names it stops with one `damaged store:` line, exit 2, and the
    store is as before."""
    a = log(tmp_path / "a" / "a.csv", [req("r1", "2026-11-10"), req("r2", "2026-11-10")])
    b = log(tmp_path / "b" / "b.csv", [req("r1", "2026-11-10", out=500)])
    st = tmp_path / "st"
    for f in (a, b):
        store.ingest([str(f)], str(st))
    (kept,) = (st / "_llm_cost" / "displaced").iterdir()
    good = kept.read_bytes()
    log(b, [req("z", "2026-11-10")])
    for bad in (b"PAR1garbagePAR1", good[: len(good) // 2], None):
        if bad is None:
            pl.DataFrame({"x": [1]}).write_parquet(kept)
        else:
            kept.write_bytes(bad)
        p = _cli("ingest", b, "--store", st, "-q")
        assert p.returncode == 2 and p.stderr.startswith("llm-cost: error: damaged store: ") and p.stderr.count("\n") == 1
        assert store._table(str(st)).version() == 1
        assert list(store.status(str(st))["damaged_parts"]) == [str(kept.relative_to(st))]
    kept.write_bytes(good)
    assert store.status(str(st))["consistent"]
    assert _cli("ingest", b, "--store", st, "-q").returncode == 0
    same_as_logs(st, [a, b])


IDS = ["a'b", "c\\d", "é😀", "x' OR '1'='1", 'q"r', "new\nline", "t\tab", "') OR (1=1", "%_*", "back\\'"]


def test_request_ids_with_quotes_and_sql_come_back_by_their_quoted_names(tmp_path):
    """(held) The replacing commit names the copies it brings back by request id in Delta's SQL."""
    a = log(tmp_path / "a" / "a.csv", [req(i, "2026-11-10") for i in IDS])
    b = log(tmp_path / "b" / "b.csv", [req(i, "2026-11-10", out=500) for i in IDS])
    st = tmp_path / "st"
    for f in (a, b):
        store.ingest([str(f)], str(st))
    log(b, [req("z", "2026-11-10")])
    assert store.ingest([str(b)], str(st)).files[0].restored == len(IDS)
    assert same_as_logs(st, [a, b]).totals["requests"] == len(IDS) + 1


def test_a_sidechain_copy_stored_repriced_and_compacted_still_ranks_below_the_main_chain(tmp_path):
    """(held) A Claude Code sidechain replay stored first (rank 1, more tokens), the rows rewritten by
    reprice and compact, then the main chain's copy on the next night: the main chain's wins, as in
    a report of both files; the night replaced without it, the sidechain copy comes back."""
    from ..test_claude_code_copies import line

    def usage(out):
        return {"input_tokens": 6, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0, "output_tokens": out}

    side = tmp_path / "n0" / "s0.jsonl"
    main = tmp_path / "n1" / "s1.jsonl"
    for path, text in ((side, line("msg_P", "req_B", sidechain=True, usage=usage(900))),
                       (main, line("msg_P", "req_A", usage=usage(100)))):
        path.parent.mkdir(parents=True)
        path.write_text(text + "\n")
    st = tmp_path / "st"
    store.ingest([str(side)], str(st))
    store.reprice(str(st))
    store.compact(str(st), retention_days=0)
    assert store.ingest([str(main)], str(st)).files[0].displaced == 1
    assert pl.read_delta(str(st)).select(store.RANK, "output_tokens").rows() == [(0, 100)]
    same_as_logs(st, [side, main])
    main.write_text(line("msg_Q", "req_Q", usage=usage(7)) + "\n")
    assert store.ingest([str(main)], str(st)).files[0].restored == 1
    assert sorted(pl.read_delta(str(st)).select(store.RANK, "output_tokens").rows()) == [(0, 7), (1, 900)]
    same_as_logs(st, [side, main])


def test_two_ingests_at_once_one_replacing_serialize_on_the_lock(tmp_path):
    """(held) A replacing ingest that brings copies back and a new night's ingest, started together:
    the lock serializes them, and the store reports as the files it holds."""
    import subprocess
    import sys

    from .test_attack9 import ROOT

    a = log(tmp_path / "a" / "a.csv", [req(f"r{i}", "2026-11-10") for i in range(50)])
    b = log(tmp_path / "b" / "b.csv", [req(f"r{i}", "2026-11-10", out=500) for i in range(0, 50, 2)])
    st = tmp_path / "st"
    for f in (a, b):
        store.ingest([str(f)], str(st))
    log(b, [req("z", "2026-11-10")])
    c = log(tmp_path / "c" / "c.csv", [req(f"r{i}", "2026-11-10", out=300) for i in range(0, 50, 5)])
    env = {**__import__("os").environ, "PYTHONPATH": str(ROOT)}
    procs = [subprocess.Popen([sys.executable, "-m", "analyzer", "ingest", str(f), "--store", str(st), "-q"],
                              env=env, stderr=subprocess.PIPE, text=True) for f in (b, c)]
    assert [p.wait() for p in procs] == [0, 0], [p.stderr.read() for p in procs]
    versions = store.history(str(st))
    assert len(versions) == 4
    order = [a, b, c] if "b.csv" in str(versions[1]) else [a, c, b]
    same_as_logs(st, order)

"""Attacks on store5 (a replaced file's kept copies compete whole, ranked by dedupe.losers) and
race1 (two writers without the lock; commit infos read from the commit files; a reader re-reading
the log before calling the store damaged).

Invariant (A): after every ingest, the store reports what a report of the files it holds says, in
the order of their last ingest, every accounting count included (`same_as_logs`), status consistent.
Invariant (B): after racing writers (and a kill -9 of one), status consistent, every file's record
there, nothing counted twice, and a reader in the meantime never told the store is damaged.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import polars as pl
import pytest

from analyzer import store

from ..test_store_copies import same_as_logs
from ..test_store_restore import _records
from .test_attack14 import HAIKU, UNKNOWN, _k, _msg, _write

STAMP = "2026-11-10T10:00:00Z"


def _response(i: int, first: int, steps, workspace: str, ts: str = STAMP) -> str:
    return json.dumps({**json.loads(_msg(f"msg_{i}", [_k(first), *[_k(t, m) for m, t in steps]], ts=ts)),
                       "workspace": workspace})


def _held_tokens(st: Path, sha: str | None) -> dict[str, int]:
    """Each response's tokens as stored by files other than `sha` (its rows summed)."""
    from analyzer.schema import COUNT_COLUMNS

    rows = pl.read_delta(str(st))
    if sha is not None:
        rows = rows.filter(pl.col(store.SHA) != sha)
    held = rows.group_by(pl.col("request_id").str.replace(r"#\d+$", "")).agg(pl.sum_horizontal(COUNT_COLUMNS).sum())
    return dict(zip(*held.to_dict(as_series=False).values()))


def _steps():
    from hypothesis import strategies as hs

    step = hs.tuples(hs.sampled_from([HAIKU, HAIKU, UNKNOWN]), hs.sampled_from([100, 200]))
    # ids repeat inside a file (no unique_by); ties of tokens likely
    copy = hs.tuples(hs.integers(0, 3), hs.sampled_from([100, 200]), hs.lists(step, max_size=2))
    content = hs.one_of(hs.none(), hs.lists(copy, max_size=4))
    return hs.lists(hs.tuples(hs.integers(0, 4), content), min_size=2, max_size=int(os.environ.get("A24_STEPS", "8")))


def _run_steps(root: Path, ops) -> None:
    paths = [root / f"n{n}" / f"{n}.jsonl" for n in range(5)]
    st = root / "st"
    # (a file never replaced: the logs keep a row when every night is exported again empty)
    order = [Path(_write(root / "base" / "base.jsonl", [_response(40, 5, [], "base")]))]
    store.ingest([str(order[0])], str(st))
    for step, (k, content) in enumerate(ops):
        path = paths[k]
        replacing = path in order
        lines = []
        if content is not None:
            sha = _records(st)[f"n{k}"]["sha256"] if replacing else None
            holder = _held_tokens(st, sha) if replacing else {}
            for i, first, s in content:
                top = holder.get(f"msg_{i}")
                # a replacing copy of a request another file holds is no fuller than the held one (the
                # known limit of a replacing commit)
                if top is not None and first + sum(t for _, t in s) > top:
                    first, s = min(first, top), []
                lines.append(_response(i, first, s, f"x{step}"))
        _write(path, [""] * (step + 1) if content is None else [*lines, _response(50 + step, 7, [], f"x{step}")])
        r = store.ingest([str(path)], str(st)).files[0]
        assert r.status in ("ingested", "replaced", "empty"), r.status
        order = [f for f in order if f != path] + [path]
        same_as_logs(st, order, ("workspace", "model"))


def test_property_multi_row_responses_replaced_in_any_order(tmp_path_factory):
    from hypothesis import HealthCheck, given, settings

    @settings(max_examples=int(os.environ.get("A24_N", "10")), deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(_steps())
    def check(ops):
        _run_steps(tmp_path_factory.mktemp("a24"), ops)

    check()


# --- A: Claude Code runs of several models ---------------------------------------------------------
# A run's record id is its uuid with its first model by name; its other models' rows carry the uuid
# with their own model: the same id as the record row of a copy of the run that lists fewer models,
# or the later row of a copy listing them otherwise. A night's copy that loses to a stored one takes
# out of the night every row with one of its rows' ids (_Rows._keep, _MonthFiles: an anti-join on
# the row's id alone), a winning record's rows with it: now by record id (store._Contest).
CC_HAIKU, CC_OPUS, CC_UNKNOWN = HAIKU, "claude-opus-4-5-20251101", UNKNOWN


def _run(uid: str, usage: list[tuple[str, int]]) -> str:
    """A Claude Code `result` (claude -p --output-format json) of run `uid`, stamped, with its models."""
    models = {m: {"inputTokens": t, "outputTokens": 0, "cacheReadInputTokens": 0, "cacheCreationInputTokens": 0,
                  "webSearchRequests": 0, "costUSD": 0.001} for m, t in usage}
    return json.dumps({"type": "result", "subtype": "success", "is_error": False, "duration_ms": 1, "duration_api_ms": 1,
                       "num_turns": 1, "result": "ok", "session_id": f"s-{uid}", "total_cost_usd": 0.002,
                       "usage": {"input_tokens": 1, "output_tokens": 1}, "modelUsage": models, "uuid": uid,
                       "timestamp": STAMP})


def test_claude_code_runs_of_several_models_across_nights_report_as_the_files(tmp_path):
    """What held: copies of a run listing other models, in either order, and a copy repeated in one
    file (the store keeps what a report of the files keeps)."""
    cases = {"fuller-later": [[("u1", [(CC_HAIKU, 100), (CC_OPUS, 100)])], [("u1", [(CC_HAIKU, 100), (CC_OPUS, 500)])]],
             "fuller-first": [[("u1", [(CC_HAIKU, 100), (CC_OPUS, 500)])], [("u1", [(CC_HAIKU, 100), (CC_OPUS, 100)])]],
             "record-id-of-a-stored-later-row": [[("u1", [(CC_HAIKU, 100), (CC_OPUS, 100)])], [("u1", [(CC_OPUS, 300)])]],
             "in-one-file": [[("u1", [(CC_HAIKU, 200), (CC_OPUS, 100)]), ("u1", [(CC_OPUS, 200), (CC_UNKNOWN, 200)]),
                              ("u1", [(CC_OPUS, 200), (CC_UNKNOWN, 200)])]]}
    for name, nights in cases.items():
        files = [Path(_write(tmp_path / name / f"n{n}" / f"{n}.jsonl", [_run(*r) for r in runs]))
                 for n, runs in enumerate(nights)]
        st = tmp_path / name / "st"
        for f in files:
            store.ingest([str(f)], str(st))
        same_as_logs(st, files)


@pytest.mark.parametrize("case", ["new", "replacing"])
def test_a_losing_copy_takes_no_row_of_a_winning_record_with_it(tmp_path, case):
    """Night 0 stores run u0 (Haiku 200 + Opus 200: record u0#haiku, row u0#opus). Night 1 has two
    copies of u0: one listing Opus alone (300: record u0#opus, a record no other file holds) and one
    as night 0's (a tie: it loses, a repeat). A report keeps the Opus-only copy whole: Opus 500
    tokens. The store dropped it with the losing copy's u0#opus row (an anti-join on the row's id, not
    its record's): Opus 200, a record short, status consistent. Now a losing copy goes by record id."""
    n0 = Path(_write(tmp_path / "n0" / "0.jsonl", [_run("u0", [(CC_HAIKU, 200), (CC_OPUS, 200)])]))
    n1 = tmp_path / "n1" / "1.jsonl"
    night = [_run("u0", [(CC_OPUS, 300)]), _run("u0", [(CC_HAIKU, 200), (CC_OPUS, 200)])]
    st = tmp_path / "st"
    store.ingest([str(n0)], str(st))
    if case == "replacing":  # (through the spool: a file replaced)
        _write(n1, [_run("own", [(CC_HAIKU, 5)])])
        store.ingest([str(n1)], str(st))
    _write(n1, night)
    store.ingest([str(n1)], str(st))
    rep = same_as_logs(st, [n0, n1])
    opus = dict(zip(rep.rows["model"].to_list(), rep.rows["input_tokens"].to_list()))[CC_OPUS]
    assert (opus, rep.accounting.priced, rep.accounting.repeats) == (500, 2, 1)


# --- B: writers without the lock -------------------------------------------------------------------


def test_a_file_changed_to_another_s_bytes_retries_when_another_writer_commits_first(tmp_path, monkeypatch):
    """Without the lock (writers on two machines), another writer commits while this one replaces a
    file changed to another file's bytes: like any other commit that lost the race, it reads the
    table again and commits again (docs/store.md, Concurrent writers), not 'run the ingest again'."""
    import contextlib

    from ..test_store import log, req
    from ..test_store_restore import _output_tokens

    n1 = log(tmp_path / "n1" / "a.csv", [req("r1", "2026-11-10"), req("r2", "2026-11-10")])
    n2 = log(tmp_path / "n2" / "b.csv", [req("r1", "2026-11-10", out=500)])
    n3 = log(tmp_path / "n3" / "c.csv", [req("r9", "2026-11-10")])
    n4 = log(tmp_path / "n4" / "d.csv", [req("r7", "2026-11-10")])
    st = tmp_path / "store"
    for night in (n1, n2, n3):
        store.ingest([str(night)], str(st))
    n2.write_bytes(n3.read_bytes())
    monkeypatch.setattr(store, "locked", lambda *a, **k: contextlib.nullcontext())
    restore, other = store._restore, []

    def the_other_commits_first(*args, **kw):
        if not other:
            other.append(store.ingest([str(n4)], str(st)))
        return restore(*args, **kw)

    monkeypatch.setattr(store, "_restore", the_other_commits_first)
    r = store.ingest([str(n2)], str(st)).files[0]
    assert other and other[0].files[0].stored == 1
    assert r.status == f"replaced (same content as {n3})"
    monkeypatch.undo()
    assert _output_tokens(st, "r1") == [100]  # (night 1's copy back)
    rep = same_as_logs(st, [n1, n3, n4])
    assert (rep.totals["requests"], rep.accounting.duplicates, rep.accounting.files) == (4, 0, 3)


OTHER_MACHINE = r"""
import contextlib, os, socket, sys, time
from analyzer import store
store.locked = lambda *a, **k: contextlib.nullcontext()  # (the lock is one machine's)
os.getpid = lambda: 4_000_000  # another machine: its pid and host mean nothing here
socket.gethostname = lambda: "another-machine"
gate, repeats = sys.argv[3], store._repeats

def wait_for_the_other(*args, **kw):  # its spool written, the night's repeats still to check
    open(gate + ".in", "w").close()
    deadline = time.monotonic() + 120
    while not os.path.exists(gate):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    return repeats(*args, **kw)

store._repeats = wait_for_the_other
r = store.ingest([sys.argv[1]], sys.argv[2])
print(r.files[0].status, r.files[0].stored)
"""


def test_a_writer_on_another_machine_keeps_its_spool_when_this_one_starts(tmp_path, monkeypatch):
    """Two machines, no common lock: machine 1 replaces a file (its rows priced into a spool under
    the store, named by its pid); machine 2 starts an ingest, which removes the spool files of dead
    ingests. A pid of another machine is not alive here: machine 2 removed machine 1's live spool,
    and machine 1 stopped with a traceback (FileNotFoundError). Spools are now named by host too."""
    import contextlib
    import subprocess
    import sys
    import time

    from ..conftest import ROOT
    from ..test_store import log, req

    a = log(tmp_path / "a" / "a.csv", [req("r1", "2026-11-10")])
    st = tmp_path / "st"
    store.ingest([str(a)], str(st))
    log(a, [req("r1", "2026-11-10"), req("r2", "2026-11-10")])  # (a replace: priced through a spool)
    b = log(tmp_path / "b" / "b.csv", [req("r9", "2026-11-20")])
    script, gate = tmp_path / "other.py", tmp_path / "gate"
    script.write_text(OTHER_MACHINE)
    other = subprocess.Popen([sys.executable, str(script), str(a), str(st), str(gate)], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        deadline = time.monotonic() + 120
        while not Path(str(gate) + ".in").exists():
            assert other.poll() is None and time.monotonic() < deadline, other.communicate()
            time.sleep(0.05)
        (spool,) = (st / "_llm_cost").glob(".spool-*")
        monkeypatch.setattr(store, "locked", lambda *a, **k: contextlib.nullcontext())
        assert store.ingest([str(b)], str(st)).files[0].stored == 1
        assert spool.exists()
    finally:
        gate.touch()
        out, err = other.communicate(timeout=300)
    assert other.returncode == 0 and out.split() == ["replaced", "2"], err
    # a dead ingest's spool of this machine, and one named as before December 7, still go
    dead = [st / "_llm_cost" / f".spool-{store._host()}-4000000-{'0' * 16}.parquet",
            st / "_llm_cost" / f".spool-4000000-{'1' * 16}.parquet"]
    for p in dead:
        p.write_bytes(b"x")
    c = log(tmp_path / "c" / "c.csv", [req("r8", "2026-11-21")])
    store.ingest([str(c)], str(st))
    assert not any(p.exists() for p in dead) and not list((st / "_llm_cost").glob(".spool-*"))
    monkeypatch.undo()
    rep = same_as_logs(st, [a, b, c])
    assert (rep.totals["requests"], rep.accounting.files) == (4, 3)


RACER = r"""
import contextlib, sys
from analyzer import store
store.locked = lambda *a, **k: contextlib.nullcontext()  # (writers on several machines: no common lock)
r = store.ingest(sys.argv[2:], sys.argv[1])
print(*[f.status for f in r.files])
"""

READER = r"""
import os, sys
from analyzer import store
st, stop, reads = sys.argv[1], sys.argv[2], 0
while not os.path.exists(stop) or not reads:
    store.report(st, ["model"])  # (a StoreError, "damaged store", fails the test)
    assert store.status(st)["consistent"]
    reads += 1
print(reads)
"""


@pytest.mark.slow
def test_three_writers_without_the_lock_a_reader_and_a_kill(tmp_path):
    """Three processes ingest multi-row responses sharing ids at once, without the lock, while a
    reader reports in a loop; one writer is killed (-9) a second in; the nights are ingested again.
    The reader is never told the store is damaged nor sees it inconsistent, and the store reports
    what the logs say (tokens differ between copies: no tie, so the order of commits is moot)."""
    import random
    import signal
    import subprocess
    import sys
    import time

    from ..conftest import ROOT

    rnd = random.Random(24)
    tokens = iter(rnd.sample(range(100, 100_000), 1000))
    base = Path(_write(tmp_path / "base" / "base.jsonl", [_response(999, 5, [], "w")]))
    st = tmp_path / "st"
    store.ingest([str(base)], str(st))
    nights = [Path(_write(tmp_path / f"n{n}" / f"{n}.jsonl",
                          [_response(i, next(tokens), [(HAIKU, next(tokens))] * rnd.randint(0, 2), "w")
                           for i in rnd.sample(range(40), 20)])) for n in range(3)]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    (tmp_path / "racer.py").write_text(RACER)
    (tmp_path / "reader.py").write_text(READER)
    stop = tmp_path / "stop"
    reader = subprocess.Popen([sys.executable, str(tmp_path / "reader.py"), str(st), str(stop)], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    writers = [subprocess.Popen([sys.executable, str(tmp_path / "racer.py"), str(st), str(n)], env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for n in nights]
    time.sleep(1)
    writers[1].send_signal(signal.SIGKILL)
    outs = [w.communicate(timeout=600) for w in writers]
    stop.touch()
    out, err = reader.communicate(timeout=600)
    assert reader.returncode == 0 and int(out) > 0, err
    assert [w.returncode for w in writers] in ([0, -signal.SIGKILL, 0], [0, 0, 0]), outs
    store.ingest([str(base), *map(str, nights)], str(st))
    rep = same_as_logs(st, [base, *nights])
    assert rep.accounting.files == 4  # (data files a killed writer left uncommitted: compact removes them)


def test_a_reprice_losing_the_race_to_a_writer_without_the_lock_says_so(tmp_path, monkeypatch):
    """A night ingested (on another machine, without the lock) while `store reprice` prices its
    window: the reprice's commit does not land (it was built on the version before the night), the
    store holds the night as ingested, and the reprice says why in one line (delta-rs said only
    'Failed to commit transaction: 0')."""
    import contextlib

    from ..test_store import log, req

    z = log(tmp_path / "n0" / "z.csv", [req("z", "2026-11-10"), req("r1", "2026-11-10")])
    a = log(tmp_path / "a" / "a.csv", [req("r1", "2026-11-10", out=900), req("r2", "2026-11-10")])
    st = tmp_path / "st"
    store.ingest([str(z)], str(st))
    monkeypatch.setattr(store, "locked", lambda *a, **k: contextlib.nullcontext())
    kept, other = store._reprice_kept, []

    def first_the_night(*args, **kw):
        if not other:
            other.append(store.ingest([str(a)], str(st)))
        return kept(*args, **kw)

    monkeypatch.setattr(store, "_reprice_kept", first_the_night)
    with pytest.raises(store.StoreError, match="^[^\n]*another writer committed first; nothing was re-priced"):
        store.reprice(str(st), store.pipeline.Options(prices=("fixtures/prices/negotiated.toml",)))
    assert other[0].files[0].displaced == 1
    monkeypatch.undo()
    assert [h["command"] for h in store.history(str(st))] == ["ingest", "ingest"]
    same_as_logs(st, [z, a])

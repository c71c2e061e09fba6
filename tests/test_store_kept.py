"""The kept copies (`_llm_cost/displaced/`) under `store reprice`, and their integrity.

A copy that lost to another file's is kept whole, named by a record, and comes back when the
winner's file is replaced. Here: reprice prices the kept copies of its window again (written anew,
named by its commit, crash-safe), a kept file's rows and bytes are noted when it is written (one
emptied or rewritten by hand is damage), and reprice cleans stored labels again.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from decimal import Decimal as D
from pathlib import Path

import polars as pl
import pytest

from analyzer import pipeline, store

from .test_store import json_report, log, req

NEGOTIATED = "fixtures/prices/negotiated.toml"
NEG = pipeline.Options(prices=(NEGOTIATED,))
BY = ("workspace", "model")


def _kept(st: Path) -> set[str]:
    d = st / "_llm_cost" / "displaced"
    return {str(p.relative_to(st)) for p in d.iterdir()} if d.exists() else set()


def _named(st: Path) -> dict[str, list[str]]:
    records = store._files(str(st), store._table(str(st)))
    return {Path(p).name: json.loads(r.get("displaced_rows") or "[]") for p, r in records.items()}


def _two_nights(tmp_path: Path) -> tuple[Path, Path, Path]:
    """a.csv's copy of r1 (and r2), then b.csv's fuller copy of r1: a's is kept, named by b's record."""
    a = log(tmp_path / "a" / "a.csv", [req("r1", "2026-11-10", out=100, workspace="wa"),
                                       req("r2", "2026-11-10", workspace="wa")])
    b = log(tmp_path / "b" / "b.csv", [req("r1", "2026-11-10", out=500, workspace="wb")])
    st = tmp_path / "st"
    for f in (a, b):
        store.ingest([str(f)], str(st))
    return a, b, st


def test_reprice_writes_the_kept_copies_anew_and_names_them_in_its_commit(tmp_path):
    a, b, st = _two_nights(tmp_path)
    (old,) = _kept(st)
    assert _named(st) == {"a.csv": [], "b.csv": [old]}
    cost = pl.read_parquet(st / old)["cost"].item()
    result = store.reprice(str(st), NEG)
    assert result.kept == 1
    (new,) = _kept(st) - {old}
    assert _named(st) == {"a.csv": [], "b.csv": [new]}
    assert (st / old).exists()  # (never rewritten in place: an older version's record names it)
    # r1 as a.csv has it: 1000 in x 3 + 100 out x 15 per million at list; the negotiated book's
    # rates (2.4, 12) less its 15% discount
    assert (cost, pl.read_parquet(st / new)["cost"].item()) == (D("0.0045"), D("0.00306"))
    last = store._history(store._table(str(st)), 1)[0]
    assert json.loads(last[store.K_KEPT])[str(b)]["displaced_rows"] == json.dumps([new])
    assert store.status(str(st))["consistent"]
    store.compact(str(st), retention_days=0)  # the old file, named by no record now, goes
    assert _kept(st) == {new}
    log(b, [req("r3", "2026-11-10", workspace="wb")])
    assert store.ingest([str(b)], str(st), NEG).files[0].restored == 1
    logs = pipeline.analyze([str(a), str(b)], list(BY), NEG)
    rep = store.report(str(st), list(BY))
    assert rep.totals == logs.totals and rep.rows.equals(logs.rows)


def test_reprice_counts_the_kept_copies_it_prices_again(tmp_path):
    a = log(tmp_path / "a" / "a.csv", [req(f"r{i}", "2026-11-10") for i in range(5)])
    b = log(tmp_path / "b" / "b.csv", [req(f"r{i}", "2026-11-10", out=500) for i in range(3)])
    st = tmp_path / "st"
    for f in (a, b):
        store.ingest([str(f)], str(st))
    assert store.reprice(str(st), NEG).kept == 3
    assert store.reprice(str(st), pipeline.Options(prices=(NEGOTIATED,), since="2026-11-10")).kept == 3


def test_reprice_leaves_the_kept_copies_outside_its_window_as_they_are(tmp_path):
    _a, _b, st = _two_nights(tmp_path)
    (old,) = _kept(st)
    result = store.reprice(str(st), pipeline.Options(prices=(NEGOTIATED,), since="2026-11-11"))
    assert (result.kept, _kept(st), _named(st)["b.csv"]) == (0, {old}, [old])
    result = store.reprice(str(st), pipeline.Options(prices=(NEGOTIATED,), until="2026-11-10T09:00:00Z"))
    assert (result.kept, _kept(st)) == (0, {old})
    assert store.reprice(str(st), pipeline.Options(prices=(NEGOTIATED,), since="2026-11-10")).kept == 1


def test_reprice_replayed_from_its_commit_when_killed_before_the_files_table(tmp_path, monkeypatch):
    """The rows committed, the files table not written: the next reader replays the reprice's
    commit (K_KEPT) and names the new kept file, not the old one."""
    _a, _b, st = _two_nights(tmp_path)
    (old,) = _kept(st)
    with monkeypatch.context() as m:
        m.setattr(store, "_sync_files", lambda *a: None)
        store.reprice(str(st), NEG)
    assert store._recorded(str(st)) < store._table(str(st)).version()
    (new,) = _kept(st) - {old}
    assert _named(st)["b.csv"] == [new]
    assert store.status(str(st))["consistent"]


def test_a_reprice_that_fails_to_commit_removes_the_kept_files_it_wrote(tmp_path, monkeypatch):
    _a, _b, st = _two_nights(tmp_path)
    before = (_kept(st), store._table(str(st)).version())

    def fail(*args, **kw):
        raise OSError("disk full")

    monkeypatch.setattr(store._delta(), "write_deltalake", fail)
    with pytest.raises(store.StoreError, match="cannot commit the re-priced rows: disk full"):
        store.reprice(str(st), NEG)
    assert (_kept(st), store._table(str(st)).version()) == before


REPRICE_KILL_POINTS = [("store", "_reprice_kept", "after", 1), ("dl", "write_deltalake", "after", 1),
                       ("store", "_checkpoint", "before", 1), ("store", "_summarize_missing", "before", 1),
                       ("store", "_write_files", "before", 1), ("store", "_write_rollups", "before", 1)]


@pytest.mark.slow
@pytest.mark.parametrize("point", REPRICE_KILL_POINTS, ids=lambda p: f"{p[1]}-{p[2]}")
def test_kill_minus_9_during_a_reprice_leaves_it_undone_or_whole_kept_copies_too(tmp_path, point):
    """Killed at each step of a reprice (its kept file written, its commit, the files table, ...):
    the store is as before or as after a clean reprice, kept copies included: the replace that
    brings r1's kept copy back then gives the report of the store never repriced, or of the one
    repriced cleanly. No damage either way, and `store compact` leaves only the named kept files."""
    from .hostile.test_attack9 import KILLER, ROOT

    a, b, base = _two_nights(tmp_path)
    refs = {}
    for name, repriced in (("undone", False), ("done", True)):
        ref = tmp_path / name
        shutil.copytree(base, ref)
        if repriced:
            store.reprice(str(ref), NEG)
        refs[name] = ref
    version = store._table(str(base)).version()
    killer = KILLER.replace('"delta": deltalake.DeltaTable}', '"delta": deltalake.DeltaTable, "dl": deltalake}')
    cmd = [sys.executable, "-c", killer, *map(str, point), "reprice", "--store", str(base),
           "--prices", NEGOTIATED, "-q"]  # (relative, as the references': the report names the overlay)
    p = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)}, cwd=os.getcwd())
    assert p.returncode == -signal.SIGKILL, p.stderr
    done = store._table(str(base)).version() == version + 1
    assert store._table(str(base)).version() in (version, version + 1)
    assert not store.status(str(base))["damaged_parts"]
    assert json_report(base, BY) == json_report(refs["done" if done else "undone"], BY)
    log(b, [req("r3", "2026-11-10", workspace="wb")])
    for st in (base, refs["done" if done else "undone"]):
        assert store.ingest([str(b)], str(st), NEG).files[0].restored == 1
    assert json_report(base, BY) == json_report(refs["done" if done else "undone"], BY)
    if done:  # (repriced whole: the store says what a report of the logs with the new book says)
        assert store.report(str(base), list(BY)).totals == pipeline.analyze([str(a), str(b)], list(BY), NEG).totals
    store.compact(str(base), retention_days=0)
    assert _kept(base) == {f for fs in _named(base).values() for f in fs}
    assert store.status(str(base))["consistent"]


# --- integrity of the kept files -------------------------------------------------------------------

def _cli(*args):
    from .hostile.test_attack9 import ROOT

    return subprocess.run([sys.executable, "-m", "analyzer", *map(str, args)], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})


@pytest.mark.parametrize("damage", ["emptied", "ids-nulled", "timestamps-nulled", "rows-twice"])
def test_a_kept_file_rewritten_by_hand_is_named_and_stops_the_replace(tmp_path, damage):
    a, b, st = _two_nights(tmp_path)
    (rel,) = _kept(st)
    kept = st / rel
    record = store._files(str(st), store._table(str(st)))[str(b)]
    assert json.loads(record["displaced_stats"]) == {rel: [1, kept.stat().st_size]}
    assert json.loads(record["displaced_sha256"]) == {rel: store.sha256(str(kept))}
    good = kept.read_bytes()
    frame = pl.read_parquet(kept)
    frame = {"emptied": frame.head(0), "ids-nulled": frame.with_columns(pl.lit(None, pl.String).alias("request_id")),
             "timestamps-nulled": frame.with_columns(pl.lit(None, frame["timestamp"].dtype).alias("timestamp")),
             "rows-twice": pl.concat([frame, frame])}[damage]
    frame.write_parquet(kept)
    s = store.status(str(st))
    assert not s["consistent"] and list(s["damaged_parts"]) == [rel]
    assert s["damaged_parts"][rel].endswith("(a file of kept copies a record names)")
    if damage in ("emptied", "rows-twice"):  # (the rows told first: what a person can act on)
        assert s["damaged_parts"][rel].startswith(f"{len(frame)} rows, its record says 1 (")
    else:
        assert s["damaged_parts"][rel].startswith(f"{kept.stat().st_size:,} bytes, its record says {len(good):,} (")
    log(b, [req("z", "2026-11-10", workspace="wb")])
    before = (store._table(str(st)).version(), json_report(st, BY), sorted(p.name for p in (st / "_llm_cost").rglob("*")))
    p = _cli("ingest", b, "--store", st)
    assert p.returncode == 2 and p.stderr.count("\n") == 1, p.stderr
    assert p.stderr.startswith(f"llm-cost: error: damaged store: {st}: {rel} is "), p.stderr
    assert (store._table(str(st)).version(), json_report(st, BY),
            sorted(p.name for p in (st / "_llm_cost").rglob("*"))) == before
    # a reprice leaves it alone (priced again and noted anew, its damage would no longer show)
    warned = []
    assert store.reprice(str(st), NEG, warn=warned.append).kept == 0
    assert len(warned) == 1 and warned[0].startswith(f"{rel} is ") and list(store.status(str(st))["damaged_parts"]) == [rel]
    kept.write_bytes(good)  # put back (from a backup): as written, at the book of its own ingest, as warned
    assert store.status(str(st))["consistent"]
    assert store.ingest([str(b)], str(st), NEG).files[0].restored == 1
    r1 = pl.read_delta(str(st)).filter(pl.col("request_id") == "r1")
    assert r1.select("workspace", "cost").rows() == [("wa", D("0.0045"))]


def test_a_kept_file_of_a_record_that_noted_no_stats_is_checked_for_presence_alone(tmp_path, monkeypatch):
    """A store written before records noted their kept files' rows and bytes: an emptied kept file
    cannot be told from one written so; status says consistent and the replace brings nothing back
    (docs/store.md, Known limits). Its presence and columns are still checked."""
    with monkeypatch.context() as m:
        m.setattr(store, "_kept_stats", lambda root, rels: None)
        _a, b, st = _two_nights(tmp_path)
    (rel,) = _kept(st)
    pl.read_parquet(st / rel).head(0).write_parquet(st / rel)
    assert store.status(str(st))["consistent"]
    log(b, [req("z", "2026-11-10", workspace="wb")])
    assert store.ingest([str(b)], str(st)).files[0].restored == 0
    (st / rel).unlink()
    assert list(store.status(str(st))["damaged_parts"]) == []  # (b's new record names no kept file)


# --- labels cleaned again by reprice -------------------------------------------------------------

def test_reprice_cleans_stored_labels_again_by_this_version_s_rules(tmp_path, monkeypatch):
    """A night stored by a version that trimmed whitespace alone: its model, tier and workspace keep
    an invisible end. reprice cleans them as an ingest now does: the model is priced, the tier
    lower-cased, the workspace one with the later night's; a model that cleans to nothing is
    quarantined, as an ingest now does (until December 7 it stayed stored, unpriced)."""
    from analyzer import labels

    z = "\u200b"
    old = log(tmp_path / "n1" / "x.csv", [req("a", "2026-11-10", model=f"claude-haiku-4-5{z}", workspace=f"ws{z}"),
                                          req("b", "2026-11-10", model=z, workspace="ws")])
    new = log(tmp_path / "n2" / "y.csv", [req("c", "2026-11-10", model="claude-haiku-4-5", workspace="ws")])
    st = str(tmp_path / "st")
    with monkeypatch.context() as m:
        m.setattr(labels, "trim", lambda value: value.str.strip_chars())
        store.ingest([str(old)], st)
    store.ingest([str(new)], st)
    before = store.report(st, ["workspace", "model"])
    assert (before.accounting.priced, before.accounting.unpriced) == (1, 2)
    store.reprice(st)
    rep = store.report(st, ["workspace", "model"])
    assert (rep.accounting.priced, rep.accounting.unpriced, rep.accounting.quarantined) == (2, 0, 1)
    assert rep.rows.select("workspace", "model", "requests").rows() == [("ws", "claude-haiku-4-5-20251001", 2)]
    assert store.status(st)["consistent"]
    stored = pl.read_delta(st).sort("request_id")
    assert stored["model_raw"].to_list() == ["claude-haiku-4-5", "claude-haiku-4-5"]
    assert stored["workspace"].to_list() == ["ws", "ws"]

"""A copy that its labels will quarantine (an empty or missing model, an unknown tier or speed) never
competes in dedupe, like a copy with a negative count (which fails before dedupe): it is quarantined,
with its reason, and is not counted as a duplicate. Its valid twin is priced, whatever order the
copies come in and whatever their token counts.

Before, label checks ran on the aggregated groups after dedupe, so such a copy competed. Written
first with as many tokens (or with more tokens, in any order), it won, was quarantined, and its twin
was counted a duplicate: the request was priced by neither copy. When it lost, it was counted a
duplicate and also written to the quarantine file (tests/hostile/test_attack10.py found both)."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from analyzer import Options, analyze, price_requests, store

from .test_claude_code_copies import PARENT, line, tree

# claude-haiku-4-5: $1 input, $5 output per MTok
HAIKU = "claude-haiku-4-5"


def copy(inp: int = 64, out: int = 3, rid: str = "r1", **labels) -> str:
    rec = {"timestamp": "2026-10-08T06:00:00Z", "model": HAIKU, "input_tokens": inp, "output_tokens": out,
           "request_id": rid, **labels}
    return json.dumps({k: v for k, v in rec.items() if v is not None})


def cost(inp: int, out: int = 3) -> Decimal:
    return (inp * 1 + out * 5) / Decimal(10**6)


BAD = {  # how a copy goes wrong -> the reason its quarantine line gives
    "empty model": ({"model": ""}, "missing model"),
    "blank model": ({"model": "  "}, "missing model"),
    "no model": ({"model": None}, "missing model"),
    "unknown tier": ({"service_tier": "platinum"}, "unknown service_tier (platinum)"),
    "unknown speed": ({"speed": "warp"}, "unknown speed (warp)"),
}


def run(tmp_path, lines: list[str]):
    """A report and `price` of the lines: (accounting, totals, the quarantine file's records, the
    priced rows). Both accountings are the same."""
    path = tmp_path / "log.jsonl"
    path.write_text("".join(x + "\n" for x in lines))
    q = tmp_path / "q.jsonl"
    rep = analyze([str(path)], ["model"], Options(quarantine=str(q)))
    quarantined = [json.loads(x) for x in q.read_text().splitlines()] if q.exists() else []
    rows, acc = price_requests([str(path)], Options(quarantine=str(tmp_path / "q2.jsonl")))
    assert acc.as_dict() | {"quarantine_file": None} == rep.accounting.as_dict() | {"quarantine_file": None}
    assert rep.accounting.balanced
    return rep.accounting, rep.totals, quarantined, rows.lazy().collect()


@pytest.mark.parametrize("bad_inp", [640, 64, 6], ids=["bad-more", "bad-equal", "bad-fewer"])
@pytest.mark.parametrize("bad_first", [True, False], ids=["bad-first", "valid-first"])
@pytest.mark.parametrize("kind", list(BAD))
def test_a_copy_its_labels_quarantine_never_displaces_its_valid_twin(tmp_path, kind, bad_first, bad_inp):
    labels, reason = BAD[kind]
    bad, good = copy(bad_inp, **labels), copy(64)
    acc, totals, quarantined, rows = run(tmp_path, [bad, good] if bad_first else [good, bad])
    assert (acc.rows_read, acc.priced, acc.duplicates, acc.quarantined) == (2, 1, 0, 1)
    assert totals["cost"] == cost(64) == Decimal("0.000079") and totals["input_tokens"] == 64
    # the quarantine file holds the bad copy alone, with its line and reason
    assert [(r["line"], r["reason"]) for r in quarantined] == [(1 if bad_first else 2, reason)]
    assert rows["source_row"].to_list() == [2 if bad_first else 1] and rows["cost"].to_list() == [cost(64)]


def test_a_label_clean_once_trimmed_still_competes(tmp_path):
    # " STANDARD " is the standard tier once cleaned (and " Standard " the standard speed): that copy
    # is valid, and its more tokens win.
    acc, totals, quarantined, rows = run(tmp_path, [copy(64), copy(640, service_tier=" STANDARD ", speed=" Standard ")])
    assert (acc.priced, acc.duplicates, acc.quarantined) == (1, 1, 0) and not quarantined
    assert totals["cost"] == cost(640) and rows["source_row"].to_list() == [2]


def test_valid_copies_compete_among_themselves_past_a_bad_one(tmp_path):
    # the bad copy has the most tokens; of the two valid ones the fuller wins; and a request whose
    # copies are all bad is quarantined twice (both are lines the user must see), never a duplicate
    lines = [copy(9000, model=""), copy(64), copy(100), copy(5, rid="r2", model=""), copy(7, rid="r2", speed="warp")]
    acc, totals, quarantined, rows = run(tmp_path, lines)
    assert (acc.rows_read, acc.priced, acc.duplicates, acc.quarantined) == (5, 1, 1, 3)
    assert totals["cost"] == cost(100) and rows["source_row"].to_list() == [3]
    assert [r["line"] for r in quarantined] == [1, 4, 5]


def test_across_files_the_bad_copy_in_the_first_file_does_not_win(tmp_path):
    (tmp_path / "a.jsonl").write_text(copy(64, model="") + "\n")
    (tmp_path / "b.jsonl").write_text(copy(64) + "\n")
    q = tmp_path / "q.jsonl"
    rep = analyze([str(tmp_path / "a.jsonl"), str(tmp_path / "b.jsonl")], ["model"], Options(quarantine=str(q)))
    assert (rep.accounting.priced, rep.accounting.duplicates, rep.accounting.quarantined) == (1, 0, 1)
    assert rep.totals["cost"] == cost(64) and len(q.read_text().splitlines()) == 1


def test_a_wide_and_a_slim_dedupe_agree(tmp_path, monkeypatch):
    # Few repeated ids hold their rows whole (pipeline._wide), many only slim keys: the same verdicts.
    from analyzer import pipeline

    lines = [copy(64, rid=f"r{i}", **({"model": ""} if i % 2 else {})) for i in range(6)]
    lines += [copy(64, rid=f"r{i}", **({} if i % 2 else {"service_tier": "gold"})) for i in range(6)]
    lines += [copy(50 + i, rid=f"u{i}") for i in range(200)]  # unique ids: few candidates, the wide path
    got = []
    for wide in (True, False):
        monkeypatch.setattr(pipeline, "_wide", lambda cands, loaded, w=wide: w)
        acc, totals, quarantined, _ = run(tmp_path, lines)
        got.append((acc.as_dict() | {"quarantine_file": None}, totals, quarantined))
    assert got[0] == got[1]
    acc = got[0][0]
    assert (acc["priced"], acc["duplicates"], acc["quarantined"]) == (206, 0, 6)
    assert got[0][1]["cost"] == 6 * cost(64) + sum(cost(50 + i) for i in range(200))


def test_a_claude_code_parent_without_a_model_leaves_its_sidechain_copy_priced(tmp_path):
    # The parent's line ranks first (a sidechain replay never beats its parent), but a parent its
    # model quarantines does not compete: the replay is priced, not counted a repeat.
    parent = json.loads(line("msg_01P", "req_011A"))
    parent["message"]["model"] = ""
    root = tree(tmp_path / "home", [json.dumps(parent)], [line("msg_01P", "req_011B", sidechain=True)])
    q = tmp_path / "q.jsonl"
    rep = analyze([root], ["model"], Options(quarantine=str(q)))
    acc = rep.accounting
    assert (acc.rows_read, acc.priced, acc.repeats, acc.quarantined) == (2, 1, 0, 1) and acc.balanced
    assert rep.totals["cost"] == PARENT
    assert [json.loads(x)["reason"] for x in q.read_text().splitlines()] == ["missing model"]


def test_the_store_keeps_the_valid_copy_on_one_night_and_across_nights(tmp_path):
    # One night: the bad copy first, as many tokens. Then a second night bringing a bad copy with more
    # tokens: quarantined there, it displaces nothing stored.
    n1 = tmp_path / "n1" / "a.jsonl"
    n1.parent.mkdir()
    n1.write_text(copy(64, model="") + "\n" + copy(64) + "\n")
    n2 = tmp_path / "n2" / "b.jsonl"
    n2.parent.mkdir()
    n2.write_text(copy(640, model="") + "\n")
    st = str(tmp_path / "store")
    first = store.ingest([str(n1)], st).files[0]
    assert (first.stored, first.accounting.priced, first.accounting.duplicates, first.accounting.quarantined) \
        == (1, 1, 0, 1)
    second = store.ingest([str(n2)], st).files[0]
    assert (second.stored, second.displaced, second.accounting.duplicates, second.accounting.quarantined) \
        == (0, 0, 0, 1)
    rep = store.report(st, ["model"])
    logs = analyze([str(n1), str(n2)], ["model"], Options(quarantine=str(tmp_path / "q.jsonl")))
    assert rep.totals == logs.totals and rep.totals["cost"] == cost(64)
    for k in ("rows_read", "priced", "duplicates", "quarantined"):
        assert getattr(rep.accounting, k) == getattr(logs.accounting, k), k
    assert (rep.accounting.priced, rep.accounting.quarantined) == (1, 2)

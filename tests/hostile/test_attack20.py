"""attack20: copies of multi-row records competing whole (blame3: dedupe.parents/rows_of/losers,
engine_spark._ranked, store._repeated, the whatif blame).

Tried, and held:
- Ties of record tokens (a response's copies splitting the same tokens differently between a Sonnet
  and a Haiku step): the copy read first wins whole, in either file order, Polars == Spark.
- A record of one row against its copy of three rows with the same total: a tie, the first wins whole.
- A copy with a blank-model step (quarantined whole) never displaces its valid twin, either order.
- A row id in two records (a response `msg_a` whose step is `msg_a#1`, and another record whose own
  id is `msg_a#1`): two records, both billed (they compete under their first rows' ids), balanced,
  `report` == the sum of `price` rows, Polars == Spark. (Row by row, before blame3, the later
  record lost to the step or not depending on file order.)
- A response of 1,000 steps and its copy of 999: the fuller copy billed whole, every step once.
- The store: a night of fuller (and of lesser) copies over data files written by 32d69cf (which
  already carry `requests`): displaced whole, `report --store` == `report` of the files.
- Replacing a file whose fuller copy had displaced a stored copy of one step, by content without
  the request, or with the lesser copy again: the stored copy comes back, totals as the files'.
- whatif with a scenario that cannot price a copy's step (a swap to Opus 4.5 before its price), the
  copies in one file or over two nights either way: the fuller copy unpriced whole, from the logs
  and from the store alike.
- `store compact` of nights of three-step records, then a night of fuller copies: the rows of a
  record stay consecutive (the forward fill of the repeat check), displaced whole (tried by hand).
- `report` of 1M Messages JSONL, 10% duplicate ids, 20% two-step responses (see the report of
  attack20): user CPU 8.9-9.2 s at 32d69cf, 9.2-9.3 s now; RSS 485-498 vs 516-539 MB.

What broke:
- Claude Code: one run's `result` saved twice with its modelUsage members in another order (the
  stream-json and json outputs of one run): each copy's record id was its first row's
  `<run>#<first model>`, so the copies no longer competed, and the run was billed twice (before
  blame3, row by row, each model's row was a repeat of the other copy's). Fixed: a result's
  members are taken in the models' order (claude_code_stream), so both copies are one record.
Fixed since (store5; strict xfails before):
- store `_restore` (a replaced file brings back the copies its earlier content had displaced)
  worked row by row, on the rows the earlier content held:
  * a displaced record of three rows came back without its third row (the earlier content had
    only two): tokens lost, `report --store` short of `report`;
  * the new content's copy, fuller as a record but with a smaller first row, lost its first row to
    the restored copy and kept its later step: a record mixed of two copies (2,400 vs 2,300 tokens);
  * the new content's copy holding an unknown step: the restored priced first row stayed beside the
    new copy's unpriced step, counted nowhere (unpriced_models {UNKNOWN: 0}).
  Now its copies are records, ranked by dedupe.losers. Found on the way: a replacing night's losing
  copies were kept out of order past 64K rows (a streamed join), a response's steps apart from its
  record row; kept in order now, and kept files written before are read by file and line.
"""

from __future__ import annotations

import json
from decimal import Decimal as D
from pathlib import Path

import polars as pl
import pytest

from analyzer import Options, analyze, price_requests, store

from .test_attack14 import BT, HAIKU, PLAIN, UNKNOWN, _k, _msg, _opts, _write

ROOT = Path(__file__).resolve().parents[2]


def _acc(rep) -> tuple:
    a = rep.accounting
    return a.priced, a.unpriced, a.duplicates, a.unpriced_models, rep.totals["input_tokens"], rep.totals["cost"]


def _priced_rows(paths, opts) -> tuple[int, D]:
    rows = price_requests(paths, opts)[0].lazy().collect()
    return rows["input_tokens"].sum(), rows["cost"].sum()


# Per 1M input tokens: Sonnet 4.5 $3, Haiku 4.5 $1.
# Two copies of msg_t, 1,500 tokens each: A = 1,000 Sonnet + 500 Haiku ($0.0035), B = 500 Sonnet +
# 1,000 Haiku ($0.0025). A tie: the copy read first is billed whole, the other one duplicate.
TIE_A, TIE_B = _msg("msg_t", [_k(1000), _k(500, HAIKU)]), _msg("msg_t", [_k(500), _k(1000, HAIKU)])
# One row of 1,500 Sonnet tokens ($0.0045) vs three rows 500 Sonnet + 500 Haiku + 500 Sonnet ($0.0035).
ONE, THREE = (_msg("msg_o", usage={"input_tokens": 1500, "output_tokens": 0}),
              _msg("msg_o", [_k(500), _k(500, HAIKU), _k(500)]))


@pytest.mark.parametrize("lines, cost", [
    ([TIE_A, TIE_B], D("0.0035")), ([TIE_B, TIE_A], D("0.0025")),
    ([ONE, THREE], D("0.0045")), ([THREE, ONE], D("0.0035")),
])
def test_a_tie_of_record_tokens_goes_to_the_copy_read_first_whole(tmp_path, lines, cost):
    logs, opts = _write(tmp_path / "in" / "t.jsonl", lines), _opts(tmp_path)
    rep = analyze([logs], ["model"], opts)
    assert _acc(rep) == (1, 0, 1, {}, 1500, cost)
    assert rep.accounting.balanced and _priced_rows([logs], opts) == (1500, cost)


# msg_b's copy with a blank step is quarantined whole; the valid copy ($0.003 + $0.001) is billed,
# whichever is larger or read first.
@pytest.mark.parametrize("blank_first", [False, True])
def test_a_quarantined_copy_never_displaces_its_valid_twin(tmp_path, blank_first):
    good, blank = _msg("msg_b", [_k(1000), _k(1000, HAIKU)]), _msg("msg_b", [_k(5000), _k(5, "  ")])
    logs, opts = _write(tmp_path / "in" / "b.jsonl", [blank, good] if blank_first else [good, blank]), _opts(tmp_path)
    rep = analyze([logs], ["model"], opts)
    assert _acc(rep) == (1, 0, 0, {}, 2000, D("0.004"))
    assert (rep.accounting.quarantined, rep.accounting.balanced) == (1, True)


# msg_a (Sonnet 1,000 + a Haiku step `msg_a#1` 1,000) and another record whose own id is `msg_a#1`
# (Sonnet 1,000): two records under two ids, both billed: $0.003 + $0.001 + $0.003, either order.
@pytest.mark.parametrize("order", [0, 1])
def test_a_row_id_in_two_records_is_two_records(tmp_path, order):
    pair = [_msg("msg_a", [_k(1000), _k(1000, HAIKU)]), _msg("msg_a#1", usage={"input_tokens": 1000, "output_tokens": 0})]
    logs, opts = _write(tmp_path / "in" / "r.jsonl", pair[::-1] if order else pair), _opts(tmp_path)
    rep = analyze([logs], ["model"], opts)
    assert _acc(rep) == (2, 0, 0, {}, 3000, D("0.007"))
    assert _priced_rows([logs], opts) == (3000, D("0.007"))


# A response of 1,000 Haiku steps of 1 token (plus its Sonnet first step of 1,000) and its copy without
# the last step: the fuller copy billed whole, whichever is read first: $0.003 + 999 x $0.000001.
@pytest.mark.parametrize("full_first", [False, True])
def test_a_response_of_a_thousand_steps_is_billed_once(tmp_path, full_first):
    full = _msg("msg_h", [_k(1000), *[_k(1, HAIKU)] * 999])
    short = _msg("msg_h", [_k(1000), *[_k(1, HAIKU)] * 998])
    logs, opts = _write(tmp_path / "in" / "h.jsonl", [full, short] if full_first else [short, full]), _opts(tmp_path)
    rep = analyze([logs], ["model"], opts)
    assert _acc(rep) == (1, 0, 1, {}, 1999, D("0.003999"))
    assert _priced_rows([logs], opts) == (1999, D("0.003999"))


def test_spark_agrees_on_ties_and_a_row_id_in_two_records(tmp_path):
    pytest.importorskip("pyspark")
    from analyzer import engine_spark
    from analyzer.writers import render

    lines = [TIE_B, TIE_A, _msg("msg_a", [_k(1000), _k(1000, HAIKU)]),
             _msg("msg_a#1", usage={"input_tokens": 1000, "output_tokens": 0}), THREE, ONE]
    paths = [_write(tmp_path / "in" / "a.jsonl", lines[:3]), _write(tmp_path / "in" / "b.jsonl", lines[3:])]
    session = engine_spark.session("local[2]")
    try:
        out = []
        for n, run in enumerate((analyze, engine_spark.analyze)):
            q = str(tmp_path / f"q{n}.jsonl")
            out.append(json.loads(render(run(paths, ["model"], Options(quarantine=q, batch_time=BT)), "json").replace(q, "")))
    finally:
        session.stop()
    assert out[0] == out[1]
    # TIE_B $0.0025 + msg_a and `msg_a#1` $0.007 + THREE $0.0035
    assert D(str(out[0]["totals"]["cost"])) == D("0.013")


# --- Claude Code: one run's result saved twice, its models in another order -----------------------

def test_a_run_result_with_its_models_in_another_order_is_billed_once(tmp_path):
    result = json.loads((ROOT / "fixtures" / "dialects" / "claude-code-stream" / "stream.jsonl").read_text().splitlines()[-1])
    swapped = dict(result, modelUsage=dict(reversed(list(result["modelUsage"].items()))))
    opts = Options(quarantine=str(tmp_path / "q.jsonl"), batch_time="2026-11-20T10:00:00Z")
    once = analyze([_write(tmp_path / "one" / "r.jsonl", [json.dumps(result)])], ["model"], opts)
    assert once.totals["cost"] == D("0.10459775")  # (the fixture's run, priced once)
    logs = _write(tmp_path / "two" / "r.jsonl", [json.dumps(result), json.dumps(swapped)])
    rep = analyze([logs], ["model"], opts)
    assert (rep.accounting.priced, rep.accounting.repeats) == (1, 1)
    assert rep.totals["cost"] == D("0.10459775")


# --- the store: a replaced file brings back the copies it had displaced -----------------------------

SHORT, FULL = _msg("msg_u", [_k(1000)]), _msg("msg_u", [_k(1000), _k(1000, HAIKU)])
OTHER = _msg("msg_o", usage={"input_tokens": 7, "output_tokens": 0})  # $0.000021


def _replaced(tmp_path: Path, first: list[str], second: list[str], again: list[str]):
    """Night 1 stores `first`; night 2's file `second` (FULL: it displaces night 1's copy of msg_u);
    that file is then replaced by `again`. The store's report and the report of both files."""
    st, opts = str(tmp_path / "st"), _opts(tmp_path)
    a = _write(tmp_path / "n0" / "a.jsonl", first)
    store.ingest([a], st, opts)
    b = _write(tmp_path / "n1" / "b.jsonl", second)
    assert store.ingest([b], st, opts).files[0].displaced == 1
    _write(tmp_path / "n1" / "b.jsonl", again)
    assert store.ingest([b], st, opts).files[0].status == "replaced"
    return store.report(st, ["model"]), analyze([a, b], ["model"], opts)


# Held: the stored copy comes back whole when the new content has no copy, or a lesser one.
@pytest.mark.parametrize("again, expected", [
    ([OTHER], (3, 0, 0, {}, 2007, D("0.006021"))),
    ([SHORT, OTHER], (3, 0, 1, {}, 2007, D("0.006021"))),
])
def test_a_replaced_file_brings_back_the_copy_it_displaced(tmp_path, again, expected):
    stored, logs = _replaced(tmp_path, [PLAIN, SHORT], [FULL], again)
    assert _acc(stored) == _acc(logs) == expected


def test_a_displaced_record_of_three_rows_comes_back_whole(tmp_path):
    # msg_u stored as 1,000 Sonnet + 100 + 100 Haiku, displaced by FULL, which is replaced by OTHER:
    # msg_p $0.003 + msg_u $0.003 + $0.0002 + msg_o $0.000021
    stored, logs = _replaced(tmp_path, [PLAIN, _msg("msg_u", [_k(1000), _k(100, HAIKU), _k(100, HAIKU)])], [FULL], [OTHER])
    assert _acc(logs) == (3, 0, 0, {}, 2207, D("0.006221"))
    assert _acc(stored) == _acc(logs)


def test_a_replacing_copy_fuller_as_a_record_is_stored_whole(tmp_path):
    # the new content's msg_u: 900 Sonnet + 400 Haiku (1,300 tokens) beats the stored SHORT (1,000):
    # msg_p $0.003 + $0.0027 + $0.0004
    stored, logs = _replaced(tmp_path, [PLAIN, SHORT], [FULL], [_msg("msg_u", [_k(900), _k(400, HAIKU)])])
    assert _acc(logs) == (2, 0, 1, {}, 2300, D("0.0061"))
    assert _acc(stored) == _acc(logs)


def test_a_replacing_copy_with_an_unknown_step_is_unpriced_whole(tmp_path):
    # the new content's msg_u, 1,000 Sonnet + 5 of an unknown model, is the fuller copy: unpriced whole
    stored, logs = _replaced(tmp_path, [PLAIN, SHORT], [FULL], [_msg("msg_u", [_k(1000), _k(5, UNKNOWN)])])
    assert _acc(logs) == (1, 1, 1, {UNKNOWN: 1}, 1000, D("0.003"))
    assert _acc(stored) == _acc(logs)
    assert pl.read_delta(str(tmp_path / "st")).filter(pl.col("request_id") == "msg_u")["cost"].to_list() == [None]



def _consecutive(st: str, sha: str) -> bool:
    """Whether the stored rows of file `sha` keep each response's steps right after its record row."""
    rows = pl.read_delta(st).filter(pl.col(store.SHA) == sha).select("request_id", "requests")
    record = rows["request_id"].str.replace(r"#\d+$", "")
    return bool(((rows["requests"] != 0) | (record == record.shift(1))).all())


def test_a_kept_file_out_of_order_still_brings_back_whole_records(tmp_path, monkeypatch):
    """A kept file written before its rows were kept in order (a streamed join wrote row groups in
    any order: a response's steps before its record row), here reversed by hand: each step is still
    its record's, by file and line, and the records come back whole, stored in order again. (That
    version noted no rows or bytes of its kept files, so the reversed file is not damage.)"""
    a_lines = [PLAIN, _msg("msg_u", [_k(1000), _k(100, HAIKU), _k(100, HAIKU)]), _msg("msg_v", [_k(500), _k(50, HAIKU)])]
    st, opts = str(tmp_path / "st"), _opts(tmp_path)
    a = _write(tmp_path / "n0" / "a.jsonl", a_lines)
    store.ingest([a], st, opts)
    b = _write(tmp_path / "n1" / "b.jsonl", [FULL, _msg("msg_v", [_k(500), _k(500, HAIKU)])])
    with monkeypatch.context() as m:
        m.setattr(store, "_kept_stats", lambda root, rels: "{}")
        assert store.ingest([b], st, opts).files[0].displaced == 2
    (kept,) = (tmp_path / "st" / "_llm_cost" / "displaced").iterdir()
    rows = pl.read_parquet(kept)
    assert rows.height == 5
    rows.reverse().write_parquet(kept)
    _write(tmp_path / "n1" / "b.jsonl", [OTHER])
    assert store.ingest([b], st, opts).files[0].restored == 2
    # msg_p $0.003, msg_u $0.003 + $0.0002, msg_v $0.0015 + $0.00005, msg_o $0.000021
    assert _acc(store.report(st, ["model"])) == _acc(analyze([a, b], ["model"], opts)) == (
        4, 0, 0, {}, 2757, D("0.007771"))
    assert _consecutive(st, store.sha256(a))


@pytest.mark.slow
def test_a_replacing_night_keeps_its_losing_copies_in_order(tmp_path):
    """A replacing ingest (through the spool) whose 66K rows of copies all lose: they are kept in the
    spool's order, each response's steps after its record row, across the spool's row groups (64K
    rows: response 21,845's record row ends the first, its steps begin the second). A streamed join
    wrote them in any order, and that response came back without its steps."""
    n = 22_000
    st, opts = str(tmp_path / "st"), _opts(tmp_path)
    a = _write(tmp_path / "a" / "a.jsonl", [_msg(f"msg_{i}", [_k(1000), _k(500, HAIKU), _k(1, HAIKU)]) for i in range(n)])
    b = _write(tmp_path / "b" / "b.jsonl", [OTHER])
    store.ingest([a], st, opts)
    store.ingest([b], st, opts)
    _write(tmp_path / "b" / "b.jsonl", [_msg(f"msg_{i}", [_k(1000), _k(100, HAIKU), _k(1, HAIKU)]) for i in range(n)])
    assert store.ingest([b], st, opts).files[0].accounting.duplicates == n
    (kept,) = (tmp_path / "st" / "_llm_cost" / "displaced").iterdir()
    assert pl.read_parquet(kept)["source_row"].is_sorted()
    _write(tmp_path / "a" / "a.jsonl", [PLAIN])
    assert store.ingest([a], st, opts).files[0].restored == n
    assert _acc(store.report(st, ["model"])) == _acc(analyze([b, a], ["model"], opts))
    assert _consecutive(st, store.sha256(b))


# --- whatif: a scenario leaving a step unpriced, with copies, from logs and from the store --------------

# msg_c's fuller copy (a Haiku step swapped to Opus 4.5 before its first price) wins whole over its
# copy without the step, in one file or across two nights either way: unpriced whole under the
# scenario, its baseline $0.003 + $0.001 in unpriced_baseline_cost; msg_p $0.003 compared.
@pytest.mark.parametrize("split", [None, (1, 2), (2, 1)])
def test_whatif_of_copies_with_an_unpriceable_step_from_logs_and_from_the_store(tmp_path, split):
    from analyzer import whatif

    from .test_attack14 import OPUS, TS, W_DAY

    lines = [x.replace(TS, W_DAY) for x in (PLAIN, _msg("msg_c", [_k(1000)]), _msg("msg_c", [_k(1000), _k(1000, HAIKU)]))]
    nights = [lines] if split is None else [[lines[0], lines[split[0]]], [lines[split[1]]]]
    files = [_write(tmp_path / f"n{i}" / "w.jsonl", n) for i, n in enumerate(nights)]
    st = str(tmp_path / "st")
    for f in files:
        store.ingest([f], st, _opts(tmp_path))
    scenario = whatif.Scenario(swaps=((HAIKU, OPUS),))
    out = [whatif.run(files, scenario, ["model"], _opts(tmp_path)),
           whatif.run([], scenario, ["model"], Options(), store_dir=st)]
    for w in out:
        s = w.scenario_accounting
        assert (w.accounting.priced, w.accounting.duplicates) == (2, 1)
        assert (s["compared"], s["unpriced"], s["unpriced_models"]) == (1, 1, {OPUS: 1})
        assert (w.totals["baseline_cost"], w.totals["scenario_cost"], w.totals["unpriced_baseline_cost"]) == (
            D("0.003"), D("0.003"), D("0.004"))


# --- the lead's merge: records of one JSON document ----------------------------------------------------

# Found by the Spark comparison of every dialect after the merge: a JSON document's records (CloudWatch's
# filter-log-events.json: an `events` array) share one line, so one row key. With any format of
# several-row records in the run, copies compete by record tokens, then summed by row key alone: each
# event of the document weighed the whole document's tokens, and its copies beat events.jsonl's, read
# first, on a tie. Summed per record (row key and record id), the first file's copies win.
@pytest.mark.parametrize("with_steps", [False, True])
def test_a_json_documents_records_weigh_their_own_tokens(tmp_path, with_steps):
    cloudwatch = ROOT / "fixtures" / "dialects" / "bedrock-cloudwatch"
    paths = [str(cloudwatch / "events.jsonl"), str(cloudwatch / "filter-log-events.json")]
    if with_steps:  # (a format whose records have several rows: records compete whole)
        paths.append(str(ROOT / "fixtures" / "dialects" / "anthropic-messages" / "responses.jsonl"))
    opts = Options(quarantine=str(tmp_path / "q.jsonl"), batch_time="2026-11-20T10:00:00Z")
    rows, acc = price_requests(paths, opts)
    rows = rows.lazy().collect()
    held = rows.filter(pl.col("source_file").str.contains("cloudwatch")).group_by("source_file").len()
    assert held.rows() == [(paths[0], 7)]  # (every copy in filter-log-events.json is events.jsonl's)
    assert acc.balanced

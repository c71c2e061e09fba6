"""Attacks on "a record with a step that cannot be priced is unpriced whole" (verdict2:
pipeline.unpriceable_keys / blamed_records / with_blame, _price_groups, row_pricing, engine_spark, the
store's STEP_UNPRICED reason parsing) and on "detection samples JSON keeping a repeated key's first
value" (sources.first_values / loads_first).

The rule: a response whose step (or a Claude Code result whose model) cannot be priced is unpriced
whole, counted once under that step's model; its other steps cost nothing; `report` is the sum of
`price` rows; every record in one bucket.

What held (checked by hand, or guarded below): the unknown step first, in the middle, last, or two of
them; a step priced only from a later date (price book, or an overlay's `from`); `--since` (a record's
steps share its time); `--by` model, component, day, hour, week, block, provider, family, `--top`,
`--tz`; `--format` json/csv/markdown/html/focus (FOCUS BilledCost = the report's cost); `price` in
slices of 2 rows, a blamed record across the edges; `check` budgets (the report's cost); service
tiers, geo and speed on a record's steps; Message Batches results (errored or canceled: not billable);
identical copies (one duplicate); a model name with parentheses, the reason's own words, upper case
and spaces; a null step model (it takes the response's); an unknown step with a bad count
(quarantined, not unpriced); the Spark engine on five of these runs (reports and `price` bytes equal,
the defects below included: both engines agree on them); detection of a key named twice at any depth
(a response's type, model, usage, iterations, a step's model, a stream event's type; LiteLLM's JSON
metadata column in CSV, fast and robust). The extra pass's cost: 400K responses (89 MB) with one
unknown model, `report` 2.48-2.82 user CPU s against 2.22-2.53 without it (6 interleaved pairs).

What broke:
- `store reprice` priced a stored request row by row: the known steps of a request unpriced whole got
  their money back, the request counted priced, its unknown step counted nowhere. Fixed (store._blamed).
- A model name holding a line break: the store's reason pattern did not match it, and the request was
  counted under its first row's model. Fixed (`(?s)`).
- Two copies of one response, the first without the unknown step (or a stream whose earlier
  message_delta lists the steps before the advisor's): the first copy's first row won, the later
  copy's step was no copy of anything and stayed, unpriced and counted nowhere (0 unpriced, exit 0
  under --strict); the same across two nights of a store. Fixed: copies of a record compete whole,
  with all their steps' tokens (dedupe.losers, engine_spark._ranked, store._repeated).
- `whatif`: a scenario that cannot price a later step (a swap to a model not yet priced then) left
  that step out of both costs with the request "compared" and 0 unpriced. Fixed
  (pipeline.with_scenario_blame: the scenario's side has the report's rule).
- A label check (a blank model) on one step was not one verdict per record: a blank first step
  quarantined the record but its later steps were priced; a blank later step vanished. Fixed.
"""

from __future__ import annotations

import json
from decimal import Decimal as D
from pathlib import Path

import polars as pl
import pytest
from click.testing import CliRunner

from analyzer import Options, analyze, price_requests, store
from analyzer.cli import main

SONNET, HAIKU = "claude-sonnet-4-5-20250929", "claude-haiku-4-5-20251001"
OPUS = "claude-opus-4-5-20251101"
UNKNOWN = "claude-nonexistent-9"
BT = "2026-10-08T00:00:00Z"
TS = "2026-10-06T00:00:00Z"
STEP = "not priced: another part of its request cannot be priced ({})"


def _msg(mid: str, steps: list[dict] | None = None, usage: dict | None = None, ts: str | None = TS) -> str:
    """A Messages response (Sonnet 4.5), with `steps` as its usage.iterations."""
    u = dict(usage or {"input_tokens": 0, "output_tokens": 0})
    if steps is not None:
        u["iterations"] = [{"type": "message", **s} for s in steps]
    d = {"id": mid, "type": "message", "role": "assistant", "model": SONNET, "content": [], "usage": u}
    return json.dumps({"timestamp": ts, **d} if ts else d)


def _k(i: int, model: str | None = None) -> dict:
    return {**({"model": model} if model else {}), "input_tokens": i, "output_tokens": 0}


def _write(path: Path, lines: list[str]) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(x + "\n" for x in lines))
    return str(path)


def _opts(tmp_path: Path, **kw) -> Options:
    return Options(quarantine=str(tmp_path / "q.jsonl"), batch_time=BT, **kw)


# Per 1M tokens: Sonnet 4.5 $3 in, Haiku 4.5 $1 in.
PLAIN = _msg("msg_p", usage={"input_tokens": 1000, "output_tokens": 0})  # $0.003
BLAMED = _msg("msg_r", [_k(1000), _k(500, UNKNOWN)])  # unpriced whole
CLEAN = _msg("msg_c", [_k(1000), _k(1000, HAIKU)])  # $0.003 + $0.001


def _summary(rep) -> tuple:
    a = rep.accounting
    return a.priced, a.unpriced, a.unpriced_models, rep.totals["input_tokens"], rep.totals["cost"]


# --- what held ------------------------------------------------------------------------------------

BROKEN = '{"id": "msg_x", "type": "message", "usage": {"input_tokens": tru}}'  # forces the robust reading
HELD = [
    PLAIN,
    _msg("msg_m", [_k(100), _k(5, UNKNOWN), _k(7, HAIKU)]),  # the unknown step in the middle: unpriced whole
    # an unknown step and a bad count: quarantined (its verdict comes first), not unpriced
    _msg("msg_q", [_k(100), _k(5, UNKNOWN), {"input_tokens": "1.5", "output_tokens": 0}]),
    CLEAN,
]


@pytest.mark.parametrize("broken", [False, True], ids=["fast", "robust"])
def test_a_middle_step_and_a_quarantined_record_with_an_unknown_step(tmp_path, monkeypatch, broken):
    from analyzer import sources, writers

    logs = _write(tmp_path / "in" / "h.jsonl", HELD + [BROKEN] * broken)
    opts = _opts(tmp_path)
    for by in (["model"], ["component"], ["day"]):
        rep = analyze([logs], by, opts)
        assert _summary(rep) == (2, 1, {UNKNOWN: 1}, 3000, D("0.007")), by
        assert (rep.accounting.quarantined, rep.accounting.balanced) == (1 + broken, True)
    whole, acc = price_requests([logs], opts)
    whole = whole.lazy().collect()
    assert acc.as_dict() == rep.accounting.as_dict()
    assert whole.select("request_id", "unpriced_reason").rows() == [
        ("msg_p", None), ("msg_m", STEP.format(UNKNOWN)), ("msg_m#1", f"unknown model: {UNKNOWN}"),
        ("msg_m#2", STEP.format(UNKNOWN)), ("msg_c", None), ("msg_c#1", None)]
    # priced in slices of 2 rows: a blamed record spans slice edges, its rows keep their verdict
    monkeypatch.setattr(writers, "SLICE_ROWS", 2)
    monkeypatch.setattr(writers, "FIRST_SLICE_ROWS", 2)
    monkeypatch.setattr(sources, "PIECE_BYTES", 150)
    heights, append = [], writers._Appender.append
    monkeypatch.setattr(writers._Appender, "append", lambda self, f: (heights.append(f.height), append(self, f))[1])
    rows, _ = price_requests([logs], opts)
    writers.sink_rows(rows, "parquet", str(tmp_path / "sliced.parquet"))
    assert pl.read_parquet(tmp_path / "sliced.parquet").equals(whole)
    if not broken:  # (sliced indeed; the robust reading of this format is written whole)
        assert len(heights) > 3 and sum(heights) == whole.height, heights


# --- store reprice --------------------------------------------------------------------------------

# `reprice` priced every stored row again on its own: msg_r's Sonnet step, stored unpriced (STEP), came
# back at $0.003, the request counted priced and its unknown step in no bucket ({UNKNOWN: 0}), while a
# report from the same logs counts it unpriced. Now a stored request of several rows is priced whole.
def test_reprice_keeps_a_request_with_an_unpriceable_step_unpriced_whole(tmp_path):
    logs = _write(tmp_path / "in" / "n.jsonl", [PLAIN, BLAMED, CLEAN])
    st = str(tmp_path / "st")
    store.ingest([logs], st, _opts(tmp_path))
    before = pl.read_delta(st).sort("request_id")
    store.reprice(st, Options())
    after = pl.read_delta(st).sort("request_id")
    cols = ["request_id", "model_raw", "cost", "unpriced_reason"]
    assert after.select(cols).rows() == before.select(cols).rows()
    assert after.filter(pl.col("request_id") == "msg_r")["unpriced_reason"].item() == STEP.format(UNKNOWN)
    expected = (2, 1, {UNKNOWN: 1}, 3000, D("0.007"))
    assert _summary(store.report(st, ["model"])) == _summary(analyze([logs], ["model"], _opts(tmp_path))) == expected


# An overlay that prices the unknown model from 2026-10-05: records of 10-06 are priced whole by
# reprice, as by a report with the overlay ($0.003 + 500 x $1 per million); of 10-01, still unpriced.
@pytest.mark.parametrize("day, expected", [("2026-10-06", (3, 0, {}, 4500, D("0.0105"))),
                                           ("2026-10-01", (2, 1, {UNKNOWN: 1}, 3000, D("0.007")))])
def test_reprice_with_an_overlay_prices_the_request_whole_from_its_date(tmp_path, day, expected):
    overlay = tmp_path / "ov.toml"
    overlay.write_text(f'[[model]]\nid = "{UNKNOWN}"\n[[model.period]]\nfrom = 2026-10-05\ninput = 1\noutput = 2\n')
    logs = _write(tmp_path / "in" / "n.jsonl", [x.replace(TS, f"{day}T00:00:00Z") for x in (PLAIN, BLAMED, CLEAN)])
    st = str(tmp_path / "st")
    store.ingest([logs], st, _opts(tmp_path))
    store.reprice(st, Options(prices=(str(overlay),)))
    logs_report = analyze([logs], ["model"], _opts(tmp_path, prices=(str(overlay),)))
    assert _summary(store.report(st, ["model"])) == _summary(logs_report) == expected
    if day == "2026-10-01":
        rows = pl.read_delta(st).filter(pl.col("request_id").str.starts_with("msg_r")).sort("request_id")
        assert rows["unpriced_reason"].to_list() == [STEP.format(UNKNOWN), f"no price for {UNKNOWN} before 2026-10-05"]


# --- the store's reason pattern -------------------------------------------------------------------

# The stored reason of msg_n's first row names the unknown model; a name holding a line break did not
# match the pattern (`.` stops at a line break), so the store counted the request under Sonnet.
@pytest.mark.parametrize("model", ["evil\nmodel", "x (not priced: y)"])
def test_the_store_counts_a_request_under_a_model_name_with_a_line_break(tmp_path, model):
    logs = _write(tmp_path / "in" / "n.jsonl", [PLAIN, _msg("msg_n", [_k(100), _k(5, model)])])
    st = str(tmp_path / "st")
    ingested = store.ingest([logs], st, _opts(tmp_path))
    stored, from_logs = store.report(st, ["model"]), analyze([logs], ["model"], _opts(tmp_path))
    for a in (stored.accounting, from_logs.accounting, ingested.files[0].accounting):
        assert (a.priced, a.unpriced, a.unpriced_models) == (1, 1, {model: 1}), a
    assert stored.totals == from_logs.totals and stored.totals["cost"] == D("0.003")


# --- duplicates: copies of one response that differ in their steps ---------------------------------

def _copies(tmp_path: Path, first: str, second: str) -> tuple[str, Options]:
    return _write(tmp_path / "in" / "d.jsonl", [PLAIN, first, second]), _opts(tmp_path)


SHORT = _msg("msg_u", [_k(1000)])  # a copy of msg_u logged without its advisor step
FULL = _msg("msg_u", [_k(1000), _k(500, UNKNOWN)])


# The copies' first rows tie (1,000 tokens): the copy read first wins. With FULL first, msg_u is unpriced
# whole (held). With SHORT first, SHORT's row is priced and FULL's later step (`msg_u#1`) is no copy of
# anything (dedupe.lost names a later row by record and id), so it stays: unpriced, in a record that is
# a losing copy, counted nowhere; unpriced_models {UNKNOWN: 0}, exit 0 under --strict. blamed_records
# blames FULL's record key, never the winning copy's.
@pytest.mark.parametrize("order", ["full-first", "short-first"])
def test_copies_of_a_response_with_an_unknown_step_count_it_once(tmp_path, order):
    logs, opts = _copies(tmp_path, *((FULL, SHORT) if order == "full-first" else (SHORT, FULL)))
    rep = analyze([logs], ["model"], opts)
    rows, acc = price_requests([logs], opts)
    rows = rows.lazy().collect()
    a = rep.accounting
    assert (a.priced, a.unpriced, a.duplicates, a.unpriced_models) == (1, 1, 1, {UNKNOWN: 1})
    assert (rep.totals["input_tokens"], rep.totals["cost"]) == (1000, D("0.003"))  # msg_p alone
    assert rows.filter(pl.col("cost").is_not_null())["request_id"].to_list() == ["msg_p"]
    assert acc.as_dict() == a.as_dict()


# A stream (SSE events as JSON lines) whose first message_delta lists the steps so far and a later one
# the advisor step too: both deltas outrank message_start, their first rows tie, the first delta's wins
# and msg_s is priced ($0.003075) while the advisor step of the later delta is counted nowhere (0
# unpriced, --strict exit 0). With the later delta alone, msg_s is unpriced whole (held).
def _stream(*deltas: list[dict]) -> list[str]:
    start = {"type": "message_start", "message": {"id": "msg_s", "type": "message", "role": "assistant",
                                                  "model": SONNET, "content": [],
                                                  "usage": {"input_tokens": 1000, "output_tokens": 1}}}
    events = [{"type": "message_delta", "delta": {"stop_reason": None},
               "usage": {"output_tokens": 5, "iterations": [{"type": "message", **s} for s in steps]}}
              for steps in deltas]
    return [json.dumps(e) for e in (start, *events, {"type": "message_stop"})]


@pytest.mark.parametrize("deltas", ["final", "cumulative"])
def test_a_streamed_response_with_an_unknown_step_is_unpriced_whole(tmp_path, deltas):
    first, advisor = {"input_tokens": 1000, "output_tokens": 5}, {"model": UNKNOWN, "input_tokens": 500,
                                                                    "output_tokens": 0}
    steps = [[first, advisor]] if deltas == "final" else [[first], [first, advisor]]
    logs = _write(tmp_path / "in" / "s.jsonl", _stream(*steps))
    result = CliRunner().invoke(main, ["report", logs, "--batch-time", BT, "--strict", "-q", "--format", "json",
                                       "--quarantine", str(tmp_path / "q.jsonl")])
    a = json.loads(result.stdout)["accounting"]
    assert (a["priced"], a["unpriced"], a["unpriced_models"]) == (0, 1, {UNKNOWN: 1})
    assert result.exit_code == 1


# Copies compete as records, with all their steps' tokens (dedupe.losers): the copy with the advisor
# step is the fuller one, billed whole, whichever was read first; the other is one duplicate. Priced:
# msg_p $0.003 + msg_u's Sonnet step 1,000 x $3/M + its Haiku step 1,000 x $1/M = $0.007.
@pytest.mark.parametrize("order", ["full-first", "short-first"])
def test_the_fuller_copy_of_a_response_is_billed_whole(tmp_path, order):
    full = _msg("msg_u", [_k(1000), _k(1000, HAIKU)])
    logs, opts = _copies(tmp_path, *((full, SHORT) if order == "full-first" else (SHORT, full)))
    rep = analyze([logs], ["model"], opts)
    a = rep.accounting
    assert (a.priced, a.unpriced, a.duplicates, a.balanced) == (2, 0, 1, True)
    assert (rep.totals["input_tokens"], rep.totals["cost"]) == (3000, D("0.007"))
    rows = price_requests([logs], opts)[0].lazy().collect()
    assert rows.select("request_id", "cost").rows() == [
        ("msg_p", D("0.003")), ("msg_u", D("0.003")), ("msg_u#1", D("0.001"))]
    # a third copy, of the first step alone, logged later: still one bill, two duplicates
    logs = _write(tmp_path / "in" / "d.jsonl", [PLAIN, SHORT, full, SHORT])
    a = analyze([logs], ["model"], opts).accounting
    assert (a.priced, a.duplicates, a.balanced) == (2, 2, True)


def test_spark_agrees_on_copies_that_differ_in_their_steps(tmp_path):
    pytest.importorskip("pyspark")
    from analyzer import engine_spark
    from analyzer.writers import render, sink_rows

    paths = [_write(tmp_path / "in" / "d.jsonl", [PLAIN, SHORT, FULL, CLEAN, _msg("msg_c", [_k(1000)])]),
             _write(tmp_path / "in" / "s.jsonl", _stream([{"input_tokens": 1000, "output_tokens": 5}],
                                                          [{"input_tokens": 1000, "output_tokens": 5},
                                                           {"model": UNKNOWN, "input_tokens": 500, "output_tokens": 0}]))]
    session = engine_spark.session("local[2]")
    try:
        reports, priced = [], []
        for n, run in enumerate((analyze, engine_spark.analyze)):
            opts = Options(quarantine=str(tmp_path / f"q{n}.jsonl"), batch_time=BT)
            reports.append(json.loads(render(run(paths, ["model"], opts), "json").replace(str(tmp_path / f"q{n}.jsonl"), "")))
        rows, _ = price_requests(paths, _opts(tmp_path))
        sink_rows(rows, "csv", str(tmp_path / "polars.csv"))
        engine_spark.price(paths, str(tmp_path / "spark.csv"), "csv", _opts(tmp_path))
        priced = [(tmp_path / f"{e}.csv").read_text() for e in ("polars", "spark")]
    finally:
        session.stop()
    assert reports[0] == reports[1] and priced[0] == priced[1]
    a = reports[0]["accounting"]
    # msg_u and msg_s unpriced whole (the fuller copies), msg_c's fuller copy priced: $0.003 + $0.004;
    # the shorter copies of msg_u and msg_c are duplicates (the stream's earlier events: repeats)
    assert (a["priced"], a["unpriced"], a["duplicates"], a["unpriced_models"]) == (2, 2, 2, {UNKNOWN: 2})
    assert D(str(reports[0]["totals"]["cost"])) == D("0.007")


# The same two copies on two nights of a store: the stored SHORT copy keeps its place (a tie), and
# FULL's later step is stored beside it, counted nowhere.
def test_a_later_nights_copy_with_an_unknown_step_is_counted_once_in_the_store(tmp_path):
    st = str(tmp_path / "st")
    for n, lines in enumerate([[PLAIN, SHORT], [FULL]]):
        store.ingest([_write(tmp_path / f"n{n}" / "a.jsonl", lines)], st, _opts(tmp_path))
    a = store.report(st, ["model"]).accounting
    assert (a.priced, a.unpriced, a.unpriced_models) == (1, 1, {UNKNOWN: 1})


# A night's fuller copy (with a priced Haiku step) replaces the stored one whole, and a night's lesser
# copy is a duplicate of the fuller stored one: either order, the report of both files' rows: msg_p
# $0.003 + msg_u's 1,000 Sonnet tokens $0.003 + its 1,000 Haiku tokens $0.001, one duplicate.
@pytest.mark.parametrize("order", ["short-stored", "full-stored"])
def test_the_store_keeps_the_fuller_copy_of_a_response_whole(tmp_path, order):
    full = _msg("msg_u", [_k(1000), _k(1000, HAIKU)])
    nights = [[PLAIN, SHORT], [full]] if order == "short-stored" else [[PLAIN, full], [SHORT]]
    st, files = str(tmp_path / "st"), []
    for n, lines in enumerate(nights):
        files.append(_write(tmp_path / f"n{n}" / "a.jsonl", lines))
        store.ingest([files[-1]], st, _opts(tmp_path))
    rep = store.report(st, ["model"])
    a = rep.accounting
    assert (a.priced, a.unpriced, a.duplicates) == (2, 0, 1)
    assert (rep.totals["input_tokens"], rep.totals["cost"]) == (3000, D("0.007"))
    assert _summary(rep) == _summary(analyze(files, ["model"], _opts(tmp_path)))
    rows = pl.read_delta(st).filter(pl.col("request_id").str.starts_with("msg_u")).sort("request_id")
    assert rows.select("request_id", "cost").rows() == [("msg_u", D("0.003")), ("msg_u#1", D("0.001"))]


# --- whatif: a scenario that cannot price one step of a request ---------------------------------------

# msg_c's Haiku step swapped to Opus 4.5 on 2025-11-01, before Opus 4.5's first price: the scenario
# cannot price that step. whatif prices groups, not records: the step (no record of its own) was left
# out of both costs while msg_c was "compared" on its Sonnet step alone, with 0 unpriced, no note, and
# scenario_accounting naming Opus with 0 rows. Fixed: grouped again with such records found
# (pipeline.with_scenario_blame), msg_c is unpriced whole under the scenario, out of both costs; its
# baseline cost ($0.003 + $0.001) is `unpriced_baseline_cost`. Logs, the store, and Spark agree.
W_DAY = "2025-11-01T00:00:00Z"


def _whatif_checked(w) -> None:
    assert (w.accounting.priced, w.accounting.unpriced) == (2, 0)  # the baseline prices both
    s = w.scenario_accounting
    assert (s["compared"], s["unpriced"], s["unpriced_models"]) == (1, 1, {OPUS: 1})
    assert s["unpriced_reasons"][OPUS].startswith(f"no price for {OPUS} before ")
    assert w.totals["baseline_cost"] == w.totals["scenario_cost"] == D("0.003")  # msg_p alone
    assert (w.totals["requests"], w.totals["unpriced_requests"], w.totals["unpriced_baseline_cost"]) == (
        2, 1, D("0.004"))


def test_a_scenario_that_cannot_price_a_step_leaves_its_request_out(tmp_path):
    from analyzer import whatif

    logs = _write(tmp_path / "in" / "w.jsonl", [x.replace(TS, W_DAY) for x in (PLAIN, CLEAN)])
    _whatif_checked(whatif.run([logs], whatif.Scenario(swaps=((HAIKU, OPUS),)), ["model"], _opts(tmp_path)))
    st = str(tmp_path / "st")
    store.ingest([logs], st, _opts(tmp_path))
    _whatif_checked(whatif.run([], whatif.Scenario(swaps=((HAIKU, OPUS),)), ["model"], Options(), store_dir=st))
    # --where on another day: the scenario applies to no request, and nothing is left out
    w = whatif.run([logs], whatif.Scenario(swaps=((HAIKU, OPUS),), where=(("day", "2025-11-02"),)), ["model"],
                   _opts(tmp_path))
    assert (w.scenario_accounting["unpriced"], w.totals["scenario_cost"]) == (0, D("0.007"))


def test_spark_agrees_on_a_scenario_that_cannot_price_a_step(tmp_path):
    pytest.importorskip("pyspark")
    from analyzer import engine_spark, whatif

    logs = _write(tmp_path / "in" / "w.jsonl", [x.replace(TS, W_DAY) for x in (PLAIN, CLEAN, BLAMED)])
    scenario = whatif.Scenario(swaps=((HAIKU, OPUS),))
    session = engine_spark.session("local[2]")
    try:
        out = [whatif.as_dict(whatif.run([logs], scenario, ["model"], _opts(tmp_path), analyze_groups=run))
               for run in (None, engine_spark.analyze_groups)]
    finally:
        session.stop()
    assert out[0] == out[1]
    assert out[0]["scenario_accounting"]["unpriced_models"] == {OPUS: 1}


# --- a label check on one step -----------------------------------------------------------------------

# labels.apply_to_rows folded its checks (a blank model: "missing model") into `_ok` row by row, after
# the dialect's one_verdict_per_record: a blank first step quarantined the record (counted once) and
# its later Sonnet step (100 tokens, $0.0003) was priced in the totals of no request; a blank later step
# was quarantined as a row of no record, its 5 tokens in no bucket. Fixed (lead): one_verdict_per_record
# judges each row's labels too (labels.row_checks). A step without a `model` key is the response's
# model's (priced: test_a_step_without_a_model_key_is_the_responses_model).
@pytest.mark.parametrize("steps", [[_k(5, "  "), _k(100)], [_k(100), _k(5, "  ")],
                                   [_k(100), {"model": "", "input_tokens": 5, "output_tokens": 0}]],
                         ids=["first", "later", "empty"])
def test_a_blank_model_on_one_step_quarantines_its_record(tmp_path, steps):
    logs = _write(tmp_path / "in" / "b.jsonl", [PLAIN, _msg("msg_b", steps)])
    opts = _opts(tmp_path)
    rep = analyze([logs], ["model"], opts)
    a = rep.accounting
    assert (a.priced, a.quarantined) == (1, 1)
    assert (rep.totals["input_tokens"], rep.totals["cost"]) == (1000, D("0.003"))
    written = [json.loads(x) for x in (tmp_path / "q.jsonl").read_text().splitlines()]
    assert [(w["line"], w["reason"]) for w in written] == [(2, "missing model")]


# A Claude Code run's result, one row per model of modelUsage (its first row's request count unknown,
# null; the next 0): Haiku replaced by an unknown model, ingested and re-priced, stays unpriced whole.
def test_reprice_keeps_a_run_result_with_an_unknown_model_unpriced_whole(tmp_path):
    stream = Path(__file__).resolve().parents[2] / "fixtures" / "dialects" / "claude-code-stream" / "stream.jsonl"
    lines = stream.read_text().splitlines()
    assert HAIKU in lines[-1]
    logs = _write(tmp_path / "in" / "run.jsonl", [*lines[:-1], lines[-1].replace(HAIKU, UNKNOWN)])
    opts = Options(quarantine=str(tmp_path / "q.jsonl"), batch_time="2026-11-20T10:00:00Z")
    st = str(tmp_path / "st")
    store.ingest([logs], st, opts)
    store.reprice(st, Options())
    rows = pl.read_delta(st).filter(pl.col("unpriced_reason").is_not_null() | pl.col("cost").is_not_null())
    assert rows.select("model_raw", "cost", "unpriced_reason").sort("model_raw").rows() == [
        ("claude-nonexistent-9", None, f"unknown model: {UNKNOWN}"),
        ("claude-opus-4-5-20251101", None, STEP.format(UNKNOWN))]
    assert _summary(store.report(st, ["model"]))[:3] == (0, 1, {UNKNOWN: 1})


@pytest.mark.parametrize("torn", [False, True], ids=["fast", "robust"])
def test_a_blank_step_quarantines_its_record_on_either_reading(tmp_path, torn):
    """The same verdict when the file is read robustly (a torn line beside it)."""
    lines = [PLAIN, _msg("msg_b", [_k(100), _k(5, "  ")])] + (['{"id": "torn", "type": "mess'] if torn else [])
    rep = analyze([_write(tmp_path / "in" / "b.jsonl", lines)], ["model"], _opts(tmp_path))
    a = rep.accounting
    assert (a.priced, a.quarantined) == (1, 1 + torn)
    assert (rep.totals["input_tokens"], rep.totals["cost"]) == (1000, D("0.003"))
    written = [json.loads(x) for x in (tmp_path / "q.jsonl").read_text().splitlines()]
    assert [(w["line"], w["reason"]) for w in written][0] == (2, "missing model")


def test_a_step_without_a_model_key_is_the_responses_model(tmp_path):
    """usage.iterations entries of the response's own model need not name it: priced as the response's."""
    rep = analyze([_write(tmp_path / "in" / "b.jsonl", [_msg("msg_b", [_k(100), _k(5)])])], ["model"], _opts(tmp_path))
    a = rep.accounting
    assert (a.priced, a.quarantined) == (1, 0)
    # Sonnet 4.5 at $3/MTok input: 105 x 3 / 1e6
    assert (rep.totals["input_tokens"], rep.totals["cost"]) == (105, D("0.000315"))

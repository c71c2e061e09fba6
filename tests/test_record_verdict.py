"""One bad row quarantines every row of its record (dialects/mapped.one_verdict_per_record).

A format may read one record as several rows: a Messages response's steps (`usage.iterations`), a
Claude Code run's result (one row per model of `modelUsage`). The accounting counts records (their first
rows, `_rec`), so a bad later row alone was counted nowhere, written to no quarantine file, and its
record priced without it (exit 0); a bad first row quarantined the record but left its later rows
priced. Now the record is quarantined once, with its first bad row's reason, written once (with its
line), and none of its rows is priced: in `report`, `price`, the store and on both reading paths.

By hand (per 1M tokens): Sonnet 4.5 $3 in, $15 out; Haiku 4.5 $1 in, $5 out (base context tier).
"""

from __future__ import annotations

import json
from decimal import Decimal as D
from pathlib import Path

import polars as pl
import pytest

from analyzer import Options, analyze, price_requests, store

SONNET, HAIKU = "claude-sonnet-4-5-20250929", "claude-haiku-4-5-20251001"
OPUS = "claude-opus-4-5-20251101"
BT = "2026-10-08T00:00:00Z"
BROKEN = '{"id": "msg_x", "type": "message", "usage": {"input_tokens": tru}}'  # forces the robust reading
UNREADABLE = "not a JSON object (unparsable line)"


def _message(mid: str, usage: dict) -> str:
    return json.dumps({"id": mid, "type": "message", "role": "assistant", "model": SONNET,
                       "content": [{"type": "text", "text": "hi"}], "usage": usage})


def _stepped(mid: str, steps: list[str]) -> str:
    """A response whose steps' usage is written as given (a count may be a bad number: `1.5`)."""
    its = ", ".join('{"type": "message", ' + s + "}" for s in steps)
    return _message(mid, {"input_tokens": 0, "output_tokens": 0, "iterations": ["STEPS"]}).replace('["STEPS"]',
                                                                                                   f"[{its}]")


PLAIN = _message("msg_a", {"input_tokens": 1000, "output_tokens": 0})  # $0.003
# Two clean steps, the second on another model: 500 x 3 + 50 x 15 = $0.00225; 1,000 x 1 + 200 x 5 = $0.002
CLEAN = _stepped("msg_c", ['"input_tokens": 500, "output_tokens": 50',
                           f'"model": "{HAIKU}", "input_tokens": 1000, "output_tokens": 200'])

BAD_STEPS = {  # record b's steps, and the reason it is quarantined with (its first bad row's)
    "later": (['"input_tokens": 4, "output_tokens": 0', '"input_tokens": 1.5, "output_tokens": 0'],
              "input_tokens is not a whole number (1.5)"),
    "first": (['"input_tokens": 1.5, "output_tokens": 0', '"input_tokens": 2, "output_tokens": 0'],
              "input_tokens is not a whole number (1.5)"),
    # two bad steps after a good one: one quarantine line, the second step's reason (not the third's)
    "two": (['"input_tokens": 4, "output_tokens": 0', '"input_tokens": 5, "output_tokens": 2.5',
             '"input_tokens": -4, "output_tokens": 0'], "output_tokens is not a whole number (2.5)"),
    "large": (['"input_tokens": 4, "output_tokens": 0', '"input_tokens": 5000000000000, "output_tokens": 0'],
              "input_tokens is implausibly large (5000000000000)"),
}


def _run(tmp_path: Path, lines: list[str]):
    """(report, its per-request rows, their accounting, the quarantine file's (line, reason, raw))."""
    path = tmp_path / "m.jsonl"
    path.write_text("".join(x + "\n" for x in lines))
    opts = Options(quarantine=str(tmp_path / "q.jsonl"), batch_time=BT)
    report = analyze([str(path)], ["model"], opts)
    q = tmp_path / "q.jsonl"
    written = [json.loads(x) for x in q.read_text().splitlines()] if q.exists() else []
    q.unlink(missing_ok=True)
    priced, acc = price_requests([str(path)], opts)
    rows = priced.lazy().collect()
    again = [json.loads(x) for x in q.read_text().splitlines()] if q.exists() else []
    assert [(r["line"], r["reason"]) for r in again] == [(r["line"], r["reason"]) for r in written]
    return report, rows, acc, [(r["line"], r["reason"], r["raw"]) for r in written]


def _agree(report, rows, acc) -> None:
    """`report` totals are the sum of `price` rows, and both balance the same accounting."""
    assert acc.as_dict() == report.accounting.as_dict() and acc.balanced
    for c in ("requests", "input_tokens", "output_tokens"):
        assert report.totals[c] == rows[c].sum(), c
    assert report.totals["cost"] == sum(rows["cost"].to_list(), D(0))


@pytest.mark.parametrize("broken", [False, True], ids=["fast", "robust"])
@pytest.mark.parametrize("case", BAD_STEPS)
def test_a_bad_step_quarantines_its_whole_record_once(tmp_path, case, broken):
    steps, reason = BAD_STEPS[case]
    report, rows, acc, written = _run(tmp_path, [PLAIN, _stepped("msg_b", steps), CLEAN] + [BROKEN] * broken)
    a = report.accounting
    # records: a and c priced, b quarantined (and the broken line); no step of b priced
    assert (a.rows_read, a.priced, a.quarantined) == (3 + broken, 2, 1 + broken)
    assert (report.totals["requests"], report.totals["input_tokens"], report.totals["output_tokens"]) == (2, 2500, 250)
    assert report.totals["cost"] == D("0.003") + D("0.00225") + D("0.002")
    assert [(line, why) for line, why, _ in written] == [(2, reason)] + [(4, UNREADABLE)] * broken
    assert '"id": "msg_b"' in written[0][2]  # the record as written
    assert rows["request_id"].to_list() == ["msg_a", "msg_c", "msg_c#1"]
    assert rows["cost"].to_list() == [D("0.003"), D("0.00225"), D("0.002")]
    _agree(report, rows, acc)


def test_the_fast_and_the_robust_reading_give_one_verdict(tmp_path):
    bad = [_stepped(f"msg_{k}", steps) for k, (steps, _) in BAD_STEPS.items()]
    (tmp_path / "f").mkdir()
    (tmp_path / "r").mkdir()
    fast = _run(tmp_path / "f", [PLAIN, *bad, CLEAN])
    robust = _run(tmp_path / "r", [PLAIN, *bad, CLEAN, BROKEN])
    assert fast[0].totals == robust[0].totals and fast[0].totals["input_tokens"] == 2500
    assert [(line, why) for line, why, _ in fast[3]] == [(2 + i, why) for i, (_, why) in enumerate(BAD_STEPS.values())]
    assert fast[3] == robust[3][:-1] and robust[3][-1][:2] == (7, UNREADABLE)


# Several files: a record's rows are judged with their own record's, never with the rows beside them
# from the file before (each file ends with a clean record of two steps here).
@pytest.mark.parametrize("broken", [False, True], ids=["fast", "robust"])
def test_records_in_several_files_keep_their_own_verdicts(tmp_path, broken):
    logs = tmp_path / "logs"
    logs.mkdir()
    later, reason = BAD_STEPS["later"]
    (logs / "a.jsonl").write_text(f"{PLAIN}\n{CLEAN}\n")
    (logs / "b.jsonl").write_text("".join(x + "\n" for x in [_stepped("msg_b", later), CLEAN.replace("msg_c", "msg_d")]
                                          + [BROKEN] * broken))
    opts = Options(quarantine=str(tmp_path / "q.jsonl"), batch_time=BT)
    report = analyze([str(logs)], ["model"], opts)
    written = [json.loads(x) for x in (tmp_path / "q.jsonl").read_text().splitlines()]
    a = report.accounting
    assert (a.rows_read, a.priced, a.quarantined) == (4 + broken, 3, 1 + broken)
    assert report.totals["input_tokens"] == 1000 + 2 * 1500 and report.totals["requests"] == 3
    assert [(Path(w["file"]).name, w["line"], w["reason"]) for w in written] == [("b.jsonl", 1, reason)] + [
        ("b.jsonl", 3, UNREADABLE)] * broken
    priced, acc = price_requests([str(logs)], opts)
    _agree(report, priced.lazy().collect(), acc)


def test_a_store_ingests_none_of_a_quarantined_records_rows(tmp_path):
    path = tmp_path / "in" / "m.jsonl"
    path.parent.mkdir()
    path.write_text("".join(x + "\n" for x in [PLAIN, _stepped("msg_b", BAD_STEPS["later"][0]), CLEAN]))
    opts = Options(quarantine=str(tmp_path / "q.jsonl"), batch_time=BT)
    st = str(tmp_path / "st")
    store.ingest([str(path)], st, opts)
    stored, logs = store.report(st, ["model"]), analyze([str(path)], ["model"], opts)
    assert stored.totals == logs.totals and stored.totals["input_tokens"] == 2500
    for k in ("rows_read", "priced", "quarantined"):
        assert getattr(stored.accounting, k) == getattr(logs.accounting, k), k
    assert (stored.accounting.rows_read, stored.accounting.quarantined) == (3, 1) and stored.accounting.balanced


# --- a stream's events: each event is a record; a quarantined one gives its message no counts ---------

def _start(inp: int, out: int) -> str:
    return json.dumps({"type": "message_start", "message": {"id": "msg_s", "type": "message", "role": "assistant",
                                                            "model": SONNET, "content": [],
                                                            "usage": {"input_tokens": inp, "output_tokens": out}}})


def _final(usage: str) -> str:
    return '{"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {' + usage + "}}"


# The final delta is quarantined (line 2); the message_start is a valid record of the response and is
# priced from its own counts: 100 x 3 + 1 x 15 = $0.000315. Before, the start took up the quarantined
# delta's counts (the merge took every event's largest count): the first step's 1,000 tokens with a bad
# second step, and 5e12 output tokens ($75 million) from a delta quarantined as implausibly large.
@pytest.mark.parametrize("delta,reason", [
    (_final('"input_tokens": 100, "output_tokens": 50, "iterations": [{"type": "compaction", "input_tokens": 1000, '
            '"output_tokens": 200}, {"type": "message", "input_tokens": 500.5, "output_tokens": 50}]'),
     "input_tokens is not a whole number (500.5)"),
    (_final('"output_tokens": 5000000000000'), "output_tokens is implausibly large (5000000000000)"),
])
def test_a_quarantined_stream_event_lends_its_message_no_counts(tmp_path, delta, reason):
    report, rows, acc, written = _run(tmp_path, [_start(100, 1), delta])
    a = report.accounting
    assert (a.rows_read, a.priced, a.repeats, a.quarantined) == (2, 1, 0, 1)
    assert (report.totals["input_tokens"], report.totals["output_tokens"], report.totals["cost"]) == (100, 1, D("0.000315"))
    assert [(line, why) for line, why, _ in written] == [(2, reason)]
    _agree(report, rows, acc)


# --- Claude Code's print-mode result: one row per model of modelUsage ---------------------------------

STREAM = Path(__file__).resolve().parent.parent / "fixtures" / "dialects" / "claude-code-stream" / "stream.jsonl"


# The result (line 5) is quarantined whole: neither model's row is priced. Its run's two assistant
# messages are repeats of its first row (the id `<run>#<first model>`, in the models' order: Haiku
# 4.5, listed second, is the first row, so both rows bad give Haiku's reason): with the result quarantined,
# the larger (msg_01A: 2 x 5 + 7,924 x 6.25 + 13,368 x 0.50 + 9 x 25 = $0.056444 on Opus 4.5) stands
# for the run, a lower bound, and the other is its repeat, as when the first model's row was bad.
# Before, a bad Haiku row was counted nowhere and the run priced at Opus's $0.10270775 alone.
@pytest.mark.parametrize("bad,reason", [
    ({'"inputTokens":1710': '"inputTokens":1710.5'}, "input_tokens is not a whole number (1710.5)"),
    ({'"outputTokens":269': '"outputTokens":-269'}, "negative output_tokens (-269)"),
    ({'"inputTokens":1710': '"inputTokens":1710.5', '"outputTokens":269': '"outputTokens":-269'},
     "input_tokens is not a whole number (1710.5)"),  # both models' rows bad: one line, the first row's reason
], ids=["second model", "first model", "both"])
def test_a_bad_model_row_quarantines_the_whole_run_result(tmp_path, bad, reason):
    lines = STREAM.read_text().splitlines()
    for old, new in bad.items():
        assert old in lines[-1]
        lines[-1] = lines[-1].replace(old, new)
    path = tmp_path / "run.jsonl"
    path.write_text("\n".join(lines) + "\n")
    opts = Options(quarantine=str(tmp_path / "q.jsonl"), batch_time="2026-11-20T10:00:00Z")
    report = analyze([str(path)], ["model"], opts)
    written = [json.loads(x) for x in (tmp_path / "q.jsonl").read_text().splitlines()]
    priced, acc = price_requests([str(path)], opts)
    rows = priced.lazy().collect()
    a = report.accounting
    assert (a.rows_read, a.priced, a.repeats, a.quarantined) == (3, 1, 1, 1)
    assert report.totals["cost"] == D("0.056444") and report.totals["reported_cost"] is None
    assert [(w["line"], w["reason"]) for w in written] == [(5, reason)]
    # (msg_01A, under its run's id: 2 input tokens)
    run = "2d1c0b9a-8e7f-4a6b-9c5d-4e3f2a1b0c9d#claude-haiku-4-5-20251001"
    assert rows.select("request_id", "model_raw", "input_tokens", "cost").rows() == [
        (run, "claude-opus-4-5-20251101", 2, D("0.056444"))]
    _agree(report, rows, acc)


# --- a step the book cannot price: its record is unpriced whole ----------------------------------------

UNKNOWN = "claude-nonexistent-9"


# A step on a model the price book does not know (an advisor), not its record's first row: until
# December 7 its group was unpriced with no record counted (1 priced, 0 unpriced, `unpriced_models`
# naming the model with 0, exit 0) and the totals held the known step alone. Now the record is
# unpriced whole, named by that step's model, and none of its steps is in a total or priced in `price`.
def test_a_step_on_an_unknown_model_is_counted_unpriced(tmp_path):
    line = _stepped("msg_u", ['"input_tokens": 1000, "output_tokens": 0',
                              f'"model": "{UNKNOWN}", "input_tokens": 500, "output_tokens": 0'])
    report, rows, acc, _ = _run(tmp_path, [line])
    assert (report.accounting.unpriced, report.accounting.unpriced_models) == (1, {UNKNOWN: 1})
    assert report.totals["requests"] == 0 and report.totals["cost"] == 0
    assert rows["cost"].to_list() == [None, None]
    assert rows["unpriced_reason"].to_list() == [
        f"not priced: another part of its request cannot be priced ({UNKNOWN})", f"unknown model: {UNKNOWN}"]


def _priced_sums(report, rows) -> None:
    """`report` totals are the sum of the priced `price` rows (money null on the rest)."""
    ok = rows.filter(pl.col("unpriced_reason").is_null())
    assert rows.filter(pl.col("unpriced_reason").is_not_null())["cost"].null_count() == \
        rows.filter(pl.col("unpriced_reason").is_not_null()).height
    for c in ("requests", "input_tokens", "output_tokens"):
        assert report.totals[c] == ok[c].sum(), c
    assert report.totals["cost"] == sum(ok["cost"].to_list(), D(0))


STEPS = {  # record u's steps -> the model it is unpriced under
    # the second step unknown (an advisor): the known first step is not priced either
    "later": (['"input_tokens": 1000, "output_tokens": 0',
               f'"model": "{UNKNOWN}", "input_tokens": 500, "output_tokens": 0'], UNKNOWN),
    # the first row unknown: it was counted unpriced, but its known second step ($0.002) was in the totals
    "first": ([f'"model": "{UNKNOWN}", "input_tokens": 500, "output_tokens": 0',
               f'"model": "{HAIKU}", "input_tokens": 1000, "output_tokens": 200'], UNKNOWN),
    # two unknown steps after a known one: named by the first of them, once
    "two": (['"input_tokens": 4, "output_tokens": 0', f'"model": "{UNKNOWN}", "input_tokens": 5, "output_tokens": 0',
             '"model": "claude-nonexistent-10", "input_tokens": 6, "output_tokens": 0'], UNKNOWN),
    # a known model on a date before its first price: unpriced for another reason, named the same way
    "dated": (['"input_tokens": 7, "output_tokens": 0', f'"model": "{OPUS}", "input_tokens": 8, "output_tokens": 0'],
              OPUS),
}


@pytest.mark.parametrize("broken", [False, True], ids=["fast", "robust"])
@pytest.mark.parametrize("case", STEPS)
def test_a_record_with_a_step_that_cannot_be_priced_is_unpriced_whole(tmp_path, case, broken):
    steps, named = STEPS[case]
    record = _stepped("msg_u", steps)
    if case == "dated":  # a day before Opus 4.5's first price (Sonnet 4.5 has one)
        record = record.replace('"type": "message", "role"', '"timestamp": "2025-11-01T00:00:00Z", "type": "message", "role"')
    # an unknown model on a record of one row too: counted under its own model, as always
    single = _message("msg_s", {"input_tokens": 3, "output_tokens": 0}).replace(SONNET, "claude-nonexistent-10")
    report, rows, acc, written = _run(tmp_path, [PLAIN, record, CLEAN, single] + [BROKEN] * broken)
    a = report.accounting
    assert (a.rows_read, a.priced, a.unpriced, a.quarantined) == (4 + broken, 2, 2, broken)
    assert a.unpriced_models == {named: 1, "claude-nonexistent-10": 1}
    assert a.unpriced_reasons[named].startswith("no price for" if case == "dated" else f"unknown model: {UNKNOWN}")
    # the priced records alone: msg_a and msg_c's two steps
    assert (report.totals["requests"], report.totals["input_tokens"], report.totals["output_tokens"]) == (2, 2500, 250)
    assert report.totals["cost"] == D("0.003") + D("0.00225") + D("0.002")
    u = rows.filter(pl.col("request_id").str.starts_with("msg_u"))
    assert u.height == len(steps) and u["cost"].null_count() == len(steps)
    assert u["unpriced_reason"].null_count() == 0
    _priced_sums(report, rows)
    assert acc.as_dict() == a.as_dict() and a.balanced


# A Claude Code run's result read as one row per model of its modelUsage: a model the book does not know
# makes the result unpriced whole (until December 7 Opus's row was priced, $0.10270775, and the unknown
# model's row counted nowhere). The run's assistant messages stay repeats of its result; the source's
# own total (both models' costUSD) is shown on the unknown model's line.
def test_a_run_result_with_an_unknown_model_is_unpriced_whole(tmp_path):
    lines = STREAM.read_text().splitlines()
    assert HAIKU in lines[-1]
    lines[-1] = lines[-1].replace(HAIKU, UNKNOWN)
    path = tmp_path / "run.jsonl"
    path.write_text("\n".join(lines) + "\n")
    opts = Options(quarantine=str(tmp_path / "q.jsonl"), batch_time="2026-11-20T10:00:00Z")
    report = analyze([str(path)], ["model"], opts)
    a = report.accounting
    assert (a.rows_read, a.priced, a.unpriced, a.repeats) == (3, 0, 1, 2)
    assert a.unpriced_models == {UNKNOWN: 1} and a.unpriced_reported == {UNKNOWN: D("0.10459775")}
    assert report.totals["cost"] == 0 and report.totals["requests"] == 0
    rows, acc = price_requests([str(path)], opts)
    rows = rows.lazy().collect()
    assert rows.select("model_raw", "cost", "unpriced_reason").rows() == [
        (UNKNOWN, None, f"unknown model: {UNKNOWN}"),
        ("claude-opus-4-5-20251101", None, f"not priced: another part of its request cannot be priced ({UNKNOWN})")]
    assert acc.as_dict() == a.as_dict()


def test_a_store_counts_a_record_unpriced_whole_as_the_logs_do(tmp_path):
    path = tmp_path / "in" / "m.jsonl"
    path.parent.mkdir()
    path.write_text("".join(x + "\n" for x in [PLAIN, _stepped("msg_u", STEPS["later"][0]), CLEAN]))
    opts = Options(quarantine=str(tmp_path / "q.jsonl"), batch_time=BT)
    st = str(tmp_path / "st")
    ingested = store.ingest([str(path)], st, opts)
    stored, logs = store.report(st, ["model"]), analyze([str(path)], ["model"], opts)
    assert stored.totals == logs.totals and stored.totals["input_tokens"] == 2500
    for a in (stored.accounting, logs.accounting, ingested.files[0].accounting):
        assert (a.priced, a.unpriced, a.unpriced_models) == (2, 1, {UNKNOWN: 1}), a
        assert a.unpriced_reasons == {UNKNOWN: f"unknown model: {UNKNOWN}"}

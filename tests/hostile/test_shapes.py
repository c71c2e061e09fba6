"""Hostile inputs for issue 21's log shapes: each test is the minimal input of a defect found by trying
to get a wrong total with exit 0, a lost or double-counted row, or a misdetection (attack21).

Prices by hand (per 1M tokens): Opus 4.5 $5 in, $6.25 5m write, $0.50 read, $25 out; Haiku 4.5 $1 in,
$5 out; Sonnet 4.5 $3 in, $15 out.
"""

from __future__ import annotations

import json
from decimal import Decimal as D

from analyzer.pipeline import Options, analyze

from ..dialects.exports_util import FIXTURES, cost, detect

STREAM = FIXTURES / "claude-code-stream" / "stream.jsonl"
BT = "2026-11-20T10:00:00Z"
# The fixture run, by hand: Opus 8 x 5 + 13,507 x 6.25 + 23,048 x 0.50 + 269 x 25 = 0.10270775;
# Haiku 1,710 x 1 + 36 x 5 = 0.00189.
RUN = D("0.10270775") + D("0.00189")


def _write(tmp_path, lines, name="run.jsonl"):
    path = tmp_path / name
    path.write_text("".join(line + "\n" for line in lines))
    return path


# --- claude-code-stream ---------------------------------------------------------------------------

def test_two_runs_of_one_session_without_uuid_both_count(tmp_path):
    """Older results carry no uuid; a resumed session keeps its session id. The second run's result
    was taken for a repeat of the first (same `<session>#<model>` id): half the spend lost, exit 0."""
    lines = STREAM.read_text().splitlines()
    first = json.loads(lines[-1])
    del first["uuid"]
    second = {**first, "duration_ms": 5120, "duration_api_ms": 14001}
    path = _write(tmp_path, [*lines[:-1], json.dumps(first), *lines[1:-1], json.dumps(second)])
    total, report = cost([path], batch_time=BT)
    assert total == 2 * RUN
    acc = report.accounting
    assert (acc.priced, acc.repeats, acc.duplicates, acc.balanced) == (2, 4, 0, True)


def test_same_run_without_uuid_saved_twice_counts_once(tmp_path):
    """The other side of the rule above: the same uuid-less run as stream-json and as json is one run."""
    lines = STREAM.read_text().splitlines()
    res = json.loads(lines[-1])
    del res["uuid"]
    a = _write(tmp_path, [*lines[:-1], json.dumps(res)], "stream.jsonl")
    b = tmp_path / "result.json"
    b.write_text(json.dumps(res, indent=2))
    total, report = cost([a, b], batch_time=BT)
    assert total == RUN and report.accounting.priced == 1 and report.accounting.balanced


# --- raw server-sent events -----------------------------------------------------------------------

SSE = FIXTURES / "anthropic-messages" / "stream.sse"
SSE_BT = "2026-10-01T00:00:00Z"
# The fixture's two responses, by hand: Sonnet 4.5 1,200 x 3 + 5,000 x 0.30 + 310 x 15 = 0.00975;
# Haiku 4.5 800 x 1 + 55 x 5 = 0.001075.
SSE_TOTAL = D("0.00975") + D("0.001075")


def _pretty_events(tmp_path, newline="\n"):
    """A response whose server sends each event as pretty-printed JSON: one `data:` line per JSON line."""
    events = [
        {"type": "message_start", "message": {"id": "msg_p1", "type": "message", "role": "assistant",
                                              "model": "claude-sonnet-4-5-20250929", "content": [],
                                              "usage": {"input_tokens": 1000, "output_tokens": 1}}},
        {"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": 100}},
        {"type": "message_stop"},
    ]
    lines = []
    for e in events:
        lines += [f"event: {e['type']}", *("data: " + x for x in json.dumps(e, indent=2).split("\n")), ""]
    path = tmp_path / "pretty.sse"
    path.write_bytes(newline.join(lines).encode() + newline.encode())
    return path


def test_sse_payload_split_over_data_lines_is_one_event(tmp_path):
    """SSE joins an event's consecutive `data:` lines: read line by line, the capture was 'unknown log
    format' (exit 2), or, recognised, every piece a broken record."""
    for newline in ("\n", "\r\n"):
        total, report = cost([_pretty_events(tmp_path, newline)], batch_time=SSE_BT)
        # Sonnet 4.5: 1,000 x 3 + 100 x 15 = 0.0045 (the message_delta's final output count)
        assert total == D("0.0045")
        acc = report.accounting
        assert (acc.priced, acc.repeats, acc.quarantined, acc.balanced) == (1, 1, 0, True)


def test_sse_without_blank_lines_still_reads_one_record_per_data_line(tmp_path):
    """Captures that dropped the blank lines (or the `event:` lines too): each data line is a whole JSON
    value, so none is joined to the next."""
    lines = [x for x in SSE.read_text().splitlines() if x.strip()]
    for name, kept in (("noblank.sse", lines), ("onlydata.sse", [x for x in lines if x.startswith("data:")])):
        total, report = cost([_write(tmp_path, kept, name)], batch_time=SSE_BT)
        assert total == SSE_TOTAL
        assert (report.accounting.priced, report.accounting.repeats, report.accounting.quarantined) == (2, 3, 0)


def test_sse_event_cut_mid_data_is_quarantined_not_joined(tmp_path):
    """A capture cut inside the last event's data: that event is quarantined, the rest priced."""
    text = SSE.read_text()
    cut = text[: text.rindex('"output_tokens":55') + 10]
    total, report = cost([_write(tmp_path, [cut], "cut.sse")], batch_time=SSE_BT)
    # Haiku is priced from its message_start (output 1): 800 x 1 + 1 x 5 = 0.000805
    assert total == D("0.00975") + D("0.000805")
    assert report.accounting.quarantined == 1 and report.accounting.balanced


# --- bedrock-cloudwatch: Logs Insights get-query-results ------------------------------------------

INSIGHTS = FIXTURES / "bedrock-cloudwatch" / "get-query-results.json"


def _insights(tmp_path, **change):
    doc = json.loads(INSIGHTS.read_text())
    doc.update(change)
    path = tmp_path / "query.json"
    path.write_text(json.dumps(doc, indent=2))
    return path, doc


def test_insights_results_cut_at_the_query_limit_are_said(tmp_path):
    """Logs Insights returns at most the query's limit (1,000 by default): recordsMatched says how many
    events matched. A file of the first rows priced them as if they were all, silently."""
    full, _ = cost([INSIGHTS])
    doc = json.loads(INSIGHTS.read_text())
    path, _ = _insights(tmp_path, results=doc["results"][:3],
                        statistics={**doc["statistics"], "recordsMatched": 1500.0})
    total, report = cost([path])
    assert report.accounting.priced == 3 and total < full
    assert any("matched 1,500 log events but the results hold 3 rows" in n for n in report.notes)
    # a complete result says nothing
    _, whole = cost([INSIGHTS])
    assert not any("Logs Insights" in n for n in whole.notes)


def test_insights_results_of_a_running_query_are_said(tmp_path):
    path, _ = _insights(tmp_path, status="Running")
    _, report = cost([path])
    assert any("status is Running, not Complete" in n for n in report.notes)


def test_stream_saved_without_its_init_is_still_claude_code_stream(tmp_path):
    """An SDK stream saved without its `system` init, whose result lies past the records detection
    reads, was taken for Messages API records: each partial priced as a request, the result
    quarantined. Its messages' `session_id` and `parent_tool_use_id` say what it is."""
    lines = STREAM.read_text().splitlines()
    assistant, user = json.loads(lines[1]), lines[2]
    body = []
    for i in range(40):
        body += [json.dumps({**assistant, "message": {**assistant["message"], "id": f"msg_{i}"}}), user]
    path = _write(tmp_path, [*body, lines[-1]])
    assert detect(path) == "claude-code-stream"
    total, report = cost([path], batch_time=BT)
    assert total == RUN
    acc = report.accounting
    assert (acc.priced, acc.repeats, acc.quarantined) == (1, 40, 0)


# --- litellm-spendlogs as JSON --------------------------------------------------------------------

SPEND = FIXTURES / "litellm-spendlogs" / "spend_logs.json"


def test_litellm_json_row_with_metadata_as_text_keeps_its_cache_counts(tmp_path):
    """A table dumped by a tool that writes a JSON column as a string: `metadata` is JSON text. Its
    cache write was priced as plain input (0.15846 instead of 0.1946175), exit 0, and the key, team
    and user attribution was lost."""
    row = json.loads(SPEND.read_text())[0]
    row["metadata"] = json.dumps(row["metadata"])
    for name, text in (("rows.jsonl", json.dumps(row) + "\n"), ("rows.json", json.dumps([row], indent=2))):
        path = tmp_path / name
        path.write_text(text)
        report = analyze([str(path)], by=["api_key", "team", "user"], opts=Options())
        total = report.totals["cost"]
        # prompt 50,305 includes the 48,210 5m write: Sonnet 3.5 2,095 x 3 + 48,210 x 3.75 + 503 x 15
        assert total == D("0.1946175")
        row_out = report.rows.row(0, named=True)
        assert (row_out["api_key"], row_out["team"], row_out["user"]) == ("prod-backend", "billing", "svc-billing")


def test_one_m_context_run_does_not_add_its_messages_on_top(tmp_path):
    """Claude Code names a 1M-context model `claude-opus-4-7[1m]` in modelUsage (as in public
    stream-json samples, e.g. a result with "claude-opus-4-7[1m]" and "claude-haiku-4-5-20251001")
    while its messages say `claude-opus-4-7`: the messages matched no result row and each partial was
    priced on top of the run's total (0.16104175 for 0.10459775, exit 0)."""
    lines = STREAM.read_text().splitlines()
    res = json.loads(lines[-1])
    usage = res["modelUsage"]
    res["modelUsage"] = {"claude-opus-4-5-20251101[1m]": usage["claude-opus-4-5-20251101"],
                         "claude-haiku-4-5-20251001": usage["claude-haiku-4-5-20251001"]}
    total, report = cost([_write(tmp_path, [*lines[:-1], json.dumps(res)])], batch_time=BT)
    assert total == RUN
    acc = report.accounting
    assert (acc.priced, acc.repeats, acc.balanced) == (1, 2, True)


def test_messages_of_a_model_the_result_does_not_name_are_repeats_of_the_run(tmp_path):
    """The result's total is the run's: a message whose model has no row of its own (a Haiku call the
    modelUsage folds elsewhere, a renamed model) is still a repeat, never priced on top."""
    lines = STREAM.read_text().splitlines()
    extra = json.loads(lines[1])
    extra["message"] = {**extra["message"], "id": "msg_01H", "model": "claude-haiku-4-5"}
    total, report = cost([_write(tmp_path, [*lines[:-1], json.dumps(extra), lines[-1]])], batch_time=BT)
    assert total == RUN and report.accounting.repeats == 3

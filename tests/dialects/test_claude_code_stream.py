"""Issue 21.3: Claude Code print-mode output, `claude -p --output-format stream-json --verbose` (one
message per line), `--output-format json` (the result object) and `json --verbose` (every message as an
array): the Agent SDK's message stream has the same messages.

Fixture origin: the message shapes and the Opus run's counts and cost are those of the stream-json
sample in matt-grain/Claude-Debussy docs/CLAUDE_JSON_FORMAT.md (commit 6e7e9ab8d07f), whose modelUsage
costUSD 0.10270775 is exactly the list price of its counts; a Haiku entry (a second model, as Claude
Code uses for background tasks) is added, and total_cost_usd set to the sum of both.

By hand (per 1M tokens), Opus 4.5: $5 in, $6.25 5m write, $0.50 read, $25 out; Haiku 4.5: $1 in, $5 out.
- Opus (modelUsage):  8 x 5 + 13,507 x 6.25 + 23,048 x 0.50 + 269 x 25 = 0.10270775
- Haiku (modelUsage): 1,710 x 1 + 36 x 5                               = 0.00189
"""

from __future__ import annotations

import json
from decimal import Decimal as D

import pytest

from .exports_util import FIXTURES, cost, detect, normalized, quarantined

HERE = FIXTURES / "claude-code-stream"
STREAM, RESULT, VERBOSE = HERE / "stream.jsonl", HERE / "result.json", HERE / "verbose.json"
BT = "2026-11-20T10:00:00Z"
OPUS, HAIKU = D("0.10270775"), D("0.00189")
LINES = STREAM.read_text().splitlines()


def _write(tmp_path, lines, name="run.jsonl"):
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.parametrize("path", [STREAM, RESULT, VERBOSE])
def test_detected_without_dialect(path):
    assert detect(path) == "claude-code-stream"


@pytest.mark.parametrize("path", [STREAM, RESULT, VERBOSE])
def test_each_model_priced_from_model_usage_once(path):
    total, report = cost([path], batch_time=BT)
    assert total == OPUS + HAIKU
    # total_cost_usd is the run's reported cost, beside the computed one
    assert report.totals["reported_cost"] == D("0.10459775")
    acc = report.accounting
    assert acc.priced == 1 and acc.balanced
    # the assistant lines' partial usage is never added: they are repeats of the result
    assert acc.repeats == (0 if path == RESULT else 2)
    assert any("records carry no time; dated 2026-11-20T10:00:00" in n for n in report.notes)


def test_result_rows_are_per_model_with_unknown_request_count():
    rows = normalized(STREAM, batch_time=BT)
    result = rows.filter(rows["_rank"] == 0)
    # (in the models' order, not modelUsage's: the same run listed otherwise is the same record)
    assert result["model_raw"].to_list() == ["claude-haiku-4-5-20251001", "claude-opus-4-5-20251101"]
    # the run's request count is unknown; its second model's row is part of the same record (0)
    assert result["requests"].to_list() == [None, 0] and result["_rec"].to_list() == [1, 0]
    assert result["context_window"].to_list() == ["0-200k", "0-200k"]
    # the run's reported cost on the model with most tokens: Opus 36,832 against Haiku 1,746
    assert result["reported_cost"].to_list() == [None, D("0.10459775")]


def _result_rows(tmp_path, model_usage: dict, name="run.jsonl"):
    res = json.loads(LINES[-1])
    res["modelUsage"] = model_usage
    rows = normalized(_write(tmp_path, [json.dumps(res)], name), batch_time=BT)
    return dict(zip(rows["model_raw"].to_list(), rows["reported_cost"].to_list(), strict=True)), rows


def _usage(i=0, o=0, r=0, w=0):
    return {"inputTokens": i, "outputTokens": o, "cacheReadInputTokens": r, "cacheCreationInputTokens": w}


@pytest.mark.parametrize("reverse", [False, True])
def test_reported_cost_on_the_model_with_most_tokens_whatever_the_order(tmp_path, reverse):
    """Every kind of token counts (here the cache read tips it), not the name nor the writer's order;
    the record (its first row by name) is the same either way."""
    members = [("claude-haiku-4-5-20251001", _usage(i=500, o=500)),  # 1,000
               ("claude-opus-4-5-20251101", _usage(i=10, o=10, r=900, w=81)),  # 1,001
               ("claude-sonnet-4-5-20250929", _usage(w=999))]  # 999
    costs, rows = _result_rows(tmp_path, dict(members[::-1] if reverse else members))
    assert costs == {"claude-haiku-4-5-20251001": None, "claude-opus-4-5-20251101": D("0.10459775"),
                     "claude-sonnet-4-5-20250929": None}
    assert rows["_rec"].to_list() == [1, 0, 0]


@pytest.mark.parametrize("reverse", [False, True])
def test_reported_cost_on_a_tie_goes_to_the_first_model_by_name(tmp_path, reverse):
    members = [("claude-sonnet-4-5-20250929", _usage(i=600, o=400)), ("claude-haiku-4-5-20251001", _usage(r=1000))]
    costs, _ = _result_rows(tmp_path, dict(members[::-1] if reverse else members))
    assert costs == {"claude-haiku-4-5-20251001": D("0.10459775"), "claude-sonnet-4-5-20250929": None}


def test_run_cut_before_its_result_prices_each_response_once(tmp_path):
    """No result (the run was killed): each response from its own message, merged on its id."""
    path = _write(tmp_path, LINES[:-1])
    total, report = cost([path], batch_time=BT)
    # msg_01A: 2 x 5 + 7,924 x 6.25 + 13,368 x 0.50 + 9 x 25 = 0.056444
    # msg_01B: 6 x 5 + 5,583 x 6.25 + 9,680 x 0.50 + 1 x 25  = 0.03978875
    assert total == D("0.056444") + D("0.03978875")
    assert report.accounting.priced == 2 and report.accounting.repeats == 0


def test_two_runs_in_one_file_keep_their_own_totals(tmp_path):
    """A resumed session run twice (same session id, a result each): both totals count."""
    second = [line.replace("2d1c0b9a-8e7f-4a6b-9c5d-4e3f2a1b0c9d", "7e6d5c4b-3a29-4180-9f7e-6d5c4b3a2918")
              for line in LINES]
    total, report = cost([_write(tmp_path, LINES + second)], batch_time=BT)
    assert total == 2 * (OPUS + HAIKU)
    assert (report.accounting.priced, report.accounting.repeats, report.accounting.duplicates) == (2, 4, 0)


def test_result_without_model_usage_uses_usage_and_the_runs_model(tmp_path):
    """Older versions: no modelUsage. The final usage (with its TTL split) and the model of the run."""
    res = json.loads(LINES[-1])
    del res["modelUsage"]
    res["usage"]["cache_creation"] = {"ephemeral_5m_input_tokens": 13007, "ephemeral_1h_input_tokens": 500}
    total, report = cost([_write(tmp_path, [*LINES[:-1], json.dumps(res)])], batch_time=BT)
    # Opus: 8 x 5 + 13,007 x 6.25 + 500 x 10 + 23,048 x 0.50 + 269 x 25 = 0.10458275
    assert total == D("0.10458275") and report.accounting.repeats == 2


def test_model_usage_named_in_the_answer_text_is_not_read(tmp_path):
    res = json.loads(LINES[-1])
    res["result"] = 'It printed "modelUsage":{"claude-opus-4-5-20251101":{"inputTokens":999999}} for me'
    total, _ = cost([_write(tmp_path, [*LINES[:-1], json.dumps(res)])], batch_time=BT)
    assert total == OPUS + HAIKU


def test_one_m_context_model_key_and_web_search(tmp_path):
    res = json.loads(LINES[-1])
    usage = res["modelUsage"].pop("claude-opus-4-5-20251101")
    usage["webSearchRequests"] = 3
    res["modelUsage"] = {"claude-opus-4-5-20251101[1m]": usage}
    res["usage"]["server_tool_use"]["web_search_requests"] = 7  # the run's, never a model's
    total, _ = cost([_write(tmp_path, [json.dumps(res)])], batch_time=BT)
    assert total == OPUS + D("0.03")  # 3 searches x $10 / 1,000


def test_broken_result_line_is_quarantined_with_its_line(tmp_path, quarantine):
    lines = [*LINES[:-1], LINES[-1][:200]]
    total, report = cost([_write(tmp_path, lines)], batch_time=BT, quarantine=quarantine)
    assert report.accounting.quarantined == 1 and report.accounting.balanced
    assert quarantined(quarantine)[0]["line"] == 5
    # without their run's total, the responses are priced from their own messages
    assert total == D("0.056444") + D("0.03978875")


def test_without_batch_time_file_mtime_is_noted():
    _, report = cost([STREAM])
    assert any("modification time" in n for n in report.notes)

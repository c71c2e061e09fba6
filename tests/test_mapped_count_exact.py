"""Mapped JSON counts judged by their text wherever they sit, and a count's key named twice.

Three ways a mapped JSON format (Messages, Bedrock, Claude Code, OpenAI...) counted a number other
than the one its text writes, with exit 0 (tests/hostile/test_attack4.py pinned them):
- a count under an array (a Messages step, `usage.iterations[]`) was read through a float;
- Bedrock's 1h cache-write split (and a stream's invocation metrics) through json_path_match's float;
- a count's key named twice in one object: JSON Lines counted the first value, a `.json` array the last.
Each text gets the verdict the same text gets in a CSV (tests/test_json_count_text.py), in .jsonl,
.json and gzip alike; a key named twice in one object counts its first value in each."""

from __future__ import annotations

import gzip
import json

import pytest

from analyzer.pipeline import Options, analyze

FLOATED = "1.00000000000000000001"
HUGE = "99999999999999999999"  # 20 digits: rendered 1e+20 through a float
# (text, the count it is, or None when quarantined, and the words of the reason)
TEXTS = [("1.0", 1, None), ("1e0", 1, None), ("-0", 0, None), ("100e-2", None, "is not a whole number"),
         (FLOATED, None, "is not a whole number"), (HUGE, None, "is too large")]
FORMATS = ["m.jsonl", "m.json", "m.jsonl.gz", "m.json.gz"]

MESSAGE = ('{"id": "msg_ID", "type": "message", "role": "assistant", "model": "claude-sonnet-4-5-20250929", '
           '"content": [{"type": "text", "text": "hi"}], "usage": {USAGE}}')
ENVELOPE = '{"timestamp": "2026-10-08T00:00:00Z", "request_id": "req_ID", "response": MESSAGE}'.replace("MESSAGE", MESSAGE)
CLAUDE_CODE = ('{"type": "assistant", "timestamp": "2026-10-08T00:00:00Z", "sessionId": "s", "requestId": "req_ID", '
               '"message": {"id": "msg_ID", "model": "claude-sonnet-4-5-20250929", "usage": {USAGE}}}')
OPENAI = ('{"id": "chatcmpl-ID", "object": "chat.completion", "created": 1764066032, "model": "gpt-4.1-mini-2025-04-14", '
          '"choices": [], "usage": {USAGE}}')
FIRST = '"input_tokens": 1000, "output_tokens": 0'


def _write(tmp_path, name: str, lines: list[str]):
    p = tmp_path / name
    p.parent.mkdir(parents=True, exist_ok=True)
    text = "[" + ",\n".join(lines) + "]\n" if ".json." in name or name.endswith(".json") else \
        "".join(x + "\n" for x in lines)
    if name.endswith(".gz"):
        p.write_bytes(gzip.compress(text.encode()))
    else:
        p.write_text(text)
    return tmp_path / name.split("/")[0]


def _run(tmp_path, name: str, lines: list[str]):
    root = _write(tmp_path, name, lines)
    q = tmp_path / "q.jsonl"
    rep = analyze([str(root)], ["model"], Options(quarantine=str(q), batch_time="2026-10-08T00:00:00Z"))
    return rep, [json.loads(x)["reason"] for x in q.read_text().splitlines()] if q.exists() else []


def _two(template: str, usage: str, first: str = FIRST) -> list[str]:
    return [template.replace("ID", "a").replace("USAGE", first), template.replace("ID", "b").replace("USAGE", usage)]


# --- a count under an array: a Messages response's steps (usage.iterations) --------------------------

STEPS = ('"input_tokens": 3, "output_tokens": 0, "iterations": [{"type": "compaction", "input_tokens": IN, '
         '"output_tokens": 0, "cache_creation_input_tokens": 5, "cache_creation": {"ephemeral_5m_input_tokens": 0, '
         '"ephemeral_1h_input_tokens": H1}}, {"type": "message", "input_tokens": 2, "output_tokens": 0}]')


@pytest.mark.parametrize("name", FORMATS)
@pytest.mark.parametrize("template", [MESSAGE, ENVELOPE], ids=["message", "envelope"])
@pytest.mark.parametrize("text,count,reason", TEXTS)
def test_a_steps_count_is_judged_by_its_text(tmp_path, name, template, text, count, reason):
    rep, reasons = _run(tmp_path, name, _two(template, STEPS.replace("IN", text).replace("H1", "0")))
    if count is None:
        assert (rep.accounting.quarantined, reasons) == (1, [f"input_tokens {reason} ({text})"])
    else:
        assert (rep.accounting.quarantined, rep.totals["input_tokens"], reasons) == (0, 1000 + count + 2, [])


# A step's 1h cache-write split: an object inside an array member (the deepest count a mapping reads).
@pytest.mark.parametrize("name", ["m.jsonl", "m.json.gz"])
@pytest.mark.parametrize("text,count,reason", TEXTS)
def test_a_steps_cache_split_at_depth_is_judged_by_its_text(tmp_path, name, text, count, reason):
    rep, reasons = _run(tmp_path, name, _two(ENVELOPE, STEPS.replace("IN", "4").replace("H1", text)))
    if count is None:
        assert (rep.accounting.quarantined, reasons) == (1, [f"cache_write_1h_tokens {reason} ({text})"])
    else:
        assert (rep.accounting.quarantined, rep.totals["cache_write_1h_tokens"], reasons) == (0, count, [])
        assert rep.totals["cache_write_5m_tokens"] == 5 - count


# --- Bedrock: counts a hook reads from the record's text ---------------------------------------------

BEDROCK = ('{"schemaType": "ModelInvocationLog", "timestamp": "2026-10-08T00:00:00Z", "requestId": "r1", '
           '"modelId": "anthropic.claude-sonnet-4-5-20250929-v1:0", "input": INPUT, "output": OUTPUT}')
WRITES = '{"inputTokenCount": 0, "cacheWriteInputTokenCount": 1000}'
SPLITS = {  # the Messages body's split, and Converse's per-TTL details
    "cache_creation": ('{"outputTokenCount": 0, "outputBodyJson": {"usage": {"cache_creation": '
                       '{"ephemeral_1h_input_tokens": TEXT, "ephemeral_5m_input_tokens": 0}}}}'),
    "cacheDetails": ('{"outputTokenCount": 0, "outputBodyJson": {"usage": {"cacheDetails": '
                     '[{"ttl": "5m", "inputTokens": 0}, {"ttl": "1h", "inputTokens": TEXT}]}}}'),
}


@pytest.mark.parametrize("name", ["b.jsonl", "b.json", "b.jsonl.gz"])
@pytest.mark.parametrize("split", SPLITS)
@pytest.mark.parametrize("text,count,reason", TEXTS)
def test_a_bedrock_1h_split_is_judged_by_its_text(tmp_path, name, split, text, count, reason):
    line = BEDROCK.replace("INPUT", WRITES).replace("OUTPUT", SPLITS[split].replace("TEXT", text))
    rep, reasons = _run(tmp_path, name, [line])
    if count is None:
        assert (rep.accounting.quarantined, reasons) == (1, [f"cache_write_1h_tokens {reason} ({text})"])
    else:
        assert reasons == []
        assert (rep.totals["cache_write_1h_tokens"], rep.totals["cache_write_5m_tokens"]) == (count, 1000 - count)


# A stream's counts, in the last chunk's amazon-bedrock-invocationMetrics (no top-level counts).
@pytest.mark.parametrize("name", ["b.jsonl", "b.json"])
@pytest.mark.parametrize("text,count,reason", TEXTS)
def test_a_bedrock_streams_metrics_count_is_judged_by_its_text(tmp_path, name, text, count, reason):
    output = ('{"outputBodyJson": [{"type": "message_stop", "amazon-bedrock-invocationMetrics": '
              '{"inputTokenCount": TEXT, "outputTokenCount": 0}}]}').replace("TEXT", text)
    rep, reasons = _run(tmp_path, name, [BEDROCK.replace("INPUT", "{}").replace("OUTPUT", output)])
    if count is None:
        assert (rep.accounting.quarantined, reasons) == (1, [f"input_tokens {reason} ({text})"])
    else:
        assert (rep.accounting.priced, rep.totals["input_tokens"], reasons) == (1, count, [])


# --- a count's key named twice in one object ----------------------------------------------------------

# A key named twice inside a record's objects counts its first value (Polars' decoder's) in every
# container: the record reads as the same record with the later pair removed. (.json was read by
# Python's json, which keeps the last: 1007 input tokens where .jsonl counted 1005.)
def _first_only(lines: list[str], drop: str) -> list[str]:
    return [x.replace(drop, "", 1) for x in lines]


def _seen(rep, reasons) -> tuple:
    a = rep.accounting
    return (a.priced, a.quarantined, rep.totals["input_tokens"], rep.totals["cache_write_1h_tokens"], reasons)


@pytest.mark.parametrize("name", FORMATS)
@pytest.mark.parametrize("usage,drop", [
    ('"input_tokens": 5, "input_tokens": 7, "output_tokens": 0', '"input_tokens": 7, '),
    ('"input_tokens": 7, "output_tokens": 0, "input_tokens": 9', ', "input_tokens": 9'),
    ('"input_tokens": 5, "input\\u005ftokens": 7, "output_tokens": 0', '"input\\u005ftokens": 7, '),
    ('"\\u0069nput_tokens": 5, "output_tokens": 0, "input_tokens": 7', ', "input_tokens": 7'),
])
@pytest.mark.parametrize("template", [MESSAGE, ENVELOPE], ids=["message", "envelope"])
def test_a_count_key_named_twice_counts_its_first_value_in_every_container(tmp_path, name, usage, drop, template):
    got = _seen(*_run(tmp_path / "twice", name, _two(template, usage)))
    assert got == _seen(*_run(tmp_path / "once", name, _first_only(_two(template, usage), drop)))
    assert got == (2, 0, 1005 if "5" in usage.split(",")[0] else 1007, 0, [])


@pytest.mark.parametrize("name", ["m.jsonl", "m.json"])
@pytest.mark.parametrize("line,drop,tokens", [
    # the usage object named twice in its response
    (ENVELOPE.replace("ID", "b").replace('"usage": {USAGE}', '"usage": {"input_tokens": 5, "output_tokens": 0}, '
                                          '"usage": {"input_tokens": 7, "output_tokens": 0}'),
     ', "usage": {"input_tokens": 7, "output_tokens": 0}', (1005, 0)),
    # inside a step (an array member)
    (MESSAGE.replace("ID", "b").replace("USAGE", STEPS.replace("IN", "4, \"input_tokens\": 9").replace("H1", "0")),
     ', "input_tokens": 9', (1006, 0)),
    # a step's cache split
    (MESSAGE.replace("ID", "b").replace("USAGE", STEPS.replace("IN", "4").replace(
        "H1", '1, "ephemeral_1h_input_tokens": 2')), ', "ephemeral_1h_input_tokens": 2', (1006, 1)),
])
def test_a_count_key_named_twice_at_depth_counts_its_first_value(tmp_path, name, line, drop, tokens):
    lines = [MESSAGE.replace("ID", "a").replace("USAGE", FIRST), line]
    got = _seen(*_run(tmp_path / "twice", name, lines))
    assert got == _seen(*_run(tmp_path / "once", name, _first_only(lines, drop)))
    assert (got[1], got[2], got[3]) == (0, *tokens)


@pytest.mark.parametrize("name,template,usage,first", [
    ("projects/p/s.jsonl", CLAUDE_CODE, '"input_tokens": 5, "output_tokens": 0, "input_tokens": 7', FIRST),
    ("o.jsonl", OPENAI, '"prompt_tokens": 5, "completion_tokens": 0, "prompt_tokens": 7',
     '"prompt_tokens": 1000, "completion_tokens": 0'),
    ("o.json", OPENAI, '"prompt_tokens": 5, "prompt_tokens": 7, "completion_tokens": 0',
     '"prompt_tokens": 1000, "completion_tokens": 0'),
])
def test_a_count_key_named_twice_in_other_formats_counts_its_first_value(tmp_path, name, template, usage, first):
    rep, reasons = _run(tmp_path, name, _two(template, usage, first))
    assert (rep.accounting.quarantined, rep.totals["input_tokens"], reasons) == (0, 1005, [])


@pytest.mark.parametrize("name", ["b.jsonl", "b.json"])
def test_a_bedrock_count_key_named_twice_counts_its_first_value(tmp_path, name):
    line = BEDROCK.replace("INPUT", '{"inputTokenCount": 5, "inputTokenCount": 7}').replace(
        "OUTPUT", '{"outputTokenCount": 0}')
    rep, reasons = _run(tmp_path, name, [line])
    assert (rep.accounting.priced, rep.accounting.quarantined, rep.totals["input_tokens"], reasons) == (1, 0, 5, [])


# The same key in different objects is not named twice: steps and the response each have their counts,
# a nested object may echo them, and a key that is no count may repeat (not read: no verdict).
@pytest.mark.parametrize("name", ["m.jsonl", "m.json"])
@pytest.mark.parametrize("usage,tokens", [
    (STEPS.replace("IN", "4").replace("H1", "0"), 1000 + 4 + 2),
    ('"input_tokens": 5, "output_tokens": 0, "echo": {"input_tokens": 5, "usage": {"input_tokens": 5}}', 1005),
    ('"input_tokens": 5, "output_tokens": 0, "note": "\\"input_tokens\\": 7, \\"input_tokens\\": 8"', 1005),
    ('"input_tokens": 5, "output_tokens": 0, "tag": "a", "tag": "b"', 1005),
])
def test_a_key_in_different_objects_is_not_named_twice(tmp_path, name, usage, tokens):
    rep, reasons = _run(tmp_path, name, _two(MESSAGE, usage))
    assert (rep.accounting.quarantined, rep.totals["input_tokens"], reasons) == (0, tokens, [])


# A broken line anywhere sends the file to the robust reading (every path read as text with a JSON path,
# which renders numbers through a float too, and takes a key's last value): the same verdicts there.
def test_the_robust_reading_gives_the_same_verdicts(tmp_path):
    steps = '"input_tokens": 3, "output_tokens": 0, "iterations": [{"type": "compaction", "input_tokens": TEXT}]'
    lines = _two(MESSAGE, '"input_tokens": 5, "input_tokens": 7, "output_tokens": 0') + [
        MESSAGE.replace("ID", "c").replace("USAGE", steps.replace("TEXT", FLOATED)),
        MESSAGE.replace("ID", "d").replace("USAGE", '"input_tokens": 11, "output_tokens": 0, "input\\u005ftokens": 13'),
        '{"id": "msg_x", "type": "message", "usage": {"input_tokens": tru}}']
    rep, reasons = _run(tmp_path, "m.jsonl", lines)
    assert (rep.accounting.priced, rep.accounting.quarantined, rep.totals["input_tokens"]) == (3, 2, 1000 + 5 + 11)
    assert reasons == [f"input_tokens is not a whole number ({FLOATED})", "not a JSON object (unparsable line)"]


# Was: a file with one broken line was read robustly whole, where a step's list (usage.iterations) is
# read with a JSON path, which keeps a key's last value; the fast reading (and .json) count the first.
# Fixed by reading a retry by parts (analyzer/line_retry.py): the good lines, this step's too, are read
# by the fast plan, as in a file without the broken line; and a line read robustly gives a hook the list
# with each key named again renamed, so its decoder reads the first (_json_text.first_keys_only). (A step
# naming a key twice on a line that is itself broken is quarantined: no count of it is read.)
def test_the_robust_reading_of_a_step_key_named_twice_counts_its_first_value(tmp_path):
    usage = STEPS.replace("IN", '4, "input_tokens": 9').replace("H1", "0")
    broken = '{"id": "msg_x", "type": "message", "usage": {"input_tokens": tru}}'
    rep, _ = _run(tmp_path, "m.jsonl", _two(MESSAGE, usage) + [broken])
    assert rep.totals["input_tokens"] == 1000 + 4 + 2

"""Second reading of exact1 (counts judged by their own text in mapped JSON: `mapped.quoted_numbers`,
`_with_count_texts`, Bedrock's quoted pieces). Each test is an input where a command's answer
differed from the one it must give; each failed before its fix."""

from __future__ import annotations

import json

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from analyzer.dialects.mapped import quoted_numbers
from analyzer.pipeline import Options, analyze

FLOATED = "1.00000000000000000001"


def _run(tmp_path, name: str, lines: list[str]):
    tmp_path.mkdir(exist_ok=True)
    root = tmp_path / "logs"
    (root / name).parent.mkdir(parents=True)
    text = "[" + ",\n".join(lines) + "]\n" if name.endswith(".json") else "".join(x + "\n" for x in lines)
    (root / name).write_text(text)
    q = tmp_path / "q.jsonl"
    rep = analyze([str(root)], ["model"], Options(quarantine=str(q), batch_time="2026-10-08T00:00:00Z"))
    return rep, [json.loads(x)["reason"] for x in q.read_text().splitlines()] if q.exists() else []


# ----------------------------------------------------------------------------------------------
# quoted_numbers searched past a text's last number: a digit in a later string was quoted

def _quoted(text: str) -> str:
    return pl.select(quoted_numbers(pl.lit(text))).item()


def _as_text(value):
    """The value `quoted_numbers` must turn a decoded JSON value into: each number its own text."""
    if isinstance(value, dict):
        return {k: _as_text(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_as_text(v) for v in value]
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    return json.dumps(value)  # (the examples' numbers are written as Python writes them)


@pytest.mark.parametrize("text", [
    '{"usage": {"input_tokens": 1.5}, "model": "claude-4"}',  # `-4` in a string after the last number
    '{"a": 1.5, "m": "x 5"}',
    '{"a": 1.5, "m": "x\\"5"}',
    '{"a": 1.5, "m": "x\\\\", "n": "5"}',
    '{"a": 1.5, "version": "2.0.14"}  ',
])
def test_quoting_numbers_leaves_every_string_after_the_last_number_as_it_is(text):
    assert json.loads(_quoted(text)) == _as_text(json.loads(text))


class Num(str):
    """A JSON number, kept as the text it is written with (`1e999`, `-0`, `1E+2`)."""


def _dump(value, ascii_: bool, space: str) -> str:
    if isinstance(value, Num):
        return str(value)
    if isinstance(value, dict):
        return "{" + f",{space}".join(f"{json.dumps(k, ensure_ascii=ascii_)}:{space}{_dump(v, ascii_, space)}"
                                      for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + f",{space}".join(_dump(v, ascii_, space) for v in value) + "]"
    return json.dumps(value, ensure_ascii=ascii_)


def _texts(value):
    if isinstance(value, dict):
        return {k: _texts(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_texts(v) for v in value]
    return str(value) if isinstance(value, Num) else value


NUMBERS = st.one_of(st.integers(-10**25, 10**25).map(str), st.floats(allow_nan=False, allow_infinity=False).map(repr),
                    st.sampled_from(["-0", "1E+2", "0.0", "1e999", "-1e-999", "100e-2", FLOATED])).map(Num)
TEXTS = st.text(st.sampled_from('ab"\\-eE0159.,:[]{} \u00e9\u2028'), max_size=8)
VALUES = st.recursive(st.one_of(st.none(), st.booleans(), NUMBERS, TEXTS),
                      lambda inner: st.one_of(st.lists(inner, max_size=3),
                                              st.dictionaries(TEXTS, inner, max_size=3)), max_leaves=8)


@settings(max_examples=300, deadline=None)
@given(doc=st.dictionaries(TEXTS, VALUES, max_size=4), ascii_=st.booleans(), space=st.sampled_from(["", " ", "\n "]))
def test_quoting_numbers_turns_each_number_into_its_text_and_changes_nothing_else(doc, ascii_, space):
    assert json.loads(_quoted(_dump(doc, ascii_, space))) == _texts(doc)


# A Messages step's count that is not whole (or a float would round), with a string holding a digit
# after the line's last number (`"note": "v2"`): the quoted line did not parse, and the step's list
# was read through a float: 100e-2 and 1.00000000000000000001 counted 1 token each, exit 0.
MESSAGE = ('{"id": "msg_ID", "type": "message", "role": "assistant", "model": "claude-sonnet-4-5-20250929", '
           '"content": [{"type": "text", "text": "hi"}], "usage": {USAGE}TAIL}')
STEPS = ('"input_tokens": 3, "output_tokens": 0, "iterations": [{"type": "compaction", "input_tokens": IN, '
         '"output_tokens": 0}, {"type": "message", "input_tokens": 2, "output_tokens": 0}]')


@pytest.mark.parametrize("name", ["m.jsonl", "m.json"])
@pytest.mark.parametrize("tail", [', "note": "v2"', ', "request": "req-7"'])
@pytest.mark.parametrize("text", ["100e-2", FLOATED])
def test_a_steps_count_is_judged_by_its_text_whatever_string_follows(tmp_path, name, tail, text):
    first = MESSAGE.replace("ID", "a").replace("USAGE", '"input_tokens": 1000, "output_tokens": 0').replace("TAIL", "")
    second = MESSAGE.replace("ID", "b").replace("USAGE", STEPS.replace("IN", text)).replace("TAIL", tail)
    rep, reasons = _run(tmp_path, name, [first, second])
    assert (rep.accounting.quarantined, reasons) == (1, [f"input_tokens is not a whole number ({text})"])


# ----------------------------------------------------------------------------------------------
# Bedrock: the counts its hook reads from pieces of the line (a stream's invocation metrics, the
# Messages body's 1h cache-write split, Converse's per-TTL details)

BEDROCK = ('{"schemaType": "ModelInvocationLog", "timestamp": "2026-10-08T00:00:00Z", "requestId": "r1", '
           '"modelId": "anthropic.claude-sonnet-4-5-20250929-v1:0", "input": INPUT, "output": OUTPUT}')
WRITES = '{"inputTokenCount": 0, "cacheWriteInputTokenCount": 1000}'


def _stream(metrics: str) -> str:
    return BEDROCK.replace("INPUT", "{}").replace(
        "OUTPUT", '{"outputBodyJson": [{"type": "message_stop", "amazon-bedrock-invocationMetrics": ' + metrics + "}]}")


def _split(usage: str) -> str:
    return BEDROCK.replace("INPUT", WRITES).replace("OUTPUT", '{"outputTokenCount": 0, "outputBodyJson": {"usage": '
                                                    + usage + "}}")


# A piece's count that is not whole, with a string holding a digit after the piece's last number:
# the quoted piece did not parse and the count was read through a float (1 token, exit 0).
@pytest.mark.parametrize("name", ["b.jsonl", "b.json"])
@pytest.mark.parametrize("line,reason", [
    (_stream('{"inputTokenCount": 100e-2, "outputTokenCount": 0, "note": "v2"}'),
     "input_tokens is not a whole number (100e-2)"),
    (_stream(f'{{"inputTokenCount": {FLOATED}, "outputTokenCount": 0, "n": "1"}}'),
     f"input_tokens is not a whole number ({FLOATED})"),
    (_split('{"cache_creation": {"ephemeral_1h_input_tokens": 100e-2, "ephemeral_5m_input_tokens": 0, "n": "x1"}}'),
     "cache_write_1h_tokens is not a whole number (100e-2)"),
    (_split(f'{{"cacheDetails": [{{"ttl": "1h", "inputTokens": {FLOATED}, "n": "v1"}}]}}'),
     f"cache_write_1h_tokens is not a whole number ({FLOATED})"),
], ids=["metrics", "metrics-floated", "split", "details"])
def test_a_bedrock_piece_count_is_judged_by_its_text_whatever_string_follows(tmp_path, name, line, reason):
    rep, reasons = _run(tmp_path, name, [line])
    assert (rep.accounting.priced, rep.accounting.quarantined, reasons) == (0, 1, [reason])


# A key named twice in a piece counted its last value (the JSON path's), where a mapped path's
# counts its first (docs/formats.md): 7 input tokens here, and the 1h write 20 of 1000, not 10.
@pytest.mark.parametrize("name", ["b.jsonl", "b.json"])
@pytest.mark.parametrize("second", ['"inputTokenCount": 7', '"input\\u0054okenCount": 7'])
def test_a_stream_metrics_key_named_twice_counts_its_first_value(tmp_path, name, second):
    line = _stream('{"inputTokenCount": 5, ' + second + ', "outputTokenCount": 0}')
    rep, reasons = _run(tmp_path, name, [line])
    assert (rep.accounting.priced, rep.totals["input_tokens"], reasons) == (1, 5, [])


@pytest.mark.parametrize("name", ["b.jsonl", "b.json"])
def test_a_1h_split_key_named_twice_counts_its_first_value(tmp_path, name):
    line = _split('{"cache_creation": {"ephemeral_1h_input_tokens": 10, "ephemeral_1h_input_tokens": 20, '
                  '"ephemeral_5m_input_tokens": 0}}')
    rep, reasons = _run(tmp_path, name, [line])
    assert (rep.totals["cache_write_1h_tokens"], rep.totals["cache_write_5m_tokens"], reasons) == (10, 990, [])


# ----------------------------------------------------------------------------------------------
# The robust reading (a file with one broken line) must read every other line as the fast one does

MESSAGES_TWICE = ('{"id": "msg_b", "type": "message", "role": "assistant", "model": "claude-sonnet-4-5-20250929", '
                  '"content": [], "model": "claude-haiku-4-5-20251001", "usage": {"input_tokens": 5, "output_tokens": 0}}')


# Was: the robust reading's JSON path kept a repeated non-count key's last value (the model, a
# dimension, a request id); the decoder keeps the first. Fixed twice: a file with a broken line is read
# by parts (analyzer/line_retry.py), its good lines by the fast plan, as when clean; and a line read
# robustly reads each key's first value (_json_text.first_keys_only; tests/test_robust_reads_alike.py).
def test_a_key_named_twice_reads_the_same_in_a_file_with_a_broken_line(tmp_path):
    clean, _ = _run(tmp_path / "a", "m.jsonl", [MESSAGES_TWICE])
    broken, reasons = _run(tmp_path / "b", "m.jsonl", [MESSAGES_TWICE, '{"x": }'])
    assert reasons == ["not a JSON object (unparsable line)"]
    assert broken.totals["cost"] == clean.totals["cost"]


# A count key named twice whose first value is not a number: the fast reading takes that value (the
# decoder's: "5" is 5 tokens, null is missing); the robust reading took the first *number* at the
# path (canonical.number_at), the later 7: 7 tokens counted, exit 0, only because another line broke.
CC_TWICE = ('{"type": "assistant", "timestamp": "2026-10-08T00:00:00Z", "sessionId": "s", "requestId": "req_b", '
            '"message": {"id": "msg_b", "model": "claude-sonnet-4-5-20250929", "usage": {"input_tokens": FIRST, '
            '"input_tokens": 7, "output_tokens": 0}}}')


@pytest.mark.parametrize("first", ['"5"', "null", "true"])
def test_a_count_key_named_twice_with_a_first_value_not_a_number_reads_the_same_robustly(tmp_path, first):
    line = CC_TWICE.replace("FIRST", first)
    clean, clean_reasons = _run(tmp_path / "a", "projects/p/s.jsonl", [line])
    broken, reasons = _run(tmp_path / "b", "projects/p/s.jsonl", [line, '{"x": }'])
    assert (broken.accounting.quarantined - 1, broken.totals["input_tokens"]) == \
        (clean.accounting.quarantined, clean.totals["input_tokens"])

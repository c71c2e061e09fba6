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
    root = tmp_path / "logs"
    root.mkdir()
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

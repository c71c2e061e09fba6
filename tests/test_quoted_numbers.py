"""mapped.quoted_numbers: every number of a JSON text written as a string of its own text, and
nothing else changed (strings holding digits, quotes, escapes and minus signs included)."""
from __future__ import annotations

import json

import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st

from analyzer.dialects import mapped

_text = st.text(alphabet=st.sampled_from(list('ab0123456789-.eE+"\\/ :,{}[]\u00e9\n')), max_size=12)
_scalar = st.one_of(st.integers(-10**25, 10**25), st.floats(allow_nan=False, allow_infinity=False),
                    _text, st.booleans(), st.none())
_doc = st.recursive(_scalar, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                     st.dictionaries(_text, inner, max_size=4)), max_leaves=12)


def _as_text(value):
    """The document as quoted_numbers should make it: each number its text as json.dumps wrote it."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, int | float):
        return json.dumps(value)
    if isinstance(value, list):
        return [_as_text(v) for v in value]
    return {k: _as_text(v) for k, v in value.items()}


def _quoted(texts: list[str]) -> list[str]:
    return pl.select(mapped.quoted_numbers(pl.lit(pl.Series(texts, dtype=pl.String)))).to_series().to_list()


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(_text, _doc, max_size=5), st.booleans())
def test_every_number_becomes_its_own_text_and_nothing_else_changes(doc, spaced):
    text = json.dumps(doc, separators=(", ", ": ") if spaced else (",", ":"), ensure_ascii=spaced)
    assert json.loads(_quoted([text])[0]) == _as_text(doc)


def test_digits_inside_strings_after_the_last_number_stay_as_they_are():
    # OTLP writes 64-bit integers as strings: after the last number outside a string, the search went
    # on from inside a string and quoted `"4821"` again (`""4821""`): the line no longer parsed.
    line = ('{"cost_usd": {"doubleValue": 0.100005}, "duration_ms": {"intValue": "4821"}, '
            '"input_tokens": {"intValue": "6"}, "note": "a \\"5\\" and -3"}')
    assert json.loads(_quoted([line])[0]) == {"cost_usd": {"doubleValue": "0.100005"},
                                              "duration_ms": {"intValue": "4821"},
                                              "input_tokens": {"intValue": "6"}, "note": 'a "5" and -3'}


def test_a_text_ending_in_a_number_keeps_its_digits():
    # (the number quoted after the text, then taken off, must not take a digit of the text's own)
    assert [json.loads(t) for t in _quoted(["[1, 20]", "10", "{}", '"0"', "[0]"])] == [["1", "20"], "10", {}, "0", ["0"]]

"""The robust JSON Lines reading (a run retried after one malformed line) reads a flat line by a
regex (canonical.FLAT_LINE, flat_pair) instead of one JSON path parse per field: ~25 parses a
line made one bad line cost a 200K-row report 15x its CPU (docs/performance.md). These tests hold
it to what the JSON path reads, value for value, on lines near the edge of "flat": escapes,
control characters, long and negative integers, `-0`, floats, nested values, keys written twice,
Unicode spaces, torn lines."""

from __future__ import annotations

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from analyzer.dialects import canonical
from analyzer.errors import DialectError
from analyzer.sources import LINE, open_source

HEAD = '{"timestamp":"2026-10-08T00:00:00Z","model":"claude-sonnet-4-5","input_tokens":1,"output_tokens":2}'
VALUES = ['"x"', '""', '"a,b"', '"model"', '"é\u2028:"', '"2026-10-08T01:00:00Z"', "0", "-0", "7", "-12",
          "123456789012345678", "1234567890123456789", "99999999999999999999", "1.0", "1e3", "true", "false",
          "null", "[1]", '{"input_tokens":2}', '"\\u0041"', '"a\\"b"', '"tab\there"']
FLAT = ['"x"', '"3"', "5", "0", '"claude-haiku-4-5"', '"2026-10-08T02:00:00Z"', "null"]
KEYS = ["timestamp", "model", "input_tokens", "output_tokens", "cache_read_tokens", "request_id", "team"]
SPACE = st.sampled_from(["", "", "", " ", "\t", "\r", "\u00a0"])


@st.composite
def line(draw) -> str:
    value = st.one_of(st.sampled_from(FLAT), st.sampled_from(VALUES))  # (a flat one half the time)
    pairs = [f'{draw(SPACE)}"{k}"{draw(SPACE)}:{draw(SPACE)}{draw(value)}{draw(SPACE)}'
             for k in draw(st.lists(st.sampled_from(KEYS), max_size=6))]
    text = "{" + ",".join(pairs) + "}" + draw(SPACE)
    return text[:draw(st.integers(1, len(text)))] if draw(st.integers(0, 5)) == 0 else text


def _read(path: str, flat: bool) -> pl.DataFrame | str:
    with pytest.MonkeyPatch.context() as m:
        if not flat:  # (no key counts as plain: every line parsed per field, as before)
            m.setattr(canonical, "_PLAIN_KEY", canonical.re.compile(r"(?!)"))
        try:
            return canonical.to_canonical(open_source(path), robust=True).collect()
        except DialectError as e:  # (a key written twice is refused, either way)
            return str(e)


@settings(max_examples=60, deadline=None)
@given(lines=st.lists(line(), min_size=1, max_size=12))
def test_a_flat_line_reads_as_its_json_path_reads_it(tmp_path_factory, lines):
    path = tmp_path_factory.mktemp("flat") / "log.jsonl"
    path.write_text(HEAD + '\n' + "\n".join(lines) + "\n", encoding="utf-8")
    parsed, flat = _read(str(path), False), _read(str(path), True)
    if isinstance(parsed, str):
        assert flat == parsed
    else:
        assert flat.equals(parsed, null_equal=True)


@pytest.mark.parametrize("text,flat", [
    ('{"a":"x","b":-12,"c":true,"d":null}', True),
    (' {} \r', True),
    ('{"a":123456789012345678}', True),
    ('{"a":1234567890123456789}', False),  # (19 digits: serde_json may go through a float)
    ('{"a":-0}', False),
    ('{"a":1.0}', False),
    ('{"a":"\\u0041"}', False),
    ('{"a":"tab\there"}', False),  # (a control character: not valid JSON)
    ('{"a":{"b":1}}', False),
    ('{"a":[1]}', False),
    ('\u00a0{"a":1}', False),
    ('{"a":tru}', False),
])
def test_which_lines_are_flat(text, flat):
    assert pl.select(pl.lit(text).str.contains(canonical.FLAT_LINE)).item() is flat


def test_a_key_written_twice_reads_the_last_value_as_the_json_path_does():
    # (_late_keys refuses a file naming a key it reads twice; the regex agrees with serde anyway)
    lines = pl.DataFrame({LINE: ['{"k":"x","k":7}', '{"k":7,"k":"x"}', '{"k":1,"k":null}']})
    got = lines.select(pl.col(LINE).str.extract_all(canonical.flat_pair("k")).list.last()).to_series().to_list()
    assert got == [',"k":7', ',"k":"x"', ',"k":null']
    assert lines.select(pl.col(LINE).str.json_path_match("$.k")).to_series().to_list() == ["7", "x", None]

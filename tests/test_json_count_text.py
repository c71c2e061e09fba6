"""A JSON count is judged by the text the line writes, as a CSV field is (issue 17 §1.3).

Polars' JSON readers turn a number into a float before any check sees it: `1.00000000000000000001`,
`4.0000000000000001` and `100e-2` were counted with exit 0 (as 1, 4 and 1 tokens), where the same
text in a CSV is quarantined. The robust JSON reading now reads the number's own text after the
record's top-level key (canonical._number_text) and judges it as CSV text is (`_parse.count`)."""

from __future__ import annotations

import json
from decimal import Decimal

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from analyzer.pipeline import Options, analyze

HEAD = '{"timestamp": "2026-10-08T00:00:00Z", "model": "claude-sonnet-4-5", '
CLEAN = HEAD + '"input_tokens": 1000, "output_tokens": 0}'
IN = Decimal("0.000003")  # Sonnet 4.5 input, $3/MTok


def _jsonl(tmp_path, line: str, name: str = "c.jsonl") -> str:
    p = tmp_path / name
    p.write_text(CLEAN + "\n" + line + "\n")
    return str(p)


def _verdict(path: str, q) -> tuple[int, int, int, list[str]]:
    rep = analyze([path], ["model"], Options(quarantine=str(q)))
    reasons = [json.loads(x)["reason"] for x in q.read_text().splitlines()] if q.exists() else []
    return rep.accounting.priced, rep.accounting.quarantined, rep.totals["input_tokens"], reasons


@pytest.mark.parametrize("text,reason", [
    ("1.00000000000000000001", "input_tokens is not a whole number (1.00000000000000000001)"),
    ("4.0000000000000001", "input_tokens is not a whole number (4.0000000000000001)"),
    ("100e-2", "input_tokens is not a whole number (100e-2)"),  # (CSV takes no negative exponent)
    ("99999999999999999999", "input_tokens is too large (99999999999999999999)"),  # was rendered 1e+20
])
def test_a_count_a_float_would_round_is_quarantined_naming_its_text_and_line(tmp_path, text, reason):
    q = tmp_path / "q.jsonl"
    path = _jsonl(tmp_path, HEAD + f'"input_tokens": {text}, "output_tokens": 0}}')
    assert _verdict(path, q) == (1, 1, 1000, [reason])
    assert [json.loads(x)["line"] for x in q.read_text().splitlines()] == [2]


@pytest.mark.parametrize("text,tokens", [("1.0", 1), ("1e0", 1), ("1E2", 100), ("2.50e1", 25), ("-0", 0),
                                         ("7.000000000000000000", 7)])
def test_a_whole_count_in_float_notation_is_read_as_the_csv_path_reads_it(tmp_path, text, tokens):
    path = _jsonl(tmp_path, HEAD + f'"input_tokens": {text}, "output_tokens": 0}}')
    assert _verdict(path, tmp_path / "q.jsonl") == (2, 0, 1000 + tokens, [])


@pytest.mark.parametrize("line", [
    # the record's own count is whole; a nested or quoted one is not its count
    HEAD + '"meta": {"input_tokens": 1.5}, "input_tokens": 2.0, "output_tokens": 0}',
    HEAD + '"note": "\\"input_tokens\\": 1.5", "input_tokens": 2.0, "output_tokens": 0}',
    HEAD + '"list": [{"input_tokens": 1.5}, "]"], "input_tokens": 2.0, "output_tokens": 0}',
    HEAD + '"note": "{\\"input_tokens\\": 1.5}", "input_tokens": 2.0, "output_tokens": 0}',  # braces in a string
    '{"input_tokens": 2.0, "meta": {"input_tokens": 1.00000000000000000001}, ' + HEAD[1:] + '"output_tokens": 0}',
    HEAD + '"input_tokens" :\t2.0 , "output_tokens": 0}',
    HEAD + '"\\u0069nput_tokens": 2.0, "output_tokens": 0}',  # the same key, an escaped letter
])
def test_only_the_records_own_count_text_is_judged(tmp_path, line):
    assert _verdict(_jsonl(tmp_path, line), tmp_path / "q.jsonl") == (2, 0, 1002, [])


def test_a_count_key_written_with_an_escape_is_judged_by_its_text(tmp_path):
    line = HEAD + '"input\\u005ftokens": 1.00000000000000000001, "output_tokens": 0}'
    priced, quarantined, _, reasons = _verdict(_jsonl(tmp_path, line), tmp_path / "q.jsonl")
    assert (priced, quarantined, reasons) == (1, 1, ["input_tokens is not a whole number (1.00000000000000000001)"])


def test_a_respelled_late_count_is_judged_by_its_text(tmp_path):
    # `Cache_Read_Tokens` is read by the late-key search's spelling: its text is found under it
    line = HEAD + '"input_tokens": 0, "output_tokens": 0, "Cache_Read_Tokens": 1.00000000000000000001}'
    q = tmp_path / "q.jsonl"
    priced, quarantined, _, reasons = _verdict(_jsonl(tmp_path, line), q)
    assert (priced, quarantined) == (1, 1)
    assert reasons == ["cache_read_tokens is not a whole number (1.00000000000000000001)"]


# Any number JSON can write: sign, integer part (no leading zeros), fraction, exponent.
NUMBERS = st.builds(
    lambda sign, whole, frac, exp: sign + whole + frac + exp,
    st.sampled_from(["", "-"]),
    st.one_of(st.just("0"), st.from_regex(r"[1-9][0-9]{0,24}", fullmatch=True)),
    st.one_of(st.just(""), st.from_regex(r"\.[0-9]{1,25}", fullmatch=True), st.sampled_from([".0", ".00000000000000000001"])),
    st.one_of(st.just(""), st.from_regex(r"[eE][-+]?[0-9]{1,3}", fullmatch=True), st.sampled_from(["e0", "E+2", "e-1"])),
)


@settings(max_examples=60, deadline=None)
@given(text=NUMBERS)
def test_any_number_text_of_a_count_gets_the_same_verdict_in_json_lines_as_in_csv(tmp_path_factory, text):
    tmp = tmp_path_factory.mktemp("num")
    jsonl = _jsonl(tmp, HEAD + f'"input_tokens": {text}, "output_tokens": 0}}')
    csv = tmp / "c.csv"
    csv.write_text("timestamp,model,input_tokens,output_tokens\n2026-10-08T00:00:00Z,claude-sonnet-4-5,1000,0\n"
                   f"2026-10-08T00:00:00Z,claude-sonnet-4-5,{text},0\n")
    from_json = _verdict(jsonl, tmp / "qj.jsonl")
    from_csv = _verdict(str(csv), tmp / "qc.jsonl")
    # The same reason, a number beyond a float's range (1e400) too: Polars' JSON readers cannot read
    # such a line, which is read with its numbers quoted (it was quarantined whole, as unparsable).
    assert from_json == from_csv


# The mapped JSON formats read a count at a nested path, through the same decoder: each takes the
# text written at its path (mapped._with_count_texts) and judges it as the CSV above does.
MAPPED = {
    "anthropic-messages": ("m.jsonl", '{"id": "msg_ID", "type": "message", "role": "assistant", "model": '
                           '"claude-sonnet-4-5-20250929", "content": [{"type": "text", "text": "\\"input_tokens\\": 1.5"}], '
                           '"usage": {"input_tokens": TEXT, "output_tokens": 0}}'),
    "claude-code": ("projects/p/s.jsonl", '{"type": "assistant", "timestamp": "2026-10-08T00:00:00Z", "sessionId": "s", '
                    '"requestId": "req_ID", "message": {"id": "msg_ID", "model": "claude-sonnet-4-5-20250929", '
                    '"usage": {"input_tokens": TEXT, "output_tokens": 0, "cache_creation": {"input_tokens": 1.5}}}}'),
    "bedrock-invocations": ("b.jsonl", '{"schemaType": "ModelInvocationLog", "timestamp": "2026-10-08T00:00:00Z", '
                            '"requestId": "ID", "modelId": "anthropic.claude-sonnet-4-5-20250929-v1:0", '
                            '"input": {"inputTokenCount": TEXT}, "output": {"outputTokenCount": 0}}'),
}


def _mapped(tmp, dialect: str, text: str) -> str:
    name, line = MAPPED[dialect]
    p = tmp / name
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(line.replace("ID", "a").replace("TEXT", "1000") + "\n"
                 + line.replace("ID", "b").replace("TEXT", text) + "\n")
    return str(tmp / name.split("/")[0]) if "/" in name else str(p)


def _mapped_verdict(path: str, q) -> tuple[int, int, int, list[str]]:
    rep = analyze([path], ["model"], Options(quarantine=str(q), batch_time="2026-10-08T00:00:00Z"))
    reasons = [json.loads(x)["reason"] for x in q.read_text().splitlines()] if q.exists() else []
    return rep.accounting.priced, rep.accounting.quarantined, rep.totals["input_tokens"], reasons


@pytest.mark.parametrize("dialect", sorted(MAPPED))
@pytest.mark.parametrize("text,verdict", [
    ("1.00000000000000000001", (1, 1, 1000, ["input_tokens is not a whole number (1.00000000000000000001)"])),
    ("100e-2", (1, 1, 1000, ["input_tokens is not a whole number (100e-2)"])),
    ("99999999999999999999", (1, 1, 1000, ["input_tokens is too large (99999999999999999999)"])),
    ("2.50e1", (2, 0, 1025, [])),
    ("7", (2, 0, 1007, [])),
])
def test_a_mapped_format_judges_the_count_written_at_its_path(tmp_path, dialect, text, verdict):
    assert _mapped_verdict(_mapped(tmp_path, dialect, text), tmp_path / "q.jsonl") == verdict


@settings(max_examples=30, deadline=None)
@given(text=NUMBERS, dialect=st.sampled_from(sorted(MAPPED)))
def test_any_number_text_of_a_mapped_count_gets_the_csv_verdict(tmp_path_factory, text, dialect):
    tmp = tmp_path_factory.mktemp("num")
    csv = tmp / "c.csv"
    csv.write_text("timestamp,model,input_tokens,output_tokens\n2026-10-08T00:00:00Z,claude-sonnet-4-5,1000,0\n"
                   f"2026-10-08T00:00:00Z,claude-sonnet-4-5,{text},0\n")
    from_json = _mapped_verdict(_mapped(tmp, dialect, text), tmp / "qj.jsonl")
    from_csv = _verdict(str(csv), tmp / "qc.jsonl")
    assert from_json[:3] == from_csv[:3]
    beyond = abs(float(text)) == float("inf")  # (unparsable as a whole line, as above)
    assert from_json[3] == (["not a JSON object (unparsable line)"] if beyond else from_csv[3])


# A mapped line is searched for a floated count in two steps (mapped._with_count_texts): every line
# for the keys' last characters, then only the lines found for the whole keys. The first step must
# find every line the second would: the two together flag exactly the lines the one search of the
# whole keys flags.
KEYS = st.text(st.sampled_from('ab_Tö"\\/ 9'), min_size=1, max_size=12)
VALUES = st.sampled_from(["1", "12", "1.5", "-2.0", "1e3", "7E-1", "1" * 19, "1" * 18, '"1.5"', "[1.5]", "true"])
SPACES = st.sampled_from(["", " ", "\t\n "])


def _one_search(keys: list[str]) -> pl.Expr:
    """The search as it was: every line, for the whole keys (or a key holding a `\\u` escape)."""
    from analyzer.dialects.mapped import _regex_literal
    written = "|".join(sorted({_regex_literal(json.dumps(k, ensure_ascii=False)[1:-1]) for k in keys}))
    return pl.col("_line").str.contains(rf'(?:"(?:{written})|\\u(?:[^"\\]|\\.)*)"[ \t\r\n]*:[ \t\r\n]*'
                                        r'-?(?:[0-9]+[.eE]|[0-9]{19})')


@settings(max_examples=200, deadline=None)
@given(keys=st.lists(KEYS, min_size=1, max_size=4, unique=True), data=st.data())
def test_the_first_search_for_floated_counts_misses_no_line_the_whole_keys_find(keys, data):
    from analyzer.dialects.mapped import FIRSTS, _with_count_texts
    members = data.draw(st.lists(st.tuples(st.sampled_from([*keys, "other_tokens", "x"]), st.booleans(), SPACES,
                                           VALUES), max_size=4))
    lines = []
    for key, escape, space, value in members:
        text = json.dumps(key, ensure_ascii=False)
        if escape and key[-1:].isascii():  # the key's last character as a `\u` escape
            text = text[:-2] + f"\\u{ord(key[-1]):04x}" + '"'
        lines.append("{" + ",".join([f'{text}{space}:{space}{value}', '"pad": "\\"' + key + '\\": 1.5"']) + "}")
    lines.append('{"' + '", "'.join(keys) + '": 1.5}')  # (a key's text as a value, not a key)
    fields = {"input_tokens": tuple((k,) for k in keys)}
    typed = {(k,): pl.String() for k in keys}
    lf = pl.LazyFrame({"_line": lines})
    # (the robust reading's paths read FIRSTS: the line, here naming no key twice)
    ok = lf.with_columns(pl.lit(True).alias("_line_ok"), pl.col("_line").alias(FIRSTS))
    flagged, _ = _with_count_texts(ok, lambda parts: pl.lit(None, pl.String), fields, typed, {}, True)
    got = flagged.select(pl.col("_n_line").is_not_null()).collect().to_series().to_list()
    want = lf.select(_one_search(keys)).collect().to_series().to_list()
    assert got == want

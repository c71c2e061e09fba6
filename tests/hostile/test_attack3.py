"""Attacks on tonight's JSON, store-rollup, Int64-pricing and reserved-column changes (attack3):
each test is a way through that worked before its fix."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from analyzer.cli import main

HEAD = '{"timestamp": "2026-10-08T00:00:00Z", "model": "claude-sonnet-4-5", '
CLEAN = HEAD + '"input_tokens": 1000, "output_tokens": 0}'


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


# A record naming one key twice: JSON readers disagree on which value it has (Python and jq take the
# last, Polars' readers took the first), and the CSV path refuses a header naming a column twice.
# `{"input_tokens": 1, "input_tokens": 7}` was counted as 1 token with exit 0 in JSON Lines, and as
# 7 from the same records in a JSON array. Now both refuse the file, naming the line (record) and key.
@pytest.mark.parametrize("line", [
    HEAD + '"input_tokens": 1, "input_tokens": 7, "output_tokens": 0}',
    HEAD + '"input_tokens": 1, "input_tokens": 2.5, "output_tokens": 0}',
    HEAD + '"input_tokens": 1, "output_tokens": 0, "input_tokens" :7}',
    HEAD + '"input_tokens": 1, "output_tokens": 0, "model": "claude-opus-4-1"}',  # the model: the rate
    HEAD + '"input_tokens": 1, "input\\u005ftokens": 7, "output_tokens": 0}',  # the same key, escaped
    HEAD + '"input_tokens": 1, "usage": {"input_tokens": 1}, "input_tokens": 7, "output_tokens": 0}',
    HEAD + '"usage": {"input_tokens": 1}, "input_tokens": 1, "tags": [{"a": 1}, 2], "input_tokens": 7, "output_tokens": 0}',
])
@pytest.mark.parametrize("first", [True, False])
def test_a_json_lines_record_naming_a_key_twice_is_refused(tmp_path, line, first):
    p = tmp_path / "c.jsonl"
    p.write_text("\n".join([line] if first else [CLEAN, CLEAN, line]) + "\n")
    r = run("report", p)
    assert r.exit_code == 2, r.output
    key = "model" if '"model": "claude-opus' in line else "input_tokens"
    assert f"line {1 if first else 3}" in r.output and f"{key!r} twice" in r.output, r.output


def test_a_json_array_record_naming_a_key_twice_is_refused(tmp_path):
    p = tmp_path / "c.json"
    p.write_text("[" + CLEAN + ",\n" + HEAD + '"input_tokens": 1, "input_tokens": 7, "output_tokens": 0}]')
    r = run("report", p)
    assert r.exit_code == 2, r.output
    assert "record 2" in r.output and "'input_tokens' twice" in r.output, r.output


@pytest.mark.parametrize("line", [
    # a nested object or a string repeating a key is not the record's own key twice
    HEAD + '"meta": {"input_tokens": 1, "input_tokens": 2}, "input_tokens": 5, "output_tokens": 0}',
    HEAD + '"note": "\\"input_tokens\\": 1", "input_tokens": 5, "output_tokens": 0}',
    HEAD + '"input_tokens": 5, "output_tokens": 0, "meta": [{"input_tokens": 1}]}',
])
def test_a_key_repeated_only_inside_a_value_is_read_as_before(tmp_path, line):
    p = tmp_path / "c.jsonl"
    p.write_text(CLEAN + "\n" + line + "\n")
    r = run("report", p, "--format", "json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)["totals"]["input_tokens"] == 1005


# A table's own `_row` or `_bad` is not read (sources.RESERVED); one written with a space or a BOM
# around it was cleaned to that name and collided with the reader's own column: "cannot read input:
# column '_row' is duplicate" (exit 2, no file named) for a valid log.
@pytest.mark.parametrize("name", [" _row", "_row ", "_bad ", "\t_bad", "\ufeff_row"])
@pytest.mark.parametrize("kind", ["csv", "parquet"])
def test_a_reserved_column_name_with_spaces_around_it_is_not_read(tmp_path, name, kind):
    import polars as pl

    frame = pl.DataFrame({"timestamp": ["2026-10-08T00:00:00Z"], name: ["7"], "model": ["claude-sonnet-4-5"],
                          "input_tokens": [1000], "output_tokens": [0]})
    p = tmp_path / f"log.{kind}"
    frame.write_csv(p) if kind == "csv" else frame.write_parquet(p)
    r = run("report", p, "--format", "json")
    assert r.exit_code == 0, r.output
    out = json.loads(r.output)
    assert out["totals"]["input_tokens"] == 1000 and out["accounting"]["priced"] == 1, out


# A header whose quote never closes is refused naming the column: behind a BOM the first name (a
# valid quoted `"timestamp"`) was named instead of the broken one, and a name a quote only opens or
# closes (`"team`, `team"`) was shown as '"' with the advice '' -> "".
@pytest.mark.parametrize("header, named", [
    (b'\xef\xbb\xbf"timestamp",model,input_tokens,output_tokens,"te"am"', "'\"te\"am\"'"),
    (b"timestamp,model,input_tokens,output_tokens,team\"", "'team\"'"),
    (b'timestamp,model,input_tokens,output_tokens,"team', "'\"team'"),
])
def test_an_unclosed_header_quote_names_its_column(tmp_path, header, named):
    p = tmp_path / "log.csv"
    p.write_bytes(header + b"\n2026-10-08T00:00:00Z,claude-sonnet-4-5,1000,0,x\n")
    r = run("report", p)
    assert r.exit_code == 2, r.output
    assert f"a quote inside a column name ({named})" in r.output, r.output


@pytest.mark.parametrize("lines", [
    [CLEAN, HEAD + '"input_tokens": 1000, "output_tokens": 0, "team": "a", "team": "b"}'],  # in the first records
    [CLEAN] * 3 + [HEAD + '"input_tokens": 1000, "output_tokens": 0, "team": "a", "team": "b"}'],
])
def test_a_json_lines_dimension_named_twice_is_refused(tmp_path, lines):
    # (the tag `a` was reported, `b` dropped, with exit 0)
    p = tmp_path / "c.jsonl"
    p.write_text("\n".join(lines) + "\n")
    r = run("report", p, "--by", "team")
    assert r.exit_code == 2 and "'team' twice" in r.output, r.output


# A key holding an escaped quote before a count's name (`"x\"input_tokens": 7`, the key x"input_tokens)
# was taken for the count's own key on a one-brace line: 7.5 was counted as 7 with exit 0, and a
# whole 7.0 was quarantined as 7.5.
@pytest.mark.parametrize("decoy, real, tokens, quarantined", [("7", "7.5", 1000, 1), ("7.5", "7.0", 1007, 0),
                                                              ("1", "1.00000000000000000001", 1000, 1)])
def test_a_key_ending_in_a_counts_name_after_an_escaped_quote_is_not_the_count(tmp_path, decoy, real, tokens,
                                                                               quarantined):
    from analyzer.pipeline import Options, analyze

    p = tmp_path / "c.jsonl"
    p.write_text(CLEAN + "\n" + HEAD + f'"x\\"input_tokens": {decoy}, "input_tokens": {real}, "output_tokens": 0}}\n')
    rep = analyze([str(p)], ["model"], Options(quarantine=str(tmp_path / "q.jsonl")))
    assert (rep.totals["input_tokens"], rep.accounting.quarantined) == (tokens, quarantined)


def _verdict(path, q) -> tuple:
    from analyzer.pipeline import Options, analyze

    rep = analyze([str(path)], ["model"], Options(quarantine=str(q)))
    reasons = [json.loads(x)["reason"] for x in q.read_text().splitlines()] if q.exists() else []
    return rep.accounting.priced, rep.accounting.quarantined, rep.totals["input_tokens"], reasons


# A JSON array is rewritten as JSON Lines through Python's json, whose floats rounded a count's text:
# `1.00000000000000000001`, `4.0000000000000001` and `100e-2` were counted (1, 4, 1 tokens) with exit 0
# where the same text in a CSV (the reference) or in JSON Lines is quarantined.
@pytest.mark.parametrize("text", ["1.00000000000000000001", "4.0000000000000001", "100e-2", "1e400", "7.5", "1E2",
                                  "2.50e1", "1.0", "-0.0", "7", "99999999999999999999"])
def test_a_json_array_count_gets_the_csv_verdict_of_its_text(tmp_path, text):
    arr = tmp_path / "a.json"
    arr.write_text("[" + CLEAN + ",\n" + HEAD + f'"input_tokens": {text}, "output_tokens": 0}}]')
    csv = tmp_path / "c.csv"
    csv.write_text("timestamp,model,input_tokens,output_tokens\n2026-10-08T00:00:00Z,claude-sonnet-4-5,1000,0\n"
                   f"2026-10-08T00:00:00Z,claude-sonnet-4-5,{text},0\n")
    assert _verdict(arr, tmp_path / "qa.jsonl") == _verdict(csv, tmp_path / "qc.jsonl")


def test_counts_echoed_in_a_nested_object_are_not_decoded_line_by_line(tmp_path, monkeypatch):
    # A log keeping the response's `usage` beside its counts repeats each count's key on every line,
    # in a nested object: the repeated-key search must not send every such line to Python (5x CPU).
    import analyzer.dialects.canonical as canonical

    decoded = []
    real = canonical.first_key_match

    def counted(src, pattern, accept):
        return real(src, pattern, accept=lambda line: decoded.append(line) or accept(line))
    monkeypatch.setattr(canonical, "first_key_match", counted)
    p = tmp_path / "c.jsonl"
    p.write_text((HEAD + '"input_tokens": 5, "output_tokens": 1, "usage": {"input_tokens": 5, "output_tokens": 1}}\n') * 50)
    r = run("report", p, "--format", "json")
    assert r.exit_code == 0 and json.loads(r.output)["totals"]["input_tokens"] == 250, r.output
    assert decoded == []


# Polars' JSON readers refuse a number past a float's range: the JSON Lines record was quarantined whole
# as unparsable, not for its count as CSV's text is. Now a line that parses once its numbers are quoted
# is read so, and its count judged by its text.
def test_a_json_lines_count_past_float_range_gets_the_csv_reason(tmp_path):
    jsonl = tmp_path / "c.jsonl"
    jsonl.write_text(CLEAN + "\n" + HEAD + '"input_tokens": 1e400, "output_tokens": 0}\n')
    csv = tmp_path / "c.csv"
    csv.write_text("timestamp,model,input_tokens,output_tokens\n2026-10-08T00:00:00Z,claude-sonnet-4-5,1000,0\n"
                   "2026-10-08T00:00:00Z,claude-sonnet-4-5,1e400,0\n")
    assert _verdict(jsonl, tmp_path / "qj.jsonl") == _verdict(csv, tmp_path / "qc.jsonl")

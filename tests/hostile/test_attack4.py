"""Attacks on tonight's mapped JSON count texts (mapped._with_count_texts, canonical.number_at) and the
count paths beside them (attack4): each test is a way a count's text got a verdict other than the one
the same text gets in a CSV (tests/test_json_count_text.py), and worked before its fix."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from analyzer.pipeline import Options, analyze

FLOATED = "1.00000000000000000001"  # a float reads it as 1; as CSV text it is not a whole number
NOT_WHOLE = [f"input_tokens is not a whole number ({FLOATED})"]

MESSAGES = ('{"id": "msg_ID", "type": "message", "role": "assistant", "model": "claude-sonnet-4-5-20250929", '
            '"content": [{"type": "text", "text": "hi"}], "usage": {USAGE}}')
CLAUDE_CODE = ('{"type": "assistant", "timestamp": "2026-10-08T00:00:00Z", "sessionId": "s", "requestId": "req_ID", '
               '"message": {"id": "msg_ID", "model": "claude-sonnet-4-5-20250929", "usage": {USAGE}}}')
FIRST = '"input_tokens": 1000, "output_tokens": 0'


def _verdict(tmp_path, name: str, lines: list[str]) -> tuple[int, int, int, list[str]]:
    """(priced, quarantined, input tokens, quarantine reasons) of a file holding `lines`."""
    p = tmp_path / name
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text("".join(line + "\n" for line in lines))
    q = tmp_path / "q.jsonl"
    root = tmp_path / name.split("/")[0]
    rep = analyze([str(root)], ["model"], Options(quarantine=str(q), batch_time="2026-10-08T00:00:00Z"))
    reasons = [json.loads(x)["reason"] for x in q.read_text().splitlines()] if q.exists() else []
    return rep.accounting.priced, rep.accounting.quarantined, rep.totals["input_tokens"], reasons


def _two(template: str, usage: str) -> list[str]:
    return [template.replace("ID", "a").replace("USAGE", FIRST), template.replace("ID", "b").replace("USAGE", usage)]


# A count key written with an escape is the same key to the decoder, which read its number through a
# float: the line was not flagged (the flag searched the key's literal name only), so the count was
# 1 token with exit 0. A canonical line with the same key was already quarantined.
@pytest.mark.parametrize("name,template", [("m.jsonl", MESSAGES), ("projects/p/s.jsonl", CLAUDE_CODE)])
@pytest.mark.parametrize("key", ["input\\u005ftokens", "\\u0069nput_tokens", "input_token\\u0073"])
def test_a_mapped_count_key_written_with_an_escape_is_judged_by_its_text(tmp_path, name, template, key):
    usage = f'"{key}": {FLOATED}, "output_tokens": 0'
    assert _verdict(tmp_path, name, _two(template, usage)) == (1, 1, 1000, NOT_WHOLE)


# A custom mapping's key that is not ASCII: the flag searched json.dumps' spelling (`t\u00f6kens`),
# never the one a line writes (`tökens`), so the count was read through a float.
@pytest.mark.parametrize("key", ["eingabe_tökens", "eingabe_t\\u00f6kens"])
def test_a_custom_count_key_beyond_ascii_is_judged_by_its_text(tmp_path, key):
    mapping = tmp_path / "m.toml"
    mapping.write_text('name = "homegrown"\nsignature = ["modell"]\n[fields]\ntimestamp = "zeit"\n'
                       'model_raw = "modell"\ninput_tokens = "usage.eingabe_tökens"\noutput_tokens = "usage.aus"\n',
                       encoding="utf-8")
    line = '{"zeit": "2026-10-08T00:00:00Z", "modell": "claude-sonnet-4-5", "usage": {"KEY": TEXT, "aus": 0}}'
    p = tmp_path / "l.jsonl"
    p.write_text(line.replace("KEY", "eingabe_tökens").replace("TEXT", "1000") + "\n"
                 + line.replace("KEY", key).replace("TEXT", FLOATED) + "\n", encoding="utf-8")
    q = tmp_path / "q.jsonl"
    rep = analyze([str(p)], ["model"], Options(mapping=str(mapping), quarantine=str(q)))
    assert (rep.accounting.priced, rep.accounting.quarantined, rep.totals["input_tokens"]) == (1, 1, 1000)
    assert [json.loads(x)["reason"] for x in q.read_text().splitlines()] == NOT_WHOLE


def _start(mid: str, inp: str) -> str:
    return ('{"type": "message_start", "message": {"id": "MID", "type": "message", "role": "assistant", '
            '"model": "claude-sonnet-4-5-20250929", "usage": {"input_tokens": TEXT, "output_tokens": 1}}}'
            ).replace("MID", mid).replace("TEXT", inp)


def _delta(out: str) -> str:
    return '{"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": TEXT}}'.replace(
        "TEXT", out)


# A stream's delta carries its message_start's input count forward (anthropic_messages._prepare), read
# by the decoder: the start was quarantined, and its delta priced the response with 1 input token. The
# same start with 1.5 (a text the decoder keeps) quarantines both, and prices nothing of the response.
@pytest.mark.parametrize("text", ["1.5", FLOATED, "100e-2"])
def test_a_streams_input_count_is_judged_by_its_text_on_every_event(tmp_path, text):
    lines = [_start("msg_a", "1000"), _delta("5"), _start("msg_b", text), _delta("7")]
    priced, quarantined, tokens, reasons = _verdict(tmp_path, "s.jsonl", lines)
    assert (priced, quarantined, tokens) == (1, 2, 1000)
    assert reasons == [f"input_tokens is not a whole number ({text})"] * 2


ITERATED = ('"input_tokens": 3, "output_tokens": 0, "iterations": [{"type": "compaction", "input_tokens": TEXT, '
            '"output_tokens": 0}, {"type": "message", "input_tokens": 2, "output_tokens": 0}]')


# A step's count (usage.iterations) was decoded into an Int64 on the fast path: `1.5` read as 1, exit 0.
# The robust path (any broken line elsewhere in the file) read it as text and quarantined the step.
@pytest.mark.parametrize("broken", [False, True])
def test_a_steps_count_gets_one_verdict_whichever_path_reads_the_file(tmp_path, broken):
    lines = _two(MESSAGES, ITERATED.replace("TEXT", "1.5"))
    if broken:
        lines.append('{"id": "msg_c", "type": "message", "usage": {"input_tokens": tru}}')
    reasons = ["input_tokens is not a whole number (1.5)"] + (["not a JSON object (unparsable line)"] if broken else [])
    # (record b is quarantined whole: its good second step, 2 tokens, is not priced either)
    assert _verdict(tmp_path, "m.jsonl", lines) == (1, 1 + broken, 1000, reasons)


BEDROCK = ('{"schemaType": "ModelInvocationLog", "timestamp": "2026-10-08T00:00:00Z", "requestId": "r1", '
           '"modelId": "anthropic.claude-sonnet-4-5-20250929-v1:0", '
           '"input": {"inputTokenCount": 0, "cacheWriteInputTokenCount": 1000}, "output": {"outputTokenCount": 0, '
           '"outputBodyJson": {"usage": {"cache_creation": {"ephemeral_1h_input_tokens": TEXT, '
           '"ephemeral_5m_input_tokens": 0}}}}}')


def _bedrock(tmp_path, text: str):
    p = tmp_path / "b.jsonl"
    p.write_text(BEDROCK.replace("TEXT", text) + "\n")
    q = tmp_path / "q.jsonl"
    rep = analyze([str(p)], ["model"], Options(quarantine=str(q)))
    return rep, [json.loads(x)["reason"] for x in q.read_text().splitlines()] if q.exists() else []


# Bedrock's 1h cache-write split was cast to Int64 from the text `json_path_match` gives: `1000.0` and
# `1e3` (whole: 1000 as CSV text) became null, and the 1h write was priced at the 5m rate, exit 0.
@pytest.mark.parametrize("text", ["1000", "1000.0", "1e3", "1000.000"])
def test_a_bedrock_1h_write_written_whole_in_float_notation_is_priced_at_the_1h_rate(tmp_path, text):
    rep, reasons = _bedrock(tmp_path, text)
    assert (rep.totals["cache_write_5m_tokens"], rep.totals["cache_write_1h_tokens"], reasons) == (0, 1000, [])
    assert rep.totals["cost"] == 1000 * Decimal("6.6") / 10**6  # Sonnet 4.5 on Bedrock in-region: $6 x 1.1


def test_a_bedrock_1h_write_that_is_not_whole_is_quarantined(tmp_path):
    rep, reasons = _bedrock(tmp_path, "1.5")
    assert (rep.accounting.priced, rep.accounting.quarantined) == (0, 1)
    assert reasons == ["cache_write_1h_tokens is not a whole number (1.5)"]


# --- Found, then fixed (were strict xfails), and one found since (strict xfail) -----------------------

def test_a_steps_count_a_float_would_round_is_quarantined(tmp_path):
    priced, quarantined, _, reasons = _verdict(tmp_path, "m.jsonl", _two(MESSAGES, ITERATED.replace("TEXT", FLOATED)))
    assert (quarantined, reasons) == (1, NOT_WHOLE)


def test_a_bedrock_1h_write_a_float_would_round_is_quarantined(tmp_path):
    rep, reasons = _bedrock(tmp_path, FLOATED)
    assert reasons == [f"cache_write_1h_tokens is not a whole number ({FLOATED})"]


# A bad count in a record's second step: the step's row was quarantined but is not the record's first
# row (`_rec` 0), so it was counted nowhere (the accounting counts records) and written to no quarantine
# file, and the record counted as priced without the step's tokens: 1004 where the steps hold 1006,
# exit 0. Now one bad row quarantines its whole record (mapped.one_verdict_per_record): record b is
# quarantined once, none of its steps priced (1000 input tokens: record a's alone).
def test_a_bad_count_in_a_later_step_is_not_lost(tmp_path):
    steps = ITERATED.replace("TEXT", "4").replace('"input_tokens": 2', '"input_tokens": 1.5')
    priced, quarantined, tokens, reasons = _verdict(tmp_path, "m.jsonl", _two(MESSAGES, steps))
    assert (priced, quarantined, tokens, reasons) == (1, 1, 1000, ["input_tokens is not a whole number (1.5)"])


# A key named twice inside a mapped path's object: JSON Lines (Polars' decoder, and number_at) took the
# first value, a JSON array (Python's json) the last, silently: 1005 input tokens from .jsonl and 1007
# from .json. Both now take the first (the array is rewritten with its pairs as written); see
# tests/test_mapped_count_exact.py for the value itself in every container.
def test_a_mapped_count_key_named_twice_gets_one_verdict_in_json_lines_and_json(tmp_path):
    lines = _two(MESSAGES, '"input_tokens": 5, "input_tokens": 7, "output_tokens": 0')
    from_lines = _verdict(tmp_path / "l", "m.jsonl", lines)
    from_array = _verdict(tmp_path / "a", "m.json", ["[" + ",\n".join(lines) + "]"])
    assert from_lines == from_array


# A top-level key of the first records becomes a dimension (mapped._extra_dimensions), read by name: a
# key `*` is Polars' wildcard for struct.field ("projections contained duplicate output name '_dim_*'"),
# and on the robust path a key holding `\` is a JSON path jsonpath cannot compile. `price` (every
# dimension) failed the whole run with exit 2 and Polars' message, naming no file. Such a key is now
# not read as a dimension, and a note says so.
@pytest.mark.parametrize("key,broken", [("*", False), ("\\\\", True)])
def test_a_record_key_polars_or_jsonpath_cannot_name_does_not_fail_the_run(tmp_path, key, broken):
    from click.testing import CliRunner

    from analyzer.cli import main
    lines = [MESSAGES.replace("ID", "a").replace("USAGE", FIRST).replace('"type"', f'"{key}": "v", "type"')]
    if broken:
        lines.append('{"id": "msg_c", "type": "message", "usage": {"input_tokens": tru}}')
    p = tmp_path / "m.jsonl"
    p.write_text("".join(x + "\n" for x in lines))
    r = CliRunner().invoke(main, ["price", str(p), "-o", str(tmp_path / "o.csv"), "--batch-time",
                                  "2026-10-08T00:00:00Z", "--quarantine", str(tmp_path / "q.jsonl")])
    assert r.exit_code == 0, r.output
    r = CliRunner().invoke(main, ["report", str(p), "--batch-time", "2026-10-08T00:00:00Z",
                                  "--quarantine", str(tmp_path / "q.jsonl")])
    assert r.exit_code == 0 and "is not read as a dimension: Polars cannot name it" in r.output, r.output


# The same keys in a canonical JSON Lines log (read by name: pl.col("*") is every column): the run
# failed with Polars' "duplicate output name '_f_*'", naming no file. The column is not read, with a
# note; the request is priced. (A CSV column so named still stops the run, naming its file.)
@pytest.mark.parametrize("key", ["*", "^a$", "b\\\\c"])
def test_a_canonical_key_polars_cannot_name_is_left_with_a_note(tmp_path, key):
    from click.testing import CliRunner

    from analyzer.cli import main
    p = tmp_path / "c.jsonl"
    p.write_text('{"timestamp": "2026-10-08T00:00:00Z", "model": "claude-sonnet-4-5", "input_tokens": 1000, '
                 f'"output_tokens": 0, "{key}": "v"}}\n')
    r = CliRunner().invoke(main, ["report", str(p), "--format", "json"])
    assert r.exit_code == 0 and "is not read: Polars cannot name it" in r.output, r.output
    assert '"input_tokens": 1000' in r.output and '"cost": "0.003' in r.output
    r = CliRunner().invoke(main, ["price", str(p), "-o", str(tmp_path / "o.csv")])
    assert r.exit_code == 0, r.output

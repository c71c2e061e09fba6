"""Attacks on "one verdict per record" (records1: a record read as several rows is quarantined whole)
and "a key named twice reads its first value" (robust4: the robust reading renames a key an object
names again, _json_text.first_keys_only). The goal: a file read robustly because one other line
broke gives the report the same file gives clean, and report == the sum of `price` rows with the
accounting balanced. Each defect test is an input where it did not; the rest guard what held."""

from __future__ import annotations

import io
import json
from decimal import Decimal as D
from pathlib import Path

import polars as pl
import pytest

from analyzer import Options, analyze, price_requests
from analyzer.dialects._json_text import first_keys_only

ROOT = Path(__file__).resolve().parent.parent.parent
OTEL = ROOT / "fixtures" / "dialects" / "claude-code-otel" / "events.jsonl"
BT = "2026-10-08T00:00:00Z"
BROKEN = '{"id": "msg_x", "type": "message", "usage": {"input_tokens": tru}}'  # forces the robust reading
SONNET, HAIKU = "claude-sonnet-4-5-20250929", "claude-haiku-4-5-20251001"


def _run(tmp_path: Path, files: dict[str, list[str]]):
    """(report, its per-request rows, the quarantine file's (file, line, reason)); report == rows."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, lines in files.items():
        (tmp_path / name).write_text("".join(x + "\n" for x in lines))
        paths.append(str(tmp_path / name))
    q = tmp_path / "q.jsonl"
    opts = Options(quarantine=str(q), batch_time=BT)
    report = analyze(paths, ["model"], opts)
    written = [(Path(w["file"]).name, w["line"], w["reason"]) for w in map(json.loads, q.read_text().splitlines())
               ] if q.exists() else []
    priced, acc = price_requests(paths, opts)
    rows = priced.lazy().collect()
    assert acc.as_dict() == report.accounting.as_dict() and acc.balanced
    for c in ("requests", "input_tokens", "output_tokens"):
        assert report.totals[c] == rows[c].sum(), c
    assert report.totals["cost"] == sum(rows["cost"].to_list(), D(0))
    return report, rows, written


def _clean_and_broken(tmp_path: Path, files: dict[str, list[str]]):
    """The same files read clean, and with one broken line added to the last (the robust reading)."""
    clean = _run(tmp_path / "clean", files)
    last = list(files)[-1]
    broken = _run(tmp_path / "broken", {**files, last: [*files[last], BROKEN]})
    return clean, broken


# --- a key named twice deeper than 8 levels -------------------------------------------------------

# OTLP nests a log record's attribute values 10 deep (resourceLogs [ { scopeLogs [ { logRecords [ {
# attributes [ { value { intValue): first_keys_only renamed repeated keys only down to depth 8, so on
# the robust reading (Claude Code OTel has a hook: a broken line anywhere reads the whole file so) an
# attribute value named twice read its LAST value where the decoder reads the first: 136 output tokens
# became 999,999 ($0.10 -> $25.10, exit 0) because another line broke. Fixed: keys are renamed down
# to 16 levels (no measurable CPU on 20K OTLP lines: every one of them names `key` twice anyway).
@pytest.mark.parametrize("old,new", [
    ('{"intValue":"136"}', '{"intValue":"136","intValue":"999999"}'),
    ('{"stringValue":"claude-opus-4-6"}', '{"stringValue":"claude-opus-4-6","stringValue":"claude-haiku-4-5"}'),
], ids=["count", "model"])
def test_an_otlp_attribute_named_twice_reads_its_first_value_robustly(tmp_path, old, new):
    lines = OTEL.read_text().splitlines()
    assert lines[0].count(old) == 1
    lines[0] = lines[0].replace(old, new)
    (report, rows, written), (b_report, b_rows, b_written) = _clean_and_broken(tmp_path, {"e.jsonl": lines})
    # the fixture's clean totals: the first record keeps its 136 output tokens and its Opus model
    assert report.totals["output_tokens"] == 1216 and report.totals["cost"] == D("0.10351625")
    assert b_report.totals == report.totals
    assert b_rows.select("request_id", "model", "output_tokens", "cost").equals(
        rows.select("request_id", "model", "output_tokens", "cost"))
    assert b_written == [*written, ("e.jsonl", len(lines) + 1, "not a JSON object (unparsable line)")]


def _first_value(text: str, path: str) -> str | None:
    frame = pl.DataFrame({"t": [text]})
    return frame.select(pl.coalesce(first_keys_only(pl.col("t")), pl.col("t")).str.json_path_match(path)).item()


# `"a\/b"` is the key `a/b` (JSON's only escape besides \u that writes a character two ways): the
# decoder reads the first value; first_keys_only looked for repeated keys only among keys written
# alike or with a \u escape, so a line naming `a/b` twice that way (and no other key twice) read the
# last. (No shipped format reads such a key robustly line by line: a custom mapping's extra dimension.)
@pytest.mark.parametrize("text,path,first", [
    ('{"a/b": "1", "a\\/b": "2"}', "$['a/b']", "1"),
    ('{"a\\/b": "1", "a/b": "2"}', "$['a/b']", "1"),
    ('{"model": "a", "mod\\u0065l": "b"}', "$.model", "a"),
    ('{"text": "\\"model\\": \\"x\\"", "model": "y"}', "$.model", "y"),  # a key inside a string is text
    ('{"l": [{"m": "a", "m": "b"}, {"m": "c", "m": "d"}]}', "$.l[1].m", "c"),
    ('{"u": {"x": 1}, "u": 3}', "$.u.x", "1"),
], ids=["slash-second", "slash-first", "u-escape", "in-string", "in-array", "object-then-scalar"])
def test_a_key_written_two_ways_reads_its_first_value(text, path, first):
    assert _first_value(text, path) == first
    key = {"$['a/b']": "a/b", "$.model": "model"}.get(path)
    if key:  # what the fast path's decoder reads
        assert pl.read_ndjson(io.StringIO(text))[key].item() == first


# --- Claude Code's print-mode result: one row per model of modelUsage -------------------------------

STREAM = ROOT / "fixtures" / "dialects" / "claude-code-stream" / "stream.jsonl"
HAIKU_MEMBER = ('"claude-haiku-4-5-20251001":{"inputTokens":1710,"outputTokens":36,"cacheReadInputTokens":0,'
                '"cacheCreationInputTokens":0,"webSearchRequests":0,"costUSD":0.00189,"contextWindow":200000}')


# The result's models are read from its line's text (a JSON path per member), on both readings: a
# model's count named twice read its last value (1,710 Haiku input tokens became 999,999), and a model
# named twice gave two rows with one id (`<run>#<model>`), each taken for a copy of the other: Haiku
# was priced nowhere (input 8, $0.10270775, exit 0). As the decoder reads a key named twice, the first
# value counts: the run is the fixture's, 8 + 1,710 input tokens, its reported $0.10459775.
@pytest.mark.parametrize("twice", [
    HAIKU_MEMBER.replace('"inputTokens":1710', '"inputTokens":1710,"inputTokens":999999'),
    HAIKU_MEMBER + "," + HAIKU_MEMBER.replace("1710", "5000"),
], ids=["count", "model"])
def test_a_result_naming_a_key_twice_counts_its_first_value(tmp_path, twice):
    lines = STREAM.read_text().splitlines()
    assert lines[-1].count(HAIKU_MEMBER) == 1
    lines[-1] = lines[-1].replace(HAIKU_MEMBER, twice)
    (report, rows, written), (b_report, _, b_written) = _clean_and_broken(tmp_path, {"run.jsonl": lines})
    assert (report.totals["input_tokens"], report.totals["output_tokens"]) == (8 + 1710, 269 + 36)
    assert report.totals["cost"] == D("0.10459775")
    assert sorted(rows["model"].to_list()) == ["claude-haiku-4-5-20251001", "claude-opus-4-5-20251101"]
    assert b_report.totals == report.totals and b_written[:-1] == written == []


# --- `--engine spark` with one broken line ---------------------------------------------------------

@pytest.fixture(scope="module")
def spark():
    pytest.importorskip("pyspark")
    from analyzer import engine_spark

    session = engine_spark.session("local[2]")
    yield session
    session.stop()


# The retry read a JSON Lines file by parts (line_retry): its plans read the lines a stand-in holds
# at the moment. Spark pickles the plans to its executors, where the copy of the stand-in is never
# filled: any JSON Lines file with one broken line (canonical, Messages) failed the job ("the Spark job
# failed: AttributeError: 'NoneType' object has no attribute 'filter'"). Spark reads such a file
# robustly whole again; its report is Polars': the record with a bad step quarantined whole (line 2),
# the broken line quarantined, msg_a's $0.003 and msg_c's two steps ($0.00225 + $0.002) priced.
def test_spark_reads_a_file_with_a_broken_line_as_polars_does(spark, tmp_path):
    from analyzer import engine_spark
    from analyzer.writers import render

    steps = ['{"type": "message", "input_tokens": 500, "output_tokens": 50}',
             f'{{"type": "message", "model": "{HAIKU}", "input_tokens": 1000, "output_tokens": 200}}']
    bad = ['{"type": "message", "input_tokens": 4, "output_tokens": 0}',
           '{"type": "message", "input_tokens": 1.5, "output_tokens": 0}']

    def message(mid: str, usage: str) -> str:
        return (f'{{"id": "{mid}", "type": "message", "role": "assistant", "model": "{SONNET}", '
                f'"content": [], "usage": {usage}}}')

    its = '{"input_tokens": 0, "output_tokens": 0, "iterations": [%s]}'
    path = tmp_path / "m.jsonl"
    path.write_text("\n".join([message("msg_a", '{"input_tokens": 1000, "output_tokens": 0}'),
                               message("msg_b", its % ", ".join(bad)), message("msg_c", its % ", ".join(steps)),
                               BROKEN]) + "\n")
    out = {}
    for name, run in (("polars", analyze), ("spark", engine_spark.analyze)):
        q = tmp_path / f"{name}.jsonl"
        report = run([str(path)], ["model"], Options(quarantine=str(q), batch_time=BT))
        out[name] = (json.loads(render(report, "json").replace(str(q), "<q>")),
                     [(w["line"], w["reason"]) for w in map(json.loads, q.read_text().splitlines())])
        assert report.totals["cost"] == D("0.003") + D("0.00225") + D("0.002")
    assert out["spark"] == out["polars"]
    assert out["polars"][1] == [(2, "input_tokens is not a whole number (1.5)"), (4, "not a JSON object (unparsable line)")]


# --- a Message Batches result with usage.iterations -------------------------------------------------

# A batch result's message is a Messages API Message: with `usage.iterations` (compaction), what is
# billed is the sum of the iterations, and its top-level counts leave the compaction out (as the
# anthropic-messages dialect reads it). anthropic-batch is a pure mapping of the top-level counts: the
# compaction's 1,000 input and 200 output tokens are priced nowhere (500 x 1.5 + 50 x 7.5 = $0.001125
# at the batch tier, exit 0) where the steps bill 1,500 x 1.5 + 250 x 7.5 = $0.004125. Fixed: the batch
# mapping runs the Messages steps hook on result.message (anthropic_messages.with_steps), and so one
# verdict per record too.
def test_a_batch_result_bills_its_iterations(tmp_path):
    usage = {"input_tokens": 500, "output_tokens": 50, "service_tier": "batch",
             "iterations": [{"type": "compaction", "input_tokens": 1000, "output_tokens": 200},
                            {"type": "message", "input_tokens": 500, "output_tokens": 50}]}
    line = json.dumps({"custom_id": "t1", "result": {"type": "succeeded", "message": {
        "id": "msg_b1", "type": "message", "role": "assistant", "model": SONNET, "content": [],
        "stop_reason": "end_turn", "usage": usage}}})
    report, _, written = _run(tmp_path, {"batch.jsonl": [line]})
    assert written == [] and report.accounting.priced == 1
    assert (report.totals["input_tokens"], report.totals["output_tokens"]) == (1500, 250)
    assert report.totals["cost"] == D("0.004125")


def _batch_line(i: int, iterations: list[dict], result: str = "succeeded") -> str:
    usage = {"input_tokens": 500, "output_tokens": 50, "service_tier": "batch", "iterations": iterations}
    return json.dumps({"custom_id": f"t{i}", "result": {"type": result, "message": {
        "id": f"msg_b{i}", "type": "message", "role": "assistant", "model": SONNET, "content": [],
        "stop_reason": "end_turn", "usage": usage}}})


COMPACTION = {"type": "compaction", "input_tokens": 1000, "output_tokens": 200}
MESSAGE_STEP = {"type": "message", "input_tokens": 500, "output_tokens": 50}


def test_a_batch_result_with_a_bad_step_is_quarantined_whole_and_reads_alike_robustly(tmp_path):
    # One verdict per record holds for a batch result's steps too: the bad compaction step quarantines
    # the result (written once, its line), the clean result beside it bills its two steps at the batch
    # tier (1,500 x $1.50 + 250 x $7.50 per million = $0.004125), on the fast and the robust reading.
    bad = dict(COMPACTION, input_tokens="1.5")
    lines = [_batch_line(1, [COMPACTION, MESSAGE_STEP]), _batch_line(2, [bad, MESSAGE_STEP])]
    (clean, _, clean_q), (broken, _, broken_q) = _clean_and_broken(tmp_path, {"batch.jsonl": lines})
    for report in (clean, broken):
        assert (report.accounting.priced, report.totals["input_tokens"], report.totals["cost"]) == (1, 1500, D("0.004125"))
    assert clean_q == [("batch.jsonl", 2, "input_tokens is not a whole number (1.5)")]
    assert broken_q == [*clean_q, ("batch.jsonl", 3, "not a JSON object (unparsable line)")]


def test_spark_bills_a_batch_results_steps_as_polars_does(spark, tmp_path):
    from analyzer import engine_spark
    from analyzer.writers import render

    path = tmp_path / "batch.jsonl"
    path.write_text("".join(x + "\n" for x in [
        _batch_line(1, [COMPACTION, MESSAGE_STEP]), _batch_line(2, [dict(COMPACTION, output_tokens=-1), MESSAGE_STEP]),
        _batch_line(3, [], result="errored")]))
    out = {}
    for name, run in (("polars", analyze), ("spark", engine_spark.analyze)):
        q = tmp_path / f"{name}.jsonl"
        report = run([str(path)], ["model"], Options(quarantine=str(q)))
        assert (report.accounting.priced, report.accounting.quarantined, report.accounting.not_billable) == (1, 1, 1)
        assert report.totals["cost"] == D("0.004125")
        out[name] = json.loads(render(report, "json").replace(str(q), "<q>"))
    assert out["spark"] == out["polars"]

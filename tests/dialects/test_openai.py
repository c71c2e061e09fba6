"""openai: chat completion / Responses API responses and Batch API output lines (JSONL).

prompt_tokens (input_tokens) INCLUDES cached and cache-write tokens. Hand-computed costs from the
OpenAI price book's rates (developers.openai.com/api/docs/pricing): gpt-5.4 $2.50 in, $0.25 cached, $15 out;
gpt-5.5 $5 / $0.50 / $30 (>272K prompt: $10 / $1 / $45); gpt-6.1-sol $2 / $2.50 cache write / $0.10 /
$10; batch and flex 0.5x, priority 2x.
"""

from __future__ import annotations

import json
import shutil
from decimal import Decimal as D

import pytest
from polars.testing import assert_frame_equal

from analyzer.models import Resolver
from analyzer.pricebook import load_price_book

from .exports_util import FIXTURES, cost, detect, expected, normalized, quarantined

HERE = FIXTURES / "openai"
PRICED = HERE / "priced.jsonl"
PRICED_BATCH = HERE / "priced_batch_output.jsonl"
REFERENCE = HERE / "openai_usage.jsonl"
REFERENCE_BATCH = HERE / "openai_batch_output.jsonl"
COLS = ["request_id", "timestamp", "model_raw", "service_tier", "input_tokens", "cache_write_5m_tokens",
        "cache_read_tokens", "output_tokens"]


@pytest.mark.parametrize("path", [PRICED, PRICED_BATCH, REFERENCE, REFERENCE_BATCH])
def test_detected(path):
    assert detect(path) == "openai"


def test_normalizes_cache_inclusive_prompts():
    want = expected([
        dict(request_id="chatcmpl-P1", timestamp="2026-11-24T10:00:00Z", model_raw="gpt-5.4-2026-03-05",
             service_tier="standard", input_tokens=2006 - 1920, cache_write_5m_tokens=0, cache_read_tokens=1920,
             output_tokens=300),
        dict(request_id="chatcmpl-P2", timestamp="2026-11-24T10:05:00Z", model_raw="gpt-5.5", service_tier="flex",
             input_tokens=812, cache_write_5m_tokens=0, cache_read_tokens=0, output_tokens=64),
        dict(request_id="resp_P3", timestamp="2026-11-24T11:00:00Z", model_raw="gpt-6.1-sol", service_tier="priority",
             input_tokens=15320 - 12288 - 1000, cache_write_5m_tokens=1000, cache_read_tokens=12288,
             output_tokens=1410),
        dict(request_id="chatcmpl-P4", timestamp="2026-11-24T12:00:00Z", model_raw="gpt-5.5", service_tier="standard",
             input_tokens=200000, cache_write_5m_tokens=0, cache_read_tokens=100000, output_tokens=1000),
    ])
    assert_frame_equal(normalized(PRICED).select(COLS), want)


def test_batch_output_lines_are_batch_tier():
    """The body of a batch output line says service_tier "default"; the Batch API bills it at 0.5x."""
    got = normalized(PRICED_BATCH)
    assert got.select(COLS).to_dicts() == [
        dict(request_id="chatcmpl-P5", timestamp=got["timestamp"][0], model_raw="gpt-5.4-2026-03-05",
             service_tier="batch", input_tokens=118, cache_write_5m_tokens=0, cache_read_tokens=0, output_tokens=2)]
    assert got["timestamp"][0].isoformat() == "2026-11-24T13:00:00+00:00"


def test_total_by_hand():
    # P1 gpt-5.4:            86 x $2.50 + 1,920 x $0.25 + 300 x $15 (per 1M)          = 0.005195
    # P2 gpt-5.5 flex:       (812 x $5 + 64 x $30) / 1M x 0.5                          = 0.00299
    # P3 gpt-6.1-sol prio:   (2,032 x $2 + 1,000 x $2.50 + 12,288 x $0.10 + 1,410 x $10) / 1M x 2 = 0.0437856
    # P4 gpt-5.5, 300,000-token prompt > 272K: 200,000 x $10 + 100,000 x $1 + 1,000 x $45 = 2.145
    # P5 gpt-5.4 batch:      (118 x $2.50 + 2 x $15) / 1M x 0.5                         = 0.0001625
    total, report = cost([PRICED, PRICED_BATCH])
    assert total == D("2.1971331")
    acc = report.accounting
    assert acc.priced == 5 and acc.balanced
    assert acc.rows_read == 6  # the errored batch line is read, and counted as not billable


def test_errored_batch_line_is_not_billable():
    _, report = cost([PRICED_BATCH])
    acc = report.accounting.as_dict()
    assert acc["priced"] == 1 and acc["rows_read"] == 2 and acc["quarantined"] == 0
    assert "batch request errored" in json.dumps(acc)


def test_reference_examples_price_by_hand():
    """The reference logs name gpt-5.1 and gpt-4.1-mini snapshots (once unpriced: issue 14 §3). gpt-5.1
    $1.25 in / $0.125 cached / $10 out; gpt-4.1-mini $0.40 / $1.60; prompt tokens include cached ones."""
    total, report = cost([REFERENCE, REFERENCE_BATCH])
    acc = report.accounting
    assert acc.priced == 4 and acc.unpriced == 0 and acc.balanced
    default = 86 * D("1.25") + 1920 * D("0.125") + 300 * 10  # 2,006 prompt of which 1,920 cached: 3,347.5
    flex = (812 * D("0.4") + 64 * D("1.6")) * D("0.5")  # service_tier flex: 213.6
    priority = (3032 * D("1.25") + 12288 * D("0.125") + 1410 * 10) * 2  # Responses, priority: 38,852
    batch = (118 * D("0.4") + 2 * D("1.6")) * D("0.5")  # the batch line that succeeded: 25.2
    assert total == (default + flex + priority + batch) / 10**6 == D("0.0424383")


@pytest.mark.parametrize("raw,model", [("gpt-5.4-2026-03-05", "gpt-5.4"), ("gpt-5.5", "gpt-5.5"),
                                       ("gpt-6.1-sol-2026-09-29", "gpt-6.1-sol")])
def test_dated_snapshots_resolve_to_their_model(raw, model):
    assert Resolver(load_price_book()).resolve(raw)[0] == model


def test_cached_more_than_prompt_is_quarantined_with_file_and_line(tmp_path, quarantine):
    lines = PRICED.read_text().splitlines()
    rec = json.loads(lines[1])
    rec["usage"]["prompt_tokens_details"]["cached_tokens"] = 900  # > prompt_tokens 812
    lines[1] = json.dumps(rec)
    path = tmp_path / "log.jsonl"
    path.write_text("\n".join(lines) + "\n")
    total, report = cost([path], quarantine=quarantine)
    assert report.accounting.quarantined == 1
    assert total == D("2.1971331") - D("0.0001625") - D("0.00299")
    [bad] = quarantined(quarantine)
    assert (bad["file"], bad["line"]) == (str(path), 2)
    assert "cache tokens exceed input" in bad["reason"]


def test_scale_tier_is_not_priced_silently(tmp_path, quarantine):
    """Scale Tier is prepaid capacity with no per-token price in the book: never priced as standard."""
    lines = PRICED.read_text().splitlines()
    lines[0] = lines[0].replace('"service_tier":"default"', '"service_tier":"scale"')
    path = tmp_path / "log.jsonl"
    path.write_text("\n".join(lines) + "\n")
    _, report = cost([path], quarantine=quarantine)
    assert report.accounting.priced == 3
    assert "scale" in quarantined(quarantine)[0]["reason"]


def test_responses_and_completions_mix_in_one_file(tmp_path):
    mixed = tmp_path / "mixed.jsonl"
    shutil.copy(PRICED, mixed)
    with open(mixed, "a") as f:
        f.write(PRICED_BATCH.read_text())
    total, _ = cost([mixed])
    assert total == D("2.1971331")


def test_stream_chunks_without_usage_are_not_records(tmp_path):
    """A logged stream (stream_options.include_usage): only the last chunk carries usage."""
    chunk = {"id": "chatcmpl-S1", "object": "chat.completion.chunk", "created": 1795514400, "model": "gpt-5.5",
             "choices": [{"index": 0, "delta": {"content": "hi"}}]}
    last = {**chunk, "choices": [], "service_tier": "default",
            "usage": {"prompt_tokens": 812, "completion_tokens": 64, "total_tokens": 876,
                      "prompt_tokens_details": {"cached_tokens": 0}}}
    path = tmp_path / "stream.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in (chunk, chunk, last)) + "\n")
    total, report = cost([path])
    assert total == D("0.00598")  # (812 x $5 + 64 x $30) / 1M
    assert report.accounting.rows_read == 1 and report.accounting.priced == 1


def _responses_stream(model: str = "gpt-5.5") -> list[dict]:
    """A logged Responses API stream (`stream: true`), events as the API sends them: only the terminal
    event carries `response.usage`."""
    base = {"id": "resp_S2", "object": "response", "created_at": 1795514400, "model": model, "output": [],
            "usage": None}
    return [
        {"type": "response.created", "sequence_number": 0, "response": {**base, "status": "in_progress"}},
        {"type": "response.in_progress", "sequence_number": 1, "response": {**base, "status": "in_progress"}},
        {"type": "response.output_text.delta", "sequence_number": 4, "item_id": "msg_1", "output_index": 0,
         "content_index": 0, "delta": "Hi"},
        {"type": "response.completed", "sequence_number": 9, "response": {
            **base, "status": "completed", "service_tier": "default",
            "usage": {"input_tokens": 812, "input_tokens_details": {"cached_tokens": 512}, "output_tokens": 64,
                      "output_tokens_details": {"reasoning_tokens": 0}, "total_tokens": 876}}},
    ]


def test_responses_stream_events_are_openai_dated_by_created_at(tmp_path):
    """Once detected as Anthropic Messages (`response.usage.input_tokens`) and dated by --batch-time;
    the events are the openai dialect and the terminal event's response is the request."""
    path = tmp_path / "stream.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in _responses_stream()) + "\n")
    assert detect(path) == "openai"
    [row] = normalized(path).to_dicts()
    assert (row["request_id"], row["model_raw"], row["service_tier"]) == ("resp_S2", "gpt-5.5", "standard")
    assert row["timestamp"].isoformat() == "2026-11-24T10:00:00+00:00"  # 1795514400, not the batch time
    assert (row["input_tokens"], row["cache_read_tokens"], row["output_tokens"]) == (300, 512, 64)
    total, report = cost([path], batch_time="2020-01-01T00:00:00Z")
    assert total == D("0.003676")  # (300 x $5 + 512 x $0.50 + 64 x $30) / 1M
    acc = report.accounting
    assert (acc.rows_read, acc.priced, acc.quarantined) == (1, 1, 0) and acc.balanced


def test_records_without_created_honour_batch_time(tmp_path):
    """A body logged without `created` (as some proxies store it) is dated like other untimed records:
    --batch-time, else the file's time, and the report says so; never quarantined for it."""
    rec = {"id": "chatcmpl-T1", "object": "chat.completion", "model": "gpt-5.5", "service_tier": "default",
           "usage": {"prompt_tokens": 812, "completion_tokens": 64, "total_tokens": 876}}
    path = tmp_path / "untimed.jsonl"
    path.write_text(json.dumps(rec) + "\n")
    total, report = cost([path], batch_time="2026-11-24T10:00:00Z")
    assert total == D("0.00598") and report.accounting.priced == 1
    assert any("--batch-time" in n for n in report.notes)
    total, report = cost([path])  # no --batch-time: the file's time (gpt-5.5 is priced from 2026-04-23)
    assert report.accounting.priced + report.accounting.unpriced == 1 and report.accounting.quarantined == 0


@pytest.mark.parametrize("untimed_first", [1, 40])
def test_untimed_records_among_timed_ones_honour_batch_time(tmp_path, untimed_first):
    """Some bodies logged without `created` among others with it (first, or so many first that the
    detection sample holds none timed): each timed record keeps its own time, the others take
    --batch-time; without it they are quarantined, never dated by a guess."""
    untimed = {"id": "chatcmpl-U1", "object": "chat.completion", "model": "gpt-5.5",
               "usage": {"prompt_tokens": 812, "completion_tokens": 64, "total_tokens": 876}}
    timed = {**untimed, "id": "chatcmpl-T", "created": 1795514400}  # 2026-11-24T10:00:00Z
    path = tmp_path / "mixed.jsonl"
    lines = [{**untimed, "id": f"chatcmpl-U{k}"} for k in range(untimed_first)] + [timed]
    path.write_text("\n".join(json.dumps(r) for r in lines) + "\n")
    from analyzer import price_requests
    from analyzer.pipeline import Options

    rows, acc = price_requests([str(path)], Options(batch_time="2026-11-20T08:00:00Z"))
    got = {r["request_id"]: r["timestamp"].isoformat() for r in rows.lazy().collect().to_dicts()}
    assert got == {**{f"chatcmpl-U{k}": "2026-11-20T08:00:00+00:00" for k in range(untimed_first)},
                   "chatcmpl-T": "2026-11-24T10:00:00+00:00"}
    assert acc.priced == untimed_first + 1 and acc.balanced
    if untimed_first == 1:
        _, acc = price_requests([str(path)], Options(quarantine=str(tmp_path / "q.jsonl")))
        assert (acc.priced, acc.quarantined) == (1, 1)

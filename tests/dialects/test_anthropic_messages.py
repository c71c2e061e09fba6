"""anthropic-messages: Message objects, envelopes, iterations and streaming events."""

from __future__ import annotations

import json
from decimal import Decimal

import polars as pl
from polars.testing import assert_frame_equal

from analyzer import analyze, dialects
from analyzer.pipeline import Options, read_logs
from analyzer.sources import open_source
from tests.conftest import ROOT

HERE = ROOT / "fixtures" / "dialects" / "anthropic-messages"
COUNTS = ["input_tokens", "cache_write_5m_tokens", "cache_write_1h_tokens", "cache_read_tokens", "output_tokens",
          "web_search_requests"]


def test_detected_from_each_shape():
    for name in ("responses.jsonl", "stream.jsonl", "envelope.jsonl"):
        assert dialects.detect(open_source(str(HERE / name))).name == "anthropic-messages", name


def test_reference_responses_normalize_to_canonical_rows():
    frame = read_logs([str(HERE / "responses.jsonl")], Options()).frame.collect()
    got = frame.select("request_id", "model_raw", "service_tier", "speed", "inference_geo", *COUNTS, "requests")
    expected = pl.DataFrame({
        "request_id": ["msg_01XFDUDYJgAACzvnptvVoYEL", "msg_01Hq3kAvX9t7mPz2LrC8uWnB", "msg_01Ppr7YtQ4fK2sWm6ZcVbN1d",
                       "msg_01Ta9sLk2QwErTyUiOpAsDfG", "msg_01Ta9sLk2QwErTyUiOpAsDfG#1"],
        "model_raw": ["claude-sonnet-4-5-20250929", "claude-opus-4-5-20251101", "claude-haiku-4-5-20251001",
                      "claude-opus-4-6", "claude-opus-4-6"],
        "service_tier": ["standard", "standard", "priority", "standard", "standard"],
        "speed": [None, None, None, "fast", "fast"],
        "inference_geo": [None, "global", "us", None, None],
        # the 5m split is stated; compaction (180,000 in) is billed from the iterations, not the top level
        "input_tokens": [2095, 812, 31544, 180000, 23000],
        "cache_write_5m_tokens": [48210, 0, 0, 0, 0],
        "cache_write_1h_tokens": [0, 12000, 0, 0, 0],
        "cache_read_tokens": [0, 96540, 0, 0, 0],
        "output_tokens": [503, 1877, 940, 3500, 1000],
        "web_search_requests": [0, 3, 0, 0, 0],
        "requests": [1, 1, 1, 1, 0],  # an iteration after the first is part of the same request
    })
    assert_frame_equal(got, expected, check_dtypes=False)


def test_reference_responses_total_by_hand():
    # --batch-time dates the bare Message objects (they carry no time): 2026-04-01, when Opus 4.6 fast
    # mode was $30/$150 across the whole context.
    rep = analyze([str(HERE / "responses.jsonl")], ["model"], Options(batch_time="2026-04-01T00:00:00Z"))
    per_mtok = Decimal(1_000_000)
    sonnet = (2095 * 3 + 48210 * Decimal("3.75") + 503 * 15) / per_mtok
    opus45 = (812 * 5 + 12000 * 10 + 96540 * Decimal("0.5") + 1877 * 25) / per_mtok + Decimal("0.03")  # 3 searches
    haiku = (31544 * 1 + 940 * 5) / per_mtok  # priority: list rates
    opus46_fast = ((180000 + 23000) * 30 + (3500 + 1000) * 150) / per_mtok
    assert rep.totals["cost"] == sonnet + opus45 + haiku + opus46_fast == Decimal("7.2451165")
    assert rep.accounting.rows_read == 4 and rep.accounting.priced == 4 and rep.accounting.balanced
    assert any("--batch-time" in n for n in rep.notes)


def test_bare_messages_dated_from_file_time_say_so(tmp_path):
    path = tmp_path / "responses.jsonl"
    path.write_text((HERE / "responses.jsonl").read_text())
    import os
    os.utime(path, (1_780_000_000, 1_780_000_000))  # 2026-05-28T20:26:40Z
    rep = analyze([str(path)], ["day"])
    assert rep.rows["day"].to_list() == ["2026-05-28"]
    assert any("modification time" in n for n in rep.notes)


def test_envelope_keys_become_dimensions_iterations_priced_by_own_model(quarantine):
    rep = analyze([str(HERE / "envelope.jsonl")], ["workspace", "user", "model"], Options(quarantine=quarantine))
    rows = {(r["workspace"], r["user"], r["model"]): r for r in rep.rows.to_dicts()}
    sonnet = (1000 * 3 + 3000 * Decimal("3.75") + 200 * 15) / 10**6  # unsplit cache write = 5m
    assert rows[("support", "ana", "claude-sonnet-4-5-20250929")]["cost"] == sonnet
    assert rows[("research", "ben", "claude-opus-4-6")]["cost"] == Decimal(20000 * 5 + 2000 * 25) / 10**6
    advisor = rows[("research", "ben", "claude-haiku-4-5-20251001")]
    assert advisor["cost"] == Decimal(4000 * 1 + 300 * 5) / 10**6 and advisor["requests"] == 0
    acc = rep.accounting
    assert (acc.rows_read, acc.priced, acc.duplicates, acc.repeats, acc.quarantined) == (5, 2, 1, 0, 2)
    assert rep.totals["cost"] == Decimal("0.17275")
    bad = [json.loads(line) for line in open(quarantine)]
    assert [(b["line"], b["reason"].split(" (")[0]) for b in bad] == [
        (3, "input_tokens is not a number"), (4, "not a JSON object")]


def test_stream_events_count_final_cumulative_usage_once():
    rep = analyze([str(HERE / "stream.jsonl")], ["model"], Options(batch_time="2026-10-01T00:00:00Z"))
    rows = {r["model"]: r for r in rep.rows.to_dicts()}
    s = rows["claude-sonnet-4-5-20250929"]
    assert (s["requests"], s["input_tokens"], s["cache_read_tokens"], s["output_tokens"]) == (1, 1200, 5000, 310)
    h = rows["claude-haiku-4-5-20251001"]
    assert (h["requests"], h["input_tokens"], h["output_tokens"]) == (1, 800, 55)
    # message_start and message_delta events are records; the deltas merge into their message as repeats.
    # Content-block, ping and stop events carry no usage and are not records.
    acc = rep.accounting
    assert (acc.rows_read, acc.priced, acc.repeats, acc.duplicates) == (5, 2, 3, 0)
    assert rep.totals["cost"] == Decimal(1200 * 3 + 5000 * Decimal("0.3") + 310 * 15 + 800 + 55 * 5) / 10**6


def test_robust_path_gives_the_same_rows():
    fast = read_logs([str(HERE / "responses.jsonl")], Options(batch_time="2026-04-01")).frame.collect()
    robust = read_logs([str(HERE / "responses.jsonl")], Options(batch_time="2026-04-01"), robust=True).frame.collect()
    cols = ["request_id", "model_raw", "timestamp", *COUNTS, "requests", "_ok"]
    assert_frame_equal(fast.select(cols), robust.select(cols))


def test_cache_write_split_and_total(tmp_path, quarantine):
    """The split is what bills; a total larger than its split leaves a residual priced as 5m (older
    loggers summed TTLs they did not split); a split larger than its total contradicts itself."""
    def msg(i, total, w5, w1):
        usage = {"input_tokens": 10, "output_tokens": 1, "cache_creation_input_tokens": total,
                 "cache_creation": {"ephemeral_5m_input_tokens": w5, "ephemeral_1h_input_tokens": w1}}
        return json.dumps({"timestamp": "2026-10-01T00:00:00Z", "response": {
            "id": f"m{i}", "model": "claude-sonnet-4-5", "usage": usage}})
    path = tmp_path / "m.jsonl"
    path.write_text("\n".join([msg(1, 80, 30, 50), msg(2, 100, 30, 50), msg(3, 60, 30, 50)]) + "\n")
    frame = read_logs([str(path)], Options()).frame.collect()
    assert frame.select("cache_write_5m_tokens", "cache_write_1h_tokens", "_ok").rows() == [
        (30, 50, True), (50, 50, True), (30, 50, False)]
    rep = analyze([str(path)], ["model"], Options(quarantine=quarantine))
    assert rep.accounting.quarantined == 1
    assert "exceeds cache_write_tokens" in open(quarantine).read()


def test_a_fractional_count_is_quarantined_and_a_quoted_one_read_on_the_fast_path(tmp_path, quarantine,
                                                                                   monkeypatch):
    """Counts are decoded as text: `100.5` is not read as 100 (Polars' integer decoder truncates), and
    `"100"` does not send the run to the field-by-field path."""
    from analyzer import pipeline

    def line(rid: str, output) -> str:
        return json.dumps({"timestamp": "2026-10-01T00:00:00Z", "request_id": rid, "response": {
            "id": rid, "type": "message", "model": "claude-sonnet-4-5",
            "usage": {"input_tokens": 1000, "output_tokens": output}}})

    log = tmp_path / "log.jsonl"
    log.write_text("\n".join([line("r1", 100.5), line("r2", "100"), line("r3", 100), line("r4", 7.0)]) + "\n")
    runs = []
    real = pipeline._analyze
    monkeypatch.setattr(pipeline, "_analyze", lambda *a: runs.append(a[-1]) or real(*a))
    rep = analyze([str(log)], ["model"], Options(quarantine=quarantine))
    assert rep.accounting.quarantined == 1 and rep.accounting.priced == 3
    assert rep.totals["output_tokens"] == 207 and rep.totals["cost"] == (3000 * 3 + 207 * 15) / Decimal(10**6)
    bad = [json.loads(x) for x in open(quarantine)]
    assert [(b["line"], b["reason"]) for b in bad] == [(1, "output_tokens is not a whole number (100.5)")]
    assert runs == [False]  # one run, on the fast path

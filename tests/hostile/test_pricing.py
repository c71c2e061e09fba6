"""Hostile and edge inputs to pricing: each a minimal input, its exact accounting and cost by hand."""

from __future__ import annotations

import json
from decimal import Decimal

import polars as pl
import pytest
from click.testing import CliRunner

from analyzer import Options, analyze, pipeline, price_requests
from analyzer.cli import main
from analyzer.dialects import _parse
from analyzer.errors import SourceError

MTOK = Decimal(1_000_000)


def _csv(tmp_path, text: str, name: str = "log.csv") -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


# --- 1. A priceable request is never made unpriced by another request of its group -----------------

POISON = ("timestamp,model,input_tokens,output_tokens,cache_read_tokens,request_id\n"
          # Claude 3 Sonnet has no cache-read rate: only the second request is unpriceable
          "2024-06-01T00:00:00Z,claude-3-sonnet-20240229,1000,100,0,a\n"
          "2024-06-02T00:00:00Z,claude-3-sonnet-20240229,1000,100,500,b\n")


def test_a_request_without_cache_reads_prices_beside_one_with_them(tmp_path, quarantine):
    path = _csv(tmp_path, POISON)
    first = (1000 * 3 + 100 * 15) / MTOK  # $3 / $15 per MTok
    for by in (["month"], ["model"], [], ["month", "model_raw", "discount_type"], ["component"]):
        rep = analyze([path], by, Options(quarantine=quarantine))
        acc = rep.accounting
        assert (acc.rows_read, acc.priced, acc.unpriced) == (2, 1, 1), by
        assert acc.unpriced_reasons == {"claude-3-sonnet-20240229": "no cache_read rate for claude-3-sonnet-20240229"}
        assert rep.totals["cost"] == first == Decimal("0.0045")
        assert rep.totals["requests"] == 1 and rep.totals["cache_read_tokens"] == 0
    rows, acc = price_requests([path], Options(quarantine=quarantine))
    got = {r["request_id"]: (r["cost"], r["unpriced_reason"]) for r in rows.lazy().collect().to_dicts()}
    assert got == {"a": (first, None), "b": (None, "no cache_read rate for claude-3-sonnet-20240229")}
    assert (acc.priced, acc.unpriced) == (1, 1)


def test_price_summary_line_counts_the_row_it_priced(tmp_path):
    path = _csv(tmp_path, POISON)
    out = tmp_path / "rows.csv"
    result = CliRunner().invoke(main, ["price", path, "-o", str(out), "--quarantine", str(tmp_path / "q.jsonl")])
    assert result.exit_code == 0, result.output
    assert "rows read 2 = priced 1 + unpriced 1 + duplicates 0 + quarantined 0" in result.output


def test_unused_component_without_a_rate_costs_zero_not_null(tmp_path, quarantine):
    # The model has no cache-write rate; a request that writes no cache prices, each component shown.
    rows, _ = price_requests([_csv(tmp_path, POISON)], Options(quarantine=quarantine))
    a = rows.lazy().collect().to_dicts()[0]
    assert a["cost_cache_write_5m"] == a["cost_cache_read"] == Decimal(0)
    assert a["cost_input"] == Decimal("0.003") and a["cost_output"] == Decimal("0.0015")


def test_server_tool_without_a_price_poisons_no_other_request(tmp_path, quarantine):
    # OpenAI models have no web-fetch price in the book: the request that fetched is unpriced, the
    # one that did not is priced ($2.50 / $15 per MTok for gpt-5.4 up to its long-context threshold).
    path = _csv(tmp_path, "timestamp,model,input_tokens,output_tokens,web_fetch_requests,request_id\n"
                          "2026-03-20T10:00:00Z,gpt-5.4,2000,100,0,x\n"
                          "2026-03-20T11:00:00Z,gpt-5.4,2000,100,2,y\n")
    rep = analyze([path], ["day"], Options(quarantine=quarantine))
    assert (rep.accounting.priced, rep.accounting.unpriced) == (1, 1)
    assert rep.totals["cost"] == (2000 * Decimal("2.5") + 100 * 15) / MTOK
    assert rep.accounting.unpriced_reasons == {"gpt-5.4": "no web_fetch rate for gpt-5.4"}


def test_every_missing_rate_is_named(tmp_path, quarantine):
    path = _csv(tmp_path, "timestamp,model,input_tokens,output_tokens,cache_read_tokens,cache_write_1h_tokens\n"
                          "2024-06-01T00:00:00Z,claude-3-sonnet-20240229,10,1,5,5\n")
    rep = analyze([path], ["model"], Options(quarantine=quarantine))
    assert rep.accounting.unpriced_reasons == {"claude-3-sonnet-20240229": (
        "no cache_write_1h rate for claude-3-sonnet-20240229; no cache_read rate for claude-3-sonnet-20240229")}


def test_report_json_accounting_matches_price(tmp_path):
    path = _csv(tmp_path, POISON)
    q = str(tmp_path / "q.jsonl")
    rep = CliRunner().invoke(main, ["report", path, "--by", "month", "--format", "json", "--quarantine", q])
    data = json.loads(rep.stdout)
    assert data["accounting"]["priced"] == 1 and data["totals"]["cost"] == "0.004500000000"


# --- 2. `price` = `report` on multi-step responses ----------------------------------------------------

def _stream(first: dict, final: dict, mid: str = "msg_s1") -> list[str]:
    return [json.dumps(x) for x in (
        {"type": "message_start", "message": {"id": mid, "type": "message", "role": "assistant",
                                              "model": "claude-sonnet-4-5-20250929", "content": [], "usage": first}},
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        {"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": final},
        {"type": "message_stop"})]


COMPACTED = _stream({"input_tokens": 1000, "output_tokens": 1}, {
    "input_tokens": 1000, "output_tokens": 200,
    "iterations": [{"type": "compaction", "input_tokens": 500, "output_tokens": 50},
                   {"type": "message", "input_tokens": 1000, "output_tokens": 200}]})


def _both(path: str, tmp_path):
    opts = Options(quarantine=str(tmp_path / "q.jsonl"), batch_time="2026-04-01T00:00:00Z")
    rep = analyze([path], ["model"], opts)
    rows, acc = price_requests([path], opts)
    return rep, rows.lazy().collect(), acc


def test_stream_with_iterations_bills_each_step_once_in_report_and_price(tmp_path):
    # The stream's final usage lists two steps: compaction 500 in / 50 out, then the message 1000 / 200.
    # The message_start's counts (1000 in) are the top level, which leaves the compaction out: not a step.
    path = _csv(tmp_path, "\n".join(COMPACTED) + "\n", "stream.jsonl")
    rep, rows, acc = _both(path, tmp_path)
    cost = ((500 + 1000) * 3 + (50 + 200) * 15) / MTOK  # Sonnet 4.5: $3 / $15
    assert (rep.totals["input_tokens"], rep.totals["output_tokens"]) == (1500, 250)
    assert rep.totals["cost"] == sum(rows["cost"].to_list(), Decimal(0)) == cost == Decimal("0.00825")
    assert rows["request_id"].to_list() == ["msg_s1", "msg_s1#1"] and rows["requests"].to_list() == [1, 0]
    assert (acc.rows_read, acc.priced, acc.repeats) == (2, 1, 1) and acc.as_dict() == rep.accounting.as_dict()


def test_stream_with_iterations_among_many_responses(tmp_path):
    # With many other responses, duplicates are corrected by dedupe's other path: the same bill.
    filler = [json.dumps({"id": f"m{i}", "type": "message", "model": "claude-sonnet-4-5-20250929",
                          "usage": {"input_tokens": 10, "output_tokens": 0}}) for i in range(30)]
    path = _csv(tmp_path, "\n".join(COMPACTED + filler) + "\n", "stream.jsonl")
    rep, rows, acc = _both(path, tmp_path)
    assert rep.totals["input_tokens"] == rows["input_tokens"].sum() == 1500 + 300
    assert rep.totals["cost"] == sum(rows["cost"].to_list(), Decimal(0)) == Decimal("0.00825") + 300 * 3 / MTOK


def test_stream_logged_twice_counts_its_steps_once(tmp_path):
    path = _csv(tmp_path, "\n".join(COMPACTED * 2) + "\n", "stream.jsonl")
    rep, rows, acc = _both(path, tmp_path)
    assert rep.totals["cost"] == sum(rows["cost"].to_list(), Decimal(0)) == Decimal("0.00825")
    assert rows["request_id"].to_list() == ["msg_s1", "msg_s1#1"]
    assert (acc.rows_read, acc.priced, acc.repeats + acc.duplicates) == (4, 1, 3)


# --- 4. Token sums are exact, or the run refuses --------------------------------------------------------

BIG = 4_000_000_000_000_000_000  # three of these overflow a 64-bit sum (2^63 - 1 = 9.22e18)


def test_exact_sums_fall_back_to_128_bits_when_64_could_overflow():
    # max x rows exceeds 2^63 - 1, so 64-bit sums are not proven safe; the true sum fits and is exact.
    lf = pl.LazyFrame({"k": [1, 1, 1, 2], "_ok": [True] * 4, "n": [9_000_000_000_000_000_000, 1, 2, 5]})
    out = pipeline.exact_sums(lf, ["k", "_ok"], ["n"], [pl.len().alias("rows")], valid=pl.col("_ok")).sort("k")
    assert out["n"].to_list() == [9_000_000_000_000_000_003, 5] and out.schema["n"] == pl.Int64


def test_exact_sums_refuse_a_valid_sum_beyond_64_bits():
    lf = pl.LazyFrame({"k": [1, 1, 1], "_ok": [True] * 3, "input_tokens": [BIG] * 3})
    with pytest.raises(SourceError, match=r"input_tokens of valid requests sum to more than 9,223,372,036,854,775,807"):
        pipeline.exact_sums(lf, ["k", "_ok"], ["input_tokens"], [], valid=pl.col("_ok"))


def test_exact_sums_ignore_what_quarantined_rows_hold():
    # Invalid rows may hold any number (they are quarantined): their group's counts are zeroed, not summed.
    lf = pl.LazyFrame({"_ok": [False, False, False, True], "n": [BIG, BIG, -BIG, 7]})
    out = pipeline.exact_sums(lf, ["_ok"], ["n"], [], valid=pl.col("_ok")).sort("_ok")
    assert out["n"].to_list() == [0, 7]


@pytest.fixture
def no_cap(monkeypatch):
    """The per-row cap (10^12) raised, so that a handful of rows can reach 64-bit overflow; without it
    the same needs 9.3M rows (measured: 9.3M rows of 999,999,999,999 tokens, exit 2 in 8 s)."""
    monkeypatch.setattr(_parse, "MAX_COUNT", 2**62)


def _run(args):
    return CliRunner().invoke(main, args)


def test_report_refuses_counts_that_sum_past_64_bits(tmp_path, no_cap):
    rows = "".join(f"2026-10-01T0{i}:00:00Z,claude-sonnet-4-5,{BIG},0,r{i}\n" for i in range(3))
    path = _csv(tmp_path, "timestamp,model,input_tokens,output_tokens,request_id\n" + rows)
    q = str(tmp_path / "q.jsonl")
    for cmd in (["report", path, "--by", "model"], ["price", path, "-o", str(tmp_path / "rows.csv")]):
        result = _run([*cmd, "--quarantine", q])
        assert result.exit_code == 2, result.output
        lines = result.output.strip().splitlines()
        assert len(lines) == 1 and "more than 9,223,372,036,854,775,807 (2^63 - 1)" in lines[0], lines
        assert "Traceback" not in result.output


def test_report_refuses_groups_whose_total_passes_64_bits(tmp_path, no_cap):
    # Each model's sum fits; their total does not (it would wrap to a negative grand total).
    path = _csv(tmp_path, "timestamp,model,input_tokens,output_tokens,request_id\n"
                          f"2026-10-01T00:00:00Z,claude-sonnet-4-5,{BIG},0,a\n"
                          f"2026-10-01T00:00:00Z,claude-haiku-4-5,{BIG},0,b\n"
                          f"2026-10-01T00:00:00Z,claude-opus-4-5,{BIG},0,c\n")
    with pytest.raises(SourceError, match="total more than"):
        analyze([path], ["model"], Options(quarantine=str(tmp_path / "q.jsonl")))


def test_two_large_sums_that_fit_are_exact(tmp_path, no_cap):
    # 2 x 4e18 fits in 64 bits: exact tokens and cost ($3 per MTok), not refused.
    path = _csv(tmp_path, "timestamp,model,input_tokens,output_tokens,request_id\n"
                          f"2026-10-01T00:00:00Z,claude-sonnet-4-5,{BIG},0,a\n"
                          f"2026-10-02T00:00:00Z,claude-sonnet-4-5,{BIG},0,b\n")
    rep = analyze([path], ["model"], Options(quarantine=str(tmp_path / "q.jsonl")))
    assert rep.totals["input_tokens"] == 2 * BIG
    assert rep.totals["cost"] == 2 * BIG * 3 / MTOK == Decimal("24000000000000")


def test_counts_over_the_row_cap_are_quarantined_not_summed(tmp_path, quarantine):
    path = _csv(tmp_path, "timestamp,model,input_tokens,output_tokens,request_id\n"
                          "2026-10-01T00:00:00Z,claude-sonnet-4-5,1000000000001,0,a\n"
                          "2026-10-01T00:00:00Z,claude-sonnet-4-5,999999999999,0,b\n")
    rep = analyze([path], ["model"], Options(quarantine=quarantine))
    assert (rep.accounting.priced, rep.accounting.quarantined) == (1, 1)
    assert rep.totals["input_tokens"] == 999_999_999_999


def test_store_report_refuses_sums_past_64_bits(tmp_path, no_cap):
    from analyzer import store

    root = str(tmp_path / "store")
    for i in range(3):  # each file alone sums exactly; the store's month does not
        path = _csv(tmp_path, "timestamp,model,input_tokens,output_tokens,request_id\n"
                              f"2026-10-0{i + 1}T00:00:00Z,claude-sonnet-4-5,{BIG},0,r{i}\n", f"day{i}.csv")
        store.ingest([path], root, Options(quarantine=str(tmp_path / "q.jsonl")))
    with pytest.raises(SourceError, match="2\\^63 - 1"):
        store.report(root, ["model"])


def test_copies_whose_steps_win_in_different_copies(tmp_path):
    # Two copies of one response with iterations, each larger in a different step: the copies compete
    # whole, by all their tokens (docs/accounting.md): line 2's 3000 + 700 beats line 1's 2000 + 800, and
    # is billed, both steps (until December 7 each step kept its own largest copy: 3000 + 800, a
    # response neither copy logged).
    def message(first: int, second: int) -> str:
        return json.dumps({"id": "msg_c", "type": "message", "model": "claude-sonnet-4-5-20250929", "content": [],
                           "usage": {"input_tokens": second, "output_tokens": 0, "iterations": [
                               {"type": "compaction", "input_tokens": first, "output_tokens": 0},
                               {"type": "message", "input_tokens": second, "output_tokens": 0}]}})
    path = _csv(tmp_path, message(2000, 800) + "\n" + message(3000, 700) + "\n", "copies.jsonl")
    rep, rows, acc = _both(path, tmp_path)
    assert sorted(zip(rows["request_id"], rows["input_tokens"], rows["source_row"])) == [
        ("msg_c", 3000, 2), ("msg_c#1", 700, 2)]
    assert rep.totals["input_tokens"] == 3700
    assert rep.totals["cost"] == sum(rows["cost"].to_list(), Decimal(0)) == 3700 * 3 / MTOK
    assert (acc.rows_read, acc.priced, acc.duplicates) == (2, 1, 1) and acc.as_dict() == rep.accounting.as_dict()


def test_reported_costs_too_large_to_sum_are_quarantined(tmp_path, quarantine):
    # 30 reported costs of ~10^26 dollars overflowed the money column's sum ("cannot read input");
    # each is corrupt (over a quadrillion dollars), quarantined with its line, never summed.
    rows = "".join("2026-10-01T00:00:00Z,claude-sonnet-4-5,10,1,99999999999999999999999999\n" for _ in range(30))
    ok = "2026-10-01T00:00:00Z,claude-sonnet-4-5,10,1,1000000000000000\n" * 2  # the cap itself is allowed
    path = _csv(tmp_path, "timestamp,model,input_tokens,output_tokens,reported_cost\n" + rows + ok)
    rep = analyze([path], ["model"], Options(quarantine=quarantine))
    assert (rep.accounting.priced, rep.accounting.quarantined) == (2, 30)
    assert rep.totals["reported_cost"] == Decimal(2 * 10**15)
    bad = [json.loads(line) for line in open(quarantine)]
    assert len(bad) == 30 and bad[0]["reason"] == "reported_cost is implausibly large (99999999999999999999999999)"

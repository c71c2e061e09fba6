"""Hostile and edge inputs to pricing: each a minimal input, its exact accounting and cost by hand."""

from __future__ import annotations

import json
from decimal import Decimal

from click.testing import CliRunner

from analyzer import Options, analyze, price_requests
from analyzer.cli import main

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

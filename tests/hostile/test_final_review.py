"""The issue-12 review of pricing and accounting: each test a minimal input that once gave a wrong
total with exit 0, its cost computed by hand from analyzer/pricebook/anthropic.toml."""

from __future__ import annotations

from decimal import Decimal

from analyzer import Options, analyze, price_requests

MTOK = Decimal(1_000_000)


def _csv(tmp_path, text: str, name: str = "log.csv") -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def _both(path: str, quarantine) -> tuple[Decimal, Decimal]:
    rep = analyze([path], [], Options(quarantine=quarantine))
    rows, _ = price_requests([path], Options(quarantine=quarantine))
    return rep.totals["cost"], sum((c for c in rows.lazy().collect()["cost"].to_list() if c is not None), Decimal(0))


def test_a_pre_aggregated_row_is_not_long_context_by_its_summed_prompt(tmp_path, quarantine):
    # Ten requests of 30K input each (300K summed) on Claude Sonnet 4 during its 1M beta: no request
    # was over 200K, yet the summed prompt put the row on the long tier ($6/$22.50 instead of $3/$15).
    # Without a context window a row of N > 1 requests is priced at the base tier (a lower bound).
    path = _csv(tmp_path, "timestamp,model,input_tokens,output_tokens,requests,request_id\n"
                          "2025-09-01T00:00:00Z,claude-sonnet-4-20250514,300000,1000,10,a\n")
    expected = (300_000 * 3 + 1000 * 15) / MTOK
    assert expected == Decimal("0.915")
    assert _both(path, quarantine) == (expected, expected)


def test_a_single_request_over_the_threshold_is_still_long(tmp_path, quarantine):
    # The same prompt in one request (requests 1, or no requests column) is long: $6 / $22.50.
    path = _csv(tmp_path, "timestamp,model,input_tokens,output_tokens,requests,request_id\n"
                          "2025-09-01T00:00:00Z,claude-sonnet-4-20250514,300000,1000,1,a\n"
                          "2025-09-01T00:00:00Z,claude-sonnet-4-20250514,200000,1000,1,b\n")
    expected = (300_000 * 6 + 1000 * Decimal("22.5")) / MTOK + (200_000 * 3 + 1000 * 15) / MTOK
    assert _both(path, quarantine) == (expected, expected)


def test_a_request_seen_either_side_of_a_month_edge_is_stored_once(tmp_path, quarantine):
    # The same request in two exports, one stamped at its start (31 January), one at its end
    # (1 February): `report` counts it once; the store checked only the night's own month for ids
    # already stored, so `ingest` twice then `report --store` billed it twice, exit 0, "balanced".
    import json

    from click.testing import CliRunner

    from analyzer.cli import main

    head = "timestamp,model,input_tokens,output_tokens,request_id\n"
    jan = _csv(tmp_path, head + "2026-01-31T23:59:59Z,claude-haiku-4-5-20251001,1000000,0,msg_x\n", "jan.csv")
    feb = _csv(tmp_path, head + "2026-02-01T00:00:01Z,claude-haiku-4-5-20251001,1000000,0,msg_x\n", "feb.csv")
    expected = 1_000_000 * Decimal(1) / MTOK  # Haiku 4.5: $1/MTok input
    rep = analyze([jan, feb], [], Options(quarantine=quarantine))
    assert rep.totals["cost"] == expected and rep.accounting.duplicates == 1
    for order in ((feb, jan), (jan, feb)):
        st = str(tmp_path / f"store_{order[0][-7:-4]}")
        for path in order:
            result = CliRunner().invoke(main, ["ingest", path, "--store", st])
            assert result.exit_code == 0, result.output
        result = CliRunner().invoke(main, ["report", "--store", st, "--format", "json"])
        assert result.exit_code == 0, result.output
        out = json.loads(result.stdout)
        assert Decimal(str(out["totals"]["cost"])) == expected, order
        assert out["accounting"]["duplicates"] == 1, order


def test_property_a_row_of_several_requests_prices_at_the_base_tier(tmp_path_factory):
    # The general rule: whatever its summed counts, a row of N > 1 requests without a context window
    # costs its counts at the base rates of Sonnet 4 (3 / 3.75 / 6 / 0.3 / 15 per MTok), in both commands.
    from hypothesis import given, settings
    from hypothesis import strategies as st

    count = st.integers(0, 10**12)

    @settings(max_examples=25, deadline=None)
    @given(st.integers(2, 10**6), count, count, count, count, count)
    def check(n, inp, w5, w1, read, out):
        d = tmp_path_factory.mktemp("agg")
        path = _csv(d, "timestamp,model,input_tokens,cache_write_5m_tokens,cache_write_1h_tokens,cache_read_tokens,"
                       f"output_tokens,requests,request_id\n2025-09-01T12:00:00Z,claude-sonnet-4-20250514,{inp},{w5},{w1},"
                       f"{read},{out},{n},r\n")
        expected = (inp * 3 + w5 * Decimal("3.75") + w1 * 6 + read * Decimal("0.3") + out * 15) / MTOK
        assert _both(path, str(d / "q.jsonl")) == (expected, expected)

    check()

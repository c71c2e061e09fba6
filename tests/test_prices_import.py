"""`llm-cost prices import` (issue 14 §6): LiteLLM and genai-prices data -> a validated overlay that
prices requests exactly. Fixtures are real excerpts (fixtures/prices/import/SOURCES.md); expected
costs are computed here by hand from the published numbers."""

from __future__ import annotations

import json
from decimal import Decimal as D

import pytest
from click.testing import CliRunner

from analyzer import Options, analyze
from analyzer.cli import main
from analyzer.errors import PriceBookError
from analyzer.pricebook import check, load_price_book
from analyzer.pricebook.importer import import_prices
from tests.conftest import ROOT
from tests.test_pricing_rules import Req, write_csv

IMPORT = ROOT / "fixtures" / "prices" / "import"
LITELLM = IMPORT / "litellm_model_prices.json"
GENAI_YAML = IMPORT / "genai-prices-google.yml"
GENAI_JSON = IMPORT / "genai-prices-data.json"
M = D(10**6)


def overlay(tmp_path, source) -> str:
    result = import_prices(str(source), load_price_book())
    path = tmp_path / "imported.toml"
    path.write_text(result.toml)
    return str(path)


def price(tmp_path, prices, *reqs):
    csv = write_csv(tmp_path / "usage.csv", list(reqs))
    return analyze([str(csv)], ["label"], Options(prices=(prices,)))


def test_litellm_overlay_loads_and_prices_exactly(tmp_path):
    result = import_prices(str(LITELLM), load_price_book())
    assert [m.id for m in result.models] == ["ai21.jamba-1-5-large-v1:0", "us.writer.palmyra-x5-v1:0",
                                             "amazon.nova-2-lite-v1:0", "amazon.nova-2-pro-preview-20251202-v1:0"]
    assert result.skipped == {"not priced per token (image_generation)": ["1024-x-1024/dall-e-2"]}
    # per token x 10^6, exactly: 2.1875e-06 -> 2.1875, 5.46875e-07 -> 0.546875, 1.75e-05 -> 17.5
    assert "input = 2.1875\n  cache_read = 0.546875\n  output = 17.5\n" in result.toml
    path = overlay(tmp_path, LITELLM)
    book = check(path)
    period = book.models["amazon.nova-2-pro-preview-20251202-v1:0"].periods[0]
    assert (period.confidence, period.source) == ("estimate", "LiteLLM: litellm_model_prices.json")
    rep = price(tmp_path, path, Req("2026-01-15T00:00:00Z", "amazon.nova-2-pro-preview-20251202-v1:0",
                                    input_tokens=1000, cache_write_5m_tokens=0, cache_write_1h_tokens=0,
                                    cache_read_tokens=2000, output_tokens=300))
    assert rep.totals["cost"] == (1000 * D("2.1875") + 2000 * D("0.546875") + 300 * D("17.5")) / M == D("0.00853125")


def test_litellm_undated_price_applies_to_old_logs_and_batch_stays_unpriced(tmp_path):
    path = overlay(tmp_path, LITELLM)
    base = dict(input_tokens=100, cache_write_5m_tokens=0, cache_write_1h_tokens=0, cache_read_tokens=0,
                output_tokens=10)
    rep = price(tmp_path, path, Req("2001-01-01T00:00:00Z", "ai21.jamba-1-5-large-v1:0", **base),
                Req("2026-01-01T00:00:00Z", "ai21.jamba-1-5-large-v1:0", service_tier="batch", **base))
    acc = rep.accounting
    assert (acc.priced, acc.unpriced) == (1, 1) and acc.balanced
    assert rep.totals["cost"] == (100 * 2 + 10 * 8) / M
    assert "no batch" in acc.unpriced_reasons["ai21.jamba-1-5-large-v1:0"]


def test_genai_yaml_dated_period_and_long_context(tmp_path):
    path = overlay(tmp_path, GENAI_YAML)
    flash = dict(input_tokens=1000, cache_write_5m_tokens=0, cache_write_1h_tokens=0, cache_read_tokens=0,
                 output_tokens=100)
    at = dict(input_tokens=150_000, cache_write_5m_tokens=0, cache_write_1h_tokens=0, cache_read_tokens=50_000,
              output_tokens=1000)  # prompt 200,000: base
    over = dict(at, cache_read_tokens=50_001)  # prompt 200,001: every token at the tier price
    rep = price(tmp_path, path,
                Req("2026-12-31T23:59:59Z", "gemini-3.6-flash", **flash),  # 0.75 / 3.75 (introductory)
                Req("2027-01-01T00:00:00Z", "gemini-3.6-flash", **flash),  # 1.50 / 7.50 from 2027-01-01
                Req("2026-06-01T00:00:00Z", "gemini-2.5-pro", **at),
                Req("2026-06-01T00:00:00Z", "gemini-2.5-pro", **over))
    costs = {r["label"]: r["cost"] for r in rep.rows.to_dicts()}
    assert costs == {
        "r0": (1000 * D("0.75") + 100 * D("3.75")) / M,
        "r1": (1000 * D("1.5") + 100 * D("7.5")) / M,
        "r2": (150_000 * D("1.25") + 50_000 * D("0.125") + 1000 * 10) / M,
        "r3": (150_000 * D("2.5") + 50_001 * D("0.25") + 1000 * 15) / M,
    }


def test_genai_data_json_skips_what_the_book_has_and_what_is_conditional(tmp_path):
    result = import_prices(str(GENAI_JSON), load_price_book())
    assert [m.id for m in result.models] == ["codestral-2508", "devstral-2512"]
    assert result.skipped == {"already in the book": ["gpt-4o", "o3"],
                              "conditional prices (time of day, region...)": ["deepseek-chat"]}
    path = overlay(tmp_path, GENAI_JSON)
    assert load_price_book([path]).models["codestral-2508"].provider == "mistral"


def test_models_an_overlay_in_use_already_prices_are_not_imported_again(tmp_path):
    first = overlay(tmp_path, GENAI_JSON)
    again = import_prices(str(GENAI_JSON), load_price_book([first]))
    assert again.models == [] and sorted(again.skipped["already in the book"]) == [
        "codestral-2508", "devstral-2512", "gpt-4o", "o3"]


@pytest.mark.parametrize("entry, reason", [
    ({"input_cost_per_token": "0.1", "output_cost_per_token": 1e-06, "mode": "chat"},
     "no usable input and output price per token"),
    ({"input_cost_per_token": -1e-06, "output_cost_per_token": 1e-06}, "no usable input and output price per token"),
    ({"output_cost_per_token": 1e-06}, "no usable input and output price per token"),
    ({"input_cost_per_token": 5, "output_cost_per_token": 5}, "a rate over 1,000,000 USD per million tokens"),
    ({"input_cost_per_token": 1e-06, "output_cost_per_token": 1e-06, "input_cost_per_token_above_128k_tokens": 2e-06,
      "output_cost_per_token_above_200k_tokens": 2e-06}, "no usable input and output price per token"),
])
def test_hostile_litellm_entries_are_skipped_with_a_reason(tmp_path, entry, reason):
    src = tmp_path / "prices.json"
    src.write_text(json.dumps({"x-model": entry, "y-model": {"input_cost_per_token": 1e-06,
                                                             "output_cost_per_token": 3e-06}}))
    result = import_prices(str(src), load_price_book())
    assert [m.id for m in result.models] == ["y-model"] and result.skipped == {reason: ["x-model"]}


@pytest.mark.parametrize("text, msg", [
    ("{\"a\": 1}", "neither a LiteLLM"),
    ("[1, 2", "not JSON"),
    ("[" * 100_000, "nested too deeply"),
])
def test_not_a_price_file_is_one_line(tmp_path, text, msg):
    src = tmp_path / "x.json"
    src.write_text(text)
    with pytest.raises(PriceBookError, match=msg):
        import_prices(str(src), load_price_book())


def test_cli_writes_a_checked_overlay(tmp_path):
    out = tmp_path / "o.toml"
    r = CliRunner().invoke(main, ["prices", "import", str(LITELLM), "-o", str(out)])
    assert r.exit_code == 0, r.output
    assert "4 model(s) imported from LiteLLM; 1 skipped" in r.output
    r = CliRunner().invoke(main, ["prices", "check", str(out)])
    assert r.exit_code == 0 and ": ok (" in r.output
    r = CliRunner().invoke(main, ["prices", "import", str(tmp_path / "missing.json")])
    assert r.exit_code == 2 and "cannot read" in r.output and "Traceback" not in r.output

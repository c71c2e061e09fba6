"""Price book loading, validation (messages name file, model, field) and overlays."""

from __future__ import annotations

from decimal import Decimal

import pytest

from analyzer import Options, analyze
from analyzer.errors import PriceBookError
from analyzer.models import Resolver, parse_model_id
from analyzer.pricebook import load_price_book

from .conftest import canonical_frame, write_frame


def test_shipped_book_loads_with_exact_rates():
    book = load_price_book()
    assert len(book.models) >= 39
    haiku3 = book.models["claude-3-haiku-20240307"].periods[0].rates
    assert (haiku3.cache_write_5m, haiku3.cache_read) == (Decimal("0.3"), Decimal("0.03"))  # published, rounded
    s55 = book.models["claude-sonnet-5-5"].periods
    assert [p.rates.cache_read for p in s55] == [Decimal("0.2"), Decimal("0.1")]
    assert "CONFLICT" in s55[1].note
    sonnet5 = book.models["claude-sonnet-5"].periods
    assert len(sonnet5) == 1 and sonnet5[0].rates.input == Decimal(2)  # the $3/$15 rise was cancelled
    for m in book.models.values():
        for p in m.periods:
            assert p.source and p.confidence in ("verified", "secondary", "estimate"), m.id
    assert len(book.version) == 12


def _overlay(tmp_path, text: str) -> str:
    p = tmp_path / "overlay.toml"
    p.write_text(text)
    return str(p)


@pytest.mark.parametrize("text,message", [
    ('[[model]]\nid = "m"\n[[model.period]]\nfrom = 2026-01-01\ninput = 1\noutput = 2\ncolour = 3\n',
     "overlay.toml: model m (from 2026-01-01): unknown key 'colour'"),
    ('[[model]]\nid = "m"\n[[model.period]]\nfrom = 2026-01-01\ninput = -1\noutput = 2\n',
     "model m (from 2026-01-01): input must be a non-negative decimal number"),
    ('[[model]]\nid = "m"\n[[model.period]]\nfrom = 2026-01-01\ninput = "cheap"\noutput = 2\n',
     "input must be a decimal number"),
    ('[[model]]\nid = "m"\n[[model.period]]\nfrom = 2026-01-01\ninput = 1\noutput = 2\n'
     '[[model.period]]\nfrom = 2026-01-01\ninput = 2\noutput = 3\n', "two periods start on 2026-01-01"),
    ('[[model]]\nid = "m"\naliases = ["claude-sonnet-4-5"]\n[[model.period]]\nfrom = 2026-01-01\ninput = 1\noutput = 2\n',
     "alias 'claude-sonnet-4-5' is claimed by both"),
    ('[[model]]\nid = "m"\n[[model.period]]\nfrom = 2026-01-01\ninput = 1\n', "needs at least `input` and `output`"),
    ('[[model]]\nid = "m"\n[[model.period]]\nfrom = 2026-01-01\ninput = 1\noutput = 1\n'
     '[model.period.long_context]\nthreshold = 0\ninput = 2\noutput = 2\n', "threshold must be a positive"),
    ('[[model]]\nid = "m"\n[[model.period]]\nfrom = 2026-01-01\ninput = 1\noutput = 1\nconfidence = "sure"\n',
     "confidence must be one of"),
    ('[book]\ndiscount = 100\n', "discount is a percentage below 100"),
    ('[[model]]\nid = "m"\n', "a new model needs at least one"),
    ('not toml at all [', "overlay.toml: TOML"),
    # Wrong types must never silently change a price (a string "false" is not false).
    ("book = 5\n", "[book]: must be a table"),
    ("model = 5\n", "model entries are written [[model]]"),
    ('[[model]]\nid = "claude-sonnet-4-5-20250929"\nus_geo = "false"\n', "us_geo must be true or false"),
    ('[[model]]\nid = "claude-sonnet-4-5-20250929"\naliases = "abc"\n', "aliases must be a list of model ids"),
    ('[[model]]\nid = "claude-sonnet-4-5-20250929"\nperiod = [5]\n', "must be a table, got 5"),
    ('[book]\n[book.multipliers]\nus_geo = 2\n', "apply to a provider"),
    ('[[model]]\nid = "m"\n[[model.period]]\nfrom = 2026-01-01\ninput = 1e30\noutput = 1\n', "beyond any plausible"),
])
def test_invalid_overlays_name_file_model_and_field(tmp_path, text, message):
    with pytest.raises(PriceBookError) as e:
        load_price_book([_overlay(tmp_path, text)])
    assert message in str(e.value)
    assert "\n" not in str(e.value)


def _cost(tmp_path, rows, prices=()) -> Decimal:
    p = write_frame(canonical_frame(rows), tmp_path / "log.csv")
    return analyze([str(p)], [], Options(prices=tuple(prices), quarantine=str(tmp_path / "q.jsonl"))).totals["cost"]


REQ = {"request_id": "x", "timestamp": "2026-10-10T10:00:00Z", "model": "claude-sonnet-4-5", "input_tokens": 1_000_000,
       "output_tokens": 1_000_000}


def test_overlay_negotiated_rate_from_a_date(tmp_path):
    overlay = _overlay(tmp_path, '[[model]]\nid = "claude-sonnet-4-5-20250929"\n[[model.period]]\nfrom = 2026-10-01\n'
                                 'input = 2.4\ncache_write_5m = 3\ncache_write_1h = 4.8\ncache_read = 0.24\noutput = 12\n'
                                 'source = "contract 2026-09"\n')
    assert _cost(tmp_path, [REQ]) == Decimal("18")  # 3 + 15
    assert _cost(tmp_path, [REQ], [overlay]) == Decimal("14.4")  # 2.4 + 12
    before = dict(REQ, timestamp="2026-09-30T23:59:59Z")
    assert _cost(tmp_path, [before], [overlay]) == Decimal("18")  # shipped price before the contract


def test_overlay_book_wide_discount(tmp_path):
    overlay = _overlay(tmp_path, '[book]\ndiscount = 15\ndiscount_from = 2026-10-10\n')
    assert _cost(tmp_path, [REQ], [overlay]) == Decimal("15.3")  # 18 x 0.85
    assert _cost(tmp_path, [dict(REQ, timestamp="2026-10-09T10:00:00Z")], [overlay]) == Decimal("18")


def test_overlay_adds_a_model(tmp_path):
    overlay = _overlay(tmp_path, '[[model]]\nid = "acme-llm-1"\nprovider = "acme"\naliases = ["acme-1"]\n'
                                 '[[model.period]]\nfrom = 2026-01-01\ninput = 0.5\noutput = 1.5\n')
    assert _cost(tmp_path, [dict(REQ, model="acme-1")], [overlay]) == Decimal("2")


@pytest.mark.parametrize("raw,expected,scope", [
    ("claude-sonnet-4-5", "claude-sonnet-4-5-20250929", None),
    ("CLAUDE-SONNET-4-5 ", "claude-sonnet-4-5-20250929", None),
    ("anthropic.claude-3-5-sonnet-20241022-v2:0", "claude-3-5-sonnet-20241022", "regional"),  # in-region call
    ("us.anthropic.claude-sonnet-4-5-20250929-v1:0", "claude-sonnet-4-5-20250929", "regional"),
    ("global.anthropic.claude-opus-4-8", "claude-opus-4-8", "global"),
    ("global.anthropic.claude-fable-5-1-v1:0", "claude-fable-5-1", "global"),
    ("eu.anthropic.claude-haiku-5-5", "claude-haiku-5-5", "regional"),
    ("arn:aws:bedrock:us-east-1::foundation-model/anthropic.claude-opus-4-7", "claude-opus-4-7", "regional"),
    ("bedrock/anthropic.claude-opus-4-5-20251101-v1:0", "claude-opus-4-5-20251101", "regional"),
    ("projects/p/locations/us-east5/publishers/anthropic/models/claude-sonnet-4-5@20250929:rawPredict",
     "claude-sonnet-4-5-20250929", "regional"),
    ("projects/p/locations/global/publishers/anthropic/models/claude-sonnet-4-5@20250929:streamRawPredict",
     "claude-sonnet-4-5-20250929", "global"),
    ("arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.anthropic.claude-opus-4-8", "claude-opus-4-8",
     "regional"),
    ("claude-3-5-sonnet-v2@20241022", "claude-3-5-sonnet-20241022", None),
    ("claude-sonnet-4@20250514", "claude-sonnet-4-20250514", None),
    ("claude-opus-4-6[1m]", "claude-opus-4-6", None),
    ("claude-3-5-haiku-latest", "claude-3-5-haiku-20241022", None),
])
def test_model_resolution(raw, expected, scope):
    model, found_scope, problem = Resolver(load_price_book()).resolve(raw)
    assert (model, found_scope, problem) == (expected, scope, None)


@pytest.mark.parametrize("raw", ["claude-sonnet", "gpt-4o-2024", "claude-sonnet-4-5-2025",
                                 "arn:aws:bedrock:us-east-1:1:application-inference-profile/abc"])
def test_no_fuzzy_matching(raw):
    model, _, problem = Resolver(load_price_book()).resolve(raw)
    assert model is None and problem


def test_normalize_is_mechanical():
    assert parse_model_id("apac.anthropic.claude-x-v3:1") == ("claude-x", "regional", None)


# -- ids as other tools log them (issue 14 §3): each form resolves exactly ---------------------------
@pytest.mark.parametrize("raw, expected", [
    # OpenRouter slugs: dotted versions by rule, undated slugs listed whole in platform_ids
    ("anthropic/claude-sonnet-4.5", "claude-sonnet-4-5-20250929"),
    ("anthropic/claude-opus-4.1", "claude-opus-4-1-20250805"),
    ("anthropic/claude-haiku-4.5", "claude-haiku-4-5-20251001"),
    ("anthropic/claude-opus-4.6", "claude-opus-4-6"),
    ("anthropic/claude-3.5-sonnet", "claude-3-5-sonnet-20241022"),
    ("anthropic/claude-3.5-sonnet-20240620", "claude-3-5-sonnet-20240620"),
    ("anthropic/claude-3.7-sonnet:thinking", "claude-3-7-sonnet-20250219"),
    ("anthropic/claude-sonnet-4", "claude-sonnet-4-20250514"),
    ("anthropic/claude-3-haiku", "claude-3-haiku-20240307"),
    ("Anthropic/Claude-3.5-Haiku:beta", "claude-3-5-haiku-20241022"),
    ("openai/gpt-4o", "gpt-4o"),
    ("openai/gpt-4.1-mini-2025-04-14", "gpt-4.1-mini"),
    ("openai/o3", "o3"),
    # LiteLLM routes, including its route to OpenRouter
    ("openrouter/anthropic/claude-sonnet-4.5", "claude-sonnet-4-5-20250929"),
    ("openrouter/openai/gpt-5-mini", "gpt-5-mini"),
    ("anthropic/claude-3-5-sonnet-latest", "claude-3-5-sonnet-20241022"),
    ("bedrock/anthropic.claude-3-5-sonnet-20241022-v2:0", "claude-3-5-sonnet-20241022"),
    ("bedrock/converse/us.anthropic.claude-3-7-sonnet-20250219-v1:0", "claude-3-7-sonnet-20250219"),
    ("vertex_ai/claude-3-5-sonnet-v2@20241022", "claude-3-5-sonnet-20241022"),
    ("vertex_ai/claude-opus-4-1@20250805", "claude-opus-4-1-20250805"),
    # Vertex @ versions
    ("claude-3-5-sonnet-v2@20241022", "claude-3-5-sonnet-20241022"),
    ("claude-3-7-sonnet@20250219", "claude-3-7-sonnet-20250219"),
    ("claude-haiku-4-5@20251001", "claude-haiku-4-5-20251001"),
    # the dot rule never touches an id Anthropic writes with a dot
    ("claude-2.1", "claude-2.1"),
    ("anthropic/claude-instant-1.2", "claude-instant-1.2"),
])
def test_tool_id_forms_resolve(raw, expected):
    model, _, problem = Resolver(load_price_book()).resolve(raw)
    assert (model, problem) == (expected, None)


@pytest.mark.parametrize("raw", [
    "openai/gpt-4o:extended",  # OpenRouter's long-output variant is priced differently ($6/$18)
    "anthropic/claude-3.5-sonnet:free",  # a free variant is not the paid model
    "claude-3.5-sonnet",  # the undated dotted slug without OpenRouter's vendor is nobody's id
    "openrouter/meta-llama/llama-3-70b-instruct",
])
def test_tool_id_forms_that_must_not_resolve(raw):
    model, _, problem = Resolver(load_price_book()).resolve(raw)
    assert model is None and problem == "unknown model"


def _book_without(*ids):
    book = load_price_book()
    for mid in ids:
        del book.models[mid]
    return book


@pytest.mark.parametrize("raw, book, expected", [
    # the cases: a missing GPT-4.1 family never suggests another generation's model
    ("gpt-4.1-mini", ("gpt-4.1", "gpt-4.1-mini", "gpt-4.1-nano"), None),
    ("gpt-4.1-mni", (), {"gpt-4.1-mini"}),
    ("gpt-4.1-mini", ("gpt-4.1-mini",), None),  # nano is another size: not offered for mini
    ("claude-4-opus", (), {"claude-opus-4-20250514", "claude-opus-4-1-20250805", "claude-opus-4-5-20251101",
                           "claude-opus-4-6", "claude-opus-4-7", "claude-opus-4-8"}),
    # typos stay within the family
    ("claude-sonet-4-5", (), {"claude-sonnet-4-5-20250929"}),
    ("claude-sonnett-5-5", (), {"claude-sonnet-5-5"}),
    # a line the book does not have: nothing rather than another line
    ("claude-nova-1", (), None),
    ("gpt-7", (), None),
    # a Claude id never suggests an OpenAI model, nor the reverse
    ("claude-5.4", (), None),
    ("gpt-opus-4-6", (), None),
])
def test_suggestions_stay_in_provider_and_family(raw, book, expected):
    got = Resolver(_book_without(*book)).suggest(raw)
    assert got == expected if expected is None else got in expected


def test_openai_priority_is_unpriced_where_the_books_factor_is_not_the_models(tmp_path):
    """OpenAI billed priority at 1.7-1.8x on GPT-4o: the book's 2x would over-price it by up to 18%.
    Such a model says `priority = false`: its priority rows are unpriced and named, never priced wrong."""
    rows = [{"timestamp": "2026-11-01T00:00:00Z", "model": "gpt-4o", "input_tokens": 1_000_000, "output_tokens": 0,
             "service_tier": "priority"},
            {"timestamp": "2026-11-01T00:00:00Z", "model": "gpt-4o", "input_tokens": 1_000_000, "output_tokens": 0}]
    rep = analyze([str(write_frame(canonical_frame(rows), tmp_path / "p.csv"))], by=["model"],
                  opts=Options(quarantine=str(tmp_path / "q.jsonl")))
    assert rep.totals["cost"] == Decimal("2.5")  # the standard request: $2.50 / MTok input
    assert rep.accounting.unpriced == 1 and "no priority price for gpt-4o" in rep.accounting.unpriced_reasons["gpt-4o"]
    assert not load_price_book().models["gpt-4o"].priority and load_price_book().models["gpt-5.4"].priority

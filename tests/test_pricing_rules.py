"""Every pricing rule, on both sides of its boundary, against HAND-COMPUTED Decimal costs.

Each case is one request in a canonical CSV (the table-driven CASES share one log, analyzed once;
the spelled-out tests and the unpriced cases get a log of their own). `analyze()` prices it and the
exact Decimal cost (and its components) is compared with an expectation computed here from the
published $/MTok numbers, written as literals with the derivation in a comment. Nothing here calls the library's rate code: the
facts are Anthropic's published prices (https://platform.claude.com/docs/en/about-claude/pricing, checked
2026-11-25, the `source` of the price book's periods; fast mode: .../build-with-claude/fast-mode), the
section of that page cited per group.

`request_id` is not accepted by --by (it is a canonical column, not a dimension), so every CSV
carries a `label` dimension and the report is grouped by it.
"""

from __future__ import annotations

import csv
import itertools
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import pytest

from analyzer import pricebook
from analyzer.pipeline import analyze

D = Decimal
MTOK = D(10**6)  # rates are USD per million tokens
CSV_COLUMNS = ["request_id", "timestamp", "model", "service_tier", "speed", "inference_geo", "endpoint_scope",
               "platform", "input_tokens", "cache_write_5m_tokens", "cache_write_1h_tokens", "cache_read_tokens",
               "output_tokens", "web_search_requests", "label"]
COMPONENT_KEYS = ("cost_input", "cost_cache_write_5m", "cost_cache_write_1h", "cost_cache_read", "cost_output")
CACHE_TAGS = {"cache_read", "cache_write_5m", "cache_write_1h"}

S4 = "claude-sonnet-4-20250514"
S45 = "claude-sonnet-4-5-20250929"
S46 = "claude-sonnet-4-6"
S5 = "claude-sonnet-5"
S55 = "claude-sonnet-5-5"
O45 = "claude-opus-4-5-20251101"
O46 = "claude-opus-4-6"
O47 = "claude-opus-4-7"
O48 = "claude-opus-4-8"
O55 = "claude-opus-5-5"
H3 = "claude-3-haiku-20240307"
H35 = "claude-3-5-haiku-20241022"
H45 = "claude-haiku-4-5-20251001"
H55 = "claude-haiku-5-5"
F5 = "claude-fable-5"
F51 = "claude-fable-5-1"
C20 = "claude-2.0"
C21 = "claude-2.1"
I12 = "claude-instant-1.2"
NO_CACHE = dict(cache_write_5m_tokens=0, cache_write_1h_tokens=0, cache_read_tokens=0)
OAI = dict(cache_write_5m_tokens=0, cache_write_1h_tokens=0)  # OpenAI: cached input only, no write class


@dataclass(frozen=True)
class Req:
    """One logged request (canonical CSV row). Token defaults are the small generic MIX."""

    timestamp: str
    model: str
    input_tokens: int = 1_000
    cache_write_5m_tokens: int = 2_000
    cache_write_1h_tokens: int = 3_000
    cache_read_tokens: int = 4_000
    output_tokens: int = 5_000
    web_search_requests: int = 0
    service_tier: str = "standard"
    speed: str = "standard"
    inference_geo: str = ""
    endpoint_scope: str = ""
    platform: str = ""


# Token mixes. Prompt = input + cache writes + cache reads (output never counts).
AT_200K = dict(input_tokens=100_000, cache_write_5m_tokens=50_000, cache_write_1h_tokens=40_000,
               cache_read_tokens=10_000, output_tokens=1_000)  # prompt = 200,000 (not over)
OVER_200K = dict(AT_200K, cache_read_tokens=10_001)  # prompt = 200,001 (crossed by a cache read)
AT_100K = dict(input_tokens=40_000, cache_write_5m_tokens=20_000, cache_write_1h_tokens=20_000,
               cache_read_tokens=20_000, output_tokens=5_000)  # prompt = 100,000
OVER_100K = dict(AT_100K, cache_read_tokens=20_001)  # prompt = 100,001


def mtok(tokens: int, usd_per_mtok: str) -> Decimal:
    """Hand arithmetic: tokens x published USD/MTok / 10^6, exact."""
    return D(tokens) * D(usd_per_mtok) / MTOK


def hand(req: Req, rates: tuple[str | None, ...], web_search_usd_per_1000: str = "10") -> dict[str, Decimal]:
    """Expected cost components for `req` at hand-written per-MTok rates (input, 5m write, 1h write, read,
    output). None = the model has no such rate (the request must carry no such tokens)."""
    counts = (req.input_tokens, req.cache_write_5m_tokens, req.cache_write_1h_tokens, req.cache_read_tokens,
              req.output_tokens)
    out: dict[str, Decimal] = {}
    for k, n, rate in zip(COMPONENT_KEYS, counts, rates, strict=True):
        assert rate is not None or n == 0, "a class without a rate leaves the request unpriced: see test_unpriced"
        out[k] = D(0) if rate is None else mtok(n, rate)
    # web search: $10 per 1,000 searches, per use (pricing page, web search tool)
    out["cost_web_search"] = D(req.web_search_requests) * D(web_search_usd_per_1000) / D(1000)
    out["cost"] = sum(out.values(), D(0))
    return out


def write_csv(path: Path, reqs: list[Req], labels: list[str] | None = None) -> Path:
    labels = labels or [f"r{i}" for i in range(len(reqs))]
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(CSV_COLUMNS)
        for i, (r, label) in enumerate(zip(reqs, labels, strict=True)):
            w.writerow([f"req_{i:04d}", r.timestamp, r.model, r.service_tier, r.speed, r.inference_geo,
                        r.endpoint_scope, r.platform, r.input_tokens, r.cache_write_5m_tokens,
                        r.cache_write_1h_tokens, r.cache_read_tokens, r.output_tokens, r.web_search_requests,
                        label])
    return path


BY = ["label", "context_tier", "price_period", "discount_type"]


def run_one(tmp_path: Path, req: Req):
    path = write_csv(tmp_path / "usage.csv", [req])
    return analyze([str(path)], by=BY)


def price_one(tmp_path: Path, req: Req) -> dict:
    report = run_one(tmp_path, req)
    acc = report.accounting
    assert (acc.priced, acc.unpriced, acc.quarantined) == (1, 0, 0), acc.as_dict()
    assert report.rows.height == 1
    return report.rows.to_dicts()[0]


def modifier_tags(discount_type: str) -> set[str]:
    """discount_type without the cache operations `--by discount_type` appends."""
    return set(discount_type.split("+")) - CACHE_TAGS - {"standard"}


# ---------------------------------------------------------------------------------------------
# The cases: (id, request, hand-written $/MTok rates, context tier, price period, modifier tags)

BASE_3_15 = ("3", "3.75", "6", "0.3", "15")  # Sonnet 4/4.5/4.6 base: 3, 1.25x=3.75, 2x=6, 0.1x=0.30, 15
LONG_6_22 = ("6", "7.5", "12", "0.6", "22.5")  # Sonnet >200K: 6, 7.50, 12, 0.60, 22.50 (pricing page, long context pricing)
OPUS_5_25 = ("5", "6.25", "10", "0.5", "25")  # Opus 4.5+ base: 5, 6.25, 10, 0.50, 25
OPUS46_LONG = ("10", "12.5", "20", "1", "37.5")  # Opus 4.6 >200K until 2026-03-13: 10, 12.50, 20, 1, 37.50


def case(cid: str, req: Req, rates, tier: str | None = "base", period: str | None = None,
         tags: set[str] | None = frozenset(), **kw):
    """tier / period / tags None: not checked."""
    return pytest.param(req, rates, tier, period, None if tags is None else set(tags), kw, id=cid)


CASES = [
    # --- Long context Sonnet 4.5: prompt > 200,000 (input + cache writes + cache reads), inside 2025-09-29..2026-04-29
    case("sonnet45-prompt-200000-base", Req("2025-10-15T12:00:00Z", S45, **AT_200K), BASE_3_15, "base", "2025-09-29"),
    case("sonnet45-prompt-200001-long", Req("2025-10-15T12:00:00Z", S45, **OVER_200K), LONG_6_22, "long",
         "2025-09-29", {"long_context"}),
    case("sonnet45-long-last-instant-2026-04-29", Req("2026-04-29T23:59:59Z", S45, **OVER_200K), LONG_6_22, "long",
         "2025-09-29", {"long_context"}),
    case("sonnet45-long-window-ended-2026-04-30", Req("2026-04-30T00:00:00Z", S45, **OVER_200K), BASE_3_15, "base",
         "2025-09-29"),
    # --- Sonnet 4 1M beta window starts 2025-08-12
    case("sonnet4-200001-2025-08-11-base", Req("2025-08-11T23:59:59Z", S4, **OVER_200K), BASE_3_15, "base",
         "2025-05-22"),
    case("sonnet4-200001-2025-08-12-long", Req("2025-08-12T00:00:00Z", S4, **OVER_200K), LONG_6_22, "long",
         "2025-05-22", {"long_context"}),
    case("sonnet4-200000-2025-08-12-base", Req("2025-08-12T00:00:00Z", S4, **AT_200K), BASE_3_15, "base",
         "2025-05-22"),
    case("sonnet4-200001-2026-04-30-base", Req("2026-04-30T00:00:00Z", S4, **OVER_200K), BASE_3_15, "base",
         "2025-05-22"),
    # --- Opus 4.6 / Sonnet 4.6: >200K premium until 1M GA on 2026-03-13
    case("opus46-200001-2026-03-12-long", Req("2026-03-12T23:59:59Z", O46, **OVER_200K), OPUS46_LONG, "long",
         "2026-02-05", {"long_context"}),
    case("opus46-200001-2026-03-13-base", Req("2026-03-13T00:00:00Z", O46, **OVER_200K), OPUS_5_25, "base",
         "2026-03-13"),
    case("opus46-200000-2026-03-01-base", Req("2026-03-01T12:00:00Z", O46, **AT_200K), OPUS_5_25, "base",
         "2026-02-05"),
    case("sonnet46-200001-2026-03-12-long", Req("2026-03-12T23:59:59Z", S46, **OVER_200K), LONG_6_22, "long",
         "2026-02-17", {"long_context"}),
    case("sonnet46-200001-2026-03-13-base", Req("2026-03-13T00:00:00Z", S46, **OVER_200K), BASE_3_15, "base",
         "2026-03-13"),
    # --- Haiku 5.5 prompt-length tier: over 100,000 -> every class (output too) at 5x
    case("haiku55-prompt-100000-low", Req("2026-10-15T12:00:00Z", H55, **AT_100K),
         ("0.1", "0.125", "0.2", "0.01", "0.5"), "base", "2026-10-07"),
    case("haiku55-prompt-100001-high", Req("2026-10-15T12:00:00Z", H55, **OVER_100K),
         ("0.5", "0.625", "1", "0.05", "2.5"), "long", "2026-10-07", {"long_context"}),
    # --- Dated price changes, last instant of the old price vs first instant of the new one
    # Claude 3.5 Haiku: launch $1/$5 (cache 1.25/2/0.10) until 2024-12-03, then $0.80/$4 (cache 1/1.60/0.08)
    case("haiku35-2024-12-02-launch-price", Req("2024-12-02T23:59:59Z", H35), ("1", "1.25", "2", "0.1", "5"), "base",
         "2024-11-04"),
    case("haiku35-2024-12-03-cut-price", Req("2024-12-03T00:00:00Z", H35), ("0.8", "1", "1.6", "0.08", "4"), "base",
         "2024-12-03"),
    case("haiku35-first-instant-2024-11-04", Req("2024-11-04T00:00:00Z", H35), ("1", "1.25", "2", "0.1", "5"),
         "base", "2024-11-04"),
    # Sonnet 5.5 cache read $0.20 (0.1x) until 2026-10-06, $0.10 (0.05x) from 2026-10-07
    case("sonnet55-2026-10-06-read-0.20", Req("2026-10-06T23:59:59Z", S55), ("2", "2.5", "4", "0.2", "10"), "base",
         "2026-09-28"),
    case("sonnet55-2026-10-07-read-0.10", Req("2026-10-07T00:00:00Z", S55), ("2", "2.5", "4", "0.1", "10"), "base",
         "2026-10-07"),
    # Sonnet 5: the announced 2026-09-01 rise to $3/$15 was cancelled -> $2/$10 on both sides
    case("sonnet5-2026-08-31-intro", Req("2026-08-31T23:59:59Z", S5), ("2", "2.5", "4", "0.2", "10"), "base",
         "2026-06-30"),
    case("sonnet5-2026-09-01-no-rise", Req("2026-09-01T00:00:00Z", S5), ("2", "2.5", "4", "0.2", "10"), "base",
         "2026-06-30"),
    # Claude 2.0: the earliest price in the book (the instant before is unpriced: see test_unpriced), the
    # May 2023 sheet's $11.02/$32.68 until the price update announced with Claude 2.1 (2023-11-21): $8/$24
    case("claude20-first-instant-2023-07-11", Req("2023-07-11T00:00:00Z", C20, **NO_CACHE),
         ("11.02", None, None, None, "32.68"), "base", "2023-07-11"),
    case("claude20-2023-11-20-launch-price", Req("2023-11-20T23:59:59Z", C20, **NO_CACHE),
         ("11.02", None, None, None, "32.68"), "base", "2023-07-11"),
    case("claude20-2023-11-21-cut-price", Req("2023-11-21T00:00:00Z", C20, **NO_CACHE),
         ("8", None, None, None, "24"), "base", "2023-11-21"),
    # Claude Instant 1.2: $1.63/$5.51 until the same update, then $0.80/$2.40
    case("instant12-2023-11-20-launch-price", Req("2023-11-20T23:59:59Z", I12, **NO_CACHE),
         ("1.63", None, None, None, "5.51"), "base", "2023-08-09"),
    case("instant12-2023-11-21-cut-price", Req("2023-11-21T00:00:00Z", "claude-instant-1", **NO_CACHE),
         ("0.8", None, None, None, "2.4"), "base", "2023-11-21"),
    # --- OpenAI (pricebook/openai.toml; https://developers.openai.com/api/docs/pricing, Standard column:
    # input, cached input = cache_read, output; OpenAI has no 1h write and bills no write before GPT-5.6)
    # gpt-4o: the undated alias served 2024-05-13 ($5/$15, no cached price) until 2024-10-02, then
    # gpt-4o-2024-08-06 ($2.50 / $1.25 cached / $10)
    case("gpt4o-alias-2024-10-01-first-snapshot", Req("2024-10-01T23:59:59Z", "gpt-4o", **NO_CACHE),
         ("5", None, None, None, "15"), "base", "2024-05-13"),
    case("gpt4o-alias-2024-10-02-second-snapshot", Req("2024-10-02T00:00:00Z", "gpt-4o", **OAI),
         ("2.5", None, None, "1.25", "10"), "base", "2024-10-02"),
    # the dated snapshots keep their own price on the same day
    case("gpt4o-2024-05-13-snapshot", Req("2024-12-01T12:00:00Z", "gpt-4o-2024-05-13", **NO_CACHE),
         ("5", None, None, None, "15"), "base", "2024-05-13"),
    case("gpt4o-2024-08-06-snapshot", Req("2024-12-01T12:00:00Z", "gpt-4o-2024-08-06", **OAI),
         ("2.5", None, None, "1.25", "10"), "base", "2024-08-06"),
    # o3: $10 / $2.50 / $40 at launch, 80% cut on 2025-06-10 to $2 / $0.50 / $8
    case("o3-2025-06-09-launch-price", Req("2025-06-09T23:59:59Z", "o3-2025-04-16", **OAI),
         ("10", None, None, "2.5", "40"), "base", "2025-04-16"),
    case("o3-2025-06-10-cut-price", Req("2025-06-10T00:00:00Z", "o3-2025-04-16", **OAI),
         ("2", None, None, "0.5", "8"), "base", "2025-06-10"),
    # gpt-4.1-mini batch: 0.5x of $0.40 / $0.10 / $1.60
    case("gpt41mini-batch-half", Req("2025-11-25T12:00:00Z", "gpt-4.1-mini-2025-04-14", service_tier="batch", **OAI),
         ("0.2", None, None, "0.05", "0.8"), "base", "2025-04-14", {"batch"}),
    # gpt-5-nano: $0.05 / $0.005 / $0.40
    case("gpt5nano-standard", Req("2025-09-01T12:00:00Z", "gpt-5-nano-2025-08-07", **OAI),
         ("0.05", None, None, "0.005", "0.4"), "base", "2025-08-07"),
    # Haiku 5.5 first instant (the instant before is unpriced: see test_unpriced)
    case("haiku55-first-instant-2026-10-07", Req("2026-10-07T00:00:00Z", H55), ("0.1", "0.125", "0.2", "0.01", "0.5"),
         "base", "2026-10-07"),
    # Haiku 5.5 >100K with inference_geo=us: 1.1x on top of the high tier
    case("haiku55-us-100001-high", Req("2026-10-15T12:00:00Z", H55, inference_geo="us", **OVER_100K),
         ("0.55", "0.6875", "1.1", "0.055", "2.75"),  # 0.50, 0.625, 1, 0.05, 2.50 x 1.1
         "long", "2026-10-07", {"long_context", "us_geo"}),
    # --- Batch x cache: 0.5 on every token class, cache writes and reads included (pricing page, batch processing)
    case("haiku45-batch-cache", Req("2025-11-01T12:00:00Z", H45, service_tier="batch"),
         ("0.5", "0.625", "1", "0.05", "2.5"),  # 1, 1.25, 2, 0.10, 5 x 0.5
         "base", "2025-10-15", {"batch"},
         # list = the same request at the standard tier, every prompt token at the $1 input rate
         list_cost=mtok(1_000 + 2_000 + 3_000 + 4_000, "1") + mtok(5_000, "5")),
    case("haiku45-standard-cache", Req("2025-11-01T12:00:00Z", H45), ("1", "1.25", "2", "0.1", "5"), "base",
         "2025-10-15"),
    # --- Batch x long context ("The Batch API 50% discount applies to long context pricing")
    case("sonnet45-batch-200001-long", Req("2025-10-15T12:00:00Z", S45, service_tier="batch", **OVER_200K),
         ("3", "3.75", "6", "0.3", "11.25"),  # 6, 7.50, 12, 0.60, 22.50 x 0.5
         "long", "2025-09-29", {"batch", "long_context"}),
    case("sonnet45-batch-200000-base", Req("2025-10-15T12:00:00Z", S45, service_tier="batch", **AT_200K),
         ("1.5", "1.875", "3", "0.15", "7.5"),  # 3, 3.75, 6, 0.30, 15 x 0.5
         "base", "2025-09-29", {"batch"}),
    # Haiku 5.5 batch: $0.05/$0.25 (<=100K), $0.25/$1.25 (>100K)
    case("haiku55-batch-100000-low", Req("2026-10-15T12:00:00Z", H55, service_tier="batch", **AT_100K),
         ("0.05", "0.0625", "0.1", "0.005", "0.25"),  # 0.10, 0.125, 0.20, 0.01, 0.50 x 0.5
         "base", "2026-10-07", {"batch"}),
    case("haiku55-batch-100001-high", Req("2026-10-15T12:00:00Z", H55, service_tier="batch", **OVER_100K),
         ("0.25", "0.3125", "0.5", "0.025", "1.25"),  # 0.50, 0.625, 1, 0.05, 2.50 x 0.5
         "long", "2026-10-07", {"batch", "long_context"}),
    # --- Geo x long context: "The data residency 1.1x multiplier applies on top of long context pricing"
    case("opus46-us-200001-long", Req("2026-03-01T12:00:00Z", O46, inference_geo="us", **OVER_200K),
         ("11", "13.75", "22", "1.1", "41.25"),  # 10, 12.50, 20, 1, 37.50 x 1.1
         "long", "2026-02-05", {"us_geo", "long_context"}),
    case("opus46-us-200000-base", Req("2026-03-01T12:00:00Z", O46, inference_geo="us", **AT_200K),
         ("5.5", "6.875", "11", "0.55", "27.5"),  # 5, 6.25, 10, 0.50, 25 x 1.1
         "base", "2026-02-05", {"us_geo"}),
    # --- inference_geo=us only on Claude 4.6+ and only first-party (not Bedrock / Vertex)
    case("opus46-us-after-ga", Req("2026-04-01T12:00:00Z", O46, inference_geo="us"),
         ("5.5", "6.875", "11", "0.55", "27.5"),  # 5, 6.25, 10, 0.50, 25 x 1.1
         "base", "2026-03-13", {"us_geo"}),
    case("opus46-global-geo", Req("2026-04-01T12:00:00Z", O46, inference_geo="global"), OPUS_5_25, "base",
         "2026-03-13"),
    case("sonnet46-us", Req("2026-04-01T12:00:00Z", S46, inference_geo="us"),
         ("3.3", "4.125", "6.6", "0.33", "16.5"),  # 3, 3.75, 6, 0.30, 15 x 1.1
         "base", "2026-03-13", {"us_geo"}),
    case("opus45-us-no-multiplier", Req("2026-04-01T12:00:00Z", O45, inference_geo="us"), OPUS_5_25, "base",
         "2025-11-24"),
    case("opus46-us-on-bedrock-no-multiplier", Req("2026-04-01T12:00:00Z", O46, inference_geo="us", platform="bedrock"),
         OPUS_5_25, "base", "2026-03-13"),
    case("opus46-us-on-vertex-no-multiplier", Req("2026-04-01T12:00:00Z", O46, inference_geo="us", platform="vertex"),
         OPUS_5_25, "base", "2026-03-13"),
    # --- Fast mode x cache: Opus 5.5 fast $8/$40, cache derived 5m 10, 1h 16, read 0.40 (keeps 0.05x)
    case("opus55-fast-cache", Req("2026-10-15T12:00:00Z", O55, speed="fast"), ("8", "10", "16", "0.4", "40"), "base",
         "2026-09-22", {"fast"}),
    case("opus55-standard-cache", Req("2026-10-15T12:00:00Z", O55), ("4", "5", "8", "0.2", "20"), "base",
         "2026-09-22"),
    case("opus55-fast-us", Req("2026-10-15T12:00:00Z", O55, speed="fast", inference_geo="us"),
         ("8.8", "11", "17.6", "0.44", "44"),  # 8, 10, 16, 0.40, 40 x 1.1 (geo stacks with fast)
         "base", "2026-09-22", {"fast", "us_geo"}),
    # --- Fast window edges. Opus 4.6 fast $30/$150 (cache 37.50/60/3) 2026-02-07..2026-06-28
    case("opus46-fast-2026-02-06-not-yet", Req("2026-02-06T23:59:59Z", O46, speed="fast"), OPUS_5_25, "base",
         "2026-02-05"),
    case("opus46-fast-2026-02-07-fast", Req("2026-02-07T00:00:00Z", O46, speed="fast"),
         ("30", "37.5", "60", "3", "150"), "base", "2026-02-05", {"fast"}),
    case("opus46-fast-2026-06-28-fast", Req("2026-06-28T23:59:59Z", O46, speed="fast"),
         ("30", "37.5", "60", "3", "150"), "base", "2026-03-13", {"fast"}),
    case("opus46-fast-2026-06-29-standard", Req("2026-06-29T00:00:00Z", O46, speed="fast"), OPUS_5_25, "base",
         "2026-03-13"),
    # Fast over 200K during the beta: the pricing page's flat fast price across the full context (the
    # fast-mode page once said otherwise; the book follows the pricing page). Its context tier says which rates
    # applied: base, no long_context tag.
    case("opus46-fast-200001-flat", Req("2026-03-01T12:00:00Z", O46, speed="fast", **OVER_200K),
         ("30", "37.5", "60", "3", "150"), "base", "2026-02-05", {"fast"}),
    # Opus 4.7 fast $30/$150 2026-05-12..2026-07-23 (removed 2026-07-24)
    case("opus47-fast-2026-05-11-not-yet", Req("2026-05-11T23:59:59Z", O47, speed="fast"), OPUS_5_25, "base",
         "2026-04-16"),
    case("opus47-fast-2026-05-12-fast", Req("2026-05-12T00:00:00Z", O47, speed="fast"),
         ("30", "37.5", "60", "3", "150"), "base", "2026-04-16", {"fast"}),
    case("opus47-fast-2026-07-23-fast", Req("2026-07-23T23:59:59Z", O47, speed="fast"),
         ("30", "37.5", "60", "3", "150"), "base", "2026-04-16", {"fast"}),
    case("opus47-fast-2026-07-24-removed", Req("2026-07-24T00:00:00Z", O47, speed="fast"), OPUS_5_25, "base",
         "2026-04-16"),
    # No fast mode on any Sonnet: speed=fast bills standard
    case("sonnet45-speed-fast-no-fast-mode", Req("2025-10-15T12:00:00Z", S45, speed="fast"), BASE_3_15, "base",
         "2025-09-29"),
    # Opus 4.8 fast $10/$50 (cache 12.50/20/1) until 2026-11-30 (exclusive)
    case("opus48-fast-2026-11-29-fast", Req("2026-11-29T23:59:59Z", O48, speed="fast"),
         ("10", "12.5", "20", "1", "50"), "base", "2026-05-28", {"fast"}),
    case("opus48-fast-2026-11-30-standard", Req("2026-11-30T00:00:00Z", O48, speed="fast"), OPUS_5_25, "base",
         "2026-05-28"),
    # --- Regional endpoint premium (Bedrock/Vertex, Sonnet 4.5 and later): x1.1, scope from the id prefix
    case("sonnet45-bedrock-us-profile-regional",
         Req("2026-06-01T12:00:00Z", "us.anthropic.claude-sonnet-4-5-20250929-v1:0", platform="bedrock"),
         ("3.3", "4.125", "6.6", "0.33", "16.5"),  # 3, 3.75, 6, 0.30, 15 x 1.1
         "base", "2025-09-29", {"regional"}),
    case("sonnet45-bedrock-global-profile",
         Req("2026-06-01T12:00:00Z", "global.anthropic.claude-sonnet-4-5-20250929-v1:0", platform="bedrock"),
         BASE_3_15, "base", "2025-09-29"),
    case("sonnet4-bedrock-us-profile-pre-4.5",
         Req("2026-06-01T12:00:00Z", "us.anthropic.claude-sonnet-4-20250514-v1:0", platform="bedrock"),
         BASE_3_15, "base", "2025-05-22"),
    case("sonnet45-vertex-explicit-regional",
         Req("2026-06-01T12:00:00Z", "claude-sonnet-4-5@20250929", platform="vertex", endpoint_scope="regional"),
         ("3.3", "4.125", "6.6", "0.33", "16.5"),  # 3, 3.75, 6, 0.30, 15 x 1.1
         "base", "2025-09-29", {"regional"}),
    case("sonnet45-bedrock-us-profile-batch",
         Req("2026-06-01T12:00:00Z", "us.anthropic.claude-sonnet-4-5-20250929-v1:0", platform="bedrock",
             service_tier="batch"),
         ("1.65", "2.0625", "3.3", "0.165", "8.25"),  # 3, 3.75, 6, 0.30, 15 x 1.1 x 0.5
         "base", "2025-09-29", {"regional", "batch"}),
    # --- Cache-read exceptions: Fable 5.1 0.025x ($0.25), Opus 5.5 0.05x ($0.20), Fable 5 plain 0.1x ($1)
    case("fable51-read-0.25", Req("2026-10-15T12:00:00Z", F51), ("10", "12.5", "20", "0.25", "50"), "base",
         "2026-09-01"),
    case("opus55-read-0.20", Req("2026-10-15T12:00:00Z", O55), ("4", "5", "8", "0.2", "20"), "base", "2026-09-22"),
    case("fable5-read-1", Req("2026-10-15T12:00:00Z", F5), ("10", "12.5", "20", "1", "50"), "base", "2026-06-09"),
    # --- Claude 3 Haiku: published (rounded) cache prices 5m $0.30 (not 0.3125), read $0.03 (not 0.025)
    case("haiku3-rounded-cache", Req("2025-06-01T12:00:00Z", H3), ("0.25", "0.3", "0.5", "0.03", "1.25"), "base",
         "2024-03-13"),
    # --- Web search $10 / 1,000 = $0.01 per search, per use: not halved by batch, not x1.1 by geo
    case("sonnet45-web-search-3", Req("2025-10-15T12:00:00Z", S45, web_search_requests=3), BASE_3_15, "base",
         "2025-09-29"),
    case("sonnet45-web-search-3-batch", Req("2025-10-15T12:00:00Z", S45, web_search_requests=3, service_tier="batch"),
         ("1.5", "1.875", "3", "0.15", "7.5"),  # 3, 3.75, 6, 0.30, 15 x 0.5
         "base", "2025-09-29", {"batch"}),
    case("opus46-web-search-3-us", Req("2026-04-01T12:00:00Z", O46, web_search_requests=3, inference_geo="us"),
         ("5.5", "6.875", "11", "0.55", "27.5"),  # 5, 6.25, 10, 0.50, 25 x 1.1
         "base", "2026-03-13", {"us_geo"}),
    # --- Priority tier: contractual, priced at list (same as standard)
    case("sonnet45-priority-at-list", Req("2025-10-15T12:00:00Z", S45, service_tier="priority"), BASE_3_15, "base",
         "2025-09-29", {"priority"}),
    # --- claude-2.1 without cache tokens, standard tier: priced at $8/$24
    case("claude21-no-cache-standard",
         Req("2024-06-01T12:00:00Z", C21, cache_write_5m_tokens=0, cache_write_1h_tokens=0, cache_read_tokens=0),
         ("8", None, None, None, "24"), "base", "2023-11-21"),  # no cache rates ever published
]


@pytest.fixture(scope="module")
def priced_rows(tmp_path_factory) -> dict[str, dict]:
    """All CASES as one log (one request each, labelled by case id), analyzed once: label -> report row.
    One run keeps the suite fast and also shows that requests with different rate keys never mix."""
    path = write_csv(tmp_path_factory.mktemp("rules") / "usage.csv", [p.values[0] for p in CASES],
                     [p.id for p in CASES])
    report = analyze([str(path)], by=BY)
    acc = report.accounting
    assert (acc.priced, acc.unpriced, acc.quarantined, acc.duplicates) == (len(CASES), 0, 0, 0), acc.as_dict()
    rows = {r["label"]: r for r in report.rows.to_dicts()}
    assert len(rows) == report.rows.height == len(CASES)
    return rows


@pytest.mark.parametrize(("req", "rates", "tier", "period", "tags", "extra"), CASES)
def test_priced_request(priced_rows, request, req, rates, tier, period, tags, extra):
    row = priced_rows[request.node.callspec.id]
    want = hand(req, rates)
    for k in (*COMPONENT_KEYS, "cost_web_search", "cost"):
        assert row[k] == want[k], f"{k}: got {row[k]}, hand-computed {want[k]}"
    if tier is not None:
        assert row["context_tier"] == tier
    if period is not None:
        assert row["price_period"] == period
    if tags is not None:
        assert modifier_tags(row["discount_type"]) == tags
    if "list_cost" in extra:
        assert row["list_cost"] == extra["list_cost"]
        assert row["savings"] == extra["list_cost"] - want["cost"]


# ---------------------------------------------------------------------------------------------
# Fully spelled-out expectations for the headline rules


def test_long_context_threshold_written_out(tmp_path):
    # 100,000 input + 50,000 5m write + 40,000 1h write + 10,001 read = 200,001 > 200,000 -> all long rates
    row = price_one(tmp_path, Req("2025-10-15T12:00:00Z", S45, **OVER_200K))
    assert row["cost"] == (
        D("100000") * D("6") / 10**6       # input $6
        + D("50000") * D("7.5") / 10**6    # 5m write $7.50
        + D("40000") * D("12") / 10**6     # 1h write $12
        + D("10001") * D("0.6") / 10**6    # read $0.60
        + D("1000") * D("22.5") / 10**6    # output $22.50
    ) == D("1.4835006")


def test_haiku55_high_tier_output_too(tmp_path):
    # 100,001 prompt tokens: EVERY class, output included, at the >100K rates
    row = price_one(tmp_path, Req("2026-10-15T12:00:00Z", H55, **OVER_100K))
    assert row["cost_output"] == D("5000") * D("2.5") / 10**6 == D("0.0125")
    assert row["cost"] == (
        D("40000") * D("0.5") / 10**6      # input $0.50
        + D("20000") * D("0.625") / 10**6  # 5m write $0.625
        + D("20000") * D("1") / 10**6      # 1h write $1
        + D("20001") * D("0.05") / 10**6   # read $0.05
        + D("5000") * D("2.5") / 10**6     # output $2.50
    ) == D("0.06600005")


def test_cache_write_ttl_1h_vs_5m(tmp_path):
    none = dict(input_tokens=0, cache_write_5m_tokens=0, cache_write_1h_tokens=0, cache_read_tokens=0, output_tokens=0)
    five = price_one(tmp_path, Req("2026-06-01T12:00:00Z", S45, **dict(none, cache_write_5m_tokens=10_000)))
    hour = price_one(tmp_path, Req("2026-06-01T12:00:00Z", S45, **dict(none, cache_write_1h_tokens=10_000)))
    assert five["cost"] == five["cost_cache_write_5m"] == D("10000") * D("3.75") / 10**6 == D("0.0375")  # 1.25 x $3
    assert hour["cost"] == hour["cost_cache_write_1h"] == D("10000") * D("6") / 10**6 == D("0.06")  # 2 x $3
    assert hour["cost"] / five["cost"] == D("2") / D("1.25")


def test_web_search_three_searches_cost_three_cents(tmp_path):
    for tier in ("standard", "batch"):
        row = price_one(tmp_path, Req("2025-10-15T12:00:00Z", S45, service_tier=tier, web_search_requests=3,
                                      input_tokens=0, cache_write_5m_tokens=0, cache_write_1h_tokens=0,
                                      cache_read_tokens=0, output_tokens=0))
        assert row["cost_web_search"] == row["cost"] == D("3") * D("10") / 1000 == D("0.03"), tier


def test_priority_equals_standard_and_is_noted(tmp_path):
    std = price_one(tmp_path, Req("2025-10-15T12:00:00Z", S45))
    report = run_one(tmp_path, Req("2025-10-15T12:00:00Z", S45, service_tier="priority"))
    pri = report.rows.to_dicts()[0]
    assert pri["cost"] == std["cost"] == hand(Req("2025-10-15T12:00:00Z", S45), BASE_3_15)["cost"]
    assert any("priority" in n for n in report.notes)


def test_list_cost_and_savings_for_a_cached_request(tmp_path):
    # Sonnet 4.5, standard tier: 1,000 input, 2,000 5m writes, 3,000 1h writes, 100,000 reads, 500 output
    req = Req("2025-10-15T12:00:00Z", S45, input_tokens=1_000, cache_write_5m_tokens=2_000,
              cache_write_1h_tokens=3_000, cache_read_tokens=100_000, output_tokens=500)
    row = price_one(tmp_path, req)
    cost = (D(1_000) * D("3") + D(2_000) * D("3.75") + D(3_000) * D("6") + D(100_000) * D("0.3")
            + D(500) * D("15")) / 10**6
    # list: all 106,000 prompt tokens at the $3 input rate, output at $15
    list_cost = (D(106_000) * D("3") + D(500) * D("15")) / 10**6
    assert cost == D("0.066") and list_cost == D("0.3255")
    assert row["cost"] == cost
    assert row["list_cost"] == list_cost
    assert row["savings"] == list_cost - cost == D("0.2595")


# ---------------------------------------------------------------------------------------------
# Unpriced: before a model's first period, a rate the model never had, a tier it never had


@pytest.mark.parametrize(("req", "reason"), [
    pytest.param(Req("2026-10-06T23:59:59Z", H55), "no price for claude-haiku-5-5 before 2026-10-07",
                 id="haiku55-before-release"),
    pytest.param(Req("2024-11-03T23:59:59Z", H35), "no price for claude-3-5-haiku-20241022 before 2024-11-04",
                 id="haiku35-before-release"),
    pytest.param(Req("2023-07-10T23:59:59Z", C20, cache_write_5m_tokens=0, cache_write_1h_tokens=0,
                     cache_read_tokens=0), "no price for claude-2.0 before 2023-07-11", id="claude20-before-any-price"),
    pytest.param(Req("2024-06-01T12:00:00Z", C21, cache_write_5m_tokens=0, cache_write_1h_tokens=0,
                     cache_read_tokens=10), "no cache_read rate for claude-2.1", id="claude21-cache-read"),
    pytest.param(Req("2024-06-01T12:00:00Z", C21, cache_write_5m_tokens=7, cache_write_1h_tokens=0,
                     cache_read_tokens=0), "no cache_write_5m rate for claude-2.1", id="claude21-cache-write"),
    pytest.param(Req("2024-06-01T12:00:00Z", C21, service_tier="batch", cache_write_5m_tokens=0,
                     cache_write_1h_tokens=0, cache_read_tokens=0), "no batch price for claude-2.1",
                 id="claude21-batch"),
])
def test_unpriced(tmp_path, req, reason):
    report = run_one(tmp_path, req)
    acc = report.accounting
    assert (acc.priced, acc.unpriced) == (0, 1)
    assert acc.unpriced_models == {req.model: 1}
    assert acc.unpriced_reasons[req.model] == reason
    assert acc.balanced
    assert report.rows.height == 0
    assert report.totals["cost"] == 0  # never a silent $0 row: nothing priced at all


# ---------------------------------------------------------------------------------------------
# Every shipped rate stays exact at 12 places under every multiplier combination


def test_every_shipped_rate_exact_at_12_places():
    book = pricebook.load_price_book()
    literal = {"batch": D("0.5"), "us_geo": D("1.1"), "regional": D("1.1")}
    anthropic = book.providers["anthropic"]
    assert (anthropic.service_tier["batch"], anthropic.us_geo, anthropic.regional) == tuple(literal.values())
    combos = [D(1)]
    for n in range(1, len(literal) + 1):
        for combo in itertools.combinations(literal.values(), n):
            m = D(1)
            for x in combo:
                m *= x
            combos.append(m)
    quantum = D("1e-12")
    checked = 0
    for model in book.models.values():
        provider = book.providers[model.provider]
        own = {*provider.service_tier.values(), provider.us_geo, provider.regional}
        mults = set(combos) | {a * b * c for a in provider.service_tier.values()
                                for b in (D(1), provider.us_geo) for c in (D(1), provider.regional)} | own
        for fact in (*model.periods, *model.windows()):
            for key in pricebook.RATE_KEYS:
                rate = fact.rates.get(key)
                if rate is None:
                    continue
                for m in mults:
                    per_token = rate * m / D(10**6)
                    assert per_token == per_token.quantize(quantum), (model.id, fact.start.date(), key, m)
                    checked += 1
    assert checked > 1000


@pytest.mark.parametrize("label, long", [("0-200k", False), ("200k-1M", True), ("≤ 200k", False), ("<=200k", False),
                                         ("> 200k", True), (None, True)])
def test_stated_context_window_decides_the_tier(tmp_path, label, long):
    """Pre-aggregated rows say their window; the label, not the summed tokens, decides the tier.
    (Without a label the row is one request: its 1M-token prompt is long.)"""
    path = tmp_path / "agg.csv"
    path.write_text("timestamp,model,input_tokens,output_tokens,context_window\n"
                    f"2025-10-15T00:00:00Z,{S45},1000000,0,{label or ''}\n", encoding="utf-8")
    rep = analyze([str(path)], ["context_tier"])
    assert rep.rows["context_tier"].to_list() == ["long" if long else "base"]
    assert rep.totals["cost"] == (D("6") if long else D("3"))  # 1M input at $6 (long) or $3 per MTok

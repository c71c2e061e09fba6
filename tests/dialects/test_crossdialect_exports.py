"""The same requests written in each export/report format (crossdialect_exports) cost the same as in
the canonical schema, to the micro-dollar and beyond (exactly)."""

from __future__ import annotations

import csv

import pytest

from .crossdialect import REQUESTS as SHARED
from .crossdialect_exports import FORMATS, can_express, not_expressible, write, write_all
from .exports_util import cost, detect

CANONICAL = ["request_id", "timestamp", "model", "service_tier", "input_tokens", "output_tokens", "cache_read_tokens",
             "cache_write_5m_tokens", "cache_write_1h_tokens", "web_search_requests"]


def _requests(kind: str) -> list[dict]:
    """20 requests. `anthropic`: Claude models over two price periods and both context tiers (Sonnet
    4.6's >200K tier before 2026-03-13), cache writes of both TTLs, batch, web search. `simple`: what
    every format can say (standard tier, 5m writes, no web search, no long context). `cache`: the
    anthropic requests at the standard tier without web search (1h writes, long context)."""
    out = []
    for i in range(20):
        r = dict(request_id=f"req-{i:02d}", timestamp=f"2026-03-{(i % 5) + 9:02d}T{i:02d}:15:00Z",
                 model=("claude-sonnet-4-6", "claude-haiku-4-5-20251001", "claude-opus-4-6")[i % 3],
                 input_tokens=1000 + 37 * i, output_tokens=200 + 11 * i, cache_read_tokens=500 * i,
                 cache_write_5m_tokens=100 * (i % 4))
        if kind in ("anthropic", "cache"):
            r.update(cache_write_1h_tokens=50 * (i % 3))
            if i in (0, 6):  # Sonnet 4.6, > 200K prompt, before the 1M GA: long-context rates
                r["cache_read_tokens"] = 250_000
        if kind == "anthropic":
            r.update(web_search_requests=i % 2, service_tier="batch" if i % 4 == 1 else "standard")
        out.append(r)
    return out


def _canonical(requests: list[dict], tmp_path) -> object:
    path = tmp_path / "canonical.csv"
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, CANONICAL)
        w.writeheader()
        w.writerows([{**{c: 0 for c in CANONICAL[4:]}, "service_tier": "standard", **r} for r in requests])
    return cost([path])[0]


@pytest.mark.parametrize("kind", ["anthropic", "cache", "simple"])
def test_same_requests_same_total_in_every_format(kind, tmp_path):
    requests = _requests(kind)
    want = _canonical(requests, tmp_path)
    written = write_all(requests, tmp_path / "formats")
    reports = {"anthropic-usage-report", "anthropic-usage-report/analytics", "anthropic-console-csv",
               "anthropic-console-csv/hourly"}
    expressed = {"simple": set(FORMATS), "anthropic": reports,
                 "cache": reports | {"litellm-spendlogs", "litellm-spendlogs/parquet", "litellm-spendlogs/json"}}[kind]
    assert set(written) == expressed
    for fmt, paths in written.items():
        assert {detect(p) for p in paths} == {fmt.split("/")[0]}, fmt
        assert cost(paths)[0] == want, fmt


def test_formats_say_what_they_cannot_express():
    requests = _requests("anthropic")
    assert "cache-write class" in not_expressible("openai", requests)
    assert "service tier" in not_expressible("litellm-spendlogs", requests)
    haiku55 = [dict(timestamp="2026-11-02T00:00:00Z", model="claude-haiku-5-5", input_tokens=150_000,
                    output_tokens=1)]
    assert "threshold 100000" in not_expressible("anthropic-usage-report", haiku55)


@pytest.mark.parametrize("fmt", FORMATS)
def test_the_shared_requests_each_format_can_express(fmt, tmp_path):
    """tests/dialects/crossdialect.py's 20 requests, filtered per request as in test_crossdialect."""
    subset = [r for r in SHARED if can_express(fmt, r)]
    # (the Claude Code usage report says least: no 1h writes, batch, web search or long context)
    assert len(subset) >= (8 if fmt == "claude-code-analytics" else 10)
    total, report = cost(write(fmt, subset, tmp_path / "fmt"))
    assert total == _canonical(subset, tmp_path)
    assert (report.accounting.priced, report.accounting.quarantined) == (len(subset), 0)

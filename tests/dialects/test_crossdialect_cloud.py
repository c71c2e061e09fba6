"""The cloud formats' writers (crossdialect_cloud.py) say the same requests: every format that can
express a set of requests prices it to the same total as the canonical log, to the micro-dollar."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from .cloud_helpers import report
from .crossdialect_cloud import FORMATS, can_express, options, write, write_all

REQUESTS = [
    dict(timestamp="2026-11-02T09:00:00Z", model="claude-sonnet-4-5-20250929", input_tokens=1200, output_tokens=300,
         cache_read_tokens=40000, cache_write_5m_tokens=2000, cache_write_1h_tokens=0, web_search_requests=0,
         request_id="x-01", service_tier="standard"),
    dict(timestamp="2026-11-02T10:30:00Z", model="claude-opus-4-6", input_tokens=50, output_tokens=2000,
         cache_read_tokens=0, cache_write_5m_tokens=0, cache_write_1h_tokens=6000, web_search_requests=0,
         request_id="x-02", service_tier="standard"),
    dict(timestamp="2026-11-03T23:59:59Z", model="claude-haiku-4-5-20251001", input_tokens=900, output_tokens=90,
         cache_read_tokens=100, cache_write_5m_tokens=0, cache_write_1h_tokens=0, web_search_requests=2,
         request_id="x-03", service_tier="standard"),
    dict(timestamp="2026-11-04T12:00:00Z", model="claude-3-5-haiku-20241022", input_tokens=7000, output_tokens=700,
         cache_read_tokens=0, cache_write_5m_tokens=300, cache_write_1h_tokens=0, web_search_requests=0,
         request_id="x-04", service_tier="batch"),
    dict(timestamp="2026-11-05T08:00:00Z", model="claude-sonnet-4-5-20250929", input_tokens=10, output_tokens=10,
         cache_read_tokens=0, cache_write_5m_tokens=0, cache_write_1h_tokens=0, web_search_requests=0,
         request_id="x-05", service_tier="standard"),
]


def canonical_requests_csv(requests: list[dict], path: Path) -> Path:
    pl.DataFrame(requests).write_csv(path)
    return path


@pytest.mark.parametrize("fmt", FORMATS)
def test_each_format_prices_what_it_can_express_like_the_canonical_log(fmt, tmp_path):
    subset = [r for r in REQUESTS if can_express(fmt, r)]
    assert subset, fmt
    files = write(fmt, subset, tmp_path / fmt)
    want = report([canonical_requests_csv(subset, tmp_path / "canonical.csv")], tmp_path).totals["cost"]
    got = report(files, tmp_path, **options(fmt))
    assert got.totals["cost"] == want
    assert (got.accounting.priced, got.accounting.quarantined) == (len(subset), 0)


def test_formats_say_what_they_cannot_express():
    assert not can_express("otel-genai", REQUESTS[1])  # a 1h cache write: OTel has one cache-write count
    assert not can_express("bedrock-invocations", REQUESTS[2])  # web search
    assert [r["request_id"] for r in REQUESTS if can_express("bedrock-batch", r)] == ["x-04"]
    with pytest.raises(ValueError, match="x-02"):
        write("otel-genai", REQUESTS[:2], Path("/nonexistent"))


def test_write_all_writes_the_formats_that_express_every_request(tmp_path):
    standard = [r for r in REQUESTS if r["service_tier"] == "standard" and not r["web_search_requests"]
                and not r["cache_write_1h_tokens"]]
    written = write_all(standard, tmp_path)
    assert set(written) == set(FORMATS) - {"bedrock-batch"}
    want = report([canonical_requests_csv(standard, tmp_path / "c.csv")], tmp_path).totals["cost"]
    assert {fmt: report(files, tmp_path, **opts).totals["cost"] for fmt, (files, opts) in written.items()} == {
        fmt: want for fmt in written}

"""`llm-cost report` (requests aggregated, then priced) equals the sum of `llm-cost price` rows (each
request priced alone), for any input and any --by: totals, groups and accounting.

The input mixes what makes requests price differently: models that lack some rates (Claude 3 Sonnet
has no cache prices, OpenAI models no 1-hour cache write or web fetch), unknown models, dates before
any price and across price changes, long prompts (long-context tiers), fast mode, every tier (some
unpriceable), geo, duplicates stronger and weaker than their first copy, and broken rows."""

from __future__ import annotations

import tempfile
from decimal import Decimal
from pathlib import Path

import polars as pl
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from analyzer import Options, analyze, price_requests
from analyzer.aggregate import COST_COLUMNS
from analyzer.schema import COUNT_COLUMNS

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
STEP_SETTINGS = settings(SETTINGS, max_examples=20)  # (each example decodes JSON twice: slower)
MODELS = [
    "claude-3-sonnet-20240229",  # no cache rates
    "claude-2.1",  # no cache rates, no batch
    "claude-sonnet-4-5-20250929",  # long context over 200k
    "claude-opus-4-6",  # long context, then not; fast mode
    "claude-haiku-5-5",
    "claude-mythos-preview",  # no cache rates, no batch
    "gpt-5.4",  # no cache writes, no web fetch, flex tier
    "gpt-6-sol",
    "us.anthropic.claude-3-sonnet-20240229-v1:0",
    "claude-nonexistent-9",  # unknown
]
DAYS = ["2023-01-05", "2024-06-01", "2025-10-01", "2026-02-20", "2026-03-20", "2026-10-15"]
COUNTS = ["input_tokens", "cache_write_5m_tokens", "cache_write_1h_tokens", "cache_read_tokens", "output_tokens"]


def _count(top: int) -> st.SearchStrategy[int]:
    # mostly absent (0) so that requests differ in which components they use
    return st.one_of(st.just(0), st.just(0), st.integers(1, top))


request = st.fixed_dictionaries({
    "timestamp": st.tuples(st.sampled_from(DAYS), st.integers(0, 23)).map(lambda t: f"{t[0]}T{t[1]:02d}:15:00Z"),
    "model": st.sampled_from(MODELS),
    "workspace": st.sampled_from(["a", "b"]),
    "service_tier": st.sampled_from(["standard", "standard", "batch", "priority", "flex"]),
    "speed": st.sampled_from(["standard", "standard", "fast"]),
    "inference_geo": st.sampled_from([None, "us", "global"]),
    "input_tokens": _count(300_000),  # long prompts: over the 200k and 272k thresholds
    "cache_write_5m_tokens": _count(50_000), "cache_write_1h_tokens": _count(50_000),
    "cache_read_tokens": _count(250_000), "output_tokens": _count(20_000),
    "web_search_requests": _count(3), "web_fetch_requests": _count(3),
})
# What happens to a request: kept, copied under its id (stronger or weaker copy), or broken.
fate = st.sampled_from(["ok", "ok", "ok", "copy_weaker", "copy_stronger", "broken"])
inputs = st.lists(st.tuples(request, fate), min_size=1, max_size=14)
BY = ["model", "model_raw", "family", "service_tier", "context_tier", "workspace", "speed", "inference_geo",
      "day", "month", "price_period", "discount_type", "component"]
# --by keys a price row carries as a column (or derives from its timestamp): compared group by group.
ROW_KEYS = {"model", "model_raw", "family", "service_tier", "context_tier", "workspace", "speed", "inference_geo",
            "day", "month", "price_period"}


def _rows(drawn: list[tuple[dict, str]]) -> list[dict]:
    rows = []
    for i, (r, f) in enumerate(drawn):
        r = dict(r, request_id=f"r{i}", input_tokens=str(r["input_tokens"]))
        rows.append(r)
        if f == "copy_weaker":
            rows.append(dict(r, output_tokens=0, cache_read_tokens=0))
        elif f == "copy_stronger":  # the copy with more tokens wins: its components may differ
            rows.append(dict(r, output_tokens=r["output_tokens"] + 7, web_fetch_requests=1))
        elif f == "broken":
            rows[-1] = dict(r, input_tokens="-3")
    return rows


def _frame(rows: list[dict]) -> pl.DataFrame:
    schema = {"request_id": pl.String, "timestamp": pl.String, "model": pl.String, "workspace": pl.String,
              "service_tier": pl.String, "speed": pl.String, "inference_geo": pl.String, "input_tokens": pl.String,
              **{c: pl.Int64 for c in COUNT_COLUMNS if c != "input_tokens"}}
    return pl.DataFrame(rows, schema=schema)


def _with_buckets(rows: pl.DataFrame) -> pl.DataFrame:
    return rows.with_columns(pl.col("timestamp").dt.strftime("%Y-%m-%d").alias("day"),
                             pl.col("timestamp").dt.strftime("%Y-%m").alias("month"))


# Options that change which rows are priced: a date window, and keeping duplicates.
options = st.fixed_dictionaries({"since": st.sampled_from([None, "2025-01-01"]),
                                 "until": st.sampled_from([None, "2026-03-01"]), "dedupe": st.booleans()})


@SETTINGS
@given(inputs, st.lists(st.sampled_from(BY), min_size=0, max_size=3, unique=True), options)
def test_report_equals_the_sum_of_price_rows(drawn, by, chosen):
    rows = _rows(drawn)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "log.csv"
        _frame(rows).write_csv(path)
        opts = Options(quarantine=str(Path(tmp) / "q.jsonl"), **chosen)
        report = analyze([str(path)], by, opts)
        priced, acc = price_requests([str(path)], opts)
        per_row = _with_buckets(priced.lazy().collect())
    assert acc.as_dict() == report.accounting.as_dict()
    assert report.accounting.balanced and acc.rows_read == len(rows)
    ok = per_row.filter(pl.col("unpriced_reason").is_null())
    assert ok.height == acc.priced and per_row.height == acc.priced + acc.unpriced
    # Every unpriced request is named under its model, as often as it occurs.
    unpriced = per_row.filter(pl.col("unpriced_reason").is_not_null()).group_by("model_raw").len()
    assert dict(zip(unpriced["model_raw"], unpriced["len"])) == acc.unpriced_models
    # Totals: every count and every money column.
    for m in ("requests", *COUNT_COLUMNS, *COST_COLUMNS):
        want = sum(ok[m].to_list(), Decimal(0) if m in COST_COLUMNS else 0)
        assert report.totals[m] == want, m
    # Groups: the rows of any --by a price row can be grouped by.
    if by and set(by) <= ROW_KEYS:
        measures = ["requests", *COUNT_COLUMNS, "cost", "list_cost", "savings"]
        expected = ok.group_by(by).agg([pl.col(m).sum() for m in measures]).sort(by, nulls_last=True)
        got = report.rows.select(*by, *measures).sort(by, nulls_last=True)
        assert got.to_dicts() == expected.to_dicts()


# --- Multi-step responses: Messages with usage.iterations, and streams --------------------------------

STEP_MODELS = ["claude-sonnet-4-5-20250929", "claude-haiku-4-5-20251001"]
step = st.fixed_dictionaries({"input_tokens": st.integers(0, 9_000), "output_tokens": st.integers(0, 900),
                              "cache_read_input_tokens": st.integers(0, 5_000),
                              "model": st.sampled_from([None, *STEP_MODELS])})
response = st.fixed_dictionaries({
    "model": st.sampled_from(STEP_MODELS),
    "steps": st.lists(step, min_size=0, max_size=3),  # none: the top-level usage is the bill
    "top": step,
    "stream": st.booleans(),
    "deltas": st.integers(1, 3),  # a stream's message_delta events (cumulative; the last is final)
    "copies": st.integers(1, 2),  # the whole response logged again (an overlapping export)
    "bad": st.sampled_from([None, None, None, 0, 1, 2]),  # a step whose input count is not whole (1.5)
})


def _is_bad(r: dict) -> bool:
    """A response (not a stream) with a bad step: quarantined whole, every copy (mapped.one_verdict_per_record)."""
    return r["bad"] is not None and r["bad"] < len(r["steps"]) and not r["stream"]


def _usage(s: dict) -> dict:
    return {k: v for k, v in s.items() if k != "model"}


def _lines(i: int, r: dict) -> list[dict]:
    mid = f"msg_{i}"
    its = [{"type": "compaction" if j < len(r["steps"]) - 1 else "message", **_usage(s),
            **({"model": s["model"]} if s["model"] else {})} for j, s in enumerate(r["steps"])]
    if _is_bad(r):
        its[r["bad"]]["input_tokens"] += 0.5
    final = {**_usage(r["top"]), **({"iterations": its} if its else {})}
    if not r["stream"]:
        return [{"id": mid, "type": "message", "role": "assistant", "model": r["model"], "content": [],
                 "stop_reason": "end_turn", "usage": final}]
    start = {"type": "message_start", "message": {"id": mid, "type": "message", "role": "assistant",
             "model": r["model"], "content": [],
             # (a placeholder output count: 1, or 0 when the final count is 0, since counts only grow)
             "usage": {**_usage(r["top"]), "output_tokens": min(1, r["top"]["output_tokens"])}}}
    early = [{"type": "message_delta", "delta": {"stop_reason": None},
              "usage": {"output_tokens": min(k, r["top"]["output_tokens"])}} for k in range(1, r["deltas"])]
    return [start, {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
            *early, {"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": final},
            {"type": "message_stop"}]


def _billed(r: dict) -> dict[str, int]:
    """What the response bills: the sum of its iterations when it lists them, else its usage."""
    parts = r["steps"] or [r["top"]]
    return {k: sum(s[k] for s in parts) for k in ("input_tokens", "output_tokens", "cache_read_input_tokens")}


@STEP_SETTINGS
@given(st.lists(response, min_size=1, max_size=6), st.integers(0, 40))
def test_multi_step_responses_bill_every_step_once_in_report_and_price(responses, filler):
    import json

    lines = []
    for i, r in enumerate(responses):
        lines += _lines(i, r) * r["copies"]
    # Plain responses with ids of their own: with many of them, the run takes dedupe's other path.
    lines += [{"id": f"fill_{j}", "type": "message", "role": "assistant", "model": STEP_MODELS[0], "content": [],
               "usage": {"input_tokens": 10, "output_tokens": 1}} for j in range(filler)]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "messages.jsonl"
        path.write_text("".join(json.dumps(x) + "\n" for x in lines))
        opts = Options(quarantine=str(Path(tmp) / "q.jsonl"), batch_time="2026-04-01T00:00:00Z")
        report = analyze([str(path)], ["model"], opts)
        priced, acc = price_requests([str(path)], opts)
        per_row = priced.lazy().collect()
        q = Path(tmp) / "q.jsonl"
        written = [json.loads(x)["reason"] for x in q.read_text().splitlines()] if q.exists() else []
    assert acc.as_dict() == report.accounting.as_dict() and acc.balanced
    assert len(written) == acc.quarantined and all("is not a whole number" in w for w in written)
    good = [r for r in responses if not _is_bad(r)]
    assert acc.quarantined == sum(r["copies"] for r in responses if _is_bad(r))
    assert acc.priced == len(good) + filler == report.totals["requests"] == per_row["requests"].sum()
    want = {k: sum(_billed(r)[k] for r in good) for k in ("input_tokens", "output_tokens",
                                                            "cache_read_input_tokens")}
    assert report.totals["input_tokens"] == per_row["input_tokens"].sum() == want["input_tokens"] + 10 * filler
    assert report.totals["output_tokens"] == per_row["output_tokens"].sum() == want["output_tokens"] + filler
    assert report.totals["cache_read_tokens"] == per_row["cache_read_tokens"].sum() == want["cache_read_input_tokens"]
    assert report.totals["cost"] == sum(per_row["cost"].to_list(), Decimal(0))

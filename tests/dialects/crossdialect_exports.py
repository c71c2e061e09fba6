"""Write canonical requests in the formats of the export/report dialects, for the cross-dialect test
("the same requests in every dialect give the same total").

The interface is crossdialect_cloud's: `can_express(fmt, request)`, `write(fmt, requests, directory)`
-> files, `options(fmt)` (none needed), and `write_all(requests, directory)` -> {format: [files]} for
every format that can express all of them; `not_expressible(fmt, requests)` says why not. A request
is a dict: timestamp (ISO-8601 text or datetime), model, input_tokens, output_tokens,
cache_read_tokens, cache_write_5m_tokens, cache_write_1h_tokens, web_search_requests, request_id,
service_tier (missing counts are 0, a missing tier is standard).

What each format cannot say:
- Admin usage report / analytics: one bucket per request (its start = the request's time); the
  long-context tier is the `context_window` label, decided here from the prompt against 200K, so a
  request of a model whose threshold is not 200K (Haiku 5.5: 100K) between the two is not expressible.
- Console usage CSV: a day, not an instant (exact: prices change at midnight UTC); no priority tier.
- OpenAI (chat completions; batch requests go to a Batch API output file): one cache-write class
  (the 5m one), no web search.
- OpenAI usage API: as the report, but no context window at all (rows are priced at the base tier).
- LiteLLM SpendLogs (CSV, Parquet, and the /spend/logs API's JSON): no service tier, no web search.
- Console usage CSV at hourly grain (`2026-03-31 02:00`): as the daily export, to the hour.
- Claude Code usage report (claude-code-analytics): a day per actor and model; one cache-write count
  (5m), no web search, standard tier, and no long context (rows are priced at the base tier).
- Claude Code print-mode output (claude-code-stream): one run per file (the file's time is the run's),
  priced from the result's modelUsage: one cache-write count (5m), standard tier, no long context.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import os
from pathlib import Path

import polars as pl

from analyzer import pricebook
from analyzer.models import Resolver

COUNTS = ("input_tokens", "output_tokens", "cache_read_tokens", "cache_write_5m_tokens", "cache_write_1h_tokens",
          "web_search_requests")
FORMATS = ("anthropic-usage-report", "anthropic-usage-report/analytics", "anthropic-console-csv",
           "anthropic-console-csv/hourly", "openai", "openai-usage", "litellm-spendlogs", "litellm-spendlogs/parquet",
           "litellm-spendlogs/json", "claude-code-analytics", "claude-code-stream")


def _full(r: dict) -> dict:
    t = r["timestamp"]
    if isinstance(t, str):
        t = dt.datetime.fromisoformat(t.replace("Z", "+00:00"))
    t = (t if t.tzinfo else t.replace(tzinfo=dt.UTC)).astimezone(dt.UTC)
    return {**{c: 0 for c in COUNTS}, "service_tier": "standard", "request_id": None, **r, "timestamp": t}


def _iso(t: dt.datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _prompt(r: dict) -> int:
    return r["input_tokens"] + r["cache_read_tokens"] + r["cache_write_5m_tokens"] + r["cache_write_1h_tokens"]


def _threshold(r: dict, book: pricebook.PriceBook) -> int | None:
    """The long-context threshold in effect for this request's model and time (None: no tier)."""
    model_id = Resolver(book).resolve(r["model"])[0]
    lc = book.models[model_id].long_context_at(r["timestamp"]) if model_id else None
    return lc.threshold if lc is not None else None


def can_express(fmt: str, r: dict) -> bool:
    """Whether `fmt` can say everything this request says."""
    return _why_not(fmt, _full(r), pricebook.load_price_book()) is None


def not_expressible(fmt: str, requests: list[dict]) -> str | None:
    """Why `fmt` cannot carry these requests exactly (None: it can)."""
    book = pricebook.load_price_book()
    return next((why for r in requests if (why := _why_not(fmt, _full(r), book)) is not None), None)


def _why_not(fmt: str, r: dict, book: pricebook.PriceBook) -> str | None:
    tier = r["service_tier"]
    if fmt.startswith("anthropic-usage-report"):
        t = _threshold(r, book)
        if t is not None and t != 200_000 and min(t, 200_000) < _prompt(r) <= max(t, 200_000):
            return f"{r['model']}: long-context threshold {t}, but the report's windows split at 200K"
    if fmt == "anthropic-console-csv" and tier not in ("standard", "batch"):
        return f"the Console export has no label for the {tier} tier"
    if fmt in ("openai", "openai-usage"):
        if r["cache_write_1h_tokens"]:
            return "OpenAI usage has one cache-write class"
        if r["web_search_requests"]:
            return "OpenAI usage has no web-search count"
    if fmt == "openai-usage" and (t := _threshold(r, book)) is not None and _prompt(r) > t:
        return "the OpenAI usage API has no context window: long-context requests are not expressible"
    if fmt in ("claude-code-analytics", "claude-code-stream"):
        if r["cache_write_1h_tokens"]:
            return "one cache-write count (no TTL): 5m"
        if tier != "standard":
            return f"no {tier} tier: Claude Code's requests are interactive"
        if fmt == "claude-code-analytics" and r["web_search_requests"]:
            return "the Claude Code usage report has no web-search count"
        if (t := _threshold(r, book)) is not None and _prompt(r) > t:
            return "rows total many requests: priced at the base context tier"
    if fmt.startswith("litellm-spendlogs"):
        if tier != "standard":
            return "SpendLogs rows carry no service tier"
        if r["web_search_requests"]:
            return "SpendLogs rows carry no web-search count"
    return None


def options(fmt: str) -> dict:
    """Options (keyword arguments of analyzer.Options) the format's files are read with: none."""
    return {}


def write(fmt: str, requests: list[dict], directory: Path) -> list[Path]:
    """Write the requests in `fmt` under `directory` (created); returns the files to read. Every
    request must be expressible (see `can_express`)."""
    why = not_expressible(fmt, requests)
    if why:
        raise ValueError(f"{fmt} cannot express these requests: {why}")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    return WRITERS[fmt]([_full(r) for r in requests], directory)


def write_all(requests: list[dict], directory: Path) -> dict[str, list[Path]]:
    """Every format that can express all `requests`, each in its own directory: {format: files}."""
    return {fmt: write(fmt, requests, Path(directory) / fmt.replace("/", "-")) for fmt in FORMATS
            if not_expressible(fmt, requests) is None}


def _usage_row(r: dict) -> dict:
    return {
        "uncached_input_tokens": r["input_tokens"],
        "cache_creation": {"ephemeral_1h_input_tokens": r["cache_write_1h_tokens"],
                           "ephemeral_5m_input_tokens": r["cache_write_5m_tokens"]},
        "cache_read_input_tokens": r["cache_read_tokens"],
        "output_tokens": r["output_tokens"],
        "server_tool_use": {"web_search_requests": r["web_search_requests"]},
    }


def _window(r: dict) -> str:
    return "200k-1M" if _prompt(r) > 200_000 else "0-200k"


def _report(rs: list[dict], directory: Path) -> list[Path]:
    data = [{"starting_at": _iso(r["timestamp"]), "ending_at": _iso(r["timestamp"] + dt.timedelta(minutes=1)),
             "results": [{**_usage_row(r), "api_key_id": None, "workspace_id": None, "model": r["model"],
                          "service_tier": r["service_tier"], "context_window": _window(r), "inference_geo": None}]}
            for r in rs]
    path = directory / "usage_report.json"
    path.write_text(json.dumps({"data": data, "has_more": False, "next_page": None}, indent=2))
    return [path]


def _analytics(rs: list[dict], directory: Path) -> list[Path]:
    data = [{"starting_at": _iso(r["timestamp"]), "ending_at": _iso(r["timestamp"] + dt.timedelta(minutes=1)),
             "group": {"api_key_id": None, "context_window": _window(r), "inference_geo": None, "model": r["model"],
                       "service_tier": r["service_tier"], "speed": None, "workspace_id": None},
             "usage": {**_usage_row(r), "requests": 1, "total_tokens": _prompt(r) + r["output_tokens"]}}
            for r in rs]
    path = directory / "analytics_usage.json"
    path.write_text(json.dumps({"data": data, "has_more": False, "next_page": None}, indent=2))
    return [path]


CONSOLE_HEADER = ["usage_date_utc", "model_version", "api_key", "workspace", "usage_type", "context_window",
                  "usage_input_tokens_no_cache", "usage_input_tokens_cache_write_5m",
                  "usage_input_tokens_cache_write_1h", "usage_input_tokens_cache_read", "usage_output_tokens",
                  "web_search_count", "inference_geo", "speed"]


def _console(rs: list[dict], directory: Path) -> list[Path]:
    path = directory / "console_usage.csv"
    with open(path, "w", newline="", encoding="utf-8-sig") as f:  # the real export starts with a BOM
        w = csv.writer(f)
        w.writerow(CONSOLE_HEADER)
        for r in rs:
            w.writerow([r["timestamp"].date().isoformat(), r["model"], "key", "Default",
                        "batch" if r["service_tier"] == "batch" else "message",
                        "> 200k" if _prompt(r) > 200_000 else "≤ 200k", r["input_tokens"],
                        r["cache_write_5m_tokens"], r["cache_write_1h_tokens"], r["cache_read_tokens"],
                        r["output_tokens"], r["web_search_requests"], "global", ""])
    return [path]


def _console_hourly(rs: list[dict], directory: Path) -> list[Path]:
    """The hourly grain: each request in its hour, written as the export writes it (no seconds, no zone)."""
    [path] = _console([{**r, "timestamp": r["timestamp"].replace(minute=0, second=0, microsecond=0)} for r in rs],
                      directory)
    rows = path.read_text(encoding="utf-8-sig").splitlines()
    hours = [r["timestamp"].strftime("%Y-%m-%d %H:00") for r in rs]
    rows = rows[:1] + [h + line[len("YYYY-MM-DD"):] for h, line in zip(hours, rows[1:])]
    path.write_text("\n".join(rows) + "\n", encoding="utf-8-sig")
    return [path]


def _chat(r: dict, i: int) -> dict:
    return {"id": r["request_id"] or f"chatcmpl-x{i}", "object": "chat.completion",
            "created": int(r["timestamp"].timestamp()), "model": r["model"],
            "service_tier": {"standard": "default"}.get(r["service_tier"], r["service_tier"]),
            "choices": [],
            "usage": {"prompt_tokens": _prompt(r), "completion_tokens": r["output_tokens"],
                      "total_tokens": _prompt(r) + r["output_tokens"],
                      "prompt_tokens_details": {"cached_tokens": r["cache_read_tokens"],
                                                "cache_write_tokens": r["cache_write_5m_tokens"]}}}


def _openai(rs: list[dict], directory: Path) -> list[Path]:
    """Non-batch requests as chat completions; batch requests as Batch API output lines."""
    online = [json.dumps(_chat(r, i)) for i, r in enumerate(rs) if r["service_tier"] != "batch"]
    batch = [json.dumps({"id": f"batch_req_{i}", "custom_id": f"item-{i}",
                         "response": {"status_code": 200, "request_id": f"req_{i}",
                                      "body": {**_chat(r, i), "service_tier": "default"}},
                         "error": None})
             for i, r in enumerate(rs) if r["service_tier"] == "batch"]
    paths = []
    for name, lines in (("openai_chat.jsonl", online), ("openai_batch_output.jsonl", batch)):
        if lines:
            (directory / name).write_text("\n".join(lines) + "\n")
            paths.append(directory / name)
    return paths


def _openai_usage(rs: list[dict], directory: Path) -> list[Path]:
    data = [{"object": "bucket", "start_time": int(r["timestamp"].timestamp()),
             "end_time": int(r["timestamp"].timestamp()) + 60,
             "results": [{"object": "organization.usage.completions.result", "input_tokens": _prompt(r),
                          "input_cached_tokens": r["cache_read_tokens"],
                          "input_cache_write_tokens": r["cache_write_5m_tokens"],
                          "output_tokens": r["output_tokens"], "num_model_requests": 1, "project_id": None,
                          "user_id": None, "api_key_id": None, "model": r["model"],
                          "batch": r["service_tier"] == "batch",
                          "service_tier": "default" if r["service_tier"] in ("standard", "batch") else r["service_tier"]}]}
            for r in rs]
    path = directory / "openai_usage.json"
    path.write_text(json.dumps({"object": "page", "data": data, "has_more": False, "next_page": None}, indent=2))
    return [path]


def _spendlogs_frame(rs: list[dict]) -> pl.DataFrame:
    rows = []
    for i, r in enumerate(rs):
        writes = r["cache_write_5m_tokens"] + r["cache_write_1h_tokens"]
        metadata = {"user_api_key_alias": "key", "additional_usage_values": {
            "cache_creation_input_tokens": writes, "cache_read_input_tokens": r["cache_read_tokens"],
            "cache_creation_token_details": {"ephemeral_5m_input_tokens": r["cache_write_5m_tokens"],
                                             "ephemeral_1h_input_tokens": r["cache_write_1h_tokens"]}}}
        rows.append({"request_id": r["request_id"] or f"litellm-{i}", "call_type": "acompletion", "api_key": "hash",
                     "spend": None, "total_tokens": _prompt(r) + r["output_tokens"], "prompt_tokens": _prompt(r),
                     "completion_tokens": r["output_tokens"],
                     "startTime": r["timestamp"].strftime("%Y-%m-%d %H:%M:%S.%f+00"),
                     "model": r["model"], "custom_llm_provider": "anthropic", "metadata": json.dumps(metadata),
                     "cache_hit": "False", "request_tags": "[]", "status": "success"})
    return pl.DataFrame(rows, schema={"request_id": pl.String, "call_type": pl.String, "api_key": pl.String,
                                      "spend": pl.Float64, "total_tokens": pl.Int64, "prompt_tokens": pl.Int64,
                                      "completion_tokens": pl.Int64, "startTime": pl.String, "model": pl.String,
                                      "custom_llm_provider": pl.String, "metadata": pl.String,
                                      "cache_hit": pl.String, "request_tags": pl.String, "status": pl.String})


def _litellm_csv(rs: list[dict], directory: Path) -> list[Path]:
    path = directory / "spendlogs.csv"
    _spendlogs_frame(rs).write_csv(path)
    return [path]


def _litellm_json(rs: list[dict], directory: Path) -> list[Path]:
    """As the proxy's /spend/logs returns them: metadata an object, tags a list, times ISO-8601."""
    rows = _spendlogs_frame(rs).to_dicts()
    for row, r in zip(rows, rs):
        row.update(metadata=json.loads(row["metadata"]), request_tags=[], cache_hit=False,
                   startTime=r["timestamp"].isoformat().replace("+00:00", "Z"), model="anthropic/" + r["model"])
    path = directory / "spend_logs.json"
    path.write_text(json.dumps(rows, indent=2))
    return [path]


def _claude_code_analytics(rs: list[dict], directory: Path) -> list[Path]:
    """A record per request (an API key's day, dated the request's day) with one model_breakdown entry."""
    data = [{"actor": {"api_key_name": f"key-{i}", "type": "api_actor"}, "customer_type": "api",
             "date": r["timestamp"].strftime("%Y-%m-%d"), "organization_id": "org", "terminal_type": "vscode",
             "core_metrics": {"num_sessions": 1},
             "model_breakdown": [{"model": r["model"], "estimated_cost": {"amount": 1, "currency": "USD"},
                                  "tokens": {"input": r["input_tokens"], "output": r["output_tokens"],
                                             "cache_read": r["cache_read_tokens"],
                                             "cache_creation": r["cache_write_5m_tokens"]}}]}
            for i, r in enumerate(rs)]
    path = directory / "claude_code_usage.json"
    path.write_text(json.dumps({"data": data, "has_more": False, "next_page": None}, indent=2))
    return [path]


def _claude_code_stream(rs: list[dict], directory: Path) -> list[Path]:
    """One `claude -p --output-format stream-json` run per request, the file's time the request's: an
    init, the response's mid-stream partial (a repeat), the result with the run's modelUsage."""
    paths = []
    for i, r in enumerate(rs):
        session = f"0000000{i:d}-aaaa-4bbb-8ccc-dddddddddddd"
        usage = {"input_tokens": r["input_tokens"], "output_tokens": 1, "cache_read_input_tokens": r["cache_read_tokens"],
                 "cache_creation_input_tokens": r["cache_write_5m_tokens"]}
        lines = [
            {"type": "system", "subtype": "init", "session_id": session, "model": r["model"], "tools": []},
            {"type": "assistant", "session_id": session, "parent_tool_use_id": None,
             "message": {"id": f"msg_{i}", "type": "message", "model": r["model"], "content": [], "usage": usage}},
            {"type": "result", "subtype": "success", "is_error": False, "num_turns": 1, "result": "ok",
             "session_id": session, "uuid": f"run-{i}", "total_cost_usd": 0.01, "usage": {**usage, "output_tokens": 7},
             "modelUsage": {r["model"]: {"inputTokens": r["input_tokens"], "outputTokens": r["output_tokens"],
                                         "cacheReadInputTokens": r["cache_read_tokens"],
                                         "cacheCreationInputTokens": r["cache_write_5m_tokens"],
                                         "webSearchRequests": r["web_search_requests"], "costUSD": 0.01}}},
        ]
        path = directory / f"run-{i:02d}.jsonl"
        path.write_text("".join(json.dumps(x) + "\n" for x in lines))
        t = r["timestamp"].timestamp()
        os.utime(path, (t, t))
        paths.append(path)
    return paths


def _litellm_parquet(rs: list[dict], directory: Path) -> list[Path]:
    path = directory / "spendlogs.parquet"
    _spendlogs_frame(rs).write_parquet(path)
    return [path]


WRITERS = {
    "anthropic-usage-report": _report,
    "anthropic-usage-report/analytics": _analytics,
    "anthropic-console-csv": _console,
    "openai": _openai,
    "openai-usage": _openai_usage,
    "litellm-spendlogs": _litellm_csv,
    "litellm-spendlogs/parquet": _litellm_parquet,
    "anthropic-console-csv/hourly": _console_hourly,
    "litellm-spendlogs/json": _litellm_json,
    "claude-code-analytics": _claude_code_analytics,
    "claude-code-stream": _claude_code_stream,
}

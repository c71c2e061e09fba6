"""The same canonical requests written as cloud logs: Bedrock invocation logs (S3 delivery and a
CloudWatch export: filter-log-events, or Logs Insights get-query-results), Bedrock batch output, Vertex request-response logging rows, OpenTelemetry GenAI
spans, and a home-grown CSV read with `--map` (for the cross-dialect test: same requests, same
total, wherever the format can say them). `write_all(requests, dir)` writes every format that can
express all of them and says how to read each.

A request is a dict: timestamp (ISO text or datetime), model (a Claude API id), input_tokens,
output_tokens, cache_read_tokens, cache_write_5m_tokens, cache_write_1h_tokens, web_search_requests,
request_id, service_tier. Each format says which requests it can express (`can_express`) and
writes them (`write`). Cloud prices differ from first-party ones only by endpoint: requests are
written on global endpoints (Bedrock `global.` profiles, Vertex `locations/global`), which bill the
first-party price, so totals compare exactly. Bedrock batch output names no endpoint and is priced
as regional (in-region jobs): it can express only models without the regional premium.
"""

from __future__ import annotations

import datetime as dt
import gzip
import json
import os
from pathlib import Path

from analyzer import pricebook
from analyzer.models import Resolver

FORMATS = ("bedrock-invocations", "bedrock-cloudwatch", "bedrock-logs-insights", "bedrock-batch", "vertex-logging",
           "otel-genai", "custom-map")
MAPPING = Path(__file__).resolve().parents[2] / "fixtures" / "dialects" / "custom-mapping" / "mapping.toml"


def _time(r: dict) -> dt.datetime:
    t = r["timestamp"]
    if isinstance(t, str):
        t = dt.datetime.fromisoformat(t.replace("Z", "+00:00"))
    return t if t.tzinfo else t.replace(tzinfo=dt.UTC)


def _n(r: dict, key: str) -> int:
    return int(r.get(key) or 0)


def _tier(r: dict) -> str:
    return r.get("service_tier") or "standard"


def _regional_premium(model: str) -> bool:
    book = pricebook.load_price_book()
    found = Resolver(book).resolve(model)[0]
    return found is not None and book.models[found].regional_premium


def can_express(fmt: str, r: dict) -> bool:
    """Whether `fmt` can say everything this request says."""
    if fmt in ("bedrock-invocations", "bedrock-cloudwatch", "bedrock-logs-insights"):  # no web search or tiers in invocation logs
        return _tier(r) == "standard" and not _n(r, "web_search_requests")
    if fmt == "bedrock-batch":  # every record is batch; a batch record has no web search counter
        return _tier(r) == "batch" and not _n(r, "web_search_requests") and not _regional_premium(r["model"])
    if fmt == "vertex-logging":
        return _tier(r) == "standard"
    if fmt == "otel-genai":  # one cache-write count, no TTL: it means 5m
        return _tier(r) == "standard" and not _n(r, "web_search_requests") and not _n(r, "cache_write_1h_tokens")
    if fmt == "custom-map":
        return True
    raise ValueError(fmt)


def options(fmt: str) -> dict:
    """Options (keyword arguments of analyzer.Options) the format's files are read with."""
    return {"mapping": str(MAPPING)} if fmt == "custom-map" else {}


def write_all(requests: list[dict], directory: Path) -> dict[str, tuple[list[Path], dict]]:
    """Every format that can express all the requests: format -> (files, Options keyword arguments)."""
    return {fmt: (write(fmt, requests, directory / fmt), options(fmt)) for fmt in FORMATS
            if all(can_express(fmt, r) for r in requests)}


def write(fmt: str, requests: list[dict], directory: Path) -> list[Path]:
    """Write the requests in `fmt` under `directory` (created); returns the files to read. Every
    request must be expressible (see `can_express`)."""
    unable = [r["request_id"] for r in requests if not can_express(fmt, r)]
    if unable:
        raise ValueError(f"{fmt} cannot express {unable}")
    directory.mkdir(parents=True, exist_ok=True)
    return _WRITERS[fmt](requests, directory)


def _invocation_records(requests: list[dict]) -> list[dict]:
    lines = []
    for r in requests:
        w5, w1 = _n(r, "cache_write_5m_tokens"), _n(r, "cache_write_1h_tokens")
        usage = {"inputTokens": _n(r, "input_tokens"), "outputTokens": _n(r, "output_tokens"),
                 "cacheReadInputTokens": _n(r, "cache_read_tokens"), "cacheWriteInputTokens": w5 + w1,
                 "cacheDetails": [{"ttl": "1h", "inputTokens": w1}, {"ttl": "5m", "inputTokens": w5}]}
        lines.append({
            "schemaType": "ModelInvocationLog", "schemaVersion": "1.0",
            "timestamp": _time(r).isoformat().replace("+00:00", "Z"), "accountId": "123456789012",
            "identity": {"arn": "arn:aws:sts::123456789012:assumed-role/app/x"}, "region": "us-east-1",
            "requestId": r["request_id"], "operation": "Converse",
            "modelId": f"global.anthropic.{r['model']}-v1:0",
            "input": {"inputContentType": "application/json", "inputTokenCount": _n(r, "input_tokens"),
                      "cacheReadInputTokenCount": _n(r, "cache_read_tokens"), "cacheWriteInputTokenCount": w5 + w1},
            "output": {"outputContentType": "application/json", "outputTokenCount": _n(r, "output_tokens"),
                       "outputBodyJson": {"stopReason": "end_turn", "usage": usage}},
        })
    return lines


def _bedrock_invocations(requests: list[dict], d: Path) -> list[Path]:
    lines = _invocation_records(requests)
    # S3 delivery: gzipped JSON Lines named .json.gz
    path = d / "AWSLogs" / "123456789012" / "BedrockModelInvocationLogs" / "us-east-1" / "requests.json.gz"
    path.parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(path, "wt", encoding="utf-8") as f:
        f.writelines(json.dumps(x) + "\n" for x in lines)
    return [path]


def _bedrock_cloudwatch(requests: list[dict], d: Path) -> list[Path]:
    """`aws logs filter-log-events` output: the records as the messages of log events."""
    events = [{"timestamp": int(_time(r).timestamp() * 1000), "message": json.dumps(rec)}
              for r, rec in zip(requests, _invocation_records(requests))]
    path = d / "filter-log-events.json"
    path.write_text(json.dumps({"events": events, "searchedLogStreams": []}, indent=2), encoding="utf-8")
    return [path]


def _bedrock_logs_insights(requests: list[dict], d: Path) -> list[Path]:
    """`aws logs get-query-results` of `fields @timestamp, @message`: rows of field/value pairs."""
    rows = [[{"field": "@timestamp", "value": _time(r).strftime("%Y-%m-%d %H:%M:%S.000")},
             {"field": "@message", "value": json.dumps(rec)}, {"field": "@ptr", "value": f"ptr-{i}"}]
            for i, (r, rec) in enumerate(zip(requests, _invocation_records(requests)))]
    path = d / "get-query-results.json"
    path.write_text(json.dumps({"results": rows, "statistics": {"recordsMatched": float(len(rows))},
                                "status": "Complete"}, indent=2), encoding="utf-8")
    return [path]


def _bedrock_batch(requests: list[dict], d: Path) -> list[Path]:
    """One output file per request, its mtime the request's time: batch output has no timestamps,
    and the dialect takes the file's time."""
    paths = []
    for i, r in enumerate(requests):
        w5, w1 = _n(r, "cache_write_5m_tokens"), _n(r, "cache_write_1h_tokens")
        usage = {"input_tokens": _n(r, "input_tokens"), "output_tokens": _n(r, "output_tokens"),
                 "cache_read_input_tokens": _n(r, "cache_read_tokens"), "cache_creation_input_tokens": w5 + w1,
                 "cache_creation": {"ephemeral_5m_input_tokens": w5, "ephemeral_1h_input_tokens": w1}}
        rec = {"recordId": f"R{i:010d}", "modelInput": {"messages": []},
               "modelOutput": {"id": r["request_id"], "type": "message", "model": r["model"], "usage": usage}}
        path = d / f"job-{i:03d}" / "input.jsonl.out"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(rec) + "\n", encoding="utf-8")
        t = _time(r).timestamp()
        os.utime(path, (t, t))
        paths.append(path)
    return paths


def _vertex_logging(requests: list[dict], d: Path) -> list[Path]:
    lines = []
    for r in requests:
        w5, w1 = _n(r, "cache_write_5m_tokens"), _n(r, "cache_write_1h_tokens")
        usage = {"input_tokens": _n(r, "input_tokens"), "output_tokens": _n(r, "output_tokens"),
                 "cache_read_input_tokens": _n(r, "cache_read_tokens"), "cache_creation_input_tokens": w5 + w1,
                 "cache_creation": {"ephemeral_5m_input_tokens": w5, "ephemeral_1h_input_tokens": w1},
                 "server_tool_use": {"web_search_requests": _n(r, "web_search_requests")}}
        lines.append({
            "endpoint": f"projects/p/locations/global/publishers/anthropic/models/{r['model']}",
            "logging_time": _time(r).astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S.%f UTC"),
            "request_id": str(10**18 + len(lines)), "model": r["model"], "model_version": "",
            "api_method": "rawPredict", "full_request": {},
            "full_response": {"id": r["request_id"], "type": "message", "model": r["model"], "usage": usage},
        })
    path = d / "vertex.jsonl"
    path.write_text("".join(json.dumps(x) + "\n" for x in lines), encoding="utf-8")
    return [path]


def _otel_genai(requests: list[dict], d: Path) -> list[Path]:
    def attr(key, value):
        return {"key": key, "value": {"intValue": str(value)} if isinstance(value, int) else {"stringValue": value}}

    spans = []
    for i, r in enumerate(requests):
        cache_w = _n(r, "cache_write_5m_tokens")
        total_in = _n(r, "input_tokens") + cache_w + _n(r, "cache_read_tokens")  # semconv: input includes cache
        nanos = str(int(_time(r).timestamp() * 1_000_000) * 1_000)
        spans.append({"traceId": f"{i:032x}", "spanId": f"{i:016x}", "name": f"chat {r['model']}", "kind": 3,
                      "startTimeUnixNano": nanos, "endTimeUnixNano": nanos, "attributes": [
                          attr("gen_ai.operation.name", "chat"), attr("gen_ai.provider.name", "anthropic"),
                          attr("gen_ai.request.model", r["model"]), attr("gen_ai.response.id", r["request_id"]),
                          attr("gen_ai.usage.input_tokens", total_in),
                          attr("gen_ai.usage.cache_read.input_tokens", _n(r, "cache_read_tokens")),
                          attr("gen_ai.usage.cache_creation.input_tokens", cache_w),
                          attr("gen_ai.usage.output_tokens", _n(r, "output_tokens"))]})
    # Two documents (collector file exporter lines), several spans each.
    half = len(spans) // 2
    docs = [{"resourceSpans": [{"resource": {"attributes": [attr("service.name", "x")]},
                                "scopeSpans": [{"scope": {"name": "t"}, "spans": part}]}]}
            for part in (spans[:half], spans[half:]) if part]
    path = d / "spans.jsonl"
    path.write_text("".join(json.dumps(x) + "\n" for x in docs), encoding="utf-8")
    return [path]


def _custom_map(requests: list[dict], d: Path) -> list[Path]:
    """The home-grown CSV of fixtures/dialects/custom-mapping (read with `--map mapping.toml`)."""
    header = "when,llm,req,tier,prompt_total,cached,cache_5m,cache_1h,completion,searches\n"
    rows = []
    for r in requests:
        w5, w1, read = _n(r, "cache_write_5m_tokens"), _n(r, "cache_write_1h_tokens"), _n(r, "cache_read_tokens")
        rows.append(",".join(str(x) for x in (
            _time(r).isoformat(), r["model"], r["request_id"], _tier(r),
            _n(r, "input_tokens") + w5 + w1 + read, read, w5, w1, _n(r, "output_tokens"),
            _n(r, "web_search_requests"))) + "\n")
    path = d / "homegrown.csv"
    path.write_text(header + "".join(rows), encoding="utf-8")
    return [path]


_WRITERS = {"bedrock-invocations": _bedrock_invocations, "bedrock-cloudwatch": _bedrock_cloudwatch,
            "bedrock-logs-insights": _bedrock_logs_insights,
            "bedrock-batch": _bedrock_batch, "vertex-logging": _vertex_logging, "otel-genai": _otel_genai,
            "custom-map": _custom_map}

"""The same requests written in each log format (for tests/dialects/test_crossdialect.py).

REQUESTS are canonical requests (Anthropic meaning: input excludes cache). Each writer takes them
and a directory and returns the path(s) it wrote; a format that cannot express a request (a tier it
has no field for) is given only the requests it can express, via its `accepts` predicate.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path

import polars as pl

MODELS = ("claude-sonnet-4-5-20250929", "claude-opus-4-6", "claude-haiku-4-5-20251001")


def _requests() -> list[dict]:
    out = []
    for i in range(20):
        big = i % 3 == 0 and i % 2 == 0  # long-context prompts (> 200,000 tokens; Sonnet 4.5 had a premium in April 2026)
        out.append({
            "request_id": f"msg_x{i:03d}",
            "timestamp": f"2026-04-{1 + i:02d}T{8 + i % 10:02d}:15:00Z",
            "model": MODELS[i % 3],
            "input_tokens": 1000 + 137 * i + (205_000 if big else 0),
            "output_tokens": 50 + 31 * i,
            "cache_read_tokens": 0 if i % 4 == 0 else 2000 + 10 * i,
            "cache_write_5m_tokens": 500 * (i % 3),
            "cache_write_1h_tokens": 1200 if i % 5 == 1 else 0,
            "web_search_requests": i % 6 == 2 and 2 or 0,
            "service_tier": "batch" if i % 8 == 5 else "standard",
        })
    return out


REQUESTS = _requests()


def _usage(r: dict) -> dict:
    return {
        "input_tokens": r["input_tokens"], "output_tokens": r["output_tokens"],
        "cache_read_input_tokens": r["cache_read_tokens"],
        "cache_creation_input_tokens": r["cache_write_5m_tokens"] + r["cache_write_1h_tokens"],
        "cache_creation": {"ephemeral_5m_input_tokens": r["cache_write_5m_tokens"],
                           "ephemeral_1h_input_tokens": r["cache_write_1h_tokens"]},
        "server_tool_use": {"web_search_requests": r["web_search_requests"]},
        "service_tier": r["service_tier"],
    }


def _message(r: dict) -> dict:
    return {"id": r["request_id"], "type": "message", "role": "assistant", "model": r["model"],
            "content": [{"type": "text", "text": "..."}], "stop_reason": "end_turn", "usage": _usage(r)}


def _lines(path: Path, records) -> Path:
    path.write_text("".join(json.dumps(rec) + "\n" for rec in records))
    return path


def canonical(requests, d: Path, ext: str) -> Path:
    df = pl.DataFrame(requests).rename({"model": "model_raw"})
    path = d / f"canonical.{ext}"
    if ext == "parquet":
        df = df.with_columns(pl.col("timestamp").str.to_datetime(time_zone="UTC"))
    getattr(df, {"csv": "write_csv", "jsonl": "write_ndjson", "parquet": "write_parquet"}[ext])(path)
    return path


def anthropic_envelope(requests, d: Path) -> Path:
    return _lines(d / "responses.jsonl", ({"timestamp": r["timestamp"], "request_id": r["request_id"],
                                           "response": _message(r)} for r in requests))




def claude_code(requests, d: Path) -> Path:
    """A transcript: each response in two lines (a thinking block with a partial output count, then
    the final block), with user lines between."""
    path = d / "projects" / "-home-dev-x" / "session.jsonl"
    path.parent.mkdir(parents=True)
    records = []
    for r in requests:
        base = {"parentUuid": None, "isSidechain": False, "userType": "external", "cwd": "/home/dev/x",
                "sessionId": "s-1", "version": "2.1.0", "requestId": "req_" + r["request_id"],
                "type": "assistant", "timestamp": r["timestamp"]}
        records.append({"type": "user", "sessionId": "s-1", "message": {"role": "user", "content": "go"},
                        "timestamp": r["timestamp"]})
        partial = _message(r) | {"usage": _usage(r) | {"output_tokens": 1}}
        records.append(base | {"message": partial})
        records.append(base | {"message": _message(r)})
    return _lines(path, records)


def sse_streams(requests, d: Path) -> Path:
    """Raw server-sent events, one capture per streamed request (as `curl -N` saves it), each file
    dated the request's time (events carry none): message_start with the input and cache counts and a
    placeholder output, content events, message_delta with the final usage, message_stop."""
    out = d / "captures"
    out.mkdir()
    for r in requests:
        usage = _usage(r)
        start = {"type": "message_start", "message": _message(r) | {"content": [], "stop_reason": None,
                                                                   "usage": usage | {"output_tokens": 1}}}
        events = [start, {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
                  {"type": "ping"},
                  {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "..."}},
                  {"type": "content_block_stop", "index": 0},
                  {"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                   "usage": {k: v for k, v in usage.items() if k != "service_tier"}},
                  {"type": "message_stop"}]
        path = out / f"{r['request_id']}.sse"
        path.write_text("".join(f"event: {e['type']}\ndata: {json.dumps(e)}\n\n" for e in events))
        t = dt.datetime.fromisoformat(r["timestamp"].replace("Z", "+00:00")).timestamp()
        os.utime(path, (t, t))
    return out


# name -> (writer(requests, dir) -> path, accepts(request) -> bool)
WRITERS = {
    "canonical-csv": (lambda q, d: canonical(q, d, "csv"), lambda r: True),
    "canonical-jsonl": (lambda q, d: canonical(q, d, "jsonl"), lambda r: True),
    "canonical-parquet": (lambda q, d: canonical(q, d, "parquet"), lambda r: True),
    "anthropic-messages": (anthropic_envelope, lambda r: True),
    "claude-code": (claude_code, lambda r: r["service_tier"] == "standard"),  # interactive: never batch
    "anthropic-messages/sse": (sse_streams, lambda r: r["service_tier"] == "standard"),  # batches do not stream
}

"""Claude Code's OpenTelemetry events (OTLP/JSON logs): the mapping is data (claude_code_otel.toml);
this module lifts each `claude_code.api_request` log record out of the export documents (the
OpenTelemetry span machinery of `otel_genai`, applied to resourceLogs[].scopeLogs[].logRecords[]).
Other events (user_prompt, tool_result, ...) are not usage and are skipped."""

from __future__ import annotations

import dataclasses
import tomllib
from pathlib import Path

import polars as pl

from ..sources import SourceFile
from . import mapped
from .otel_genai import ATTRIBUTES, lookup, named

SPEC = Path(__file__).with_suffix(".toml")
_RECORD = pl.Struct({"timeUnixNano": pl.String, "body": pl.Struct({"stringValue": pl.String}),
                     "attributes": ATTRIBUTES})
_RESOURCE_LOGS = pl.List(pl.Struct({
    "resource": pl.Struct({"attributes": ATTRIBUTES}),
    "scopeLogs": pl.List(pl.Struct({"logRecords": pl.List(_RECORD)})),
}))
# The attributes the mapping names, and those this module reads itself.
_KEYS = list(dict.fromkeys([*named(tomllib.loads(SPEC.read_text(encoding="utf-8")), own="record.")[0],
                            "event.name", "event.sequence", "session.id"]))
_EVENT = "claude_code.api_request"


def _is_claude_code(src: SourceFile) -> bool:
    """OTLP logs from Claude Code (its event scope), not any application's logs."""
    return any(str((s.get("scope") or {}).get("name", "")).startswith("com.anthropic.claude_code")
               for doc in src.sample for r in doc.get("resourceLogs") or [] if isinstance(r, dict)
               for s in r.get("scopeLogs") or [] if isinstance(s, dict))


def _prepare(lf: pl.LazyFrame, src: SourceFile, ctx, get) -> pl.LazyFrame:
    lf = lf.with_columns(get(("resourceLogs",)).alias("_rl"))
    if lf.collect_schema()["_rl"] == pl.String:  # robust path: the list arrives as JSON text
        lf = lf.with_columns(pl.col("_rl").str.json_decode(_RESOURCE_LOGS))
    records = (
        lf.explode("_rl", empty_as_null=True)
        .with_columns(pl.col("_rl").struct.field("scopeLogs").alias("_sl"))
        .explode("_sl", empty_as_null=True)
        .with_columns(pl.col("_sl").struct.field("logRecords").alias("_lr"))
        .explode("_lr", empty_as_null=True)
        .with_columns(pl.col("_lr").struct.field("attributes").alias("_at"))
        .with_columns(*(lookup(pl.col("_at"), k).alias(k) for k in _KEYS))
    )
    record = pl.col("_lr")
    api_request = (record.struct.field("body").struct.field("stringValue") == _EVENT) | (
        pl.col("event.name") == "api_request")
    nanos = record.struct.field("timeUnixNano").cast(pl.Int64, strict=False)
    return (
        records.filter(api_request.fill_null(False) | ~pl.col("_line_ok"))  # a broken line is quarantined
        .with_columns(
            pl.from_epoch(nanos // 1000, time_unit="us").dt.strftime("%Y-%m-%dT%H:%M:%S%.6fZ")
            .alias("record.timeUnixNano"),
            pl.format("{}:{}", pl.col("session.id"), pl.col("event.sequence")).alias("record.id"),
        )
        .drop("_rl", "_sl", "_lr", "_at")
    )


DIALECT = dataclasses.replace(mapped.dialect_from_mapping(SPEC, prepare=_prepare, reads={("resourceLogs",): _RESOURCE_LOGS}),
                              matches=_is_claude_code)

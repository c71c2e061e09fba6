"""AWS Bedrock model invocation logs: the mapping is data (bedrock_invocations.toml); this module reads
what a path cannot say.

- A stream's output body is an array of chunks; the last carries `amazon-bedrock-invocationMetrics`
  with the counts. They stand in when the record has no top-level counts.
- The cache-write count has no TTL; the response body may split it (Converse `usage.cacheDetails`
  with `ttl` 1h/5m, or the Messages `usage.cache_creation`): the 1h part is taken from there, the
  rest is 5m.
- Endpoint scope: a base model id (`anthropic.…`, or its foundation-model ARN) is invoked in-region and
  a geography profile (`us.`, `eu.`, `apac.`, `jp.`, `au.`, ...) stays in its geography: both are
  regional endpoints (x1.1 on 4.5+ models); a `global.` profile is not. An application inference
  profile ARN names neither (nor a model: it stays unpriced, with that reason).
- `requestMetadata` keys (caller-supplied tags) become dimensions, named as the keys (prefixed
  `meta_` if a key collides with a column llm-cost already has). Like other JSON dimensions, the keys
  are those of the file's first records.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import polars as pl

from .. import schema
from ..sources import LINE, SourceFile, loads_first
from ..words import counted
from . import mapped
from ._json_text import named_twice
from .canonical import TOKENS, number_at


# The output body is an object, or an array of chunks for a stream: it cannot be decoded to one type,
# and parsing each record's JSON again costs as much as the decode itself. The few facts needed here
# sit in flat objects under keys found nowhere else in a record (a key inside a prompt's text has its
# quotes escaped; a Converse request body may repeat requestMetadata, the same map), so they are cut
# out of the line's text and only those small pieces are parsed.
def _flat(key: str, brackets: str = "{}") -> pl.Expr:
    o, c = brackets
    return pl.col(LINE).str.extract(rf'"{key}"\s*:\s*(\{o}[^\{o}\{c}]*\{c})')


_METRICS = {  # column (`@column` in the mapping) -> key of amazon-bedrock-invocationMetrics
    "metrics_input": "inputTokenCount",
    "metrics_output": "outputTokenCount",
    "metrics_cache_read": "cacheReadInputTokenCount",
    "metrics_cache_write": "cacheWriteInputTokenCount",
}
_GLOBAL = r"(?i)(^|/)global\."
_REGIONAL = r"(?i)(^|/)([a-z]{2,4}(-[a-z]+)?\.)?anthropic\."
_OWN_DIMENSIONS = ("identity", "account", "region")


def _prepare(lf: pl.LazyFrame, src: SourceFile, ctx, get) -> pl.LazyFrame:
    model = get(("modelId",))
    # Counts stay text, judged by the count check as every mapped count is: cast to Int64 here, a
    # `1000.0` or `1e3` (whole: 1000 in a CSV) or a `1.5` became null, silently, and a 1h write
    # split was priced at the 5m rate. A JSON path renders a number through a float
    # (`1.00000000000000000001` as 1.0): a piece holding a number with a fraction, an exponent or
    # 19 digits or more is read with its numbers quoted, as their own text (the pieces are small,
    # and real counts plain integers: no other piece pays).
    def read(text: str, path: str, key: str | None = None) -> pl.Expr:
        found = pl.coalesce(pl.col(f"{text}_q").str.json_path_match(path), pl.col(text).str.json_path_match(path))
        if key is None:
            return found
        # A key named twice in one object counts its first value, as a mapped path's does (the
        # decoder's); a JSON path keeps the last. Only a piece that writes the key (or a key with a
        # `\u` escape) more than once is split into tokens for its first number at the key.
        twice = named_twice(pl.col(text), {key})
        return pl.coalesce(number_at(pl.when(twice).then(pl.col(text)).str.extract_all(TOKENS), (key,)), found)

    pieces = ("_x_metrics", "_x_ttl", "_x_split")

    return (
        lf.with_columns(
            _flat("amazon-bedrock-invocationMetrics").alias("_x_metrics"),
            _flat("cacheDetails", "[]").alias("_x_ttl"),  # Converse: [{ttl: 1h|5m, inputTokens}]
            _flat("cache_creation").alias("_x_split"),  # Messages body: {ephemeral_5m_.., ephemeral_1h_..}
            _flat("requestMetadata").alias("_x_meta"),  # string -> string (AWS allows no braces in them)
        )
        .with_columns(pl.when(pl.col(p).str.contains(r"[0-9][.eE]|[0-9]{19}")).then(mapped.quoted_numbers(pl.col(p)))
                      .alias(f"{p}_q") for p in pieces)
        .with_columns(
            *(read("_x_metrics", f"$.{key}", key).alias(name) for name, key in _METRICS.items()),
            pl.coalesce(read("_x_ttl", "$[?(@.ttl=='1h')].inputTokens"),
                        read("_x_split", "$.ephemeral_1h_input_tokens", "ephemeral_1h_input_tokens"))
            .alias("cache_write_1h"),
            pl.when(model.str.contains(_GLOBAL)).then(pl.lit("global"))
            .when(model.str.contains(_REGIONAL)).then(pl.lit("regional"))
            .alias("endpoint_scope_from_id"),
        )
    )


def _sample_records(src: SourceFile) -> list[dict]:
    """The invocation records among a file's first records (inside CloudWatch events too)."""
    out = []
    for rec in src.sample:
        events = rec.get("events") if isinstance(rec.get("events"), list) else [rec]
        if isinstance(rec.get("results"), list):  # Logs Insights: rows of {field, value} pairs
            events = [{"message": f.get("value")} for row in rec["results"] if isinstance(row, list)
                      for f in row if isinstance(f, dict) and f.get("field") == "@message"]
        for e in events:
            msg = e.get("message") if isinstance(e, dict) and "schemaType" not in e else e
            if isinstance(msg, str) and msg.lstrip().startswith("{"):
                try:
                    msg = loads_first(msg)  # (a key named twice: its first value, as read)
                except (ValueError, RecursionError):
                    continue
            if isinstance(msg, dict) and msg.get("schemaType") == "ModelInvocationLog":
                out.append(msg)
    return out


def _metadata_keys(src: SourceFile) -> list[str]:
    keys: dict[str, None] = {}
    for rec in _sample_records(src):
        meta = rec.get("requestMetadata")
        if isinstance(meta, dict):
            keys.update(dict.fromkeys(k for k in meta if isinstance(k, str) and k.strip()))
    return list(keys)


def _dimension_name(key: str) -> str:
    taken = key in schema.RESERVED or key in _OWN_DIMENSIONS or key.startswith("_")
    return f"meta_{key}" if taken else key


def _finish(lf: pl.LazyFrame, src: SourceFile, ctx) -> pl.LazyFrame:
    """requestMetadata keys as dimensions, read from the (small) metadata text, not the whole record."""
    meta = pl.col("_x_meta")
    return lf.with_columns(meta.str.json_path_match("$['" + k.replace("'", "\\'") + "']").alias(_dimension_name(k))
                           for k in _metadata_keys(src))


DIALECT = mapped.dialect_from_mapping(Path(__file__).with_suffix(".toml"), prepare=_prepare, finish=_finish)


# --- The same records read out of CloudWatch Logs -------------------------------------------------
# Invocation logs delivered to CloudWatch Logs are exported as log events whose `message` is the
# record's JSON text: `aws logs filter-log-events` / `get-log-events` output ({"events": [...]}), one
# event per line ({"timestamp", "message", ...}), or a Logs Insights query's `aws logs
# get-query-results` output ({"results": [[{"field": "@message", "value": ...}, ...], ...], "status"}),
# one row of field/value pairs per log event, the record in its `@message` field. Each event becomes
# the record it carries, and is then read exactly as above.

_EVENT = pl.Struct({"message": pl.String})
_FIELD = pl.Struct({"field": pl.String, "value": pl.String})
_EVENTS = pl.Struct({"events": pl.List(_EVENT), "message": pl.String, "results": pl.List(pl.List(_FIELD))})


def _insights_messages(results: pl.Expr) -> pl.Expr:
    """Each Logs Insights row's `@message` value, as an event ({message}); a row without one (a query
    that did not select it) holds no record."""
    message = pl.element().list.eval(
        pl.when(pl.element().struct.field("field") == "@message").then(pl.element().struct.field("value"))
    ).list.drop_nulls().list.first()
    return results.list.eval(pl.struct(message.alias("message")))


def _note_partial_query(src: SourceFile, ctx) -> None:
    """A Logs Insights result is cut at the query's row limit (1,000 unless the query says `limit`; at
    most 10,000) and is partial while the query runs: the file holds fewer events than the query
    matched, and a total of it would be short without a word. Said, with the counts."""
    for doc in src.sample:
        rows = doc.get("results")
        if not isinstance(rows, list):
            continue
        status, stats = doc.get("status"), doc.get("statistics")
        matched = stats.get("recordsMatched") if isinstance(stats, dict) else None
        if isinstance(status, str) and status != "Complete":
            ctx.note(f"{src.display}: the Logs Insights query's status is {status}, not Complete: "
                     f"its results may be partial, and so is this total")
        if isinstance(matched, int | float) and matched > len(rows):
            ctx.note(f"{src.display}: the Logs Insights query matched {int(matched):,} log events but the "
                     f"results hold {counted(len(rows), 'row')} (the query's limit: 1,000 by default, at most 10,000): "
                     f"this total covers those rows only")


def _unwrap_events(lf: pl.LazyFrame, src: SourceFile, ctx, get) -> pl.LazyFrame:
    _note_partial_query(src, ctx)
    doc = pl.when(pl.col("_line_ok")).then(pl.col(LINE)).str.json_decode(_EVENTS)
    events = pl.coalesce(doc.struct.field("events"), _insights_messages(doc.struct.field("results")),
                         pl.concat_list(pl.struct(doc.struct.field("message"))))
    lf = (lf.with_columns(events.alias("_x_events"))
          .explode("_x_events", empty_as_null=True)
          # an empty page of events, or a line that is no event, holds no record (a broken line stays)
          .filter(pl.col("_x_events").struct.field("message").is_not_null() | ~pl.col("_line_ok"))
          .with_columns(pl.coalesce(pl.col("_x_events").struct.field("message"), pl.col(LINE)).alias(LINE)))
    # The mapping's paths are read from the record: decoded again from the message (the fast path)...
    decoded = lf.collect_schema().get(mapped.DECODED)
    if decoded is not None:
        lf = lf.with_columns(pl.col(LINE).str.json_decode(decoded).alias(mapped.DECODED))
    else:  # ...or read as text from it (the robust path), where a message that is not JSON is unreadable
        lf = mapped.with_first_keys(lf.with_columns(
            (pl.col("_line_ok") & pl.col(LINE).str.json_path_match("$").is_not_null()).alias("_line_ok")), pl.col(LINE))
    return _prepare(lf.drop("_x_events"), src, ctx, get)


def _carries_invocations(src: SourceFile) -> bool:
    return bool(_sample_records(src))


_CLOUDWATCH = mapped.dialect_from_mapping(Path(__file__).with_suffix(".toml"), prepare=_unwrap_events, finish=_finish)
CLOUDWATCH = dataclasses.replace(
    _CLOUDWATCH, name="bedrock-cloudwatch", required=("events|message|results",), matches=_carries_invocations,
    description="Bedrock invocation logs exported from CloudWatch Logs (filter-log-events / get-log-events events, "
                "or Logs Insights get-query-results rows, whose message is a record)",
    mapping=dataclasses.replace(_CLOUDWATCH.mapping, name="bedrock-cloudwatch", signature=("events|message|results",)),
)
DIALECTS = [DIALECT, CLOUDWATCH]

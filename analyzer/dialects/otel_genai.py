"""OpenTelemetry GenAI spans (OTLP/JSON): the mapping is data (otel_genai.toml); this module turns the
export documents into one row per span, which a path cannot say:

- a document (one collector file-exporter line) nests resourceSpans[].scopeSpans[].spans[]: spans
  are lifted out, each keeping its resource's attributes;
- attributes are key/value lists (`[{key, value: {intValue | stringValue | ...}}]`): the ones the
  mapping names (`@"<key>"`, `@"resource.<key>"`) become columns; intValue is a string in OTLP/JSON
  (a number from some exporters reads the same);
- only spans with gen_ai token counts are usage; HTTP, database and other spans are skipped. A span
  is a record (the accounting counts spans; a line that cannot be read counts as one);
- startTimeUnixNano (nanoseconds) becomes the request time.
- only model calls are requests: an agent, workflow or tool span (`invoke_agent`, `create_agent`,
  `execute_tool`, `invoke_workflow`) may carry usage too, but that usage aggregates its model calls'
  (its child spans): counted, it doubles the tokens. Such spans are not billable, with the operation
  named. The conventions' inference operations (chat, text_completion, generate_content,
  embeddings), a span naming no operation (older instrumentations) and an operation the conventions
  do not name are model calls: frameworks name their own (mozilla-ai/any-agent writes `call_llm`).
"""

from __future__ import annotations

import tomllib
from pathlib import Path

import polars as pl

from ..sources import SourceFile
from . import mapped

SPEC = Path(__file__).with_suffix(".toml")
# Every value as text: intValue is a string in OTLP/JSON, and a doubleValue (a cost) stays exact.
_VALUE = pl.Struct({"stringValue": pl.String, "intValue": pl.String, "doubleValue": pl.String})
ATTRIBUTES = pl.List(pl.Struct({"key": pl.String, "value": _VALUE}))
_SPAN = pl.Struct({"traceId": pl.String, "spanId": pl.String, "startTimeUnixNano": pl.String,
                   "attributes": ATTRIBUTES})
_RESOURCE_SPANS = pl.List(pl.Struct({
    "resource": pl.Struct({"attributes": ATTRIBUTES}),
    "scopeSpans": pl.List(pl.Struct({"spans": pl.List(_SPAN)})),
}))


def named(spec: dict, own: str) -> tuple[list[str], list[str]]:
    """(attribute keys, resource attribute keys) the mapping refers to as `@"..."` columns; names
    starting with `own` (`span.`) are the module's own columns, not attributes."""
    paths = [p for table in ("fields", "dimensions") for v in spec.get(table, {}).values()
             for p in (v if isinstance(v, list) else [v])]
    names = [p[1:].strip('"') for p in paths if p.startswith("@")]
    names = [n for n in names if not n.startswith(own)]
    return ([n for n in names if not n.startswith("resource.")],
            [n.removeprefix("resource.") for n in names if n.startswith("resource.")])


_SPAN_KEYS, _RESOURCE_KEYS = named(tomllib.loads(SPEC.read_text(encoding="utf-8")), own="span.")
_USAGE_KEYS = [k for k in _SPAN_KEYS if k.startswith("gen_ai.usage.") and k.endswith("_tokens")]
OPERATION = "gen_ai.operation.name"
# The semantic conventions' operations that are not one model call: their usage sums their children's.
AGGREGATES = ("invoke_agent", "create_agent", "execute_tool", "invoke_workflow")


def lookup(attributes: pl.Expr, key: str) -> pl.Expr:
    """The value of `key` in a key/value attribute list, as text, or null."""
    hit = attributes.list.eval(pl.element().filter(pl.element().struct.field("key") == key)).list.first()
    value = hit.struct.field("value")
    return pl.coalesce(*(value.struct.field(f) for f in ("intValue", "doubleValue", "stringValue")))


def _prepare(lf: pl.LazyFrame, src: SourceFile, ctx, get) -> pl.LazyFrame:
    lf = lf.with_columns(get(("resourceSpans",)).alias("_rs"))
    if lf.collect_schema()["_rs"] == pl.String:  # robust path: the list arrives as JSON text
        lf = lf.with_columns(pl.col("_rs").str.json_decode(_RESOURCE_SPANS))
    readable = pl.col("_line_ok")
    spans = (
        lf.explode("_rs", empty_as_null=True)
        .with_columns(pl.col("_rs").struct.field("resource").struct.field("attributes").alias("_res"),
                      pl.col("_rs").struct.field("scopeSpans").alias("_ss"))
        .explode("_ss", empty_as_null=True)
        .with_columns(pl.col("_ss").struct.field("spans").alias("_sp"))
        .explode("_sp", empty_as_null=True)
        .with_columns(pl.col("_sp").struct.field("attributes").alias("_at"))
        .with_columns(
            *(lookup(pl.col("_at"), k).alias(k) for k in _SPAN_KEYS),
            *(lookup(pl.col("_res"), k).alias("resource." + k) for k in _RESOURCE_KEYS),
        )
    )
    # A usage span has token counts; an unreadable line stays (as one row) to be quarantined.
    usage = pl.any_horizontal([pl.col(k).is_not_null() for k in _USAGE_KEYS])
    span = pl.col("_sp")
    nanos = span.struct.field("startTimeUnixNano").cast(pl.Int64, strict=False)
    return (
        spans.filter(usage | ~readable)
        .with_columns(
            pl.from_epoch(nanos // 1000, time_unit="us").dt.strftime("%Y-%m-%dT%H:%M:%S%.6fZ")
            .alias("span.startTimeUnixNano"),
            pl.format("{}:{}", span.struct.field("traceId"), span.struct.field("spanId")).alias("span.id"),
        )
        .with_columns(lookup(pl.col("_at"), OPERATION).alias("_x_op"))
        .drop("_rs", "_res", "_ss", "_sp", "_at")
    )


def _finish(lf: pl.LazyFrame, src: SourceFile, ctx) -> pl.LazyFrame:
    op = pl.col("_x_op")
    aggregate = op.is_in(AGGREGATES).fill_null(False)
    return lf.with_columns(
        pl.when(aggregate & pl.col("_nb").is_null())
        .then(pl.format("{} span: its usage aggregates its model calls (counted on their own spans)", op))
        .otherwise(pl.col("_nb")).alias("_nb"))


DIALECT = mapped.dialect_from_mapping(SPEC, prepare=_prepare, finish=_finish, reads={("resourceSpans",): _RESOURCE_SPANS})

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

from pathlib import Path

import polars as pl

from .. import schema
from ..sources import LINE, SourceFile
from . import mapped

_BODY = "$.output.outputBodyJson"
_METRICS = {  # column (`@column` in the mapping) -> key of amazon-bedrock-invocationMetrics
    "metrics_input": "inputTokenCount",
    "metrics_output": "outputTokenCount",
    "metrics_cache_read": "cacheReadInputTokenCount",
    "metrics_cache_write": "cacheWriteInputTokenCount",
}
_ONE_HOUR = (  # where a response body states the 1h part of its cache writes
    "$.usage.cacheDetails[?(@.ttl=='1h')].inputTokens",  # Converse
    "$.usage.cache_creation.ephemeral_1h_input_tokens",  # InvokeModel (Messages API body)
    "$[0].message.usage.cache_creation.ephemeral_1h_input_tokens",  # InvokeModelWithResponseStream
)
_GLOBAL = r"(?i)(^|/)global\."
_REGIONAL = r"(?i)(^|/)([a-z]{2,4}(-[a-z]+)?\.)?anthropic\."
_OWN_DIMENSIONS = ("identity", "account", "region")


def _prepare(lf: pl.LazyFrame, src: SourceFile, ctx, get) -> pl.LazyFrame:
    # The output body is an object or an array of chunks: read from the line's text, not decoded.
    body, metrics = pl.col("_x_body"), pl.col("_x_metrics")
    model = get(("modelId",))
    # Counts are integers on the fast path (text on the robust one, where every path is text).
    count = pl.Int64 if mapped.DECODED in lf.collect_schema().names() else pl.String

    def read(text: pl.Expr, path: str) -> pl.Expr:
        return text.str.json_path_match(path).cast(count, strict=False)

    return (
        lf.with_columns(pl.col(LINE).str.json_path_match(_BODY).alias("_x_body"))
        .with_columns(body.str.json_path_match("$[*]['amazon-bedrock-invocationMetrics']").alias("_x_metrics"))
        .with_columns(
            *(read(metrics, f"$.{key}").alias(name) for name, key in _METRICS.items()),
            pl.coalesce([read(body, p) for p in _ONE_HOUR]).alias("cache_write_1h"),
            pl.when(model.str.contains(_GLOBAL)).then(pl.lit("global"))
            .when(model.str.contains(_REGIONAL)).then(pl.lit("regional"))
            .alias("endpoint_scope_from_id"),
        )
    )


def _metadata_keys(src: SourceFile) -> list[str]:
    keys: dict[str, None] = {}
    for rec in src.sample:
        meta = rec.get("requestMetadata")
        if isinstance(meta, dict):
            keys.update(dict.fromkeys(k for k in meta if isinstance(k, str) and k.strip()))
    return list(keys)


def _dimension_name(key: str) -> str:
    taken = key in schema.CANONICAL or key in _OWN_DIMENSIONS or key.startswith("_")
    return f"meta_{key}" if taken else key


def _finish(lf: pl.LazyFrame, src: SourceFile, ctx) -> pl.LazyFrame:
    """requestMetadata keys as dimensions, read from the record."""
    keys = _metadata_keys(src)
    if not keys:
        return lf
    return lf.with_columns(pl.col("_raw").str.json_path_match("$.requestMetadata['" + k.replace("'", "\\'") + "']")
                           .alias(_dimension_name(k)) for k in keys)


DIALECT = mapped.load(Path(__file__).with_suffix(".toml"), prepare=_prepare, finish=_finish)

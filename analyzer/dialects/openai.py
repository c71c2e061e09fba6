"""`openai`: OpenAI API responses as logged (chat completions, Responses API, Batch API output). The
mapping (openai.toml) reads the counts and converts the cache-inclusive prompt; this module adds:

- the tier: a Batch API output line bills at the batch tier, whatever its body's service_tier says
  ("default"); other lines state their tier (default, flex, priority; Scale Tier is quarantined:
  prepaid capacity with no per-token price);
- errored batch lines (error set, or a non-200 status): counted as not billable;
- streaming chunks without usage: not usage (only the stream's last chunk carries it), skipped;
  likewise Responses streaming events without `response.usage` (created, in_progress, deltas): only
  the terminal event (response.completed, .incomplete, .failed) carries the usage.
"""

from pathlib import Path

import polars as pl

from . import mapped

READS = {("object",): pl.String(), ("type",): pl.String(), ("service_tier",): pl.String(),
         ("response", "body", "service_tier"): pl.String(), ("response", "service_tier"): pl.String(),
         ("response", "usage", "total_tokens"): pl.String(),
         ("response", "status_code"): pl.String(), ("error", "code"): pl.String(),
         ("error", "message"): pl.String(), ("usage", "total_tokens"): pl.String()}


def _prepare(lf: pl.LazyFrame, src, ctx, get) -> pl.LazyFrame:
    batch = get(("custom_id",)).is_not_null()
    chunk_without_usage = (get(("object",)) == "chat.completion.chunk") & get(("usage", "total_tokens")).is_null()
    # (a Responses stream event: its type starts with `response.`; only the last one has usage)
    event_without_usage = (get(("type",)).str.starts_with("response.")
                           & get(("response", "usage", "total_tokens")).is_null()
                           & get(("response", "usage", "input_tokens")).is_null()
                           & get(("response", "usage", "output_tokens")).is_null())
    errored = batch & (get(("error", "code")).is_not_null() | get(("error", "message")).is_not_null()
                       | (get(("response", "status_code")).cast(pl.String) != "200").fill_null(True))
    not_usage = chunk_without_usage.fill_null(False) | event_without_usage.fill_null(False)
    return lf.filter(~not_usage | ~pl.col("_line_ok")).with_columns(
        pl.when(batch).then(pl.lit("batch"))
        .otherwise(pl.coalesce(get(("service_tier",)), get(("response", "body", "service_tier")),
                               get(("response", "service_tier")))).alias("_x_tier"),
        errored.alias("_x_errored"),
    )


def _finish(lf: pl.LazyFrame, src, ctx) -> pl.LazyFrame:
    return lf.with_columns(
        pl.when(pl.col("_x_errored")).then(pl.lit("batch request errored")).otherwise(pl.col("_nb")).alias("_nb"))


DIALECT = mapped.dialect_from_mapping(Path(__file__).with_suffix(".toml"), prepare=_prepare, finish=_finish, reads=READS,
                                      line_local=True)  # (its hooks filter and label each row alone)

"""`anthropic-messages`: logged Messages API responses. The mapping (anthropic_messages.toml) reads
the three shapes; this module handles what a path cannot say:

- `usage.iterations` (compaction, advisor, fallback): when present, the billed usage is the sum of
  the iterations, and the top-level counts leave the compaction out. Each iteration becomes a row
  priced by its own model (an advisor may be another model); the record is still counted once
  (`_rec`), and only its first row is a request.
- Streaming events: `message_start` carries the input and cache counts with a placeholder output;
  each `message_delta` carries cumulative counts but no id or model. The id and model of the last
  `message_start` are carried forward, every event of a message takes the message's largest value
  of each count (counts only grow), and the events are then merged as repeats of one request. When
  the final usage lists iterations, those are the request's steps, each billed once (as in a Message).
  Other events (content blocks, ping, message_stop) carry no usage and are not records.
"""

from pathlib import Path

import polars as pl

from ..schema import COUNT_COLUMNS
from . import mapped

ROOTS = (("response",), ("message",), ())
ITERATION = {"type": pl.String, "model": pl.String, "input_tokens": pl.Int64, "output_tokens": pl.Int64,
             "cache_read_input_tokens": pl.Int64, "cache_creation_input_tokens": pl.Int64,
             "cache_creation": pl.Struct({"ephemeral_5m_input_tokens": pl.Int64, "ephemeral_1h_input_tokens": pl.Int64})}
# Counts decoded as text, as every mapped count is (mapped._typed_paths): into an Int64 the decoder
# reads a step's `1.5` as 1, silently, where a line read on the robust path is quarantined.
AS_TEXT = pl.List(pl.Struct({k: (pl.Struct({f.name: pl.String for f in v.fields}) if isinstance(v, pl.Struct)
                                 else pl.String) for k, v in ITERATION.items()}))
STREAM_EVENTS = ("message_start", "message_delta")
NO_USAGE_EVENTS = ["content_block_start", "content_block_delta", "content_block_stop", "ping", "message_stop"]


def _is_stream(src) -> bool:
    return any(r.get("type") in STREAM_EVENTS for r in src.sample)


def _prepare(lf: pl.LazyFrame, src, ctx, get) -> pl.LazyFrame:
    kind = get(("type",))
    lf = lf.filter(~kind.is_in(NO_USAGE_EVENTS).fill_null(False))
    if _is_stream(src):
        start = kind == "message_start"
        lf = lf.with_columns(
            pl.when(start).then(get(("message", "id"))).forward_fill().alias("_x_stream_id"),
            pl.when(start).then(get(("message", "model"))).forward_fill().alias("_x_stream_model"),
            # A delta need not restate the input count: its message_start's stands for it.
            pl.when(start).then(get(("message", "usage", "input_tokens"))).forward_fill().alias("_x_stream_input"),
        )
    else:
        lf = lf.with_columns(pl.lit(None, pl.String).alias("_x_stream_id"),
                             pl.lit(None, pl.String).alias("_x_stream_model"),
                             pl.lit(None, pl.Int64).alias("_x_stream_input"))
    return with_steps(lf, get, ROOTS)


def with_steps(lf: pl.LazyFrame, get, roots: tuple[tuple[str, ...], ...]) -> pl.LazyFrame:
    """One row per step of a Message's `usage.iterations` (the Message at any of `roots`), its counts
    and model in `_x_it_*` columns (which a mapping's count fields name first), the record's first
    row marked `_rec` 1. A Message without iterations keeps its single row. (Also a Message Batches
    result's message: anthropic_batch.)"""
    its = pl.coalesce([get((*r, "usage", "iterations")) for r in roots])
    lf = lf.with_columns(its.alias("_x_it"))
    if lf.collect_schema()["_x_it"] == pl.String:  # robust path: the list arrives as JSON text
        lf = lf.with_columns(pl.col("_x_it").str.json_decode(AS_TEXT))
    n = pl.col("_x_it").list.len().fill_null(0)
    # One row per iteration (one for a record without), each picking its iteration by index: a
    # record without iterations keeps its single row.
    lf = lf.with_columns(pl.int_ranges(0, pl.max_horizontal(n, 1)).alias("_x_idx")).explode("_x_idx")
    lf = lf.with_columns(pl.col("_x_it").list.get(pl.col("_x_idx"), null_on_oob=True))
    it, has = pl.col("_x_it"), pl.col("_x_it").is_not_null()

    def count(*names: str) -> pl.Expr:
        e = it
        for name in names:
            e = e.struct.field(name)
        return pl.when(has).then(e.fill_null("0"))

    return lf.with_columns(
        (pl.col("_x_idx") == 0).cast(pl.Int64).alias("_rec"),
        pl.when(has).then(it.struct.field("model")).alias("_x_it_model"),
        count("input_tokens").alias("_x_it_input_tokens"),
        count("output_tokens").alias("_x_it_output_tokens"),
        count("cache_read_input_tokens").alias("_x_it_cache_read_tokens"),
        count("cache_creation_input_tokens").alias("_x_it_cache_write_tokens"),
        count("cache_creation", "ephemeral_5m_input_tokens").alias("_x_it_cache_write_5m_tokens"),
        count("cache_creation", "ephemeral_1h_input_tokens").alias("_x_it_cache_write_1h_tokens"),
    )


def steps_finished(lf: pl.LazyFrame) -> pl.LazyFrame:
    """A Message's steps after the first (with_steps) as parts of its request: no request of their
    own, and an id of their own so that dedupe never takes one for a copy of the first."""
    extra = pl.col("_x_idx") > 0
    return lf.with_columns(
        pl.when(extra).then(0).otherwise(pl.col("requests")).alias("requests"),
        pl.when(extra).then(pl.format("{}#{}", pl.col("request_id"), pl.col("_x_idx")))
        .otherwise(pl.col("request_id")).alias("request_id"),
    )


def steps_read_as_text(roots: tuple[tuple[str, ...], ...]) -> dict:
    """The fast path's reading of each root's `usage.iterations`: counts as text (see AS_TEXT)."""
    return {(*r, "usage", "iterations"): AS_TEXT for r in roots}


def _finish(lf: pl.LazyFrame, src, ctx) -> pl.LazyFrame:
    lf = steps_finished(lf)
    if _is_stream(src):
        # A message whose final usage lists its iterations bills those: its message_start's counts are
        # top-level ones (which leave the compaction out), not a step. Then only events with iterations
        # give its counts, and they outrank (`_rank`) the events without when the copies are merged.
        # Only valid events give counts: a quarantined event's (a delta's 5e12 output tokens, or the steps
        # of an event with one bad step) were taken up by its valid message_start, and priced.
        has, ok = pl.col("_x_it").is_not_null(), pl.col("_ok")
        stepped = (has & ok).any().over("request_id")
        lf = lf.with_columns(
            # (a message with no valid event keeps its events' own counts: they are never priced)
            *[pl.coalesce(pl.when(ok & (has | ~stepped)).then(pl.col(c)).max().over("request_id"), pl.col(c)).alias(c)
              for c in COUNT_COLUMNS],
            pl.when(stepped & ~has).then(pl.lit(1, pl.Int8)).otherwise(pl.lit(0, pl.Int8)).alias("_rank"),
        )
    return lf


DIALECT = mapped.dialect_from_mapping(Path(__file__).with_suffix(".toml"), prepare=_prepare, finish=_finish,
                      several_rows=True, repeats=_is_stream, line_local=lambda src: not _is_stream(src), reads={("type",): pl.String(), **steps_read_as_text(ROOTS)})

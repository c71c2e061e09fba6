"""AWS Bedrock batch inference output (`*.jsonl.out`): the mapping is data (bedrock_batch.toml).

A failed record carries `error` instead of `modelOutput`; it is counted as not billable. The
module only says which records those are (a path's presence is not something the mapping states)."""

from __future__ import annotations

from pathlib import Path

import polars as pl

from ..sources import LINE, SourceFile
from . import _standin as mapped


def _prepare(lf: pl.LazyFrame, src: SourceFile, ctx) -> pl.LazyFrame:
    failed = pl.col(LINE).str.json_path_match("$.error").is_not_null()
    return lf.with_columns(pl.when(failed).then(pl.lit("error")).otherwise(pl.lit("ok")).alias("@status"))


DIALECT = mapped.load(Path(__file__).with_suffix(".toml"), prepare=_prepare)

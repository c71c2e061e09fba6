"""AWS Bedrock batch inference output (`*.jsonl.out`): the mapping is data (bedrock_batch.toml).

A failed record carries `error: {errorCode, errorMessage}` instead of `modelOutput`; it is counted as
not billable. A mapping's `not_billable` states values, not presence, so this module says which."""

from __future__ import annotations

from pathlib import Path

import polars as pl

from ..sources import SourceFile
from . import mapped

_ERROR = (("error", "errorCode"), ("error", "errorMessage"))


NOT_BILLABLE = "batch record failed (error instead of modelOutput)"


def _prepare(lf: pl.LazyFrame, src: SourceFile, ctx, get) -> pl.LazyFrame:
    return lf.with_columns(pl.any_horizontal([get(p).is_not_null() for p in _ERROR]).alias("_x_failed"))


def _finish(lf: pl.LazyFrame, src: SourceFile, ctx) -> pl.LazyFrame:
    return lf.with_columns(pl.when(pl.col("_x_failed")).then(pl.lit(NOT_BILLABLE)).otherwise(pl.col("_nb")).alias("_nb"))


DIALECT = mapped.dialect_from_mapping(Path(__file__).with_suffix(".toml"), prepare=_prepare, finish=_finish,
                      reads={p: pl.String() for p in _ERROR})

"""Duplicate request ids: counted once, keeping the row with the most tokens.

Ids are compared as two 64-bit hashes with different seeds: fixed width, so the tables stay small,
and a false match needs both hashes to collide (about 2^-128 for a pair of ids).

The work is split so that no step holds every row:
1. `candidates`: one light pass hashes every id (no parsing or validation of other fields) and keeps
   the ids seen more than once: a small table.
2. `mark`: the main pass tags the rows of those ids with their own row key, so that the streaming
   aggregation keeps each of them as a group of one (a few percent of rows at most).
3. `resolve`: in memory, among the valid rows of each duplicated id, the one with the most tokens wins
   (a streamed response logged early and again complete), ties to the first file and line; the others
   become duplicates. Then the groups are summed again without the row keys.
"""

from __future__ import annotations

import polars as pl

from .schema import COUNT_COLUMNS

H1, H2, KEY = "_h1", "_h2", "_dupkey"
SEED1, SEED2 = 0x5EED_0001, 0x5EED_0002


def _hash(seed: int) -> pl.Expr:
    return pl.col("request_id").hash(seed)


def row_key() -> pl.Expr:
    """A row's identity within a run: its file's position and its line/record number."""
    return pl.col("_file").cast(pl.Int64) * (1 << 40) + pl.col("source_row")


def candidates(lf: pl.LazyFrame) -> pl.Series:
    """First hashes of the request ids that occur more than once. One 64-bit hash suffices here: a
    collision only makes a few more rows candidates; `resolve` compares both hashes."""
    return (
        lf.filter(pl.col("request_id").is_not_null())
        .group_by(_hash(SEED1).alias(H1))
        .agg(pl.len().alias("_n"))
        .filter(pl.col("_n") > 1)
        .collect(engine="streaming")[H1]
    )


def mark(lf: pl.LazyFrame, cands: pl.Series) -> pl.LazyFrame:
    """Rows of duplicated ids get their row key and both hashes as extra group keys; others nulls."""
    is_cand = _hash(SEED1).is_in(cands.implode()) & pl.col("request_id").is_not_null()
    return lf.with_columns(is_cand.alias("_cand")).with_columns(
        pl.when(pl.col("_cand")).then(row_key()).alias(KEY),
        pl.when(pl.col("_cand")).then(_hash(SEED1)).alias(H1),
        pl.when(pl.col("_cand")).then(_hash(SEED2)).alias(H2),
    ).drop("_cand")


def resolve(agg: pl.DataFrame, status: str, invalid: int, duplicate: int) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(aggregate with losers marked `duplicate`, the losers' row keys). Rows with status `invalid`
    (quarantined) take no part: a broken copy never displaces a good one."""
    if KEY not in agg.columns:
        return agg, pl.DataFrame({KEY: []}, schema={KEY: pl.Int64})
    cand = agg.filter(pl.col(KEY).is_not_null() & (pl.col(status) != invalid))
    tokens = pl.sum_horizontal(*[pl.col(c) for c in COUNT_COLUMNS])
    winners = (
        cand.with_columns(tokens.alias("_tok"))
        .sort(["_tok", KEY], descending=[True, False])
        .group_by(H1, H2, maintain_order=True)
        .first()
        .select(KEY)
    )
    losers = cand.select(KEY).join(winners, on=KEY, how="anti")
    is_loser = pl.col(KEY).is_in(losers[KEY].implode())
    marked = agg.with_columns(pl.when(is_loser).then(pl.lit(duplicate, agg.schema[status])).otherwise(pl.col(status))
                              .alias(status))
    return marked, losers


def regroup(agg: pl.DataFrame, measures: list[str]) -> pl.DataFrame:
    """Sum the groups again: without the per-row keys of duplicated ids, and merging groups whose
    labels became equal when normalised."""
    agg = agg.drop([c for c in (KEY, H1, H2) if c in agg.columns])
    keys = [c for c in agg.columns if c not in measures]
    return agg.group_by(keys, maintain_order=True).agg([pl.col(m).sum() for m in measures])

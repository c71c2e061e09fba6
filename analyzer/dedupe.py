"""Duplicate request ids: counted once, keeping the row with the most tokens.

Ids are compared as two 64-bit hashes with different seeds: fixed width, so the tables stay small,
and a false match needs both hashes to collide (about 2^-128 for a pair of ids).

The work is split so that no step holds every row:
1. `candidates`: one light pass hashes every id (no parsing or validation of other fields) and keeps
   the ids seen more than once: a small table. Very large inputs take several passes, by hash range.
2. The main pass aggregates every row as if there were no duplicates.
3. `rows_of`: a second pass reads only the rows of candidate ids (the filter needs only the id, so the
   rest of each row is parsed for a few percent of rows). Among the valid rows of each duplicated id,
   the one with the most tokens wins (a streamed response logged early and again complete), ties to
   the first file and line; `corrections` then moves each loser's counts from its group to the
   duplicates: exact, because the aggregate is a sum.
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


# Hashes sorted per pass: 8 bytes a row, so a pass over 32 million ids holds 256 MiB.
IDS_PER_PASS = 32_000_000


def candidates(lf: pl.LazyFrame, expected_rows: int = 0) -> pl.Series:
    """First hashes of the request ids that occur more than once. One 64-bit hash suffices here: a
    collision only makes a few more rows candidates; `resolve` compares both hashes.

    Sorting the fixed-width hashes and comparing neighbours is twice as fast as a hash group-by and
    needs only the hashes; inputs larger than IDS_PER_PASS rows are split by hash into several passes."""
    passes = max(1, -(-expected_rows // IDS_PER_PASS))
    found = []
    for part in range(passes):
        ids = lf.filter(pl.col("request_id").is_not_null()).select(_hash(SEED1).alias(H1))
        if passes > 1:
            ids = ids.filter(pl.col(H1) % passes == part)
        h = ids.collect(engine="streaming")[H1].sort()
        found.append(h.filter(h == h.shift(1)).unique())
    return pl.concat(found) if found else pl.Series(H1, [], dtype=pl.UInt64)


def rows_of(lf: pl.LazyFrame, cands: pl.Series, compact: list[pl.Expr]) -> pl.LazyFrame:
    """The rows of duplicated ids (a few percent), with their row key and both hashes. The filter
    reads only the id, so Polars applies it before parsing the rest of a Parquet row. `compact` are
    expressions that rewrite the kept string columns: a filtered string still points into the
    buffer of the whole chunk it was read with, and would hold every chunk in memory."""
    h1 = _hash(SEED1)
    return lf.filter(pl.col("request_id").is_not_null() & h1.is_in(cands.implode())).with_columns(
        row_key().alias(KEY), h1.alias(H1), _hash(SEED2).alias(H2), *compact)


def corrections(rows: pl.DataFrame, status: str, invalid: tuple[int, ...], duplicate: pl.Expr, measures: list[str]
                ) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Rows that, added to the aggregate, turn each losing copy into a duplicate: the loser's counts
    subtracted under its status and added under the `duplicate` status (an expression: a repeat or a
    duplicate, by the loser's file). Exact, since the aggregate is a sum.
    Returns (corrections, the losers' row keys). Rows with an `invalid` status (quarantined, not
    billable) take no part: a broken copy never displaces a good one. A `_rank` column, when a format
    gives one, decides before tokens (Claude Code: a sidechain replay never beats its parent)."""
    valid = rows.filter(~pl.col(status).is_in(list(invalid)))
    tokens = pl.sum_horizontal(*[pl.col(c) for c in COUNT_COLUMNS])
    rank = ["_rank"] if "_rank" in rows.columns else []
    winners = (
        valid.with_columns(tokens.alias("_tok"))
        .sort([*rank, "_tok", KEY], descending=[*[False] * len(rank), True, False])
        .group_by(H1, H2, maintain_order=True)
        .first()
        .select(KEY)
    )
    losers = valid.join(winners, on=KEY, how="anti")
    minus = losers.with_columns([(-pl.col(m)).alias(m) for m in measures])  # measures are signed here
    plus = losers.with_columns(duplicate.cast(rows.schema[status]).alias(status))
    return pl.concat([minus, plus]).drop(KEY, H1, H2, *rank), losers.select(KEY)

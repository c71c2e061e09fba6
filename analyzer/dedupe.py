"""Duplicate request ids: counted once, keeping the row with the most tokens.

Ids are compared as two 64-bit hashes with different seeds: fixed width, so the tables stay small,
and a false match needs both hashes to collide (about 2^-128 for a pair of ids).

The work is split so that no step holds every row:
1. `candidates`: one light pass hashes every id (no parsing or validation of other fields) and keeps
   the ids seen more than once: a small table. Very large inputs take several passes, by hash range.
2. The main pass aggregates every row as if there were no duplicates.
3. `rows_of` + `losers`: a second pass reads only the rows of candidate ids, slim (row key, hashes,
   rank, tokens), and picks each id's winner; the losers (row key and id hashes) are a small table.
4. A third pass sums only the losing rows on the report's keys; those sums move from their status to
   duplicates (or repeats): exact, because the aggregate is a sum. No step holds whole rows, even
   when most rows repeat (a Claude Code transcript writes most responses two or three times).
"""

from __future__ import annotations

import polars as pl

H1, H2, KEY, TOKENS = "_h1", "_h2", "_dupkey", "_tok"
# A row's record's id (its first row's hashes), in formats that read a record as several rows (`_rec`).
P1, P2 = "_p1", "_p2"
SEED1, SEED2 = 0x5EED_0001, 0x5EED_0002


def hashes() -> list[pl.Expr]:
    """A request id as two 64-bit hashes (null without an id): a run that keeps these needs no id strings."""
    rid = pl.col("request_id")
    # a null hashes to a value like any other: rows without an id must keep a null, not share a hash
    return [pl.when(rid.is_not_null()).then(rid.hash(seed)).alias(h) for seed, h in ((SEED1, H1), (SEED2, H2))]


def _ids(lf: pl.LazyFrame) -> tuple[pl.Expr, pl.Expr, pl.Expr]:
    """(has an id, first hash, second hash), from the hashes when the rows keep them."""
    if H1 in lf.collect_schema().names():
        return pl.col(H1).is_not_null(), pl.col(H1), pl.col(H2)
    rid = pl.col("request_id")
    return rid.is_not_null(), rid.hash(SEED1), rid.hash(SEED2)


def row_key() -> pl.Expr:
    """A record's identity within a run: its file's position and its line/record number. Not a row's:
    a record may stand for several rows (the iterations of a Messages response, each with an id of its
    own), so a losing copy is named by its record *and* its id (see `lost`)."""
    return pl.col("_file").cast(pl.Int64) * (1 << 40) + pl.col("source_row")


LOSER = (KEY, H1, H2)


def lost(lf: pl.LazyFrame, losers: pl.DataFrame) -> pl.Expr:
    """Whether a row is a losing copy. Element-wise (it streams and keeps the row order).

    A record's first row (`_rec` 1; every row, in formats that write one row per record) is named by
    its record alone. A record's later rows (`_rec` 0: the later iterations of a Messages response,
    each with an id of its own) are named by record *and* id: a streamed response's final event is a
    copy of its message_start (a loser) and also holds its later iterations, which are no copies of
    anything. That costs hashing ids, so only when some later row lost."""
    first = row_key().is_in(losers[KEY].implode())
    if "_rec" not in losers.columns:
        return first
    extra = losers.filter(pl.col("_rec") == 0)
    out = (pl.col("_rec") != 0) & row_key().is_in(losers.filter(pl.col("_rec") != 0)[KEY].implode())
    if extra.height:
        _, h1, h2 = _ids(lf)
        named = extra.select(pl.struct(*LOSER)).to_series().implode()
        out = out | ((pl.col("_rec") == 0) & pl.struct(row_key().alias(KEY), h1.alias(H1), h2.alias(H2)).is_in(named))
    return out


# Hashes sorted per pass: 8 bytes a row, so a pass over 32 million ids holds 256 MiB.
IDS_PER_PASS = 32_000_000
# Rows already decoded into a temporary Parquet file (spooled JSON, see pipeline.spool): a pass
# reads only the hash column, so more, smaller passes cost little, and the memory this step takes
# (the hashes, sorted, compared with their neighbours: ~25 bytes an id) stays flat however large
# the input (JSONL with dedupe grew by 280 MiB from 10 to 20 million rows).
SPOOLED_IDS_PER_PASS = 4_000_000


def candidates(lf: pl.LazyFrame, expected_rows: int = 0, ids_per_pass: int = IDS_PER_PASS) -> pl.Series:
    """First hashes of the request ids that occur more than once. One 64-bit hash suffices here: a
    collision only makes a few more rows candidates; `resolve` compares both hashes.

    Sorting the fixed-width hashes and comparing neighbours is twice as fast as a hash group-by and
    needs only the hashes; inputs larger than `ids_per_pass` rows are split by hash into several passes."""
    passes = max(1, -(-expected_rows // ids_per_pass))
    found = []
    has_id, h1, _ = _ids(lf)
    for part in range(passes):
        ids = lf.filter(has_id).select(h1.alias(H1))
        if passes > 1:
            ids = ids.filter(pl.col(H1) % passes == part)
        h = ids.collect(engine="streaming")[H1].sort()
        found.append(h.filter(h == h.shift(1)).unique())
    return pl.concat(found) if found else pl.Series(H1, [], dtype=pl.UInt64)


def parents(lf: pl.LazyFrame) -> tuple[pl.Expr, pl.Expr, pl.Expr]:
    """(has an id, first hash, second hash) of each row's record: its first row's (`_rec` not 0). A
    hook explodes a record where it read it, so its rows are consecutive, first row first (see
    mapped.one_verdict_per_record): a forward fill, a linear scan. Element-wise for formats of one
    row per record. (A slice of a file's rows starting inside a record would be wrong: never done.)"""
    has_id, h1, h2 = _ids(lf)
    if "_rec" not in lf.collect_schema().names():
        return has_id, h1, h2
    first = pl.col("_rec") != 0
    has = pl.when(first).then(has_id).forward_fill()
    # (a record without an id: its later rows take no hash from the record before it)
    return has, *(pl.when(has).then(pl.when(first).then(h).forward_fill()) for h in (h1, h2))


def rows_of(lf: pl.LazyFrame, cands: pl.Series) -> pl.LazyFrame:
    """The rows of the records of duplicated ids (for a log of transcripts, most rows), with their row
    key, both hashes, and their record's (P1, P2: see `parents`): copies of a response compete as
    records. For formats of one row per record the filter reads only the id, so Polars applies it
    before parsing the rest of a Parquet row."""
    _, h1, h2 = _ids(lf)
    has, p1, p2 = parents(lf)
    if "_rec" not in lf.collect_schema().names():
        return lf.filter(has & h1.is_in(cands.implode())).with_columns(row_key().alias(KEY), h1.alias(H1), h2.alias(H2))
    # (the record's id is found before the filter: an order-dependent column the filter cannot pass)
    return lf.with_columns(has.alias("_has_p"), p1.alias(P1), p2.alias(P2)).filter(
        pl.col("_has_p") & pl.col(P1).is_in(cands.implode())).with_columns(
        row_key().alias(KEY), h1.alias(H1), h2.alias(H2)).drop("_has_p")


def losers(rows: pl.DataFrame) -> pl.DataFrame:
    """The row keys of the copies that lose: per id (both hashes), the copy with the lowest `_rank`
    (when the format gives one; Claude Code: a sidechain replay never beats its parent), then the most
    tokens (a streamed response logged early and again complete), then the first file and line wins.
    `rows` are slim (key, hashes, rank, tokens): a few dozen bytes each, however wide the logs.

    A record of several rows (`_rec`: a response's steps, a run's models) competes whole, under its
    first row's id (P1, P2), with the tokens of all its rows, and loses whole: a copy logged before
    its advisor step (a stream's earlier message_delta) is the lesser copy, and the fuller one is
    billed, every step once. (Row by row, the copies' first rows tied, the first read won, and the
    fuller copy's later step, a copy of nothing, stayed beside it: counted in no record.) A losing
    record's rows are all named (its later rows by key and their own id: see `lost`).

    One sort puts each id's copies together, best first; every copy after the first is a loser. (A
    group-by for the winners and an anti-join back took 11.6 s and 1.5 GiB for 10M rows.)"""
    rank = ["_rank"] if "_rank" in rows.columns else []
    rec = ["_rec"] if "_rec" in rows.columns else []  # which row of its record (see `lost`)
    if P1 not in rows.columns:
        ordered = rows.select(KEY, H1, H2, *rec).sort(
            by=[rows[H1], rows[H2], *[rows[r] for r in rank], rows[TOKENS], rows[KEY]],
            descending=[False, False, *[False] * len(rank), True, False])
        again = (pl.col(H1) == pl.col(H1).shift(1)) & (pl.col(H2) == pl.col(H2).shift(1))
        return ordered.filter(again.fill_null(False)).select(*LOSER, *rec)
    # (A record's tokens: its row key *and* id. A JSON document's records, CloudWatch's events array,
    # share one line, so one row key: summed by key alone, each weighed the whole document.)
    ordered = rows.with_columns(pl.col(TOKENS).sum().over(KEY, P1, P2)).sort(
        [P1, P2, *rank, TOKENS, KEY], descending=[False, False, *[False] * len(rank), True, False])
    new = ((pl.col(P1) != pl.col(P1).shift(1)) | (pl.col(P2) != pl.col(P2).shift(1))).fill_null(True)
    winner = pl.when(new).then(pl.col(KEY)).forward_fill()  # each id's best record
    return ordered.filter(pl.col(KEY) != winner).select(*LOSER, *rec)

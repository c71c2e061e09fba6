"""The robust retry of a JSON Lines file, paid for by its bad lines only.

A fast pass fails on one malformed line (a torn last line of a live log, a count written `1.5`), and
the run is read again robustly (pipeline._with_retry): every field as text, per line. For a whole file
that cost 7-37x the clean file's CPU. Here a file is read on its retry in pieces of whole lines
(sources.PIECE_BYTES): each piece by the dialect's own fast plan, and only when that fails, in halves,
and so on down to the lines that fail, which alone are read by the dialect's robust plan. Both plans
are the dialect's, built once over a stand-in for the file (sources.SourceFile.piece) whose scans read
the lines of the moment; rows come out in the file's order, with their own line numbers, in the robust
plan's schema. (The search over halves runs in Python over ranges of lines, never over rows; a piece
that keeps failing is read robustly whole: see _BUDGET.)

Which lines each plan reads does not change a verdict: a line the fast plan reads is one a clean file
would be read with (and its record text, `_raw`, is the line, as on the robust path); a line it cannot
read is the robust path's, as before. Only formats whose rows each depend on their own line alone can
be read so (Dialect.line_local): a stream whose events carry values forward (Messages streams) is read
robustly whole, as before. A CSV file of such a format is not read by the fast plan: its retry reads
by parts only the records its quarantine pass needs (needed_records).
"""

from __future__ import annotations

import dataclasses
import threading

import polars as pl
from polars.io.plugins import register_io_source

from .dialects import Context, Dialect
from .sources import _RUN, BAD, BOM, LINE, PIECE_BYTES, SourceFile, _blocks, _line_cut, _piece_lines, _pieces, _serve

# How a fast plan fails on a line (as pipeline.FAST_PATH_FAILURES).
_FAILURES = (pl.exceptions.ComputeError, pl.exceptions.ShapeError)
# Fast attempts a piece may make (the first, then each half tried): a torn line among a piece's ~40,000
# takes ~32 (each decoding half the last range: twice the piece's decode in all). A piece where
# failures are everywhere (every count a float) stops there and is read robustly whole, and the next
# pieces of such a file try once each before they are (_AFTER_SPENT).
_BUDGET, _AFTER_SPENT = 64, 2
# Bytes of whole lines read at a time (the bounded readers'; tests make it small).
PIECE = PIECE_BYTES
_BLANK = r"^[ \t\r]*$"
_FAST = "_x_fast"  # a piece's line the fast plan may read (_Piece.accept, and not bad bytes)


class _Piece:
    """The lines a file's scans read now: its stand-in's (SourceFile.piece) scan_lines and
    scan_ndjson read `lines` (`_line`, `_bad`, `_row`: the line's number in the file)."""

    def __init__(self) -> None:
        self.lines: pl.DataFrame | None = None
        self.schema: dict | None = None  # what scan_ndjson decodes (set by the plan that asks)
        self.decoded: pl.DataFrame | None = None
        # Lines the fast plan may read (set by the dialect; all by default): where the robust plan
        # reads a line alike, value for value (canonical: a flat line; see canonical.FLAT_LINE).
        self.accept: pl.Expr = pl.lit(True)
        self.robust_lines = 0  # lines read by the robust plan (for tests: how few)
        # Held while a plan reads `lines`: two readings of the file at once (collect_all over two plans
        # on one run's rows; Polars calls each from its own thread) set them in turn, and one read the
        # other's lines (rows lost or read twice) or none (a traceback). Never held across a yield.
        self.lock = threading.Lock()
        self._searched = None

    def searched(self, search):
        """The search for late keys, once for both plans (it reads the whole file)."""
        if self._searched is None:
            self._searched = search()
        return self._searched

    def scan_lines(self) -> pl.LazyFrame:
        return _current({LINE: pl.String, BAD: pl.Boolean, "_row": pl.get_index_type()}, lambda: self.lines)

    def scan_ndjson(self, schema: dict) -> pl.LazyFrame:
        self.schema = dict(schema)
        return _current({**schema, "_row": pl.get_index_type(), LINE: pl.String}, lambda: self.decoded)

    def decode(self, text: bytes | None = None) -> None:
        """`lines` decoded by Polars' NDJSON reader (as the fast scan_ndjson): raises as it does
        on a malformed line, or on lines that are not one record each. `text`: the lines' own bytes,
        when known (a whole piece)."""
        if self.schema is None:
            return
        records = self.lines.filter(~pl.col(LINE).str.contains(_BLANK))
        if text is None:
            text = self.lines.select(pl.col(LINE).str.join("\n")).item().encode()
        frame = pl.read_ndjson(text, schema=self.schema) if records.height else pl.DataFrame(schema=self.schema)
        if frame.height != records.height:  # (`{..}{..}`: never yet, but a shifted line number is worse)
            raise pl.exceptions.ShapeError("records and lines differ")
        self.decoded = frame.with_columns(records["_row"], records[LINE])


def _current(schema: dict, frame) -> pl.LazyFrame:
    def batches(with_columns, predicate, n_rows, _batch_size):
        out = frame()
        if predicate is not None:
            out = out.filter(predicate)
        out = out.select(list(schema) if with_columns is None else with_columns)
        yield out if n_rows is None else out.head(n_rows)
    return register_io_source(batches, schema=schema)


def line_local(d: Dialect, src: SourceFile) -> bool:
    """May this file's retry be read by parts (see the module's doc)?"""
    local = d.line_local(src) if callable(d.line_local) else d.line_local
    return local and src.container in ("jsonl", "csv") and not src.members


def read_by_parts(d: Dialect, src: SourceFile, ctx: Context) -> pl.LazyFrame | None:
    """The file's robust reading (d.normalize(src, robust=True)), each part read by the fast plan
    where it can be; None where the two plans' rows are not alike (then read robustly whole)."""
    if src.container == "csv":
        return needed_records(d, src, ctx)
    piece = _Piece()
    part = dataclasses.replace(src, piece=piece)
    said = dataclasses.replace(ctx, notes=[])  # (what the plans note about the file: said once)
    robust = d.normalize(part, robust=True, ctx=said)
    fast = d.normalize(part, robust=False, ctx=dataclasses.replace(ctx, notes=[]))
    schema = dict(robust.collect_schema())
    if set(fast.collect_schema().names()) != set(schema):
        return None
    ctx.notes.extend(said.notes)
    run = _RUN.get()
    wanted = None if ctx.lines is None else ctx.lines.get(src.display, pl.Series([], dtype=pl.get_index_type()))

    def frames(asked: set[str] | None):
        names = [c for c in schema if asked is None or c in asked]
        fast_q = fast.select(names).cast({c: schema[c] for c in names})
        robust_q = robust.select(names)
        row, budget = 1, _BUDGET
        for chunk in _pieces(_blocks(src.path, src.compression, run, PIECE), _line_cut):
            lines = _piece_lines(chunk)
            lines = lines.with_columns(
                pl.int_range(row, row + lines.height, dtype=pl.get_index_type()).alias("_row"),
                pl.when(pl.col(LINE).str.starts_with(BOM)).then(pl.col(LINE).str.strip_prefix(BOM))
                .otherwise(pl.col(LINE)).alias(LINE))
            row += lines.height
            # (the piece's bytes are its lines' text unless a line lost a BOM or bytes not UTF-8)
            chunk = None if wanted is not None or BOM.encode() in chunk or lines[BAD].any() else chunk
            if wanted is not None:
                lines = lines.filter(pl.col("_row").is_in(wanted.cast(pl.get_index_type()).implode()))
            # (a blank line is no record on either path: it never splits a range)
            lines = lines.with_columns((~pl.col(BAD) & (piece.accept | pl.col(LINE).str.contains(_BLANK)))
                                       .fill_null(False).alias(_FAST))
            left = [budget]
            yield from _ranges(lines, 0, lines.height, piece, fast_q, robust_q, left, chunk)
            budget = _BUDGET if left[0] > 0 else _AFTER_SPENT

    return _serve(schema, frames, "llm-cost lines by parts", src.path)


def _ranges(lines: pl.DataFrame, lo: int, hi: int, piece: _Piece, fast: pl.LazyFrame, robust: pl.LazyFrame,
            left: list[int], text: bytes | None = None):
    """Rows of lines lo..hi: by the fast plan, else of each half, else (one line, or the attempts
    spent) by the robust plan. In the lines' order. (`text`: the bytes of lines lo..hi, if known.)"""
    if hi <= lo:
        return
    part = lines.slice(lo, hi - lo)
    if left[0] > 0 and part[_FAST].all():
        left[0] -= 1
        with piece.lock:
            try:
                piece.lines = part.drop(_FAST)
                piece.decode(text)
                out = fast.collect()
            except _FAILURES:
                out = None
        if out is not None:
            yield out
            return
    if hi - lo > 1 and left[0] > 0 and part[_FAST].any():
        mid = (lo + hi) // 2
        yield from _ranges(lines, lo, mid, piece, fast, robust, left)
        yield from _ranges(lines, mid, hi, piece, fast, robust, left)
        return
    with piece.lock:
        piece.lines, piece.decoded = part.drop(_FAST), None
        piece.robust_lines += part.height
        out = robust.collect()
    yield out


def needed_records(d: Dialect, src: SourceFile, ctx: Context) -> pl.LazyFrame | None:
    """A CSV file's robust reading, of the records the run needs only (ctx.lines: the quarantine
    pass's), or None: all of them (the robust reading as it is).

    CSV is not read by the fast plan by parts: its robust plan is the same reader with the counts
    as text, each parsed from it (1M rows: 0.75 CPU s against the fast plan's 0.65 over the same
    reader). What made a retry cost ~3x the clean file was reading it whole four times (the
    dedupe hashes, the two plans of the aggregate, each over its own reading of a Python source,
    and the quarantine pass, every record's `_raw` and `_reason` spelled out). The retry's rows are
    now decoded once (pipeline.spool), and the quarantine pass hands only the records the spooled
    rows show quarantined to the plan (SourceFile.rows): the others are counted, by one column. The
    records, their pieces and numbers are the robust reader's own (sources.bounded_csv): a record
    is where it is in the whole reading, whatever the file's quoting."""
    if ctx.lines is None:
        return None
    wanted = ctx.lines.get(src.display, pl.Series([], dtype=pl.get_index_type()))
    return d.normalize(dataclasses.replace(src, rows=wanted), robust=True, ctx=ctx)

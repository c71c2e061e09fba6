"""Find the files behind the user's paths and open each as a lazy scan.

Paths may be files, directories (walked recursively), globs or `-` (stdin). The container (CSV,
JSONL/NDJSON, JSON array, Parquet, or raw server-sent events) comes from the extension, or from the
first bytes when the extension says nothing; `.gz` and `.zst` are read by Polars' scanners directly.

Text containers are scanned with every field as a string: counts and timestamps are validated by the
dialect, so that one bad value quarantines one row instead of failing the whole file.
"""

from __future__ import annotations

import atexit
import codecs
import collections
import contextlib
import contextvars
import dataclasses
import errno
import fnmatch
import functools
import glob  # (escape: Polars' NDJSON scanner expands patterns in a path)
import gzip
import io
import json
import mmap
import os
import re
import secrets
import shutil
import stat
import sys
import tempfile
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import polars as pl
from polars.io.plugins import register_io_source

from . import descriptors, fingerprint, remote
from .errors import SourceError
from .held import Held, HeldParquet, difference, holder, holding_parquet, stamp

CONTAINERS = ("csv", "jsonl", "json", "parquet", "sse")
CONTAINER_NOTE = ("files: CSV/TSV, JSON Lines, JSON (an array or one object), Parquet, and raw server-sent events "
                  "(`event:`/`data:` lines saved by curl or a proxy, read as their JSON lines); .gz/.zst")
_EXT = {
    ".csv": "csv",
    ".tsv": "csv",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "json",
    ".parquet": "parquet",
    ".pq": "parquet",
    ".sse": "sse",
}
_COMPRESSION = {".gz": "gzip", ".zst": "zstd", ".zstd": "zstd"}
# Column holding one raw JSON line when a JSON container is scanned as text.
LINE = "_line"
SAMPLE_RECORDS = 50


@dataclass
class SourceFile:
    """One input file: where it is, what container it is, and a peek at its first records."""

    path: str
    container: str
    compression: str | None = None
    index: int = 0  # position among the run's files; part of a row's stable identity
    columns: list[str] = field(default_factory=list)  # CSV header / Parquet schema / JSON keys seen
    sample: list[dict] = field(default_factory=list)  # first records, decoded (for detection)
    display: str = ""  # the name shown to the user (the path, or <stdin>)
    record_bytes: int = 60  # average bytes per record in the first 64 KiB (for size estimates)
    # Files of the same format read in one scan with this one (a tree of thousands of small
    # transcripts: one plan, not thousands). Rows then carry their file in `_path`.
    members: tuple[str, ...] = ()
    member_indexes: tuple[int, ...] = ()  # their positions among the run's files
    sizes: tuple[int, ...] = ()  # bytes of each of `paths`, once asked (see file_sizes)
    empty: bool = False  # no bytes but spaces and newlines: nothing to read (not peeked at)
    # Set while a file is read part by part (see analyzer/line_retry.py): the lines its scans read
    # now, in place of the file's.
    piece: object | None = None
    # Parquet columns of bytes (BINARY without the UTF-8 annotation, as older Spark and Hive write
    # strings; at any depth, a struct's field too), checked to hold UTF-8 text and read as text (see
    # check_parquet): each column's name and the type it is cast to.
    binary: tuple[tuple[str, pl.DataType], ...] = ()
    # Where Polars reads a Parquet file: the file check_parquet read, open since (see CheckedParquet),
    # and what it was when checked (compared before each scan: see Held).
    checked: str | None = None
    held: object | None = None
    # A CSV file's only records to read (their `_row`s, a Series; see line_retry.needed_records): the
    # others are counted, never handed on. None: all.
    rows: pl.Series | None = None

    def __post_init__(self) -> None:
        self.display = self.display or remote.display(self.path)

    def expected_rows(self) -> int:
        """A cheap estimate of the number of records (exact for Parquet, from its metadata); used to
        size work that must fit in memory."""
        if self.container == "parquet":
            # (the file the check read, as scan_parquet: the file at the path may be another by now)
            return self.scan_parquet().select(pl.len()).collect().item()
        # Text: file size over the average record length of the first 64 KiB (decompressed), times
        # 8 for compressed files (a typical ratio for logs; an overestimate only costs an extra pass).
        size = sum(self.file_sizes()) * (8 if self.compression else 1)
        return size // max(self.record_bytes, 1)

    def file_sizes(self) -> tuple[int, ...]:
        """Bytes of each of `paths` (looked up once: a tree has thousands of files)."""
        if len(self.sizes) != 1 + len(self.members):
            self.sizes = tuple(os.path.getsize(p) for p in self.paths)
        return self.sizes

    @property
    def paths(self) -> list[str]:
        return [self.path, *self.members]

    def scan_csv(self, integers: tuple[str, ...] = ()) -> pl.LazyFrame:
        """CSV as a lazy frame of strings, with the line number of each record. `integers` are read
        as Int64 by the CSV reader itself (much faster than casting text), which fails on a value that
        is not an integer: callers then read the file again as strings (the robust path). With
        `rows`, only those records."""
        if self.rows is None and self.compression is None and _native(self.path):
            return _native_csv(self.path, integers)
        return bounded_csv(self.path, self.compression, integers, rows=self.rows)

    def scan_lines(self, exact_lines: bool = True, lossy: bool = True) -> pl.LazyFrame:
        """JSON Lines as one string column per line; blank lines keep their place so that
        `source_row` is the line number a user sees in an editor. `_bad`: the line holds bytes that
        are not UTF-8 (shown as U+FFFD; the dialects quarantine it). A file set (`members`) also has
        each line's file and line in it (`_path`, `_line_no`). (`exact_lines` and `lossy` are kept
        for callers: both paths read the same now.) A byte order mark before a line (a file's
        first, in practice) is not part of its record: `\ufeff{...}` was quarantined as unreadable."""
        if self.piece is not None:
            return self.piece.scan_lines()
        if self.members:
            lines = file_set_lines(self.paths)
        elif not lossy and self.compression is None and _native(self.path):
            lines = _native_lines(self.path)
        else:
            lines = bounded_lines(self.path, self.compression)
        # (`strip_prefix` alone writes every line anew, a BOM or not: 3.34 GiB of a Claude Code tree
        # copied once more. Behind `starts_with`, Polars leaves a batch without a BOM as it is.)
        line = pl.col(LINE)
        return lines.with_columns(pl.when(line.str.starts_with(BOM)).then(line.str.strip_prefix(BOM)).otherwise(line))

    def scan_ndjson(self, schema: dict, exact_lines: bool = True) -> pl.LazyFrame:
        """JSON Lines through Polars' native reader (fast; fails on a malformed line). `_row` is the
        record's line, as on the robust path (the reader skips blank lines: see _on_lines); without
        `exact_lines` (a report: no row's line is shown), the record's number, in the same order."""
        if self.piece is not None:
            return self.piece.scan_ndjson(schema)
        if self.compression is None and _native(self.path):
            # (it has no glob=False: a name holding `*`, `?` or `[` is escaped)
            lf = pl.scan_ndjson(glob.escape(self.path), schema=schema, row_index_name="_row", row_index_offset=1)
            return _on_lines(lf, _blank_records(self.path)) if exact_lines else lf
        return bounded_ndjson(self.path, self.compression, schema, exact_lines)

    def scan_parquet(self) -> pl.LazyFrame:
        # (By the columns sniffed, not the frame's schema: a frame asked for its schema no longer lets
        # a slice of `price` reach its scan; nor does the drop, made only when the file has one.)
        # (The file the check read, so that a file replaced since is not read unchecked: Polars'
        # reader panics on some damaged files; one written again since is not read: see Held.)
        if self.held is not None:
            self.held.verify()
        lf = self.held.scan() if self.held is not None else pl.scan_parquet(self.checked or self.path, glob=False)
        lf = _without_reserved(lf, self.columns)
        return lf.with_columns(pl.col(c).cast(text) for c, text in self.binary) if self.binary else lf


# Bytes of consecutive files read into one batch of lines (see file_set_lines).
FILE_SET_BATCH = 8 << 20


def file_set_lines(paths: list[str], batch_bytes: int = FILE_SET_BATCH) -> pl.LazyFrame:
    """The lines of many small files as one stream of large batches: `_line`, `_path`, `_row` (the
    line's number across the set, from 1) and `_line_no` (its line in its own file).

    Polars' scanners give each file its own batch, and every step of a plan then costs a little per
    batch: on a tree of 17,000 transcripts the per-file costs were most of the run. Here files are
    read in turn into one buffer per `batch_bytes`, split into lines by Polars in one call. (8 MiB:
    larger batches were no faster and held more in flight: 860 MiB at 16 MiB for 1M transcripts.)
    A line's file and its line in it are worked out only when the plan asks for them (a report
    needs neither; the quarantine file does), from each file's count of lines. A batch with bytes
    that are not UTF-8 is read again with them marked: `_bad` on their lines (see _marked)."""
    names = pl.Series("_path", paths, dtype=pl.String)
    schema = {LINE: pl.String, "_path": pl.String, "_row": pl.get_index_type(), "_line_no": pl.Int64,
              BAD: pl.Boolean}
    run = _RUN.get()

    def frames(asked: set[str] | None):
        asked = set(schema) if asked is None else asked
        where = "_path" in asked or "_line_no" in asked
        row = 1
        for first, text, ends in _file_batches(paths, batch_bytes, run):
            try:
                frame = pl.read_lines(text, name=LINE).with_columns(pl.lit(False).alias(BAD))  # (drops a `\r` before a newline)
            except pl.exceptions.ComputeError:  # bytes that are not UTF-8: their lines are marked
                fixed, mark = _marked(text.getvalue())
                frame = _unmark(pl.read_lines(fixed, name=LINE), mark, [LINE])
                del fixed
            n = frame.height
            frame = frame.with_columns(pl.int_range(row, row + n, dtype=pl.get_index_type()).alias("_row"))
            row += n
            if where:
                # Each file's lines are its newlines (every file ends with one here); counted on a
                # copy, on this path only.
                data = text.getvalue()
                per_file = pl.Series([data.count(b"\n", a, b) for a, b in zip([0, *ends], ends)], dtype=pl.Int64)
                del data  # (shared with the buffer, which would otherwise be copied to be filled again)
                file = pl.int_range(len(ends), eager=True, dtype=pl.Int64).repeat_by(per_file).explode(empty_as_null=False)
                starts = per_file.cum_sum() - per_file
                frame = frame.with_columns(
                    (file + first).alias("_path"),
                    (pl.int_range(n, eager=True, dtype=pl.Int64) - starts.gather(file) + 1).alias("_line_no"))
            if "_path" in asked:  # (before the predicate, which may compare file names)
                frame = frame.with_columns(names.gather(frame["_path"]))
            yield frame

    return _serve(schema, frames, "llm-cost file set", f"{len(paths):,} files")


def _file_batches(paths: list[str], batch_bytes: int, run: dict | None = None
                  ) -> Iterator[tuple[int, io.BytesIO, list[int]]]:
    """(index of the first file, the bytes of a run of consecutive files of about `batch_bytes`, the
    end of each file in them), the files read straight into one buffer, each ended by a newline if
    it lacks one so that lines never join across files.

    Polars splits one buffer into lines far faster than a list of one per file (each is a source
    of its own), and reading in place copies the bytes no more often than reading each file into
    its own `bytes` (1M transcripts: 5.82 -> 5.41 s, 9.9 -> 9.2 CPU s). A file is read as it was
    when opened (its size then): lines appended to it meanwhile are left for the next run. The
    buffer is the caller's until it asks for the next batch (see _batch_buffer)."""
    opened = _opened(paths, 0, missing_ok=False)
    first, buf = 0, None
    # Each file's fingerprint from the bytes read here, on the run's first reading of it (see
    # read_prints): taking it apart opened and read every file of a tree once more (1M transcripts:
    # 16,949 files, ~0.6 CPU s). Not where the plan runs in another process (`shipped`).
    prints = run.setdefault("prints", {}) if run is not None and not run.get("shipped") else None  # (prints_on_read)
    try:
        while first < len(paths):
            fds, sizes, stats, total = [], [], [], 0  # this batch's files (each opened ahead), their sizes
            try:
                for fd in opened:
                    fds.append(fd)
                    stats.append(_stat(fd, paths[first + len(sizes)]))
                    sizes.append(run_size(paths[first + len(sizes)], stats[-1].st_size, run))
                    total += sizes[-1] + 1  # (and a newline, at most)
                    if total >= batch_bytes:
                        break
                buf = _batch_buffer(buf, total)
                ends, end = [], 0
                with buf.getbuffer() as view:
                    for k, (fd, size) in enumerate(zip(fds, sizes)):
                        got = _read_into(fd, view[end:end + size], paths[first + k])
                        if got < size and run is not None:
                            # Shrunk between its fstat and its reading (copytruncate): the run's later
                            # passes read no more than this one counted, or the bytes written after
                            # the truncation, never counted, reached the quarantine file unchecked
                            # (the fingerprint below covers only the `got` bytes read).
                            run["size", paths[first + k]] = got
                        if prints is not None and paths[first + k] not in prints:
                            prints[paths[first + k]] = fingerprint.of_bytes_read(stats[k], view[end:end + got])
                        end += got
                        if got and view[end - 1] != 0x0A:
                            view[end] = 0x0A
                            end += 1
                        ends.append(end)
            finally:
                for fd in fds:
                    os.close(fd)
            buf.truncate(end)
            buf.seek(0)
            yield first, buf, ends
            first += len(fds)
    finally:
        opened.close()


def _batch_buffer(last: io.BytesIO | None, size: int) -> io.BytesIO:
    """A buffer of at least `size` bytes to read a batch into, filled in place: the last batch's
    once its lines are split, else a new one. Reusing it spares zeroing fresh memory for every
    batch and keeps freed buffers from piling up in the allocator (1M transcripts: 706 -> 469 MiB,
    5.35 -> 5.28 s). It is safe whatever the reader kept: BytesIO copies its bytes before a write
    while they are shared, and refuses a write while a view of them is held (then: a new buffer)."""
    if last is not None:
        with contextlib.suppress(BufferError):
            last.seek(size - 1)
            last.write(b"\0")
            return last
    buf = io.BytesIO()
    buf.seek(size - 1)
    buf.write(b"\0")  # sized once, then filled in place
    return buf


def _size(fd: int, path: str) -> int:
    """A file's size, which is all of it that is read: a file that does not know its size (a pipe,
    a device) would be read as empty, so it is refused."""
    return _stat(fd, path).st_size


def _stat(fd: int, path: str) -> os.stat_result:
    """The open file's `fstat`, refused unless it is a regular file (see _size)."""
    try:
        st = os.fstat(fd)
    except OSError as e:
        raise SourceError(f"{shown(path)}: cannot read ({e.strerror})") from None
    if not stat.S_ISREG(st.st_mode):
        raise SourceError(f"{shown(path)}: not a regular file")
    return st


def _read_into(fd: int, view: memoryview, path: str) -> int:
    """Read the file into `view` (its size when opened); the bytes read (fewer if it shrank)."""
    got = 0
    try:
        while got < len(view):
            n = os.readv(fd, [view[got:]])
            if n == 0:
                break
            got += n
    except OSError as e:
        raise SourceError(f"{shown(path)}: cannot read ({e.strerror})") from None
    return got


# ------------------------------------------------------------------------------------------------
# Bounded readers: every text file is read by these, in pieces of about PIECE_BYTES cut at a line
# (CSV: a record) boundary, up to the size the run first saw (see one_reading), and its bytes that
# are not UTF-8 are marked, row by row, in `_bad` (Polars' own readers either fail the whole file on
# one such byte or silently turn it into U+FFFD).

PIECE_BYTES = 8 << 20
# Why a row with bytes that are not UTF-8 is quarantined (the dialects write it).
NOT_UTF8 = "bytes that are not UTF-8 (Latin-1 or binary?; shown as U+FFFD)"
BAD = "_bad"
BOM = "\ufeff"  # a byte order mark: no part of the line or name it stands before
# A CSV record of more fields than the header, one of its first BEYOND_FIELDS fields past the
# header's last not empty: why it is quarantined (the dialects write this column's text as its
# reason), else null. Polars read such a record by its first fields and dropped the rest: an
# unquoted `1,200` in a count was priced as 1 input and 200 output tokens, its real output count
# lost. Extra empty fields (an exporter's trailing comma) are read as before.
BEYOND = "_beyond"
# Such a record's fields past the header's, as read (the first BEYOND_FIELDS of them, joined by the
# separator), else null: the quarantine file's `raw` holds them (see with_beyond), as it holds the
# record's other fields. Without it, the field the reason named (the record's real output count,
# say) was in no column of the quarantine file (attack29).
BEYOND_RAW = "_beyond_raw"
# Columns the readers add to a table's own (its record's number, its bytes' verdict, its fields past
# the header's). A log's own column of such a name is left out of the reading (a name starting with
# `_` is never read as a dimension, see canonical._is_dimension): a Parquet or CSV log with its own
# `_row` failed with "cannot add row_index with name '_row'".
RESERVED = ("_row", BAD, BEYOND, BEYOND_RAW)
# Fields past the header's the CSV readers read (see beyond_columns). Fields after them are not read:
# a record whose first BEYOND_FIELDS extra fields are empty and a later one is not (`a,b,c,,,,,x`
# under `a,b,c`) is still read by its first fields (tests/test_csv_ragged.py, strict xfail). Each
# one read is a column of nulls per batch: 4 cost a report of the bench's 1M-record CSV no CPU
# past its noise (1.07 s user, before and after, 5 runs each). Reading past them exactly is no
# option: Polars' truncate_ragged_lines=False fails a record of more fields only in a read that
# parses every column, which made a wide log's scan (a 2 KB unused column) ~3x its CPU.
BEYOND_FIELDS = 4
_SURROGATES = re.compile("[\udc80-\udcff]+")


class _Gunzip:
    """gzip, member after member (`cat a.gz b.gz` is one valid gzip file). A file that ends inside a
    member is truncated (`cut`): what is missing cannot be counted, so the caller refuses it."""

    def __init__(self) -> None:
        self.d = self._member()
        self.fed = False  # bytes of the current member seen

    @staticmethod
    def _member():
        return zlib.decompressobj(31)

    def __call__(self, data: bytes) -> Iterator[bytes]:
        while data:
            self.fed = True
            yield from self._inflate(data)
            if not self.d.eof:
                return
            data = self.d.unused_data
            self.d = self._member()
            self.fed = False

    def _inflate(self, data: bytes) -> Iterator[bytes]:
        # At most a piece at a time: a block of logs inflates ~10x, and a whole decompressed block
        # handed on as one piece made a gzip JSONL run take twice the memory of the plain file.
        while True:
            out = self.d.decompress(data, PIECE_BYTES)
            if out:
                yield out
            data = self.d.unconsumed_tail
            # (At a member's end the rest is in unused_data, for the next member. A full piece may
            # leave output inside zlib: asked for again.)
            if self.d.eof or (not data and len(out) < PIECE_BYTES):
                return

    def cut(self) -> bool:
        return self.fed and not self.d.eof


class _Unzstd(_Gunzip):
    """zstd, frame after frame, like gzip's members."""

    @staticmethod
    def _member():
        import zstandard

        return zstandard.ZstdDecompressor().decompressobj()

    def _inflate(self, data: bytes) -> Iterator[bytes]:
        out = self.d.decompress(data)  # (no output limit in zstandard's decompressobj)
        if out:
            yield out


def _has_zstandard() -> bool:
    try:
        import zstandard  # noqa: F401
    except ImportError:
        return False
    return True


def _blocks(path: str, compression: str | None, run: dict | None, block: int = PIECE_BYTES) -> Iterator[bytes]:
    """The file's bytes, decompressed, up to the size the run first saw (of the compressed file)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError as e:
        raise SourceError(f"{shown(path)}: cannot read ({e.strerror})") from None
    try:
        left = run_size(path, _size(fd, path), run)
        chunks = []
        decompress = _Gunzip() if compression == "gzip" else (
            _Unzstd() if compression == "zstd" and _has_zstandard() else None)
        while left > 0:
            try:
                data = os.read(fd, min(block, left))
            except OSError as e:
                raise SourceError(f"{shown(path)}: cannot read ({e.strerror})") from None
            if not data:
                break
            left -= len(data)
            if compression == "zstd" and decompress is None:
                chunks.append(data)  # (decompressed by Polars below: zstandard is not installed)
            elif decompress is None:
                yield data
            else:
                try:
                    yield from decompress(data)
                except Exception as e:  # (zlib.error, zstandard.ZstdError: the file is not what its name says)
                    raise SourceError(f"{shown(path)}: cannot read ({compression}: {_one_line(e)})") from None
        if decompress is not None and decompress.cut():
            raise SourceError(f"{shown(path)}: cannot read ({compression}: the file ends inside a compressed "
                              "block: truncated, or still being written?)")
        if chunks:
            yield _zstd_by_polars(b"".join(chunks), path)
    finally:
        os.close(fd)


def _zstd_by_polars(data: bytes, path: str) -> bytes:
    """A zstd file's text, by Polars (without the zstandard module). Bytes that are not UTF-8 can
    then only be told by the U+FFFD Polars puts in their place: such lines are marked (a line of
    that file holding a real U+FFFD too, the one inexact case; install zstandard to avoid it)."""
    opts = dict(has_header=False, separator="\x1f", quote_char=None, new_columns=["l"],
                schema_overrides={"l": pl.String})
    try:
        lines = pl.read_csv(io.BytesIO(data), encoding="utf8", **opts)["l"]
        text = "\n".join(x or "" for x in lines.to_list()) + "\n"
        return text.encode()
    except pl.exceptions.ComputeError:
        pass
    except (OSError, pl.exceptions.PolarsError) as e:
        raise SourceError(f"{shown(path)}: cannot read ({_one_line(e)})") from None
    lines = pl.read_csv(io.BytesIO(data), encoding="utf8-lossy", **opts)["l"]
    text = "\n".join(x or "" for x in lines.to_list()) + "\n"
    return text.encode("utf-8", errors="surrogateescape").replace("\ufffd".encode(), b"\xff")


class _Stream(io.RawIOBase):
    """A file-like view of `_blocks` (decompressed, up to the run's size): gzip read this way
    gives what a member cut short holds (a file still being written) instead of failing."""

    def __init__(self, blocks: Iterator[bytes]) -> None:
        self.blocks, self.rest = blocks, b""

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:
        while not self.rest:
            self.rest = next(self.blocks, None)
            if self.rest is None:
                self.rest = b""
                return 0
        n = min(len(b), len(self.rest))
        b[:n] = self.rest[:n]
        self.rest = self.rest[n:]
        return n

    def close(self) -> None:
        close = getattr(self.blocks, "close", None)
        if close is not None:
            close()
        super().close()


def _gunzipped(path: str) -> io.BufferedReader:
    return io.BufferedReader(_Stream(_blocks(path, "gzip", _RUN.get(), 1 << 16)))


def _line_cut(buf: bytes) -> int:
    return buf.rfind(b"\n")


def _record_cut(buf: bytes) -> int:
    """The last newline of `buf` that ends a CSV record: one with an even number of quotes before it
    (RFC 4180 doubles a quote inside a quoted field, so parity tells whether a newline is quoted)."""
    at = buf.rfind(b"\n")
    quotes = buf.count(b'"', 0, at) if at >= 0 else 0
    while at >= 0 and quotes % 2:
        prev = buf.rfind(b"\n", 0, at)
        quotes -= buf.count(b'"', prev + 1, at)
        at = prev
    return at


def _record_cut_after(block: bytes, quotes: int) -> int:
    """_record_cut of a block that follows text holding `quotes` quotes (only its parity matters)."""
    at = block.rfind(b"\n")
    quotes += block.count(b'"', 0, at) if at >= 0 else 0
    while at >= 0 and quotes % 2:
        prev = block.rfind(b"\n", 0, at)
        quotes -= block.count(b'"', prev + 1, at)
        at = prev
    return at


def _csv_pieces(blocks: Iterator[bytes]) -> Iterator[bytes]:
    """_pieces(blocks, _record_cut), searching each block once: a newline in the record carried over
    can never become a cut (its parity does not change), so only the new block is searched, with the
    carried quotes' parity. A 20 MB quoted field full of newlines took 42 CPU s (every block joined
    to the record so far and the whole searched again); now one pass."""
    carry: list[bytes] = []
    quotes = 0
    for block in blocks:
        at = _record_cut_after(block, quotes)
        if at < 0:  # a record longer than a block: read on
            carry.append(block)
            quotes += block.count(b'"')
            continue
        yield b"".join((*carry, block[:at + 1]))
        rest = block[at + 1:]
        carry, quotes = ([rest] if rest else []), rest.count(b'"')
    tail = b"".join(carry)
    if tail:
        yield tail if tail.endswith(b"\n") else tail + b"\n"


def _pieces(blocks: Iterator[bytes], cut) -> Iterator[bytes]:
    """Blocks regrouped into pieces that end at a boundary `cut` finds (the last piece gets a newline)."""
    carry, waiting = b"", []
    for block in blocks:
        if carry and b"\n" not in block:
            # No record can end in this block: kept aside, not joined. Joining and searching the
            # growing record at every block made a 20 MB field cost 13 CPU s (quadratic), at peek.
            waiting.append(block)
            continue
        buf = b"".join((carry, *waiting, block)) if carry else block
        waiting = []
        at = cut(buf)
        if at < 0:  # a record longer than a block: read on
            carry = buf
            continue
        carry = buf[at + 1:]
        yield buf[:at + 1]
    carry = b"".join((carry, *waiting))
    if carry:
        yield carry if carry.endswith(b"\n") else carry + b"\n"


# Bytes of text searched at a time by first_key_match (a window of whole lines: its memory is bounded
# by it, or by the longest line).
KEY_WINDOW = 8 << 20


def first_key_match(src: SourceFile, pattern: str, accept=lambda line: line) -> tuple[int, object] | None:
    """The first line of a JSON Lines file holding a match of `pattern` (a regular expression over the
    text, for Polars' regex) for which `accept(line)` (the line's bytes) is not None, with its line
    number and what accept returned; None when no line is. One pass of Polars' regex over the file's
    lines (by its own line reader for a plain file; a window of whole lines at a time for gzip, zstd
    and text that is not UTF-8), in bounded memory: the line numbers come with it, and only a line
    that matches reaches Python (`accept` decides on the whole line, so that a match inside a nested
    object or a string does not count). ~1 CPU s per 1M records of 285 MB, nearly all of it the
    regex, and no PyArrow (docs/performance.md). A line with bytes that are not UTF-8 is not given
    to `accept` (its record is quarantined whole)."""
    run = _RUN.get()
    cached = run.get(("keys", src.path, pattern), False) if run is not None else False
    if cached is not False:
        return cached
    found, after = None, 0
    if src.compression is None and _native(src.path):
        found, after = _native_key_match(src.path, pattern, accept)
    if found is None and after is not None:
        found = _windowed_key_match(src, run, pattern, accept, after)
    if run is not None:
        run["keys", src.path, pattern] = found
    return found


def defer_key_search(path: str) -> bool:
    """Whether a plain JSON Lines file's search for late keys may wait for the run's pass (see
    canonical.KeyCheck): a file Polars reads itself (key_colons counts the bytes it reads), in a run
    not started again because the search found keys (search_keys_first)."""
    run = _RUN.get()
    return run is not None and not run.get("search keys") and _native(path)


def search_keys_first() -> None:
    """This run's JSON Lines files are searched for late keys before they are read (see
    pipeline._with_retry)."""
    run = _RUN.get()
    if run is not None:
        run["search keys"] = True


# Bytes key_colons counts at a time. Its numpy steps (compare, compare, and, any, compare, and, count)
# each go over the block: a block that stays in the core's cache (1 MiB) halves the CPU of 8 MiB ones
# (0.14-0.15 -> 0.075-0.08 CPU s per 285 MB; 512 KiB: 0.08).
KEY_COUNT_BLOCK = 1 << 20


def key_colons(path: str) -> int | None:
    """How many times a `"` is directly followed by `:` in a plain file (up to the size the run saw):
    at least the number of keys its JSON records hold, at any depth, when no `"` in it is followed by
    whitespace (a key written `"k" :` would not be counted): None when one is (or a byte below 0x20,
    which valid JSON has there only as whitespace). One numpy pass a block of KEY_COUNT_BLOCK at a
    time: 0.08 CPU s per 285 MB, where `bytes.count` and `in` took 0.33-0.36 each (see
    canonical.KeyCheck for what the count proves)."""
    import numpy as np  # (imported by every run that prices anyway; not at the module's import)

    count, last = 0, b""
    for block in _blocks(path, None, _RUN.get(), KEY_COUNT_BLOCK):
        # (the previous block's last byte: a pair split between two blocks is counted once, here)
        text = np.frombuffer(last + block if last == b'"' else block, np.uint8)
        quote, after = text[:-1] == ord('"'), text[1:]
        if np.any(quote & (after <= ord(" "))):
            return None
        count += int(np.count_nonzero(quote & (after == ord(":"))))
        last = block[-1:]
    return count


# Candidate lines first_key_match takes from Polars' own line reader in one go (bounded memory: a
# file whose every line holds a candidate that `accept` refuses, a nested `"Input_Tokens"`, goes on
# a window at a time).
KEY_CANDIDATES = 1000


def _native_key_match(path: str, pattern: str, accept) -> tuple[tuple[int, object] | None, int | None]:
    """first_key_match on a plain file by Polars' line reader, which maps the file and splits and
    matches its lines on every core (0.3 CPU s per 285 MB less than reading windows): (the match or
    None, None when that is the answer, else the last line looked at)."""
    scan = pl.scan_lines(glob.escape(path), name=LINE, row_index_name="_n", row_index_offset=1)
    try:
        hits = scan.filter(pl.col(LINE).str.contains(pattern)).head(KEY_CANDIDATES).collect()
    except pl.exceptions.ComputeError:  # bytes that are not UTF-8: read by windows, where they are marked
        return None, 0
    for n, line in zip(hits["_n"].to_list(), hits[LINE].to_list()):
        said = accept(line.encode())
        if said is not None:
            return (n, said), None
    return None, (None if hits.height < KEY_CANDIDATES else hits["_n"].max() or 0)


def _windowed_key_match(src: SourceFile, run: dict | None, pattern: str, accept, after: int = 0
                        ) -> tuple[int, object] | None:
    """first_key_match a window of lines at a time (any file: compressed, not UTF-8), past line `after`."""
    line = 1
    for window in _key_windows(src, run):
        lines = _piece_lines(window)
        # (the lines that match: normally none)
        at = pl.arg_where(pl.col(LINE).str.contains(pattern) & ~pl.col(BAD) & (pl.int_range(line, line + pl.len()) > after))
        for i in lines.select(at).to_series().to_list():
            said = accept(lines[LINE][i].encode())
            if said is not None:
                return line + i, said
        line += lines.height
    return None


def _key_windows(src: SourceFile, run: dict | None) -> Iterator[bytes]:
    """A file's text (decompressed), up to the size the run saw, in windows of about KEY_WINDOW bytes
    that end at newlines (a line longer than a window is one window; the last gets a newline)."""
    return _pieces(_blocks(src.path, src.compression, run, KEY_WINDOW), _line_cut)


def _piece_lines(piece: bytes) -> pl.DataFrame:
    """The lines of a piece of text (blank ones too), as `_line` and `_bad` (bytes that are not UTF-8:
    shown as U+FFFD)."""
    # (Polars decompresses bytes that start like gzip or zstd: such a piece is read after a newline,
    # whose empty line is then dropped.)
    magic = piece[:2] == b"\x1f\x8b" or piece[:4] == b"\x28\xb5\x2f\xfd"
    try:
        frame = pl.read_lines(b"\n" + piece if magic else piece, name=LINE).with_columns(pl.lit(False).alias(BAD))
    except pl.exceptions.ComputeError:  # bytes that are not UTF-8
        fixed, mark = _marked(b"\n" + piece if magic else piece)
        frame = _unmark(pl.read_lines(fixed, name=LINE), mark, [LINE])
    return frame.slice(1) if magic else frame


def _marked(piece: bytes) -> tuple[bytes, str]:
    """The piece with each run of bytes that are not UTF-8 replaced by a mark its text does not hold."""
    mark = "\ufffd" + secrets.token_hex(8)
    while mark.encode() in piece:  # (never, but then exactly)
        mark = "\ufffd" + secrets.token_hex(8)
    text = piece.decode("utf-8", errors="surrogateescape")
    return _SURROGATES.sub(mark, text).encode(), mark


def _has_bad_bytes(piece: bytes) -> bool:
    try:
        piece.decode("utf-8")
    except UnicodeDecodeError:
        return True
    return False


def _unmark(frame: pl.DataFrame, mark: str, columns: list[str]) -> pl.DataFrame:
    """`_bad` where any of `columns` holds the mark, which becomes U+FFFD (what the user sees)."""
    bad = pl.any_horizontal([pl.col(c).str.contains(mark, literal=True).fill_null(False) for c in columns])
    return frame.with_columns(bad.alias(BAD)).with_columns(
        [pl.col(c).str.replace_all(mark, "\ufffd", literal=True) for c in columns])


# While a writer reads a plan piece by piece (see resumed), the Python sources it reads: a module
# global, not a context variable, because Polars calls a source from its own threads.
_RESUMED: dict | None = None


@contextlib.contextmanager
def resumed(rows: int):
    """Collect a plan over one Python source (the readers below) again and again, each collect
    reading the source's next `rows` or so records, from where the previous one stopped: a writer
    writes a plan over a file these read in bounded memory without reading the file's start again
    (`lf.slice(offset, n)` over such a source reads everything before the offset each time). Only
    for plans that treat each record on its own (no sort, group, window over records). Yields the
    state: `read`, the sources the last collect read; `done`, those that reached their end."""
    global _RESUMED
    state = {"rows": rows, "open": {}, "read": set(), "done": set()}
    _RESUMED = state
    try:
        yield state
    finally:
        _RESUMED = None
        for piece in state["open"].values():
            piece.close()


def _serve(schema: dict, frames, name: str, detail: str) -> pl.LazyFrame:
    """A lazy frame read by `frames(columns)` (a generator of DataFrames holding at least `columns`,
    or every column for None), honouring projection, predicate and row limit as Polars asks (and
    read piece by piece inside `resumed`)."""
    token = object()

    def batches(with_columns, predicate, n_rows, _batch_size):
        asked = None if with_columns is None else set(with_columns) | (
            set(predicate.meta.root_names()) if predicate is not None else set())
        state = _RESUMED
        if state is not None and n_rows is None:
            state["read"].add(token)
            if token in state["done"]:
                return
            source = state["open"].get(token)
            if source is None:
                source = state["open"][token] = iter(frames(asked))
            seen = 0
            for frame in source:
                seen += frame.height
                if predicate is not None:
                    frame = frame.filter(predicate)
                yield frame.select(list(schema) if with_columns is None else with_columns)
                if seen >= state["rows"]:
                    return  # (the next collect continues from here)
            state["done"].add(token)
            return
        for frame in frames(asked):
            if predicate is not None:
                frame = frame.filter(predicate)
            frame = frame.select(list(schema) if with_columns is None else with_columns)
            if n_rows is not None:
                frame = frame.head(n_rows)
                n_rows -= frame.height
            yield frame
            if n_rows == 0:
                return

    return register_io_source(batches, schema=schema, explain_name=name, explain_detail=detail)


def bounded_lines(path: str, compression: str | None) -> pl.LazyFrame:
    """A JSON Lines file as `_line` (every line, blank ones too, so that `_row` is the line a user
    sees), `_row` (from 1) and `_bad`."""
    run = _RUN.get()

    def frames(_columns):
        row = 1
        for piece in _pieces(_blocks(path, compression, run), _line_cut):
            frame = _piece_lines(piece)
            yield frame.with_columns(pl.int_range(row, row + frame.height, dtype=pl.get_index_type()).alias("_row"))
            row += frame.height

    schema = {LINE: pl.String, BAD: pl.Boolean, "_row": pl.get_index_type()}
    return _serve(schema, frames, "llm-cost lines", path)


# A blank line (or one of spaces): Polars' NDJSON reader skips it, so its row index counts records.
_BLANK_LINE, _BLANK_FIRST = re.compile(rb"\n[ \t\r]*\n"), re.compile(rb"[ \t\r]*\n")


def _blank_records(source: str | bytes) -> pl.Series | None:
    """For JSON Lines (a file's path, or a piece's bytes) with blank lines: the number of records
    before each blank line, ascending; None when no line is blank (nearly every log: one search of
    its bytes, ~0.5 GB/s, and nothing else)."""
    if not isinstance(source, str):
        data = source = bytes(source)
        found = _BLANK_FIRST.match(data) or _BLANK_LINE.search(data)
    else:
        with open(source, "rb") as f:
            try:
                data = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
            except ValueError:  # an empty file
                return None
            with data:
                found = _BLANK_FIRST.match(data) or _BLANK_LINE.search(data)
        source = glob.escape(source)
    if found is None:
        return None
    # Blank line i (from 1) on line n has n - i records before it.
    return (pl.scan_lines(source, name="_l", row_index_name="_n", row_index_offset=1)
            .filter(pl.col("_l").str.strip_chars(" \t\r") == "")
            .select(pl.col("_n") - pl.int_range(1, pl.len() + 1, dtype=pl.get_index_type()))
            .collect().to_series())


def _on_lines(lf: pl.LazyFrame, blank: pl.Series | None) -> pl.LazyFrame:
    """`_row` (records counted from 1) as the record's line: record r is on line r plus the number
    of blank lines before it, those with fewer than r records before them. (price writes this
    number, `source_row`: the same whether or not the run read its files again robustly.)"""
    if blank is None or blank.is_empty():
        return lf
    return lf.with_columns((pl.col("_row") + pl.lit(blank).search_sorted(pl.col("_row"), side="left")
                            .cast(pl.get_index_type())).alias("_row"))


def bounded_ndjson(path: str, compression: str | None, schema: dict, exact_lines: bool = True) -> pl.LazyFrame:
    """JSON Lines decoded by Polars' NDJSON reader, piece by piece (fails on a malformed line, or on
    bytes that are not UTF-8: the robust pass reads such a file line by line). `_row` is the record's
    line (see _on_lines)."""
    run = _RUN.get()

    def frames(_columns):
        row = 1
        for piece in _pieces(_blocks(path, compression, run), _line_cut):
            lines = piece.count(b"\n") + (not piece.endswith(b"\n"))
            if not piece.strip():
                row += lines
                continue
            frame = pl.read_ndjson(piece, schema=schema).with_columns(
                pl.int_range(1, pl.len() + 1, dtype=pl.get_index_type()).alias("_row"))
            if exact_lines:
                frame = _on_lines(frame.lazy(), _blank_records(piece)).collect()
            yield frame.with_columns(pl.col("_row") + (row - 1))
            row += lines

    return _serve({**schema, "_row": pl.get_index_type()}, frames, "llm-cost ndjson", path)


def bounded_csv(path: str, compression: str | None, integers: tuple[str, ...] = (), piece_bytes: int | None = None,
                rows: pl.Series | None = None) -> pl.LazyFrame:
    """A CSV file, every field a string but `integers` (Int64: the reader fails on a value that is not
    one, and the run is read again as strings), `_row` the record's number from 2 (line 1 is the
    header) and `_bad`. Each piece is read with the header line before it. `rows`: the only records
    yielded (by `_row`; the quarantine pass's): a piece holding none of them is only counted."""
    run = _RUN.get()
    sep = "\t" if _strip_compression(path)[0].endswith(".tsv") else ","
    header = _csv_header(path, compression, run)
    # (The header as text: bytes that are not UTF-8 in a column name become U+FFFD; its rows are read
    # below it, each piece after the same header.)
    text_header = header.decode("utf-8", "replace").encode()
    if not header:  # no end found: empty, or a quote opens in it and never closes
        with contextlib.closing(_blocks(path, compression, run, 1 << 16)) as blocks:
            _check_header(next(blocks, b"").split(b"\n")[0] + b"\n", sep, path)
    names = pl.read_csv(text_header, infer_schema=False, separator=sep, n_rows=0).columns
    renamed = _unescaped_names(text_header, names, sep)
    integers = tuple({v: k for k, v in renamed.items()}.get(c, c) for c in integers)
    overrides = {c: pl.Int64 for c in integers if c in names}
    schema = {**{c: overrides.get(c, pl.String) for c in names}, BEYOND: pl.String, BEYOND_RAW: pl.String,
              BAD: pl.Boolean, "_row": pl.get_index_type()}
    strings = [c for c in names if c not in overrides]
    keep = None if rows is None else rows.cast(pl.get_index_type()).drop_nulls().unique().sort()
    extra = beyond_columns(names, BEYOND_FIELDS)

    # (the schema BEYOND_FIELDS columns past the header's: see beyond_columns)
    opts = dict(schema={**{c: overrides.get(c, pl.String) for c in names}, **dict.fromkeys(extra, pl.String)},
                separator=sep, has_header=True, missing_columns="insert", truncate_ragged_lines=True)

    def read_piece(body: bytes, columns: list[str] | None) -> pl.DataFrame:
        """The piece's records (`columns` of them; None: all), with BEYOND (and BEYOND_RAW, if asked
        for) where the extra columns are read."""
        frame = read_text(body, columns)
        here = [c for c in extra if c in frame.columns]
        if not here:
            return frame
        raw = [beyond_text(here, sep)] if columns is None or BEYOND_RAW in columns else []
        return frame.with_columns(beyond_reason(here, len(names), sep), *raw).drop(here)

    def read_text(body: bytes, columns: list[str] | None) -> pl.DataFrame:
        try:
            return pl.read_csv(text_header + body, encoding="utf8", columns=columns, **opts).with_columns(
                pl.lit(False).alias(BAD))
        except pl.exceptions.ComputeError:
            if not _has_bad_bytes(body):
                raise  # a count that is not an integer: the robust pass reads it as text
            fixed, mark = _marked(body)
            try:
                return _unmark(pl.read_csv(text_header + fixed, encoding="utf8", **opts), mark, [*strings, *extra])
            except pl.exceptions.ComputeError as e:
                # (Polars quotes the record it refused: the mark, random text the file does not hold,
                # shown as what the file has there, a byte that is not UTF-8: U+FFFD)
                raise pl.exceptions.ComputeError(str(e).replace(mark, "\ufffd")) from None

    def bodies() -> Iterator[bytes]:
        """Each piece, without the header."""
        head = True
        for piece in _csv_pieces(_blocks(path, compression, run, piece_bytes or PIECE_BYTES)):
            yield piece[len(header):] if head else piece
            head = False

    def malformed(k: int, body: bytes, columns: list[str] | None) -> SourceError:
        """The refusal of piece `k`, which Polars cannot parse, naming the line of the file's first
        record that is not RFC 4180 (see _not_rfc4180): the pieces before it are read again (a
        stray quote before a piece's end moves the cuts after it, which the quotes' count places:
        Polars may read that piece without a word, and refuse the next one, which starts inside a
        field), their lines counted (here, not as pieces are read: a clean reading pays nothing).
        None before it: the record Polars refuses in it (see _malformed)."""
        line = 1 + header.count(b"\n")  # (the line, as an editor counts them, the next piece starts at)
        with contextlib.closing(bodies()) as again:
            for _, before in zip(range(k), again):
                bad = _not_rfc4180(before, sep)
                if bad < len(before):
                    return _malformed_at(path, before, line, bad)
                line += before.count(b"\n")
        return _malformed(path, body, line, sep, columns, read_piece)

    def frames(columns: set[str] | None):
        # Each piece is read after the header: a piece's first record may be short (a cut line), and
        # Polars tells the columns of a headerless piece from its first record. Only the columns the
        # plan uses are parsed (Polars checks the whole piece is UTF-8 all the same), and the last:
        # Polars parses a record through the columns asked and skips the rest by its own count of
        # quotes, and a record with two stray quotes (`r"7,...,5" tall`, which a read of every
        # column takes as written) failed a read of its first columns alone, "CSV malformed": the
        # run failed or not by --by. Through the last column, a record is the whole read's.
        wanted = None if columns is None else [c for c in names if c in columns or c == names[-1]] + (
            extra if BEYOND in columns or BEYOND_RAW in columns else [])
        if keep is not None and keep.is_empty():
            return  # (the quarantine pass, for a file none of whose records it needs)
        row = 2
        for k, body in enumerate(bodies()):

            def read(body: bytes, columns: list[str] | None, k: int = k) -> pl.DataFrame:
                try:
                    return read_piece(body, columns)
                except pl.exceptions.ComputeError:
                    if overrides:
                        raise  # (a count that is not an integer, or a malformed record: read again as text)
                    raise malformed(k, body, columns) from None
            if keep is not None:
                # (counted by one column, read as the reading reads it: its records are the
                # reading's. Not lossy: where Polars' parse of a malformed record depends on the
                # text, U+FFFD for a byte that is not UTF-8 made a count other than the marked
                # text's, or an error the reading did not have)
                n = read(body, names[-1:]).height
                lo, hi = keep.search_sorted(row), keep.search_sorted(row + n)
                if lo == hi:
                    row += n
                    continue
                here = keep.slice(lo, hi - lo)
            frame = read(body, wanted)
            frame = frame.with_columns(pl.int_range(row, row + frame.height, dtype=pl.get_index_type()).alias("_row"))
            row += frame.height
            yield frame if keep is None else frame.filter(pl.col("_row").is_in(here.implode()))

    lf = _serve(schema, frames, "llm-cost csv", path)
    return lf.rename(renamed) if renamed else lf


def _not_rfc4180(body: bytes, sep: str) -> int:
    """Where the first record of `body` (whole records) that is not RFC 4180 starts (a quote inside
    a field not enclosed in quotes, text after a closing quote, a quote that never closes), or its
    length: one regular expression of atomic records (no backtracking), matched in C (~180 MB/s)."""
    s = re.escape(sep.encode())
    field = rb'(?:"(?:[^"]|"")*+"|[^"' + s + rb'\n]*+)'
    return re.match(rb"(?>" + field + rb"(?:" + s + field + rb")*+\r?\n)*+", body).end()


def _malformed(path: str, body: bytes, line: int, sep: str, columns: list[str] | None,
               read: Callable[[bytes, list[str] | None], pl.DataFrame]) -> SourceError:
    """The refusal of a CSV piece Polars cannot parse (`body`, starting at the file's line `line`,
    read by `read` with `columns`), naming the line its first bad record starts at. Polars names no
    line: its message quotes the text from the bad record on, or counts rows "in chunk starting at
    row_offset 0" of the piece (its parallel parse cut the piece where a stray quote's count said,
    and the rows disagreed: the record it fails on may be far after the stray quote).

    The first bad record is the first that is not RFC 4180 (see _not_rfc4180). A piece Polars
    refuses whose records all are (none seen; kept in case) is searched by halves at its record
    ends (newlines after an even count of quotes, by numpy) for the shortest start Polars refuses,
    whose last record is named. No Python loop over records either way."""
    start = _not_rfc4180(body, sep)
    if start == len(body):
        import numpy as np

        data = np.frombuffer(body, np.uint8)
        ends = np.flatnonzero(data == 10)
        ends = ends[np.cumsum(data == 34)[ends] % 2 == 0] + 1  # (a newline outside quotes ends a record)
        bounds = np.unique(np.concatenate(([0], ends, [len(body)])))
        lo, hi = 0, len(bounds) - 1  # (the first lo records read; the first hi are refused)
        while hi - lo > 1:
            mid = (lo + hi) // 2
            try:
                read(body[:bounds[mid]], columns)
                lo = mid
            except pl.exceptions.ComputeError:
                hi = mid
        start = int(bounds[lo])
    return _malformed_at(path, body, line, start)


def _malformed_at(path: str, body: bytes, line: int, start: int) -> SourceError:
    """The refusal naming the record at `start` of `body` (which starts at the file's line `line`):
    its line counted by newlines, so a quoted field holding newlines counts its lines, as an editor
    shows them (a CRLF is one line), and its first line shown (bytes that are not UTF-8 as U+FFFD)."""
    end = body.find(b"\n", start)
    text = body[start:end if end >= 0 else len(body)].rstrip(b"\r").decode("utf-8", "replace")
    text = text if len(text) <= 100 else text[:99] + "\u2026"
    first = line + body.count(b"\n", 0, start)
    return SourceError(f"{shown(path)}: line {first}: cannot read (a malformed CSV record: a quote that does not "
                       f"close, or one inside a field not enclosed in quotes: `{text}`)")


def _csv_header(path: str, compression: str | None, run: dict | None) -> bytes:
    """A CSV file's first record (its header), with its newline."""
    with contextlib.closing(_pieces(_blocks(path, compression, run, 1 << 16), _first_record)) as pieces:
        first = next(pieces, b"")
    return first[:_first_record(first) + 1]


def _check_header(header: bytes, sep: str, path: str) -> None:
    """A quote inside a name not enclosed in quotes (`te"am`) opens a quoted field for Polars that
    runs to the end of the file: the file read as a header and no rows ("empty CSV"). Said as it is.
    (Only then: a name like `x""y`, whose quotes close, is read by Polars as written.)"""
    if b'"' not in header:
        return
    s = re.escape(sep.encode())
    field = rb'(?:"(?:[^"]|"")*"|[^"' + s + rb'\r\n]*)'
    if re.fullmatch(field + rb"(?:" + s + field + rb")*\r?\n?", header) is None:
        # (the name with a quote inside it, else one a quote opens or closes alone: `"team`, `team"`;
        # a BOM before the first name is no part of it)
        names = header.split(b"\n")[0].removeprefix(BOM.encode()).split(sep.encode())
        bad = next((n for n in names if b'"' in n.strip(b'"')), None) or next((n for n in names if b'"' in n), b'"')
        name = bad.decode("utf-8", "replace").strip()
        inner = name.strip('"')
        quoted = '"' + inner.replace('"', '""') + '"'
        raise SourceError(f"{shown(path)}: line 1 (the header): a quote inside a column name ({name!r}); quote "
                          f"the name and double the quote inside it (RFC 4180: {inner!r} -> {quoted})")


def _unescaped_names(header: bytes, names: list[str], sep: str) -> dict[str, str]:
    """Polars' names for a header's columns -> RFC 4180's where they differ: Polars keeps the doubled
    quote of a quoted name (`"x""y"` is named `x""y`, not `x"y`). Names that would then be equal are
    left as Polars reads them (two columns must keep two names)."""
    if b'""' not in header:
        return {}
    import csv

    text = header.decode("utf-8", "replace")
    true = next(csv.reader(io.StringIO(text, newline=""), delimiter=sep), [])
    if len(true) != len(names):
        return {}
    fix = {p: t for p, t in zip(names, true) if p != t and p.replace('""', '"') == t}
    after = [fix.get(p, p) for p in names]
    return fix if len(set(after)) == len(after) else {}


def _first_record(buf: bytes) -> int:
    """The newline that ends the first CSV record of `buf` (its header), or -1."""
    at, quotes = buf.find(b"\n"), 0
    start = 0
    while at >= 0:
        quotes += buf.count(b'"', start, at)
        if quotes % 2 == 0:
            return at
        start, at = at, buf.find(b"\n", at + 1)
    return -1


# A file set is read as several scans at once when each would get at least this many bytes.
SHARD_BYTES = 256 << 20
# At most this many scans run at once: each holds its own batches in flight, so more would trade
# memory for little time.
MAX_CONCURRENT_SCANS = 4


def concurrent_scans() -> int:
    """How many scans of a run may run at once (spool runs its passes in groups of this size)."""
    return max(1, min(pl.thread_pool_size(), MAX_CONCURRENT_SCANS))


def shards(src: SourceFile) -> list[SourceFile]:
    """A large file set as several file sets of consecutive files of about equal size, to be
    decoded by concurrent scans: one scan of a tree of 17,000 transcripts kept ~1.6 of 2 cores
    busy, two keep ~1.85 (decoding 5.2 -> 4.7 s). Each shard is named by its first file (`index`),
    so a row's identity (its scan's index, then its line number in that scan) orders rows as one
    scan would: by file, then by line."""
    if not src.members:
        return [src]
    paths, indexes, sizes = src.paths, (src.index, *src.member_indexes), src.file_sizes()
    k = min(concurrent_scans(), len(paths), sum(sizes) // SHARD_BYTES)
    if k < 2:
        return [src]
    out, start, done, total = [], 0, 0, sum(sizes)
    for i, size in enumerate(sizes):
        done += size
        if done * k >= total * (len(out) + 1) or i == len(paths) - 1:
            out.append(dataclasses.replace(src, path=paths[start], display=remote.display(paths[start]), index=indexes[start],
                                           members=tuple(paths[start + 1:i + 1]),
                                           member_indexes=tuple(indexes[start + 1:i + 1]),
                                           sizes=sizes[start:i + 1]))
            start = i + 1
    return out


# Files opened, and their reading requested, ahead of the one being read (see _opened).
READ_AHEAD = 32
# The request to read ahead, where the system has one (macOS has no posix_fadvise: files are then
# only opened ahead).
_ADVISE = getattr(os, "posix_fadvise", None)


def _opened(paths: list[str | None], advise_bytes: int, missing_ok: bool) -> Iterator[int | None]:
    """An open descriptor for each path, in order (the caller closes it; None for a None path, and
    for a file that cannot be opened, if `missing_ok`). Each file is opened READ_AHEAD files before
    it is needed, and its first `advise_bytes` (0: all of it) asked of the disk then (readahead,
    which does not wait): a tree larger than RAM is read from disk, and reading one file at a time
    leaves the disk idle between requests (10M transcripts, 33 GiB, cold cache: 159 s -> 138 s)."""
    ahead: collections.deque[int | None] = collections.deque()

    def open_ahead(path: str | None) -> int | None:
        if path is None:
            return None
        try:
            fd = os.open(path, os.O_RDONLY)
        except OSError as e:
            if missing_ok:
                return None
            raise SourceError(f"{shown(path)}: cannot read ({e.strerror})") from None
        if _ADVISE is not None:
            with contextlib.suppress(OSError):  # (advice: a pipe cannot take it, and need not)
                _ADVISE(fd, 0, advise_bytes, os.POSIX_FADV_WILLNEED)
        return fd

    try:
        for i in range(len(paths)):
            while len(ahead) < READ_AHEAD and i + len(ahead) < len(paths):
                ahead.append(open_ahead(paths[i + len(ahead)]))
            yield ahead.popleft()
    finally:
        for fd in ahead:
            if fd is not None:
                os.close(fd)


def _lines(paths: str | list[str], with_paths: bool) -> pl.LazyFrame:
    """Each line of the files as a string (blank lines too; bytes that are not UTF-8 replaced),
    optionally with its file in `_path`."""
    return pl.scan_csv(
        paths,
        has_header=False,
        new_columns=[LINE],
        separator="\x1f",  # a byte that never occurs in JSON text outside strings' escapes
        quote_char=None,
        schema_overrides={LINE: pl.String},
        encoding="utf8-lossy",
        include_file_paths="_path" if with_paths else None,
        glob=False,  # a file named `[x].jsonl` is that file, not a pattern
    )


def _strip_compression(path: str) -> tuple[str, str | None]:
    p = path.lower()
    for ext, comp in _COMPRESSION.items():
        if p.endswith(ext):
            return p[: -len(ext)], comp
    return p, None


def _container_from_name(path: str) -> tuple[str | None, str | None]:
    plain = _EXT.get(path[path.rfind("."):].lower())
    if plain is not None:  # the usual name, checked first: a tree's 17,000 names are looked at three times
        return plain, None
    base, comp = _strip_compression(path)
    # Bedrock batch output: records in `*.jsonl.out`; its `manifest.json.out` summary is not a log.
    base = base.removesuffix(".out") if base.endswith(".jsonl.out") else base
    return _EXT.get(os.path.splitext(base)[1]), comp


HEAD_PEEK = 1 << 16  # the bytes open_source looks at first


def _read_head(path: str, compression: str | None, size: int = HEAD_PEEK) -> bytes:
    if compression == "gzip":
        with _gunzipped(path) as f:
            return f.read(size)
    if compression == "zstd":
        # Polars reads zstd natively; for the peek, let it decompress the first lines.
        lines = pl.scan_csv(
            path, has_header=False, separator="\x1f", quote_char=None, new_columns=["l"],
            schema_overrides={"l": pl.String}, encoding="utf8-lossy", n_rows=SAMPLE_RECORDS + 1, glob=False,
        ).collect()
        return "\n".join(x or "" for x in lines["l"].to_list()).encode()
    fd = os.open(path, os.O_RDONLY)  # (no file object: a tree's thousands of files are peeked at)
    try:
        return os.read(fd, size)
    finally:
        os.close(fd)


# Raw server-sent events (a streaming API's response saved by curl or a proxy): the first line is a
# field (`event:`, `data:`, `id:`, `retry:`) or a comment (`:`); `curl -i` puts the HTTP status line and
# headers first, with an event-stream content type.
_SSE_FIELDS = (b"event:", b"data:", b"id:", b"retry:", b":")


def _is_sse(text: bytes) -> bool:
    if text.startswith(_SSE_FIELDS):
        return True
    headers = text.split(b"\n\n", 1)[0].split(b"\r\n\r\n", 1)[0].lower()
    return headers.startswith(b"http/") and b"content-type: text/event-stream" in headers


def _sniff(head: bytes) -> str:
    if head.startswith(b"PAR1"):
        return "parquet"
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n")
    if _is_sse(text):
        return "sse"
    if text.startswith(b"["):
        return "json"
    if text.startswith(b"{"):
        first = text.split(b"\n", 1)[0].strip()
        try:
            json.loads(first)
            return "jsonl"
        except RecursionError:  # a line nested deeper than Python's decoder goes: a line all the same
            return "jsonl"
        except ValueError:
            return "json"  # one pretty-printed object spanning lines
    return "csv"


def _is_json_lines(path: str, compression: str | None, head: bytes) -> bool:
    """Several JSON objects, one per line (a JSON document is one value, however it is laid out).
    The first line is read whole even when it is longer than the head (a record with a long prompt)."""
    if not head.lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"{"):
        return False
    if compression == "zstd":
        lines = [x for x in head.splitlines() if x.strip()][:2]
    else:
        lines, used = [], 0
        with _gunzipped(path) if compression == "gzip" else open(path, "rb") as f:
            for raw in f:
                used += len(raw)
                if raw.strip():
                    lines.append(raw)
                if len(lines) == 2 or used > MAX_PEEK:
                    break
    if len(lines) < 2:
        return False
    try:
        json.loads(lines[0].lstrip(b"\xef\xbb\xbf"))
    except RecursionError:  # nested deeper than Python's decoder goes, but one line: the next decides
        pass
    except ValueError:
        return False
    return lines[1].lstrip().startswith(b"{")


# Directories deeper than this below the walked one (or a glob's fixed start) are not walked: a tree
# of logs is a few levels deep, and a deeper one is a mistake or a trap (a loop through bind mounts).
MAX_DEPTH = 64
_MAGIC = frozenset("*?[")


def shown(path: str) -> str:
    """A file name as printed in a message: bytes that are not UTF-8 and control characters escaped
    (a name is data: it must neither break the one-line message nor drive the terminal)."""
    text = os.fsencode(remote.display(path)).decode("utf-8", "backslashreplace")
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode() for c in text)


def _utf8_name(path: str) -> bool:
    """Polars (and the output's `source_file`) take only names that are UTF-8."""
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


@dataclass
class Found:
    """The files behind the user's arguments, each real file once (by device and inode), in a stable
    order, and what was passed over on the way, with why (shown in the accounting).

    `explicit`: files the user named one by one. Such a file that is not a log is an error; a file a
    walk or a glob found that is not a log (a README, a manifest, an invoice beside the logs) is
    skipped and named instead."""

    files: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)
    explicit: set[str] = field(default_factory=set)
    _seen: dict[tuple[int, int], tuple[int, bool]] = field(default_factory=dict)  # -> (its place, a link?)

    def add(self, path: str, key: tuple[int, int], link: bool = False, explicit: bool = False) -> None:
        """A file, unless the same real file (a link to it, a hard link, a second path) is already in:
        then the file is read under its own name rather than a link's (`latest.csv -> night.csv`)."""
        if not _utf8_name(path):
            if explicit:
                raise SourceError(f"{shown(path)}: the file's name is not UTF-8 text: rename it to read it")
            self.skipped[path] = "name is not UTF-8 text (rename the file to read it)"
            return
        if explicit:
            self.explicit.add(path)
        seen = self._seen.get(key)
        if seen is None:
            self._seen[key] = (len(self.files), link)
            self.files.append(path)
            return
        at, was_link = seen
        first = self.files[at]
        if first == path:
            return  # (the same name twice, from a walk and by name, needs no note)
        if was_link and not link:
            self.files[at], self._seen[key] = path, (at, False)
            path, first = first, path
        self.skipped[path] = f"same file as {shown(first)} (read once)"


def _key(st: os.stat_result) -> tuple[int, int]:
    return st.st_dev, st.st_ino


def _is_log_name(name: str) -> bool:
    return _container_from_name(name)[0] is not None


def _why_not(path: str, skip: set[str], skip_names: set[str], names_only: bool = True) -> str | None:
    """Why a file a walk or a glob found is not read, or None."""
    name = os.path.basename(path)
    if name.startswith("llm-cost-quarantine"):
        return "llm-cost's own quarantine file"
    if name in skip_names and os.path.realpath(path) in skip:
        return "written by this run"
    if names_only and not _is_log_name(name):
        return "not a log file name (.csv .tsv .jsonl .ndjson .json .parquet, or .gz/.zst)"
    return None


def _walk(directory: str, found: Found, skip: set[str], skip_names: set[str], names_only: bool = True,
          depth: int = MAX_DEPTH) -> tuple[list[tuple[str, tuple[int, int], bool]], list[str]]:
    """Every file under a directory (with its device and inode when known without another system
    call), and every directory walked, both sorted; an unreadable subdirectory is an error, not a
    silent gap. Only regular files are logs (a pipe would block the reader). Links to directories
    are not followed (each is named in `found.skipped`): a link back up the tree (`loop -> ..`) would
    walk it again and again. `names_only`: only files whose name says a log container."""
    files: list[tuple[str, tuple[int, int], bool]] = []
    dirs: list[str] = []
    try:
        top = os.stat(directory)
    except OSError as e:
        raise SourceError(f"{shown(directory)}: cannot read directory ({e.strerror})") from None
    visited = {_key(top)}  # (bind mounts can loop too: each real directory is walked once)
    todo = [(directory, top.st_dev, 0)]
    while todo:
        where, dev, level = todo.pop()
        dirs.append(where)
        try:
            with os.scandir(where) as it:
                entries = list(it)
        except OSError as e:
            raise SourceError(f"{shown(e.filename or where)}: cannot read directory ({e.strerror})") from None
        subdirs = []
        for entry in entries:
            name = entry.name
            if name.startswith("."):
                continue  # hidden on purpose (editors' swap files, .git): not named
            try:
                link = entry.is_symlink()
                if entry.is_dir(follow_symlinks=False):
                    st = entry.stat(follow_symlinks=False)
                    if level + 1 > depth:
                        found.skipped[entry.path] = f"directory deeper than {depth} levels (not walked)"
                    elif _key(st) in visited:
                        found.skipped[entry.path] = "directory already walked (not walked again)"
                    else:
                        visited.add(_key(st))
                        subdirs.append((entry.path, st.st_dev, level + 1))
                    continue
                if link and entry.is_dir():
                    found.skipped[entry.path] = "link to a directory (not followed; name its target to read it)"
                    continue
                if link and not os.path.exists(entry.path):
                    found.skipped[entry.path] = "broken link"
                    continue
                if not entry.is_file():
                    found.skipped[entry.path] = "not a regular file (a pipe, socket or device)"
                    continue
            except OSError as e:
                found.skipped[entry.path] = f"cannot read ({e.strerror})"
                continue
            # (A glob's walk lists every file: its caller matches the names, and says why it skips one.)
            why = _why_not(entry.path, skip, skip_names) if names_only else None
            if why is not None:
                found.skipped[entry.path] = why
            else:
                # d_ino needs no system call; a link's target (or a file that is a mount point) is stat'ed
                files.append((entry.path, _key(os.stat(entry.path)) if link else (dev, entry.inode()), link))
        todo.extend(sorted(subdirs, reverse=True))
    files.sort()
    return files, sorted(dirs)


def _glob(pattern: str, found: Found, skip: set[str], skip_names: set[str]) -> list[str]:
    """The files a pattern matches (`*`, `?`, `[...]` in a name; `**` any depth of directories), as
    Python's glob would, except that `**` follows no link to a directory (a loop under it made one
    file match 41 times) and walks at most MAX_DEPTH levels. Names starting with a dot match only a
    part that starts with one."""
    parts = pattern.split(os.sep)
    fixed = 0
    while fixed < len(parts) - 1 and not (_MAGIC & set(parts[fixed])):
        fixed += 1
    start = os.sep.join(parts[:fixed]) or ("" if fixed == 0 else os.sep)
    if fixed == 0 and not pattern.startswith(os.sep):
        start = ""
    dirs = [start]
    rest = [p for i, p in enumerate(parts[fixed:]) if not (p == "**" and i and parts[fixed + i - 1] == "**")]
    for i, part in enumerate(rest):
        last = i == len(rest) - 1
        if part == "**":
            below: list[str] = []
            files: list[str] = []
            for d in dirs:
                if not os.path.isdir(d or "."):
                    continue  # (a fixed start that does not exist: the pattern matches nothing)
                f, w = _walk(d or ".", found, skip, skip_names, names_only=False)
                below.extend(w if d else [os.path.relpath(x) if x != "." else "" for x in w])
                files.extend(p if d else os.path.relpath(p) for p, _, _ in f)
            if last:
                return files
            dirs = list(dict.fromkeys(below))
            continue
        nxt: list[str] = []
        files = []
        for d in dirs:
            if not (_MAGIC & set(part)):
                names = [part] if os.path.lexists(os.path.join(d, part)) else []
            else:
                try:
                    names = sorted(os.listdir(d or "."))
                except FileNotFoundError:
                    continue
                except OSError as e:  # (not a silent gap: named)
                    found.skipped[d or "."] = f"cannot read directory ({e.strerror})"
                    continue
                names = [n for n in names if fnmatch.fnmatchcase(n, part) and (part.startswith(".") or not n.startswith("."))]
            for n in names:
                p = os.path.join(d, n) if d else n
                if not last:
                    if os.path.isdir(p):  # (a link to a directory is followed here: no loop without `**`)
                        nxt.append(p)
                elif os.path.isfile(p):
                    files.append(p)
        if last:
            return files
        dirs = nxt
    return []


def find_files(paths: list[str] | tuple[str, ...], exclude: tuple[str, ...] = ()) -> Found:
    """Files behind the user's arguments: each real file once, in a stable order. A path that exists
    is that file or directory, even when its name holds `*`, `?` or `[` (an export named
    `night*.csv`); only a path that does not exist is a pattern. Directory walks skip hidden files,
    llm-cost's own quarantine files and `exclude` (the run's outputs, which may live there)."""
    run = _RUN.get()
    memo = ("found", tuple(paths), tuple(exclude))
    if run is not None and memo in run:  # a later pass of the run: the same files, even if new ones appeared
        return dataclasses.replace(run[memo], files=list(run[memo].files), skipped=dict(run[memo].skipped))
    skip = {os.path.realpath(p) for p in exclude if p}
    skip_names = {os.path.basename(p) for p in skip}
    if not paths:
        raise SourceError("no input: give one or more files, directories or globs (or - for stdin)")
    found = Found()
    for p in paths:
        if p == "-":
            if "-" not in found.files:
                found.files.append(p)
                found.explicit.add(p)
            continue
        if remote.is_url(p):
            _add_remote(p, found)
            continue
        try:
            st, why = os.stat(p), None
        except OSError as e:
            st, why = None, e
        if st is not None and stat.S_ISDIR(st.st_mode):
            files, _ = _walk(p, found, skip, skip_names)
            if not files:
                raise SourceError(f"{shown(p)}: directory holds no .csv/.jsonl/.ndjson/.json/.parquet files (optionally .gz/.zst)")
            for f, key, link in files:
                found.add(f, key, link)
        elif st is not None and stat.S_ISREG(st.st_mode):
            found.add(p, _key(st), os.path.islink(p), explicit=True)
        elif st is not None:
            raise SourceError(f"{shown(p)}: not a regular file or directory")
        elif os.path.lexists(p) or (why is not None and why.errno not in (errno.ENOENT, errno.ENOTDIR)):
            raise SourceError(f"{shown(p)}: " + ("broken link (its target does not exist)" if why.errno == errno.ENOENT
                                                 else f"cannot read ({why.strerror})"))
        elif _MAGIC & set(p):
            matched = _glob(p, found, skip, skip_names)
            if not matched:
                raise SourceError(f"{shown(p)}: no file matches this pattern")
            for f in sorted(matched):
                # (A pattern names its files: an output it matches is refused by the caller, not skipped.)
                why = _why_not(f, set(), set(), names_only=False)
                if why is not None:
                    found.skipped[f] = why
                else:
                    found.add(f, _key(os.stat(f)), os.path.islink(f))
        else:
            raise SourceError(f"{shown(p)}: no such file or directory")
    found.skipped = {shown(k): v for k, v in sorted(found.skipped.items())}
    if not found.files:
        raise SourceError(f"no input files: {', '.join(f'{k} ({v})' for k, v in list(found.skipped.items())[:3])}")
    if run is not None:
        run[memo] = dataclasses.replace(found, files=list(found.files), skipped=dict(found.skipped))
    return found


def _add_remote(url: str, found: Found) -> None:
    """The objects a URL names, copied to local files (see analyzer/remote.py), added like local ones.
    Within a run each object is copied once: a later pass (the quarantine's, which names files by
    their URL) reads the bytes the first pass read."""
    run = _RUN.get()
    memo = run.setdefault("remote", {}) if run is not None else {}
    if url in memo:
        paths, explicit, skipped = memo[url]
    else:
        listing = remote.resolve(url, _is_log_name)
        paths, explicit, skipped = remote.fetch(listing), listing.explicit, listing.skipped
        memo[url] = paths, explicit, skipped
        for path in paths:
            memo.setdefault(remote.display(path), ([path], True, {}))
    found.skipped.update(skipped)
    for path in paths:
        found.add(path, _key(os.stat(path)), explicit=explicit)


def file_key(path: str) -> str:
    """A file's lasting name (the store records files by it): the URL of an object, else the absolute path."""
    shown_as = remote.display(path)
    return shown_as if shown_as != path else os.path.abspath(path)


def display_expr(expr: pl.Expr) -> pl.Expr:
    """File names in a column as people see them: a copied object's URL, not its temporary path."""
    for local, url in remote.spool_prefixes().items():
        expr = expr.str.replace(local, url, literal=True)
    return expr


def expand_paths(paths: list[str] | tuple[str, ...], exclude: tuple[str, ...] = ()) -> list[str]:
    """The files of `find_files`."""
    return find_files(paths, exclude).files


_STDIN_SPOOL: str | None = None
_TEMPORARY: list[str] = []
# What one run has seen of its input (see one_reading); None outside a run.
_RUN: contextvars.ContextVar[dict | None] = contextvars.ContextVar("llm_cost_run", default=None)


@contextlib.contextmanager
def one_reading(native: bool = False, shipped: bool = False, held: HeldParquet | None = None, keep: bool = False):
    """Every pass of one run (the fast pass, a robust retry, the quarantine pass) reads the same
    input: the same files, each up to the size it had when the run first opened it, and stdin
    copied once. A log appended to during a run (a live session) otherwise gave a count from one
    pass and a quarantine file from another: `quarantined: 1` and an empty file, 3 runs in 9.
    `shipped`: the run's plans are serialized and collected in other processes (the Spark
    engine's executors), where this process's descriptor names (/proc/self/fd/N) name nothing, or
    another file: Parquet files are read there by path (see check_parquet). The Parquet files it
    checks are held open until it ends (see held.holding_parquet: `held`, `keep`), which it yields."""
    token = _RUN.set({"native": native, "shipped": shipped})
    try:
        with holding_parquet(held, keep) as holding:
            yield holding
    finally:
        _RUN.reset(token)


def read_natively(flag: bool) -> None:
    """Whether this run's plain CSV files may be scanned by Polars itself (see _native_csv)."""
    run = _RUN.get()
    if run is not None:
        run["native"] = flag


def prints_on_read() -> bool:
    """Whether a file set's reader fingerprints the files it reads (see _file_batches): in a run,
    unless its plans run in other processes."""
    run = _RUN.get()
    return run is not None and not run.get("shipped")


def read_prints() -> dict:
    """Fingerprints (analyzer/fingerprint.py) of the files a file set's reader reads in this run, taken
    from the bytes it read (see _file_batches): path -> fingerprint. The run's own dict, filled as the
    readers read (the plans may run after the run's context has ended: `price` writes its rows then)."""
    run = _RUN.get()
    return run.setdefault("prints", {}) if run is not None and not run.get("shipped") else {}


def changed_during_run() -> list[str]:
    """Files scanned by Polars itself (which reads a file as it is when the scan runs) whose size is
    no longer the one the run recorded: the run read them past that size, and must read again."""
    run = _RUN.get() or {}
    changed = []
    for path in sorted(run.get("native_paths", ())):
        try:
            size = os.stat(path).st_size
        except OSError:
            size = -1
        if size != run["size", path]:
            changed.append(path)
    return changed


def _native(path: str) -> bool:
    """May this plain file be scanned by Polars itself in this run? Polars' scanners cost a half to a
    third of the bounded readers' CPU (they map the file, and prune columns), but cannot stop at the
    size the run recorded: the run then checks afterwards that the file did not change
    (changed_during_run), and reads again with the bounded readers if it did. They read UTF-8
    strictly: a byte that is not fails the scan, and the robust pass (bounded, marking the byte)
    quarantines its row."""
    run = _RUN.get()
    if run is None or not run.get("native") or not _utf8_name(path):
        return False
    with open(path, "rb") as f:  # (Polars decompresses a file that starts like gzip or zstd, whatever its name)
        head = f.read(4)
    if head[:2] == b"\x1f\x8b" or head == b"\x28\xb5\x2f\xfd":
        return False
    run_size(path, os.stat(path).st_size, run)
    run.setdefault("native_paths", set()).add(path)
    return True


def _native_lines(path: str) -> pl.LazyFrame:
    return pl.scan_csv(
        path, has_header=False, new_columns=[LINE], separator="\x1f", quote_char=None,
        schema_overrides={LINE: pl.String}, encoding="utf8", glob=False,
    ).with_row_index("_row", offset=1).with_columns(pl.lit(False).alias(BAD))


def beyond_columns(names: list[str], width: int) -> list[str]:
    """Names for `width` columns past a CSV header's `names` (none of them), in which Polars reads a
    record's first fields past the header's (see beyond_reason). Polars reads a CSV file by a schema
    longer than its header (`missing_columns="insert"`) by position, a record's extra fields into
    the extra columns, and those after them not at all (truncate_ragged_lines)."""
    prefix = "_beyond_"
    while any(n.startswith(prefix) for n in names):
        prefix = "_" + prefix
    return [f"{prefix}{i}" for i in range(1, width + 1)]


def beyond_reason(extra: list[str], n: int, sep: str) -> pl.Expr:
    """BEYOND from the columns `extra` past a header of `n` names: a record's first field past the
    header's that is not empty (Polars reads an empty field as null; one of spaces is empty too),
    named, else null. (No Python over rows: a format per column, null where its field is.)"""
    what = "a tab" if sep == "\t" else "a comma"

    def shown(c: str) -> pl.Expr:  # (cut at 100 characters, as a malformed record is shown)
        return pl.when(pl.col(c).str.len_chars() > 100).then(pl.col(c).str.slice(0, 99) + "\u2026").otherwise(pl.col(c))
    return pl.coalesce(
        [pl.when(pl.col(c).str.strip_chars() != "").then(pl.format(
            f"more fields than the header's {n} (field {n + i}: {{}}; a field holding {what} must be quoted)",
            shown(c))) for i, c in enumerate(extra, 1)]
        or [pl.lit(None, pl.String)]).alias(BEYOND)


def beyond_text(extra: list[str], sep: str) -> pl.Expr:
    """BEYOND_RAW from the columns `extra` (see beyond_reason): the fields as a CSV record's tail
    (joined by `sep`, one holding `sep`, a quote or a line end quoted; empty ones too, but those
    after the last that is not), where one is not empty; else null."""

    def field(c: str) -> pl.Expr:
        quoted = pl.lit('"') + pl.col(c).str.replace_all('"', '""', literal=True) + pl.lit('"')
        return pl.when(pl.col(c).str.contains(f'[{re.escape(sep)}"\r\n]')).then(quoted).otherwise(pl.col(c)).fill_null("")
    some = pl.any_horizontal([pl.col(c).str.strip_chars() != "" for c in extra]) if extra else pl.lit(False)
    joined = pl.concat_str([field(c) for c in extra] or [pl.lit("")], separator=sep)
    return pl.when(some).then(joined.str.strip_chars_end(sep)).alias(BEYOND_RAW)


def with_beyond(raw: pl.Expr) -> pl.Expr:
    """`raw` (a record as a JSON object of its header's fields) with its fields past the header's
    (BEYOND_RAW), where it has some: `"fields past the header":"350"`."""
    past = pl.struct(pl.col(BEYOND_RAW).alias("fields past the header")).struct.json_encode()
    return pl.when(pl.col(BEYOND_RAW).is_null()).then(raw).otherwise(
        raw.str.strip_suffix("}") + pl.lit(",") + past.str.strip_prefix("{"))


def _without_reserved(lf: pl.LazyFrame, names: list[str]) -> pl.LazyFrame:
    own = [c for c in names if c in RESERVED]
    return lf.drop(own) if own else lf


def _native_csv(path: str, integers: tuple[str, ...]) -> pl.LazyFrame:
    sep = "\t" if _strip_compression(path)[0].endswith(".tsv") else ","
    opts = dict(separator=sep, encoding="utf8", glob=False)
    names = pl.scan_csv(path, infer_schema=False, **opts).collect_schema().names()
    # (read by a schema BEYOND_FIELDS columns longer than the header: see beyond_columns)
    extra = beyond_columns(names, BEYOND_FIELDS)
    lf = pl.scan_csv(
        path, schema={**{c: pl.Int64 if c in integers else pl.String for c in names}, **dict.fromkeys(extra, pl.String)},
        missing_columns="insert", truncate_ragged_lines=True, **opts)
    own = [c for c in names if c in RESERVED]  # (before ours are added)
    lf = lf.drop(own) if own else lf
    lf = lf.with_columns(beyond_reason(extra, len(names), sep), beyond_text(extra, sep)).drop(extra)
    header = _csv_header(path, None, _RUN.get())
    names = [c for c in names if c not in own]
    lf = lf.with_row_index("_row", offset=2).with_columns(pl.lit(False).alias(BAD))  # line 1 is the header
    renamed = _unescaped_names(header, names, sep) if b'""' in header else {}
    return lf.rename(renamed) if renamed else lf


def run_size(path: str, size: int, run: dict | None) -> int:
    """The bytes of `path` that `run` (a reader's captured `_RUN`) reads: its size when the run first
    opened it (`size` is its size now), or less if it has shrunk since. Readers capture the run when
    their plan is built, so that a plan collected after the run (rows `price` writes) reads the same."""
    if run is None:
        return size
    return min(run.setdefault(("size", path), size), size)


def temporary_file(prefix: str, suffix: str = "") -> tuple[int, str]:
    """A new private file in the temporary directory (an open descriptor and its path), removed when
    the run ends. The path is registered *before* the file exists: with mkstemp first, a SIGTERM
    between the two (the handler runs at any bytecode) ended the run with the file created and not
    yet registered, so it was left behind. A name already taken (random: never in practice) is
    dropped from the list without being touched, and another is drawn."""
    import secrets

    directory = process_dir()
    flags = os.O_RDWR | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
    while True:
        path = os.path.join(directory, f"{prefix}{secrets.token_hex(8)}{suffix}")
        _TEMPORARY.append(path)
        try:
            return os.open(path, flags, 0o600), path
        except FileExistsError:
            _TEMPORARY.remove(path)


@atexit.register
def _remove_temporary() -> None:
    for path in _TEMPORARY:
        with contextlib.suppress(OSError):
            os.unlink(path)
    if _PROCESS_DIR is not None:
        shutil.rmtree(_PROCESS_DIR, ignore_errors=True)


# Every temporary file of a process (spooled stdin, transcoded text, rows spooled for `price`, copies
# of objects read from a bucket) lies in one directory of its own, `llm-cost-run-*` in the temporary
# directory, with a marker naming the process. A process killed with -9 cannot remove it; the next
# llm-cost process removes it, once the marker shows the process that made it has ended.
RUN_DIR_PREFIX, RUN_DIR_MARKER = "llm-cost-run-", ".llm-cost-run"
_PROCESS_DIR: str | None = None


def process_dir() -> str:
    """This process's private temporary directory (0700), made on first use, after removing those
    of llm-cost processes that have ended without removing theirs (see sweep_run_dirs)."""
    global _PROCESS_DIR
    if _PROCESS_DIR is not None and os.path.isdir(_PROCESS_DIR):
        return _PROCESS_DIR
    import socket

    parent = tempfile.gettempdir()
    sweep_run_dirs(parent)
    path = tempfile.mkdtemp(prefix=RUN_DIR_PREFIX, dir=parent)
    _PROCESS_DIR = path
    tmp = os.path.join(path, RUN_DIR_MARKER + ".tmp")
    with open(tmp, "w") as f:  # (renamed into place: a half-written marker is never read as one)
        json.dump({"tool": "llm-cost", "pid": os.getpid(), "started": process_started(os.getpid()),
                   "host": socket.gethostname()}, f)
    os.rename(tmp, os.path.join(path, RUN_DIR_MARKER))
    return path


def sweep_run_dirs(parent: str) -> list[str]:
    """Remove the temporary directories (RUN_DIR_PREFIX) of llm-cost processes of this host that have
    ended; return them. A directory is removed only when it is a real directory of this user holding
    a whole marker of this host, whose process has ended: a live process's, another host's (a shared
    /tmp), another user's, one without a marker (being made), or a link, is left alone."""
    import socket

    removed = []
    try:
        names = [n for n in os.listdir(parent) if n.startswith(RUN_DIR_PREFIX)]
    except OSError:
        return removed
    for name in names:
        path = os.path.join(parent, name)
        info = read_marker(path, RUN_DIR_MARKER)
        if info is not None and info["host"] == socket.gethostname() and process_gone(info["pid"], info["started"]):
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
    return removed


def read_marker(directory: str, name: str) -> dict | None:
    """The marker `name` an llm-cost process wrote in `directory` (its pid, start time and host), or
    None unless `directory` is a real directory of this user and the marker a small regular file of
    whole JSON written by this tool: a directory that is not known to be a run's is never touched."""
    try:
        st = os.lstat(directory)
        if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.getuid():
            return None
        mark = os.path.join(directory, name)
        mst = os.lstat(mark)
        if not stat.S_ISREG(mst.st_mode) or mst.st_size > 65536:
            return None
        with open(mark, "rb") as f:
            info = json.loads(f.read())
    except (OSError, ValueError):
        return None
    if not isinstance(info, dict) or info.get("tool") != "llm-cost" or not isinstance(info.get("pid"), int) \
            or not isinstance(info.get("started"), (int, type(None))) or not isinstance(info.get("host"), str):
        return None
    return info


def process_started(pid: int) -> int | None:
    """When process `pid` started (clock ticks since boot, Linux), to tell it from a later process
    given the same pid; None where /proc is not there."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return int(f.read().rsplit(b")", 1)[1].split()[19])
    except (OSError, ValueError, IndexError):
        return None


def process_gone(pid: int, started: int | None) -> bool:
    """Whether the process that wrote a marker has ended (a pid now used by another process counts as
    ended when its start time differs). In doubt, it has not."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except (PermissionError, OverflowError, ValueError):
        return False  # (a process of another user: alive)
    now = process_started(pid)
    return started is not None and now is not None and now != started


def _spool_stdin() -> str:
    """Copy stdin to a temporary file once (per run), so it can be scanned (and sniffed) like any file."""
    global _STDIN_SPOOL
    run = _RUN.get()
    if run is not None and "stdin" not in run:
        _STDIN_SPOOL = None  # (a new run: a new stdin, in tests that run several in one process)
    if _STDIN_SPOOL is None:
        fd, path = temporary_file("llm-cost-stdin-")
        with os.fdopen(fd, "wb") as out:
            shutil.copyfileobj(sys.stdin.buffer, out)
        _STDIN_SPOOL = path
    if run is not None:
        run["stdin"] = _STDIN_SPOOL
    return _STDIN_SPOOL


HEAD_BYTES = 8 << 10


def heads(paths: list[str]) -> Iterator[bytes | None]:
    """The first HEAD_BYTES of each plain JSON Lines file (what `looks_like` looks at in a tree of
    transcripts), in order; None for other files and for a file that cannot be read. Requested from
    the disk READ_AHEAD files ahead (see _opened): on a tree of 169,492 transcripts not in the page
    cache, reading them one at a time took 17 s."""
    wanted = [p if _container_from_name(p) == ("jsonl", None) else None for p in paths]
    for fd in _opened(wanted, HEAD_BYTES, missing_ok=True):
        if fd is None:
            yield None
            continue
        try:
            yield os.read(fd, HEAD_BYTES)
        except OSError:
            yield None
        finally:
            os.close(fd)


def looks_like(path: str, container: str, compression: str | None, keys: tuple[tuple[bytes, ...], ...],
               head: bytes | None = None) -> bool:
    """A cheap look at a file's first 8 KiB (`head`, when already read), for the many files of a tree
    whose format a sibling's full peek already told: its name says `container`, and the text has one
    of each group of `keys` (JSON keys, quoted). A file that does not look like it gets the full peek
    and detection."""
    name_container, name_compression = _container_from_name(path)
    if (name_container, name_compression) != (container, compression) or compression == "zstd":
        return False
    if head is None:
        try:
            head = _read_head(path, compression, HEAD_BYTES)
        except (OSError, EOFError):
            return False
    return bool(head.strip()) and all(any(k in head for k in group) for group in keys)


def open_source(path: str, index: int = 0) -> SourceFile:
    """Identify a file's container and peek at its first records (never reads the whole file)."""
    display = "<stdin>" if path == "-" else remote.display(path)
    real = _spool_stdin() if path == "-" else path
    try:
        container, comp = _container_from_name(real) if path != "-" else (None, None)
        _not_compressed_parquet(container, comp)
        head = _read_head(real, comp)
        if container is None:
            if head[:2] == b"\x1f\x8b":
                comp = "gzip"
                head = _read_head(real, comp)
            elif head[:4] == b"\x28\xb5\x2f\xfd":
                comp = "zstd"
                head = _read_head(real, comp)
            container = _sniff(head)
            _not_compressed_parquet(container, comp)
        elif container == "json" and _is_json_lines(real, comp, head):
            container = "jsonl"  # S3 log deliveries name JSON Lines `.json.gz` (Bedrock invocation logs)
        if container == "sse":
            real, comp, container = sse_to_lines(real), None, "jsonl"
            head = _read_head(real, None)
        wide = comp is None and next((codec for bom, codec in _WIDE_BOMS if head.startswith(bom)), None)
        if wide:  # UTF-16 (Windows tools write it: PowerShell's Out-File): read as UTF-8, transcoded
            real = _transcoded(real, display, wide)
            head = _read_head(real, None)
            if container is None:
                container = _sniff(head)
            elif container == "json" and _is_json_lines(real, None, head):
                container = "jsonl"
        src = SourceFile(path=real, container=container, compression=comp, index=index, display=display)
        # A night without traffic exports an empty file (or pipes nothing): skipped with a note, in
        # any container (Polars' CSV reader refuses a file without a header).
        src.empty = len(head) < HEAD_PEEK and not head.strip() and container != "parquet"
        if not src.empty:
            _peek(src, head)
            # An export with no records (`[]`) is empty too; `{"data": []}` is a page its dialect reads.
            src.empty = src.container == "json" and not src.columns
    except (OSError, EOFError, ValueError, zlib.error, pl.exceptions.PolarsError) as e:  # ValueError: bad JSON, bad UTF-8
        raise SourceError(f"{shown(display)}: cannot read ({_one_line(e)})") from None
    return src


def _not_compressed_parquet(container: str | None, compression: str | None) -> None:
    """Parquet inside gzip or zstd is refused in words: PyArrow and Polars read a Parquet file by
    seeking to its footer, which a compressed stream does not allow (it was `damaged Parquet: magic
    bytes not found`, or a CSV reader's error, of a file that is not damaged)."""
    if container == "parquet" and compression:
        raise ValueError(f"Parquet compressed with {compression}: Parquet compresses its own pages; decompress the "
                         "file to read it")


# Byte order marks of text that is not UTF-8 (UTF-32's first: UTF-16 LE's is a prefix of it).
_WIDE_BOMS = ((codecs.BOM_UTF32_LE, "utf-32"), (codecs.BOM_UTF32_BE, "utf-32"), (codecs.BOM_UTF16_LE, "utf-16"),
              (codecs.BOM_UTF16_BE, "utf-16"))


def _transcoded(path: str, display: str, codec: str) -> str:
    """A copy of a UTF-16/32 file as UTF-8 (a temporary file, once per run, of the bytes the run
    first saw), read in its place: Polars reads only UTF-8. Lines and records stay where they are. Text
    that is not valid in its encoding is refused, naming the file (the byte order mark said what it is)."""
    run = _RUN.get()
    if run is not None and ("transcoded", path) in run:
        return run["transcoded", path]
    fd, tmp = temporary_file("llm-cost-utf8-", "-" + os.path.basename(path))
    decoder = codecs.getincrementaldecoder(codec)("strict")
    done = 0
    with open(path, "rb") as f, os.fdopen(fd, "wb") as out:
        left = run_size(path, os.fstat(f.fileno()).st_size, run)
        try:
            while left > 0 and (chunk := f.read(min(1 << 20, left))):
                left -= len(chunk)
                out.write(decoder.decode(chunk).encode())
                done += len(chunk)
            out.write(decoder.decode(b"", final=True).encode())
        except UnicodeDecodeError as e:
            raise SourceError(f"{shown(display)}: not valid {codec.upper()} text (its byte order mark says it is) at "
                              f"byte {done + e.start:,}") from None
    if run is not None:
        run["transcoded", path] = tmp
    return tmp


class _HeldFile(io.BufferedReader):
    """A held Parquet file (see _held_open), read as open(fd, "rb") reads, whose number is closed only
    while it still names this file. Was: a number closed by mistake elsewhere and given to another
    file (a traceback's source file, an import) was closed when the scope ended, under that file's
    owner, and the next file opened took it again: the stray close passed on."""

    def __init__(self, fd: int):
        super().__init__(io.FileIO(fd, "rb", closefd=False))
        self.fd, self.made = fd, os.fstat(fd)

    def close(self) -> None:
        if self.raw.closed:
            return
        try:
            super().close()
        finally:
            descriptors.close_own(self.fd, self.made)


def _held_open(path: str):
    """`path` opened to be read by Polars by its descriptor's name (see CheckedParquet): a number no
    file opened later takes, should something in the process close it by mistake (see descriptors)."""
    fd = descriptors.out_of_reach(os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0)))
    try:
        return _HeldFile(fd)
    except OSError as e:  # (a directory: IsADirectoryError, named as open(path) named it)
        os.close(fd)
        raise type(e)(e.errno, e.strerror, path) from None
    except BaseException:
        os.close(fd)
        raise


def _one_line(e: BaseException) -> str:
    return str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__


@dataclass(frozen=True)
class CheckedParquet:
    """A Parquet file check_parquet decoded: its columns of bytes, and where Polars reads it: the
    file the check read, kept open, by its descriptor's name (`/proc/self/fd/N`, `/dev/fd/N`), or
    its path when there is no such name or too many are open. `held`: what the file was when checked
    (see Held), to compare before and after Polars reads it."""

    binary: tuple[str, ...]
    source: str
    held: Held | None = None


def check_parquet(path: str) -> CheckedParquet:
    """Every page of a Parquet file decoded once by PyArrow, in batches, on a few threads (memory
    bounded by a row group's pages of one column a thread: see _decode_chunks), before Polars scans
    the same open file (CheckedParquet.source: a file replaced at its path since is not read
    unchecked; one written again in place, or read by path, is compared with its stamp: see Held);
    its columns holding bytes (at any depth: a struct's field, a list's items), each checked to hold
    UTF-8. The file is held open by the scope it is checked in (see holding_parquet).

    Polars' streaming reader panics on some damaged pages (a Rust assertion: a traceback and a
    backtrace on stderr, not an error), on a footer whose counts disagree with the pages (a column
    chunk's value count, a row group's or the file's row count: PyArrow decodes the pages and says
    nothing), and on a column of bytes written as a record's text; PyArrow raises an error naming
    what is wrong, or the rows each column decodes to are counted against the footer's, and the
    caller turns that into one line naming the file. Page checksums, when the writer stored them
    (parquet-mr does by default), are verified too. A column of few distinct strings (dictionary
    pages only) is decoded as its dictionary's indices, each checked to be in it (0.06 CPU s for 10M
    rows, 0.3 decoded to strings). It costs ~0.1 CPU s per million rows (docs/performance.md,
    "Parquet checked before Polars reads it")."""
    run = _RUN.get()
    if run is not None and ("parquet checked", path) in run:  # (a robust retry opens the file again)
        return run["parquet checked", path]
    scope, shipped = holder(), bool(run is not None and run.get("shipped"))
    if (found := scope.again(path)) is not None and (found.held.by_path or not shipped):
        return found
    import pyarrow as pa  # (imported here: most runs read no Parquet)
    import pyarrow.parquet as pq

    file = _held_open(path)
    try:
        before = stamp(file.fileno())
        head = file.read(4)  # (a file named .parquet, or an invoice, that is compressed whole)
        _not_compressed_parquet("parquet", "gzip" if head[:2] == b"\x1f\x8b" else "zstd" if head == b"\x28\xb5\x2f\xfd"
                                else None)
        file.seek(0)
        binary = _check_parquet(file, pa, pq)
        file.seek(0)
        # (held now: Polars reads the file as it is after the check, which must be the file checked)
        # (Polars reads by the descriptor's name, not this open file: given a file object, it read the
        # whole file into memory for each scan, +470 MiB at 10M rows)
        # (not for plans run in another process: a descriptor's name there is that process's)
        held = scope.hold(path, file, shipped)
    except ValueError:
        # (a file written while PyArrow read it fails as damaged, "File too short": say it changed)
        changed = difference(before, stamp(file.fileno())) is not None
        file.close()
        if changed:
            raise ValueError("it changed while it was checked: run again") from None
        raise
    except BaseException:
        file.close()
        raise
    if difference(before, held.stamp) is not None:
        raise ValueError("it changed while it was checked: run again")
    checked = scope.found[path] = CheckedParquet(binary, held.source, held)
    if run is not None:
        run["parquet checked", path] = checked
    return checked


def _dictionary_columns(meta, schema) -> list[str]:
    """Top-level text columns whose every chunk holds a dictionary page and few bytes a row (its
    indices: a chunk that fell back to plain values holds at least 4 bytes a value)."""
    import pyarrow as pa

    found = []
    for i, column in enumerate(schema):
        if not (pa.types.is_string(column.type) or pa.types.is_large_string(column.type)):
            continue
        chunks = [meta.row_group(g).column(i) for g in range(meta.num_row_groups)]
        if chunks and all(c.path_in_schema == column.name and c.has_dictionary_page
                          and c.total_uncompressed_size < 4 * max(c.num_values, 1) for c in chunks):
            found.append(column.name)
    return found


def check_chunk_types(meta) -> None:
    """Raise ValueError ("damaged Parquet: ...") unless each row group has the schema's columns and
    each column chunk the schema's physical type. Called before any chunk's `.statistics`: PyArrow,
    reading the statistics of a chunk whose footer says another type (one damaged byte), throws
    where nothing catches it and the process aborts ("terminate called ...": no line naming the
    file; found by tests/test_fuzz.py, fixtures/damaged-parquet/usage-physical-type.parquet). Its
    callers: the check of a Parquet input here, and the store reading its data files' statistics."""
    for g in range(meta.num_row_groups):
        group = meta.row_group(g)
        if group.num_columns != meta.num_columns:
            raise ValueError(f"damaged Parquet: row group {g + 1} has {group.num_columns} columns, the schema "
                             f"{meta.num_columns}")
        for j in range(meta.num_columns):
            if group.column(j).physical_type != meta.schema.column(j).physical_type:
                raise ValueError(f"damaged Parquet: column {meta.schema.column(j).path!r} in row group {g + 1} is "
                                 f"of type {group.column(j).physical_type}, its schema says "
                                 f"{meta.schema.column(j).physical_type}")


def _text_statistics(meta) -> None:
    """Each chunk's min and max of a text column are UTF-8: the pages decode whole without a word of
    them, and Polars (filtering by them) refused the run naming no file ("Invalid UTF8 in
    Statistics"). PyArrow decodes them to str: UnicodeDecodeError when they are not. The caller
    checks the chunks' types first (see check_chunk_types)."""
    for g in range(meta.num_row_groups):
        group = meta.row_group(g)
        for j in range(meta.num_columns):
            chunk = group.column(j)
            stats = chunk.statistics
            if stats is not None and stats.has_min_max and chunk.physical_type == "BYTE_ARRAY":
                try:
                    stats.min, stats.max  # noqa: B018 - decoded for the error
                except UnicodeDecodeError:
                    raise ValueError(f"damaged Parquet: the statistics of column {chunk.path_in_schema!r} in row "
                                     f"group {g + 1} are not UTF-8 text") from None


def _holds_text(t, pa) -> bool:
    """Whether an Arrow type holds strings, at any depth (a struct's field, a list's items)."""
    if pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t):
        return True
    return any(_holds_text(t.field(i).type, pa) for i in range(t.num_fields))


def _readable_zones(schema, meta, pa) -> None:
    """Polars panics reading the schema of a Parquet file whose timestamps carry a time zone it does
    not know (Arrow allows a fixed offset, `+05:30`, which pandas writes for a fixed-offset zone; and
    names of the system's zone files that are no IANA zone: `localtime`, `posixrules`, `Factory`,
    `right/UTC`): a Rust backtrace, exit 2 with no word of which file. Such a column is refused here,
    named. A zone must be one Python's zoneinfo and Polars both take: zoneinfo alone took the system's
    file names, which Polars' own database (chrono-tz) lacks; Polars alone took `-0800`, which its
    Parquet reader panics on. The schema Arrow stored in the file is looked at too: PyArrow reads a
    dictionary of times in `+05:30` as times in UTC, and Polars reads the stored schema, and panics."""
    import base64
    import zoneinfo

    import polars as pl

    def zones(t):
        if pa.types.is_timestamp(t) and t.tz is not None:
            yield t.tz
        if pa.types.is_dictionary(t):  # (its values' type: the times themselves)
            yield from zones(t.value_type)
        for i in range(getattr(t, "num_fields", 0)):  # (a struct's fields, a list's or map's items)
            yield from zones(t.field(i).type)

    stored = (meta.metadata or {}).get(b"ARROW:schema")
    try:
        schemas = [schema, pa.ipc.read_schema(pa.py_buffer(base64.b64decode(stored)))] if stored else [schema]
    except (ValueError, pa.ArrowException):  # (not one Arrow wrote: what Polars makes of it is not ours to say)
        schemas = [schema]
    for column in (c for s in schemas for c in s):
        for tz in zones(column.type):
            try:
                zoneinfo.ZoneInfo(tz)
                pl.Series([0]).cast(pl.Datetime("ms", tz))
            except (ValueError, OSError, zoneinfo.ZoneInfoNotFoundError, pl.exceptions.PolarsError):
                # (OSError: a directory of zones, `Asia`, or a name too long for a file)
                raise ValueError(f"column {column.name!r} holds times in zone {tz!r}, which Polars cannot read "
                                 "(a fixed offset or no IANA zone name): write them in UTC or a named zone") from None


def _check_parquet(file, pa, pq) -> tuple[str, ...]:
    # (PyArrow reads a native file of the same open file when there is one: see _native_parquet)
    native = _native_parquet(file, pa)
    source = file if native is None else native
    try:
        with pq.ParquetFile(source, pre_buffer=False) as f:
            meta = f.metadata
            check_chunk_types(meta)  # (before anything reads a chunk's metadata: see there)
            _readable_zones(f.schema_arrow, meta, pa)
            dictionary = _dictionary_columns(meta, f.schema_arrow) if meta.num_columns == len(f.schema_arrow) else []
            _text_statistics(meta)
        if native is None:
            file.seek(0)

        def reader():
            # (the footer read once: each reader is given it)
            return pq.ParquetFile(source, metadata=meta, pre_buffer=False, page_checksum_verification=True,
                                  read_dictionary=dictionary or None)

        with reader() as f:
            rows = [meta.row_group(i).num_rows for i in range(meta.num_row_groups)]
            if sum(rows) != meta.num_rows:
                raise ValueError(f"damaged Parquet: its footer counts {meta.num_rows:,} rows, its row groups "
                                 f"{sum(rows):,}")
            fields = list(f.schema_arrow)
            binary = [c.name for c in fields if _as_text(c.type) != c.type]
        # (a column's row group at a time: its pages in memory, one per thread; column by column)
        chunks = [(field, group, expected) for field in fields for group, expected in enumerate(rows)]
        threads = 1 if native is None else min(_check_threads(), len(chunks))
        _decode_chunks(reader, chunks, dictionary, threads, pa)
    except pa.ArrowNotImplementedError as e:  # (Polars' Int128, say: whole, but PyArrow cannot check it)
        raise ValueError(f"Parquet that PyArrow cannot decode, damaged or of a type it does not read: "
                         f"{_one_line(e)}") from None
    except (OSError, pa.ArrowException) as e:
        raise ValueError(f"damaged Parquet: {_one_line(e)}") from None
    finally:
        if native is not None:
            native.close()
    return tuple(binary)


def _check_threads() -> int:
    """How many threads decode a file's column chunks at once: the cores this process may use, at
    most 4 (each holds a column chunk's pages; the check of 10M rows is a second or so of CPU)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = os.cpu_count() or 1
    return max(1, min(cores, 4))


def _native_parquet(file, pa):
    """A PyArrow file reading the same open file as `file` (a duplicate of its descriptor: never
    the path, which may name another file by now), or None (not a regular file, or no descriptor).

    Read through the Python file object, every read PyArrow makes (a column chunk's pages) is a call
    back into Python (the GIL taken, a seek and a read on the one shared position): one thread at a
    time. A native file
    reads at an offset (pread) without the GIL, from any number of threads at once; the duplicate
    shares the held descriptor's position, which reads at an offset leave alone. Not a memory map:
    a file truncated while mapped kills the process (SIGBUS) where a read says it is too short."""
    try:
        fd = file.fileno()
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        dup = os.dup(fd)
    except (AttributeError, OSError, ValueError):  # (no descriptor to spare, say: read as before)
        return None
    try:
        return pa.OSFile(dup)  # (it owns the duplicate from here: closed with it)
    except (OSError, pa.ArrowException):
        # (closed here unless Arrow closed it already: not a number since reused by another file)
        with contextlib.suppress(OSError):
            if os.path.samestat(os.fstat(dup), os.fstat(fd)):
                os.close(dup)
        return None


def _decode_chunks(reader, chunks, dictionary, threads: int, pa) -> None:
    """Each (column, row group) of `chunks` decoded by `_decode_chunk`, on `threads` threads (PyArrow
    decodes without the GIL). The error raised is the one of the first chunk, in `chunks`' order,
    that fails: the line a run gives does not depend on which thread was quicker. Every chunk before
    it is decoded; none after it is started once it is found."""
    if threads <= 1:
        with reader() as f:
            for chunk in chunks:
                _decode_chunk(f, *chunk, dictionary, pa)
        return
    import threading

    lock = threading.Lock()
    todo = iter(enumerate(chunks))
    failed: dict[int, BaseException] = {}
    stop = [False]  # (the calling thread interrupted: the others stop after their chunk)

    def work() -> None:
        try:
            f = reader()
        except BaseException as e:  # (-1: before any chunk of its own, as the first reader's error)
            with lock:
                failed[-1] = e
            return
        with f:
            while True:
                with lock:
                    i, chunk = next(todo, (None, None))
                    if i is None or stop[0] or (failed and i > min(failed)):
                        return
                try:
                    _decode_chunk(f, *chunk, dictionary, pa)
                except BaseException as e:
                    with lock:
                        failed[i] = e
                    return

    others = [threading.Thread(target=work, name=f"llm-cost parquet check {n}", daemon=True)
              for n in range(threads - 1)]
    try:
        for t in others:
            t.start()
        work()
    finally:
        with lock:
            stop[0] = True
        for t in others:
            t.join()
    if failed:
        raise failed[min(failed)]


def _decode_chunk(f, field, group: int, expected: int, dictionary, pa) -> None:
    """Column `field` of row group `group` decoded, in batches, validated and counted against the
    footer's `expected` rows."""
    text = _as_text(field.type)
    holds_text = _holds_text(field.type, pa)
    found = 0
    for batch in f.iter_batches(batch_size=1 << 16, row_groups=[group], columns=[field.name], use_threads=False):
        found += batch.num_rows
        # (indices out of the dictionary; text that is not UTF-8, which PyArrow
        # decodes without a word and Polars refuses naming no file: errors here)
        if field.name in dictionary or holds_text:
            batch.column(0).validate(full=True)
        if text != field.type:
            try:
                batch.column(0).cast(text)
            except pa.ArrowInvalid:
                raise ValueError(f"column {field.name!r} holds bytes that are not UTF-8 text") from None
    if found != expected:
        raise ValueError(f"damaged Parquet: column {field.name!r} holds {found:,} rows of row group "
                         f"{group + 1}, whose footer counts {expected:,}")


def _as_text(t):
    """A PyArrow type with its bytes (BINARY, at any depth) as text: what a column of bytes is read as."""
    import pyarrow as pa

    if pa.types.is_binary(t) or pa.types.is_fixed_size_binary(t) or pa.types.is_binary_view(t):
        return pa.string()
    if pa.types.is_large_binary(t):
        return pa.large_string()
    if pa.types.is_map(t):
        return pa.map_(_as_text(t.key_type), _as_text(t.item_type))
    if pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t):
        item = pa.field(t.value_field.name, _as_text(t.value_type), t.value_field.nullable)
        if pa.types.is_fixed_size_list(t):
            return pa.list_(item, t.list_size)
        return pa.large_list(item) if pa.types.is_large_list(t) else pa.list_(item)
    if pa.types.is_struct(t):
        return pa.struct([pa.field(f.name, _as_text(f.type), f.nullable) for f in t])
    return t


def _polars_text(dtype: pl.DataType) -> pl.DataType:
    """A Polars type with Binary (at any depth) as String: the cast scan_parquet makes of a column of bytes."""
    if dtype == pl.Binary:
        return pl.String
    if isinstance(dtype, pl.List):
        return pl.List(_polars_text(dtype.inner))
    if isinstance(dtype, pl.Array):
        return pl.Array(_polars_text(dtype.inner), dtype.shape)
    if isinstance(dtype, pl.Struct):
        return pl.Struct({f.name: _polars_text(f.dtype) for f in dtype.fields})
    if isinstance(dtype, pl.Map):
        return pl.Map(_polars_text(dtype.key), _polars_text(dtype.value))
    return dtype


def _lone_carriage_returns(head: bytes, path: str) -> None:
    """A CSV whose lines end in a lone carriage return (classic Mac OS) is, to Polars, one line: its
    records were read as column names, and the file refused as an unknown format or blamed on a
    "quote inside a column name" (attack29). Refused as what it is when the header's first line end
    is a lone `\r` outside quotes (a header holds no line break of its own unquoted)."""
    at = re.search(rb"\r(?![\r\n])", head)  # (`\r\r\n`, a doubled CR some tools write, is a line end)
    if (at is not None and at.end() < len(head) and head.count(b'"', 0, at.start()) % 2 == 0
            and b"\n" not in head[:at.start()]):  # (a `\r` last in the head may be followed by its `\n`)
        raise SourceError(f"{shown(path)}: its lines end in a lone carriage return (\\r, as classic Mac OS wrote "
                          "them), which no CSV reader here splits: convert them to \\n or \\r\\n")


def _peek(src: SourceFile, head: bytes) -> None:
    if src.container != "parquet" and head.count(b"\n"):
        src.record_bytes = len(head) // head.count(b"\n")
    if src.container == "parquet":
        checked = check_parquet(src.path)
        src.checked, src.held = checked.source, checked.held
        schema = src.scan_parquet().collect_schema()
        src.columns = list(schema.names())
        src.binary = tuple((c, _polars_text(schema[c])) for c in checked.binary)
        src.sample = src.scan_parquet().head(SAMPLE_RECORDS).collect().to_dicts()
    elif src.container == "csv":
        _lone_carriage_returns(head, src.path)
        # (the reader every pass uses: the same columns; small pieces, as only the first records are read)
        lf = bounded_csv(src.path, src.compression, piece_bytes=PEEK_BYTES)
        src.columns = [c for c in lf.collect_schema().names() if c not in ("_row", BAD, BEYOND, BEYOND_RAW)]
        src.sample = lf.head(SAMPLE_RECORDS).collect().drop("_row", BAD, BEYOND, BEYOND_RAW).to_dicts()
    elif src.container == "jsonl":
        keys: dict[str, None] = {}
        for rec in _first_records(src, head):
            src.sample.append(rec)
            keys.update(dict.fromkeys(rec))
        src.columns = list(keys)
    elif src.container == "json":
        src.sample = load_json_records(src, first_values)[:SAMPLE_RECORDS]
        keys = {}
        for rec in src.sample:
            keys.update(dict.fromkeys(rec))
        src.columns = list(keys)


# The peek decodes the records of the first PEEK_BYTES (at least MIN_RECORDS of them, reading on
# through long lines if it must, up to MAX_PEEK): enough to detect a format and see its keys, and
# cheap for a tree of thousands of transcripts whose lines are kilobytes long.
PEEK_BYTES, MIN_RECORDS, MAX_PEEK = 16 << 10, 5, 8 << 20


def first_values(pairs: list[tuple[str, object]]) -> dict:
    """json's object_pairs_hook that keeps a key's FIRST value when an object names it twice, as the
    readers of the logs do (Polars' decoder; a JSON path on the robust reading after
    dialects/_json_text.first_keys_only). json keeps the last: a sample decoded that way could detect
    `{"type": "message", "type": "result", ...}` as one format (and take its values: a stream or not,
    its timestamps' layout) while the reader reads another."""
    out = dict(pairs)
    if len(out) != len(pairs):  # (a key named twice: rare, so the plain dict serves every other object)
        out = {}
        for k, v in pairs:
            out.setdefault(k, v)
    return out


def loads_first(text: str | bytes):
    """`json.loads` keeping each key's first value (see first_values): for log data, where a
    decoded value is used for what the reader will read."""
    return json.loads(text, object_pairs_hook=first_values)


def _first_records(src: SourceFile, head: bytes):
    if src.compression == "zstd":  # the head holds the first lines already
        lines = iter(head.splitlines(keepends=True))
    else:
        f = _gunzipped(src.path) if src.compression == "gzip" else open(src.path, "rb")
        lines = iter(f)
    found = used = 0
    try:
        for raw in lines:
            used += len(raw)
            line = raw.decode("utf-8", errors="replace").lstrip(BOM).strip()
            if line:
                try:
                    rec = loads_first(line)
                except (ValueError, RecursionError):  # (nested deeper than Python's decoder goes)
                    rec = None  # a broken line: the records around it still tell the format
                if isinstance(rec, dict):
                    found += 1
                    yield rec
            if found >= SAMPLE_RECORDS or (used >= PEEK_BYTES and found >= MIN_RECORDS) or used >= MAX_PEEK:
                break
    finally:
        if src.compression != "zstd":
            f.close()


def load_json_records(src: SourceFile, pairs_hook=None, parse_float=None) -> list[dict]:
    """A whole-file JSON document as a list of records: an array of objects, or one object
    (API exports wrap records as {"data": [...]}; dialects that know such shapes unwrap them).
    `pairs_hook`, `parse_float`: json's object_pairs_hook and parse_float."""
    opener = gzip.open if src.compression == "gzip" else open
    try:
        if src.compression == "zstd":
            raw = pl.read_csv(src.path, has_header=False, separator="\x1f", quote_char=None,
                              new_columns=["l"], schema_overrides={"l": pl.String}, glob=False)["l"].to_list()
            doc = json.loads("\n".join(x or "" for x in raw), object_pairs_hook=pairs_hook, parse_float=parse_float)
        else:
            with opener(src.path, "rt", encoding="utf-8-sig") as f:
                doc = json.load(f, object_pairs_hook=pairs_hook, parse_float=parse_float)
    except RecursionError:
        raise SourceError(f"{src.path}: JSON nested too deep to be a log or report") from None
    if isinstance(doc, list):
        return [r if isinstance(r, dict) else {"_value": r} for r in doc]
    if isinstance(doc, dict):
        return [doc]
    raise SourceError(f"{shown(src.path)}: JSON document is neither an array nor an object")


def sse_to_lines(path: str) -> str:
    """Raw server-sent events as JSON Lines in a temporary file: each `data:` line's payload (the event
    as JSON, exactly what a log of the same events as JSON lines holds) on the same line number, and
    every other line (`event:`, ids, comments, headers, the blank line ending each event, `data: [DONE]`)
    blank, so that a record's line is its line in the original file. A payload split over several
    `data:` lines in a row (a server sending pretty-printed JSON) is joined, as the SSE standard joins an
    event's data, on its first line: read piece by piece, each was a broken record, or the capture went
    unrecognised. A line continues the one before only if that one is no JSON value alone, so captures
    whose events are not separated by blank lines still read one record per line. (Joined with a
    space, not the standard's newline: the same JSON value, on one line.)"""
    line = pl.col(LINE).fill_null("").str.strip_chars_end("\r")  # (a blank line is read as null)
    data = line.str.starts_with("data:")
    payload = line.str.strip_prefix("data:").str.strip_chars_start(" ")
    complete = payload.str.json_path_match("$").is_not_null() | (payload.str.strip_chars() == "[DONE]")
    follows = (data & data.shift(1) & ~complete.shift(1)).fill_null(False)
    starts = data & ~follows
    whole = pl.when(data).then(payload).drop_nulls().str.join(" ").over(starts.cum_sum())
    keep = starts & (whole.str.strip_chars() != "[DONE]")
    fd, tmp = temporary_file("llm-cost-sse-", ".jsonl")
    os.close(fd)
    _lines(path, False).select(pl.when(keep).then(whole).otherwise(pl.lit("")).alias(LINE)).sink_csv(
        tmp, include_header=False, quote_style="never")
    st = os.stat(path)
    os.utime(tmp, ns=(st.st_atime_ns, st.st_mtime_ns))  # records without a time are dated by the file's
    return tmp


def key_twice(key: str) -> str:
    # JSON readers differ on such a record (Python and jq take the last value, Polars' readers the
    # first), and a CSV header naming a column twice is refused: neither value is counted silently.
    return f"a record names key {key!r} twice: which value counts is ambiguous (JSON readers differ); remove one"


def _float_or_text(text: str) -> float | str:
    """A JSON number with a fraction or exponent as json_to_lines writes it again: the float when
    its rendering is the text, else the text itself (as a JSON string). Through a float,
    `1.00000000000000000001` and `100e-2` were written back as 1.0 and counted as 1 token, where
    the same text in JSON Lines or CSV is quarantined; as text it gets their verdict."""
    value = float(text)
    return value if repr(value) == text else text


class _Pairs(dict):
    """A JSON object naming a key twice, as json reads it (its last value), with its pairs as written."""

    def __init__(self, items: list):
        super().__init__(items)
        self.pairs = items


def _dumps(value) -> str:
    """json.dumps (compact), writing a _Pairs object's pairs as they were written."""
    if isinstance(value, dict):
        items = value.pairs if isinstance(value, _Pairs) else value.items()
        return "{" + ",".join(json.dumps(k) + ":" + _dumps(v) for k, v in items) + "}"
    if isinstance(value, list):
        return "[" + ",".join(_dumps(v) for v in value) + "]"
    return json.dumps(value)


def json_to_lines(src: SourceFile) -> SourceFile:
    """A JSON array rewritten as JSON Lines in a temporary file, one record per line, so that it
    goes through the same lazy, line-numbered path as JSONL (record i is line i)."""
    run = _RUN.get()
    tmp = run.get(("json", src.path)) if run is not None else None
    if tmp is None:  # (once per run: every pass reads the same records, even if the file changes)
        twice = {}  # id of an object naming a key twice -> the key (json keeps its last value)

        def pairs(items: list) -> dict:
            obj = dict(items)
            if len(obj) != len(items):
                keys = [k for k, _ in items]
                obj = _Pairs(items)
                twice[id(obj)] = next(k for i, k in enumerate(keys) if k in keys[:i])
            return obj
        try:
            records = load_json_records(src, pairs, _float_or_text)
        except ValueError as e:
            raise SourceError(f"{shown(src.display)}: invalid JSON ({_one_line(e)})") from None
        if twice:  # (a record's own key; one repeated inside a value is not read as a field)
            i, key = next(((i, twice[id(r)]) for i, r in enumerate(records, 1) if id(r) in twice), (0, None))
            if key is not None:
                raise SourceError(f"{shown(src.display)} record {i:,}: {key_twice(key)}")
        # A nested object naming a key twice is written with both pairs (_dumps), as a JSON Lines
        # file holding the record writes it: a mapped format then reads the line the .jsonl gives
        # it, and counts the same value (the decoder's, the first), where a dict would keep json's
        # last (mapped._with_count_texts). Only a file holding such an object pays for _dumps.
        dumps = _dumps if twice else functools.partial(json.dumps, separators=(",", ":"))
        fd, tmp = temporary_file("llm-cost-json-", ".jsonl")
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            for rec in records:
                out.write(dumps(rec))
                out.write("\n")
        if run is not None:
            run["json", src.path] = tmp
    return SourceFile(path=tmp, container="jsonl", index=src.index, columns=src.columns,
                      sample=src.sample, display=src.display)

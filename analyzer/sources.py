"""Find the files behind the user's paths and open each as a lazy scan.

Paths may be files, directories (walked recursively), globs or `-` (stdin). The container (CSV,
JSONL/NDJSON, JSON array, Parquet, or raw server-sent events) comes from the extension, or from the
first bytes when the extension says nothing; `.gz` and `.zst` are read by Polars' scanners directly.

Text containers are scanned with every field as a string: counts and timestamps are validated by the
dialect, so that one bad value quarantines one row instead of failing the whole file.
"""

from __future__ import annotations

import atexit
import collections
import contextlib
import dataclasses
import glob
import gzip
import io
import json
import os
import shutil
import stat
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field

import polars as pl
from polars.io.plugins import register_io_source

from .errors import SourceError

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

    def __post_init__(self) -> None:
        self.display = self.display or self.path

    def expected_rows(self) -> int:
        """A cheap estimate of the number of records (exact for Parquet, from its metadata); used to
        size work that must fit in memory."""
        if self.container == "parquet":
            return pl.scan_parquet(self.path, glob=False).select(pl.len()).collect().item()
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
        is not an integer: callers then read the file again as strings (the robust path)."""
        return _scan_csv_strings(self.path, integers)

    def scan_lines(self, exact_lines: bool = True, lossy: bool = True) -> pl.LazyFrame:
        """JSON Lines as one string column per line; blank lines keep their place so that
        `source_row` is the line number a user sees in an editor.

        A file set (`members`) is read by `file_set_lines` unless `lossy`: it fails on bytes that are
        not UTF-8, and the robust pass (`lossy=True`) reads them replaced, so that such a line is
        quarantined rather than failing the run."""
        if self.members and not lossy and self.compression is None:
            return file_set_lines(self.paths)
        lf = _lines(self.paths if self.members else self.path, bool(self.members))
        lf = lf.with_row_index("_row", offset=1)
        if not self.members or not exact_lines:
            return lf
        # One scan numbers rows across its files, in order: a row's line in its own file is its
        # number minus the rows of the files before it (counted by a pass that decodes nothing).
        # Only per-request outputs and the quarantine file need it: a report needs a row's
        # identity (its file and number in the scan), not its line.
        counts = _lines(self.paths, True).group_by("_path").agg(pl.len()).collect(engine="streaming")
        per_file = dict(zip(counts["_path"].to_list(), counts["len"].to_list()))
        before, offsets = 0, {}
        for p in self.paths:
            offsets[p] = before
            before += per_file.get(p, 0)
        offset = pl.col("_path").replace_strict(offsets, default=0, return_dtype=pl.Int64)
        return lf.with_columns((pl.col("_row").cast(pl.Int64) - offset).alias("_line_no"))

    def scan_ndjson(self, schema: dict) -> pl.LazyFrame:
        """JSON Lines through Polars' native reader (fast; fails on a malformed line). Blank lines
        are skipped, so `_row` counts records: exact line numbers come from the robust path."""
        # (this reader always expands patterns: a file named `[x].jsonl` is escaped to be itself)
        return pl.scan_ndjson(glob.escape(self.path), schema=schema, row_index_name="_row", row_index_offset=1)

    def scan_parquet(self) -> pl.LazyFrame:
        return pl.scan_parquet(self.path, glob=False)


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
    needs neither; the quarantine file does), from each file's count of lines. Bytes that are not
    UTF-8 fail the batch (a ComputeError): the robust pass then reads the files with replacement."""
    names = pl.Series("_path", paths, dtype=pl.String)
    schema = {LINE: pl.String, "_path": pl.String, "_row": pl.get_index_type(), "_line_no": pl.Int64}

    def batches(with_columns: list[str] | None, predicate: pl.Expr | None, n_rows: int | None,
                _batch_size: int | None):
        asked = set(schema if with_columns is None else with_columns)
        if predicate is not None:
            asked |= set(predicate.meta.root_names())
        where = "_path" in asked or "_line_no" in asked
        row = 1
        for first, text, ends in _file_batches(paths, batch_bytes):
            frame = pl.read_lines(text, name=LINE)  # (it drops a `\r` before a newline)
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
            if predicate is not None:
                frame = frame.filter(predicate)
            if with_columns is not None:
                frame = frame.select(with_columns)
            if n_rows is not None:
                frame = frame.head(n_rows)
                n_rows -= frame.height
            yield frame
            if n_rows == 0:
                return

    return register_io_source(batches, schema=schema, explain_name="llm-cost file set",
                              explain_detail=f"{len(paths):,} files")


def _file_batches(paths: list[str], batch_bytes: int) -> Iterator[tuple[int, io.BytesIO, list[int]]]:
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
    try:
        while first < len(paths):
            fds, sizes, total = [], [], 0  # this batch's files (each opened ahead), their sizes
            try:
                for fd in opened:
                    fds.append(fd)
                    sizes.append(_size(fd, paths[first + len(sizes)]))
                    total += sizes[-1] + 1  # (and a newline, at most)
                    if total >= batch_bytes:
                        break
                buf = _batch_buffer(buf, total)
                ends, end = [], 0
                with buf.getbuffer() as view:
                    for k, (fd, size) in enumerate(zip(fds, sizes)):
                        got = _read_into(fd, view[end:end + size], paths[first + k])
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
    try:
        st = os.fstat(fd)
    except OSError as e:
        raise SourceError(f"{path}: cannot read ({e.strerror})") from None
    if not stat.S_ISREG(st.st_mode):
        raise SourceError(f"{path}: not a regular file")
    return st.st_size


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
        raise SourceError(f"{path}: cannot read ({e.strerror})") from None
    return got


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
            out.append(dataclasses.replace(src, path=paths[start], display=paths[start], index=indexes[start],
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
            raise SourceError(f"{path}: cannot read ({e.strerror})") from None
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


def _scan_csv_strings(path: str, integers: tuple[str, ...] = ()) -> pl.LazyFrame:
    sep = "\t" if _strip_compression(path)[0].endswith(".tsv") else ","
    return pl.scan_csv(
        path, infer_schema=False, separator=sep, encoding="utf8-lossy", truncate_ragged_lines=True,
        schema_overrides={c: pl.Int64 for c in integers} or None, glob=False,
    ).with_row_index("_row", offset=2)  # line 1 is the header


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


def _read_head(path: str, compression: str | None, size: int = 1 << 16) -> bytes:
    if compression == "gzip":
        with gzip.open(path, "rb") as f:
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
        with (gzip.open if compression == "gzip" else open)(path, "rb") as f:
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


def _walk(directory: str) -> list[str]:
    """Every log file under a directory; an unreadable subdirectory is an error, not a silent gap.
    Only regular files are logs (a pipe would block the reader); links to directories are not
    followed, as os.walk does not."""
    found: list[str] = []
    todo = [directory]
    while todo:
        where = todo.pop()
        try:
            with os.scandir(where) as it:
                entries = list(it)
        except OSError as e:
            raise SourceError(f"{e.filename or where}: cannot read directory ({e.strerror})") from None
        subdirs = []
        for entry in entries:
            name = entry.name
            if name.startswith("."):
                continue
            if entry.is_dir(follow_symlinks=False):
                subdirs.append(entry.path)
            elif (entry.is_file() and not name.startswith("llm-cost-quarantine")
                  and _container_from_name(name)[0] is not None):
                found.append(entry.path)
        todo.extend(sorted(subdirs, reverse=True))
    return sorted(found)


def expand_paths(paths: list[str] | tuple[str, ...], exclude: tuple[str, ...] = ()) -> list[str]:
    """Files behind the user's arguments, each once, in a stable order. Directory walks skip hidden
    files, llm-cost's own quarantine files and `exclude` (the run's outputs, which may live there)."""
    skip = {os.path.realpath(p) for p in exclude if p}
    skip_names = {os.path.basename(p) for p in skip}
    if not paths:
        raise SourceError("no input: give one or more files, directories or globs (or - for stdin)")
    out: list[str] = []
    for p in paths:
        if p == "-":
            out.append(p)
        elif os.path.isdir(p):
            # realpath only for names that could be an excluded file: trees hold thousands of files
            found = [f for f in _walk(p) if os.path.basename(f) not in skip_names or os.path.realpath(f) not in skip]
            if not found:
                raise SourceError(f"{p}: directory holds no .csv/.jsonl/.ndjson/.json/.parquet files (optionally .gz/.zst)")
            out.extend(found)
        elif any(ch in p for ch in "*?[") and not os.path.isfile(p):  # a file named `[x].csv` is that file
            found = sorted(f for f in glob.glob(p, recursive=True) if os.path.isfile(f))
            if not found:
                raise SourceError(f"{p}: no file matches this pattern")
            out.extend(found)
        elif os.path.isfile(p):
            out.append(p)
        elif os.path.exists(p):
            raise SourceError(f"{p}: not a regular file or directory")
        else:
            raise SourceError(f"{p}: no such file or directory")
    if len(paths) == 1:  # one argument cannot name a file twice
        return out
    seen: set[str] = set()
    unique = []
    for f in out:
        key = f if f == "-" else os.path.realpath(f)
        if key not in seen:
            seen.add(key)
            unique.append(f)
    return unique


_STDIN_SPOOL: str | None = None
_TEMPORARY: list[str] = []


@atexit.register
def _remove_temporary() -> None:
    for path in _TEMPORARY:
        with contextlib.suppress(OSError):
            os.unlink(path)


def _spool_stdin() -> str:
    """Copy stdin to a temporary file once, so it can be scanned (and sniffed) like any file."""
    global _STDIN_SPOOL
    if _STDIN_SPOOL is None:
        fd, path = tempfile.mkstemp(prefix="llm-cost-stdin-")
        _TEMPORARY.append(path)
        with os.fdopen(fd, "wb") as out:
            shutil.copyfileobj(sys.stdin.buffer, out)
        _STDIN_SPOOL = path
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
    display = "<stdin>" if path == "-" else path
    real = _spool_stdin() if path == "-" else path
    try:
        container, comp = _container_from_name(real) if path != "-" else (None, None)
        head = _read_head(real, comp)
        if container is None:
            if head[:2] == b"\x1f\x8b":
                comp = "gzip"
                head = _read_head(real, comp)
            elif head[:4] == b"\x28\xb5\x2f\xfd":
                comp = "zstd"
                head = _read_head(real, comp)
            container = _sniff(head)
        elif container == "json" and _is_json_lines(real, comp, head):
            container = "jsonl"  # S3 log deliveries name JSON Lines `.json.gz` (Bedrock invocation logs)
        if container == "sse":
            real, comp, container = sse_to_lines(real), None, "jsonl"
            head = _read_head(real, None)
        src = SourceFile(path=real, container=container, compression=comp, index=index, display=display)
        _peek(src, head)
    except (OSError, EOFError, ValueError, pl.exceptions.PolarsError) as e:  # ValueError: bad JSON, bad UTF-8
        raise SourceError(f"{display}: cannot read ({_one_line(e)})") from None
    return src


def _one_line(e: BaseException) -> str:
    return str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__


def _peek(src: SourceFile, head: bytes) -> None:
    if src.container != "parquet" and head.count(b"\n"):
        src.record_bytes = len(head) // head.count(b"\n")
    if src.container == "parquet":
        src.columns = list(pl.scan_parquet(src.path, glob=False).collect_schema().names())
        src.sample = pl.scan_parquet(src.path, glob=False).head(SAMPLE_RECORDS).collect().to_dicts()
    elif src.container == "csv":
        lf = _scan_csv_strings(src.path)
        src.columns = [c for c in lf.collect_schema().names() if c != "_row"]
        src.sample = lf.head(SAMPLE_RECORDS).collect().drop("_row").to_dicts()
    elif src.container == "jsonl":
        keys: dict[str, None] = {}
        for rec in _first_records(src, head):
            src.sample.append(rec)
            keys.update(dict.fromkeys(rec))
        src.columns = list(keys)
    elif src.container == "json":
        src.sample = load_json_records(src)[:SAMPLE_RECORDS]
        keys = {}
        for rec in src.sample:
            keys.update(dict.fromkeys(rec))
        src.columns = list(keys)


# The peek decodes the records of the first PEEK_BYTES (at least MIN_RECORDS of them, reading on
# through long lines if it must, up to MAX_PEEK): enough to detect a format and see its keys, and
# cheap for a tree of thousands of transcripts whose lines are kilobytes long.
PEEK_BYTES, MIN_RECORDS, MAX_PEEK = 16 << 10, 5, 8 << 20


def _first_records(src: SourceFile, head: bytes):
    if src.compression == "zstd":  # the head holds the first lines already
        lines = iter(head.splitlines(keepends=True))
    else:
        opener = gzip.open if src.compression == "gzip" else open
        f = opener(src.path, "rb")
        lines = iter(f)
    found = used = 0
    try:
        for raw in lines:
            used += len(raw)
            line = raw.decode("utf-8", errors="replace").lstrip("\ufeff").strip()
            if line:
                try:
                    rec = json.loads(line)
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


def load_json_records(src: SourceFile) -> list[dict]:
    """A whole-file JSON document as a list of records: an array of objects, or one object
    (API exports wrap records as {"data": [...]}; dialects that know such shapes unwrap them)."""
    opener = gzip.open if src.compression == "gzip" else open
    try:
        if src.compression == "zstd":
            raw = pl.read_csv(src.path, has_header=False, separator="\x1f", quote_char=None,
                              new_columns=["l"], schema_overrides={"l": pl.String}, glob=False)["l"].to_list()
            doc = json.loads("\n".join(x or "" for x in raw))
        else:
            with opener(src.path, "rt", encoding="utf-8-sig") as f:
                doc = json.load(f)
    except RecursionError:
        raise SourceError(f"{src.path}: JSON nested too deep to be a log or report") from None
    if isinstance(doc, list):
        return [r if isinstance(r, dict) else {"_value": r} for r in doc]
    if isinstance(doc, dict):
        return [doc]
    raise SourceError(f"{src.path}: JSON document is neither an array nor an object")


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
    fd, tmp = tempfile.mkstemp(prefix="llm-cost-sse-", suffix=".jsonl")
    os.close(fd)
    _TEMPORARY.append(tmp)
    _lines(path, False).select(pl.when(keep).then(whole).otherwise(pl.lit("")).alias(LINE)).sink_csv(
        tmp, include_header=False, quote_style="never")
    st = os.stat(path)
    os.utime(tmp, ns=(st.st_atime_ns, st.st_mtime_ns))  # records without a time are dated by the file's
    return tmp


def json_to_lines(src: SourceFile) -> SourceFile:
    """A JSON array rewritten as JSON Lines in a temporary file, one record per line, so that it
    goes through the same lazy, line-numbered path as JSONL (record i is line i)."""
    try:
        records = load_json_records(src)
    except ValueError as e:
        raise SourceError(f"{src.path}: invalid JSON ({_one_line(e)})") from None
    fd, tmp = tempfile.mkstemp(prefix="llm-cost-json-", suffix=".jsonl")
    _TEMPORARY.append(tmp)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        for rec in records:
            out.write(json.dumps(rec, separators=(",", ":")))
            out.write("\n")
    return SourceFile(path=tmp, container="jsonl", index=src.index, columns=src.columns,
                      sample=src.sample, display=src.display)

"""The only module that knows the order of the steps:
sources -> normalize -> dedupe/validate -> tag -> (aggregate) -> price -> summarize.

Reports price aggregates, not rows: one streaming pass groups every request by the keys that decide
its rates plus the report's own keys, summing counts; the few resulting rows are priced exactly.
`price_requests` is the one place that prices individual rows (for `llm-cost price`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import functools
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import polars as pl

from . import aggregate, dedupe, dialects, fingerprint, labels, line_retry, pricebook, safe_text, tagging, writers
from .dialects.canonical import KEYS_READ, KeyCheck
from .errors import AnalyzerError, DialectError, OptionError, SourceError, UnknownKeys
from .held import HeldParquet, holding_parquet
from .held import current as current_holding
from .models import Resolver
from .pricing import (
    LIST_RATE,
    RATE,
    RATE_ROW,
    TIER_UNKNOWN,
    cost_columns,
    integer_cost_steps,
    lookup,
    rate_frame,
    rate_row,
    take,
    totals_columns,
    unit_columns,
)
from .schema import CANONICAL, COMPONENTS, COUNT_COLUMNS, DERIVED_KEYS, KNOWN_DIMENSIONS, MONEY, RAW_KEYS, TIME_BUCKETS
from .sources import (
    _TEMPORARY,
    SourceFile,
    changed_during_run,
    concurrent_scans,
    find_files,
    heads,
    key_colons,
    looks_like,
    one_reading,
    open_source,
    prints_on_read,
    read_natively,
    read_prints,
    search_keys_first,
    shards,
    shown,
    temporary_file,
)
from .words import counted

STATUS = "_status"
# Small integers, not strings: the status is a group-by key of the one pass over every row.
OK, DUPLICATE, QUARANTINED, FILTERED, NOT_BILLABLE, REPEAT = 0, 1, 2, 3, 4, 5
# Bookkeeping columns a dialect may add, with the value rows of other dialects take.
BOOKKEEPING = {"_nb": pl.lit(None, pl.String), "_rec": pl.lit(1, pl.Int64), "_rank": pl.lit(0, pl.Int8),
               KEYS_READ: pl.lit(0, pl.Int64)}
ROWS = "_rows"


def env_flag(name: str) -> bool:
    """Whether environment variable `name` switches something on: `0`, `false`, `no`, `off` or empty
    leave it off, as a reader of `=0` expects."""
    return os.environ.get(name, "").strip().lower() not in ("", "0", "false", "no", "off")


# Set (or LLM_COST_SEARCH_KEYS_FIRST=1 in the environment): every JSON Lines file is searched for late
# keys before it is read, as before canonical.KeyCheck (what tests compare the check's answers with).
SEARCH_KEYS_FIRST = env_flag("LLM_COST_SEARCH_KEYS_FIRST")
DEFAULT_QUARANTINE = "llm-cost-quarantine.jsonl"


@dataclass
class Options:
    """What the user asked for, shared by every command."""

    dialect: str | None = None
    mapping: str | None = None  # a custom mapping TOML (--map): every input is read with it
    prices: tuple[str, ...] = ()
    since: str | None = None
    until: str | None = None
    tz: str = "UTC"
    quarantine: str | None = None
    dedupe: bool = True
    outputs: tuple[str, ...] = ()  # files this run writes: never read as input
    batch_time: str | None = None  # when records that carry no time (batch results) happened
    reveal_keys: bool = False  # credentials in the quarantine file's records are masked unless True


@dataclass
class Accounting:
    """Where every input record went.
    rows_read = priced + unpriced + duplicates + repeats + not_billable + quarantined + filtered_out.

    `duplicates` are records whose request id was already counted (the same log exported twice, a
    retried export); `repeats` are records a format writes several times for one request (Claude Code
    writes a line per content block; streaming logs an event per update), merged into one request;
    `not_billable` are records the format says were not billed (errored or expired batch requests)."""

    rows_read: int = 0
    priced: int = 0
    unpriced: int = 0
    duplicates: int = 0
    quarantined: int = 0
    filtered_out: int = 0
    repeats: int = 0
    not_billable: int = 0
    not_billable_reasons: dict[str, int] = field(default_factory=dict)
    unpriced_models: dict[str, int] = field(default_factory=dict)
    unpriced_reasons: dict[str, str] = field(default_factory=dict)
    # What the source itself said unpriced rows cost (LiteLLM's spend, Claude Code's costUSD): no
    # computed cost to set beside it, so it is kept out of the report's reported column (which compares
    # like with like) and shown on the model's unpriced line instead.
    unpriced_reported: dict[str, Decimal] = field(default_factory=dict)
    quarantine_file: str | None = None
    files: int = 0
    # Files found by a walk or a glob and not read (a second path to a file already read, a README,
    # an invoice, an empty export), each with why: no row of theirs is in the counts above.
    files_skipped: dict[str, str] = field(default_factory=dict)

    @property
    def balanced(self) -> bool:
        return self.rows_read == (self.priced + self.unpriced + self.duplicates + self.repeats + self.not_billable
                                  + self.quarantined + self.filtered_out)

    def summary(self) -> str:
        """The balance as one sentence; categories a run never uses are left out."""
        parts = [("priced", self.priced, True), ("unpriced", self.unpriced, True),
                 ("duplicates", self.duplicates, True), ("repeats", self.repeats, False),
                 ("not billable", self.not_billable, False), ("quarantined", self.quarantined, True),
                 ("outside the dates", self.filtered_out, False)]
        text = f"rows read {self.rows_read:,} = " + " + ".join(f"{name} {n:,}" for name, n, always in parts
                                                               if always or n)
        if self.not_billable_reasons:
            text += " (not billable: " + ", ".join(f"{r} {n:,}" for r, n in self.not_billable_reasons.items()) + ")"
        return text + ("" if self.balanced else "  (DOES NOT BALANCE)")

    def as_dict(self) -> dict:
        return {
            "rows_read": self.rows_read, "priced": self.priced, "unpriced": self.unpriced,
            "duplicates": self.duplicates, "repeats": self.repeats, "not_billable": self.not_billable,
            "quarantined": self.quarantined, "filtered_out": self.filtered_out,
            "not_billable_reasons": self.not_billable_reasons,
            "balanced": self.balanced, "unpriced_models": self.unpriced_models,
            "unpriced_reasons": self.unpriced_reasons, "quarantine_file": self.quarantine_file, "files": self.files,
            "files_skipped": self.files_skipped,
            # (only when a source reported a cost for an unpriced row: the key is new, reports without stay as they were)
            **({"unpriced_reported_cost": {k: str(v) for k, v in self.unpriced_reported.items()}}
               if self.unpriced_reported else {}),
        }


@dataclass
class Loaded:
    """The normalized requests of a run, still lazy, and what is known about them."""

    parts: list[pl.LazyFrame]  # one normalized frame per file
    files: list[SourceFile]
    dialects: dict[str, str]  # file -> dialect name
    dimensions: list[str]
    carried: set[str]  # canonical columns at least one source carries
    robust: bool  # every field read as text, JSON line by line (exact line numbers; see _with_retry)
    empty: list[str] = field(default_factory=list)  # empty files, skipped
    skipped: dict[str, str] = field(default_factory=dict)  # files not read, with why (empty ones too)
    notes: list[str] = field(default_factory=list)  # what dialects said about the files (time sources)
    repeat_files: list[int] = field(default_factory=list)  # files whose format repeats records
    bookkeeping: set[str] = field(default_factory=set)  # BOOKKEEPING columns some dialect adds
    spooled: list[str] = field(default_factory=list)  # temporary files of decoded rows (see spool)
    decoded: bool = False  # every part is read from spooled rows (cheap to read again: see spool)
    key_checks: list[KeyCheck] = field(default_factory=list)  # JSON Lines read before their search (_aggregate)
    # A robust run's parts before spool narrowed them to a report's columns (see write_quarantine).
    unspooled: list[pl.LazyFrame] | None = None
    # Each file as first read (path -> fingerprint.take): checked before it is read again.
    fingerprints: dict[str, fingerprint.Fingerprint] = field(default_factory=dict)
    # Those of the files a file set's reader fingerprints as it reads them (sources.read_prints).
    read_prints: dict[str, fingerprint.Fingerprint] = field(default_factory=dict)

    @property
    def frame(self) -> pl.LazyFrame:
        return pl.concat(self.parts, how="diagonal_relaxed") if len(self.parts) > 1 else self.parts[0]

    @functools.cached_property
    def expected_rows(self) -> int:
        """A cheap estimate of the records of every file (see SourceFile.expected_rows), once a run."""
        return sum(f.expected_rows() for f in self.files)

    @property
    def has_ids(self) -> bool:
        return "request_id" in self.carried

    @property
    def constant(self) -> dict[str, str | None]:
        """Rate-key columns no source carries, with the value they all take (the canonical default)."""
        return {k: labels.DEFAULTS.get(k) for k in tagging.RATE_KEY_COLUMNS if k not in self.carried}


def read_logs(paths, opts: Options, robust: bool = False, exact_lines: bool | None = None,
              dimensions: set[str] | None = None, check_keys: bool = False, lines: dict | None = None,
              by_parts: bool = True) -> Loaded:
    """Every input file, detected and normalized (lazily). `exact_lines`: rows of files read together
    in one scan know their line in their own file (costs a pass that counts lines); by default only
    when reading robustly, where the quarantine file is written from. `check_keys`: the run's
    aggregate pass checks what plain JSON Lines files were read with (see _aggregate), so their
    search for late keys waits for it (Loaded.key_checks). `lines`: file (as shown) -> the only lines
    of it that matter (the quarantine pass), where a file's robust reading can skip others (line_retry).
    `by_parts`: a robust reading may read a file by parts (line_retry; not where plans are shipped
    to other processes, engine_spark's: a copy of the piece its plans read is never filled)."""
    forced = _forced_dialect(opts)
    batch_time = parse_time(opts.batch_time, "UTC", end=False, option="--batch-time") if opts.batch_time else None
    ctx = dialects.Context(batch_time=batch_time.strftime("%Y-%m-%dT%H:%M:%S.%fZ") if batch_time else None,
                           exact_lines=robust if exact_lines is None else exact_lines, dimensions=dimensions,
                           key_checks=[] if check_keys and not robust and not SEARCH_KEYS_FIRST else None,
                           lines=lines)
    found = find_files(paths, exclude=(opts.quarantine or DEFAULT_QUARANTINE, *opts.outputs))
    # An output a directory walk would meet is skipped above; one named as an input is refused.
    writers.check_outputs([("--quarantine", opts.quarantine or DEFAULT_QUARANTINE), *(("-o", o) for o in opts.outputs)],
                          {"the log": found.files})
    det = _detect_formats(found, forced, opts)
    # Each file's fingerprint, before its records are read (detection read only their first bytes). A
    # file set's files are fingerprinted by their reader from the bytes it reads (sources.read_prints):
    # here, a tree of transcripts was opened and read once more for it.
    by_reader = {p for head, _ in det.sources if head.members and head.compression is None for p in head.paths} \
        if prints_on_read() else set()
    prints = {p: fp for p in found.files if p not in by_reader and (fp := fingerprint.take(p)) is not None}
    frames, files, dims, seen, repeat_files = [], [], {}, set(), []
    # A large file set is read as several scans, decoded concurrently by spool (see shards).
    for src, d in [(shard, d) for head, d in det.sources for shard in shards(head)]:
        with _searched_on_error(ctx.key_checks):
            # (a retry reads robustly only the lines that need it, where the format allows)
            lf = line_retry.read_by_parts(d, src, ctx) if robust and by_parts and line_retry.line_local(d, src) \
                else None
            lf = d.normalize(src, robust=robust, ctx=ctx) if lf is None else lf
        frames.append(lf)
        if d.repeats_in(src):
            repeat_files.extend((src.index, *src.member_indexes))
        files.append(src)
        for c in lf.collect_schema().names():
            if c not in CANONICAL and not c.startswith("_"):
                dims[c] = None
        seen.update(d.carries(src, robust))
    ordered = [d for d in KNOWN_DIMENSIONS if d in dims] + sorted(d for d in dims if d not in KNOWN_DIMENSIONS)
    if not frames:
        if not det.empty:  # (empty files alone are a quiet night: an empty report, and a note)
            raise SourceError("no usage log among the input files: " + "; ".join(
                f"{k}: {v}" for k, v in list(det.skipped.items())[:3]) + ("; ..." if len(det.skipped) > 3 else ""))
        frames = [_no_rows()]
    frames, books = _with_bookkeeping(frames)
    return Loaded(frames, files, det.names, ordered, seen, robust, det.empty, det.skipped, ctx.notes, repeat_files,
                  books, key_checks=ctx.key_checks or [], fingerprints=prints, read_prints=read_prints())


@dataclass
class _Detected:
    """The input files by format: one source per scan (a tree format's files grouped under one)."""

    skipped: dict[str, str]
    sources: list[tuple[SourceFile, dialects.Dialect]] = field(default_factory=list)
    members: list[list[tuple[str, int]]] = field(default_factory=list)  # per source: the files read in its scan
    groups: dict[tuple, int] = field(default_factory=dict)  # (format, container, compression) -> source
    told: dict[tuple, tuple] = field(default_factory=dict)  # (container, compression) -> a tree format seen
    names: dict[str, str] = field(default_factory=dict)  # file -> format name
    empty: list[str] = field(default_factory=list)


def _detect_formats(found, forced: dialects.Dialect | None, opts: Options) -> _Detected:
    """Detect each file's format; files of a format that reads many files in one scan are grouped."""
    det = _Detected(skipped=found.skipped)
    for i, (path, head) in enumerate(zip(found.files, heads(found.files))):
        # A tree of thousands of transcripts: once one file was detected as a format that reads files
        # together, the next ones need only look like it (its signature's keys in their first bytes).
        known = next(((d, k) for k, (d, keys) in det.told.items() if path != "-" and not opts.mapping
                      and looks_like(path, k[0], k[1], keys, head)), None)
        if known is not None:
            d, (container, compression) = known
            det.names[path] = d.name
            det.members[det.groups[(d.name, container, compression)]].append((path, i))
            continue
        _detect_one(det, open_source(path, index=i), path, found, forced, opts)
    for (head, _), more in zip(det.sources, det.members):
        if more:
            head.members = tuple(p for p, _ in more)
            head.member_indexes = tuple(i for _, i in more)
    return det


def _detect_one(det: _Detected, src: SourceFile, path: str, found, forced: dialects.Dialect | None,
                opts: Options) -> None:
    """One file opened and detected: a new source, a member of a tree format's scan, or skipped."""
    if src.empty:
        det.empty.append(src.display)  # a night with no traffic exports an empty file: nothing to read
        det.skipped[shown(src.display)] = "empty"
        return
    try:
        d = forced or dialects.detect(src)
    except DialectError as e:
        if path in found.explicit:  # named by the user: they meant it to be read
            raise
        # Found by a walk or a glob beside the logs (an invoice, a manifest, notes): not read, and named.
        det.skipped[shown(src.display)] = str(e).removeprefix(f"{src.display}: ").split(". Use --dialect")[0]
        return
    dialects.ambiguous_columns(src, d)  # a log with a repeated column: refused wherever it was found
    if opts.mapping and d.missing(src):
        raise DialectError(f"{src.display}: not the log {opts.mapping} maps ({d.name}): missing "
                           f"{', '.join(d.missing(src))}")
    det.names[src.display] = d.name
    key = (d.name, src.container, src.compression)
    if d.batch_files and src.container == "jsonl" and path != "-":
        det.told.setdefault((src.container, src.compression), (d, d.quick_keys()))
        if key in det.groups:
            det.members[det.groups[key]].append((src.path, src.index))  # lists: appending to a tuple is quadratic
            return
    det.groups.setdefault(key, len(det.sources))
    det.sources.append((src, d))
    det.members.append([])


def _with_bookkeeping(frames: list[pl.LazyFrame]) -> tuple[list[pl.LazyFrame], set[str]]:
    """A bookkeeping column one dialect adds is given its neutral value in the others' rows."""
    books = {c for lf in frames for c in lf.collect_schema().names() if c in BOOKKEEPING}
    return [lf.with_columns([v.alias(c) for c, v in BOOKKEEPING.items()
                             if c in books and c not in lf.collect_schema().names()]) for lf in frames], books


def _no_rows() -> pl.LazyFrame:
    """A normalized frame without rows: the input of a run whose every file is empty."""
    return pl.LazyFrame(schema={**CANONICAL, "_ok": pl.Boolean, "_reason": pl.String, "_raw": pl.String,
                                "_file": pl.Int64})


def _forced_dialect(opts: Options) -> dialects.Dialect | None:
    if opts.mapping and opts.dialect:
        raise OptionError("--map and --dialect both say how to read the input: give one")
    if opts.mapping:
        from .dialects import mapped

        return mapped.dialect_from_mapping(opts.mapping)
    return dialects.get(opts.dialect) if opts.dialect else None


def parse_time(value: str | None, tz: str, end: bool, option: str | None = None) -> dt.datetime | None:
    """--since/--until: a date (in --tz; --until DATE includes that whole day) or an ISO date-time."""
    if value is None:
        return None
    zone = ZoneInfo(tz)
    try:
        if len(value) in (8, 10) and "T" not in value:  # 2026-10-31 or 20261031: a whole day
            d = dt.date.fromisoformat(value)
            t = dt.datetime(d.year, d.month, d.day, tzinfo=zone)
            return (t + dt.timedelta(days=1) if end else t).astimezone(dt.UTC)
        t = dt.datetime.fromisoformat(value[:-1] + "+00:00" if value[-1:] in ("Z", "z") else value)
    except ValueError:
        raise OptionError(f"{option or ('--until' if end else '--since')} {value!r}: expected a date (2026-10-01) or an ISO date-time") from None
    except OverflowError:  # the day after 9999-12-31
        t = None
    try:
        return (t if t.tzinfo else t.replace(tzinfo=zone)).astimezone(dt.UTC) if t is not None else _beyond(value, end, option)
    except OverflowError:  # 0001-01-01 in a zone east of UTC: before the first representable instant
        return _beyond(value, end, option)


def _beyond(value: str, end: bool, option: str | None) -> dt.datetime | None:
    """A bound past either end of the calendar Python represents (years 1-9999; 0001-01-01 in a
    zone east of UTC, the day after 9999-12-31): every timestamp lies after an early one and before
    a late one. So an early --since or a late --until bounds nothing (None); a late --since or an
    early --until leaves nothing inside."""
    if option:  # --batch-time names an instant: it must be one
        raise OptionError(f"{option} {value!r}: outside the years 1-9999")
    early = value.strip()[:4] < "5000"
    if early != end:
        return None
    return dt.datetime.min.replace(tzinfo=dt.UTC) if early else dt.datetime.max.replace(tzinfo=dt.UTC)


def time_window(opts: Options) -> tuple[dt.datetime | None, dt.datetime | None]:
    """--since/--until as UTC instants (None: unbounded), refusing an empty window."""
    since = parse_time(opts.since, opts.tz, end=False)
    until = parse_time(opts.until, opts.tz, end=True)
    if since is not None and until is not None and until <= since:
        raise OptionError(f"--until {opts.until} is not after --since {opts.since}: the window is empty")
    return since, until


def check_options(opts: Options) -> None:
    """The options a run can check before it reads a byte: --tz, then --since/--until (a mistyped
    date was refused only after the logs were decoded, minutes into a large run)."""
    check_tz(opts.tz)
    time_window(opts)


def check_tz(tz: str) -> str:
    """A zone both Python and Polars know. ZoneInfo reads files: `--tz Europe` (a directory) or a
    very long name raised an OSError quoting tzdata's path; `right/UTC` from the system's zoneinfo
    passed here, then failed inside Polars (whose database lacks it) as "cannot read input"."""
    try:
        ZoneInfo(tz)
        pl.select(pl.lit(dt.datetime(2000, 1, 1)).dt.replace_time_zone(tz))
    except (ZoneInfoNotFoundError, ValueError, OSError, pl.exceptions.PolarsError):
        hint = _near_zone(tz)
        raise OptionError(f"--tz {tz!r}: not an IANA time zone " + (f"(did you mean {hint}?)" if hint else
                          "(e.g. UTC, Europe/Berlin, America/New_York)")) from None
    return tz


def _near_zone(tz: str) -> str | None:
    """The zone a mistyped `--tz` most likely meant (`Europe/Berln`, `europe/berlin`)."""
    import difflib
    from zoneinfo import available_timezones

    # (`right/` and `posix/` copies of the system's database are zones Polars does not know)
    zones = {z.lower(): z for z in available_timezones() if not z.startswith(("right/", "posix/"))}
    close = difflib.get_close_matches(tz.lower()[:64], list(zones), n=1, cutoff=0.8)
    return zones[close[0]] if close else None


def with_status(frame: pl.LazyFrame, opts: Options) -> pl.LazyFrame:
    """Each row's fate before pricing: with the dialect's `_ok` (valid or quarantined), `_out` says
    whether it lies outside --since/--until; `status()` turns the two booleans (cheap group keys)
    into one code, after the pass.
    (Duplicates are found after the pass too: see dedupe.py.)"""
    since, until = time_window(opts)
    outside = pl.lit(False)
    if since is not None:
        outside = outside | (pl.col("timestamp") < since)
    if until is not None:
        outside = outside | (pl.col("timestamp") >= until)
    return frame.with_columns(outside.fill_null(False).alias("_out"))


def status(not_billable: bool = False) -> pl.Expr:
    first = pl.when(pl.col("_nb").is_not_null()).then(pl.lit(NOT_BILLABLE, pl.UInt8)) if not_billable else pl
    return (
        first.when(~pl.col("_ok")).then(pl.lit(QUARANTINED, pl.UInt8))
        .when(pl.col("_out")).then(pl.lit(FILTERED, pl.UInt8))
        .otherwise(pl.lit(OK, pl.UInt8))
        .alias(STATUS)
    )


def _candidates(loaded: Loaded, opts: Options) -> pl.Series | None:
    """Ids seen more than once. Formats that repeat records are always merged (their repeats are one
    request written several times, not a choice); --no-dedupe turns off only the rest."""
    if not loaded.has_ids or not (opts.dedupe or loaded.repeat_files):
        return None
    lf, files = loaded.frame, loaded.files
    if not opts.dedupe:
        lf = lf.filter(pl.col("_file").is_in(loaded.repeat_files))
        files = [f for f in files if f.index in loaded.repeat_files]
    # (decoded rows re-read cheaply: hashed in small passes, in bounded memory)
    return dedupe.candidates(lf, expected_rows=sum(f.expected_rows() for f in files),
                             ids_per_pass=dedupe.SPOOLED_IDS_PER_PASS if loaded.decoded else dedupe.IDS_PER_PASS)


def _spooled(src: SourceFile, robust: bool = False) -> bool:
    """Whether spool decodes this file once for the passes: JSON (decoding is most of a pass), and
    any compressed file (each pass would decompress it again, in this process: a gzip CSV with
    dedupe took 2.2x the CPU of one pass), and a CSV file read robustly (by the bounded reader, a
    Python source: each of the aggregate's two plans reads it anew, where they share Polars' own
    scan; and the quarantine pass then reads only the records its spooled rows show quarantined,
    see line_retry.needed_records)."""
    return src.container in ("json", "jsonl") or (src.compression is not None and src.container != "parquet") or (
        robust and src.container == "csv")


def spool(loaded: Loaded, opts: Options, columns: set[str] | None = None) -> Loaded:
    """JSON text decoded once: when the run will read its rows more than once (the dedupe passes),
    each JSON part is normalized in one streaming pass into slim rows in a temporary Parquet file, and
    every later pass reads those. Decoding JSON is most of a pass's cost; the rows are a few dozen bytes.
    (The quarantine pass still re-reads the original text, for the record and its exact line.)

    `columns`: the only columns the run will use (a report: its keys, counts and rate keys). Then
    request ids are kept as their two 64-bit hashes (all dedupe needs), not as strings, and every
    other string a log carries per row (session ids, paths, directories) is neither written nor read."""
    # A robust retry's rows are spooled for a report whatever its passes: the quarantine pass then
    # reads again only the lines they show quarantined (see write_quarantine), not every row with its
    # record and reasons. (`price` reads them as they are.)
    robust_report = loaded.robust and columns is not None
    passes_again = loaded.has_ids and (opts.dedupe or loaded.repeat_files)  # (the dedupe passes)
    if not robust_report and (loaded.robust or not passes_again):
        return loaded
    if columns is not None:
        columns = {*columns, "_ok", "_file", "source_row", "timestamp", "requests", "reported_cost", *COUNT_COLUMNS,
                   *tagging.RATE_KEY_COLUMNS, *loaded.bookkeeping}
    # A report's rate keys and counts that no source carries are the constants its groups and sums
    # take them to be (see group_keys, _GroupSums): not written, added back when read (a tenth of the
    # cost of writing the rows: 1M canonical JSON Lines, 2.42 -> 2.13 CPU s). (Not `requests`: a
    # format may write 0 for the later rows of a record without carrying it; nor for `price`, whose
    # rows are the output.)
    constant = {} if columns is None else {
        **{k: pl.lit(v, pl.String) for k, v in loaded.constant.items()},
        **{c: pl.lit(0, pl.Int64) for c in COUNT_COLUMNS if c not in loaded.carried}}
    parts, sinks, before = [], [], set(_TEMPORARY)
    for src, lf in zip(loaded.files, loaded.parts):
        if columns is not None:
            lf = lf.with_columns(dedupe.hashes()).select([c for c in lf.collect_schema().names() if c in columns]
                                                        + [dedupe.H1, dedupe.H2])
        if not _spooled(src, loaded.robust):
            parts.append(lf)
            continue
        fd, tmp = temporary_file("llm-cost-rows-", ".parquet")
        os.close(fd)
        names = lf.collect_schema().names()
        kept = [c for c in constant if c in names]
        # (lz4: the file lives for one run; cheaper to write than the default zstd)
        sinks.append(lf.drop("_raw", "_reason", *kept, strict=False).sink_parquet(
            tmp, compression="lz4", statistics=False, lazy=True))
        # Reasons are spelled out only by the quarantine pass (from the original text); label checks
        # on these rows still append to the column.
        parts.append(pl.scan_parquet(tmp, glob=False).with_columns(
            pl.lit(None, pl.String).alias("_reason"), *[constant[c].alias(c) for c in kept]).select(
            [c for c in names if c not in ("_raw",)] + (["_reason"] if "_reason" not in names else [])))
    # Parts are decoded a few at a time, concurrently (a large file set is several parts: see shards).
    step = concurrent_scans()
    try:
        for i in range(0, len(sinks), step):
            pl.collect_all(sinks[i:i + step], engine="streaming")
    except BaseException:
        # (a fast pass failing on a record is retried robustly, in this process: its decoded rows,
        # written so far, would wait for the process's end, beside the retry's)
        _remove([t for t in _TEMPORARY if t not in before])
        raise
    return dataclasses.replace(loaded, parts=parts, unspooled=loaded.parts if loaded.robust else None,
                               spooled=[*loaded.spooled, *(t for t in _TEMPORARY if t not in before)],
                               decoded=all(_spooled(src, loaded.robust) for src in loaded.files))


def resolve_by(by: list[str], dimensions: list[str]) -> list[str]:
    """--by keys spelled as the data spells them: standard keys in lower case, dimensions in their
    column's case (`--by team` for a `Team` column, as log columns are matched), exact case first."""
    standard = {k.lower(): k for k in (*TIME_BUCKETS, *RAW_KEYS, *DERIVED_KEYS)}
    dims = {}
    for d in reversed(dimensions):  # two columns differing only in case: the first one listed wins
        dims[d.lower()] = d
    return [k if k in dimensions or k in standard.values() else standard.get(k.lower()) or dims.get(k.lower(), k)
            for k in by]


def check_by(by: list[str], dimensions: list[str]) -> list[str]:
    """Check --by (every unknown key named at once, with the near known one); return its keys
    computed per row (the rest derive from the rate keys after pricing)."""
    import difflib

    standard = [*TIME_BUCKETS, *sorted(set(RAW_KEYS) | set(DERIVED_KEYS))]
    allowed = set(standard) | set(dimensions)
    unknown = [k for k in by if k not in allowed]
    if unknown:
        known = {c.lower(): c for c in reversed([*standard, *dimensions])}
        near = {k: difflib.get_close_matches(k.lower(), list(known), n=1, cutoff=0.6) for k in unknown}
        hints = "; ".join(f"{k!r}: did you mean {known[m[0]]}?" for k, m in near.items() if m)
        raise UnknownKeys(
            f"--by {', '.join(repr(k) for k in unknown)}: unknown key{'s' if len(unknown) > 1 else ''}"
            + (f" ({hints})" if hints else "")
            + f"; use any of {', '.join(standard)}"
            + (f", or a dimension of these logs: {', '.join(dimensions)}" if dimensions else ""),
            unknown, standard, list(dimensions),
        )
    if len(set(by)) != len(by):
        raise OptionError("--by lists a key twice")
    return [k for k in by if k not in DERIVED_KEYS]


_MEASURES = [ROWS, "requests", *COUNT_COLUMNS, "reported_cost", "_reported_rows"]


def _aggregate(lf: pl.LazyFrame, keys: list[str], book: pricebook.PriceBook, loaded: Loaded,
               extra: list[pl.Expr], cands: pl.Series | None, post_buckets: list[str] = (),
               repeats_only: bool = False, scenario: pl.DataFrame | None = None
               ) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame, pl.DataFrame | None]:
    """_aggregate_once, and again with BLAME when a record of several rows holds a row that cannot
    be priced (see unpriceable_keys). Returns its three frames and the blamed records (or None).
    `scenario`: a what-if's unpriceable keys (see with_scenario_blame)."""
    if scenario is not None:
        lf, keys = with_scenario_blame(lf, keys, scenario, book, loaded)
    agg, losers, units = _aggregate_once(lf, keys, book, loaded, extra, cands, post_buckets, repeats_only)
    bad = unpriceable_keys(agg, units, book, loaded)
    if bad is None:
        return agg, losers, units, None
    blamed = blamed_records(lf, bad, book, loaded).collect(engine="streaming")
    if not blamed.height:
        return agg, losers, units, None
    agg, losers, units = _aggregate_once(with_blame(lf, blamed), [*keys, BLAME], book, loaded, extra, cands,
                                         post_buckets, repeats_only)
    return agg, losers, units, blamed


# --- a record's rows are priced together, or not at all ---------------------------------------------

BLAME = "_blame"
# The reason of a row that could be priced on its own, in a request another part (step) of which cannot.
STEP_UNPRICED = "not priced: another part of its request cannot be priced ({})"


def unpriceable_keys(agg: pl.DataFrame, units: pl.DataFrame, book: pricebook.PriceBook, loaded: Loaded
                     ) -> pl.DataFrame | None:
    """The rate keys that cannot be priced, as rows carry them (their time unit, not the price band;
    without the keys no source carries), when the run reads records of several rows (`_rec`: a
    response's steps, a run's models); None when there is nothing to look for.

    Whether a row can be priced is decided on aggregated groups, and a record counts once, on its
    first row: a later step on a model the book does not know was unpriced with no record counted
    (0 unpriced, exit 0) and its request's other steps priced, money silently missing; a first row
    that could not be priced left its later steps in the totals of a request counted unpriced. Such
    a record is unpriced whole (BLAME), so that the report is the sum of `price` rows and every
    record is in one bucket. Found after the pass, from its groups: a run without unpriced groups
    (the norm) pays nothing; one with them, a pass over the rows that names the records, and the
    aggregate again when there are any."""
    if "_rec" not in loaded.bookkeeping or BLAME in agg.columns:
        return None
    ok = agg.filter(pl.col(STATUS) == OK)
    rates = rate_frame(ok, book).filter(pl.col("unpriced_reason").is_not_null())
    if not rates.height:
        return None
    cols = [k for k in tagging.RATE_KEY_COLUMNS if k not in loaded.constant]
    return rates.join(units, on=tagging.TIME_BAND).select(*cols, tagging.TIME_UNIT, tagging.PROMPT_BAND,
                                                          tagging.USES).unique()


def blamed_records(lf: pl.LazyFrame, bad: pl.DataFrame, book: pricebook.PriceBook, loaded: Loaded,
                   name: pl.DataFrame | None = None, tagged: bool = False) -> pl.LazyFrame:
    """The records of several rows with a row whose rate key is in `bad` (see unpriceable_keys):
    each record's key (dedupe.row_key: every row of a record shares it) and BLAME, the model of its
    first such row, which the record is counted unpriced under. Valid rows only (a quarantined,
    filtered or not billable record is all of that, whatever its steps)."""
    valid = pl.col("_ok") & ~pl.col("_out") & (pl.col("_nb").is_null() if "_nb" in loaded.bookkeeping else pl.lit(True))
    # (labels as the aggregate's groups have them: trimmed, lower-cased; their checks folded into _ok)
    rows = labels.apply_to_rows(lf.with_row_index("_i"), []).filter(valid)
    if not tagged:  # (`tagged`: the rows carry their rate tags already)
        rows = rows.with_columns(*tagging.row_tags(book))
    if name is None:
        unpriceable = rows.join(bad.lazy(), on=bad.columns, how="semi", nulls_equal=True).select(
            dedupe.row_key().alias(dedupe.KEY), "model_raw", "_i")
    else:  # (`name`: `bad` with the model a what-if's scenario names for such a row, SCENARIO_NAME)
        unpriceable = rows.join(name.lazy().unique(bad.columns), on=bad.columns, how="inner", nulls_equal=True
                                ).select(dedupe.row_key().alias(dedupe.KEY), pl.col(SCENARIO_NAME).alias("model_raw"), "_i")
    # (a record of several rows has a later row, `_rec` 0; the unpriceable rows are the smaller side)
    several = lf.filter(pl.col("_rec") == 0).select(dedupe.row_key().alias(dedupe.KEY)).join(
        unpriceable.select(dedupe.KEY), on=dedupe.KEY, how="semi").unique()
    return unpriceable.join(several, on=dedupe.KEY, how="semi").group_by(dedupe.KEY).agg(
        pl.col("model_raw").sort_by("_i").first().alias(BLAME))


# A what-if's BLAME: on every row of a record of several rows with a row whose baseline rate keys the
# scenario cannot price, the scenario's model of that row (see with_scenario_blame).
SCENARIO_BLAME = "_scenario_blame"
SCENARIO_NAME = "_scenario_model"  # (in a what-if's unpriceable keys: the model the scenario names)


def with_scenario_blame(lf: pl.LazyFrame, keys: list[str], scenario: pl.DataFrame, book: pricebook.PriceBook,
                        loaded: Loaded) -> tuple[pl.LazyFrame, list[str]]:
    """`lf` with SCENARIO_BLAME, and `keys` with it when any record has it. `scenario`: the baseline
    rate keys (RATE_KEY_COLUMNS, TIME_BAND of `book`, PROMPT_BAND, USES) of the groups a what-if's
    scenario cannot price, and SCENARIO_NAME. A what-if prices groups: a later step the scenario
    cannot price was left out of both costs, and its request compared on its other steps, with 0
    unpriced; the scenario's side now has the report's rule, the request unpriced whole (whatif.run)."""
    if "_rec" not in loaded.bookkeeping or not scenario.height:
        return lf, keys
    rows = scenario_records(lf, scenario, book, loaded).collect(engine="streaming")
    if not rows.height:
        return lf, keys
    return with_blame(lf, rows.rename({BLAME: SCENARIO_BLAME})), [*keys, SCENARIO_BLAME]


def scenario_records(lf: pl.LazyFrame, scenario: pl.DataFrame, book: pricebook.PriceBook, loaded: Loaded
                     ) -> pl.LazyFrame:
    """blamed_records for a what-if's unpriceable keys (see with_scenario_blame): BLAME is the model
    the scenario names for the record's first such row."""
    tagged = lf.with_columns(*tagging.row_tags(book)).pipe(tagging.with_time_band, book)
    return blamed_records(tagged, scenario.drop(SCENARIO_NAME), book, loaded, name=scenario, tagged=True)


def with_blame(lf: pl.LazyFrame, blamed: pl.DataFrame | pl.LazyFrame) -> pl.LazyFrame:
    """`lf` with BLAME: null, or on every row of a record `blamed` names, the model it is unpriced
    under. (A join on the record's key that keeps the rows' order: element-wise, so a slice of a
    file's rows gets the same values as the whole.)"""
    return lf.with_columns(dedupe.row_key().alias("_blame_key")).join(
        blamed.lazy().rename({dedupe.KEY: "_blame_key"}), on="_blame_key", how="left",
        maintain_order="left").drop("_blame_key")


def blamed_reason() -> pl.Expr:
    """A row of a record unpriced whole (BLAME): its own reason, or STEP_UNPRICED."""
    own = pl.col("unpriced_reason")
    return (pl.when(pl.col(BLAME).is_null()).then(own)
            .otherwise(pl.coalesce(own, pl.format(STEP_UNPRICED, pl.col(BLAME)))).alias("unpriced_reason"))


def _aggregate_once(lf: pl.LazyFrame, keys: list[str], book: pricebook.PriceBook, loaded: Loaded,
                    extra: list[pl.Expr], cands: pl.Series | None, post_buckets: list[str] = (),
                    repeats_only: bool = False) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    """The one streaming pass over every row: counts summed per status, rate keys and report keys.

    Rate keys that no source carries are constants: left out of the grouping and added back to its
    few rows. Duplicates are then corrected from the rows of duplicated ids alone (see dedupe.py).
    Returns the groups, the row keys of duplicate losers, and the time-unit -> price-band lookup."""
    lf = lf.with_columns(*tagging.row_tags(book), *extra)
    group = group_keys(loaded, keys)
    sums = _GroupSums(loaded)
    dups = cands is not None and cands.len()
    scope = lf.filter(pl.col("_file").is_in(loaded.repeat_files)) if repeats_only else lf  # --no-dedupe
    # The rows of duplicated ids are picked out in the same read as the sums (Polars runs both plans
    # over one scan) when the input is small: a second read of a CSV file cost more than the sums
    # themselves. Not for large inputs: the two plans over one scan buffer what one of them has not
    # consumed yet, and peak memory grew with the input (10M JSONL requests: 0.75 -> 2.5 GiB).
    competing = None
    with _searched_on_error(loaded.key_checks):
        if dups and _one_read(loaded):
            agg, competing = sums(lf, group, also=[_competing(lf, scope, group, cands, loaded, sums)], keys_read=True)
        else:
            agg = sums(lf, group, keys_read=True)
    agg = _keys_checked(agg, loaded)
    units = tagging.with_time_band(agg.select(tagging.TIME_UNIT).unique(), book)  # for per-request joins
    agg = _finish_groups(agg, book, loaded, post_buckets)
    losers = pl.DataFrame(schema={dedupe.KEY: pl.Int64, dedupe.H1: pl.UInt64, dedupe.H2: pl.UInt64})  # (see dedupe.lost)
    if dups:
        # (`competing` is not held through the third pass: slim rows of most of a transcript)
        losers, lost = _duplicate_losers(lf, scope, group, cands, loaded, sums, competing)
        del competing
        if losers.height:  # the losing copies, summed on the same keys, moved out of their groups
            lost = lost.with_columns(pl.col("_file").is_in(loaded.repeat_files).alias("_repeat"))
            agg = moved(agg, sums(lost, [*group, "_repeat"]), book, loaded, post_buckets)
    return _regroup(agg), losers, units


class LateKeys(Exception):
    """A JSON Lines file was read before its search for late keys, and the search found some: the run
    starts again, searching first (see _with_retry)."""


@contextlib.contextmanager
def _searched_on_error(checks: list[KeyCheck] | None):
    """An error (AnalyzerError) met while JSON Lines files wait for their search for late keys: the
    search ran before anything else once (SEARCH_KEYS_FIRST), and an error it meets (a key twice,
    two spellings of one key) was the run's error, before an option's or another file's. The
    searches run now, in file order, and raise theirs; one that finds keys to read starts the run
    again searching first (LateKeys), where the order is the old one; else the error stands."""
    try:
        yield
    except AnalyzerError:
        if checks and not all(c.holds() for c in checks):
            raise LateKeys() from None
        raise


@contextlib.contextmanager
def _removed_on_error(spooled: list[str]):
    """An attempt that ends in any error (an option's met after the rows were decoded, a total past
    the money column's range, LateKeys or a fast pass failing before a retry) removes the rows it
    spooled now: a long-lived process (a notebook, a service, the tests) kept each failed attempt's
    rows until it exited. (They were removed only when the search found late keys.)"""
    try:
        yield
    except BaseException:
        _remove(spooled)
        raise


def _keys_checked(agg: pl.DataFrame, loaded: Loaded) -> pl.DataFrame:
    """The aggregate without its count of JSON values read (KEYS_READ), once that count is checked
    against the keys the files' text holds (canonical.KeyCheck says why equal counts prove that the
    search for late keys would find nothing). Short of it, the files are searched as they were
    before being read (a file with a null value or a nested object, ~0.25 CPU s per 1M records more
    than before), and a search that finds keys to read starts the run again (LateKeys). Before any
    output is written: every command's aggregate pass comes before its writing."""
    if KEYS_READ not in agg.columns:
        return agg
    read = agg[KEYS_READ].sum()
    agg = agg.drop(KEYS_READ)
    texts = [key_colons(c.path) for c in loaded.key_checks]
    if None not in texts and sum(texts) == read:
        return agg
    if all(c.holds() for c in loaded.key_checks):
        return agg
    raise LateKeys()  # (the attempt's spooled rows are removed on the way out: _removed_on_error)


def _remove(spooled: list[str]) -> None:
    """Remove a run's temporary files of decoded rows now, rather than when the process ends."""
    for tmp in spooled:
        with contextlib.suppress(OSError):
            os.unlink(tmp)


class _GroupSums:
    """Rows summed per group, exactly (see exact_sums), with the measures no source carries as
    constants: summing a literal per row would cost real time."""

    def __init__(self, loaded: Loaded):
        self.summed = [c for c in ("requests", *COUNT_COLUMNS) if c in loaded.carried]
        self.reported = "reported_cost" in loaded.carried
        self.records = pl.col("_rec").sum() if "_rec" in loaded.bookkeeping else pl.len()
        self.keys_read = KEYS_READ in loaded.bookkeeping

    def __call__(self, frame: pl.LazyFrame, by: list[str], also: list[pl.LazyFrame] = (), keys_read: bool = False
                 ) -> pl.DataFrame | list[pl.DataFrame]:
        """The sums; with `also`, [the sums, *those plans collected in the same pass]; with `keys_read`,
        KEYS_READ summed too (the pass over every record: see _keys_checked)."""
        out = exact_sums(frame, by, self.summed, [
            self.records.alias(ROWS), *([pl.col(KEYS_READ).sum()] if keys_read and self.keys_read else []),
            *([pl.col("reported_cost").sum(), pl.col("reported_cost").is_not_null().sum().alias("_reported_rows")]
              if self.reported else [])], valid=pl.col("_ok"), also=also)
        out, extra = (out[0], out[1:]) if also else (out, None)
        out = out.with_columns(
            *([] if "requests" in self.summed else [pl.col(ROWS).alias("requests")]),
            *[pl.lit(0, pl.Int64).alias(c) for c in COUNT_COLUMNS if c not in self.summed],
            *([] if self.reported else [pl.lit(None, MONEY).alias("reported_cost"),
                                        pl.lit(0, pl.Int64).alias("_reported_rows")]),
        )
        return out if extra is None else [out, *extra]


# Inputs of at most this many records read the sums and the rows of duplicated ids in one pass,
# whose memory grows with the input (see _aggregate); larger ones read twice, in bounded memory.
ONE_READ_MAX_ROWS = 2_000_000


def _one_read(loaded: Loaded) -> bool:
    return loaded.expected_rows <= ONE_READ_MAX_ROWS


def _wide(cands: pl.Series, loaded: Loaded) -> bool:
    """Few repeated ids (exports overlapping by a day): their rows are held whole, labels rewritten
    as read (a filtered string still points into the buffer of the whole chunk it was read with).
    Many (a transcript writes most responses several times): only slim rows, and a third pass
    sums the losing rows."""
    return cands.len() * 10 < loaded.expected_rows


def _slim(loaded: Loaded) -> list[str]:
    rank = ["_rank"] if "_rank" in loaded.bookkeeping else []
    rec = ["_rec", dedupe.P1, dedupe.P2] if "_rec" in loaded.bookkeeping else []  # (records compete whole)
    return [dedupe.KEY, dedupe.H1, dedupe.H2, *rank, dedupe.TOKENS, *rec]


def _competing(lf: pl.LazyFrame, scope: pl.LazyFrame, group: list[str], cands: pl.Series, loaded: Loaded,
               sums: _GroupSums) -> pl.LazyFrame:
    """The valid rows of candidate ids, slim (see _slim) or, when few (_wide), with their report keys
    and measures too."""
    nb = "_nb" in loaded.bookkeeping
    # A broken or not-billable copy never displaces a good one: only valid rows compete. Nor does a
    # copy whose labels will quarantine it after the pass (an empty model, an unknown tier): it is
    # quarantined, not a duplicate, and its valid twin is priced.
    valid = pl.col("_ok") & (pl.col("_nb").is_null() if nb else pl.lit(True)) & pl.col("_fit")
    wide = _wide(cands, loaded)
    held = [*group, "_file", *[c for c in ("_rec", *sums.summed, "reported_cost") if c in lf.collect_schema()]]
    # (`_fit` a column, not in the filter: Polars would push that filter into the id filter's, and
    # clean the labels of every row, 0.11 CPU s per 1M rows; as a column, only candidates' are)
    fit = labels.fit(lf.collect_schema().names(), loaded.constant).alias("_fit")
    return dedupe.rows_of(scope, cands).with_columns(fit).filter(valid).with_columns(
        pl.sum_horizontal(COUNT_COLUMNS).alias(dedupe.TOKENS),
        *(labels.clean_labels([c for c in group if lf.collect_schema()[c] == pl.String], loaded.dimensions)
          if wide else []),
    ).select(*dict.fromkeys([*_slim(loaded), *(held if wide else [])]))


def _duplicate_losers(lf: pl.LazyFrame, scope: pl.LazyFrame, group: list[str], cands: pl.Series, loaded: Loaded,
                      sums: _GroupSums, competing: pl.DataFrame | None = None
                      ) -> tuple[pl.DataFrame, pl.LazyFrame | None]:
    """The row keys of the copies that lose to another copy of their request (see dedupe.py), and
    those rows (lazy, None when there are none), to be summed and moved out of their groups.
    `competing`: the rows of `_competing`, when already collected (with the sums, in one read)."""
    if competing is None:
        competing = _competing(lf, scope, group, cands, loaded, sums).collect(engine="streaming")
    wide = _wide(cands, loaded)
    losers = dedupe.losers(competing.select(_slim(loaded)))
    if not losers.height:
        return losers, None
    if wide:
        return losers, competing.lazy().join(losers.lazy(), on=list(dedupe.LOSER), how="semi")
    del competing  # (slim rows of most of the run: not held through the third pass)
    return losers, (lf.filter(dedupe.row_key().is_in(losers[dedupe.KEY].implode()))  # (cheap first test)
                    .filter(dedupe.lost(lf, losers)))


INT64_MAX = 2**63 - 1


def exact_sums(lf: pl.LazyFrame, by: list[str], columns: list[str], aggs: list[pl.Expr],
               valid: pl.Expr | None = None, wide: bool = False, also: list[pl.LazyFrame] = ()
               ) -> pl.DataFrame | list[pl.DataFrame]:
    """`lf.group_by(by).agg(*aggs, <sum of each count column>)`, collected, with every sum exact.

    A 64-bit sum wraps around silently (9.3M rows of 999,999,999,999 tokens summed to a negative
    number). Counts are summed as 64-bit integers when each group's largest count times its rows
    proves they cannot overflow (always, for real logs: one cheap max per group); otherwise the pass
    runs again with 128-bit sums. Sums that do not fit 64 bits refuse the run (see _exact_counts).
    `valid` (an expression on the `by` keys) says which groups are priced; the others' counts are
    never used (quarantined rows may hold any number) and are zeroed.
    `also`: other plans over `lf`, collected in the same pass (one read of the input); then the
    result is [the sums, *theirs]."""
    valid = pl.lit(True) if valid is None else valid
    bound = [] if wide or not columns else [pl.max_horizontal(columns).max().alias("_max"), pl.len().alias("_len")]
    out, *extra = pl.collect_all([lf.group_by(by).agg(
        *aggs, *[(pl.col(c).cast(pl.Int128) if wide else pl.col(c)).sum().alias(c) for c in columns], *bound,
    ), *also], engine="streaming")
    if bound:
        if out.select((valid & (pl.col("_max").cast(pl.Int128) * pl.col("_len") > INT64_MAX)).any()).item():
            out = exact_sums(lf, by, columns, aggs, valid, wide=True)
            return [out, *extra] if also else out
        out = out.drop("_max", "_len")
    out = _exact_counts(out, columns, valid)
    return [out, *extra] if also else out


def _exact_counts(agg: pl.DataFrame, columns: list[str], valid: pl.Expr) -> pl.DataFrame:
    """Summed counts as 64-bit integers, or one line refusing the run: a sum of valid counts beyond
    2^63 - 1 (9.2 quintillion tokens: no real log) cannot be totalled exactly. (The per-row cap,
    _parse.MAX_COUNT, makes this need ~9.2M rows of a trillion tokens.)"""
    for c in columns:
        over = agg.filter(valid & (pl.col(c) > INT64_MAX)).height if agg.schema[c] == pl.Int128 else 0
        if over:
            raise SourceError(f"{c} of valid requests sum to more than {INT64_MAX:,} (2^63 - 1) in {counted(over, 'group')}: "
                              "too large to total exactly; the input's counts are corrupt")
    return agg.with_columns([pl.when(valid).then(pl.col(c)).otherwise(0).cast(pl.Int64).alias(c) for c in columns])


def check_totals(agg: pl.DataFrame) -> None:
    """Refuse a run whose valid counts, each group's exact, would overflow when totalled."""
    ok = agg.filter(pl.col(STATUS) == OK)
    totals = ok.select([pl.col(c).cast(pl.Int128).sum() for c in ("requests", *COUNT_COLUMNS)]).row(0)
    for c, total in zip(("requests", *COUNT_COLUMNS), totals):
        if total is not None and total > INT64_MAX:
            raise SourceError(f"{c} of valid requests total more than {INT64_MAX:,} (2^63 - 1): too large to "
                              "total exactly; the input's counts are corrupt")


def _finish_groups(frame: pl.DataFrame, book: pricebook.PriceBook, loaded: Loaded, post_buckets=()) -> pl.DataFrame:
    """Aggregated (or per-row) groups made ready to price: price band from the time unit, constant
    keys added back, labels normalised and checked (an unusable label quarantines its group), and
    measures as signed integers (duplicate corrections subtract)."""
    frame = frame.with_columns(status("_nb" in frame.columns)).drop("_ok", "_out")
    frame = tagging.with_time_band(frame, book).with_columns(
        [tagging.time_bucket(b, "UTC", tagging.unit_start(book)) for b in post_buckets]).drop(tagging.TIME_UNIT)
    frame = frame.with_columns([pl.lit(v, pl.String).alias(k) for k, v in loaded.constant.items()])
    frame = frame.with_columns(labels.clean_labels(frame.columns, loaded.dimensions))
    return frame.with_columns(
        pl.when(labels.ok(frame.columns) | (pl.col(STATUS) == NOT_BILLABLE)).then(pl.col(STATUS))
        .otherwise(pl.lit(QUARANTINED, pl.UInt8)).alias(STATUS),
        *[pl.col(m).cast(pl.Int64) for m in _MEASURES if m != "reported_cost"],
    )


def _regroup(agg: pl.DataFrame) -> pl.DataFrame:
    """Sum again: groups whose labels became equal when normalised, and duplicate corrections."""
    keys = [c for c in agg.columns if c not in _MEASURES]
    agg = agg.group_by(keys, maintain_order=True).agg([pl.col(m).sum() for m in _MEASURES])
    # A group whose every row moved to duplicates is gone. (A group can count no record and still bill:
    # the later iterations of a request, see dialects/anthropic_messages.py.)
    return agg.filter(pl.any_horizontal([pl.col(m) != 0 for m in _MEASURES if m != "reported_cost"]))


def _bucket_exprs(keys: list[str], tz: str) -> list[pl.Expr]:
    return [tagging.time_bucket(k, tz) for k in keys if k in TIME_BUCKETS]


def _account(agg: pl.DataFrame, acc: Accounting) -> None:
    per_status = agg.group_by(STATUS).agg(pl.col(ROWS).sum())
    counts = dict(zip(per_status[STATUS].to_list(), per_status[ROWS].to_list()))
    acc.duplicates = int(counts.get(DUPLICATE, 0))
    acc.repeats = int(counts.get(REPEAT, 0))
    acc.not_billable = int(counts.get(NOT_BILLABLE, 0))
    acc.quarantined = int(counts.get(QUARANTINED, 0))
    acc.filtered_out = int(counts.get(FILTERED, 0))
    acc.rows_read = int(sum(counts.values()))
    if acc.not_billable:
        why = agg.filter(pl.col(STATUS) == NOT_BILLABLE).group_by("_nb").agg(pl.col(ROWS).sum()).sort("_nb")
        acc.not_billable_reasons = dict(zip(why["_nb"].to_list(), (int(n) for n in why[ROWS].to_list())))


def _price_groups(ok: pl.DataFrame, rates: pl.DataFrame, book: pricebook.PriceBook, acc: Accounting) -> pl.DataFrame:
    """Join rates onto the aggregated rows and split priced from unpriced."""
    joined = ok.join(rates, on=list(tagging.RATE_KEYS), how="left", nulls_equal=True)
    # A record unpriced whole (see unpriceable_keys) is named by the model of its step that cannot be
    # priced, with that step's reason; its other steps are in no total.
    blamed = BLAME in joined.columns
    named = pl.coalesce(BLAME, "model_raw") if blamed else pl.col("model_raw")
    own = pl.col("unpriced_reason")
    if blamed:  # (the reasons of the named model's own rows: a record's other unpriced steps are its own)
        joined = joined.with_columns(pl.when(named == pl.col("model_raw")).then(own).alias("_own_reason"),
                                     blamed_reason())
        own = pl.col("_own_reason")
    unpriced = joined.filter(pl.col("unpriced_reason").is_not_null())
    priced = joined.filter(pl.col("unpriced_reason").is_null()).drop(BLAME, "_own_reason", strict=False)
    acc.unpriced = int(unpriced[ROWS].sum() or 0)
    acc.priced = int(priced[ROWS].sum() or 0)
    if unpriced.height:
        resolver = Resolver(book)
        by_model = unpriced.group_by(named.alias("model_raw")).agg(
            pl.col(ROWS).sum(), own.drop_nulls().unique().sort().str.join("; ").alias("_own"),
            pl.col("unpriced_reason").unique().sort().str.join("; "),
            pl.when(pl.col("_reported_rows").sum() > 0).then(pl.col("reported_cost").sum()).alias("reported_cost"))
        # (ties by name: group_by's order differs from run to run, and so did the report's lines)
        by_model = by_model.sort([ROWS, "model_raw"], descending=[True, False])
        for raw, n, mine, reason, said in zip(*(by_model[c].to_list() for c in (
                "model_raw", ROWS, "_own", "unpriced_reason", "reported_cost"))):
            reason = mine or reason
            acc.unpriced_models[raw] = int(n)
            if said is not None:
                acc.unpriced_reported[raw] = said
            hint = resolver.suggest(raw) if "unknown model" in reason else None
            acc.unpriced_reasons[raw] = reason + (f" (did you mean {hint}?)" if hint else "")
    priced = priced.with_columns(cost_columns()).with_columns(totals_columns())
    return priced.with_columns(pl.coalesce("endpoint_scope", "endpoint_scope_resolved").alias("endpoint_scope"))


@dataclass
class Report:
    group_by: list[str]
    rows: pl.DataFrame
    totals: dict
    accounting: Accounting
    book: pricebook.PriceBook
    tz: str
    dialects: dict[str, str]
    notes: list[str]
    # The priced groups the rows were summed from (rate keys + --by keys): what a report that draws
    # (html_report) regroups by time, tier or component without reading the logs again.
    detail: pl.DataFrame | None = None


def analyze(paths, by: list[str] | tuple[str, ...] = ("model",), opts: Options | None = None,
            book: pricebook.PriceBook | None = None) -> Report:
    """Read, normalize, dedupe, price and aggregate usage logs into a report (the main job)."""
    opts = opts or Options()
    check_options(opts)
    book = book or pricebook.load_price_book(opts.prices)
    with one_reading(native=True):
        report = _with_retry(lambda robust: _analyze(paths, list(by), opts, book, robust))
        if changed_during_run():  # a CSV scanned by Polars grew during the run: read to the sizes recorded
            read_natively(False)
            first = report.accounting.quarantine_file
            report = _with_retry(lambda robust: _analyze(paths, list(by), opts, book, robust))
            if first and not report.accounting.quarantine_file:  # (written by the first reading: not true now)
                with contextlib.suppress(OSError):
                    os.unlink(first)
        return report


# How a fast pass fails on a malformed record: a reader's error, or (ShapeError) a batch of JSON
# lines decoding to more values than lines (Polars decodes a column as one stream: a line holding
# two objects, `{..},{..}`, gives two).
FAST_PATH_FAILURES = (pl.exceptions.ComputeError, pl.exceptions.ShapeError)


def _with_retry(run):
    """Run fast; if a native reader failed on a malformed record (a broken JSON line, a count that is
    not an integer), run again reading every field as text, where such a record is quarantined with
    its line number instead of failing the file. Clean files, the nightly norm, pay for one pass."""
    try:
        return run(False)
    except LateKeys:  # (JSON Lines read before their search, which found keys to read: searched first now)
        search_keys_first()
        return _with_retry(run)
    except FAST_PATH_FAILURES:
        read_natively(False)  # (the robust pass reads every file with the bounded readers)
        return run(True)


@dataclass
class Groups:
    """A run's priced groups before they are summed to the report's rows: one row per rate-key group
    and report key, with its counts, per-unit rates (RATE_COLUMNS), costs and tags. What the FOCUS
    export and what-if scenarios start from: rates are columns here, so costs can be split per
    component or priced again under other rates, exactly, without reading the logs again."""

    group_by: list[str]
    priced: pl.DataFrame
    accounting: Accounting
    book: pricebook.PriceBook
    tz: str
    dialects: dict[str, str]
    notes: list[str]
    dimensions: list[str]


def analyze_groups(paths, by: list[str] | tuple[str, ...] = (), opts: Options | None = None,
                   book: pricebook.PriceBook | None = None, all_dimensions: bool = False,
                   scenario: pl.DataFrame | None = None) -> Groups:
    """Like `analyze`, stopping before the groups are summed (see Groups). `all_dimensions`: every
    dimension column of the logs is a key too (after `by`). `scenario`: a what-if's unpriceable keys
    (see with_scenario_blame): the groups carry SCENARIO_BLAME when a record has it."""
    opts = opts or Options()
    check_options(opts)
    book = book or pricebook.load_price_book(opts.prices)
    with one_reading(native=True):
        groups = _with_retry(lambda robust: _analyze(paths, list(by), opts, book, robust, True, all_dimensions, scenario))
        if changed_during_run():
            read_natively(False)
            first = groups.accounting.quarantine_file
            groups = _with_retry(lambda robust: _analyze(paths, list(by), opts, book, robust, True, all_dimensions,
                                                         scenario))
            if first and not groups.accounting.quarantine_file:
                with contextlib.suppress(OSError):
                    os.unlink(first)
        return groups


def _analyze(paths, by: list[str], opts: Options, book: pricebook.PriceBook, robust: bool, groups: bool = False,
             all_dimensions: bool = False, scenario: pl.DataFrame | None = None) -> Report | Groups:
    loaded = read_logs(paths, opts, robust, dimensions=None if all_dimensions else set(by), check_keys=True)
    with _removed_on_error(spooled := []):
        # (UnknownKeys: perhaps a --by tag that first appears after the first records: searched now)
        with _searched_on_error(loaded.key_checks):
            by, row_keys = report_keys(by, loaded, all_dimensions)
            loaded = spool(loaded, opts, columns=set(row_keys))
            spooled.extend(loaded.spooled)
            keys, post, extra = row_exprs(by, row_keys, opts, book)
            lf = with_status(loaded.frame, opts)
            cands = _candidates(loaded, opts)
        agg, _, _, _ = _aggregate(lf, keys, book, loaded, extra, cands, post, repeats_only=not opts.dedupe,
                                  scenario=scenario)
        return conclude(agg, paths, by, loaded, opts, book, groups)


# --- steps both engines run (engine_spark runs the pass over every row on Spark, these on the driver) ---

def report_keys(by: list[str], loaded: Loaded, all_dimensions: bool = False) -> tuple[list[str], list[str]]:
    """--by as the data spells it (then every other dimension, with `all_dimensions`), and those of
    its keys computed per row."""
    by = resolve_by(by, loaded.dimensions)
    if all_dimensions:
        by = [*by, *(d for d in loaded.dimensions if d not in by)]
    return by, check_by(by, loaded.dimensions)


def row_exprs(by: list[str], row_keys: list[str], opts: Options, book: pricebook.PriceBook
              ) -> tuple[list[str], list[str], list[pl.Expr]]:
    """(the report keys the pass groups by, time buckets derived after it, per-row expressions)."""
    buckets = [k for k in row_keys if k in TIME_BUCKETS]
    # UTC day-or-longer buckets follow from the time unit the pass groups by anyway: no per-row work.
    post = buckets if buckets and tagging.buckets_from_unit(buckets, opts.tz, book) else []
    row_keys = [k for k in row_keys if k not in post]
    extra = _bucket_exprs(row_keys, opts.tz)
    if "discount_type" in by:
        extra.append(tagging.cache_use())
        row_keys = [*row_keys, "_cache_use"]
    return [k for k in dict.fromkeys(row_keys) if k not in tagging.RATE_KEYS], post, extra


def group_keys(loaded: Loaded, keys: list[str]) -> list[str]:
    """What the pass over every row groups by: row fate, the rate keys some source carries, `keys`."""
    rate_keys = [tagging.TIME_UNIT if k == tagging.TIME_BAND else k for k in tagging.RATE_KEYS]
    nb = ["_nb"] if "_nb" in loaded.bookkeeping else []
    return ["_ok", "_out", *nb, *[k for k in rate_keys if k not in loaded.constant], *keys]


def accounted(agg: pl.DataFrame, loaded: Loaded) -> Accounting:
    """The run's accounting from its aggregate (refusing totals that would overflow)."""
    check_totals(agg)
    acc = Accounting(files=len(loaded.dialects), files_skipped=dict(sorted(loaded.skipped.items())))
    _account(agg, acc)
    return acc


def conclude(agg: pl.DataFrame, paths, by: list[str], loaded: Loaded, opts: Options, book: pricebook.PriceBook,
             groups: bool = False) -> Report | Groups:
    """From the aggregate to the report (or the priced groups): accounting, exact pricing, the
    quarantine file, notes."""
    acc = accounted(agg, loaded)
    ok = agg.filter(pl.col(STATUS) == OK)
    priced = _price_groups(ok, rate_frame(ok, book), book, acc)
    if "discount_type" in by:
        priced = priced.with_columns(aggregate.with_cache_use())
    if acc.quarantined:
        acc.quarantine_file = write_quarantine(paths, loaded, opts)
    _remove(loaded.spooled)  # (the report holds no lazy frame: the decoded rows can go now)
    notes = _notes(priced, acc) + loaded.notes + (
        [f"empty files skipped: {', '.join(loaded.empty)}"] if loaded.empty else [])
    if "block" in ok.columns:  # (every request that can be priced decides the windows, priced or not)
        priced = aggregate.with_blocks(priced, opts.tz, ok["block"])
    if groups:
        return Groups(by, priced, acc, book, opts.tz, loaded.dialects, notes, list(loaded.dimensions))
    rows, totals = aggregate.summarize(priced, by, opts.tz)
    return Report(by, rows, totals, acc, book, opts.tz, loaded.dialects, notes, priced)


def moved(agg: pl.DataFrame, lost: pl.DataFrame, book: pricebook.PriceBook, loaded: Loaded,
          post_buckets=()) -> pl.DataFrame:
    """The aggregate with the losing copies' sums (`lost`: grouped like it, and by `_repeat`) moved
    from their status to repeats or duplicates. (Exact: the aggregate is a sum.) A loser from a format
    that repeats records is a repeat."""
    lost = _finish_groups(lost, book, loaded, post_buckets)
    status_ = pl.when(pl.col("_repeat")).then(pl.lit(REPEAT, pl.UInt8)).otherwise(pl.lit(DUPLICATE, pl.UInt8))
    minus = lost.with_columns([(-pl.col(m)).alias(m) for m in _MEASURES])
    plus = lost.with_columns(status_.alias(STATUS))
    return pl.concat([agg, minus.select(agg.columns), plus.select(agg.columns)])


def _tier_unknown_notes(priced: pl.DataFrame) -> list[str]:
    """Pre-aggregated rows whose context window spans a long-context threshold (Haiku 5.5's 100K
    inside a `0-200k` bucket): whether any request crossed it is not in the source. Priced at base."""
    if not priced.height or TIER_UNKNOWN not in priced.columns:
        return []
    unsure = priced.filter(pl.col(TIER_UNKNOWN)).group_by("model", "context_window").agg(pl.col(ROWS).sum()) \
        .sort("model", "context_window")
    return [f"{n:,} pre-aggregated row{'s' if n != 1 else ''} of {model} in context window {window} cannot show "
            "whether a request crossed the model's long-context threshold: priced at base rates (a lower bound)"
            for model, window, n in zip(*(unsure[c].to_list() for c in ("model", "context_window", ROWS)))]


def _notes(priced: pl.DataFrame, acc: Accounting) -> list[str]:
    notes = []
    if priced.height and ((priced["service_tier"] == "priority") & (priced["provider"] == "anthropic")).any():
        notes.append("priority-tier requests are priced at list rates (Priority Tier prices are contractual)")
    if priced.height and (priced["confidence"] == "estimate").any():
        notes.append("some rates are estimates (see `llm-cost prices show MODEL`)")
    notes.extend(_tier_unknown_notes(priced))
    if acc.rows_read == 0 and acc.files:  # every record was skipped as not usage (say, a --dialect that does not fit)
        notes.append("no usage records found: the input's records are none of the kinds its format bills "
                     "(check the files, or --dialect)")
    if not acc.balanced:  # cannot happen unless a step drops rows; say so loudly rather than hide it
        notes.append("ACCOUNTING DOES NOT BALANCE: rows were lost; please report this")
    return notes


def write_quarantine(paths, loaded: Loaded, opts: Options) -> str:
    """Quarantined rows as JSON Lines (file, line, reason, raw record), written atomically.

    Only here are the reasons spelled out, and JSON is re-read line by line so that `line` is the
    line number a user sees in an editor (Polars' NDJSON reader, which reads canonical JSON Lines,
    counts records, skipping blank lines) and `reason` names the value as written."""
    from .writers import atomic_write

    path = opts.quarantine or DEFAULT_QUARANTINE
    _unchanged(loaded)  # (its records are read again by their numbers: those the run counted)

    def quarantined(exact: Loaded) -> pl.LazyFrame:
        rows = ~pl.col("_ok") & (pl.col("_nb").is_null() if "_nb" in exact.bookkeeping else pl.lit(True))
        if "_rec" in exact.bookkeeping:  # a record of several rows is quarantined whole, and written once
            rows = rows & (pl.col("_rec") != 0)
        return labels.apply_to_rows(exact.frame, exact.dimensions).filter(rows)

    def bad(exact: Loaded) -> pl.LazyFrame:
        return quarantined(exact).select(
            pl.col("source_file").alias("file"), pl.col("source_row").alias("line"),
            pl.col("_reason").alias("reason"), pl.col("_raw").alias("raw"),
        )

    has_json = any(f.container in ("jsonl", "json") for f in loaded.files)
    # A robust run's own rows hold each record and its reasons, unless some were spooled: then the
    # lines they show quarantined are read again (robustly, but for a JSON Lines file read by parts
    # only those lines: see line_retry).
    if loaded.robust and not loaded.spooled and loaded.unspooled is not None:
        loaded = dataclasses.replace(loaded, parts=loaded.unspooled)
    robust = loaded.robust and not loaded.spooled
    lines = None
    if has_json and not loaded.robust and "-" not in paths:
        # Reading every file again field by field costs ~50x a fast pass (430 s for a tree of
        # 17,000 transcripts with one cut line): a fast pass finds the files that hold quarantined
        # rows, and only those are read again line by line.
        # (and the lines: a file read by parts reads those alone, see line_retry)
        with contextlib.suppress(*FAST_PATH_FAILURES):
            found = bad(read_logs(paths, opts, exact_lines=True)).select("file", "line").collect(engine="streaming")
            paths = sorted(found["file"].unique().to_list()) or paths
            lines = {file: group["line"] for (file,), group in found.group_by("file")}
    # The run's own rows may be spooled without the record's text: the logs are read again (lazily),
    # JSON line by line, so that `line` is the line a user sees in an editor.
    if loaded.robust and loaded.spooled:  # (the spooled rows say which lines to read: only those are)
        found = quarantined(loaded).select("_file", "source_row").collect(engine="streaming")
        shown = {f.index: f.display for f in loaded.files if not f.members}
        lines = {shown[i]: group["source_row"] for (i,), group in found.group_by("_file") if i in shown}
    # A CSV record's `raw` is its fields as text, as written (`"-4"`, `"04"`): the robust reading's,
    # whatever else the run read. (The fast one types the counts: `-4`, `4`; 1M rows read robustly
    # cost 0.75 CPU s against 0.65, see line_retry.needed_records.)
    has_csv = any(f.container == "csv" for f in loaded.files)
    exact = loaded if robust else read_logs(paths, opts, robust=has_json or has_csv or loaded.robust, lines=lines)
    # The file holds raw records: readable by the user alone (0600), and credentials in them masked
    # like in every other output unless --reveal-keys (file, line and reason find the record).
    rows = bad(exact) if opts.reveal_keys else safe_text.mask_frame(bad(exact), ["file", "reason", "raw"])

    def write(tmp: str) -> None:
        rows.sink_ndjson(tmp)
        _unchanged(loaded)  # (a change while it was read: the file is not put in place)
    atomic_write(path, write, mode=0o600)
    return path


def _unchanged(loaded: Loaded) -> None:
    """Refuse to go on with a file changed since the run first read it, other than by records
    appended (see analyzer/fingerprint.py): a log rotated by copytruncate during the run."""
    for p, then in {**loaded.read_prints, **loaded.fingerprints}.items():
        why = fingerprint.change(p, then)
        if why is not None:
            raise SourceError(f"{shown(p)}: changed during the run ({why}); its records were counted as it "
                              "was before, and cannot be read again: run again")


class PricedRows:
    """Per-request rows with tags and exact cost columns: one lazy plan per input file (each file's
    rows are filtered by its own duplicate losers and carry its own source columns).

    A part is `finish(source)`: `source` the file's normalized rows, `finish` the per-row plan that
    prices them (element-wise: filters and columns, no row depends on another). So a writer can
    evaluate a part over slices of its source, `finish(source.slice(offset, n))`, and append each to
    one file: Polars' streaming sinks hold more the more rows they write (see writers.sink_rows)."""

    def __init__(self, parts: list[pl.LazyFrame], finish=None, record_wise: list[bool] | None = None,
                 held: HeldParquet | None = None, owns: bool = False):
        self._sources = list(parts)
        self.finishes = [finish] * len(self._sources) if not isinstance(finish, list) else finish
        # Whether a part's source treats each record on its own (a format in RECORD_WISE): then a
        # reader of this tool's own may be read piece by piece (see sources.resumed).
        self.record_wise = record_wise or [False] * len(self._sources)
        # The checked Parquet files the plans read (by their descriptors' names: see held.py),
        # compared with what was checked once the rows are read (see reading); `owns`: held for these
        # rows alone (no scope enclosed price_requests), closed by close(), the end of a `with`, or
        # when no PricedRows refers to them any more.
        self.held, self.owns = held, owns

    def __enter__(self) -> PricedRows:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        """Close the Parquet files the plans read (when these rows hold them): collect no plan after.
        (The plans refer to the files' descriptors, which stay open while a plan does: see
        held.Held.scan. So these rows drop theirs, and the descriptors close now, unless the caller
        still has a plan made of them.)"""
        if self.owns and self.held is not None:
            self.held.close()
            self._sources, self.finishes = [], []

    @contextlib.contextmanager
    def reading(self):
        """Around reading the rows: a checked Parquet file changed since its check stops it in one
        line naming the file, also when Polars failed on the changed file (a panic: see held.Held)."""
        if self.held is None:
            yield
            return
        with holding_parquet(self.held):
            yield

    @property
    def sources(self) -> list[pl.LazyFrame]:
        """Each part's normalized rows (see the class)."""
        if self.held is not None and self.held.unreadable():
            # (its plans read Parquet inputs by descriptor names that were closed: collected, they read
            # nothing, or another file opened since under the same number, priced as these rows)
            raise SourceError("these rows were closed (rows.close(), the end of `with rows:`, or the scope "
                              "that priced them ended): their Parquet inputs are no longer open; price again")
        return self._sources

    def plan(self, i: int, rows: tuple[int, int] | None = None) -> pl.LazyFrame:
        """Part `i`'s rows, or (with `rows`, (offset, length)) those of that slice of its source."""
        source = self.sources[i] if rows is None else self.sources[i].slice(*rows)
        finish = self.finishes[i]
        return source if finish is None else finish(source)

    @property
    def parts(self) -> list[pl.LazyFrame]:
        return [self.plan(i) for i in range(len(self.sources))]

    def lazy(self) -> pl.LazyFrame:
        """All rows as one plan, in file order."""
        parts = self.parts
        return pl.concat(parts, how="diagonal_relaxed") if len(parts) > 1 else parts[0]

    def with_columns(self, *exprs) -> PricedRows:
        """The same rows with more columns (added per slice when written in slices)."""
        def more(finish):
            return lambda lf: (lf if finish is None else finish(lf)).with_columns(*exprs)
        return PricedRows(self.sources, [more(f) for f in self.finishes], self.record_wise, self.held, self.owns)

    def sink(self, path: str, fmt: str = "parquet") -> None:
        from .writers import sink_rows

        sink_rows(self, fmt, path)

    def sink_parquet(self, path: str, **options) -> None:
        """Written to `path` as it stands (no temporary name: for a file of the caller's own), slice
        by slice (see writers.write_rows); `options`: `compression`, `row_group_size`."""
        from .writers import write_rows

        write_rows(self, "parquet", path, **options)


# What per-request pricing adds to a canonical row (and `llm-cost reprice` replaces).
PRICE_TAGS = ("model", "family", "provider", "price_period", "context_tier", "discount_type")
MONEY_COLUMNS = (*("cost_" + c.rate for c in COMPONENTS), "cost", "list_cost", "savings")
PRICED_COLUMNS = (*PRICE_TAGS, *MONEY_COLUMNS, "price_book", "unpriced_reason")
RATE_COLUMNS = (*(RATE + c.column for c in COMPONENTS), *(LIST_RATE + c.column for c in COMPONENTS))


def price_rows(lf: pl.LazyFrame, rates: pl.DataFrame, band: dict[int, int], book: pricebook.PriceBook
               ) -> pl.LazyFrame:
    """Price valid canonical rows one by one: `rates` is the rate frame of their distinct rate keys,
    `band` maps each time unit to its price band (both small). Adds PRICED_COLUMNS; money is null
    on unpriced rows, which say why in `unpriced_reason`. (See row_pricing.)"""
    return row_pricing(rates, band, book)(lf)


def row_pricing(rates: pl.DataFrame, band: dict[int, int], book: pricebook.PriceBook, blamed: bool = False
                ) -> Callable[[pl.LazyFrame], pl.LazyFrame]:
    """price_rows over `rates` and `band`, its expressions built once: `price` applies it to every
    slice of every file, and building them (the rate frame's rates made integers in Python, its
    columns made literals) cost ~0.25 CPU s each time, ~1.5 s of a million-row run.

    Each row finds its rate row by position (pricing.rate_row: integer codes, no join) and is priced
    in integer units (pricing.integer_cost_steps); a rate frame those cannot handle is joined and priced
    with Decimal expressions, to the same values. `blamed`: the rows carry BLAME (see with_blame), and
    a row of a record unpriced whole is unpriced (no money) whatever its own rate."""
    # (a gather, not replace_strict: that holds the whole column in the streaming engine; see pricing.lookup)
    tband = lookup(band, pl.col(tagging.TIME_UNIT))
    if tband is None:
        tband = pl.col(tagging.TIME_UNIT).replace_strict(band, default=None, return_dtype=pl.Int32)
    tags = tagging.row_tags(book)
    row = rate_row(rates)
    unpriced = pl.col("unpriced_reason").is_not_null()
    steps = None if row is None else integer_cost_steps(rates, pl.col(RATE_ROW), unpriced)
    taken = [] if row is None else [take(rates[c], pl.col(RATE_ROW)).alias(c) for c in rates.columns
                                    if c not in tagging.RATE_KEYS]
    last = (pl.coalesce("endpoint_scope", "endpoint_scope_resolved").alias("endpoint_scope"),
            pl.lit(book.version).alias("price_book"))

    def apply(lf: pl.LazyFrame) -> pl.LazyFrame:
        lf = lf.with_columns(*tags).with_columns(tband.alias(tagging.TIME_BAND))
        if row is None:
            lf = lf.join(rates.lazy(), on=list(tagging.RATE_KEYS), how="left", nulls_equal=True,
                         maintain_order="left")
        else:
            lf = lf.with_columns(row).with_columns(taken)
        if blamed:
            lf = lf.with_columns(blamed_reason())
        if steps is None:
            lf = with_costs(lf)
        else:
            for step in steps:
                lf = lf.with_columns(step)
            lf = lf.drop(RATE_ROW, *unit_columns())
        return lf.with_columns(*last)

    return apply


def with_costs(frame: pl.LazyFrame | pl.DataFrame) -> pl.LazyFrame | pl.DataFrame:
    """MONEY_COLUMNS from counts and the joined per-unit rates (RATE_COLUMNS), null on unpriced rows.
    Also prices aggregates exactly: rows that share their rates may sum their counts first."""
    unpriced = pl.col("unpriced_reason").is_not_null()
    return frame.with_columns(cost_columns()).with_columns(totals_columns()).with_columns(
        [pl.when(unpriced).then(None).otherwise(pl.col(c)).alias(c) for c in MONEY_COLUMNS])


def price_requests(paths, opts: Options | None = None, book: pricebook.PriceBook | None = None,
                   keep_rates: bool = False, rank_as: str | None = None) -> tuple[PricedRows, Accounting]:
    """Per-request rows with tags and exact cost columns (and with `keep_rates`, the per-unit rates
    they were computed from: RATE_COLUMNS), and the run's accounting. `rank_as`: also each row's
    dedupe rank (`_rank`: 0 for a format without one) under that name, for the store, which compares
    its stored copies with a later night's as dedupe compares copies within a run.

    A streaming aggregate learns the run's distinct rate keys, duplicates and accounting; the rows
    are then priced by joining the small rate frame onto each file's rows, when they are written."""
    opts = opts or Options()
    check_options(opts)
    book = book or pricebook.load_price_book(opts.prices)
    # (The rows are written after this returns, from the lazy plans: their readers captured the run,
    # and read the sizes recorded in it; its Parquet files stay open for them: in the caller's scope
    # (the CLI command's, a store file's), else held by the rows, see PricedRows.)
    outer = current_holding()
    with one_reading(held=outer, keep=True) as held:
        rows, acc = _with_retry(lambda robust: _price_requests(paths, opts, book, robust, keep_rates, rank_as))
    rows.held, rows.owns = held, outer is None
    return rows, acc


def _price_requests(paths, opts: Options, book: pricebook.PriceBook, robust: bool, keep_rates: bool = False,
                    rank_as: str | None = None):
    # (No key check: `price` reads with the bounded readers (one_reading() without native scans), so
    # its JSON Lines files are searched for late keys before they are read, as they were.)
    loaded = read_logs(paths, opts, robust, exact_lines=True)
    with _removed_on_error(spooled := []):
        loaded = spool(loaded, opts)  # source_row is in the output
        spooled.extend(loaded.spooled)
        agg, losers, units, blamed = _aggregate(with_status(loaded.frame, opts), [], book, loaded, [],
                                                _candidates(loaded, opts), repeats_only=not opts.dedupe)
        acc, priced = row_pricer(agg, units, paths, loaded, opts, book, keep_rates, rank_as,
                                 blame=None if blamed is None else functools.partial(with_blame, blamed=blamed))
    record_wise = [loaded.dialects.get(f.display) in RECORD_WISE and not f.members for f in loaded.files]
    return PricedRows(loaded.parts, functools.partial(_finish_priced, priced, losers), record_wise), acc


# Formats whose normalized rows are each made from their own record alone (no sort, group or window
# over records: tests/test_price_slices.py compares their output read in pieces of a few records).
RECORD_WISE = {"canonical"}


def _finish_priced(priced, losers: pl.DataFrame, part: pl.LazyFrame) -> pl.LazyFrame:
    return priced(part, losers)


def row_pricer(agg: pl.DataFrame, units: pl.DataFrame, paths, loaded: Loaded, opts: Options,
               book: pricebook.PriceBook, keep_rates: bool = False, rank_as: str | None = None,
               blame: Callable[[pl.LazyFrame], pl.LazyFrame] | None = None):
    """From a run's aggregate: its accounting, and the function that prices one normalized part's
    rows (dropping duplicate losers, a frame of dedupe.LOSER keys); `rank_as`: see price_requests.
    `blame`: when the aggregate has records unpriced whole (BLAME), what gives a part's rows their
    BLAME column (with_blame)."""
    acc = accounted(agg, loaded)
    ok = agg.filter(pl.col(STATUS) == OK)
    rates = rate_frame(ok, book)
    _price_groups(ok, rates, book, acc)  # for the accounting: which groups are unpriced, and why
    if acc.quarantined:
        acc.quarantine_file = write_quarantine(paths, loaded, opts)
    band = dict(zip(units[tagging.TIME_UNIT].to_list(), units[tagging.TIME_BAND].to_list()))
    cols = [c for c in CANONICAL if c not in ("source",)] + loaded.dimensions + [
        *PRICED_COLUMNS, *(RATE_COLUMNS if keep_rates else ()), "source"]
    rank = (pl.col("_rank") if "_rank" in loaded.bookkeeping else BOOKKEEPING["_rank"]).cast(pl.Int8)
    if rank_as:
        cols.append(rank.alias(rank_as))
    pricing = row_pricing(rates, band, book, blame is not None)  # (once: every slice of every file is priced with it)

    def priced(part: pl.LazyFrame, losers: pl.DataFrame) -> pl.LazyFrame:
        lf = with_status(part, opts)
        if blame is not None:
            lf = blame(lf)
        if losers.height:  # an element-wise filter, not an anti-join: it streams and keeps the row order
            lf = lf.filter(~dedupe.lost(lf, losers))
        billable = pl.col("_nb").is_null() if "_nb" in loaded.bookkeeping else pl.lit(True)
        lf = pricing(labels.apply_to_rows(lf, loaded.dimensions).filter(pl.col("_ok") & ~pl.col("_out") & billable))
        lf = lf.with_columns([pl.lit(None, pl.String).alias(d) for d in loaded.dimensions
                              if d not in lf.collect_schema()])
        return lf.select(cols)

    return acc, priced

"""The store of nightly runs (DESIGN §9): a Delta Lake table of priced requests.

    <store>/_delta_log/                       the table's log: every version, atomic commits (Delta Lake)
    <store>/_llm_month=2026-11/part-*.parquet priced rows, partitioned by UTC month, exact Decimal costs
    <store>/_llm_cost/files/                  a second Delta table: one row per ingested file
    <store>/_llm_cost/quarantine/*.jsonl      rows of an ingest that could not be read
    <store>/_llm_cost/lock                    held (flock) by the one ingest, reprice or compact at work

Any Delta reader (Polars `scan_delta`, DuckDB `delta_scan`, Spark) reads `<store>` and sees the rows
`report --store` sums. Columns this module adds start with `_llm_`: a log's own columns never do
(the pipeline drops `_`-prefixed columns), so a log column named `rate_id` or `month` cannot collide.

Each ingested file is one commit to the rows table, replacing the rows of the file's earlier
content (and of this content, were it a crashed earlier try), with the file's record in the
commit's metadata. The record is then copied into the files table, tagged with the rows version it
belongs to. A run killed between the two commits leaves a record only in the rows table's log: the
next run (or a reader) replays it from there. Nothing is ever repaired by deleting: Delta's commit is
a rename of one log file, so a run killed at any point leaves the last committed version.

A request id already stored, stamped within a day of the file's own days, is one request: the copy
with the best rank (RANK), then the most tokens stays (on a tie, the stored one), as in a report of
all the files read in the order they were ingested; a stored copy that loses is removed from its
data file in the night's commit (see _MonthFiles.displace), kept whole in a DISPLACED file the
night's record names (brought back should that night's file be replaced: see _restore) and counted
as a duplicate by its file's record. The check reads
only the data files (and in them the row groups) whose time range overlaps those days, by Delta's
file statistics, so a night's cost does not grow with the history. Every CHECKPOINT_EVERY versions a Delta checkpoint is written, so that opening the table
replays at most that many commit files, however long the history.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import errno
import fcntl
import hashlib
import json
import os
import random
import re
import socket
import stat
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

import polars as pl

from . import aggregate, dedupe, dialects, pipeline, pricebook, tagging, writers
from .dialects._json_text import regex_literal
from .errors import AnalyzerError, OptionError, SourceError
from .held import difference, holding_parquet
from .pipeline import INT64_MAX
from .schema import COUNT_COLUMNS, MONEY
from .sources import check_chunk_types, expand_paths, file_key, open_source, shown
from .words import counted

PREFIX = "_llm_"  # every column this module adds; never a log's column (see the module doc)
MONTH = "_llm_month"  # partition column: the request's UTC month, YYYY-MM
SHA = "_llm_source_sha256"  # the sha256 of the file a row came from (joins with the files table)
# A row's dedupe rank (dedupe.losers: the lowest wins before tokens are compared; a Claude Code
# sidechain replay of a message never beats the main chain's copy), kept so that a later night's
# copies are compared with the stored ones as a report of both files compares them. Data files
# written before it lack the column: read as 0, the rank of every copy of a format without ranks.
RANK = "_llm_rank"
NEUTRAL_RANK = 0
INTERNAL = (MONTH, SHA, RANK)
LOG = "_delta_log"
META = "_llm_cost"
FILES = os.path.join(META, "files")
QUARANTINE = os.path.join(META, "quarantine")
# The stored copies a night displaced (see _MonthFiles.displace), each rewritten data file's in a
# file of its own, named by the record of the night that displaced them: when that night's file is
# replaced and its winning copies go, the best of these come back in the replacing commit.
DISPLACED = os.path.join(META, "displaced")
DISPLACED_NAME = re.compile(re.escape(DISPLACED + os.sep) + r"[0-9a-f-]{36}\.parquet")
INTERRUPTED_WRITE = re.compile(r"\.llm-cost-[0-9a-f]{16}\.tmp")  # writers.atomic_write's temporary name
LOCK = os.path.join(META, "lock")
OLD_MANIFEST = "manifest.json"
TRACE = pipeline.env_flag("LLM_COST_STORE_TRACE")  # =1: print each ingest step's CPU s and peak RSS to stderr
STARTED = time.monotonic()  # (the trace's wall clock: from this module's import)
SPOOL_PREFIX = ".spool-"  # _llm_cost/.spool-<host>-<pid>-<sha>.parquet: an ingest's priced rows, removed after
DEFAULT_WAIT = 30.0
# A Delta checkpoint (the table's state in one Parquet file) every this many versions, of both
# tables: opening a table then replays the checkpoint and at most this many commit files, not the
# whole history (delta-rs' default, 100, left a nightly store replaying up to 100 commits a run).
CHECKPOINT_EVERY = 10
CONFLICT_RETRIES = 8  # an ingest whose commit lost the race re-checks and tries again, this many times
RETENTION_DAYS = 7  # `store compact` keeps time travel to any version of the last week
# Commit metadata keys (Delta keeps them in the commit's commitInfo).
K_COMMAND, K_BOOK, K_FILE, K_ROWS, K_VERSION = ("llm_cost.command", "llm_cost.price_book", "llm_cost.file",
                                                 "llm_cost.rows", "llm_cost.rows_version")
# A reprice commit's word on the DISPLACED files it wrote anew (the kept copies priced again): per
# file path, the record fields that name them now ({path: {"displaced_rows": ..., "displaced_stats": ...,
# "displaced_sha256": ...}}), and the records' accounting a reprice changes (see _blank_fields).
K_KEPT = "llm_cost.kept"
# What delta-rs names the data files it writes: the only files `compact` ever deletes.
PART_NAME = re.compile(r"part-\d{5}-[0-9a-f-]{36}-c000(\.[a-z0-9]+)?\.parquet")
FILE_COLUMNS = {"path": pl.String, "sha256": pl.String, "size": pl.Int64, "mtime": pl.String, "dialect": pl.String,
                "rows": pl.Int64, "price_book": pl.String, "overlays": pl.String, "ingested_at": pl.String,
                "quarantine": pl.String, "accounting": pl.String, "dimensions": pl.String,
                "rows_version": pl.Int64, "repeats_records": pl.Boolean, "displaced_rows": pl.String,
                "span": pl.String, "displaced_stats": pl.String, "displaced_sha256": pl.String}
# Columns the files table gained later: a files table written before lacks them (its records then
# say nothing of it, as their commits' records do not either). `displaced_rows`: a JSON list of the
# DISPLACED files holding the copies the file's copies beat, or that lost to stored ones; `span`:
# a JSON [first, last] of its rows' times (what _restore looks for copies near); `displaced_stats`:
# a JSON {file: [rows, bytes]} of those files as written (a file emptied or rewritten by hand is
# damage, as a data file that differs from the Delta log's numbers is; see _kept_damage);
# `displaced_sha256`: a JSON {file: sha256} of them (an edit in place at the same size: see
# _kept_digests).
LATER_FILE_COLUMNS = {"repeats_records", "displaced_rows", "span", "displaced_stats", "displaced_sha256"}


class StoreError(AnalyzerError):
    """The store cannot be used: locked by another run, damaged, or not a store."""


class _DamagedPart(StoreError):
    """A data file whose footer is damaged (see _data_footer): raised through the steps that read a
    file they cannot summarize as rows instead, since Polars reads such a file without a word."""


def _trace(step: str) -> None:
    """With LLM_COST_STORE_TRACE=1, one stderr line per ingest step: CPU seconds so far and the peak
    RSS so far (the step that raises the peak is the one to bound). For measuring, not for users."""
    if TRACE:
        import resource
        import sys

        ru = resource.getrusage(resource.RUSAGE_SELF)
        print(f"trace {step:<24} cpu {ru.ru_utime + ru.ru_stime:8.2f} s  peak {ru.ru_maxrss / 1024:7.0f} MiB  "
              f"wall {time.monotonic() - STARTED:6.2f} s  ({threading.current_thread().name})", file=sys.stderr)


def _delta():
    import deltalake

    return deltalake


def _writer(row_group: int | None = None):
    """zstd: 40% smaller than delta-rs' default snappy on priced rows (83% vs 136% of the same rows
    as gzip CSV, measured on a bench night); the ten Decimal(38, 12) cost columns are most of it.
    `row_group`: rows per row group (delta-rs' default is a million: a compacted file then came
    back to a report as million-row groups, which took more memory and more time than the small
    files it replaced; and a time filter can skip only whole row groups)."""
    return _delta().WriterProperties(compression="ZSTD", compression_level=3, max_row_group_size=row_group)


def _local(uri: str) -> str:
    """A path delta-rs gives (a table's uri, a data file's) as the local path it names: delta-rs
    percent-encodes it ('a b' -> 'a%20b', '%' -> '%25'), which no file of the store is called."""
    from urllib.parse import unquote

    return unquote(uri.removeprefix("file://"))


def _resolved(root: str) -> str:
    """The store's directory with symlinks resolved, as delta-rs names the table's data files (it
    resolves them): every path of the store is then taken relative to the same directory. With the
    directory as given (/data -> /mnt/disk/data), a file's name relative to it was '../../mnt/...':
    a month's rollup never covered its files, and `--by month` counted them twice."""
    return os.path.realpath(os.path.abspath(root))


def _damaged(root: str, e: BaseException) -> StoreError:
    first = (str(e).strip().splitlines() or [type(e).__name__])[0]
    if getattr(e, "errno", None) == errno.EMFILE or "(os error 24)" in first:
        # (the process's descriptor limit, not the store: Polars opens the night's data files at once;
        # "damaged store" sent the user to repair a sound store)
        return StoreError(f"{root}: {first}; raise the limit on open files (`ulimit -n`) and run again")
    hint = f" (if its last commit was cut short: `llm-cost store repair {root}`)" if "json" in first.lower() else ""
    return StoreError(f"damaged store: {root}: {first}{hint}")


# ----------------------------------------------------------------------------------------------
# Opening: what is a store, what is not


def _kind(root: str) -> str:
    """'missing', 'empty', 'delta' (ours), 'old' (a manifest store), or 'foreign'."""
    if any(c in os.path.abspath(root) for c in "[]"):
        # delta-rs parses a table's path as a URL and panics on brackets: refused before it is asked.
        raise StoreError(f"{root}: a store's path cannot hold '[' or ']' (the Delta Lake library reads them as "
                         "URL syntax); choose another directory")
    if re.search(r"%[0-9A-Fa-f]{2}", os.path.abspath(root)):
        # delta-rs decodes '%41' in a table's path to 'A' when it reads some log files (the first
        # commit, a checkpoint): the store would be written in one place and looked for in another.
        raise StoreError(f"{root}: a store's path cannot hold '%' followed by two hex digits (the Delta Lake "
                         "library decodes it as a URL escape); choose another directory")
    if not os.path.lexists(root):
        return "missing"
    if not os.path.isdir(root):
        return "foreign"
    names = set(os.listdir(root))
    if LOG in names and META in names and not _committed(root) and not os.path.isdir(os.path.join(root, FILES, LOG)):
        # A first commit killed half-way: delta-rs makes the log directory before it writes the
        # commit in it. No version exists: the store is as before that ingest. (With the files
        # table, written after a commit, a log without commits is damage, reported as such.)
        names.discard(LOG)
    elif LOG in names:
        return "delta" if META in names else "foreign"
    if OLD_MANIFEST in names:
        return "old"
    # A first ingest killed before its first commit leaves our own directory, and maybe the data
    # files it wrote before it could commit them (month directories holding only such files).
    if names <= {META} or META in names and all(_only_parts(root, n) for n in names - {META}):
        return "empty"
    return "foreign"


COMMIT_FILE = re.compile(r"\d{20}\.(json|checkpoint.*\.parquet)|_last_checkpoint")


def _committed(root: str) -> bool:
    """The rows table's log directory holds a commit or a checkpoint (not only a temporary file, or
    nothing: a first commit killed before its rename)."""
    log = os.path.join(root, LOG)
    return not os.path.isdir(log) or os.path.islink(log) or any(COMMIT_FILE.fullmatch(n) for n in os.listdir(log))


def _only_parts(root: str, name: str) -> bool:
    """`name` is a month directory of this layout holding nothing but data files named as delta-rs
    names them: what a run killed before its first commit wrote."""
    path = os.path.join(root, name)
    return (re.fullmatch(re.escape(MONTH) + r"=\d{4}-\d{2}", name) is not None and not os.path.islink(path)
            and os.path.isdir(path) and all(PART_NAME.fullmatch(f) and os.path.isfile(os.path.join(path, f))
                                             and not os.path.islink(os.path.join(path, f)) for f in os.listdir(path)))


def _refuse(root: str, kind: str) -> StoreError:
    if kind == "old":
        return StoreError(f"{root}: a store of the old layout (manifest.json); convert it with "
                          f"`llm-cost store upgrade {root}`")
    if kind == "missing":
        return StoreError(f"{root}: not an llm-cost store (it does not exist; create one with `llm-cost ingest`)")
    if kind == "empty" and not os.path.isdir(os.path.join(root, FILES, LOG)):
        # Neither table exists: not a store whose files gave no rows, but a first ingest stopped
        # (killed, a full disk) before its first commit.
        return StoreError(f"{root}: the store's first ingest did not finish (it stopped before its first commit), "
                          "so the store has no version yet; run the ingest again (data files it left are never "
                          f"read; `llm-cost store compact {root}` removes them afterwards)")
    if kind == "empty":
        return StoreError(f"{root}: an llm-cost store with no rows yet (its files gave none: empty, or every row "
                          f"quarantined; see {os.path.join(root, QUARANTINE)})")
    return StoreError(f"{root}: not an llm-cost store (it holds files but no llm-cost Delta table); "
                      "give an empty or new directory")


def _check_meta(root: str) -> None:
    """Our directories are real directories inside the store: a symlink there would make a write
    (a commit to either table's log, the files table, a quarantine file) land outside it."""
    for sub in (LOG, META, FILES, os.path.join(FILES, LOG), QUARANTINE, DISPLACED, SUMMARY,
                *(os.path.join(SUMMARY, g) for g in GRAINS), ROLLUP):
        path = os.path.join(root, sub)
        if os.path.islink(path) or (os.path.lexists(path) and not os.path.isdir(path)):
            raise StoreError(f"damaged store: {path} is not a directory of this store (a symlink or a file)")
    # A month directory that leads elsewhere would receive new data files, or new summaries (and a
    # report would read the summaries found there as the store's own).
    for top in (root, *(os.path.join(root, SUMMARY, g) for g in GRAINS), os.path.join(root, ROLLUP)):
        if os.path.isdir(top):
            for name in os.listdir(top):
                if name.startswith(MONTH + "=") and os.path.islink(os.path.join(top, name)):
                    raise StoreError(f"damaged store: {os.path.join(top, name)} is a symlink, not a directory of this store")


def _table(root: str, version: int | dt.datetime | None = None):
    """The rows table at its last version (or at `version`: a number or a time)."""
    kind = _kind(root)
    if kind != "delta":
        raise _refuse(root, kind)
    _check_meta(root)
    dl = _delta()
    try:
        table = dl.DeltaTable(root)
        if version is not None:
            table.load_as_version(version)
    except Exception as e:  # noqa: BLE001 - delta-rs raises its own and Python errors for a bad log
        # A number too big for the log's 64-bit versions (OverflowError) is no version either.
        if version is not None and (isinstance(e, OverflowError) or "version" in str(e).lower()
                                    or "timestamp" in str(e).lower()):
            raise StoreError(f"{root}: no version {version} (see `llm-cost store history {root}`): "
                             f"{(str(e).strip().splitlines() or [''])[0]}") from None
        raise _damaged(root, e) from None
    if isinstance(version, dt.datetime):  # delta-rs gives version 0 for a time before it: the store did not exist
        first = min((c for c in _history(table, 1)), key=lambda c: c["version"], default=None)
        if first is not None and first["timestamp"] > version.timestamp() * 1000:
            raise StoreError(f"{root}: no version at or before {version.isoformat()} (the first is from "
                             f"{dt.datetime.fromtimestamp(first['timestamp'] / 1000, dt.UTC).isoformat()})")
    if MONTH not in table.metadata().partition_columns:
        raise StoreError(f"{root}: not an llm-cost store (a Delta table without {MONTH} partitions)")
    if version is None:
        # The files table is written after each rows commit, tagged with its version: a files table
        # ahead of the log means commits were lost from the log. Their data files are then not
        # "never committed" (compact would delete them) and the report would drop their rows.
        recorded = _recorded(root)
        if recorded > table.version():
            # Or another writer committed, and recorded its commit, between the two reads (a report
            # while the nightly ingest runs): the log read again then reaches that version.
            try:
                table.update_incremental()
            except Exception as e:  # noqa: BLE001 - as above
                raise _damaged(root, e) from None
        if recorded > table.version():
            raise StoreError(f"damaged store: {root}: the files table records version {recorded} of the table, "
                             f"but {LOG} ends at version {table.version()} (commit files are missing; "
                             f"`llm-cost store repair {root}` goes back to version {table.version()})")
    return table


# ----------------------------------------------------------------------------------------------
# Lock


def _me(command: str) -> dict:
    return {"pid": os.getpid(), "host": socket.gethostname(), "command": command,
            "started": dt.datetime.now(dt.UTC).isoformat(timespec="seconds")}


def _describe(holder: bytes) -> str:
    try:
        h = json.loads(holder)
        return f"pid {h['pid']} on {h['host']} (llm-cost {h['command']}, started {h['started']})"
    except (ValueError, KeyError, TypeError):
        return "an unknown process"


def _check_wait(wait: float) -> None:
    """`--wait`: seconds, finite (nan compares false with everything; inf would wait forever)."""
    if not isinstance(wait, int | float) or wait != wait or wait < 0 or wait == float("inf"):
        raise OptionError(f"--wait {wait}: a number of seconds, 0 or more (not nan or inf)")


@contextlib.contextmanager
def locked(root: str, command: str, wait: float = DEFAULT_WAIT, warn: Callable[[str], None] = lambda m: None,
           create: bool = False) -> Iterator[None]:
    """Hold the store's lock: an flock on `_llm_cost/lock`, dropped by the kernel however its holder
    dies. Delta's own conflict detection would refuse a second commit built on a stale version, but
    the duplicate check reads the table before writing: two ingests must not interleave. The lock
    file is opened without following a symlink and must be a regular file, so it cannot be turned
    into a way to truncate another file."""
    _check_wait(wait)
    kind = _kind(root)
    if kind not in ("delta", "empty") and not (create and kind == "missing"):
        raise _refuse(root, kind)
    _check_meta(root)
    os.makedirs(os.path.join(root, META), exist_ok=True)
    path = os.path.join(root, LOCK)
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
    except OSError as e:
        raise StoreError(f"damaged store: {path}: cannot open the lock ({e.strerror}; a symlink is refused)") from None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise StoreError(f"damaged store: {path}: the lock is not a regular file")
        deadline = time.monotonic() + wait
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise StoreError(f"{root}: the store is locked by {_describe(os.pread(fd, 4096, 0))}; "
                                     f"waited {wait:g} s (use --wait SECONDS to wait longer)") from None
                time.sleep(0.1)
        left = os.pread(fd, 4096, 0)
        if left.strip():
            warn(f"{path} was left by {_describe(left)}, which no longer holds it (it died): taking it over")
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(_me(command)).encode(), 0)
        try:
            yield
        finally:
            os.ftruncate(fd, 0)  # an empty lock file: released cleanly
    finally:
        os.close(fd)  # closing releases the flock


# ----------------------------------------------------------------------------------------------
# The files table: what each ingested file gave


def _commit(command: str, book: str | None = None, **extra) -> object:
    """A commit's metadata. No retries: delta-rs would rebase a commit that lost the race onto the
    winner's version when their files do not overlap, but ours were decided by reading the table
    (which ids are repeats, which rows to re-price): a commit built on a stale version must fail,
    to be re-checked and tried again by the caller (see `_Conflict`)."""
    meta = {K_COMMAND: command, **({K_BOOK: book} if book else {}),
            **{k: str(v) for k, v in extra.items() if v is not None}}
    return _delta().CommitProperties(custom_metadata=meta, max_commit_retries=0)


class _Conflict(Exception):  # noqa: N818 - control flow, never shown
    """Another writer committed between our read of the table and our commit."""


def _is_conflict(e: BaseException) -> bool:
    dl = _delta()
    return isinstance(e, dl.exceptions.CommitFailedError) or "already exists" in str(e).lower() \
        or "version" in str(e).lower() and "conflict" in str(e).lower()


def _history(table, limit: int | None = None) -> list[dict]:
    """Commits, newest first (the last `limit` of them: each is a file of the log to read)."""
    try:
        return table.history(limit)
    except Exception as e:  # noqa: BLE001
        raise _damaged(_local(table.table_uri), e) from None


def _commits(table, versions: Iterable[int]) -> Iterator[dict]:
    """The commit info of each of `versions` of `table`, read from its commit file, with its version
    (a version whose file is gone is skipped). Not `table.history()`: delta-rs (1.6) lists the
    commits from the log's newest one but numbers them from the version the object loaded, so a
    table read just before another writer committed gets that writer's commit under its own last
    version (a loser re-reading the records lost the winner's file so, and with it that file's
    accounting; cf. delta-io/delta-rs#4488)."""
    log = os.path.join(_local(table.table_uri), LOG)
    for version in versions:
        try:
            with open(os.path.join(log, f"{version:020d}.json"), encoding="utf-8") as f:
                # (delta-rs writes the commit info first; the adds of a big commit are not read)
                info = next((a["commitInfo"] for a in map(json.loads, filter(str.strip, f)) if "commitInfo" in a), {})
        except FileNotFoundError:
            continue
        except (OSError, ValueError, TypeError) as e:
            raise _damaged(_local(table.table_uri), e) from None
        yield {**info, "version": version}


def _replay(root: str, table, records: dict[str, dict], after: int) -> dict[str, dict]:
    """`records` (the files table as of rows version `after`) brought up to `table`'s version from
    the file records in the rows table's commits: what a run killed after its rows commit left."""
    version = table.version()
    if version <= after:
        return records
    records = dict(records)
    for commit in _commits(table, range(after + 1, version + 1)):
        if K_KEPT in commit:  # (a reprice: see _reprice_kept)
            try:
                renamed = json.loads(commit[K_KEPT])
            except ValueError as e:
                raise _damaged(root, e) from None
            records.update({p: {**records[p], **fields} for p, fields in renamed.items() if p in records})
        if K_FILE in commit:
            try:
                entry = json.loads(commit[K_FILE])
            except ValueError as e:
                raise _damaged(root, e) from None
            if entry.get("forget"):  # a file changed to another's bytes (see ingest)
                records.pop(entry["path"], None)
                _count_displaced(records, entry)  # (the copies its rows had displaced, stored again)
                continue
            entry["rows_version"] = commit["version"]
            records[entry["path"]] = entry
            _count_displaced(records, entry)
    return records


def _count_displaced(records: dict[str, dict], entry: dict) -> None:
    """The stored copies a file's fuller copies displaced (see _MonthFiles.displace), counted as
    duplicates by the records of the files they came from: each file's rows read still add up to
    its rows stored plus the rest, and so does the store's accounting, as in a report of the files."""
    # (`restored`: displaced copies that came back, when the file that displaced them was replaced:
    # stored again, no longer duplicates)
    for field, sign in (("displaced", 1), ("restored", -1)):
        for sha, n in (entry.get(field) or {}).items():
            for key, r in list(records.items()):
                if r.get("sha256") == sha:
                    a = dict(r["accounting"])
                    # (a record's own word when it has one: a format may decide per file, as Anthropic
                    # Messages does for a stream, which its name alone cannot tell)
                    repeats = r.get("repeats_records")
                    kind = "repeats" if (_repeats_records(r.get("dialect")) if repeats is None else repeats) else "duplicates"
                    a[kind] = a.get(kind, 0) + sign * (n["priced"] + n["unpriced"])
                    a["priced"] = a.get("priced", 0) - sign * n["priced"]
                    a["unpriced"] = a.get("unpriced", 0) - sign * n["unpriced"]
                    records[key] = {**r, "accounting": a}


def _dated_once(path: str, record: dict, seen: os.stat_result, forced, warn: Callable[[str], None]) -> None:
    """Say so when an unchanged file of a format whose records may carry no time (dated by
    --batch-time, else by the file's modification time) has had its modification time moved: its
    stored rows keep the date of its first ingest. The store keys a file by its bytes, and a file
    touched, copied or downloaded again holds the same requests: moving their spend into another
    month would change a month already reported. A report of the file itself dates such records by
    its modification time now: the two then differ, and this line says why (docs/store.md).
    `forced`: the run's --map or --dialect format (a user's mapping is in no registry), or None."""
    name = record.get("dialect") or ""
    known = forced if forced is not None and forced.name == name else dialects.DIALECTS.get(name)
    mapping = getattr(known, "mapping", None)
    then = record.get("mtime")
    now = dt.datetime.fromtimestamp(seen.st_mtime, dt.UTC).isoformat()
    if mapping is None or not mapping.file_time or then is None or then == now:
        return
    warn(f"{shown(path)}: unchanged (the same bytes), its modification time moved from {then} to {now}: "
         "its records that carry no time keep the date of its first ingest")


def _repeats_records(dialect: str | None) -> bool:
    """Whether a format repeats records, for a record written before the files table said so (a
    format that decides it per file: no)."""
    found = dialects.DIALECTS.get(dialect or "")
    return found is not None and found.repeats is True


def _files(root: str, table) -> dict[str, dict]:
    """Path -> record of every file ingested as of the rows table's version (None: no rows table
    yet, only files without rows were ingested)."""
    dl = _delta()
    path = os.path.join(root, FILES)
    version = table.version() if table is not None else 1 << 62
    records: dict[str, dict] = {}
    after = -1
    if os.path.isdir(os.path.join(path, LOG)):
        try:
            files = dl.DeltaTable(path)
            # The files table's last version that belongs to this rows version or an earlier one:
            # its last version, unless time travelling (only then is its whole history read).
            latest = list(_commits(files, [files.version()]))
            travel = not (latest and int(latest[0].get(K_VERSION, -1)) <= version)
            commits = _commits(files, range(files.version(), -1, -1)) if travel else latest
            for commit in commits:
                if int(commit.get(K_VERSION, -1)) <= version:
                    files.load_as_version(commit["version"])
                    after = int(commit.get(K_VERSION, -1))
                    break
            else:
                files = None
            uris = files.file_uris() if files is not None else []
            if travel and any(not os.path.isfile(_local(u)) for u in uris):
                raise _not_kept(root, version)
            # Read by Polars: pyarrow.dataset's first use costs a third of a second per run.
            frame = pl.read_parquet([_local(u) for u in uris], glob=False) if uris else None
        except StoreError:
            raise
        except Exception as e:  # noqa: BLE001
            raise _damaged(path, e) from None
        if frame is not None and frame.height:
            missing = set(FILE_COLUMNS) - set(frame.columns) - LATER_FILE_COLUMNS
            if missing:
                raise StoreError(f"damaged store: {path}: no column {', '.join(sorted(missing))}")
            for r in frame.to_dicts():  # one row per ingested file, not per request
                records[r["path"]] = _decode(path, r)
    return _replay(root, table, records, after) if table is not None else records


def _not_kept(root: str, version: int) -> StoreError:
    """A past version whose data files `store compact` removed: not damage, the retention's doing."""
    return StoreError(f"{root}: version {version} is no longer kept: `llm-cost store compact` removed the files it "
                      "needs (time travel is kept for --retention-days; see `llm-cost store history`)")


def _decode(where: str, r: dict) -> dict:
    try:
        return {**r, "overlays": json.loads(r["overlays"] or "[]"), "accounting": json.loads(r["accounting"]),
                "dimensions": json.loads(r["dimensions"] or "[]")}
    except (ValueError, TypeError) as e:
        raise StoreError(f"damaged store: {where}: record of {r.get('path')!r}: {e}") from None


def _write_files(root: str, records: dict[str, dict], rows_version: int) -> None:
    rows = [{**{k: r.get(k) for k in FILE_COLUMNS}, "overlays": json.dumps(r.get("overlays", [])),
             "accounting": json.dumps(r["accounting"]), "dimensions": json.dumps(r.get("dimensions", [])),
             "rows_version": r.get("rows_version", rows_version)} for r in records.values()]
    frame = pl.DataFrame(rows, schema=FILE_COLUMNS) if rows else pl.DataFrame(schema=FILE_COLUMNS)
    try:
        _delta().write_deltalake(os.path.join(root, FILES), frame.sort("path").to_arrow(), mode="overwrite",
                                 schema_mode="overwrite", commit_properties=_commit("files", **{K_VERSION: rows_version}))
        _checkpoint(_delta().DeltaTable(os.path.join(root, FILES)))
    except Exception as e:  # noqa: BLE001
        # Another writer wrote the files table first: nothing is lost, every record is in the rows
        # table's log too and is replayed from there (see `_files`); the next run writes it again.
        if not _is_conflict(e):
            raise StoreError(f"{root}: cannot write {FILES}: {(str(e).strip().splitlines() or [''])[0]}") from None


def _sync_files(root: str, table, records: dict[str, dict]) -> None:
    """Under the lock: copy into the files table what only the rows table's log holds."""
    if _recorded(root) < table.version():
        _write_files(root, records, table.version())


# ----------------------------------------------------------------------------------------------
# Ingest


@dataclass
class FileResult:
    path: str
    status: str  # ingested, replaced, unchanged, same content as <path>, empty
    accounting: pipeline.Accounting | None = None
    stored: int = 0
    displaced: int = 0  # stored copies of other files that this file's fuller copies replaced
    restored: int = 0  # copies this file's earlier content had displaced, stored again as it is replaced


@dataclass
class IngestResult:
    files: list[FileResult]
    recovered: list[str]  # files whose record was replayed from the log of a killed run

    @property
    def accounting(self) -> pipeline.Accounting:
        total = pipeline.Accounting()
        for f in self.files:
            if f.accounting is not None:
                _add(total, f.accounting.as_dict())
                total.priced += f.accounting.priced
                total.unpriced += f.accounting.unpriced
                for raw, n in f.accounting.unpriced_models.items():
                    total.unpriced_models[raw] = total.unpriced_models.get(raw, 0) + n
                total.unpriced_reasons.update(f.accounting.unpriced_reasons)
        return total


def _add(total: pipeline.Accounting, a: dict) -> None:
    for k in ("rows_read", "duplicates", "repeats", "not_billable", "quarantined", "filtered_out"):
        setattr(total, k, getattr(total, k) + a.get(k, 0))
    total.files += 1
    for why, n in a.get("not_billable_reasons", {}).items():
        total.not_billable_reasons[why] = total.not_billable_reasons.get(why, 0) + n


def _same_as_digested(path: str, held, seen: os.stat_result, digest: str) -> None:
    """The file read at `path` is the one `seen` (stat'ed before its digest, `digest`, was taken by
    path), holding the bytes digested; else the rows read are not the digest's. A Parquet file
    checked in `held`: its check's stamp (held.Held: the same inode, size, modification and change
    time), compared again after the read by its scope. Text, read by path: the same inode after
    the read; and, when its size or times moved since `seen`, its first `seen` bytes digested again
    and compared (a file rewritten in place, its mtime set back, was stored as the new bytes under
    the old digest: only the inode was compared). Not its size alone: a live log appended to while
    it is read keeps its first bytes (and is read up to its size when first opened, see
    fingerprint). An unmoved change time says no byte was written (see held.Held): most files are
    not read again."""
    why = "replaced or written again since its digest was taken"
    checked = [h for h in held.files if os.path.abspath(h.path) == os.path.abspath(path)]  # (not the store's own)
    for h in checked:
        then = (seen.st_dev, seen.st_ino, seen.st_size, seen.st_mtime_ns, h.stamp[4], seen.st_ctime_ns, seen.st_nlink)
        if difference(then, h.stamp) is not None:  # (the footer's hash: not taken by path)
            raise SourceError(h.said(why))
    if checked:
        return
    try:
        now = os.stat(path)
    except OSError:
        now = None
    if now is None or (now.st_dev, now.st_ino) != (seen.st_dev, seen.st_ino):
        raise SourceError(f"{shown(path)}: changed while being read (replaced since its digest was taken); run again")
    if stat.S_ISREG(seen.st_mode) and (now.st_size, now.st_mtime_ns, now.st_ctime_ns) != (
            seen.st_size, seen.st_mtime_ns, seen.st_ctime_ns) and (
            now.st_size < seen.st_size or sha256(path, seen.st_size) != digest):
        raise SourceError(f"{shown(path)}: changed while being read (written again since its digest was taken); "
                          "run again")


def sha256(path: str, size: int | None = None) -> str:
    """The file's digest; with `size`, of its first `size` bytes."""
    digest = hashlib.sha256()
    left = size
    with open(path, "rb") as f:
        while (n := 1 << 20 if left is None else min(left, 1 << 20)) and (chunk := f.read(n)):
            digest.update(chunk)
            if left is not None:
                left -= len(chunk)
    return digest.hexdigest()


def _parts(table, months: set[str] | None) -> list[str]:
    """Absolute local paths of the table's data files in these months (all when None)."""
    if months is not None and not months:
        return []
    # Month values are YYYY-MM from our own strftime: nothing to quote.
    predicate = f"{MONTH} IN ({', '.join(repr(m) for m in sorted(months))})" if months is not None else None
    try:
        uris = table.file_uris(file_pruning_predicate=predicate) if predicate else table.file_uris()
    except Exception as e:  # noqa: BLE001
        raise _damaged(_local(table.table_uri), e) from None
    uris = [_local(u) for u in uris]
    root = os.path.realpath(_local(table.table_uri))
    for uri in uris:  # a log naming a file outside the table is not ours: never read (or rewritten)
        rel = os.path.relpath(os.path.realpath(uri), root)
        month, _, name = rel.partition(os.sep)
        if not re.fullmatch(re.escape(MONTH) + r"=\d{4}-\d{2}", month) or os.sep in name or not name.endswith(".parquet"):
            raise StoreError(f"damaged store: {root}: the log names {uri}, not a data file inside the table")
    return uris


MONTH_VALUE = re.compile(r"\d{4}-(0[1-9]|1[0-2])")  # what our strftime("%Y-%m") writes


def _months_of(table) -> set[str]:
    try:
        months = {p[MONTH] for p in table.partitions()}
    except Exception as e:  # noqa: BLE001
        raise _damaged(_local(table.table_uri), e) from None
    # Partition values are ours (YYYY-MM); a log giving anything else was written by someone else,
    # and the value would reach the predicates that select partitions.
    bad = sorted(m for m in months if not isinstance(m, str) or not MONTH_VALUE.fullmatch(m))
    if bad:
        raise StoreError(f"damaged store: {_local(table.table_uri)}: the log gives data files the "
                         f"partition {MONTH}={bad[0]!r}, not a month (YYYY-MM)")
    return months


REPEAT_DAYS = 1  # a stored copy counts as a repeat when stamped within this many UTC days of the night's rows


def _repeat_windows(days: list[dt.date]) -> list[tuple[dt.datetime, dt.datetime]]:
    """The time spans a night's rows can repeat into: each UTC day of the night and the day either
    side, merged into runs. Two sources stamp one request at its start and at its end, or in
    another zone's clock (at most 14 hours off): one day either side holds every such copy, also
    across a month's end. A night's own late arrivals (yesterday's requests in tonight's file) bring
    their own days. So a night reads the ids of its own days, never the history, whatever its size."""
    spans: list[tuple[dt.datetime, dt.datetime]] = []
    pad = dt.timedelta(days=REPEAT_DAYS)
    for day in sorted(set(days)):
        start = dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC)
        try:
            lo = start - pad
        except OverflowError:  # (the first days of year 1: nothing is before them)
            lo = dt.datetime.min.replace(tzinfo=dt.UTC)
        try:
            hi = start + dt.timedelta(days=1) + pad
        except OverflowError:  # (the last days of 9999)
            hi = dt.datetime.max.replace(tzinfo=dt.UTC)
        if spans and lo <= spans[-1][1]:
            spans[-1] = (spans[-1][0], max(hi, spans[-1][1]))
        else:
            spans.append((lo, hi))
    return spans


def _span_months(spans: list[tuple[dt.datetime, dt.datetime]]) -> set[str]:
    """The month partitions these spans touch."""
    months = set()
    for lo, hi in spans:
        y, m = lo.year, lo.month
        while (y, m) <= (hi.year, hi.month):
            months.add(f"{y:04d}-{m:02d}")
            y, m = (y, m + 1) if m < 12 else (y + 1, 1)
    return months


def _in_spans(spans: list[tuple[dt.datetime, dt.datetime]], lo: str = "timestamp", hi: str = "timestamp") -> pl.Expr:
    """Rows (or data files, by their min `lo` and max `hi` stats) that overlap one of the spans."""
    out = pl.lit(False)
    for a, b in spans:
        out = out | ((pl.col(hi) >= a) & (pl.col(lo) < b))
    return out


def _repeat_files(table, spans: list[tuple[dt.datetime, dt.datetime]]) -> list[str]:
    """The data files that can hold rows of these spans: those of the spans' months whose logged
    time range overlaps one (a file the log gives no range for is read)."""
    uris = _parts(table, _span_months(spans) & _months_of(table))
    if not uris:
        return []
    try:
        adds = pl.DataFrame(table.get_add_actions(flatten=True))
    except Exception as e:  # noqa: BLE001
        raise _damaged(_local(table.table_uri), e) from None
    if {"min.timestamp", "max.timestamp"} <= set(adds.columns):
        stamp = pl.Datetime("us", "UTC")
        adds = adds.with_columns(pl.col("min.timestamp", "max.timestamp").cast(stamp))
        unknown = pl.col("min.timestamp").is_null() | pl.col("max.timestamp").is_null()
        skip = set(adds.filter(~unknown & ~_in_spans(spans, "min.timestamp", "max.timestamp"))["path"].to_list())
    else:
        skip = set()
    root = _local(table.table_uri).rstrip("/")
    return [u for u in uris if os.path.relpath(u, root) not in skip]


STORED_AT = "_llm_part"  # (a stored row's data file, in the repeat check: where a losing copy is removed)


@dataclass
class _Contest:
    """What the repeat check decided for a night's request ids that the store holds already
    (stamped within REPEAT_DAYS of the night's days): each is kept once, the copy a report of both
    files keeps (see dedupe.losers: the lowest rank, then the most tokens; on a tie the copy read
    first, i.e. stored).
    `repeated`: the record ids (dedupe.P1, P2: its record row's two hashes, see _parents) of the
    night's copies that lose to a stored one (duplicates), removed as records: a night holds one
    copy of a request (dedupe kept one), so its record id names it, while a row's own id may also be
    a row of a winning record (a Claude Code run's `uuid#model`); `displaced`: the stored copies
    that lose to the night's (`STORED_AT`: their data file; P1, P2: their record's id), removed
    from their files in the night's commit; `spans`: the time spans looked in;
    `table_root`: the directory those data files' paths are in, as the table names it (delta-rs
    resolves symlinks: a store reached through a symlinked directory is elsewhere to it)."""

    repeated: pl.DataFrame
    displaced: pl.DataFrame
    spans: list[tuple[dt.datetime, dt.datetime]]
    table_root: str = ""


def _tokens() -> pl.Expr:
    """A copy's size, as dedupe compares copies (pipeline._competing): its counts summed."""
    return pl.sum_horizontal(COUNT_COLUMNS).alias(dedupe.TOKENS)


def _no_contest(spans: list[tuple[dt.datetime, dt.datetime]] = ()) -> _Contest:
    ids = {dedupe.P1: pl.UInt64, dedupe.P2: pl.UInt64}
    rows = {SHA: pl.String, "source_row": pl.Int64, dedupe.H1: pl.UInt64, dedupe.H2: pl.UInt64}
    return _Contest(pl.DataFrame(schema=ids), pl.DataFrame(schema={STORED_AT: pl.String, **ids, **rows}), list(spans))


def _repeated(table, days: list[dt.date], skip: set[str], keys: pl.LazyFrame) -> _Contest:
    """Which of a file's request ids (`keys`: dedupe's two hashes and the copy's tokens, lazily) the
    store already holds, stamped within REPEAT_DAYS of the file's days (see `_repeat_windows`), except
    in the rows of the files `skip` (a replaced file's own rows are not duplicates of it), and which
    copy stays (see _Contest). Only the data files whose logged time range overlaps those days are
    opened (Delta's file statistics), and in them only the row groups that do: a night's cost does
    not grow with the history. The stored ids of those days are the join's build side and the
    night's ids stream past them: memory follows the stored days (about three), not the night
    (collecting a 10M night's unique ids first held 440 MiB), and nothing is read of the night when
    nothing stored is near it (a new store, a first month)."""
    spans = _repeat_windows(days)
    files = _repeat_files(table, spans) if table is not None and spans else []
    if not files:
        return _no_contest(spans)
    schema = {"request_id": pl.String, "timestamp": pl.Datetime("us", "UTC"), SHA: pl.String, "source": pl.String,
              RANK: pl.Int8, "requests": pl.Int64, "source_row": pl.Int64, **{c: pl.Int64 for c in COUNT_COLUMNS}}

    # (a record's rows are consecutive in its data file, record row first, and the filters keep or
    # drop them together: they share a time and a file. Filtered first: the filter reads only the
    # row groups of those days, and the forward fill, after it, the rows kept; rows of no record id
    # after it, an id-less record's, are no copy of anything)
    # (One scan of every data file, each row with its file (STORED_AT), not a concat of a scan per
    # file: Polars opened every file of the concat at once, one per file of the night's days (one
    # per file ingested), and an ingest of 40 one-day files failed under `ulimit -n 40`. Its
    # multi-file scan opens a few at a time. The forward fill runs across files, but a file's first
    # row is a record row, and the fill takes it.)
    stored = pl.scan_parquet(files, schema=schema, extra_columns="ignore", glob=False, missing_columns="insert",
                             hive_partitioning=False, include_file_paths=STORED_AT).filter(
        _in_spans(spans) & ~pl.col(SHA).is_in(sorted(skip))
    ).with_columns(_stored_key()).with_columns(dedupe.hashes()).with_columns(_parents())
    # A later row (a step) takes its line's record row's id, not the one the fill gave it, when the
    # line holds one record: `store compact` writes a month's rows out of order (see
    # _line_parents). Joined for the lines holding a step alone (most stores: none, and this reads
    # nothing more), not a window over every stored row (2.5x the CPU of the check).
    line, step = [SHA, "source_row"], ~_is_record(None) & pl.col("source_row").is_not_null()
    heads = stored.filter(_is_record(None) & pl.col("source_row").is_not_null()).join(
        stored.filter(step).select(line).unique(), on=line, how="semi").group_by(line).agg(
        pl.len().alias("_n"), pl.col(dedupe.H1).first().alias("_q1"), pl.col(dedupe.H2).first().alias("_q2")).filter(
        pl.col("_n") == 1)
    stored = pl.concat([stored.filter(~step), stored.filter(step).join(heads, on=line, how="left").with_columns(
        pl.when(pl.col("_n").is_not_null()).then(pl.col(q)).otherwise(pl.col(p)).alias(p)
        for q, p in (("_q1", dedupe.P1), ("_q2", dedupe.P2))).drop("_n", "_q1", "_q2")], how="vertical").filter(
        pl.col(dedupe.P1).is_not_null())
    ids = [dedupe.H1, dedupe.H2]
    parents = [dedupe.P1, dedupe.P2]
    try:
        # The night's ids the store holds, with the night's tokens: the stored side is only hashes
        # (the join's build side, what this holds), as before copies were compared. Copies compete as
        # records (see _parents): a copy's tokens are its record's (the night holds one copy of each
        # request: its rows priced), under its record's id.
        met = keys.join(stored.select(parents), on=parents, how="semi").group_by(parents).agg(
            pl.col(dedupe.TOKENS).sum(), pl.col(RANK).min()).rename(
            {dedupe.P1: dedupe.H1, dedupe.P2: dedupe.H2}).collect(engine="streaming")
        if not met.height:
            return _no_contest(spans)
        # Then the stored copies of those ids alone (most nights: none, and this is not read), with
        # their tokens and the data file each is in.
        rows = stored.select(*ids, *parents, _tokens().alias("_stored_tok"), _rank().alias("_stored_rank"), STORED_AT,
                             SHA, "source_row").join(met.lazy().select(pl.col(dedupe.H1).alias(dedupe.P1), pl.col(dedupe.H2).alias(dedupe.P2)),
                                       on=parents, how="semi").collect(engine="streaming")
        # (a stored copy's record: its file, and its record row's id under the file; its rows may be
        # in two data files after `store compact`, see _line_parents)
        theirs = rows.group_by(*parents, SHA).agg(pl.col("_stored_tok").sum(), pl.col("_stored_rank").min()
                                                             ).rename({dedupe.P1: dedupe.H1, dedupe.P2: dedupe.H2})
    except (pl.exceptions.PolarsError, OSError) as e:
        raise _damaged(_local(table.table_uri), e) from None
    # The night's copy wins only when it ranks before every stored copy of its id (dedupe.losers: a
    # lower rank, or the same rank and more tokens): on a tie the copy read first stays, as in a
    # report of the files in the order they were ingested.
    best = theirs.group_by(ids).agg(*_best("_stored_tok", "_stored_rank"))
    wins = met.join(best, on=ids).with_columns(((pl.col(RANK) < pl.col("_stored_rank")) | (
        (pl.col(RANK) == pl.col("_stored_rank")) & (pl.col(dedupe.TOKENS) > pl.col("_stored_tok")))).alias("_wins"))
    # A losing record loses every row, and only its rows: named by its record id, not by each row's
    # own id, which another record's row may share (see _Contest).
    repeated = wins.filter(~pl.col("_wins")).select(pl.col(dedupe.H1).alias(dedupe.P1), pl.col(dedupe.H2).alias(dedupe.P2))
    won = wins.filter(pl.col("_wins")).select(pl.col(dedupe.H1).alias(dedupe.P1), pl.col(dedupe.H2).alias(dedupe.P2))
    # (each row named too, by file, line and id: displace's order of the rows names their record
    # only where a line holds several, see _line_parents)
    displaced = rows.join(won, on=parents, how="semi").select(STORED_AT, *parents, SHA, "source_row", *ids).unique()
    return _Contest(repeated, displaced, spans, _local(table.table_uri).rstrip("/"))


def _stored_key() -> pl.Expr:
    """A stored request id as this version keys it. Claude Code rows stored before the key became
    the message id hold `message.id:requestId` (dialects/claude_code.py): read as the message id, a
    night's copies of them are still found, with no rewrite of the stored rows (a store holds both
    kinds of ids, and stays readable by the version that wrote it)."""
    from .dialects.claude_code import DIALECT, old_key_to_new

    rid = pl.col("request_id")
    return pl.when(pl.col("source") == DIALECT.name).then(old_key_to_new(rid)).otherwise(rid).alias("request_id")


def _stored_hashes() -> list[pl.Expr]:
    """dedupe's two hashes of a stored row's request id as this version keys it (see _stored_key)."""
    key = _stored_key()
    return [pl.when(key.is_not_null()).then(key.hash(seed)).alias(h)
            for seed, h in ((dedupe.SEED1, dedupe.H1), (dedupe.SEED2, dedupe.H2))]


# The formats that read a record as several rows (a report's `_rec`: a Messages response's steps,
# a Claude Code run's other models), whose later rows, and only those, say `requests` 0: each says
# so itself (Dialect.several_rows), next to the code that reads it.
SEVERAL_ROWS = tuple(sorted(name for name, d in dialects.DIALECTS.items() if d.several_rows))


def _is_record(rows: pl.DataFrame | None) -> pl.Series | pl.Expr:
    """Rows that are records (a request, or a pre-aggregated row of unknown size), not the later
    iterations of a request (requests = 0 in a format of SEVERAL_ROWS; see
    dialects/anthropic_messages.py). A row of any other format is a record whatever its `requests`
    says, as a report counts it: a canonical or usage row standing for 0 requests was taken for a
    step of the row before it (attack28: `store status` NOT CONSISTENT, its fuller copy on a later
    night stored beside it)."""
    expr = pl.col("requests").is_null() | (pl.col("requests") != 0) | ~pl.col("source").is_in(SEVERAL_ROWS).fill_null(True)
    return rows.select(expr).to_series() if isinstance(rows, pl.DataFrame) else expr


def _dialect(path: str, opts: pipeline.Options) -> tuple[str, bool]:
    """The file's format, and whether it repeats records (its copies of a request are repeats, not
    duplicates, as in a report: pipeline.moved)."""
    from .sources import open_source

    src = open_source(path)
    found = pipeline._forced_dialect(opts) or dialects.detect(src)
    return opts.dialect or found.name, found.repeats_in(src)


def ingest(paths, root: str, opts: pipeline.Options | None = None, wait: float = DEFAULT_WAIT,
           progress: Callable[[str, int, int], None] | None = None,
           warn: Callable[[str], None] = lambda m: None) -> IngestResult:
    """Add usage log files to the store, each file in its own commit (see the module doc).

    `progress(path, done, total)` is called before each file; `warn` receives messages for people."""
    _check_wait(wait)
    opts = opts or pipeline.Options()
    if opts.since or opts.until:
        raise OptionError("ingest stores whole files: --since/--until apply to reports from the store")
    if "-" in paths:
        raise OptionError("ingest reads files (their content hash makes re-runs safe), not stdin")
    pipeline.check_tz(opts.tz)
    forced = pipeline._forced_dialect(opts)  # (--map, --dialect: what an unchanged file was read as)
    book = pricebook.load_price_book(opts.prices)
    root = _resolved(root)
    inside = os.path.realpath(root) + os.sep
    files = [f for f in expand_paths(paths) if not os.path.realpath(f).startswith(inside)]  # never the store itself
    with locked(root, "ingest", wait, warn, create=True):
        table = _table(root) if _kind(root) == "delta" else None
        recorded = _recorded(root)
        records = _files(root, table)
        # Records only the rows table's log held: their run was killed before the files table was written.
        recovered = sorted(k for k, v in records.items() if v.get("rows_version", -1) > recorded)
        if table is not None:
            _sync_files(root, table, records)
        meta = os.path.join(root, META)
        for name in os.listdir(meta):  # spool files of a killed ingest: ours by name, never committed
            if _dead_spool(name) and not os.path.islink(os.path.join(meta, name)):
                os.unlink(os.path.join(meta, name))
        # A copy of a file this run has still to read waits for it: were that file changed, its old
        # rows (which the copy's are) would go, and the copy, skipped before, would be lost.
        pending = {file_key(f) for f in files}
        order, deferred, done, tries = list(range(len(files))), set(), {}, {}

        def again(n: int, key: str, path: str):
            """Another writer committed since file `n`'s repeats were checked: read the table again
            (its records too: it may have ingested this very file); the file is done again at the end.
            Returns the table and records. (A file changed to another's bytes too: until December 7
            its lost race stopped the run, "run the ingest again".)"""
            tries[n] = tries.get(n, 0) + 1
            if tries[n] > CONFLICT_RETRIES:
                raise StoreError(f"{root}: cannot commit {path}: other writers committed first "
                                 f"{CONFLICT_RETRIES + 1} times; run the ingest again") from None
            warn(f"{path}: another writer committed to {root} first; checking repeats again")
            time.sleep(random.uniform(0, 0.2 * tries[n]))  # (two losers do not collide again in step)
            del done[n]
            pending.add(key)
            order.append(n)
            table = _table(root) if _kind(root) == "delta" else None
            return table, _files(root, table)
        for n in order:  # grows while iterated: a deferred file comes again at the end
            path = files[n]
            if progress:
                progress(path, len(done), len(files))
            key = file_key(path)
            seen = os.stat(path)  # (before the digest: what a Parquet file's check must find, see below)
            # (of the bytes `seen`: what the read is compared with, see _same_as_digested)
            digest = sha256(path, seen.st_size if stat.S_ISREG(seen.st_mode) else None)
            before = records.get(key)
            results = []
            done[n] = results
            if before is not None and before["sha256"] == digest:
                results.append(FileResult(path, "unchanged"))
                pending.discard(key)
                _dated_once(path, before, seen, forced, warn)
                continue
            twin = next((p for p, r in records.items() if r["sha256"] == digest), None)
            if twin is not None and twin != key and twin in pending and n not in deferred:
                deferred.add(n)
                order.append(n)
                del done[n]
                continue
            pending.discard(key)
            if before is not None:
                _kept_files(root, records, key)  # (before pricing: one missing stops the replace, see there)
            if twin is not None and before is not None:
                # Changed to another file's bytes: its old rows go, and it is forgotten, as a copy is
                # never recorded (were it recorded with the twin's hash, a later change of the twin
                # would take the rows away from both). The copies its rows had displaced come back
                # (see _restore; the copies not brought back go with its record).
                nothing = pl.LazyFrame(schema={"request_id": pl.String, **{c: pl.Int64 for c in COUNT_COLUMNS}})
                back = _restore(root, table, records, before, {before["sha256"]}, nothing)
                entry = {"path": key, "forget": True, **({"restored": back.counts} if back and back.counts else {})}
                frame = _Rows(None, _no_contest().repeated, back.rows) if back and back.rows.height else None
                try:
                    table = _write_rows(root, table, frame, {before["sha256"]}, entry, book.version,
                                        frame.extra.height if frame else 0)
                except _Conflict:  # (as for any file below: read again, done again)
                    table, records = again(n, key, path)
                    continue
                del records[key]
                _count_displaced(records, entry)
                _write_files(root, records, table.version() if table is not None else -1)
                results.append(FileResult(path, f"replaced (same content as {twin})", pipeline.Accounting(files=1)))
                continue
            if twin is not None:
                results.append(FileResult(path, f"same content as {twin}"))
                continue
            replace = {digest} | ({before["sha256"]} if before else set())
            spool = os.path.join(root, META, f"{SPOOL_PREFIX}{_host()}-{os.getpid()}-{digest[:16]}.parquet")
            frame = None
            try:
                with holding_parquet() as held:  # (a Parquet log's checked file, open while it is read: closed after)
                    result, entry, frame = _read_file(path, key, digest, root, opts, book, table, replace, spool,
                                                      before is None, before, records)
                    # (the rows are the checked file's, recorded under the digest read before by path: a
                    # file replaced or written in between stored other rows under that digest, and, put
                    # back, was "unchanged" with them for good)
                    _same_as_digested(path, held, seen, digest)
                if entry.get("displaced_rows"):  # (its kept files are written and closed by now)
                    entry["displaced_stats"] = _kept_stats(root, json.loads(entry["displaced_rows"]))
                    entry["displaced_sha256"] = _kept_digests(root, json.loads(entry["displaced_rows"]))
                table = _write_rows(root, table, frame, replace, entry, book.version, result.stored + result.restored)
                frame = None  # (committed: its files are the table's now)
            except _Conflict:
                table, records = again(n, key, path)
                continue
            finally:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(spool)
                if isinstance(frame, _MonthFiles):  # written, never committed
                    frame.remove()
                shadows = frame.shadows if isinstance(frame, _Rows) else []  # (the same: copies kept)
                for rel in [] if _names_kept(root, shadows) else shadows:
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(os.path.join(root, rel))
            entry["rows_version"] = table.version() if table is not None else -1
            records[key] = entry
            _count_displaced(records, entry)
            _write_files(root, records, entry["rows_version"])
            if before is not None:
                result.status = "replaced"
            results.append(result)
        _write_rollups(root, table)  # (after the commits: a rollup names the files of a version)
        _trace("rollups")
        if progress:
            progress("", len(files), len(files))
    return IngestResult([r for n in sorted(done) for r in done[n]], recovered)


def _host() -> str:
    """This machine, in a spool file's name (`.spool-<host>-<pid>-<sha>`): 8 hex digits of its name."""
    return hashlib.sha256(socket.gethostname().encode()).hexdigest()[:8]


def _dead_spool(name: str) -> bool:
    """A spool file (`.spool-<host>-<pid>-<sha>.parquet`; `.spool-<pid>-<sha>` until December 7)
    whose ingest is no longer running on this machine: a live one (another process writing to the
    store at once) keeps its file, and so does another machine's."""
    m = re.fullmatch(re.escape(SPOOL_PREFIX) + r"(?:([0-9a-f]{8})-)?(\d+)-[0-9a-f]{16}\.parquet", name)
    if m is None or m.group(1) not in (None, _host()):
        # (another machine's, by its host: its pid says nothing here. A writer there without this
        # lock, pricing a replace, lost its spool to this run's start and stopped with a traceback.)
        return False
    try:
        os.kill(int(m.group(2)), 0)
    except ProcessLookupError:
        return True
    except (PermissionError, OverflowError):
        return False  # alive (another user's), or no pid at all
    return int(m.group(2)) == os.getpid()  # (our own pid: left by an earlier run in this process)


def _recorded(root: str) -> int:
    """The rows version the files table was last written for (-1: none)."""
    path = os.path.join(root, FILES)
    if not os.path.isdir(os.path.join(path, LOG)):
        return -1
    try:
        last = _history(_delta().DeltaTable(path), 1)
    except StoreError:
        raise
    except Exception as e:  # noqa: BLE001
        raise _damaged(path, e) from None
    return int(last[0].get(K_VERSION, -1)) if last else -1


def _read_file(path: str, key: str, digest: str, root: str, opts: pipeline.Options, book: pricebook.PriceBook,
               table, skip: set[str], spool: str, new: bool = False, before: dict | None = None,
               records: dict[str, dict] | None = None) -> tuple[FileResult, dict, _Rows | _MonthFiles | None]:
    """Price the file and write its rows less the repeats of stored requests: when the commit only
    adds files (`new`) into the table's columns, straight into its month files (see _MonthFiles);
    else into `spool`, for Delta's writer. `before`: the record of the file's earlier content, whose
    rows this commit replaces (the copies they had displaced may come back: see _restore), and
    `records` every file's. Returns the result, the file's record, and the rows."""
    st = os.stat(path)
    now = dt.datetime.now(dt.UTC)
    entry = {"path": key, "size": st.st_size, "mtime": dt.datetime.fromtimestamp(st.st_mtime, dt.UTC).isoformat(),
             "sha256": digest, "ingested_at": now.isoformat(timespec="seconds"), "price_book": book.version,
             "overlays": list(book.overlays), "quarantine": None, "dialect": None, "rows": 0, "dimensions": []}
    if st.st_size == 0 or open_source(path).empty:  # a night without traffic (or blank lines): remembered, so that it is not read again
        acc = pipeline.Accounting(files=1)
        entry["accounting"] = acc.as_dict()
        if before is None:
            return FileResult(path, "empty", acc), entry, None
        # A file exported again empty: its earlier rows go, and the copies they had displaced come
        # back as for any replacing content (here with no copy of its own to compete); before, they
        # stayed in no file while their records still counted them duplicates.
        nothing = pl.LazyFrame(schema={"request_id": pl.String, **{c: pl.Int64 for c in COUNT_COLUMNS}})
        back = _restore(root, table, records or {}, before, skip, nothing)
        kept = _Rows(None, _no_contest().repeated, back.rows if back is not None and back.rows.height else None)
        if back is not None and back.carried.height:  # (still named by this record, for a later change)
            kept.shadows.append(_write_displaced(root, back.carried))
            entry["displaced_rows"] = json.dumps(kept.shadows)
        if back is not None and back.counts:
            entry["restored"] = back.counts
        restored = sum(n["priced"] + n["unpriced"] for n in entry.get("restored", {}).values())
        return FileResult(path, "empty", acc, 0, 0, restored), entry, kept if kept.extra is not None else None
    quarantine = os.path.join(QUARANTINE, f"{now.date().isoformat()}-{digest[:16]}.jsonl")
    os.makedirs(os.path.join(root, QUARANTINE), exist_ok=True)  # (the store's own; writers create no directory)
    run = dataclasses.replace(opts, quarantine=os.path.join(root, quarantine), since=None, until=None)
    priced, acc = pipeline.price_requests([path], run, book, rank_as=RANK)
    lf = priced.lazy()
    dims = [c for c in lf.collect_schema() if c not in SCHEMA and c not in INTERNAL]
    names = table.schema().to_arrow().names if table is not None else []
    _check_names(path, [*SCHEMA, *INTERNAL, *names], dims)
    # Dimensions are text: a column of nulls has no type Delta can store.
    priced = priced.with_columns(pl.lit(digest).alias(SHA), *[pl.col(d).cast(pl.String) for d in dims])
    columns = pl.Schema({**{c: t for c, t in priced.lazy().collect_schema().items() if c != SHA},
                         MONTH: pl.String(), SHA: pl.String()})  # (the table's columns: the month before the hash)
    if new and (table is None or not set(columns) - set(names)):
        # The repeat check first (from the plan: a new store, or a night far from the stored days,
        # reads nothing), then the priced slices straight into the month files: no spool written
        # and read back (a 10M night: 15 CPU s less). Same columns in the table's order (a column
        # this night lacks as nulls: all such are dimensions).
        contest = _repeats(table, priced.lazy(), skip)
        _trace("repeat check")
        select = [pl.col(n) if n in columns else pl.lit(None, pl.String).alias(n) for n in names if n != MONTH] or None
        kept: _Rows | _MonthFiles = _MonthFiles(root, path, columns, select, contest.repeated)
        try:
            writers.write_rows(priced, "parquet", "", out=kept)
            _trace("priced+month files")
            if contest.displaced.height:  # (rare: a night bringing a fuller copy of a stored request)
                kept.displace(contest)
                _trace("displaced")
        except BaseException:
            kept.remove()
            raise
        dup, left, stored = kept.dup, kept.unpriced_models(), kept.stored
        if kept.displaced:
            entry["displaced"] = kept.displaced
        if kept.shadows:
            entry["displaced_rows"] = json.dumps(kept.shadows)
        span = kept.span
    else:
        # Priced once, streamed to a spool file (memory stays flat in the file's size); the passes
        # below read that, not the log. lz4, not zstd: the spool is read back several times and
        # deleted (0.3 CPU s less a 1M night).
        priced.with_columns(_month()).sink_parquet(spool, row_group_size=SPOOL_GROUP, compression="lz4")
        _trace("priced+spooled")
        rows = pl.scan_parquet(spool, glob=False)  # (a store may live in a directory named with `[`)
        late = rows.filter(_late()).select(pl.col("timestamp").cast(pl.String)).head(1).collect()
        if late.height:
            raise _late_error(path, late.item())
        contest = _repeats(table, rows, skip)
        _trace("repeat check")
        # Here the stored copy stays even when the night's is fuller: this commit is Delta's writer
        # replacing the file's earlier rows, which cannot also rewrite other files' (docs/store.md).
        repeated = pl.concat([contest.repeated, contest.displaced.select(dedupe.P1, dedupe.P2)]).unique()
        # The copies the file's earlier content had displaced, when its winning copies go with it:
        # the best of each request's comes back, unless this content's own copy beats it.
        back = _restore(root, table, records or {}, before, skip, rows) if before is not None else None
        if back is not None:
            repeated = pl.concat([repeated, back.beaten]).unique()
        # (in the spool's order, kept whole: a response's steps after its record row, see _restore;
        # a streamed join gives row groups in any order unless told. By record id: see _Contest)
        lost = rows.with_columns(dedupe.hashes()).with_columns(_parents(rows)).join(
            repeated.lazy(), on=[dedupe.P1, dedupe.P2], how="semi", maintain_order="left")
        dup = lost.select(*_dup_counts()).collect(engine="streaming").row(0, named=True) if repeated.height else {
            "priced": 0, "unpriced": 0}
        kept = _Rows(spool, repeated, back.rows if back is not None and back.rows.height else None)
        if back is not None and back.carried.height:
            kept.shadows.append(_write_displaced(root, back.carried))
        if repeated.height and dup["priced"] + dup["unpriced"]:  # the copies that lost, kept whole (see _MonthFiles._keep_lost)
            kept.shadows.append(_write_displaced(root, lost.drop(dedupe.H1, dedupe.H2, dedupe.P1, dedupe.P2, MONTH)))
        if kept.shadows:
            entry["displaced_rows"] = json.dumps(kept.shadows)
        span = tuple(rows.select(pl.col("timestamp").min().alias("a"), pl.col("timestamp").max().alias("b")).collect().row(0))
        if back is not None and back.counts:
            entry["restored"] = back.counts
        left = _unpriced_records(kept.lazy()).collect(engine="streaming")
        stored = int(kept.lazy().select(pl.len()).collect().item())
        _trace("unpriced+count")
    dialect, repeats = _dialect(path, opts)
    if repeats:  # (a format that writes a request several times: its copies of stored ones are repeats)
        acc.repeats += dup["priced"] + dup["unpriced"]
    else:
        acc.duplicates += dup["priced"] + dup["unpriced"]  # the accounting counts records, not later iterations
    acc.priced -= dup["priced"]
    acc.unpriced -= dup["unpriced"]
    left = left.sort(["len", "model_raw"], descending=[True, False])  # (ties by name, as in pipeline)
    acc.unpriced_models = dict(zip(left["model_raw"].to_list(), left["len"].to_list()))
    acc.unpriced_reasons = {k: v for k, v in acc.unpriced_reasons.items() if k in acc.unpriced_models}
    if span is not None and span[0] is not None:
        entry["span"] = json.dumps([span[0].isoformat(), span[1].isoformat()])
    entry.update(dialect=dialect, repeats_records=repeats, rows=acc.rows_read,
                 quarantine=quarantine if acc.quarantined else None, accounting=acc.as_dict(), dimensions=dims)
    entry["accounting"]["quarantine_file"] = entry["quarantine"]
    if not stored and isinstance(kept, _MonthFiles):
        kept.remove(shadows=False)  # (a night of copies that all lost: its record still names them)
    displaced = sum(n["priced"] + n["unpriced"] for n in entry.get("displaced", {}).values())
    restored = sum(n["priced"] + n["unpriced"] for n in entry.get("restored", {}).values())
    out = kept if stored or getattr(kept, "extra", None) is not None else None
    return FileResult(path, "ingested", acc, stored, displaced, restored), entry, out


def _month(ts: pl.Expr | None = None) -> pl.Expr:
    """The month partition of a time (of the rows' `timestamp`): its UTC YYYY-MM."""
    return (pl.col("timestamp") if ts is None else ts).dt.strftime("%Y-%m").alias(MONTH)


def _late() -> pl.Expr:
    """A month partition is YYYY-MM: a year past 9999 would name a directory delta-rs percent-encodes
    ("%2B12000-01"), which no later command accepts as ours. Refused before anything is committed."""
    return pl.col("timestamp").dt.year() > 9999


def _late_error(path: str, stamp: str) -> StoreError:
    return StoreError(f"{path}: column timestamp: {stamp} is past the year 9999, which a store's month "
                      "partitions cannot hold; correct or remove the row")


def _unpriced() -> pl.Expr:
    return pl.col("unpriced_reason").is_not_null()


# A stored row of a request unpriced whole because another part of it cannot be priced says that
# part's model in its reason (pipeline.STEP_UNPRICED): the request is counted under it, as in a report
# from the logs. (`(?s)`: a model's name may hold a line break; without it the request was counted
# under its first row's model.)
_BLAMED = "(?s)^" + regex_literal(pipeline.STEP_UNPRICED.split("{}")[0]) + r"(.*)" + regex_literal(
    pipeline.STEP_UNPRICED.split("{}")[1]) + "$"


def _unpriced_name() -> pl.Expr:
    """The model an unpriced stored row's request is counted under."""
    return pl.coalesce(pl.col("unpriced_reason").str.extract(_BLAMED), pl.col("model_raw"))


def _unpriced_records(rows: pl.LazyFrame | pl.DataFrame):
    """Unpriced records (not later iterations) per model they are counted under (`model_raw`, `len`)."""
    return rows.filter(_unpriced()).group_by(_unpriced_name().alias("model_raw")).agg(
        _is_record(None).sum().cast(pl.UInt32).alias("len")).filter(pl.col("len") > 0)


def _dup_counts() -> list[pl.Expr]:
    """Of rows that repeat stored requests: the records (not later iterations) priced and unpriced."""
    return [(_is_record(None) & ~_unpriced()).sum().alias("priced"), (_is_record(None) & _unpriced()).sum().alias("unpriced")]


def _repeats(table, rows: pl.LazyFrame, skip: set[str]) -> _Contest:
    """The ids of `rows` that the store holds already, and which copy stays (see _repeated)."""
    if table is None:  # (nothing stored: the night's days are not needed)
        return _no_contest()
    keyed = rows.with_columns(dedupe.hashes()).select(
        dedupe.H1, dedupe.H2, _tokens(), _rank(rows), "timestamp", *_parents(rows)).filter(
        pl.col(dedupe.P1).is_not_null())
    days = keyed.select(pl.col("timestamp").dt.date().unique().drop_nulls()).collect(engine="streaming")
    return _repeated(table, days["timestamp"].to_list(), skip,
                     keyed.select(dedupe.H1, dedupe.H2, dedupe.TOKENS, RANK, dedupe.P1, dedupe.P2))


def _parents(rows: pl.LazyFrame | pl.DataFrame | None = None,
             carry: tuple[int | None, int | None] | None = None) -> list[pl.Expr]:
    """dedupe.P1, P2: the hashes of a stored or priced row's record's id, its record row's (see
    _is_record: a response's later steps, a run's other models follow their record row, in the
    order they were priced and stored). Copies of a request compete as records, as in a report
    (dedupe.losers): a night's copy holding a step the stored copy lacks is the fuller one. And a
    losing copy is removed as a record (its id), never by its rows' ids: a Claude Code run's rows
    are keyed `uuid#model`, so another record (a copy listing other models) may hold a row of the
    same id (see _RecordIds). A linear scan (a forward fill); a record without an id gives its rows
    none (not the record's before it). Rows without `requests` (a data file written before it) are
    records each. `carry`: the ids of the record the rows before these ended in (rows given a batch
    at a time: a record's rows may span two), for the rows before the first record row."""
    if rows is not None and "requests" not in rows.collect_schema().names():
        return [pl.col(h).alias(p) for h, p in ((dedupe.H1, dedupe.P1), (dedupe.H2, dedupe.P2))]
    record = _is_record(None)
    has = pl.when(record).then(pl.col(dedupe.H1).is_not_null()).forward_fill()
    out = [pl.when(has).then(pl.when(record).then(pl.col(h)).forward_fill()) for h in (dedupe.H1, dedupe.H2)]
    if carry is not None:
        before = record.cum_sum() == 0
        out = [pl.when(before).then(pl.lit(c, pl.UInt64)).otherwise(e) for e, c in zip(out, carry, strict=True)]
    return [e.cast(pl.UInt64).alias(p) for e, p in zip(out, (dedupe.P1, dedupe.P2), strict=True)]


class _RecordIds:
    """dedupe.P1, P2 (see _parents) of rows given a batch at a time, in their order: a record's rows
    may span two batches (a row group, a slice), so the record a batch ends in is carried to the
    next. Rows are named by their record, not by their own id: a night's copy that loses to a
    stored one (or a stored copy that loses to the night's) goes as a record, and another record's
    row of the same id (a Claude Code run's `uuid#model` in a copy listing other models) stays."""

    def __init__(self, hashes: Callable[[], list[pl.Expr]] = dedupe.hashes):
        self.hashes = hashes
        self.last: tuple[int | None, int | None] = (None, None)

    def add(self, batch: pl.DataFrame) -> pl.DataFrame:
        """`batch` with H1, H2 (by `hashes`) and P1, P2."""
        out = batch.with_columns(self.hashes()).with_columns(_parents(batch, self.last))
        if out.height:
            self.last = out.select(dedupe.P1, dedupe.P2).row(-1)
        return out


def _rank(rows: pl.LazyFrame | None = None) -> pl.Expr:
    """A copy's dedupe rank (see RANK): rows without the column, or with a null there (a data file
    written before the column), rank as NEUTRAL_RANK."""
    if rows is not None and RANK not in rows.collect_schema().names():
        return pl.lit(NEUTRAL_RANK, pl.Int8).alias(RANK)
    return pl.col(RANK).fill_null(NEUTRAL_RANK).cast(pl.Int8).alias(RANK)


def _best(tokens: str, rank: str) -> list[pl.Expr]:
    """Per id (in a group-by), its best copy's rank and tokens, as dedupe.losers orders copies: the
    lowest rank, then the most tokens."""
    return [pl.col(rank).min(), pl.col(tokens).filter(pl.col(rank) == pl.col(rank).min()).max()]


def _check_names(path: str, stored: list[str], dims: list[str]) -> None:
    """Delta Lake compares column names ignoring case: a log column `Cost` (or a night's `team`
    after another's `Team`) cannot be a column of the table next to `cost`. Said in one line before
    anything is written, rather than as delta-rs' schema error at the commit."""
    seen = {n.lower(): n for n in stored}
    for d in dims:
        other = seen.get(d.lower())
        if other is not None and other != d and other in dims:
            raise StoreError(f"{path}: columns {other!r} and {d!r}: Delta Lake column names ignore case, so one "
                             "table cannot hold both (a report of the log keeps them apart); rename one in the log")
        if other is not None and other != d:
            raise StoreError(f"{path}: column {d!r}: the store has a column {other!r}, and Delta Lake column names "
                             "ignore case, so one table cannot hold both; rename the column in the log")
        seen.setdefault(d.lower(), d)


SPOOL_GROUP = 64 * 1024  # rows per row group of the spool file: what reading it back holds at once


@dataclass
class _Rows:
    """A file's rows to store: its priced rows (the spool file) less the repeats of stored requests,
    and `extra`: other files' copies stored again in the same commit (see _restore; their columns
    may differ, and they keep their own source file). `shadow`: the DISPLACED file this commit's
    record names, written before it (removed when the commit does not happen)."""

    spool: str | None  # (None: no rows of its own, only `extra`)
    repeated: pl.DataFrame  # the record ids (dedupe.P1, P2) of the copies that lose (see _Contest)
    extra: pl.DataFrame | None = None
    shadows: list[str] = dataclasses.field(default_factory=list)

    def _keep(self, lf: pl.LazyFrame) -> pl.LazyFrame:
        """`lf` (with P1, P2) less the losing records' rows."""
        gone = [dedupe.H1, dedupe.H2, dedupe.P1, dedupe.P2]
        return lf.join(self.repeated.lazy(), on=[dedupe.P1, dedupe.P2], how="anti", maintain_order="left").drop(gone)

    def lazy(self) -> pl.LazyFrame:
        if self.spool is None:
            return pl.LazyFrame(schema=self.extra.schema)
        rows = pl.scan_parquet(self.spool, glob=False)
        if not self.repeated.height:  # (most nights: hashing every id would find nothing)
            return rows
        return self._keep(rows.with_columns(dedupe.hashes()).with_columns(_parents(rows)))

    @property
    def schema(self) -> pl.Schema:
        own = self.lazy().collect_schema()
        if self.extra is None:
            return own
        return pl.Schema({**own, **{c: t for c, t in self.extra.schema.items() if c not in own}})

    def batches(self) -> Iterator[pl.DataFrame]:
        """The rows batch by batch, a row group of the spool at a time. (Polars' collect_batches runs
        the whole plan ahead of its reader and buffers what it has not yet given: 1 GiB for 1M rows.)"""
        import pyarrow.parquet as pq

        if self.spool is not None:
            ids = _RecordIds()  # (a record's rows may span two row groups: its id is carried)
            with pq.ParquetFile(self.spool) as f:
                for batch in f.iter_batches(batch_size=SPOOL_GROUP):
                    rows = pl.from_arrow(batch)
                    yield self._keep(ids.add(rows).lazy()).collect() if self.repeated.height else rows
        if self.extra is not None:
            yield self.extra

    def arrow(self):
        """The rows as an Arrow stream, batch by batch (for Delta's writer: never collected)."""
        import pyarrow as pa

        columns = self.schema
        schema = pl.DataFrame(schema=columns).to_arrow().schema

        def aligned(df: pl.DataFrame) -> pl.DataFrame:  # (a column one side lacks: nulls)
            return df.with_columns([pl.lit(None, t).alias(c) for c, t in columns.items() if c not in df.columns]
                                   ).select(list(columns)).cast(dict(columns))

        return pa.RecordBatchReader.from_batches(
            schema, (b for df in self.batches() for b in aligned(df).to_arrow().cast(schema).to_batches()))


@dataclass
class _Restored:
    """What replacing a file brings back of the copies its earlier content had displaced (see
    _restore): `rows`, stored again (each with its own source file); `beaten`: the record ids (P1, P2) of the
    new content's copies that lose to them (duplicates); `carried`: the displaced copies still
    valid and not brought back, which the new record names in turn; `counts`: per source sha, the
    records (priced, unpriced) stored again, no longer duplicates of it."""

    rows: pl.DataFrame
    beaten: pl.DataFrame
    carried: pl.DataFrame
    counts: dict[str, dict[str, int]]


def _shadow_files(root: str, record: dict) -> list[str]:
    """The DISPLACED files a record names (relative to `root`)."""
    text = record.get("displaced_rows")
    if not text:
        return []
    try:
        names = json.loads(text)
    except ValueError as e:
        raise _damaged(root, e) from None
    bad = [n for n in names if not isinstance(n, str) or not DISPLACED_NAME.fullmatch(n)] if isinstance(names, list) else [names]
    if bad:  # (a record names only files of our own directory: anything else is not ours to read)
        raise StoreError(f"damaged store: {root}: the record of {record.get('path')!r} names {bad[0]!r}, "
                         f"not a file of {DISPLACED}")
    return names


def _kept_files(root: str, records: dict[str, dict], path: str) -> list[tuple[str, dict]]:
    """Every DISPLACED file the records name, with its record, for a replacing ingest of `path`.
    One missing (deleted by hand, a directory or a link in its place), or not the rows and bytes its
    record noted (emptied, rewritten: see _kept_damage), stops it: the copies it held are unknown,
    so which requests would be left in no file (still counted duplicates) cannot be told, and going
    on would leave `report --store` short of a report of the files, in silence. Nothing has been
    written yet: the store stays as it was."""
    named = [(f, r) for r in records.values() for f in _shadow_files(root, r)]
    for rel, r in named:
        why = _kept_damage(root, rel, r)
        if why:
            raise StoreError(
                f"damaged store: {root}: {rel} is {why} (copies kept for {r['path']}'s record, which come back when "
                f"a file is replaced); not replacing {path}. Put the file back (from a backup), or ingest the logs "
                f"again into a new store; `llm-cost store status {root}` lists the damage")
    return named


def _kept_stats(root: str, rels: list[str]) -> str:
    """`displaced_stats` of a record naming the DISPLACED files `rels`, just written and closed:
    each file's rows (from its footer) and bytes, as the Delta log notes a data file's."""
    import pyarrow.parquet as pq

    stats = {}
    for rel in rels:
        full = os.path.join(root, rel)
        stats[rel] = [pq.ParquetFile(full).metadata.num_rows, os.path.getsize(full)]
    return json.dumps(stats)


def _kept_digests(root: str, rels: list[str]) -> str:
    """`displaced_sha256` of a record naming the DISPLACED files `rels`, just written and closed:
    the sha256 of each file's bytes. Rows and bytes miss an edit in place at the same size (one
    byte of an id, in a small column zstd stores raw); the digest sees it. (Read back once,
    streamed: a kept file is a night's losing copies, small beside the night. A column of its own,
    not a third number in `displaced_stats`: a version before it reads that as [rows, bytes] and
    would call every newer record damaged.)"""
    return json.dumps({rel: sha256(os.path.join(root, rel)) for rel in rels})


def _noted(root: str, record: dict) -> dict[str, list[int]]:
    """The [rows, bytes] a record noted of each DISPLACED file it names (none: a record written
    before records noted them)."""
    text = record.get("displaced_stats")
    try:
        stats = json.loads(text) if text else {}
        if not isinstance(stats, dict) or not all(
                isinstance(v, list) and len(v) == 2 and all(type(n) is int for n in v) for v in stats.values()):
            raise ValueError(f"displaced_stats of {record.get('path')!r} is not {{file: [rows, bytes]}}")
    except ValueError as e:
        raise _damaged(root, e) from None
    return stats


def _digests(root: str, record: dict) -> dict[str, str]:
    """The sha256 a record noted of each DISPLACED file it names (none: a record written before
    records noted them, or rewritten by such a version, whose files table has no such column)."""
    text = record.get("displaced_sha256")
    try:
        digests = json.loads(text) if text else {}
        if not isinstance(digests, dict) or not all(
                isinstance(v, str) and re.fullmatch(r"[0-9a-f]{64}", v) for v in digests.values()):
            raise ValueError(f"displaced_sha256 of {record.get('path')!r} is not {{file: sha256}}")
    except ValueError as e:
        raise _damaged(root, e) from None
    return digests


def _kept_damage(root: str, rel: str, record: dict) -> str | None:
    """Why the DISPLACED file `rel` that `record` names is not the file written: missing, or other
    rows, bytes or content than the record noted (a file emptied by hand, its ids nulled, one byte
    of an id changed at the same size), or an unreadable footer. None when it is as written; a
    record written before records noted a digest (December 7) can only tell rows and bytes, and one
    written before they noted those only that the file is there."""
    full = os.path.join(root, rel)
    if os.path.islink(full) or not os.path.isfile(full):
        return "missing"
    noted = _noted(root, record).get(rel)
    if noted is None:
        return None
    # (rows first: "0 rows, its record says 1" says more than the bytes do; the digest last, the
    # only check that reads the whole file)
    why = _check_part(full, os.path.getsize(full), noted[0], by="its record") or _check_part(
        full, noted[1], None, by="its record")
    said = _digests(root, record).get(rel)
    if why or said is None:
        return why
    digest = sha256(full)
    return None if digest == said else f"changed in place (sha256 {digest[:12]}..., its record says {said[:12]}...)"


def _write_displaced(root: str, rows: pl.DataFrame) -> str:
    """`rows` (displaced copies; a DataFrame, or a LazyFrame streamed to the file) as a new DISPLACED
    file; returns its name relative to `root`."""
    import uuid

    os.makedirs(os.path.join(root, DISPLACED), exist_ok=True)
    rel = os.path.join(DISPLACED, f"{uuid.uuid4()}.parquet")
    if isinstance(rows, pl.LazyFrame):
        rows.sink_parquet(os.path.join(root, rel), compression="zstd", row_group_size=ROW_GROUP)
    else:
        rows.write_parquet(os.path.join(root, rel), compression="zstd")
    return rel


def _copy_key(rows: pl.LazyFrame, place: pl.Expr) -> pl.Expr:
    """dedupe.KEY of a stored or priced row's copy (dedupe.row_key): `place`, its file's place in
    the order a report reads the files, then its line (`source_row`, shared by a record's rows).
    Rows without a line (`nothing`: a replacing content without rows) are line 0."""
    line = pl.col("source_row") if "source_row" in rows.collect_schema().names() else pl.lit(0, pl.Int64)
    return (place * (1 << 40) + line.fill_null(0)).alias(dedupe.KEY)


def _kept_parents(rows: pl.LazyFrame) -> list[pl.Expr]:
    """_parents of kept copies (`_f`: their kept file; hashes by _stored_hashes): a row's record is
    the record row of its kept file, source file and line when the line holds one record, whatever
    the rows' order: a kept file of a night's losing copies written until December 7 (a streamed
    join, which wrote row groups out of order) may hold a response's later steps before its record
    row. A line of several records (a JSON document's events) is taken in order (see _parents)."""
    return _line_parents(rows, ["_f", SHA, "source_row"])


def _line_parents(rows: pl.LazyFrame, line: list[str]) -> list[pl.Expr]:
    """_parents, a row's record being the record row of its `line` (source file and line) when the
    line holds one record, whatever the rows' order or data file: `store compact` (delta-rs
    optimize) writes a month's row batches interleaved and rotated, and across files, so a
    response's later steps may be read before its record row, or in another file. A line of several
    records (a JSON document's events), or rows without a line, are taken in order (see _parents).
    (The repeat check joins its lines' record rows instead: see _repeated.)"""
    base = _parents(rows)
    if not {"requests", "source_row"} <= set(rows.collect_schema().names()):
        return base
    record = _is_record(None)
    one = (record.sum().over(line) == 1) & pl.col("source_row").is_not_null()
    return [pl.when(one).then(pl.col(h).filter(record).first().over(line)).otherwise(p).alias(p.meta.output_name())
            for h, p in zip((dedupe.H1, dedupe.H2), base, strict=True)]


def _restore(root: str, table, records: dict[str, dict], before: dict, replace: set[str],
             rows: pl.LazyFrame) -> _Restored | None:
    """A file replaced: its earlier content's rows (sha in `replace`) go. The copies of other files
    that lost to them (the DISPLACED files every record names: stored copies they displaced, and
    copies that lost to them when their own night was ingested; a copy may also have been carried
    from one record to the next, see `carried`), whose file is still stored as it was and whose
    request the earlier content holds in the store, come back, the best of each request's as
    dedupe.losers orders them (rank, tokens, then the file ingested first), unless the new content
    (`rows`) has a copy of its own that beats them. None when no record names any.

    Bounded by the kept copies near the earlier content's time span (few: copies that lost to
    another file's) and the stored rows of their days, read as in the repeat check; never the
    history's rows."""
    named = [(f, r is before) for f, r in _kept_files(root, records, before["path"])]
    if not named:
        return None
    alive = sorted({r["sha256"] for r in records.values()} - replace)
    # The order of the files' last ingests, as a report of them reads them (a tie goes to the copy
    # read first): their rows versions, each ingest's own since every ingest commits (see
    # _write_rows). A store written before shares a version between a night that stored nothing
    # and the one before it: then the time of ingest, then the path (one order, if not the true one).
    ranked = sorted(records.values(), key=lambda r: (r.get("rows_version", -1), r.get("ingested_at") or "", r["path"]))
    order = {r["sha256"]: n for n, r in enumerate(ranked)}
    frames = []
    for n, (rel, own) in enumerate(named):
        path = os.path.join(root, rel)
        frames.append(pl.scan_parquet(path, glob=False, hive_partitioning=False).with_row_index("_i").with_columns(
            pl.lit(n, pl.UInt32).alias("_f"), pl.lit(own).alias("_own")))
    near = pl.lit(True)
    if before.get("span"):
        # Copies that lost to (or were displaced by) the earlier content's copies are stamped within
        # REPEAT_DAYS of its days: only those are read (footer statistics skip the rest).
        try:
            first, last = (dt.datetime.fromisoformat(t) for t in json.loads(before["span"]))
        except (ValueError, TypeError) as e:
            raise _damaged(root, e) from None
        pad = dt.timedelta(days=REPEAT_DAYS + 1)
        with contextlib.suppress(OverflowError):  # (the first or last days of the calendar: all read)
            near = pl.col("timestamp").is_between(first - pad, last + pad)
    ids, parents = [dedupe.H1, dedupe.H2], [dedupe.P1, dedupe.P2]
    newest = max(order.values(), default=0) + 1  # (the new content's place)
    try:
        kept = pl.concat(frames, how="diagonal_relaxed").filter(pl.col(SHA).is_in(alive))
        pool = kept.filter(near)
        # Each kept row with its record's id (see _kept_parents) and its record's key as dedupe
        # names copies (row_key: here the file's place in the order of last ingests, then its
        # line), so that copies compete whole.
        keys = pool.filter(pl.col("request_id").is_not_null()).with_columns(_stored_hashes()).select(
            "_f", "_i", "_own", SHA, "timestamp", *ids, *_kept_parents(pool), _tokens(), _rank(pool),
            _copy_key(pool, pl.col(SHA).replace_strict(order, default=newest, return_dtype=pl.Int64))).collect()
    except (pl.exceptions.PolarsError, OSError) as e:
        raise _damaged(root, e) from None
    # (one copy kept twice, by two records: a copy that lost, brought back, then displaced again
    # is named by both nights' records. Counted once, or its tokens would count twice.)
    keys = keys.filter(pl.col("_f") == pl.col("_f").min().over(dedupe.KEY, *parents))
    empty = pl.DataFrame(schema={dedupe.P1: pl.UInt64, dedupe.P2: pl.UInt64})
    if not keys.height:  # (nothing near: the earlier content's kept copies are all carried)
        try:
            carried = kept.filter(pl.col("_own")).collect()
        except (pl.exceptions.PolarsError, OSError) as e:
            raise _damaged(root, e) from None
        return _Restored(pl.DataFrame(), empty, carried.drop("_f", "_i", "_own"), {})
    # Which of these requests the earlier content holds in the store (it won them), by record id (a
    # kept copy may have a step the earlier content's lacks): read as the repeat check reads, in the
    # data files of the copies' days only.
    spans = _repeat_windows(keys["timestamp"].dt.date().drop_nulls().unique().to_list())
    files = _repeat_files(table, spans) if table is not None and spans else []
    held = pl.DataFrame(schema={dedupe.P1: pl.UInt64, dedupe.P2: pl.UInt64})  # (its records' ids: their record rows')
    if files:
        schema = {"request_id": pl.String, "timestamp": pl.Datetime("us", "UTC"), SHA: pl.String, "source": pl.String,
                  "requests": pl.Int64}
        try:
            held = pl.concat([pl.scan_parquet(f, schema=schema, extra_columns="ignore", glob=False, missing_columns="insert",
                                              hive_partitioning=False) for f in files]).filter(
                pl.col(SHA).is_in(sorted(replace)) & _in_spans(spans) & _is_record(None)
            ).select(_stored_hashes()).rename({dedupe.H1: dedupe.P1, dedupe.H2: dedupe.P2}).join(
                keys.lazy().select(parents), on=parents, how="semi").unique().collect(engine="streaming")
        except (pl.exceptions.PolarsError, OSError) as e:
            raise _damaged(_local(table.table_uri), e) from None
    free = keys.join(held, on=parents, how="semi")
    # The new content's copies of those requests compete with them, as the file ingested last.
    # (each row's record id found before rows without an id go: see _parents)
    mine = rows.with_columns(dedupe.hashes()).select(
        *ids, *_parents(rows), _tokens(), _rank(rows), _copy_key(rows, pl.lit(newest, pl.Int64))).filter(
        pl.col(dedupe.H1).is_not_null()).join(held.lazy(), on=parents, how="semi").collect(engine="streaming")
    # Ranked as a report ranks copies (dedupe.losers: rank, the record's tokens, then the copy read
    # first), each copy whole: a copy whose record loses loses every row.
    ranked = [dedupe.KEY, *ids, *parents, dedupe.TOKENS, pl.col(RANK).alias("_rank")]
    contest = pl.concat([free.select(*ranked, "_f", "_i"), mine.select(
        *ranked, pl.lit(None, pl.UInt32).alias("_f"), pl.lit(None, pl.UInt32).alias("_i"))], how="vertical_relaxed")
    lost = dedupe.losers(contest.drop("_f", "_i"))
    back = contest.filter(pl.col("_f").is_not_null()).join(lost, on=list(dedupe.LOSER), how="anti").select("_f", "_i")
    beaten = mine.join(lost, on=list(dedupe.LOSER), how="semi").select(parents).unique()  # (records: see _Contest)
    try:
        # Stored again with a record's rows consecutive, its record row first (what _parents reads
        # in a data file), even from a kept file whose rows are out of order (see _kept_parents).
        restored = pool.join(back.lazy(), on=["_f", "_i"], how="semi", maintain_order="left").collect()
        if {"requests", "source_row"} <= set(restored.columns):
            line, record = ["_f", SHA, "source_row"], _is_record(None)
            restored = restored.sort([*line, ~record & (record.sum().over(line) == 1), "_i"])
        # the earlier content's own kept copies, still valid, not brought back: named again (all of
        # them, near its time or not: one carried from an earlier content may wait for another file)
        carried = kept.filter(pl.col("_own")).join(back.lazy(), on=["_f", "_i"], how="anti", maintain_order="left").collect()
    except (pl.exceptions.PolarsError, OSError) as e:
        raise _damaged(root, e) from None
    counts = {}
    if restored.height:  # (one row per source file: bookkeeping of files, not of rows)
        per = restored.group_by(SHA).agg(*_dup_counts())
        for sha, priced, unpriced in zip(per[SHA], per["priced"], per["unpriced"]):
            counts[sha] = {"priced": priced, "unpriced": unpriced}
    restored = restored.drop("_f", "_i", "_own").with_columns(_month())
    return _Restored(restored, beaten, carried.drop("_f", "_i", "_own"), counts)


def _write_rows(root: str, table, frame: _Rows | _MonthFiles | None, replace: set[str], entry: dict, book: str,
                stored: int):
    """One commit: the rows of the files `replace` (an earlier content, or a crashed try of this
    one) are replaced by `frame`, with the file's record in the commit's metadata. A _MonthFiles
    frame (the nightly case: the store holds no row of `replace`) is committed as the files it
    wrote (see `_append`); a spool's rows are written by Delta's writer.
    Raises `_Conflict` when another writer committed since `table` was read."""
    dl = _delta()
    props = _commit("ingest", book, **{K_FILE: json.dumps(entry), K_ROWS: stored})
    predicate = f"{SHA} IN ({', '.join(repr(s) for s in sorted(replace))})"  # hex digests: no quoting issue
    if isinstance(frame, _Rows) and frame.extra is not None:
        # Delta's writer checks that every row it writes matches the predicate of the rows it
        # replaces: copies stored again (see _restore) are named by their file, line and request
        # id, which no stored row has (they were removed, and the store keeps one copy of a
        # request). Not by file and id alone: another record of their file, stored, may hold a row
        # of the same id (a Claude Code run's `uuid#model`), and it was replaced away with them.
        predicate = f"{predicate} OR {_restored_predicate(frame.extra)}"
    appended = False
    # Before the write: delta-rs moves a DeltaTable it writes through to the new version, so the
    # files listed after it include the new ones (which then went without summaries).
    before = set() if table is None else {os.path.relpath(u, root) for u in _parts(table, None)}
    # The version this commit makes: the one after the version read, as no commit of ours is retried
    # onto a later one (see _commit). (delta-rs moves the object on for some writes, not all.)
    committed = 0 if table is None else table.version() + 1
    try:
        if isinstance(frame, _MonthFiles):
            _append(root, table, frame, props)
            appended = True
        elif frame is not None:
            if table is None:
                dl.write_deltalake(root, frame.arrow(), partition_by=[MONTH], mode="error", schema_mode="merge",
                                   commit_properties=props, writer_properties=_writer())
            else:
                named = 0 if frame.extra is None else 2 * frame.extra.height  # (ids and lines)
                _on_stack(lambda: dl.write_deltalake(
                    table, frame.arrow(), partition_by=[MONTH], mode="overwrite", predicate=predicate,
                    schema_mode="merge", commit_properties=props, writer_properties=_writer()), named)
        elif table is not None:
            version = table.version()
            table.delete(predicate, commit_properties=props)
            if table.version() == version:
                # Nothing matched, and delta-rs commits no delete then: a commit of no rows carries
                # the record, so that every file's ingest is a version of its own. The order of the
                # files' last ingests is their rows versions (a copy brought back on a tie is the
                # one a report reads first, see _restore), and the record is in the log to replay.
                table.create_write_transaction([], "append", table.schema(), partition_by=[MONTH],
                                               commit_properties=props)
        else:
            return None  # an empty first file: no table yet; its record goes to the files table alone
    except _Conflict:
        raise
    except Exception as e:  # noqa: BLE001 - delta-rs: a conflicting commit, a full disk
        if _is_conflict(e) or table is None and _kind(root) == "delta":
            raise _Conflict from None
        raise StoreError(f"{root}: cannot commit {entry['path']}: {(str(e).strip().splitlines() or [''])[0]}") from None
    # The table as this commit left it, not as the log is now: another writer may have committed
    # since, and this run's records (which the caller tags with this version and writes to the
    # files table) hold nothing of that commit. Tagged with the later version, they would stand for
    # it, and the later commit's file would be forgotten with its accounting.
    # (`committed` is absent only where delta-rs made no commit: a test standing in for 32d69cf.)
    table = _table(root)
    table = _checkpoint(table if table.version() <= committed else _table(root, committed))
    if frame is not None and not appended:  # delta-rs wrote these files: summarized after its commit
        _summarize_missing(root, table, {os.path.relpath(u, root) for u in _parts(table, None)} - before)
    return table


# Stack for a Delta write whose predicate names copies brought back (see _write_rows): delta-rs
# recurses once per name of an IN list on the calling thread, and overflowed the main thread's
# 8 MiB (the process died of SIGSEGV, no message) at ~10K names; 100K ran in 256 MiB. So such a
# write runs on a thread with STACK_PER_NAME a name (a reservation: only the pages used are memory).
STACK_PER_NAME = 4 * 1024
STACK_BASE = 16 * 1024 * 1024
STACK_MAX = 4 * 1024**3


def _on_stack(write: Callable[[], object], names: int) -> object:
    """`write()`, on a thread whose stack fits a predicate of `names` names (the caller's own thread
    when few); its exception, if any, raised here."""
    size = STACK_BASE + STACK_PER_NAME * names
    if names < 1000:
        return write()
    out: dict = {}

    def run() -> None:
        try:
            out["value"] = write()
        except BaseException as e:  # noqa: BLE001 - raised again in the caller's thread
            out["error"] = e

    before = threading.stack_size()
    try:
        threading.stack_size(min(size, STACK_MAX))
        worker = threading.Thread(target=run, name="delta-write")
        worker.start()
    finally:
        threading.stack_size(before)
    worker.join()
    if "error" in out:
        raise out["error"]
    return out.get("value")


def _sql_text(text: str) -> str:
    """A string literal of Delta's (DataFusion's) SQL: quotes doubled, nothing else escaped."""
    return "'" + text.replace("'", "''") + "'"


def _restored_ids(rows: pl.DataFrame) -> list[tuple[str, list[str], list[int] | None]]:
    """The request ids and lines (`source_row`; None when a row has none) of `rows` per source file
    (few files: bookkeeping of files, not of rows). A stored row matching one of each is one of
    these rows' records: a record's rows share its line, and a line holds one record (or, in a JSON
    document of several, records of other ids)."""
    if "source_row" not in rows.columns:
        rows = rows.with_columns(pl.lit(None, pl.Int64).alias("source_row"))
    per = rows.group_by(SHA).agg(pl.col("request_id").unique(), pl.col("source_row").unique(),
                                 pl.col("source_row").null_count().alias("_none")).sort(SHA)
    return [(sha, ids, None if none else lines) for sha, ids, lines, none in
            zip(per[SHA].to_list(), per["request_id"].to_list(), per["source_row"].to_list(), per["_none"].to_list())]


def _restored_predicate(rows: pl.DataFrame) -> str:
    """The Delta predicate naming `rows` (copies stored again) by file, request id and line (see
    _restored_ids): the rows a write of them may replace, and no other stored record's."""
    return " OR ".join(
        f"({SHA} = '{sha}' AND request_id IN ({', '.join(_sql_text(i) for i in sorted(ids))})"
        + (f" AND source_row IN ({', '.join(str(n) for n in sorted(lines))}))" if lines is not None else ")")
        for sha, ids, lines in _restored_ids(rows))


def _checkpoint(table):
    """Write a checkpoint when `table` (just committed to) is at a multiple of CHECKPOINT_EVERY.
    After the commit: the commit stands whether or not this happens, and a run killed while writing
    it leaves no checkpoint (delta-rs writes it to a temporary name and renames it), so a failure
    only means the next runs replay more commits; it is not worth failing the ingest over."""
    if table is not None and table.version() > 0 and table.version() % CHECKPOINT_EVERY == 0:
        with contextlib.suppress(Exception):  # noqa: BLE001 - see above
            table.create_checkpoint()
    return table


ROW_GROUP = 64 * 1024  # rows per Parquet row group: what the writer holds per month while it writes
# zstd level of the month files: a 2.67M-row bench month at level 3 was 90.97 MB, 3.77 CPU s to
# write; level 2, 90.90 MB, 3.13 s; level 1, 91.11 MB, 3.16 s.
ZSTD_LEVEL = 2
# Whether a night's month files closed before its last slice are summarized in a worker thread
# while the later months are priced (False: every summary after the last slice, one after the other).
SUMMARY_AHEAD = True


class _MonthFiles:
    """A night's priced rows written straight into one Parquet file per month as `writers.write_rows`
    gives their slices (it calls append, sink, close, abort), less the repeats of stored requests
    (`repeated`: their record ids, see _Contest), in the table's columns (`select`, when given). The files are
    written where the table keeps its data, under delta-rs' names (`written`: paths relative to
    `root`), and committed by `_append`; a run killed before the commit leaves files no version
    names, which readers never see and `store compact` removes. Each slice is split by month and
    appended to its month's writer (a night touches one or two): `price`'s writer
    (writers.parquet_appender: PyArrow, dictionaries for labels only, statistics for time and
    counts), at zstd level ZSTD_LEVEL. Pricing into a spool and writing the month files from it read and
    encoded the rows twice (a 10M night: 15.0 CPU s for the second pass). One Polars streaming
    sink a month cost more and held more the more it wrote; its partitioned sink holds each
    partition whole."""

    def __init__(self, root: str, path: str, schema: pl.Schema, select: list[pl.Expr] | None,
                 repeated: pl.DataFrame):
        self.root, self.path, self.schema, self.select, self.repeated = root, path, schema, select, repeated
        self.ids = _RecordIds()  # (the rows' record ids, carried from one slice to the next)
        self.written: list[str] = []
        self.outs: dict[str, object] = {}  # by month, with its file's path (relative) in `rels`
        self.rels: dict[str, str] = {}
        self.spans: dict[str, list[pl.DataFrame]] = {}  # by file: each slice's rows, time span and null times
        self.left: list[pl.DataFrame] = []  # each slice's unpriced rows by model_raw
        self.dup = {"priced": 0, "unpriced": 0}
        self.stored = 0
        self.stats: dict[str, dict] = {}
        self.empty: pl.LazyFrame | None = None
        # By file, the text columns holding one value so far (None: only nulls), for its summary
        # (see _write_summaries): a night's file has one source file, book, dialect..., and grouping
        # its cells by them too cost 1.9 of 6.1 CPU s for a 2.6M-row month.
        self.text = _cell_keys(schema)
        self.same: dict[str, dict[str, str | None]] = {}
        # By file, the money columns seen to hold a value other than 0 or null (and REPORTED_ROWS
        # once a reported_cost is not null), for the same reason: the files' footers have no money
        # statistics, so each summary summed the bench's all-zero web search and fetch costs and
        # all-null reported costs in every cell (4 of its 19 sums).
        self.money = [c for c in (*pipeline.MONEY_COLUMNS, "reported_cost") if c in schema]
        self.valued: dict[str, set[str]] = {}
        # A month whose file is closed before the night ends (see _append) is summarized by one
        # worker thread while the later months are priced; the rest after the last slice.
        self.month_of: dict[str, str] = {}  # every file written (rel) -> its month
        self.ended: set[str] = set()  # months whose file was closed early
        self.early = SUMMARY_AHEAD
        self.jobs: list = []  # one future a file summarized, in order
        self.asked: set[str] = set()  # files whose summary was asked for
        self.summaries: list[str] = []
        self.pool = None
        self.stop = threading.Event()
        # Stored data files that held copies losing to this night's (see displace): each removed in
        # the night's commit, its other rows in a new file of `written`.
        self.removes: list[tuple[str, int, str]] = []  # (path relative to root, size, month)
        self.displaced: dict[str, dict[str, int]] = {}  # source sha -> its copies removed, priced/unpriced
        self.shadows: list[str] = []  # DISPLACED files holding those copies (relative to root)
        self.lost = None  # the DISPLACED file of this night's own copies that lost (see _keep_lost)
        self.lost_empty: pl.LazyFrame | None = None
        self.span: tuple[dt.datetime, dt.datetime] | None = None  # the night's first and last time

    def append(self, rows: pl.DataFrame) -> None:
        # A row group at a time: a priced slice is up to writers.SLICE_BYTES, and the copies made
        # of a whole one (hashes, joins, a month's rows) held 250 MiB more at 1M rows.
        for offset in range(0, max(rows.height, 1), ROW_GROUP):
            self._append(rows.slice(offset, ROW_GROUP))

    def _append(self, batch: pl.DataFrame) -> None:
        ts = pl.col("timestamp")
        bounds = batch.select(_month(ts.min()).alias("lo"), _month(ts.max()).alias("hi"),
                              (ts.dt.year().max() > 9999).alias("late"), ts.min().alias("first"),
                              ts.max().alias("last")).row(0, named=True)
        if bounds["late"]:
            raise _late_error(self.path, batch.filter(_late())["timestamp"].cast(pl.String)[0])
        self.span = _widen(self.span, bounds["first"], bounds["last"])
        if self.early and bounds["lo"] is not None:
            # Every row of this group is past a month still open: a log in time order has left that
            # month behind, so its file is closed and summarized now, beside the pricing of the
            # next months, instead of after the last one. (Should one of its rows come later, it
            # goes to a second file of the month, and no month is closed early again this night.)
            for month in sorted(m for m in self.outs if m < bounds["lo"]):
                self._end(month, summarize=True)
        if self.repeated.height:  # (most nights: hashing every id would find nothing)
            on, added = [dedupe.P1, dedupe.P2], [dedupe.H1, dedupe.H2, dedupe.P1, dedupe.P2]
            batch = self.ids.add(batch)  # (by record id, not the row's own: see _Contest)
            lost = batch.join(self.repeated, on=on, how="semi", maintain_order="left")
            gone = lost.select(_dup_counts()).row(0, named=True)
            self.dup = {k: v + gone[k] for k, v in self.dup.items()}
            batch = batch.join(self.repeated, on=on, how="anti", maintain_order="left").drop(added)
            if lost.height:  # kept whole: should the stored copy's file be replaced, they may come back
                self._keep_lost(lost.drop(added) if self.select is None else lost.select(self.select))
        if self.select is not None:
            batch = batch.select(self.select)
        if self.empty is None:
            self.empty = batch.clear().lazy()
        if not batch.height:
            return
        if batch["timestamp"].null_count():  # (pricing quarantines a row without a time: none is here)
            raise StoreError(f"{self.path}: rows to store have no timestamp, so no month partition; nothing was written")
        self.stored += batch.height
        self.left.append(_unpriced_records(batch))
        if bounds["lo"] == bounds["hi"]:  # (nearly every slice of a log in time order: no month a row, no copy)
            self._write(bounds["lo"], batch)
            return
        months = batch.select(_month())[MONTH]
        for month in months.unique().sort().to_list():  # (partition_by of every slice: 1.2 CPU s a million rows)
            self._write(month, batch.filter(months == month))

    def _keep_lost(self, rows: pl.DataFrame) -> None:
        """The night's copies that lost to stored ones (duplicates), into a DISPLACED file the
        night's record names (see _restore): a copy that lost to a file later replaced comes back."""
        import uuid

        if self.lost is None:
            os.makedirs(os.path.join(self.root, DISPLACED), exist_ok=True)
            rel = os.path.join(DISPLACED, f"{uuid.uuid4()}.parquet")
            self.shadows.append(rel)  # (before it is opened: removed, whatever happens next)
            self.lost = writers.parquet_appender(os.path.join(self.root, rel), "zstd", ROW_GROUP, level=ZSTD_LEVEL)
            self.lost_empty = rows.clear().lazy()
        self.lost.append(rows)

    def _write(self, month: str, rows: pl.DataFrame) -> None:
        out = self._out(month)
        rel = self.rels[month]
        out.append(rows)
        self._note(rel, rows)

    def _note(self, rel: str, rows: pl.DataFrame) -> None:
        """What file `rel`'s statistics and summary need to know of `rows`, just written to it."""
        ts = pl.col("timestamp")
        self.spans.setdefault(rel, []).append(rows.select(
            pl.len().alias("rows"), ts.min().alias("min"), ts.max().alias("max"), ts.null_count().alias("nulls")))
        valued = self.valued.setdefault(rel, set())
        check = [pl.col(c).ne(0).any().alias(c) for c in self.money if c not in valued and c in rows.columns]  # (nulls: not a value)
        if "reported_cost" in self.money and REPORTED_ROWS not in valued:
            check.append(pl.col("reported_cost").is_not_null().any().alias(REPORTED_ROWS))
        if check:  # (once a column has a value in a month, it is not looked at again)
            valued.update(k for k, v in rows.select(check).row(0, named=True).items() if v)
        # (a stored file rewritten by `displace` may lack a column this night's rows have: written
        # before the table gained it; its summary groups by what it has)
        text = [k for k in self.text if k in rows.columns]
        if not text:
            return
        c = pl.col(text)
        one = rows.select((c == c.first()).all().name.suffix("\0eq"), c.null_count().name.suffix("\0nulls"),
                          c.first()).row(0, named=True)
        same = self.same.setdefault(rel, {k: one[k] for k in text})
        for k in list(same):
            nulls = one[k + "\0nulls"]
            alike = nulls == rows.height or not nulls and one[k + "\0eq"]
            if not alike or one[k] != same[k]:
                del same[k]

    def constant(self, rel: str) -> dict[str, str | None]:
        """The text columns of month file `rel` that hold one value (or only nulls), with it."""
        return self.same.get(rel, {})

    def zero(self, rel: str) -> set[str]:
        """The money columns of month file `rel` that are 0 or null in every row (REPORTED_ROWS:
        reported_cost null in every row): their sums are 0 in every cell."""
        if rel not in self.valued:
            return set()
        return {*self.money, *([REPORTED_ROWS] if "reported_cost" in self.money else [])} - self.valued[rel]

    def _out(self, month: str):
        import uuid

        if month not in self.outs:
            if month in self.ended:  # (rows of a month closed early: a second file, and no more early closes)
                self.early = False
            rel = f"{MONTH}={month}/part-00000-{uuid.uuid4()}-c000.zstd.parquet"
            os.makedirs(os.path.join(self.root, f"{MONTH}={month}"), exist_ok=True)
            self.written.append(rel)  # (before it is opened: removed, whatever happens next)
            self.month_of[rel] = month
            self.rels[month] = rel
            self.outs[month] = writers.parquet_appender(os.path.join(self.root, rel), "zstd", ROW_GROUP, level=ZSTD_LEVEL)
        return self.outs[month]

    def _end(self, month: str, summarize: bool = False) -> None:
        """Close the open file of `month`, with its Delta statistics; `summarize`: hand it to the
        summary worker now (a month closed early)."""
        out, rel = self.outs.pop(month), self.rels.pop(month)
        out.close(empty=self.empty)
        self.stats[rel] = _stats(pl.concat(self.spans.pop(rel)))
        if summarize:
            self.ended.add(month)
            self._summarize(rel)

    def _summarize(self, rel: str) -> None:
        """Summarize file `rel` in the worker thread, after the files asked for before it. One
        worker, so one summary at a time: what a summary holds (a window of WINDOW_ROWS rows and its
        cells) is added to pricing's memory at most once."""
        from concurrent.futures import ThreadPoolExecutor

        self.asked.add(rel)
        if not SUMMARY_AHEAD:  # (here and now, one after the other: the order before the worker)
            self._summary(rel)
            return
        if self.pool is None:
            self.pool = ThreadPoolExecutor(1, thread_name_prefix="llm-cost-summary")
        self.jobs.append(self.pool.submit(self._summary, rel))

    def _summary(self, rel: str) -> None:
        if self.stop.is_set():
            return
        with contextlib.suppress(pl.exceptions.PolarsError, OSError, AnalyzerError, _Stopped):
            self.summaries += _write_summaries(self.root, rel, constant=self.constant(rel), zero=self.zero(rel),
                                               stop=self.stop, window=AHEAD_WINDOW_ROWS)  # (or, without one, its rows are read)
        _trace("summary")

    def summarize(self) -> list[str]:
        """After `close`: summarize the files not summarized yet, wait for every summary, and return
        the summaries written. An unexpected error of a summary is raised here."""
        for rel in self.written:
            if rel not in self.asked:
                self._summarize(rel)
        self._join()
        return self.summaries

    def _join(self) -> None:
        jobs, self.jobs = self.jobs, []
        errors = []
        for job in jobs:
            try:
                job.result()
            except BaseException as e:  # noqa: BLE001 - raised below, after every job has ended
                errors.append(e)
        if self.pool is not None:
            self.pool.shutdown(wait=True)
            self.pool = None
        if errors:
            raise errors[0]

    def sink(self, lf: pl.LazyFrame) -> None:
        writers.sink_in_groups(lf, self.append, ROW_GROUP)

    def close(self, empty: pl.LazyFrame) -> None:
        for month in list(self.outs):
            self._end(month)
        self.written.sort(key=self.month_of.__getitem__)  # (month order: the commit's add actions; stable)
        if self.lost is not None:
            self.lost.close(empty=self.lost_empty)

    def abort(self) -> None:
        for out in self.outs.values():
            out.abort()
        if self.lost is not None:
            self.lost.abort()

    def remove(self, shadows: bool = True) -> None:
        """Remove every file written (data files and their summaries; with `shadows`, the DISPLACED
        files too), after the summary worker has stopped: it checks `stop` between windows, and
        whatever it was writing is removed too."""
        self.stop.set()
        with contextlib.suppress(Exception):  # (their own errors are not the run's)
            self._join()
        self.abort()
        if _names_any(self.root, self.written):
            return  # (an interrupt after the commit, before the run noted it: the table's files now)
        for rel in self.written:
            for path in (os.path.join(self.root, rel), *(_summary_path(self.root, rel, g) for g in GRAINS)):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(path)
        for rel in self.shadows if shadows else ():
            with contextlib.suppress(FileNotFoundError):
                os.unlink(os.path.join(self.root, rel))

    def displace(self, contest: _Contest) -> None:
        """After `close`: rewrite each stored data file holding a copy that lost to this night's
        (`contest.displaced`) without it, into a new file of its month (summarized with the night's),
        and remove the old file in the night's commit (time travel keeps it until `store compact`
        vacuums it). Only the copies within the spans the night was checked against go: the same id
        stamped further away is another request to the store (see _repeat_windows). Streamed a row
        group at a time; the removed copies are counted by the file they came from (`displaced`),
        whose record then counts them as duplicates."""
        import uuid

        import pyarrow.parquet as pq

        parents = [dedupe.P1, dedupe.P2]
        for part in sorted(contest.displaced[STORED_AT].unique().to_list()):
            old = os.path.relpath(part, contest.table_root or self.root)  # (the log's name for it)
            if not _is_our_part(self.root, old):  # (a path the table's log gave: checked before it is rewritten)
                raise StoreError(f"damaged store: {self.root}: {old} is not a data file of the store")
            month = old.split("/", 1)[0].split("=", 1)[1]
            mine = contest.displaced.filter(pl.col(STORED_AT) == part)
            gone = mine.select(pl.struct(parents)).to_series().implode()
            schema = pl.scan_parquet(part, glob=False, hive_partitioning=False).collect_schema()
            # (by record id, carried across row groups: a stored record loses whole, and a row of
            # another record with the same id stays; see _Contest. A row with a line: by its file,
            # line and id, as _repeated named it, not by the rows before it here, which after
            # `store compact` may be another record's: see _line_parents)
            ids = _RecordIds(_stored_hashes)
            lost = pl.struct(parents).is_in(gone)
            if "source_row" in schema:
                named = [SHA, "source_row", dedupe.H1, dedupe.H2]
                rows = mine.filter(pl.col("source_row").is_not_null()).select(pl.struct(named)).to_series().implode()
                lost = pl.when(pl.col("source_row").is_not_null()).then(pl.struct(named).is_in(rows)).otherwise(lost)
            lost = (lost & _in_spans(contest.spans)).fill_null(False)
            rel = f"{MONTH}={month}/part-00000-{uuid.uuid4()}-c000.zstd.parquet"
            self.written.append(rel)  # (before it is opened: removed, whatever happens next)
            self.month_of[rel] = month
            out = writers.parquet_appender(os.path.join(self.root, rel), "zstd", ROW_GROUP, level=ZSTD_LEVEL)
            # The copies removed, kept whole in a DISPLACED file the night's record names: should
            # this night's file be replaced and its copies go, they come back (see _restore).
            os.makedirs(os.path.join(self.root, DISPLACED), exist_ok=True)
            shadow = os.path.join(DISPLACED, f"{uuid.uuid4()}.parquet")
            self.shadows.append(shadow)  # (before it is opened: removed, whatever happens next)
            kept = writers.parquet_appender(os.path.join(self.root, shadow), "zstd", ROW_GROUP, level=ZSTD_LEVEL)
            counts: list[pl.DataFrame] = []
            try:
                # A row group at a time, read by PyArrow: Polars' plans over the file (a join to
                # the lost ids, or is_in on a struct) held the whole file (850 MiB for 1M rows).
                with pq.ParquetFile(part) as f:
                    for g in range(f.num_row_groups):
                        batch = pl.from_arrow(f.read_row_group(g)).cast(schema)
                        mask = ids.add(batch).select(lost).to_series()
                        gone_rows = batch.filter(mask)
                        if gone_rows.height:
                            counts.append(gone_rows.group_by(SHA).agg(*_dup_counts()))
                            kept.append(gone_rows)
                        batch = batch.filter(~mask)
                        if batch.height:
                            out.append(batch)
                            self._note(rel, batch)  # (its summary then groups by the columns that vary)
                if rel in self.spans:
                    out.close(empty=pl.LazyFrame(schema=schema))
                kept.close(empty=pl.LazyFrame(schema=schema))
            except BaseException:
                out.abort()
                kept.abort()
                raise
            found = pl.concat(counts).group_by(SHA).agg(pl.col("priced", "unpriced").sum()) if counts else None
            spans = self.spans.pop(rel, None)
            if found is None or not found.height:  # (nothing of it lost after all: no copies kept)
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(os.path.join(self.root, shadow))
                self.shadows.remove(shadow)
            if found is None or not found.height or not spans:
                # nothing of it lost after all (the file stays), or all of it (removed, none added)
                out.abort()
                with contextlib.suppress(FileNotFoundError):  # (never opened when nothing was appended)
                    os.unlink(os.path.join(self.root, rel))
                self.written.remove(rel)
                if found is None or not found.height:
                    continue
            else:
                self.stats[rel] = _stats(pl.concat(spans))
            self.removes.append((old, os.path.getsize(part), month))
            # (one row per source file whose copies this file held: bookkeeping of files, not of rows)
            for sha, priced, unpriced in zip(found[SHA], found["priced"], found["unpriced"]):
                had = self.displaced.setdefault(sha, {"priced": 0, "unpriced": 0})
                had["priced"] += priced
                had["unpriced"] += unpriced

    def unpriced_models(self) -> pl.DataFrame:
        frames = [f for f in self.left if f.height]
        if not frames:
            return pl.DataFrame(schema={"model_raw": pl.String, "len": pl.UInt32})
        return pl.concat(frames).group_by("model_raw").agg(pl.col("len").sum())


def _widen(span: tuple | None, first: dt.datetime | None, last: dt.datetime | None) -> tuple | None:
    """`span` (first, last) widened to hold [first, last] (None: no time yet)."""
    if first is None or last is None:
        return span
    return (first, last) if span is None else (min(span[0], first), max(span[1], last))


def _names_any(root: str, rels: list[str]) -> bool:
    """Whether the table names any of the data files `rels` (relative to `root`). A Ctrl-C or
    SIGTERM delivered as delta-rs returns from the commit (or while the table is read again after
    it) reaches the cleanup of a run that failed before its commit: removing the files then left a
    version naming missing files, and every later report of their months failed. When the table
    cannot be read to tell, the files are kept: an uncommitted file is litter (status lists it,
    compact removes it), a committed one removed is a night lost."""
    if not rels:
        return False
    try:
        if _kind(root) != "delta":
            return False
    except Exception:  # noqa: BLE001 - (no table of ours: nothing of it to keep)
        return False
    try:
        named = {os.path.basename(u) for u in _parts(_table(root), None)}
    except Exception:  # noqa: BLE001 - see above
        return True
    return not named.isdisjoint(os.path.basename(r) for r in rels)  # (a uuid in every name)


def _names_kept(root: str, rels: list[str]) -> bool:
    """Whether the table's last commit (this run's, under the lock) names any of the DISPLACED files
    `rels` in its record: an interrupt (or a failure) after the commit, before the run noted it,
    reaches the cleanup of a run that failed before its commit (see `_names_any`). Removing them
    then lost copies a record names, and every later replace stopped at the missing file. When the
    table cannot be read to tell, they are kept (`store compact` removes those no record names)."""
    if not rels:
        return False
    try:
        if _kind(root) != "delta":
            return False
        last = _history(_table(root), 1)
        entry = json.loads(last[0].get(K_FILE) or "{}") if last else {}
        named = json.loads(entry.get("displaced_rows") or "[]")
        for fields in (json.loads(last[0].get(K_KEPT) or "{}") if last else {}).values():  # (a reprice's)
            named += json.loads(fields.get("displaced_rows") or "[]")
        return not set(rels).isdisjoint(named)
    except Exception:  # noqa: BLE001 - see above
        return True


def _append(root: str, table, frame: _MonthFiles, props) -> None:
    """Commit `frame`'s month files as Delta add actions, each file with its summaries (written
    before the commit: a report of the version that adds them reads them). delta-rs' own writer
    buffers each partition's rows in memory (1.5 GiB of RSS for a night of 1M requests); these were
    streamed. On any failure the files are removed (never committed)."""
    from deltalake.transaction import AddAction, RemoveAction, create_table_with_add_actions

    dl = _delta()
    schema = table.schema() if table is not None else dl.Schema.from_arrow(
        pl.DataFrame(schema=frame.schema).to_arrow().schema)
    written = frame.written
    try:
        frame.summarize()  # (the months closed early are summarized already, or being summarized)
        adds: list = []
        for rel in written:
            st = os.stat(os.path.join(root, rel))
            adds.append(AddAction(rel, st.st_size, {MONTH: rel.split("/", 1)[0].split("=", 1)[1]},
                                  int(st.st_mtime * 1000), True, json.dumps(frame.stats[rel])))
        now = int(time.time() * 1000)
        adds += [RemoveAction(rel, True, now, size, {MONTH: month}) for rel, size, month in frame.removes]
        if table is None:
            create_table_with_add_actions(root, schema, adds, mode="error", partition_by=[MONTH],
                                          commit_properties=props)
        else:
            table.create_write_transaction(adds, "append", schema, partition_by=[MONTH], commit_properties=props)
        _trace("commit")
    except BaseException:
        frame.remove()  # (its files and their summaries: ours, never committed)
        raise


def _stats(groups: pl.DataFrame) -> dict:
    """Delta's file statistics from its row groups' counts: the row count, and the time span (which
    `store status` shows, the repeat check prunes files by, and engines use to skip files for a
    time filter). Counted from the rows as they are written: pyarrow's footer statistics for a
    timestamp import pandas (0.45 s of every ingest)."""
    stats: dict = {"numRecords": int(groups["rows"].sum())}
    if "min" in groups.columns and isinstance(groups.schema["min"], pl.Datetime):
        lo, hi = groups["min"].min(), groups["max"].max()
        if lo is not None and hi is not None:
            def iso(t: dt.datetime) -> str:  # (strftime's %Y does not pad a year before 1000)
                return f"{t.year:04d}" + t.strftime("-%m-%dT%H:%M:%S.%fZ")

            stats["minValues"] = {"timestamp": iso(lo)}
            stats["maxValues"] = {"timestamp": iso(hi)}
        stats["nullCount"] = {"timestamp": int(groups["nulls"].sum())}
    return stats


# ----------------------------------------------------------------------------------------------
# Reading: scans, reports, status

# The columns of stored rows (dimensions follow, as strings).
SCHEMA: dict[str, pl.DataType] = {
    **pipeline.CANONICAL, **{c: pl.String() for c in (*pipeline.PRICE_TAGS, "price_book", "unpriced_reason")},
    **{c: MONEY for c in pipeline.MONEY_COLUMNS}, SHA: pl.String(),
}




def _months(all_months: set[str], since: dt.datetime | None, until: dt.datetime | None) -> set[str]:
    """The month partitions that can hold rows of [since, until) (partitions are UTC months)."""
    lo = since.strftime("%Y-%m") if since else None
    hi = (until - dt.timedelta(microseconds=1)).strftime("%Y-%m") if until else None
    return {m for m in all_months if (lo is None or m >= lo) and (hi is None or m <= hi)}


def _outside(since: dt.datetime | None, until: dt.datetime | None) -> pl.Expr:
    out = pl.lit(False)
    if since is not None:
        out = out | (pl.col("timestamp") < since)
    if until is not None:
        out = out | (pl.col("timestamp") >= until)
    return out


def _version(version: int | None, as_of: str | None) -> int | dt.datetime | None:
    if version is not None and as_of is not None:
        raise OptionError("--version and --as-of: give one")
    if as_of is not None:
        return pipeline.parse_time(as_of, "UTC", end=False, option="--as-of")
    return version


def _dimensions(records: dict[str, dict]) -> list[str]:
    return sorted({d for e in records.values() for d in e.get("dimensions", [])})


def scan(root: str, months: set[str] | None = None, table=None, records: dict | None = None,
         ranked: bool = False) -> pl.LazyFrame:
    """The stored priced rows of these months (all when None), lazily, as `llm-cost price` writes
    them. Only the data files the Delta log names for those months are opened. `ranked`: with each
    row's RANK too (null in a data file written before it), for a rewrite of the rows that keeps it."""
    root = _resolved(root)
    table = table if table is not None else _table(root)
    records = records if records is not None else _files(root, table)
    schema = {**SCHEMA, **{d: pl.String() for d in _dimensions(records)}, **({RANK: pl.Int8()} if ranked else {})}
    files = _parts(table, months)
    missing = [f for f in files if not os.path.isfile(f)]
    if missing:
        raise StoreError(f"damaged store: {root}: data file {os.path.relpath(missing[0], root)} is missing "
                         f"(see `llm-cost store status {root}`)")
    if not files:
        return pl.LazyFrame(schema=schema)
    return pl.scan_parquet(files, schema=schema, missing_columns="insert", extra_columns="ignore", glob=False,
                           hive_partitioning=False)


# ----------------------------------------------------------------------------------------------
# Summaries: what a report reads instead of the rows
#
# Beside every data file `_llm_month=M/part-X.parquet` the store keeps its summary at each grain,
# `_llm_cost/summary/<grain>/_llm_month=M/part-X.parquet`: the file's exact sums grouped by the UTC
# hour (or day) and every text column a report can group by. A summary is a function of its data
# file alone, and data files are never rewritten (each has a fresh uuid name), so a summary that
# exists is right for its file, whenever it was written: before the commit (ingest), after it
# (compact, reprice), or by a later `store compact` (stores written before summaries). A report at
# a version reads the summary of each of that version's data files and scans the rows of a file
# without one; a summary whose file no version needs any more is never read, and `compact` removes
# it. So no crash can make a report differ from its rows: it can only make it read more rows.

SUMMARY = os.path.join(META, "summary")
# Coarsest first: a report uses the coarsest grain that answers it (a day holds ~25x fewer cells).
GRAINS = {"day": "1d", "hour": "1h"}
SUMMED = ("requests", *COUNT_COLUMNS)
REPORTED_ROWS = "_reported_rows"
CACHE_USE = "_cache_use"
NOT_KEYS = ("request_id", SHA, MONTH)  # text columns a report never groups by: one value a row


def _summary_path(root: str, part: str, grain: str) -> str:
    """The summary of data file `part` (absolute, or relative to `root`) at `grain`."""
    return os.path.join(root, SUMMARY, grain, os.path.relpath(os.path.join(root, part), root))


# A summary's Parquet metadata names the data file it stands for and that file's size. A summary is
# read only when they are its file's: one cut short or emptied (a disk error, a power loss after a
# rename the disk had not written), another file's copied over it, or any other Parquet file put
# there would otherwise be summed as the file's rows, silently, or stop every report of its months.
SUMMARY_OF = "llm_cost.summary_of"


def _identity(root: str, part: str, size: int) -> str:
    return json.dumps({"part": os.path.relpath(os.path.join(root, part), root), "size": size}, sort_keys=True)


def _summary_of(root: str, part: str, grain: str, size: int) -> str | None:
    """The summary of data file `part` (of `size` bytes) at `grain`, if it is that file's: a regular
    file, not a symlink, whose metadata names the file and its size. None: read the file's rows."""
    path = _summary_path(root, part, grain)
    try:
        if not stat.S_ISREG(os.lstat(path).st_mode):
            return None
        said = pl.read_parquet_metadata(path).get(SUMMARY_OF)
    except Exception:  # noqa: BLE001 - unreadable in any way (OSError, Polars' errors): not a summary
        return None
    return path if said == _identity(root, part, size) else None


def _summarized(root: str, part: str, size: int) -> bool:
    return all(_summary_of(root, part, g, size) for g in GRAINS)


def _cell_keys(schema: dict) -> list[str]:
    return [c for c, t in schema.items() if t == pl.String and c not in NOT_KEYS]


def _cells(rows: pl.LazyFrame, keys: list[str]) -> pl.LazyFrame:
    """Stored rows in a summary's shape (one cell each): the keys, the request's cache use (part of
    discount_type), its counts and costs, whether it is a record and whether it reported a cost."""
    return rows.select(
        "timestamp", *keys, tagging.cache_use(), *SUMMED,
        _is_record(None).cast(pl.Int64).alias(pipeline.ROWS), *pipeline.MONEY_COLUMNS, "reported_cost",
        pl.col("reported_cost").is_not_null().cast(pl.Int64).alias(REPORTED_ROWS))


def _cell_sums(cells: pl.LazyFrame, keys: list[str], every: str, wide: bool,
               measures: tuple[str, ...] | None = None) -> pl.LazyFrame:
    counts = [c for c in (*SUMMED, pipeline.ROWS, REPORTED_ROWS) if measures is None or c in measures]
    money = [c for c in (*pipeline.MONEY_COLUMNS, "reported_cost") if measures is None or c in measures]
    return cells.with_columns(pl.col("timestamp").dt.truncate(every)).group_by(
        "timestamp", *keys, CACHE_USE).agg(
        *[(pl.col(c).cast(pl.Int128) if wide else pl.col(c)).sum() for c in counts], *[pl.col(c).sum() for c in money])


PROBE_ROWS = 64 * 1024  # a file of more rows is summarized only when this many of its first rows ...
SPARSE = 2  # ... fall into at most 1/SPARSE as many hour cells
STAT_EXACT = 64  # bytes: a text statistic shorter than this is the value itself (writers truncate longer ones)


def _data_footer(root: str, part: str):
    """The footer of data file `part` (relative to `root`), its chunks' types checked against its
    schema before any statistics are read: PyArrow, asked for the statistics of a chunk whose
    footer type differs (one damaged byte), aborts the process (see sources.check_chunk_types)."""
    import pyarrow.parquet as pq

    md = pq.ParquetFile(os.path.join(root, part)).metadata
    try:
        check_chunk_types(md)
    except ValueError as e:
        raise _DamagedPart(f"damaged store: {root}: data file {part}: {e} "
                           f"(see `llm-cost store status {root}`)") from None
    return md


def _constant_columns(md, keys: list[str], measures: list[str]) -> tuple[dict[str, str | None], set[str]]:
    """From the data file's footer statistics (`md`, from _data_footer): the key columns holding one value (or only nulls) in
    the whole file, and the measures that are 0 or null in every row. Grouping by the first and
    summing the second is wasted work (a night's file has one source file, book, dialect...); a
    statistic that does not prove it (missing, or text long enough to be truncated) proves nothing.
    (Only these columns' statistics are read: a timestamp's would import pandas.)"""
    index = {md.schema.column(i).name: i for i in range(md.num_columns)}
    const: dict[str, str | None] = {}
    zero: set[str] = set()
    for name in [*keys, *measures]:
        if name not in index or md.num_row_groups == 0:
            continue
        values = set()
        for g in range(md.num_row_groups):
            rg = md.row_group(g)
            st = rg.column(index[name]).statistics
            if st is None or st.null_count is None:
                values = None
                break
            if st.null_count == rg.num_rows:
                values.add(None)
            elif st.null_count == 0 and st.has_min_max and st.min == st.max and (
                    name in measures or isinstance(st.min, str) and len(st.min.encode()) < STAT_EXACT):
                values.add(st.min)
            else:
                values = None
                break
        if values is None:
            continue
        if name in measures and values <= {None, 0}:
            zero.add(name)
        elif name in keys and len(values) == 1:
            const[name] = values.pop()
    return const, zero


def _sums_fit(md, counts: list[str]) -> bool:
    """Whether the data file's footer statistics (`md`, from _data_footer) prove that no sum of any of `counts` over any of
    its rows can pass INT64_MAX: each row group's largest magnitude times its rows, summed over the
    groups, bounds every cell's sum. A summary then sums in Int64 (in Int128 it cost 0.3 CPU s more
    for a 2.6M-row month); a column without statistics proves nothing (Int128, then checked)."""
    index = {md.schema.column(i).name: i for i in range(md.num_columns)}
    for name in counts:
        if name in (pipeline.ROWS, REPORTED_ROWS):
            continue  # (0 or 1 a row)
        if name not in index:
            return False
        bound = 0
        for g in range(md.num_row_groups):
            rg = md.row_group(g)
            st = rg.column(index[name]).statistics
            if st is None or not st.has_min_max or not isinstance(st.min, int) or not isinstance(st.max, int):
                if st is not None and st.null_count == rg.num_rows:
                    continue  # (only nulls: nothing to sum)
                return False
            bound += max(abs(st.min), abs(st.max)) * rg.num_rows
        if bound > INT64_MAX:
            return False
    return True


WINDOW_ROWS = 256 * 1024  # rows of a data file summarized at once (whole UTC days; a bigger day alone)
# ... for a night's month files, which may be summarized while the night's later months are priced:
# one 2.67M-row month of the 10M bench night summarized alone peaked at 645 MiB in windows of 256K
# rows, 565 in 128K, 503 in 64K, for the same CPU (5.5, 5.2, 5.1 s; load 15).
AHEAD_WINDOW_ROWS = 64 * 1024


def _day_windows(rows: pl.LazyFrame, size: int | None = None) -> list[pl.Expr]:
    """Filters that split a file's rows into windows of whole UTC days of about WINDOW_ROWS rows
    each (the rows of a null timestamp go with the first). Summarizing a merged file of 2.5M rows
    in one aggregation held 1.6 GiB for its cells; a window's cells are a few of them. A file's
    rows are nights appended in time order, so a window's filter reads few of its row groups."""
    day = pl.col("timestamp").dt.truncate(GRAINS["day"])
    sizes = rows.group_by(day.alias("d")).agg(pl.len().alias("n")).filter(pl.col("d").is_not_null()).sort("d")
    spans = sizes.with_columns(((pl.col("n").cum_sum() - pl.col("n")) // (size or WINDOW_ROWS)).alias("w")).group_by(
        "w").agg(pl.col("d").min().alias("lo"), pl.col("d").max().alias("hi")).sort("w").collect(engine="streaming")
    if not spans.height:
        return [pl.lit(True)]
    ts = pl.col("timestamp")
    out = []
    for k, (lo, hi) in enumerate(zip(spans["lo"].to_list(), spans["hi"].to_list(), strict=True)):
        # On the time itself, not its day: a plain range on a column is checked against each row
        # group's statistics, so a window reads its own row groups, not the whole file again
        # (windows of a 2.5M-row month file read it 5 times: 6.7 CPU s, now ~2).
        try:
            inside = (ts >= lo) & (ts < hi + dt.timedelta(days=1))
        except OverflowError:  # (the last day Python's datetime holds: nothing after it)
            inside = ts >= lo
        out.append((ts.is_null() | inside) if k == 0 else inside)
    return out


def _write_summaries(root: str, part: str, sources: list[str] | None = None,
                     constant: dict[str, str | None] | None = None, zero: set[str] | None = None,
                     stop: threading.Event | None = None, window: int | None = None) -> list[str]:
    """Summarize data file `part` (relative to `root`) at every grain; returns the summaries written.
    None is written for a file whose counts could sum past 64 bits, or whose rows a summary would
    hardly shrink (it is read as rows).

    `sources`: the data files `part` merges (compact), each with its summary: the cells are then
    summed from their hour summaries instead of from `part`'s rows. Sums are additive and a cell is
    the same (UTC hour, text columns, cache use) in either, so the summary is the same (tested);
    summing a month's ~100K cells a night costs little next to grouping its millions of rows.

    `constant`: text columns known to hold one value (or only nulls) in the whole file, with it
    (the ingest that wrote the file saw its rows; its footer has no text statistics to say so).
    `zero`: measures known to be 0 or null in every row (its footer has no money statistics).
    `stop`: once set, `_Stopped` is raised before the next window (an ingest that failed).
    `window`: rows a window (WINDOW_ROWS when None)."""
    from . import writers

    path = os.path.join(root, part)
    targets = [_summary_path(root, part, g) for g in GRAINS]
    if any(os.path.lexists(t) and not stat.S_ISREG(os.lstat(t).st_mode) and not os.path.islink(t) for t in targets):
        # Not a file (a FIFO would be written in place, and wait for a reader for ever; a
        # directory is not ours to remove): left alone, the file's rows are read.
        return []
    meta = {SUMMARY_OF: _identity(root, part, os.path.getsize(path))}
    rows = pl.scan_parquet(path, glob=False, hive_partitioning=False)
    schema = rows.collect_schema()
    keys = _cell_keys(schema)
    summed = [*SUMMED, *pipeline.MONEY_COLUMNS, "reported_cost"]
    footer = _data_footer(root, part)
    const, zeros = _constant_columns(footer, keys, summed)
    const.update({k: v for k, v in (constant or {}).items() if k in keys})
    zero = zeros | {c for c in zero or () if c in (*summed, REPORTED_ROWS)}
    vary = [k for k in keys if k not in const]
    measures = tuple(c for c in (*summed, pipeline.ROWS, REPORTED_ROWS) if c not in zero)
    rows = rows.with_columns([pl.lit(None, t).alias(c) for c, t in SCHEMA.items() if c not in schema])
    cell_schema = _cells(rows, vary).collect_schema()
    if sources is not None:
        # The sources' hour cells, in the merged file's columns (a dimension a source lacks is null
        # in its rows, so in its cells), are the rows to sum; they were each summarized already.
        cells = pl.scan_parquet([_summary_path(root, f, "hour") for f in sources], glob=False,
                                hive_partitioning=False, extra_columns="ignore", missing_columns="insert",
                                schema={c: t for c, t in cell_schema.items()})
        cells_of: Callable[[pl.Expr], pl.LazyFrame] = cells.filter
        windows = _day_windows(cells)
    else:
        probe = _cell_sums(_cells(rows.head(PROBE_ROWS), vary), vary, GRAINS["hour"], False, measures)
        n = probe.select(pl.len()).collect().item()
        cells_of = lambda window: _cells(rows.filter(window), vary)  # noqa: E731
        windows = None
    if sources is None and n * SPARSE > PROBE_ROWS:
        # Its first PROBE_ROWS rows already hold more than 1/SPARSE as many hour cells: requests
        # too spread in time or too varied for a summary to be much smaller than the rows (a
        # backfill of months at a few hundred an hour), and summarizing them cost 2x a night's
        # pricing. Its rows are read instead, as fast.
        return []
    counts = [c for c in (*SUMMED, pipeline.ROWS, REPORTED_ROWS) if c in measures]
    wide = not _sums_fit(footer, counts)
    cell = _cells(pl.LazyFrame(schema=SCHEMA), []).collect_schema()
    whole = [*(pl.lit(v, pl.String).alias(k) for k, v in const.items()),
             *(pl.lit(0, cell[c]).alias(c) for c in zero)]

    def overflows(frame: pl.DataFrame) -> bool:
        return bool(frame.height and counts and frame.select(pl.max_horizontal(pl.col(counts).max()) > INT64_MAX).item())

    days: list[pl.DataFrame] = []

    def write_hours(tmp: str) -> None:
        # One window of whole UTC days at a time: its hour and day cells are final (no cell crosses
        # a day). Each window's hour cells are written as they are made, so the writer holds one
        # window's cells, not a file's: holding a 2.6M-row month's 1.1M hour cells peaked at 1 GiB.
        import pyarrow.parquet as pq

        writer = None
        try:
            for days_of in windows if windows is not None else _day_windows(rows, window):
                if stop is not None and stop.is_set():
                    raise _Stopped
                hour = _cell_sums(cells_of(days_of), vary, GRAINS["hour"], wide, measures).collect(engine="streaming")
                if overflows(hour):
                    raise _Overflow
                days.append(_cell_sums(hour.lazy(), vary, GRAINS["day"], wide, measures).collect())
                hour = hour.with_columns(pl.col(counts).cast(pl.Int64), *whole)
                table = hour.to_arrow(compat_level=pl.CompatLevel.newest())  # (string views: no copy)
                if writer is None:
                    # Dictionaries for the text columns only (a cell's sums nearly all differ), and
                    # statistics for the time only, which reports filter cells on: PyArrow's
                    # defaults (both for every column) cost 2.0 of the 3.1 CPU s writing a 2.6M-row
                    # month's 1.1M hour cells, for a file 5% bigger.
                    writer = pq.ParquetWriter(tmp, table.schema.with_metadata(meta), compression="zstd",
                                              use_dictionary=[c for c, t in hour.schema.items() if t == pl.String],
                                              write_statistics=["timestamp"])
                del hour
                writer.write_table(table.cast(writer.schema), row_group_size=SUMMARY_GROUP)
        finally:
            if writer is not None:
                writer.close()

    written = []
    hour_target = _summary_path(root, part, "hour")
    os.makedirs(os.path.dirname(hour_target), exist_ok=True)
    try:
        writers.atomic_write(hour_target, write_hours)
    except _Overflow:
        return []
    written.append(hour_target)
    day = pl.concat(days)
    del days[:]
    if not overflows(day):  # (a day's sums of hours that each fit)
        day = day.with_columns(pl.col(counts).cast(pl.Int64), *whole)
        target = _summary_path(root, part, "day")
        os.makedirs(os.path.dirname(target), exist_ok=True)
        writers.atomic_write(target, lambda tmp: day.write_parquet(tmp, compression="zstd", metadata=meta))
        written.insert(0, target)
    return written


SUMMARY_GROUP = 256 * 1024  # rows per row group of a summary written window by window (Polars' default)


class _Overflow(Exception):  # noqa: N818 - control flow: a file whose sums pass 64 bits gets no summary
    pass


class _Stopped(Exception):  # noqa: N818 - control flow: an ingest that failed stops its summaries
    pass


def _summarize_missing(root: str, table, only: set[str] | None = None,
                       sources: dict[str, list[str]] | None = None) -> int:
    """Write the summaries the table's data files (or those of `only`, relative paths) lack: after a
    commit whose files delta-rs wrote (compact, reprice, a schema change), and for the files of a
    store written before summaries. `sources`: a merged file's source files (see `_merged_from`),
    whose summaries it is summed from. Returns how many files were summarized."""
    done = 0
    for uri in _parts(table, None):
        rel = os.path.relpath(uri, root)
        if (only is None or rel in only) and os.path.isfile(uri) and not _summarized(root, rel, os.path.getsize(uri)):
            merged = (sources or {}).get(rel)
            try:
                done += bool(_write_summaries(root, rel, merged))
                continue
            except _DamagedPart:
                raise  # (not a file to read as rows: Polars reads it without a word of the damage)
            except (pl.exceptions.PolarsError, OSError, AnalyzerError, ValueError):
                if merged is None:
                    continue  # (a file it cannot summarize is read as rows: a report stays right, only slower)
            try:
                done += bool(_write_summaries(root, rel))  # (the sources' summaries failed: from its rows)
            except _DamagedPart:
                raise
            except (pl.exceptions.PolarsError, OSError, AnalyzerError, ValueError):
                pass
    return done


def _merged_from(root: str, before: dict[str, int], after: dict[str, int]) -> dict[str, list[str]]:
    """Which files a compaction merged into each new file (`before`, `after`: each version's data
    files, relative, with their logged row counts), for the new files whose sources all have their
    summaries. Delta's log says which files went and came in a month, not which went where (delta-rs
    packs a month of over ~100 MB into several files): each row keeps the hash of the log file it
    came from, and one log file's rows of a month are in one data file, so a source goes to the one
    new file holding its hashes. Trusted only when each source's hashes are in exactly one new file
    and the sources' row counts add up to each new file's; otherwise the file's rows are read."""
    out = {}
    month = lambda rel: rel.split(os.sep, 1)[0]  # noqa: E731

    def hashes(rel: str) -> set[str]:  # (one dictionary-encoded column: cheap to read)
        return set(pl.scan_parquet(os.path.join(root, rel), glob=False, hive_partitioning=False)
                   .select(pl.col(SHA).unique()).collect()[SHA].to_list())

    new = [f for f in after if f not in before]
    gone = [f for f in before if f not in after]
    for m in sorted({month(f) for f in new}):
        made = [f for f in new if month(f) == m]
        merged = [f for f in gone if month(f) == m]
        if not merged or not all(os.path.isfile(os.path.join(root, f)) for f in merged):
            continue
        if len(made) == 1:
            owners = {made[0]: merged}
        else:
            held = {f: hashes(f) for f in made}
            owners = {f: [] for f in made}
            for src in merged:
                mine = hashes(src)
                into = [f for f in made if held[f] & mine]
                if len(into) != 1:
                    owners = {}
                    break
                owners[into[0]].append(src)
        for f, srcs in owners.items():
            if srcs and sum(before[x] for x in srcs) == after[f] and all(
                    _summarized(root, x, os.path.getsize(os.path.join(root, x))) for x in srcs):
                out[f] = sorted(srcs)
    return out


def _row_counts(root: str, table) -> dict[str, int]:
    """The table's data files (relative) with their logged row counts (-1: not logged)."""
    try:
        adds = pl.DataFrame(table.get_add_actions(flatten=True))
    except Exception as e:  # noqa: BLE001
        raise _damaged(_local(table.table_uri), e) from None
    counts = adds["num_records"].to_list() if "num_records" in adds.columns else [None] * adds.height
    return {os.path.normpath(p): -1 if n is None else int(n) for p, n in zip(adds["path"].to_list(), counts, strict=True)}


EDGE_SHARE = 8  # a report reads the rows of the cells a grain splits when they are at most 1/8 of its cells


def _grain(months: set[str], since: dt.datetime | None, until: dt.datetime | None, tz: str,
           by: list[str]) -> tuple[str, list[dt.datetime]] | None:
    """The summary grain that answers a report, with the cells it cannot answer; None: read the rows.

    A cell (an UTC hour or day of the months read) answers when it lies wholly inside or wholly
    outside the window and wholly in one bucket of each --by time unit in `tz`: then its start
    decides for all its rows. A cell that does not (the hour a window starting at 10:30 splits, the
    18:00 UTC hour an Asia/Kolkata day starts in) is read from the rows. Checked on the cells
    themselves, so any zone, offset and DST rule works. The coarsest grain that splits no cell is
    used, else the finest if few of its cells are split, else the rows."""
    if "block" in by or not months:  # (a block needs the time of each request)
        return None
    units = [k for k in by if k in pipeline.TIME_BUCKETS]
    found = None
    for grain, every in GRAINS.items():
        try:
            cells = pl.concat([pl.select(pl.datetime_range(
                dt.datetime(int(m[:4]), int(m[5:]), 1, tzinfo=dt.UTC),
                pl.lit(dt.datetime(int(m[:4]), int(m[5:]), 1, tzinfo=dt.UTC)).dt.offset_by("1mo"),
                every, closed="left", time_unit="us", time_zone="UTC").alias("timestamp")) for m in sorted(months)])
            end = pl.col("timestamp").dt.offset_by(every) - dt.timedelta(microseconds=1)
            split = pl.any_horizontal(_split_by_window(since, until, end),
                                      *[tagging.time_bucket(u, tz) != tagging.time_bucket(u, tz, end) for u in units])
            edges = cells.filter(split)["timestamp"].to_list()
        except (pl.exceptions.PolarsError, OverflowError, ValueError):
            return None
        if not edges:
            return grain, []
        found = (grain, edges, cells.height)
    grain, edges, total = found
    return (grain, edges) if len(edges) * EDGE_SHARE <= total else None


def _merged(spans: list[tuple[dt.datetime, dt.datetime]]) -> list[tuple[dt.datetime, dt.datetime]]:
    out: list[tuple[dt.datetime, dt.datetime]] = []
    for lo, hi in sorted(spans):
        if out and lo <= out[-1][1]:
            out[-1] = (out[-1][0], max(hi, out[-1][1]))
        else:
            out.append((lo, hi))
    return out


def _parts_of_summaries(root: str, summaries: list[str], grain: str) -> list[str]:
    top = os.path.join(root, SUMMARY, grain)
    return [os.path.join(root, os.path.relpath(p, top)) for p in summaries]


def _split_by_window(since: dt.datetime | None, until: dt.datetime | None, end: pl.Expr) -> pl.Expr:
    """Cells [timestamp, end] that the window [since, until) cuts: one side in, the other out."""
    out = pl.lit(False)
    for bound in (since, until):
        if bound is not None:
            out = out | ((pl.col("timestamp") < bound) & (end >= bound))
    return out


def _report_cells(root: str, table, records: dict, months: set[str],
                  grain: tuple[str, list[dt.datetime]] | None, whole: set[str] = frozenset()) -> pl.LazyFrame:
    """The rows a report sums, in a summary's shape: the rollup of each month of `whole` (months no
    bucket or window splits, see `_whole_months`) whose files this version all holds; the summary
    of each other data file of these months at the grain `_grain` chose, less its split cells,
    whose rows are read instead; and the rows of the files without a summary (all of them when
    `grain` is None)."""
    grain, edges = grain if grain is not None else (None, [])
    dims = _dimensions(records)
    schema = {**SCHEMA, **{d: pl.String() for d in dims}}
    keys = _cell_keys(schema)
    files = _parts(table, months)
    missing = [f for f in files if not os.path.isfile(f)]
    if missing:
        raise StoreError(f"damaged store: {root}: data file {os.path.relpath(missing[0], root)} is missing "
                         f"(see `llm-cost store status {root}`)")
    logged: dict[str, int] = {}
    if (grain or whole) and files:  # a summary stands for its file: the file must still be the one the log added
        try:
            adds = pl.DataFrame(table.get_add_actions(flatten=True)).select("path", "size_bytes")
        except Exception as e:  # noqa: BLE001
            raise _damaged(root, e) from None
        logged = dict(zip(adds["path"].to_list(), adds["size_bytes"].to_list()))
        for f in files:
            rel = os.path.relpath(f, root)
            if rel in logged and os.path.getsize(f) != logged[rel]:
                raise StoreError(f"damaged store: {root}: data file {rel} is {os.path.getsize(f):,} bytes, the log "
                                 f"says {logged[rel]:,} (see `llm-cost store status {root}`)")
    rolled, covered = [], set()
    for m in sorted(whole & months):
        have = _rollup_of(root, m)
        if have is not None and all(logged.get(rel) == size for rel, size in have[1].items()):
            rolled.append(have[0])
            covered |= {os.path.join(root, rel) for rel in have[1]}
    summaries, plain = [], []
    for f in files:
        if f in covered:
            continue
        rel = os.path.relpath(f, root)
        s = _summary_of(root, rel, grain, logged.get(rel, os.path.getsize(f))) if grain else None
        if s:
            summaries.append(s)
        else:
            plain.append(f)
    frames = []
    cell_schema = _cells(pl.LazyFrame(schema=schema), keys).collect_schema()

    def rows(paths: list[str]) -> pl.LazyFrame:
        return pl.scan_parquet(paths, schema=schema, missing_columns="insert", extra_columns="ignore", glob=False,
                               hive_partitioning=False)

    if summaries:
        summed = pl.scan_parquet(summaries, schema=cell_schema, missing_columns="insert", extra_columns="ignore",
                                 glob=False, hive_partitioning=False)
        if edges:  # the split cells: from the rows of these files (a time filter: row groups are skipped)
            step = dt.timedelta(days=1) if grain == "day" else dt.timedelta(hours=1)
            spans = _merged([(t, t + step) for t in edges])
            cut = pl.Series(edges, dtype=cell_schema["timestamp"])
            summed = summed.filter(~pl.col("timestamp").is_in(cut.implode()))
            # A few spans as ranges (Parquet statistics skip the row groups outside them); many as
            # a lookup of each row's cell (one comparison a row, not one a span).
            near = _in_spans(spans) if len(spans) <= 32 else pl.col("timestamp").dt.truncate(GRAINS[grain]).is_in(cut.implode())
            frames.append(_cells(rows(_parts_of_summaries(root, summaries, grain)).filter(near), keys))
        frames.append(summed)
    if plain:
        frames.append(_cells(rows(plain), keys))
    if rolled:
        frames.append(pl.scan_parquet(rolled, schema=cell_schema, missing_columns="insert", extra_columns="ignore",
                                      glob=False, hive_partitioning=False))
    return pl.concat(frames, how="vertical") if frames else pl.LazyFrame(schema=cell_schema)


# ----------------------------------------------------------------------------------------------
# Month rollups: one summary of each month's files together
#
# A report of all history sums the day cells of every data file: ~20M cells for 1B requests (~15
# CPU s by the measured rate), where one month's cells summed over all its files are ~30x fewer. A
# rollup is that: for a month partition, the exact sums (integers, Decimals) of its data files' day
# summaries by UTC month and every text column, with cache use. It names in its Parquet metadata the
# data files it sums and their sizes; data files are never rewritten (a new one has a new name), so
# a rollup is right for any version holding all the files it names, whenever it was written. A
# report uses it for a month when that version holds them all (the month's other files are read
# from their own summaries or rows) and when no --by time bucket in --tz, nor --since/--until,
# splits the UTC month (then its start decides for all its rows); otherwise the month is read as
# before (day or hour cells, or rows). Ingest, compact and reprice write it after their commits
# (from the old rollup plus the new files' day summaries when the old one's files are all still
# there, else from every file's day summary), atomically (a temporary file renamed over it). A run
# killed before leaves the old rollup: the files it lacks are read from their own summaries, and a
# rollup naming a file no longer in the version (compacted, replaced, repriced) is not read at all.

ROLLUP = os.path.join(SUMMARY, "month")
ROLLUP_NAME = "rollup.parquet"
ROLLUP_OF = "llm_cost.rollup_of"
# Not kept in a rollup: a column with one value a nightly file (its path) would keep each night's
# cells apart, and a month's rollup would hold as many cells as its files' summaries together.
# A report by it reads the files' summaries.
ROLLUP_DROPS = ("source_file",)


def _rollup_path(root: str, month: str) -> str:
    return os.path.join(root, ROLLUP, f"{MONTH}={month}", ROLLUP_NAME)


def _rollup_of(root: str, month: str) -> tuple[str, dict[str, int]] | None:
    """The rollup of `month` and the data files (relative, with their sizes) it sums; None when
    there is none or it is not a rollup of ours (not a regular file, metadata missing or wrong)."""
    path = _rollup_path(root, month)
    try:
        if not stat.S_ISREG(os.lstat(path).st_mode):
            return None
        said = json.loads(pl.read_parquet_metadata(path).get(ROLLUP_OF) or "null")
    except Exception:  # noqa: BLE001 - unreadable in any way: no rollup (the month is read as before)
        return None
    if not isinstance(said, dict) or said.get("month") != month or not isinstance(said.get("parts"), dict):
        return None
    parts = said["parts"]
    inside = f"{MONTH}={month}{os.sep}"
    if not parts or not all(isinstance(k, str) and k.startswith(inside) and os.sep not in k[len(inside):]
                            and type(v) is int for k, v in parts.items()):
        return None
    return path, parts


def _file_sizes(root: str, table) -> dict[str, dict[str, int]]:
    """The table's data files by month: relative path -> logged size."""
    try:
        adds = pl.DataFrame(table.get_add_actions(flatten=True)).select("path", "size_bytes")
    except Exception as e:  # noqa: BLE001
        raise _damaged(_local(table.table_uri), e) from None
    out: dict[str, dict[str, int]] = {}
    for p, size in zip(adds["path"].to_list(), adds["size_bytes"].to_list(), strict=True):
        rel = os.path.normpath(p)
        out.setdefault(rel.split(os.sep, 1)[0].partition("=")[2], {})[rel] = int(size)
    return out


def _write_rollups(root: str, table) -> int:
    """Bring each month's rollup up to the table's version (after a commit); returns how many were
    written. A month whose rollup cannot be written keeps the old one (right for the files it
    names) or none: reports then read the month's day summaries, as fast as before it."""
    if table is None:
        return 0
    done = 0
    for month, files in sorted(_file_sizes(root, table).items()):
        if MONTH_VALUE.fullmatch(month):
            with contextlib.suppress(pl.exceptions.PolarsError, OSError, AnalyzerError, ValueError):
                done += _write_rollup(root, month, files)
    return done


def _write_rollup(root: str, month: str, files: dict[str, int]) -> bool:
    from . import writers

    target = _rollup_path(root, month)
    if os.path.lexists(target) and not stat.S_ISREG(os.lstat(target).st_mode):
        return False  # not a file of ours (a FIFO would be written in place): left alone, never read
    have = _rollup_of(root, month)
    if have is not None and have[1] == files:
        return False  # (the common case, checked first: a night touches one or two of a history's months)
    summarized = {rel: size for rel, size in files.items()
                  if os.path.isfile(os.path.join(root, rel)) and _summary_of(root, rel, "day", size)}
    if have is not None and have[1] == summarized:
        return False
    if not summarized:
        if have is not None:
            os.unlink(target)  # (it names files gone: never read again; removed to say so)
        return False
    base = have if have is not None and all(summarized.get(k) == v for k, v in have[1].items()) else None
    sources = [*([base[0]] if base else []),
               *(_summary_path(root, rel, "day") for rel in sorted(summarized) if base is None or rel not in base[1])]
    schema: dict[str, pl.DataType] = {}
    for src in sources:  # (files differ in their dimensions: a column a file lacks is null in its cells)
        for name, dtype in pl.read_parquet_schema(src).items():
            schema.setdefault(name, dtype)
    schema = {c: t for c, t in schema.items() if c not in ROLLUP_DROPS}
    keys = [c for c, t in schema.items() if t == pl.String]
    counts = [c for c in (*SUMMED, pipeline.ROWS, REPORTED_ROWS) if c in schema]
    money = [c for c in schema if c not in keys and c not in counts and c != "timestamp"]
    cells = pl.scan_parquet(sources, schema=schema, missing_columns="insert", extra_columns="ignore", glob=False,
                            hive_partitioning=False).group_by(pl.col("timestamp").dt.truncate("1mo"), *keys).agg(
        *[pl.col(c).cast(pl.Int128).sum() for c in counts], *[pl.col(c).sum() for c in money]).collect(engine="streaming")
    if cells.height and counts and cells.select(pl.max_horizontal(pl.col(counts).max()) > INT64_MAX).item():
        if have is not None:
            os.unlink(target)  # a month whose counts pass 64 bits: read from its files' summaries
        return False
    cells = cells.with_columns(pl.col(counts).cast(pl.Int64))
    meta = {ROLLUP_OF: json.dumps({"month": month, "parts": dict(sorted(summarized.items()))}, sort_keys=True)}
    os.makedirs(os.path.dirname(target), exist_ok=True)
    writers.atomic_write(target, lambda tmp: cells.write_parquet(tmp, compression="zstd", metadata=meta))
    return True


def _whole_months(months: set[str], since: dt.datetime | None, until: dt.datetime | None, tz: str,
                  by: list[str]) -> set[str]:
    """The months a rollup answers: those whose UTC month lies wholly inside or outside the window
    and in one bucket of each --by time unit in `tz` (`--by month` in UTC or London's winter, `--by
    year`, any --by without time; not `--by day`, a zone whose month starts off UTC midnight, nor
    a window cutting the month), and only for a question by columns a rollup keeps."""
    if "block" in by or not months or any(k in ROLLUP_DROPS for k in by):
        return set()
    units = [k for k in by if k in pipeline.TIME_BUCKETS]
    try:
        cells = pl.DataFrame({"timestamp": [dt.datetime(int(m[:4]), int(m[5:]), 1, tzinfo=dt.UTC) for m in sorted(months)]},
                             schema={"timestamp": pl.Datetime("us", "UTC")})
        end = pl.col("timestamp").dt.offset_by("1mo") - dt.timedelta(microseconds=1)
        split = pl.any_horizontal(_split_by_window(since, until, end),
                                  *[tagging.time_bucket(u, tz) != tagging.time_bucket(u, tz, end) for u in units])
        return set(cells.filter(~split)["timestamp"].dt.strftime("%Y-%m").to_list())
    except (pl.exceptions.PolarsError, OverflowError, ValueError):
        return set()


def report(root: str, by: list[str] | tuple[str, ...] = ("model",), opts: pipeline.Options | None = None,
           version: int | None = None, as_of: str | None = None) -> pipeline.Report:
    """A report from the store (at its last version, or at `version` / `as_of`), in the shape
    `pipeline.analyze` gives for logs. Costs are those stored: priced at ingest, or by `reprice`.

    The accounting covers every file ingested: rows_read = priced + unpriced (stored rows in the
    window) + duplicates + quarantined (at ingest) + filtered_out (stored rows outside the window)."""
    opts = opts or pipeline.Options()
    if opts.prices:
        raise OptionError("--prices with --store: stored rows keep the costs they were priced with; "
                          "recompute them with `llm-cost reprice --store DIR --prices FILE`")
    pipeline.check_tz(opts.tz)
    root = _resolved(root)
    table = _table(root, _version(version, as_of))
    if (version is not None or as_of is not None) and any(not os.path.isfile(u)
                                                           for u in _parts(table, None)):
        raise _not_kept(root, table.version())
    records = _files(root, table)
    by = pipeline.resolve_by(list(by), _dimensions(records))  # `--by team` for a `Team` column, as from logs
    pipeline.check_by(by, _dimensions(records))
    keys = [k for k in by if k != "component"]
    since, until = pipeline.time_window(opts)
    months = _months(_months_of(table), since, until)
    extra = [tagging.time_bucket(k, opts.tz) for k in keys if k in pipeline.TIME_BUCKETS]
    if "discount_type" in by:
        keys.append(CACHE_USE)
    unpriced = pl.col("unpriced_reason").is_not_null()
    # Sums of exact Decimal costs: the stored rows carry their costs, so no rate is looked up here.
    # Counts are summed exactly, or the report refuses (see pipeline.exact_sums). What is summed
    # are the summaries of the data files where the question allows (see _grain), else the rows.
    group = [*keys, "_out", "unpriced_reason", "_unpriced_raw", "price_book"]
    try:
        cells = _report_cells(root, table, records, months, _grain(months, since, until, opts.tz, by),
                              _whole_months(months, since, until, opts.tz, by))
        agg = pipeline.exact_sums(cells.with_columns(
            *extra, _outside(since, until).alias("_out"),
            pl.when(unpriced).then(_unpriced_name()).alias("_unpriced_raw"),
        ), group, ["requests", *COUNT_COLUMNS], [
            *[pl.col(c).sum() for c in (pipeline.ROWS, "reported_cost", *pipeline.MONEY_COLUMNS, REPORTED_ROWS)],
        ])
    except (pl.exceptions.PolarsError, OSError) as e:
        raise _damaged(root, e) from None
    # A group of nothing (no record, no request, no token, nothing reported: a response's steps that
    # used no token, whose model a report never resolves) is no row, as from logs (pipeline._regroup;
    # attack28: `report --store --by model` printed a blank model line of zeros).
    agg = agg.filter(pl.any_horizontal([pl.col(m).fill_null(0) != 0 for m in (
        pipeline.ROWS, "requests", *COUNT_COLUMNS, REPORTED_ROWS)]))
    pipeline.check_totals(agg.filter(~pl.col("_out") & pl.col("unpriced_reason").is_null())
                          .with_columns(pl.lit(pipeline.OK, pl.UInt8).alias(pipeline.STATUS)))
    # A group of unpriced rows sums to 0 (sum of nulls): unpriced costs stay null, as from logs.
    agg = agg.with_columns([pl.when(pl.col("unpriced_reason").is_null()).then(pl.col(c)).cast(MONEY).alias(c)
                            for c in pipeline.MONEY_COLUMNS])
    inside = agg.filter(~pl.col("_out"))
    priced = inside.filter(pl.col("unpriced_reason").is_null())
    acc = _stored_accounting(root, records)
    acc.priced = int(priced[pipeline.ROWS].sum() or 0)
    missing = inside.filter(pl.col("unpriced_reason").is_not_null()).group_by("_unpriced_raw").agg(
        pl.col(pipeline.ROWS).sum(), pl.col("unpriced_reason").unique().sort().str.join("; "),
        # (what a source reported for them, shown on the model's unpriced line as from the logs:
        # pipeline._price_groups; None when no row reported one)
        pl.when(pl.col(REPORTED_ROWS).sum() > 0).then(pl.col("reported_cost").sum()).alias("reported_cost"),
    ).sort([pipeline.ROWS, "_unpriced_raw"], descending=[True, False])
    acc.unpriced = int(missing[pipeline.ROWS].sum() or 0)
    acc.unpriced_models = dict(zip(missing["_unpriced_raw"].to_list(), missing[pipeline.ROWS].to_list()))
    acc.unpriced_reported = {raw: said for raw, said in zip(missing["_unpriced_raw"].to_list(),
                                                            missing["reported_cost"].to_list()) if said is not None}
    said = {raw: why for e in records.values() for raw, why in e["accounting"].get("unpriced_reasons", {}).items()}
    acc.unpriced_reasons = {raw: said.get(raw, why)  # as said at ingest, with its "did you mean"
                            for raw, why in zip(missing["_unpriced_raw"].to_list(), missing["unpriced_reason"].to_list())}
    # Every stored record is priced or unpriced when it is ingested, so the records outside the window
    # (in months not even opened) are what the files' accounting leaves over.
    stored = acc.rows_read - acc.duplicates - acc.repeats - acc.not_billable - acc.quarantined
    acc.filtered_out = stored - acc.priced - acc.unpriced
    if "discount_type" in by:
        priced = priced.with_columns(aggregate.with_cache_use())
    # --by block: the windows' starts (for the detail too). Every stored request in the window opens
    # windows, priced or not, as in a report of the logs (pipeline.conclude).
    priced = aggregate.with_blocks(priced, opts.tz, inside["block"] if "block" in inside.columns else None)
    rows, totals = aggregate.summarize(priced, by, opts.tz)
    versions = sorted(set(inside["price_book"].drop_nulls().to_list()))
    overlays = {o for e in records.values() for o in e.get("overlays", [])}
    if set(versions) - {e.get("price_book") for e in records.values()}:  # re-priced rows: their overlays
        overlays |= {o for c in _repricings(table) for o in json.loads(c.get("llm_cost.overlays", "[]"))}
    overlays = sorted(overlays)
    book = pricebook.PriceBook({}, {}, [f"store {root}"], overlays, ", ".join(versions) or "none")
    at = f" at version {table.version()}" if version is not None or as_of is not None else ""
    notes = [f"costs as stored in {root}{at} (priced at ingest or by `llm-cost reprice`; not re-priced by this report)"]
    files = {e["path"]: e["dialect"] for e in records.values() if e.get("dialect")}
    return pipeline.Report(by, rows, totals, acc, book, opts.tz, dict(sorted(files.items())), notes, priced)


def _repricings(table) -> list[dict]:
    return [c for c in _history(table) if c.get(K_COMMAND) == "reprice"]


def _stored_accounting(root: str, records: dict[str, dict]) -> pipeline.Accounting:
    acc = pipeline.Accounting()
    for e in records.values():
        a = e["accounting"]
        _add(acc, {k: a.get(k, 0) for k in ("rows_read", "duplicates", "repeats", "not_billable", "quarantined")}
             | {"not_billable_reasons": a.get("not_billable_reasons", {})})
    if acc.quarantined:
        acc.quarantine_file = os.path.join(root, QUARANTINE)
    return acc


def _check_part(path: str, size: int, rows: int | None, by: str = "the log") -> str | None:
    """Why a data file the log (or another record: `by`) names is not what it says, or None."""
    import pyarrow.parquet as pq

    if not os.path.isfile(path):
        return "missing"
    if os.path.islink(path):
        return "a symlink"
    if os.path.getsize(path) != size:
        return f"{os.path.getsize(path):,} bytes, {by} says {size:,}"
    try:
        md = pq.ParquetFile(path).metadata
        n = md.num_rows
    except Exception as e:  # noqa: BLE001 - pyarrow: any unreadable footer
        return f"unreadable ({(str(e).splitlines() or [''])[0]})"
    try:  # (a chunk of another type than its schema's: Polars reads it without a word, a summary aborted)
        check_chunk_types(md)
    except ValueError as e:
        return str(e)
    return None if rows is None or n == rows else f"{counted(n, 'row')}, {by} says {rows:,}"


def status(root: str) -> dict:
    """What the store holds, from the Delta log, and whether every data file it names is there and
    readable. Read-only."""
    root = _resolved(root)
    table = _table(root)
    records = _files(root, table)
    try:
        adds = pl.DataFrame(table.get_add_actions(flatten=True))
    except Exception as e:  # noqa: BLE001
        raise _damaged(root, e) from None
    part = f"partition.{MONTH}"
    problems = {}
    for r in adds.select("path", "size_bytes", "num_records", part).to_dicts():  # one row per data file
        why = _check_part(os.path.join(root, r["path"]), r["size_bytes"], r["num_records"])
        if not isinstance(r[part], str) or not MONTH_VALUE.fullmatch(r[part]):
            why = f"partition {MONTH}={r[part]!r} in the log, not a month (YYYY-MM)"
        if why:
            problems[r["path"]] = why
    # The kept copies files records name (copies that come back when a file is replaced): one gone
    # or unreadable would leave its requests in no file at that replace, still counted duplicates.
    # A file whose record noted its rows and bytes is checked against them too (one emptied by hand
    # left its requests in no file at a replace, in silence); see _kept_damage.
    kept = {}
    for rel, r in sorted({f: e for e in records.values() for f in _shadow_files(root, e)}.items()):
        path = os.path.join(root, rel)
        why = _kept_damage(root, rel, r)
        if why:
            kept[rel] = f"{why} (a file of kept copies a record names)"
            continue
        try:
            lacks = [c for c in (SHA, "request_id", "timestamp") if c not in pl.read_parquet_schema(path)]
        except (pl.exceptions.PolarsError, OSError) as e:
            kept[rel] = f"unreadable kept copies: {(str(e).strip().splitlines() or [type(e).__name__])[0]}"
            continue
        if lacks:
            kept[rel] = f"not kept copies: no column {lacks[0]}"
    per_month = adds.group_by(part).agg(pl.col("num_records").sum())  # one row a month (a null month: damage)
    months = dict(sorted(zip(per_month[part].to_list(), per_month["num_records"].to_list(), strict=True),
                         key=lambda m: str(m[0]))) if adds.height else {}
    stored = books = None
    if not problems and adds.height:
        counts = scan(root, None, table, records).group_by("price_book").agg(
            pl.len().alias("rows"), _is_record(None).sum().alias("records")).collect()
        books = dict(sorted(zip(counts["price_book"].to_list(), counts["rows"].to_list()), key=lambda x: str(x[0])))
        stored = int(counts["records"].sum())
    acc = _stored_accounting(root, records)
    stats = [c for c in adds.columns if c in ("min.timestamp", "max.timestamp")]
    first = adds["min.timestamp"].min() if "min.timestamp" in stats and adds.height else None
    last = adds["max.timestamp"].max() if "max.timestamp" in stats and adds.height else None
    history = _history(table)
    balanced = stored is not None and acc.rows_read == (stored + acc.duplicates + acc.repeats + acc.not_billable
                                                         + acc.quarantined)
    return {
        "store": root,
        "version": table.version(),
        "files": len(records),
        "rows_stored": stored if stored is not None else int(adds["num_records"].sum() or 0) if adds.height else 0,
        "rows_read": acc.rows_read,
        "duplicates": acc.duplicates,
        "repeats": acc.repeats,
        "not_billable": acc.not_billable,
        "quarantined": acc.quarantined,
        "first": first.isoformat() if first is not None else None,
        "last": last.isoformat() if last is not None else None,
        "months": {k: int(v) for k, v in months.items()},
        "price_books": books or {},
        "last_ingest": max((e["ingested_at"] for e in records.values()), default=None),
        "repricings": sum(c.get(K_COMMAND) == "reprice" for c in history),
        "data_files": adds.height,
        "bytes": int(adds["size_bytes"].sum() or 0) if adds.height else 0,
        "damaged_parts": {**problems, **kept},
        "missing_commits": _missing_commits(root, table.version()),
        # Data files without a summary (a store older than summaries, a run killed between the two
        # writes): reports read their rows, which is slower, never wrong. `store compact` writes them.
        "unsummarized": sum(not _summarized(root, p, n) for p, n in (
            zip(adds["path"].to_list(), adds["size_bytes"].to_list()) if adds.height else [])),
        "uncommitted": _uncommitted(root, _ever_named(table) | (set(adds["path"].to_list()) if adds.height else set())),
        "consistent": not problems and not kept and (balanced or not adds.height and acc.rows_read == acc.duplicates
                                        + acc.repeats + acc.not_billable + acc.quarantined),
    }


def _missing_commits(root: str, version: int) -> list[int]:
    """Versions from the last checkpoint up to `version` whose commit file is not in the log. The
    checkpoint holds the table's state, so the table still opens (and reports) whole; but the
    commit's own record (what made it, the file it ingested) is gone from `store history`, and a
    log losing files is worth knowing of."""
    log = os.path.join(root, LOG)
    names = set(os.listdir(log))
    checkpoints = [int(n[:20]) for n in names if re.fullmatch(r"\d{20}\.checkpoint(\.\d+\.\d+)?\.parquet", n)]
    start = max((v for v in checkpoints if v <= version), default=0)
    return [v for v in range(start, version + 1) if f"{v:020d}.json" not in names]


def _uncommitted(root: str, named: set[str]) -> list[str]:
    """Data files in the month directories that no version of the log names: written by a run
    killed before its commit. Readers never see them; `store compact` removes them."""
    found = []
    for month in sorted(os.listdir(root)):
        d = os.path.join(root, month)
        if month.startswith(MONTH + "=") and os.path.isdir(d) and not os.path.islink(d):
            for name in sorted(os.listdir(d)):
                rel = f"{month}/{name}"
                if PART_NAME.fullmatch(name) and rel not in named:
                    found.append(rel)
    # A quarantine file is written to a temporary name and renamed (writers.atomic_write): a run
    # killed mid-write leaves that name, which is ours by its pattern and place.
    q = os.path.join(root, QUARANTINE)
    if os.path.isdir(q) and not os.path.islink(q):
        found += [os.path.join(QUARANTINE, e.name) for e in sorted(os.scandir(q), key=lambda e: e.name)
                  if INTERRUPTED_WRITE.fullmatch(e.name) and e.is_file(follow_symlinks=False)]
    return found


# ----------------------------------------------------------------------------------------------
# History, compaction


def history(root: str) -> list[dict]:
    """Every version of the rows table, newest first: when, what command, book, rows added/removed."""
    root = _resolved(root)
    table = _table(root)
    out = []
    for c in _history(table):
        metrics = c.get("operationMetrics") or {}
        entry = json.loads(c[K_FILE]) if K_FILE in c else {}
        out.append({
            "version": c["version"],
            "time": dt.datetime.fromtimestamp(c["timestamp"] / 1000, dt.UTC).isoformat(timespec="seconds"),
            "command": c.get(K_COMMAND) or c.get("operation", "").lower(),
            "operation": c.get("operation"),
            "price_book": c.get(K_BOOK),
            "file": entry.get("path"),
            # (a commit of our own add actions has no metrics, but says its rows in its metadata)
            "rows_added": metrics.get("num_added_rows", metrics.get("num_copied_rows",
                                      int(c[K_ROWS]) if c.get(K_ROWS, "").isdigit() else None)),
            "rows_removed": metrics.get("num_deleted_rows"),
            "files_added": metrics.get("num_added_files", metrics.get("numFilesAdded")),
            "files_removed": metrics.get("num_removed_files", metrics.get("numFilesRemoved")),
        })
    return out


@dataclass
class CompactResult:
    version_before: int
    version_after: int
    files_before: int
    files_after: int
    vacuumed: list[str]
    uncommitted_removed: list[str]
    kept_removed: list[str] = dataclasses.field(default_factory=list)  # DISPLACED files no version of the retention names


COMPACT_TARGET: int | None = None  # bytes of a merged file (None: delta-rs' default, ~100 MB); tests set it small


def compact(root: str, retention_days: int = RETENTION_DAYS, wait: float = DEFAULT_WAIT,
            warn: Callable[[str], None] = lambda m: None) -> CompactResult:
    """Merge each month's small data files into few large ones (Delta optimize: one commit, so a
    crash leaves the version before), then vacuum: delete data files that no version of the last
    `retention_days` days needs (time travel stays possible that far back), and data files of runs
    killed before their commit. Only files named like the ones delta-rs writes, inside a month
    directory of this table, are ever deleted."""
    _check_wait(wait)
    root = _resolved(root)
    if retention_days < 0:
        raise OptionError("--retention-days: a number of days, 0 or more")
    with locked(root, "compact", wait, warn):
        table = _table(root)
        _months_of(table)  # a log with partitions not of our making: damage, nothing is rewritten
        before = table.version()
        files_before = len(_parts(table, None))
        counts_before = _row_counts(root, table)
        try:
            table.optimize.compact(commit_properties=_commit("compact"), writer_properties=_writer(ROW_GROUP),
                                   **({"target_size": COMPACT_TARGET} if COMPACT_TARGET else {}))
            table = _checkpoint(_table(root))
            # Summed from the merged files' summaries while those files are still there (the vacuum
            # below may delete them): recomputing a merged month's summary from its rows doubled
            # the cost of a compaction (75 -> 150 CPU s, 0.5 -> 1.8 GiB, 20M requests).
            _summarize_missing(root, table, None, _merged_from(root, counts_before, _row_counts(root, table)))
            candidates = table.vacuum(retention_hours=retention_days * 24, dry_run=True,
                                      enforce_retention_duration=False, full=False)
        except _DamagedPart:
            raise  # (its own line names the file)
        except Exception as e:  # noqa: BLE001
            raise StoreError(f"{root}: cannot compact: {(str(e).strip().splitlines() or [''])[0]}") from None
        ours = [c for c in candidates if _is_our_part(root, c)]
        for rel in ours:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(os.path.join(root, rel))
        adds = {os.path.relpath(u, root) for u in _parts(table, None)}
        orphans = _uncommitted(root, _ever_named(table) | adds)
        for rel in orphans:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(os.path.join(root, rel))
        records = _files(root, table)
        _sync_files(root, table, records)
        named = _named_since(root, table, records, retention_days, warn)
        kept_removed = _unnamed_displaced(root, named) if named is not None else []
        _summarize_missing(root, table)  # the merged files' (and those of a store older than summaries)
        _write_rollups(root, table)  # (of the merged files: the old rollups name files gone)
        _orphan_summaries(root)
        with contextlib.suppress(Exception):  # the files table's past versions: kept as long (time travel)
            files = _delta().DeltaTable(os.path.join(root, FILES))
            for rel in files.vacuum(retention_hours=retention_days * 24, dry_run=True, enforce_retention_duration=False,
                                    full=False):
                if PART_NAME.fullmatch(os.path.basename(rel)) and os.sep not in rel:
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(os.path.join(root, FILES, rel))
        return CompactResult(before, table.version(), files_before, len(_parts(table, None)), sorted(ours), orphans,
                             kept_removed)


def _named_since(root: str, table, records: dict[str, dict], retention_days: int,
                 warn: Callable[[str], None]) -> set[str] | None:
    """The DISPLACED files a record of any version of the last `retention_days` days names, as
    Delta's vacuum keeps the data files those versions need: the records of the version that stood
    at the cutoff (the last one committed before it, or the oldest the log holds), and the files
    each later commit names (an ingest's record, a reprice's K_KEPT), and the last version's
    `records`. `store repair` back past a reprice or a replace, or `report --version`, then finds
    the kept files of the version it goes back to. The log's commit files are read newest first,
    down to the cutoff (their first line: the commit info). None, with a warning, when the records
    of the version at the cutoff cannot be read: no kept file is removed then."""
    named = {f for r in records.values() for f in _shadow_files(root, r)}
    cutoff = (time.time() - retention_days * 86400) * 1000
    start = None
    for commit in _commits(table, range(table.version(), -1, -1)):
        start = commit["version"]
        if commit.get("timestamp", 0) < cutoff:  # (the version standing at the cutoff: its records below)
            break
        if K_KEPT in commit:
            with contextlib.suppress(ValueError, TypeError, AttributeError):
                named.update(f for fields in json.loads(commit[K_KEPT]).values()
                             for f in _shadow_files(root, fields))
        if K_FILE in commit:
            with contextlib.suppress(ValueError, TypeError):
                named.update(_shadow_files(root, json.loads(commit[K_FILE])))
    if start is not None and start < table.version():
        try:
            named.update(f for r in _files(root, _table(root, start)).values() for f in _shadow_files(root, r))
        except StoreError as e:  # (which kept files it needs is unknown: none is removed)
            warn(f"kept copies not removed: the records of version {start} cannot be read ({e})")
            return None
    return named


def _unnamed_displaced(root: str, named: set[str]) -> list[str]:
    """Remove the DISPLACED files not in `named` (what a record of a kept version names, see
    _named_since: their night's file was replaced since, and its copies brought back or carried
    into the new record's file, or a reprice wrote them anew, before the retention; or a run killed
    before its commit wrote them); returns them. Only files named as ours, in that directory, are
    ever deleted."""
    top = os.path.join(root, DISPLACED)
    if not os.path.isdir(top) or os.path.islink(top):
        return []
    removed = []
    for e in sorted(os.scandir(top), key=lambda e: e.name):
        rel = os.path.join(DISPLACED, e.name)
        if DISPLACED_NAME.fullmatch(rel) and rel not in named and e.is_file(follow_symlinks=False):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(e.path)
            removed.append(rel)
    return removed


def _orphan_summaries(root: str) -> list[str]:
    """Remove the summaries whose data file is gone (vacuumed, or never committed and removed), and
    summaries a killed run left half-written; returns them. Only files named as ours, in month
    directories of the summary directory, are ever deleted."""
    removed = []
    for grain in (*GRAINS, os.path.basename(ROLLUP)):  # (a rollup's directory: only interrupted writes)
        top = os.path.join(root, SUMMARY, grain)
        if not os.path.isdir(top) or os.path.islink(top):
            continue
        for month in sorted(os.listdir(top)):
            d = os.path.join(top, month)
            if not re.fullmatch(re.escape(MONTH) + r"=\d{4}-\d{2}", month) or os.path.islink(d) or not os.path.isdir(d):
                continue
            for e in sorted(os.scandir(d), key=lambda e: e.name):
                rel = os.path.relpath(e.path, root)
                gone = PART_NAME.fullmatch(e.name) and not os.path.lexists(os.path.join(root, month, e.name))
                if (gone or INTERRUPTED_WRITE.fullmatch(e.name)) and e.is_file(follow_symlinks=False):
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(e.path)
                    removed.append(rel)
    return removed


def _is_our_part(root: str, rel: str) -> bool:
    month, _, name = rel.partition("/")
    path = os.path.join(root, rel)
    return (re.fullmatch(re.escape(MONTH) + r"=\d{4}-\d{2}", month) is not None and PART_NAME.fullmatch(name) is not None
            and not os.path.islink(path) and not os.path.islink(os.path.join(root, month)))


def _ever_named(table) -> set[str]:
    """Data files any commit still in the log added or removed (time travel may need them)."""
    named = set()
    log = os.path.join(_local(table.table_uri), LOG)
    for name in os.listdir(log):
        if name.endswith(".json") and name[:20].isdigit():
            with open(os.path.join(log, name), encoding="utf-8") as f:
                for line in f:
                    with contextlib.suppress(ValueError):
                        action = json.loads(line)
                        for kind in ("add", "remove"):
                            if kind in action:
                                named.add(action[kind]["path"])
    return named


# ----------------------------------------------------------------------------------------------
# Repair

REPAIRED = os.path.join(META, "repaired")  # where `store repair` moves a damaged commit file (never deleted)


def _log_versions(root: str) -> list[int]:
    return sorted(int(n[:20]) for n in os.listdir(os.path.join(root, LOG)) if re.fullmatch(r"\d{20}\.json", n))


def repair(root: str, wait: float = DEFAULT_WAIT, warn: Callable[[str], None] = lambda m: None) -> dict:
    """Bring a store whose last commit is damaged or lost back to its last good version, on the
    user's word (no other command repairs anything). A damaged last commit file (one that does not
    parse: a write cut short) is moved to `_llm_cost/repaired/`, not deleted; a files table that
    records versions the log no longer has is written again as of the log's last version. Files
    whose rows were in the lost commit are forgotten, so that the next ingest reads them again;
    their data files, named by no version, are left for `store compact`. Nothing is deleted."""
    _check_wait(wait)
    root = _resolved(root)
    if _kind(root) != "delta":
        raise _refuse(root, _kind(root))
    moved = []
    with locked(root, "repair", wait, warn):
        try:
            table = _delta().DeltaTable(root)
            _history(table, 1)
        except Exception as e:  # noqa: BLE001 - the log does not load: is it its last commit?
            versions = _log_versions(root)
            if len(versions) < 2:
                raise StoreError(f"damaged store: {root}: {_first(e)}; the log has no earlier version to go "
                                 "back to") from None
            name = f"{versions[-1]:020d}.json"
            os.makedirs(os.path.join(root, REPAIRED), exist_ok=True)
            aside = os.path.join(root, REPAIRED, f"{name}.{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%S}")
            os.rename(os.path.join(root, LOG, name), aside)
            try:
                table = _delta().DeltaTable(root)
                _history(table, 1)
            except Exception:  # noqa: BLE001 - the damage is not (only) in the last commit: put it back
                os.rename(aside, os.path.join(root, LOG, name))
                raise StoreError(f"damaged store: {root}: {_first(e)}; not only its last commit is damaged, "
                                 "so `store repair` changed nothing") from None
            moved.append(os.path.relpath(aside, root))
        gone = [u for u in _parts(table, None) if not os.path.isfile(u)]
        if gone:  # e.g. the lost commit was a compaction whose vacuum removed the files merged
            for m in moved:
                os.rename(os.path.join(root, m), os.path.join(root, LOG, os.path.basename(m)[:25]))
            raise StoreError(f"damaged store: {root}: cannot go back to version {table.version()}: {len(gone)} of its "
                             f"data files are gone ({os.path.relpath(gone[0], root)}; "
                             "removed by `store compact` after it); `store repair` changed nothing. Ingest the logs "
                             "again into a new store")
        recorded = _recorded(root)
        forgotten: list[str] = []
        if recorded > table.version():
            path = os.path.join(root, FILES)
            try:
                frame = pl.read_parquet([_local(u) for u in _delta().DeltaTable(path).file_uris()], glob=False)
                latest = {r["path"]: _decode(path, r) for r in frame.to_dicts()}  # one row per file
            except Exception as e:  # noqa: BLE001
                raise _damaged(path, e) from None
            try:
                records = _files(root, table)  # the files table as it was for this version
            except StoreError:
                # That version of the files table was vacuumed: its records of this version or
                # before, brought up to date from the commits of the rows table's log.
                kept = {k: r for k, r in latest.items() if (r.get("rows_version") or 0) <= table.version()}
                records = _replay(root, table, kept, -1)
            forgotten = sorted(set(latest) - set(records))
            _write_files(root, records, table.version())
        table = _table(root)  # healthy again, or this says why not
    return {"store": root, "version": table.version(), "moved": moved, "forgotten": forgotten,
            "repaired": bool(moved) or recorded > table.version() or bool(forgotten)}


def _first(e: BaseException) -> str:
    return (str(e).strip().splitlines() or [type(e).__name__])[0]


# ----------------------------------------------------------------------------------------------
# Reprice


@dataclass
class RepriceResult:
    changes: pl.DataFrame  # month, model, requests, old_cost, new_cost, difference (exact)
    book: pricebook.PriceBook
    months: list[str]
    parts: int
    version: int | None = None
    kept: int = 0  # kept copies priced again (see _reprice_kept)
    quarantined: int = 0  # stored records whose model cleans to nothing, taken out (see _blank_records)
    restored: int = 0  # kept copies of their requests stored in their place (see _kept_back)
    kept_quarantined: int = 0  # kept copies of the window whose model cleans to nothing, taken out

    @property
    def old_total(self):
        return self.changes["old_cost"].sum()

    @property
    def new_total(self):
        return self.changes["new_cost"].sum()

    @property
    def difference(self):
        return self.changes["difference"].sum()


# What pricing adds to a canonical row: replaced by reprice.
PRICING = (*pipeline.PRICE_TAGS, *pipeline.MONEY_COLUMNS, "price_book", "unpriced_reason")


def _something() -> pl.Expr:
    """Rows with something to price: a record, or a later row with a token (see _priced_again)."""
    return pl.any_horizontal([pl.col(c) != 0 for c in COUNT_COLUMNS]).fill_null(False) | _is_record(None)


def _costs(df: pl.DataFrame) -> pl.DataFrame:
    # (a step that used no token has no model: not an "(unpriced)" line of 0 requests in the table)
    return df.filter(_something()).group_by(pl.col("timestamp").dt.strftime("%Y-%m").alias("month"), "model").agg(
        pl.col("requests").sum(), pl.col("cost").sum().cast(MONEY))


def reprice(root: str, opts: pipeline.Options | None = None, wait: float = DEFAULT_WAIT,
            warn: Callable[[str], None] = lambda m: None) -> RepriceResult:
    """Price the stored rows of [--since, --until) again with the current book and overlays: one new
    table version that replaces the affected month partitions (the old version stays readable with
    `report --version`). Their labels are cleaned again first, by this version's rules (see
    _recleaned), and the kept copies of the window (see _reprice_kept) are priced again with them."""
    _check_wait(wait)
    opts = opts or pipeline.Options()
    pipeline.check_tz(opts.tz)
    book = pricebook.load_price_book(opts.prices)
    since, until = pipeline.time_window(opts)
    inside = ~_outside(since, until)
    root = _resolved(root)
    with locked(root, "reprice", wait, warn):
        table = _table(root)
        records = _files(root, table)
        _sync_files(root, table, records)
        months = _months(_months_of(table), since, until)
        targets = _parts(table, months)
        dims = _dimensions(records)
        changes, new = _changes([], []), None
        gone = back_rows = pl.DataFrame()  # (stored records quarantined, kept copies stored in their place)
        blank_kept: list[pl.DataFrame] = []  # (kept copies quarantined: see _reprice_kept)
        if targets:
            try:
                # (with each row's rank: a re-priced copy still ranks as it did against a later night's)
                old = scan(root, months, table, records, ranked=True).with_row_index("_i").collect(engine="streaming")
            except (pl.exceptions.PolarsError, OSError) as e:
                raise _damaged(root, e) from None
            window = old.filter(inside)
            cols = old.columns
            # A record whose model cleans to nothing (invisible characters stored by a version
            # before labels.trim) is quarantined, as an ingest now does: out of the store, counted
            # quarantined by its file's record, and the best valid kept copy of its request that
            # lost to it stored in its place, as a report of the files prices it.
            blank = _blank_records(window)
            gone = window.filter(blank)
            repriced = _priced_again(_recleaned(window.filter(~blank), dims), book)
            parts = [old.filter(~inside), repriced.select(cols)]
            if gone.height:
                back = _kept_back(root, records, gone, inside, book, dims)
                if back.height:
                    parts.append(back.with_columns(
                        (pl.int_range(pl.len(), dtype=pl.UInt32) + old.height).alias("_i")))
                back_rows = back
            # (kept copies may lack a column the store gained since: filled with nulls)
            new = (pl.concat(parts, how="diagonal_relaxed").select(cols) if len(parts) > 2 else pl.concat(parts)
                   ).sort("_i").drop("_i")
            new = new.with_columns(pl.col("timestamp").dt.strftime("%Y-%m").alias(MONTH))
            changes = _changes([_costs(window)], [_costs(new.filter(inside))])
        predicate = f"{MONTH} IN ({', '.join(repr(m) for m in sorted(months))})"  # YYYY-MM: no quoting issue
        written: list[str] = []
        committed = False
        try:
            # (also when no stored month lies in the window: a kept copy may, e.g. the October copy of
            # a request a fuller November copy won, and it must come back as if it had stayed stored)
            renamed, copies = _reprice_kept(root, records, inside, book, dims, written, warn, blank_kept)
            dropped = pl.concat(blank_kept, how="diagonal_relaxed") if blank_kept else pl.DataFrame()
            for p, fields in _blank_fields(records, gone, back_rows, dropped).items():
                renamed[p] = {**renamed.get(p, {}), **fields}  # (replayed with the kept files' names: see _replay)
            if back_rows.height:  # (copies stored again: named by their file and id, as _write_rows does)
                predicate = f"{predicate} OR {_restored_predicate(back_rows)}"
            if new is None and not renamed:
                return RepriceResult(changes, book, sorted(months), 0)
            props = _commit("reprice", book.version, **{"llm_cost.overlays": json.dumps(list(book.overlays)),
                                                        "llm_cost.since": since and since.isoformat(),
                                                        "llm_cost.until": until and until.isoformat(),
                                                        "llm_cost.old_cost": changes["old_cost"].sum(),
                                                        "llm_cost.new_cost": changes["new_cost"].sum(),
                                                        **({K_KEPT: json.dumps(renamed)} if renamed else {})})
            try:
                if new is None:  # (kept copies alone: a commit of no rows names their new files)
                    table.create_write_transaction([], "append", table.schema(), partition_by=[MONTH],
                                                   commit_properties=props)
                else:
                    _delta().write_deltalake(table, new.to_arrow(), partition_by=[MONTH], mode="overwrite",
                                             predicate=predicate, schema_mode="merge", commit_properties=props,
                                             writer_properties=_writer())
            except Exception as e:  # noqa: BLE001
                if _is_conflict(e):  # (a writer without this lock: delta-rs says only "Failed to commit transaction: 0")
                    raise StoreError(f"{root}: cannot commit the re-priced rows: another writer committed first; "
                                     "nothing was re-priced: run the reprice again") from None
                raise StoreError(f"{root}: cannot commit the re-priced rows: "
                                 f"{(str(e).strip().splitlines() or [''])[0]}") from None
            committed = True
        finally:
            # Kept files written for a commit that did not land are no record's: removed (a kill -9
            # leaves them to `store compact`, which removes the DISPLACED files no record names).
            if not committed and not _names_kept(root, written):
                for rel in written:
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(os.path.join(root, rel))
        records.update({p: {**records[p], **fields} for p, fields in renamed.items()})
        before = {os.path.relpath(u, root) for u in targets}
        table = _checkpoint(_table(root))
        _write_blank_quarantine(root, table.version(), [f for f in (gone, dropped) if f.height])
        touched = months | (set(back_rows[MONTH].to_list()) if back_rows.height else set())
        _summarize_missing(root, table, {os.path.relpath(u, root) for u in _parts(table, touched)} - before)
        _write_rollups(root, table)
        _sync_files(root, table, records)
    return RepriceResult(changes, book, sorted(months), len(targets), table.version(), copies,
                         *(int(_is_record(f).sum()) if f.height else 0 for f in (gone, back_rows, dropped)))


def _priced_again(rows: pl.DataFrame, book: pricebook.PriceBook) -> pl.DataFrame:
    """Stored rows (or kept copies) priced again with `book`: their pricing columns replaced."""
    from .pricing import rate_frame

    # The rate keys of rows with something to price, as an ingest's aggregate has them: a group of
    # nothing is dropped there (pipeline._regroup), so a response's step that used no token, on a
    # model the book does not know, finds no rate and is no unpriceable part of its request. Keyed
    # here, it made the request unpriced whole at any reprice (attack28: $0.003 -> $0, with the same
    # book), and `store status` said consistent.
    keys = rows.lazy().filter(_something()).select(*tagging.RATE_KEY_COLUMNS, *tagging.row_tags(book)).unique()
    keys = tagging.with_time_band(keys.collect(engine="streaming"), book)
    rates = rate_frame(keys, book)
    band = dict(zip(keys[tagging.TIME_UNIT].to_list(), keys[tagging.TIME_BAND].to_list()))
    bare = rows.lazy().drop(PRICING, strict=False)
    repriced = pipeline.price_rows(bare, rates, band, book).collect()
    blame = _blamed(repriced)
    if blame.is_not_null().any():  # (a request with a part the book cannot price: priced again whole)
        repriced = pipeline.row_pricing(rates, band, book, blamed=True)(
            bare.with_columns(blame.alias(pipeline.BLAME))).collect()
    return repriced


def _recleaned(rows: pl.DataFrame, dims: list[str]) -> pl.DataFrame:
    """Stored rows with their labels cleaned again by this version's rules (labels.clean_labels, as
    an ingest cleans a night's): a row an older version stored with a label it did not trim
    (`claude-haiku-4-5` then U+200B, before labels.trim) is priced, and reported, as the same label
    from a later night. Labels take few values: each column's distinct values are cleaned first,
    and a column none of whose values changes (every column of a store written since) is left as
    it is. A model that cleans to nothing stays as stored (unpriced, as it was): an ingest would
    have quarantined its row, which a stored row can no longer be."""
    from . import labels

    out = []
    for e in labels.clean_labels(rows.columns, [d for d in dims if d in rows.columns]):
        col = e.meta.output_name()
        if col == "model_raw":
            e = pl.coalesce(e, pl.col(col)).alias(col)
        if rows.select(pl.col(col).unique()).select((~e.eq_missing(pl.col(col))).any()).item():
            out.append(e)
    return rows.with_columns(out) if out else rows


def _blank_model(rows: pl.DataFrame | pl.LazyFrame) -> pl.Expr:
    """Rows whose model this version's labels.clean_labels makes null (only invisible characters:
    U+200B, stored by a version before labels.trim), which an ingest now quarantines."""
    from . import labels

    if "model_raw" not in rows.collect_schema().names():
        return pl.lit(False)
    (model,) = [e for e in labels.clean_labels(["model_raw"]) if e.meta.output_name() == "model_raw"]
    return model.is_null() & pl.col("model_raw").is_not_null()


def _blank_records(rows: pl.DataFrame) -> pl.Series:
    """Per stored row (in stored order): whether its record (file, and record id: see _parents)
    has a row whose model cleans to nothing. An ingest quarantines such a record whole. A row's
    record is its line's record row, whatever the rows' order (see _line_parents): after `store
    compact` a response's later steps may be read before its record row, and a forward fill gave
    them the record read before them (a valid request quarantined with a blank one's steps, a blank
    one's steps left stored and priced)."""
    blank = _blank_model(rows)
    models = rows.select(pl.col("model_raw").unique()) if "model_raw" in rows.columns else pl.DataFrame()
    if not models.height or not models.select(blank.any()).item():  # (a model takes few values: the usual case)
        return pl.select(pl.repeat(False, rows.height, dtype=pl.Boolean)).to_series()
    keyed = rows.select(SHA, "request_id", "source", *[c for c in ("requests", "source_row", "model_raw")
                                                       if c in rows.columns]).with_columns(_stored_hashes())
    keyed = keyed.with_columns(_line_parents(keyed.lazy(), [SHA, "source_row"]))
    whole = pl.when(pl.col(dedupe.P1).is_not_null()).then(blank.any().over(SHA, dedupe.P1, dedupe.P2)).otherwise(blank)
    return keyed.select(whole.fill_null(False)).to_series()


def _kept_back(root: str, records: dict[str, dict], gone: pl.DataFrame, inside: pl.Expr,
               book: pricebook.PriceBook, dims: list[str]) -> pl.DataFrame:
    """The best valid kept copy (DISPLACED files, see _restore) of each request whose stored record
    `gone` is quarantined (see _blank_records), as dedupe.losers orders copies (rank, the record's
    tokens, then the file ingested first): the copy a report of the files prices, the blank one
    quarantined there. A copy whose own model cleans to nothing is none, and a damaged kept file
    (see _kept_damage; _reprice_kept warns of it) is not read. Those of the window are cleaned and
    priced again with `book`, as the stored rows are. The copies stay in their kept files, and
    never come back twice: a replace brings back the kept copies of the requests the replaced
    file's stored rows hold, from other files than it (see _restore), and the file whose stored
    rows hold these requests now is the copies' own."""
    parents = [dedupe.P1, dedupe.P2]
    wanted = gone.filter(_is_record(gone) & pl.col("request_id").is_not_null()).select(_stored_hashes()).rename(
        {dedupe.H1: dedupe.P1, dedupe.H2: dedupe.P2}).unique()
    names = {rel: r for r in records.values() for rel in _shadow_files(root, r)}
    frames = [pl.scan_parquet(os.path.join(root, rel), glob=False, hive_partitioning=False).with_row_index("_i")
              .with_columns(pl.lit(n, pl.UInt32).alias("_f"))
              for n, rel in enumerate(sorted(names)) if not _kept_damage(root, rel, names[rel])]
    if not frames or not wanted.height:
        return pl.DataFrame()
    # (the order of the files' last ingests, as a report reads them: see _restore)
    ranked = sorted(records.values(), key=lambda r: (r.get("rows_version", -1), r.get("ingested_at") or "", r["path"]))
    order = {r["sha256"]: n for n, r in enumerate(ranked)}
    try:
        pool = pl.concat(frames, how="diagonal_relaxed").filter(pl.col(SHA).is_in(sorted(order)))
        keys = pool.filter(pl.col("request_id").is_not_null()).with_columns(_stored_hashes()).select(
            "_f", "_i", dedupe.H1, dedupe.H2, *_kept_parents(pool), _tokens(), _rank(pool), _blank_model(pool).alias("_blank"),
            _copy_key(pool, pl.col(SHA).replace_strict(order, default=len(order), return_dtype=pl.Int64))).join(
            wanted.lazy(), on=parents, how="semi").collect()
        # (one copy kept twice, by two records: once; a copy with a blank model: none, it would be
        # quarantined too)
        keys = keys.filter(pl.col("_f") == pl.col("_f").min().over(dedupe.KEY, *parents))
        keys = keys.filter(~pl.col("_blank").any().over("_f", dedupe.KEY, *parents))
        if not keys.height:
            return pl.DataFrame()
        lost = dedupe.losers(keys.select(dedupe.KEY, dedupe.H1, dedupe.H2, *parents, dedupe.TOKENS,
                                         pl.col(RANK).alias("_rank")))
        back = keys.join(lost, on=list(dedupe.LOSER), how="anti").select("_f", "_i")
        rows = pool.join(back.lazy(), on=["_f", "_i"], how="semi", maintain_order="left").collect()
        if {"requests", "source_row"} <= set(rows.columns):  # (a record's rows consecutive, its record row first)
            line, record = ["_f", SHA, "source_row"], _is_record(None)
            rows = rows.sort([*line, ~record & (record.sum().over(line) == 1), "_i"])
        rows = rows.drop("_f", "_i")
        # (a kept file written before a column was: as _reprice_kept reads it)
        missing = [pl.lit(None, SCHEMA[c]).alias(c) for c in (*pipeline.CANONICAL, SHA) if c not in rows.columns]
        rows = rows.with_columns(missing) if missing else rows
        mask = rows.select(inside.fill_null(False)).to_series()
        if mask.any():
            fresh = _priced_again(_recleaned(rows.filter(mask), dims), book)
            rows = pl.concat([rows.filter(~mask), fresh], how="diagonal_relaxed")
    except (pl.exceptions.PolarsError, OSError) as e:
        raise _damaged(root, e) from None
    return rows.with_columns(_month())


def _write_blank_quarantine(root: str, version: int, frames: list[pl.DataFrame]) -> None:
    """The records a reprice quarantined (see _blank_records), listed as an ingest lists its own
    (file, line, reason) in `_llm_cost/quarantine/reprice-<version>.jsonl`, with the request id:
    their text was not stored (`raw` null); the version before keeps their rows. Written after the
    commit, which is what counts them: a run killed in between leaves them counted, not listed."""
    from . import labels, writers

    rows = pl.concat([f.filter(_is_record(f)).select(
        pl.col("source_file").alias("file"), pl.col("source_row").alias("line"), "request_id")
        for f in frames], how="diagonal_relaxed") if frames else pl.DataFrame()
    if not rows.height:
        return
    rows = rows.with_columns(pl.lit(labels.MISSING_MODEL).alias("reason"), pl.lit(None, pl.String).alias("raw"))
    os.makedirs(os.path.join(root, QUARANTINE), exist_ok=True)
    writers.atomic_write(os.path.join(root, QUARANTINE, f"reprice-{version}.jsonl"),
                         rows.select("file", "line", "reason", "raw", "request_id").write_ndjson, mode=0o600)


def _blank_fields(records: dict[str, dict], gone: pl.DataFrame, back: pl.DataFrame,
                 dropped: pl.DataFrame) -> dict[str, dict]:
    """The records' new accounting when the stored records `gone` and the kept copies `dropped` are
    quarantined and the kept copies `back` stored in their place: {path: {"accounting": ...}} of
    those that change (the fields a reprice commit's K_KEPT carries). A stored record quarantined
    is no longer priced or unpriced; a kept one no longer a duplicate (or repeat); one brought back
    no longer a duplicate, as _count_displaced counts a replace's."""
    changed = {p: dict(r) for p, r in records.items()}
    for rows, kept_copy in ((gone, False), (dropped, True)):
        if not rows.height:
            continue
        per = rows.group_by(SHA).agg(*_dup_counts())
        for sha, priced, unpriced in zip(per[SHA], per["priced"], per["unpriced"], strict=True):
            for p, r in changed.items():
                if r.get("sha256") == sha:
                    a = dict(r["accounting"])
                    a["quarantined"] = a.get("quarantined", 0) + priced + unpriced
                    if kept_copy:  # (counted where a copy that lost is: see _count_displaced)
                        repeats = r.get("repeats_records")
                        kind = "repeats" if (_repeats_records(r.get("dialect")) if repeats is None else repeats) \
                            else "duplicates"
                        a[kind] = a.get(kind, 0) - priced - unpriced
                    else:
                        a["priced"], a["unpriced"] = a.get("priced", 0) - priced, a.get("unpriced", 0) - unpriced
                    changed[p] = {**r, "accounting": a}
    if back.height:
        per = back.group_by(SHA).agg(*_dup_counts())
        _count_displaced(changed, {"restored": {sha: {"priced": priced, "unpriced": unpriced} for sha, priced, unpriced
                                                in zip(per[SHA], per["priced"], per["unpriced"], strict=True)}})
    return {p: {"accounting": r["accounting"]} for p, r in changed.items() if r["accounting"] != records[p]["accounting"]}


def _reprice_kept(root: str, records: dict[str, dict], inside: pl.Expr, book: pricebook.PriceBook,
                  dims: list[str], written: list[str], warn: Callable[[str], None],
                  blank: list[pl.DataFrame] | None = None) -> tuple[dict, int]:
    """The kept copies (DISPLACED files, see _restore) of [--since, --until) priced again, as the
    stored rows are: a copy comes back when the file that beat it is replaced, and it must come back
    as it would be had it stayed stored, not with the book of its own ingest among re-priced rows.
    A kept file is never rewritten (its record names it, and a crash must leave it as it was): each
    one with a copy in the window is written anew (its names appended to `written` as they are
    opened) and the reprice commit names the new files (K_KEPT: the fields of each record that
    change; the files table follows, or is replayed from it). The old files, named by no record
    then, go at `store compact`. A damaged kept file (see _kept_damage) is left as it is, with a
    warning: priced again and noted anew, its damage would no longer show. Returns the fields per
    record path, and how many copies were priced again. A copy of the window whose model cleans
    to nothing (see _blank_records) is left out of its new file, and appended to `blank`: a report
    of the files quarantines it, so it is no duplicate to come back at a replace."""
    import uuid

    names = {rel: r for r in records.values() for rel in _shadow_files(root, r)}
    if not names:
        return {}, 0
    new: dict[str, str] = {}
    copies = 0
    for rel, r in sorted(names.items()):
        why = _kept_damage(root, rel, r)
        if why:
            warn(f"{rel} is {why}: its kept copies (for {r['path']}'s record) are not priced again; "
                 f"`llm-cost store status {root}` lists the damage")
            continue
        path = os.path.join(root, rel)
        try:
            kept = pl.read_parquet(path, glob=False, hive_partitioning=False).with_row_index("_i")
            cols = kept.columns
            missing = [pl.lit(None, SCHEMA[c]).alias(c) for c in (*pipeline.CANONICAL, SHA) if c not in cols]
            kept = kept.with_columns(missing) if missing else kept
            mask = kept.with_columns(inside.fill_null(False).alias("_in"))["_in"]  # (a literal: one per row)
        except (pl.exceptions.PolarsError, OSError) as e:
            raise _damaged(root, e) from None
        n = int(mask.sum())
        if not n:
            continue
        inner = kept.filter(mask)
        out_of_book = _blank_records(inner)
        if blank is not None and out_of_book.any():
            blank.append(inner.filter(out_of_book).drop("_i"))
            inner = inner.filter(~out_of_book)
        repriced = _priced_again(_recleaned(inner, dims), book)
        keep = [*cols, *[c for c in repriced.columns if c in PRICING and c not in cols]]
        out = pl.concat([kept.filter(~mask).select(c for c in keep if c in kept.columns), repriced.select(keep)],
                        how="diagonal_relaxed").sort("_i").drop("_i")
        rel_new = os.path.join(DISPLACED, f"{uuid.uuid4()}.parquet")
        written.append(rel_new)  # (before it is opened: removed, whatever happens next)
        out.write_parquet(os.path.join(root, rel_new), compression="zstd")
        new[rel] = rel_new
        copies += inner.height  # (a copy quarantined is not priced again)
    renamed = {}
    for r in records.values():
        rels = _shadow_files(root, r)
        if set(rels) & set(new):
            noted = {k: v for k, v in _noted(root, r).items() if k not in new}
            fresh = [new.get(rel, rel) for rel in rels]
            noted.update(json.loads(_kept_stats(root, [new[rel] for rel in rels if rel in new])))
            said = {k: v for k, v in _digests(root, r).items() if k not in new}
            said.update(json.loads(_kept_digests(root, [new[rel] for rel in rels if rel in new])))
            renamed[r["path"]] = {"displaced_rows": json.dumps(fresh), "displaced_stats": json.dumps(noted),
                                  "displaced_sha256": json.dumps(said)}
    return renamed, copies


def _blamed(priced: pl.DataFrame) -> pl.Series:
    """Per stored row priced again (in stored order): the model its request is unpriced under when
    another part of it cannot be priced (pipeline.BLAME), else null. A request of several rows (a
    response's steps, a run's models: one source line, its later rows `requests` 0) with a row the
    book cannot price is unpriced whole, as in a report from the logs (pipeline.blamed_records):
    priced row by row, a re-priced store held the known steps' money in its totals with the request
    counted priced and the unknown step counted nowhere. A record is its file (by content: a rotated
    log's path names other lines on another night) and line, holding one record row and later ones
    (rows of a file that share a line and are records each, if a format wrote such, are left alone)."""
    record = [SHA, "source_row"]
    bad = pl.col("unpriced_reason").is_not_null()
    several = (~_is_record(None)).any().over(record) & (_is_record(None).sum().over(record) == 1)
    first_bad = pl.col("model_raw").filter(bad).first().over(record)
    return priced.select(pl.when(several & bad.any().over(record)).then(first_bad).alias(pipeline.BLAME)
                         ).to_series()


def _scenario_blamed(rows: pl.LazyFrame, scenario: pl.DataFrame, book: pricebook.PriceBook) -> pl.LazyFrame:
    """Stored rows with pipeline.SCENARIO_BLAME: on every row of a request of several rows (see
    _blamed) with a row whose rate keys a what-if's scenario cannot price, the model the scenario
    names for its first such row (pipeline.with_scenario_blame, for the store's rows)."""
    record = [SHA, "source_row"]
    on = [c for c in scenario.columns if c != pipeline.SCENARIO_NAME]
    rows = rows.pipe(tagging.with_time_band, book).join(scenario.lazy().unique(on), on=on, how="left",
                                                         nulls_equal=True, maintain_order="left")
    several = (~_is_record(None)).any().over(record) & (_is_record(None).sum().over(record) == 1)
    named = pl.col(pipeline.SCENARIO_NAME).drop_nulls().first().over(record)
    return rows.with_columns(pl.when(several).then(named).alias(pipeline.SCENARIO_BLAME)).drop(
        pipeline.SCENARIO_NAME, tagging.TIME_BAND)


def _changes(before: list[pl.DataFrame], after: list[pl.DataFrame]) -> pl.DataFrame:
    """Old and new cost per month and model (null model: unpriced), and the exact difference."""
    schema = {"month": pl.String, "model": pl.String, "requests": pl.Int64, "cost": MONEY}
    zero = pl.lit(0, MONEY)

    def total(frames: list[pl.DataFrame], name: str) -> pl.DataFrame:
        frame = pl.concat(frames) if frames else pl.DataFrame(schema=schema)
        return frame.group_by("month", "model").agg(pl.col("requests").sum(), pl.col("cost").sum().alias(name))

    old, new = total(before, "old_cost"), total(after, "new_cost")
    both = old.join(new, on=["month", "model"], how="full", coalesce=True, nulls_equal=True)
    return both.select(
        "month", "model", pl.max_horizontal("requests", "requests_right").alias("requests"),
        pl.col("old_cost").fill_null(zero).cast(MONEY), pl.col("new_cost").fill_null(zero).cast(MONEY),
        (pl.col("new_cost").fill_null(zero) - pl.col("old_cost").fill_null(zero)).cast(MONEY).alias("difference"),
    ).sort("month", "model", nulls_last=True)


# ----------------------------------------------------------------------------------------------
# Upgrade from the manifest layout


def upgrade(root: str, wait: float = DEFAULT_WAIT, warn: Callable[[str], None] = lambda m: None) -> dict:
    """Convert a store of the old layout (manifest.json + rows/) into the Delta table, in place.

    The table is built in a staging directory inside the store, checked (the report by month and
    model, with its accounting, must equal the old store's to the last decimal), then moved into
    place with `_delta_log` last: until that rename the store is still the old one. The old files
    are left where they are (nothing is deleted); delete `rows/`, `quarantine/` and manifest.json
    when you no longer need them."""
    from . import store_legacy as legacy
    from . import writers

    root = _resolved(root)
    if _kind(root) != "old":
        raise StoreError(f"{root}: not a store of the old layout (no manifest.json"
                         + (", or already upgraded)" if _kind(root) == "delta" else ")"))
    manifest = legacy.Manifest.read(root)
    for e in manifest.files.values():
        for p in e["parts"]:
            path = os.path.join(root, p["file"])
            why = _check_part(path, os.path.getsize(path), None) if os.path.isfile(path) else "missing"
            if why:
                raise StoreError(f"damaged store: {root}: part {p['file']} named by the manifest: {why}")
    stage = os.path.join(root, META + ".upgrade")
    # An upgrade killed during its switch moved some of the staged table into the store, but not
    # `_delta_log` (moved last): names of the new layout, which the old one never had. They go back
    # to the staging directory, which is then built again from the old store.
    moved = sorted(n for n in os.listdir(root) if n == META or n.startswith(MONTH + "="))
    if moved:
        if any(os.path.islink(os.path.join(root, n)) or not os.path.isdir(os.path.join(root, n)) for n in moved) or (
                os.path.lexists(stage) and (os.path.islink(stage) or set(moved) & set(os.listdir(stage)))):
            raise StoreError(f"{root}: holds {', '.join(moved)} next to manifest.json, not left by `store upgrade`; "
                             "nothing changed")
        os.makedirs(stage, exist_ok=True)
        for name in moved:
            os.rename(os.path.join(root, name), os.path.join(stage, name))
    if os.path.lexists(stage):
        if os.path.islink(stage) or not os.path.isdir(stage) or not set(os.listdir(stage)) <= {LOG, META} | {
                n for n in os.listdir(stage) if n.startswith(MONTH + "=")}:
            raise StoreError(f"{stage}: exists and is not a staging directory of `store upgrade`")
        import shutil

        shutil.rmtree(stage)  # ours: the staging table of an interrupted upgrade
    os.makedirs(os.path.join(stage, META))
    old_lock = os.path.join(root, legacy.LOCK)
    fd = os.open(old_lock, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)  # the old stores' lock
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise StoreError(f"{root}: the store is locked by another run; try again when it is done") from None
    try:
        rows = legacy.scan(root, None, manifest, costs=True)
        rows = rows.drop([c for c in (*pipeline.RATE_COLUMNS, legacy.RATE_ID) if c in rows.collect_schema()])
        rows = rows.rename({legacy.SHA: SHA}).with_columns(pl.col("timestamp").dt.strftime("%Y-%m").alias(MONTH))
        frame = rows.collect(engine="streaming")
        dl = _delta()
        records = {}
        for key, e in manifest.files.items():
            quarantine = e.get("quarantine")
            records[key] = {"path": e.get("path", key), "sha256": e["sha256"], "size": e.get("size"),
                            "mtime": e.get("mtime"), "dialect": e.get("dialect"), "rows": e.get("rows", 0),
                            "price_book": e.get("price_book"), "overlays": e.get("overlays", []),
                            "ingested_at": e.get("ingested_at"), "quarantine": quarantine,
                            "accounting": e["accounting"], "dimensions": e.get("dimensions", [])}
        props = _commit("upgrade", **{"llm_cost.from": "manifest.json", K_ROWS: frame.height})
        dl.write_deltalake(stage, frame.to_arrow(), partition_by=[MONTH], mode="append", commit_properties=props, writer_properties=_writer())
        for r in records.values():  # quarantine files move under _llm_cost (they are ours)
            q = r["quarantine"]
            if q and os.path.isfile(os.path.join(root, q)) and not os.path.islink(os.path.join(root, q)):
                os.makedirs(os.path.join(stage, QUARANTINE), exist_ok=True)
                import shutil

                shutil.copy2(os.path.join(root, q), os.path.join(stage, QUARANTINE, os.path.basename(q)))
                r["quarantine"] = os.path.join(QUARANTINE, os.path.basename(q))
        _write_files(stage, records, 0)
        _summarize_missing(stage, dl.DeltaTable(stage))
        _write_rollups(stage, dl.DeltaTable(stage))
        by = ["month", "model"]
        old = writers.render(legacy.report(root, by), "json").replace(root, "STORE")
        new = writers.render(_report_staged(stage, by), "json").replace(stage, "STORE")
        if _comparable(old) != _comparable(new):
            raise StoreError(f"{root}: the converted table does not report as the old store; nothing changed "
                             f"(the staging table {stage} is left for inspection)")
        for name in sorted(os.listdir(stage), key=lambda n: n == LOG):  # _delta_log last: the switch
            os.rename(os.path.join(stage, name), os.path.join(root, name))
        os.rmdir(stage)
    finally:
        os.close(fd)
    return {"store": root, "files": len(records), "rows": frame.height, "report": "equal"}


def _report_staged(stage: str, by: list[str]) -> pipeline.Report:
    return report(stage, by)


def _comparable(doc: str) -> dict:
    """A report's JSON without what names the store's layout (notes, book description)."""
    d = json.loads(doc)
    for k in ("notes", "price_book"):
        d.pop(k, None)
    d.get("accounting", {}).pop("quarantine_file", None)  # moved under _llm_cost/
    return d


def groups(root: str, by: list[str], opts: pipeline.Options, book: pricebook.PriceBook,
           scenario: pl.DataFrame | None = None) -> pipeline.Groups:
    """The store's priced requests as rate-key groups (pipeline.Groups), for a what-if: counts summed
    by the keys that decide a rate (with `book`'s price bands) and `by`, with their stored cost as the
    baseline. Rows unpriced at ingest stay in the accounting, not in the groups. `scenario`: a
    what-if's unpriceable keys (pipeline.with_scenario_blame): the groups carry SCENARIO_BLAME."""
    root = _resolved(root)
    rep = report(root, [], opts)  # the accounting and notes, as a report from the store gives them
    table = _table(root)
    records = _files(root, table)
    pipeline.check_by(by, _dimensions(records))
    since, until = pipeline.time_window(opts)
    months = _months(_months_of(table), since, until)
    buckets = [tagging.time_bucket(k, opts.tz) for k in by if k in pipeline.TIME_BUCKETS]
    plain = [k for k in by if k not in pipeline.TIME_BUCKETS]
    keys = [*tagging.RATE_KEY_COLUMNS, tagging.TIME_UNIT, tagging.PROMPT_BAND, tagging.USES,
            *dict.fromkeys([k for k in ("model", *plain, *(b for b in by if b in pipeline.TIME_BUCKETS))
                            if k not in tagging.RATE_KEY_COLUMNS])]
    rows = scan(root, months, table, records).filter(
        ~_outside(since, until) & pl.col("unpriced_reason").is_null()).with_columns(*tagging.row_tags(book), *buckets)
    if scenario is not None and scenario.height:
        rows = _scenario_blamed(rows, scenario, book)
        keys.append(pipeline.SCENARIO_BLAME)
    try:
        agg = pipeline.exact_sums(rows, keys, ["requests", *COUNT_COLUMNS],
                                  [_is_record(None).sum().alias(pipeline.ROWS), pl.col("cost").sum()])
    except (pl.exceptions.PolarsError, OSError) as e:
        raise _damaged(root, e) from None
    # (a group of nothing, a step that used no token: no row, as from logs; see report)
    agg = agg.filter(pl.any_horizontal([pl.col(m).fill_null(0) != 0 for m in (pipeline.ROWS, "requests", *COUNT_COLUMNS)]))
    agg = tagging.with_time_band(agg, book).drop(tagging.TIME_UNIT).with_columns(pl.col("cost").cast(MONEY))
    return pipeline.Groups(by, agg, rep.accounting, rep.book, opts.tz, rep.dialects, rep.notes, _dimensions(records))


def focus_groups(root: str, opts: pipeline.Options, book: pricebook.PriceBook) -> pipeline.Groups:
    """The store's priced requests as the groups a FOCUS export is laid out from (focus.frame): keyed
    by UTC day, every dimension and the rate keys (price bands of `book`, the published book, whose
    rates become ListUnitPrice), with each token class's per-unit rate *as stored*: a stored cost is
    the request's count times a 12-place rate, so cost / count gives that rate back exactly, and
    requests priced at different rates (another book version, an overlay) are never one group. The
    costs are the stored ones, so the export adds up to `report --store`."""
    root = _resolved(root)
    from .pricing import RATE
    from .schema import COMPONENTS

    rep = report(root, [], opts)  # the accounting and notes, as a report from the store gives them
    table = _table(root)
    records = _files(root, table)
    # (in the order the files named them, as from the logs: the Tags JSON lists them in that order)
    dims = list(dict.fromkeys(d for e in records.values() for d in e.get("dimensions", [])))
    since, until = pipeline.time_window(opts)
    months = _months(_months_of(table), since, until)
    whole = pl.Decimal(38, 0)
    units = [pl.when(pl.col(c.column) > 0).then(pl.col("cost_" + c.rate) / pl.col(c.column).cast(whole))
             .cast(MONEY).alias(RATE + c.column) for c in COMPONENTS]
    named = ["model", "provider", "price_period", "context_tier", "discount_type"]
    keys = [*tagging.RATE_KEY_COLUMNS, tagging.TIME_UNIT, tagging.PROMPT_BAND, tagging.USES, "day", *named,
            "price_book", *dims, *(RATE + c.column for c in COMPONENTS)]
    rows = scan(root, months, table, records).filter(
        ~_outside(since, until) & pl.col("unpriced_reason").is_null()
    ).with_columns(*tagging.row_tags(book), tagging.time_bucket("day", "UTC").alias("day"), *units)
    try:
        agg = pipeline.exact_sums(rows, keys, ["requests", *COUNT_COLUMNS], [
            _is_record(None).sum().alias(pipeline.ROWS), *[pl.col("cost_" + c.rate).sum() for c in COMPONENTS]])
    except (pl.exceptions.PolarsError, OSError) as e:
        raise _damaged(root, e) from None
    # Each group's cost must be its rate times its count, exactly: else a stored cost was not a whole
    # rate per unit (written by hand, or by another tool) and the export would not add up.
    inexact = agg.select(pl.any_horizontal(
        [(pl.col(RATE + c.column) * pl.col(c.column).cast(whole)).cast(MONEY) != pl.col("cost_" + c.rate)
         for c in COMPONENTS]).fill_null(False).sum()).item()
    if inexact:
        raise StoreError(f"{root}: {counted(inexact, 'group')} of stored rows {'has' if inexact == 1 else 'have'} costs that are not a per-token rate "
                         "times their tokens; `llm-cost reprice --store` prices them again")
    agg = tagging.with_time_band(agg, book).drop(tagging.TIME_UNIT)
    return pipeline.Groups(["day"], agg, rep.accounting, rep.book, "UTC", rep.dialects, rep.notes, dims)

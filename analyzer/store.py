"""The store of nightly runs (DESIGN §9): priced request rows kept as plain Parquet, needing no server.

    <store>/rows/month=2026-11/part-<sha>.parquet    priced rows, hive-partitioned by UTC month
    <store>/manifest.json                            every ingested file and the parts it produced
    <store>/quarantine/<date>-<sha>.jsonl            rows of an ingest that could not be read
    <store>/.lock                                    held (flock) by the one ingest or reprice at work

The manifest is the truth: a part file counts only once the manifest names it. Every file is written
under a temporary name and renamed into place, and the manifest is replaced last, so a run killed at
any moment leaves the store as it was before the file being ingested; the next run removes what the
dead one left (temporary files, parts and quarantine files no manifest names) and carries on.

Each ingested file yields one part per month it covers, named after the file's sha256: a file seen
again with the same content is a no-op, a file whose content changed replaces its parts. A request id
already in the store (from an earlier file or night) is a duplicate: the stored copy stays, the new one
is counted in the accounting and not stored. Costs are stored as priced at ingest; only `reprice`
changes them, by writing new versions of the parts and recording the book in the manifest.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import fcntl
import hashlib
import json
import os
import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import polars as pl

from . import aggregate, dedupe, pipeline, pricebook, tagging
from .dedupe import H1, H2
from .errors import AnalyzerError, OptionError
from .pricing import rate_frame
from .schema import COUNT_COLUMNS, MONEY
from .sources import expand_paths, open_source
from .writers import atomic_write

FORMAT = 1
MANIFEST = "manifest.json"
ROWS = "rows"
QUARANTINE = "quarantine"
LOCK = ".lock"
TEMP_PREFIX = ".llm-cost-"  # writers.atomic_write's temporary files
SHA = "source_sha256"  # column: the sha256 of the file a row came from (joins with the manifest)
RATE_ID = "rate_id"  # column: which set of per-unit rates priced the row (the manifest lists them)
DEFAULT_WAIT = 30.0


class StoreError(AnalyzerError):
    """The store cannot be used: locked by another run, or not a store."""


# ----------------------------------------------------------------------------------------------
# Manifest


@dataclass
class Manifest:
    root: str
    files: dict[str, dict] = field(default_factory=dict)  # absolute path -> what its ingest produced
    repricings: list[dict] = field(default_factory=list)
    rates: dict[str, dict] = field(default_factory=dict)  # rate id -> per-unit rates (exact decimal text)

    @classmethod
    def read(cls, root: str) -> Manifest:
        path = os.path.join(root, MANIFEST)
        if not os.path.exists(path):
            return cls(root)
        try:
            with open(path, encoding="utf-8") as f:
                doc = json.load(f)
        except (OSError, ValueError) as e:
            raise StoreError(f"{path}: cannot read the store's manifest ({e})") from None
        if doc.get("format") != FORMAT:
            raise StoreError(f"{path}: store format {doc.get('format')!r}, this llm-cost reads format {FORMAT}")
        return cls(root, doc["files"], doc.get("repricings", []), doc.get("rates", {}))

    def write(self) -> None:
        doc = {"format": FORMAT, "files": dict(sorted(self.files.items())), "repricings": self.repricings,
               "rates": dict(sorted(self.rates.items()))}
        text = json.dumps(doc, indent=1) + "\n"

        def write(tmp: str) -> None:
            with open(tmp, "w", encoding="utf-8") as f:
                f.write(text)
                f.flush()
                os.fsync(f.fileno())

        atomic_write(os.path.join(self.root, MANIFEST), write)

    def parts(self, months: set[str] | None = None) -> list[dict]:
        return [p for e in self.files.values() for p in e["parts"] if months is None or p["month"] in months]

    def referenced(self) -> set[str]:
        names = {p["file"] for p in self.parts()}
        return names | {e["quarantine"] for e in self.files.values() if e.get("quarantine")}

    def by_sha(self, sha: str) -> str | None:
        return next((path for path, e in self.files.items() if e["sha256"] == sha), None)

    def add_rates(self, table: pl.DataFrame) -> None:
        """Record the rates of new rate ids (see `_with_rate_ids`)."""
        for r in table.to_dicts():  # a few rows: one per distinct set of rates
            rates = {c: r[c] for c in pipeline.RATE_COLUMNS}
            known = self.rates.setdefault(str(r[RATE_ID]), rates)
            if known != rates:  # two sets of rates with one id: a 60-bit hash collision
                raise StoreError(f"{self.root}: rate id {r[RATE_ID]} names two sets of rates")

    def rate_frame(self) -> pl.DataFrame:
        """Rate id -> per-unit rates as exact Decimals."""
        ids = list(self.rates)
        frame = pl.DataFrame({RATE_ID: [int(i) for i in ids],
                              **{c: [self.rates[i][c] for i in ids] for c in pipeline.RATE_COLUMNS}},
                             schema={RATE_ID: pl.Int64, **{c: pl.String for c in pipeline.RATE_COLUMNS}})
        return frame.with_columns([pl.col(c).cast(MONEY) for c in pipeline.RATE_COLUMNS])

    @property
    def dimensions(self) -> list[str]:
        return sorted({d for e in self.files.values() for d in e.get("dimensions", [])})


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


@contextlib.contextmanager
def locked(root: str, command: str, wait: float = DEFAULT_WAIT, warn: Callable[[str], None] = lambda m: None
           ) -> Iterator[None]:
    """Hold the store's lock. The lock is an flock on `.lock`, so the kernel drops it when its holder
    dies however it dies; the file names the holder, for the message of whoever waits. A file still
    naming someone when the lock is free was left by a process that died: it is taken over."""
    os.makedirs(root, exist_ok=True)
    path = os.path.join(root, LOCK)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
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


def recover(root: str, manifest: Manifest) -> list[str]:
    """Remove what a killed run left: temporary files, and parts or quarantine files that no
    manifest names (written before the manifest that would have named them). Call under the lock."""
    keep = manifest.referenced()
    removed = []
    for sub in ("", ROWS, QUARANTINE):
        top = os.path.join(root, sub)
        for dirpath, _, names in os.walk(top) if sub else [(root, None, os.listdir(root))]:
            for name in names:
                rel = os.path.relpath(os.path.join(dirpath, name), root)
                if name.startswith(TEMP_PREFIX) or (sub and rel not in keep):
                    os.unlink(os.path.join(dirpath, name))
                    removed.append(rel)
    rows = os.path.join(root, ROWS)
    if os.path.isdir(rows):
        for month in os.listdir(rows):
            with contextlib.suppress(OSError):
                os.rmdir(os.path.join(rows, month))  # only if empty
    return sorted(removed)


# ----------------------------------------------------------------------------------------------
# Ingest


@dataclass
class FileResult:
    path: str
    status: str  # ingested, replaced, unchanged, same content as <path>, empty
    accounting: pipeline.Accounting | None = None
    stored: int = 0


@dataclass
class IngestResult:
    files: list[FileResult]
    recovered: list[str]  # leftovers of a killed run, removed

    @property
    def accounting(self) -> pipeline.Accounting:
        total = pipeline.Accounting()
        for f in self.files:
            if f.accounting is not None:
                for k in ("rows_read", "priced", "unpriced", "duplicates", "repeats", "not_billable", "quarantined",
                          "filtered_out", "files"):
                    setattr(total, k, getattr(total, k) + getattr(f.accounting, k))
                for why, n in f.accounting.not_billable_reasons.items():
                    total.not_billable_reasons[why] = total.not_billable_reasons.get(why, 0) + n
                for raw, n in f.accounting.unpriced_models.items():
                    total.unpriced_models[raw] = total.unpriced_models.get(raw, 0) + n
                total.unpriced_reasons.update(f.accounting.unpriced_reasons)
        return total


def sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _id_keys(lf: pl.LazyFrame) -> pl.LazyFrame:
    """Request ids as two 64-bit hashes (as dedupe compares them): fixed width, and a false match
    needs both to collide. Hashed when read, never stored."""
    return lf.filter(pl.col("request_id").is_not_null()).select(dedupe.hashes())


def _stored_ids(root: str, parts: list[dict]) -> pl.DataFrame:
    if not parts:
        return pl.DataFrame(schema={H1: pl.UInt64, H2: pl.UInt64})
    # Parts differ in their dimension columns (one file has a workspace, another not): only the id is read.
    paths = [os.path.join(root, p["file"]) for p in parts]
    ids = pl.scan_parquet(paths, schema={"request_id": pl.String}, extra_columns="ignore", missing_columns="insert",
                          glob=False)  # (a store may live in a directory named with `[`)
    return _id_keys(ids).collect(engine="streaming")


def _write_parquet(df: pl.DataFrame, path: str) -> None:
    """A part, atomically and durably. Written by PyArrow to choose encodings per column: dictionaries
    for labels and rates (few distinct values), deltas for the time and line number (they grow
    within a file); counts are left to zstd. A third of the size of Polars' defaults."""
    import pyarrow.parquet as pq

    dictionary = [c for c, t in df.schema.items() if t in (pl.String, pl.Categorical) or isinstance(t, pl.Decimal)]
    deltas = {c: "DELTA_BINARY_PACKED" for c in ("timestamp", "source_row")}

    def write(tmp: str) -> None:
        pq.write_table(df.to_arrow(), tmp, compression="zstd", use_dictionary=dictionary, column_encoding=deltas)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())

    atomic_write(path, write)


def _in_store(rows: pl.DataFrame, ids: pl.DataFrame) -> pl.Series:
    """Which rows carry a request id the store already holds. Cheap first test on one hash; the few
    candidates are confirmed on both."""
    rid = pl.col("request_id")
    keyed = rows.select(pl.int_range(pl.len()).alias("_i"), *dedupe.hashes(),
                        rid.is_not_null().alias("_has_id")).filter(pl.col("_has_id"))
    # The store's ids are probed with this file's (a small set), not the reverse: no table of every
    # stored id is built.
    seen = ids.filter(pl.col(H1).is_in(keyed[H1].implode()))
    hits = keyed.join(seen, on=[H1, H2], how="semi")["_i"]
    return pl.int_range(rows.height, eager=True).is_in(hits.implode())


def _with_rate_ids(rows: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Rows with a RATE_ID naming their set of per-unit rates, and the table of those sets.

    The id is a hash of the rates' exact text: the same rates get the same id in every run. Reports
    group by this one integer and price the sums from the table, instead of grouping fourteen
    Decimal columns of every row."""
    text = pl.concat_str([pl.col(c).cast(pl.String).fill_null("-") for c in pipeline.RATE_COLUMNS], separator="|")
    table = rows.select(pipeline.RATE_COLUMNS).unique().with_columns(text.alias("_text"))
    ids = [int(hashlib.sha256(t.encode()).hexdigest()[:15], 16) for t in table["_text"].to_list()]  # a few
    table = table.with_columns(pl.Series(RATE_ID, ids, dtype=pl.Int64)).drop("_text")
    rows = rows.join(table, on=list(pipeline.RATE_COLUMNS), how="left", nulls_equal=True, maintain_order="left")
    return rows, table.with_columns([pl.col(c).cast(pl.String) for c in pipeline.RATE_COLUMNS])


def ingest(paths, root: str, opts: pipeline.Options | None = None, wait: float = DEFAULT_WAIT,
           progress: Callable[[str, int, int], None] | None = None,
           warn: Callable[[str], None] = lambda m: None) -> IngestResult:
    """Add usage log files to the store, each file in its own atomic step (see the module doc).

    `progress(path, done, total)` is called before each file; `warn` receives messages for people."""
    opts = opts or pipeline.Options()
    if opts.since or opts.until:
        raise OptionError("ingest stores whole files: --since/--until apply to reports from the store")
    if "-" in paths:
        raise OptionError("ingest reads files (their content hash makes re-runs safe), not stdin")
    pipeline.check_tz(opts.tz)
    book = pricebook.load(opts.prices)
    root = os.path.abspath(root)
    inside = os.path.realpath(root) + os.sep
    files = [f for f in expand_paths(paths) if not os.path.realpath(f).startswith(inside)]  # never the store itself
    results = []
    with locked(root, "ingest", wait, warn):
        manifest = Manifest.read(root)
        recovered = recover(root, manifest)
        ids: pl.DataFrame | None = None  # the store's request ids, read when first needed
        for n, path in enumerate(files):
            if progress:
                progress(path, n, len(files))
            key = os.path.abspath(path)
            digest = sha256(path)
            before = manifest.files.get(key)
            if before is not None and before["sha256"] == digest:
                results.append(FileResult(path, "unchanged"))
                continue
            twin = manifest.by_sha(digest)
            if twin is not None:
                results.append(FileResult(path, f"same content as {twin}"))
                continue
            if before is not None or ids is None:  # a replaced file's own ids are not duplicates
                ids = _stored_ids(root, [p for e in manifest.files.values() if e is not before for p in e["parts"]])
            result, entry, new_ids, rates = _ingest_file(path, digest, root, opts, book, ids)
            entry["path"] = key
            manifest.files[key] = entry
            if rates is not None:
                manifest.add_rates(rates)
            manifest.write()
            if before is not None:
                result.status = "replaced"
                for name in {p["file"] for p in before["parts"]} | {before.get("quarantine")} - manifest.referenced():
                    if name:
                        with contextlib.suppress(FileNotFoundError):
                            os.unlink(os.path.join(root, name))
            ids = pl.concat([ids, new_ids])
            results.append(result)
        if progress:
            progress("", len(files), len(files))
    return IngestResult(results, recovered)


def _ingest_file(path: str, digest: str, root: str, opts: pipeline.Options, book: pricebook.PriceBook,
                 ids: pl.DataFrame) -> tuple[FileResult, dict, pl.DataFrame, pl.DataFrame | None]:
    st = os.stat(path)
    now = dt.datetime.now(dt.UTC)
    entry = {"size": st.st_size, "mtime": dt.datetime.fromtimestamp(st.st_mtime, dt.UTC).isoformat(),
             "sha256": digest, "ingested_at": now.isoformat(timespec="seconds"), "price_book": book.version,
             "overlays": list(book.overlays), "parts": [], "quarantine": None}
    if st.st_size == 0 or open_source(path).empty:  # a night without traffic (or blank lines): remembered, so that it is not read again
        acc = pipeline.Accounting(files=1)
        entry.update(dialect=None, rows=0, accounting=acc.as_dict(), dimensions=[])
        return FileResult(path, "empty", acc), entry, pl.DataFrame(schema={H1: pl.UInt64, H2: pl.UInt64}), None
    quarantine = os.path.join(QUARANTINE, f"{now.date().isoformat()}-{digest[:16]}.jsonl")
    run = dataclasses.replace(opts, quarantine=os.path.join(root, quarantine), since=None, until=None)
    priced, acc = pipeline.price_requests([path], run, book, keep_rates=True)
    # One file at a time (a night's file is small next to memory): collected once, split by month.
    rows = priced.lazy().drop(pipeline.MONEY_COLUMNS).collect(engine="streaming")
    repeated = _in_store(rows, ids)
    unpriced = rows["unpriced_reason"].is_not_null()
    record = _is_record(rows)  # the accounting counts records; a request's later iterations are rows too
    acc.duplicates += int((repeated & record).sum())
    acc.priced -= int((repeated & ~unpriced & record).sum())
    acc.unpriced -= int((repeated & unpriced & record).sum())
    rows = rows.filter(~repeated)
    left = rows.filter(pl.col("unpriced_reason").is_not_null()).group_by("model_raw").len().sort("len", descending=True)
    acc.unpriced_models = dict(zip(left["model_raw"].to_list(), left["len"].to_list()))
    acc.unpriced_reasons = {k: v for k, v in acc.unpriced_reasons.items() if k in acc.unpriced_models}
    rows, rates = _with_rate_ids(rows.with_columns(pl.lit(digest).alias(SHA)))
    rows = rows.with_columns(pl.col("timestamp").dt.strftime("%Y-%m").alias("_month"))
    for (m,), part in sorted(rows.group_by("_month"), key=lambda g: g[0]):
        name = os.path.join(ROWS, f"month={m}", f"part-{digest[:16]}.parquet")
        part = part.drop("_month")
        _write_parquet(part, os.path.join(root, name))
        entry["parts"].append({"file": name, "month": m, "rows": part.height, "records": int(_is_record(part).sum()),
                               "price_books": {book.version: part.height},
                               "first": part["timestamp"].min().isoformat(), "last": part["timestamp"].max().isoformat()})
    dims = [c for c in rows.columns if c not in SCHEMA and c not in ("_month", RATE_ID)]
    entry.update(dialect=_dialect(path, opts), rows=acc.rows_read,
                 quarantine=quarantine if acc.quarantined else None, accounting=acc.as_dict(), dimensions=dims)
    entry["accounting"]["quarantine_file"] = entry["quarantine"]
    return FileResult(path, "ingested", acc, rows.height), entry, _id_keys(rows.lazy()).collect(), rates


def _is_record(rows: pl.DataFrame | None) -> pl.Series | pl.Expr:
    """Rows that are records (a request, or a pre-aggregated row of unknown size), not the later
    iterations of a request (requests = 0; see dialects/anthropic_messages.py)."""
    expr = pl.col("requests").is_null() | (pl.col("requests") != 0)
    return rows.select(expr).to_series() if isinstance(rows, pl.DataFrame) else expr


def _records(part: dict) -> int:
    return part.get("records", part["rows"])  # stores written before records were counted: rows


def _dialect(path: str, opts: pipeline.Options) -> str:
    from . import dialects

    return opts.dialect or dialects.detect(open_source(path)).name


# ----------------------------------------------------------------------------------------------
# Reading: scans, reports, status

# What pricing adds to a canonical row, in the store: the per-unit rates, not the costs. A request's
# cost is its counts times its rates (`pipeline.with_costs`), exactly; rates repeat from row to row,
# so Parquet's dictionary encoding stores them almost for free, where ten per-row Decimal costs were
# 60% of the bytes. Costs stay those of ingest: the rates are those of the book used then.
PRICING = (*pipeline.PRICE_TAGS, "price_book", "unpriced_reason", *pipeline.RATE_COLUMNS, "rate_id")
# The columns of stored rows (dimensions follow, as strings).
SCHEMA: dict[str, pl.DataType] = {
    **pipeline.CANONICAL, **{c: pl.String() for c in (*pipeline.PRICE_TAGS, "price_book", "unpriced_reason")},
    **{c: MONEY for c in pipeline.RATE_COLUMNS}, RATE_ID: pl.Int64(), SHA: pl.String(),
}


def open_manifest(root: str) -> Manifest:
    if not os.path.isfile(os.path.join(root, MANIFEST)):
        raise StoreError(f"{root}: not an llm-cost store (no {MANIFEST}; create one with `llm-cost ingest`)")
    return Manifest.read(root)


def _window(opts: pipeline.Options) -> tuple[dt.datetime | None, dt.datetime | None]:
    since = pipeline.parse_time(opts.since, opts.tz, end=False)
    until = pipeline.parse_time(opts.until, opts.tz, end=True)
    if since is not None and until is not None and until <= since:
        raise OptionError(f"--until {opts.until} is not after --since {opts.since}: the window is empty")
    return since, until


def _months(manifest: Manifest, since: dt.datetime | None, until: dt.datetime | None) -> set[str]:
    """The month partitions that can hold rows of [since, until) (partitions are UTC months)."""
    lo = since.strftime("%Y-%m") if since else None
    hi = (until - dt.timedelta(microseconds=1)).strftime("%Y-%m") if until else None
    return {p["month"] for p in manifest.parts() if (lo is None or p["month"] >= lo) and (hi is None or p["month"] <= hi)}


def _outside(since: dt.datetime | None, until: dt.datetime | None) -> pl.Expr:
    out = pl.lit(False)
    if since is not None:
        out = out | (pl.col("timestamp") < since)
    if until is not None:
        out = out | (pl.col("timestamp") >= until)
    return out


def scan(root: str, months: set[str] | None = None, manifest: Manifest | None = None, costs: bool = True
         ) -> pl.LazyFrame:
    """The stored priced rows of these months (all when None), lazily, with their cost columns
    (`costs`) as `llm-cost price` writes them. Only the parts the manifest names for those months
    are opened: the month filter is decided before the scan, and a part left by a killed run is
    never read. Any Parquet reader can do the same with the hive layout."""
    manifest = manifest or open_manifest(root)
    schema = {**SCHEMA, **{d: pl.String() for d in manifest.dimensions}}
    files = [os.path.join(root, p["file"]) for p in manifest.parts(months)]
    lf = (pl.scan_parquet(files, schema=schema, missing_columns="insert", glob=False) if files
          else pl.LazyFrame(schema=schema))
    return pipeline.with_costs(lf) if costs else lf


def report(root: str, by: list[str] | tuple[str, ...] = ("model",), opts: pipeline.Options | None = None
           ) -> pipeline.Report:
    """A report from the store, in the shape `pipeline.analyze` gives for logs (the same writers
    apply). Costs are those stored: priced at ingest, or by the last `reprice`.

    The accounting covers every file ever ingested: rows_read = priced + unpriced (stored rows in the
    window) + duplicates + quarantined (at ingest) + filtered_out (stored rows outside the window)."""
    opts = opts or pipeline.Options()
    if opts.prices:
        raise OptionError("--prices with --store: stored rows keep the costs they were priced with; "
                          "recompute them with `llm-cost reprice --store DIR --prices FILE`")
    pipeline.check_tz(opts.tz)
    manifest = open_manifest(root)
    by = list(by)
    pipeline.check_by(by, manifest.dimensions)
    keys = [k for k in by if k != "component"]
    since, until = _window(opts)
    months = _months(manifest, since, until)
    extra = [tagging.time_bucket(k, opts.tz) for k in keys if k in pipeline.TIME_BUCKETS]
    if "discount_type" in by:
        extra.append(tagging.cache_use())
        keys.append("_cache_use")
    unpriced = pl.col("unpriced_reason").is_not_null()
    # Counts are summed per set of rates, then priced: exact, and no Decimal is read or computed per row.
    group = [*keys, "_out", "unpriced_reason", "_unpriced_raw", "price_book", RATE_ID]
    agg = scan(root, months, manifest, costs=False).with_columns(
        *extra, _outside(since, until).alias("_out"), pl.when(unpriced).then(pl.col("model_raw")).alias("_unpriced_raw"),
    ).group_by(group).agg(
        _is_record(None).sum().alias(pipeline.ROWS),
        *[pl.col(c).sum() for c in ("requests", *COUNT_COLUMNS, "reported_cost")],
        pl.col("reported_cost").is_not_null().sum().alias("_reported_rows"),
    ).collect(engine="streaming")
    agg = pipeline.with_costs(agg.join(manifest.rate_frame(), on=RATE_ID, how="left"))
    inside = agg.filter(~pl.col("_out"))
    priced = inside.filter(pl.col("unpriced_reason").is_null())
    acc = _stored_accounting(manifest)
    acc.priced = int(priced[pipeline.ROWS].sum() or 0)
    missing = inside.filter(pl.col("unpriced_reason").is_not_null()).group_by("_unpriced_raw").agg(
        pl.col(pipeline.ROWS).sum(), pl.col("unpriced_reason").unique().sort().str.join("; ")
    ).sort([pipeline.ROWS, "_unpriced_raw"], descending=[True, False])
    acc.unpriced = int(missing[pipeline.ROWS].sum() or 0)
    acc.unpriced_models = dict(zip(missing["_unpriced_raw"].to_list(), missing[pipeline.ROWS].to_list()))
    said = {raw: why for e in manifest.files.values() for raw, why in e["accounting"]["unpriced_reasons"].items()}
    acc.unpriced_reasons = {raw: said.get(raw, why)  # as said at ingest, with its "did you mean"
                            for raw, why in zip(missing["_unpriced_raw"].to_list(), missing["unpriced_reason"].to_list())}
    stored = sum(_records(p) for p in manifest.parts())
    acc.filtered_out = stored - acc.priced - acc.unpriced
    if "discount_type" in by:
        priced = priced.with_columns(aggregate.with_cache_use())
    rows, totals = aggregate.summarize(priced, by, opts.tz)
    versions = sorted(set(inside["price_book"].drop_nulls().to_list()))
    overlays = sorted({o for e in manifest.files.values() for o in e.get("overlays", [])}
                      | {o for r in manifest.repricings for o in r["overlays"]})
    book = pricebook.PriceBook({}, {}, [f"store {root}"], overlays, ", ".join(versions) or "none")
    notes = [f"costs as stored in {root} (priced at ingest or by `llm-cost reprice`; not re-priced by this report)"]
    files = {e["path"]: e["dialect"] for e in manifest.files.values() if any(p["month"] in months for p in e["parts"])}
    return pipeline.Report(by, rows, totals, acc, book, opts.tz, dict(sorted(files.items())), notes)


def _stored_accounting(manifest: Manifest) -> pipeline.Accounting:
    acc = pipeline.Accounting(files=len(manifest.files))
    for e in manifest.files.values():
        a = e["accounting"]
        acc.rows_read += a["rows_read"]
        acc.duplicates += a["duplicates"]
        acc.quarantined += a["quarantined"]
        acc.repeats += a.get("repeats", 0)
        acc.not_billable += a.get("not_billable", 0)
        for why, n in a.get("not_billable_reasons", {}).items():
            acc.not_billable_reasons[why] = acc.not_billable_reasons.get(why, 0) + n
    if acc.quarantined:
        acc.quarantine_file = os.path.join(manifest.root, QUARANTINE)
    return acc


def status(root: str) -> dict:
    """What the store holds, from its manifest, and whether its files are all there. Read-only: a
    leftover of a killed run is reported, and removed by the next ingest."""
    manifest = open_manifest(root)
    parts = manifest.parts()
    acc = _stored_accounting(manifest)
    months: dict[str, int] = {}
    books: dict[str, int] = {}
    for p in parts:
        months[p["month"]] = months.get(p["month"], 0) + p["rows"]
        for version, n in p["price_books"].items():
            books[version] = books.get(version, 0) + n
    referenced = manifest.referenced()
    missing = sorted(p["file"] for p in parts if not os.path.isfile(os.path.join(root, p["file"])))
    leftovers = []
    for dirpath, _, names in os.walk(root):
        for name in names:
            rel = os.path.relpath(os.path.join(dirpath, name), root)
            if name.startswith(TEMP_PREFIX) or (rel.startswith((ROWS + os.sep, QUARANTINE + os.sep)) and rel not in referenced):
                leftovers.append(rel)
    stored = sum(_records(p) for p in parts)
    return {
        "store": os.path.abspath(root),
        "files": len(manifest.files),
        "rows_stored": stored,
        "rows_read": acc.rows_read,
        "duplicates": acc.duplicates,
        "repeats": acc.repeats,
        "not_billable": acc.not_billable,
        "quarantined": acc.quarantined,
        "first": min((p["first"] for p in parts), default=None),
        "last": max((p["last"] for p in parts), default=None),
        "months": dict(sorted(months.items())),
        "price_books": dict(sorted(books.items())),
        "last_ingest": max((e["ingested_at"] for e in manifest.files.values()), default=None),
        "repricings": len(manifest.repricings),
        "bytes": sum(os.path.getsize(os.path.join(root, p["file"])) for p in parts if p["file"] not in missing),
        "missing_parts": missing,
        "leftovers": sorted(leftovers),
        "consistent": not missing and acc.rows_read == (stored + acc.duplicates + acc.repeats + acc.not_billable
                                                        + acc.quarantined),
    }


# ----------------------------------------------------------------------------------------------
# Reprice


@dataclass
class RepriceResult:
    changes: pl.DataFrame  # month, model, requests, old_cost, new_cost, difference (exact)
    book: pricebook.PriceBook
    months: list[str]
    parts: int

    @property
    def old_total(self):
        return self.changes["old_cost"].sum()

    @property
    def new_total(self):
        return self.changes["new_cost"].sum()

    @property
    def difference(self):
        return self.changes["difference"].sum()


def _costs(df: pl.DataFrame) -> pl.DataFrame:
    return df.group_by(pl.col("timestamp").dt.strftime("%Y-%m").alias("month"), "model").agg(
        pl.col("requests").sum(), pl.col("cost").sum().cast(MONEY))


def reprice(root: str, opts: pipeline.Options | None = None, wait: float = DEFAULT_WAIT,
            warn: Callable[[str], None] = lambda m: None) -> RepriceResult:
    """Price the stored rows of [--since, --until) again with the current book and overlays.

    Never in place: each affected part is written as a new file, the manifest then names the new
    parts and records the book (a crash leaves the old version), and the old parts are removed."""
    opts = opts or pipeline.Options()
    pipeline.check_tz(opts.tz)
    book = pricebook.load(opts.prices)
    since, until = _window(opts)
    inside = ~_outside(since, until)
    root = os.path.abspath(root)
    with locked(root, "reprice", wait, warn):
        manifest = open_manifest(root)
        recover(root, manifest)
        months = _months(manifest, since, until)
        targets = manifest.parts(months)
        old = scan(root, months, manifest).filter(inside)
        keys = old.select(*tagging.RATE_KEY_COLUMNS, tagging.time_unit(book), tagging.prompt_band(book)).unique()
        keys = tagging.with_time_band(keys.collect(engine="streaming"), book)
        rates = rate_frame(keys, book)
        band = dict(zip(keys[tagging.TIME_UNIT].to_list(), keys[tagging.TIME_BAND].to_list()))
        before, after, replaced = [], [], {}
        for part in targets:
            df = pl.read_parquet(os.path.join(root, part["file"]), glob=False).with_row_index("_i")
            cols = df.columns
            window = df.filter(inside)
            repriced = pipeline.price_rows(window.lazy().drop(PRICING), rates, band, book)
            repriced, table = _with_rate_ids(repriced.collect())
            manifest.add_rates(table)
            new = pl.concat([df.filter(~inside), repriced.select(cols)]).sort("_i").drop("_i")
            tag = hashlib.sha256(f"{part['file']}|{book.version}|{since}|{until}".encode()).hexdigest()[:8]
            name = os.path.join(os.path.dirname(part["file"]), f"part-{new[SHA][0][:16]}-{tag}.parquet")
            _write_parquet(new, os.path.join(root, name))
            versions = new.group_by("price_book").len().sort("price_book")  # a window may cover part of a part
            replaced[part["file"]] = {**part, "file": name,
                                      "price_books": dict(zip(versions["price_book"].to_list(), versions["len"].to_list()))}
            before.append(_costs(pipeline.with_costs(window)))
            after.append(_costs(pipeline.with_costs(new.filter(inside))))
        changes = _changes(before, after)
        for e in manifest.files.values():
            e["parts"] = [replaced.get(p["file"], p) for p in e["parts"]]
        if targets:
            manifest.repricings.append({
                "at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"), "price_book": book.version,
                "overlays": list(book.overlays), "since": since and since.isoformat(),
                "until": until and until.isoformat(), "months": sorted(months),
                "old_cost": str(changes["old_cost"].sum()), "new_cost": str(changes["new_cost"].sum()),
            })
            manifest.write()
        for name in replaced:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(os.path.join(root, name))
    return RepriceResult(changes, book, sorted(months), len(targets))


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

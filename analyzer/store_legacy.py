"""Reading the store layout of llm-cost before Delta Lake (manifest.json + rows/month=*/part-*.parquet),
only to convert it: `llm-cost store upgrade` (see store.upgrade). Nothing here writes or deletes.

    <store>/rows/month=2026-11/part-<sha>.parquet    priced rows (per-unit rates, a rate id; no costs)
    <store>/manifest.json                            every ingested file and the parts it produced
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field

import polars as pl

from . import aggregate, pipeline, pricebook, tagging
from .errors import AnalyzerError, OptionError
from .schema import COUNT_COLUMNS, MONEY
from .store import SEVERAL_ROWS, _months, _outside  # the date window reads the same in both layouts

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
        try:
            with open(path, encoding="utf-8") as f:
                doc = json.load(f)
        except (OSError, ValueError) as e:
            raise StoreError(f"damaged store: {path}: cannot read the manifest ({e})") from None
        if not isinstance(doc, dict) or doc.get("format") != FORMAT or not isinstance(doc.get("files"), dict):
            raise StoreError(f"damaged store: {path}: not a format-{FORMAT} llm-cost manifest")
        for key, e in doc["files"].items():
            if not isinstance(e, dict) or not isinstance(e.get("parts"), list) or not isinstance(e.get("accounting"), dict):
                raise StoreError(f"damaged store: {path}: entry {key!r} lacks its parts or accounting")
            for p in e["parts"]:
                name = p.get("file") if isinstance(p, dict) else None
                # Part paths are ours: rows/month=YYYY-MM/part-*.parquet, nothing that leaves the store.
                if (not isinstance(name, str) or os.path.isabs(name) or ".." in name.split(os.sep)
                        or not name.startswith(ROWS + os.sep)
                        or os.path.islink(os.path.join(root, name))):
                    raise StoreError(f"damaged store: {path}: part {name!r} is not inside {ROWS}/")
            # The quarantine file is ours too (quarantine/*.jsonl): `store upgrade` copies it into the
            # new table, so a name leading elsewhere would copy someone else's file into the store.
            q = e.get("quarantine")
            if q is not None and (not isinstance(q, str) or os.path.isabs(q) or ".." in q.split(os.sep)
                                  or os.path.dirname(q) != QUARANTINE or os.path.islink(os.path.join(root, q))):
                raise StoreError(f"damaged store: {path}: quarantine file {q!r} is not inside {QUARANTINE}/")
        return cls(root, doc["files"], doc.get("repricings", []), doc.get("rates", {}))

    def parts(self, months: set[str] | None = None) -> list[dict]:
        return [p for e in self.files.values() for p in e["parts"] if months is None or p["month"] in months]

    def referenced(self) -> set[str]:
        names = {p["file"] for p in self.parts()}
        return names | {e["quarantine"] for e in self.files.values() if e.get("quarantine")}

    def by_sha(self, sha: str) -> str | None:
        return next((path for path, e in self.files.items() if e["sha256"] == sha), None)

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


def _is_record(rows: pl.DataFrame | None) -> pl.Series | pl.Expr:
    """Rows that are records (a request, or a pre-aggregated row of unknown size), not the later
    iterations of a request (requests = 0 in a format of store.SEVERAL_ROWS: as the Delta layout
    counts them, so that an upgrade's report equals this one's)."""
    expr = pl.col("requests").is_null() | (pl.col("requests") != 0) | ~pl.col("source").is_in(SEVERAL_ROWS).fill_null(True)
    return rows.select(expr).to_series() if isinstance(rows, pl.DataFrame) else expr


def _records(part: dict) -> int:
    return part.get("records", part["rows"])  # stores written before records were counted: rows


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
        raise StoreError(f"{root}: no {MANIFEST}: not a store of the old layout")
    return Manifest.read(root)


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
    since, until = pipeline.time_window(opts)
    months = _months({p["month"] for p in manifest.parts()}, since, until)
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
    priced = aggregate.with_blocks(priced, opts.tz)  # (--by block: the windows' starts, for the detail too)
    rows, totals = aggregate.summarize(priced, by, opts.tz)
    versions = sorted(set(inside["price_book"].drop_nulls().to_list()))
    overlays = sorted({o for e in manifest.files.values() for o in e.get("overlays", [])}
                      | {o for r in manifest.repricings for o in r["overlays"]})
    book = pricebook.PriceBook({}, {}, [f"store {root}"], overlays, ", ".join(versions) or "none")
    notes = [f"costs as stored in {root} (priced at ingest or by `llm-cost reprice`; not re-priced by this report)"]
    files = {e["path"]: e["dialect"] for e in manifest.files.values() if any(p["month"] in months for p in e["parts"])}
    return pipeline.Report(by, rows, totals, acc, book, opts.tz, dict(sorted(files.items())), notes, priced)


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



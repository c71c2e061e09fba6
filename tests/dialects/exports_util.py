"""Helpers for the export/report dialect tests (anthropic-usage-report, anthropic-console-csv, openai,
openai-usage, litellm-spendlogs): read a file through a dialect, build expected frames."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from pathlib import Path

import polars as pl

from analyzer import dialects, labels, schema
from analyzer.pipeline import Options, analyze
from analyzer.sources import open_source

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "fixtures" / "dialects"
COUNTS = list(schema.COUNT_COLUMNS)


def detect(path: Path | str) -> str:
    return dialects.detect(open_source(str(path))).name


def normalized(path: Path | str, dialect: str | None = None, batch_time: str | None = None) -> pl.DataFrame:
    """The file's normalized rows, labels cleaned as the pipeline cleans them (defaults filled,
    lower-cased), billable usable rows only, in file order."""
    src = open_source(str(path))
    d = dialects.get(dialect) if dialect else dialects.detect(src)
    lf = d.normalize(src, ctx=dialects.Context(batch_time=batch_time)) if batch_time else d.normalize(src)
    frame = labels.apply_to_rows(lf, _dimensions(lf)).collect()
    return frame.filter(pl.col("_ok") & pl.col("_nb").is_null())


def _dimensions(lf: pl.LazyFrame) -> list[str]:
    return [c for c in lf.collect_schema().names() if c not in schema.CANONICAL and not c.startswith("_")]


def expected(rows: list[dict], dims: tuple[str, ...] = ()) -> pl.DataFrame:
    """Canonical rows (timestamps as ISO text, money as text) typed like the normalized frame."""
    types = {**schema.CANONICAL, **{d: pl.String() for d in dims}}
    cols = list(rows[0])
    frame = pl.DataFrame([{c: r.get(c) for c in cols} for r in rows],
                         schema={c: (pl.String if c in ("timestamp", "reported_cost") else types[c]) for c in cols},
                         orient="row")
    return frame.with_columns(
        *([pl.col("timestamp").str.to_datetime(time_unit="us", time_zone="UTC")] if "timestamp" in cols else []),
        *([pl.col("reported_cost").cast(schema.MONEY)] if "reported_cost" in cols else []),
    )


def cost(paths, **opts) -> tuple[Decimal, object]:
    """Total cost of the files through the whole pipeline, and the report."""
    report = analyze([str(p) for p in paths], by=[], opts=Options(**opts))
    return report.totals["cost"], report


def epoch(iso: str) -> int:
    return int(dt.datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp())


def quarantined(path: str | Path) -> list[dict]:
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]

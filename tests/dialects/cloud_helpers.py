"""Shared by the cloud dialects' tests (Bedrock, Vertex, OpenTelemetry, custom mappings)."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import polars as pl

from analyzer import Options, analyze, dialects, price_requests
from analyzer.errors import AnalyzerError
from analyzer.sources import open_source

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "fixtures" / "dialects"
M = Decimal(1_000_000)


def detected(path: Path | str) -> str | None:
    """The dialect detected for a file, or None when no dialect claims it."""
    try:
        return dialects.detect(open_source(str(path))).name
    except AnalyzerError:
        return None


def other_fixtures(own: str) -> list[Path]:
    """Every sample and dialect fixture file except `own`'s (for "does not claim others' files")."""
    files = [p for p in sorted((ROOT / "fixtures").rglob("*")) if p.is_file() and not p.name.endswith(".toml")
             and not p.name.startswith(".") and p.suffix != ".md"]
    return [p for p in files if (FIXTURES / own) not in p.parents]


def normalized(path: Path | str, dialect: str | None = None) -> pl.DataFrame:
    """The dialect's normalized rows (every record, quarantined ones with `_ok` false)."""
    src = open_source(str(path))
    d = dialects.get(dialect) if dialect else dialects.detect(src)
    try:
        return d.normalize(src).collect()
    except pl.exceptions.ComputeError:  # a malformed record: read again as text, as the pipeline does
        return d.normalize(src, robust=True).collect()


def expected(rows: list[dict], columns: dict[str, pl.DataType]) -> pl.DataFrame:
    df = pl.DataFrame([{c: r.get(c) for c in columns} for r in rows], schema=columns, orient="row")
    if "timestamp" in columns:
        df = df.with_columns(pl.col("timestamp").dt.replace_time_zone("UTC"))
    return df


def report(paths, tmp_path: Path, by=("model",), **opts):
    return analyze([str(p) for p in paths], list(by), Options(quarantine=str(tmp_path / "q.jsonl"), **opts))


def priced(paths, tmp_path: Path, **opts) -> pl.DataFrame:
    rows, _ = price_requests([str(p) for p in paths], Options(quarantine=str(tmp_path / "q.jsonl"), **opts))
    return rows.lazy().collect()


def quarantine_lines(tmp_path: Path) -> dict[tuple[str, int], str]:
    """(file name, line) -> reason, from the run's quarantine file."""
    with open(tmp_path / "q.jsonl", encoding="utf-8") as f:
        return {(Path(x["file"]).name, x["line"]): x["reason"] for x in map(json.loads, f)}

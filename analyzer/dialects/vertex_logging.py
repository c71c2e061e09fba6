"""Vertex AI request-response logging (Claude): the mapping is data (vertex_logging.toml); this module
splits the `endpoint` resource name (project, location -> endpoint scope), joins `model@model_version`
for rows whose response names no model, and reads BigQuery's "... UTC" timestamp text."""

from __future__ import annotations

from pathlib import Path

import polars as pl

from ..sources import LINE, SourceFile
from . import _standin as mapped

_ENDPOINT = r"projects/([^/]+)/locations/([^/]+)/"


def _prepare(lf: pl.LazyFrame, src: SourceFile, ctx) -> pl.LazyFrame:
    def get(key: str) -> pl.Expr:
        return pl.col(LINE).str.json_path_match(f"$.{key}")

    endpoint, model, version = get("endpoint"), get("model"), get("model_version")
    region = endpoint.str.extract(_ENDPOINT, 2)
    return lf.with_columns(
        get("logging_time").str.replace(r"\s*UTC$", "Z").alias("@logging_time"),
        pl.when(version.str.contains(r"^\d{8}$")).then(pl.format("{}@{}", model, version)).alias("@model_at_version"),
        endpoint.str.extract(_ENDPOINT, 1).alias("@project"),
        region.alias("@region"),
        pl.when(region == "global").then(pl.lit("global")).when(region.is_not_null()).then(pl.lit("regional"))
        .alias("@endpoint_scope"),
    )


DIALECT = mapped.load(Path(__file__).with_suffix(".toml"), prepare=_prepare)

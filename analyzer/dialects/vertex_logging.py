"""Vertex AI request-response logging (Claude): the mapping is data (vertex_logging.toml); this module
splits the `endpoint` resource name (project, location -> endpoint scope), joins `model@model_version`
for rows whose response names no model, and reads BigQuery's "... UTC" timestamp text."""

from __future__ import annotations

from pathlib import Path

import polars as pl

from ..sources import SourceFile
from . import mapped

_ENDPOINT = r"projects/([^/]+)/locations/([^/]+)/"
_READS = ("endpoint", "model", "model_version", "logging_time")


def _prepare(lf: pl.LazyFrame, src: SourceFile, ctx, get) -> pl.LazyFrame:
    endpoint, model, version, logged = (get((k,)).cast(pl.String) for k in _READS)
    region = endpoint.str.extract(_ENDPOINT, 2)
    return lf.with_columns(
        logged.str.replace(r"\s*UTC$", "Z").alias("logging_time_utc"),
        pl.when(version.str.contains(r"^\d{8}$")).then(pl.format("{}@{}", model, version)).alias("model_at_version"),
        endpoint.str.extract(_ENDPOINT, 1).alias("endpoint_project"),
        region.alias("endpoint_region"),
        pl.when(region == "global").then(pl.lit("global")).when(region.is_not_null()).then(pl.lit("regional"))
        .alias("endpoint_scope_from_location"),
    )


DIALECT = mapped.dialect_from_mapping(Path(__file__).with_suffix(".toml"), prepare=_prepare, adds=("endpoint_scope",),
                      reads={(k,): pl.String() for k in _READS})

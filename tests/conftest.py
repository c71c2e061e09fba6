from __future__ import annotations

import os
from pathlib import Path

import polars as pl
import pytest

ROOT = Path(__file__).resolve().parent.parent

# A table written to a pipe is as wide as COLUMNS says (writers.plain_width), and the golden tables are
# whole. pytest-xdist's workers (`make test` runs two) set COLUMNS=80, and so may a developer's shell:
# the suite runs as a pipe without it, whoever starts it. Tests that need a width set their own.
for _size in ("COLUMNS", "LINES"):
    os.environ.pop(_size, None)
SAMPLE = ROOT / "fixtures" / "sample"
COLUMNS = ["request_id", "timestamp", "model", "workspace", "service_tier", "speed", "inference_geo", "input_tokens",
           "cache_write_5m_tokens", "cache_write_1h_tokens", "cache_read_tokens", "output_tokens",
           "web_search_requests"]


def canonical_frame(rows: list[dict]) -> pl.DataFrame:
    """Canonical requests with defaults filled, as a typed frame (timestamps as ISO text)."""
    base = {"request_id": None, "workspace": "default", "service_tier": "standard", "speed": "standard",
            "inference_geo": None, "cache_write_5m_tokens": 0, "cache_write_1h_tokens": 0, "cache_read_tokens": 0,
            "web_search_requests": 0}
    full = [{**base, **r} for r in rows]
    return pl.DataFrame(full, schema={c: (pl.Int64 if c.endswith(("_tokens", "_requests")) else pl.String)
                                      for c in COLUMNS})


def write_frame(df: pl.DataFrame, path: Path) -> Path:
    """The same rows as CSV, JSONL or Parquet (by extension)."""
    if path.suffix == ".csv":
        df.write_csv(path)
    elif path.suffix == ".jsonl":
        df.write_ndjson(path)
    elif path.suffix == ".parquet":
        df.with_columns(pl.col("timestamp").str.to_datetime(time_zone="UTC")).write_parquet(path)
    else:
        raise ValueError(path)
    return path


@pytest.fixture
def quarantine(tmp_path) -> str:
    return str(tmp_path / "quarantine.jsonl")


@pytest.fixture(scope="session", autouse=True)
def _no_quarantine_file_left_in_the_repository():
    """Examples run in the repository (docs, the screenshot) and may write a report's default
    quarantine file there: the suite leaves none behind that was not there before it."""
    left = ROOT / "llm-cost-quarantine.jsonl"
    existed = left.exists()
    yield
    if not existed:
        left.unlink(missing_ok=True)

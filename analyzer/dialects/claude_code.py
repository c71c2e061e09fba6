"""`claude-code`: Claude Code transcripts. The mapping (claude_code.toml) says where usage is; this
module adds what a path cannot: the project, from where the file lies, and error lines.

- project: transcripts live in `projects/<project>/<session>.jsonl` (subagents deeper); the
  directory under `projects` names the project (the escaped working directory).
- `<synthetic>` lines are messages Claude Code wrote itself (usage limits, API errors) with zero
  usage: counted as not billable rather than as an unknown model.
- `[1m]` model suffixes (the 1M-context beta marker) are stripped by the model resolver.
"""

from pathlib import Path, PurePath

import polars as pl

from . import mapped


def project_of(path: str) -> str | None:
    parts = PurePath(path).parts
    if "projects" in parts[:-1]:
        i = len(parts) - 1 - parts[::-1].index("projects")
        return parts[i + 1] if i + 1 < len(parts) - 1 else None
    return PurePath(path).parent.name or None


def _project(src) -> pl.Expr:
    if not src.members:
        return pl.lit(project_of(src.display), pl.String)
    # Several files in one scan: the same rule as project_of, on each row's file.
    path = pl.col("source_file")
    return pl.coalesce(path.str.extract(r"^(?:.*/)?projects/([^/]+)/.+$", 1),
                       path.str.extract(r"([^/]+)/[^/]+$", 1))


def _finish(lf: pl.LazyFrame, src, ctx) -> pl.LazyFrame:
    synthetic = pl.col("model_raw") == "<synthetic>"
    return lf.with_columns(
        _project(src).alias("project"),
        pl.when(synthetic).then(pl.lit("Claude Code error message (no usage)")).otherwise(pl.col("_nb")).alias("_nb"),
    )


DIALECT = mapped.load(Path(__file__).with_suffix(".toml"), finish=_finish)

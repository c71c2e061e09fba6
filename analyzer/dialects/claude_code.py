"""`claude-code`: Claude Code transcripts. The mapping (claude_code.toml) says where usage is; this
module adds what a path cannot: the project, from where the file lies, and error lines.

- project: transcripts live in `projects/<project>/<session>.jsonl` (subagents deeper); the
  directory under `projects` names the project (the escaped working directory).
- `<synthetic>` lines are messages Claude Code wrote itself (usage limits, API errors) with zero
  usage: counted as not billable rather than as an unknown model.
- `[1m]` model suffixes (the 1M-context beta marker) are stripped by the model resolver.
- usage lines: `type` assistant, or (older versions, which wrote no type) any line with a usage
  object; other lines (user, summary, snapshots, progress) are not usage.
- the request key joins message.id and requestId (as ccusage does): the lines of one streamed
  response share both and merge; two requests that share a message id stay two.
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


READS = {("type",): pl.String(), ("message", "id"): pl.String(), ("requestId",): pl.String()}


def request_key(message_id: pl.Expr, request_id: pl.Expr) -> pl.Expr:
    """`message.id:requestId`; `message.id` alone, or `:requestId`, when a line has only one. A `:` or
    `\\` inside the message id is escaped, so that no two different pairs make one key."""
    mid = message_id.cast(pl.String).str.replace_all("\\", "\\\\", literal=True).str.replace_all(":", "\\:", literal=True)
    rid = pl.lit(":") + request_id.cast(pl.String)
    return pl.when(mid.is_null()).then(rid).otherwise(mid + rid.fill_null(""))


def _prepare(lf: pl.LazyFrame, src, ctx, get) -> pl.LazyFrame:
    kind = get(("type",))
    has_usage = (get(("message", "usage", "input_tokens")).is_not_null()
                 | get(("message", "usage", "output_tokens")).is_not_null())
    usage = (kind == "assistant") | (kind.is_null() & has_usage)
    # (a line that cannot be read stays, to be quarantined: it may have been usage)
    return (lf.filter(usage.fill_null(False) | ~pl.col("_line_ok"))
            .with_columns(request_key(get(("message", "id")), get(("requestId",))).alias("_x_key")))


def _finish(lf: pl.LazyFrame, src, ctx) -> pl.LazyFrame:
    synthetic = pl.col("model_raw") == "<synthetic>"
    return lf.with_columns(
        _project(src).alias("project"),
        pl.when(synthetic).then(pl.lit("Claude Code error message (no usage)")).otherwise(pl.col("_nb")).alias("_nb"),
    )


DIALECT = mapped.dialect_from_mapping(Path(__file__).with_suffix(".toml"), prepare=_prepare, finish=_finish, reads=READS)

"""`claude-code`: Claude Code transcripts. The mapping (claude_code.toml) says where usage is; this
module adds what a path cannot: the project, from where the file lies, and error lines.

- project: transcripts live in `projects/<project>/<session>.jsonl` (subagents deeper); the
  directory under `projects` names the project: its path with every character but letters and digits
  made `-` (`/home/dev/acme-billing` -> `-home-dev-acme-billing`). The project is shown as that path,
  taken from the lines' `cwd` where it escapes to the directory's name (a line run in a subdirectory
  counts for its project); the directory's name where no cwd says it (no cwd, or one outside the
  project: a path cannot be recovered from its escaped form).
- `<synthetic>` lines are messages Claude Code wrote itself (usage limits, API errors) with zero
  usage: counted as not billable rather than as an unknown model.
- `[1m]` model suffixes (the 1M-context beta marker) are stripped by the model resolver.
- usage lines: `type` assistant, or (older versions, which wrote no type) any line with a usage
  object; other lines (user, summary, snapshots, progress) are not usage.
- the request key is an Anthropic message.id (`msg_...`; `:requestId` for a line without one):
  such an id names one billed API response. (A message id of another shape, a gateway's or
  relay's own, may be one value for every response, ccusage #1635: joined with the requestId,
  `id:requestId`, as before.) The lines of one streamed response share it and merge; so do the copies
  Claude Code writes of a response elsewhere: a `/btw` side question copies the parent's assistant
  lines, same message id and usage, under a new requestId, into
  `subagents/agent-aside_question-*.jsonl` (ccusage #913). ccusage counts such a copy once since
  its PR #1155 (a sidechain line whose message id also has a non-sidechain line is dropped);
  keying on the message id alone does that and also merges a copy outside a sidechain. Copies
  that differ keep dedupe's rule: the non-sidechain copy wins (rank), then the most tokens.
  Stores written before hold `message.id:requestId` ids; `old_key_to_new` lets a night's
  repeat check compare them with the new keys (store._repeated).
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


def _folder(src) -> pl.Expr:
    if not src.members:
        return pl.lit(project_of(src.display), pl.String)
    # Several files in one scan: the same rule as project_of, on each row's file.
    path = pl.col("source_file")
    return pl.coalesce(path.str.extract(r"^(?:.*/)?projects/([^/]+)/.+$", 1),
                       path.str.extract(r"([^/]+)/[^/]+$", 1))


def _escaped(path: pl.Expr) -> pl.Expr:
    """A path as Claude Code names its project directory (older versions kept `.` and `_`: both
    sides are compared escaped alike)."""
    return path.str.replace_all(r"[^A-Za-z0-9]", "-")


def project_path(cwd: pl.Expr, folder: pl.Expr) -> pl.Expr:
    """The project's path: `cwd` when it escapes to the folder's name, its leading part when `cwd` is
    a subdirectory of the project; else the folder's name (see the module's docstring)."""
    name = _escaped(folder)
    esc = _escaped(cwd)
    n = folder.str.len_chars()
    inside = esc.str.starts_with(name + "-") & (cwd.str.slice(n, 1) == "/")
    return (pl.when(esc == name).then(cwd)
            .when(inside).then(cwd.str.slice(0, n))
            .otherwise(folder))


def _project(src, columns) -> pl.Expr:
    folder = _folder(src)
    return project_path(pl.col("cwd"), folder) if "cwd" in columns else folder


READS = {("type",): pl.String(), ("message", "id"): pl.String(), ("requestId",): pl.String()}


def request_key(message_id: pl.Expr, request_id: pl.Expr) -> pl.Expr:
    """An Anthropic message id (`msg_...`: the API's, Bedrock's `msg_bdrk_`, Vertex's `msg_vrtx_`)
    alone: it names one billed response. Any other message id (a gateway's or relay's own, which
    may be one value for every response) joined with the requestId, `id:requestId`, as before;
    `:requestId` for a line without a message id. A `:` or `\\` inside the message id is escaped, so
    that no two different lines' keys meet unless the rule above says so."""
    mid = _escaped_id(message_id)
    rid = pl.lit(":") + request_id.cast(pl.String)
    # (an empty message id names nothing: counted as none, not as one key shared by every such line)
    return (pl.when(mid.is_null() | (mid == "")).then(rid)
            .when(mid.str.starts_with(ANTHROPIC_ID)).then(mid)
            .otherwise(mid + rid.fill_null("")))


ANTHROPIC_ID = "msg_"


def _escaped_id(message_id: pl.Expr) -> pl.Expr:
    return message_id.cast(pl.String).str.replace_all("\\", "\\\\", literal=True).str.replace_all(":", "\\:", literal=True)


# Stores written before keyed every line `message.id:requestId` (the message id escaped as above,
# so its end is the first `:` no `\` escapes).
_OLD_KEY = r"(?s)^(" + ANTHROPIC_ID + r"(?:[^\\:]|\\.)*):.*$"


def old_key_to_new(key: pl.Expr) -> pl.Expr:
    """A request key as this version writes it, from one an earlier version wrote (`msg_x:req` ->
    `msg_x`; other keys were written as now). Keys of this version come back unchanged (no
    unescaped `:` after an Anthropic message id), so the two kinds of stored ids can be compared
    with a night's keys alike (store._repeated)."""
    return key.str.replace(_OLD_KEY, "${1}")


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
        _project(src, lf.collect_schema().names()).alias("project"),
        pl.when(synthetic).then(pl.lit("Claude Code error message (no usage)")).otherwise(pl.col("_nb")).alias("_nb"),
    )


DIALECT = mapped.dialect_from_mapping(Path(__file__).with_suffix(".toml"), prepare=_prepare, finish=_finish, reads=READS)


def data_dirs(environ: dict | None = None, home: str | None = None) -> list[str]:
    """Where Claude Code keeps its transcripts, as ccusage looks: each directory of CLAUDE_CONFIG_DIR
    (comma-separated) with a `projects` directory inside; without it, `~/.config/claude/projects` and
    `~/.claude/projects` (both when both exist). A CLAUDE_CONFIG_DIR naming no such directory is an
    error (it was set to be used), and so is finding none."""
    import os

    from ..errors import OptionError

    environ = os.environ if environ is None else environ
    home = home or os.path.expanduser("~")
    setting = environ.get("CLAUDE_CONFIG_DIR", "").strip()
    if setting:
        tried = [os.path.join(os.path.expanduser(d.strip()), "projects") for d in setting.split(",") if d.strip()]
        found = [d for d in dict.fromkeys(tried) if os.path.isdir(d)]
        if not found:
            raise OptionError(f"no log paths given, and CLAUDE_CONFIG_DIR={setting} holds no projects directory "
                              f"(looked for {', '.join(tried)}); give log files to read, or fix CLAUDE_CONFIG_DIR")
        return found
    tried = [os.path.join(home, ".config", "claude", "projects"), os.path.join(home, ".claude", "projects")]
    found = [d for d in tried if os.path.isdir(d)]
    if not found:
        raise OptionError(f"no log paths given, and no Claude Code transcripts found (looked in {', '.join(tried)}); "
                          "give log files to read (files, directories, globs, -), or --store DIR")
    return found

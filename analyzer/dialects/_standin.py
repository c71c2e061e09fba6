"""TEMPORARY stand-in for the lead's mapped-dialect engine (analyzer/dialects/mapped.py), implementing
the subset of DIALECT_API.md the cloud dialects use, so their fixtures and tests can run before it
lands. Deleted when main's engine is merged."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from ..sources import LINE, SourceFile, json_to_lines
from . import Dialect
from .canonical import _bad_json_line, canonical_frame


@dataclass
class Ctx:
    notes: list[str] = field(default_factory=list)
    batch_time: str | None = None

    def note(self, text: str) -> None:
        self.notes.append(text)


def _jp(path: str) -> str:
    out, cur, q = [], "", False
    for ch in path:
        if ch == '"':
            q = not q
        elif ch == "." and not q:
            out.append(cur)
            cur = ""
        else:
            cur += ch
    out.append(cur)
    return "$" + "".join(f"['{p}']" for p in out)


def _get(path: str) -> pl.Expr:
    if path.startswith("@"):
        return pl.col(path).cast(pl.String)
    return pl.col(LINE).str.json_path_match(_jp(path))


def load(path, prepare=None, finish=None) -> Dialect:
    spec = tomllib.loads(Path(path).read_text())
    fields = {k: (v if isinstance(v, list) else [v]) for k, v in spec.get("fields", {}).items()}
    dims = spec.get("dimensions", {})
    consts = spec.get("constants", {})
    values = spec.get("values", {})

    def normalize(src: SourceFile, robust: bool = False) -> pl.LazyFrame:
        if src.container == "json":
            src = json_to_lines(src)
        lf = src.scan_lines().filter(pl.col(LINE).str.strip_chars() != "")
        ctx = Ctx()
        if prepare:
            lf = prepare(lf, src, ctx)
        for k, want in spec.get("keep", {}).items():
            lf = lf.filter(_get(k).is_in(want if isinstance(want, list) else [want]))
        for k, m in spec.get("not_billable", {}).items():
            lf = lf.filter(~_get(k).is_in(list(m)).fill_null(False))
        cols = {}
        for c, paths in fields.items():
            e = pl.coalesce([_get(p) for p in paths]) if len(paths) > 1 else _get(paths[0])
            if c in values:
                e = e.replace(values[c])
            cols[f"_p_{c}"] = e
        for c, v in consts.items():
            cols[f"_p_{c}"] = pl.lit(v)
        if spec.get("file_time"):
            import datetime as dt
            import os
            t = dt.datetime.fromtimestamp(os.path.getmtime(src.path), dt.UTC)
            cols["_p_timestamp"] = pl.lit(t.strftime("%Y-%m-%dT%H:%M:%S.%fZ"))
            ctx.note(f"{src.display}: times taken from the file's modification time")
        for d, p in dims.items():
            cols[d] = pl.coalesce([_get(x) for x in p]) if isinstance(p, list) else _get(p)
        lf = lf.with_columns(**cols)
        names = {c: f"_p_{c}" for c in [*fields, *consts, *(["timestamp"] if spec.get("file_time") else [])]}
        out = canonical_frame(lf, names, list(dims), {c: pl.String() for c in names}, pl.col, pl.col(LINE), src,
                              bad_record=_bad_json_line())
        if spec.get("input_includes_cache"):
            cache = pl.col("cache_read_tokens") + pl.col("cache_write_5m_tokens") + pl.col("cache_write_1h_tokens")
            bad = cache > pl.col("input_tokens")
            out = out.with_columns(
                (pl.col("input_tokens") - cache).clip(0).alias("input_tokens"),
                (pl.col("_ok") & ~bad).alias("_ok"),
                pl.when(bad).then(pl.lit("cache tokens exceed input")).otherwise(pl.col("_reason")).alias("_reason"))
        if finish:
            out = finish(out, src, ctx)
        return out

    return Dialect(name=spec["name"], description=spec.get("description", ""),
                   required=tuple(s.lower() for s in spec.get("signature", [])), optional=(*fields, *consts, "cache_write_5m_tokens", "cache_write_1h_tokens"),
                   normalize=normalize, priority=spec.get("priority", 0))

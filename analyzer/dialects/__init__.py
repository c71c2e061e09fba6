"""Log formats ("dialects"): how each real usage log maps onto the canonical request schema.

A dialect is data plus one function: its name, what it looks like (the keys its first records carry),
and `normalize(source) -> LazyFrame` producing canonical columns, dimension columns, and two
bookkeeping columns: `_reason` (null, or why the row is quarantined) and `_raw` (the record's text,
written to the quarantine file). Detection picks the dialect whose signature the first records carry.
"""

from __future__ import annotations

import difflib
import importlib
import pkgutil
import re
import shlex
from collections.abc import Callable
from dataclasses import dataclass, field

import polars as pl

from ..errors import DialectError
from ..sources import SourceFile


@dataclass
class Context:
    """What a run tells every dialect, and what dialects tell the run back."""

    batch_time: str | None = None  # --batch-time: when records that carry no time happened
    exact_lines: bool = True  # rows of a file set need their line in their own file (see SourceFile.scan_lines)
    # The dimensions the run uses (a report's --by), or None for all: a dimension nobody asked for is
    # not decoded from JSON (a session id or directory per line is real work, and memory).
    dimensions: set[str] | None = None
    notes: list[str] = field(default_factory=list)  # printed under the report
    # Searches for late JSON keys put off until the run's pass (canonical.KeyCheck), or None: search first
    # (a run that does not check what its pass read: engine_spark's, the quarantine pass).
    key_checks: list | None = None
    # File (as shown) -> the only lines the run needs of it (a Series; the quarantine pass), or None: all.
    # A robust reading by parts (analyzer/line_retry.py) reads no others; another reads them all.
    lines: dict | None = None

    def note(self, text: str) -> None:
        if text not in self.notes:
            self.notes.append(text)


@dataclass(frozen=True)
class Dialect:
    name: str
    description: str
    required: tuple[str, ...]  # keys every record of this format carries (the detection signature)
    optional: tuple[str, ...]
    normalize: Callable[..., pl.LazyFrame]  # (source, robust=False, ctx=None) -> normalized LazyFrame
    # Extra test beyond the signature, for formats whose keys overlap (e.g. nested JSON shapes).
    matches: Callable[[SourceFile], bool] | None = None
    priority: int = 0  # higher wins when two dialects both match
    # One request may be written on several records (Claude Code writes a line per content block):
    # such repeats are always merged on request_id, and counted apart from duplicates.
    repeats: bool | Callable[[SourceFile], bool] = False  # or decided per file
    # A record may be read as several rows (a response's steps, a run's models: `_rec` 1 on its first
    # row), whose later rows, and only those, say `requests` 0: the store tells records by it.
    several_rows: bool = False
    # Files of this format can be read together in one scan (their normalize depends on no file's
    # first records): set for formats that come as trees of many small files.
    batch_files: bool = False
    # The signature a tree's further files are recognised by from their first bytes alone (see
    # quick_keys); the detection signature when empty. Stricter where the signature has alternatives
    # other formats' text also holds (a Bedrock log has "requestId" and "usage" too).
    quick: tuple[str, ...] = ()
    # Its fast (not robust) pass reads from JSON only the fields of the first records, and fails on
    # any other's value (see canonical.to_canonical): those are constants there (see carries).
    sampled: bool = False
    # Each row depends on its own line alone (no value carried from line to line): a file's robust
    # retry may then read its good lines on the fast path (see analyzer/line_retry.py).
    line_local: bool | Callable[[SourceFile], bool] = False

    def repeats_in(self, src: SourceFile) -> bool:
        return self.repeats(src) if callable(self.repeats) else self.repeats

    def quick_keys(self) -> tuple[tuple[bytes, ...], ...]:
        """The signature as quoted JSON keys (the last key of each path), for `sources.looks_like`."""
        return tuple(tuple(f'"{alt.split(".")[-1]}"'.encode() for alt in entry.split("|"))
                     for entry in self.quick or self.required)

    def missing(self, src: SourceFile) -> list[str]:
        cols = {c.lower().lstrip("\ufeff").strip() for c in src.columns}
        return [k for k in self.required if not any(a in cols for a in k.split("|"))]

    def carries(self, src: SourceFile, robust: bool = True) -> set[str]:
        """Canonical columns this file may have (the rest are constants: defaults or null). JSON
        records may carry any field the dialect knows, even one absent from the first records
        (unless the pass reads only those, `sampled`, and fails on any other)."""
        cols = {c.lower().lstrip("\ufeff").strip() for c in src.columns}
        if src.container in ("json", "jsonl") and (robust or not self.sampled):
            cols |= {k for key in (*self.required, *self.optional) for k in key.split("|")}
        aliases = {"model": "model_raw", "cache_write_tokens": "cache_write_5m_tokens"}
        return cols | {canonical for name, canonical in aliases.items() if name in cols}

    def detects(self, src: SourceFile) -> bool:
        return not self.missing(src) and (self.matches is None or self.matches(src))


def _registry() -> dict[str, Dialect]:
    """Every module of this package that defines DIALECT (or DIALECTS): adding a format is adding a
    module (and its mapping file), nothing else."""
    found: list[Dialect] = []
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda i: (i.name != "canonical", i.name)):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        found.extend(getattr(module, "DIALECTS", [getattr(module, "DIALECT", None)]))
    return {d.name: d for d in found if d is not None}


DIALECTS: dict[str, Dialect] = _registry()


def get(name: str) -> Dialect:
    try:
        return DIALECTS[name]
    except KeyError:
        close = difflib.get_close_matches(name, list(DIALECTS), n=1, cutoff=0.6)
        hint = f"did you mean {close[0]}? " if close else ""
        raise DialectError(f"unknown dialect {name!r}; {hint}known: {', '.join(DIALECTS)} (see `llm-cost formats`)"
                           ) from None


_DUPLICATED = re.compile(r"_duplicated_\d+$")  # how Polars renames a repeated CSV header name


def ambiguous_columns(src: SourceFile, dialect: Dialect) -> None:
    """A CSV header that names a column the format reads twice (`input_tokens,...,input_tokens`, or
    `Model` and `model`, which read as one name) is refused: the reader would silently count one
    of the two, and nothing says which one the exporter meant."""
    if src.container != "csv":
        return
    known = {k for key in (*dialect.required, *dialect.optional) for k in key.split("|")}
    first: dict[str, str] = {}  # name as matched -> its first spelling in the header
    for c in src.columns:
        spelled = _DUPLICATED.sub("", c) if _DUPLICATED.sub("", c) in src.columns else c
        name = spelled.lower().lstrip("\ufeff").strip()
        if name in first and name in known:
            raise DialectError(
                f"{src.display}: the header names column {spelled!r} again (after {first[name]!r}; names match "
                "without case or spaces): which one to count is ambiguous, and neither is ignored silently; "
                "remove or rename the extra column")
        first.setdefault(name, spelled)


def detect(src: SourceFile) -> Dialect:
    """The dialect whose signature the file's first records carry; a clear error otherwise."""
    if not src.columns:
        raise DialectError(f"{src.display}: no records found (empty file, or no readable records in its first lines)")
    found = sorted((d for d in DIALECTS.values() if d.detects(src)), key=lambda d: -d.priority)
    if found:
        return found[0]
    # Closest: the largest share of its signature present (ties: the registry's order, canonical first).
    closest = max(DIALECTS.values(), key=lambda d: 1 - len(d.missing(src)) / max(len(d.required), 1))
    if not closest.missing(src):  # the keys are there, but the records are not that format's
        raise DialectError(
            f"{src.display}: not a usage log llm-cost reads: it is shaped like {closest.name!r} but its records "
            "do not count tokens (a cost report or invoice? `llm-cost audit --invoice` reads those). "
            "Use --dialect to force one; `llm-cost formats` lists them")
    missing = closest.missing(src)
    # A near miss (one signature entry short) names that format; otherwise the log is likely home-grown:
    # a mapping reads it, and `formats --suggest` writes one to start from.
    near = f"Closest format: {closest.name!r}, missing {', '.join(missing)}. " if len(missing) <= 1 else ""
    raise DialectError(
        f"{src.display}: unknown log format (columns seen: {', '.join(src.columns[:12])}"
        f"{', ...' if len(src.columns) > 12 else ''}). {near}A log of your own: describe it with a mapping "
        f"(`llm-cost formats --suggest {'-' if src.display == '<stdin>' else shlex.quote(src.display)} -o mapping.toml` writes one to start from), then pass "
        "--map mapping.toml; `llm-cost formats` lists the formats read without one"
    )

"""Dialects declared as data: a TOML mapping from paths in a log's records to canonical columns.

Every JSON-shaped log (Anthropic responses, batch results, Claude Code transcripts, ...) differs from
the others only in where it keeps the same facts. A mapping says where (see
`analyzer/dialects/MAPPING.md`); this module turns it into a lazy normalize step. The same mapping
format is what users give `--map` for home-grown logs.

Reading JSON records, two ways (as for the canonical dialect, see pipeline._with_retry):
- fast: each line is decoded once into a struct holding only the mapped paths, with counts typed
  as integers; a malformed line or a count of the wrong type fails the run, which is then retried:
- robust: every path is read as text from each line with a JSON path, so that a broken record is
  quarantined with its line number instead.
"""

from __future__ import annotations

import datetime as dt
import functools
import os
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from .. import labels, schema
from ..errors import DialectError
from ..labels import UNREADABLE
from ..sources import BAD, BEYOND, BEYOND_RAW, LINE, NOT_UTF8, SourceFile, json_to_lines, loads_first, with_beyond
from . import Context, Dialect
from ._json_text import ESCAPED_KEY as _ESCAPED_KEY
from ._json_text import first_keys_only, quoted_numbers
from ._json_text import regex_literal as _regex_literal
from ._json_text import written as _written
from .canonical import canonical_frame, nameable

# Canonical columns a mapping may fill (besides dimensions).
FIELDS = ("timestamp", "model_raw", *schema.COUNT_COLUMNS, "cache_write_tokens", "requests", "reported_cost",
          "request_id", "platform", "endpoint_scope", "service_tier", "speed", "inference_geo", "context_window",
          "rank")
COUNTS = (*schema.COUNT_COLUMNS, "cache_write_tokens", "requests")
KEYS = {"name", "description", "signature", "priority", "input_includes_cache", "repeats", "file_time",
        "prefilter", "cut", "batch_files", "quick_signature", "extra_dimensions", "keep", "not_billable", "fields", "dimensions", "constants", "values"}
DECODED = "_rec_json"


# --- paths ------------------------------------------------------------------------------------------

@functools.lru_cache(maxsize=4096)
def split_path(path: str) -> tuple[str, ...]:
    """`a.b."c.d"` -> ("a", "b", "c.d"): dots separate keys; a quoted key may contain dots."""
    parts, cur, quoted = [], "", False
    for ch in path:
        if ch == '"':
            quoted = not quoted
        elif ch == "." and not quoted:
            parts.append(cur)
            cur = ""
        else:
            cur += ch
    parts.append(cur)
    if quoted or any(p == "" for p in parts):
        raise ValueError(f"malformed path {path!r}")
    return tuple(parts)


def _json_path(parts: tuple[str, ...]) -> str:
    return "$" + "".join(f".{p}" if p.isidentifier() else "['" + p.replace("'", "\\'") + "']" for p in parts)


def _lookup(record, parts: tuple[str, ...]):
    """A path's value in one decoded sample record (detection only), or None."""
    for p in parts:
        if isinstance(record, str) and record[:1] in "{[":  # a column holding JSON text
            try:
                record = loads_first(record)  # (a key named twice: its first value, as read)
            except (ValueError, RecursionError):
                return None
        if not isinstance(record, dict) or p not in record:
            return None
        record = record[p]
    return record


# --- the mapping ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Mapping:
    name: str
    description: str
    signature: tuple[str, ...]
    fields: dict[str, tuple[tuple[str, ...], ...]]  # canonical column -> alternative paths
    dimensions: dict[str, tuple[tuple[str, ...], ...]]
    constants: dict[str, str]
    values: dict[str, dict[str, str]]
    keep: dict[tuple[str, ...], tuple[str, ...]]
    not_billable: dict[tuple[str, ...], dict[str, str]]
    priority: int = 0
    input_includes_cache: bool = False
    repeats: bool = False
    file_time: bool = False
    prefilter: tuple[str, ...] = ()  # a line is decoded if it holds any of these (`!text`: lacks it)
    cut: tuple[str, str] | None = None  # (member cut out before decoding, the member after it: see _cut)
    batch_files: bool = False  # many files of this format are read in one scan (see SourceFile.members)
    quick_signature: tuple[str, ...] = ()  # how a tree's further files are recognised (Dialect.quick)
    extra_dimensions: tuple[str, ...] | None = None  # top-level keys never taken as dimensions


class _Doc:
    """A mapping document being validated: its tables, read with one-line errors naming the key."""

    def __init__(self, doc: dict, where: str):
        self.doc, self.where = doc, where

    def fail(self, msg: str) -> DialectError:
        return DialectError(f"{self.where}: {msg}")

    def paths(self, value, key: str) -> tuple[tuple[str, ...], ...]:
        alts = [value] if isinstance(value, str) else value
        if not isinstance(alts, list) or not alts or not all(isinstance(a, str) for a in alts):
            raise self.fail(f"{key}: expected a path or a list of paths, got {value!r}")
        try:
            return tuple(split_path(a) for a in alts)
        except ValueError as e:
            raise self.fail(f"{key}: {e}") from None

    def table(self, key: str) -> dict:
        value = self.doc.get(key, {})
        if not isinstance(value, dict):
            raise self.fail(f"{key!r} must be a table")
        return value

    def strings(self, key: str, what: str) -> tuple[str, ...]:
        value = self.doc.get(key, [])
        if not isinstance(value, list) or not all(isinstance(s, str) for s in value):
            raise self.fail(f"{key}: expected {what}")
        return tuple(value)


def parse_mapping(doc: dict, where: str) -> Mapping:
    """Validate a mapping document; every problem is one line naming the file and the key."""
    d = _Doc(doc, where)
    unknown = set(doc) - KEYS
    if unknown:
        raise d.fail(f"unknown key {sorted(unknown)[0]!r} (allowed: {', '.join(sorted(KEYS))})")
    for key in ("name", "fields"):
        if key not in doc:
            raise d.fail(f"missing {key!r}")
    file_time = _bool(doc, "file_time", d.fail)
    fields = _fields(d, file_time)
    constants, values = _constants(d), _values(d)
    dims = _dimensions_of(d)
    keep = _keep(d)
    not_billable = _not_billable(d)
    signature = d.strings("signature", "a list of paths")
    extra = doc.get("extra_dimensions")
    if extra is not None and (not isinstance(extra, dict) or not isinstance(extra.get("exclude", []), list)):
        raise d.fail("extra_dimensions: expected a table with `exclude = [top-level keys]`")
    priority = doc.get("priority", 0)
    if not isinstance(priority, int) or isinstance(priority, bool):
        raise d.fail(f"priority: expected an integer, got {priority!r}")
    prefilter = _prefilter(d)
    cut = _cut_member(d, [*(a for alts in (*fields.values(), *dims.values()) for a in alts), *keep, *not_billable])
    quick = d.strings("quick_signature", "a list of paths")
    description = doc.get("description", f"custom mapping {where}")
    if not isinstance(doc["name"], str) or not isinstance(description, str):
        raise d.fail("name and description must be strings")
    return Mapping(
        name=doc["name"], description=description, signature=signature, fields=fields,
        dimensions=dims, constants=constants, values=values, keep=keep, not_billable=not_billable,
        priority=priority, input_includes_cache=_bool(doc, "input_includes_cache", d.fail),
        repeats=_bool(doc, "repeats", d.fail), file_time=file_time, prefilter=prefilter, cut=cut,
        batch_files=_bool(doc, "batch_files", d.fail), quick_signature=quick,
        # (a cut member is never a dimension: it is not there to read)
        extra_dimensions=None if extra is None else (*extra.get("exclude", []), *(cut or ())[:1]),
    )


def _fields(d: _Doc, file_time: bool) -> dict[str, tuple[tuple[str, ...], ...]]:
    """`[fields]`: canonical column = path(s); the columns every format needs must be there."""
    fields = {}
    for col, value in d.table("fields").items():
        if col not in FIELDS:
            raise d.fail(f"fields.{col}: not a canonical column (one of: {', '.join(FIELDS)})")
        fields[col] = d.paths(value, f"fields.{col}")
    for col in ("model_raw", "input_tokens", "output_tokens", *(() if file_time else ("timestamp",))):
        if col not in fields and col not in d.table("constants"):
            raise d.fail(f"fields.{col} is required (where in a record is it?)")
    return fields


def _constants(d: _Doc) -> dict[str, str]:
    """`[constants]`: a label every record of the format has (platform = "bedrock")."""
    constants = {}
    for col, value in d.table("constants").items():
        if col not in FIELDS or col in COUNTS or col in ("timestamp", "rank"):
            raise d.fail(f"constants.{col}: only labels can be constant (model_raw, platform, service_tier, ...)")
        if not isinstance(value, str):
            raise d.fail(f"constants.{col}: expected a string, got {value!r}")
        constants[col] = value
    return constants


def _values(d: _Doc) -> dict[str, dict[str, str]]:
    """`[values.<column>]`: raw value = canonical value (a format's own words for a tier, say)."""
    values = {}
    for col, table_ in d.table("values").items():
        if not isinstance(table_, dict) or not all(isinstance(v, str) for v in table_.values()):
            raise d.fail(f"values.{col}: expected a table of raw value = canonical value")
        spelled = {}
        for raw, to in table_.items():
            key = next(iter(_spelled_keys(col, {raw: to})), None)
            if key is None:
                raise d.fail(f"values.{col}: {raw!r} is blank once trimmed; a blank {col} is never matched")
            if spelled.get(key, (to,))[0] != to:
                raise d.fail(f"values.{col}: {raw!r} and {spelled[key][1]!r} are the same value once trimmed and "
                             f"lower-cased, mapped to {to!r} and {spelled[key][0]!r}")
            spelled[key] = (to, raw)
        values[col] = dict(table_)
    return values


def _dimensions_of(d: _Doc) -> dict[str, tuple[tuple[str, ...], ...]]:
    """`[dimensions]`: name = path(s); never a name that would shadow a built-in column or key."""
    dims = {}
    for col, value in d.table("dimensions").items():
        if col in schema.RESERVED or col.startswith("_"):
            # (a dimension named `provider` would shadow the report's provider, silently)
            raise d.fail(f"dimensions.{col}: named like a canonical column, a built-in --by key or a report "
                         f"column, which it would shadow; name it otherwise (e.g. 'log_{col.lstrip('_')}')")
        dims[col] = d.paths(value, f"dimensions.{col}")
    return dims


def _keep(d: _Doc) -> dict[tuple[str, ...], tuple[str, ...]]:
    """`[keep]`: path = the value(s) a usage record holds there; other records are skipped."""
    keep = {}
    for path, value in d.table("keep").items():
        allowed = [value] if isinstance(value, str) else value
        if not isinstance(allowed, list) or not all(isinstance(v, str) for v in allowed):
            raise d.fail(f"keep.{path}: expected a value or a list of values")
        keep[d.paths(path, f"keep.{path}")[0]] = tuple(allowed)
    return keep


def _not_billable(d: _Doc) -> dict[tuple[str, ...], dict[str, str]]:
    """`[not_billable.<path>]`: value = why a record holding it is not billed."""
    not_billable = {}
    for path, reasons in d.table("not_billable").items():
        if not isinstance(reasons, dict) or not all(isinstance(v, str) for v in reasons.values()):
            raise d.fail(f"not_billable.{path}: expected a table of value = reason")
        not_billable[d.paths(path, f"not_billable.{path}")[0]] = dict(reasons)
    return not_billable


def _prefilter(d: _Doc) -> tuple[str, ...]:
    """`prefilter`: a text (or texts) a line must hold to be decoded (`!text`: must lack)."""
    prefilter = d.doc.get("prefilter", [])
    prefilter = [prefilter] if isinstance(prefilter, str) else prefilter
    if not isinstance(prefilter, list) or not all(isinstance(p, str) and p.lstrip("!") for p in prefilter):
        raise d.fail(f"prefilter: expected a text or a list of texts, got {d.doc.get('prefilter')!r}")
    return tuple(prefilter)


def _cut_member(d: _Doc, read: list[tuple[str, ...]]) -> tuple[str, str] | None:
    """`cut = { member, next }`: a member no path reads, cut from a line before it is decoded."""
    cut = d.doc.get("cut")
    if cut is None:
        return None
    if not isinstance(cut, dict) or set(cut) != {"member", "next"} or not all(
            isinstance(v, str) and v.isidentifier() for v in cut.values()):
        raise d.fail(f"cut: expected {{ member = key, next = key }}, got {cut!r}")
    if any(cut["member"] in path for path in read):
        raise d.fail(f"cut: {cut['member']!r} is read by a path of this mapping; only a member no path reads "
                     "can be cut")
    return cut["member"], cut["next"]


def _bool(doc: dict, key: str, fail) -> bool:
    value = doc.get(key, False)
    if not isinstance(value, bool):
        raise fail(f"{key}: expected true or false, got {value!r}")
    return value


# prepare(lf, src, ctx, get) -> lf, where get(path_parts) reads a path; finish(lf, src, ctx) -> lf.
Hook = Callable[..., pl.LazyFrame]


@dataclass(frozen=True)
class MappedDialect(Dialect):
    mapping: Mapping | None = None
    adds: tuple[str, ...] = ()  # canonical columns a hook may fill

    def missing(self, src: SourceFile) -> list[str]:
        """Signature entries the file lacks. A table (CSV, Parquet) is judged by its header (an empty
        cell is still a column); a path into a column's JSON text, and JSON records, by the first records."""
        cols = {c.lower().lstrip("\ufeff").strip() for c in src.columns}

        def present(alt: str) -> bool:
            parts = split_path(alt)
            if src.container in ("csv", "parquet") and len(parts) == 1:
                return parts[0].lower() in cols
            return any(_lookup(r, parts) is not None for r in src.sample)

        return [s for s in self.mapping.signature if not any(present(alt) for alt in s.split("|"))]

    def carries(self, src: SourceFile, robust: bool = True) -> set[str]:
        m = self.mapping
        carried = set(m.fields) | set(m.constants) | set(self.adds)
        if src.container == "csv":  # a CSV column that is not there is not carried
            cols = {c.lower().lstrip("\ufeff").strip() for c in src.columns}
            # a field filled by a hook (`@column`) is carried whatever the header says
            carried = {f for f, alts in m.fields.items() if any(a[0].lower() in cols or a[0][:1] == "@" for a in alts)}
            carried |= set(m.constants) | set(self.adds)
        if "cache_write_tokens" in carried:  # an unsplit cache-write total is priced as 5m
            carried.add("cache_write_5m_tokens")
        return carried


def dialect_from_mapping(path: str | Path, prepare: Hook | None = None, finish: Hook | None = None,
                         adds: tuple[str, ...] = (), repeats=None, reads: dict | None = None,
                         line_local=None, several_rows: bool = False) -> MappedDialect:
    """A dialect from a mapping file (shipped, or a user's `--map`); `prepare` and `finish` are the
    code a format needs beyond paths (see MAPPING.md), `reads` extra paths `prepare` reads with
    their types (a list of objects, say; read as JSON text on the robust path)."""
    path = Path(path)
    try:
        doc = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise DialectError(f"{path}: cannot read mapping ({e.strerror})") from None
    except tomllib.TOMLDecodeError as e:
        raise DialectError(f"{path}: invalid TOML ({e})") from None
    except RecursionError:  # the TOML reader recurses per level of nesting
        raise DialectError(f"{path}: invalid TOML (nested too deeply to be a mapping)") from None
    except UnicodeDecodeError as e:
        raise DialectError(f"{path}: not UTF-8 text ({e.reason} at byte {e.start})") from None
    m = parse_mapping(doc, str(path))
    required = tuple(m.signature) or tuple("|".join(".".join(p) for p in m.fields[f])
                                           for f in ("input_tokens", "output_tokens") if f in m.fields)
    dialect = MappedDialect(
        name=m.name, description=m.description, required=required, optional=tuple(m.fields),
        normalize=lambda src, robust=False, ctx=None: to_canonical(dialect, src, robust, ctx or Context(),
                                                                 prepare, finish, reads or {}),
        priority=m.priority, mapping=m, adds=adds, repeats=m.repeats if repeats is None else repeats,
        batch_files=m.batch_files, quick=m.quick_signature,
        # (a mapping's paths read each line alone; a hook's code may not: it says so)
        line_local=(prepare is None and finish is None) if line_local is None else line_local,
        several_rows=several_rows,
    )
    return dialect


# --- normalize ---------------------------------------------------------------------------------------

def _dtype_tree(paths: dict[tuple[str, ...], pl.DataType]) -> pl.Struct:
    """The struct type holding exactly the given paths (what the fast decoder reads)."""
    tree: dict = {}
    for parts, dtype in paths.items():
        node = tree
        for p in parts[:-1]:
            node = node.setdefault(p, {})
            if not isinstance(node, dict):
                raise DialectError(f"path {'.'.join(parts)} goes inside a value read as a leaf")
        if not isinstance(node.get(parts[-1], dtype), pl.DataType):
            raise DialectError(f"path {'.'.join(parts)} is read as a value, and other paths go inside it")
        node[parts[-1]] = dtype

    def build(node: dict) -> pl.Struct:
        return pl.Struct({k: build(v) if isinstance(v, dict) else v for k, v in node.items()})

    return build(tree)


def _file_time(src: SourceFile, ctx: Context) -> pl.Expr:
    """The time of records that carry none: --batch-time, else their own file's modification time
    (each file's, in a set read in one scan)."""
    n = len(src.members)
    what = f"{src.display} and {n} more file{'s' if n > 1 else ''}" if n else src.display
    if ctx.batch_time:
        ctx.note(f"{what}: records carry no time; dated {ctx.batch_time} (--batch-time)")
        return pl.lit(ctx.batch_time)
    times = {p: dt.datetime.fromtimestamp(os.path.getmtime(p), dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
             for p in src.paths}
    if not src.members:
        ctx.note(f"{what}: records carry no time; dated {times[src.path]} from the file's modification time "
                 "(set it with --batch-time)")
        return pl.lit(times[src.path])
    ctx.note(f"{what}: records carry no time; each dated from its file's modification time "
             f"({min(times.values())} to {max(times.values())}; set it with --batch-time)")
    return pl.col("_path").replace_strict(times, return_dtype=pl.String)


def _batch_time(lf: pl.LazyFrame, ctx: Context) -> pl.LazyFrame:
    """--batch-time also dates the records of a timed format that carry no time (a usage-report bucket
    without `starting_at`, an OTel span without `startTimeUnixNano`): it says when records without a
    time happened, whatever the format. Records with a time keep it; a time that is there but
    unreadable is still quarantined. (Not noted: whether any record lacks a time is known only once
    the records are read, and the first records cannot tell it: a transcript's summary lines carry no
    time, a page's buckets hold theirs inside.)"""
    ts = pl.col("_f_timestamp")
    dtype = lf.collect_schema()["_f_timestamp"]
    if isinstance(dtype, pl.Datetime | pl.Date):
        when = dt.datetime.fromisoformat(ctx.batch_time.replace("Z", "+00:00"))
        filled = ts.fill_null(pl.lit(when).cast(dtype))
    else:  # text (JSON, CSV), or Parquet epoch numbers: read as text by the timestamp parser
        text = ts.cast(pl.String)
        filled = pl.when(text.str.strip_chars().fill_null("") == "").then(pl.lit(ctx.batch_time)).otherwise(text)
    return lf.with_columns(filled.alias("_f_timestamp"))


def _extra_dimensions(m: Mapping, src: SourceFile) -> dict[str, tuple[tuple[str, ...], ...]]:
    """Top-level keys of the first records that the mapping does not use: dimensions (envelope keys
    such as workspace or user). An object is taken one level deep (metadata.user_id)."""
    used = {alts[0] for paths in m.fields.values() for alts in paths} | set(m.extra_dimensions or ())
    dims: dict[str, tuple[tuple[str, ...], ...]] = {}
    for rec in src.sample:
        for k, v in rec.items():
            if k in used or k.startswith("_"):
                continue
            if isinstance(v, dict):
                for sub, sv in v.items():
                    if not isinstance(sv, dict | list):
                        dims.setdefault(f"{k}.{sub}", ((k, sub),))
            elif not isinstance(v, list):
                dims.setdefault(k, ((k,),))
    return dims


Getter = Callable[[tuple[str, ...]], pl.Expr]



def to_canonical(d: MappedDialect, src: SourceFile, robust: bool, ctx: Context, prepare: Hook | None,
                 finish: Hook | None, reads: dict) -> pl.LazyFrame:
    """A file of a mapped format as canonical rows: scan it, read the mapped paths, then the shared
    canonical step (parsing, checks, quarantine reasons) and the mapping's value map and hooks."""
    m = d.mapping
    if src.container == "json":
        src = json_to_lines(src)
    dims, unused = _dimensions(m, src, ctx, prepare)
    fields = dict(m.fields)
    if m.file_time and "timestamp" not in fields:
        fields["timestamp"] = ()  # constant below
    typed = _typed_paths(m, {**fields, **{f"_dim_{d_}": alts for d_, alts in dims.items()}}, reads, robust)
    if src.container in ("json", "jsonl"):
        lf, get = _scan_lines(m, src, robust, ctx, typed)
        # (before `prepare`: a hook reading a count, a stream's input carried to its deltas, reads its text)
        lf, get = _with_count_texts(lf, get, fields, typed, reads, robust)
        raw = pl.col(LINE)
    else:
        lf, get, raw = _scan_table(src, robust, typed)
    if prepare is not None:
        lf = prepare(lf, src, ctx, get)
    lf = _keep_records(lf, m, get)
    timed = "timestamp" in m.fields and any(_lookup(r, a) is not None for r in src.sample
                                            for a in m.fields["timestamp"])
    lf, rec = _read_mapped(lf, m, get, raw, fields, dims, unused, src, ctx, timed)
    dims = {**dims, **{k: () for k in unused}}
    out = _canonical(lf, m, fields, dims, rec, src, ctx, timed, plain=prepare is None)
    out = _apply_values(out, m.values)
    if m.input_includes_cache:
        out = _exclude_cache(out)
    if "_rec" in out.collect_schema().names():  # (before `finish`: its hook sees each record's verdict)
        out = one_verdict_per_record(out)
    if finish is not None:
        out = finish(out, src, ctx)
    return out.drop([c for c in out.collect_schema().names() if c.startswith("_x_")])


def one_verdict_per_record(lf: pl.LazyFrame) -> pl.LazyFrame:
    """A record read as several rows (a response's steps, a run's models: `_rec`) is quarantined
    whole when any of its rows is bad, with its first bad row's reason. The accounting counts records
    (their first rows): a bad later step alone was counted nowhere, written to no quarantine file, and
    its record priced without the step's tokens; a bad first step left the later ones priced.

    A hook explodes a record where it read it, so its rows are consecutive, the first marked `_rec` 1:
    a record holds a bad row when the running count of bad rows grows between its first row and its
    last. (Linear scans: a window over each record's file and line, which finds the same, cost 0.8 CPU
    s on 2.5M rows, these 0.05.) The reason, spelled out only by the quarantine pass, is found by that
    window. Only the first row (`_rec` 1) goes to the quarantine file, so the record is named once.

    A row whose model its group's check will find missing (a step with a blank model:
    labels.model_missing) is a bad row too: label checks run on aggregated groups, row by row, so a
    blank later step was quarantined as a row of no record, its tokens in no bucket, and a blank
    first step left the later ones priced (and in dedupe, a copy quarantined whole still competed
    step by step, and could win a later step). Only the model: a record's rows share its tier and
    speed, so they pass or fail those checks together. (0.04 CPU s per 1M rows.)"""
    first, last = pl.col("_rec") != 0, pl.col("_rec").shift(-1, fill_value=1) != 0
    ok, reason = pl.col("_ok"), pl.col("_reason")
    missing = labels.model_missing(lf.collect_schema().names())
    if missing is not None:  # (the first row's own reason is added with every row's label checks)
        reason = pl.when(first | ~missing).then(reason).otherwise(
            pl.concat_str([reason, pl.lit(labels.MISSING_MODEL)], separator="; ", ignore_nulls=True))
        ok = ok & ~missing
    bad = (~ok).fill_null(True).cast(pl.Int64)
    seen = bad.cum_sum()  # bad rows up to and including this one
    before = pl.when(first).then(seen - bad).forward_fill()  # bad rows before the record's first
    through = pl.when(last).then(seen).backward_fill()  # bad rows up to its last
    record = ["_file", "source_row"]
    return lf.with_columns((through == before).alias("_ok"),
                           reason.filter(~ok).drop_nulls().first().over(record).alias("_reason"))


def _dimensions(m: Mapping, src: SourceFile, ctx: Context, prepare: Hook | None
                ) -> tuple[dict[str, tuple[tuple[str, ...], ...]], set[str]]:
    """(dimensions to read, dimensions the run does not use: columns of nulls, never decoded)."""
    dims = dict(m.dimensions)
    if m.extra_dimensions is not None:
        extra = {k: v for k, v in _extra_dimensions(m, src).items() if k not in dims}  # the mapping's win
        unnamed = [k for k, (path,) in extra.items() if not all(map(nameable, path))]
        if unnamed:
            ctx.note(f"{src.display}: key {unnamed[0]!r} is not read as a dimension: Polars cannot name it "
                     "(`*` and `^...$` are its patterns; a JSON path cannot spell a backslash)")
            extra = {k: v for k, v in extra.items() if k not in unnamed}
        # A record's own key named like a built-in --by key (an envelope's `provider`) is renamed, not
        # allowed to shadow it.
        renamed = schema.dimension_names([*dims, *extra])
        if any(renamed[k] != k for k in extra):
            ctx.note(schema.renamed_note(src.display, {k: renamed[k] for k in extra}))
        dims.update({renamed[k]: v for k, v in extra.items()})
    # (A `prepare` hook may read a dimension's path itself: with one, every path is decoded.)
    # --by matches a dimension whatever its case (`--by team` for a `Team` column)
    wanted_dims = None if ctx.dimensions is None else {d.lower() for d in ctx.dimensions}
    unused = {k for k in dims if wanted_dims is not None and k.lower() not in wanted_dims and prepare is None}
    return {k: v for k, v in dims.items() if k not in unused}, unused


def _typed_paths(m: Mapping, wanted: dict, reads: dict, robust: bool) -> dict[tuple[str, ...], pl.DataType]:
    """Every path the run reads, with the type it is decoded as."""
    # Every path is decoded as text, counts too: Polars' decoder reads `100.5` into an Int64 as 100
    # (silently), and fails the whole batch on `"100"`; as text, the parser quarantines the first
    # ("not a whole number") and reads the second, at no measurable cost (1M transcript lines).
    typed = {alt: pl.String() for alts in wanted.values() for alt in alts if alt[0][:1] != "@"}
    for path in (*m.keep, *m.not_billable):
        typed.setdefault(path, pl.String())
    typed.update({path: pl.String() if robust else dtype for path, dtype in reads.items()})
    return typed


def _scan_lines(m: Mapping, src: SourceFile, robust: bool, ctx: Context, typed: dict
                ) -> tuple[pl.LazyFrame, Getter]:
    """JSON Lines: the records worth decoding, and how to read a path from each."""
    lf = src.scan_lines(exact_lines=ctx.exact_lines, lossy=robust)
    if m.prefilter:
        # Records without this text cannot be usage: they are never decoded (fast, and silent). A
        # line that does not end in `}` is still read: if it is a cut record, it is quarantined,
        # not lost. (So is a whole line ending in spaces: harmless, cheaper than stripping lines.)
        line = pl.col(LINE)
        holds = [~line.str.contains(p[1:], literal=True) if p.startswith("!") else line.str.contains(p, literal=True)
                 for p in m.prefilter]
        lf = lf.filter(pl.any_horizontal(holds) | ~line.str.ends_with("}"))
    # Blank lines (or only spaces) are not records.
    blank = pl.col(LINE).str.strip_chars() == "" if robust else _unless(pl.col(LINE).str.starts_with("{"), False,
                                                                      pl.col(LINE).str.contains(r"^\s*$"))
    lf = lf.filter(~blank)
    # The line as decoded: without the member the mapping cuts, on both paths alike (a record
    # reads the same whichever path a run takes). The line itself stays whole: it is the record.
    text = _cut(pl.col(LINE), *m.cut) if m.cut else pl.col(LINE)
    if robust:
        return _robust_lines(lf, m, text)
    return _decoded_lines(lf, m, text, typed)


def _robust_lines(lf: pl.LazyFrame, m: Mapping, text: pl.Expr) -> tuple[pl.LazyFrame, Getter]:
    """Each path read as text with a JSON path: a broken record is quarantined with its line."""
    if m.cut:
        lf = lf.with_columns(text.alias("_x_cut"))
        text = pl.col("_x_cut")

    def get(parts: tuple[str, ...]) -> pl.Expr:
        return pl.col(FIRSTS).str.json_path_match(_json_path(parts))
    line = text.str.strip_chars()
    lf = lf.with_columns((line.str.starts_with("{") & line.str.json_path_match("$").is_not_null()
                          & ~pl.col(BAD)).alias("_line_ok"))
    return with_first_keys(lf, text), get


# The text the robust reading's JSON paths read: the line with each key an object names again renamed
# (first_keys_only), so that a JSON path, which keeps a key's last value, reads the first, as the fast
# path's decoder does (the model, a dimension, a count: any value at any depth, and a list a hook
# decodes). Only a line naming a key twice pays (one search for its keys); others are read as they are.
FIRSTS = "_x_firsts"


def with_first_keys(lf: pl.LazyFrame, text: pl.Expr) -> pl.LazyFrame:
    """`lf` with FIRSTS, the JSON text `text` as the robust reading's paths read it (again after a
    hook swaps the record: CloudWatch's events)."""
    return lf.with_columns(pl.coalesce(first_keys_only(text), text).alias(FIRSTS))


def _decoded_lines(lf: pl.LazyFrame, m: Mapping, text: pl.Expr, typed: dict) -> tuple[pl.LazyFrame, Getter]:
    """Each line decoded once into a struct holding only the paths read (the fast path)."""
    try:
        struct = _dtype_tree(typed)
    except DialectError as e:
        raise DialectError(f"mapping {m.name!r}: {e}") from None
    # A line that is not whole (cut by a crash, or being written while the logs were read: a
    # live Claude Code session) is not decoded, and is quarantined, on this fast path: the
    # decoder fails a whole batch on one such line, and reading everything again field by
    # field cost a 1M-line tree 430 s instead of 9. Only a line that looks whole but is not
    # JSON (rare) still sends the run to the robust path.
    whole = (_unless(pl.col(LINE).str.starts_with("{"), True, pl.col(LINE).str.contains(r"^\s*\{"))
             & _unless(pl.col(LINE).str.ends_with("}"), True, pl.col(LINE).str.contains(r"\}\s*$")))
    # (A line with bytes that are not UTF-8 is quarantined whole, never read as U+FFFD text.)
    whole = whole & ~pl.col(BAD)
    lf = lf.with_columns(pl.when(whole).then(text).str.json_decode(struct).alias(DECODED),
                         whole.alias("_line_ok"))

    def get(parts: tuple[str, ...]) -> pl.Expr:
        e = pl.col(DECODED)
        for p in parts:
            e = e.struct.field(p)
        return e
    return lf, get


def _scan_table(src: SourceFile, robust: bool, typed: dict) -> tuple[pl.LazyFrame, Getter, pl.Expr]:
    """CSV / Parquet: the first segment of a path is a column; the rest is a path inside its JSON
    text. Returns the rows, how to read a path, and the record as text (for the quarantine file)."""
    lf = src.scan_parquet().with_row_index("_row", offset=1) if src.container == "parquet" else src.scan_csv()
    table = lf.collect_schema()
    names = {c.lower().lstrip("\ufeff").strip(): c for c in table.names() if c not in ("_row", BAD, BEYOND, BEYOND_RAW)}
    raw = pl.struct([pl.col(c) for c in names.values()]).struct.json_encode()
    if BEYOND_RAW in table:  # (CSV: a record's fields past the header's, with the others)
        raw = with_beyond(raw)
    if src.container == "parquet":
        _nested_where_text(src, table, names, typed)
    # A column holding JSON text (LiteLLM's metadata) is decoded once, into just the paths read
    # from it; the robust path reads each path as text instead. A struct column is read as is.
    nested: dict[str, dict] = {}
    for alt, dtype in typed.items():
        col = names.get(alt[0].lower())
        if len(alt) > 1 and col is not None and table[col] == pl.String:
            nested.setdefault(col, {})[alt[1:]] = dtype
    if not robust:
        lf = lf.with_columns([pl.col(c).str.json_decode(_dtype_tree(sub)).alias(f"_json_{c}")
                              for c, sub in nested.items()])

    def get(parts: tuple[str, ...]) -> pl.Expr:
        col = names.get(parts[0].lower())
        if col is None:
            return pl.lit(None, pl.String)
        if len(parts) == 1:
            return pl.col(col)
        if col in nested and robust:
            return pl.col(col).str.json_path_match(_json_path(parts[1:]))
        if col in nested:
            e = pl.col(f"_json_{col}")
            for p in parts[1:]:
                e = e.struct.field(p)
            return e
        # A struct column (Parquet) holds the fields its writer saw: a path it lacks is absent, as a
        # key a JSON record lacks (Messages responses without `usage.iterations`), not an error.
        e, dtype = pl.col(col), table[col]
        for p in parts[1:]:
            if isinstance(dtype, pl.Struct) and p not in (fields := {f.name: f.dtype for f in dtype.fields}):
                return pl.lit(None, pl.String)
            e, dtype = e.struct.field(p), fields.get(p) if isinstance(dtype, pl.Struct) else None
        return e
    if BAD not in table:  # (Parquet: its strings are UTF-8 by construction)
        lf = lf.with_columns(pl.lit(False).alias(BAD))
    if BEYOND not in table:  # (Parquet: a record's fields are its schema's)
        lf = lf.with_columns(pl.lit(None, pl.String).alias(BEYOND))
    # (a CSV record of more fields than the header, one past its last not empty: sources.BEYOND)
    return lf.with_columns((~pl.col(BAD) & pl.col(BEYOND).is_null()).alias("_line_ok")), get, raw


def _nested_where_text(src: SourceFile, table: pl.Schema, names: dict[str, str], typed: dict) -> None:
    """Refuse, naming the file, a Parquet file with a nested value (a struct or list) where the
    format reads another type: a Parquet file of a JSON format's records (Messages responses written by
    Polars: `usage.iterations` a list of structs, which the format reads as JSON text) otherwise
    failed only once the run's plan ran, in a message naming no file ("cannot cast List type ...").
    (By the file's schema, then that value's column alone: Polars casts a list that is null on every
    row it sees, so a run on the first rows would not tell; a typed writer's file whose value is null
    on every row, as a response's iterations mostly are, is read, as its JSON Lines would be.)"""
    for alt, dtype in typed.items():
        col = names.get(alt[0].lower())
        found = table.get(col) if col is not None else None
        for p in alt[1:]:
            fields = {f.name: f.dtype for f in found.fields} if isinstance(found, pl.Struct) else {}
            found = fields.get(p)
        if found is None or not found.is_nested() or found == dtype:
            continue
        value = pl.col(col)
        for p in alt[1:]:
            value = value.struct.field(p)
        if src.scan_parquet().select(value.is_not_null().any()).collect().item():
            raise DialectError(f"{src.display}: a Parquet file whose {'.'.join(alt)} is a nested value (a "
                               f"{type(found).__name__.lower()}) of another shape than this format reads; a "
                               "JSON format's records are read as JSON: give them as JSON Lines")


def _value(get: Getter, alts: tuple[tuple[str, ...], ...]) -> pl.Expr:
    """The first of a field's alternative paths that holds a value (`@column`: a hook's column)."""
    exprs = [pl.col(a[0][1:]) if a[0][:1] == "@" else get(a) for a in alts]
    return exprs[0] if len(exprs) == 1 else pl.coalesce(exprs)


# How many of a count key's last characters the first search for floated counts looks for (see
# _with_count_texts): `ut_tokens` and `_requests` for Claude Code's eight keys.
_KEY_END = 9


def _with_count_texts(lf: pl.LazyFrame, get: Getter, fields: dict, typed: dict, reads: dict,
                      robust: bool) -> tuple[pl.LazyFrame, Getter]:
    """Counts read as the line writes them, and a count's key named twice in one object read once.

    The decoder (and json_path_match) reads a JSON number through a float: `1.00000000000000000001`
    and `100e-2` come back as `1`, which the count check would take for 1 token, where a CSV holding
    the same text is quarantined. So a line where a count's key is followed by a number with a
    fraction, an exponent or 19 digits or more (real counts are plain integers: no real line pays
    beyond one search for the keys' last characters, below) is read again
    with every number quoted (`quoted_numbers`: `1.00000000000000000001` becomes the string
    "1.00000000000000000001"), and each count path, and each list of counts a hook reads (a Messages
    response's `usage.iterations`), takes its value from that reading: the number's own text, at any
    depth and under arrays, which the count check then judges as CSV text: the same verdict in every
    format. (Other paths, a dimension holding a number, keep the decoder's value on every line.)

    A key named twice in one object (`"usage": {"input_tokens": 5, "input_tokens": 7}`) counts its
    first value, as Polars' decoder reads it, in `.jsonl`, a `.json` array (json_to_lines writes a
    nested object's pairs as written: the same line) and gzip alike. No line pays for that: a check
    for such keys on every line cost Bedrock streams 2.8 -> 5 CPU s (docs/performance.md). The
    robust path's JSON path takes the last value: there, lines are read with a key named again
    renamed (FIRSTS), and so are their numbers quoted."""
    paths = {a for f, alts in fields.items() if f in COUNTS for a in alts
             if a[0][:1] != "@" and typed.get(a) == pl.String}
    # Lists of counts a hook reads (decoded as text: see anthropic_messages.AS_TEXT).
    lists = {p: t for p, t in reads.items() if isinstance(t, pl.List | pl.Struct) and _all_text(t)}
    if not paths and not lists:
        return lf, get
    exact = {**{p: pl.String() for p in paths}, **lists}
    names = {p[-1] for p in paths} | {n for t in lists.values() for n in _leaf_names(t)}
    keys = "|".join(sorted({_written(k) for k in names}))
    escaped = _ESCAPED_KEY

    def floated(keys: str, line: pl.Expr, quoted: bool = True) -> pl.Expr:
        key = f'"(?:{keys})' if quoted else f'(?:{keys})'
        return line.str.contains(rf'(?:{key}|{escaped})"[ \t\r\n]*:[ \t\r\n]*-?(?:[0-9]+[.eE]|[0-9]{{19}})')
    # Every line is searched first for the keys' last characters only (`ut_tokens"`, `_requests"`: a
    # match of a whole key is a match of its end, so no line the search below flags is missed), and
    # only the lines that pass are searched for the whole keys: a handful of short literals is
    # scanned for ~40% faster than the eight key names (121,704 transcript lines: 0.06 against
    # 0.10 CPU s; no real line passes, and the second search then costs nothing: a null line).
    ends = "|".join(sorted({_written(k, _KEY_END) for k in names}))
    line = pl.col(FIRSTS) if robust else pl.col(LINE)
    maybe = pl.when(floated(ends, line, quoted=False) & pl.col("_line_ok")).then(line)
    lf = lf.with_columns(pl.when(floated(keys, maybe)).then(quoted_numbers(maybe)).alias("_n_line"))
    if not robust:  # (null on every line but those: the decode costs nothing there)
        lf = lf.with_columns(pl.col("_n_line").str.json_decode(_dtype_tree(exact)).alias("_n_rec"))

    def as_written(parts: tuple[str, ...]) -> pl.Expr:
        value = get(parts)
        if parts not in exact:
            return value
        if robust:
            text = pl.coalesce(pl.col("_n_line").str.json_path_match(_json_path(parts)), value)
        else:
            text = pl.col("_n_rec")
            for p in parts:
                text = text.struct.field(p)
            text = pl.coalesce(text, value)
        # (where the decoder found the path: a hook that swaps the record, CloudWatch's events,
        # reads its own)
        return pl.when(value.is_not_null()).then(text)
    return lf, as_written


def _all_text(dtype: pl.DataType) -> bool:
    if isinstance(dtype, pl.List):
        return _all_text(dtype.inner)
    if isinstance(dtype, pl.Struct):
        return all(_all_text(f.dtype) for f in dtype.fields)
    return dtype == pl.String


def _leaf_names(dtype: pl.DataType) -> set[str]:
    if isinstance(dtype, pl.List):
        return _leaf_names(dtype.inner)
    if isinstance(dtype, pl.Struct):
        return {n for f in dtype.fields for n in (_leaf_names(f.dtype) if isinstance(f.dtype, pl.List | pl.Struct)
                                                   else {f.name})}
    return set()


def _keep_records(lf: pl.LazyFrame, m: Mapping, get: Getter) -> pl.LazyFrame:
    """Only the records the mapping's `keep` admits."""
    kept = pl.lit(True)
    for path, allowed in m.keep.items():  # compared as text: a flag may be a boolean column in Parquet
        kept = kept & get(path).cast(pl.String).is_in(list(allowed)).fill_null(False)
    if m.keep:  # a broken line is kept: it is quarantined, not silently skipped
        lf = lf.filter(kept | ~pl.col("_line_ok"))
    return lf


def _read_mapped(lf: pl.LazyFrame, m: Mapping, get: Getter, raw: pl.Expr, fields: dict, dims: dict,
                 unused: set[str], src: SourceFile, ctx: Context, timed: bool) -> tuple[pl.LazyFrame, list[pl.Expr]]:
    """One column per mapped field (`_f_*`) and dimension (`_dim_*`), the record (`_raw`) and why it
    does not bill (`_nb`); also the hook's `_rec`/`_x_*` columns, returned to pass to `finish`."""
    nb = pl.lit(None, pl.String)
    for path, reasons in reversed(m.not_billable.items()):
        said = get(path).cast(pl.String)
        nb = pl.when(said.is_in(list(reasons))).then(said.replace_strict(reasons, default=None)).otherwise(nb)
    cols = {f"_f_{f}": _value(get, alts) for f, alts in fields.items() if alts}
    # A format whose records may carry no time (batch results, bare Message objects): when the first
    # records carry none, every record is dated from --batch-time or the file (and the report says so).
    own = [_value(get, m.fields["timestamp"]).cast(pl.String)] if m.fields.get("timestamp") else []
    if m.file_time and not timed:
        # A record that does carry a time keeps it (the first records may be ones without: errored
        # batch lines, say); only the others take the file's.
        cols["_f_timestamp"] = pl.coalesce(*own, _file_time(src, ctx))
    cols.update({f"_f_{c}": pl.lit(v) for c, v in m.constants.items()})
    cols.update({f"_dim_{k}": _value(get, alts) for k, alts in dims.items()})
    cols.update({f"_dim_{k}": pl.lit(None, pl.String) for k in unused})  # still a column: --by can name it
    # `_rec` and `_x_*` columns (a hook's own bookkeeping) pass through to `finish`.
    rec = [pl.col(c) for c in lf.collect_schema().names() if c == "_rec" or c.startswith("_x_")]
    lines = [pl.col("_path"), pl.col("_line_no" if ctx.exact_lines else "_row").alias("_line_no")] if src.members else []
    lf = lf.select(pl.col("_row"), *lines,
                   *[e.alias(n) for n, e in cols.items()], raw.alias("_raw"), nb.alias("_nb"), pl.col("_line_ok"),
                   pl.col(BAD), *([pl.col(BEYOND)] if BEYOND in lf.collect_schema() else []), *rec)
    if ctx.batch_time and not (m.file_time and not timed):
        lf = _batch_time(lf, ctx)
    return lf, rec


def _canonical(lf: pl.LazyFrame, m: Mapping, fields: dict, dims: dict, rec: list[pl.Expr], src: SourceFile,
               ctx: Context, timed: bool, plain: bool) -> pl.LazyFrame:
    """The mapped columns through the shared canonical step (types, checks, quarantine reasons)."""
    present = {f for f in fields} | set(m.constants)
    canon = {f: f"_f_{f}" for f in present if f != "rank"}
    schema_ = lf.collect_schema()  # text, CSV strings, Parquet's native types, or a hook's
    dtypes = {f: schema_[f"_f_{f}"] for f in present}
    bad = pl.when(pl.col(BAD)).then(pl.lit(NOT_UTF8))
    if BEYOND in schema_:  # (a table's reading: sources.BEYOND)
        bad = bad.when(pl.col(BEYOND).is_not_null()).then(pl.col(BEYOND))
    bad = (pl.col("_line_ok"), bad.when(~pl.col("_line_ok")).then(pl.lit(UNREADABLE)))
    extra = ["_nb", *(c.meta.output_name() for c in rec)] + (["_rank"] if "rank" in present else [])
    if "rank" in present:
        # a flag (isSidechain): true ranks after false; a number is its own rank
        rank = pl.col("_f_rank").cast(pl.String)
        lf = lf.with_columns(pl.when(rank.is_in(["true", "True", "TRUE"])).then(pl.lit(1, pl.Int8))
                             .otherwise(rank.cast(pl.Int8, strict=False).fill_null(0)).alias("_rank"))
    # The first records' times choose the format most rows are parsed with; not when a hook or a
    # column prepared them (`@`: the sample holds the value before it was rewritten).
    plain = plain and timed and all(a[0][:1] != "@" for a in m.fields["timestamp"])
    times = [v for r in src.sample for a in m.fields["timestamp"] if (v := _lookup(r, a)) is not None] if plain else []
    return canonical_frame(
        lf.rename({f"_dim_{k}": k for k in dims}), canon, list(dims), dtypes, pl.col, pl.col("_raw"), src,
        bad_record=bad, source=m.name, extra=extra, exact_lines=ctx.exact_lines, time_sample=times,
        ctx=ctx if plain else None,
    )


def _unless(usual: pl.Expr, value: bool, check: pl.Expr) -> pl.Expr:
    """`value` where the usual case holds, else `check` (a regex): Polars skips the regex for a batch
    in which every line is usual (lines start with `{` and end with `}`: 0.1 s of 1M lines' regexes)."""
    return pl.when(usual).then(pl.lit(value)).otherwise(check)


# An array's end, then the next member of its object (`],"`), or the object's end (`]}`) (JSON
# allows spaces): either kind, counted in one search (see _cut).
_CLOSE_THEN_MEMBER_OR_END = r'\][ \t\r\n]*(?:,[ \t\r\n]*"|\})'


# What the cut removes must be one JSON array, as a parser reads it (see _valid_array).
_WS = r"[ \t\r\n]*"
_STRING = r'"(?:[^"\\\x00-\x1f]|\\(?:["\\/bfnrt]|u[0-9a-fA-F]{4}))*"'
_SCALAR = r"(?:[\x01\x02]|-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?|true|false|null)"
_INNERMOST = (rf"\[{_WS}(?:{_SCALAR}{_WS}(?:,{_WS}{_SCALAR}{_WS})*)?\]"
              rf"|\{{{_WS}(?:\x01{_WS}:{_WS}{_SCALAR}{_WS}(?:,{_WS}\x01{_WS}:{_WS}{_SCALAR}{_WS})*)?\}}")
# Arrays nested deeper than this are left whole (decoded by the parser): content blocks of a
# transcript nest 3 to 5 deep (array, block, tool input, its arrays and objects).
_CUT_DEPTH = 8


def _cut(line: pl.Expr, member: str, next_: str) -> pl.Expr:
    """The line without its `member` (an array: a response's content blocks, most of its bytes and
    most of the decoder's work, with no usage in them), where the text shows exactly where that
    array ends. Any other line is decoded whole. The cut is made when:

    - `"member":[` occurs once, right after a `{` or `,` (so its `"` opens a key: after a `\\` it
      would be text inside another key);
    - `],"next":` is the line's only `]` followed by a member (`],"`, or with spaces `] , "`);
    - no `]` is followed by an object's end (`]}`, `] }`);
    - the text cut is one JSON array, as a parser reads it (`_valid_array`: a line torn inside the
      array and glued to another record's tail is never cut into a record).

    Why that is exact: the array's own `]` is followed by the next member or by its object's end,
    and there is no such end, so its `]` is an occurrence of the first kind: the only one, `],"next":`.
    (Text can hold these too, `"x],"` or `"a]}"`: such a line is left whole, never cut wrongly.) So
    the cut removes that one member and nothing the mapping reads (parse_mapping refuses a `cut` of
    a member it reads). The member once: a line holding two records' text (two writes torn into one
    line) would otherwise be cut into one valid record made of both. Offsets are characters
    (`str.find` counts characters since Polars 2.2, as `str.slice` does).

    Each test counts or searches the whole line, never a copy of part of it (searching slices of the
    line copied them: the cut then cost about what the smaller decode saved). The literal
    `],"next":` is a match of the `]`-then-member pattern, and no other match can run over its `]`,
    so when the pattern matches once, that is where.

    The last two tests are one count: a match of either kind is one `]` and what follows it up to
    a `,"` or a `}` (no `]` inside), so matches never overlap and a `]` starts at most one of them;
    the count of either is the count of the first kind plus the count of the second. When
    `],"next":` occurs (one of the first kind), a count of 1 says: that one, and none of the second.
    (One regex pass instead of two, and the member counted by a regex, which searches with a
    prefilter, instead of Rust's literal searcher: the cut took 0.29 -> 0.21 CPU s on 92K lines.)"""
    start, end = f'"{member}":[', f'],"{next_}":'
    a = line.str.find(start, literal=True)
    b = line.str.find(end, literal=True)
    opener = line.str.slice(a - 1, 1)
    fits = ((a >= 1) & (a < b) & ((opener == "{") | (opener == ","))
            & (line.str.count_matches(_regex_literal(start)) == 1)
            & (line.str.count_matches(_CLOSE_THEN_MEMBER_OR_END) == 1))
    fits = fits & _valid_array(line.str.slice(a + len(start) - 1, b - a - len(start) + 2))
    return pl.when(fits).then(line.str.slice(0, a) + line.str.slice(b + 2)).otherwise(line)


def _valid_array(text: pl.Expr) -> pl.Expr:
    """Whether `text` (the bytes from the member's `[` to its `]`) is one JSON array, as a parser
    reads it: every string well formed (escapes, no raw control character), and the rest arrays and
    objects of values, nested at most _CUT_DEPTH deep. Each string becomes \\x01, then each innermost
    array or object \\x02, level by level: the array must come down to one \\x02. (The markers are
    control characters, which JSON never holds raw: a text holding them is left whole.)

    Without this, a line torn inside its content and glued to another record's tail (two writes
    interleaved; a crash and a later append) was cut into a valid record made of both: one's id and
    model, the other's usage. Cut only where the removed text is an array, the rest of the line is
    valid JSON exactly when the whole line is, and reads the same (the member sits where a member
    may, after `{` or `,` and before `"next":`): the cut never makes a record a parser would refuse."""
    skeleton = text.str.replace_all(_STRING, "\x01")
    for _ in range(_CUT_DEPTH):
        skeleton = skeleton.str.replace_all(_INNERMOST, "\x02")
    return (skeleton == "\x02") & ~text.str.contains("[\x01\x02]")


def _apply_values(lf: pl.LazyFrame, values: dict[str, dict[str, str]]) -> pl.LazyFrame:
    """A format's own words for a label (`[values.<column>]`) as canonical values. The words are
    matched as labels are compared (labels.spelled: trimmed, lower-cased), not as logged: a tier
    `Default` is the alias `default`. Other values are left as logged, cleaned after the pass.
    (Per row, on the mapped columns only: the aggregated rows no longer know their format.)"""
    names = lf.collect_schema().names()
    return lf.with_columns([labels.spelled(c).replace_strict(_spelled_keys(c, v), default=pl.col(c),
                                                             return_dtype=pl.String).alias(c)
                            for c, v in values.items() if c in names])


def _spelled_keys(col: str, table_: dict[str, str]) -> dict[str, str]:
    """A `[values.<column>]` table keyed by its words as labels.spelled reads them."""
    keys = pl.select(labels.spelled(col, pl.lit(pl.Series(list(table_), dtype=pl.String)))).to_series().to_list()
    return {k: v for k, v in zip(keys, table_.values(), strict=True) if k is not None}


def _exclude_cache(lf: pl.LazyFrame) -> pl.LazyFrame:
    """Sources whose input count includes cached tokens (OpenAI, OpenTelemetry): the uncached input is
    what remains; a row whose cache counts exceed its input contradicts itself and is quarantined."""
    cached = pl.col("cache_read_tokens") + pl.col("cache_write_5m_tokens") + pl.col("cache_write_1h_tokens")
    rest = pl.col("input_tokens") - cached
    bad = pl.col("_ok") & (rest < 0)
    return lf.with_columns(
        pl.when(bad).then(pl.col("input_tokens")).otherwise(rest).alias("input_tokens"),
        (pl.col("_ok") & ~bad).alias("_ok"),
        pl.when(bad).then(pl.lit("cache tokens exceed input tokens (input is cache-inclusive in this format)"))
        .otherwise(pl.col("_reason")).alias("_reason"),
    )

"""The `canonical` dialect: the canonical schema itself, as CSV, JSONL/JSON or Parquet.

Only `timestamp`, `model`, `input_tokens` and `output_tokens` are required; other columns default
(tier standard, speed standard, counts 0). Any column that is not canonical is a dimension
(workspace, api_key, project, ...). What `llm-cost price` writes reads back through this dialect.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import re
from collections.abc import Callable
from dataclasses import dataclass

import polars as pl

from .. import schema
from ..errors import DialectError
from ..labels import DEFAULTS, UNREADABLE
from ..sources import (
    BAD,
    BEYOND,
    BOM,
    LINE,
    NOT_UTF8,
    RESERVED,
    SourceFile,
    defer_key_search,
    display_expr,
    first_key_match,
    json_to_lines,
    key_twice,
    with_beyond,
)
from . import Dialect, _parse
from ._json_text import JSON_STRING, first_keys_only, quoted_numbers

REQUIRED = ("timestamp", "model|model_raw", "input_tokens", "output_tokens")
# Every column this dialect reads by name (besides dimensions). `cache_write_tokens` is a cache write
# without a 5m/1h split: priced as 5m (with a split beside it, the residual total - split is 5m).
FIELDS = ("timestamp", "model", "model_raw", *schema.COUNT_COLUMNS, "cache_write_tokens", "requests", "reported_cost",
          "request_id", "platform", "endpoint_scope", "service_tier", "speed", "inference_geo", "context_window")
OPTIONAL = tuple(c for c in FIELDS if c not in ("timestamp", "model", "model_raw", "input_tokens", "output_tokens"))
# Exactly the columns `llm-cost price` adds: derived again on every run, never read back as dimensions.
DERIVED = {"family", "provider", "context_tier", "discount_type", "price_period", "price_book", "source",
           "source_file", "source_row", "unpriced_reason", "list_cost", "savings", "cost",
           *("cost_" + c.rate for c in schema.COMPONENTS)}
# Token counts under the names other logs give them (Anthropic's API usage, OpenAI's): in a canonical
# log they are not canonical columns, so they would be read as dimensions and their tokens dropped
# from the total without a word. A file carrying one is refused, naming the canonical column.
FOREIGN_COUNTS = {"cache_read_input_tokens": "cache_read_tokens", "cache_creation_input_tokens": "cache_write_tokens",
                  "prompt_tokens": "input_tokens", "completion_tokens": "output_tokens"}


def _is_dimension(col: str, from_price: bool) -> bool:
    # `llm-cost price` output's derived columns are derived again; in any other log a column of that
    # name is the log's own (read as a dimension, renamed: see schema.dimension_name).
    return col.lower() not in FIELDS and not (from_price and col in DERIVED) and not col.startswith("_") and col != ""


def to_canonical(src: SourceFile, robust: bool = False, ctx=None) -> pl.LazyFrame:
    """Two ways to read text: the default (fast) lets Polars' readers parse JSON Lines and CSV counts
    natively and fails on a malformed line or a non-integer count; the pipeline then retries the run
    with `robust`, which reads every field as text (and JSON line by line), so that such a record is
    quarantined with its line number instead (see pipeline._with_retry).

    Field names match case-insensitively. JSON records are read for every canonical field, not only
    those seen in the first records: a key that first appears on line 1,000 still counts."""
    if src.container == "json":
        src = json_to_lines(src)
    # as in the file -> cleaned (a table's own `_row` or `_bad` is not read: sources.RESERVED; nor one
    # with spaces or a BOM around it, which cleaned would collide with the reader's own column)
    original = {c: _clean(c) for c in src.columns
                if _clean(c) not in RESERVED or src.container not in ("parquet", "csv")}
    unnamed = [c for c in original.values() if not nameable(c)]
    if unnamed:
        if ctx is not None:
            ctx.note(f"{src.display}: column {unnamed[0]!r} is not read: Polars cannot name it (`*` and `^...$` "
                     "are its patterns; a JSON path cannot spell a backslash)")
        original = {k: c for k, c in original.items() if c not in unnamed}
    if src.container in ("json", "jsonl"):
        fields = {f: f for f in FIELDS}
        fields.update({c.lower(): c for c in original.values() if c.lower() in FIELDS})
        # `input_tokens` and `Input_Tokens` both name one field: reading one of them (the last seen)
        # would silently drop or replace the other's counts.
        spaced = [k for k, c in original.items() if c != k and c.lower() in FIELDS]
        if spaced:  # (read by the stripped name, which the records do not hold: its values lost)
            raise DialectError(_spaced(src.display, spaced[0]))
        spelled = [c for c in original.values() if c.lower() in FIELDS and c != fields[c.lower()]]
        if spelled:
            raise DialectError(f"{src.display}: keys {spelled[0]!r} and {fields[spelled[0].lower()]!r} both name "
                               f"{spelled[0].lower()!r} (names match without case): which one counts is ambiguous")
    else:
        fields = {c.lower(): c for c in original.values() if c.lower() in FIELDS}
    # A table's columns are all known: one without a required column is not this format (forced
    # with --dialect); JSON records may carry a key the first ones lack (each record is checked).
    if not original:
        raise DialectError(f"{src.display}: no records found (empty file, or no readable records in its first lines)")
    foreign = [c for c in original.values() if c.lower() in FOREIGN_COUNTS]
    if foreign:
        raise DialectError(f"{src.display}: column {foreign[0]!r} is not a canonical column (its tokens would not be "
                           f"counted): rename it {FOREIGN_COUNTS[foreign[0].lower()]!r}, or read the file with --map")
    lacking = [k for k in REQUIRED if not any(a in fields for a in k.split("|"))]
    if lacking:
        raise DialectError(f"{src.display}: not a canonical log: no {', '.join(k.replace('|', ' or ') for k in lacking)} "
                           f"column (columns: {', '.join(list(original.values())[:12])}); see `llm-cost formats`")
    late, check = [], None
    if src.container == "jsonl":
        wanted = _wanted_dimensions(ctx, set(original.values()))
        search = functools.partial(_late_keys, src, fields, {c.lower() for c in original.values()}, wanted,
                                   set(original))
        if not robust and ctx is not None and ctx.key_checks is not None and src.compression is None \
                and _countable(src.sample) and defer_key_search(src.path):
            check = KeyCheck(src.path, dict(fields), search)  # (searched only if the keys read fall short)
        elif src.piece is not None:  # (read part by part: both readings' plans search once)
            fields, late = src.piece.searched(search)
        else:
            fields, late = search()
    from_price = "price_book" in original.values()
    dims = [c for c in original.values() if _is_dimension(c, from_price)] + late
    renamed = schema.dimension_names(dims)
    if ctx is not None and renamed != {d: d for d in dims}:
        ctx.note(schema.renamed_note(src.display, renamed))
    times = [v for rec in src.sample for k, v in rec.items() if original.get(k, k).lower() == "timestamp"]
    sniff = {"time_sample": times, "ctx": ctx}
    integers = {f for f in fields if f in (*schema.COUNT_COLUMNS, "cache_write_tokens", "requests")}
    if src.container == "parquet":
        # Renamed by a select on top of the scan and its row numbers, not by rename(): a rename node
        # between them kept a slice of this plan (`price` writes a file's rows slice by slice) out of
        # the scan, and each slice decoded ~10 row groups past its own (0.07 CPU s a slice).
        lf = src.scan_parquet().with_row_index("_row", offset=1).select(
            "_row", *[pl.col(k).alias(v) for k, v in original.items()])
        dtypes = dict(lf.collect_schema())
        raw = pl.struct([_parse.json_encodable(pl.col(c), t) for c, t in dtypes.items() if c != "_row"]).struct.json_encode()
        return canonical_frame(lf, fields, dims, {f: dtypes[c] for f, c in fields.items()}, pl.col, raw, src, **sniff)
    if src.container == "csv":
        # Fast path: counts parsed by the CSV reader. A file with a non-integer count fails it, and
        # the run is retried robustly, where such a value quarantines its row (see pipeline).
        typed = () if robust else tuple(k for k, v in original.items() if v.lower() in integers)
        lf = src.scan_csv(typed).rename({k: v for k, v in original.items() if k != v})
        raw = with_beyond(pl.struct([pl.col(c) for c in original.values()]).struct.json_encode())
        dtypes = {f: pl.Int64() if typed and f in integers else pl.String() for f in fields}
        # (a record of more fields than the header, one past its last not empty, is quarantined:
        # sources.BEYOND)
        return canonical_frame(lf, fields, dims, dtypes, pl.col, raw, src,
                               bad_record=(~pl.col(BAD) & pl.col(BEYOND).is_null(),
                                           pl.when(pl.col(BAD)).then(pl.lit(NOT_UTF8)).otherwise(pl.col(BEYOND))),
                               **sniff)
    if not robust:
        # A field the first records lack is read as Null: the reader fails the pass on any value of it,
        # and the run is read again robustly (every field as text), so a key that first appears on
        # line 1,000 still counts. Until then it costs no column of values (absent fields were a
        # quarter of the decode: 11 null columns per row), and it is a constant (Dialect.carries).
        seen = {c.lower() for c in original.values()}
        if src.piece is not None:  # (after the search: every key is read, as on the robust path)
            seen = set(fields)
        dtypes = {c: (pl.Int64() if f in integers else pl.String()) if f in seen else pl.Null()
                  for f, c in fields.items()}
        # Other keys are read too (as text), for the record's `_raw` (`_value`: an array member that
        # is not an object, quarantined as missing every field).
        others = {c: pl.String() for c in original.values() if c not in dtypes and c not in dims}
        keys = {**dtypes, **{d: pl.String() for d in dims}, **others}
        lf = src.scan_ndjson(keys, exact_lines=ctx is None or ctx.exact_lines)
        extra = []
        if check is not None:  # (every key of the reader's: each is then decoded, as `_raw` needs anyway)
            lf = lf.with_columns(pl.sum_horizontal([pl.col(k).is_not_null() for k in keys]).cast(pl.Int64)
                                 .alias(KEYS_READ))
            extra = [KEYS_READ]
            ctx.key_checks.append(check)
        raw = pl.struct([pl.col(c) for c in (*original.values(), *late)]).struct.json_encode()
        if src.piece is not None:  # the record as the robust path gives it (the quarantine file's)
            raw = pl.col(LINE)
            # Read here only where the robust path reads the line alike: a flat line (FLAT_LINE), as
            # the robust path's regex does. (Other lines' values may render otherwise through the
            # decoder: `1.0` as `1`, a nested object with spaces.)
            plain = all(_PLAIN_KEY.fullmatch(c) for c in (*fields.values(), *dims))
            src.piece.accept = pl.col(LINE).str.contains(FLAT_LINE) if plain else pl.lit(False)
        return canonical_frame(lf, fields, dims, {f: dtypes[c] for f, c in fields.items()}, pl.col, raw, src,
                               unseen=[f for f in fields if f not in seen], extra=extra, **sniff)
    lf = src.scan_lines().filter(pl.col(LINE).str.strip_chars() != "")
    # Flat lines (FLAT_LINE) are read by a regex each: what a JSON path (one parse of the line per
    # field, ~25 a line) returns for them is their text. Others are parsed as before, per field.
    flat = all(_PLAIN_KEY.fullmatch(c) for c in (*fields.values(), *dims))
    if flat:  # (in stages: each value's text is used thrice)
        lf = lf.with_columns(pl.col(LINE).str.contains(FLAT_LINE).fill_null(False).alias(FLAT)).with_columns(
            pl.when(pl.col(FLAT)).then(pl.col(LINE)).str.extract_all(flat_pair(c)).list.last()
            .str.replace(r"^[^:]*:[ \t\r\n]*", "").alias(_flat(c)) for c in {*fields.values(), *dims})

    # A line that is JSON but for a number past a float's range (`1e400`, which serde_json refuses)
    # is read with its numbers written as strings: its count is then judged by its text, as CSV's
    # is, where it was quarantined whole as unparsable. Only lines that do not parse and hold a
    # long number or exponent pay; one not JSON for another reason stays so once quoted.
    parsed_text = pl.when(~pl.col(FLAT)).then(pl.col(LINE)) if flat else pl.col(LINE)
    parses = parsed_text.str.strip_chars().str.json_path_match("$").is_not_null()
    lf = lf.with_columns(((pl.col(FLAT) | parses) if flat else parses).alias(PARSES))
    unparsed = pl.when(~pl.col(PARSES) & ~pl.col(BAD)).then(pl.col(LINE))
    lf = lf.with_columns(pl.when(unparsed.str.contains(_PAST_FLOAT)).then(quoted_numbers(unparsed)).alias(QUOTED))
    lf = lf.with_columns(pl.when(pl.col(QUOTED).str.json_path_match("$").is_not_null()).then(pl.col(QUOTED))
                         .alias(QUOTED))
    # A key named twice: its first value, as the fast path's decoder reads it, where a JSON path reads
    # the last (a file naming a read key twice is refused, _late_keys, but its search looks past
    # objects of one level only): the paths read the line with a key named again renamed.
    json = pl.coalesce(QUOTED, parsed_text)
    lf = lf.with_columns(pl.coalesce(first_keys_only(json), json).alias(FIRSTS))

    def get(c: str) -> pl.Expr:
        path = f"$.{c}" if c.isidentifier() else f"$['{c}']"
        parsed = pl.col(FIRSTS).str.json_path_match(path)  # (null on a flat line: not parsed)
        if not flat:
            return parsed
        v = pl.col(_flat(c))  # a string's text, quoted (it holds no `"`), or a literal's
        return pl.when(pl.col(FLAT)).then(pl.when(v.str.starts_with('"')).then(v.str.strip_chars('"'))
                                          .when(v != "null").then(v)).otherwise(parsed)

    return canonical_frame(lf, fields, dims, {f: pl.String() for f in fields}, get, pl.col(LINE), src,
                           bad_record=_bad_json_line(), number_texts=integers, **sniff)


# A JSON Lines record whose every value is a string without escapes or control characters, an
# integer of at most 18 digits (not `-0`), true, false or null, under keys without escapes, with
# JSON's own whitespace only: valid JSON, flat (each key is the record's own), and read alike by
# serde_json (Polars' JSON path) and by the regex of flat_pair. serde_json renders such an
# integer as written (a longer one, a fraction or an exponent goes through a float: `1e+20`), and
# such a string decodes to its own text. Any other line is parsed as before.
_WS = r"[ \t\r\n]*"
_STRING = r'"[^"\\\x00-\x1f]*"'
_SCALAR = rf"(?:{_STRING}|0|-?[1-9][0-9]{{0,17}}|true|false|null)"
_PAIR = rf"{_WS}{_STRING}{_WS}:{_WS}{_SCALAR}{_WS}"
FLAT_LINE = rf"^{_WS}\{{(?:{_PAIR}(?:,{_PAIR})*|{_WS})\}}{_WS}$"
FLAT = "_flat"
# Keys read by flat_pair: their JSON path is `$.key`, and their text in a flat line is `"key"`.
_PLAIN_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def flat_pair(key: str) -> str:
    """A regex matching `key` and its value in a FLAT_LINE line (a string with its quotes). In a flat
    line `{` or `,` then `"key":` is a key (a string holds no `"`). The last match is the value, as
    serde_json keeps the last when a record names a key twice (a file that does is refused anyway:
    _late_keys). (A capture after a greedy `.*` to find the last costs as much as the JSON parse.)"""
    return rf'[{{,]{_WS}"{key}"{_WS}:{_WS}(?:"[^"]*"|-?[0-9]+|true|false|null)'


def _flat(c: str) -> str:
    return f"_fl_{c}"


# Per record of a JSON Lines file read without the search for late keys: how many of the reader's
# keys it holds a value of (see KeyCheck).
KEYS_READ = "_keys_read"


@dataclass
class KeyCheck:
    """The search for late keys (_late_keys: ~1 CPU s per 1M records) of a plain JSON Lines file,
    put off until the run's pass over its records has counted the values the NDJSON reader took
    (KEYS_READ, summed), and then needed only when that sum falls short of the keys the file's text
    holds (sources.key_colons: each `"` directly followed by `:`, a fifth of the search's CPU).

    Why equal sums prove the search would find nothing. Take one line (a record) of a file in which
    no `"` is followed by whitespace (else key_colons says None, and the search runs). Let R be the
    values the reader took from it (keys of its schema with a non-null value: it reads a record's
    own keys only, each under its exact name, one value for a key written twice), K the keys the
    record holds at any depth, C the line's `":` pairs. R <= K: a value read is a key of the record,
    and a key written twice gives one value. K <= C: every key ends with `"` and, whitespace being
    excluded, its `:` right after. So each line has R <= C, and the file's sums are equal only if
    R = C on every line: no +1 on one line can balance a -1 on another. R = C means every `":` is
    a key (none inside a string), every key is the record's own (none nested), read under exactly
    its name, once, with a non-null value. What the search reports is a record's own key that is
    not read as written (a canonical name in another case, a foreign count name, a `--by` tag the
    first records lack: none of these is in the reader's schema, _late_keys and `wanted` exclude
    them) or a key written twice: either makes R < C on its line. So the search finds nothing, and
    the run read what it would have read after it. When the sums differ (a late key, a null value,
    a nested object, a `":` in a string, a key twice), the search runs as before the read and, if
    it finds keys to read, the run starts again reading them (pipeline._with_retry)."""

    path: str
    fields: dict[str, str]  # the spellings the run read the canonical keys by
    search: Callable[[], tuple[dict[str, str], list[str]]]  # _late_keys, for this file

    def holds(self) -> bool:
        """Whether the search finds the reading right (raises what _late_keys raises)."""
        fields, late = self.search()
        return fields == self.fields and not late


# Candidate keys the pattern below sends to Python, which decodes the line and decides. A key with
# an escape that may decode to a name's letter, digit or `_` (`Cache\u005fRead_Tokens`), to a space
# (`\t`, `\u00a0`) or to the Kelvin sign: it is only known decoded. (Not any escape: a file whose
# every record has a key like `\u00e9quipe`, as a JSON array is rewritten, would be decoded line by
# line, ~45 CPU s per 1M records.)
_ESCAPED_KEY = (r'(?:[^"\\]|\\.)*\\(?:[tnrf]|u(?:00[0-7][0-9A-Fa-f]|0085|00[Aa]0|1680|20[0-2][0-9A-Fa-f]'
                r'|205[Ff]|3000|[Ff][Ee][Ff][Ff]|212[Aa]))(?:[^"\\]|\\.)*')
# A key holding the Kelvin sign (U+212A): Python lower-cases it to `k` (`input_to\u212aens` names
# input_tokens, as in the first records); the regex's (?i) of the names below is not relied on for it.
_KELVIN_KEY = '[^"\\\\]*\u212a[^"\\\\]*'
# What str.strip() removes around a key (every Unicode space), and a BOM.
_SPACE = "(?:" + "|".join([r"[\x00-\x20]", *"\ufeff\u0085\u00a0\u1680\u2028\u2029\u202f\u205f\u3000",
                           *map(chr, range(0x2000, 0x200b))]) + ")"


def _other_spellings(name: str) -> list[str]:
    """Regular expressions for every spelling of `name` that differs from it in the case of at least
    one letter (as many as it has letters: the first letter that differs)."""
    return [f"(?i:{re.escape(name[:i])}){re.escape(ch.swapcase())}(?i:{re.escape(name[i + 1:])})"
            for i, ch in enumerate(name) if ch.swapcase() != ch]


def _key_pattern(fields: dict[str, str], dimensions=()) -> str:
    """Keys (a quoted name before a `:`) that the reading by `fields` might not read, but should: a
    canonical name in another case, a foreign count name in any case, a name with an escape, a
    Kelvin sign or spaces around it, and the `dimensions` not yet read, as JSON writes them
    (`_late_keys` decides, on the decoded line)."""
    alts = [a for f in FIELDS for a in _other_spellings(fields[f])]
    alts += sorted({re.escape(json.dumps(d, ensure_ascii=a)[1:-1]) for d in dimensions for a in (True, False)})
    alts += [f"(?i:{re.escape(name)})" for name in FOREIGN_COUNTS]
    names = "(?i:" + "|".join(re.escape(n) for n in (*FIELDS, *FOREIGN_COUNTS)) + ")"
    alts += [_ESCAPED_KEY, _KELVIN_KEY, f"{_SPACE}+{names}{_SPACE}*", f"{names}{_SPACE}+"]
    return '"(?:' + "|".join(alts) + ')"[ \t\r]*:'


def nameable(key: str) -> bool:
    """A column or key that Polars and a JSON path can name: `*` is Polars' wildcard and `^...$` its
    regex (a run failed with Polars' own message), and jsonpath cannot compile a key holding a
    backslash. Such a column is not read (its rows are)."""
    return key != "*" and not (key.startswith("^") and key.endswith("$")) and "\\" not in key


def _clean(key: str) -> str:
    return key.lstrip(BOM).strip()


def _wanted_dimensions(ctx, seen: set[str]) -> set[str]:
    """The keys a run's `--by` names as dimensions that the first records do not hold (a log's
    `provider` is `--by log_provider`): what the search for late keys also looks for. (A run that
    keeps every dimension, `price`, does not search for unnamed ones: see docs/formats.md.)"""
    if ctx is None or not ctx.dimensions:
        return set()
    builtin = {*schema.BUILTIN_KEYS, *FIELDS}
    wanted = {d for d in ctx.dimensions if d not in builtin and not d.startswith("_")}
    wanted |= {d[4:] for d in wanted if d.startswith("log_") and schema.dimension_name(d[4:]) == d}
    return {d for d in wanted if d not in seen and d.lower() not in FIELDS and _is_dimension(d, False)}


def _countable(sample: list[dict]) -> bool:
    """Whether the first records let KeyCheck's count vouch for the file: a null value (`llm-cost
    price` writes some on every line) or a nested object or array is a key the reader does not take,
    and the search would run after the pass anyway: it runs first, as it did (no count to pay)."""
    return not any(v is None or isinstance(v, (dict, list)) for rec in sample for v in rec.values())


def _late_keys(src: SourceFile, fields: dict[str, str], seen: set[str], wanted: set[str] = frozenset(),
               names: set[str] = frozenset()) -> tuple[dict[str, str], list[str]]:
    """The spellings to read a JSON Lines file's canonical keys by, and the dimensions `wanted` (named
    by `--by`) that first appear after the first records. The first records name the keys (`fields`),
    but a key that first appears later in another case (`Cache_Read_Tokens`), or under a foreign name
    (`cache_read_input_tokens`), would not be read: its tokens lost, with exit 0; a late `team` tag
    would be missing from `--by team`. So the whole file's text is searched for such keys (one regex
    pass over its lines by Polars: ~1 CPU s per 1M records, see docs/performance.md); a line with
    one is decoded, and only its own (top-level) keys count: a nested `{"usage": {"Input_Tokens":
    1}}` or a key inside a string is not read either way. A field the first records lack and the file
    spells otherwise is read by that spelling; two spellings of one field in one file are refused, as
    in the first records (which one counts is ambiguous); so is a name with spaces around it, and a
    record naming one of the keys read (`names`: the first records' keys; `fields`, the late ones)
    twice."""
    fields, respelled, late = dict(fields), set(), []

    def unread(line: bytes) -> str | tuple[str] | None:
        objects = []  # (each object's pairs, innermost first: the record's own come last)
        try:
            record = json.loads(line, object_pairs_hook=lambda pairs: objects.append(pairs) or dict(pairs))
        except ValueError:  # (quarantined whole, as unreadable)
            return None
        if not isinstance(record, dict):
            return None
        keys = [k for k, _ in objects[-1]]
        if len(keys) != len(record):  # (a key twice: a tuple, told apart from a key to read)
            return (next(k for i, k in enumerate(keys) if k in keys[:i]),)
        return next((k for k in record if k not in read and (
            _unread(_clean(k).lower(), k, fields) or k in wanted)), None)
    while (read := {*fields.values(), *late}) and (
            hit := first_key_match(src, _key_pattern(fields, wanted - set(late)) + "|" + _repeated_pattern(read | names),
                                   accept=unread)):
        line, key = hit
        if isinstance(key, tuple):
            raise DialectError(f"{src.display} line {line:,}: {key_twice(key[0])}")
        name = _clean(key).lower()
        if key in wanted and name not in FIELDS and name not in FOREIGN_COUNTS:
            late.append(key)  # (a dimension, read by its name as written)
            continue
        if name in FOREIGN_COUNTS:
            raise DialectError(f"{src.display} line {line:,}: key {key!r} is not a canonical column (its tokens would "
                               f"not be counted): rename it {FOREIGN_COUNTS[name]!r}, or read the file with --map")
        if _clean(key) != key:
            raise DialectError(_spaced(src.display + f" line {line:,}", key))
        if name in seen or name in respelled:
            raise DialectError(f"{src.display} line {line:,}: keys {key!r} and {fields[name]!r} both name {name!r} "
                               "(names match without case): which one counts is ambiguous")
        fields[name] = key
        respelled.add(name)
    return fields, late


def _repeated_pattern(names) -> str:
    """Lines that may name one of `names` twice in one object: the two at one depth, with at most
    objects of one level between them (`"usage": {...}`), so that a log echoing its counts in a
    nested object is not decoded line by line (5x the CPU of its read). A key in an escaped
    spelling is sent to _late_keys' `unread` by _key_pattern already."""
    keys = (re.escape(json.dumps(n)[1:-1]) for n in sorted(names))
    return "|".join(rf'"{k}"[ \t\r]*:(?:[^{{}}]|\{{[^{{}}]*\}})*"{k}"[ \t\r]*:' for k in keys)


def _unread(name: str, key: str, fields: dict[str, str]) -> bool:
    return name in FOREIGN_COUNTS or (name in fields and key != fields[name])


def _spaced(where: str, key: str) -> str:
    return (f"{where}: key {key!r} has spaces around a canonical name (it would not be read): "
            f"rename it {_clean(key).lower()!r}")


# A JSON line's tokens, as far as finding a key's number needs: a string (escapes and all, so that
# nothing inside one is taken for a token), with its `:` when it is a key and the number after that
# when there is one, and brackets (their nesting says whose key it is).
_NUMBER = r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][-+]?[0-9]+)?"
TOKENS = rf'"(?:[^"\\]|\\.)*"(?:[ \t\r\n]*:(?:[ \t\r\n]*{_NUMBER})?)?|[{{}}\[\]]'


def number_at(tokens: pl.Expr, path: tuple[str, ...]) -> pl.Expr:
    """The text of the number at `path` (the record's key, then a key of the object it holds, and
    so on) in a line split into TOKENS; null where no number is written there (none, a string, or
    under an array). A token's depth counts the brackets open around it (the record's own keys are
    at depth 1); the object that holds a key at depth d opened at the last bracket that brought the
    depth to d, and the key before that bracket names it (none for an array's member). Keys are
    compared decoded (`input\u005ftokens` is input_tokens; a line split here parsed, so its strings
    are valid JSON)."""
    return tokens.list.eval(pl.element().filter(_at(path))).list.first().str.extract(rf"({_NUMBER})$")


def _at(path: tuple[str, ...]) -> pl.Expr:
    """Inside `list.eval` over a line's TOKENS: whether each token is a key at `path` (see number_at)."""
    el = pl.element()
    opens = (el == "{") | (el == "[")
    depth = opens.cast(pl.Int32).cum_sum() - ((el == "}") | (el == "]")).cast(pl.Int32).cum_sum()
    quoted = el.str.extract(r'^("(?:[^"\\]|\\.)*")[ \t\r\n]*:')
    named = pl.when(quoted.str.contains(JSON_STRING)).then(quoted).str.json_decode(pl.String)
    at = (depth == len(path)) & (named == path[-1])
    for level, key in enumerate(path[:-1], start=2):
        opened = pl.when(opens & (depth == level)).then(pl.int_range(pl.len())).forward_fill()
        at = at & (named.gather(opened - 1) == key)
    return at


def first_value_at(tokens: pl.Expr, otherwise: pl.Expr, path: tuple[str, ...]) -> pl.Expr:
    """The first value written at `path` in a line split into TOKENS, as the decoder reads a key
    named twice: a number's text, a string's value, null for `null`/`true`/`false` (not tokens: a
    value the count check never takes for a count). `otherwise` where no key is at `path` or its
    first value is an object or array."""
    where = tokens.list.eval(_at(path).arg_true().first()).list.first()
    key, after = tokens.list.get(where, null_on_oob=True), tokens.list.get(where + 1, null_on_oob=True)
    number = key.str.extract(rf"({_NUMBER})$")
    string = pl.when(after.str.contains(JSON_STRING)).then(after).str.json_decode(pl.String)
    return (pl.when(key.is_null() | (number.is_null() & after.is_in(["{", "["]))).then(otherwise)
            .otherwise(pl.coalesce(number, string)))


def _number_texts(lf: pl.LazyFrame, fields: dict[str, str]) -> pl.LazyFrame:
    """Counts' texts as the line (`_raw`) writes them, in place of `_raw(f)`, for each count `f` of
    `fields` (-> its key). Polars' JSON path renders a number through a float
    (`1.00000000000000000001` and `1e0` come back as `1.0`, `99999999999999999999` as `1e+20`), and
    the exactness check then counted 1 token where a CSV holding the same text is quarantined. On
    the rows where the rendering has a fraction, an exponent or 19 digits or more (no other row pays),
    the line's own text of the number after the record's top-level key is read instead, and judged
    as CSV text is (`_parse.count`): the same verdict for the same number in either format.

    In valid JSON, `"key":` after a `{` or `,` is always a key of some object (a quote inside a
    string is escaped: `"x\\"key": 7` is the key `x"key`), so a line with one `{` (no nested object:
    nearly every log line) takes the number after the first such `"key":`. Other lines (a nested
    object, a brace in a string, the key written with escapes) are split into tokens, and only the
    record's own pairs count (~20 CPU s per 1M such rows, measured
    with a nested object on every line; the one-brace lines cost next to nothing). In stages, each a
    column: an expression repeating a sub-expression evaluates it again (the JSON path 5 times cost
    25 CPU s more per 1M rows whose counts are all floats)."""
    line = {f: f"_nl_{f}" for f in fields}
    simple = {f: f"_ns_{f}" for f in fields}
    lf = lf.with_columns(pl.when(pl.col(_raw(f)).str.contains(r"[.eE]|[0-9]{19}")).then(pl.col("_raw")).alias(line[f])
                         for f in fields)
    lf = lf.with_columns(
        pl.when(pl.col(line[f]).str.count_matches("{", literal=True) == 1).then(pl.col(line[f])).str.extract(
            rf"[{{,][ \t\r\n]*{re.escape(json.dumps(k))}[ \t\r\n]*:[ \t\r\n]*({_NUMBER})").alias(simple[f]) for f, k in fields.items())

    def own(f: str, key: str) -> pl.Expr:
        return number_at(pl.when(pl.col(simple[f]).is_null()).then(pl.col(line[f])).str.extract_all(TOKENS), (key,))
    lf = lf.with_columns(pl.coalesce(simple[f], own(f, k), _raw(f)).alias(_raw(f)) for f, k in fields.items())
    return lf.drop(*line.values(), *simple.values())


# Per JSON line of the robust reading: whether it parses (a FLAT_LINE line is valid JSON: not
# parsed), and, for one that does not, its text with numbers quoted, where that parses.
PARSES, QUOTED, FIRSTS = "_parses", "_quoted", "_firsts"
# What a number past a float's range holds (a finer test is the parse): an exponent of 3 digits or
# more, or 300 digits or more.
_PAST_FLOAT = r"[0-9](?:[eE][-+]?[0-9]{3}|[0-9]{299})"


def _bad_json_line() -> tuple[pl.Expr, pl.Expr]:
    line = pl.col(LINE).str.strip_chars()
    valid = pl.col(PARSES) | pl.col(QUOTED).is_not_null()
    ok = line.str.starts_with("{") & valid & ~pl.col(BAD)
    return ok, pl.when(pl.col(BAD)).then(pl.lit(NOT_UTF8)).when(~ok).then(pl.lit(UNREADABLE))


def _raw(c: str) -> str:
    return f"_f_{c}"


def canonical_frame(lf: pl.LazyFrame, fields: dict[str, str], dims: list[str], dtypes: dict, get, raw: pl.Expr,
                    src: SourceFile, bad_record: tuple[pl.Expr, pl.Expr] | None = None, source: str = "canonical",
                    extra: list[str] = (), exact_lines: bool = True, time_sample=(), ctx=None,
                    unseen: list[str] = (), number_texts=()) -> pl.LazyFrame:
    """Build the normalized frame from records with canonical field names.

    `fields` maps each canonical field the records may carry to its name there; `get(name)` reads
    it. Adds `_ok` (every field valid), `_reason` (why not; evaluated only when asked for), `_raw`
    (the record, for the quarantine file) and `_file`. `extra` are bookkeeping columns of `lf` kept
    as they are (`_nb`: why a record does not bill; `_rec`: 1 on a record's first row; `_rank`).
    `time_sample`: the file's first timestamps as written, which choose the format most rows are
    read with (see _parse.fast_format); with `ctx`, naive ones are noted as read in UTC. `unseen`:
    fields read as Null (see to_canonical), each kept in the plan by a check, so that the reader
    sees every value of it (a field no expression used would not be read, and a value not seen).
    `number_texts`: count fields read by a JSON path from the line in `raw`, whose text is the line's
    own (see _number_texts)."""
    present = set(fields)
    out_names = schema.dimension_names(dims)  # a dimension never shadows a built-in key
    lf = lf.select(
        pl.col("_row"), *([pl.col("_path"), pl.col("_line_no")] if src.members else []),
        *(get(fields[f]).alias(_raw(f)) for f in sorted(present)),
        *(get(d).alias(_raw(d)) for d in dims), raw.alias("_raw"),
        *([bad_record[0].alias("_line_ok"), bad_record[1].alias("_line_reason")] if bad_record else []),
        *extra,
    )
    texts = {f: fields[f] for f in number_texts if f in present}
    if texts:
        lf = _number_texts(lf, texts)
    time_sample = list(time_sample)
    naive = isinstance(dtypes["timestamp"], pl.Datetime) and dtypes["timestamp"].time_zone is None
    if ctx is not None and (naive or _parse.is_naive(time_sample)):
        ctx.note(f"{src.display}: timestamps without a time zone are read as UTC")
    fmt = _parse.fast_format(time_sample)
    parsed = [_parse.timestamp(_raw("timestamp"), "timestamp", dtypes["timestamp"], fmt,
                               _parse.fast_layout(time_sample, fmt))]
    for c in (*schema.COUNT_COLUMNS, "cache_write_tokens"):
        if c in present:
            parsed.append(_parse.count(_raw(c), c, dtypes[c], required=c in ("input_tokens", "output_tokens")))
    if "requests" in present:
        f = _parse.count(_raw("requests"), "requests", dtypes["requests"], required=False)
        parsed.append(_parse.Field(f.name, f.first, f.ok, f.reason, f.then, pl.col("requests").fill_null(1)))
    if "reported_cost" in present:
        parsed.append(_parse.money(_raw("reported_cost"), "reported_cost", dtypes["reported_cost"]))
    # Labels are kept as logged here; `labels.py` trims, lower-cases and checks them after aggregation.
    models = [_parse.label(_raw(c), dtypes[c]) for c in ("model_raw", "model") if c in present]
    labels = {"model_raw": pl.coalesce(models) if len(models) > 1 else models[0]}
    labels.update({c: _parse.label(_raw(c), dtypes[c]) for c in LABELS if c in present})
    # Dimensions are text, or numbers (cast); nested ones (Parquet) are read as their JSON text.
    kinds = lf.collect_schema()
    labels.update({out_names[d]: _parse.label(_raw(d), kinds[_raw(d)]) for d in dims})
    constants = {c: pl.lit(0, pl.Int64) for c in schema.COUNT_COLUMNS if c not in present}
    constants.update({c: pl.lit(DEFAULTS.get(c), pl.String) for c in LABELS if c not in present})
    if "requests" not in present:
        constants["requests"] = pl.lit(1, pl.Int64)
    if "reported_cost" not in present:
        constants["reported_cost"] = pl.lit(None, schema.MONEY)
    # A file set (src.members) scans many files at once: rows name their own file and line.
    many = bool(src.members)
    constants.update(source=pl.lit(source), source_file=display_expr(pl.col("_path")) if many else pl.lit(src.display),
                     source_row=pl.col("_line_no" if many else "_row").cast(pl.Int64),
                     # Rows numbered across a file set are told apart by that number alone: their file's
                     # index is needed only beside a line in the file (per-request outputs, quarantine).
                     _file=pl.col("_path").replace_strict(dict(zip(src.paths, (src.index, *src.member_indexes))),
                                                           return_dtype=pl.Int64) if many and exact_lines
                     else pl.lit(src.index, pl.Int64))
    checks = [_in_python_years(dtypes["timestamp"])]
    if unseen:
        checks.append((pl.all_horizontal([pl.col(_raw(f)).is_null() for f in unseen]), pl.lit(None, pl.String)))
    out = _parse.frame(lf, parsed, labels, constants, checks)
    if "cache_write_tokens" in present:
        out = _unsplit_cache_writes(out)
    if bad_record is not None:  # an unreadable record has one reason; its fields are not worth listing
        out = out.with_columns((pl.col("_line_ok") & pl.col("_ok")).alias("_ok"),
                               pl.coalesce("_line_reason", "_reason").alias("_reason"))
    names = [*schema.CANONICAL, *out_names.values(), "_ok", "_reason", "_raw", "_file", *extra]
    return out.select([pl.col(c).cast(schema.CANONICAL[c]) if c in schema.CANONICAL else pl.col(c) for c in names])


# The instants a report can hold: reports, budgets, --since/--until and the store turn times into
# Python dates, which end at year 9999, in the report's zone (--tz, up to 14 hours away). A row
# outside 0001-01-02..9999-12-30 UTC is quarantined with the reason: `9999-12-31T23:00:00-14:00`
# (10000-01-01 in UTC) made `check` fail with "year 10000 is out of range" (a traceback), and a
# FOCUS export write `+10000-01-01`; `0000-01-01` is before year 1.
_FIRST = dt.datetime(1, 1, 2, tzinfo=dt.UTC)
_PAST = dt.datetime(9999, 12, 31, tzinfo=dt.UTC)


def _in_python_years(dtype: pl.DataType) -> tuple[pl.Expr, pl.Expr]:
    t = pl.col("timestamp")
    outside = t.is_not_null() & ((t < _FIRST) | (t >= _PAST))
    # (as a label: a Parquet map or duration column, which no cast makes text, failed the whole run)
    said = _parse.label(_raw("timestamp"), dtype).str.strip_chars().str.slice(0, 40)
    return ~outside, pl.when(outside).then(
        pl.format("timestamp is outside 0001-01-02..9999-12-30 UTC, the dates a report can hold in any zone ({})",
                  said))


LABELS = ("request_id", "platform", "endpoint_scope", "service_tier", "speed", "inference_geo", "context_window")


def _unsplit_cache_writes(lf: pl.LazyFrame) -> pl.LazyFrame:
    """A cache-write total with no 5m/1h split is 5m; beside a split, the residual is 5m. A split
    larger than its total is contradictory: the row is quarantined."""
    total, w5, w1 = pl.col("cache_write_tokens"), pl.col("cache_write_5m_tokens"), pl.col("cache_write_1h_tokens")
    residual = total - w5 - w1
    stated = pl.col(_raw("cache_write_tokens")).is_not_null()
    bad = stated & (residual < 0)
    reason = pl.concat_str([pl.col("_reason"), pl.when(bad).then(pl.lit(
        "cache write split (5m + 1h) exceeds cache_write_tokens"))], separator="; ", ignore_nulls=True)
    return lf.with_columns(
        pl.when(stated & ~bad).then(w5 + residual).otherwise(w5).alias("cache_write_5m_tokens"),
        (pl.col("_ok") & ~bad).alias("_ok"),
        pl.when(reason == "").then(None).otherwise(reason).alias("_reason"),
    )


DIALECT = Dialect(
    name="canonical",
    description="llm-cost's own request schema (timestamp, model, token counts; what `llm-cost price` writes)",
    required=REQUIRED,
    optional=OPTIONAL,
    normalize=to_canonical,
    sampled=True,
    line_local=True,
)

"""Values read from a JSON text as the fast path (Polars' NDJSON decoder) reads them.

A key named twice: its first value.

A JSON Lines file is read by Polars' NDJSON decoder, which keeps the first value of a key an object
names twice (`{"model": "a", "model": "b"}` is model a). A file with one malformed line is read again
robustly, each value by a JSON path (serde_json), which keeps the last: the model, hence the price,
of every such line changed only because another line broke. Here a value is taken as the decoder
takes it, on the lines that need it: those naming a key of the path more than once (a cheap count
of the key's text); every other line keeps its JSON path's value (no line of a real log pays more
than that count).
"""

from __future__ import annotations

import json

import polars as pl

# A JSON string as the standard allows it (escapes `\"` `\\` `\/` `\b` `\f` `\n` `\r` `\t` `\uXXXX`, no
# raw control character): only such text is given to json_decode, which fails the whole run on one
# that is not (a torn line's `"a\l"`), where the line alone is quarantined.
JSON_STRING = r'^"(?:[^"\\\x00-\x1f]|\\["\\/bfnrt]|\\u[0-9A-Fa-f]{4})*"$'


def regex_literal(text: str) -> str:
    """`text` as a pattern of Polars' (Rust's) regex matching just it: its meta characters escaped,
    as regex_syntax::escape does (not Python's re.escape: `\\<` is a word boundary in Rust's syntax)."""
    return "".join("\\" + c if c in "\\.+*?()|[]{}^$#&-~" else c for c in text)


# A key as a line writes it: its own characters (`tökens`, not json.dumps' `t\u00f6kens`), as a
# pattern; or any key holding a `\u` escape (`input\u005ftokens` is input_tokens to the decoder).
ESCAPED_KEY = r'\\u(?:[^"\\]|\\.)*'


def written(key: str, last: int | None = None) -> str:
    """A pattern of `key` as a JSON text writes it (`last`: only its last characters)."""
    text = json.dumps(key, ensure_ascii=False)[1:-1]
    return regex_literal(text[-last:] if last else text)


def named_twice(text: pl.Expr, keys: set[str]) -> pl.Expr:
    """Whether a JSON text names one of `keys` (or a key with a `\\u` escape) more than once, at any
    depth: where a JSON path, which keeps a key's last value, would not read what the decoder reads."""
    names = "|".join(sorted(written(k) for k in keys))
    return text.str.count_matches(rf'(?:"(?:{names})|{ESCAPED_KEY})"[ \t\r\n]*:') > 1


# Every number in a JSON text, with what comes before it: strings are matched whole, so that a digit
# inside one is never taken for a number (a line read here parsed: its strings are valid JSON).
# A number is matched as JSON writes one, so that a text that is not JSON only for a number's form
# (`01`, `1.`) stays not JSON once quoted (`"0""1"`); a valid text's numbers are matched whole.
_BEFORE_A_NUMBER = r'((?:"(?:[^"\\]|\\.)*"|[^"0-9\-])*)(-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][-+]?[0-9]+)?)'
# Each match must start where the last one ended, outside a string. After a text's last number none
# can, and a search that finds no match at a position tries the next one: inside a string after it,
# where a digit (`"note": "v2"`, OTLP's `"intValue": "4821"`) was quoted as a number (`"v"2""`), the
# line no longer parsed, and a count read from it fell back to its float rendering (100e-2 counted 1
# token, exit 0; every Claude Code OpenTelemetry line sent the whole run to the robust reading). So
# the text is searched with a number of its own after it (after a space: never part of the text's
# last number), the last match, which is then cut off again.
_END = " 0"


def quoted_numbers(text: pl.Expr) -> pl.Expr:
    """A JSON text with each number written as a string of its text (`1e0` -> `"1e0"`): decoded, or
    read with a JSON path, a number's value is then its own text, never a float's rendering of it."""
    return (pl.concat_str([text, pl.lit(_END)]).str.replace_all(_BEFORE_A_NUMBER, '${1}"${2}"')
            .str.strip_suffix(' "0"'))


# A JSON line cut into pieces that, joined, are the line again: a string (escapes and all, so that
# nothing inside one is taken for a bracket or a key), with its `:` when it is a key; a bracket (their
# nesting says whose key a key is); and the text between them (commas, spaces, numbers, literals).
PIECES = r'"(?:[^"\\]|\\.)*"(?:[ \t\r\n]*:)?|[{}\[\]]|[^"{}\[\]]+'
# What a key named again in its object is renamed: a key no path reads (Polars cannot name it).
_UNREAD = '"":'


def first_keys_only(text: pl.Expr) -> pl.Expr:
    """A JSON text in which a key an object names again is renamed `""`: read by a JSON path (which
    keeps a key's last value), it then gives what Polars' decoder reads, each key's first value (an
    object's first whole, a list's members each with their own first values). Null where the text
    names no key twice (a text that is no valid JSON may come back changed: it stays unparsable).

    A piece's depth counts the brackets open after it (an object's keys are at its `{`'s depth); a
    key's object is the one opened by the bracket that last brought the depth to the key's."""
    keys = text.str.extract_all(r'"(?:[^"\\]|\\.)*"[ \t\r\n]*:').list.eval(pl.element().str.strip_chars_end(" \t\r\n:"))
    # (a key written twice at any depth: decoded, `mod\\u0065l` is model and `a\\/b` is a/b, so any key
    # with one of those escapes, the only ones that write a character two ways)
    twice = (keys.list.n_unique() < keys.list.len()) | text.str.contains(r'\\(?:u[0-9A-Fa-f]{4}|/)(?:[^"\\]|\\.)*"[ \t\r\n]*:')
    el, pos = pl.element(), pl.int_range(pl.len())
    opens, closes = (el == "{") | (el == "["), (el == "}") | (el == "]")
    depth = opens.cast(pl.Int32).cum_sum() - closes.cast(pl.Int32).cum_sum()
    key = el.str.extract(r'^("(?:[^"\\]|\\.)*")[ \t\r\n]*:$')
    # (decoded only where the key is valid JSON text: a torn line's `"a\\l":` failed the whole run)
    escaped = pl.when(key.str.contains("\\", literal=True) & key.str.contains(JSON_STRING)).then(key).str.json_decode(pl.String)
    named = pl.coalesce(escaped, key.str.strip_prefix('"').str.strip_suffix('"'))
    # A key's object: the last bracket that brought the depth to the key's. Pieces ordered by depth, then
    # position, each depth's run begins with such a bracket (the first piece at a depth opens it): there a
    # forward fill of the brackets' positions names each piece's object, at any depth, in one sort.
    by_depth = depth.cast(pl.Int64) * (1 << 32) + pos
    in_object = (pl.when(opens).then(pos).sort_by(by_depth).forward_fill()
                 .sort_by(pos.sort_by(by_depth)))
    in_object = pl.when(depth > 0).then(in_object)
    again = named.is_not_null() & in_object.is_not_null() & ~pl.format("{}:{}", in_object, named).is_first_distinct()
    renamed = pl.when(again).then(pl.lit(_UNREAD)).otherwise(el)
    return pl.when(twice).then(text).str.extract_all(PIECES).list.eval(renamed).list.join("")

"""Data is never code (DESIGN §13): values read from logs reach spreadsheets, Markdown viewers and
terminals as text, and credentials are masked.

Every rule exists twice, as a Polars expression (for frames: report rows, per-request rows, audit
lines) and as a Python function (for the few message lines: notes, unpriced model ids, errors); the
two use the same patterns so that a value reads the same in a table cell and in a summary line.
"""

from __future__ import annotations

import re

import polars as pl

# -- Credentials ------------------------------------------------------------------------------------
# A credential keeps a recognisable prefix and its last 4 characters: enough to tell keys apart in a
# report, not enough to use one. Masking runs after grouping, so two keys sharing prefix and last 4
# stay two rows. Bodies are at least 16 characters: `sk-test` or a short id is not a key.
_KEY_CHARS = r"[A-Za-z0-9_\-]"
_TOKEN_CHARS = r"[A-Za-z0-9\-._~+/]"
# What may stand before a key whose prefix is short (`sk-`, `AKIA`): anything but a letter or digit.
# Not `\b`: `_` is a word character, and `user_sk-…` or `prod_AKIA…` held keys that `\b` let pass,
# while `task-…` must stay a word. Group 1 keeps that character.
_EDGE = r"(^|[^A-Za-z0-9])"
_ASSIGN = r"""["']?\s*[:=]\s*["']?"""  # `name=`, `"name": "`, `name: `
_PAIR_SEP = r"""["']?[\s:;,|/=]+["']?"""  # between an AWS key id and its secret
# (pattern, replacement): the replacement keeps the groups around the masked body.
SECRETS = (
    # Anthropic (sk-ant-api03-, sk-ant-admin01-, sk-ant-oat01-) and OpenAI's named keys (sk-proj-,
    # sk-svcacct-, sk-admin-): prefixes no word contains, so masked wherever they stand.
    (rf"(sk-(?:ant-[a-z]+[0-9]*-|proj-|svcacct-|admin-)){_KEY_CHARS}{{12,}}({_KEY_CHARS}{{4}})", "${1}\u2026${2}"),
    # OpenAI legacy `sk-` and `sk-None-`: at the start of a token only (`task-…` is a word).
    (rf"{_EDGE}(sk-(?:None-)?){_KEY_CHARS}{{12,}}({_KEY_CHARS}{{4}})", "${1}${2}\u2026${3}"),
    # An AWS key pair written together (`AKIA…:secret`, `AKIA… secret`, a CSV's `id,secret`): the
    # 40-character secret after the id is masked with it. (Alone, a secret is any base64: it is
    # recognised only by a name before it, below, or by its column's name, see SECRET_COLUMN.)
    (rf"{_EDGE}(AKIA|ASIA)[A-Z0-9]{{12}}([A-Z0-9]{{4}})({_PAIR_SEP})[A-Za-z0-9/+]{{36}}([A-Za-z0-9/+]{{4}})",
     "${1}${2}\u2026${3}${4}\u2026${5}"),
    # AWS access key ids (long-term AKIA, temporary ASIA).
    (rf"{_EDGE}(AKIA|ASIA)[A-Z0-9]{{12}}([A-Z0-9]{{4}})", "${1}${2}\u2026${3}"),
    # AWS secret access keys: 40 characters of base64 with no prefix of their own, so only where a
    # name says what they are (`aws_secret_access_key=`, `"SecretAccessKey": "`).
    (rf"((?i:aws_?secret_?access_?key|secret_?access_?key){_ASSIGN})[A-Za-z0-9/+]{{36}}([A-Za-z0-9/+]{{4}})",
     "${1}\u2026${2}"),
    # Google API keys.
    (r"(AIza)[A-Za-z0-9_\-]{31}([A-Za-z0-9_\-]{4})", "${1}\u2026${2}"),
    # HTTP bearer tokens (an Authorization header logged as metadata), whatever the case of `Bearer`.
    (rf"{_EDGE}((?i:bearer)\s+){_TOKEN_CHARS}{{8,}}({_TOKEN_CHARS}{{4}})=*", "${1}${2}\u2026${3}"),
    # Any other scheme of an Authorization header (Basic user:password in base64, Token, ...).
    (rf"((?i:authorization){_ASSIGN}(?:[A-Za-z]+\s+)?){_TOKEN_CHARS}{{8,}}({_TOKEN_CHARS}{{4}})=*",
     "${1}\u2026${2}"),
)
SECRET_PATTERNS = tuple(p for p, _ in SECRETS)
MASK = "\u2026"  # "…": masked characters
# The same replacements in Python's syntax (`${1}` -> `\g<1>`).
_PY_SECRETS = [(re.compile(p), re.sub(r"\$\{(\d)\}", r"\\g<\1>", r)) for p, r in SECRETS]
# A column (a log's own, or a nested key, `creds.aws_secret_access_key`) whose name says it holds a
# secret: its every value is masked, whatever it looks like (an AWS secret access key has no prefix
# of its own). Names that merely mention keys (`api_key`: often a key's name, not the key) are not.
SECRET_COLUMN = re.compile(r"(?i)(?:^|[._\-\s])(?:(?:aws_?)?secret(?:_?access)?(?:_?key)?|client_?secret|password|passwd)$")


# Every pattern above contains one of these: a value without any holds no credential.
_CANDIDATE = r"sk-|AKIA|ASIA|AIza|(?i:bearer|secret|authorization)"
# The same words for a cheaper first scan (Aho-Corasick, ASCII case ignored): it finds every value
# _CANDIDATE finds, and a few more ("Sk-", "asia"), which _CANDIDATE then tests. `(?i)` is Unicode
# simple case folding, under which only U+017F (long s, for `s`) and U+212A (Kelvin, for `k`) fold
# to ASCII letters: `ſecret` is listed, and no word of the (?i) group has a `k`
# (tests/hostile/test_safety.py checks both against Polars' own regex).
CANDIDATE_WORDS = ("sk-", "akia", "asia", "aiza", "bearer", "secret", "\u017fecret", "authorization")


def mask_secrets_expr(expr: pl.Expr) -> pl.Expr:
    masked = expr
    for pattern, replacement in SECRETS:
        masked = masked.str.replace_all(pattern, replacement)
    # Polars skips a branch no row takes: a batch of a column without candidates (most dimension
    # columns) costs one cheap scan instead of a capture-group replacement per pattern (1.3 s ->
    # 0.01 s per million values). That scan is CANDIDATE_WORDS' (~0.027 CPU s a million values of
    # the bench's columns, against _CANDIDATE's regex ~0.054; `price` masks six columns a row); the
    # regex runs only in a batch where the words are found, and decides as before.
    exact = pl.when(expr.str.contains(_CANDIDATE)).then(masked).otherwise(expr)
    return pl.when(expr.str.contains_any(list(CANDIDATE_WORDS), ascii_case_insensitive=True)).then(
        exact).otherwise(expr)


_PY_CANDIDATE = re.compile(_CANDIDATE)
_PY_WORDS = ("sk-", "akia", "asia", "aiza", "bearer", "secret", "authorization")


def _maybe_secret(text: str) -> bool:
    """Whether `text` matches _CANDIDATE. An ASCII text matches only if its lower case holds one of
    _PY_WORDS (each word of _CANDIDATE in lower case): tested first, as `in` costs a fifth of the
    regex (a 17,000-transcript tree's names: 0.086 -> 0.019 CPU s). Other text goes to the regex:
    Python's `(?i)` also takes `ı`, `İ`, `ſ` and the Kelvin sign for ASCII letters."""
    if text.isascii():
        low = text.lower()
        if not any(w in low for w in _PY_WORDS):
            return False
    return _PY_CANDIDATE.search(text) is not None


def mask_secrets(text: str) -> str:
    # The same first test as mask_secrets_expr: a report names every file it read, and eight
    # substitutions per name cost a 17,000-transcript tree 0.5 s (a 170,000-file tree 5 s).
    if not _maybe_secret(text):
        return text
    for rx, replacement in _PY_SECRETS:
        text = rx.sub(replacement, text)
    return text


def mask_tree(value):
    """Every string in a JSON-like value (dict keys too) with credentials masked: the accounting's
    file names (quarantine file, skipped files) and the book's overlay paths are paths the user
    typed, and a key pasted into a file name is a key."""
    if isinstance(value, str):
        return mask_secrets(value)
    if isinstance(value, dict):
        return {mask_tree(k): mask_tree(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [mask_tree(v) for v in value]
    return value


def mask_whole_expr(expr: pl.Expr) -> pl.Expr:
    """A value that is a secret as a whole: its last 4 characters (of 12 or more), else nothing."""
    return pl.when(expr.str.len_chars() >= 12).then(pl.lit(MASK) + expr.str.slice(-4)).otherwise(
        pl.when(expr.is_not_null()).then(pl.lit(MASK)))


def mask_frame(df: pl.DataFrame | pl.LazyFrame, columns: list[str] | None = None):
    """Every String column (or `columns`) with credentials masked; a column named as holding a
    secret (SECRET_COLUMN) masked whole."""
    schema = df.collect_schema() if isinstance(df, pl.LazyFrame) else df.schema
    cols = [c for c, t in schema.items() if t == pl.String and (columns is None or c in columns)]
    return df.with_columns([(mask_whole_expr if SECRET_COLUMN.search(c) else mask_secrets_expr)(pl.col(c)).alias(c)
                            for c in cols]) if cols else df


def mask_column_names(df: pl.DataFrame | pl.LazyFrame):
    """Column names with credentials masked (a log's own header may hold a key: `price` writes
    every dimension column); a masked name that meets another gets a number (`…a1B2_2`)."""
    names = df.collect_schema().names() if isinstance(df, pl.LazyFrame) else df.columns
    taken, renames = set(names), {}
    for c in names:
        masked = mask_secrets(c)
        if masked == c:
            continue
        new, n = masked, 1
        while new in taken:
            n += 1
            new = f"{masked}_{n}"
        taken.add(new)
        renames[c] = new
    return df.rename(renames) if renames else df


# -- Terminal ---------------------------------------------------------------------------------------
# Characters that act on a terminal instead of showing: C0/C1 controls (ESC starts the sequences
# that clear the screen or retitle the window), DEL, and the invisible characters that reorder or
# hide text: every format character (Unicode category Cf: bidi overrides and isolates, zero-width
# characters, the word joiner U+2060, U+180E, the tag characters U+E0000-E007F that smuggle ASCII
# past a reader) and the line/paragraph separators. A hand-made list missed U+2060, U+180E and the
# tags; the categories do not (the list is spelled out because computing it costs 0.4 s at start;
# a test checks it against unicodedata). Each is shown as its escape, `\x1b` or `\u202e`.
FORMAT_CHARACTERS = (  # Unicode 15 category Cf
    0x00AD, *range(0x0600, 0x0606), 0x061C, 0x06DD, 0x070F, *range(0x0890, 0x0892), 0x08E2, 0x180E,
    *range(0x200B, 0x2010), *range(0x202A, 0x202F), *range(0x2060, 0x2065), *range(0x2066, 0x2070), 0xFEFF,
    *range(0xFFF9, 0xFFFC), 0x110BD, 0x110CD, *range(0x13430, 0x13440), *range(0x1BCA0, 0x1BCA4),
    *range(0x1D173, 0x1D17B), 0xE0001, *range(0xE0020, 0xE0080))
_INVISIBLE = sorted({*range(0x00, 0x20), 0x7F, *range(0x80, 0xA0), 0x2028, 0x2029, *FORMAT_CHARACTERS})


def _escape(code: int) -> str:
    return {0x09: "\\t", 0x0A: "\\n", 0x0D: "\\r"}.get(
        code, f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}")


TERMINAL_ESCAPES = {chr(c): _escape(c) for c in _INVISIBLE}
_TERMINAL_TABLE = str.maketrans(TERMINAL_ESCAPES)
_TERMINAL_KEEP_NEWLINES = str.maketrans({k: v for k, v in TERMINAL_ESCAPES.items() if k != "\n"})


def terminal_text(text: str, keep_newlines: bool = False) -> str:
    """`text` with every control, bidi and invisible character shown as its escape."""
    return text.translate(_TERMINAL_KEEP_NEWLINES if keep_newlines else _TERMINAL_TABLE)


def terminal_expr(expr: pl.Expr) -> pl.Expr:
    return expr.str.replace_many(list(TERMINAL_ESCAPES), list(TERMINAL_ESCAPES.values()))


# -- CSV --------------------------------------------------------------------------------------------
# OWASP CSV injection: a spreadsheet runs a cell starting with = + - @ (or tab/CR before one) as a
# formula. Such text cells get a leading `'`, which spreadsheets show as text. Also caught: the
# prefix after leading white space (a spreadsheet that trims cells on import, or a line feed that
# starts the cell) and the full-width forms ＝ ＋ － ＠ (Excel in East Asian locales reads ＝SUM(...)
# as a formula). Numbers stay numbers: only text columns are touched, and a text cell that is a
# plain number ("-5") is no formula. The leading run is spelled out, white space and control
# characters alike: `\s` is not the same class in Python's re (which counts \x1c-\x1f) and in
# Polars' Rust regex, and "\x1f=" went out unneutralised from one and not the other.
_FORMULA = r"^(?:[\s\x00-\x1f\x7f]*[=+\-@\uFF1D\uFF0B\uFF0D\uFF20]|[\t\r\n])"
_NUMBER = r"[+-]?[0-9]+(\.[0-9]+)?"
_PLAIN_NUMBER = rf"^{_NUMBER}$"  # Rust's `$` is the end of the text (Python's also matches before a final \n)


def csv_cell_expr(expr: pl.Expr) -> pl.Expr:
    # The number test only inside the formula branch: Polars skips a branch no row of a batch takes,
    # so a column with no formula-like cell (nearly every one) pays one anchored scan, not two
    # (`price -o F.csv`: 0.65 -> 0.32 CPU s a million rows over its 19 text columns).
    return pl.when(expr.str.contains(_FORMULA)).then(
        pl.when(expr.str.contains(_PLAIN_NUMBER)).then(expr).otherwise(pl.lit("'") + expr)).otherwise(expr)


def csv_cell_read_expr(expr: pl.Expr) -> pl.Expr:
    """The text a cell of llm-cost's own CSV stood for: the `'` csv_cell_expr put before a formula-like
    text taken off again (reading the FOCUS export back as an invoice must see the logs' values)."""
    rest = expr.str.strip_prefix("'")
    put_on = expr.str.starts_with("'") & rest.str.contains(_FORMULA) & ~rest.str.contains(_PLAIN_NUMBER)
    return pl.when(put_on).then(rest).otherwise(expr)


def csv_cell(text: str) -> str:
    return "'" + text if re.match(_FORMULA, text) and not re.fullmatch(_NUMBER, text) else text


def csv_frame(df: pl.DataFrame | pl.LazyFrame):
    """Text columns neutralised, column names too (a log's own column names become dimensions)."""
    schema = df.collect_schema() if isinstance(df, pl.LazyFrame) else df.schema
    df = df.with_columns([csv_cell_expr(pl.col(c)).alias(c) for c, t in schema.items() if t == pl.String])
    renames = {c: csv_cell(c) for c in schema if csv_cell(c) != c}
    return df.rename(renames) if renames else df


# -- Markdown ---------------------------------------------------------------------------------------
# A table cell is one line between pipes: `|` would add a column and a newline a row; `\` escapes;
# `[`, `]` would make links, `*`, `_` and backticks emphasis and code, `~` strikethrough; `<` and `&`
# raw HTML or entities. Each is escaped (CommonMark backslash escape or HTML entity); a newline
# becomes `<br>` and other controls their visible escape, as on a terminal (`\r\n` is `\r<br>`:
# nothing is lost). A `_` between two letters or digits is left alone: GFM does not emphasise
# inside words, and ids like `cache_read` stay readable; `__init__` or `_x_` would be emphasis.
_MD_FIRST = [("\\", "\\\\"), ("&", "&amp;"), ("<", "&lt;"), (">", "&gt;"), ("|", "\\|"), ("[", "\\["),
             ("]", "\\]"), ("*", "\\*"), ("_", "\\_"), ("~", "\\~"), ("`", "\\`"), ("$", "\\$"), ("@", "\\@"),
             ("\n", "<br>")]
# GitHub also makes links of bare URLs and `www.` names (its autolink extension), and math of `$x$`.
# `$` and `@` are escaped above (`\@`: an e-mail address is linked only when whole in one piece of
# text, and an escape splits it); a URL by escaping the `:` of `://` and the `.` of `www.`, which the
# autolink needs to see as written (`http\://x` and `www\.x` render as `http://x` and `www.x`, as text).
_AUTOLINK = r"(?i)(://|www\.)"
_MD_TABLE = str.maketrans({**{k: v for k, v in TERMINAL_ESCAPES.items() if k != "\n"}, **dict(_MD_FIRST)})
# An escaped `_` with a letter or digit on each side goes back to `_`. Matches cannot overlap, so
# `a_b_c` needs two passes (the first frees a_b, the second b_c).
_INTRAWORD = r"([A-Za-z0-9])\\_([A-Za-z0-9])"
_PY_INTRAWORD = re.compile(_INTRAWORD)


def markdown_cell(text: str) -> str:
    text = re.sub(_AUTOLINK, lambda m: "\\" + m[0] if m[0] == "://" else m[0][:3] + "\\.", text.translate(_MD_TABLE))
    for _ in range(2):
        text = _PY_INTRAWORD.sub(r"\1_\2", text)
    return text


def markdown_expr(expr: pl.Expr) -> pl.Expr:
    # One pass: no replacement is escaped again (the `\` of `\|` is not doubled). Every pattern is
    # one character, so the order of matching cannot matter.
    pairs = [*_MD_FIRST, *((k, v) for k, v in TERMINAL_ESCAPES.items() if k != "\n")]
    escaped = expr.str.replace_many([a for a, _ in pairs], [b for _, b in pairs])
    escaped = escaped.str.replace_all("://", "\\://", literal=True).str.replace_all(r"(?i)(www)\.", "${1}\\.")
    for _ in range(2):
        escaped = escaped.str.replace_all(_INTRAWORD, "${1}_${2}")
    return escaped

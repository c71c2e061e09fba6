"""Invoice readers: what a provider billed, as lines on the invoice's own grain.

Every format becomes the same frame (`LINE_SCHEMA`): one row per invoice line with its period
(UTC dates, end exclusive), the keys it is grouped by (null = the invoice does not group by it on
that line), the billed amount in dollars (exact Decimal) and, where the invoice says it, the billed
quantity. Labels (model display names, token types, context windows) are mapped through
`labels.toml` and the price book's model names: data, not code.

Formats (detected from the file's keys/columns; `read(..., fmt=...)` forces one):
  admin-cost-report   Admin API GET /v1/organizations/cost_report JSON; amounts are cents as strings
  analytics-cost      Usage & Cost Analytics API GET /v1/organizations/analytics/cost JSON (cents)
  console-cost-csv    Console > Cost > Export CSV (dollars, display model names)
  focus               FinOps FOCUS cost and usage CSV or Parquet (BilledCost, ConsumedQuantity)
  plain-csv           period,model[,token_type],amount_usd[,quantity,service_tier,context_window,workspace]
"""

from __future__ import annotations

import codecs
import datetime as dt
import json
import os
import shutil
import stat
import tomllib
from dataclasses import dataclass, field
from decimal import Decimal
from importlib import resources

import polars as pl
import polars.selectors as cs

from ..dialects._parse import label
from ..errors import AnalyzerError
from ..held import holding_parquet
from ..models import Resolver
from ..pricebook import PriceBook
from ..schema import MONEY
from ..sources import check_parquet
from ..words import counted

FORMATS = ("admin-cost-report", "analytics-cost", "console-cost-csv", "focus", "plain-csv")
# Keys an invoice line may be grouped by, besides its period (in output order).
KEYS = ("model", "token_type", "service_tier", "context_tier", "workspace")
LINE_SCHEMA = {
    "line": pl.String,  # where the line is in the file, for messages ("row 12", "data[3].results[5]")
    "period_start": pl.Date,
    "period_end": pl.Date,  # exclusive
    "model_label": pl.String,  # the model as the invoice spells it
    **{k: pl.String for k in KEYS},
    "billed": MONEY,
    "quantity": MONEY,  # tokens (or tool requests) billed, when the invoice says
}
_CENTS = Decimal("0.01")
_MAX_AMOUNT = Decimal(10) ** 15


class InvoiceError(AnalyzerError):
    """An invoice file cannot be read; the message names the file and the line."""


@dataclass
class Invoice:
    path: str
    format: str
    lines: pl.DataFrame  # LINE_SCHEMA
    period_unit: str  # "day" or "month": the invoice's own time grain
    excludes_priority: bool = False  # the Admin cost report leaves Priority Tier costs out
    notes: list[str] = field(default_factory=list)

    @property
    def keys(self) -> list[str]:
        """The keys at least one line is grouped by."""
        return [k for k in KEYS if self.lines[k].null_count() < self.lines.height]


def labels() -> dict:
    with resources.files(__package__).joinpath("labels.toml").open("rb") as f:
        return tomllib.load(f)


# ----------------------------------------------------------------------------------------------
# Detection


def detect(path: str) -> str:
    """The invoice format, from the file's top-level keys or header."""
    ext = os.path.splitext(path)[1].lower()
    if ext == ".parquet":
        # (read_parquet_schema expands `[` in a name)
        cols = set(pl.scan_parquet(_checked_parquet(path), glob=False).collect_schema())
        if "BilledCost" in cols:
            return "focus"
        raise InvoiceError(f"{path}: a Parquet invoice must be a FOCUS file (no BilledCost column)")
    with open(path, "rb") as f:
        raw = f.read(65536)
    if raw.startswith(b"PAR1"):  # (a Parquet file read from a pipe or under another name)
        raise InvoiceError(f"{path}: a Parquet file; give it a name ending in .parquet")
    try:
        # (incremental: a character the 64 KiB cut ends inside is not an encoding error)
        head = codecs.getincrementaldecoder("utf-8-sig")().decode(raw, final=len(raw) < 65536)
    except UnicodeDecodeError:
        raise InvoiceError(f"{path}: not UTF-8 text: an invoice is a CSV or JSON file in UTF-8, or a "
                           "FOCUS Parquet file named .parquet") from None
    if head.lstrip().startswith(("{", "[")):
        doc = _load_json(path)
        first = next((b for page in _pages(doc, path) for b in page.get("data") or []), None)
        if isinstance(first, dict) and "results" in first:
            return "admin-cost-report"
        if isinstance(first, dict) and "cost" in first:
            return "analytics-cost"
        raise InvoiceError(f"{path}: JSON is neither an Admin API cost report (data[].results[]) nor an analytics "
                           "cost report (data[].cost); pass --invoice-format")
    header = {c.strip().strip('"') for c in head.splitlines()[0].split(",")} if head else set()
    if "BilledCost" in header:
        return "focus"
    if {"usage_date_utc", "cost_usd"} <= header:
        return "console-cost-csv"
    if {"period", "model", "amount_usd"} <= header:
        return "plain-csv"
    raise InvoiceError(f"{path}: not a known invoice format (expected a cost report JSON, a Console cost CSV, a FOCUS "
                       "file, or a CSV with period,model,amount_usd); pass --invoice-format")


EMPTY_NOTE = ("the invoice has no charge lines: it bills nothing and names no period, so every priced day of the "
              "logs is compared with $0")


def read(path: str, book: PriceBook, fmt: str | None = None) -> Invoice:
    if fmt is not None and fmt not in _READERS:
        raise InvoiceError(f"--invoice-format {fmt!r}: use one of {', '.join(FORMATS)}")
    readable = _readable(path)
    try:
        with holding_parquet():  # (a Parquet invoice is read whole here: its file is closed once read)
            fmt = fmt or detect(readable)
            frame, notes, excludes_priority = _READERS[fmt](readable)
            lines = _finish(frame, readable, book)
        if not lines.height:
            # A header with no charge lines (a FOCUS export of logs nothing in which was priced, a
            # month without usage) bills nothing: it is compared as $0 against all of the logs.
            notes = [*notes, EMPTY_NOTE]
        unit = _period_unit(lines, readable)
    except InvoiceError as e:
        raise InvoiceError(str(e).replace(readable, path)) from None  # (the spooled copy is the user's file)
    return Invoice(path, fmt, lines, unit, excludes_priority, notes)


def _readable(path: str) -> str:
    """A path the readers can open more than once: the invoice itself when it is a regular file; the
    bytes of a pipe, FIFO or /dev/stdin (`-` too), read once, in a temporary copy (removed when the
    run ends) that keeps the name's extension (`.parquet` says the format)."""
    from ..sources import temporary_file

    if path == "-":
        source = "/dev/stdin"
    else:
        try:
            st = os.stat(path)
        except FileNotFoundError:
            raise InvoiceError(f"--invoice {path}: no such file") from None
        except OSError as e:
            raise InvoiceError(f"--invoice {path}: cannot read it ({e.strerror})") from None
        if stat.S_ISDIR(st.st_mode):
            raise InvoiceError(f"--invoice {path}: a directory; give the invoice file")
        if stat.S_ISREG(st.st_mode):
            return path
        if not (stat.S_ISFIFO(st.st_mode) or stat.S_ISCHR(st.st_mode) or stat.S_ISSOCK(st.st_mode)):
            raise InvoiceError(f"--invoice {path}: not a file, a pipe or standard input")
        source = path
    fd, copy = temporary_file("llm-cost-invoice-", os.path.splitext(path)[1])
    try:
        with open(source, "rb") as f, os.fdopen(fd, "wb") as out:
            shutil.copyfileobj(f, out)
    except OSError as e:
        raise InvoiceError(f"--invoice {path}: cannot read it ({e.strerror})") from None
    return copy


# ----------------------------------------------------------------------------------------------
# Readers: each returns a frame of strings (line, starting_at, ending_at, model_label, token_type,
# cost_type, service_tier, context_window, workspace, amount, quantity) with amount in dollars or
# cents as the format says, and notes.


def _load_json(path: str):
    try:
        with open(path, encoding="utf-8-sig") as f:
            # Numbers are kept as the text they are written as: an amount is read exactly as a
            # decimal from that text, never through a binary float (123456789.123456789 stays so).
            return json.load(f, parse_float=str, parse_int=str)
    except json.JSONDecodeError as e:
        raise InvoiceError(f"{path}:{e.lineno}: not valid JSON: {e.msg}") from None
    except UnicodeDecodeError:
        raise InvoiceError(f"{path}: not UTF-8 text: a JSON invoice is UTF-8") from None
    except RecursionError:  # Python's decoder recurses per level: no invoice nests a thousand deep
        raise InvoiceError(f"{path}: JSON nested too deeply to be an invoice") from None


def _pages(doc, path: str) -> list[dict]:
    """A cost report is one page ({data, has_more, next_page}) or a list of pages saved together."""
    pages = doc if isinstance(doc, list) else [doc]
    if not all(isinstance(p, dict) and isinstance(p.get("data"), list) for p in pages):
        raise InvoiceError(f"{path}: expected a report page {{\"data\": [...]}} or a list of pages")
    return pages


def _incomplete(pages: list[dict]) -> list[str]:
    if pages and pages[-1].get("has_more"):
        return ["the report says has_more: true, so later pages are missing from this file; fetch them "
                f"(next_page {pages[-1].get('next_page')!r}) and save the pages together as a JSON list"]
    return []


def _check_shape(value, shape, where: str, path: str) -> None:
    """Refuse a JSON value that is not the shape a reader builds its frame with (`shape`: a dict of
    members, a one-item list of an element's shape, or "text"). Polars' from_dicts does not: a list
    where an amount belongs dropped that page's lines (read as an invoice of no lines) or raised a
    TypeError, depending on where it came. Invoices hold thousands of lines, not millions: the walk
    is over JSON already decoded by Python."""
    if value is None:
        return  # (absent: the readers treat it as null)
    if isinstance(shape, dict):
        if not isinstance(value, dict):
            raise InvoiceError(f"{path}, {where}: expected an object, found {json.dumps(value)[:60]}")
        for key, inner in shape.items():
            _check_shape(value.get(key), inner, f"{where}.{key}" if where else key, path)
    elif isinstance(shape, list):
        if not isinstance(value, list):
            raise InvoiceError(f"{path}, {where}: expected a list, found {json.dumps(value)[:60]}")
        for i, item in enumerate(value):
            if item is None and isinstance(shape[0], dict):  # (a null line or page: Polars' own error, or lost)
                raise InvoiceError(f"{path}, {where}[{i}]: expected an object, found null")
            _check_shape(item, shape[0], f"{where}[{i}]", path)
    elif not isinstance(value, str):  # (numbers are their text already: _load_json)
        raise InvoiceError(f"{path}, {where}: expected a text or a number, found {json.dumps(value)[:60]}")


def _cents_to_dollars(col: str) -> pl.Expr:
    return (_decimal(col) * pl.lit(_CENTS, MONEY)).cast(MONEY)


def _decimal(col: str) -> pl.Expr:
    return pl.col(col).str.strip_chars().cast(MONEY, strict=False)


_PLACES = MONEY.scale  # money is exact to 12 decimal places (a picodollar)
_CENTS_PLACES = _PLACES - 2  # an amount in cents (Admin API reports): 10 places of a cent are 12 of a dollar


def _places(col: str) -> pl.Expr:
    """How many decimal places the number written in `col` needs (trailing zeros do not count; an
    exponent moves the point: `1.5e-12` needs 13). Null when the text is not a plain number. Casting
    to MONEY rounds what is finer than MONEY's scale without a word, so this is read from the text."""
    parts = pl.col(col).str.strip_chars().str.extract_groups(r"^[+-]?(\d*)(?:\.(\d*))?(?:[eE]([+-]?)0*(\d+))?$")
    whole, frac = parts.struct.field("1").fill_null(""), parts.struct.field("2").fill_null("")
    digits = whole + frac
    significant = digits.str.strip_chars_end("0")
    zeros = (digits.str.len_chars() - significant.str.len_chars()).cast(pl.Int64)
    # An exponent of any length (Polars reads `1e-0000013` and `1e-1000000`, as 1e-13 and 0): beyond 6
    # digits (leading zeros aside) it is taken as 10^7, a number no money column holds either way.
    power = parts.struct.field("4")
    power = pl.when(power.str.len_chars() > 6).then(10_000_000).otherwise(power.cast(pl.Int64))
    exponent = (pl.when(parts.struct.field("3") == "-").then(-power).otherwise(power)).fill_null(0)
    places = frac.str.len_chars().cast(pl.Int64) - exponent - zeros
    return pl.when(significant.str.strip_chars_start("0") == "").then(0).otherwise(places)  # (zero: `0.0e-20`)


def _too_fine(col: str, places: int | pl.Expr = _PLACES) -> pl.Expr:
    """The number in `col` has digits beyond `places` decimal places: it cannot be held exactly."""
    return pl.col(col).is_not_null() & (_places(col) > places)


_S = pl.String


def _admin_cost_report(path: str):
    pages = _pages(_load_json(path), path)
    result = pl.Struct({k: _S for k in ("amount", "currency", "workspace_id", "cost_type", "context_window", "model",
                                        "service_tier", "token_type", "description")})
    _check_shape([b for p in pages for b in p["data"]],
                 [{"starting_at": "text", "ending_at": "text", "results": [{f.name: "text" for f in result.fields}]}],
                 "data", path)
    buckets = pl.from_dicts([b for p in pages for b in p["data"]],
                            schema={"starting_at": _S, "ending_at": _S, "results": pl.List(result)})
    frame = (buckets.with_row_index("_bucket").explode("results").drop_nulls("results").unnest("results")
             .with_columns(pl.format("data[{}].results[{}]", "_bucket", pl.int_range(pl.len()).over("_bucket"))
                           .alias("line")))
    frame = frame.select("line", "starting_at", "ending_at", pl.col("model").alias("model_label"), "token_type",
                         "cost_type", "service_tier", "context_window", pl.col("workspace_id").alias("workspace"),
                         "currency", _cents_to_dollars("amount").alias("billed"), pl.col("amount").alias("_amount"),
                         pl.lit(_CENTS_PLACES).alias("_amount_places"),
                         pl.lit(None, MONEY).alias("quantity"))
    return frame, _incomplete(pages), True  # the endpoint leaves Priority Tier costs out


def _analytics_cost(path: str):
    pages = _pages(_load_json(path), path)
    group = pl.Struct({k: _S for k in ("model", "token_type", "cost_type", "service_tier", "context_window",
                                       "workspace_id")})
    _check_shape([r for p in pages for r in p["data"]],
                 [{"starting_at": "text", "ending_at": "text", "group": {f.name: "text" for f in group.fields},
                   "cost": {"amount": "text", "currency": "text"}}], "data", path)
    rows = pl.from_dicts([r for p in pages for r in p["data"]],
                         schema={"starting_at": _S, "ending_at": _S, "group": group,
                                 "cost": pl.Struct({"amount": _S, "currency": _S})})
    frame = rows.with_row_index("_i").unnest("group").unnest("cost").select(
        pl.format("data[{}]", "_i").alias("line"), "starting_at", "ending_at", pl.col("model").alias("model_label"),
        "token_type", "cost_type", "service_tier", "context_window", pl.col("workspace_id").alias("workspace"),
        "currency", _cents_to_dollars("amount").alias("billed"), pl.col("amount").alias("_amount"),
        pl.lit(_CENTS_PLACES).alias("_amount_places"), pl.lit(None, MONEY).alias("quantity"))
    return frame, _incomplete(pages), False


def _csv(path: str) -> pl.DataFrame:
    try:
        df = pl.read_csv(path, infer_schema=False, encoding="utf8", glob=False)
        header = pl.read_csv(path, has_header=False, n_rows=1, infer_schema=False, encoding="utf8", glob=False)
    except pl.exceptions.PolarsError as e:
        raise InvoiceError(f"{path}: cannot read CSV: {str(e).strip().splitlines()[0]}") from None
    # A column named twice (`amount_usd,amount_usd`): Polars renamed the second one and the first was
    # billed, silently; named twice up to white space, the rename below failed with Polars' message.
    names = [str(c).strip() for c in header.row(0) if c is not None] if header.height else []
    twice = next((c for c in names if names.count(c) > 1), None)
    if twice is not None:
        raise InvoiceError(f"{path}, line 1: column {twice!r} is named twice; which one is billed is ambiguous")
    # Row numbers as an editor shows them: the header is line 1.
    return df.rename(lambda c: c.strip()).with_columns(pl.format("line {}", pl.int_range(2, pl.len() + 2)).alias("line"))


def _need(df: pl.DataFrame, path: str, cols: tuple[str, ...]) -> None:
    missing = [c for c in cols if c not in df.columns]
    if missing:
        raise InvoiceError(f"{path}: missing column{'s' if len(missing) > 1 else ''} {', '.join(missing)}")


def _opt(df: pl.DataFrame, col: str) -> pl.Expr:
    return pl.col(col) if col in df.columns else pl.lit(None, _S)


def _console_cost_csv(path: str):
    df = _csv(path)
    _need(df, path, ("usage_date_utc", "model", "token_type", "cost_usd"))
    day = pl.col("usage_date_utc").str.strip_chars()
    frame = df.select(
        "line", day.alias("starting_at"), pl.lit(None, _S).alias("ending_at"), pl.col("model").alias("model_label"),
        "token_type", _opt(df, "cost_type").alias("cost_type"), _opt(df, "usage_type").alias("service_tier"),
        _opt(df, "context_window").alias("context_window"), _opt(df, "workspace").alias("workspace"),
        pl.lit("USD").alias("currency"), _decimal("cost_usd").alias("billed"), pl.col("cost_usd").alias("_amount"),
        pl.lit(None, MONEY).alias("quantity"))
    return frame, [], False


def _checked_parquet(path: str) -> str:
    """Where Polars reads a Parquet invoice: the file sources.check_parquet decoded (Polars panics on
    some damaged pages), also when --invoice-format focus skips detect; kept open, so that a file
    replaced at its path since is not read unchecked."""
    try:
        found = check_parquet(path)
    except ValueError as e:
        raise InvoiceError(f"{path}: cannot read ({e})") from None
    found.held.verify()  # (read right after: written again since its check, it is not read; see held.py)
    return found.source


def _focus(path: str):
    if path.lower().endswith(".parquet"):  # every column as text, like the CSV: one code path below
        df = pl.read_parquet(_checked_parquet(path), glob=False)
        # Timestamps as the ISO instants a FOCUS CSV holds (a UTC Datetime column's text is not ISO).
        df = df.with_columns([(pl.col(c).dt.convert_time_zone("UTC") if t.time_zone else pl.col(c))
                              .dt.strftime("%Y-%m-%dT%H:%M:%SZ") for c, t in df.schema.items() if isinstance(t, pl.Datetime)])
        # (a nested column as its JSON text, a duration ISO: Polars casts neither to text, and FOCUS
        # exports in Parquet hold Tags as a map; it failed the audit, naming no file)
        df = df.with_columns(label(c, t) for c, t in df.schema.items()).with_columns(
            pl.format("row {}", pl.int_range(1, pl.len() + 1)).alias("line"))
    else:
        from ..safe_text import csv_cell_read_expr

        # llm-cost's own FOCUS CSV neutralised formula-like text (a workspace `=1+1` is `'=1+1`): read
        # back, it must be the logs' value again, or the audit of an export against its logs differs.
        df = _csv(path)
        df = df.with_columns(csv_cell_read_expr(pl.col(c)) for c in df.columns if c != "line")
    _need(df, path, ("BilledCost", "ChargePeriodStart", "ChargePeriodEnd", "ChargeCategory"))
    # Every line, usage or not, is checked before the split: a line with no category would be in
    # neither part (lost from the audit), and a credit's amount or currency is named in a note.
    category = pl.col("ChargeCategory").str.strip_chars()
    bad = _first_bad(df, category.is_null() | (category == ""))
    if bad:
        raise InvoiceError(f"{path}, {bad['line']}: ChargeCategory is empty; FOCUS gives every line one "
                           "(Usage, Purchase, Tax, Credit, Adjustment)")
    bad = _first_bad(df, _decimal("BilledCost").is_null())
    if bad:
        raise InvoiceError(f"{path}, {bad['line']}: amount {bad['BilledCost']!r} is not a decimal number")
    bad = _first_bad(df, _too_fine("BilledCost"))  # (a credit's too: its amount is summed in a note)
    if bad:
        raise InvoiceError(f"{path}, {bad['line']}: amount {bad['BilledCost']!r} has more than {_PLACES} decimal "
                           "places; llm-cost keeps money exact to 12 places of a dollar and does not round an invoice")
    currency = _opt(df, "BillingCurrency").str.strip_chars()
    bad = _first_bad(df.with_columns(currency.alias("_currency")),
                     (pl.col("_currency") != "") & (pl.col("_currency").str.to_uppercase() != "USD"))
    if bad:
        raise InvoiceError(f"{path}, {bad['line']}: currency {bad['_currency']!r}; only USD invoices can be audited")
    details = pl.Struct({k: _S for k in ("x_ModelId", "ModelId", "x_TokenDirection", "TokenDirection",
                                         "x_TokenCacheAction", "TokenCacheAction", "x_CacheTtl", "x_ServiceTier")})
    parsed = _opt(df, "SkuPriceDetails").replace("", None).str.json_decode(details)
    try:
        df = df.with_columns(parsed.alias("_d"))
    except pl.exceptions.PolarsError:
        raise InvoiceError(_bad_details(df, details, path)) from None

    def field_(*names: str) -> pl.Expr:
        return pl.coalesce([pl.col("_d").struct.field(n) for n in names])

    direction = field_("x_TokenDirection", "TokenDirection")
    token = pl.concat_str([direction, field_("x_TokenCacheAction", "TokenCacheAction"), field_("x_CacheTtl")],
                          separator="/", ignore_nulls=True)
    token = pl.when(direction.str.to_lowercase() == "output").then(pl.lit("output")).otherwise(token)
    usage = pl.col("ChargeCategory").str.strip_chars().str.to_lowercase() == "usage"
    other = df.filter(~usage)
    notes = []
    if other.height:
        total = other.select(_decimal("BilledCost").sum())[0, 0]
        kinds = ", ".join(sorted(set(other["ChargeCategory"].to_list())))
        notes.append(f"{counted(other.height, 'FOCUS line')} that {'is' if other.height == 1 else 'are'} not usage "
                     f"({kinds}, ${total:,.2f} in total) {'is' if other.height == 1 else 'are'} not compared")
    df = df.filter(usage)
    frame = df.select(
        "line", pl.col("ChargePeriodStart").alias("starting_at"), pl.col("ChargePeriodEnd").alias("ending_at"),
        field_("x_ModelId", "ModelId").alias("model_label"),
        pl.coalesce(pl.when(token != "").then(token), _opt(df, "SkuMeter")).alias("token_type"),
        pl.lit(None, _S).alias("cost_type"),
        pl.coalesce(_opt(df, "x_ServiceTier"), field_("x_ServiceTier")).alias("service_tier"),
        _opt(df, "x_ContextWindow").alias("context_window"), _opt(df, "SubAccountName").alias("workspace"),
        _opt(df, "BillingCurrency").alias("currency"), _decimal("BilledCost").alias("billed"),
        pl.col("BilledCost").alias("_amount"), _decimal("ConsumedQuantity").alias("quantity") if
        "ConsumedQuantity" in df.columns else pl.lit(None, MONEY).alias("quantity"),
        _opt(df, "ConsumedQuantity").alias("_quantity"))
    return frame, notes, False


def _bad_details(df: pl.DataFrame, details: pl.Struct, path: str) -> str:
    """Which line's SkuPriceDetails Polars could not decode (its message names no line): only on that
    error path are the cells looked at one by one, with Python's decoder."""
    names = [f.name for f in details.fields]
    cells = df.select("line", pl.col("SkuPriceDetails").replace("", None)).drop_nulls()
    for line, text in zip(cells["line"], cells["SkuPriceDetails"]):  # (an invoice's lines, on its error path)
        try:
            value = json.loads(text)
        except ValueError:
            return f"{path}, {line}: SkuPriceDetails is not valid JSON"
        if not isinstance(value, dict):
            return f"{path}, {line}: SkuPriceDetails is not a JSON object"
        wrong = next((k for k in names if isinstance(value.get(k), (dict, list))), None)
        if wrong:
            return f"{path}, {line}: SkuPriceDetails.{wrong} is not a text"
    return f"{path}: SkuPriceDetails cannot be read as JSON objects"


def _plain_csv(path: str):
    df = _csv(path)
    _need(df, path, ("period", "model", "amount_usd"))
    frame = df.select(
        "line", pl.col("period").str.strip_chars().alias("starting_at"), pl.lit(None, _S).alias("ending_at"),
        pl.col("model").alias("model_label"), _opt(df, "token_type").alias("token_type"),
        pl.lit(None, _S).alias("cost_type"), _opt(df, "service_tier").alias("service_tier"),
        _opt(df, "context_window").alias("context_window"), _opt(df, "workspace").alias("workspace"),
        pl.lit("USD").alias("currency"), _decimal("amount_usd").alias("billed"), pl.col("amount_usd").alias("_amount"),
        _decimal("quantity").alias("quantity") if "quantity" in df.columns else pl.lit(None, MONEY).alias("quantity"),
        _opt(df, "quantity").alias("_quantity"))
    return frame, [], False


_READERS = {"admin-cost-report": _admin_cost_report, "analytics-cost": _analytics_cost,
            "console-cost-csv": _console_cost_csv, "focus": _focus, "plain-csv": _plain_csv}


# ----------------------------------------------------------------------------------------------
# Common normalisation


def _blank_to_null(col: str) -> pl.Expr:
    s = pl.col(col).str.strip_chars()
    return pl.when(s == "").then(None).otherwise(s).alias(col)


def _first_bad(frame: pl.DataFrame, bad: pl.Expr) -> dict | None:
    # Only the text the invoice holds is shown: a parsed date beyond year 9999 has no Python value.
    rows = frame.filter(bad).head(1).select(~cs.temporal()).to_dicts()
    return rows[0] if rows else None


def _start(col: str) -> pl.Expr:
    """An ISO instant or date (UTC), or a month `2026-10` (plain CSV), as a UTC date-time."""
    s = pl.col(col).str.strip_chars()
    month = pl.when(s.str.contains(r"^\d{4}-\d{2}$")).then(s + "-01")
    return pl.coalesce(
        s.str.to_datetime("%Y-%m-%dT%H:%M:%S%#z", time_zone="UTC", strict=False),
        s.str.to_datetime("%Y-%m-%dT%H:%M:%S%.fZ", time_zone="UTC", strict=False),
        s.str.to_datetime("%Y-%m-%dT%H:%M:%SZ", time_zone="UTC", strict=False),
        pl.coalesce(month, s).str.to_date("%Y-%m-%d", strict=False).cast(pl.Datetime("us")).dt.replace_time_zone("UTC"),
    )


def _mapping(table: dict) -> dict[str, str]:
    return {k.strip().lower(): v for k, v in table.items()}


def _finish(frame: pl.DataFrame, path: str, book: PriceBook) -> pl.DataFrame:
    data = labels()
    frame = frame.with_columns(*[_blank_to_null(c) for c in ("model_label", "token_type", "cost_type", "service_tier",
                                                             "context_window", "workspace", "currency")])
    bad = _first_bad(frame, pl.col("billed").is_null())
    if bad:
        raise InvoiceError(f"{path}, {bad['line']}: amount {bad['_amount']!r} is not a decimal number")
    # Beyond a quadrillion dollars no invoice line goes; the audit's unit rates (amount x 1,000,000 /
    # tokens) must stay inside Decimal(38, 12), where a 26-digit amount failed with Polars' overflow.
    bad = _first_bad(frame, pl.col("billed").abs() >= pl.lit(_MAX_AMOUNT, MONEY))
    if bad:
        raise InvoiceError(f"{path}, {bad['line']}: amount {bad['_amount']!r} is too large for an invoice line "
                           f"(under {_MAX_AMOUNT:,} dollars)")
    # Finer than a picodollar, an amount would be rounded to MONEY's 12 places without a word (and an
    # audit then compares a number the invoice does not say): refused, naming the line, not rounded.
    limit = pl.col("_amount_places") if "_amount_places" in frame.columns else pl.lit(_PLACES)
    bad = _first_bad(frame, _too_fine("_amount", limit))
    if bad:
        cents = bad.get("_amount_places") == _CENTS_PLACES
        raise InvoiceError(f"{path}, {bad['line']}: amount {bad['_amount']!r}{' (cents)' if cents else ''} has more "
                           f"than {_CENTS_PLACES if cents else _PLACES} decimal places; llm-cost keeps money exact "
                           "to 12 places of a dollar and does not round an invoice")
    if "_quantity" in frame.columns:  # (a quantity that is not a number was dropped: no quantity compared)
        bad = _first_bad(frame, (pl.col("_quantity").str.strip_chars() != "") & pl.col("quantity").is_null())
        if bad:
            raise InvoiceError(f"{path}, {bad['line']}: quantity {bad['_quantity']!r} is not a decimal number")
        bad = _first_bad(frame, _too_fine("_quantity"))
        if bad:
            raise InvoiceError(f"{path}, {bad['line']}: quantity {bad['_quantity']!r} has more than {_PLACES} "
                               "decimal places; llm-cost does not round an invoice")
    bad = _first_bad(frame, pl.col("currency").is_not_null() & (pl.col("currency").str.to_uppercase() != "USD"))
    if bad:
        raise InvoiceError(f"{path}, {bad['line']}: currency {bad['currency']!r}; only USD invoices can be audited")
    start = _start("starting_at")
    frame = frame.with_columns(start.alias("_start"), _start("ending_at").alias("_end"))
    bad = _first_bad(frame, pl.col("_start").is_null() | (pl.col("ending_at").is_not_null() & pl.col("_end").is_null()))
    if bad:
        raise InvoiceError(f"{path}, {bad['line']}: period {bad['starting_at']!r}..{bad['ending_at']!r} is not an ISO "
                           "date or date-time")
    bad = _first_bad(frame, (pl.col("_start").dt.time() != dt.time(0)) | (pl.col("_end").dt.time() != dt.time(0)))
    if bad:
        raise InvoiceError(f"{path}, {bad['line']}: period starts or ends inside a UTC day; llm-cost audits whole days")
    month = pl.col("starting_at").str.strip_chars().str.contains(r"^\d{4}-\d{2}$")
    default_end = pl.when(month).then(pl.col("_start").dt.offset_by("1mo")).otherwise(pl.col("_start").dt.offset_by("1d"))
    frame = frame.with_columns(pl.col("_start").dt.date().alias("period_start"),
                               pl.coalesce("_end", default_end).dt.date().alias("period_end"))
    # Dates are compared with the logs' as Python dates later: a period ending after 9999-12-31 (a
    # month 9999-12) cannot be one, and no invoice is for then.
    bad = _first_bad(frame, pl.col("period_end").dt.year() > 9999)
    if bad:
        raise InvoiceError(f"{path}, {bad['line']}: period {bad['starting_at']!r} ends after the year 9999")
    # ...nor one starting before the year 1 (Polars reads `0000-01`; Python's date has no year 0).
    bad = _first_bad(frame, pl.col("period_start").dt.year() < 1)
    if bad:
        raise InvoiceError(f"{path}, {bad['line']}: period {bad['starting_at']!r} starts before the year 1")
    # Token type: the label, else the cost type (web search lines carry no token type).
    tokens, cost_types = _mapping(data.get("token_type", {})), _mapping(data.get("cost_type", {}))
    focus = {**_mapping(data.get("focus_token", {})), **_mapping(data.get("focus_sku_meter", {}))}
    label = pl.col("token_type").str.to_lowercase()
    cost_type = pl.col("cost_type").str.to_lowercase()
    frame = frame.with_columns(pl.coalesce(
        label.replace_strict(tokens, default=None), label.replace_strict(focus, default=None),
        cost_type.replace_strict(cost_types, default=None),
        # An unknown label stays as written (the audit says llm-cost has no price for it); so does a
        # cost type that is not tokens (code_execution): such a line must not claim token usage.
        label, pl.when(~cost_type.is_in(["tokens", "token"])).then(cost_type),
    ).alias("token_type"))
    frame = frame.with_columns(
        pl.col("context_window").str.to_lowercase().replace_strict(_mapping(data.get("context_window", {})),
                                                                   default=pl.col("context_window").str.to_lowercase())
        .alias("context_tier"),
        pl.col("service_tier").str.to_lowercase().replace_strict(_mapping(data.get("service_tier", {})),
                                                                 default=pl.col("service_tier").str.to_lowercase())
        .alias("service_tier"),
    )
    models = model_ids(frame["model_label"].drop_nulls().unique().to_list(), book, data.get("model", {}))
    frame = frame.with_columns(pl.col("model_label").replace_strict(models, default=pl.col("model_label"))
                               .alias("model"))
    return frame.select([pl.col(c).cast(t) for c, t in LINE_SCHEMA.items()])


def model_ids(names: list[str], book: PriceBook, extra: dict[str, str]) -> dict[str, str]:
    """Canonical ids for the distinct model labels of an invoice (a handful): display names (the book's
    `name`, or labels.toml), else ids/aliases through the Resolver. Unknown labels are left out."""
    resolver = Resolver(book)
    display = {m.name.strip().lower(): m.id for m in book.models.values()}
    display.update({k.strip().lower(): resolver.resolve(v)[0] or v for k, v in extra.items()})
    out = {}
    for name in names:
        found = display.get(name.strip().lower()) or resolver.resolve(name)[0]
        if found:
            out[name] = found
    return out


def _period_unit(lines: pl.DataFrame, path: str) -> str:
    days = (lines["period_end"] - lines["period_start"]).dt.total_days()
    if (days == 1).all():
        return "day"
    first = lines["period_start"].dt.day() == 1
    next_month = lines["period_start"].dt.offset_by("1mo") == lines["period_end"]
    if (first & next_month).all():
        return "month"
    raise InvoiceError(f"{path}: every line must cover one UTC day or one calendar month (found periods of "
                       f"{', '.join(str(d) for d in sorted(set(days.to_list()))[:5])} days)")

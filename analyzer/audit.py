"""Invoice audit: what the logs say a period cost, line by line against what was billed, and why
they differ.

Both sides are brought to the invoice's own grain (UTC day or month x whatever keys the invoice
groups by: model, token type, service tier, context window, workspace). A line that leaves a key
null is not grouped by it (the Admin API's web-search line has no model), so computed rows are
matched to the most specific invoice line they fit. Causes are computed, never guessed: days
absent from the logs, unpriced models and token types, a billed quantity or unit rate that differs
from the logs and the price book.

Signs: difference = billed - computed. `over`: billed more than the logs account for; `under`:
billed less. Differences under one cent per line are rounding, never a discrepancy.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation

import polars as pl

from .errors import OptionError
from .invoices import KEYS, Invoice
from .models import parse_model_id as model_key
from .pricebook import PriceBook
from .schema import COMPONENTS, MONEY
from .words import counted

ROUNDING_LINE = Decimal("0.01")  # a difference under one cent on a line is rounding
# What the computed side is grouped by: the finest grain any invoice can ask for.
# (discount_type: the multipliers applied, so that each computed row has one book rate per token.)
COMPUTED_BY = ["day", "model", "service_tier", "context_tier", "component", "price_period", "discount_type"]
_CACHE_TAGS = ["cache_read", "cache_write_5m", "cache_write_1h"]  # in discount_type, not rate multipliers
_PER = {c.rate: c.per for c in COMPONENTS}
_UNIT = {c.rate: ("MTok" if c.per == 1_000_000 else f"{c.per:,} requests") for c in COMPONENTS}
_ZERO = pl.lit(Decimal(0), MONEY)
_MAX_TOLERANCE = Decimal(10) ** 12


@dataclass(frozen=True)
class Tolerance:
    """How far a line may be off: absolute dollars (`0.50`) or a share of the billed amount (`0.5%`)."""

    amount: Decimal | None = Decimal("0.01")
    percent: Decimal | None = None

    @classmethod
    def parse(cls, text: str) -> Tolerance:
        s = text.strip()
        try:
            value = Decimal(s.removesuffix("%").strip().lstrip("$"))
        except InvalidOperation:
            value = None
        if value is None or not value.is_finite() or value < 0:
            raise OptionError(f"--tolerance {text!r}: expected dollars (0.50) or a percentage (0.5%)")
        if value >= _MAX_TOLERANCE:  # beyond what a money column holds; no invoice needs it
            raise OptionError(f"--tolerance {text!r}: too large (at most {_MAX_TOLERANCE - 1:,})")
        if value.as_tuple().exponent < -12:  # finer than money's own precision (1e-400 is 0)
            value = value.quantize(Decimal("1e-12")).normalize() or Decimal(0)
        return cls(None, value) if s.endswith("%") else cls(value, None)

    def __str__(self) -> str:
        return f"{self.percent}%" if self.percent is not None else str(self.amount)

    def within(self, difference: pl.Expr, base: pl.Expr) -> pl.Expr:
        off = difference.abs()
        limit = (base.abs() * pl.lit(self.percent / 100, MONEY)).cast(MONEY) if self.percent is not None else \
            pl.lit(self.amount, MONEY)
        return (off < pl.lit(ROUNDING_LINE, MONEY)) | (off <= limit)


@dataclass
class Computed:
    """The logs' side: priced cost per UTC day and every key an invoice can group by."""

    rows: pl.DataFrame  # day (Date), model, token_type, service_tier, context_tier, [workspace], price_period, quantity, cost
    accounting: object  # pipeline.Accounting
    book: PriceBook
    notes: list[str] = field(default_factory=list)


def computed_by(workspace: bool) -> list[str]:
    return [*COMPUTED_BY, "workspace"] if workspace else list(COMPUTED_BY)


def computed_from_report(report) -> Computed:
    """The computed side from a report grouped by `computed_by(...)` (pipeline.analyze today; the
    store's report later: anything with rows/accounting/book/notes in this shape)."""
    rows = report.rows.rename({"component": "token_type"}).with_columns(pl.col("day").str.to_date())
    return Computed(rows, report.accounting, report.book, list(report.notes))


def compute(paths, opts, book: PriceBook | None = None, workspace: bool = False, store_dir: str | None = None,
            analyze=None) -> Computed:
    """The computed side: from log files, or from a store (at the costs its rows were ingested with)."""
    from . import pipeline, pricebook, store

    # Invoices bill UTC days: the logs' days are UTC too, whatever --tz says.
    opts = dataclasses.replace(opts, tz="UTC")
    if store_dir:
        # Costs as stored; the book for explanations (models, rates) is the current one with overlays.
        stored = store.report(store_dir, computed_by(workspace), dataclasses.replace(opts, prices=()))
        computed = computed_from_report(stored)
        return dataclasses.replace(computed, book=book or pricebook.load_price_book(opts.prices))
    # (`analyze`: the engine's, pipeline.analyze or engine_spark.analyze: the same report)
    return computed_from_report((analyze or pipeline.analyze)(paths, computed_by(workspace), opts, book))


@dataclass
class Audit:
    invoice: Invoice
    tolerance: Tolerance
    grain: list[str]  # period unit followed by keys
    lines: pl.DataFrame
    totals: dict
    computed: Computed
    notes: list[str]

    @property
    def within_tolerance(self) -> bool:
        return bool((self.lines["status"] == "ok").all())


# ----------------------------------------------------------------------------------------------


def _grain(invoice: Invoice, by: list[str] | None, logs_have_workspace: bool = True) -> tuple[str, list[str]]:
    """(period unit: day, month or all; keys) to compare on."""
    if not by:
        return invoice.period_unit, [k for k in invoice.keys if k != "workspace"]
    keys = ["token_type" if k.lower() == "component" else k.lower() for k in by]
    unknown = [k for k, low in zip(by, keys) if low not in (*KEYS, "day", "month")]
    if unknown:
        import difflib

        near = {k: difflib.get_close_matches(k.lower(), [*KEYS, "day", "month"], n=1, cutoff=0.6) for k in unknown}
        hints = "; ".join(f"{k!r}: did you mean {m[0]}?" for k, m in near.items() if m)
        raise OptionError(f"--by {', '.join(repr(k) for k in unknown)}: an audit compares on day or month and "
                          f"{', '.join(KEYS)} (the keys an invoice can carry)" + (f" ({hints})" if hints else ""))
    if "day" in keys and invoice.period_unit == "month":
        raise OptionError("--by day: this invoice is monthly; use --by month")
    if "workspace" in keys and not logs_have_workspace:
        raise OptionError("--by workspace: the logs carry no workspace")
    missing = [k for k in keys if k in KEYS and k not in invoice.keys]
    if missing:
        raise OptionError(f"--by {missing[0]}: the invoice does not carry it (it has: "
                          f"{', '.join(invoice.keys) or 'no keys'})")
    unit = "day" if "day" in keys else "month" if "month" in keys else "all"
    return unit, [k for k in KEYS if k in keys]


def _period(col: str, unit: str, span: str) -> pl.Expr:
    if unit == "day":
        return pl.col(col).dt.strftime("%Y-%m-%d").alias("period")
    if unit == "month":
        return pl.col(col).dt.strftime("%Y-%m").alias("period")
    return pl.lit(span).alias("period")


def _rate_text(expr: pl.Expr) -> pl.Expr:
    """A $/MTok rate for a sentence: rounded half-even to 4 places, at least 2 shown (0.60, 0.0125)."""
    return expr.round(4).cast(pl.String).str.replace(r"(\.\d\d\d*?)0+$", "$1")


def _count_text(expr: pl.Expr) -> pl.Expr:
    """A whole count with thousands separators (8,000,000): grouped from the right on the reversed digits."""
    # (grouped without its sign: the sign of -500 was grouped too, "-,500")
    digits = expr.abs().round(0).cast(pl.String).str.replace(r"\.0*$", "").str.reverse()
    grouped = digits.str.replace_all(r"(\d\d\d)", "$1,").str.strip_suffix(",").str.reverse()
    return pl.when(expr < 0).then(pl.lit("-") + grouped).otherwise(grouped)


def _money(expr: pl.Expr) -> pl.Expr:
    """-$4.65, $0.30: rounded half-even to cents."""
    cents = expr.round(2).cast(pl.String).str.replace(r"(\.\d\d)0+$", "$1")
    return pl.when(cents.str.starts_with("-")).then(pl.format("-${}", cents.str.strip_prefix("-"))) \
        .otherwise(pl.format("${}", cents))


def run(paths, invoice_path: str, opts, tolerance: Tolerance | str = "0.01", by: list[str] | None = None,
        invoice_format: str | None = None, store_dir: str | None = None, analyze=None) -> Audit:
    """Audit an invoice file against usage logs (or a store): the whole job behind `llm-cost audit`."""
    from . import invoices, pricebook

    tolerance = Tolerance.parse(tolerance) if isinstance(tolerance, str) else tolerance
    if opts.tz != "UTC":
        raise OptionError(f"--tz {opts.tz}: an audit compares UTC days, as invoices bill them; leave --tz out")
    if invoice_path in ("-", "/dev/stdin", "/dev/fd/0", "/proc/self/fd/0") and "-" in [str(p) for p in paths]:
        raise OptionError(f"--invoice {invoice_path} and the log - both read standard input; give one of them as a file")
    book = pricebook.load_price_book(opts.prices)
    invoice = invoices.read(invoice_path, book, invoice_format)
    _grain(invoice, by)  # a --by the invoice cannot answer fails before the logs are read
    opts = dataclasses.replace(opts, outputs=(*opts.outputs, invoice_path))  # the invoice is never read as a log
    computed = compute(paths, opts, book, workspace="workspace" in (by or []), store_dir=store_dir, analyze=analyze)
    result = reconcile(invoice, computed, tolerance, by)
    if computed.accounting.duplicates and not result.within_tolerance and not store_dir:
        # Only when it may explain something: price the logs again counting every copy.
        every_copy = compute(paths, dataclasses.replace(opts, dedupe=False), book, workspace="workspace" in (by or []),
                             analyze=analyze)
        result = reconcile(invoice, computed, tolerance, by, every_copy)
    return result


def reconcile(invoice: Invoice, computed: Computed, tolerance: Tolerance, by: list[str] | None = None,
              every_copy: Computed | None = None) -> Audit:
    """Compare on the invoice's grain (or `by`). `every_copy`: the logs priced without dedupe, to say
    what duplicate rows would add on lines out of tolerance."""
    unit, keys = _grain(invoice, by, "workspace" in computed.rows.columns)
    start, end = invoice.lines["period_start"].min(), invoice.lines["period_end"].max()
    notes = list(invoice.notes)
    log_days = computed.rows.select(pl.col("day").unique())
    if invoice.lines.height:
        span = f"{start}..{end - dt.timedelta(days=1)}"
        inside = _logs_in_period(invoice, computed.rows, start, end, span, notes)
    else:  # an invoice of no lines names no period: all of the logs are compared with it
        span, inside = "all", computed.rows
    table = _status(_line_table(invoice, inside, unit, keys, span), tolerance)
    table = _causes(table, invoice, computed, log_days)
    if by and "token_type" not in keys and "token_type" in invoice.keys:
        table = _name_token_types(table, invoice, computed, tolerance, unit, keys, span)
    order = ["period", *keys]
    table = _in_order(table, order, with_quantities="token_type" in keys)
    totals = table.select(pl.col("billed").sum(), pl.col("computed").sum(),
                          (pl.col("billed").fill_null(_ZERO).sum() - pl.col("computed").fill_null(_ZERO).sum())
                          .alias("difference")).to_dicts()[0]
    if every_copy is not None:
        table = _duplicates(table, reconcile(invoice, every_copy, tolerance, by).lines, tolerance, order)
    notes.extend(_log_notes(computed))
    return Audit(invoice, tolerance, [unit, *keys], table, totals, computed, notes)


def _logs_in_period(invoice: Invoice, rows: pl.DataFrame, start, end, span: str, notes: list[str]) -> pl.DataFrame:
    """The computed rows the invoice's period covers (and not Priority Tier when the invoice leaves
    it out); a note for each part left out."""
    inside = rows.filter(pl.col("day").is_between(start, end, closed="left"))
    if inside.height < rows.height:
        outside = rows.filter(~pl.col("day").is_between(start, end, closed="left"))
        notes.append(f"logs outside the invoice's period ({span}) are left out: "
                     f"${outside['cost'].sum():,.2f} on {counted(outside['day'].n_unique(), 'day')}")
    if invoice.excludes_priority:
        priority = inside.filter(pl.col("service_tier") == "priority")
        if priority.height:
            notes.append(f"the logs contain Priority Tier usage (${priority['cost'].sum():,.2f} computed); the Admin "
                         "API cost report excludes Priority Tier costs, so it is left out of the comparison")
            inside = inside.filter(pl.col("service_tier") != "priority")
    return inside


def _line_table(invoice: Invoice, inside: pl.DataFrame, unit: str, keys: list[str], span: str) -> pl.DataFrame:
    """One row per line of the asked grain: billed and computed sums (and usage no line claims)."""
    # Match at the invoice's own grain (a web-search line without a model claims the web searches of
    # every model), then sum both sides to the asked grain.
    fine_keys = [k for k in invoice.keys if k != "workspace" or "workspace" in keys]
    fine = _invoice_lines(invoice, fine_keys)
    matched, unclaimed = _match(fine, inside.with_columns(_period("day", invoice.period_unit, span)), fine_keys)
    fine = fine.with_columns(_period("period_start", unit, span))
    refs = pl.col("invoice_lines")
    lines = fine.group_by(["period", *keys], maintain_order=True).agg(
        pl.col("billed").sum(),
        pl.when(pl.col("quantity_billed").null_count() == 0).then(pl.col("quantity_billed").sum()),
        pl.col("period_start").min(), pl.col("period_end").max(),
        pl.when(pl.len() > 3).then(pl.format("{} lines: {}, ...", pl.len(), refs.first()))
        .otherwise(refs.str.join(", ")).first().alias("invoice_lines"),
    ).with_row_index("_group")
    on = ["period", *keys]
    group_of = fine.join(lines.select(*on, "_group"), on=on, nulls_equal=True).select("_line", "_group")
    # Unclaimed usage joins a coarser line with the same keys (--by month,model: a token type the
    # invoice lacks); what fits no line is usage missing from the invoice.
    unclaimed = unclaimed.with_columns(_period("day", unit, span)).join(
        lines.select(*on, "_group"), on=on, how="left", nulls_equal=True)
    sums = _sums(pl.concat([matched.join(group_of, on="_line"), unclaimed.filter(pl.col("_group").is_not_null())],
                           how="diagonal_relaxed"), ["_group"])
    extra = _sums(unclaimed.filter(pl.col("_group").is_null()), on).with_columns(pl.lit(None, MONEY).alias("billed"))
    return pl.concat([lines.join(sums, on="_group", how="left"), extra], how="diagonal_relaxed")


def _in_order(table: pl.DataFrame, order: list[str], with_quantities: bool) -> pl.DataFrame:
    """Lines sorted by their keys (token types in the price book's order) with the output columns."""
    rank = {c.rate: i for i, c in enumerate(COMPONENTS)}
    return table.sort([pl.col(k).replace_strict(rank, default=len(rank)) if k == "token_type" else pl.col(k)
                       for k in order], nulls_last=True).select(
        *order, "billed", "computed", "difference", "relative", "status", "cause",
        # Quantities mean something per token type only (tokens and web searches do not add up).
        *(["quantity_billed", "quantity_logged"] if with_quantities else []), "invoice_lines")


def _duplicates(table: pl.DataFrame, every_copy: pl.DataFrame, tol: Tolerance, on: list[str]) -> pl.DataFrame:
    """On lines out of tolerance: what counting every copy of duplicated log rows would add."""
    other = every_copy.select(*on, pl.col("computed").alias("_all"))
    table = table.join(other, on=on, how="left", nulls_equal=True, maintain_order="left")
    added = (pl.col("_all").fill_null(_ZERO) - pl.col("computed").fill_null(_ZERO)).cast(MONEY)
    would = (pl.col("billed").fill_null(_ZERO) - pl.col("_all").fill_null(_ZERO)).cast(MONEY)
    fits = tol.within(would, pl.coalesce("billed", "_all"))
    note = pl.format("counting every copy of duplicate log rows adds {} here{}", _money(added),
                     pl.when(fits).then(pl.lit(", which brings the line within tolerance")).otherwise(
                         pl.format(" (the difference would be {})", _money(would))))
    cause = pl.when((pl.col("status") != "ok") & (added != 0)).then(
        pl.concat_str([pl.col("cause"), note], separator="; ")).otherwise(pl.col("cause"))
    return table.with_columns(cause.alias("cause")).drop("_all")


def _invoice_lines(invoice: Invoice, keys: list[str]) -> pl.DataFrame:
    """Invoice lines summed on the invoice's own period and `keys` (a key left null stays null: that
    line is not grouped by it)."""
    df = invoice.lines.with_columns(_period("period_start", invoice.period_unit, ""))
    out = df.group_by(["period", *keys], maintain_order=True).agg(
        pl.col("billed").sum(),
        pl.when(pl.col("quantity").null_count() == 0).then(pl.col("quantity").sum()).alias("quantity_billed"),
        pl.col("period_start").min(), pl.col("period_end").max(),
        pl.col("line").str.join(", ").alias("invoice_lines"),
    )
    return out.with_row_index("_line")


def _match(lines: pl.DataFrame, comp: pl.DataFrame, keys: list[str]) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Computed rows with the invoice line they belong to (the most specific line they fit), and the
    rows no line claims. One join per pattern of grouped keys (a handful), not per row."""
    pattern = pl.concat_str([pl.col(k).is_not_null().cast(pl.Int8).cast(pl.String) for k in keys] or [pl.lit("")])
    patterns = lines.select(pattern.alias("p")).unique()["p"].to_list()
    # Most specific first; between lines as specific as each other, the one grouped by the earlier key
    # (model, then token type, ...). `unique()` has no order: ties in it made runs disagree.
    patterns.sort(reverse=True)
    patterns.sort(key=lambda p: -p.count("1"))
    claimed = [comp.clear().with_columns(pl.lit(None, pl.UInt32).alias("_line"))]
    for p in patterns:
        on = ["period", *[k for k, bit in zip(keys, p) if bit == "1"]]
        these = lines.filter(pattern == p).select(*on, "_line")
        claimed.append(comp.join(these, on=on, how="inner", nulls_equal=True))
        comp = comp.join(these, on=on, how="anti", nulls_equal=True)
    return pl.concat(claimed, how="diagonal_relaxed"), comp


def _sums(rows: pl.DataFrame, by: list[str]) -> pl.DataFrame:
    return rows.group_by(by, maintain_order=True).agg(
        pl.col("cost").sum().alias("computed"), pl.col("quantity").sum().alias("quantity_logged"),
        pl.col("price_period").unique().sort().str.join(", ").alias("price_period"),
        pl.col("day").min().alias("period_start"), (pl.col("day").max() + dt.timedelta(days=1)).alias("period_end"),
        *_book_rates(rows.columns),
    )


def _book_rates(columns: list[str]) -> list[pl.Expr]:
    """The book's distinct unit rates among a line's rows ('$50.00 (standard), $55.00 (us_geo)') and
    how many there are: a line that mixes them (US-only and global requests) has a blended cost per
    token that is no rate of the book's."""
    if "discount_type" not in columns or "token_type" not in columns:
        return [pl.lit(None, pl.String).alias("_book_rates"), pl.lit(0, pl.UInt32).alias("_n_rates")]
    per = pl.col("token_type").replace_strict(_PER, default=None, return_dtype=pl.Int64).cast(MONEY)
    rate = pl.when(pl.col("quantity") > 0).then((pl.col("cost") * per / pl.col("quantity").cast(MONEY)).cast(MONEY))
    applied = pl.col("discount_type").str.split("+").list.eval(
        pl.element().filter(~pl.element().is_in(_CACHE_TAGS))).list.join("+")
    label = pl.when(applied == "").then(pl.lit("standard")).otherwise(applied)
    text = pl.format("${} ({})", _rate_text(rate), label)
    return [text.filter(rate.is_not_null()).sort_by(rate).unique(maintain_order=True).str.join(", ")
            .alias("_book_rates"),
            _rate_text(rate).drop_nulls().n_unique().cast(pl.UInt32).alias("_n_rates")]


def _status(table: pl.DataFrame, tol: Tolerance) -> pl.DataFrame:
    billed, computed = pl.col("billed"), pl.col("computed")
    diff = (billed.fill_null(_ZERO) - computed.fill_null(_ZERO)).cast(MONEY)
    table = table.with_columns(diff.alias("difference"))
    within = tol.within(pl.col("difference"), pl.coalesce(billed, computed))
    status = (pl.when(within).then(pl.lit("ok"))
              .when(computed.is_null()).then(pl.lit("missing_in_logs"))
              .when(billed.is_null()).then(pl.lit("missing_in_invoice"))
              .when(pl.col("difference") > 0).then(pl.lit("over"))
              .otherwise(pl.lit("under")))
    relative = pl.when(billed.is_not_null() & (billed != 0)).then((pl.col("difference") / billed).round(6))
    return table.with_columns(status.alias("status"), relative.cast(MONEY).alias("relative"))


def _causes(table: pl.DataFrame, invoice: Invoice, computed: Computed, log_days: pl.DataFrame) -> pl.DataFrame:
    """One sentence per line, from facts: missing days, unpriced models, unknown token types, quantity
    and unit-rate differences. Lines within tolerance get none (or only a note about rounding)."""
    table = table.with_row_index("_row")
    # Days of the line's period with no priced log rows at all.
    days = table.select("_row", pl.date_ranges("period_start", "period_end", "1d", closed="left").alias("day")) \
        .explode("day").drop_nulls("day").join(log_days, on="day", how="anti")
    missing = days.group_by("_row").agg(pl.col("day").sort().dt.strftime("%Y-%m-%d").alias("_missing"))
    table = table.join(missing, on="_row", how="left")
    invoice_days = invoice.lines.select(pl.date_ranges("period_start", "period_end", "1d", closed="left")
                                        .alias("day")).explode("day").unique()
    uninvoiced = table.filter(pl.col("billed").is_null()).select(
        "_row", pl.date_ranges("period_start", "period_end", "1d", closed="left").alias("day")).explode("day") \
        .join(invoice_days, on="day", how="anti").join(log_days, on="day", how="semi") \
        .group_by("_row").agg(pl.col("day").sort().dt.strftime("%Y-%m-%d").alias("_uninvoiced"))
    table = table.join(uninvoiced, on="_row", how="left")
    table = _unpriced(table, computed)
    bad = pl.col("status") != "ok"
    shortfall = pl.col("status").is_in(["over", "missing_in_logs"])
    n_missing = pl.col("_missing").list.len()
    listed = pl.col("_missing").list.head(5).list.join(", ")
    missing_days = pl.when(shortfall & (n_missing > 0)).then(
        pl.format("logs missing for {}", listed) + pl.when(n_missing > 5).then(
            pl.format(" and {} more day{}", n_missing - 5, pl.when(n_missing == 6).then(pl.lit("")).otherwise(pl.lit("s"))))
        .otherwise(pl.lit("")))
    is_component = pl.col("token_type").is_in(list(_PER)) if "token_type" in table.columns else pl.lit(False)
    unpriced_tt = pl.when(bad & pl.col("token_type").is_not_null() & ~is_component).then(
        pl.format("llm-cost has no price for {}", pl.col("token_type"))) if "token_type" in table.columns else None
    not_invoiced = pl.when(pl.col("status") == "missing_in_invoice").then(
        pl.when(pl.col("_uninvoiced").list.len() > 0)
        .then(pl.format("the invoice has no lines for {}", pl.col("_uninvoiced").list.head(5).list.join(", ")))
        .otherwise(pl.lit("logged usage with no matching invoice line")))
    unknown_model = pl.when(bad & pl.col("model").is_not_null() & pl.col("_unpriced").is_null()
                            & ~pl.col("model").is_in(list(computed.book.models))).then(
        pl.format("{} is not in the price book (add it with --prices)", pl.col("model"))) \
        if "model" in table.columns else None
    parts = [missing_days, pl.when(bad).then(pl.col("_unpriced")), unknown_model, unpriced_tt, not_invoiced]
    if "token_type" in table.columns:
        parts.append(pl.when(bad & is_component & n_missing.fill_null(0).eq(0)).then(_rate_cause(
            table.columns)))
    cause = pl.concat_str([p for p in parts if p is not None], separator="; ", ignore_nulls=True)
    fallback = (pl.when(pl.col("status") == "ok").then(
        pl.when(pl.col("difference") != 0).then(pl.lit("within tolerance")))
        .when(pl.col("status") == "missing_in_logs").then(
            pl.lit("no logged usage for this line on days the logs cover"))
        .otherwise(pl.lit("no cause found in the logs' accounting or the price book")))
    cause = pl.when(cause == "").then(fallback).otherwise(cause)
    return table.with_columns(cause.alias("cause"))


def _rate_cause(columns: list[str]) -> pl.Expr:
    """Quantity first (billed tokens vs logged tokens, when the invoice says), then the unit rate
    the billed amount implies against the book's rate for the same tokens."""
    per = pl.col("token_type").replace_strict(_PER, default=None, return_dtype=pl.Int64).cast(MONEY)
    unit = pl.col("token_type").replace_strict(_UNIT, default=None, return_dtype=pl.String)
    q_log, q_bill = pl.col("quantity_logged").cast(MONEY), pl.col("quantity_billed")
    has_log = pl.col("quantity_logged").fill_null(0) > 0
    quantity = pl.when(q_bill.is_not_null() & pl.col("quantity_logged").is_not_null() & (q_bill != q_log)).then(
        pl.format("billed {} {}, logs have {}", _count_text(q_bill),
                  pl.when(pl.col("token_type").str.starts_with("web_")).then(pl.lit("requests")).otherwise(
                      pl.lit("tokens")), _count_text(q_log)))
    q = pl.coalesce(q_bill, q_log)
    billed_rate = (pl.col("billed") * per / q).cast(MONEY)
    book_rate = (pl.col("computed") * per / q_log).cast(MONEY)
    since = pl.format(" ({} since {})", pl.col("model"), pl.col("price_period")) if "model" in columns else \
        pl.format(" (since {})", pl.col("price_period"))
    differs = has_log & pl.col("billed").is_not_null() & (q > 0) & (billed_rate.round(4) != book_rate.round(4))
    # One book rate: it is what the logs imply. Several (a mix of standard and US-only requests): the
    # book's rates for the line, then the blend the logs imply, never the blend called the book's.
    one = pl.format("billed ${}/{} for {}, book says ${}{}", _rate_text(billed_rate), unit, pl.col("token_type"),
                    _rate_text(book_rate), since)
    mixed = pl.format("billed ${}/{} for {}; book rates {}{}; the logs' mix of them implies ${}",
                      _rate_text(billed_rate), unit, pl.col("token_type"), pl.col("_book_rates"), since,
                      _rate_text(book_rate))
    several = pl.col("_n_rates").fill_null(0) > 1 if "_n_rates" in columns else pl.lit(False)
    rate = pl.when(differs).then(pl.when(several).then(mixed).otherwise(one))
    return pl.coalesce(quantity, rate)


def _unpriced(table: pl.DataFrame, computed: Computed) -> pl.DataFrame:
    """Lines whose model the logs carry but could not price: name it, with its row count and reason."""
    acc = computed.accounting
    if "model" not in table.columns or not acc.unpriced_models:
        return table.with_columns(pl.lit(None, pl.String).alias("_unpriced"))
    raws = list(acc.unpriced_models)
    found = pl.DataFrame({
        "_key": [model_key(r)[0] for r in raws],
        "_unpriced": [f"{counted(acc.unpriced_models[r], 'log row')} of {r} "
                      f"{'is' if acc.unpriced_models[r] == 1 else 'are'} unpriced ({acc.unpriced_reasons.get(r, '')})"
                      for r in raws],
    }).group_by("_key").agg(pl.col("_unpriced").str.join("; "))
    labels = table.select(pl.col("model").drop_nulls().unique())["model"].to_list()
    keys = {m: model_key(m)[0] for m in labels}
    table = table.with_columns(pl.col("model").replace_strict(keys, default=None, return_dtype=pl.String).alias("_key"))
    return table.join(found, on="_key", how="left").drop("_key")


def _name_token_types(table: pl.DataFrame, invoice: Invoice, computed: Computed, tol: Tolerance, unit: str,
                      keys: list[str], span: str) -> pl.DataFrame:
    """When --by drops the token type, audit per token type too and name the ones that differ."""
    by = [unit] if unit != "all" else []
    fine = reconcile(invoice, computed, tol, [*by, *keys, "token_type"]).lines.filter(pl.col("status") != "ok")
    if not fine.height:
        return table
    named = fine.group_by(["period", *keys], maintain_order=True).agg(
        pl.format("{} ({})", pl.col("token_type"), _money(pl.col("difference"))).str.join(", ").alias("_types"),
        pl.col("cause").unique(maintain_order=True).str.join("; ").alias("_why"))
    table = table.join(named, on=["period", *keys], how="left", nulls_equal=True)
    return table.with_columns(pl.when(pl.col("_types").is_not_null() & (pl.col("status") != "ok")).then(
        pl.format("differs in {}; {}", pl.col("_types"), pl.col("_why"))).otherwise(pl.col("cause")).alias("cause"))


def _log_notes(computed: Computed) -> list[str]:
    acc = computed.accounting
    notes = []
    if acc.unpriced:
        notes.append(f"{counted(acc.unpriced, 'log row')} {'is' if acc.unpriced == 1 else 'are'} unpriced, so "
                     f"{'its' if acc.unpriced == 1 else 'their'} cost is missing from `computed`: "
                     + "; ".join(f"{raw} ({n:,})" for raw, n in acc.unpriced_models.items()))
    if acc.quarantined:
        notes.append(f"{counted(acc.quarantined, 'log row')} {'was' if acc.quarantined == 1 else 'were'} quarantined (unreadable; see {acc.quarantine_file}): "
                     f"{'its' if acc.quarantined == 1 else 'their'} cost is unknown and missing from `computed`")
    if acc.duplicates:
        notes.append(f"{counted(acc.duplicates, 'duplicate log row')} (repeated request ids) "
                     f"{'was' if acc.duplicates == 1 else 'were'} counted once")
    return notes + computed.notes


# ----------------------------------------------------------------------------------------------
# Output


def audit_dict(a: Audit) -> dict:
    """DESIGN §10's JSON shape: money as exact decimal strings."""
    def js(v):
        return format(v, "f") if isinstance(v, Decimal) else v

    return {
        "invoice": a.invoice.path,
        "invoice_format": a.invoice.format,
        "tolerance": str(a.tolerance),
        "within_tolerance": a.within_tolerance,
        "grain": a.grain,
        "rounding": "exact; a difference under $0.01 per line is rounding; display formats round half-even to cents",
        "price_book": {"version": a.computed.book.version, "overlays": a.computed.book.overlays},
        "lines": [{k: js(v) for k, v in r.items()} for r in a.lines.to_dicts()],
        "totals": {k: js(v) for k, v in a.totals.items()},
        "accounting": a.computed.accounting.as_dict(),
        "notes": a.notes,
    }

"""Audit output: table (Rich), csv, json, markdown, html (html_report.py). Machine formats carry money exactly; table and
markdown round half-even to cents and say so. Files are written atomically."""

from __future__ import annotations

import dataclasses
import io
import json
from decimal import Decimal

import polars as pl

from . import safe_text
from .audit import Audit, audit_dict
from .errors import OptionError
from .schema import DISPLAY_PLACES
from .writers import money_text, to_stdout, write_output

_MONEY = ("billed", "computed", "difference")


def _cell(col: str, v) -> str:
    if v is None:
        return ""
    if col == "relative":
        return f"{(v * 100).quantize(Decimal('0.01'))}%"
    if isinstance(v, Decimal) and col in _MONEY:
        return money_text(v, DISPLAY_PLACES)
    if isinstance(v, Decimal):
        return f"{v.normalize():,f}"
    return str(v)


def _shown(a: Audit) -> list[str]:
    return [c for c in a.lines.columns if c not in ("quantity_billed", "quantity_logged", "invoice_lines")]


def _grain_text(grain: list[str]) -> str:
    unit, keys = grain[0], grain[1:]
    if unit == "all":
        return f"{', '.join(keys)} over the invoice's whole period" if keys else "the invoice's whole period"
    return f"UTC {', '.join([unit, *keys])}"


def shown(a: Audit, reveal: bool = False) -> Audit:
    """The audit as every format shows it: credentials in its lines (a workspace named by its key)
    masked unless `reveal`."""
    if reveal:
        return a
    # (the invoice's file name is shown in the summary and the JSON: a key in it is masked too)
    invoice = dataclasses.replace(a.invoice, path=safe_text.mask_secrets(a.invoice.path))
    # So are the overlay paths and the accounting's file names and model ids as logged (summary, JSON).
    c, acc = a.computed, a.computed.accounting
    acc = dataclasses.replace(acc, **{f: safe_text.mask_tree(getattr(acc, f)) for f in (
        "quarantine_file", "files_skipped", "unpriced_models", "unpriced_reasons", "unpriced_reported")})
    computed = dataclasses.replace(c, accounting=acc, book=dataclasses.replace(
        c.book, overlays=safe_text.mask_tree(c.book.overlays)))
    return dataclasses.replace(a, lines=safe_text.mask_frame(a.lines), notes=[safe_text.mask_secrets(n) for n in a.notes],
                               invoice=invoice, computed=computed)


def summary_lines(a: Audit) -> list[str]:
    t = a.totals
    bad = a.lines.filter(pl.col("status") != "ok")
    per = bad.group_by("status").len().sort("status")
    counts = ", ".join(f"{n} {s}" for s, n in zip(per["status"].to_list(), per["len"].to_list()))
    acc = a.computed.accounting
    lines = [
        f"billed ${money_text(t['billed'], 2)}, computed ${money_text(t['computed'], 2)}, difference "
        f"${money_text(t['difference'], 2)}",
        (f"{a.lines.height - bad.height} of {a.lines.height} lines within tolerance {a.tolerance}"
         + (f"; out of tolerance: {counts}" if counts else "")),
        f"invoice {a.invoice.path} ({a.invoice.format}), compared per {_grain_text(a.grain)}",
        f"logs: rows read {acc.rows_read:,} = priced {acc.priced:,} + unpriced {acc.unpriced:,} + duplicates "
        f"{acc.duplicates:,} + quarantined {acc.quarantined:,}"
        + (f" + outside --since/--until {acc.filtered_out:,}" if acc.filtered_out else ""),
        f"price book {a.computed.book.version}" + (f" + overlays {', '.join(a.computed.book.overlays)}"
                                                    if a.computed.book.overlays else "")
        + "; money rounded half-even to cents for display; differences under $0.01 per line are rounding",
    ]
    return lines + [f"note: {n}" for n in a.notes]


def table_text(a: Audit, width: int | None = None) -> str:
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    cols = _shown(a)
    t = Table(header_style="bold", show_footer=True, footer_style="bold")
    for c in cols:
        title = f"{c} $" if c in _MONEY else c
        foot = "total" if c == cols[0] else money_text(a.totals[c], 2) if c in _MONEY else ""
        t.add_column(title, justify="right" if c in (*_MONEY, "relative") else "left", footer=foot,
                     overflow="fold")
    # Cells are Text, never markup, with control and bidi characters escaped (DESIGN §13).
    lines = a.lines.with_columns([safe_text.terminal_expr(pl.col(c)).alias(c) for c, t in a.lines.schema.items()
                                  if t == pl.String])
    for r in lines.to_dicts():
        t.add_row(*[Text(_cell(c, r[c])) for c in cols])
    console = Console(file=io.StringIO(), width=width or 200, force_terminal=False, color_system=None)
    console.print(t)
    for line in summary_lines(a):
        console.print(safe_text.terminal_text(line), highlight=False, soft_wrap=True, markup=False, emoji=False)
    return console.file.getvalue()


def markdown(a: Audit) -> str:
    cols = _shown(a)
    out = ["| " + " | ".join(f"{c} $" if c in _MONEY else c for c in cols) + " |",
           "|" + "|".join("---:" if c in (*_MONEY, "relative") else "---" for c in cols) + "|"]
    lines = a.lines.with_columns([safe_text.markdown_expr(pl.col(c)).alias(c) for c, t in a.lines.schema.items()
                                  if t == pl.String])
    for r in lines.to_dicts():
        out.append("| " + " | ".join(_cell(c, r[c]) for c in cols) + " |")
    out.append("| " + " | ".join("**total**" if c == cols[0] else f"**{money_text(a.totals[c], 2)}**"
                                 if c in _MONEY else "" for c in cols) + " |")
    return "\n".join(out) + "\n\n" + "\n".join(f"- {safe_text.markdown_cell(line)}" for line in summary_lines(a)) + "\n"


FORMATS = ("table", "csv", "json", "markdown", "html")


def check_format(fmt: str) -> None:
    if fmt not in FORMATS:
        raise OptionError(f"--format {fmt!r}: an audit is written as {', '.join(FORMATS[:-1])} or {FORMATS[-1]}")


def render(a: Audit, fmt: str, reveal: bool = False) -> str:
    check_format(fmt)
    if fmt == "html":
        from . import html_report

        return html_report.audit_html(a, reveal)
    a = shown(a, reveal)
    if fmt == "json":
        return json.dumps(audit_dict(a), indent=2) + "\n"
    if fmt == "csv":
        # Formulas neutralised in text cells before money becomes text (a negative difference is a number).
        lines = safe_text.csv_frame(a.lines)
        return lines.with_columns([pl.col(c).cast(pl.String) for c, t in lines.schema.items()
                                   if isinstance(t, pl.Decimal)]).write_csv()
    if fmt == "markdown":
        return markdown(a)
    return table_text(a)


def write(a: Audit, fmt: str, output: str | None, terminal: bool = False, reveal: bool = False) -> None:
    if output in (None, "-"):
        if fmt == "table" and terminal:
            from rich.console import Console

            console = Console()
            console.print(table_text(shown(a, reveal), width=console.width), end="", highlight=False, markup=False,
                          emoji=False)
        else:
            to_stdout(render(a, fmt, reveal))
        return
    write_output(render(a, fmt, reveal), output)

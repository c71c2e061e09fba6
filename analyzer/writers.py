"""Report writers: table (Rich), csv, json, jsonl, parquet, markdown. Files are written atomically.

Machine formats (csv, json, jsonl, parquet) carry money exactly (12 decimal places, JSON money as
strings). Human formats (table, markdown) round half-even to cents, and say so.
"""

from __future__ import annotations

import io
import json
import os
import tempfile
from collections.abc import Callable
from decimal import ROUND_HALF_EVEN, Decimal

import polars as pl

from .errors import OptionError
from .schema import DISPLAY_PLACES, MONEY, ROUNDING

FORMATS = ("table", "csv", "json", "jsonl", "parquet", "markdown")
_BY_EXT = {".csv": "csv", ".json": "json", ".jsonl": "jsonl", ".ndjson": "jsonl", ".parquet": "parquet",
           ".md": "markdown", ".markdown": "markdown", ".txt": "table"}
_CENT = Decimal(1).scaleb(-DISPLAY_PLACES)


def format_for(fmt: str | None, output: str | None, default: str) -> str:
    if fmt:
        return fmt
    if output and output != "-":
        ext = os.path.splitext(output.removesuffix(".gz"))[1].lower()
        if ext not in _BY_EXT:
            raise OptionError(f"-o {output}: cannot tell the format from {ext or 'no extension'!r}; pass --format "
                              f"({', '.join(FORMATS)})")
        return _BY_EXT[ext]
    return default


def atomic_write(path: str, write: Callable[[str], None]) -> None:
    """Write to a temporary file beside `path`, then rename it into place: readers never see half a
    file, and a crash leaves the previous version intact."""
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".llm-cost-", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def money_text(d: Decimal | None, places: int | None = None) -> str:
    if d is None:
        return ""
    if places is not None:
        q = d.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_EVEN)
        return f"{q.copy_abs() if q.is_zero() else q:,}"  # no "-0.00"
    return format(d, "f")


def _is_money(df: pl.DataFrame, c: str) -> bool:
    return isinstance(df.schema[c], pl.Decimal)


def _jsonable(v):
    if isinstance(v, Decimal):
        return format(v, "f")  # "0.000000000000", never "0E-12"
    if hasattr(v, "isoformat"):
        return v.isoformat()
    return v


def report_dict(report) -> dict:
    """The JSON shape of DESIGN §7: money as decimal strings, full precision."""
    return {
        "currency": "USD",
        "price_book": {"version": report.book.version, "files": report.book.files, "overlays": report.book.overlays},
        "group_by": report.group_by,
        "time_zone": report.tz,
        "rounding": f"exact; money has {MONEY.scale} decimal places (display formats round {ROUNDING} to cents)",
        "rows": [{k: _jsonable(v) for k, v in r.items()} for r in report.rows.to_dicts()],
        "totals": {k: _jsonable(v) for k, v in report.totals.items()},
        "accounting": report.accounting.as_dict(),
        "dialects": report.dialects,
        "notes": report.notes,
    }


def _text_frame(df: pl.DataFrame) -> pl.DataFrame:
    """Decimals as exact strings (CSV/JSONL must not round-trip money through floats)."""
    return df.with_columns([pl.col(c).cast(pl.String) for c in df.columns if _is_money(df, c)])


def render(report, fmt: str) -> str | bytes:
    if fmt == "json":
        return json.dumps(report_dict(report), indent=2) + "\n"
    if fmt == "csv":
        return _text_frame(report.rows).write_csv()
    if fmt == "jsonl":
        return _text_frame(report.rows).write_ndjson()
    if fmt == "parquet":
        buf = io.BytesIO()
        report.rows.write_parquet(buf)
        return buf.getvalue()
    if fmt == "markdown":
        return markdown(report)
    if fmt == "table":
        return table_text(report)
    raise OptionError(f"--format {fmt!r}: use one of {', '.join(FORMATS)}")


def write_report(report, fmt: str, output: str | None) -> None:
    data = render(report, fmt)
    if output in (None, "-"):
        if isinstance(data, bytes):
            raise OptionError("parquet output needs -o FILE")
        import sys

        sys.stdout.write(data)
        return

    def write(tmp: str) -> None:
        mode = "wb" if isinstance(data, bytes) else "w"
        with open(tmp, mode, **({} if isinstance(data, bytes) else {"encoding": "utf-8", "newline": ""})) as f:
            f.write(data)

    atomic_write(output, write)


# ----------------------------------------------------------------------------------------------
# Human formats

_SHOWN = ["requests", "input_tokens", "cache_write_5m_tokens", "cache_write_1h_tokens", "cache_read_tokens",
          "output_tokens", "cost", "list_cost", "savings", "reported_cost"]
_TITLES = {"requests": "requests", "input_tokens": "input", "cache_write_5m_tokens": "cache write 5m",
           "cache_write_1h_tokens": "cache write 1h", "cache_read_tokens": "cache read", "output_tokens": "output",
           "cost": "cost $", "list_cost": "list $", "savings": "saved $", "reported_cost": "reported $",
           "quantity": "quantity", "web_search_requests": "web searches"}


def _columns(report) -> list[str]:
    rows = report.rows
    cols = [c for c in _SHOWN if c in rows.columns]
    if "web_search_requests" in rows.columns and rows["web_search_requests"].sum():
        cols.insert(cols.index("cost"), "web_search_requests")
    # Hide token classes nobody used, to keep the table readable.
    cols = [c for c in cols if not (c.endswith("_tokens") and c in rows.columns and not rows[c].sum())]
    if "component" in report.group_by:
        cols = ["quantity", "cost"]
    return cols


def _cell(v) -> str:
    if isinstance(v, Decimal):
        return money_text(v, DISPLAY_PLACES)
    if isinstance(v, int):
        return f"{v:,}"
    return "" if v is None else str(v)


def _rows(n: int) -> str:
    return f"{n:,} row" if n == 1 else f"{n:,} rows"


# Skipped files named under a table (a tree may skip thousands: the JSON report lists them all).
SKIPPED_SHOWN = 5


def _accounting_lines(report) -> list[str]:
    a = report.accounting
    lines = [a.summary()]
    for raw, n in a.unpriced_models.items():
        lines.append(f"unpriced: {raw} ({_rows(n)}): {a.unpriced_reasons.get(raw, '')}")
    if a.quarantine_file:
        lines.append(f"quarantined rows written to {a.quarantine_file}")
    if a.files_skipped:
        shown = list(a.files_skipped.items())[:SKIPPED_SHOWN]
        more = len(a.files_skipped) - len(shown)
        lines.append(f"files skipped ({len(a.files_skipped):,}, not read): "
                     + "; ".join(f"{name}: {why}" for name, why in shown)
                     + (f"; and {more:,} more (all in the JSON report's accounting)" if more else ""))
    lines.append(f"price book {report.book.version}" + (f" + overlays {', '.join(report.book.overlays)}" if report.book.overlays else "")
                 + f"; money rounded {ROUNDING} to cents for display; times in {report.tz}")
    lines.extend(f"note: {n}" for n in report.notes)
    return lines


def table_text(report, width: int | None = None) -> str:
    from rich.console import Console
    from rich.table import Table

    cols = _columns(report)
    t = Table(show_footer=True, header_style="bold", footer_style="bold")
    totals = report.totals
    for i, k in enumerate(report.group_by):
        t.add_column(k, footer="total" if i == 0 else "")
    for c in cols:
        foot = _cell(totals.get(c)) if c != "quantity" else ""
        if "component" in report.group_by and c == "cost":
            foot = _cell(totals.get("cost"))
        t.add_column(_TITLES.get(c, c), justify="right", footer=foot)
    if not report.group_by:
        t.add_column("", footer="total")
    for r in report.rows.to_dicts():
        t.add_row(*[_cell(r.get(k)) for k in report.group_by], *[_cell(r.get(c)) for c in cols])
    console = Console(file=io.StringIO(), width=width or 200, force_terminal=False, color_system=None)
    console.print(t)
    for line in _accounting_lines(report):
        console.print(line, highlight=False, soft_wrap=True)
    return console.file.getvalue()


def print_table(report) -> None:
    """On a terminal: the same table, coloured and fitted to its width, on stdout."""
    from rich.console import Console

    console = Console()
    console.print(table_text(report, width=console.width), end="", highlight=False, markup=False)


def markdown(report) -> str:
    cols = _columns(report)
    head = [*report.group_by, *[_TITLES.get(c, c) for c in cols]]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" if i < len(report.group_by) else "---:"
                                                               for i in range(len(head))) + "|"]
    for r in report.rows.to_dicts():
        lines.append("| " + " | ".join([_cell(r.get(k)) for k in report.group_by] + [_cell(r.get(c)) for c in cols]) + " |")
    total = ["**total**"] + [""] * (len(report.group_by) - 1) if report.group_by else []
    lines.append("| " + " | ".join(total + [f"**{_cell(report.totals.get(c))}**" if c != "quantity" else "" for c in cols]) + " |")
    return "\n".join(lines) + "\n\n" + "\n".join(f"- {line}" for line in _accounting_lines(report)) + "\n"


# ----------------------------------------------------------------------------------------------
# Per-request rows (llm-cost price): streamed from the lazy plan straight to the file.


def sink_rows(rows, fmt: str, output: str) -> None:
    """Stream per-request rows (a PricedRows: one plan per input file) into one file, atomically.

    Each file's rows are sunk by the streaming engine to a temporary part, then the parts are joined
    without holding them: Parquet row group by row group (PyArrow), CSV and JSON Lines by appending
    bytes (one CSV header)."""
    import shutil

    import pyarrow.parquet as pq

    def text(lf: pl.LazyFrame) -> pl.LazyFrame:
        return lf.with_columns([pl.col(c).cast(pl.String) for c, t in lf.collect_schema().items()
                                if isinstance(t, pl.Decimal)])

    def write(tmp: str) -> None:
        with tempfile.TemporaryDirectory(dir=os.path.dirname(tmp), prefix=".llm-cost-parts-") as parts_dir:
            parts = []
            for i, part in enumerate(rows.parts):
                path = os.path.join(parts_dir, f"part-{i:05d}")
                if fmt == "parquet":
                    part.sink_parquet(path)
                elif fmt == "csv":
                    text(part).sink_csv(path, include_header=i == 0)
                else:
                    text(part).sink_ndjson(path)
                parts.append(path)
            if fmt == "parquet":
                schema = pq.read_schema(parts[0])
                with pq.ParquetWriter(tmp, schema, compression="zstd") as writer:
                    for path in parts:
                        source = pq.ParquetFile(path)
                        for group in range(source.num_row_groups):
                            writer.write_table(source.read_row_group(group))
                return
            with open(tmp, "wb") as out:
                for path in parts:
                    with open(path, "rb") as f:
                        shutil.copyfileobj(f, out)

    atomic_write(output, write)


# ----------------------------------------------------------------------------------------------
# Price book views


def _rate(d: Decimal | None) -> str:
    return "-" if d is None else format(d.normalize(), "f")


def price_list_text(book) -> str:
    from rich.console import Console
    from rich.table import Table

    t = Table(header_style="bold", title=f"price book {book.version} (USD per million tokens)")
    for c in ("model", "provider", "since", "input", "5m write", "1h write", "cache read", "output", "modifiers"):
        t.add_column(c, justify="left" if c in ("model", "provider", "since", "modifiers") else "right")
    for m in sorted(book.models.values(), key=lambda m: (m.provider, m.periods[-1].start), reverse=False):
        p = m.periods[-1]
        extra = []
        for name, w in ((f">{p.long_context.threshold // 1000}K long" if p.long_context else "", p.long_context),
                        ("fast", p.fast)):
            if w is not None:
                extra.append(name + (f" until {w.end.date()}" if w.end else ""))
        if m.us_geo:
            extra.append("us_geo")
        if m.regional_premium:
            extra.append("regional")
        t.add_row(m.id, m.provider, p.start.date().isoformat(), _rate(p.rates.input), _rate(p.rates.cache_write_5m),
                  _rate(p.rates.cache_write_1h), _rate(p.rates.cache_read), _rate(p.rates.output), ", ".join(extra))
    console = Console(file=io.StringIO(), width=140, color_system=None)
    console.print(t)
    return console.file.getvalue()


def price_show_text(book, m) -> str:
    out = [f"{m.id} ({m.name}), provider {m.provider}, family {m.family}"]
    if m.aliases or m.platform_ids:
        out.append(f"  also known as: {', '.join((*m.aliases, *m.platform_ids))}")
    flags = [f for f, on in (("us_geo x" + str(book.providers[m.provider].us_geo), m.us_geo),
                             ("regional x" + str(book.providers[m.provider].regional), m.regional_premium),
                             ("no batch price", not m.batch)) if on]
    if flags:
        out.append(f"  multipliers: {', '.join(flags)}")
    if m.lifecycle:
        out.append("  lifecycle (information, not a price bound): "
                   + ", ".join(f"{k} {v}" for k, v in m.lifecycle.items()))
    for p in m.periods:
        r = p.rates
        out.append(f"  from {p.start.date()}: input {_rate(r.input)}, cache write 5m {_rate(r.cache_write_5m)}, "
                   f"1h {_rate(r.cache_write_1h)}, cache read {_rate(r.cache_read)}, output {_rate(r.output)}  "
                   f"[{p.confidence}]")
        for name, w in (("long context", p.long_context), ("fast", p.fast)):
            if w is not None:
                span = f"{w.start.date()}..{w.end.date() if w.end else 'open'}"
                cond = f" when prompt > {w.threshold:,} tokens" if w.threshold else ""
                out.append(f"    {name}{cond} ({span}): input {_rate(w.rates.input)}, 5m {_rate(w.rates.cache_write_5m)}, "
                           f"1h {_rate(w.rates.cache_write_1h)}, read {_rate(w.rates.cache_read)}, output {_rate(w.rates.output)}")
        if p.source:
            out.append(f"    source: {p.source} (checked {p.checked}; {p.origin})")
        if p.note:
            out.append(f"    note: {p.note}")
    return "\n".join(out) + "\n"


def reprice_text(result) -> str:
    """What `llm-cost reprice` changed: old and new cost per month and model, and the difference."""
    from rich.console import Console
    from rich.table import Table

    if not result.parts:
        return "nothing to re-price: the store holds no rows in that window\n"
    t = Table(show_footer=True, header_style="bold", footer_style="bold")
    for name, foot in (("month", "total"), ("model", ""), ("requests", f"{result.changes['requests'].sum():,}"),
                       ("old $", money_text(result.old_total, DISPLAY_PLACES)),
                       ("new $", money_text(result.new_total, DISPLAY_PLACES)),
                       ("difference $", money_text(result.difference, DISPLAY_PLACES))):
        t.add_column(name, footer=foot, justify="left" if name in ("month", "model") else "right")
    for r in result.changes.to_dicts():
        t.add_row(r["month"], r["model"] or "(unpriced)", f"{r['requests']:,}", money_text(r["old_cost"], DISPLAY_PLACES),
                  money_text(r["new_cost"], DISPLAY_PLACES), money_text(r["difference"], DISPLAY_PLACES))
    console = Console(file=io.StringIO(), width=160, color_system=None)
    console.print(t)
    book = result.book
    console.print(f"re-priced {result.parts} part(s) in {', '.join(result.months)} with price book {book.version}"
                  + (f" + overlays {', '.join(book.overlays)}" if book.overlays else "")
                  + f"; exact difference {money_text(result.difference)} USD; money rounded {ROUNDING} to cents "
                    "for display", highlight=False, soft_wrap=True)
    return console.file.getvalue()

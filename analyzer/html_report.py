"""HTML reports people read: one self-contained file (no script, nothing fetched) with tiles, charts
and tables, for a browser or an email attachment.

Charts are Vega-Lite specifications rendered to static SVG by vl-convert (Vega's own renderer, run
in-process: no browser, no network). Chosen over Plotly because a Plotly page inlines its 4.8 MB
script (over the 2 MB budget by itself, and scripts are stripped by mail clients and refused by this
page's Content-Security-Policy); measured in docs/reports.md.

Other commands reuse the building blocks: make `Section`s of `Tile`s, `Chart`s, `Table`s and `Lines`,
then `page()`. Every text from data goes through `text()`: control and bidi characters shown as
their escapes (a right-to-left override cannot reorder a label), then HTML-escaped. Inside a chart,
data are values in the specification, which Vega writes into the SVG escaped; they pass `text()`
first too, so an override cannot reorder a legend.
"""

from __future__ import annotations

import contextlib
import dataclasses
import html
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal

import polars as pl

from . import safe_text
from .schema import COMPONENTS, COUNT_COLUMNS, DISPLAY_PLACES, ROUNDING, TIME_BUCKETS

# The report table shows at most this many rows: a page people read, and within the size budget
# (100 groups x 365 days is 36,500 rows; the CSV/JSON outputs hold every row).
MAX_TABLE_ROWS = 1000
# Stacked series in "cost over time": the largest by cost, the rest summed as "other".
TOP_SERIES = 8
# A time axis longer than this many days is drawn by month (the table keeps the report's own keys).
MAX_DAYS_DRAWN = 92
AXIS_LABELS = 16  # at most this many time labels on an axis
CHART_WIDTH = 640  # px: fits an A4 or Letter page with 12 mm margins (186 mm is 703 px)
# When --by has no time bucket, the HTML report also groups by this one, for its time charts.
HIDDEN_TIME_KEY = "day"
_COMPONENT_COSTS = ["cost_" + c.rate for c in COMPONENTS]
_LONG_LABEL = 60  # characters of a label a chart shows (the table shows it whole)


def text(value) -> str:
    """Data as HTML text: control/bidi characters as escapes, then HTML-escaped (quotes too)."""
    return html.escape(safe_text.terminal_text("" if value is None else str(value)), quote=True)


def _label(value) -> str:
    """A chart label: visible escapes for control/bidi characters, cut to a length a legend holds."""
    s = safe_text.terminal_text("(none)" if value is None else str(value))
    return s if len(s) <= _LONG_LABEL else s[:_LONG_LABEL - 1] + "\u2026"


def money(d: Decimal | None, places: int = DISPLAY_PLACES) -> str:
    from .writers import money_text

    return "n/a" if d is None else "$" + money_text(d, places) if d >= 0 else "-$" + money_text(-d, places)


# ----------------------------------------------------------------------------------------------
# Building blocks


@dataclass
class Tile:
    label: str
    value: str
    note: str = ""


@dataclass
class Chart:
    title: str
    spec: dict  # a Vega-Lite specification with its data inline
    note: str = ""


@dataclass
class Table:
    title: str
    header: list[str]
    rows: list[list[str]]  # cells as plain text (escaped when written)
    numeric: set[int] = field(default_factory=set)  # right-aligned columns
    footer: list[str] | None = None
    note: str = ""
    css: str = ""  # a class for the table (e.g. "bad" rows first in an audit)


@dataclass
class Lines:
    title: str
    items: list[str]


@dataclass
class Section:
    title: str
    blocks: list = field(default_factory=list)  # Tile lists, Charts, Tables, Lines


_warming: threading.Thread | None = None


def warm_up() -> None:
    """Start vl-convert's JavaScript engine in the background (most of the first chart's time, 0.7 s
    on a quiet machine), so that it overlaps reading the logs: `report -o x.html` calls this first.
    A failure here is ignored; the real chart raises it."""
    global _warming

    def tiny() -> None:
        with contextlib.suppress(Exception):
            import vl_convert

            vl_convert.vegalite_to_svg({"mark": "point", "data": {"values": [{"a": 1}]}})

    if _warming is None:
        _warming = threading.Thread(target=tiny, name="llm-cost-chart-engine", daemon=True)
        _warming.start()


def svg(spec: dict) -> str:
    """A Vega-Lite specification as an SVG element (vl-convert: Vega's renderer, in-process)."""
    import vl_convert

    out = vl_convert.vegalite_to_svg(spec)
    # The XML prolog is not allowed inside an HTML document; the <svg> element itself is.
    return out[out.index("<svg"):]


def _spec(data: list[dict], width: int = CHART_WIDTH, height: int = 240, **rest) -> dict:
    return {
        "$schema": "https://vega.github.io/schema/vega-lite/v5.json",  # an identifier, never fetched
        "width": width, "height": height,
        "data": {"values": data},
        # The browser draws the text vl-convert measured: a font both have, and room for a wider one.
        # Labels are cut by _label, never by Vega: its cut (labelLimit) can split a character
        # beyond U+FFFF into half a surrogate pair, which vl-convert then fails to measure.
        "padding": {"left": 16, "right": 16, "top": 5, "bottom": 5},
        "config": {"font": "sans-serif", "view": {"stroke": None},
                   "axis": {"labelLimit": 0, "titleFontWeight": "normal"},
                   "legend": {"labelLimit": 0, "titleLimit": 0}},
        **rest,
    }


def _block_html(block) -> str:
    if isinstance(block, list):  # tiles
        return '<div class="tiles">' + "".join(
            f'<div class="tile"><div class="tv">{text(t.value)}</div><div class="tl">{text(t.label)}</div>'
            + (f'<div class="tn">{text(t.note)}</div>' if t.note else "") + "</div>" for t in block) + "</div>"
    if isinstance(block, Chart):
        return (f'<figure class="chart"><figcaption>{text(block.title)}</figcaption>{svg(block.spec)}'
                + (f'<p class="note">{text(block.note)}</p>' if block.note else "") + "</figure>")
    if isinstance(block, Table):
        def row(cells: list[str], tag: str) -> str:
            return "<tr>" + "".join(f"<{tag}{' class=n' if i in block.numeric else ''}>{text(c)}</{tag}>"
                                    for i, c in enumerate(cells)) + "</tr>"

        return ((f"<h3>{text(block.title)}</h3>" if block.title else "")
                + f'<div class="tw"><table class="{text(block.css)}"><thead>{row(block.header, "th")}</thead><tbody>'
                + "".join(row(r, "td") for r in block.rows) + "</tbody>"
                + (f"<tfoot>{row(block.footer, 'td')}</tfoot>" if block.footer else "") + "</table></div>"
                + (f'<p class="note">{text(block.note)}</p>' if block.note else ""))
    if isinstance(block, Lines):
        return ((f"<h3>{text(block.title)}</h3>" if block.title else "")
                + "<ul>" + "".join(f"<li>{text(i)}</li>" for i in block.items) + "</ul>")
    raise TypeError(f"not a block: {type(block).__name__}")


_CSS = """
:root{--fg:#1b1f24;--muted:#57606a;--bg:#fff;--card:#f6f8fa;--line:#d0d7de;--bad:#fff1f0;--badfg:#a40e26}
@media (prefers-color-scheme:dark){:root{--fg:#e6edf3;--muted:#9da7b3;--bg:#0d1117;--card:#161b22;--line:#30363d;
--bad:#3b1219;--badfg:#ffa198}}
*{box-sizing:border-box}
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:var(--fg);background:var(--bg);
margin:0 auto;padding:24px;max-width:1100px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 10px;border-bottom:1px solid var(--line)}
h3{font-size:14px;margin:16px 0 6px}
.meta{color:var(--muted);margin:0 0 2px;overflow-wrap:anywhere}
.tiles{display:grid;grid-template-columns:repeat(auto-fill,minmax(150px,1fr));gap:10px}
.tile{background:var(--card);border:1px solid var(--line);border-radius:6px;padding:10px 12px;min-width:0}
.tv{font-size:20px;font-weight:600;font-variant-numeric:tabular-nums;overflow-wrap:anywhere}
.tl{color:var(--muted)}.tn{color:var(--muted);font-size:12px}
figure.chart{margin:12px 0;padding:8px;background:#fff;color:#1b1f24;border:1px solid var(--line);border-radius:6px;
break-inside:avoid;max-width:100%;overflow:hidden}
figure.chart svg{max-width:100%;height:auto;display:block}
figure.chart .note{color:#57606a}
figcaption{font-weight:600;margin-bottom:4px}
.tw{overflow-x:auto;max-width:100%}
table{border-collapse:collapse;font-variant-numeric:tabular-nums;font-size:13px}
th,td{padding:3px 8px;border-bottom:1px solid var(--line);text-align:left;vertical-align:top;unicode-bidi:isolate}
td:not(.n),th:not(.n){min-width:16ch;max-width:40ch;overflow-wrap:anywhere}
th.n{white-space:normal;min-width:7ch}
th{position:sticky;top:0;background:var(--card)}
.n{text-align:right;white-space:nowrap}
tfoot td{font-weight:600;border-top:2px solid var(--line)}
table.bad td{background:var(--bad);color:var(--badfg)}
ul{padding-left:20px}li{overflow-wrap:anywhere;unicode-bidi:isolate}
.note{color:var(--muted);font-size:12px;margin:4px 0}
@page{margin:12mm}
@media print{body{padding:0;max-width:none;font-size:10pt;background:#fff;color:#000}
:root{--fg:#000;--muted:#444;--bg:#fff;--card:#f3f3f3;--line:#bbb}
.tw{overflow:visible}table{font-size:7.5pt;width:100%}th,td{padding:1px 4px;max-width:none}
td:not(.n),th:not(.n){min-width:10ch}
th{position:static}thead{display:table-header-group}tr,.tile{break-inside:avoid}
h2{break-after:avoid}figure.chart{border:none;padding:0}}
"""

# No script may run and nothing may be fetched, whatever the data holds.
_CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"


def page(title: str, meta: Iterable[str], sections: list[Section]) -> str:
    """A whole HTML document: title, lines of metadata under it, then the sections."""
    body = "".join(f"<section><h2>{text(s.title)}</h2>" + "".join(_block_html(b) for b in s.blocks) + "</section>"
                   for s in sections)
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f'<meta http-equiv="Content-Security-Policy" content="{_CSP}">'
            '<meta name="viewport" content="width=device-width,initial-scale=1">'
            '<meta name="color-scheme" content="light dark">'
            f"<title>{text(title)}</title><style>{_CSS}</style></head><body>"
            f"<header><h1>{text(title)}</h1>" + "".join(f'<p class="meta">{text(m)}</p>' for m in meta)
            + f"</header>{body}</body></html>\n")


# ----------------------------------------------------------------------------------------------
# The cost report


def analysis_keys(by: list[str]) -> list[str]:
    """The keys to analyze with for an HTML report: the report's own, a day bucket when none is a
    time bucket (the time charts need one) and the service tier (the savings tiles split batch from
    caching). The table is regrouped to the report's keys (`regroup`)."""
    keys = list(by) if any(k in TIME_BUCKETS for k in by) else [*by, HIDDEN_TIME_KEY]
    return keys if "service_tier" in keys else [*keys, "service_tier"]


def regroup(report, by: list[str]):
    """The report of `analysis_keys(by)` with its rows and totals grouped by the report's own keys
    again, keeping the detail the charts draw from. Exact: the same priced groups, summed by fewer
    keys. (The keys come from the report, as resolved: `--by team` may be the logs' `Team`.)"""
    from . import aggregate

    added = analysis_keys(by)[len(by):]
    keys = list(report.group_by)
    if report.detail is None or not added or keys[len(keys) - len(added):] != added:
        return report
    keys = keys[:len(keys) - len(added)]
    rows, totals = aggregate.summarize(report.detail, keys, report.tz)
    return dataclasses.replace(report, group_by=keys, rows=rows, totals=totals)


def _masked(df: pl.DataFrame, reveal: bool) -> pl.DataFrame:
    return df if reveal else safe_text.mask_frame(df)


def _time_key(report) -> str | None:
    keys = [k for k in report.group_by if k in TIME_BUCKETS]
    if keys:
        return keys[0]
    if report.detail is not None and HIDDEN_TIME_KEY in report.detail.columns:
        return HIDDEN_TIME_KEY
    return None


def _series(report, keys: list[str], columns: list[str]) -> pl.DataFrame:
    """The detail's `columns` summed by `keys`, time buckets labelled as in the report's rows. Costs
    are summed as floats: a chart is a picture of the exact sums (the tiles and table print those),
    and this keeps the charts' share of a large report's time small."""
    from .tagging import bucket_label

    d = report.detail.lazy()
    if "component" in keys:  # one row per component: its cost column, summed
        rest = [k for k in keys if k != "component"]
        d = pl.concat([d.select(*rest, pl.lit(c.removeprefix("cost_")).alias("component"),
                                pl.col(c).alias("cost")) for c in _COMPONENT_COSTS])
    aggs = [pl.col(c).cast(pl.Float64).sum() if c == "cost" else pl.col(c).sum() for c in columns]
    d = d.group_by(keys).agg(aggs) if keys else d.select(aggs)
    return d.with_columns([bucket_label(k) for k in keys if k in TIME_BUCKETS]).sort(keys, nulls_last=True).collect()


def _drawn_time(df: pl.DataFrame, tkey: str, columns: list[str], keys: tuple[str, ...] = ()) -> tuple[pl.DataFrame, str]:
    """Buckets summed into longer ones (hours into days, days or weeks into months) while the axis
    would hold more than MAX_DAYS_DRAWN of them: a bar per hour of a quarter is neither readable
    nor quick to draw. Labels are sortable text, so a longer bucket is a prefix of the label."""
    unit = tkey
    for bucket, longer, prefix in (("hour", "day", 10), ("day", "month", 7), ("week", "month", 7)):
        if unit == bucket and df[tkey].n_unique() > MAX_DAYS_DRAWN:
            df = df.with_columns(pl.col(tkey).str.slice(0, prefix)).group_by(tkey, *keys).agg(pl.col(columns).sum())
            unit = longer
    return df.sort(tkey, *keys), unit


def _time_axis(labels: list[str], unit: str) -> dict:
    """An ordinal time axis that names at most AXIS_LABELS buckets (measuring every label of a year of
    days is most of a chart's rendering time, and they would overlap anyway)."""
    step = max(1, -(-len(labels) // AXIS_LABELS))
    return {"field": "t", "type": "ordinal", "title": unit, "sort": None,
            "axis": {"values": labels[::step], "labelAngle": -45, "labelOverlap": False}}


def _cost_over_time(report, tkey: str, reveal: bool) -> Chart:
    stack = next((k for k in report.group_by if k not in TIME_BUCKETS), None)
    df = _series(report, [tkey] + ([stack] if stack else []), ["cost"])
    if stack is None:
        df = df.with_columns(pl.lit("all").alias("_k"))
    else:
        df = _masked(df, reveal).with_columns(pl.col(stack).cast(pl.String).alias("_k"))
    df, unit = _drawn_time(df.select(tkey, "_k", "cost"), tkey, ["cost"], ("_k",))
    ranked = df.group_by("_k").agg(pl.col("cost").sum()).sort(["cost", "_k"], descending=[True, False],
                                                               nulls_last=True)["_k"]
    # Eight largest and "other", unless "other" would be one series: then it is shown by its name.
    top = ranked if ranked.len() <= TOP_SERIES + 1 else ranked.head(TOP_SERIES)
    df = df.with_columns(pl.when(pl.col("_k").is_in(top.implode(), nulls_equal=True)).then(pl.col("_k"))
                         .otherwise(pl.lit("other")).alias("_k"))
    df = df.group_by(tkey, "_k").agg(pl.col("cost").sum()).sort(tkey, "_k")
    order = [_label(k) for k in top.to_list()] + (["other"] if ranked.len() > top.len() else [])
    times = df[tkey].unique(maintain_order=True).to_list()
    data = [{"t": t, "k": _label(k), "cost": c} for t, k, c in zip(df[tkey].to_list(), df["_k"].to_list(),
                                                                    df["cost"].to_list())]
    spec = _spec(data, mark={"type": "bar", "aria": False}, encoding={
        "x": _time_axis(times, unit),
        "y": {"field": "cost", "type": "quantitative", "title": "cost (USD)", "stack": "zero"},
        "color": {"field": "k", "type": "nominal", "title": _label(stack or ""), "sort": order,
                  "scale": {"scheme": "tableau10"}},
        "order": {"field": "k"},
    })
    note = f"stacked by {stack}: the {TOP_SERIES} largest, the rest as \"other\"" if stack else ""
    return Chart(f"Cost over time (by {unit})", spec, note)


_PROMPT = ["input_tokens", "cache_write_5m_tokens", "cache_write_1h_tokens", "cache_read_tokens"]


def _cache_share(report, tkey: str) -> Chart:
    df, unit = _drawn_time(_series(report, [tkey], _PROMPT), tkey, _PROMPT)
    df = df.with_columns((pl.col("cache_read_tokens") / pl.sum_horizontal(_PROMPT)).fill_nan(None).alias("share"))
    times = df[tkey].to_list()
    data = [{"t": t, "share": s} for t, s in zip(times, df["share"].to_list()) if s is not None]
    spec = _spec(data, height=180, mark={"type": "line", "point": True, "aria": False}, encoding={
        "x": _time_axis(times, unit),
        "y": {"field": "share", "type": "quantitative", "title": "cache reads / prompt tokens",
              "axis": {"format": ".0%"}, "scale": {"domain": [0, 1]}},
    })
    return Chart("Cache-read share of prompt tokens", spec,
                 "prompt tokens = input + cache writes + cache reads; a higher share is cheaper")


def _by_component(report) -> Chart:
    df = _series(report, ["component"], ["cost"]).filter(pl.col("cost") != 0)
    data = [{"c": c.replace("_", " "), "cost": v} for c, v in zip(df["component"].to_list(), df["cost"].to_list())]
    spec = _spec(data, height=max(40, 26 * len(data)), mark={"type": "bar", "aria": False}, encoding={
        "y": {"field": "c", "type": "nominal", "title": None, "sort": "-x"},
        "x": {"field": "cost", "type": "quantitative", "title": "cost (USD)"},
    })
    return Chart("Cost by component", spec, "where the money goes: each token class and server tool")


def _savings(report) -> tuple[Decimal | None, Decimal | None, bool]:
    """(saved by caching, saved by batch/flex, flex present). Savings (list cost - cost) of requests
    at the standard or priority tier come from caching alone (list cost is the same request at the
    standard tier with cached tokens as plain input); a batch (or flex) request's whole saving counts
    under batch."""
    d = report.detail
    zero = Decimal(0)
    if d is None or not d.height or "service_tier" not in d.columns:
        return None, None, False
    tiered = pl.col("service_tier").is_in(["batch", "flex"])
    sums = d.select(pl.col("savings").filter(~tiered).sum().alias("cache"),
                    pl.col("savings").filter(tiered).sum().alias("tier"),
                    (pl.col("service_tier") == "flex").any().alias("flex")).row(0)
    return sums[0] or zero, sums[1] or zero, bool(sums[2])


def report_sections(report, reveal: bool = False) -> list[Section]:
    """Tiles, charts, the table and the accounting of a report (reusable by other commands)."""
    from .view import labelled
    from .writers import _TITLES, SKIPPED_SHOWN, _cell, _columns, _rows, shown_rows

    t = report.totals
    a = report.accounting
    tokens = sum(int(t.get(c) or 0) for c in COUNT_COLUMNS if c.endswith("_tokens"))
    cache, tier, flex = _savings(report)
    tiles = [Tile("cost", money(t.get("cost"))), Tile("list cost", money(t.get("list_cost")),
                                                     "standard tier, no caching"),
             Tile("saved by caching", money(cache)), Tile("saved by batch" + (" and flex" if flex else ""), money(tier)),
             Tile("requests", f"{int(t.get('requests') or 0):,}"), Tile("tokens", f"{tokens:,}")]
    sections = [Section("Summary", [tiles])]
    charts = []
    if report.detail is not None and report.detail.height:
        tkey = _time_key(report)
        if tkey:
            charts += [_cost_over_time(report, tkey, reveal), _cache_share(report, tkey)]
        charts.append(_by_component(report))
    if charts:
        sections.append(Section("Charts", charts))
    cols = _columns(report)
    rows = shown_rows(report, reveal)
    # (the label is text like any cell: _cell escapes it when the page is built)
    shown = labelled(rows.head(MAX_TABLE_ROWS), report.group_by).to_dicts()
    header = [*report.group_by, *[_TITLES.get(c, c) for c in cols]]
    numeric = set(range(len(report.group_by), len(header)))
    body = [[_cell(r.get(k)) for k in report.group_by] + [_cell(r.get(c)) for c in cols] for r in shown]
    foot = (["total"] + [""] * (len(report.group_by) - 1) if report.group_by else []) + [
        _cell(t.get(c)) if c != "quantity" else "" for c in cols]
    note = (f"the first {MAX_TABLE_ROWS:,} of {rows.height:,} rows; the CSV, JSON or Parquet output has all"
            if rows.height > MAX_TABLE_ROWS else "")
    sections.append(Section("Report", [Table("", header, body, numeric, foot, note)]))

    def secret(s: str) -> str:
        return s if reveal else safe_text.mask_secrets(s)

    acct: list = [Lines("", [a.summary()])]
    if a.unpriced_models:
        acct.append(Table("Unpriced models", ["model as logged", "rows", "reason"],
                          [[secret(m), f"{n:,}", secret(a.unpriced_reasons.get(m, ""))]
                           for m, n in a.unpriced_models.items()], {1}))
    quarantine = [f"{_rows(a.quarantined)} quarantined"
                  + (f", written to {secret(a.quarantine_file)}" if a.quarantine_file else "")] if a.quarantined else []
    if a.files_skipped:
        listed = list(a.files_skipped.items())[:SKIPPED_SHOWN]
        quarantine.append(f"files skipped ({len(a.files_skipped):,}): " + "; ".join(
            f"{secret(n)}: {secret(w)}" for n, w in listed) + (" ..." if len(a.files_skipped) > len(listed) else ""))
    if quarantine:
        acct.append(Lines("Quarantine", quarantine))
    book = report.book
    acct.append(Lines("Price book and notes", [
        f"price book {book.version}" + (f" + overlays {secret(', '.join(book.overlays))}" if book.overlays else "")
        + f"; money rounded {ROUNDING} to cents for display; times in {report.tz}",
        *[f"note: {secret(n)}" for n in report.notes]]))
    sections.append(Section("Accounting", acct))
    return sections


def _period(report) -> str | None:
    tkey = _time_key(report)
    if tkey is None or report.detail is None or not report.detail.height:
        return None
    labels = _series(report, [tkey], [])[tkey].drop_nulls()
    return f"{labels.min()} to {labels.max()}" if labels.len() else None


def report_meta(report, reveal: bool = False) -> list[str]:
    """Period and sources, the lines under a report page's title."""
    meta = []
    period = _period(report)
    if period:
        meta.append(f"period {period} ({report.tz})")
    files = list(report.dialects.items())
    if files:
        shown = ", ".join(f"{f if reveal else safe_text.mask_secrets(f)} ({d})" for f, d in files[:5])
        meta.append(f"sources: {shown}" + (f" and {len(files) - 5:,} more files" if len(files) > 5 else ""))
    meta.append(f"grouped by {', '.join(report.group_by) or 'nothing (totals)'}; price book {report.book.version}")
    return meta


def report_html(report, reveal: bool = False, title: str = "LLM API cost report") -> str:
    return page(title, report_meta(report, reveal), report_sections(report, reveal))


# ----------------------------------------------------------------------------------------------
# The invoice audit


def audit_html(a, reveal: bool = False) -> str:
    """An audit: lines out of tolerance first (with their causes), then the rest, and the summary."""
    from .audit_writers import _MONEY, _cell, _shown, shown, summary_lines

    a = shown(a, reveal)
    t = a.totals
    bad = a.lines.filter(pl.col("status") != "ok")
    good = a.lines.filter(pl.col("status") == "ok")
    cols = _shown(a)
    numeric = {i for i, c in enumerate(cols) if c in (*_MONEY, "relative")}
    header = [f"{c} $" if c in _MONEY else c for c in cols]
    foot = ["total" if i == 0 else money(t[c]).removeprefix("$") if c in _MONEY else "" for i, c in enumerate(cols)]

    def body(df: pl.DataFrame) -> list[list[str]]:
        return [[_cell(c, r[c]) for c in cols] for r in df.to_dicts()]

    tiles = [Tile("billed", money(t["billed"])), Tile("computed", money(t["computed"])),
             Tile("difference", money(t["difference"])),
             Tile("lines out of tolerance", f"{bad.height:,} of {a.lines.height:,}", f"tolerance {a.tolerance}")]
    blocks: list = []
    if bad.height:
        blocks.append(Table("Out of tolerance", header, body(bad), numeric, None, "", "bad"))
    blocks.append(Table("Within tolerance" if bad.height else "Every line", header, body(good), numeric, foot))
    sections = [Section("Summary", [tiles]), Section("Lines", blocks),
                Section("Accounting", [Lines("", summary_lines(a))])]
    meta = [f"invoice {a.invoice.path} ({a.invoice.format})", f"price book {a.computed.book.version}"]
    return page("LLM API invoice audit", meta, sections)


# ----------------------------------------------------------------------------------------------
# What-if and nightly checks: the same page, their own sections


def whatif_html(w, reveal: bool = False) -> str:
    """A what-if: tiles for both costs and the difference, baseline beside scenario for the largest
    groups, the comparison table and the run's accounting."""
    from .whatif import _TITLES, _cell, _footer, _scenario_text, _shown

    t = w.totals
    cols = _shown(w)
    rows = w.rows if reveal else safe_text.mask_frame(w.rows)
    tiles = [Tile("baseline", money(t["baseline_cost"])), Tile("scenario", money(t["scenario_cost"])),
             Tile("difference", money(t["difference"])),
             Tile("requests in the scenario", f"{t['scenario_requests']:,} of {t['requests']:,}")]
    blocks: list = [tiles]
    if w.group_by and rows.height:
        first = w.group_by[0]
        top = rows.sort("baseline_cost", descending=True, nulls_last=True).head(TOP_SERIES * 2)
        data = [{"k": _label(", ".join("" if r[k] is None else str(r[k]) for k in w.group_by)), "s": side,
                 "cost": float(r[f"{side}_cost"] or 0)}
                for r in top.select(*w.group_by, "baseline_cost", "scenario_cost").to_dicts()
                for side in ("baseline", "scenario")]
        spec = _spec(data, height=max(60, 34 * top.height), mark={"type": "bar", "aria": False}, encoding={
            "y": {"field": "k", "type": "nominal", "title": _label(", ".join(w.group_by)), "sort": None},
            "yOffset": {"field": "s", "type": "nominal", "sort": ["baseline", "scenario"]},
            "x": {"field": "cost", "type": "quantitative", "title": "cost (USD)"},
            "color": {"field": "s", "type": "nominal", "title": None, "sort": ["baseline", "scenario"],
                      "scale": {"range": ["#4c78a8", "#f58518"]}},
        })
        blocks.append(Chart(f"Baseline and scenario by {first if len(w.group_by) == 1 else ', '.join(w.group_by)}",
                            spec, f"the {top.height} groups that cost most as they were"))
    header = [*w.group_by, *[_TITLES[c] for c in cols]]
    shown_rows = [[_cell(r.get(k)) for k in w.group_by] + [_cell(r.get(c)) for c in cols]
                  for r in rows.head(MAX_TABLE_ROWS).to_dicts()]
    foot = ["total" if i == 0 else "" for i in range(len(w.group_by))] + [_cell(t.get(c)) for c in cols]
    numeric = set(range(len(w.group_by), len(header)))
    note = (f"the first {MAX_TABLE_ROWS:,} of {rows.height:,} rows; the CSV or JSON output has all"
            if rows.height > MAX_TABLE_ROWS else "")
    lines = [line if reveal else safe_text.mask_secrets(line) for line in _footer(w)]
    sections = [Section("Summary", blocks), Section("Comparison", [Table("", header, shown_rows, numeric, foot, note)]),
                Section("Accounting", [Lines("", lines)])]
    meta = ["scenario: " + ("; ".join(_scenario_text(w.scenario)) or "no change"),
            f"grouped by {', '.join(w.group_by) or 'nothing'}; price book {w.book.version}"]
    return page("LLM API cost: what if", [m if reveal else safe_text.mask_secrets(m) for m in meta], sections)


def check_html(r, reveal: bool = False) -> str:
    """A nightly check: its alerts first (what a cron mail is read for), the daily cost of the checked
    groups, every budget's state, and the accounting."""
    from .checks import _COLUMNS, _cell, _masked, summary_lines

    alerts = _masked(r.alerts, reveal)
    money_cols = ("actual", "limit", "expected")
    tiles = [Tile("alerts", f"{len(alerts):,}", "exit 1" if alerts else "exit 0"),
             Tile("as of", r.as_of.isoformat() if r.as_of else "n/a", r.report.tz),
             Tile("budgets checked", f"{len(r.budgets):,}")]
    blocks: list = [tiles]
    if alerts:
        header = [f"{c} $" if c in money_cols else c for c in _COLUMNS] + ["message"]
        body = [[_cell(c, a.get(c)) for c in _COLUMNS] + [str(a.get("message", ""))] for a in alerts]
        blocks.append(Table("Alerts", header, body, {i for i, c in enumerate(_COLUMNS) if c in money_cols}, None, "",
                            "bad"))
    sections = [Section("Summary", blocks)]
    report = r.report
    if getattr(report, "detail", None) is not None and report.detail.height and "day" in report.group_by:
        sections.append(Section("Daily cost", [_cost_over_time(report, "day", reveal)]))
    if r.budgets:
        budgets = _masked(r.budgets, reveal)
        header = ["name", "period", "actual $", "limit $"]
        body = [[str(b.get("name", "")), str(b.get("period", "")), _cell("actual", b.get("actual")),
                 _cell("limit", b.get("limit"))] for b in budgets]
        sections.append(Section("Budgets", [Table("", header, body, {2, 3})]))
    lines = [line if reveal else safe_text.mask_secrets(line) for line in summary_lines(r)]
    sections.append(Section("Accounting", [Lines("", lines)]))
    meta = [f"groups: {', '.join(r.by) or 'all requests as one'}; price book {report.book.version}"]
    return page("LLM API cost check", meta, sections)

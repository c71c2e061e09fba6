"""How a report is shown: the rows' order (`--sort`), the largest N and the rest as one row (`--top`),
which measure columns a table shows (`--columns`, or as many as fit the terminal) and money digits
(`--precision`). Sorting and `--top` change the report's rows for every format (the "other" row keeps
the totals adding up); columns and precision are display only: CSV/JSON/Parquet keep every column,
exact.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import polars as pl

from .errors import OptionError
from .schema import DISPLAY_PLACES, MONEY

# Measure columns a table may show, in table order, with their names for --columns and titles.
MEASURE_NAMES = {"requests": "requests", "input_tokens": "input", "cache_write_5m_tokens": "cache_write_5m",
                 "cache_write_1h_tokens": "cache_write_1h", "cache_read_tokens": "cache_read",
                 "output_tokens": "output", "web_search_requests": "web_searches", "cost": "cost",
                 "list_cost": "list_cost", "savings": "savings", "reported_cost": "reported_cost",
                 "quantity": "quantity"}
# Which columns a narrow terminal keeps, most wanted first: the --by keys, requests and cost always;
# then the token counts that drive cost, what caching saved, and the rest. Dropped from the end.
KEEP_ORDER = ("requests", "cost", "quantity", "input_tokens", "output_tokens", "cache_read_tokens", "savings",
              "list_cost", "cache_write_5m_tokens", "cache_write_1h_tokens", "web_search_requests", "reported_cost")
ALWAYS = ("requests", "cost", "quantity")
MAX_PRECISION = MONEY.scale


@dataclass(frozen=True)
class View:
    columns: tuple[str, ...] | None = None  # measure columns (canonical names), or None: as many as fit
    precision: int = DISPLAY_PLACES  # money digits shown by table and markdown

    @staticmethod
    def parse(columns: str | None = None, precision: int | None = None) -> View:
        if precision is not None and not 0 <= precision <= MAX_PRECISION:
            raise OptionError(f"--precision {precision}: use 0 to {MAX_PRECISION} (money is exact to "
                              f"{MAX_PRECISION} places)")
        return View(parse_columns(columns) if columns is not None else None,
                    DISPLAY_PLACES if precision is None else precision)


def _spelling(name: str) -> str:
    return name.strip().lower().removesuffix("$").strip().replace(" ", "_").replace("-", "_")


# Every accepted spelling of a measure: its --columns name, its column name, its table title.
_ACCEPTED = {**{v: k for k, v in MEASURE_NAMES.items()}, **{k: k for k in MEASURE_NAMES},
             "list": "list_cost", "saved": "savings", "reported": "reported_cost", "web_search": "web_search_requests",
             "cache_write": "cache_write_5m_tokens"}


def parse_columns(text: str) -> tuple[str, ...]:
    names = [n for n in (p.strip() for p in text.split(",")) if n]
    if not names:
        raise OptionError("--columns: name at least one column (" + ", ".join(MEASURE_NAMES.values()) + ")")
    out, unknown = [], []
    for n in names:
        c = _ACCEPTED.get(_spelling(n))
        if c is None:
            unknown.append(n)
        elif c not in out:
            out.append(c)
    if unknown:
        import difflib

        near = {u: difflib.get_close_matches(_spelling(u), list(MEASURE_NAMES.values()), n=1, cutoff=0.6)
                for u in unknown}
        hints = "; ".join(f"{u!r}: did you mean {m[0]}?" for u, m in near.items() if m)
        raise OptionError(f"--columns {', '.join(map(repr, unknown))}: unknown column"
                          + (f" ({hints})" if hints else "") + "; use any of " + ", ".join(MEASURE_NAMES.values())
                          + " (the --by keys are always shown)")
    return tuple(out)


# ----------------------------------------------------------------------------------------------
# --sort and --top: the report's rows for every format


def _sort_column(report, key: str) -> str:
    rows = report.rows
    if key in rows.columns:
        return key
    c = _ACCEPTED.get(_spelling(key))
    if c is not None and c in rows.columns:
        return c
    choices = [*report.group_by, *(MEASURE_NAMES.get(c, c) for c in rows.columns if c not in report.group_by)]
    raise OptionError(f"--sort {key!r}: not a column of this report; use one of {', '.join(choices)} "
                      "(prefix - for largest first: -cost)")


# The column that marks the row summing the rest (`--top`): null on every other row, the number of
# rows summed on that one, whose keys are all null. A key's value can be any text, even
# "(other 3 rows)", so machine formats never tell the rest row apart by a label.
OTHER_ROWS = "other_rows"


def other_label(n: int) -> str:
    return f"(other {n:,} row{'s' if n != 1 else ''})"


def labelled(rows: pl.DataFrame, keys: list[str]) -> pl.DataFrame:
    """The rows as people read them (table, Markdown, HTML): the rest row's first key reads
    `(other N rows)`, and the marker column is gone. Apply after escaping: the label is ours, not data."""
    if OTHER_ROWS not in rows.columns:
        return rows
    first = next((k for k in keys if k in rows.columns), None)
    counts = rows[OTHER_ROWS].drop_nulls()
    if first is not None and counts.len():  # (arrange makes at most one rest row)
        rows = rows.with_columns(pl.when(pl.col(OTHER_ROWS).is_not_null()).then(pl.lit(other_label(counts[0])))
                                 .otherwise(pl.col(first).cast(pl.String)).alias(first))
    return rows.drop(OTHER_ROWS)


def arrange(report, sort: str | None = None, top: int | None = None):
    """The report with its rows sorted by `sort` (`-cost`: largest first; ties keep the keys' order) and,
    with `top`, cut to the first N rows plus one row summing the rest: its keys are null, its
    OTHER_ROWS column says how many rows it sums (null on every other row; the column is there
    whenever `top` is given, so a script sees one schema), and every measure is the exact sum of the
    rows it stands for, so the rows still add up to the totals. `--top` alone sorts by `-cost`."""
    if top is not None and top < 1:
        raise OptionError(f"--top {top}: give a number of rows, 1 or more")
    if sort is None and top is None:
        return report
    rows = report.rows
    spec = sort if sort is not None else "-cost"
    descending = spec.startswith("-")
    column = _sort_column(report, spec.lstrip("-+").strip() if spec.strip() not in ("-", "+") else spec)
    # (stable: rows that tie keep the report's order, which is by the --by keys)
    rows = rows.sort(column, descending=descending, nulls_last=True, maintain_order=True)
    if top is not None and report.group_by:
        rows = rows.with_columns(pl.lit(None, pl.Int64).alias(OTHER_ROWS))
        if rows.height > top + 1:  # (one row left over is shown, not summed into "other")
            head, rest = rows.head(top), rows.slice(top)
            rows = pl.concat([head, _other(rest, report.group_by)], how="vertical_relaxed")
    return dataclasses.replace(report, rows=rows)


def _other(rest: pl.DataFrame, keys: list[str]) -> pl.DataFrame:
    sums = []
    for c, t in rest.schema.items():
        if c == OTHER_ROWS:
            sums.append(pl.lit(rest.height, pl.Int64).alias(c))
        elif c in keys or t == pl.String:
            sums.append(pl.lit(None, pl.String).alias(c))
        elif c == "reported_cost":  # no report is not $0: a sum only where some row reported one
            sums.append(pl.when(pl.col(c).is_not_null().any()).then(pl.col(c).sum()).alias(c))
        else:
            sums.append(pl.col(c).sum().cast(t).alias(c))
    return rest.select(sums)

"""Nightly checks over a report: budgets, a month-end forecast, anomalous days (`llm-cost check`).

Everything is computed from one aggregate-first report by day and the checked keys (the --by keys
plus every dimension a budget filters on): a small frame of days x groups, whatever the size of the
logs. Money stays exact: sums are Decimal, and every comparison with a limit or a baseline is made
without dividing (see `_forecast` and `_anomalies`).

Rules (docs/check.md says the same for users):
- budget: the budget's period (day, ISO week Monday-Sunday, calendar month, in --tz) that contains
  the as-of day has spent more than its limit by the end of the as-of day;
- forecast: not over yet, but spent-so-far + run rate x days left in the period is over the limit.
  The run rate is the mean daily cost of the RUN_RATE_DAYS days ending on the as-of day (days without
  requests count as $0; when the data begins later, only the days since its first day);
- anomaly: a day of the checked days whose cost, for one --by group, is at least --anomaly-min and
  more than --anomaly-factor times the median of that group's daily costs over the --anomaly-window
  days before it. Only days with requests enter the median (a weekday job's weekend is not a $0 day
  of its baseline), and a day is judged only when its group has MIN_HISTORY such days in the window.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import difflib
import tomllib
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation, localcontext

import polars as pl

from . import pipeline, safe_text
from .errors import OptionError, UnknownKeys
from .schema import MONEY, TIME_BUCKETS
from .words import counted

PERIODS = ("day", "week", "month")
RUN_RATE_DAYS = 7
MIN_HISTORY = 3
DEFAULT_FACTOR = Decimal(3)
DEFAULT_WINDOW = 14
DEFAULT_MIN = Decimal(1)
BUDGET_KEYS = ("name", "period", "limit", "where")
DAY = "day"
COST = "cost"


class BudgetError(OptionError):
    """A budgets file is not what `llm-cost check` reads; the message names file, budget and field."""


@dataclass(frozen=True)
class Budget:
    name: str
    period: str  # day | week | month
    limit: Decimal
    where: dict[str, tuple[str, ...]] = field(default_factory=dict)  # key -> any of these values


@dataclass(frozen=True)
class Settings:
    """How anomalies are found (the defaults are documented in docs/check.md)."""

    factor: Decimal = DEFAULT_FACTOR
    window: int = DEFAULT_WINDOW
    minimum: Decimal = DEFAULT_MIN
    period: str = "day"  # the days judged: the day, ISO week or month of the as-of day, up to it


@dataclass
class CheckResult:
    as_of: dt.date | None
    alerts: list[dict]
    budgets: list[dict]  # every budget's state, alert or not
    by: list[str]
    settings: Settings
    report: pipeline.Report
    notes: list[str] = field(default_factory=list)

    @property
    def failed(self) -> bool:
        return bool(self.alerts)


# ------------------------------------------------------------------------------------------------
# Budgets file

def _decimal(value, what: str, where: str) -> Decimal:
    """A money amount from TOML: a string "30.00" (exact), an integer, or a float read exactly."""
    if isinstance(value, bool) or not isinstance(value, (str, int, Decimal)):
        raise BudgetError(f"{where}: {what} {value!r}: expected a decimal amount in quotes, like \"30.00\"")
    try:
        d = Decimal(value.strip() if isinstance(value, str) else value)
    except InvalidOperation:
        raise BudgetError(f"{where}: {what} {value!r}: not a decimal amount (write it like \"30.00\")") from None
    if not d.is_finite() or d < 0:
        raise BudgetError(f"{where}: {what} {value!r}: expected a finite amount of 0 or more")
    if not _fits(d):
        raise BudgetError(f"{where}: {what} {value!r}: {MONEY_RANGE}")
    return d


# Amounts are compared with exact costs of 12 decimal places (schema.MONEY); a quadrillion dollars is
# more than any budget, and keeps every product of the checks inside 38 digits.
MAX_AMOUNT = Decimal(10) ** 15
MONEY_RANGE = f"expected at most 12 decimal places and less than {MAX_AMOUNT:,f}"


def _fits(d: Decimal) -> bool:
    return d < MAX_AMOUNT and d == d.quantize(Decimal(1).scaleb(-MONEY.scale))


def _near(word: str, choices) -> str:
    near = difflib.get_close_matches(str(word).lower(), list(choices), n=1, cutoff=0.6)
    return f" (did you mean {near[0]}?)" if near else ""


def load_budgets(path: str) -> list[Budget]:
    """Read and validate a budgets TOML file: `[[budget]]` tables of name, period, limit, where."""
    try:
        with open(path, "rb") as f:
            data = tomllib.load(f, parse_float=Decimal)
    except FileNotFoundError:
        raise BudgetError(f"--budgets {path}: no such file") from None
    except IsADirectoryError:
        raise BudgetError(f"--budgets {path}: a directory, not a budgets file") from None
    except UnicodeDecodeError:
        raise BudgetError(f"{path}: not UTF-8 text; a budgets file is TOML") from None
    except tomllib.TOMLDecodeError as e:
        raise BudgetError(f"{path}: not valid TOML: {e}") from None
    unknown = [k for k in data if k != "budget"]
    if unknown:
        raise BudgetError(f"{path}: unknown key {unknown[0]!r}{_near(unknown[0], ['budget'])}; "
                          "a budgets file holds [[budget]] tables")
    entries = data.get("budget", [])
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        raise BudgetError(f"{path}: 'budget' must be [[budget]] tables")
    budgets, names = [], {}
    for i, e in enumerate(entries, 1):
        name = e.get("name")
        where = f"{path}: budget #{i}"
        if not isinstance(name, str) or not name.strip():
            raise BudgetError(f"{where}: name: required, a non-empty string")
        where = f"{path}: budget {name!r}"
        if name in names:
            raise BudgetError(f"{where}: name used twice (budgets #{names[name]} and #{i}); names must be unique")
        names[name] = i
        extra = [k for k in e if k not in BUDGET_KEYS]
        if extra:
            raise BudgetError(f"{where}: unknown field {extra[0]!r}{_near(extra[0], BUDGET_KEYS)}; "
                              f"fields are {', '.join(BUDGET_KEYS)}")
        period = e.get("period")
        if period not in PERIODS:
            raise BudgetError(f"{where}: period {period!r}: expected day, week or month{_near(period or '', PERIODS)}"
                              if period is not None else f"{where}: period: required (day, week or month)")
        if "limit" not in e:
            raise BudgetError(f"{where}: limit: required, a decimal amount in USD like \"30.00\"")
        limit = _decimal(e["limit"], "limit", where)
        filters = e.get("where", {})
        if not isinstance(filters, dict):
            raise BudgetError(f"{where}: where: expected a table like {{ workspace = \"etl\" }}")
        clean = {}
        for k, v in filters.items():
            values = v if isinstance(v, list) else [v]
            if not values or not all(isinstance(x, str) for x in values):
                raise BudgetError(f"{where}: where.{k}: expected a string or a list of strings")
            if k in TIME_BUCKETS or k == "component":
                raise BudgetError(f"{where}: where.{k}: the period says when; where filters on a dimension "
                                  "(workspace, model, api_key, ...)")
            clean[k] = tuple(values)
        budgets.append(Budget(name, period, limit, clean))
    return budgets


# ------------------------------------------------------------------------------------------------
# Periods

def parse_as_of(value: str | None) -> dt.date | None:
    if value is None:
        return None
    try:
        if len(value) != 10:
            raise ValueError
        return dt.date.fromisoformat(value)
    except ValueError:
        raise OptionError(f"--as-of {value!r}: expected a date like 2026-11-20 (the last day checked)") from None


def period_bounds(day: dt.date, period: str) -> tuple[dt.date, dt.date]:
    """First and last day of the period containing `day`: ISO weeks run Monday to Sunday."""
    if period == "day":
        return day, day
    start = day - dt.timedelta(days=day.weekday()) if period == "week" else day.replace(day=1)
    try:
        end = start + dt.timedelta(days=6) if period == "week" else (
            (start + dt.timedelta(days=32)).replace(day=1) - dt.timedelta(days=1))
    except OverflowError:  # the week or month of 9999-12-31 ends with the calendar
        end = dt.date.max
    return start, end


def period_label(day: dt.date, period: str) -> str:
    """2026-11-20, 2026-W47 (ISO week), 2026-11."""
    if period == "day":
        return day.isoformat()
    if period == "week":
        year, week, _ = day.isocalendar()
        return f"{year:04d}-W{week:02d}"
    return f"{day.year:04d}-{day.month:02d}"


# ------------------------------------------------------------------------------------------------
# The checks

def run(paths=(), budgets: list[Budget] | str | None = None, by: list[str] | tuple[str, ...] = (),
        as_of: str | dt.date | None = None, opts: pipeline.Options | None = None, settings: Settings | None = None,
        store_dir: str | None = None) -> CheckResult:
    """Check logs (or a store) against budgets, forecast each budget's period, and find anomalous days."""
    opts = opts or pipeline.Options()
    settings = settings or Settings()
    _check_settings(settings)
    if isinstance(budgets, str):
        budgets = load_budgets(budgets)
    budgets = budgets or []
    by = list(dict.fromkeys(by))
    bad = [k for k in by if k in TIME_BUCKETS or k == "component"]
    if bad:
        raise OptionError(f"--by {bad[0]}: check already works per day; --by names the groups whose days are "
                          "compared (workspace, model, api_key, ...)")
    day = as_of if isinstance(as_of, dt.date) or as_of is None else parse_as_of(as_of)
    if day is not None:
        if opts.until is not None:
            raise OptionError("--until with check: --as-of is the last day read (later rows are counted as filtered)")
        since = pipeline.parse_time(opts.since, opts.tz, end=False)
        if since is not None and since >= pipeline.parse_time(day.isoformat(), opts.tz, end=True):
            raise OptionError(f"--as-of {day.isoformat()} is before --since {opts.since}: nothing would be read")
        # Rows after the as-of day are not read into the checks: the accounting counts them as filtered.
        opts = dataclasses.replace(opts, until=day.isoformat())
    where_keys = [k for b in budgets for k in b.where]
    keys = list(dict.fromkeys([DAY, *by, *where_keys]))
    try:
        report = _report(paths, keys, opts, store_dir)
    except UnknownKeys as e:
        # An empty night has no columns at all: no row can match, so a budget spent $0 and no group
        # had a day. With rows, a key the logs lack is a typo (or the wrong logs): refused.
        keys = [k for k in keys if k not in e.unknown]
        report = _report(paths, keys, opts, store_dir)
        culprit = next(((b, k) for b in budgets for k in b.where if k in e.unknown), None)
        if report.accounting.rows_read and culprit is None:
            raise e
        if report.accounting.rows_read:
            b, k = culprit
            known = [*e.standard, *e.dimensions]
            raise BudgetError(f"budget {b.name!r}: where.{k}: unknown dimension{_near(k, known)}; "
                              + (f"these logs have {', '.join(e.dimensions)}" if e.dimensions else
                                 "these logs have no dimension columns") + " and the keys model, platform, ...") from None
    names = dict(zip(keys, report.group_by))  # keys as the data spells them (a `Team` column for `team`)
    by = [names[k] for k in by if k in names]
    daily = report.rows.select(
        pl.col(DAY).str.to_date("%Y-%m-%d"), *[pl.col(names[k]) for k in keys if k != DAY], pl.col(COST).cast(MONEY)
    ) if report.rows.height else pl.DataFrame(schema={DAY: pl.Date, **{names[k]: pl.String for k in keys if k != DAY},
                                                      COST: MONEY})
    if day is None and daily.height:
        day = daily[DAY].max()
    result = CheckResult(day, [], [], by, settings, report, notes=list(report.notes))
    if report.accounting.unpriced:
        result.notes.append(f"{counted(report.accounting.unpriced, 'unpriced row')} "
                            f"{'is' if report.accounting.unpriced == 1 else 'are'} not in these costs "
                            "(see the accounting): budgets may be spent more than shown")
    if day is None:
        result.notes.append("no priced requests: nothing to check")
        return result
    since = pipeline.parse_time(opts.since, opts.tz, end=False) if opts.since else None
    for b in budgets:  # a period read in part would show part of its spending, and miss its alert
        start, end = period_bounds(day, b.period)
        if since is not None and since > pipeline.parse_time(start.isoformat(), opts.tz, end=False):
            raise OptionError(f"--since {opts.since} starts inside budget {b.name!r}'s period {start}..{end}: its "
                              f"spending before would be left out; use --since {start} or earlier, or leave it out")
    first = daily[DAY].min() if daily.height else None
    resolve = _model_resolver(budgets, opts, store_dir)
    for b in budgets:
        state, alert = _budget(b, daily.filter(_where(b, names, resolve)), day, first)
        result.budgets.append(state)
        if alert:
            result.alerts.append(alert)
    result.notes.extend(_unmatched(budgets, daily, names, resolve))
    result.alerts.extend(_anomalies(daily, by, day, settings))
    return result


def _unmatched(budgets: list[Budget], daily: pl.DataFrame, names: dict[str, str], resolve) -> list[str]:
    """A note for each `where` value no priced request of the data has: a typo (`ETL` for `etl`) makes
    a budget that is $0 spent and never fires, which looks exactly like one within its limit."""
    notes = []
    for b in budgets:
        for k, values in b.where.items():
            if k not in names:
                continue
            seen = set(daily[names[k]].cast(pl.String).drop_nulls().unique().to_list())
            for v in values:
                if (resolve(v) if k == "model" else v) not in seen:
                    notes.append(f"budget {b.name!r}: where {k} = {v!r} matches no priced request in the data "
                                 f"read{_near(v, seen)}")
    return notes


def _check_settings(s: Settings) -> None:
    if not (isinstance(s.factor, Decimal) and s.factor.is_finite() and s.factor > 0):
        raise OptionError(f"--anomaly-factor {s.factor}: expected a number above 0, like 3")
    if s.factor.normalize().as_tuple().exponent < -6 or s.factor > 10**6:  # (kept exact in 38 digits: see _anomalies)
        raise OptionError(f"--anomaly-factor {s.factor}: at most 6 decimal places and at most 1000000")
    if not (isinstance(s.window, int) and 1 <= s.window <= 3660):
        raise OptionError(f"--anomaly-window {s.window}: expected a number of days from 1 to 3660")
    if not (isinstance(s.minimum, Decimal) and s.minimum.is_finite() and s.minimum >= 0):
        raise OptionError(f"--anomaly-min {s.minimum}: expected an amount of 0 or more, like 1.00")
    if not _fits(s.minimum):
        raise OptionError(f"--anomaly-min {s.minimum}: {MONEY_RANGE}")
    if s.period not in PERIODS:
        raise OptionError(f"--anomaly-period {s.period!r}: expected day, week or month")


def _report(paths, keys: list[str], opts: pipeline.Options, store_dir: str | None) -> pipeline.Report:
    if store_dir:
        from . import store

        return store.report(store_dir, keys, opts)
    return pipeline.analyze(paths, keys, opts)


def _model_resolver(budgets: list[Budget], opts: pipeline.Options, store_dir: str | None):
    """`where = { model = "claude-sonnet-4-5" }` names a model as people do (an alias, a platform id):
    matched against the canonical id the report groups by. Other keys match as written."""
    if not any("model" in b.where for b in budgets):
        return lambda v: v
    from . import pricebook
    from .models import Resolver

    resolver = Resolver(pricebook.load_price_book(() if store_dir else opts.prices))
    return lambda v: resolver.resolve(v)[0] or v


def _where(b: Budget, names: dict[str, str], resolve=lambda v: v) -> pl.Expr:
    conds = [pl.col(names[k]).cast(pl.String).is_in([resolve(x) if k == "model" else x for x in v])
             if k in names else pl.lit(False) for k, v in b.where.items()]
    return pl.all_horizontal(conds) if conds else pl.lit(True)


def _sum(frame: pl.DataFrame) -> Decimal:
    total = frame[COST].sum() if frame.height else None
    return Decimal(0).quantize(Decimal(1).scaleb(-MONEY.scale)) if total is None else total


def _money(d: Decimal) -> str:
    from .writers import money_text

    return f"${money_text(d, 2)}"


def _budget(b: Budget, daily: pl.DataFrame, day: dt.date, first: dt.date | None) -> tuple[dict, dict | None]:
    start, end = period_bounds(day, b.period)
    actual = _sum(daily.filter(pl.col(DAY).is_between(start, day)))
    label = period_label(day, b.period)
    state = {"name": b.name, "period": label, "from": start.isoformat(), "to": day.isoformat(),
             "key": {k: v[0] if len(v) == 1 else list(v) for k, v in b.where.items()},
             "actual": actual, "limit": b.limit, "expected": None, "status": "ok"}
    through = f"{b.period} {label}" + ("" if b.period == "day" else f" up to {day.isoformat()}")
    if actual > b.limit:
        state["status"] = "over"
        return state, _alert("budget", b.name, state["key"], label, actual, limit=b.limit, message=(
            f"{b.name}: {_money(actual)} spent in {through}, over the {_money(b.limit)} limit by "
            f"{_money(actual - b.limit)}"))
    expected, over = _forecast(daily, day, end, first, actual, b.limit)
    state["expected"] = expected
    if over:
        state["status"] = "forecast over"
        rate_days = min(RUN_RATE_DAYS, (day - first).days + 1)
        return state, _alert("forecast", b.name, state["key"], label, actual, limit=b.limit, expected=expected,
                             message=(f"{b.name}: {_money(actual)} spent in {through}; at the mean daily cost of the "
                                      f"last {rate_days} day{'s' if rate_days != 1 else ''} the {b.period} ends near "
                                      f"{_money(expected)}, over the {_money(b.limit)} limit"))
    return state, None


def _forecast(daily: pl.DataFrame, day: dt.date, end: dt.date, first: dt.date | None, actual: Decimal,
              limit: Decimal) -> tuple[Decimal | None, bool]:
    """(expected period total, whether it ends over the limit). expected = actual + recent / n x left,
    where recent is the cost of the n days ending on the as-of day; compared as
    actual x n + recent x left > limit x n, in integers of the money's scale: no division, no rounding."""
    left = (end - day).days
    if first is None or first > day:
        return None, False
    n = min(RUN_RATE_DAYS, (day - first).days + 1)
    recent = _sum(daily.filter(pl.col(DAY).is_between(day - dt.timedelta(days=n - 1), day)))
    with localcontext() as ctx:
        ctx.prec = 200  # every product below is exact
        over = actual * n + recent * left > limit * n
        expected = (actual + recent * left / n).quantize(Decimal(1).scaleb(-MONEY.scale))
    return expected, over


def _anomalies(daily: pl.DataFrame, by: list[str], day: dt.date, s: Settings) -> list[dict]:
    """Days whose cost, per group, is >= the minimum and > factor x the median of the group's days
    with requests in the window before it. The median of n sorted costs is (c[(n-1)//2] + c[n//2]) / 2,
    taken by position (exact Decimals, no float quantile); with factor = p/q the test is
    2 q cost > p (c[(n-1)//2] + c[n//2]), products of Decimals and integers, exact."""
    if not daily.height:
        return []
    start, _ = period_bounds(day, s.period)
    p, q = s.factor.as_integer_ratio()
    per_day = daily.group_by([DAY, *by]).agg(pl.col(COST).sum()).sort([*by, DAY], nulls_last=True)
    history = per_day.rolling(index_column=DAY, period=f"{s.window}d", closed="left", group_by=by or None).agg(
        pl.col(COST).sort().alias("_hist"))
    n = pl.col("_hist").list.len()
    lo = pl.col("_hist").list.get((n - 1) // 2, null_on_oob=True)
    hi = pl.col("_hist").list.get(n // 2, null_on_oob=True)
    found = (
        per_day.join(history, on=[*by, DAY], how="left", nulls_equal=True)
        .filter(pl.col(DAY).is_between(start, day) & (n >= MIN_HISTORY) & (pl.col(COST) >= pl.lit(s.minimum, MONEY))
                & (pl.col(COST) * (2 * q) > (lo + hi) * p))
        .select(DAY, *by, COST, (lo + hi).alias("_twice_median"), n.alias("_days"))
        .sort([DAY, *by], nulls_last=True)
    )
    alerts = []
    for r in found.to_dicts():  # the alerts found: a few rows, not the input's
        key = {k: r[k] for k in by}
        median = r["_twice_median"] / 2
        name = ", ".join(f"{k}={'(none)' if v is None else v}" for k, v in key.items()) if key else "all requests"
        ratio = (r[COST] / median).quantize(Decimal("0.1")) if median else None
        alerts.append(_alert("anomaly", name, key, r[DAY].isoformat(), r[COST], expected=median, message=(
            f"{name}: {_money(r[COST])} on {r[DAY].isoformat()}, "
            + (f"{ratio}x" if ratio is not None else "far above")
            + f" the median of {_money(median)} over its {counted(r['_days'], 'day')} with requests in the "
              f"{counted(s.window, 'day')} before"
        )))
    return alerts


def _alert(kind: str, name: str, key: dict, period: str, actual: Decimal, limit: Decimal | None = None,
           expected: Decimal | None = None, message: str = "") -> dict:
    out = {"kind": kind, "name": name, "key": key, "period": period, "actual": actual}
    if limit is not None:
        out["limit"] = limit
    if expected is not None:
        out["expected"] = expected
    out["message"] = message
    return out


# ------------------------------------------------------------------------------------------------
# Output

def _json_value(v):
    if isinstance(v, Decimal):
        return format(v, "f")
    if isinstance(v, dict):
        return {k: _json_value(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_json_value(x) for x in v]
    return v


def _masked(v, reveal: bool):
    if reveal:
        return v
    if isinstance(v, str):
        return safe_text.mask_secrets(v)
    if isinstance(v, dict):
        return {safe_text.mask_secrets(k): _masked(x, reveal) for k, x in v.items()}
    if isinstance(v, list):
        return [_masked(x, reveal) for x in v]
    return v


def result_dict(r: CheckResult, reveal: bool = False) -> dict:
    """{"as_of", "alerts": [{kind, name, key, period, actual, limit | expected, message}], "accounting"}
    plus the budgets' states and how anomalies were sought. Money is a decimal string."""
    from .writers import report_dict

    rep = report_dict(r.report, reveal)
    s = r.settings
    return _json_value(_masked({
        "as_of": r.as_of.isoformat() if r.as_of else None,
        "time_zone": r.report.tz,
        "alerts": r.alerts,
        "budgets": r.budgets,
        "anomaly": {"by": r.by, "factor": s.factor, "window_days": s.window, "minimum": s.minimum,
                    "period": s.period, "min_history_days": MIN_HISTORY},
        "currency": "USD",
        "price_book": rep["price_book"],
        "accounting": rep["accounting"],
        "notes": r.notes,
    }, reveal))


def summary_lines(r: CheckResult) -> list[str]:
    a = r.report.accounting
    s = r.settings
    n = len(r.alerts)
    head = (f"as of {r.as_of.isoformat()} ({r.report.tz}): " if r.as_of else "") + (
        f"{n} alert{'s' if n != 1 else ''}" if n else "no alerts")
    lines = [head, "budgets: not checked (no priced requests, and no --as-of)" if r.as_of is None else
             f"budgets: {len(r.budgets)} checked" + (
        "; " + "; ".join(f"{b['name']} {_money(b['actual'])} of {_money(b['limit'])} ({b['period']})" for b in r.budgets)
        if r.budgets else ""),
             f"anomalies: days over {s.factor}x the median of the {counted(s.window, 'day')} before (days with requests, "
             f"at least {MIN_HISTORY}) and at least {_money(s.minimum)}, "
             + (f"per {', '.join(r.by)}" if r.by else "all requests as one group"),
             a.summary()]
    lines.append("money rounded half-even to cents for display")
    return lines + [f"note: {x}" for x in r.notes]


_COLUMNS = ("kind", "name", "period", "actual", "limit", "expected")


def _cell(c: str, v) -> str:
    if v is None:
        return ""
    if isinstance(v, Decimal):
        from .writers import money_text

        return money_text(v, 2)
    return str(v)


def table_text(r: CheckResult, width: int | None = None, reveal: bool = False) -> str:
    import io

    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    alerts = _masked(r.alerts, reveal)
    console = Console(file=io.StringIO(), width=width or 200, force_terminal=False, color_system=None)
    if alerts:
        t = Table(header_style="bold")
        for c in _COLUMNS:
            t.add_column(f"{c} $" if c in ("actual", "limit", "expected") else c,
                         justify="right" if c in ("actual", "limit", "expected") else "left", overflow="fold")
        for a in alerts:  # cells are Text, never markup; control characters escaped (DESIGN §13)
            t.add_row(*[Text(safe_text.terminal_text(_cell(c, a.get(c)))) for c in _COLUMNS])
        console.print(t)
        for a in alerts:  # what each alert means, one line each (what a cron mail is read for)
            console.print(safe_text.terminal_text(f"{a['kind']}: {a['message']}"), highlight=False, soft_wrap=True,
                          markup=False, emoji=False)
    for line in summary_lines(r):
        text = line if reveal else safe_text.mask_secrets(line)
        console.print(safe_text.terminal_text(text), highlight=False, soft_wrap=True, markup=False, emoji=False)
    return console.file.getvalue()


def markdown(r: CheckResult, reveal: bool = False) -> str:
    alerts = _masked(r.alerts, reveal)
    out = []
    if alerts:
        out += ["| kind | name | period | actual $ | limit $ | expected $ | message |",
                "|---|---|---|---:|---:|---:|---|"]
        out += ["| " + " | ".join(safe_text.markdown_cell(_cell(c, a.get(c))) for c in (*_COLUMNS, "message")) + " |"
                for a in alerts]
        out.append("")
    out += [f"- {safe_text.markdown_cell(line if reveal else safe_text.mask_secrets(line))}" for line in summary_lines(r)]
    return "\n".join(out) + "\n"


FORMATS = ("table", "json", "markdown", "html")


def render(r: CheckResult, fmt: str, reveal: bool = False) -> str:
    import json

    if fmt == "json":
        return json.dumps(result_dict(r, reveal), indent=2) + "\n"
    if fmt == "markdown":
        return markdown(r, reveal)
    if fmt == "table":
        return table_text(r, reveal=reveal)
    if fmt == "html":
        from .html_report import check_html

        return check_html(r, reveal)
    raise OptionError(f"--format {fmt!r}: a check is written as table, json, markdown or html")


def write(r: CheckResult, fmt: str, output: str | None, reveal: bool = False) -> None:
    from .writers import write_output

    write_output(render(r, fmt, reveal), output)


def decimal_option(value: str, option: str) -> Decimal:
    """A decimal option (--anomaly-factor 2.5, --anomaly-min 0.50), read exactly."""
    try:
        d = Decimal(value.strip().lstrip("$"))
    except InvalidOperation:
        raise OptionError(f"{option} {value!r}: expected a decimal number") from None
    if not d.is_finite():
        raise OptionError(f"{option} {value!r}: expected a finite number")
    return d

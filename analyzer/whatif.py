"""What-if: the same requests priced as they were (baseline) and under a scenario, side by side.

A scenario changes what decides a request's rates, never its token counts: `--swap FROM=TO` gives
the requests of one model another model's rates (on the same dates), `--batch` moves requests to the
batch tier where the model has one, `--prices OVERLAY` gives the scenario other rates, and
`--where KEY=VALUE` limits all of it to matching requests.

It prices aggregates, like a report: the run's rate-key groups (pipeline.Groups) carry the keys that
decide a rate, so the scenario rewrites those keys on the few group rows and prices them again with
`rate_frame`. The run is aggregated with a book that knows the rate-change instants and thresholds of
both the baseline and the scenario books (pricing.banded), so each group lies inside one price band
of either, and both prices are exact.

Only requests the baseline priced are compared (the others are in the run's accounting as
unpriced). A request the scenario cannot price (the target model had no price yet on its date) is
counted and named, and left out of both sides of the comparison rather than compared with $0; a
response of several steps the scenario cannot price in part, whole (see run).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from decimal import Decimal

import polars as pl

from . import pipeline, pricebook, safe_text
from .errors import OptionError
from .models import Resolver
from .pricing import banded, rate_frame
from .schema import COUNT_COLUMNS, DISPLAY_PLACES, MONEY, ROUNDING, TIME_BUCKETS
from .tagging import RATE_KEYS, bucket_label
from .words import counted

MONEY_FIELDS = ("baseline_cost", "scenario_cost", "difference", "unpriced_baseline_cost")
FORMATS = ("table", "json", "markdown", "csv", "html")
ROW_FIELDS = ("requests", "scenario_requests", "baseline_cost", "scenario_cost", "difference", "unpriced_requests",
              "unpriced_baseline_cost")
TOKENIZER_NOTE = ("token counts are the logged ones; tokenizers differ between model families, so the same text "
                  "may count as more or fewer tokens on {}")


@dataclass(frozen=True)
class Scenario:
    """What changes. Empty: the scenario is the baseline (every difference is 0)."""

    swaps: tuple[tuple[str, str], ...] = ()  # (FROM, TO): any id, alias or platform id
    batch: bool = False
    where: tuple[tuple[str, str], ...] = ()  # (KEY, VALUE): the scenario applies to matching requests only
    prices: tuple[str, ...] = ()  # overlays for the scenario only

    @staticmethod
    def pairs(values, option: str) -> tuple[tuple[str, str], ...]:
        """`A=B` option values as pairs; one clear line for a value without `=`."""
        out = []
        for v in values:
            key, sep, value = v.partition("=")
            if not sep or not key.strip() or not value.strip():
                raise OptionError(f"{option} {v!r}: expected {'FROM=TO' if option == '--swap' else 'KEY=VALUE'}")
            out.append((key.strip(), value.strip()))
        return tuple(out)

    def describe(self) -> dict:
        return {"swap": [f"{a}={b}" for a, b in self.swaps], "batch": self.batch,
                "where": [f"{k}={v}" for k, v in self.where], "prices": list(self.prices)}


@dataclass
class WhatIf:
    group_by: list[str]
    rows: pl.DataFrame
    totals: dict
    accounting: pipeline.Accounting  # the run's: every row read
    scenario_accounting: dict  # of the requests the baseline priced: compared + unpriced under the scenario
    scenario: Scenario
    book: pricebook.PriceBook
    scenario_book: pricebook.PriceBook
    tz: str
    notes: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)  # also in notes; said on stderr unless the output says it


def _resolve(name: str, book: pricebook.PriceBook, option: str) -> str:
    resolver = Resolver(book)
    found, _, problem = resolver.resolve(name)
    if found is None:
        hint = resolver.suggest(name)
        raise OptionError(f"{option} {name}: {problem}" + (f"; did you mean {hint}?" if hint else ""))
    return found


def run(paths, scenario: Scenario, by: list[str] | tuple[str, ...] = ("model",), opts: pipeline.Options | None = None,
        store_dir: str | None = None, analyze_groups=None) -> WhatIf:
    """Price the logs as they were and under `scenario`; rows by `by`, with both costs and the difference.
    `analyze_groups`: the engine's (default pipeline.analyze_groups; engine_spark's gives the same groups)."""
    opts = opts or pipeline.Options()
    by = list(by)
    for option, keys in (("--by", by), ("--where", [k for k, _ in scenario.where])):
        if "component" in keys:
            raise OptionError(f"{option} component: a what-if compares requests; use model, a time bucket or a "
                              "dimension")
    for k, v in scenario.where:
        if k in TIME_BUCKETS:
            check_bucket_label(k, v)
    base_book = pricebook.load_price_book(opts.prices)
    scen_book = pricebook.load_price_book((*opts.prices, *scenario.prices)) if scenario.prices else base_book
    swaps: dict[str, str] = {}
    for a, b in scenario.swaps:
        a, b = _resolve(a, base_book, "--swap"), _resolve(b, scen_book, "--swap")
        if swaps.setdefault(a, b) != b:  # else one of them would silently win
            raise OptionError(f"--swap names {a} twice, as {swaps[a]} and as {b}: give one target per model")
    base, scen = banded(base_book, scen_book)
    where_keys = [k for k, _ in scenario.where if k not in by]
    asked = [*by, *dict.fromkeys(where_keys)]

    def grouped(unpriceable: pl.DataFrame | None = None) -> pipeline.Groups:
        if store_dir:
            from . import store

            return store.groups(store_dir, asked, opts, base, scenario=unpriceable)
        try:
            return (analyze_groups or pipeline.analyze_groups)(paths, asked, opts, base, scenario=unpriceable)
        except OptionError as e:  # a --where key the logs lack: say which option named it
            if str(e).startswith("--by ") and any(repr(k) in str(e).split(":")[0] for k in where_keys):
                raise OptionError("--where" + str(e).removeprefix("--by")) from None
            raise

    groups = grouped()
    by_given = list(by)
    frame, keys, hidden, by, unmatched = _compared(groups, by, scenario, swaps, base_book, scen_book, scen)
    # A response of several steps the scenario cannot price in part (a swapped advisor step, its target
    # not priced yet on that date) is unpriced whole under the scenario, as a report counts it: groups
    # hold no responses, so the run is grouped again with the records of such steps found (pipeline.
    # with_scenario_blame). Only when the scenario leaves a group unpriced: most what-ifs read once.
    bad = frame.filter(pl.col("unpriced_reason").is_not_null() & pl.col("_match"))
    if bad.height:
        unpriceable = bad.select(
            *[pl.col(BASE.get(c, c)).alias(c) for c in RATE_KEYS], pl.col("model_raw").alias(pipeline.SCENARIO_NAME)
        ).unique()
        groups = grouped(unpriceable)
        frame, keys, hidden, by, unmatched = _compared(groups, by_given, scenario, swaps, base_book, scen_book, scen)
    unpriced = pl.col("unpriced_reason").is_not_null()
    scen_acc = _scenario_accounting(frame, scen_book)
    zero = pl.lit(0, MONEY)
    measures = [
        pl.col("requests").sum(),
        pl.col("requests").filter(pl.col("_match")).sum().alias("scenario_requests"),
        pl.col("baseline_cost").filter(~unpriced).sum().cast(MONEY).alias("baseline_cost"),
        pl.col("cost").filter(~unpriced).sum().cast(MONEY).alias("scenario_cost"),
        pl.col("requests").filter(unpriced).sum().alias("unpriced_requests"),
        pl.col("baseline_cost").filter(unpriced).sum().cast(MONEY).alias("unpriced_baseline_cost"),
    ]
    shown = [hidden[k] for k in by]
    rows = (frame.group_by(shown).agg(measures).sort(shown, nulls_last=True) if shown else frame.select(measures))
    rows = rows.rename({hidden[k]: k for k in by}).with_columns(
        (pl.col("scenario_cost") - pl.col("baseline_cost")).cast(MONEY).alias("difference"))
    rows = rows.with_columns([bucket_label(k) for k in by if k in TIME_BUCKETS])
    rows = rows.with_columns(*[pl.col(c).fill_null(zero) for c in MONEY_FIELDS if c != "difference"])
    rows = rows.select(*by, *ROW_FIELDS)
    totals = frame.select(measures).with_columns(
        (pl.col("scenario_cost") - pl.col("baseline_cost")).cast(MONEY).alias("difference")).to_dicts()[0]
    totals = {k: (v if v is not None else (Decimal(0) if k in MONEY_FIELDS else 0)) for k, v in totals.items()}
    totals = {k: totals[k] for k in ROW_FIELDS}
    notes = list(groups.notes)
    families = {(base_book.models[a].family, scen_book.models[b].family, b) for a, b in swaps.items()}
    crossing = sorted({b for fa, fb, b in families if fa != fb})
    if crossing:
        notes.append(TOKENIZER_NOTE.format(", ".join(crossing)))
    if scen_acc["unpriced"]:
        notes.append(f"{counted(scen_acc['unpriced'], 'row')} the scenario cannot price "
                     f"{'is' if scen_acc['unpriced'] == 1 else 'are'} left out of both costs "
                     "(see scenario accounting)")
    if unmatched:
        notes.append(unmatched)
    if scenario.batch:
        notes.append("--batch: requests in fast mode, and of models without a batch price, stay on their tier")
    return WhatIf(by, rows, totals, groups.accounting, scen_acc, scenario, base_book, scen_book, opts.tz, notes,
                  [unmatched] if unmatched else [])


# The baseline's own rate keys, beside the scenario's in _compared's frame.
BASE = {"model_raw": "_base_model_raw", "service_tier": "_base_service_tier"}


def _compared(groups: pipeline.Groups, by: list[str], scenario: Scenario, swaps: dict[str, str],
              base_book: pricebook.PriceBook, scen_book: pricebook.PriceBook, scen: pricebook.PriceBook):
    """The priced groups under the scenario: (frame, keys, hidden key names, `by` as spelled, the
    unmatched --where note)."""
    where_keys = [k for k, _ in scenario.where if k not in by]
    spelled = dict(zip([*by, *dict.fromkeys(where_keys)], groups.group_by))  # as the data spells them (resolve_by)
    by = [spelled[k] for k in by]
    keys = groups.group_by
    priced = groups.priced
    match = pl.lit(True)
    matched_on = []  # (KEY as given, column, value as the column spells it)
    for k, v in scenario.where:
        key = spelled[k]
        if key == "model":  # any id, alias or platform id, as --swap takes; a model the book lacks
            # can never match a request the baseline priced, so it is a mistake, said as --swap says it
            found, _, problem = Resolver(base_book).resolve(v)
            if found is None:
                hint = Resolver(base_book).suggest(v)
                raise OptionError(f"--where model={v}: {problem}, so it matches no priced request"
                                  + (f"; did you mean {hint}?" if hint else ""))
            v = found
        col = bucket_label(key) if key in TIME_BUCKETS else pl.col(key).cast(pl.String)
        match = match & (col == v).fill_null(False)
        matched_on.append((k, key, v))
    priced = priced.with_columns(match.alias("_match"))
    unmatched = _unmatched_where(priced, scenario, matched_on)
    # The scenario's rate keys: the same requests, another model or tier.
    target = pl.col("model")
    if swaps:
        target = pl.when(pl.col("_match")).then(pl.col("model").replace(swaps)).otherwise(pl.col("model"))
    priced = priced.with_columns(target.alias("_target"))
    model_raw = pl.when(pl.col("_target") != pl.col("model")).then(pl.col("_target")).otherwise(pl.col("model_raw"))
    tier = pl.col("service_tier")
    if scenario.batch:
        offers = {m.id: m.batch and "batch" in scen_book.providers[m.provider].service_tier
                  for m in scen_book.models.values()}
        can = pl.col("_target").replace_strict(offers, default=False, return_dtype=pl.Boolean)
        tier = pl.when(pl.col("_match") & (pl.col("speed") != "fast") & can).then(pl.lit("batch")).otherwise(tier)
    hidden = {k: f"_by{i}" for i, k in enumerate(keys)}
    frame = priced.select(
        *[pl.col(k).alias(h) for k, h in hidden.items()],
        *[c for c in RATE_KEYS if c not in ("model_raw", "service_tier")],
        model_raw.alias("model_raw"), tier.alias("service_tier"),
        "requests", pipeline.ROWS, *COUNT_COLUMNS, pl.col("cost").alias("baseline_cost"), "_match",
        *[pl.col(c).alias(b) for c, b in BASE.items()],
        *([pipeline.SCENARIO_BLAME] if pipeline.SCENARIO_BLAME in priced.columns else []),
    )
    rates = rate_frame(frame, scen)
    frame = pipeline.with_costs(frame.join(rates, on=list(RATE_KEYS), how="left", nulls_equal=True))
    own = pl.col("unpriced_reason")
    if pipeline.SCENARIO_BLAME in frame.columns:
        # A group of a response the scenario cannot price in part (see run): unpriced whole, named by
        # that step's model under the scenario; its other steps say why, as in `price`.
        whole = pl.col(pipeline.SCENARIO_BLAME).is_not_null() & pl.col("_match")
        named = pl.when(whole).then(pl.col(pipeline.SCENARIO_BLAME)).otherwise(pl.col("model_raw"))
        frame = frame.with_columns(
            named.alias("_named"), pl.when(named == pl.col("model_raw")).then(own).alias("_own_reason"),
            pl.when(whole).then(pl.coalesce(own, pl.format(pipeline.STEP_UNPRICED, pl.col(pipeline.SCENARIO_BLAME))))
            .otherwise(own).alias("unpriced_reason"))
    return frame, keys, hidden, by, unmatched


# How each time bucket is labelled (tagging.bucket_label), as people read the form.
_LABEL_FORMS = {"hour": ("%Y-%m-%d %H:00", "YYYY-MM-DD HH:00"), "day": ("%Y-%m-%d", "YYYY-MM-DD"),
                "week": ("%Y-%m-%d", "YYYY-MM-DD, the week's Monday"), "month": ("%Y-%m", "YYYY-MM"),
                "quarter": (None, "YYYY-Qn"), "year": ("%Y", "YYYY"), "block": ("%Y-%m-%d %H:%M", "YYYY-MM-DD HH:MM")}


def check_bucket_label(key: str, value: str) -> None:
    """A `--where` value for a time bucket must be a label that bucket can have: `day=garbage`,
    `day=2026-02-30` or `day=2026-10-1` can match no request of any log, so they are usage errors
    (exit 2), not an empty scenario."""
    import datetime as dt
    import re

    fmt, form = _LABEL_FORMS[key]
    bad = f"--where {key}={value}: not {'an' if key == 'hour' else 'a'} {key} label; write it as {form}"
    if fmt is None:
        if not re.fullmatch(r"\d{4}-Q[1-4]", value):
            raise OptionError(bad + " (2026-Q4)")
        return
    try:
        parsed = dt.datetime.strptime(value, fmt)
    except ValueError as e:
        raise OptionError(bad + (" (no such date)" if "out of range" in str(e) else "")) from None
    if parsed.strftime(fmt) != value:  # strptime takes 2026-10-1; the label is always 2026-10-01
        raise OptionError(f"{bad} ({parsed.strftime(fmt)}?)")
    if key == "week" and parsed.weekday():
        monday = (parsed - dt.timedelta(days=parsed.weekday())).strftime(fmt)
        raise OptionError(f"--where week={value}: a week is labelled by its Monday; {value} is a "
                          f"{parsed.strftime('%A')}, in the week {monday}")


def _unmatched_where(priced: pl.DataFrame, scenario: Scenario, matched_on: list[tuple[str, str, str]]) -> str | None:
    """The warning for a --where that matches none of the requests the baseline priced (the scenario
    is then the baseline): which KEY=VALUE matched nothing, and the nearest value the logs have."""
    if not scenario.where or not priced.height or bool(priced["_match"].any()):
        return None
    import difflib

    said = " and ".join(f"{k}={v}" for k, v in scenario.where)
    # The first pair that alone matches nothing is the one to name (each may match, not together).
    for (k, given), (_, key, v) in zip(scenario.where, matched_on):
        col = bucket_label(key) if key in TIME_BUCKETS else pl.col(key).cast(pl.String)
        values = priced.select(col.alias("_v")).get_column("_v").drop_nulls().unique().sort().to_list()
        if v not in values:
            # (a near spelling helps with a name; a nearby date with no requests would mislead)
            near = [] if key in TIME_BUCKETS else difflib.get_close_matches(v, values, n=1, cutoff=0.6)
            hint = f" (did you mean {near[0]}?)" if near else ""
            return (f"--where {said}: no request the baseline priced has {k}={given}{hint}; the scenario "
                    "changes nothing")
    return f"--where {said}: no request the baseline priced matches all of these; the scenario changes nothing"


def _scenario_accounting(frame: pl.DataFrame, book: pricebook.PriceBook) -> dict:
    """The baseline's priced rows, split: compared (the scenario priced them too) + unpriced (named)."""
    unpriced = frame.filter(pl.col("unpriced_reason").is_not_null())
    compared = int(frame.filter(pl.col("unpriced_reason").is_null())[pipeline.ROWS].sum() or 0)
    if "_named" in frame.columns:  # (a response unpriced whole: its model's own reasons, else its steps')
        unpriced = unpriced.with_columns(pl.col("_named").alias("model_raw"), pl.coalesce(
            pl.col("_own_reason").drop_nulls().unique().sort().str.join("; ").over("_named").replace("", None),
            pl.col("unpriced_reason")).alias("unpriced_reason"))
    by_model = unpriced.group_by("model_raw").agg(
        pl.col(pipeline.ROWS).sum(), pl.col("unpriced_reason").unique().sort().str.join("; ")).sort(
        [pipeline.ROWS, "model_raw"], descending=[True, False])
    return {"rows": compared + int(unpriced[pipeline.ROWS].sum() or 0), "compared": compared,
            "unpriced": int(unpriced[pipeline.ROWS].sum() or 0),
            "unpriced_models": dict(zip(by_model["model_raw"].to_list(), by_model[pipeline.ROWS].to_list())),
            "unpriced_reasons": dict(zip(by_model["model_raw"].to_list(), by_model["unpriced_reason"].to_list()))}


# ----------------------------------------------------------------------------------------------
# Output


def _money(v: Decimal | None, places: int | None = None) -> str:
    from .writers import money_text

    return money_text(v, places)


def as_dict(w: WhatIf, reveal: bool = False) -> dict:
    """JSON: rows and totals with baseline_cost, scenario_cost and difference as exact decimal strings."""
    from .writers import _jsonable

    rows = w.rows if reveal else safe_text.mask_frame(w.rows)
    acc = w.accounting.as_dict()
    scen = dict(w.scenario_accounting)
    out = {
        "currency": "USD",
        "scenario": w.scenario.describe(),
        "price_book": {"version": w.book.version, "overlays": w.book.overlays},
        "scenario_price_book": {"version": w.scenario_book.version, "overlays": w.scenario_book.overlays},
        "group_by": w.group_by,
        "time_zone": w.tz,
        "rounding": f"exact; money has {MONEY.scale} decimal places (display formats round {ROUNDING} to cents)",
        "rows": [{k: _jsonable(v) for k, v in r.items()} for r in rows.to_dicts()],
        "totals": {k: _jsonable(v) for k, v in w.totals.items()},
        "accounting": acc,
        "scenario_accounting": scen,
        "notes": [n if reveal else safe_text.mask_secrets(n) for n in w.notes],
    }
    if reveal:
        return out
    # Model ids as logged, the scenario's models and overlay paths, file names in the accounting: a
    # key pasted in any of them is masked (rows are masked above, a secret-named column whole).
    return {k: v if k == "rows" else safe_text.mask_tree(v) for k, v in out.items()}


_TITLES = {"requests": "requests", "scenario_requests": "in scenario", "baseline_cost": "baseline $",
           "scenario_cost": "scenario $", "difference": "difference $", "unpriced_requests": "not priced",
           "unpriced_baseline_cost": "not priced, baseline $"}


def _shown(w: WhatIf) -> list[str]:
    cols = list(ROW_FIELDS)
    if not w.totals.get("unpriced_requests"):
        cols = [c for c in cols if not c.startswith("unpriced")]
    return cols


def _cell(v) -> str:
    if isinstance(v, Decimal):
        return _money(v, DISPLAY_PLACES)
    if isinstance(v, int):
        return f"{v:,}"
    return "" if v is None else str(v)


def _footer(w: WhatIf) -> list[str]:
    s = w.scenario_accounting
    lines = [w.accounting.summary(),
             f"scenario: {', '.join(_scenario_text(w.scenario)) or 'no change'}; rows compared {s['compared']:,}"
             + (f", not priced under the scenario {s['unpriced']:,}" if s["unpriced"] else "")]
    for raw, n in s["unpriced_models"].items():
        lines.append(f"not priced under the scenario: {raw} ({counted(n, 'row')}): {s['unpriced_reasons'].get(raw, '')}")
    for raw, n in w.accounting.unpriced_models.items():
        lines.append(f"unpriced: {raw} ({counted(n, 'row')}): {w.accounting.unpriced_reasons.get(raw, '')}")
    lines.append(f"price book {w.book.version}" + (f"; scenario book {w.scenario_book.version} (+ {', '.join(w.scenario.prices)})"
                                                   if w.scenario.prices else "")
                 + f"; money rounded {ROUNDING} to cents for display; times in {w.tz}")
    lines.extend(f"note: {n}" for n in w.notes)
    return lines


def _scenario_text(s: Scenario) -> list[str]:
    return ([f"{a} priced as {b}" for a, b in s.swaps] + (["batch"] if s.batch else [])
            + [f"prices {p}" for p in s.prices] + ([f"where {' and '.join(f'{k}={v}' for k, v in s.where)}"]
                                                   if s.where else []))


def table_text(w: WhatIf, reveal: bool = False, width: int | None = None) -> str:
    import io

    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    cols = _shown(w)
    t = Table(show_footer=True, header_style="bold", footer_style="bold")
    for i, k in enumerate(w.group_by):
        t.add_column(Text(safe_text.terminal_text(k)), footer="total" if i == 0 else "")
    for c in cols:
        t.add_column(_TITLES[c], justify="right", footer=_cell(w.totals.get(c)))
    rows = w.rows if reveal else safe_text.mask_frame(w.rows)
    for r in rows.to_dicts():
        t.add_row(*[Text(safe_text.terminal_text(_cell(r.get(k)))) for k in w.group_by],
                  *[Text(_cell(r.get(c))) for c in cols])
    console = Console(file=io.StringIO(), width=width or 200, force_terminal=False, color_system=None)
    console.print(t)
    for line in _footer(w):
        text = line if reveal else safe_text.mask_secrets(line)
        console.print(safe_text.terminal_text(text), highlight=False, soft_wrap=True, markup=False, emoji=False)
    return console.file.getvalue()


def markdown(w: WhatIf, reveal: bool = False) -> str:
    cols = _shown(w)
    head = [*map(safe_text.markdown_cell, w.group_by), *[_TITLES[c] for c in cols]]
    lines = ["| " + " | ".join(head) + " |",
             "|" + "|".join("---" if i < len(w.group_by) else "---:" for i in range(len(head))) + "|"]
    rows = w.rows if reveal else safe_text.mask_frame(w.rows)
    for r in rows.to_dicts():
        lines.append("| " + " | ".join([safe_text.markdown_cell(_cell(r.get(k))) for k in w.group_by]
                                       + [_cell(r.get(c)) for c in cols]) + " |")
    total = ["**total**"] + [""] * (len(w.group_by) - 1) if w.group_by else []
    lines.append("| " + " | ".join(total + [f"**{_cell(w.totals.get(c))}**" for c in cols]) + " |")
    foot = [safe_text.markdown_cell(line if reveal else safe_text.mask_secrets(line)) for line in _footer(w)]
    return "\n".join(lines) + "\n\n" + "\n".join(f"- {line}" for line in foot) + "\n"


def render(w: WhatIf, fmt: str, reveal: bool = False) -> str:
    import json

    if fmt == "json":
        return json.dumps(as_dict(w, reveal), indent=2) + "\n"
    if fmt == "csv":
        rows = w.rows if reveal else safe_text.mask_frame(w.rows)
        rows = safe_text.csv_frame(rows)
        return rows.with_columns([pl.col(c).cast(pl.String) for c, t in rows.schema.items()
                                  if isinstance(t, pl.Decimal)]).write_csv()
    if fmt == "markdown":
        return markdown(w, reveal)
    if fmt == "table":
        return table_text(w, reveal)
    if fmt == "html":
        from .html_report import whatif_html

        return whatif_html(w, reveal)
    raise OptionError(f"--format {fmt!r}: use one of {', '.join(FORMATS)}")


def with_options(opts: pipeline.Options, **changes) -> pipeline.Options:
    return dataclasses.replace(opts, **changes)

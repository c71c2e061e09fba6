"""The `llm-cost` command: a thin adapter from options to one library call each.

Errors the user can fix are AnalyzerError: printed as one line, exit 2. Heavy modules (Polars, Rich)
are imported inside commands so that `llm-cost --help` starts instantly.
"""

from __future__ import annotations

import functools
import sys

import click

from .errors import AnalyzerError, ExitCode

# Every built-in key (schema.BUILTIN_KEYS; spelled out here so that --help need not import Polars;
# tests/test_cli.py checks the list).
BY_HELP = ("comma-separated keys: hour, day, week, month, quarter, year, model, model_raw, family, provider, "
           "platform, service_tier, discount_type, context_tier, speed, inference_geo, endpoint_scope, price_period, "
           "component, source, source_file, or any dimension column (workspace, api_key, project, ...)")


def _fail(message: str, code: int = ExitCode.USAGE) -> None:
    click.echo(f"llm-cost: error: {message}", err=True)
    sys.exit(code)


def handle_errors(f):
    """One clear line and exit 2 for anything wrong with the input; never a traceback for it."""

    @functools.wraps(f)
    def wrapper(*args, **kwargs):
        try:
            return f(*args, **kwargs)
        except AnalyzerError as e:
            _fail(str(e), e.exit_code)
        except OSError as e:
            _fail(f"{e.filename or ''}: {e.strerror or e}".lstrip(": "))
        except Exception as e:  # noqa: BLE001 - Polars reports malformed files as its own errors
            import polars as pl

            if isinstance(e, pl.exceptions.PolarsError):
                first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
                _fail(f"cannot read input: {first}")
            raise

    return wrapper


def input_options(f=None, *, paths_required: bool = True):
    """Options shared by every command that reads logs."""
    if f is None:
        return functools.partial(input_options, paths_required=paths_required)
    decorators = [
        click.argument("paths", nargs=-1, required=paths_required),
        click.option("--dialect", help="force a log format (see `llm-cost formats`); default: detect per file"),
        click.option("--map", "mapping", type=click.Path(dir_okay=False),
                     help="read every input with this mapping TOML (your log's paths -> canonical columns) "
                          "instead of detecting its format"),
        click.option("--prices", "prices", multiple=True, type=click.Path(dir_okay=False),
                     help="price overlay TOML (negotiated rates, discounts); repeatable, later wins"),
        click.option("--since", help="first day (in --tz) or ISO date-time to include"),
        click.option("--until", help="last day to include (whole day, in --tz), or an exclusive ISO date-time"),
        click.option("--tz", default="UTC", show_default=True, help="IANA time zone for days/weeks/months"),
        click.option("--quarantine", type=click.Path(dir_okay=False),
                     help="where to write rows that cannot be read [default: ./llm-cost-quarantine.jsonl]"),
        click.option("--no-dedupe", is_flag=True, help="count repeated request ids every time (records a format "
                     "writes several times per request, e.g. Claude Code's, are still merged)"),
        click.option("--batch-time", help="ISO date-time of records that carry no time (Message Batches "
                     "results); default: each file's modification time"),
        click.option("--strict", is_flag=True, help="exit 1 if any row is unpriced or quarantined"),
        click.option("--quiet", "-q", is_flag=True, help="no summary on stderr"),
    ]
    for d in reversed(decorators):
        f = d(f)
    return f


def _options(kw: dict, output: str | None = None):
    from .pipeline import Options

    return Options(dialect=kw["dialect"], mapping=kw["mapping"], prices=tuple(kw["prices"]), since=kw["since"],
                   until=kw["until"], tz=kw["tz"], quarantine=kw["quarantine"], dedupe=not kw["no_dedupe"],
                   outputs=(output,) if output and output != "-" else (), batch_time=kw["batch_time"])


# Options about reading log files: meaningless for a store, whose rows were read at ingest.
_LOG_ONLY = {"dialect": "--dialect", "mapping": "--map", "quarantine": "--quarantine", "no_dedupe": "--no-dedupe",
             "batch_time": "--batch-time"}


def _store_source(paths, store_dir, kw: dict) -> None:
    """Logs or a store, not both; and no log-reading option with a store (one clear line, not ignored)."""
    from .errors import OptionError

    if bool(paths) == bool(store_dir):
        raise OptionError("give log files to read, or --store DIR, not both" if paths else
                               "give log files to read (files, directories, globs, -), or --store DIR")
    used = [flag for key, flag in _LOG_ONLY.items() if store_dir and kw.get(key)]
    if used:
        raise OptionError(f"{', '.join(used)}: applies to reading log files, not to --store "
                               "(the store's rows were read when they were ingested)")


def _progress(quiet: bool, what: str):
    """A spinner on stderr while the streaming engine works, only when a person is watching."""
    import contextlib

    if quiet or not sys.stderr.isatty():
        return contextlib.nullcontext()
    from rich.console import Console

    return Console(stderr=True).status(what)


def _finish(acc, strict: bool, quiet: bool) -> None:
    if not quiet and (acc.unpriced or acc.quarantined):
        for raw, n in acc.unpriced_models.items():
            click.echo(f"llm-cost: warning: {n:,} row{'s' if n != 1 else ''} unpriced: {acc.unpriced_reasons.get(raw, raw)}", err=True)
        if acc.quarantined:
            click.echo(f"llm-cost: warning: {acc.quarantined:,} row{'s' if acc.quarantined != 1 else ''} quarantined -> {acc.quarantine_file}", err=True)
    if strict and (acc.unpriced or acc.quarantined):
        click.echo(f"llm-cost: --strict: {acc.unpriced:,} unpriced and {acc.quarantined:,} quarantined rows", err=True)
        sys.exit(ExitCode.CHECK_FAILED)


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="llm-cost", prog_name="llm-cost")
def main():
    """Exact cost reports from LLM API usage logs."""


@main.command()
@input_options(paths_required=False)
@click.option("--store", "store_dir", type=click.Path(file_okay=False),
              help="report from this store (see `llm-cost ingest`) instead of log files")
@click.option("--by", default="model", show_default=True, help=BY_HELP)
@click.option("--format", "fmt", type=click.Choice(["table", "csv", "json", "jsonl", "parquet", "markdown"]),
              help="output format [default: from -o's extension, else table]")
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="write the report to this file (atomically)")
@handle_errors
def report(paths, store_dir, by, fmt, output, **kw):
    """Aggregated cost report of usage logs (files, directories, globs, or - for stdin), or of a store."""
    from . import pipeline, writers

    _store_source(paths, store_dir, kw)
    keys = [k.strip() for k in by.split(",") if k.strip()] if by else []
    fmt = writers.format_for(fmt, output, "table")
    with _progress(kw["quiet"], "reading and pricing logs..."):
        if store_dir:
            from . import store

            rep = store.report(store_dir, keys, _options(kw, output))
        else:
            rep = pipeline.analyze(paths, keys, _options(kw, output))
    if fmt == "table" and output in (None, "-") and sys.stdout.isatty():
        writers.print_table(rep)
    else:
        writers.write_report(rep, fmt, output)
    if output not in (None, "-") and not kw["quiet"]:
        a = rep.accounting
        click.echo(f"wrote {output}: {rep.rows.height:,} rows, cost ${writers.money_text(rep.totals.get('cost'), 2)}; "
                   f"{a.summary()}", err=True)
    _finish(rep.accounting, kw["strict"], kw["quiet"])


@main.command()
@input_options
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False),
              help="per-request rows: .parquet, .csv or .jsonl")
@handle_errors
def price(paths, output, **kw):
    """Per-request rows with tags and exact cost columns."""
    from . import pipeline, writers
    from .errors import OptionError

    fmt = writers.format_for(None, output, "parquet")
    if fmt not in ("parquet", "csv", "jsonl"):
        raise OptionError(f"-o {output}: per-request rows are written as .parquet, .csv or .jsonl")
    with _progress(kw["quiet"], "pricing requests..."):
        rows, acc = pipeline.price_requests(paths, _options(kw, output))
        writers.sink_rows(rows, fmt, output)
    if not kw["quiet"]:
        click.echo(f"wrote {output}: {acc.priced + acc.unpriced:,} requests; {acc.summary()}", err=True)
    _finish(acc, kw["strict"], kw["quiet"])


@main.command()
@input_options(paths_required=False)
@click.option("--store", "store_dir", type=click.Path(file_okay=False),
              help="audit a store's costs (see `llm-cost ingest`) instead of log files")
@click.option("--invoice", required=True, type=click.Path(dir_okay=False),
              help="what was billed: Admin API cost report JSON, analytics cost JSON, Console cost CSV, FOCUS "
                   "CSV/Parquet, or a CSV period,model[,token_type],amount_usd")
@click.option("--invoice-format", type=click.Choice(["admin-cost-report", "analytics-cost", "console-cost-csv", "focus",
                                                     "plain-csv"]), help="force the invoice format [default: detect]")
@click.option("--tolerance", default="0.01", show_default=True,
              help="allowed difference per line: dollars (0.50) or a share of the billed amount (0.5%)")
@click.option("--by", help="compare on a coarser grain: day or month, and model, token_type, service_tier, "
                           "context_tier, workspace [default: the invoice's own grain]")
@click.option("--format", "fmt", type=click.Choice(["table", "csv", "json", "markdown"]),
              help="output format [default: from -o's extension, else table]")
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="write the audit to this file (atomically)")
@handle_errors
def audit(paths, store_dir, invoice, invoice_format, tolerance, by, fmt, output, **kw):
    """Reconcile computed costs with an invoice, line by line; exit 1 when a line is out of tolerance."""
    from . import audit as audit_
    from . import audit_writers, writers

    _store_source(paths, store_dir, kw)
    tol = audit_.Tolerance.parse(tolerance)
    keys = [k.strip() for k in by.split(",") if k.strip()] if by else None
    fmt = writers.format_for(fmt, output, "table")
    audit_writers.check_format(fmt)
    with _progress(kw["quiet"], "reading and pricing logs..."):
        result = audit_.run(paths, invoice, _options(kw, output), tol, keys, invoice_format, store_dir)
    audit_writers.write(result, fmt, output, terminal=sys.stdout.isatty())
    if output not in (None, "-") and not kw["quiet"]:
        bad = int((result.lines["status"] != "ok").sum())
        click.echo(f"wrote {output}: {result.lines.height:,} lines, {bad:,} out of tolerance", err=True)
    _finish(result.computed.accounting, kw["strict"], kw["quiet"])
    if not result.within_tolerance:
        sys.exit(ExitCode.CHECK_FAILED)


@main.group()
def prices():
    """Inspect and check price books."""


@prices.command("list")
@click.option("--prices", "overlays", multiple=True, type=click.Path(dir_okay=False), help="price overlay TOML")
@handle_errors
def prices_list(overlays):
    """Every model in the book with its current rates (USD per million tokens)."""
    from . import pricebook, writers

    book = pricebook.load(overlays)
    click.echo(writers.price_list_text(book), nl=False)


@prices.command("show")
@click.argument("model")
@click.option("--prices", "overlays", multiple=True, type=click.Path(dir_okay=False), help="price overlay TOML")
@handle_errors
def prices_show(model, overlays):
    """Every price period of MODEL (any id, alias or platform id), with sources."""
    from . import pricebook, writers
    from .errors import OptionError
    from .models import Resolver

    book = pricebook.load(overlays)
    resolver = Resolver(book)
    found, _, problem = resolver.resolve(model)
    if found is None:
        hint = resolver.suggest(model)
        raise OptionError(f"{model}: {problem}" + (f"; did you mean {hint}?" if hint else ""))
    click.echo(writers.price_show_text(book, book.models[found]), nl=False)


@prices.command("check")
@click.argument("file", type=click.Path(dir_okay=False))
@handle_errors
def prices_check(file):
    """Validate a price overlay on top of the shipped book."""
    from . import pricebook

    book = pricebook.check(file)
    click.echo(f"{file}: ok ({len(book.models)} models in the combined book, version {book.version})")


@main.command()
def formats():
    """The log formats (dialects) llm-cost reads, and how each is recognised."""
    from .dialects import DIALECTS
    from .sources import CONTAINER_NOTE

    for d in DIALECTS.values():
        click.echo(f"{d.name}\n  {d.description}\n  recognised by: {', '.join(d.required)}")
    click.echo(f"\n{CONTAINER_NOTE}")


# ----------------------------------------------------------------------------------------------
# The store of nightly runs (analyzer/store.py)

WAIT_HELP = "if another run holds the store, wait this long for it, then exit 2"


def _store_options(f):
    decorators = [
        click.option("--store", "store_dir", required=True, type=click.Path(file_okay=False),
                     help="the store directory (created by the first ingest)"),
        click.option("--prices", "prices", multiple=True, type=click.Path(dir_okay=False),
                     help="price overlay TOML (negotiated rates, discounts); repeatable, later wins"),
        click.option("--wait", type=click.FloatRange(min=0), default=30, show_default=True, help=WAIT_HELP),
        click.option("--quiet", "-q", is_flag=True, help="no summary on stderr"),
    ]
    for d in reversed(decorators):
        f = d(f)
    return f


def _warn(message: str) -> None:
    click.echo(f"llm-cost: warning: {message}", err=True)


def _file_progress(quiet: bool, total: int):
    """A progress bar over files on stderr, only when a person is watching a multi-file ingest."""
    import contextlib

    if quiet or total < 2 or not sys.stderr.isatty():
        return contextlib.nullcontext(None)
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    @contextlib.contextmanager
    def bar():
        with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                      console=Console(stderr=True), transient=True) as progress:
            task = progress.add_task("ingesting", total=total)

            def update(path: str, done: int, _total: int) -> None:
                progress.update(task, completed=done, description=f"ingesting {path}" if path else "done")

            yield update

    return bar()


@main.command()
@click.argument("paths", nargs=-1, required=True)
@_store_options
@click.option("--dialect", help="force a log format (see `llm-cost formats`); default: detect per file")
@click.option("--batch-time", help="ISO date-time of records that carry no time (Message Batches results); "
                                   "default: each file's modification time")
@click.option("--strict", is_flag=True, help="exit 1 if any row is unpriced or quarantined")
@handle_errors
def ingest(paths, store_dir, prices, wait, quiet, dialect, batch_time, strict):
    """Price log files into a store; safe to re-run (files already ingested are skipped)."""
    from . import pipeline, store
    from .sources import expand_paths

    total = len(expand_paths(paths))
    with _file_progress(quiet, total) as progress:
        result = store.ingest(paths, store_dir, pipeline.Options(dialect=dialect, prices=tuple(prices), batch_time=batch_time),
                              wait=wait,
                              progress=progress, warn=_warn)
    acc = result.accounting
    if acc.quarantined:
        acc.quarantine_file = f"{store_dir}/{store.QUARANTINE}/"
    if not quiet:
        if result.recovered:
            click.echo(f"llm-cost: removed {len(result.recovered)} leftover file(s) of an interrupted run", err=True)
        for f in result.files:
            click.echo(f"{f.path}: {f.status}" + (f", {f.stored:,} rows stored" if f.accounting else ""), err=True)
        done = [f for f in result.files if f.accounting is not None]
        click.echo(f"ingested {len(done)} of {len(result.files)} files into {store_dir}: {acc.summary()}", err=True)
    _finish(acc, strict, quiet)


@main.group("store")
def store_group():
    """Inspect a store of nightly runs."""


def _size(n: int) -> str:
    return f"{n / 2**20:,.1f} MiB" if n >= 2**20 else f"{n / 2**10:,.1f} KiB"


@store_group.command("status")
@click.argument("store_dir", type=click.Path(file_okay=False))
@click.option("--json", "as_json", is_flag=True, help="print the status as JSON")
@handle_errors
def store_status(store_dir, as_json):
    """Files, rows, date range, months, price books, last ingest, quarantined rows."""
    import json

    from . import store

    s = store.status(store_dir)
    if as_json:
        click.echo(json.dumps(s, indent=2))
        return
    click.echo(f"store {s['store']}: {s['files']:,} files ingested, last ingest {s['last_ingest'] or 'never'}")
    extra = "".join(f" + {name} {s[key]:,}" for key, name in (("repeats", "repeats"), ("not_billable", "not billable"))
                    if s[key])
    click.echo(f"rows read {s['rows_read']:,} = stored {s['rows_stored']:,} + duplicates {s['duplicates']:,}{extra} "
               f"+ quarantined {s['quarantined']:,} ({_size(s['bytes'])} of Parquet)")
    click.echo(f"requests from {s['first'] or '-'} to {s['last'] or '-'}")
    click.echo("months: " + (", ".join(f"{m} ({n:,})" for m, n in s["months"].items()) or "none"))
    click.echo("price books: " + (", ".join(f"{v} ({n:,} rows)" for v, n in s["price_books"].items()) or "none")
               + (f"; {s['repricings']} reprice run(s)" if s["repricings"] else ""))
    for name in s["missing_parts"]:
        click.echo(f"MISSING: {name} (named by the manifest)")
    if s["leftovers"]:
        click.echo(f"{len(s['leftovers'])} leftover file(s) of an interrupted run (the next ingest removes them)")
    click.echo("consistent" if s["consistent"] else "NOT CONSISTENT")
    if not s["consistent"]:
        sys.exit(ExitCode.CHECK_FAILED)


@main.command()
@_store_options
@click.option("--since", help="first day (in --tz) or ISO date-time to re-price")
@click.option("--until", help="last day to re-price (whole day, in --tz), or an exclusive ISO date-time")
@click.option("--tz", default="UTC", show_default=True, help="IANA time zone of --since/--until dates")
@handle_errors
def reprice(store_dir, prices, wait, quiet, since, until, tz):
    """Re-price stored rows with the current price book and overlays; prints old vs new per month/model."""
    from . import pipeline, store, writers

    result = store.reprice(store_dir, pipeline.Options(prices=tuple(prices), since=since, until=until, tz=tz),
                           wait=wait, warn=_warn)
    click.echo(writers.reprice_text(result), nl=False)

"""The `llm-cost` command: a thin adapter from options to one library call each.

Errors the user can fix are AnalyzerError: printed as one line, exit 2. Heavy modules (Polars, Rich)
are imported inside commands so that `llm-cost --help` starts instantly.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import os
import sys
from decimal import Decimal

import click
from click.core import ParameterSource

from .errors import AnalyzerError, ExitCode
from .words import counted

# Polars' allocator (jemalloc), set before Polars loads (no import above loads it), unless the user
# set it: one arena for every two cores, where jemalloc's default is four per core. Polars runs one thread per core, and a
# streaming pass frees and allocates batch after batch: spread over 8 arenas (2 cores), freed pages
# went back to the system and were mapped afresh, a fifth of the CPU time in the kernel. 1M-line
# Claude Code tree: 6.1 -> 3.7 s system time, 21.8 -> 18.9 CPU s (a loaded machine), peak memory
# unchanged (437 -> 429 MiB).
_ALLOCATOR_OURS = "_RJEM_MALLOC_CONF" not in os.environ  # (the user set none: see _keep_freed_memory)
os.environ.setdefault("_RJEM_MALLOC_CONF", f"narenas:{max(1, (os.cpu_count() or 1) // 2)}")

# Every built-in key (schema.BUILTIN_KEYS; spelled out here so that --help need not import Polars;
# tests/test_cli.py checks the list).
BY_HELP = ("comma-separated keys (or --by repeated): hour, day, week, month, quarter, year, block, model, model_raw, family, provider, "
           "platform, service_tier, discount_type, context_tier, speed, inference_geo, endpoint_scope, price_period, "
           "component, source, source_file, or any dimension column (workspace, api_key, project, ...); block: "
           "Claude's 5-hour usage windows")


def _keep_freed_memory() -> None:
    """For `price`, before Polars loads and unless the user set the allocator: jemalloc keeps the
    memory a slice freed for the next slice instead of handing it back. Polars' own setting hands
    back freed pages after 0.5 s (and, as we read jemalloc, blocks of 8 MiB or more at once), so
    each slice faulted its memory in afresh: 3M rows to Parquet, 350K page faults and ~0.9 s of
    system time in the writing, 91-99K and ~0.4 s kept (docs/performance.md, issue 18 eleventh round). It
    costs peak memory (the high-water mark stays mapped: +70 MiB at 3M, +120 at 10M, 801 MiB), which
    is why `report` and the other commands, whose memory is near the 1 GiB target on some inputs,
    keep the default. A user's setting is any they made, even one equal to the arenas default set
    above (`narenas:1` on 2 cores was taken for ours, and decay added to it). Not with Spark: its
    executors' Python processes inherit the variable, and each of them (one per core) kept its
    freed memory too, a cost never measured."""
    arenas = f"narenas:{max(1, (os.cpu_count() or 1) // 2)}"  # (what this module set, when the user set nothing)
    if _ALLOCATOR_OURS and os.environ.get("_RJEM_MALLOC_CONF") == arenas and "polars" not in sys.modules:
        os.environ["_RJEM_MALLOC_CONF"] = arenas + ",dirty_decay_ms:-1,muzzy_decay_ms:-1"


def _joined(_ctx, _param, values: tuple[str, ...]) -> str | None:
    """`--by month --by team` is `--by month,team`: a repeated option kept only its last value (Click's
    rule for a single option), grouping by team alone with exit 0."""
    return ",".join(values) if values else None


def _fail(message: str, code: int = ExitCode.USAGE) -> None:
    """The one shape of every error: one line on stderr, `llm-cost: error: ...`. A message may quote
    data (a file name, a model id): control and bidi characters are shown escaped, never acted on."""
    from .safe_text import mask_secrets, terminal_text

    # A message may quote a key (a model id, a --by value, a file name): masked, as in every output.
    one_line = " ".join(mask_secrets(message).splitlines())
    click.echo(f"llm-cost: error: {terminal_text(one_line)}", err=True)
    sys.exit(code)


def _echo(text: str, err: bool = False, nl: bool = True, reveal: bool = False) -> None:
    """Print a line that may quote data (file names, model ids as logged, store paths): control and
    bidi characters shown escaped, credentials masked unless --reveal-keys."""
    from .safe_text import mask_secrets, terminal_text

    click.echo(terminal_text(text if reveal else mask_secrets(text), keep_newlines=True), err=err, nl=nl)


@contextlib.contextmanager
def _exit_on_term():
    """SIGTERM (cron's `timeout`, a killed job) ends the run through Python's exit, as Ctrl-C does,
    so that its temporary files (stdin spooled, decoded JSON, rows) are removed: Python's default
    for SIGTERM ends the process without cleanup, and left them in the temporary directory."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def terminate(signum, frame):
        sys.exit(128 + signum)

    before = signal.signal(signal.SIGTERM, terminate)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, before)


class Choice(click.Choice):
    """A choice that suggests the near one (`--format cvs`: did you mean csv?), as model ids do."""

    def convert(self, value, param, ctx):
        try:
            return super().convert(value, param, ctx)
        except click.BadParameter:
            import difflib

            near = difflib.get_close_matches(str(value).lower(), list(self.choices), n=1, cutoff=0.5)
            self.fail(f"{value!r} is not one of {', '.join(self.choices)}"
                      + (f"; did you mean {near[0]}?" if near else ""), param, ctx)


class StoreDir(click.Path):
    """The store's directory: local. Object storage is refused with why: the store's commits are
    made safe by a lock file and renames on one file system (see docs/store.md)."""

    def __init__(self) -> None:
        super().__init__(file_okay=False)

    def convert(self, value, param, ctx):
        from .remote import is_url, shown_url

        if is_url(str(value)):
            self.fail(f"{shown_url(str(value))}: the store is a local directory (its commits rely on a lock and "
                      "renames on one file system); keep it on local disk or a mounted volume and copy the Delta "
                      "table to object storage for other engines", param, ctx)
        return super().convert(value, param, ctx)


class Group(click.Group):
    """Click's own usage errors (unknown option or command, bad choice, missing option) in the same
    one-line shape as ours, exit 2, instead of Click's three-line usage block."""

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        with _exit_on_term():
            return self._main(args, prog_name, complete_var, standalone_mode, **extra)

    def _main(self, args, prog_name, complete_var, standalone_mode, **extra):
        try:
            rv = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except click.exceptions.NoArgsIsHelpError as e:  # `llm-cost` alone: the help, not an error line
            e.show()
            sys.exit(e.exit_code)
        except click.UsageError as e:
            names, ctx = [], e.ctx
            while ctx is not None and ctx.parent is not None:  # the subcommand, not the program's name
                names.append(ctx.info_name)
                ctx = ctx.parent
            where = " ".join(reversed(names))
            text = e.format_message().replace(". Did you mean", "; did you mean").replace("(Did you mean", "(did you mean")
            _fail(f"{where}: {text}" if where else text, ExitCode.USAGE)
        except click.ClickException as e:
            _fail(e.format_message(), e.exit_code)
        except click.Abort:
            click.echo("llm-cost: interrupted", err=True)
            sys.exit(130)
        except BaseException as e:
            # Ctrl-C landing while Polars runs Python code for a plan (a data type's constructor)
            # comes out as a Rust panic holding the KeyboardInterrupt (pyo3's PanicException, a
            # BaseException): it was a traceback and exit 1. The run's cleanup ran as for Ctrl-C.
            if type(e).__name__ == "PanicException" and "KeyboardInterrupt" in str(e):
                click.echo("llm-cost: interrupted", err=True)
                sys.exit(130)
            raise
        if not standalone_mode:
            return rv
        sys.exit(rv if isinstance(rv, int) else 0)


def handle_errors(f):
    """One clear line and exit 2 for anything wrong with the input; never a traceback for it."""

    @functools.wraps(f)
    def wrapper(*args, **kwargs):
        from .held import holding_parquet

        try:
            # (the Parquet files the command checks outside a pipeline call, held open until it ends;
            # one changed since its check is named, whatever failed: see held.py)
            with holding_parquet(compare=False):
                return f(*args, **kwargs)
        except AnalyzerError as e:
            _fail(_descriptors_named(e, str(e)), e.exit_code)
        except OSError as e:
            _fail(_descriptors_named(e, f"{e.filename or ''}: {e.strerror or e}".lstrip(": ")))
        except Exception as e:  # noqa: BLE001 - Polars reports malformed files as its own errors
            import polars as pl

            if isinstance(e, pl.exceptions.PolarsError):
                _fail(_descriptors_named(e, f"cannot read input: {_first_line(e)}"))
            raise
        except BaseException as e:
            # A Polars panic (pyo3's PanicException, a BaseException) on a file no check foresaw: a
            # Parquet file damaged in a way PyArrow decodes (see sources.check_parquet), a store's own
            # file damaged; one line, not a traceback. (Ctrl-C's panic: Group._main, as interrupted.)
            if type(e).__name__ == "PanicException" and "KeyboardInterrupt" not in str(e):
                _fail(_descriptors_named(e, f"cannot read input: Polars failed ({_first_line(e)})"))
            raise

    return wrapper


def _descriptors_named(e: BaseException, line: str) -> str:
    """`line` naming the held Parquet file Polars read by its descriptor's name (held.named), and,
    for the limit on open files, what to do: `ulimit -n 16` with a dozen Parquet inputs said only
    `Too many open files (os error 24): /proc/self/fd/13`."""
    from .held import named

    line = named(line)
    emfile = getattr(e, "errno", None) == errno.EMFILE or "(os error 24)" in line or "code: 24," in line
    if emfile and "ulimit -n" not in line:  # (a panic's `Os { code: 24, ... }`, from a runtime Polars starts)
        line += "; raise the limit on open files (`ulimit -n`) and run again"
    return line


def _first_line(e: BaseException) -> str:
    return str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__


REVEAL_HELP = ("show credentials in full (API keys, AWS access keys, bearer tokens are masked by default: "
               "sk-ant-api03-…a1B2)")


PRICES_HELP = "price overlay TOML (negotiated rates, discounts); repeatable, later wins"


def input_options(f=None, *, paths_required: bool = True, tz: bool = True, prices_help: str = PRICES_HELP):
    """Options shared by every command that reads logs (`tz=False`: a command that only works in UTC
    does not list --tz in its help, rather than offering then refusing it)."""
    if f is None:
        return functools.partial(input_options, paths_required=paths_required, tz=tz, prices_help=prices_help)
    zone = "--tz" if tz else "UTC"
    decorators = [
        click.argument("paths", nargs=-1, required=paths_required),
        click.option("--dialect", help="force a log format (see `llm-cost formats`); default: detect per file"),
        click.option("--map", "mapping", type=click.Path(dir_okay=False),
                     help="read every input with this mapping TOML (your log's paths -> canonical columns) "
                          "instead of detecting its format"),
        click.option("--prices", "prices", multiple=True, type=click.Path(dir_okay=False), help=prices_help),
        click.option("--since", help=f"first day (in {zone}) or ISO date-time to include"),
        click.option("--until", help=f"last day to include (whole day, in {zone}), or an exclusive ISO date-time"),
        # Without tz, --tz is still parsed, hidden, so that the command can say why it refuses it.
        click.option("--tz", default="UTC", show_default=True, hidden=not tz, help="IANA time zone for days/weeks/months"),
        click.option("--quarantine", type=click.Path(dir_okay=False),
                     help="where to write rows that cannot be read [default: ./llm-cost-quarantine.jsonl]"),
        click.option("--no-dedupe", is_flag=True, help="count repeated request ids every time (records a format "
                     "writes several times per request, e.g. Claude Code's, are still merged)"),
        click.option("--batch-time", help="ISO date-time of records that carry no time (Message Batches "
                     "results); default: each file's modification time"),
        click.option("--strict", is_flag=True, help="exit 1 if any row is unpriced or quarantined"),
        click.option("--quiet", "-q", is_flag=True, help="no summary on stderr"),
        click.option("--reveal-keys", is_flag=True, help=REVEAL_HELP),
    ]
    for d in reversed(decorators):
        f = d(f)
    return f


def engine_options(f):
    """--engine and --master: which engine aggregates the rows (the report is the same either way)."""
    f = click.option("--master", metavar="URL", help="with --engine spark: the Spark master (spark://host:7077, yarn, "
                     "local[4]) [default: SPARK_REMOTE (Spark Connect) if set, else local[*]]")(f)
    return click.option("--engine", type=Choice(["polars", "spark"]), default="polars", show_default=True,
                        help="spark: read, tag and sum the logs on Apache Spark (pip install 'llm-cost[spark]'; "
                             "see docs/spark.md)")(f)


def _engine_analyze(kw: dict, name: str = "analyze"):
    """The engine's `analyze` (or `analyze_groups`, `price`): pipeline's, or the same result from Spark."""
    from . import pipeline

    if kw.get("engine") != "spark":
        if kw.get("master"):
            from .errors import OptionError

            raise OptionError("--master: applies to --engine spark")
        return getattr(pipeline, name, None)
    from . import engine_spark

    return functools.partial(getattr(engine_spark, name), master=kw.get("master"))


def _options(kw: dict, output: str | None = None, reads: dict | None = None):
    """The run's options; first, no output may be a file the run reads (overlay, mapping, invoice;
    the logs are checked as they are found) or another output."""
    from . import writers
    from .pipeline import DEFAULT_QUARANTINE, Options

    writers.check_outputs([("-o", output), ("--quarantine", kw["quarantine"] or DEFAULT_QUARANTINE)],
                          {"the price overlay": kw["prices"], "the mapping": [kw["mapping"]], **(reads or {})})
    return Options(dialect=kw["dialect"], mapping=kw["mapping"], prices=tuple(kw["prices"]), since=kw["since"],
                   until=kw["until"], tz=kw["tz"], quarantine=kw["quarantine"], dedupe=not kw["no_dedupe"],
                   outputs=(output,) if output and output != "-" else (), batch_time=kw["batch_time"],
                   reveal_keys=kw["reveal_keys"])


# Options about reading log files: meaningless for a store, whose rows were read at ingest.
_LOG_ONLY = {"dialect": "--dialect", "mapping": "--map", "quarantine": "--quarantine", "no_dedupe": "--no-dedupe",
             "batch_time": "--batch-time"}


def _default_paths(paths, store_dir, quiet: bool):
    """No paths and no store: the Claude Code transcripts of this machine (said on stderr)."""
    if paths or store_dir:
        return paths
    from .dialects.claude_code import data_dirs

    found = data_dirs()
    if not quiet:
        _echo(f"llm-cost: no paths given: reading Claude Code transcripts in {', '.join(found)}", err=True)
    return tuple(found)


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


def _store_files(store_dir: str | None) -> dict:
    """A store's files, which an output must not replace (`-o STORE/manifest.json`)."""
    import os

    if not store_dir or not os.path.isdir(store_dir):
        return {}
    return {"a file of the store": [os.path.join(d, f) for d, _, fs in os.walk(store_dir) for f in fs]}


def _outside_store(output: str | None, store_dir: str | None) -> None:
    """A report is not written into the store it reads: the store owns every file under it."""
    import os

    from .errors import OutputError

    if output and output != "-" and store_dir:
        inside = os.path.realpath(output).startswith(os.path.join(os.path.realpath(store_dir), ""))
        if inside:
            raise OutputError(f"-o {output}: inside the store {store_dir}; write the report elsewhere")


def _progress(quiet: bool, what: str):
    """A spinner on stderr while the streaming engine works, only when a person is watching."""
    import contextlib

    if quiet or not sys.stderr.isatty():
        return contextlib.nullcontext()
    from rich.console import Console

    return Console(stderr=True).status(what)


def _finish(acc, strict: bool, quiet: bool, reveal: bool = False) -> None:
    if not quiet and (acc.unpriced or acc.quarantined):
        for raw, n in acc.unpriced_models.items():
            _echo(f"llm-cost: warning: {n:,} row{'s' if n != 1 else ''} unpriced: {acc.unpriced_reasons.get(raw, raw)}", err=True, reveal=reveal)
        if acc.quarantined:
            _echo(f"llm-cost: warning: {acc.quarantined:,} row{'s' if acc.quarantined != 1 else ''} quarantined -> {acc.quarantine_file}", err=True)
    if strict and (acc.unpriced or acc.quarantined):
        click.echo(f"llm-cost: --strict: {acc.unpriced:,} unpriced and {counted(acc.quarantined, 'quarantined row')}",
                   err=True)
        sys.exit(ExitCode.CHECK_FAILED)


@click.group(cls=Group, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="llm-cost", prog_name="llm-cost")
def main():
    """Exact cost reports from LLM API usage logs."""


@main.command()
@input_options(paths_required=False)
@click.option("--store", "store_dir", type=StoreDir(),
              help="report from this store (see `llm-cost ingest`) instead of log files")
@click.option("--by", default=["model"], show_default="model", multiple=True, callback=_joined, help=BY_HELP)
@click.option("--format", "fmt", type=Choice(["table", "csv", "json", "jsonl", "parquet", "markdown", "html", "focus"]),
              help="output format [default: from -o's extension, else table]; html: one self-contained page with "
                   "charts; focus: FinOps FOCUS 1.2 rows (CSV, or Parquet with -o x.parquet; its own grain: day x "
                   "SKU price x dimensions: --by, --sort, --top, --columns, --precision are refused)")
@click.option("--billing-account", help="with --format focus: the BillingAccountId [default: the platform, e.g. anthropic]")
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="write the report to this file (atomically)")
@click.option("--version", "version", type=click.IntRange(min=0), help="with --store: the store as of this table version "
              "(see `llm-cost store history`)")
@click.option("--as-of", help="with --store: the store as it was at this ISO date-time")
@click.option("--sort", "sort_key", metavar="KEY", help="order rows by a --by key or a measure; -KEY for largest "
              "first (--sort -cost) [default: by the --by keys]")
@click.option("--top", type=int, metavar="N", help="the first N rows (by --sort, default -cost), the rest summed "
              "into one row: '(other K rows)' in table/markdown/html; null keys and other_rows=K in "
              "CSV/JSON/Parquet")
@click.option("--columns", metavar="LIST", help="table/markdown: the measures to show, comma-separated: requests, "
              "input, cache_write_5m, cache_write_1h, cache_read, output, web_searches, cost, list_cost, savings, "
              "reported_cost [default: as many as fit the terminal]")
@click.option("--precision", type=int, metavar="N", help="table/markdown: money digits after the point [default: 2]; "
              "CSV/JSON/Parquet are always exact")
@engine_options
@handle_errors
def report(paths, store_dir, by, fmt, output, version, as_of, billing_account, sort_key, top, columns, precision, **kw):
    """Aggregated cost report of usage logs (files, directories, globs, or - for stdin), or of a store.
    With neither: this machine's Claude Code transcripts (CLAUDE_CONFIG_DIR, ~/.claude/projects,
    ~/.config/claude/projects)."""
    from . import html_report, view, writers

    paths = _default_paths(paths, store_dir, kw["quiet"])
    _store_source(paths, store_dir, kw)
    run = _engine_analyze(kw)
    if kw["engine"] == "spark" and (store_dir or fmt == "focus"):
        from .errors import OptionError

        raise OptionError("--engine spark: reads log files into report's formats; not --store or --format focus")
    if fmt == "focus":
        from .errors import OptionError

        if version is not None or as_of:
            raise OptionError("--version/--as-of with --format focus: the export reads the store as it is now")
        # A FOCUS export is every charge at its own grain: an option that shapes a report's rows would
        # be ignored, and the file would not be what was asked for. Refused, like --tz.
        shaping = {"--by": click.get_current_context().get_parameter_source("by") != ParameterSource.DEFAULT,
                   "--sort": sort_key is not None, "--top": top is not None, "--columns": columns is not None,
                   "--precision": precision is not None}
        used = [flag for flag, given in shaping.items() if given]
        if used:
            raise OptionError(f"{', '.join(used)}: not with --format focus, which writes every charge at FOCUS's "
                              "own grain (UTC day x SKU price x the logs' dimensions); leave "
                              f"{'it' if len(used) == 1 else 'them'} out, or use another --format")
        _focus(paths, store_dir, output, billing_account, kw)
        return
    _focus_only(billing_account)
    keys = [k.strip() for k in by.split(",") if k.strip()] if by else []
    fmt = writers.format_for(fmt, output, "table")
    shown = view.View.parse(columns, precision)
    # Like --format focus's refusal: --columns and --precision shape the table and Markdown only; any
    # other output was written whole and exact, without a word that they were ignored.
    ignored = [flag for flag, given in (("--columns", columns), ("--precision", precision)) if given is not None]
    if ignored and fmt not in ("table", "markdown"):
        from .errors import OptionError

        raise OptionError(f"{', '.join(ignored)}: shape the table and Markdown only, not {fmt} output (written "
                          f"whole); leave {'it' if len(ignored) == 1 else 'them'} out")
    _outside_store(output, store_dir)
    opts = _options(kw, output, _store_files(store_dir))
    # An HTML report draws over time: it also groups by day when --by has no time bucket.
    analysed = html_report.analysis_keys(keys) if fmt == "html" else keys
    if fmt == "html":
        html_report.warm_up()  # the chart engine starts while the logs are read
    with _progress(kw["quiet"], "reading and pricing logs..."):
        if store_dir:
            from . import store

            rep = store.report(store_dir, analysed, opts, version=version, as_of=as_of)
        else:
            if version is not None or as_of:
                from .errors import OptionError

                raise OptionError("--version/--as-of: apply to --store (a store keeps its past versions)")
            rep = run(paths, analysed, opts)
    if fmt == "html":
        rep = html_report.regroup(rep, keys)
    rep = view.arrange(rep, sort_key, top)
    if fmt == "table" and output in (None, "-") and sys.stdout.isatty():
        writers.print_table(rep, reveal=kw["reveal_keys"], view=shown)
    else:
        writers.write_report(rep, fmt, output, reveal=kw["reveal_keys"], view=shown)
    if output not in (None, "-") and not kw["quiet"]:
        a = rep.accounting
        _echo(f"wrote {output}: {counted(rep.rows.height, 'row')}, cost ${writers.money_text(rep.totals.get('cost'), 2)}; "
                   f"{a.summary()}", err=True)
    # A table or Markdown on stdout ends with the accounting (unpriced models, quarantine file): the
    # same lines are not said again as warnings on stderr.
    said = fmt in ("table", "markdown") and output in (None, "-")
    _finish(rep.accounting, kw["strict"], kw["quiet"] or said, kw["reveal_keys"])


def _focus_only(billing_account: str | None) -> None:
    """--billing-account names the account of FOCUS rows: with any other output it would be ignored."""
    if billing_account is not None:
        from .errors import OptionError

        raise OptionError("--billing-account: applies to --format focus (other outputs have no billing account)")


def _focus(paths, store_dir, output, billing_account, kw) -> None:
    """`--format focus`: the FOCUS export of `report` and `price` (analyzer/focus.py)."""
    from . import focus, writers
    from .errors import OptionError

    if output not in (None, "-") and not output.lower().endswith((".csv", ".parquet")):
        raise OptionError(f"-o {output}: a FOCUS export is written to a .csv or .parquet file")
    if billing_account is not None and not billing_account.strip():
        # (`""` fell back to the platform without a word, `"  "` was written as a blank account id)
        raise OptionError(f"--billing-account {billing_account!r}: empty; FOCUS's BillingAccountId names the account "
                          "(leave the option out for the platform's name)")
    _outside_store(output, store_dir)
    opts = _options(kw, output, _store_files(store_dir))
    with _progress(kw["quiet"], "reading the store..." if store_dir else "reading and pricing logs..."):
        result = (focus.export_store(store_dir, opts, billing_account) if store_dir
                  else focus.export(paths, opts, billing_account))
    focus.write(result, output, reveal=kw["reveal_keys"])
    if output not in (None, "-") and not kw["quiet"]:
        # An export with no priced row has no BilledCost to sum: its total is exactly zero dollars.
        total = result.rows["BilledCost"].sum() if result.rows.height else Decimal(0)
        _echo(f"wrote {output}: {counted(result.rows.height, 'FOCUS row')}, BilledCost ${writers.money_text(total, 2)}; "
              f"{result.accounting.summary()}", err=True)
    if not result.rows.height and not kw["quiet"]:
        # FOCUS rows are charges: no priced request, no charge. The columns are still written (a valid
        # empty dataset, which `audit` reads as billing nothing); the person is told why it is empty.
        _echo("llm-cost: warning: no request was priced, so the FOCUS export has its columns and no charge rows",
              err=True)
    _finish(result.accounting, kw["strict"], kw["quiet"], kw["reveal_keys"])


@main.command()
@input_options(paths_required=False)
@click.option("-o", "--output", required=True, type=click.Path(),
              help="per-request rows: .parquet, .csv or .jsonl; with --engine spark, DIR.parquet/ (a trailing /) "
                   "is a directory of parts, one per file scan, written on the cluster")
@click.option("--format", "fmt", type=Choice(["focus"]),
              help="focus: FinOps FOCUS 1.2 charge rows instead (the same as `report --format focus`: a FOCUS "
                   "row is a day's charge, not a request); CSV, or Parquet for -o x.parquet")
@click.option("--billing-account", help="with --format focus: the BillingAccountId [default: the platform]")
@engine_options
@handle_errors
def price(paths, output, fmt, billing_account, **kw):
    """Per-request rows with tags and exact cost columns (no paths: this machine's Claude Code transcripts)."""
    import os

    if kw["engine"] != "spark":
        _keep_freed_memory()
    from . import pipeline, writers
    from .errors import OptionError

    paths = _default_paths(paths, None, kw["quiet"])
    spark = _engine_analyze(kw, "price")  # (also refuses --master without --engine spark)
    if fmt == "focus":
        if kw["engine"] == "spark":
            raise OptionError("--engine spark: prices requests into .parquet, .csv or .jsonl; not --format focus")
        _focus(paths, None, output, billing_account, kw)
        return
    _focus_only(billing_account)

    # The extension is the format (price has no --format): `-o -` made a file named `-`, and
    # `-o /dev/stdout` was told to pass a --format this command does not have. With Spark, `-o rows.parquet/`
    # is a directory of parts.
    parts = kw["engine"] == "spark" and output.endswith("/") and output.strip("/") != ""
    named = output.rstrip("/") if parts else output
    fmt = writers.format_for(None, named, "parquet") if named != "-" and writers.has_format_extension(named) else None
    if fmt not in ("parquet", "csv", "jsonl"):
        raise OptionError(f"-o {output}: per-request rows are written to a file named .parquet, .csv or .jsonl"
                          + (" (or, with --engine spark, a directory rows.parquet/)" if kw["engine"] == "spark" else ""))
    if os.path.isdir(output) and not parts:
        raise OptionError(f"-o {output}: a directory; per-request rows are written to a file"
                          + (" (or, with --engine spark, a new directory named with a trailing /)"
                             if kw["engine"] == "spark" else ""))
    opts = _options(kw, named)
    with _progress(kw["quiet"], "pricing requests..."):
        if kw["engine"] == "spark":
            acc = spark(paths, output, fmt, opts, reveal=kw["reveal_keys"])
        else:
            rows, acc = pipeline.price_requests(paths, opts)
            writers.sink_rows(rows, fmt, output, reveal=kw["reveal_keys"])
    if not kw["quiet"]:
        _echo(f"wrote {output}: {counted(acc.priced + acc.unpriced, 'request')}; {acc.summary()}", err=True)
    _finish(acc, kw["strict"], kw["quiet"], kw["reveal_keys"])


@main.command()
@input_options(paths_required=False, tz=False)
@click.option("--store", "store_dir", type=StoreDir(),
              help="audit a store's costs (see `llm-cost ingest`) instead of log files")
@click.option("--invoice", required=True, type=click.Path(dir_okay=False),
              help="what was billed: Admin API cost report JSON, analytics cost JSON, Console cost CSV, FOCUS "
                   "CSV/Parquet, or a CSV period,model[,token_type],amount_usd")
@click.option("--invoice-format", type=Choice(["admin-cost-report", "analytics-cost", "console-cost-csv", "focus",
                                                     "plain-csv"]), help="force the invoice format [default: detect]")
@click.option("--tolerance", default="0.01", show_default=True,
              help="allowed difference per line: dollars (0.50) or a share of the billed amount (0.5%)")
@click.option("--by", multiple=True, callback=_joined, help="compare on a coarser grain: day or month, and model, token_type, service_tier, "
                           "context_tier, workspace [default: the invoice's own grain]")
@click.option("--format", "fmt", type=Choice(["table", "csv", "json", "markdown", "html"]),
              help="output format [default: from -o's extension, else table]")
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="write the audit to this file (atomically)")
@engine_options
@handle_errors
def audit(paths, store_dir, invoice, invoice_format, tolerance, by, fmt, output, **kw):
    """Reconcile computed costs with an invoice, line by line; exit 1 when a line is out of tolerance."""
    from . import audit as audit_
    from . import audit_writers, writers

    _store_source(paths, store_dir, kw)
    tol = audit_.Tolerance.parse(tolerance)
    keys = [k.strip().lower() for k in by.split(",") if k.strip()] if by else None  # audit keys are standard names
    fmt = writers.format_for(fmt, output, "table", audit_writers.FORMATS)
    audit_writers.check_format(fmt)
    _outside_store(output, store_dir)
    opts = _options(kw, output, {"the invoice": [invoice], **_store_files(store_dir)})
    with _progress(kw["quiet"], "reading and pricing logs..."):
        if kw["engine"] == "spark" and store_dir:
            from .errors import OptionError

            raise OptionError("--engine spark: reads log files; not --store")
        result = audit_.run(paths, invoice, opts, tol, keys, invoice_format, store_dir, analyze=_engine_analyze(kw))
    audit_writers.write(result, fmt, output, terminal=sys.stdout.isatty(), reveal=kw["reveal_keys"])
    if output not in (None, "-") and not kw["quiet"]:
        bad = int((result.lines["status"] != "ok").sum())
        _echo(f"wrote {output}: {counted(result.lines.height, 'line')}, {bad:,} out of tolerance", err=True)
    _finish(result.computed.accounting, kw["strict"], kw["quiet"], kw["reveal_keys"])
    if not result.within_tolerance:
        sys.exit(ExitCode.CHECK_FAILED)


@main.command()
@input_options(paths_required=False)
@click.option("--store", "store_dir", type=StoreDir(),
              help="check a store (see `llm-cost ingest`) instead of log files")
@click.option("--budgets", type=click.Path(dir_okay=False),
              help="budgets TOML: [[budget]] name, period (day|week|month), limit, where (see docs/check.md)")
@click.option("--by", multiple=True, callback=_joined, help="groups whose daily costs are checked for anomalies: comma-separated "
              "keys such as workspace, model, api_key [default: all requests as one group]")
@click.option("--as-of", help="the last day checked (in --tz), like 2026-11-20; later rows are not read "
              "[default: the last day in the data]")
@click.option("--anomaly-factor", default="3", show_default=True,
              help="a day is anomalous above this multiple of its group's trailing median")
@click.option("--anomaly-window", default=14, show_default=True, type=int,
              help="days before a day whose median is its baseline")
@click.option("--anomaly-min", default="1.00", show_default=True, help="USD a day must cost to be anomalous")
@click.option("--anomaly-period", type=Choice(["day", "week", "month"]), default="day", show_default=True,
              help="the days judged: the as-of day, or its ISO week or month up to it")
@click.option("--format", "fmt", type=Choice(["table", "json", "markdown", "html"]),
              help="output format [default: from -o's extension, else table]")
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="write the result to this file (atomically)")
@handle_errors
def check(paths, store_dir, budgets, by, as_of, anomaly_factor, anomaly_window, anomaly_min, anomaly_period, fmt,
          output, **kw):
    """Budgets, month-end forecasts and anomalous days; exit 1 when any alert fires (for cron)."""
    from . import checks, writers

    _store_source(paths, store_dir, kw)
    keys = [k.strip() for k in by.split(",") if k.strip()] if by else []
    fmt = writers.format_for(fmt, output, "table", checks.FORMATS)
    if fmt not in checks.FORMATS:
        from .errors import OptionError

        raise OptionError(f"-o {output}: a check is written as .json, .md or .html (or --format table)")
    settings = checks.Settings(factor=checks.decimal_option(anomaly_factor, "--anomaly-factor"), window=anomaly_window,
                               minimum=checks.decimal_option(anomaly_min, "--anomaly-min"), period=anomaly_period)
    _outside_store(output, store_dir)
    opts = _options(kw, output, {"the budgets file": [budgets], **_store_files(store_dir)})
    with _progress(kw["quiet"], "reading and checking logs..."):
        result = checks.run(paths, budgets, keys, as_of, opts, settings, store_dir)
    if fmt == "table" and output in (None, "-") and sys.stdout.isatty():
        from rich.console import Console

        console = Console()
        console.print(checks.table_text(result, width=console.width, reveal=kw["reveal_keys"]), end="",
                      highlight=False, markup=False, emoji=False)
    else:
        checks.write(result, fmt, output, reveal=kw["reveal_keys"])
    if output not in (None, "-") and not kw["quiet"]:
        _echo(f"wrote {output}: {len(result.alerts)} alert(s); {result.report.accounting.summary()}", err=True)
    _finish(result.report.accounting, kw["strict"], kw["quiet"], kw["reveal_keys"])
    if result.failed:
        sys.exit(ExitCode.CHECK_FAILED)


@main.command()
@input_options(paths_required=False, prices_help="price overlay TOML for the scenario only (negotiated rates); "
               "repeatable, later wins")
@click.option("--store", "store_dir", type=StoreDir(),
              help="the requests of this store (see `llm-cost ingest`) instead of log files")
@click.option("--by", default=["model"], show_default="model", multiple=True, callback=_joined,
              help=BY_HELP.replace("component, ", ""))
@click.option("--swap", multiple=True, metavar="FROM=TO",
              help="price FROM's requests at TO's rates (same token counts, same dates); any id, alias or "
                   "platform id; repeatable")
@click.option("--batch", is_flag=True, help="move requests to the batch tier where the model offers it "
                                            "(fast-mode requests stay)")
@click.option("--where", multiple=True, metavar="KEY=VALUE",
              help="apply the scenario only to requests whose --by key (or any key) has this value; repeatable (all must match)")
@click.option("--baseline-prices", multiple=True, type=click.Path(dir_okay=False),
              help="price overlay TOML for both the baseline and the scenario")
@click.option("--format", "fmt", type=Choice(["table", "json", "markdown", "csv", "html"]),
              help="output format [default: from -o's extension, else table]")
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="write the comparison to this file (atomically)")
@engine_options
@handle_errors
def whatif(paths, store_dir, by, swap, batch, where, baseline_prices, fmt, output, **kw):
    """The same requests priced as they were and under a scenario (--swap, --batch, --prices), and the difference."""
    import dataclasses

    from . import whatif as whatif_
    from . import writers
    from .errors import OptionError

    _store_source(paths, store_dir, kw)
    groups = _engine_analyze(kw, "analyze_groups")
    if kw["engine"] == "spark" and store_dir:
        raise OptionError("--engine spark: reads log files; not --store")
    keys = [k.strip() for k in by.split(",") if k.strip()] if by else []
    fmt = writers.format_for(fmt, output, "table", whatif_.FORMATS)
    if fmt not in whatif_.FORMATS:
        raise OptionError(f"-o {output}: a what-if is written as table, json, markdown, csv or html")
    scenario = whatif_.Scenario(swaps=whatif_.Scenario.pairs(swap, "--swap"), batch=batch,
                                where=whatif_.Scenario.pairs(where, "--where"), prices=tuple(kw["prices"]))
    _outside_store(output, store_dir)
    opts = _options(kw, output, {"the baseline price overlay": baseline_prices, **_store_files(store_dir)})
    opts = dataclasses.replace(opts, prices=tuple(baseline_prices))
    with _progress(kw["quiet"], "reading and pricing logs..."):
        result = whatif_.run(paths, scenario, keys, opts, store_dir=store_dir, analyze_groups=groups)
    data = whatif_.render(result, fmt, reveal=kw["reveal_keys"])
    if fmt == "table" and output in (None, "-") and sys.stdout.isatty():
        from rich.console import Console

        console = Console()
        console.print(whatif_.table_text(result, kw["reveal_keys"], console.width), end="", highlight=False,
                      markup=False, emoji=False)
    else:
        writers.write_output(data, output)
        if output not in (None, "-") and not kw["quiet"]:
            t = result.totals
            _echo(f"wrote {output}: baseline ${writers.money_text(t['baseline_cost'], 2)}, scenario "
                  f"${writers.money_text(t['scenario_cost'], 2)}; {result.accounting.summary()}", err=True)
    if not kw["quiet"] and not (fmt in ("table", "markdown") and output in (None, "-")):  # (else said as a note)
        for w in result.warnings:
            _echo(f"llm-cost: warning: {w}", err=True, reveal=kw["reveal_keys"])
    _finish(result.accounting, kw["strict"], kw["quiet"], kw["reveal_keys"])
    left_out = result.scenario_accounting["unpriced"]
    if kw["strict"] and left_out:  # rows out of both costs: the comparison is partial
        click.echo(f"llm-cost: --strict: {left_out:,} row{'s' if left_out != 1 else ''} not priced under the scenario",
                   err=True)
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

    book = pricebook.load_price_book(overlays)
    _echo(writers.price_list_text(book), nl=False)


@prices.command("show")
@click.argument("model")
@click.option("--prices", "overlays", multiple=True, type=click.Path(dir_okay=False), help="price overlay TOML")
@handle_errors
def prices_show(model, overlays):
    """Every price period of MODEL (any id, alias or platform id), with sources."""
    from . import pricebook, writers
    from .errors import OptionError
    from .models import Resolver

    book = pricebook.load_price_book(overlays)
    resolver = Resolver(book)
    found, _, problem = resolver.resolve(model)
    if found is None:
        hint = resolver.suggest(model)
        raise OptionError(f"{model}: {problem}" + (f"; did you mean {hint}?" if hint else ""))
    _echo(writers.price_show_text(book, book.models[found]), nl=False)


@prices.command("check")
@click.argument("file", type=click.Path(dir_okay=False))
@handle_errors
def prices_check(file):
    """Validate a price overlay on top of the shipped book."""
    from . import pricebook

    book = pricebook.check(file)
    _echo(f"{file}: ok ({counted(len(book.models), 'model')} in the combined book, version {book.version})")
    for w in book.warnings:  # valid, but it changes what a reader may not expect: say so
        _echo(f"warning: {w}")


@prices.command("import")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="write the overlay here (default: stdout)")
@click.option("--prices", "overlays", multiple=True, type=click.Path(dir_okay=False),
              help="price overlay TOML already in use (its models are not imported again)")
@handle_errors
def prices_import(file, output, overlays):
    """Turn a LiteLLM model_prices_and_context_window.json or a genai-prices data file (data.json or a
    providers/*.yml) into a --prices overlay for the models the book lacks (confidence estimate)."""
    from pathlib import Path

    from . import pricebook
    from .errors import OutputError
    from .pricebook.importer import import_prices

    result = import_prices(file, pricebook.load_price_book(overlays))
    if output:
        try:
            Path(output).write_text(result.toml, encoding="utf-8")
        except OSError as e:
            raise OutputError(f"-o {output}: cannot write ({e.strerror})") from None
    else:
        _echo(result.toml, nl=False)
    _echo(result.summary() + (f"; written to {output}" if output else ""), err=True)


@main.command()
@click.option("--suggest", "suggest_file", metavar="FILE", help="write a starter mapping (the --map TOML) for a log "
              "no format reads, guessed from its columns; check it, edit it, then pass it with --map")
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="with --suggest: write the mapping to this "
              "file (atomically) instead of stdout")
@handle_errors
def formats(suggest_file, output):
    """The log formats (dialects) llm-cost reads, and how each is recognised."""
    if suggest_file is not None:
        from . import writers
        from .dialects._suggest import suggest
        from .errors import DialectError
        from .sources import open_source

        writers.check_outputs([("-o", output)], {"the log": [suggest_file]})
        src = open_source(suggest_file)
        if not src.columns:
            raise DialectError(f"{src.display}: no records found to suggest a mapping from")
        s = suggest(src)
        if output and output != "-":
            writers.write_output(s.text, output)
        else:
            _echo(s.text, nl=False, reveal=True)
        target = output if output and output != "-" else "MAPPING.toml"
        _echo(("llm-cost: not guessed (required; edit the mapping): " + ", ".join(s.missing) + "\n" if s.missing else "")
              + f"llm-cost: check it, then: llm-cost report {suggest_file} --map {target}", err=True)
        return
    if output:
        from .errors import OptionError

        raise OptionError("-o: applies to --suggest FILE")
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
        click.option("--store", "store_dir", required=True, type=StoreDir(),
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
    _echo(f"llm-cost: warning: {message}", err=True)


def _file_progress(quiet: bool, total: int):
    """A progress bar over files on stderr, only when a person is watching a multi-file ingest."""
    import contextlib

    if quiet or total < 2 or not sys.stderr.isatty():
        return contextlib.nullcontext(None)
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    @contextlib.contextmanager
    def bar():
        from .safe_text import terminal_text

        # The description names a file: text, not markup (a file named `[/bold].csv` is data).
        with Progress(TextColumn("{task.description}", markup=False), BarColumn(), MofNCompleteColumn(),
                      TimeElapsedColumn(), console=Console(stderr=True), transient=True) as progress:
            task = progress.add_task("ingesting", total=total)

            def update(path: str, done: int, _total: int) -> None:
                progress.update(task, completed=done, description=f"ingesting {terminal_text(path)}" if path else "done")

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
    from .sources import expand_paths, shown

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
            click.echo(f"llm-cost: recorded {counted(len(result.recovered), 'file')} an interrupted run had committed",
                       err=True)
        for f in result.files:
            _echo(f"{shown(f.path)}: {f.status}" + (f", {counted(f.stored, 'row')} stored" if f.accounting else "")
                  + (f" ({f.displaced:,} replacing lesser stored copies)" if f.displaced else "")
                  + (f" ({f.restored:,} displaced by its earlier content stored again)" if f.restored else ""),
                  err=True)
        done = [f for f in result.files if f.accounting is not None]
        _echo(f"ingested {len(done)} of {counted(len(result.files), 'file')} into {store_dir}: {acc.summary()}", err=True)
    _finish(acc, strict, quiet)


@main.group("store")
def store_group():
    """Inspect a store of nightly runs."""


def _size(n: int) -> str:
    return f"{n / 2**20:,.1f} MiB" if n >= 2**20 else f"{n / 2**10:,.1f} KiB"


@store_group.command("status")
@click.argument("store_dir", type=StoreDir())
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
    _echo(f"store {s['store']}: Delta table version {s['version']}, {s['files']:,} files ingested, "
          f"last ingest {s['last_ingest'] or 'never'}")
    extra = "".join(f" + {name} {s[key]:,}" for key, name in (("repeats", "repeats"), ("not_billable", "not billable"))
                    if s[key])
    click.echo(f"rows read {s['rows_read']:,} = stored {s['rows_stored']:,} + duplicates {s['duplicates']:,}{extra} "
               f"+ quarantined {s['quarantined']:,} ({s['data_files']:,} data files, {_size(s['bytes'])})")
    click.echo(f"requests from {s['first'] or '-'} to {s['last'] or '-'}")
    click.echo("months: " + (", ".join(f"{m} ({n:,})" for m, n in s["months"].items()) or "none"))
    click.echo("price books: " + (", ".join(f"{v} ({counted(n, 'row')})" for v, n in s["price_books"].items()) or "none")
               + (f"; {s['repricings']} reprice run(s)" if s["repricings"] else ""))
    for name, why in s["damaged_parts"].items():
        _echo(f"DAMAGED: {name}: {why}")
    if s["uncommitted"]:
        click.echo(f"{counted(len(s['uncommitted']), 'data file')} of an interrupted run, never committed (readers ignore "
                   "them; `llm-cost store compact` removes them)")
    if s.get("missing_commits"):
        _echo(f"note: _delta_log: the commit file of version {', '.join(map(str, s['missing_commits']))} is missing; "
              "a checkpoint holds the table's state (reports are whole), but `store history` has lost that commit")
    if s.get("unsummarized"):
        click.echo(f"note: {counted(s['unsummarized'], 'data file')} without a summary (reports read their rows: "
                   "slower, not wrong; `llm-cost store compact` writes those a summary would shrink)")
    click.echo("consistent" if s["consistent"] else "damaged" if s["damaged_parts"] else "NOT CONSISTENT")
    if not s["consistent"]:
        sys.exit(ExitCode.CHECK_FAILED)


@store_group.command("history")
@click.argument("store_dir", type=StoreDir())
@click.option("--json", "as_json", is_flag=True, help="print the versions as JSON")
@handle_errors
def store_history(store_dir, as_json):
    """Every version of the store: when, which command, price book, rows added and removed."""
    import json

    from . import store

    versions = store.history(store_dir)
    if as_json:
        click.echo(json.dumps(versions, indent=2))
        return
    for v in versions:
        rows = f"+{v['rows_added'] or 0:,}" + (f" -{v['rows_removed']:,}" if v["rows_removed"] else "")
        click.echo(f"{v['version']:>5}  {v['time']}  {v['command']:<8} {rows:>12} rows  book {v['price_book'] or '-'}"
                   + (f"  {v['file']}" if v["file"] else ""))


@store_group.command("compact")
@click.argument("store_dir", type=StoreDir())
@click.option("--retention-days", type=click.IntRange(min=0), default=7, show_default=True,
              help="keep the files that versions of the last N days need (time travel that far back)")
@click.option("--wait", type=click.FloatRange(min=0), default=30, show_default=True, help=WAIT_HELP)
@handle_errors
def store_compact(store_dir, retention_days, wait):
    """Merge each month's small data files (Delta optimize), then vacuum files no kept version needs."""
    from . import store

    r = store.compact(store_dir, retention_days, wait, _warn)
    click.echo(f"{store_dir}: {counted(r.files_before, 'data file')} -> {r.files_after:,} (version {r.version_before} -> "
               f"{r.version_after}); removed {counted(len(r.vacuumed), 'file')} older than "
               f"{counted(retention_days, 'day')} that no kept version needs" + (f" and {len(r.uncommitted_removed):,} never committed" if r.uncommitted_removed else "")
               + (f" and {counted(len(r.kept_removed), 'file')} of kept copies no kept version names" if r.kept_removed else ""))


@store_group.command("repair")
@click.argument("store_dir", type=click.Path(file_okay=False))
@click.option("--wait", type=click.FloatRange(min=0), default=30, show_default=True, help=WAIT_HELP)
@handle_errors
def store_repair(store_dir, wait):
    """Go back to the last good version when the last commit is damaged or lost (nothing is deleted)."""
    from . import store

    r = store.repair(store_dir, wait, _warn)
    if not r["repaired"]:
        click.echo(f"{store_dir}: nothing to repair (version {r['version']})")
        return
    click.echo(f"{store_dir}: back at version {r['version']}"
               + "".join(f"; damaged commit moved to {m}" for m in r["moved"])
               + (f"; forgotten, to be ingested again: {', '.join(r['forgotten'])}" if r["forgotten"] else ""))


@store_group.command("upgrade")
@click.argument("store_dir", type=StoreDir())
@handle_errors
def store_upgrade(store_dir):
    """Convert a store of the old layout (manifest.json) into a Delta table, checked by equal reports."""
    from . import store

    r = store.upgrade(store_dir)
    click.echo(f"{r['store']}: converted {counted(r['files'], 'file')}, {counted(r['rows'], 'row')} into a Delta table; the report "
               "by month and model is equal before and after. The old rows/, quarantine/ and manifest.json are "
               "left in place: delete them when you no longer need them.")


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
    _echo(writers.reprice_text(result), nl=False)

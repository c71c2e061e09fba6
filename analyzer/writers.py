"""Report writers: table (Rich), csv, json, jsonl, parquet, markdown, html (html_report.py). Files are written atomically.

Machine formats (csv, json, jsonl, parquet) carry money exactly (12 decimal places, JSON money as
strings). Human formats (table, markdown) round half-even to cents, and say so.
"""

from __future__ import annotations

import contextlib
import errno
import io
import json
import os
import re
import secrets
import stat
import tempfile
from collections.abc import Callable
from decimal import ROUND_HALF_EVEN, Decimal

import polars as pl

from . import descriptors, remote, safe_text
from . import view as view_mod
from .errors import OptionError, OutputError
from .schema import DISPLAY_PLACES, MONEY, ROUNDING
from .view import View
from .words import counted

FORMATS = ("table", "csv", "json", "jsonl", "parquet", "markdown", "html")
_BY_EXT = {".csv": "csv", ".json": "json", ".jsonl": "jsonl", ".ndjson": "jsonl", ".parquet": "parquet",
           ".md": "markdown", ".markdown": "markdown", ".txt": "table",
           ".html": "html", ".htm": "html"}
_CENT = Decimal(1).scaleb(-DISPLAY_PLACES)
# String columns pricing adds to per-request rows (pipeline.PRICED_COLUMNS): labels, never secrets.
_PRICE_TAGS = {"model", "family", "provider", "price_period", "context_tier", "discount_type", "price_book",
               "endpoint_scope_resolved"}
# Canonical columns that copy text as logged: a key pasted as a model id or used as a request id,
# the unpriced reason quoting that model id, a file named after a key.
_AS_LOGGED = {"model_raw", "request_id", "unpriced_reason", "source_file"}


def format_for(fmt: str | None, output: str | None, default: str, formats: tuple[str, ...] = FORMATS) -> str:
    """The --format, else -o's extension, else `default`; `formats`: the command's own, named in the hint."""
    if fmt:
        return fmt
    if output and output != "-":
        ext = os.path.splitext(output.removesuffix(".gz"))[1].lower()
        if ext not in _BY_EXT:
            raise OptionError(f"-o {output}: cannot tell the format from {ext or 'no extension'!r}; pass --format "
                              f"({', '.join(formats)})")
        return _BY_EXT[ext]
    return default


def has_format_extension(output: str) -> bool:
    return os.path.splitext(output.removesuffix(".gz"))[1].lower() in _BY_EXT


def _identity(path: str) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino


def _stdin_identity() -> tuple[int, int] | None:
    """The file or pipe behind `-`: `report - -o v.csv < v.csv` (or `-o /dev/stdin`) would replace
    or append to the log being read. A terminal is no file: writing to it destroys nothing."""
    try:
        st = os.fstat(0)
    except (OSError, ValueError):
        return None
    return (st.st_dev, st.st_ino) if stat.S_ISREG(st.st_mode) or stat.S_ISFIFO(st.st_mode) else None


def check_outputs(writes: list[tuple[str, str | None]], reads: dict[str, list[str] | tuple[str, ...]]) -> None:
    """Exit 2 before anything is read when an output is also an input (`report v.csv -o v.csv`
    replaced the log with its report) or two outputs are one file: same device and inode (hard
    links, symlinks) or same resolved path. `writes`: (option, file); `reads`: what -> files."""
    outs = [(flag, p) for flag, p in writes if p and p != "-"]
    for flag, p in outs:
        if remote.is_url(p):
            raise OutputError(f"{flag} {remote.shown_url(p)}: llm-cost writes local files only: write one here, then "
                              "copy it (aws s3 cp, gcloud storage cp, azcopy)")
    for i, (flag, p) in enumerate(outs):
        for other_flag, q in outs[i + 1:]:
            if _same(p, q):
                raise OutputError(f"{flag} {p} and {other_flag} {q} are the same file: give each its own")
    # An output that does not exist yet cannot be an input: only existing ones are compared, by
    # identity (one stat per input; a tree of 17,000 logs costs milliseconds).
    existing = {ident: (flag, p) for flag, p in outs if (ident := _identity(p)) is not None}
    if not existing:
        return
    for what, paths in reads.items():
        for f in paths:
            if not f:
                continue
            hit = existing.get(_stdin_identity() if f == "-" else _identity(f))
            if hit:
                name = "standard input" if f == "-" else f
                raise OutputError(f"{hit[0]} {hit[1]}: that is {what} {name}, which this run reads; "
                                  "write to another file")


def _same(a: str, b: str) -> bool:
    ia, ib = _identity(a), _identity(b)
    return (ia is not None and ia == ib) or os.path.realpath(a) == os.path.realpath(b)


def _through_proc(path: str) -> bool:
    """/dev/stdout, /dev/fd/1, /proc/self/fd/1: names of an open file, whatever it is (a terminal,
    a pipe, or the file a shell redirected to, which must be written, not replaced)."""
    absolute = os.path.abspath(path)
    if absolute.startswith("/proc/") or os.path.realpath(os.path.dirname(absolute)).startswith("/proc/"):
        return True
    return os.path.islink(absolute) and os.readlink(absolute).startswith("/proc/")


def _in_place(path: str) -> bool:
    """Whether `path` is written where it is instead of replaced by rename: a FIFO, a terminal, a
    character device (/dev/null, /dev/full) or an open file's /proc name. A symlink is replaced, not
    followed (a link planted in a shared directory must not redirect the write)."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return False
    if _through_proc(path):
        return True
    return not (stat.S_ISREG(st.st_mode) or stat.S_ISLNK(st.st_mode))


def _create_temp(directory: str, mode: int | None) -> str:
    """A new file beside the target, created with the permissions the target will have: the
    user's umask applied to 0666 (0644 under umask 022), or `mode`."""
    for _ in range(100):
        tmp = os.path.join(directory, f".llm-cost-{secrets.token_hex(8)}.tmp")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0),
                         0o666 if mode is None else mode)
        except FileExistsError:
            continue
        os.close(fd)
        return tmp
    raise FileExistsError(errno.EEXIST, "no free temporary name", directory)


def _unnamed_file(directory: str, mode: int) -> int | None:
    """An open file in `directory` with no name (Linux O_TMPFILE), or None where the system or the
    file system has none. Written through its /proc/self/fd name and linked into place only when
    whole, it leaves nothing behind when the run is killed (SIGKILL, the OOM killer, a power cut):
    a named temporary file would stay beside the output, half written."""
    flag = getattr(os, "O_TMPFILE", None)
    if flag is None:
        return None
    try:
        fd = os.open(directory, flag | os.O_RDWR, mode)
    except OSError:  # (EOPNOTSUPP, EISDIR: a file system or kernel without unnamed files)
        return None
    # (written by its number's name: moved where no file opened later takes that number, should
    # something in the process close it by mistake; see descriptors)
    fd = descriptors.out_of_reach(fd)
    if not os.path.exists(_fd_path(fd)):  # (no /proc mounted: it cannot be written by name)
        os.close(fd)
        return None
    return fd


def _fd_path(fd: int) -> str:
    return f"/proc/self/fd/{fd}"


def _link_into_place(fd: int, directory: str, path: str) -> None:
    """Give the unnamed file open as `fd` the name `path`, replacing what was there in one rename (a
    name of its own first: link cannot replace a file). os.link follows a /proc name only through
    linkat with a directory descriptor: plain link() tries to link the /proc entry itself (EXDEV)."""
    proc = os.open("/proc/self/fd", os.O_RDONLY | os.O_DIRECTORY)
    try:
        for _ in range(100):
            named = os.path.join(directory, f".llm-cost-{secrets.token_hex(8)}.tmp")
            try:
                os.link(str(fd), named, src_dir_fd=proc, follow_symlinks=True)
            except FileExistsError:
                continue
            try:
                os.replace(named, path)
            except BaseException:
                os.unlink(named)
                raise
            return
    finally:
        os.close(proc)
    raise FileExistsError(errno.EEXIST, "no free temporary name", directory)


def _write_error(path: str, tmp: str | None, e: BaseException) -> BaseException:
    """One line naming the file for a failure to write it (disk full, permission, a device). An
    error about another file (an input read while sinking) is that file's and passes unchanged."""
    if isinstance(e, OSError) and e.filename not in (None, path, tmp):
        return e
    text = (e.strerror if isinstance(e, OSError) and e.strerror else str(e)).strip()
    if not isinstance(e, OSError) and "(os error" not in text:
        return e  # a Polars error about the data being read, not about the write
    why = (text.splitlines()[0] if text else type(e).__name__).replace(tmp or path, path)
    return OutputError(f"cannot write {path}: {why.removesuffix(': ' + path)}")


def atomic_write(path: str, write: Callable[[str], None], mode: int | None = None) -> None:
    """Write to a temporary file beside `path`, then rename it into place: readers never see half a
    file, and a crash leaves the previous version intact. A FIFO, terminal or character device is
    written in place instead (renaming over it would replace the device); a block device is refused.

    A new file gets the user's umask (or `mode`: the quarantine file holds raw records, 0600); a
    replaced one keeps its permissions."""
    tmp = None
    try:
        if _in_place(path):
            if stat.S_ISBLK(os.stat(path).st_mode):
                raise OutputError(f"cannot write {path}: a block device, not a file")
            _write_through(path, write)
            return
        directory = os.path.dirname(os.path.abspath(path))
        if not os.path.isdir(directory):
            # (not created: `-o /nonexistent/x.csv` made /nonexistent as root; a typo'd directory
            # is the user's to fix, as with cp or a shell redirect)
            raise OutputError(f"cannot write {path}: no such directory {directory}")
        fd = _unnamed_file(directory, 0o666 if mode is None else mode)
        tmp = _create_temp(directory, mode) if fd is None else _fd_path(fd)
        made = None if fd is None else os.fstat(fd)
        wanted = stat.S_IMODE(os.stat(tmp).st_mode)
        if mode is None and os.path.isfile(path) and not os.path.islink(path):
            # A file the user chmod-ed (a private 0600 report) keeps its permissions when replaced.
            wanted = stat.S_IMODE(os.stat(path).st_mode)
        try:
            write(tmp)
            if made is not None and not descriptors.names(fd, made):
                raise OutputError(f"cannot write {path}: its temporary file's descriptor was closed by another "
                                  "part of the process and given to another file while it was written; "
                                  "nothing was put in place")
            if stat.S_IMODE(os.stat(tmp).st_mode) != wanted:  # a writer that re-created the file
                os.chmod(tmp, wanted)
            if fd is None:
                os.replace(tmp, path)
            else:
                _link_into_place(fd, directory, path)
        except BaseException:
            if fd is None and os.path.lexists(tmp):
                os.unlink(tmp)
            raise
        finally:
            if fd is not None:
                descriptors.close_own(fd, made)
    except (OSError, pl.exceptions.PolarsError) as e:
        raise _write_error(path, tmp, e) from e


def _write_through(path: str, write: Callable[[str], None]) -> None:
    """Write into a temporary directory, then copy into `path` opened for appending (a FIFO or a
    terminal takes the bytes; /dev/stdout redirected with `>>` keeps what it held)."""
    import shutil

    from .sources import process_dir

    with tempfile.TemporaryDirectory(prefix="out-", dir=process_dir()) as d:
        tmp = os.path.join(d, "out")
        write(tmp)
        with open(tmp, "rb") as src, open(path, "ab") as out:
            if out.isatty():
                # `-o /dev/tty` or `-o /dev/stdout` on a terminal is the screen, as `-o -` is: data's
                # escape sequences are shown escaped, and binary Parquet is refused like with `-o -`.
                try:
                    text = src.read().decode("utf-8")
                except UnicodeDecodeError:
                    raise OutputError(f"cannot write {path}: a terminal; binary output needs a file") from None
                out.write(safe_text.terminal_text(text, keep_newlines=True).encode("utf-8"))
                return
            shutil.copyfileobj(src, out)


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


def shown_rows(report, reveal: bool = False) -> pl.DataFrame:
    """The report's rows as every format shows them: credentials masked unless `reveal` (after
    grouping, so keys that mask alike stay separate rows)."""
    return report.rows if reveal else safe_text.mask_frame(report.rows)


def _secret(text: str, reveal: bool) -> str:
    return text if reveal else safe_text.mask_secrets(text)


def report_dict(report, reveal: bool = False) -> dict:
    """The JSON shape of DESIGN §7: money as decimal strings, full precision."""
    acc = report.accounting.as_dict()
    book = {"version": report.book.version, "files": report.book.files, "overlays": report.book.overlays}
    if not reveal:  # model ids as logged key maps, file names are typed: a key pasted in either is masked
        acc, book = safe_text.mask_tree(acc), safe_text.mask_tree(book)
    return {
        "currency": "USD",
        "price_book": book,
        "group_by": report.group_by,
        "time_zone": report.tz,
        "rounding": f"exact; money has {MONEY.scale} decimal places (display formats round {ROUNDING} to cents)",
        "rows": [{k: _jsonable(v) for k, v in r.items()} for r in shown_rows(report, reveal).to_dicts()],
        "totals": {k: _jsonable(v) for k, v in report.totals.items()},
        "accounting": acc,
        "dialects": {_secret(f, reveal): d for f, d in report.dialects.items()},  # keyed by file name
        "notes": [_secret(n, reveal) for n in report.notes],  # notes name files
    }


def _text_frame(df: pl.DataFrame) -> pl.DataFrame:
    """Decimals as exact strings (CSV/JSONL must not round-trip money through floats)."""
    return df.with_columns([pl.col(c).cast(pl.String) for c in df.columns if _is_money(df, c)])


def render(report, fmt: str, reveal: bool = False, view: View | None = None) -> str | bytes:
    if fmt == "json":
        return json.dumps(report_dict(report, reveal), indent=2) + "\n"
    if fmt == "csv":
        # Neutralised before money becomes text: a negative amount is a number, not a formula.
        return _text_frame(safe_text.csv_frame(shown_rows(report, reveal))).write_csv()
    if fmt == "jsonl":
        return _text_frame(shown_rows(report, reveal)).write_ndjson()
    if fmt == "parquet":
        buf = io.BytesIO()
        shown_rows(report, reveal).write_parquet(buf)
        return buf.getvalue()
    if fmt == "markdown":
        return markdown(report, reveal, view)
    if fmt == "table":
        return table_text(report, width=plain_width(), reveal=reveal, view=view)
    if fmt == "html":
        from . import html_report

        return html_report.report_html(report, reveal)
    raise OptionError(f"--format {fmt!r}: use one of {', '.join(FORMATS)}")


def to_stdout(data: str) -> None:
    """On a terminal, data's control and bidi characters are shown escaped (a CSV cell holding
    ESC[2J must not clear the screen); into a pipe or file, the bytes are exact."""
    import sys

    sys.stdout.write(safe_text.terminal_text(data, keep_newlines=True) if sys.stdout.isatty() else data)


def write_report(report, fmt: str, output: str | None, reveal: bool = False, view: View | None = None) -> None:
    to_file = output not in (None, "-")
    # A table written to a file is read later, anywhere: whole, not fitted to this shell's COLUMNS.
    data = table_text(report, PLAIN_WIDTH, reveal, view) if fmt == "table" and to_file else render(report, fmt, reveal, view)
    write_output(data, output)


def write_output(data: str | bytes, output: str | None) -> None:
    """A rendered result to stdout (`-` or no -o), or atomically to the file the user named."""
    if output in (None, "-"):
        if isinstance(data, bytes):
            raise OptionError("parquet output needs -o FILE")
        to_stdout(data)
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


def _columns(report, view: View | None = None) -> list[str]:
    """The measure columns shown: those asked for with --columns (in that order), else every one
    the report has, less token classes nobody used."""
    rows = report.rows
    if "component" in report.group_by:
        cols = ["quantity", "cost"]
    else:
        cols = [c for c in _SHOWN if c in rows.columns]
        if "web_search_requests" in rows.columns and rows["web_search_requests"].sum():
            cols.insert(cols.index("cost"), "web_search_requests")
        # Hide token classes nobody used, to keep the table readable.
        cols = [c for c in cols if not (c.endswith("_tokens") and c in rows.columns and not rows[c].sum())]
    if view is not None and view.columns is not None:
        # Asked for by name: shown even if all zero; a column this report does not have is skipped.
        cols = [c for c in view.columns if c in rows.columns]
    return cols


def _cell(v, places: int = DISPLAY_PLACES) -> str:
    if isinstance(v, Decimal):
        return money_text(v, places)
    if isinstance(v, int):
        return f"{v:,}"
    return "" if v is None else str(v)


def _rounding(places: int) -> str:
    return "to cents" if places == 2 else f"to {places} decimal place{'s' if places != 1 else ''}"


def _rows(n: int) -> str:
    return counted(n, "row")


# Skipped files named under a table (a tree may skip thousands: the JSON report lists them all).
SKIPPED_SHOWN = 5


def _accounting_lines(report, quote: Callable[[str], str], reveal: bool = False,
                      places: int = DISPLAY_PLACES) -> list[str]:
    """The summary under a table. Text from the data (model ids as logged, file names, notes naming
    files) goes through `quote`: escaped for the format, credentials masked unless `reveal`."""
    a = report.accounting

    def q(text: str) -> str:
        return quote(_secret(text, reveal))

    lines = [a.summary()]
    for raw, n in a.unpriced_models.items():
        said = a.unpriced_reported.get(raw)
        reported = f"; reported ${money_text(said, places)}" if said is not None else ""
        lines.append(f"unpriced: {q(raw)} ({_rows(n)}{reported}): {q(a.unpriced_reasons.get(raw, ''))}")
    if a.quarantine_file:
        lines.append(f"quarantined rows written to {q(a.quarantine_file)}")
    if a.files_skipped:
        shown = list(a.files_skipped.items())[:SKIPPED_SHOWN]
        more = len(a.files_skipped) - len(shown)
        lines.append(f"files skipped ({len(a.files_skipped):,}, not read): "
                     + "; ".join(f"{q(name)}: {q(why)}" for name, why in shown)
                     + (f"; and {more:,} more (all in the JSON report's accounting)" if more else ""))
    lines.append(f"price book {report.book.version}" + (f" + overlays {q(', '.join(report.book.overlays))}" if report.book.overlays else "")
                 + f"; money rounded {ROUNDING} {_rounding(places)} for display; times in {report.tz}")
    lines.extend(f"note: {q(n)}" for n in report.notes)  # a note names files: data, like the rest
    return lines


def _escaped(df: pl.DataFrame, escape: Callable[[pl.Expr], pl.Expr]) -> pl.DataFrame:
    return df.with_columns([escape(pl.col(c)).alias(c) for c, t in df.schema.items() if t == pl.String])


# A table wider than this is not made for a terminal (pipes and files without COLUMNS get it whole).
PLAIN_WIDTH = 200


def _table_width(widths: list[int]) -> int:
    """Rich's width of a table with these column widths: one space of padding each side of a cell,
    and a rule between columns and at both edges."""
    return sum(widths) + 3 * len(widths) + 1


def fit_columns(titles: dict[str, str], cells: dict[str, list[str]], keys: list[str], measures: list[str],
                width: int, choose: bool) -> tuple[list[str], dict[str, int], list[str]]:
    """Which measure columns fit `width`, each column's width, and the measures dropped.

    The --by keys, requests and cost are never dropped nor cut (a number cut to "0.…" is a wrong
    number): a table that cannot fit even these is drawn wider than the terminal, which wraps it. First
    every header on one line; when that is too wide, headers wrap at spaces ("cache / write / 5m");
    then (unless the columns were chosen with --columns) measures are dropped in view.KEEP_ORDER's
    reverse order until the table fits."""
    from rich.cells import cell_len

    def natural(c: str, header: str) -> int:
        return max([cell_len(header), *map(cell_len, cells[c])])

    one_line = {c: natural(c, titles[c]) for c in [*keys, *measures]}
    if _table_width(list(one_line.values())) <= width:
        return measures, one_line, []
    # (a unit stays with its word: "cost $", not "cost" over "$")
    wrapped = {c: natural(c, max(titles[c].replace(" $", "\u00a0$").split(" ") or [""], key=cell_len))
               for c in one_line}
    shown = list(measures)
    if choose:
        order = [c for c in view_mod.KEEP_ORDER if c in shown]
        while _table_width([wrapped[c] for c in [*keys, *shown]]) > width:
            droppable = [c for c in reversed(order) if c in shown and c not in view_mod.ALWAYS]
            if not droppable:
                break
            shown.remove(droppable[0])
    return shown, wrapped, [c for c in measures if c not in shown]


def table_text(report, width: int | None = None, reveal: bool = False, view: View | None = None) -> str:
    """The report as a Rich table, fitted to `width` (see fit_columns). Data is shown, never
    interpreted: cells are Text (no markup: a workspace `[/bold]` is text, not a closing tag) with
    control and bidi characters escaped."""
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    view = view or View()
    places = view.precision
    width = width or PLAIN_WIDTH
    cols = _columns(report, view)
    totals = report.totals
    keys = list(report.group_by) or [""]
    rows = view_mod.labelled(_escaped(shown_rows(report, reveal), safe_text.terminal_expr), report.group_by).to_dicts()
    titles = {**{k: safe_text.terminal_text(k) for k in report.group_by}, "": "",
              **{c: _TITLES.get(c, c) for c in cols}}
    feet = {k: "total" if i == 0 else "" for i, k in enumerate(keys)}
    for c in cols:
        feet[c] = "" if c == "quantity" else _cell(totals.get(c), places)
    cells = {c: [*(_cell(r.get(c), places) for r in rows), feet[c]] for c in [*keys, *cols]}
    shown, widths, dropped = fit_columns(titles, cells, keys, cols, width, view.columns is None)
    t = Table(show_footer=True, header_style="bold", footer_style="bold")
    for k in report.group_by:
        t.add_column(Text(titles[k]), footer=feet[k], width=widths[k], no_wrap=True)
    for c in shown:
        t.add_column(titles[c], justify="right", footer=feet[c], width=widths[c])
    if not report.group_by:
        t.add_column("", footer="total", width=widths[""])
    for r in rows:
        t.add_row(*[Text(_cell(r.get(k), places)) for k in report.group_by],
                  *[Text(_cell(r.get(c), places)) for c in shown])
    needed = _table_width([widths[c] for c in [*keys, *shown]])
    console = Console(file=io.StringIO(), width=max(width, needed), force_terminal=False, color_system=None)
    console.print(t)
    lines = _accounting_lines(report, safe_text.terminal_text, reveal, places)
    if dropped:
        lines.insert(0, f"columns not shown, to fit {width} columns: {', '.join(_TITLES.get(c, c) for c in dropped)}"
                        " (--columns chooses; CSV and JSON have them all)")
    for line in lines:
        console.print(line, highlight=False, soft_wrap=True, markup=False, emoji=False)
    return console.file.getvalue()


def plain_width() -> int:
    """The width of a table written to a pipe: COLUMNS when the environment sets it (as Rich reads
    it on a terminal), else PLAIN_WIDTH."""
    cols = os.environ.get("COLUMNS", "")
    return int(cols) if cols.isdigit() and int(cols) > 0 else PLAIN_WIDTH


def print_table(report, reveal: bool = False, view: View | None = None) -> None:
    """On a terminal: the same table, fitted to its width, on stdout."""
    from rich.console import Console

    console = Console()
    console.print(table_text(report, width=console.width, reveal=reveal, view=view), end="", highlight=False,
                  markup=False, emoji=False, soft_wrap=True)


def markdown(report, reveal: bool = False, view: View | None = None) -> str:
    """A Markdown table: each value one cell (pipes, newlines, link and emphasis syntax escaped)."""
    view = view or View()
    places = view.precision
    cols = _columns(report, view)
    head = [*map(safe_text.markdown_cell, report.group_by), *[_TITLES.get(c, c) for c in cols]]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" if i < len(report.group_by) else "---:"
                                                               for i in range(len(head))) + "|"]
    for r in view_mod.labelled(_escaped(shown_rows(report, reveal), safe_text.markdown_expr), report.group_by).to_dicts():
        lines.append("| " + " | ".join([_cell(r.get(k), places) for k in report.group_by]
                                       + [_cell(r.get(c), places) for c in cols]) + " |")
    total = ["**total**"] + [""] * (len(report.group_by) - 1) if report.group_by else []
    lines.append("| " + " | ".join(total + [f"**{_cell(report.totals.get(c), places)}**" if c != "quantity" else ""
                                            for c in cols]) + " |")
    return "\n".join(lines) + "\n\n" + "\n".join(f"- {line}" for line in _accounting_lines(
        report, safe_text.markdown_cell, reveal, places)) + "\n"


# ----------------------------------------------------------------------------------------------
# Per-request rows (llm-cost price): streamed from the lazy plan straight to the file.


# Rows per Parquet row group of per-request output, fixed: left to the streaming engine, a group
# ends where a batch of the input happens to end, so the same rows read from other files (or by
# `--engine spark`, from its parts) gave other bytes. (~25 MiB more peak memory at 1M rows.)
PRICED_ROW_GROUP = 122_880


def sink_rows(rows, fmt: str, output: str, reveal: bool = False) -> None:
    """Write per-request rows (a PricedRows: one plan per input file) into one file, atomically
    (see write_rows). Credentials in dimension columns are masked unless `reveal`; CSV text cells
    that a spreadsheet would run as formulas are neutralised; money is exact text in CSV and JSON."""
    from .schema import CANONICAL

    def safe(lf: pl.LazyFrame) -> pl.LazyFrame:
        if reveal:
            return lf
        # Dimensions are the logs' own metadata (api_key, user, headers): canonical columns are ids
        # and labels this tool parsed, so the per-row regex runs on the few columns that need it.
        return safe_text.mask_column_names(safe_text.mask_frame(
            lf, [c for c in lf.collect_schema() if c in _AS_LOGGED or (c not in CANONICAL and c not in _PRICE_TAGS)]))

    def text(lf: pl.LazyFrame) -> pl.LazyFrame:
        # Money stays Decimal: Polars' CSV and JSON Lines writers write a Decimal as the exact text
        # its cast to String gives (JSON: a string), byte for byte (tests/test_price_slices.py
        # checks any value), without the cast's column of text (0.4 CPU s a million rows).
        return safe_text.csv_frame(safe(lf)) if fmt == "csv" else safe(lf)

    shaped = safe if fmt == "parquet" else text
    atomic_write(output, lambda tmp: write_rows(rows, fmt, tmp, shape=shaped))


# Bytes of priced rows one slice may hold once collected (see write_rows): the slice's row count is
# this over the width of the rows the first slice gave.
SLICE_BYTES = 128 << 20
FIRST_SLICE_ROWS = 20_000
MIN_SLICE_ROWS, MAX_SLICE_ROWS = 1_000, 1_000_000
# Tests set a fixed number of source rows per slice (the same output at any size).
SLICE_ROWS: int | None = None


def write_rows(rows, fmt: str, path: str, shape=None, compression: str = "zstd",
               row_group_size: int = PRICED_ROW_GROUP, out=None) -> None:
    """Per-request rows into `path` (as it is named: atomic_write gives a temporary one), every
    file's plan evaluated over slices of its source and each slice appended to one writer (PyArrow's
    ParquetWriter; Polars' CSV and JSON Lines writers on one open file, the header once).

    Polars' streaming sinks (and collect_batches) hold more memory the more rows they write (a
    plain scan-and-sink of 4M rows peaked at 2.3x its 1M peak); collecting bounded slices of the
    source keeps the peak flat. A slice's length comes from the width of the rows (SLICE_BYTES
    over the bytes per row of the first slice), not a row count that wide logs would overflow. A
    file whose source cannot be sliced where it is read (its plan filters before the slice, or a
    reader of this tool's own: see _sliceable) is sunk whole by the streaming engine, as before.
    `shape`: what the output makes of every slice (masking, text money). `out`: where the slices go
    instead of `path` (an object with _Appender's append, sink, close and abort: the store's month
    files). A checked Parquet input changed while the rows were read stops it in one line, before
    atomic_write puts the file in place (see PricedRows.reading)."""
    with rows.reading():
        _write_rows(rows, fmt, path, shape, compression, row_group_size, out)


def _write_rows(rows, fmt: str, path: str, shape, compression: str, row_group_size: int, out) -> None:
    shape = shape or (lambda lf: lf)
    totals = [_sliceable(source) for source in rows.sources]
    resumable = [t is None and wise and _one_reader(source) for t, source, wise in
                 zip(totals, rows.sources, rows.record_wise)]
    if out is None and all(t is None for t in totals) and not any(resumable):  # (one streaming pass, as Polars sinks it)
        _sink_whole(shape(rows.lazy()), fmt, path, compression, row_group_size)
        return
    target = rows.lazy().collect_schema()  # (files' columns unified as one concatenated plan would)
    empty = pl.LazyFrame(schema=target)

    def unified(lf: pl.LazyFrame) -> pl.LazyFrame:
        return shape(pl.concat([empty, lf], how="diagonal_relaxed"))

    def collecting(lf: pl.LazyFrame) -> Callable[[], pl.DataFrame]:
        return lambda: lf.collect(engine="streaming")

    out = out or _Appender(fmt, path, compression, row_group_size)
    ahead = _Ahead()
    try:
        for i, total in enumerate(totals):
            if resumable[i]:
                _write_resumed(unified(rows.plan(i)), out, ahead)
                continue
            if total is None:
                out.sink(unified(rows.plan(i)))
                continue
            offset, length = 0, SLICE_ROWS or FIRST_SLICE_ROWS
            if total:
                ahead.start(collecting(unified(rows.plan(i, (offset, length)))))
            while offset < total:
                frame = ahead.result()
                offset += length
                if SLICE_ROWS is None and frame.height:
                    length = _next_length(frame)
                if offset < total:
                    ahead.start(collecting(unified(rows.plan(i, (offset, length)))))
                out.append(frame)
                del frame
        out.close(empty=shape(empty))
    finally:
        ahead.close()
        out.abort()


# Whether write_rows collects the next slice while it appends one (bench/price_steps.py times the
# two steps apart with False).
OVERLAP = True


class _Ahead:
    """Collects the next slice in a second thread while the writer appends the one before: Polars'
    collect and PyArrow's (or Polars') encoding both run outside the GIL, so on two cores the two
    halves of `price` overlap. One slice ahead at most (two in memory: the one appended and the one
    collected), so memory stays flat in N. The collects stay in order, one at a time."""

    def __init__(self):
        self.pool = None
        self.pending = None

    def start(self, collect: Callable[[], pl.DataFrame]) -> None:
        import contextvars
        from concurrent.futures import Future, ThreadPoolExecutor

        if not OVERLAP:  # (collected here and now, before the append: the steps one after the other)
            self.pending = Future()
            try:
                self.pending.set_result(collect())
            except BaseException as e:
                self.pending.set_exception(e)
            return
        if self.pool is None:
            self.pool = ThreadPoolExecutor(1, thread_name_prefix="llm-cost-slice")
        # (in this thread's context: the readers look up the run they belong to in a context variable)
        self.pending = self.pool.submit(contextvars.copy_context().run, collect)

    def result(self) -> pl.DataFrame:
        pending, self.pending = self.pending, None
        return pending.result()

    def wait(self) -> None:
        """The collect under way, if any, ended (its rows dropped: after an error nothing reads them;
        its own error is not the run's). A second Ctrl-C while waiting is not swallowed."""
        pending, self.pending = self.pending, None
        if pending is not None:
            with contextlib.suppress(Exception):
                pending.result()

    def close(self) -> None:
        self.wait()
        if self.pool is not None:
            self.pool.shutdown(wait=True)
            self.pool = None


def _write_resumed(plan: pl.LazyFrame, out: _Appender, ahead: _Ahead) -> None:
    """A plan over one of this tool's own readers (compressed or robustly read text), collected
    again and again, each time over the reader's next records (sources.resumed), each appended
    while the next is collected (each collect starts when the one before has ended)."""
    from .sources import resumed

    def collect() -> pl.DataFrame:
        state["read"].clear()
        return plan.collect(engine="streaming")

    with resumed(SLICE_ROWS or FIRST_SLICE_ROWS) as state:
        try:
            ahead.start(collect)
            while True:
                frame = ahead.result()
                more = state["read"] and not state["read"] <= state["done"]
                if more:
                    if SLICE_ROWS is None and frame.height:
                        state["rows"] = _next_length(frame)
                    ahead.start(collect)
                out.append(frame)
                del frame
                if not more:
                    return
        finally:
            ahead.wait()  # (before `resumed` closes the readers a collect may be reading)


def _next_length(frame: pl.DataFrame) -> int:
    """Rows of the next slice: SLICE_BYTES of rows as wide as `frame`'s."""
    width = max(frame.estimated_size() // frame.height, 1)
    return min(max(SLICE_BYTES // width, MIN_SLICE_ROWS), MAX_SLICE_ROWS)


def _one_reader(source: pl.LazyFrame) -> bool:
    """Whether `source` reads one of this tool's own readers (sources._serve), and nothing else."""
    try:
        plan = source.explain()
    except pl.exceptions.PolarsError:
        return False
    return plan.count("PYTHON[") == 1 and plan.count(" SCAN ") == 1


def _sink_whole(lf: pl.LazyFrame, fmt: str, path: str, compression: str, row_group_size: int) -> None:
    if fmt == "parquet":
        lf.sink_parquet(path, compression=compression, row_group_size=row_group_size)
    elif fmt == "csv":
        lf.sink_csv(path)
    else:
        lf.sink_ndjson(path)


def _sliceable(source: pl.LazyFrame) -> int | None:
    """The rows of `source` when a slice of it is read where the scan reads (Polars pushes it into
    a Parquet, CSV or NDJSON scan: a slice costs its own rows), else None: a slice of a plan that
    filters before it, or of a reader that cannot seek (a Python source: compressed or robustly
    read text), would read every row before it again."""
    try:
        plan = source.slice(7, 3).explain()
    except pl.exceptions.PolarsError:
        return None
    lines = [line.strip() for line in plan.splitlines()]
    if "PYTHON" in plan or "SLICED" in plan:
        return None
    # The slice is in the scan (`SLICE: Positive {...}` under it), or the node above the scan and its
    # row numbers: the streaming engine reads only the row groups or lines of the slice then.
    above = [i for i, line in enumerate(lines) if line.startswith("SLICE[")]
    if not above and not any(line.startswith("SLICE: Positive") for line in lines):
        return None
    for i in above:
        below = [line for line in lines[i + 1:i + 3] if not line.startswith("ROW INDEX")]
        if not below or not re.match(r"(Parquet|Csv|NDJson|IPC) SCAN ", below[0]):
            return None
    return int(source.select(pl.len()).collect().item())


def sink_in_groups(lf: pl.LazyFrame, append: Callable[[pl.DataFrame], None], group: int) -> None:
    """A whole plan (one that cannot be sliced), sunk by the streaming engine into a temporary
    Parquet file and given to `append` from it a row group (of `group` rows) at a time."""
    import pyarrow.parquet as pq

    from .sources import temporary_file

    fd, tmp = temporary_file("llm-cost-part-", ".parquet")  # (removed at exit, whatever happens here)
    os.close(fd)
    try:
        lf.sink_parquet(tmp, compression="lz4", statistics=False, row_group_size=group)
        with pq.ParquetFile(tmp) as f:
            for g in range(f.num_row_groups):
                append(pl.from_arrow(f.read_row_group(g)))
    finally:
        with contextlib.suppress(OSError):
            os.unlink(tmp)


def parquet_appender(path: str, compression: str, row_group_size: int, level: int | None = None) -> _Appender:
    """A Parquet file written frame by frame with the writer `price` uses (see _Appender): `append`
    each frame (same columns), then `close(empty=<a LazyFrame of the columns>)`; `abort` in a
    `finally` (it does nothing after close). Row groups hold exactly `row_group_size` rows."""
    return _Appender("parquet", path, compression, row_group_size, level)


# Bytes of CSV or JSON Lines handed to the kernel in one write (see _Pieces).
WRITE_PIECE = 64 << 10


class _Pieces:
    """Writes what Polars' CSV and JSON Lines writers give it (8-25 MB a call) into file descriptor
    `fd` in pieces of WRITE_PIECE bytes, the same bytes. Nearly all the system time of a CSV or
    JSON Lines output is the kernel copying it into the page cache (perf: `copy_folio_from_iter_atomic`),
    and on this VM that copy cost 3-5x more in Polars' large writes: 1M priced rows (1 GB of JSON
    Lines) from memory, 1.6-2.0 s of system time in Polars' writes, 0.5-0.6 in 64 KiB pieces
    (docs/performance.md, issue 18 sixth round). Our reading, not proven: the kernel sizes a
    buffered write's page-cache folios by its length (ext4 large folios), so megabyte writes take
    2 MiB blocks of free memory, the ones a VM with free page reporting has handed back to its host
    and must fault in again. Elsewhere the pieces cost a few more system calls a GB. A loop over
    pieces, not rows: ~16K writes a GB."""

    def __init__(self, fd: int):
        self.fd = fd
        self.error: BaseException | None = None

    def write(self, data) -> int:
        view = memoryview(data).cast("B")
        try:
            for start in range(0, len(view), WRITE_PIECE):
                piece = view[start:start + WRITE_PIECE]
                while piece:  # (a write may take fewer bytes than given: the rest follows)
                    piece = piece[os.write(self.fd, piece):]
        except BaseException as e:  # (Ctrl-C in a write too: Polars would make it an OSError(''))
            self.error = e
            raise
        return len(view)

    def flush(self) -> None:
        pass


class _Appender:
    """One output file written slice by slice: Parquet row groups through PyArrow's writer, or CSV
    (header once) and JSON Lines written by Polars into the same open file."""

    def __init__(self, fmt: str, path: str, compression: str, row_group_size: int, level: int | None = None):
        self.fmt, self.path, self.compression, self.group = fmt, path, compression, row_group_size
        self.level = level  # (None: the codec's default; zstd's is 1 in PyArrow)
        self.parquet = None
        self.file = None
        self.header = True
        self.carry: pl.DataFrame | None = None  # Parquet rows short of a row group

    def append(self, frame: pl.DataFrame) -> None:
        if self.fmt == "parquet":
            # Row groups of exactly `group` rows wherever the slices end (the same rows give the same
            # bytes, however they were read): rows short of a group wait for the next slice.
            if self.carry is not None:
                frame = pl.concat([self.carry, frame], how="vertical", rechunk=False)
                self.carry = None
            whole = frame.height - frame.height % self.group
            if whole < frame.height:
                self.carry = frame.slice(whole)
                frame = frame.slice(0, whole)
            if frame.height or self.parquet is None:
                self._parquet(frame)
            return
        if self.file is None:
            self.file = open(self.path, "wb")  # noqa: SIM115 (closed by close/abort)
        pieces = _Pieces(self.file.fileno())
        try:
            if self.fmt == "csv":
                frame.write_csv(pieces, include_header=self.header)
                self.header = False
            else:
                frame.write_ndjson(pieces)
        except OSError:
            # (Polars re-raises whatever a write raised as a new OSError carrying only its text: the
            # write's own error, with its errno, names the failure, e.g. a full disk; a Ctrl-C stays one)
            if pieces.error is not None:
                raise pieces.error from None
            raise

    def _parquet(self, frame: pl.DataFrame) -> None:
        import pyarrow.parquet as pq

        table = frame.to_arrow(compat_level=pl.CompatLevel.newest())  # (string views: no copy)
        if self.parquet is None:
            # Dictionaries for text (labels repeat), none for money and counts (nearly every value
            # differs: building one cost 0.4 CPU s a million rows for nothing) nor for request ids
            # (each its own: the writer hashed a page's worth before giving up, 0.1 s a million);
            # statistics for time and counts, which readers filter on (text and money statistics
            # cost 0.5 s more).
            strings = [c for c, t in frame.schema.items() if t == pl.String and c != "request_id"]
            stats = [c for c, t in frame.schema.items() if t.is_temporal() or t.is_integer()]
            self.parquet = pq.ParquetWriter(self.path, table.schema, compression=self.compression,
                                            compression_level=self.level,
                                            use_dictionary=strings or False, write_statistics=stats or False)
        if table.num_rows:
            self.parquet.write_table(table, row_group_size=self.group)

    def sink(self, lf: pl.LazyFrame) -> None:
        sink_in_groups(lf, self.append, self.group)

    def close(self, empty: pl.LazyFrame) -> None:
        if self.parquet is None and self.file is None:  # no rows at all: the columns alone
            self.append(empty.collect())
        if self.carry is not None:
            self._parquet(self.carry)
            self.carry = None
        if self.parquet is not None:
            self.parquet.close()
            self.parquet = None
        if self.file is not None:
            self.file.close()
            self.file = None

    def abort(self) -> None:
        for handle in (self.parquet, self.file):
            if handle is not None:
                handle.close()
        self.parquet = self.file = None


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
    from rich.text import Text

    for m in sorted(book.models.values(), key=lambda m: (m.provider, m.periods[-1].start), reverse=False):
        p = m.periods[-1]
        extra = []
        for w in (m.long_context[-1:] + m.fast[-1:]):  # the latest window of each kind
            name = f">{w.threshold // 1000}K long" if w.kind == "long_context" else "fast"
            extra.append(name + (f" until {w.end.date()}" if w.end else ""))
        if m.us_geo:
            extra.append("us_geo")
        if m.regional_premium:
            extra.append("regional")
        # Text, not markup: an overlay's model id is data (`[/bold]` would end a tag that never began)
        t.add_row(*map(Text, (m.id, m.provider, p.start.date().isoformat(), _rate(p.rates.input),
                              _rate(p.rates.cache_write_5m), _rate(p.rates.cache_write_1h), _rate(p.rates.cache_read),
                              _rate(p.rates.output), ", ".join(extra))))
    console = Console(file=io.StringIO(), width=140, color_system=None)
    console.print(t)
    return console.file.getvalue()


def price_show_text(book, m) -> str:
    out = [f"{m.id} ({m.name}), provider {m.provider}, family {m.family}"]
    if m.aliases or m.platform_ids:
        out.append(f"  also known as: {', '.join((*m.aliases, *m.platform_ids))}")
    provider = book.providers[m.provider]
    flags = [f for f, on in ((_factor_text("us_geo", provider.multipliers.get("us_geo", ())), m.us_geo),
                             (_factor_text("regional", provider.multipliers.get("regional", ())), m.regional_premium),
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
        if p.source:
            checked = f"checked {p.checked}; " if p.checked else ""  # an imported price was not checked
            out.append(f"    source: {p.source} ({checked}{p.origin})")
        if p.note:
            out.append(f"    note: {p.note}")
    for w in m.windows():  # dated on their own: a new period keeps them
        name = "long context" if w.kind == "long_context" else "fast"
        cond = f" when prompt > {w.threshold:,} tokens" if w.threshold else ""
        out.append(f"  {name}{cond} ({w.span()}): input {_rate(w.rates.input)}, 5m {_rate(w.rates.cache_write_5m)}, "
                   f"1h {_rate(w.rates.cache_write_1h)}, read {_rate(w.rates.cache_read)}, output {_rate(w.rates.output)}"
                   f"  [{w.about.confidence}]")
        if w.about.source:
            out.append(f"    source: {w.about.source} (checked {w.about.checked}; {w.about.origin})")
        if w.about.note:
            out.append(f"    note: {w.about.note}")
    return "\n".join(out) + "\n"


def _factor_text(name: str, factors) -> str:
    """'regional x1.1 from 2025-09-29': a multiplier with the dates it holds."""
    if not factors:
        return f"{name} (no multiplier in the book)"
    return name + " " + ", ".join(f"x{f.value}" + (f" from {f.start.date()}" if f.start else "")
                                  + (f" until {f.end.date()}" if f.end else "") for f in factors)


def _blank_text(result) -> str:
    """What a reprice quarantined: records whose model cleans to nothing (see store._blank_records)."""
    said = [f"{result.quarantined:,} stored request{'' if result.quarantined == 1 else 's'}"] if result.quarantined else []
    if result.kept_quarantined:
        said.append(f"{result.kept_quarantined:,} kept cop{'y' if result.kept_quarantined == 1 else 'ies'}")
    if not said:
        return ""
    return (f"; quarantined {' and '.join(said)} whose model cleans to nothing" + (
        f", {result.restored:,} kept cop{'y' if result.restored == 1 else 'ies'} stored in their place"
        if result.quarantined else ""))


def reprice_text(result) -> str:
    """What `llm-cost reprice` changed: old and new cost per month and model, and the difference."""
    from rich.console import Console
    from rich.table import Table

    if not result.parts and not result.kept:
        return "nothing to re-price: the store holds no rows in that window\n"
    if not result.parts:  # (kept copies alone: no stored row of the window to show old vs new)
        return (f"re-priced {result.kept:,} kept cop{'y' if result.kept == 1 else 'ies'} of requests another file holds "
                f"(they come back if it is replaced) with price book {result.book.version}"
                + (f" + overlays {', '.join(result.book.overlays)}" if result.book.overlays else "")
                + "; the store holds no rows in that window\n")
    t = Table(show_footer=True, header_style="bold", footer_style="bold")
    for name, foot in (("month", "total"), ("model", ""), ("requests", f"{result.changes['requests'].sum():,}"),
                       ("old $", money_text(result.old_total, DISPLAY_PLACES)),
                       ("new $", money_text(result.new_total, DISPLAY_PLACES)),
                       ("difference $", money_text(result.difference, DISPLAY_PLACES))):
        t.add_column(name, footer=foot, justify="left" if name in ("month", "model") else "right")
    from rich.text import Text

    for r in result.changes.to_dicts():
        t.add_row(*map(Text, (r["month"], r["model"] or "(unpriced)", f"{r['requests']:,}",
                              money_text(r["old_cost"], DISPLAY_PLACES), money_text(r["new_cost"], DISPLAY_PLACES),
                              money_text(r["difference"], DISPLAY_PLACES))))
    console = Console(file=io.StringIO(), width=160, color_system=None)
    console.print(t)
    book = result.book
    console.print(f"re-priced {result.parts} part(s) in {', '.join(result.months)} with price book {book.version}"
                  + (f" + overlays {', '.join(book.overlays)}" if book.overlays else "")
                  + (f", and {result.kept:,} kept cop{'y' if result.kept == 1 else 'ies'} of requests another file"
                     " holds (they come back if it is replaced)" if result.kept else "")
                  + _blank_text(result)
                  + f"; exact difference {money_text(result.difference)} USD; money rounded {ROUNDING} to cents "
                    "for display", highlight=False, soft_wrap=True, markup=False)
    return console.file.getvalue()

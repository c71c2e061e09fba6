"""A reviewer's attack on issue 13 §4-§7 after it landed: each test is a way through that worked
(an input overwritten, a key printed, a formula or invisible character passed) before its fix."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from analyzer import safe_text
from analyzer.cli import main

SONNET = "claude-sonnet-4-5"
KEY = "sk-ant-api03-" + "A" * 40 + "a1B2"
HEADER = "timestamp,model,input_tokens,output_tokens,request_id,workspace\n"


def run(*args, input=None):
    return CliRunner().invoke(main, [str(a) for a in args], input=input, catch_exceptions=False)


def _csv(v: str) -> str:
    return '"' + v.replace('"', '""') + '"'


def log(path: Path, rows: list[tuple[str, str, str]]) -> Path:
    """(model, request id, workspace) per request, 1000 input + 1000 output tokens each."""
    lines = [f"2026-10-08T00:00:{i:02d}Z,{_csv(m)},1000,1000,{_csv(r)},{_csv(w)}" for i, (m, r, w) in enumerate(rows)]
    path.write_text(HEADER + "\n".join(lines) + "\n", encoding="utf-8", newline="")
    return path


def cli(*args, stdin=None, cwd=None):
    """The installed command in a real process: `-` must be a real file descriptor 0."""
    return subprocess.run([sys.executable, "-m", "analyzer", *map(str, args)], stdin=stdin, cwd=cwd,
                          capture_output=True, text=True, timeout=120)


# ---------------------------------------------------------------------------------------------------
# §4 An output onto the log read from standard input


@pytest.mark.parametrize("target", ["v.csv", "/dev/stdin", "/dev/fd/0"])
def test_an_output_onto_the_file_behind_stdin_is_refused(tmp_path, target):
    v = log(tmp_path / "v.csv", [(SONNET, "r1", "w")])
    before = v.read_bytes()
    with open(v, "rb") as stdin:
        r = cli("report", "-", "-o", target, "--format", "csv", "-q", stdin=stdin, cwd=tmp_path)
    assert r.returncode == 2, r.stderr
    assert r.stderr.startswith("llm-cost: error: -o ") and "standard input" in r.stderr, r.stderr
    assert v.read_bytes() == before


def test_a_quarantine_file_onto_stdin_is_refused(tmp_path):
    v = tmp_path / "v.csv"
    v.write_text(HEADER + "not a time,x,1,1,r1,w\n")
    before = v.read_bytes()
    with open(v, "rb") as stdin:
        r = cli("report", "-", "--quarantine", "v.csv", "-q", stdin=stdin, cwd=tmp_path)
    assert r.returncode == 2 and "--quarantine v.csv" in r.stderr, r.stderr
    assert v.read_bytes() == before


def test_stdin_from_a_terminal_or_pipe_does_not_block_stdout(tmp_path):
    v = log(tmp_path / "v.csv", [(SONNET, "r1", "w")])
    with open(v, "rb") as stdin:
        r = cli("report", "-", "-o", "/dev/stdout", "--format", "csv", "-q", stdin=stdin, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("model,requests,")


# ---------------------------------------------------------------------------------------------------
# §6 Keys where the first rules did not look

GOOGLE = "AIza" + "SyA1234567890abcdefghijklmnopqr" + "tuvw"  # AIza + 35 characters
AWS_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"


@pytest.mark.parametrize("value,masked", [
    ("user_" + KEY, "user_sk-ant-api03-\u2026a1B2"),  # `_` is a word character: `\b` let it pass
    ("keysk-ant-api03-" + "x" * 20 + "WXYZ", "keysk-ant-api03-\u2026WXYZ"),
    ("team_sk-" + "a" * 20 + "bcde", "team_sk-\u2026bcde"),
    ("prod_AKIAIOSFODNN7EXAMPLE", "prod_AKIA\u2026MPLE"),
    (GOOGLE, "AIza\u2026tuvw"),
    (f"aws_secret_access_key={AWS_SECRET}", "aws_secret_access_key=\u2026EKEY"),
    (f'{{"Credentials": {{"SecretAccessKey": "{AWS_SECRET}"}}}}', '{"Credentials": {"SecretAccessKey": "\u2026EKEY"}}'),
    ("Authorization: Basic dXNlcjpwYXNzd29yZHNlY3JldA==", "Authorization: Basic \u2026JldA"),
    ('{"headers": {"authorization": "Token abcdefghijklmnop"}}', '{"headers": {"authorization": "Token \u2026mnop"}}'),
    ("BEARER abcdefghijklmnop", "BEARER \u2026mnop"),
    (f'{{"a": {{"b": ["{KEY}"]}}}}', '{"a": {"b": ["sk-ant-api03-\u2026a1B2"]}}'),
    (f"{KEY},{KEY}", "sk-ant-api03-\u2026a1B2,sk-ant-api03-\u2026a1B2"),
    # Words stay words.
    ("task-" + "a" * 30, "task-" + "a" * 30), ("risk-management-plan-2024", "risk-management-plan-2024"),
    ("basic subscription plan", "basic subscription plan"), ("AIzaShort", "AIzaShort"),
])
def test_more_key_shapes_are_masked_alike_in_python_and_polars(value, masked):
    import polars as pl

    assert safe_text.mask_secrets(value) == masked
    assert pl.select(safe_text.mask_secrets_expr(pl.lit(value))).item() == masked


@pytest.fixture
def keyed(tmp_path):
    """A key pasted as a model id, one used as a request id, one in a workspace after `user_`."""
    return log(tmp_path / "k.csv", [(KEY, "r1", "w"), (SONNET, KEY, "w"), (SONNET, "r3", "user_" + KEY)])


@pytest.mark.parametrize("ext", ["csv", "jsonl", "parquet"])
def test_price_rows_mask_keys_in_model_ids_request_ids_and_reasons(tmp_path, keyed, ext):
    out = tmp_path / f"rows.{ext}"
    r = run("price", keyed, "-o", out, "--quarantine", tmp_path / "q.jsonl", "-q")
    assert r.exit_code == 0, r.output
    assert b"A" * 20 not in out.read_bytes()
    r = run("price", keyed, "-o", out, "--quarantine", tmp_path / "q.jsonl", "-q", "--reveal-keys")
    assert r.exit_code == 0 and ext == "parquet" or out.read_bytes().count(KEY.encode()) >= 3


@pytest.mark.parametrize("fmt", ["table", "csv", "json", "jsonl", "markdown"])
def test_report_masks_a_key_after_an_underscore(tmp_path, keyed, fmt):
    r = run("report", keyed, "--by", "workspace,model_raw", "--format", fmt, "--quarantine", tmp_path / "q.jsonl")
    assert r.exit_code == 0, r.output
    shown = "user_sk-ant-api03-\\u2026a1B2" if fmt == "json" else "user_sk-ant-api03-\u2026a1B2"
    assert "A" * 20 not in r.output and shown in r.output


def test_a_key_in_a_file_name_is_masked_in_notes_and_quarantine(tmp_path):
    name = tmp_path / f"batch_{KEY}.jsonl"
    # A Message Batches result carries no time: the note names the file (DESIGN §6).
    name.write_text(json.dumps({"custom_id": "c1", "result": {"type": "succeeded", "message": {
        "id": "msg_1", "type": "message", "model": SONNET, "usage": {"input_tokens": 10, "output_tokens": 5}}}})
        + "\n{not json\n")
    q = tmp_path / "q.jsonl"
    r = run("report", name, "--format", "json", "--quarantine", q, "-q")
    assert r.exit_code == 0, r.output
    notes = json.loads(r.stdout)["notes"]
    assert any("batch_sk-ant-api03-\u2026a1B2" in n for n in notes), notes
    assert "A" * 20 not in r.stdout
    assert "A" * 20 not in q.read_text()


@pytest.mark.parametrize("args", [["report", "{v}", "--by", KEY], ["report", "{v}", "--since", KEY],
                                  ["prices", "show", KEY], ["report", KEY]])
def test_a_key_in_an_error_message_is_masked(tmp_path, args):
    v = log(tmp_path / "v.csv", [(SONNET, "r1", "w")])
    r = run(*[a.format(v=v) for a in args])
    assert r.exit_code == 2, r.output
    assert "A" * 20 not in r.stderr and "sk-ant-api03-\u2026a1B2" in r.stderr, r.stderr


# ---------------------------------------------------------------------------------------------------
# §5 Invisible characters the first list missed

HIDDEN = {"word joiner": "a\u2060b", "mongolian vowel separator": "a\u180eb", "soft hyphen": "a\u00adb",
          "tag characters": "ok\U000e0069\U000e0067\U000e006eok", "interlinear": "a\ufff9b", "arabic": "a\u0600b"}


def test_every_format_character_is_escaped():
    import unicodedata

    cf = {c for c in range(0x110000) if unicodedata.category(chr(c)) == "Cf"}
    # A newer Unicode may add some: each must be in the list (the list may hold older ones).
    assert cf <= set(safe_text.FORMAT_CHARACTERS), sorted(cf - set(safe_text.FORMAT_CHARACTERS))
    assert all(chr(c) in safe_text.TERMINAL_ESCAPES for c in cf)


@pytest.mark.parametrize("fmt", ["table", "markdown"])
def test_hidden_characters_are_shown_escaped(tmp_path, fmt):
    v = log(tmp_path / "h.csv", [(SONNET, f"r{i}", w) for i, w in enumerate(HIDDEN.values())])
    r = run("report", v, "--by", "workspace", "--format", fmt, "--quarantine", tmp_path / "q.jsonl", "-q")
    assert r.exit_code == 0, r.output
    hidden = [c for c in r.stdout if c in safe_text.TERMINAL_ESCAPES and c != "\n"]
    assert not hidden, hidden
    # (inside the text: invisible characters at a label's ends are trimmed, labels.trim)
    for shown in ("a\\u2060b", "a\\u180eb", "a\\xadb", "ok\\U000e0069\\U000e0067\\U000e006eok"):
        assert shown in r.stdout, shown


# ---------------------------------------------------------------------------------------------------
# §5 Formulas the first rule let through


@pytest.mark.parametrize("value,cell", [
    (" =1+1", "' =1+1"), ("\u00a0=cmd", "'\u00a0=cmd"), ("\u3000@SUM(A1)", "'\u3000@SUM(A1)"),
    ("\uff1dSUM(A1)", "'\uff1dSUM(A1)"), ("\uff0bcmd", "'\uff0bcmd"), ("\uff0d1+1", "'\uff0d1+1"), ("\uff20x", "'\uff20x"),
    ("\n=1+1", "'\n=1+1"), ("-5\n", "'-5\n"),  # Python's `$` matched before the final \n: the two rules differed
    ("-5", "-5"), ("+3.5", "+3.5"), ("a=b", "a=b"), ("", ""),
])
def test_csv_rule_catches_prefixes_after_space_and_full_width(value, cell):
    import polars as pl

    assert safe_text.csv_cell(value) == cell
    assert pl.select(safe_text.csv_cell_expr(pl.lit(value))).item() == cell


@pytest.mark.parametrize("command", ["report", "price"])
def test_full_width_formulas_are_neutralised_in_csv(tmp_path, command):
    v = log(tmp_path / "f.csv", [(SONNET, "r1", "\uff1dHYPERLINK(\"http://evil.example\")"), (SONNET, "r2", "\uff0bcmd")])
    out = tmp_path / "out.csv"
    r = run(command, v, "--by" if command == "report" else "--strict", *(["workspace,model_raw"] if command == "report" else []),
            "-o", out, "--quarantine", tmp_path / "q.jsonl", "-q")
    assert r.exit_code in (0, 1), r.output
    import csv

    cells = [c for row in csv.reader(out.read_text(encoding="utf-8").splitlines()) for c in row]
    assert "'\uff1dHYPERLINK(\"http://evil.example\")" in cells and "'\uff0bcmd" in cells, cells
    assert not [c for c in cells if c and c[0] in "\uff1d\uff0b"], cells


# ---------------------------------------------------------------------------------------------------
# §5 Markdown: emphasis and strikethrough from data; notes and audit lines quoting file names


@pytest.mark.parametrize("value,cell", [
    ("__init__", "\\_\\_init\\_\\_"), ("_x_", "\\_x\\_"), ("~~gone~~", "\\~\\~gone\\~\\~"),
    ("cache_read", "cache_read"), ("a_b_c_d", "a_b_c_d"), ("x_", "x\\_"), ("a\\_b", "a\\\\\\_b"),
])
def test_markdown_escapes_emphasis_but_not_underscores_inside_words(value, cell):
    import polars as pl

    assert safe_text.markdown_cell(value) == cell
    assert pl.select(safe_text.markdown_expr(pl.lit(value))).item() == cell


def _hypothesis_markdown_round_trip():
    from hypothesis import given
    from hypothesis import strategies as st

    from tests.hostile.test_safety import _md_unescape

    @given(st.text(alphabet=st.sampled_from(list("_~*ab1 \\|`\u2060\U000e0041\n")), max_size=25))
    def prop(text):
        import polars as pl

        cell = safe_text.markdown_cell(text)
        assert pl.select(safe_text.markdown_expr(pl.lit(text))).item() == cell
        assert _md_unescape(cell) == text
        assert "\n" not in cell and "~" not in cell.replace("\\~", "")

    return prop


test_markdown_cells_round_trip_and_agree = _hypothesis_markdown_round_trip()


def test_a_note_naming_a_file_is_markdown_escaped(tmp_path):
    name = tmp_path / "b|[x](http:evil).jsonl"
    name.write_text(json.dumps({"custom_id": "c1", "result": {"type": "succeeded", "message": {
        "id": "msg_1", "type": "message", "model": SONNET, "usage": {"input_tokens": 10, "output_tokens": 5}}}}) + "\n")
    r = run("report", name, "--format", "markdown", "--quarantine", tmp_path / "q.jsonl", "-q")
    assert r.exit_code == 0, r.output
    note = next(line for line in r.stdout.splitlines() if line.startswith("- note:"))
    assert "b\\|\\[x\\](http:evil).jsonl" in note, note


def test_audit_markdown_summary_escapes_the_invoice_name(tmp_path):
    v = log(tmp_path / "v.csv", [(SONNET, "r1", "w")])
    invoice = tmp_path / "inv|[x](http:evil)_.csv"
    invoice.write_text("period,model,amount_usd\n2026-10-08,claude-sonnet-4-5,0.018\n")
    r = run("audit", v, "--invoice", invoice, "--format", "markdown", "--quarantine", tmp_path / "q.jsonl", "-q")
    assert r.exit_code in (0, 1), r.output
    line = next(line for line in r.stdout.splitlines() if line.startswith("- invoice "))
    assert "inv\\|\\[x\\](http:evil)\\_.csv" in line, line


# ---------------------------------------------------------------------------------------------------
# §5 A terminal named as a file (`-o /dev/tty`, `-o /dev/stdout` on a terminal) is the screen


@pytest.fixture
def terminal():
    """A pseudo-terminal: its name as an output path, and what reached it."""
    import os
    import pty

    master, slave = pty.openpty()
    name = os.ttyname(slave)

    def screen() -> bytes:
        import select

        got = b""
        while select.select([master], [], [], 0.2)[0]:
            got += os.read(master, 65536)
        return got

    yield name, screen
    os.close(master)
    os.close(slave)


@pytest.mark.parametrize("fmt", ["csv", "json", "markdown", "table"])
def test_an_output_that_is_a_terminal_gets_escapes_not_sequences(tmp_path, terminal, fmt):
    name, screen = terminal
    # (escapes inside the text: a label's control characters at its ends are trimmed, labels.trim)
    v = log(tmp_path / "e.csv", [(SONNET, "r1", "w\x1b[2J\x1b]8;;http://evil\x07x\x1b]8;;\x07w")])
    r = run("report", v, "--by", "workspace", "--format", fmt, "-o", name, "--quarantine", tmp_path / "q.jsonl", "-q")
    assert r.exit_code == 0, r.output
    shown = screen()
    assert b"\x1b" not in shown and b"\x07" not in shown, shown
    assert {"csv": b"\\x1b[2J", "table": b"\\x1b[2J", "json": b"\\u001b[2J", "markdown": b"\\x1b\\[2J"}[fmt] in shown


def test_parquet_onto_a_terminal_is_refused(tmp_path, terminal):
    name, screen = terminal
    v = log(tmp_path / "v.csv", [(SONNET, "r1", "w")])
    r = run("report", v, "--format", "parquet", "-o", name, "--quarantine", tmp_path / "q.jsonl", "-q")
    assert r.exit_code == 2 and "binary output needs a file" in r.stderr, r.output
    assert screen() == b""


@pytest.mark.parametrize("target", ["-", "/dev/stdout", "rows"])
def test_price_without_a_file_extension_says_which_extensions(tmp_path, target, monkeypatch):
    monkeypatch.chdir(tmp_path)
    v = log(tmp_path / "v.csv", [(SONNET, "r1", "w")])
    r = run("price", v, "-o", target, "-q")
    assert r.exit_code == 2 and ".parquet, .csv or .jsonl" in r.stderr and "--format" not in r.stderr, r.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["v.csv"]  # no file named `-`


# ---------------------------------------------------------------------------------------------------
# §7 Hostile option values: one line, naming the option


@pytest.mark.parametrize("tz", ["Europe", "A" * 300, "right/UTC", "posix/Europe/Berlin", "../../etc/passwd"])
def test_a_bad_time_zone_is_one_line_naming_tz(tmp_path, tz):
    v = log(tmp_path / "v.csv", [(SONNET, "r1", "w")])
    r = run("report", v, "--tz", tz, "--by", "day", "--quarantine", tmp_path / "q.jsonl")
    assert r.exit_code == 2, r.output
    assert r.stderr.startswith("llm-cost: error: --tz ") and "not an IANA time zone" in r.stderr, r.stderr
    assert "tzdata" not in r.stderr and "\n" not in r.stderr.rstrip("\n")


# ---------------------------------------------------------------------------------------------------
# §4 A run ended by SIGTERM (cron's timeout) leaves no temporary file behind


def test_sigterm_removes_the_runs_temporary_files(tmp_path):
    """It failed once under load: the test signalled when *any* file appeared (tempfile's own probe
    of the directory, or the spool between mkstemp and its registration), and a signal there left
    the file. Now the condition is the run's stdin spool, which exists only once it is registered
    (sources.temporary_file), and the run is then blocked reading stdin: whenever the signal lands
    after that, every temporary file must go."""
    import os
    import signal
    import time

    temp = tmp_path / "tmp"
    temp.mkdir()
    proc = subprocess.Popen([sys.executable, "-m", "analyzer", "report", "-", "-q"], stdin=subprocess.PIPE,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=tmp_path,
                            env={**os.environ, "TMPDIR": str(temp)})
    proc.stdin.write(HEADER.encode())
    proc.stdin.flush()
    deadline = time.monotonic() + 300  # (start-up alone is seconds on a loaded machine)
    while not list(temp.glob("llm-cost-run-*/llm-cost-stdin-*")) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)  # polling the condition (the spool exists), not waiting a guessed time
    assert list(temp.glob("llm-cost-run-*/llm-cost-stdin-*")), f"the run never spooled stdin: {proc.poll()}, {proc.stderr.read()!r}"
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=300)
    proc.stdin.close()
    assert proc.returncode == 128 + signal.SIGTERM, proc.stderr.read()
    assert list(temp.iterdir()) == []


@pytest.mark.parametrize("interrupt", [SystemExit(143), KeyboardInterrupt()])
def test_a_signal_as_a_temporary_file_is_created_leaves_nothing(tmp_path, monkeypatch, interrupt):
    """The signal handler (sys.exit) runs at any bytecode, so it may land just after the file is
    created: the path must already be registered for removal at exit."""
    import io
    import os
    import tempfile

    from analyzer import sources

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    monkeypatch.setattr(sources, "_PROCESS_DIR", None)
    monkeypatch.setattr(sources, "_STDIN_SPOOL", None)
    monkeypatch.setattr(sources, "_TEMPORARY", [])
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(HEADER.encode())))
    real_open = os.open

    def open_then_signalled(path, flags, *a, **kw):
        fd = real_open(path, flags, *a, **kw)
        if os.path.basename(str(path)).startswith("llm-cost-"):
            os.close(fd)
            raise interrupt
        return fd

    monkeypatch.setattr(os, "open", open_then_signalled)
    with pytest.raises(type(interrupt)):
        sources._spool_stdin()
    monkeypatch.setattr(os, "open", real_open)
    left = list(tmp_path.glob("llm-cost-run-*/llm-cost-*"))
    assert len(left) == 1 and str(left[0]) in sources._TEMPORARY
    sources._remove_temporary()
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------------------------------------------
# §4 A run killed with SIGKILL (the OOM killer, `kill -9`, a power cut) while writing -o leaves the
# previous file whole and nothing beside it: the output is built in a file with no name (O_TMPFILE)
# and given its name only when whole. A named temporary file (`.llm-cost-*.tmp`, or the parts
# directory of a multi-file `price`) was left behind, half written, at every such kill.


def _writing_in(pid: int, directory: Path, target: Path) -> bool:
    """Whether the process holds a file open in `directory` other than `target`: the output being
    built (unnamed: "dir/#123 (deleted)"; named: "dir/.llm-cost-....tmp" or a parts directory's)."""
    import os

    fds = Path(f"/proc/{pid}/fd")
    try:
        links = [os.readlink(fds / n) for n in os.listdir(fds)]
    except OSError:
        return False
    return any(link.startswith(f"{directory}/") and link != str(target) for link in links)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="O_TMPFILE is Linux's")
@pytest.mark.parametrize("ext, files", [("parquet", 1), ("csv", 3)])
def test_sigkill_while_price_writes_leaves_the_old_file_and_nothing_else(tmp_path, ext, files):
    import os
    import signal
    import time

    logs = tmp_path / "logs"
    logs.mkdir()
    rows = "".join(f"2026-10-01T10:00:{i % 60:02d}Z,claude-sonnet-4-5,{i},{i},r{i},w{i % 7}\n" for i in range(20000))
    for n in range(files):
        (logs / f"{n}.csv").write_text(HEADER + rows.replace(",r", f",f{n}r"))
    out = tmp_path / "out"
    out.mkdir()
    target = out / f"rows.{ext}"
    target.write_text("PRECIOUS\n")
    proc = subprocess.Popen([sys.executable, "-m", "analyzer", "price", str(logs), "-o", str(target), "-q",
                             "--quarantine", str(tmp_path / "q.jsonl")], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, cwd=tmp_path)
    deadline = time.monotonic() + 300
    # The condition, not a guessed delay: the run holds the file it is building in the output's directory.
    while not _writing_in(proc.pid, out, target) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert proc.poll() is None, f"the run ended before it wrote: {proc.stderr.read()!r}"
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    assert target.read_text() == "PRECIOUS\n"
    assert sorted(os.listdir(out)) == [target.name]


def test_outputs_are_still_atomic_where_unnamed_files_are_not_supported(tmp_path, monkeypatch):
    """A file system without O_TMPFILE (or no /proc) falls back to a named temporary file beside
    the output, removed when the write fails."""
    from analyzer import writers

    monkeypatch.setattr(writers, "_unnamed_file", lambda directory, mode: None)
    target = tmp_path / "r.csv"
    target.write_text("old\n")
    writers.atomic_write(str(target), lambda tmp: Path(tmp).write_text("new\n"))
    assert target.read_text() == "new\n"

    def half(tmp):
        Path(tmp).write_text("half")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        writers.atomic_write(str(target), half)
    assert target.read_text() == "new\n" and [p.name for p in tmp_path.iterdir()] == ["r.csv"]
    r = CliRunner().invoke(main, ["price", "fixtures/sample", "-o", str(tmp_path / "p.parquet"), "-q",
                                  "--quarantine", str(tmp_path / "q.jsonl")])
    assert r.exit_code == 0 and sorted(p.name for p in tmp_path.iterdir()) == ["p.parquet", "q.jsonl", "r.csv"]


@pytest.mark.parametrize("mode, umask, expect", [(None, 0o022, 0o644), (None, 0o077, 0o600), (0o600, 0o022, 0o600)])
def test_an_unnamed_output_gets_the_permissions_a_named_one_would(tmp_path, mode, umask, expect):
    import os

    from analyzer import writers

    old = os.umask(umask)
    try:
        writers.atomic_write(str(tmp_path / "x"), lambda tmp: Path(tmp).write_text("x"), mode=mode)
    finally:
        os.umask(old)
    assert (tmp_path / "x").stat().st_mode & 0o777 == expect


# -- a process killed with -9 cannot remove its temporary files: the next one does --------------------

def _blocked_on_stdin(temp):
    """A `report -` run holding its stdin spool (in its own llm-cost-run-* directory), blocked reading."""
    import os
    import time

    proc = subprocess.Popen([sys.executable, "-m", "analyzer", "report", "-", "-q"], stdin=subprocess.PIPE,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env={**os.environ, "TMPDIR": str(temp)})
    proc.stdin.write(HEADER.encode())
    proc.stdin.flush()
    deadline = time.monotonic() + 300
    while not list(temp.glob("llm-cost-run-*/llm-cost-stdin-*")) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)  # polling the condition (the spool exists)
    assert list(temp.glob("llm-cost-run-*/llm-cost-stdin-*")), proc.stderr.read()
    return proc


def test_the_temporary_files_of_a_killed_run_are_removed_by_the_next(tmp_path):
    import os
    import signal

    temp = tmp_path / "tmp"
    temp.mkdir()
    killed = _blocked_on_stdin(temp)
    left = list(temp.glob("llm-cost-run-*"))
    live = _blocked_on_stdin(temp)  # (a run still going: its directory must stay)
    live_dir = [d for d in temp.glob("llm-cost-run-*") if d not in left]
    killed.send_signal(signal.SIGKILL)
    killed.wait(timeout=60)
    assert all(d.exists() for d in left)  # kill -9: nothing could be removed
    foreign = temp / "llm-cost-run-notours"  # no marker: not known to be ours, never touched
    foreign.mkdir()
    (foreign / "keep").write_text("x")
    run = subprocess.run([sys.executable, "-m", "analyzer", "report", "-", "-q"], input=HEADER.encode(),
                         capture_output=True, env={**os.environ, "TMPDIR": str(temp)}, timeout=300)
    assert run.returncode == 0, run.stderr
    assert not any(d.exists() for d in left)
    assert all(d.exists() for d in live_dir) and (foreign / "keep").exists()
    live.send_signal(signal.SIGTERM)
    live.wait(timeout=300)
    assert sorted(p.name for p in temp.iterdir()) == ["llm-cost-run-notours"]


@pytest.mark.parametrize("case", ["other host", "live", "pid reused", "link", "half marker", "other tool"])
def test_only_an_ended_llm_cost_process_of_this_host_loses_its_directory(tmp_path, case):
    import json
    import os
    import socket

    from analyzer import sources

    ended = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    marker = {"tool": "llm-cost", "pid": int(ended.stdout), "started": None, "host": socket.gethostname()}
    if case == "other host":
        marker["host"] = "another-host"
    elif case == "live":
        marker.update(pid=os.getpid(), started=sources.process_started(os.getpid()))
    elif case == "pid reused":  # this pid now names a process that started at another time
        marker.update(pid=os.getpid(), started=-1)
    elif case == "other tool":
        marker["tool"] = "other"
    target = tmp_path / "elsewhere"
    target.mkdir()
    (target / "data").write_text("x")
    d = tmp_path / "llm-cost-run-x"
    if case == "link":
        (target / sources.RUN_DIR_MARKER).write_text(json.dumps(marker))
        d.symlink_to(target)
    else:
        d.mkdir()
        text = json.dumps(marker)
        (d / sources.RUN_DIR_MARKER).write_text(text[:10] if case == "half marker" else text)
    removed = sources.sweep_run_dirs(str(tmp_path))
    assert (target / "data").exists()
    assert (removed == [str(d)]) == (case == "pid reused") and d.exists() == (case != "pid reused")

"""Hostile input, issue 12 §3, §6, §7, §8: what is read, each real file once, and every row of it
accounted for. Each case: the exact accounting, the exit code and the message.

Costs by hand (USD per million tokens): claude-sonnet-4-5 input 3, output 15; claude-haiku-4-5 input 1,
output 5. A row of SONNET costs 1000*3/1e6 + 100*15/1e6 = 0.0045; a row of HAIKU 2000*1/1e6 +
200*5/1e6 = 0.003.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from decimal import Decimal
from pathlib import Path

import pytest
from click.testing import CliRunner

from analyzer.cli import main
from analyzer.sources import NOT_UTF8

ROOT = Path(__file__).resolve().parents[2]
INVOICE = ROOT / "fixtures/invoices/admin_analytics_cost.json"
TRANSCRIPT = ROOT / "fixtures/dialects/claude-code/projects/-home-dev-acme-billing/2ff46cd5-f4e7-4724-bb20-579dae7956ea.jsonl"
HEADER = "request_id,timestamp,model,input_tokens,output_tokens\n"
SONNET, HAIKU = Decimal("0.0045"), Decimal("0.003")


def csv_row(rid: str, model: str = "claude-sonnet-4-5") -> str:
    tokens = "1000,100" if model == "claude-sonnet-4-5" else "2000,200"
    return f"{rid},2026-10-10T10:00:00Z,{model},{tokens}\n"


def jsonl_row(rid: str, model: str = "claude-sonnet-4-5") -> str:
    i, o = (1000, 100) if model == "claude-sonnet-4-5" else (2000, 200)
    return json.dumps({"request_id": rid, "timestamp": "2026-10-10T10:00:00Z", "model": model,
                       "input_tokens": i, "output_tokens": o}) + "\n"


def write(path: Path, text: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    (path.write_bytes if isinstance(text, bytes) else path.write_text)(text)
    return path


def report(*args, input=None, cwd: Path | None = None):
    """`llm-cost report ARGS --format json`: (exit code, the JSON report or None, stderr)."""
    old = os.getcwd()
    if cwd is not None:
        os.chdir(cwd)
    try:
        r = CliRunner().invoke(main, ["report", *map(str, args), "--format", "json"], input=input,
                               catch_exceptions=False)
    finally:
        os.chdir(old)
    doc = json.loads(r.stdout) if r.exit_code == 0 else None
    return r.exit_code, doc, r.stderr


def counts(doc: dict) -> dict:
    a = doc["accounting"]
    assert a["balanced"]
    return {k: a[k] for k in ("rows_read", "priced", "unpriced", "duplicates", "quarantined") if a[k]}


def cost(doc: dict) -> Decimal:
    return Decimal(doc["totals"]["cost"])


# ---------------------------------------------------------------------------------------------- §3 paths


def test_a_symlink_loop_under_a_glob_reads_the_file_once(tmp_path):
    """`t/a/loop -> ..` made `t/**/*.csv` read one file 41 times; two loops never finished."""
    write(tmp_path / "t/a/x.csv", HEADER + csv_row("r1"))
    (tmp_path / "t/a/loop").symlink_to("..")
    (tmp_path / "t/b").mkdir()
    (tmp_path / "t/b/loop").symlink_to("../..")
    (tmp_path / "t/b/up").symlink_to("../a")
    code, doc, err = report("t/**/*.csv", "--quarantine", tmp_path / "q.jsonl", cwd=tmp_path)
    assert code == 0, err
    assert counts(doc) == {"rows_read": 1, "priced": 1} and cost(doc) == SONNET
    assert doc["accounting"]["files"] == 1
    skipped = doc["accounting"]["files_skipped"]
    assert set(skipped) == {"t/a/loop", "t/b/loop", "t/b/up"}
    assert all(why.startswith("link to a directory (not followed") for why in skipped.values())


def test_a_symlink_loop_in_a_walked_directory_and_a_glob_over_it(tmp_path):
    write(tmp_path / "t/x.jsonl", jsonl_row("r1"))
    (tmp_path / "t/self").symlink_to(".")
    for arg in (tmp_path / "t", tmp_path / "t/**", tmp_path / "t/**/*.jsonl", tmp_path / "t/*/*.jsonl"):
        code, doc, err = report(arg, "--quarantine", tmp_path / "q.jsonl")
        assert code == 0, (arg, err)
        assert counts(doc) == {"rows_read": 1, "priced": 1}, arg


def test_a_file_symlink_in_a_walked_directory_is_read_once(tmp_path):
    write(tmp_path / "logs/night.csv", HEADER + csv_row("r1") + csv_row("r2", "claude-haiku-4-5"))
    (tmp_path / "logs/latest.csv").symlink_to("night.csv")
    hard = tmp_path / "logs/copy.csv"
    os.link(tmp_path / "logs/night.csv", hard)  # a hard link is the same file too
    # (no request ids: nothing else would catch the double count)
    write(tmp_path / "logs/noid.jsonl", '{"timestamp":"2026-10-10T10:00:00Z","model":"claude-sonnet-4-5",'
                                        '"input_tokens":1000,"output_tokens":100}\n')
    (tmp_path / "logs/alias.jsonl").symlink_to("noid.jsonl")
    code, doc, err = report(tmp_path / "logs", "--quarantine", tmp_path / "q.jsonl")
    assert code == 0, err
    assert counts(doc) == {"rows_read": 3, "priced": 3} and cost(doc) == 2 * SONNET + HAIKU
    skipped = doc["accounting"]["files_skipped"]
    # A file is read under a name of its own, not a symbolic link's (hard links are equal: the first)
    assert skipped == {str(tmp_path / "logs/latest.csv"): f"same file as {tmp_path / 'logs/copy.csv'} (read once)",
                       str(tmp_path / "logs/night.csv"): f"same file as {tmp_path / 'logs/copy.csv'} (read once)",
                       str(tmp_path / "logs/alias.jsonl"): f"same file as {tmp_path / 'logs/noid.jsonl'} (read once)"}
    # Named twice on the command line (by two names): read once as well.
    code, doc, _ = report(tmp_path / "logs/night.csv", tmp_path / "logs/latest.csv", tmp_path / "logs/night.csv",
                          "--quarantine", tmp_path / "q.jsonl")
    assert counts(doc) == {"rows_read": 2, "priced": 2}
    assert doc["accounting"]["files_skipped"] == {
        str(tmp_path / "logs/latest.csv"): f"same file as {tmp_path / 'logs/night.csv'} (read once)"}


@pytest.mark.parametrize("name", ["night*.csv", "night?.csv", "night[1].csv", "night[.csv", "night*.jsonl",
                                  "night[1].jsonl", "night?.parquet", "n{1,2}.csv"])
def test_an_existing_name_with_pattern_characters_is_that_file(tmp_path, name):
    """`night*.csv` next to `night1.csv`: 3 rows were read for 2 requests (or the reader failed)."""
    ext = name.rsplit(".", 1)[1]
    for neighbour in ("night1", "nightX", "n1", "n2"):
        if ext == "parquet":
            import polars as pl
            pl.read_csv((HEADER + csv_row(f"{neighbour}-a")).encode()).write_parquet(tmp_path / f"{neighbour}.{ext}")
        else:
            write(tmp_path / f"{neighbour}.{ext}", (HEADER + csv_row(f"{neighbour}-a")) if ext == "csv"
                  else jsonl_row(f"{neighbour}-a"))
    target = tmp_path / name
    if ext == "parquet":
        import polars as pl
        pl.read_csv((HEADER + csv_row("t1") + csv_row("t2", "claude-haiku-4-5")).encode()).write_parquet(target)
    else:
        write(target, HEADER + csv_row("t1") + csv_row("t2", "claude-haiku-4-5") if ext == "csv"
              else jsonl_row("t1") + jsonl_row("t2", "claude-haiku-4-5"))
    for args in ([target], [name]):  # by full path, and relative to the working directory
        code, doc, err = report(*args, "--quarantine", tmp_path / "q", cwd=tmp_path)
        assert code == 0, err
        assert counts(doc) == {"rows_read": 2, "priced": 2} and cost(doc) == SONNET + HAIKU
        assert doc["accounting"]["files_skipped"] == {}


def test_a_pattern_that_names_no_file_still_matches(tmp_path):
    write(tmp_path / "a1.csv", HEADER + csv_row("r1"))
    write(tmp_path / "a2.csv", HEADER + csv_row("r2", "claude-haiku-4-5"))
    write(tmp_path / ".a3.csv", HEADER + csv_row("r3"))  # hidden: `*` does not match a leading dot
    code, doc, err = report(tmp_path / "a?.csv", "--quarantine", tmp_path / "q")
    assert code == 0, err
    assert counts(doc) == {"rows_read": 2, "priced": 2} and cost(doc) == SONNET + HAIKU
    code, doc, err = report(tmp_path / "b*.csv", "--quarantine", tmp_path / "q")
    assert code == 2 and err.strip() == f"llm-cost: error: {tmp_path / 'b*.csv'}: no file matches this pattern"


def test_a_walk_is_bounded_in_depth_and_says_so(tmp_path):
    deep = tmp_path / "logs"
    for _ in range(70):
        deep = deep / "d"
    write(deep / "x.csv", HEADER + csv_row("deep"))
    write(tmp_path / "logs/top.csv", HEADER + csv_row("top"))
    for arg in (tmp_path / "logs", tmp_path / "logs/**/*.csv"):
        code, doc, err = report(arg, "--quarantine", tmp_path / "q")
        assert code == 0, err
        assert counts(doc) == {"rows_read": 1, "priced": 1}
        [(where, why)] = doc["accounting"]["files_skipped"].items()
        assert where == str(tmp_path / "logs" / os.sep.join(["d"] * 65)) and why == "directory deeper than 64 levels (not walked)"


# ------------------------------------------------------------------------------------ §6 empty and foreign


def test_a_zero_byte_csv_is_skipped_with_a_note(tmp_path):
    write(tmp_path / "logs/empty.csv", "")
    write(tmp_path / "logs/blank.jsonl", "\n\n")
    write(tmp_path / "logs/night.csv", HEADER + csv_row("r1"))
    code, doc, err = report(tmp_path / "logs", "--quarantine", tmp_path / "q")
    assert code == 0, err
    assert counts(doc) == {"rows_read": 1, "priced": 1} and cost(doc) == SONNET
    assert doc["accounting"]["files_skipped"] == {str(tmp_path / "logs/blank.jsonl"): "empty",
                                                  str(tmp_path / "logs/empty.csv"): "empty"}
    assert f"empty files skipped: {tmp_path / 'logs/blank.jsonl'}, {tmp_path / 'logs/empty.csv'}" in doc["notes"]
    # Named alone (a quiet night): an empty report, exit 0.
    code, doc, err = report(tmp_path / "logs/empty.csv", "--quarantine", tmp_path / "q")
    assert code == 0, err
    assert doc["accounting"]["rows_read"] == 0 and doc["accounting"]["balanced"] and cost(doc) == 0
    assert doc["accounting"]["files_skipped"] == {str(tmp_path / "logs/empty.csv"): "empty"}


@pytest.mark.parametrize("data", ["", "\n", b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03\x03\x00\x00\x00\x00\x00\x00\x00\x00\x00"])
def test_empty_stdin_is_an_empty_report(tmp_path, data):
    code, doc, err = report("-", "--quarantine", tmp_path / "q", input=data)
    assert code == 0, err
    assert doc["accounting"]["rows_read"] == 0 and doc["accounting"]["balanced"] and doc["rows"] == []
    assert doc["accounting"]["files_skipped"] == {"<stdin>": "empty"}
    assert "empty files skipped: <stdin>" in doc["notes"]


def test_files_that_are_not_logs_in_a_walked_directory_are_skipped_and_named(tmp_path):
    logs = tmp_path / "logs"
    write(logs / "night.jsonl", jsonl_row("r1"))
    shutil.copy(INVOICE, logs / "admin_analytics_cost.json")
    write(logs / "manifest.json", json.dumps({"files": ["night.jsonl"], "created": "2026-10-11"}))
    write(logs / "README.md", "# exports\n")
    write(logs / "notes.csv", "day,comment\n2026-10-10,quiet\n")
    code, doc, err = report(logs, "--quarantine", tmp_path / "q")
    assert code == 0, err
    assert counts(doc) == {"rows_read": 1, "priced": 1} and cost(doc) == SONNET
    skipped = doc["accounting"]["files_skipped"]
    assert sorted(skipped) == sorted(str(logs / n) for n in ("admin_analytics_cost.json", "manifest.json",
                                                              "README.md", "notes.csv"))
    assert skipped[str(logs / "README.md")].startswith("not a log file name")
    assert skipped[str(logs / "admin_analytics_cost.json")].startswith("not a usage log llm-cost reads")
    assert skipped[str(logs / "manifest.json")].startswith("unknown log format")
    # ... and in the table's footer
    r = CliRunner().invoke(main, ["report", str(logs), "--quarantine", str(tmp_path / "q")])
    assert r.exit_code == 0
    assert f"files skipped (4, not read): {logs / 'README.md'}: not a log file name" in r.stdout
    # A glob finds files too: the same rule.
    code, doc, err = report(logs / "*.json*", "--quarantine", tmp_path / "q")
    assert code == 0, err
    assert counts(doc) == {"rows_read": 1, "priced": 1}
    assert sorted(doc["accounting"]["files_skipped"]) == [str(logs / "admin_analytics_cost.json"),
                                                          str(logs / "manifest.json")]


def test_a_file_named_on_the_command_line_that_is_not_a_log_is_an_error(tmp_path):
    invoice = shutil.copy(INVOICE, tmp_path / "admin_analytics_cost.json")
    write(tmp_path / "night.jsonl", jsonl_row("r1"))
    code, doc, err = report(invoice, tmp_path / "night.jsonl", "--quarantine", tmp_path / "q")
    assert code == 2
    assert err.count("\n") == 1 and err.startswith(f"llm-cost: error: {invoice}: not a usage log llm-cost reads")
    # A directory holding nothing but a foreign file: nothing to read is an error, naming why.
    os.unlink(tmp_path / "night.jsonl")
    code, doc, err = report(tmp_path, "--quarantine", tmp_path / "q")
    assert code == 2 and err.count("\n") == 1
    assert err.startswith(f"llm-cost: error: no usage log among the input files: {invoice}: not a usage log")


# ---------------------------------------------------------------------------------------------- §7 bytes


def quarantine_lines(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines()] if path.exists() else []


@pytest.mark.parametrize("ext", ["jsonl", "csv", "jsonl.gz", "csv.gz"])
@pytest.mark.parametrize("bad", [b"caf\xe9", b"\xff\xfe", b"\xc3", b"\xed\xa0\x80"])  # latin-1, binary, cut, surrogate
def test_bytes_that_are_not_utf8_quarantine_their_line(tmp_path, ext, bad):
    """They were read as U+FFFD, silently: a model name `caf\\xe9` priced as something else, or not
    at all, and no line to look at. Now the line is quarantined with its number, in CSV and JSONL,
    plain or compressed, on the fast path too."""
    import gzip

    if ext.startswith("jsonl"):
        rows = [jsonl_row("r1"), jsonl_row("r2").replace("r2", "r2-BAD"), jsonl_row("r3", "claude-haiku-4-5")]
        first = 1
    else:
        rows = [HEADER, csv_row("r1"), csv_row("r2").replace("r2", "r2-BAD"), csv_row("r3", "claude-haiku-4-5")]
        first = 2  # (line 1 is the header)
    data = "".join(rows).encode().replace(b"-BAD", bad)
    path = write(tmp_path / f"log.{ext}", gzip.compress(data) if ext.endswith(".gz") else data)
    q = tmp_path / "q.jsonl"
    code, doc, err = report(path, "--quarantine", q)
    assert code == 0, err
    assert counts(doc) == {"rows_read": 3, "priced": 2, "quarantined": 1} and cost(doc) == SONNET + HAIKU
    [line] = quarantine_lines(q)
    assert (line["file"], line["line"], line["reason"]) == (str(path), first + 1, NOT_UTF8)
    # (each run of bad bytes is one U+FFFD)
    assert '"r2' + re.sub("[\udc80-\udcff]+", "\ufffd", bad.decode("utf-8", "surrogateescape")) + '"' in line["raw"]


def test_a_real_replacement_character_is_text_not_bad_bytes(tmp_path):
    """U+FFFD written as UTF-8 (EF BF BD) is valid text: read, not quarantined."""
    path = write(tmp_path / "log.jsonl", jsonl_row("r1\ufffd") + jsonl_row("r2").replace("r2", "r2\udcff")
                 .encode("utf-8", "surrogateescape").decode("utf-8", "replace"))
    code, doc, err = report(path, "--quarantine", tmp_path / "q")
    assert code == 0, err
    assert counts(doc) == {"rows_read": 2, "priced": 2}


def test_bad_bytes_in_a_tree_of_transcripts_quarantine_their_line_only(tmp_path):
    """Claude Code trees are read many files per batch: a batch with a bad byte is not lost."""
    src = TRANSCRIPT.read_bytes()
    tree = tmp_path / "projects" / "p"
    write(tree / "a.jsonl", src)
    lines = src.split(b"\n")
    usage = next(i for i, x in enumerate(lines) if b'"usage"' in x and b'"assistant"' in x)
    lines[usage] = lines[usage][:-1] + b" \xe9}"  # (still a whole line)
    write(tree / "b.jsonl", b"\n".join(lines))
    q = tmp_path / "q.jsonl"
    code, doc, err = report(tmp_path / "projects", "--quarantine", q)
    assert code == 0, err
    assert doc["accounting"]["quarantined"] == 1 and doc["accounting"]["balanced"]
    [line] = quarantine_lines(q)
    assert (line["file"], line["line"]) == (str(tree / "b.jsonl"), usage + 1) and line["reason"].startswith(NOT_UTF8)


@pytest.mark.parametrize("codec", ["utf-16", "utf-16-be", "utf-32"])
@pytest.mark.parametrize("ext", ["csv", "jsonl"])
def test_utf16_with_a_byte_order_mark_is_read(tmp_path, codec, ext):
    text = (HEADER + csv_row("r1") + csv_row("r2", "claude-haiku-4-5") if ext == "csv"
            else jsonl_row("r1") + jsonl_row("r2", "claude-haiku-4-5"))
    bom = {"utf-16": b"", "utf-16-be": b"\xfe\xff", "utf-32": b""}[codec]  # (utf-16 and utf-32 write their own)
    path = write(tmp_path / f"export.{ext}", bom + text.replace("\n", "\r\n").encode(codec))
    code, doc, err = report(path, "--quarantine", tmp_path / "q")
    assert code == 0, err
    assert counts(doc) == {"rows_read": 2, "priced": 2} and cost(doc) == SONNET + HAIKU
    assert str(path) in doc["dialects"]


def test_utf16_that_is_not_valid_is_refused_naming_the_file(tmp_path):
    path = write(tmp_path / "export.csv", (HEADER + csv_row("r1")).encode("utf-16") + b"\x00\xd8\x41\x00")  # a lone surrogate
    code, doc, err = report(path, "--quarantine", tmp_path / "q")
    assert code == 2 and err.count("\n") == 1
    assert err.startswith(f"llm-cost: error: {path}: not valid UTF-16 text (its byte order mark says it is)")


def test_a_utf8_byte_order_mark_keeps_the_first_column(tmp_path):
    """The first column is request_id: with the BOM glued to it, duplicates went unseen."""
    path = write(tmp_path / "bom.csv", b"\xef\xbb\xbf" + (HEADER + csv_row("r1") + csv_row("r1")).encode())
    for arg in (path, "-"):
        code, doc, err = report(arg, "--quarantine", tmp_path / "q", input=path.read_bytes() if arg == "-" else None)
        assert code == 0, err
        assert counts(doc) == {"rows_read": 2, "priced": 1, "duplicates": 1} and cost(doc) == SONNET


# ------------------------------------------------------------------------------- §8 appended during a run


def test_a_file_is_read_up_to_the_size_it_had_when_the_run_opened_it(tmp_path):
    import gzip

    import polars as pl

    from analyzer.sources import bounded_csv, bounded_lines, file_set_lines, one_reading

    lines = write(tmp_path / "a.jsonl", jsonl_row("r1"))
    table = write(tmp_path / "a.csv", HEADER + csv_row("r1"))
    packed = write(tmp_path / "a.jsonl.gz", gzip.compress(jsonl_row("r1").encode()))
    with one_reading():
        plans = [bounded_lines(str(lines), None), bounded_csv(str(table), None), file_set_lines([str(lines)]),
                 bounded_lines(str(packed), "gzip")]
        before = [p.collect().height for p in plans]
        with open(lines, "a") as f:
            f.write(jsonl_row("r2"))
        with open(table, "a") as f:
            f.write(csv_row("r2"))
        with open(packed, "ab") as f:
            f.write(gzip.compress(jsonl_row("r2").encode()))
        assert [p.collect().height for p in plans] == before == [1, 1, 1, 1]
        # a plan built later in the run reads the same bytes
        assert bounded_lines(str(lines), None).collect().height == 1
    # (the plans captured their run: collected after it, they still read what it read)
    assert [p.collect().height for p in plans] == [1, 1, 1, 1]
    assert bounded_lines(str(lines), None).collect().height == 2  # a new run reads the whole file
    assert pl.concat([bounded_csv(str(table), None).collect()])["request_id"].to_list() == ["r1", "r2"]


@pytest.mark.parametrize("kind", ["jsonl", "csv"])
def test_the_quarantine_file_and_the_count_agree_while_a_log_is_appended_to(tmp_path, kind):
    """A writer appends records, some in two writes (a reader may then see a cut last line), while
    the log is read: in every run the quarantine file holds exactly the rows counted as quarantined,
    and they are rows of what the count read (the last line it saw, cut), not of a later reading. (It
    was `quarantined: 1` and an empty file in 3 runs of 9.)"""
    import threading
    import time

    from analyzer import Options, analyze

    if kind == "csv":
        path = write(tmp_path / "live.csv", HEADER + csv_row("r0"))
        record, first = csv_row, 2
    else:
        path = write(tmp_path / "live.jsonl", jsonl_row("r0"))
        record, first = jsonl_row, 1
    stop = threading.Event()

    def append():
        i = 0
        with open(path, "a") as f:
            while not stop.is_set():
                rec = record(f"r{i + 1}")
                cut = len(rec) // 2 if i % 3 == 0 else len(rec)
                f.write(rec[:cut])
                f.flush()
                time.sleep(0.0003)
                f.write(rec[cut:])
                f.flush()
                i += 1

    writer = threading.Thread(target=append)
    writer.start()
    try:
        for run in range(9):
            q = tmp_path / f"q{run}.jsonl"
            rep = analyze([str(path)], ["model"], Options(quarantine=str(q)))
            a = rep.accounting
            assert a.balanced and a.rows_read == a.priced + a.quarantined
            held = quarantine_lines(q)
            assert len(held) == a.quarantined, run
            # a cut line is the last one the count read: line rows_read (after the header, in CSV)
            assert [x["line"] for x in held] == ([a.rows_read + first - 1] if held else []), run
    finally:
        stop.set()
        writer.join()


# ----------------------------------------------------------------------------------------- names as data


def test_a_name_that_is_not_utf8_is_skipped_or_refused_in_one_line(tmp_path):
    """Polars takes only UTF-8 names: such a file was a traceback. Found by a walk it is skipped and
    named (escaped); named on the command line it is one line, exit 2."""
    logs = tmp_path / "logs"
    write(logs / "night.csv", HEADER + csv_row("r1"))
    odd = os.path.join(os.fsencode(logs), b"caf\xe9.csv")
    with open(odd, "wb") as f:
        f.write((HEADER + csv_row("r2")).encode())
    code, doc, err = report(logs, "--quarantine", tmp_path / "q")
    assert code == 0, err
    assert counts(doc) == {"rows_read": 1, "priced": 1}
    assert doc["accounting"]["files_skipped"] == {f"{logs}/caf\\xe9.csv": "name is not UTF-8 text (rename the file to read it)"}
    code, doc, err = report(os.fsdecode(odd), "--quarantine", tmp_path / "q")
    assert code == 2 and err == f"llm-cost: error: {logs}/caf\\xe9.csv: the file's name is not UTF-8 text: rename it to read it\n"


def test_control_characters_in_a_name_do_not_reach_the_terminal(tmp_path):
    name = tmp_path / "nope\n\x1b[31m.csv"
    code, doc, err = report(name, "--quarantine", tmp_path / "q")
    assert code == 2 and err == f"llm-cost: error: {tmp_path}/nope\\n\\x1b[31m.csv: no file matches this pattern\n"


def test_a_column_name_with_bytes_that_are_not_utf8_does_not_lose_the_file(tmp_path):
    """The header is not a row: its bad byte becomes U+FFFD in the name; rows are judged by their own bytes."""
    path = write(tmp_path / "log.csv", b"request_id,timestamp,model,input_tokens,output_tokens,t\xe9am\n"
                 + csv_row("r1").encode().replace(b"\n", b",a\n") + csv_row("r2").encode().replace(b"\n", b",b\xe9\n"))
    q = tmp_path / "q.jsonl"
    code, doc, err = report(path, "--quarantine", q)
    assert code == 0, err
    assert counts(doc) == {"rows_read": 2, "priced": 1, "quarantined": 1} and cost(doc) == SONNET
    [line] = quarantine_lines(q)
    assert (line["line"], line["reason"]) == (3, NOT_UTF8) and '"t\ufffdam":"b\ufffd"' in line["raw"]


def test_odd_arguments_are_one_line_each(tmp_path):
    (tmp_path / "self").symlink_to("self")  # a link to itself
    (tmp_path / "gone.csv").symlink_to("nowhere.csv")
    cases = {tmp_path / "self": "cannot read (Too many levels of symbolic links)",
             tmp_path / "gone.csv": "broken link (its target does not exist)",
             tmp_path / "nope/**/*.csv": "no file matches this pattern",
             tmp_path / "nope.csv": "no such file or directory"}
    for arg, why in cases.items():
        code, doc, err = report(arg, "--quarantine", tmp_path / "q")
        assert (code, err) == (2, f"llm-cost: error: {arg}: {why}\n")


def test_an_export_with_no_records_is_empty(tmp_path):
    path = write(tmp_path / "export.json", "[]\n")
    code, doc, err = report(path, "--quarantine", tmp_path / "q")
    assert code == 0, err
    assert doc["accounting"]["rows_read"] == 0 and doc["accounting"]["files_skipped"] == {str(path): "empty"}


def test_a_store_in_a_directory_named_with_a_bracket_is_refused_in_one_line(tmp_path):
    """delta-rs panics on a table path holding `[` (it parses the path as a URL): the store refuses such
    a path with one line before delta-rs sees it, for every command, and writes nothing."""
    write(tmp_path / "logs/night.csv", HEADER + csv_row("r1"))
    store = tmp_path / "st[1]"
    for args in (["ingest", str(tmp_path / "logs"), "--store", str(store)], ["report", "--store", str(store)],
                 ["store", "status", str(store)]):
        r = CliRunner().invoke(main, args, catch_exceptions=False)
        assert r.exit_code == 2, r.output
        assert "cannot hold '[' or ']'" in r.output and "Traceback" not in r.output
    assert not store.exists()


def test_a_parquet_invoice_named_with_a_bracket_is_that_file(tmp_path):
    """Its format was told from a neighbour's columns (`inv[1].parquet` read `inv1.parquet`'s)."""
    import polars as pl

    from analyzer.invoices import detect

    pl.DataFrame({"unrelated": [1]}).write_parquet(tmp_path / "inv1.parquet")
    pl.read_csv(ROOT / "fixtures/invoices/focus_sample.csv").write_parquet(tmp_path / "inv[1].parquet")
    assert detect(str(tmp_path / "inv[1].parquet")) == detect(str(ROOT / "fixtures/invoices/focus_sample.csv"))


@pytest.mark.parametrize("ext", ["jsonl.gz", "csv.gz"])
def test_a_gzip_file_cut_short_is_one_line_naming_it(tmp_path, ext):
    """A .gz that ends inside a member is truncated: what is missing cannot be counted, so it is
    refused (one line, exit 2), also where only its first bytes are peeked at (it was a traceback or
    `Compressed file ended ...`)."""
    import gzip

    rows = "".join(jsonl_row(f"r{i}") for i in range(300)) if ext == "jsonl.gz" else HEADER + "".join(
        csv_row(f"r{i}") for i in range(300))
    data = gzip.compress(rows.encode())
    for size in (len(data) * 2 // 3, 30):
        path = write(tmp_path / f"live.{ext}", data[:size])
        code, doc, err = report(path, "--quarantine", tmp_path / "q.jsonl")
        assert code == 2 and err.count("\n") == 1, err
        assert err.startswith(f"llm-cost: error: {path}: cannot read (gzip: the file ends inside a compressed block")


@pytest.mark.parametrize("data", [b"hello\n", b"\x1f\x8b\x08\x00" + b"\x00" * 60])
def test_a_file_that_is_not_the_gzip_its_name_says_is_one_line(tmp_path, data):
    path = write(tmp_path / "log.jsonl.gz", data)
    code, doc, err = report(path, "--quarantine", tmp_path / "q")
    assert code == 2 and err.count("\n") == 1 and err.startswith(f"llm-cost: error: {path}: cannot read (gzip: ")

"""attack29: the three CSV/Parquet changes of the last hour, attacked. Oracle: Python's csv module on
the same bytes (what a careful reader says each record holds). What held is pinned here (reserved
names in the log, a ragged record only in a later piece of the robust reader, mapped formats,
`report`/`price`/`ingest` agreeing, malformed lines counted through CRLF/BOM/gzip/quoted newlines in
a later piece, the damaged Parquet fixtures' one line whatever the thread timing); what did not is a
strict xfail naming it."""

from __future__ import annotations

import csv
import glob
import gzip
import io
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from analyzer import sources
from analyzer.cli import main

ROOT = Path(__file__).resolve().parents[2]
HEADER = "request_id,timestamp,model,input_tokens,output_tokens"
T = "2026-10-01T09:15:00Z,claude-sonnet-4-5"


def _quarantine(q: Path) -> dict[int, str]:
    return {(rec := json.loads(line))["line"]: rec["reason"] for line in q.read_text().splitlines()}


def _report(path: Path, q: Path) -> dict:
    r = CliRunner().invoke(main, ["report", str(path), "--format", "json", "--quarantine", str(q)])
    assert r.exit_code == 0, r.output
    return json.loads(r.stdout)


def _oracle_extra(text: str, width: int) -> dict[int, str]:
    """Python's csv: line a record starts at -> its first non-empty field past the header's."""
    out, reader = {}, csv.reader(io.StringIO(text, newline=""))
    next(reader)
    start = 2
    for rec in reader:
        extra = [f for f in rec[width:] if f.strip()]
        if extra:
            out[start] = extra[0]
        start = reader.line_num + 1
    return out


@pytest.mark.parametrize("robust", [False, True])
def test_log_columns_named_beyond_do_not_hide_a_ragged_record(tmp_path, robust):
    """A log's own `_beyond` / `_beyond_1` columns: its records are read as the csv module reads them,
    and a record of more fields than its 7 is still quarantined naming field 8 (fast and robust)."""
    head = HEADER + ",_beyond,_beyond_1"
    records = [f"r1,{T},1000,100,a,b", f"r2,{T},1,200,c,d,350", f"r3,{T},1000,100,e,f,,"]
    if robust:
        records.append(f"r4,{T},1.5,100,g,h")
    text = "\n".join([head, *records, ""])
    path = tmp_path / "log.csv"
    path.write_text(text)
    q = tmp_path / "q.jsonl"
    report = _report(path, q)
    oracle = _oracle_extra(text, 7)
    assert oracle == {3: "350"}
    got = _quarantine(q)
    assert got[3] == "more fields than the header's 7 (field 8: 350; a field holding a comma must be quoted)"
    assert set(got) == {3, *([5] if robust else [])}
    assert report["accounting"]["priced"] == 2
    assert report["totals"]["input_tokens"] == 2000


def test_a_ragged_record_only_in_a_later_piece_of_the_robust_reader(tmp_path, monkeypatch):
    """The bounded reader, in pieces (small here): the one record of more fields is in the last
    piece; `report`, `price` and `ingest` count and quarantine it alike."""
    monkeypatch.setattr(sources, "PIECE_BYTES", 4096)
    records = [f"r0,{T},1.5,100", *[f"r{i},{T},1000,100" for i in range(1, 2000)], f"rbad,{T},1,200,350",
               f"rend,{T},1000,100,"]
    text = "\n".join([HEADER, *records, ""])
    path = tmp_path / "log.csv"
    path.write_text(text)
    bad_line = len(records)  # (rbad: the header is line 1, r0 line 2)
    assert _oracle_extra(text, 5) == {bad_line: "350"}
    q = tmp_path / "q.jsonl"
    report = _report(path, q)
    expected = {2: "input_tokens is not a whole number (1.5)",
                bad_line: "more fields than the header's 5 (field 6: 350; a field holding a comma must be quoted)"}
    assert _quarantine(q) == expected
    assert report["accounting"]["rows_read"] == len(records)
    assert report["accounting"]["priced"] == len(records) - 2
    assert report["totals"]["input_tokens"] == 1000 * (len(records) - 2)
    summary = f"rows read {len(records):,} = priced {len(records) - 2:,} + unpriced 0 + duplicates 0 + quarantined 2"
    q2 = tmp_path / "q2.jsonl"
    r = CliRunner().invoke(main, ["price", str(path), "-o", str(tmp_path / "rows.csv"), "--quarantine", str(q2)])
    assert r.exit_code == 0, r.output
    assert summary in r.output
    assert _quarantine(q2) == expected
    r = CliRunner().invoke(main, ["ingest", "--store", str(tmp_path / "store"), str(path)])
    assert r.exit_code == 0, r.output
    assert summary in r.output


@pytest.mark.parametrize("fixture,width", [
    ("anthropic-console-csv/console_usage_export.csv", 14),
    ("litellm-spendlogs/litellm_spendlogs.csv", 32),
])
def test_mapped_csv_formats_quarantine_a_record_of_more_fields(tmp_path, fixture, width):
    """A mapped format's CSV (Console export, LiteLLM SpendLogs) with one record copied, an unquoted
    extra field appended: that record alone is quarantined, naming the field the csv module sees."""
    src = (ROOT / "fixtures" / "dialects" / fixture).read_text(encoding="utf-8")
    rows = list(csv.reader(io.StringIO(src, newline="")))
    assert len(rows[0]) == width
    rec = list(rows[1])
    rec[0 if "litellm" in fixture else 2] = "attack29-extra"
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerow([*rec, "350"])
    text = src if src.endswith("\n") else src + "\n"
    text += out.getvalue()
    path = tmp_path / Path(fixture).name
    path.write_text(text, encoding="utf-8")
    line = text.count("\n")  # (the appended record is one line, the file's last)
    assert _oracle_extra(text.lstrip("\ufeff"), width) == {line: "350"}
    q = tmp_path / "q.jsonl"
    report = _report(path, q)
    got = _quarantine(q)
    assert list(got) == [line]
    assert got[line].startswith(f"more fields than the header's {width} (field {width + 1}: 350;")
    assert report["accounting"]["quarantined"] == 1


@pytest.mark.parametrize("form", ["crlf", "bom", "gzip", "quoted-newlines"])
def test_a_malformed_record_in_a_later_piece_is_named_by_its_line(tmp_path, monkeypatch, form):
    """The malformed refusal's line, as an editor numbers the file's lines, when the record is far
    (in a later piece of the bounded reader), through CRLF, a BOM, gzip and quoted newlines."""
    monkeypatch.setattr(sources, "PIECE_BYTES", 4096)
    span = form == "quoted-newlines"
    good = [f'r{i},{T},1000,"1\n00"' if span and i % 7 == 0 else f"r{i},{T},1000,100" for i in range(1500)]
    bad = f'rx,{T},1"0,100'
    lines = [HEADER, f"r0,{T},1.5,100", *good, bad, *good[:5]]
    nl = "\r\n" if form == "crlf" else "\n"
    text = ("\ufeff" if form == "bom" else "") + nl.join(lines) + nl
    expected = 1 + "\n".join(lines[:lines.index(bad)]).count("\n") + 1
    path = tmp_path / ("log.csv.gz" if form == "gzip" else "log.csv")
    path.write_bytes(gzip.compress(text.encode()) if form == "gzip" else text.encode())
    r = CliRunner().invoke(main, ["report", str(path), "--quarantine", str(tmp_path / "q.jsonl")])
    assert r.exit_code == 2, r.output
    (said,) = r.output.splitlines()
    assert f": line {expected}: cannot read (a malformed CSV record" in said, said
    assert bad in said


@pytest.mark.parametrize("path", sorted(glob.glob(str(ROOT / "fixtures" / "damaged-parquet" / "*.parquet"))),
                         ids=lambda p: Path(p).name)
def test_damaged_parquet_says_one_line_whatever_the_threads(path):
    """The check decodes column chunks on threads: each fixture, 20 runs, one and the same outcome
    (exit code and line; no traceback)."""
    seen = set()
    for _ in range(20):
        r = CliRunner().invoke(main, ["report", path])
        assert r.exception is None or isinstance(r.exception, SystemExit), r.exception
        seen.add((r.exit_code, r.output if r.exit_code else ""))
    assert len(seen) == 1, seen
    code, out = seen.pop()
    if code:
        assert code == 2 and len(out.splitlines()) == 1, out


@pytest.mark.parametrize("case", ["ragged", "malformed"])
def test_lone_cr_line_ends_are_read_or_named(tmp_path, case):
    records = [f"r{i},{T},1000,100" for i in range(3)]
    records.append(f"rb,{T},1,200,350" if case == "ragged" else f'rb,{T},1"0,100')
    text = "\r".join([HEADER, *records, ""])
    path = tmp_path / "log.csv"
    path.write_bytes(text.encode())
    assert len(list(csv.reader(io.StringIO(text, newline="")))) == 5  # (the header and four records)
    r = CliRunner().invoke(main, ["report", str(path), "--format", "json", "--quarantine", str(tmp_path / "q.jsonl")])
    said = r.output.lower()
    # Either read by its records (the ragged one quarantined), or refused naming the line ends.
    read = r.exit_code == 0 and json.loads(r.stdout)["accounting"]["rows_read"] == 4
    named = r.exit_code == 2 and ("carriage return" in said or "line end" in said) and "column name" not in said
    assert read or named, r.output


def test_the_threaded_parquet_check_leaves_no_descriptor_open(tmp_path):
    """Each check reads through a duplicate of the file's descriptor (sources._native_parquet): after
    runs on every damaged fixture and on a directory of 60 good files, the process holds no more
    descriptors than before."""
    import os

    import polars as pl

    logs = tmp_path / "logs"
    logs.mkdir()
    for i in range(60):
        pl.DataFrame({"request_id": [f"r{i}"], "timestamp": ["2026-10-01T09:15:00Z"], "model": ["claude-sonnet-4-5"],
                      "input_tokens": [1000], "output_tokens": [100]}).write_parquet(logs / f"f{i:02d}.parquet")
    paths = [*sorted(glob.glob(str(ROOT / "fixtures" / "damaged-parquet" / "*.parquet"))), str(logs)]
    q = str(tmp_path / "q.jsonl")
    CliRunner().invoke(main, ["report", paths[0], "--quarantine", q])  # (imports and caches opened once)
    before = sorted(os.listdir("/proc/self/fd"))
    for path in paths:
        r = CliRunner().invoke(main, ["report", path, "--quarantine", q])
        assert r.exit_code in (0, 2), r.output
    assert r.exit_code == 0 and "rows read 60 = priced 60" in r.output, r.output
    assert sorted(os.listdir("/proc/self/fd")) == before


@pytest.mark.parametrize("robust", [False, True])
def test_a_ragged_records_raw_holds_its_fields_past_the_header(tmp_path, robust):
    records = [f"r1,{T},1000,100", f"r2,{T},1,200,350"]
    if robust:
        records.append(f"r3,{T},1.5,100")
    path = tmp_path / "log.csv"
    path.write_text("\n".join([HEADER, *records, ""]))
    q = tmp_path / "q.jsonl"
    _report(path, q)
    (rec,) = [json.loads(line) for line in q.read_text().splitlines() if json.loads(line)["line"] == 3]
    assert rec["reason"].startswith("more fields than the header's 5 (field 6: 350;")
    assert "350" in rec["raw"], rec["raw"]  # (the csv module: the record holds r2, ..., 1, 200, 350)


def _parquet_of_chunks(path: Path) -> None:
    import polars as pl

    n = 100_000
    pl.DataFrame({"request_id": [f"r{i}" for i in range(n)], "timestamp": ["2026-10-01T09:15:00Z"] * n,
                  "model": ["claude-sonnet-4-5"] * n, "input_tokens": list(range(n)), "output_tokens": [100] * n}
                 ).write_parquet(path, row_group_size=10_000, compression="uncompressed")


def test_a_parquet_file_truncated_mid_check_is_one_line(tmp_path, monkeypatch):
    """The file cut to a third of its size while its chunks are decoded (at the third chunk, from the
    check itself: no timing): one line, exit 2, no traceback, no SIGBUS (no memory map)."""
    path = tmp_path / "log.parquet"
    _parquet_of_chunks(path)
    decode = sources._decode_chunk
    calls = []

    def cut(f, *args):
        calls.append(1)
        if len(calls) == 3:
            with open(path, "r+b") as h:
                h.truncate(path.stat().st_size // 3)
        return decode(f, *args)
    monkeypatch.setattr(sources, "_decode_chunk", cut)
    r = CliRunner().invoke(main, ["report", str(path), "--quarantine", str(tmp_path / "q.jsonl")])
    assert len(calls) >= 3
    assert r.exit_code == 2 and isinstance(r.exception, SystemExit), r.output
    (said,) = r.output.splitlines()
    assert said.startswith(f"llm-cost: error: {path}: cannot read (")


def test_sigint_mid_parquet_check_is_interrupted_not_a_traceback(tmp_path):
    """SIGINT delivered while chunks are decoded on threads (sent at the third chunk, from whichever
    thread decodes it): `interrupted`, exit 130, no traceback, no hang."""
    import subprocess
    import sys

    path = tmp_path / "log.parquet"
    _parquet_of_chunks(path)
    script = (
        "import os, signal, sys\n"
        "from analyzer import sources\n"
        "decode, calls = sources._decode_chunk, []\n"
        "def spy(*a):\n"
        "    calls.append(1)\n"
        "    if len(calls) == 3:\n"
        "        os.kill(os.getpid(), signal.SIGINT)\n"
        "    return decode(*a)\n"
        "sources._decode_chunk = spy\n"
        "from analyzer.cli import main\n"
        f"sys.argv = ['llm-cost', 'report', {str(path)!r}, '--quarantine', {str(tmp_path / 'q.jsonl')!r}]\n"
        "main()\n")
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert r.returncode == 130, (r.returncode, r.stderr)
    assert r.stderr.strip() == "llm-cost: interrupted", r.stderr
    assert "Traceback" not in r.stderr


@pytest.mark.parametrize("seed", [1, 2])
def test_random_csv_written_by_the_csv_module_reads_as_it_reads(tmp_path, seed):
    """Seeded random files written by Python's csv writer (fields holding commas, quotes, newlines,
    CRLF, spaces, é; some records of more fields, empty, spaces or text; some with a count `1.5`,
    which sends the file to the robust reader): every record read, and the records quarantined for
    more fields are the csv module's, each naming its first non-empty field past the header's."""
    import random

    rng = random.Random(seed)
    header = ["request_id", "timestamp", "model", "input_tokens", "output_tokens", "team"]
    alphabet = ["a", "b", ",", '"', "\n", " ", "\r\n", "é", "x"]

    def text(k: int) -> str:
        return "".join(rng.choice(alphabet) for _ in range(rng.randint(0, k)))
    seen = {"ragged": 0, "robust": 0}
    for it in range(40):
        recs = []
        for i in range(rng.randint(1, 8)):
            rec = [f"r{it}-{i}", "2026-10-01T09:15:00Z", "claude-sonnet-4-5", str(rng.randint(1, 999)),
                   str(rng.randint(1, 99)), text(5)]
            if rng.random() < 0.4:
                rec += [rng.choice(["", " ", text(4)]) for _ in range(rng.randint(1, 3))]
            recs.append(rec)
        robust = None
        j = rng.randrange(len(recs))
        if rng.random() < 0.6 and len(recs[j]) == 6:
            recs[j][3], robust = "1.5", j + 2
        out = io.StringIO()
        writer = csv.writer(out, lineterminator=rng.choice(["\n", "\r\n"]))
        writer.writerow(header)
        writer.writerows(recs)
        body = out.getvalue()
        reader = csv.reader(io.StringIO(body, newline=""))
        next(reader)
        # (record number -> first non-empty field past the header's; the quarantine's CSV `line`)
        expected = {}
        for k, rec in enumerate(reader, 2):
            fields = [n for n, f in enumerate(rec[6:], 7) if f.strip()]
            if fields:
                expected[k] = fields[0]
        path, q = tmp_path / f"log{it}.csv", tmp_path / f"q{it}.jsonl"
        path.write_bytes(body.encode())
        r = CliRunner().invoke(main, ["report", str(path), "--format", "json", "--quarantine", str(q)])
        assert r.exit_code == 0, (r.output, body)
        got = _quarantine(q) if q.exists() else {}
        ragged = {k: int(v.split("(field ")[1].split(":")[0]) for k, v in got.items() if v.startswith("more fields")}
        assert json.loads(r.stdout)["accounting"]["rows_read"] == len(recs), body
        assert ragged == expected, body
        assert set(got) == set(expected) | ({robust} if robust else set()), body
        seen["ragged"] += len(expected)
        seen["robust"] += robust is not None
    assert seen["ragged"] > 5 and seen["robust"] > 5, seen  # (both readings were attacked)

"""Attacks on csvparts: a CSV read again after a failed fast pass decodes its rows once
(pipeline._spooled), and its quarantine pass reads only the records those rows show quarantined
(line_retry.needed_records, sources.bounded_csv(rows=...), counting the others). The invariant: the
report, the accounting and the quarantine file, byte for byte, are those of the whole robust reading
(every record read by every pass: line_retry.line_local off, plain CSV not spooled, as
tests/test_csv_retry.py forces it), and every record is in exactly one bucket.

Found (each a test below):
- a record with two stray quotes (`r"7,...,5" tall`), which Polars reads as written when it reads
  every column, failed a read of a record's first columns alone ("CSV malformed: expected 33 rows,
  actual 22 rows", naming no file): the quarantine pass's count by the first column failed a run
  the whole reading passed (--no-dedupe), and any pass whose plan did not ask for the last column
  failed the run: `--by day,model` failed where `--by day,model,team` passed, `price` failed.
  Fixed: bounded_csv parses every record through its last column.
- the count read a piece lossily (U+FFFD for a byte that is not UTF-8) where the reading reads its
  marked text: where Polars' parse of a malformed record depends on the text, the count raised
  where the reading passed. Fixed: the count reads a piece as the reading does.
- a file truncated and written again during a run (logrotate's copytruncate): the quarantine pass
  read the asked record numbers of the new text, and the quarantine file listed a record the
  accounting never counted, without a word (the whole reading did no better). Fixed: a file's
  fingerprint (analyzer/fingerprint.py) taken when first read is checked before it is read again.
- a CSV record's `raw` was typed (`-4`) when the fast reading wrote the quarantine file, text
  (`"-4"`) when a robust one did (a JSON file beside it, any file failing the fast pass): so the
  Spark engine, whose fast pass reads the stray-quote file above, wrote `-4` where Polars wrote
  `"-4"`. Fixed: a CSV's quarantined records are always written from the robust reading (text).

Tried and held (new == whole, byte for byte; guarded by the comparisons below): quoted fields
spanning lines and 17-64 byte pieces; `""` escapes; CRLF, LF and a CR inside quotes mixed; a BOM;
a header only; duplicated and empty header names; ragged rows (fewer, more fields); blank and
space-only lines; a last record without a newline; NUL bytes; bytes that are not UTF-8 at a piece
edge; gzip, zstd, TSV; a --map CSV (tests/test_csv_retry.py); the console's and LiteLLM's CSVs;
duplicates of quarantined ids and a record quarantined and a duplicate; --since/--until;
--no-dedupe; `price` rows; `ingest` and a report of its store; several CSVs of which one is bad;
a CSV beside JSON Lines and Parquet (the clean pass's native numbering against the bounded
reader's); stdin; rows appended during the run; a file rewritten in place (records' verdicts
changed: both readings lose one alike); the Spark engine on three fuzzed files and the
stray-quote ones (the same report and quarantine as Polars but the `raw` above; not kept: slow).
Stray quotes that Polars refuses fail both readings alike, with the file named. Fuzzed (not
kept): ~300 CLI runs of random hostile CSVs against the whole reading, ~2,000 files through
bounded_csv(rows=...) against the whole reading and Polars' own scan.
"""

from __future__ import annotations

import gzip
import json
from decimal import Decimal as D

import polars as pl
import pytest
from click.testing import CliRunner

from analyzer import Options, analyze, pipeline, sources
from analyzer.cli import main
from analyzer.errors import SourceError

from ..test_csv_retry import read_as

HEADER = "request_id,timestamp,model,input_tokens,output_tokens,team"
HAIKU = "claude-haiku-4-5"
TOO_FINE = f"rb1,2026-10-08T00:00:00Z,{HAIKU},1.5,3,a"  # fails the fast pass: the run is read robustly
NEGATIVE = f"rn,2026-10-08T00:00:00Z,{HAIKU},-4,3,a"  # quarantined, the fast pass passes it
# Two stray quotes, one in the first column and one in the last: Polars reads the record as written
# (`r"7`, `5" tall`) when it reads every column.
STRAY = f'r"7,2026-10-08T00:00:00Z,{HAIKU},5,3,5" tall'


def good(i: int) -> str:
    return f"r{i},2026-10-08T{i % 24:02d}:00:00Z,{HAIKU},{10 + i},3,t{i % 3}"


def _cli(tmp_path, args: list[str], whole: bool = False, piece: int | None = None, stdin: str | None = None):
    """(exit code, output, quarantine file) of `llm-cost ARGS --quarantine Q`: by the new path, or
    (`whole`) by the whole robust reading."""
    q = tmp_path / "q.jsonl"
    q.unlink(missing_ok=True)
    with pytest.MonkeyPatch.context() as m:
        read_as(m, whole, piece)
        result = CliRunner().invoke(main, [*args, "--quarantine", str(q)], input=stdin)
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result.exit_code, result.output, q.read_text() if q.exists() else ""


def _same_as_whole(tmp_path, args: list[str], piece: int | None = None, stdin: str | None = None):
    new = _cli(tmp_path, args, False, piece, stdin)
    assert new == _cli(tmp_path, args, True, piece, stdin)
    return new


def _lines(quarantine: str) -> list[int]:
    return [json.loads(x)["line"] for x in quarantine.splitlines()]


def _write(path, records: list[str], header: str = HEADER, end: str = "\n") -> str:
    path.write_bytes((end.join([header, *records]) + end).encode("utf-8", "surrogateescape"))
    return str(path)


# --- two stray quotes in one record ---------------------------------------------------------------

# (Records enough that Polars reads the piece in several chunks, each parsed on its own: the failure
# is in how a chunk's record is skipped past the columns asked.)
RECORDS = [good(i) for i in range(300)]


def test_a_retried_csv_with_two_stray_quotes_in_a_record_is_counted_as_the_whole_read(tmp_path):
    # The quarantine pass counted each piece's records by its first column: the count failed on the
    # record the whole reading (and the spooled rows) read as written. Default pieces (8 MiB).
    path = _write(tmp_path / "log.csv", [*RECORDS[:10], TOO_FINE, *RECORDS[10:20], STRAY, NEGATIVE, *RECORDS[20:]])
    code, out, quarantine = _same_as_whole(tmp_path, ["report", path, "--by", "day,model,team", "--format", "csv",
                                                      "--no-dedupe"])
    assert code == 0, out
    assert _lines(quarantine) == [12, 24]  # (TOO_FINE, NEGATIVE: their record's number + 1)
    assert "\n2026-10-08,claude-haiku-4-5-20251001,\"5\"\" tall\",1,5," in out


@pytest.mark.parametrize("args", [["report", "--by", "day,model"], ["report", "--by", "day,model,team"],
                                  ["report", "--by", "day,model", "--no-dedupe"],
                                  ["price", "-o", "{tmp}/rows.csv"]])
def test_a_record_with_two_stray_quotes_is_read_whatever_the_columns_asked(tmp_path, args):
    # A read of the first columns alone failed ("CSV malformed", no file named): the run passed or
    # failed by --by (team is the last column), and `price` failed. 300 records r0..r299 (input
    # 10+i, output 3) and `r"7` (5, 3), all Haiku 4.5 ($1 / $5 per million): NEGATIVE quarantined.
    path = _write(tmp_path / "log.csv", [*RECORDS[:20], STRAY, NEGATIVE, *RECORDS[20:]])
    code, out, quarantine = _cli(tmp_path, [args[0], path, *(a.format(tmp=tmp_path) for a in args[1:])])
    assert code == 0, out
    assert _lines(quarantine) == [23]
    inputs = sum(10 + i for i in range(300)) + 5
    report = analyze([path], ["day", "model"], Options(quarantine=str(tmp_path / "q2.jsonl")))
    assert (report.totals["requests"], report.totals["input_tokens"], report.totals["output_tokens"]) == (
        301, inputs, 301 * 3)
    assert report.totals["cost"] == D(inputs) / 10**6 + D(301 * 3 * 5) / 10**6
    acc = report.accounting
    assert (acc.rows_read, acc.quarantined, acc.balanced) == (302, 1, True)


def test_the_reader_parses_a_record_through_its_last_column_whatever_is_asked(tmp_path):
    path = _write(tmp_path / "log.csv", [*RECORDS[:20], STRAY, *RECORDS[20:]])
    with sources.one_reading():
        every = sources.bounded_csv(path, None).collect()
        first = sources.bounded_csv(path, None).select("request_id", "_row").collect()
        asked = sources.bounded_csv(path, None, rows=every["_row"].slice(20, 1)).collect()
    assert first.equals(every.select("request_id", "_row"))
    assert every.row(20, named=True)["request_id"] == 'r"7' and every.row(20, named=True)["team"] == '5" tall'
    assert asked.equals(every.slice(20, 1))


def test_a_piece_with_bytes_that_are_not_utf8_is_counted_as_it_is_read(tmp_path):
    # The count read a piece lossily (U+FFFD for the byte), the reading by its marked text: where
    # Polars' parse of a malformed record depends on the text, the count raised "CSV malformed"
    # where the reading passed. (A piece of 16 bytes; stray quotes, `\r`, a Latin-1 `\xe9`: the
    # fuzzer's record, shrunk.)
    path = tmp_path / "x.tsv"
    path.write_bytes(b'c0\tc1\n"""\t"\t1"x"\t""\n"\r\n\n""\r"""\tq\xe9"\r\n""\tx y\t1.5\t-3\n\n\xc3\xa9\t\r\n'
                     b'\xc3\xa9\tte"am\ny\n')
    # (Polars 2.2 refuses this record, "CSV malformed", where 2.1 read it: then the count must be
    # refused alike, never read lossily into rows the reading does not have. The refusal names the
    # line of the first record that is not RFC 4180: tests/test_csv_malformed.py.)
    def read(rows=None):
        try:
            with sources.one_reading():
                return sources.bounded_csv(str(path), None, piece_bytes=16, rows=rows).collect()
        except (pl.exceptions.ComputeError, SourceError) as e:
            return str(e)
    every = read()
    asked = read(pl.Series([2, 3, 4, 5, 6, 7])) if isinstance(every, str) else read(every["_row"])
    if isinstance(every, str):
        assert asked == every
    else:
        assert every["_bad"].any()
        assert asked.equals(every)


# --- what held: the new path against the whole robust reading --------------------------------------

def _hostile(tmp_path, name: str) -> list[str]:
    """One CSV of each kind tried (records that fail the fast pass among them), as paths."""
    r = [good(i) for i in range(40)]
    cases = {
        # quoted fields spanning lines, `""` escapes, CR inside quotes, CRLF and LF mixed
        "quotes": ([*r[:5], f'q1,2026-10-08T01:00:00Z,{HAIKU},5,3,"a\r\nb ""c"""', TOO_FINE,
                    f'q2,2026-10-08T01:00:00Z,{HAIKU},-5,3,"x\ry\nz"', *r[5:]], "\n"),
        "crlf": ([*r[:20], TOO_FINE, f'q3,2026-10-08T02:00:00Z,{HAIKU},"7\r\n5",3,a', *r[20:]], "\r\n"),
        # blank and space-only lines, ragged rows, NUL bytes
        "ragged": ([*r[:3], "", "   ", f"q4,2026-10-08T03:00:00Z,{HAIKU}", TOO_FINE,
                    f"q5,2026-10-08T03:00:00Z,{HAIKU},6,2,t,extra,more", f"q6,2026-10-08T03:00:00Z,{HAIKU},6,2,n\x00ul",
                    *r[3:], ""], "\n"),
        # bytes that are not UTF-8, on each side of where 64-byte pieces cut
        "latin": ([*r[:7], f"q7,2026-10-08T04:00:00Z,{HAIKU},8,1,caf\udce9", TOO_FINE, f"q8,2026-10-08T04:00:00Z,"
                   f"{HAIKU},8,1,\udcff\udcfe", *r[7:]], "\n"),
        # the same request id: a quarantined record, its good copy, and a duplicate quarantined too
        "dupes": ([*r[:10], "r3,2026-10-08T03:00:00Z,claude-haiku-4-5,1.5,3,t0", "r3,2026-10-08T03:00:00Z,"
                   "claude-haiku-4-5,13,3,t0", "r4,2026-10-08T04:00:00Z,claude-haiku-4-5,-1,3,t1", *r[10:]], "\n"),
    }
    if name == "header only":
        return [_write(tmp_path / "h.csv", [])]
    if name == "header names":  # a name twice, an empty name
        return [_write(tmp_path / "n.csv", [x + ",,x" for x in [*r[:9], TOO_FINE, NEGATIVE, *r[9:]]],
                       HEADER + ",team,")]
    if name == "bom, no last newline":
        path = tmp_path / "b.csv"
        path.write_bytes(b"\xef\xbb\xbf" + "\n".join([HEADER, *r[:30], TOO_FINE, *r[30:], NEGATIVE]).encode())
        return [str(path)]
    if name in ("gzip", "zstd", "tsv"):
        records, end = cases["quotes"]
        text = (end.join([HEADER, *records]) + end).encode()
        if name == "tsv":
            path = tmp_path / "t.tsv"
            path.write_bytes(text.replace(b",", b"\t"))
        elif name == "gzip":
            path = tmp_path / "g.csv.gz"
            path.write_bytes(gzip.compress(text))
        else:
            zstandard = pytest.importorskip("zstandard")
            path = tmp_path / "z.csv.zst"
            path.write_bytes(zstandard.ZstdCompressor().compress(text))
        return [str(path)]
    if name == "one bad among several, beside JSON Lines and Parquet":
        import polars as pl
        parquet = tmp_path / "p.parquet"
        pl.DataFrame({"request_id": ["p1", "p2"], "timestamp": ["2026-10-08T01:00:00Z"] * 2, "model": [HAIKU] * 2,
                      "input_tokens": ["5", "x"], "output_tokens": ["1", "1"]}).write_parquet(parquet)
        (tmp_path / "j.jsonl").write_text(f'{{"timestamp":"2026-10-08T00:00:00Z","model":"{HAIKU}",'
                                          '"input_tokens":-1,"output_tokens":2}\n')
        return [_write(tmp_path / "clean.csv", r[:20]), *_hostile(tmp_path, "quotes"), str(tmp_path / "j.jsonl"),
                str(parquet), _write(tmp_path / "clean2.csv", [NEGATIVE, *r[20:]])]
    if name == "console and LiteLLM CSVs":  # (formats of their own: the console's is read whole, not by parts)
        from pathlib import Path
        root = Path(__file__).resolve().parent.parent.parent / "fixtures" / "dialects"
        console = (root / "anthropic-console-csv" / "console_usage_export.csv").read_text().splitlines()
        console[2:2] = [console[1].replace(",1250000,", ",12.5,"), console[2].replace(",46981,", ",-3,")]
        (tmp_path / "console.csv").write_text("\n".join(console) + "\n")
        (tmp_path / "lite.csv").write_text((root / "litellm-spendlogs" / "litellm_spendlogs.csv").read_text())
        return [str(tmp_path / "console.csv"), str(tmp_path / "lite.csv"), *_hostile(tmp_path, "crlf")]
    records, end = cases[name]
    return [_write(tmp_path / f"{name}.csv", records, end=end)]


KINDS = ["quotes", "crlf", "ragged", "latin", "dupes", "header only", "header names", "bom, no last newline", "gzip",
         "zstd", "tsv", "one bad among several, beside JSON Lines and Parquet", "console and LiteLLM CSVs"]


@pytest.mark.parametrize("kind", KINDS)
def test_a_hostile_csv_retried_reports_and_quarantines_as_the_whole_reading(tmp_path, kind):
    paths = _hostile(tmp_path, kind)
    for piece in (17, 64):
        code, out, quarantine = _same_as_whole(tmp_path, ["report", *paths, "--by", "day,model,team", "--format", "csv"],
                                               piece)
        assert code == 0, out
        assert kind == "header only" or quarantine


@pytest.mark.parametrize("args", [["report", "--by", "hour,model", "--since", "2026-10-08T05:00:00Z",
                                   "--until", "2026-10-08T15:00:00Z"],
                                  ["report", "--by", "day,model,team", "--no-dedupe"],
                                  ["price", "-o", "{tmp}/rows.csv"]])
def test_filters_and_price_rows_of_a_retried_csv_are_the_whole_readings(tmp_path, args):
    paths = _hostile(tmp_path, "dupes") + _hostile(tmp_path, "quotes")
    outs = []
    for whole in (False, True):
        outs.append(_cli(tmp_path, [args[0], *paths, *(a.format(tmp=tmp_path) for a in args[1:])], whole, 64))
        if args[0] == "price":
            outs[-1] += ((tmp_path / "rows.csv").read_bytes(),)
    assert outs[0] == outs[1]
    assert outs[0][0] == 0 and len(outs[0][2].splitlines()) == 4


def test_a_retried_csv_from_stdin(tmp_path):
    text = "\n".join([HEADER, *RECORDS[:10], TOO_FINE, *RECORDS[10:20], NEGATIVE, *RECORDS[20:40]]) + "\n"
    _, _, quarantine = _same_as_whole(tmp_path, ["report", "-", "--by", "day,model", "--format", "csv"], 64, text)
    assert [(json.loads(x)["file"], json.loads(x)["line"]) for x in quarantine.splitlines()] == [
        ("<stdin>", 12), ("<stdin>", 23)]


def _during_quarantine(monkeypatch, change):
    """`change()` run just before the quarantine pass reads the logs again."""
    real = pipeline.write_quarantine

    def changed(*args, **kwargs):
        change()
        return real(*args, **kwargs)

    monkeypatch.setattr(pipeline, "write_quarantine", changed)


def test_records_appended_during_the_run_are_left_for_the_next(tmp_path, monkeypatch):
    path = tmp_path / "live.csv"
    _write(path, [*RECORDS[:10], TOO_FINE, *RECORDS[10:20], NEGATIVE, *RECORDS[20:30]])
    _during_quarantine(monkeypatch, lambda: path.open("a").write(NEGATIVE.replace("rn", "late") + "\n"))
    code, out, quarantine = _cli(tmp_path, ["report", str(path), "--by", "day,model", "--format", "csv"], piece=64)
    assert code == 0 and "2 rows quarantined" in out
    assert _lines(quarantine) == [12, 23]


@pytest.mark.parametrize("whole", [False, True])
@pytest.mark.parametrize("night", ["shorter", "longer"])
def test_a_log_truncated_and_written_again_during_the_run(tmp_path, monkeypatch, whole, night):
    """The quarantine pass read the new text at the counted records' numbers, and listed a record
    never counted, without a word. Now the run stops, naming the file (exit 2, no quarantine file)."""
    path = tmp_path / "rotated.csv"
    _write(path, [*RECORDS[:10], TOO_FINE, *RECORDS[10:30]])
    # (rotated: the new night's records start again, a bad one where the counted one was)
    new = [*RECORDS[:10], NEGATIVE.replace("rn", "new"), *RECORDS[10:15 if night == "shorter" else 60]]
    _during_quarantine(monkeypatch, lambda: _write(path, new))
    code, out, quarantine = _cli(tmp_path, ["report", str(path), "--by", "day,model", "--format", "csv"],
                                 whole=whole, piece=64)
    why = "truncated: " if night == "shorter" else "written again"
    assert code == 2 and not quarantine
    assert out.startswith(f"llm-cost: error: {path}: changed during the run ({why}") and out.count("\n") == 1, out


def test_a_json_lines_log_replaced_during_the_run_is_named(tmp_path, monkeypatch):
    """The same for JSON Lines, and a log moved away and a new one put in its place (another inode)."""
    def line(rid: str, n: int) -> str:
        return json.dumps({"request_id": rid, "timestamp": "2026-10-08T00:00:00Z", "model": HAIKU,
                           "input_tokens": n, "output_tokens": 3})
    path = tmp_path / "live.jsonl"
    path.write_text("".join(line(f"r{i}", -1 if i == 5 else 10) + "\n" for i in range(20)))

    def rotate():
        path.rename(tmp_path / "live.jsonl.1")
        path.write_text("".join(line(f"n{i}", -1 if i == 3 else 10) + "\n" for i in range(20)))
    _during_quarantine(monkeypatch, rotate)
    code, out, quarantine = _cli(tmp_path, ["report", str(path), "--by", "day,model", "--format", "csv"])
    assert (code, quarantine) == (2, "")
    assert out == (f"llm-cost: error: {path}: changed during the run (replaced by another file); its records "
                   "were counted as it was before, and cannot be read again: run again\n")


def test_a_csv_records_raw_is_the_same_whatever_else_the_run_read(tmp_path):
    """A CSV record's `raw` is its fields as written (text), read fast or robustly, alone or not."""
    # (`-04`, `+3`: counts the fast reader types as -4 and 3)
    path = _write(tmp_path / "log.csv", [*RECORDS[:10], NEGATIVE.replace(",-4,3,", ",-04,+3,"), *RECORDS[10:20]])
    (tmp_path / "side.jsonl").write_text(f'{{"timestamp":"2026-10-08T00:00:00Z","model":"{HAIKU}",'
                                         '"input_tokens":-1,"output_tokens":2}\n')
    raws = []
    for paths in ([path], [path, str(tmp_path / "side.jsonl")]):
        _, _, quarantine = _cli(tmp_path, ["report", *paths, "--by", "day,model", "--format", "csv"])
        raws.append(json.loads(quarantine.splitlines()[0])["raw"])
    assert raws[0] == raws[1]
    assert json.loads(raws[0]) == {"request_id": "rn", "timestamp": "2026-10-08T00:00:00Z", "model": HAIKU,
                                   "input_tokens": "-04", "output_tokens": "+3", "team": "a"}

"""A CSV run retried after a malformed record (a count `1.5`) decodes its rows once (pipeline.spool),
and its quarantine pass hands to the robust plan only the records those rows show quarantined
(line_retry.needed_records, SourceFile.rows): the others are counted, never decoded. These tests
hold the report and the quarantine file, byte for byte, to the old whole robust reading (every
record read robustly by each pass), with pieces small enough to put a bad record in the first,
a middle or the last piece, and records that span lines (RFC 4180: a newline inside quotes),
CRLF, a BOM, many bad records, a header alone."""

from __future__ import annotations

import gzip
import json

import polars as pl
import pytest
from click.testing import CliRunner

from analyzer import line_retry, pipeline, sources
from analyzer.cli import main

HEADER = "request_id,timestamp,model,input_tokens,output_tokens,team"


def good(i: int) -> str:
    team = f'"t{i % 3}, ""quoted""\nover two lines"' if i % 7 == 0 else f"t{i % 3}"
    return f"r{i},2026-10-08T{i % 24:02d}:00:00Z,claude-haiku-4-5,{10 + i},3,{team}"


# Records the fast pass fails on (a count `1.5`) or that the robust plan quarantines, some spanning lines.
BAD = [
    "rb1,2026-10-08T00:00:00Z,claude-haiku-4-5,1.5,3,a",
    'rb2,2026-10-08T00:00:00Z,claude-haiku-4-5,-4,3,"b\nc"',
    "rb3,not a time,claude-haiku-4-5,4,3,a",
    'rb4,2026-10-08T00:00:00Z,claude-haiku-4-5,"7\n5",3,a',
    "rb5,2026-10-08T00:00:00Z,claude-haiku-4-5,,3,a",
]


def _text(records: list[str], crlf: bool = False, bom: bool = False) -> bytes:
    text = "\n".join([HEADER, *records]) + "\n"
    if crlf:  # (every line, the ones inside quoted fields too, as a Windows editor writes them)
        text = text.replace("\n", "\r\n")
    return (b"\xef\xbb\xbf" if bom else b"") + text.encode()


def read_as(m: pytest.MonkeyPatch, whole: bool, piece: int | None = None) -> None:
    """Pieces of `piece` bytes; with `whole`, the robust reading as it was before the CSV retry by
    parts (no spooled CSV rows; every record of the quarantine pass read): the reference."""
    if piece is not None:
        m.setattr(sources, "PIECE_BYTES", piece)
    if whole:
        m.setattr(line_retry, "line_local", lambda d, src: False)
        m.setattr(pipeline, "_spooled", lambda src, robust=False: src.container in ("json", "jsonl") or (
            src.compression is not None and src.container != "parquet"))


def _report(path: str, tmp_path, whole: bool, piece: int | None = None) -> tuple[str, str]:
    """The report (CSV) and quarantine file of `report PATH`: by the new path, or (`whole`) by the
    old whole robust reading (no spooled CSV rows; every record of the quarantine pass read)."""
    q = tmp_path / "q.jsonl"
    q.unlink(missing_ok=True)
    with pytest.MonkeyPatch.context() as m:
        read_as(m, whole, piece)
        result = CliRunner().invoke(main, ["report", path, "--by", "day,model,team", "--format", "csv",
                                           "--quarantine", str(q)], catch_exceptions=False)
    return result.output, q.read_text() if q.exists() else ""


def _same_as_whole(path: str, tmp_path, piece: int = 200) -> tuple[str, str]:
    new, whole = _report(path, tmp_path, False, piece), _report(path, tmp_path, True)
    assert new == whole
    return new


@pytest.mark.parametrize("crlf", [False, True])
@pytest.mark.parametrize("bom", [False, True])
@pytest.mark.parametrize("at", ["first", "middle", "last"])
def test_a_retried_csv_reports_and_quarantines_as_the_whole_robust_reading(tmp_path, at, crlf, bom):
    records = [good(i) for i in range(120)] + [good(5)]  # (a duplicate id too)
    where = {"first": 0, "middle": 60, "last": len(records)}[at]
    records[where:where] = BAD
    path = tmp_path / "log.csv"
    path.write_bytes(_text(records, crlf, bom))
    _, quarantine = _same_as_whole(str(path), tmp_path)
    rows = [json.loads(x) for x in quarantine.splitlines()]
    # Each record on its record's number + 1 (the header is line 1), as the robust reading numbers them.
    assert [r["line"] for r in rows] == [where + 2 + i for i in range(len(BAD))]
    assert rows[0]["reason"] == "input_tokens is not a whole number (1.5)"
    assert json.loads(rows[1]["raw"])["team"] == ("b\r\nc" if crlf else "b\nc")


def test_many_bad_records_across_many_pieces(tmp_path):
    records = []
    for i in range(200):
        records.append(good(i))
        if i % 9 == 4:
            records.append(BAD[i % len(BAD)].replace("rb", f"x{i}-"))
    path = tmp_path / "many.csv"
    path.write_bytes(_text(records))
    _, quarantine = _same_as_whole(str(path), tmp_path, piece=64)
    assert len(quarantine.splitlines()) == 22


def test_a_header_alone(tmp_path):
    path = tmp_path / "empty.csv"
    path.write_bytes(_text([]))
    _same_as_whole(str(path), tmp_path)


def test_a_gzip_csv(tmp_path):
    records = [good(i) for i in range(80)]
    records[40:40] = BAD
    path = tmp_path / "log.csv.gz"
    path.write_bytes(gzip.compress(_text(records, crlf=True)))
    _, quarantine = _same_as_whole(str(path), tmp_path, piece=128)
    assert [json.loads(x)["line"] for x in quarantine.splitlines()] == [42, 43, 44, 45, 46]


def test_bytes_that_are_not_utf8_beside_a_bad_count(tmp_path):
    records = [good(i) for i in range(50)]
    path = tmp_path / "latin.csv"
    path.write_bytes(_text(records[:20] + [BAD[0]] + records[20:]) + b"r99,2026-10-08T00:00:00Z,caf\xe9,1,1,a\n")
    _, quarantine = _same_as_whole(str(path), tmp_path, piece=100)
    assert [json.loads(x)["line"] for x in quarantine.splitlines()] == [22, 53]


def test_a_mixed_run_after_a_clean_pass_reads_the_csv_lines_its_fast_pass_found(tmp_path):
    # A JSON Lines file beside a CSV: the fast pass finds the quarantined rows (the CSV's by Polars'
    # own scan), and the quarantine pass reads those records of the CSV alone: their numbers must be
    # the robust reader's for records spanning lines, CRLF and a BOM.
    records = [good(i) for i in range(60)]
    records[30:30] = [BAD[1], BAD[2], BAD[4]]  # (quarantined without failing the fast pass)
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "a.csv").write_bytes(_text(records, crlf=True, bom=True))
    (tmp_path / "in" / "b.jsonl").write_text(
        '{"timestamp":"2026-10-08T00:00:00Z","model":"claude-haiku-4-5","input_tokens":-1,"output_tokens":2}\n')
    _, quarantine = _same_as_whole(str(tmp_path / "in"), tmp_path, piece=150)
    assert [(json.loads(x)["file"].rsplit("/")[-1], json.loads(x)["line"]) for x in quarantine.splitlines()] == [
        ("a.csv", 32), ("a.csv", 33), ("a.csv", 34), ("b.jsonl", 1)]


@pytest.mark.parametrize("piece", [40, 100, 1 << 20])
def test_the_csv_reader_hands_on_only_the_records_asked_for(tmp_path, monkeypatch, piece):
    records = [good(i) for i in range(40)]
    records[11:11] = BAD
    path = tmp_path / "r.csv"
    path.write_bytes(_text(records, crlf=True))
    monkeypatch.setattr(sources, "PIECE_BYTES", piece)
    with sources.one_reading():
        every = sources.bounded_csv(str(path), None).collect()
        asked = pl.Series([2, 13, 14, 16, 46, 999])  # (and one past the end: nothing)
        some = sources.bounded_csv(str(path), None, rows=asked).collect()
        none = sources.bounded_csv(str(path), None, rows=pl.Series([], dtype=pl.UInt32)).collect()
    assert every.height == 45
    assert some.equals(every.filter(pl.col("_row").is_in([2, 13, 14, 16, 46])))
    assert some["input_tokens"].to_list() == ["10", "1.5", "-4", "7\r\n5", "49"]
    assert none.height == 0


def test_the_quarantine_pass_asks_for_the_quarantined_records_alone(tmp_path, monkeypatch):
    records = [good(i) for i in range(100)]
    records[50:50] = BAD
    path = tmp_path / "log.csv"
    path.write_bytes(_text(records))
    asked = []
    real = sources.bounded_csv

    def spy(*args, rows=None, **kw):
        asked.append(None if rows is None else sorted(rows.to_list()))
        return real(*args, rows=rows, **kw)

    monkeypatch.setattr(sources, "bounded_csv", spy)
    _report(str(path), tmp_path, False)
    # The robust pass reads every record (once, spooled); the quarantine pass the five it found.
    assert asked[-1] == [52, 53, 54, 55, 56]
    assert None in asked[:-1]


def test_a_mapped_csv_in_a_retried_run(tmp_path):
    # A --map format read from CSV (each record its own row: line-local) in a run retried for a torn
    # JSON line of the same format: its quarantined records are asked for and found alone too. (Line 7
    # is the fixture's own: fewer input tokens than its cache reads.)
    from pathlib import Path
    root = Path(__file__).resolve().parent.parent / "fixtures" / "dialects" / "custom-mapping"
    (tmp_path / "in").mkdir()
    rows = (root / "homegrown.csv").read_text().splitlines()
    bad = rows[1].replace(",12000,", ",-12,")
    (tmp_path / "in" / "gateway.csv").write_text("\n".join([rows[0], *rows[1:3], bad, bad.replace(",search,", ',"x\ny",'),
                                                          *rows[3:], bad]) + "\n")
    (tmp_path / "in" / "gateway.jsonl").write_text('{"when":"2026-11-24T08:00:00Z","llm":"claude-haiku-4-5",'
                                                   '"prompt_total":5,"completion":1}\n{"when":"2026-11-24T0')
    args = ["report", str(tmp_path / "in"), "--map", str(root / "mapping.toml"), "--by", "day,model,team"]
    outs = []
    for whole in (False, True):
        q = tmp_path / f"q{whole}.jsonl"
        with pytest.MonkeyPatch.context() as m:
            m.setattr(sources, "PIECE_BYTES", 120)
            if whole:
                m.setattr(line_retry, "line_local", lambda d, src: False)
                m.setattr(pipeline, "_spooled", lambda src, robust=False: src.container in ("json", "jsonl"))
            result = CliRunner().invoke(main, [*args, "--format", "csv", "--quarantine", str(q)],
                                        catch_exceptions=False)
        outs.append((result.output.replace(str(q), "Q"), q.read_text()))
    assert outs[0] == outs[1]
    assert [(json.loads(x)["file"].rsplit("/")[-1], json.loads(x)["line"]) for x in outs[0][1].splitlines()] == [
        ("gateway.csv", 4), ("gateway.csv", 5), ("gateway.csv", 7), ("gateway.csv", 8), ("gateway.jsonl", 2)]

"""A CSV record Polars cannot parse (a quote that does not close, one inside a field not enclosed in
quotes) refuses the file in one line naming the line the record starts at, as an editor numbers
the file's lines (1-based, the header line 1, a quoted field's newlines counted): Polars names no
line ("could not parse `...` quoting the rest of the file, or "CSV malformed: expected 0 rows,
actual 1001 rows, in chunk starting at row_offset 0"), and the refusal named no file either.
The bounded reader halves the piece that fails at its record ends (sources._malformed)."""

from __future__ import annotations

import gzip

import pytest
from click.testing import CliRunner

from analyzer import sources
from analyzer.cli import main

HEADER = "request_id,timestamp,model,input_tokens,output_tokens,team"
HINT = "a quote that does not close, or one inside a field not enclosed in quotes"


def good(i: int, spans: bool = False) -> str:
    team = f'"t{i}, ""quoted""\nover\ntwo more lines"' if spans and i % 5 == 0 else f"t{i % 3}"
    return f"r{i},2026-10-08T{i % 24:02d}:00:00Z,claude-haiku-4-5,{10 + i},3,{team}"


BAD = {
    "an unbalanced quote": 'rx,2026-10-08T00:00:00Z,claude-haiku-4-5,4,3,"never closed',
    "a quote inside a field": 'rx,2026-10-08T00:00:00Z,claude-"haiku-4-5,4,3,t',
    "too many fields, one with a quote": 'rx,2026-10-08T00:00:00Z,claude-haiku-4-5,4,3,t,more,4"',
}


def _refused(tmp_path, path) -> str:
    q = tmp_path / "q.jsonl"
    r = CliRunner().invoke(main, ["report", str(path), "--quarantine", str(q)])
    assert r.exit_code == 2, r.output
    assert r.exception is None or isinstance(r.exception, SystemExit)
    assert not q.exists()
    (said,) = r.output.splitlines()
    return said


def _log(records: list[str], crlf: bool = False) -> bytes:
    return ("\r\n" if crlf else "\n").join([HEADER, *records, ""]).encode()


@pytest.mark.parametrize("at", [0, 7, 2500])  # (the first record; in the peek; in a later piece)
@pytest.mark.parametrize("kind", sorted(BAD))
@pytest.mark.parametrize("form", ["plain", "gzip", "crlf", "lines in quotes"])
def test_a_malformed_record_is_refused_naming_its_line(tmp_path, monkeypatch, kind, at, form):
    monkeypatch.setattr(sources, "PIECE_BYTES", 4096)  # (many pieces: the bad record in a later one)
    records = [good(i, spans=form == "lines in quotes") for i in range(3000)]
    records.insert(at, BAD[kind])
    line = 2 + sum(r.count("\n") + 1 for r in records[:at])  # (the header is line 1)
    data = _log(records, crlf=form == "crlf")
    path = tmp_path / ("log.csv.gz" if form == "gzip" else "log.csv")
    path.write_bytes(gzip.compress(data) if form == "gzip" else data)
    assert data.split(b"\n")[line - 1].rstrip(b"\r").decode() == BAD[kind]  # (the line an editor shows)
    assert _refused(tmp_path, path) == f"llm-cost: error: {path}: line {line}: cannot read (a malformed CSV record: " \
                                       f"{HINT}: `{BAD[kind]}`)"


def test_the_first_of_two_malformed_records_is_named(tmp_path, monkeypatch):
    monkeypatch.setattr(sources, "PIECE_BYTES", 4096)
    records = [good(i) for i in range(2000)]
    records[1200] = BAD["a quote inside a field"]
    records[1500] = BAD["an unbalanced quote"]
    path = tmp_path / "log.csv"
    path.write_bytes(_log(records))
    assert f": line {1202}: cannot read (a malformed CSV record:" in _refused(tmp_path, path)


def test_a_long_malformed_record_is_shown_cut(tmp_path):
    bad = f'rx,2026-10-08T00:00:00Z,claude-"haiku-4-5,4,3,{"t" * 500}'
    path = tmp_path / "log.csv"
    path.write_bytes(_log([good(0), bad, good(1)]))
    said = _refused(tmp_path, path)
    assert said.endswith(f": line 3: cannot read (a malformed CSV record: {HINT}: `{bad[:99]}\u2026`)")


def test_a_record_of_more_fields_without_quotes_is_no_refusal(tmp_path):
    """(A record of more fields than the header, without their quotes gone wrong, whose extra fields
    are empty, is read by its first fields: an exporter's trailing comma. Not a malformed record;
    one with a non-empty extra field is quarantined: below, and tests/test_csv_ragged.py.)"""
    path = tmp_path / "log.csv"
    path.write_bytes(_log([good(0), f"{good(1)},", good(2)]))
    r = CliRunner().invoke(main, ["report", str(path), "--quarantine", str(tmp_path / "q.jsonl")])
    assert r.exit_code == 0, r.output
    assert "rows read 3 = priced 3" in r.output


def test_a_record_of_more_non_empty_fields_than_the_header_is_quarantined(tmp_path):
    """A record of more non-empty fields than the header was read by its first fields: an unquoted
    `1,200` was priced as 1 input and 200 output tokens, its last field dropped. It is quarantined."""
    path = tmp_path / "log.csv"
    path.write_text("request_id,timestamp,model,input_tokens,output_tokens\n"
                    "r1,2026-10-01T09:15:00Z,claude-sonnet-4-5,1,200,350\n"
                    "r2,2026-10-01T09:15:00Z,claude-sonnet-4-5,1000,350\n")
    r = CliRunner().invoke(main, ["report", str(path), "--quarantine", str(tmp_path / "q.jsonl")])
    assert r.exit_code == 0, r.output
    assert "rows read 2 = priced 1 + unpriced 0 + duplicates 0 + quarantined 1" in r.output


@pytest.mark.parametrize("at", [0, 1200, 2999])
def test_a_refusal_polars_alone_sees_is_found_by_halves(tmp_path, monkeypatch, at):
    """A piece Polars refuses whose records all look RFC 4180 to sources._not_rfc4180 (none known:
    that check stands aside here) is searched by halves for the shortest start Polars refuses."""
    monkeypatch.setattr(sources, "PIECE_BYTES", 1 << 20)  # (one piece: the search runs over 3,000 records)
    monkeypatch.setattr(sources, "_not_rfc4180", lambda body, sep: len(body))
    records = [good(i, spans=True) for i in range(3000)]
    records.insert(at, BAD["an unbalanced quote"])
    line = 2 + sum(r.count("\n") + 1 for r in records[:at])
    path = tmp_path / "log.csv"
    path.write_bytes(_log(records))
    assert _refused(tmp_path, path).endswith(f": line {line}: cannot read (a malformed CSV record: {HINT}: "
                                             f"`{BAD['an unbalanced quote']}`)")

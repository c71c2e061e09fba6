"""Attacks on the fast paths (canonical JSON Lines read natively, `price` written in slices): each
answer must be the one the robust path gives for the same file.

What held (see the engineer's report): fields first seen late (line 100,001, a 5th file, a gzip
member, after a blank line, null or wrong-typed), every timestamp form against its layout, slices
across duplicates, windows and quoted CSV newlines, kill -9 mid-write, Claude Code lines with CRLF,
BOM, huge or quoting content. What broke is below."""

from __future__ import annotations

import gzip
import json

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from analyzer import Options, price_requests, sources, writers

BASE = {"timestamp": "2026-10-08T00:00:00Z", "model": "claude-sonnet-4-5", "input_tokens": 1000, "output_tokens": 0}


def _rows(tmp_path, paths, slice_rows=None) -> dict[str, tuple[str, int]]:
    """request_id -> (file name, source_row) as `price` writes them."""
    old = writers.SLICE_ROWS
    writers.SLICE_ROWS = slice_rows
    try:
        rows, _ = price_requests([str(p) for p in paths], Options(quarantine=str(tmp_path / "q.jsonl")))
        out = tmp_path / "out.csv"
        writers.sink_rows(rows, "csv", str(out))
    finally:
        writers.SLICE_ROWS = old
    frame = pl.read_csv(out, infer_schema=False)
    return {r: (f.rsplit("/", 1)[-1], int(n)) for r, f, n in frame.select("request_id", "source_file", "source_row").rows()}


def _write(path, text: str) -> None:
    if str(path).endswith(".gz"):
        with gzip.open(path, "wb") as f:
            f.write(text.encode())
    else:
        path.write_bytes(text.encode())


@pytest.mark.parametrize("name", ["a.jsonl", "a.jsonl.gz"])
@pytest.mark.parametrize("newline", ["\n", "\r\n"])
def test_source_row_is_the_line_after_blank_lines_on_the_fast_path_too(tmp_path, name, newline):
    """A blank line (or one of spaces) before a record: the fast reader skipped it and numbered the
    record one line early (record 3 on line 4 was `source_row` 3), while the same file in a run read
    robustly (another file held a bad count) said 4: one file, two answers."""
    lines = ["", json.dumps({**BASE, "request_id": "r1"}), json.dumps({**BASE, "request_id": "r2"}), " \t",
             json.dumps({**BASE, "request_id": "r3"}), "", "", json.dumps({**BASE, "request_id": "r4"}), ""]
    log = tmp_path / name
    _write(log, newline.join(lines) + newline)
    bad = tmp_path / "bad.jsonl"  # a count that is not an integer: the whole run is read robustly
    bad.write_text(json.dumps({**BASE, "request_id": "b1", "input_tokens": "12x"}) + "\n")
    expected = {"r1": (name, 2), "r2": (name, 3), "r3": (name, 5), "r4": (name, 8)}
    assert _rows(tmp_path, [log]) == expected
    assert _rows(tmp_path, [log], slice_rows=1) == expected
    assert _rows(tmp_path, [log, bad]) == expected


@settings(max_examples=12, deadline=None)
@given(layout=st.lists(st.sampled_from(["rec", "", "  ", "\t\r"]), min_size=1, max_size=12),
       gz=st.booleans(), piece=st.sampled_from([None, 40]))
def test_source_row_is_the_line_in_any_layout_of_blank_lines(tmp_path_factory, layout, gz, piece):
    tmp = tmp_path_factory.mktemp("blank")
    layout = [*layout, "rec"]
    text, expected = [], {}
    for i, kind in enumerate(layout):
        if kind == "rec":
            expected[f"r{i}"] = i + 1
            text.append(json.dumps({**BASE, "request_id": f"r{i}"}))
        else:
            text.append(kind)
    log = tmp / ("a.jsonl.gz" if gz else "a.jsonl")
    _write(log, "\n".join(text) + "\n")
    old = sources.PIECE_BYTES
    if piece:
        sources.PIECE_BYTES = piece  # (pieces of a record or two: blank lines fall at any piece's edge)
    try:
        got = {r: n for r, (_, n) in _rows(tmp, [log]).items()}
    finally:
        sources.PIECE_BYTES = old
    assert got == expected

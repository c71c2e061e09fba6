"""Attacks on the search for late canonical JSON keys (canonical._late_keys, sources.first_key_match):
each file below once lost a late key's tokens with exit 0, or refused a legitimate file."""

from __future__ import annotations

import json
from decimal import Decimal

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from analyzer import sources
from analyzer.errors import DialectError
from analyzer.pipeline import Options, analyze
from analyzer.sources import SourceFile, first_key_match, one_reading

BASE = {"timestamp": "2026-10-08T00:00:00Z", "model": "claude-sonnet-4-5", "input_tokens": 1000, "output_tokens": 0}
# 61 x 1,000 input tokens at $3/MTok; 2,000,000 cache reads at $0.30/MTok
PLAIN, READS = Decimal("0.183"), Decimal("0.60")


@pytest.fixture(params=["lines", "windows", "both"])
def searched(request, monkeypatch):
    """A plain file's lines are searched by Polars' line reader, up to KEY_CANDIDATES candidates, then
    a window of lines at a time (as gzip or text that is not UTF-8 always is): each way, and the
    windows many (the key's line in a late one)."""
    if request.param == "windows":
        monkeypatch.setattr(sources, "_native_key_match", lambda *a: (None, 0))
    if request.param == "both":
        monkeypatch.setattr(sources, "KEY_CANDIDATES", 1)
    if request.param != "lines":
        monkeypatch.setattr(sources, "KEY_WINDOW", 1 << 10)


def _log(tmp_path, last: str, first: dict | None = None, name: str = "late.jsonl") -> str:
    p = tmp_path / name
    p.write_text("\n".join([json.dumps(first or BASE)] * 60 + [last]) + "\n")
    return str(p)


def _with(key_text: str) -> str:
    """BASE's record with one more key, written as is (escapes and all)."""
    return json.dumps(BASE)[:-1] + f", {key_text}: 2000000}}"


def _cost(path: str) -> tuple[int, Decimal]:
    rep = analyze([path], ["model"], Options())
    assert rep.accounting.rows_read == rep.accounting.priced == 61
    return rep.totals["cache_read_tokens"], sum(rep.rows["cost"])


@pytest.mark.parametrize("key", [
    r'"Cache\u005fRead_Tokens"',     # an escaped underscore (not a letter): was not searched for
    r'"cache_read_to\u212aens"',     # the Kelvin sign lower-cases to k, as in the first records
    '"cache_read_to\u212aens"',      # the same, as UTF-8
    r'"\u0043ACHE_READ_TOKENS"',
])
@pytest.mark.usefixtures("searched")
def test_a_late_count_spelled_with_an_escape_or_kelvin_sign_is_read(tmp_path, key):
    assert _cost(_log(tmp_path, _with(key))) == (2_000_000, PLAIN + READS)


@pytest.mark.usefixtures("searched")
def test_a_late_foreign_count_with_an_escaped_underscore_is_refused_naming_its_line(tmp_path):
    with pytest.raises(DialectError, match=r"late.jsonl line 61: key 'prompt_tokens' is not a canonical column"):
        analyze([_log(tmp_path, _with(r'"prompt\u005ftokens"'))], ["model"], Options())


@pytest.mark.usefixtures("searched")
def test_an_escaped_digit_respelling_a_seen_field_is_refused(tmp_path):
    path = _log(tmp_path, _with(r'"Cache_Write_\u0035M_Tokens"'), first={**BASE, "cache_write_5m_tokens": 0})
    with pytest.raises(DialectError, match="line 61: keys 'Cache_Write_5M_Tokens' and 'cache_write_5m_tokens'"):
        analyze([path], ["model"], Options())


@pytest.mark.parametrize("record", [
    {**BASE, "meta": {"Input_Tokens": 5}},           # a nested key is not a column: was "ambiguous"
    {**BASE, "usage": {"prompt_tokens": 5}},         # was "not a canonical column"
    {**BASE, 'x"prompt_tokens': "a"},                # a dimension whose name holds a quote
    {**BASE, "note": '"Cache_Read_Tokens": 5, \\"prompt_tokens\\":'},  # text in a value
])
@pytest.mark.parametrize("where", ["first", "late"])
@pytest.mark.usefixtures("searched")
def test_canonical_names_inside_nested_objects_keys_or_values_are_not_refused(tmp_path, record, where):
    lines = [json.dumps(BASE)] * 60
    lines.insert(0 if where == "first" else 60, json.dumps(record))
    p = tmp_path / "ok.jsonl"
    p.write_text("\n".join(lines) + "\n")
    rep = analyze([str(p)], [], Options())
    assert (rep.accounting.rows_read, rep.accounting.priced) == (61, 61)
    assert rep.totals["input_tokens"] == 61_000


@pytest.mark.parametrize("where", ["first", "late"])
@pytest.mark.parametrize("key", [" cache_read_tokens", "cache_read_tokens\t", "\u00a0Cache_Read_Tokens"])
@pytest.mark.usefixtures("searched")
def test_a_count_key_with_spaces_around_it_is_refused(tmp_path, where, key):
    # It was read by its stripped name, which the records do not hold: 2,000,000 tokens lost, exit 0.
    rec = {**BASE, key: 2000000}
    path = _log(tmp_path, json.dumps(rec)) if where == "late" else _log(tmp_path, json.dumps(BASE), first=rec)
    line = " line 61" if where == "late" else ""
    with pytest.raises(DialectError, match=f"late.jsonl{line}: key .* has spaces around a canonical name"):
        analyze([path], ["model"], Options())


def test_a_late_key_split_by_the_8_mib_piece_cut_of_a_huge_line_is_read(tmp_path):
    # A line longer than a piece (8 MiB) was cut at 8 MiB mid-line: a key across the cut not seen.
    head = ("\n".join([json.dumps(BASE)] * 60) + "\n").encode()
    pre = json.dumps(BASE)[:-1].encode() + b', "pad": "'
    pad = sources.PIECE_BYTES - 5 - len(pre) - 2  # the key's quote 5 bytes before the cut
    line = pre + b"x" * pad + b'", "Cache_Read_Tokens": 2000000}\n'
    assert (len(head) + line.index(b'"Cache_Read_Tokens"')) == len(head) + sources.PIECE_BYTES - 4
    p = tmp_path / "huge.jsonl"
    p.write_bytes(head + line)
    assert _cost(str(p)) == (2_000_000, PLAIN + READS)


@settings(max_examples=60, deadline=None)
@given(lengths=st.lists(st.integers(0, 90), min_size=1, max_size=40), key_at=st.integers(0, 39),
       window=st.integers(1, 64), newline=st.booleans(), gz=st.booleans(), crlf=st.booleans(),
       candidates=st.integers(1, 3), decoy=st.integers(0, 39))
def test_the_windows_hold_the_file_in_whole_lines_and_find_the_key_on_its_line(
        tmp_path_factory, lengths, key_at, window, newline, gz, crlf, candidates, decoy):
    import gzip
    lines = [b"x" * n for n in lengths]  # (blank lines too: they count)
    key_at %= len(lines)
    decoy %= len(lines)
    if decoy != key_at:  # a candidate `accept` refuses, before or after the key's line
        lines[decoy] = b'{"Kk": 0}'
    lines[key_at] = b'{"Kk": 1, "pad": "' + lines[key_at] + b'"}'
    text = (b"\r\n" if crlf else b"\n").join(lines) + (b"\n" if newline else b"")
    p = tmp_path_factory.mktemp("win") / ("w.jsonl.gz" if gz else "w.jsonl")
    p.write_bytes(gzip.compress(text) if gz else text)
    src = SourceFile(path=str(p), container="jsonl", compression="gzip" if gz else None)
    old = sources.KEY_WINDOW, sources.KEY_CANDIDATES
    sources.KEY_WINDOW, sources.KEY_CANDIDATES = window, candidates
    try:
        with one_reading(native=True):
            windows = list(sources._key_windows(src, sources._RUN.get()))
            hit = first_key_match(src, '"Kk":', accept=lambda line: None if line == b'{"Kk": 0}' else line)
    finally:
        sources.KEY_WINDOW, sources.KEY_CANDIDATES = old
    assert b"".join(windows) in (text, text + b"\n")
    assert all(w.endswith(b"\n") for w in windows) and all(windows)
    assert hit == (key_at + 1, lines[key_at])


def test_a_key_on_a_line_with_bytes_that_are_not_utf8_is_not_given_to_accept(tmp_path):
    # (its record is quarantined whole; the lines after it keep their numbers)
    p = tmp_path / "bad.jsonl"
    p.write_bytes(b'{"Kk": 1, "x": "\xff"}\n\n{"Kk": 2}\n')
    with one_reading(native=True):
        assert first_key_match(SourceFile(path=str(p), container="jsonl"), '"Kk":') == (3, b'{"Kk": 2}')


@pytest.mark.parametrize("key,candidate", [
    (r'"\u00e9quipe"', False),  # a JSON array's non-ASCII keys are written escaped: not decoded line by line
    (r'"\u6f22"', False), (r'"x\"y"', False), ('"team"', False), ('"input_tokens"', False),
    (r'"cache\u005fread_tokens"', True), ('"cache_read_to\u212aens"', True), (r'"\tmodel"', True), (r'"model\u00a0"', True), (r'"\ufeffmodel"', True),
])
def test_only_keys_that_may_name_a_field_are_candidates(key, candidate):
    from analyzer.dialects.canonical import FIELDS, _key_pattern
    pattern, text = _key_pattern({f: f for f in FIELDS}), f'{{{key}: 1}}'
    assert pl.Series([text]).str.contains(pattern)[0] is candidate

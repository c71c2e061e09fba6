"""The fast paths of a clean log read exactly what the general paths read (issue 17 §1).

- JSON Lines: a canonical field the first records lack is read as Null, which costs no column of
  values; any value of it fails the fast pass, and the run is read again robustly, so a key that first
  appears late still counts.
- Timestamps: a file whose first timestamps share one fixed layout is read as a fixed-width date-time
  plus its fraction; any text, in or out of the layout, reads to the instant the format reads.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from decimal import Decimal
from pathlib import Path

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from analyzer import pipeline
from analyzer.dialects import _parse
from analyzer.dialects.canonical import OPTIONAL
from analyzer.pipeline import FAST_PATH_FAILURES, Options, analyze
from analyzer.sources import one_reading

BASE = {"timestamp": "2026-10-08T00:00:00Z", "model": "claude-sonnet-4-5", "input_tokens": 1000, "output_tokens": 0}
# A value of each optional canonical field, as a log writes it.
LATE_VALUES = {"request_id": "r-61", "platform": "bedrock", "endpoint_scope": "regional", "service_tier": "batch",
               "speed": "fast", "inference_geo": "us", "context_window": "0-200k", "reported_cost": "0.5",
               "model_raw": "claude-haiku-4-5", "requests": 1, "cache_write_tokens": 10, "web_search_requests": 1,
               "web_fetch_requests": 1, "cache_write_5m_tokens": 10, "cache_write_1h_tokens": 10,
               "cache_read_tokens": 10}


def _late_log(tmp_path, key: str, value) -> str:
    """60 records without `key` (the first records detection sees), then one with it."""
    lines = [json.dumps(BASE)] * 60 + [json.dumps({**BASE, key: value})]
    p = tmp_path / "late.jsonl"
    p.write_text("\n".join(lines) + "\n")
    return str(p)


def test_every_optional_field_has_a_late_value():
    assert {*OPTIONAL, "model_raw"} == set(LATE_VALUES)  # (a log with `model` may also say `model_raw`)


@pytest.mark.parametrize("key", sorted(LATE_VALUES))
def test_a_field_first_seen_late_fails_the_fast_pass(tmp_path, key):
    """The fast pass never drops a value it did not expect: it fails, and the run reads robustly."""
    path = _late_log(tmp_path, key, LATE_VALUES[key])
    with one_reading(native=True):
        loaded = pipeline.read_logs([path], Options(), robust=False)
        assert key not in loaded.carried or key in ("model_raw",)  # (model_raw is carried through `model`)
        with pytest.raises(FAST_PATH_FAILURES):
            loaded.frame.select(pl.col("_ok").sum(), pl.len()).collect(engine="streaming")
        robust = pipeline.read_logs([path], Options(), robust=True)
        rows = robust.frame.collect()
    assert rows.height == 61 and rows["_ok"].all()


@pytest.mark.parametrize("key", sorted(LATE_VALUES))
def test_a_field_first_seen_late_as_null_keeps_the_fast_pass(tmp_path, key):
    path = _late_log(tmp_path, key, None)
    with one_reading(native=True):
        loaded = pipeline.read_logs([path], Options(), robust=False)
        out = loaded.frame.select(pl.col("_ok").sum(), pl.len()).collect(engine="streaming")
    assert out.row(0) == (61, 61)


@pytest.mark.parametrize("key,column,expected", [
    ("cache_read_tokens", "cache_read_tokens", 10), ("web_search_requests", "web_search_requests", 1),
    ("cache_write_tokens", "cache_write_5m_tokens", 10), ("cache_write_1h_tokens", "cache_write_1h_tokens", 10)])
def test_a_count_first_seen_late_is_in_the_report(tmp_path, key, column, expected):
    rep = analyze([_late_log(tmp_path, key, LATE_VALUES[key])], ["model"], Options(quarantine=str(tmp_path / "q")))
    assert (rep.accounting.rows_read, rep.accounting.priced) == (61, 61)
    assert rep.totals[column] == expected


def test_a_batch_tier_first_seen_late_is_priced_at_batch_rates(tmp_path):
    # 61 x 1,000 input tokens at $3/MTok, the last one at half: 60 x $0.003 + $0.0015
    rep = analyze([_late_log(tmp_path, "service_tier", "batch")], ["service_tier"], Options())
    assert dict(zip(rep.rows["service_tier"], rep.rows["cost"])) == {"standard": Decimal("0.18"),
                                                                      "batch": Decimal("0.0015")}


# -- timestamps in a fixed layout ------------------------------------------------------------------

def _first(texts: list[str], fmt: str, layout) -> list:
    """The fast stage alone (no every-form fallback), as epoch microseconds (years past 9999 too)."""
    f = _parse.timestamp("raw", "ts", pl.String(), fmt, layout)
    return pl.DataFrame({"raw": texts}, schema={"raw": pl.String}).select(f.first.dt.epoch("us"))["raw"].to_list()


def test_fast_layout_is_found_only_when_the_first_records_agree():
    L = _parse.Layout
    assert _parse.fast_layout(["2026-11-01T00:00:00.123Z"] * 3, _parse.PRIMARY) == L("T", 3, "Z", 0)
    fmt = "%Y-%m-%d %H:%M:%S%.f%z"
    assert _parse.fast_layout(["2026-11-01 00:00:00-03:30"], fmt) == L(" ", 0, "-03:30", -210 * 60_000_000)
    assert _parse.fast_layout(["2026-11-01T00:00:00.123456789+0000"], "%Y-%m-%dT%H:%M:%S%.f%z") == L("T", 9, "+0000", 0)
    # fractions of varying length, two offsets (summer time), epoch numbers: no layout
    assert _parse.fast_layout(["2026-11-01T00:00:00.1Z", "2026-11-01T00:00:00.12Z"], _parse.PRIMARY) is None
    assert _parse.fast_layout(["2026-11-01 00:00:00+01:00", "2026-11-01 00:00:00+02:00"], fmt) is None
    assert _parse.fast_layout(["1793491200000"], _parse.EPOCH_MS) is None
    # a broken first value is left out, as fast_format leaves it out
    assert _parse.fast_layout(["x", "2026-11-01T00:00:00Z"], _parse.PRIMARY) == L("T", 0, "Z", 0)
    assert _parse.fast_layout(["9999-12-31T23:00:00-14:00"], "%Y-%m-%dT%H:%M:%S%.f%z") is not None  # (year 10000)


LAYOUTS = [("T", 3, "Z"), ("T", 0, "Z"), ("T", 6, "+00:00"), ("T", 3, "+0000"), (" ", 0, ""), ("T", 9, ""),
           (" ", 3, "+05:30"), ("T", 2, "-0800"), ("T", 1, "+05"), ("T", 7, "-00:00")]


def _sample(sep: str, digits: int, suffix: str) -> str:
    return f"2026-11-01{sep}12:34:56" + ("." + "123456789"[:digits] if digits else "") + suffix


@settings(max_examples=400, deadline=None)
@given(layout=st.sampled_from(LAYOUTS), data=st.data())
def test_the_layout_reads_every_text_as_the_format_does(layout, data):
    """Texts in the layout, near it (a digit out of range, a character changed, one more or fewer)
    and far from it: the layout's parse gives exactly what the file's format gives, null or instant."""
    sample = _sample(*layout)
    fmt = _parse.fast_format([sample])
    found = _parse.fast_layout([sample], fmt)
    assert found is not None and (found.sep, found.digits, found.suffix) == layout
    n = len(sample)
    digits = st.text("0123456789", min_size=1, max_size=1)
    noise = st.text("0123456789:-+.TZz tU", min_size=0, max_size=2)

    def mutate(text: str) -> str:
        at = data.draw(st.integers(0, n - 1))
        how = data.draw(st.sampled_from(["digit", "noise", "drop", "insert"]))
        if how == "digit":
            return text[:at] + data.draw(digits) + text[at + 1:]
        if how == "noise":
            return text[:at] + data.draw(noise) + text[at + 1:]
        if how == "drop":
            return text[:at] + text[at + 1:]
        return text[:at] + data.draw(noise) + text[at:]

    def fill() -> str:  # the layout with random digits: months 00-19, hours 00-29, second 60...
        return "".join(data.draw(digits) if c.isdigit() else c for c in sample)

    texts = [sample, fill(), fill(), mutate(sample), mutate(fill()), mutate(mutate(fill())),
             data.draw(st.text(max_size=n + 2))]
    assert _first(texts, fmt, found) == _first(texts, fmt, None), texts


@settings(max_examples=200, deadline=None)
@given(t=st.datetimes(min_value=dt.datetime(1, 1, 2), max_value=dt.datetime(9999, 12, 30)),
       layout=st.sampled_from(LAYOUTS))
def test_the_layout_reads_any_instant(t, layout):
    sep, digits, suffix = layout
    text = t.strftime(f"%Y-%m-%d{sep}%H:%M:%S") + ("." + f"{t.microsecond:06d}000"[:digits] if digits else "") + suffix
    fmt = _parse.fast_format([text])
    found = _parse.fast_layout([text], fmt)
    assert _first([text], fmt, found) == _first([text], fmt, None) != [None]


def test_rows_out_of_the_layout_are_read_by_the_format_not_the_fallback():
    """A file of `.123Z` timestamps with one `.5Z` (a fraction trimmed) and one without a fraction: the
    fast stage reads all three (the format reads what the layout does not)."""
    texts = ["2026-11-01T00:00:00.123Z", "2026-11-01T00:00:00.5Z", "2026-11-01T00:00:00Z"]
    fmt = _parse.fast_format(texts[:1])
    got = _first(texts, fmt, _parse.fast_layout(texts[:1], fmt))
    assert got == [1793491200123000, 1793491200500000, 1793491200000000]


# -- keys in another case, or under a foreign name, first seen late ---------------------------------
# The first records name the keys a JSON Lines file is read by. A key first seen later in another
# case (`Cache_Read_Tokens`) would not be read at all, on either path: its tokens lost with exit 0.

def _late_key_log(tmp_path, line: str, first: dict | None = None, name: str = "late.jsonl") -> str:
    lines = [json.dumps(first or BASE)] * 60 + [line]
    p = tmp_path / name
    p.write_text("\n".join(lines) + "\n")
    return str(p)


@pytest.mark.parametrize("key", ['"Cache_Read_Tokens"', '"CACHE_READ_TOKENS"', '"cache_reaD_tokens"',
                                 '"Cache_Read_Tokens" ', '"\\u0043ache_read_tokens"'])
def test_a_count_first_seen_late_in_another_case_is_read(tmp_path, key):
    # 61 x 1,000 input tokens at $3/MTok, plus 2,000,000 cache reads at $0.30/MTok
    line = json.dumps(BASE)[:-1] + f', {key}: 2000000}}'
    rep = analyze([_late_key_log(tmp_path, line)], ["model"], Options())
    assert (rep.accounting.rows_read, rep.accounting.priced) == (61, 61)
    assert rep.totals["cache_read_tokens"] == 2_000_000
    assert sum(rep.rows["cost"]) == Decimal("0.183") + Decimal("0.60")


def test_a_late_spelling_in_a_gzip_file_is_read(tmp_path):
    import gzip
    line = json.dumps({**BASE, "Service_Tier": "batch"})
    plain = _late_key_log(tmp_path, line)
    packed = tmp_path / "late.jsonl.gz"
    packed.write_bytes(gzip.compress(open(plain, "rb").read()))
    rep = analyze([str(packed)], ["service_tier"], Options())
    assert dict(zip(rep.rows["service_tier"], rep.rows["cost"])) == {"standard": Decimal("0.18"),
                                                                      "batch": Decimal("0.0015")}


@pytest.mark.parametrize("line,message", [
    # the first records read `cache_read_tokens`; line 61 spells it otherwise: which one counts?
    (json.dumps({**BASE, "Cache_Read_Tokens": 5}),
     "line 61: keys 'Cache_Read_Tokens' and 'cache_read_tokens' both name 'cache_read_tokens'"),
    # another log's name for a count: its tokens would not be counted
    (json.dumps({**BASE, "cache_creation_input_tokens": 5}),
     "line 61: key 'cache_creation_input_tokens' is not a canonical column"),
    (json.dumps({**BASE, "Prompt_Tokens": 5}), "line 61: key 'Prompt_Tokens' is not a canonical column")])
def test_a_late_key_that_cannot_be_read_is_refused_naming_its_line(tmp_path, line, message):
    from analyzer.errors import DialectError
    path = _late_key_log(tmp_path, line, first={**BASE, "cache_read_tokens": 0})
    with pytest.raises(DialectError, match=message):
        analyze([path], ["model"], Options())


def test_two_late_spellings_of_one_field_are_refused(tmp_path):
    from analyzer.errors import DialectError
    path = tmp_path / "two.jsonl"
    path.write_text("\n".join([json.dumps(BASE)] * 60 + [json.dumps({**BASE, "Cache_Read_Tokens": 5}),
                                                         json.dumps({**BASE, "cache_read_tokens": 5})]) + "\n")
    with pytest.raises(DialectError, match="line 62: keys 'cache_read_tokens' and 'Cache_Read_Tokens'"):
        analyze([str(path)], ["model"], Options())


@pytest.mark.parametrize("extra", [
    {"workspace": "Cache_Read_Tokens"},  # a value, not a key
    {"note": json.dumps({"Cache_Read_Tokens": 5})},  # a key inside a string value
    {"\u00e9quipe": "x"},  # json.dumps escapes it (\u00e9): not an ASCII letter
    {"te\\u0061m": "x"}])  # an escaped letter, in a key that is no canonical name
def test_text_that_is_no_canonical_key_is_left_alone(tmp_path, extra):
    line = json.dumps({**BASE, **extra})
    rep = analyze([_late_key_log(tmp_path, line)], ["model"], Options())
    assert (rep.accounting.rows_read, rep.accounting.priced) == (61, 61)


@settings(max_examples=40, deadline=None)
@given(key=st.sampled_from(["cache_read_tokens", "cache_write_5m_tokens", "cache_write_1h_tokens", "web_search_requests"]),
       flips=st.lists(st.booleans(), min_size=25, max_size=25), n=st.integers(1, 5_000))
def test_any_spelling_of_a_late_count_reads_as_the_canonical_one(tmp_path_factory, key, flips, n):
    tmp = tmp_path_factory.mktemp("spell")
    spelled = "".join(c.swapcase() if f else c for c, f in zip(key, flips))
    first = {k: v for k, v in BASE.items() if k != key}
    canonical = analyze([_late_key_log(tmp, json.dumps({**first, key: n}), first, "a.jsonl")], ["model"], Options())
    other = analyze([_late_key_log(tmp, json.dumps({**first, spelled: n}), first, "b.jsonl")], ["model"], Options())
    assert other.totals == canonical.totals and list(other.rows["cost"]) == list(canonical.rows["cost"])


@pytest.mark.parametrize("gz", [False, True])
def test_a_late_key_beyond_the_first_window_is_found_on_its_line(tmp_path, monkeypatch, gz):
    """Files are searched a window of lines at a time: a key in the third window of a file that spans
    several is found, on the line it is on."""
    import gzip

    from analyzer import sources
    monkeypatch.setattr(sources, "KEY_WINDOW", 1 << 12)
    lines = [json.dumps({**BASE, "cache_read_tokens": 0})] * 200
    lines[150] = json.dumps({**BASE, "CACHE_read_tokens": 5})
    data = ("\n".join(lines) + "\n").encode()
    p = tmp_path / ("w.jsonl.gz" if gz else "w.jsonl")
    p.write_bytes(gzip.compress(data) if gz else data)
    from analyzer.errors import DialectError
    with pytest.raises(DialectError, match="line 151: keys 'CACHE_read_tokens'"):
        analyze([str(p)], ["model"], Options())


_READ_AS = [p for p in sorted((*Path("fixtures/dialects").iterdir(), *Path("fixtures/real").iterdir()))
            if p.is_dir() and p.name != "custom-mapping"]


@pytest.mark.parametrize("log", _READ_AS, ids=[f"{p.parent.name}/{p.name}" for p in _READ_AS])
def test_every_real_format_is_read_on_the_fast_path(log, monkeypatch):
    # A fault in a fast path's own rewrite (a line it breaks, a decode that fails) does not change a
    # total: the run is read again robustly, slower (15-40x for JSON), with the same answer. So only
    # this catches it: quoted_numbers once broke every Claude Code OpenTelemetry line, and the fault
    # showed only as the Spark test's Parquet bytes (the retry's output was no longer sliced).
    passes = []
    analyze_once = pipeline._analyze
    monkeypatch.setattr(pipeline, "_analyze", lambda *a, **k: passes.append(a[4]) or analyze_once(*a, **k))
    analyze([str(log)], ["model"], Options(quarantine=os.devnull, batch_time="2026-11-20T10:00:00Z"))
    assert passes == [False]

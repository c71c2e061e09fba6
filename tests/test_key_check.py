"""Canonical JSON Lines read before their search for late keys (canonical.KeyCheck): the run's pass
counts the values the NDJSON reader took, the file's `":` pairs are counted, and the search runs only
when the two differ. Every answer must be the one of the search run first (pipeline.SEARCH_KEYS_FIRST),
for every command that reads the file, whatever keys the file holds where."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from analyzer import pipeline, sources
from analyzer.cli import main
from analyzer.dialects import canonical
from analyzer.pipeline import Options, analyze, analyze_groups

HEAD = '{"timestamp": "2026-10-08T00:00:00Z", "model": "claude-sonnet-4-5", "workspace": "w", '


def record(tokens: int = 1000, extra: str = "", rid: str | None = None) -> str:
    """A canonical record: `tokens` input tokens of Sonnet 4.5 ($3/MTok), `extra` text before its `}`."""
    ident = f'"request_id": "{rid}", ' if rid else ""
    return f'{HEAD}{ident}"input_tokens": {tokens}, "output_tokens": 0{extra}}}'


def bare(tokens: int = 1000, extra: str = "") -> str:
    """A record without `workspace`."""
    return record(tokens, extra).replace('"workspace": "w", ', "")


def write(tmp_path: Path, lines: list[str], name: str = "log.jsonl") -> Path:
    p = tmp_path / name
    text = ("\n".join(lines) + "\n").encode()
    p.write_bytes(gzip.compress(text) if name.endswith(".gz") else text)
    return p


def cli(*args) -> tuple[int, str]:
    r = CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)
    return r.exit_code, r.output


def outcomes(tmp_path: Path, log: Path, by: str = "team") -> list:
    """What `report` and `price` say (exit code, output, the files they write) of `log`."""
    out = []
    for i, args in enumerate([("report", log, "--by", by, "--format", "json"),
                              ("report", log, "--by", "day,model", "--no-dedupe", "--format", "json"),
                              ("price", log, "-o", tmp_path / "rows.csv")]):
        for written in (tmp_path / "q.jsonl", tmp_path / "rows.csv"):
            written.unlink(missing_ok=True)
        code, text = cli(*args, "--quarantine", tmp_path / "q.jsonl")
        out.append((i, code, text, *[(w.read_text() if w.exists() else None)
                                     for w in (tmp_path / "q.jsonl", tmp_path / "rows.csv")]))
    return out


def searched_first(tmp_path: Path, log: Path, **kw) -> list:
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(pipeline, "SEARCH_KEYS_FIRST", True)
        return outcomes(tmp_path, log, **kw)


@pytest.fixture(autouse=True)
def _few_first_records(monkeypatch):
    # The reader's keys are those of a file's first records (50): here of 3, so that a few lines
    # hold keys after them.
    monkeypatch.setattr(sources, "SAMPLE_RECORDS", 3)


@pytest.fixture
def searches(monkeypatch) -> list:
    """Each search for late keys a run makes (canonical._late_keys)."""
    made = []
    real = canonical._late_keys
    monkeypatch.setattr(canonical, "_late_keys", lambda *a, **k: made.append(a[0].path) or real(*a, **k))
    return made


# Keys after the first records, each a case the check must catch (or pass) as the search does.
ODD = [
    ', "Cache_Read_Tokens": 7000',  # a canonical name in another case (tokens lost without the search)
    ', "cache_read_tokens": 7000',  # a canonical key the first records lack (read as Null: a retry)
    ', "cache\\u005fread_tokens": 7000',  # an escape in a key
    ', "Cache_Read_Tokens" : 7000',  # a space before the colon (not a `":` pair)
    ', "team": "red"',  # a `--by` tag the first records lack
    ', "team"\t: "red"',
    ', "team": null',
    ', "workspace": null',  # a null value: counted, not read
    ', "usage": {"input_tokens": 5}',  # a nested object
    ', "note": "a\\": b"',  # `":` inside a string
    ', "input_tokens": 9',  # a key twice
    ', "cache_read_input_tokens": 3',  # a foreign count name (refused)
    ', "extra": 1',  # a key nobody asked for
    ', " input_tokens": 3',  # spaces around a canonical name (refused)
]


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(st.integers(0, 5000), st.lists(st.sampled_from(ODD), max_size=2), st.booleans(),
                          st.sampled_from([None, "a", "b"])), min_size=1, max_size=6),
       st.integers(3, 4))
def test_every_answer_is_the_one_of_the_search_run_first(tmp_path, lines, clean):
    # `clean` plain records first (the reader's keys are their keys), then records holding odd
    # keys, or lacking `workspace` (a missing key beside an extra one must not balance it out).
    text = [record(rid="a") for _ in range(clean)]
    for tokens, extras, drop, rid in lines:
        line = record(tokens, "".join(extras), rid)
        text.append(line.replace('"workspace": "w", ', "", 1) if drop else line)
    log = write(tmp_path, text)
    assert outcomes(tmp_path, log) == searched_first(tmp_path, log)


def test_a_clean_file_is_not_searched_and_a_late_key_is_read(tmp_path, searches):
    clean = write(tmp_path, [record(rid=str(i)) for i in range(5)], "clean.jsonl")
    rep = analyze([str(clean)], ["model"], Options())
    assert searches == [] and rep.accounting.priced == 5
    late = write(tmp_path, [record(rid=str(i)) for i in range(5)] + [record(extra=', "Cache_Read_Tokens": 1000000')])
    rep = analyze([str(late)], ["model"], Options())
    assert set(searches) == {str(late)}  # after the pass, then first in the run started again
    assert rep.totals["cache_read_tokens"] == 1_000_000 and str(rep.totals["cost"]) == "0.318000000000"


@pytest.mark.parametrize("odd", [
    ', "Cache_Read_Tokens": 1000000',
    ', "cache\\u005FRead_Tokens": 1000000',  # escaped and in another case
    ', "Cache_Read_Tokens" : 1000000',  # not a `":` pair: found by the whitespace test alone
    ', "Cache_Read_Tokens"\t: 1000000',
])
@pytest.mark.parametrize("balance", [
    "",
    ', "note": "x\\":y"',  # one `":` too many on another line...
    ', "extra": 1',  # ... or a key not read
])
def test_a_late_spelling_is_found_whatever_another_line_holds(tmp_path, odd, balance):
    # The late key is one `":` more than the reader read; no other line can make up for it (each line
    # reads at most its `":` pairs), whether it lacks a key, holds `":` in a string or a key twice.
    lines = [record()] * 3 + [bare(), record(extra=balance), record(extra=odd)]
    rep = analyze([str(write(tmp_path, lines))], ["model"], Options())
    assert rep.totals["cache_read_tokens"] == 1_000_000
    assert str(rep.totals["cost"]) == "0.318000000000"  # 6,000 input tokens and 1M cache reads at $0.30/MTok


def test_a_late_tag_with_a_null_elsewhere_is_read(tmp_path, searches):
    log = write(tmp_path, [record()] * 3 + [bare(extra=', "workspace": null'), record(extra=', "team": "red"')])
    rep = analyze([str(log)], ["team"], Options())
    assert dict(zip(rep.rows["team"], rep.rows["requests"])) == {None: 4, "red": 1}


@pytest.mark.parametrize("odd", [
    bare(extra=', "workspace": null'),  # a null value of a key the reader reads
    record(extra=', "usage": {"input_tokens": 5}'),  # a nested object
    record(extra=', "note": "a\\":b"'),  # `":` in a string
    record(extra=', "extra": 1'),  # a key not read
])
def test_a_file_the_count_cannot_vouch_for_is_searched_and_not_read_again(tmp_path, searches, odd):
    # (the search finds nothing to read: the pass's answer stands)
    log = write(tmp_path, [record(rid=str(i)) for i in range(3)] + [odd])
    rep = analyze([str(log)], ["model"], Options())
    assert searches == [str(log)] and rep.accounting.priced == 4 and str(rep.totals["cost"]) == "0.012000000000"


def test_a_key_twice_is_refused_after_the_pass_as_before_it(tmp_path):
    log = write(tmp_path, [record()] * 3 + [record(extra=', "input_tokens": 9')])
    code, text = cli("report", log, "--quarantine", tmp_path / "q.jsonl")
    assert code != 0 and "line 4" in text and "input_tokens" in text
    assert (code, text) == searched_first(tmp_path, log)[0][1:3]


def test_groups_and_price_read_a_late_key_too(tmp_path):
    log = write(tmp_path, [record(rid=r) for r in "abc"] + [record(extra=', "Cache_Read_Tokens": 1000000', rid="d")])
    groups = analyze_groups([str(log)], ["day"], Options(), all_dimensions=True)
    assert groups.priced["cache_read_tokens"].sum() == 1_000_000
    code, _ = cli("price", log, "-o", tmp_path / "rows.csv", "--quarantine", tmp_path / "q.jsonl")
    assert code == 0 and "1000000" in (tmp_path / "rows.csv").read_text()


def test_compressed_files_are_searched_first(tmp_path, searches, monkeypatch):
    counted = []
    monkeypatch.setattr(pipeline, "key_colons", lambda path: counted.append(path))
    log = write(tmp_path, [record()] * 3 + [record(extra=', "Cache_Read_Tokens": 1000000')], "log.jsonl.gz")
    rep = analyze([str(log)], ["model"], Options())
    assert counted == [] and searches[0] == str(log) and rep.totals["cache_read_tokens"] == 1_000_000


def test_a_json_array_late_key(tmp_path):
    p = tmp_path / "a.json"
    p.write_text("[" + ",\n".join([record()] * 3 + [record(extra=', "Cache_Read_Tokens": 1000000')]) + "]")
    rep = analyze([str(p)], ["model"], Options())
    assert rep.totals["cache_read_tokens"] == 1_000_000


def test_the_count_and_its_window_edges(tmp_path, monkeypatch):
    from analyzer import sources
    monkeypatch.setattr(sources, "KEY_COUNT_BLOCK", 7)  # (pairs split between blocks)
    p = tmp_path / "t.jsonl"
    p.write_bytes(b'{"a":1,"bb":{"c":2}}\n{"d":"x\\":"}\n')
    with sources.one_reading():
        assert sources.key_colons(str(p)) == 5
    for spaced in (b'{"a" :1}\n', b'{"a":"x" ,"b":1}\n', b'{"a"\t:1}\n'):
        p.write_bytes(b'{"z":1}\n' * 3 + spaced)
        with sources.one_reading():
            assert sources.key_colons(str(p)) is None


@pytest.mark.parametrize("first", [bare(extra=', "workspace": null'), record(extra=', "usage": {"input_tokens": 5}'),
                                   record(extra=', "tags": ["a"]')])
def test_a_file_whose_first_records_cannot_be_vouched_for_is_searched_first(tmp_path, searches, monkeypatch, first):
    # (a null, a nested object or array: the count would fall short; `price`'s own JSON Lines have nulls)
    counted = []
    monkeypatch.setattr(pipeline, "key_colons", lambda path: counted.append(path))
    log = write(tmp_path, [first] + [record()] * 3)
    rep = analyze([str(log)], ["model"], Options())
    assert counted == [] and searches == [str(log)] and rep.accounting.priced == 4

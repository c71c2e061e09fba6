"""A canonical JSON Lines file's dimension keys that first appear after the records its schema is
read from (issue 17 §1.2): a tag `--by` names is searched for in the whole text, as late canonical
keys are (canonical._late_keys). Before, `--by team` said "unknown key" for a file whose first 50
records carry no `team`, and beside a file that has one, the late tags were silently counted as none."""

from __future__ import annotations

import gzip
import json
from decimal import Decimal

import pytest

from analyzer import sources
from analyzer.pipeline import Options, analyze

BASE = {"timestamp": "2026-10-08T00:00:00Z", "model": "claude-sonnet-4-5", "input_tokens": 1000, "output_tokens": 0}
ONE = Decimal("0.003")  # 1,000 input tokens of Sonnet 4.5 at $3/MTok


def _log(tmp_path, last: str, name: str = "late.jsonl", n: int = 60, gz: bool = False) -> str:
    text = ("\n".join([json.dumps(BASE)] * n + [last]) + "\n").encode()
    p = tmp_path / (name + (".gz" if gz else ""))
    p.write_bytes(gzip.compress(text) if gz else text)
    return str(p)


def _by(rep, key: str) -> dict:
    return dict(zip(rep.rows[key], rep.rows["cost"]))


@pytest.mark.parametrize("gz", [False, True])
@pytest.mark.parametrize("last", [
    json.dumps({**BASE, "team": "red"}),
    json.dumps(BASE)[:-1] + ', "te\\u0061m": "red"}',  # an escaped letter: the same key decoded
    json.dumps({"team": "red", **BASE}, indent=None, separators=(",", " : ")),  # a space before the colon
])
def test_a_late_dimension_named_by_by_is_read(tmp_path, gz, last):
    rep = analyze([_log(tmp_path, last, gz=gz)], ["team"], Options())
    assert (rep.accounting.rows_read, rep.accounting.priced) == (61, 61)
    assert _by(rep, "team") == {None: 60 * ONE, "red": ONE}


def test_a_late_tag_beside_a_file_that_has_it_first_is_not_lost(tmp_path):
    # The run knew `team` from the other file: the late file's tag was counted as none, exit 0.
    early = tmp_path / "early.jsonl"
    early.write_text(json.dumps({**BASE, "team": "blue"}) + "\n")
    rep = analyze([str(early), _log(tmp_path, json.dumps({**BASE, "team": "red"}))], ["team"], Options())
    assert _by(rep, "team") == {None: 60 * ONE, "red": ONE, "blue": ONE}


def test_a_late_dimension_is_found_in_a_late_window_and_by_its_reported_name(tmp_path, monkeypatch):
    # A log's `provider` is reported as `log_provider` (a built-in key's name); the key is on line
    # 2,001, past many windows and past a first batch of refused candidates (a nested `provider`).
    monkeypatch.setattr(sources, "KEY_WINDOW", 1 << 12)
    monkeypatch.setattr(sources, "KEY_CANDIDATES", 3)
    nested = json.dumps({**BASE, "meta": {"provider": "x"}})
    lines = [json.dumps(BASE)] * 60 + [nested] * 1940 + [json.dumps({**BASE, "provider": "acme"})]
    p = tmp_path / "p.jsonl"
    p.write_text("\n".join(lines) + "\n")
    rep = analyze([str(p)], ["log_provider"], Options())
    assert _by(rep, "log_provider") == {None: 2000 * ONE, "acme": ONE}


@pytest.mark.parametrize("last", [
    json.dumps({**BASE, "meta": {"team": "red"}}),  # nested: not a column
    json.dumps({**BASE, "note": '"team": "red"'}),  # inside a string
])
def test_a_dimension_name_that_is_no_top_level_key_is_not_read(tmp_path, last):
    from analyzer.errors import UnknownKeys
    with pytest.raises(UnknownKeys, match="--by 'team': unknown key"):
        analyze([_log(tmp_path, last)], ["team"], Options())


def test_a_late_dimension_survives_the_robust_reading_of_a_file_with_a_bad_record(tmp_path):
    # A broken line sends the run to the robust path (every field as text): the tag is read there too.
    p = _log(tmp_path, json.dumps({**BASE, "team": "red"}) + "\n{broken")
    rep = analyze([p], ["team"], Options())
    assert (rep.accounting.priced, rep.accounting.quarantined) == (61, 1)
    assert _by(rep, "team") == {None: 60 * ONE, "red": ONE}


def test_a_late_numeric_dimension_reads_as_its_text(tmp_path):
    rep = analyze([_log(tmp_path, json.dumps({**BASE, "project": 42}))], ["project"], Options())
    assert _by(rep, "project") == {None: 60 * ONE, "42": ONE}

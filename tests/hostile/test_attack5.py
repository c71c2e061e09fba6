"""Second reading of the night's changes (jsonl3: JSON Lines read before their search for late keys;
ingest2: month summaries that skip all-zero money and sum in 64 bits; cc3: the BOM strip behind
`starts_with`). Each test is an input where a command's answer differed from the one it must give;
each failed before its fix."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from analyzer import pipeline, sources, store, writers
from analyzer.cli import main
from analyzer.errors import AnalyzerError, SourceError


def _json(rep) -> dict:
    return json.loads(writers.render(rep, "json"))


# ----------------------------------------------------------------------------------------------
# report --store must say what report of the same logs says, accounting included


def test_the_reported_spend_of_unpriced_rows_is_in_a_store_report_as_in_a_log_report(tmp_path: Path):
    # An unknown model's reported cost is kept out of the reported column and shown on its
    # `unpriced:` line (accounting.unpriced_reported_cost). A store report lost it: its stored rows
    # carry the reported cost, but the store's accounting never summed the unpriced ones.
    night = tmp_path / "night.csv"
    night.write_text("request_id,timestamp,model,input_tokens,output_tokens,reported_cost\n"
                     "a,2026-10-10T01:00:00Z,claude-nope,10,1,0.25\n"
                     "b,2026-10-10T02:00:00Z,claude-nope,10,1,-0.5\n"
                     "c,2026-10-10T03:00:00Z,claude-nope,10,1,\n"
                     "d,2026-10-11T03:00:00Z,claude-other,10,1,\n"
                     "e,2026-10-11T04:00:00Z,claude-sonnet-4-5,10,1,0.125\n")
    st = tmp_path / "st"
    store.ingest([str(night)], str(st))
    opts = pipeline.Options(quarantine=str(tmp_path / "q.jsonl"))
    for by in (["month"], ["day", "model"]):
        logs = pipeline.analyze([str(night)], by, opts)
        stored = store.report(str(st), by)
        assert logs.accounting.unpriced_reported == {"claude-nope": pipeline.Decimal("-0.25")}
        assert stored.accounting.unpriced_reported == logs.accounting.unpriced_reported
        want, got = _json(logs), _json(stored)
        assert got["accounting"]["unpriced_reported_cost"] == want["accounting"]["unpriced_reported_cost"]
        assert got["rows"] == want["rows"] and got["totals"] == want["totals"]
        assert "reported" in writers.render(stored, "table").split("unpriced:")[1].splitlines()[0]


# ----------------------------------------------------------------------------------------------
# JSON Lines read before their search for late keys (canonical.KeyCheck): every answer, errors
# included, is the one of the search run first (LLM_COST_SEARCH_KEYS_FIRST=1)

HEAD = '{"timestamp": "2026-10-08T00:00:00Z", "model": "claude-sonnet-4-5", "workspace": "w", '


def _record(extra: str = "") -> str:
    return f'{HEAD}"input_tokens": 1000, "output_tokens": 0{extra}}}'


def _both(monkeypatch, *args) -> tuple[tuple[int, str], tuple[int, str]]:
    """(exit code, output) of the command as it runs, and with the search run first."""
    monkeypatch.setattr(sources, "SAMPLE_RECORDS", 3)  # (the reader's keys: those of the first 3 records)
    out = []
    for first in (False, True):
        monkeypatch.setattr(pipeline, "SEARCH_KEYS_FIRST", first)
        r = CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)
        out.append((r.exit_code, r.output))
    return out[0], out[1]


@pytest.fixture
def ambiguous(tmp_path: Path) -> Path:
    """A file whose 5th record spells input_tokens twice, in two cases: the search refuses it."""
    log = tmp_path / "a.jsonl"
    log.write_text("\n".join([_record()] * 4 + [_record(', "Input_Tokens": 3')]) + "\n")
    return log


@pytest.mark.parametrize("option", [["--by", "model,model"], ["--by", "nosuch"]])
def test_a_files_refusal_comes_before_an_options_as_when_searched_first(tmp_path, monkeypatch, ambiguous, option):
    # The search for late keys ran while the file was read, before the options the pass needs were
    # checked: its refusal (line 5, two spellings) was the run's error. Read first, the option's error
    # came out instead (exit 2 both ways, another message).
    now, before = _both(monkeypatch, "report", ambiguous, *option, "--quarantine", tmp_path / "q.jsonl")
    assert now == before
    assert now[0] == 2 and "line 5" in now[1] and "ambiguous" in now[1]


@pytest.mark.parametrize("option,message", [(["--since", "someday"], "--since 'someday'"),
                                            (["--since", "2026-10-09", "--until", "2026-10-01"], "window is empty")])
def test_a_time_windows_refusal_comes_before_any_file_is_read(tmp_path, monkeypatch, ambiguous, option, message):
    # --since/--until need no data: they are checked before a byte is read (pipeline.check_options),
    # searched first or not, so the window's error is the run's even beside a file that is refused.
    now, before = _both(monkeypatch, "report", ambiguous, *option, "--quarantine", tmp_path / "q.jsonl")
    assert now == before
    assert now[0] == 2 and message in now[1] and "line 5" not in now[1]


def test_a_files_refusal_comes_before_a_later_files_as_when_searched_first(tmp_path, monkeypatch, ambiguous):
    later = tmp_path / "b.jsonl"  # (refused when read: two spellings in its first records)
    later.write_text("\n".join([_record(), _record().replace('"input_tokens"', '"Input_Tokens"')] * 2) + "\n")
    now, before = _both(monkeypatch, "report", ambiguous, later, "--quarantine", tmp_path / "q.jsonl")
    assert now == before
    assert now[0] == 2 and f"{ambiguous} line 5" in now[1]


def test_an_options_error_stands_when_the_search_finds_a_late_key_to_read(tmp_path, monkeypatch):
    log = tmp_path / "a.jsonl"
    log.write_text("\n".join([_record()] * 4 + [_record(', "Cache_Read_Tokens": 3')]) + "\n")
    now, before = _both(monkeypatch, "report", log, "--by", "model,model", "--quarantine", tmp_path / "q.jsonl")
    assert now == before and now[0] == 2 and "--by lists a key twice" in now[1]


def test_a_fast_pass_that_fails_leaves_no_decoded_rows_behind(tmp_path, monkeypatch):
    # A canonical key the first records lack is read as Null: its value fails the fast pass while
    # spool decodes the file, and the run is read again robustly in the same process. The rows the
    # failed pass had written stayed in the process's directory until it exited (every analyze of
    # such a file in a long-lived process left one more; the CLI held both passes' rows at once).
    import os

    monkeypatch.setattr(sources, "SAMPLE_RECORDS", 3)
    log = tmp_path / "late.jsonl"
    log.write_text("\n".join([_record().replace("{", '{"request_id": "a", ', 1)] * 4
                             + [_record(', "cache_read_tokens": 1000000')]) + "\n")
    for first in (False, True):
        monkeypatch.setattr(pipeline, "SEARCH_KEYS_FIRST", first)
        before = set(os.listdir(sources.process_dir()))
        rep = pipeline.analyze([str(log)], ["model"], pipeline.Options())
        assert rep.totals["cache_read_tokens"] == 1_000_000
        assert set(os.listdir(sources.process_dir())) == before


def _past_range(monkeypatch):
    """Totals past 2^63 - 1 (pipeline.check_totals, met once the pass has summed the rows: after they
    were spooled). Reaching them takes ~9,000 requests of the largest plausible count."""
    def refuse(agg):
        raise SourceError("input_tokens of valid requests total more than 9,223,372,036,854,775,807")

    monkeypatch.setattr(pipeline, "check_totals", refuse)


def _ids(i: int, extra: str = "") -> str:
    return _record(extra).replace("{", f'{{"request_id": "{i}", ', 1)


def test_an_error_that_restarts_the_run_leaves_no_decoded_rows_behind(tmp_path, monkeypatch):
    # An error met after the rows were spooled, in a file whose search finds a late key: the run
    # starts again searching first (pipeline.LateKeys), and the first attempt's spooled rows stayed
    # in the process's directory until it exited. (It was an option's error; options are now checked
    # before anything is read, so it is a total past range, met after the pass.)
    monkeypatch.setattr(sources, "SAMPLE_RECORDS", 3)
    monkeypatch.setattr(pipeline, "SEARCH_KEYS_FIRST", False)
    log = tmp_path / "late.jsonl"
    log.write_text("\n".join([_ids(i) for i in range(4)] + [_ids(4, ', "Cache_Read_Tokens": 3')]) + "\n")
    _past_range(monkeypatch)
    before = set(os.listdir(sources.process_dir()))
    with pytest.raises(AnalyzerError, match="total more than"):
        pipeline.analyze([str(log)], ["model"], pipeline.Options())
    assert set(os.listdir(sources.process_dir())) == before


# Any error of an attempt after its rows were spooled left them in the process's directory until it
# exited: they were removed only when the search found late keys. A total past range in a file without
# late keys, whether the search ran first or waited for the pass, in `price` as in `report`. (CI met
# it in the test above: a leftover `llm-cost-rows-*.parquet`, once in a full run.)
@pytest.mark.parametrize("first", [False, True])
@pytest.mark.parametrize("run", ["analyze", "price_requests"])
def test_any_error_after_the_rows_were_spooled_leaves_none_behind(tmp_path, monkeypatch, first, run):
    monkeypatch.setattr(pipeline, "SEARCH_KEYS_FIRST", first)
    log = tmp_path / "ids.jsonl"
    log.write_text("".join(_ids(i) + "\n" for i in range(4)))
    _past_range(monkeypatch)
    before = set(os.listdir(sources.process_dir()))
    spooled = []
    real = pipeline.spool
    monkeypatch.setattr(pipeline, "spool", lambda *a, **k: spooled.append(real(*a, **k)) or spooled[-1])
    with pytest.raises(AnalyzerError, match="total more than"):
        args = ([str(log)], ["model"]) if run == "analyze" else ([str(log)],)
        getattr(pipeline, run)(*args, pipeline.Options())
    assert spooled and spooled[-1].spooled  # (the rows were spooled before the error: the case under test)
    assert set(os.listdir(sources.process_dir())) == before


@pytest.mark.parametrize("option,message", [({"since": "someday"}, "--since 'someday'"),
                                            ({"since": "2026-10-09", "until": "2026-10-01"}, "window is empty"),
                                            ({"tz": "Mars/Olympus"}, "--tz")])
@pytest.mark.parametrize("run", ["analyze", "price_requests"])
def test_a_bad_option_is_refused_before_a_log_is_read(tmp_path, monkeypatch, option, message, run):
    # --since/--until were parsed after the logs were decoded: minutes into a large run.
    def unread(*a, **k):
        raise AssertionError("a log was read")

    monkeypatch.setattr(pipeline, "read_logs", unread)
    with pytest.raises(AnalyzerError, match=message):
        args = ([str(tmp_path / "any.jsonl")], ["model"]) if run == "analyze" else ([str(tmp_path / "any.jsonl")],)
        getattr(pipeline, run)(*args, pipeline.Options(**option))


@pytest.mark.parametrize("value,on", [("1", True), ("yes", True), ("0", False), ("false", False), ("Off", False),
                                      ("", False)])
def test_search_keys_first_reads_0_and_false_as_off(value, on):
    import subprocess
    import sys
    out = subprocess.run([sys.executable, "-c", "from analyzer import pipeline; print(pipeline.SEARCH_KEYS_FIRST)"],
                         env={**os.environ, "LLM_COST_SEARCH_KEYS_FIRST": value}, capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == str(on)

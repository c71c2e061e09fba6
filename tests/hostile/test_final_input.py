"""Issue 12, final review of the input side: each case ends with the right total (by hand, in
Decimal, from analyzer/pricebook/anthropic.toml) or a named refusal/quarantine, never a silently
different total.

claude-sonnet-4-5: input $3, output $15 per million tokens, so 1000 input + 100 output tokens cost
1000*3/1e6 + 100*15/1e6 = 0.0045.
"""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pytest
from click.testing import CliRunner

from analyzer.cli import main

HEADER = "request_id,timestamp,model,input_tokens,output_tokens"
ROW = "r1,2026-11-02T09:00:00Z,claude-sonnet-4-5,1000,100"
SONNET = Decimal("0.0045")


def report(tmp_path: Path, *paths: str) -> tuple[int, dict | None, str]:
    q = tmp_path / "q.jsonl"
    r = CliRunner().invoke(main, ["report", *paths, "--format", "json", "--quarantine", str(q)])
    if r.exit_code != 0:
        return r.exit_code, None, r.output
    return 0, json.loads(r.stdout), r.output


@pytest.mark.parametrize("header", [
    f"{HEADER},input_tokens",          # the same name twice: Polars kept the first, silently
    f"{HEADER},Input_Tokens",          # read as one name (headers are matched without case)
    f"{HEADER}, input_tokens ",
    "request_id,timestamp,model,input_tokens,output_tokens,output_tokens",
])
def test_csv_header_naming_a_read_column_twice_is_refused(tmp_path, header):
    # Before: exit 0 and $0.0045 (the first column, 1000 tokens); the exporter may have meant 5000.
    f = tmp_path / "dup.csv"
    f.write_text(f"{header}\n{ROW},5000\n")
    code, _, out = report(tmp_path, str(f))
    assert code == 2
    assert "dup.csv: the header names column" in out and "again (after" in out
    assert "Traceback" not in out


def test_csv_header_repeating_a_column_nothing_reads_is_read(tmp_path):
    f = tmp_path / "notes.csv"
    f.write_text(f"{HEADER},notes,notes\n{ROW},a,b\n")
    code, doc, _ = report(tmp_path, str(f))
    assert code == 0
    assert Decimal(doc["totals"]["cost"]) == SONNET
    assert doc["accounting"]["priced"] == 1


def test_repeated_column_in_a_walked_directory_is_refused_not_skipped(tmp_path):
    # A log with an ambiguous column is still a log: skipping it would drop its cost silently.
    d = tmp_path / "logs"
    d.mkdir()
    (d / "a.csv").write_text(f"{HEADER}\n{ROW}\n")
    (d / "b.csv").write_text(f"{HEADER},input_tokens\n{ROW.replace('r1', 'r2')},5000\n")
    code, _, out = report(tmp_path, str(d))
    assert code == 2
    assert "b.csv: the header names column 'input_tokens' again" in out


@pytest.mark.parametrize("value", ["1000", "1e3", "1E3", " 1000 ", "+1000", "1000.0", "01000",
                                   "1000.", "10e2", "0.1e4", "1e+3", '"1000"'])
def test_csv_integer_spellings_read_as_1000(tmp_path, value):
    f = tmp_path / "n.csv"
    f.write_text(f"{HEADER}\nr1,2026-11-02T09:00:00Z,claude-sonnet-4-5,{value},100\n")
    code, doc, _ = report(tmp_path, str(f))
    assert code == 0
    assert Decimal(doc["totals"]["cost"]) == SONNET
    assert doc["totals"]["input_tokens"] == 1000


@pytest.mark.parametrize("value", ['"1,000"', "0x3e8", "１０００", "1000.5", "-1000", "1_000", "NaN",
                                   "inf", "", "1000.000000000001", "99999999999999999999"])
def test_csv_values_that_are_not_a_token_count_are_quarantined(tmp_path, value):
    f = tmp_path / "n.csv"
    f.write_text(f"{HEADER}\nr1,2026-11-02T09:00:00Z,claude-sonnet-4-5,{value},100\n{ROW.replace('r1', 'r2')}\n")
    code, doc, _ = report(tmp_path, str(f))
    assert code == 0
    a = doc["accounting"]
    assert (a["rows_read"], a["priced"], a["quarantined"]) == (2, 1, 1)
    assert Decimal(doc["totals"]["cost"]) == SONNET
    assert len((tmp_path / "q.jsonl").read_text().splitlines()) == 1


def _rec(rid: str, **counts) -> str:
    return json.dumps({"request_id": rid, "timestamp": "2026-11-02T09:00:00Z", "model": "claude-sonnet-4-5",
                       **counts}) + "\n"


def test_json_keys_spelled_in_two_cases_are_refused(tmp_path):
    # Before: exit 0 and 5000 input tokens ($0.0165): the later spelling replaced the first.
    f = tmp_path / "case.jsonl"
    f.write_text(_rec("r1", input_tokens=1000, output_tokens=100, Input_Tokens=5000))
    code, _, out = report(tmp_path, str(f))
    assert code == 2
    assert "case.jsonl: keys 'input_tokens' and 'Input_Tokens' both name 'input_tokens'" in out


def test_json_key_spellings_across_records_are_refused(tmp_path):
    # Before: the record spelled `input_tokens` was quarantined as missing it (a right row lost).
    f = tmp_path / "case.jsonl"
    f.write_text(_rec("r1", input_tokens=1000, output_tokens=100) + _rec("r2", Input_Tokens=1000, output_tokens=100))
    code, _, out = report(tmp_path, str(f))
    assert code == 2 and "both name 'input_tokens'" in out


def test_json_key_in_another_case_alone_is_read(tmp_path):
    f = tmp_path / "upper.jsonl"
    f.write_text(_rec("r1", Input_Tokens=1000, Output_Tokens=100))
    code, doc, _ = report(tmp_path, str(f))
    assert code == 0 and Decimal(doc["totals"]["cost"]) == SONNET


@pytest.mark.parametrize("ext", ["csv", "jsonl"])
def test_anthropic_count_names_in_a_canonical_log_are_refused(tmp_path, ext):
    # Before: exit 0, $0.0045: `cache_read_input_tokens` (Anthropic's API name) was read as a
    # dimension and its 500,000 tokens (500000*0.30/1e6 = $0.15) left out of the total.
    f = tmp_path / f"api.{ext}"
    if ext == "csv":
        f.write_text(f"{HEADER},cache_read_input_tokens\n{ROW},500000\n")
    else:
        f.write_text(_rec("r1", input_tokens=1000, output_tokens=100, cache_read_input_tokens=500000))
    code, _, out = report(tmp_path, str(f))
    assert code == 2
    assert f"api.{ext}: column 'cache_read_input_tokens' is not a canonical column" in out
    assert "'cache_read_tokens'" in out


def test_the_canonical_name_prices_the_same_tokens(tmp_path):
    f = tmp_path / "ok.csv"
    f.write_text(f"{HEADER},cache_read_tokens\n{ROW},500000\n")
    code, doc, _ = report(tmp_path, str(f))
    assert code == 0
    assert Decimal(doc["totals"]["cost"]) == SONNET + Decimal(500000) * Decimal("0.30") / Decimal(10**6)

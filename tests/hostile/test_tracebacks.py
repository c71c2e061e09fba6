"""Hostile inputs and options never end in a traceback (issue 12 §10): each is one line on stderr
with exit 2, or a clean result whose reasons say what is wrong."""

from __future__ import annotations

import json
import traceback
from decimal import Decimal

import polars as pl
import pytest
from click.testing import CliRunner

from analyzer.cli import main

DEEP = "[" * 5000 + "]" * 5000  # Python's JSON and TOML readers recurse once per level
OK = "timestamp,model,input_tokens,output_tokens\n2026-11-01T00:00:00Z,claude-haiku-4-5,1000000,0\n"
ROW = '{"timestamp":"2026-11-01T00:00:00Z","model":"claude-haiku-4-5","input_tokens":%s,"output_tokens":0}\n'


def _invoice(amount: str) -> str:
    """An Admin API cost report page with one line of `amount` cents, written as given (a JSON number)."""
    result = {"amount": "AMOUNT", "currency": "USD", "model": "claude-haiku-4-5", "cost_type": "tokens",
              "token_type": "uncached_input_tokens"}
    page = {"data": [{"starting_at": "2026-11-01T00:00:00Z", "ending_at": "2026-11-02T00:00:00Z",
                      "results": [result]}], "has_more": False}
    return json.dumps(page).replace('"AMOUNT"', amount)


FILES = {
    "ok.csv": OK,
    "deep_line.jsonl": ROW % 1 + '{"timestamp":"2026-11-01T00:00:00Z","x":' + DEEP + "}\n" + ROW % 2,
    "deep_only.jsonl": DEEP + "\n",
    "deep.json": '{"a":' * 3000 + "1" + "}" * 3000,
    "no_columns.csv": "a,b\n1,2\n",
    "numbers.jsonl": "".join(ROW % v for v in ["1180591620717411303424", "-0", "-0.0", "1e3", "true", "[1]", "{}"]),
    "numbers.csv": "timestamp,model,input_tokens,output_tokens\n" + "".join(
        f"2026-11-01T00:00:00Z,claude-haiku-4-5,{v},0\n" for v in ["1180591620717411303424", "-0", "1e3", "1e400",
                                                                   "1.5", "NaN", "٣", "0x10"]),
    "times.csv": "timestamp,model,input_tokens,output_tokens\n" + "".join(
        f"{t},claude-haiku-4-5,1,0\n" for t in ["9999-12-31T23:59:59Z", "0001-01-01T00:00:00+14:00",
                                                 "99999999999999999999", "2026-11-01T00:00:00+99:99"]),
    "invoice_deep.json": DEEP,
    "invoice_number.json": _invoice("12.5"),
    "invoice_exact.json": _invoice("123456789.123456789"),
    "invoice_late.csv": "period,model,amount_usd\n9999-12,claude-haiku-4-5,1\n",
    "prices_deep.toml": "a = " + DEEP + "\n",
    "map_deep.toml": "a = " + DEEP + "\n",
}


@pytest.fixture
def hostile(tmp_path, monkeypatch):
    for name, text in FILES.items():
        (tmp_path / name).write_text(text, encoding="utf-8")
    base = {"timestamp": ["2026-11-01T00:00:00Z"], "model": ["claude-haiku-4-5"], "input_tokens": [1000000],
            "output_tokens": [0]}
    pl.DataFrame({**base, "meta": [{"team": "a", "ids": [1, 2]}], "tags": [["x", "y"]]}).write_parquet(
        tmp_path / "nested_dims.parquet")
    pl.DataFrame({"timestamp": [{"a": 1}], "model": [["m"]], "input_tokens": [{"v": 1}], "output_tokens": [[1]]}
                 ).write_parquet(tmp_path / "nested_fields.parquet")
    pl.DataFrame({"timestamp": [1793714709], "model": ["claude-haiku-4-5"], "input_tokens": [float(2**70)],
                  "output_tokens": [-0.0]}).write_parquet(tmp_path / "floats.parquet")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def cli(*args):
    result = CliRunner().invoke(main, [str(a) for a in args])
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise AssertionError(f"{args}: traceback\n" + "".join(traceback.format_exception(result.exception)))
    if result.exit_code == 2:
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("llm-cost: error: "), (args, result.stderr)
    return result


def error(*args) -> str:
    r = cli(*args)
    assert r.exit_code == 2, (args, r.exit_code, r.output)
    return r.stderr.strip().removeprefix("llm-cost: error: ")


def report(*args) -> dict:
    r = cli("report", *args, "--format", "json", "--quarantine", "q.jsonl")
    assert r.exit_code == 0, (args, r.output)
    return json.loads(r.stdout)


def quarantined(path="q.jsonl") -> dict[int, str]:
    with open(path) as f:
        return {json.loads(line)["line"]: json.loads(line)["reason"] for line in f}


LOGS = ["ok.csv", "deep_line.jsonl", "deep_only.jsonl", "deep.json", "no_columns.csv", "numbers.jsonl", "numbers.csv",
        "times.csv", "nested_dims.parquet", "nested_fields.parquet", "floats.parquet", "invoice_deep.json"]
OPTIONS = [
    [], ["--dialect", "canonical"], ["--by", "day,meta,tags"], ["--until", "9999-12-31"],
    ["--since", "0001-01-01", "--tz", "Asia/Tokyo"], ["--since", "9999-12-31", "--tz", "Pacific/Kiritimati"],
    ["--until", "0001-01-01T00:00:00+14:00"], ["--batch-time", "9999-12-31T23:59:59-05:00"], ["--tz", "Nowhere/Land"],
    ["--since", "2026-02-30"], ["--prices", "prices_deep.toml"], ["--map", "map_deep.toml"],
]


@pytest.mark.parametrize("log", LOGS)
def test_no_traceback_for_any_input_and_option(log, hostile):
    """Every hostile log under every hostile option, through report and price: exit 0, 1 or 2, and
    on 2 one line (cli() fails on a traceback or a many-line error)."""
    for options in OPTIONS:
        price = [] if "--by" in options else [["price", log, "-o", "out.csv"]]  # price has no --by
        for command in (["report", log], *price):
            r = cli(*command, *options, "--quarantine", "q.jsonl")
            assert r.exit_code in (0, 1, 2)


@pytest.mark.parametrize("invoice", ["invoice_deep.json", "invoice_number.json", "invoice_late.csv", "deep.json",
                                     "nested_dims.parquet", "ok.csv", "numbers.jsonl"])
@pytest.mark.parametrize("options", [[], ["--tolerance", "1e400"], ["--tolerance", "1e-400"],
                                     ["--tolerance", "1e999%"], ["--by", "month"]])
def test_no_traceback_in_audit(invoice, options, hostile):
    assert cli("audit", "ok.csv", "--invoice", invoice, *options).exit_code in (0, 1, 2)


def test_deep_json(hostile):
    assert error("report", "deep.json") == "deep.json: JSON nested too deep to be a log or report"
    assert "no records found" in error("report", "deep_only.jsonl")
    # Among readable records, a line nested thousands deep is quarantined with its line number.
    doc = report("deep_line.jsonl")
    assert (doc["accounting"]["priced"], doc["accounting"]["quarantined"]) == (2, 1)
    assert list(quarantined()) == [2] and quarantined()[2].startswith("not a JSON object (unparsable line)")
    assert error("audit", "ok.csv", "--invoice", "invoice_deep.json") == \
        "invoice_deep.json: JSON nested too deeply to be an invoice"
    assert "nested too deeply" in error("report", "ok.csv", "--prices", "prices_deep.toml")
    assert "nested too deeply" in error("report", "ok.csv", "--map", "map_deep.toml")


def test_forced_dialect_without_its_columns(hostile):
    assert error("report", "no_columns.csv", "--dialect", "canonical") == (
        "no_columns.csv: not a canonical log: no timestamp, model or model_raw, input_tokens, output_tokens column "
        "(columns: a, b); see `llm-cost formats`")


def test_dates_beyond_the_calendar(hostile):
    """A bound past year 9999 or before year 1 in UTC bounds nothing, or leaves nothing inside."""
    everything = report("ok.csv")
    for options in (["--until", "9999-12-31"], ["--since", "0001-01-01", "--tz", "Asia/Tokyo"],
                    ["--until", "9999-12-31", "--tz", "America/New_York"]):
        doc = report("ok.csv", *options)
        assert doc["totals"] == everything["totals"] and doc["accounting"]["priced"] == 1
    for options in (["--since", "9999-12-31T23:59:59-12:00"], ["--until", "0001-01-01T00:00:00+14:00"]):
        doc = report("ok.csv", *options)
        assert doc["accounting"]["priced"] == 0 and doc["accounting"]["filtered_out"] == 1
    assert error("report", "ok.csv", "--batch-time", "9999-12-31T23:59:59-05:00") == \
        "--batch-time '9999-12-31T23:59:59-05:00': outside the years 1-9999"


def test_invoice_amount_is_a_json_number(hostile):
    def billed(invoice):
        r = cli("audit", "ok.csv", "--invoice", invoice, "--format", "json")
        assert r.exit_code in (0, 1), r.output
        return Decimal(json.loads(r.stdout)["totals"]["billed"])
    assert billed("invoice_number.json") == Decimal("0.125")  # cents
    # Read from its text, not through a binary float (which would give 1234567.8912345679).
    assert billed("invoice_exact.json") == Decimal("1234567.89123456789")


def test_invoice_period_after_9999(hostile):
    assert error("audit", "ok.csv", "--invoice", "invoice_late.csv") == \
        "invoice_late.csv, line 2: period '9999-12' ends after the year 9999"


def test_tolerance_bounds(hostile):
    assert error("audit", "ok.csv", "--invoice", "invoice_number.json", "--tolerance", "1e400") == \
        "--tolerance '1e400': too large (at most 999,999,999,999)"
    r = cli("audit", "ok.csv", "--invoice", "invoice_number.json", "--tolerance", "1e-400", "--format", "json")
    assert json.loads(r.stdout)["tolerance"] == "0"


def test_nested_parquet_columns(hostile):
    """A nested dimension is grouped by its JSON text; a nested required field quarantines its row."""
    doc = report("nested_dims.parquet", "--by", "meta,tags")
    assert [(row["meta"], row["tags"]) for row in doc["rows"]] == [('{"team":"a","ids":[1,2]}', '["x","y"]')]
    assert Decimal(doc["totals"]["cost"]) == Decimal("1")  # 1M haiku 4.5 input tokens at $1/MTok
    doc = report("nested_fields.parquet")
    assert doc["accounting"]["quarantined"] == 1
    assert quarantined()[1] == ("timestamp has unsupported type Struct({'a': Int64}); input_tokens has unsupported "
                                "type Struct({'v': Int64}); output_tokens has unsupported type List(Int64)")


def test_number_reasons(hostile):
    """2**70 is too large, not "not a whole number"; -0 is 0; 1e3 is 1000; other scripts' digits are not numbers."""
    doc = report("numbers.csv")
    # priced: -0 (0 tokens) and 1e3 (1,000 tokens)
    assert (doc["accounting"]["priced"], doc["totals"]["input_tokens"]) == (2, 1000)
    assert quarantined() == {
        2: "input_tokens is too large (1180591620717411303424)", 5: "input_tokens is too large (1e400)",
        6: "input_tokens is not a whole number (1.5)", 7: "input_tokens is not a number (NaN)",
        8: "input_tokens is not a number (٣)", 9: "input_tokens is not a number (0x10)"}
    doc = report("numbers.jsonl")
    assert (doc["accounting"]["priced"], doc["totals"]["input_tokens"]) == (3, 1000)
    # (2**70 as the line writes it, as in the CSV: it was shown as a float's rendering)
    assert quarantined() == {1: "input_tokens is too large (1180591620717411303424)",
                             5: "input_tokens is not a number (true)", 6: "input_tokens is not a number ([1])",
                             7: "input_tokens is not a number ({})"}
    doc = report("floats.parquet")
    assert quarantined() == {1: "input_tokens is too large (1.1805916207174113e+21)"}


def test_json_array_of_non_objects(hostile):
    (hostile / "members.json").write_text('[1, "x", null, {"timestamp": "2026-11-01T00:00:00Z", '
                                          '"model": "claude-haiku-4-5", "input_tokens": 1000000, "output_tokens": 0}]')
    doc = report("members.json")
    assert (doc["accounting"]["priced"], doc["accounting"]["quarantined"]) == (1, 3)
    assert Decimal(doc["totals"]["cost"]) == Decimal("1")
    assert set(quarantined()) == {1, 2, 3}


def test_an_unreadable_line_has_one_reason(hostile):
    """Not also "missing model": the fields a broken line seems to lack are not what is wrong with it."""
    (hostile / "cut.jsonl").write_text(ROW % 1000000 + ROW.replace("}\n", "\n") % 5 + ROW % "NaN")
    doc = report("cut.jsonl")
    assert (doc["accounting"]["priced"], doc["accounting"]["quarantined"]) == (1, 2)
    assert quarantined() == {2: "not a JSON object (unparsable line)", 3: "not a JSON object (unparsable line)"}

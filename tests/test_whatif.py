"""What-if: every option hand-computed in Decimal on a small canonical log (USD per MTok from the
shipped book: claude-sonnet-4-5 input 3 / output 15, claude-haiku-4-5 input 1 / output 5, from
2025-10-15; batch x0.5)."""

from __future__ import annotations

import json
import re
from decimal import Decimal as D

import pytest
from click.testing import CliRunner

from analyzer import pipeline, whatif
from analyzer.cli import main
from analyzer.errors import OptionError
from analyzer.whatif import Scenario

LOG = """request_id,timestamp,model,workspace,speed,input_tokens,output_tokens
r1,2026-01-10T10:00:00Z,claude-sonnet-4-5,a,standard,100000,10000
r2,2026-01-10T11:00:00Z,claude-haiku-4-5,b,standard,200000,0
r3,2025-10-01T10:00:00Z,claude-sonnet-4-5,a,standard,100000,0
r4,2026-01-11T13:00:00Z,claude-sonnet-4-5,a,fast,100000,0
r5,2026-01-11T09:00:00Z,claude-sonnet-4-5,b,standard,100000,0
"""
# Baseline: r1 0.3 + 0.15 = 0.45; r2 0.2; r3 0.3; r4 0.3 (no fast price for Sonnet 4.5: standard rates); r5 0.3.
BASE = {"r1": D("0.45"), "r2": D("0.2"), "r3": D("0.3"), "r4": D("0.3"), "r5": D("0.3")}


@pytest.fixture
def log(tmp_path):
    p = tmp_path / "log.csv"
    p.write_text(LOG)
    return str(p)


def run(log, tmp_path, by=("model",), **kw):
    opts = pipeline.Options(quarantine=str(tmp_path / "q.jsonl"))
    return whatif.run([log], Scenario(**kw), list(by), opts)


def money(x) -> D:
    return D(x)


def test_no_change_is_the_baseline(log, tmp_path):
    w = run(log, tmp_path, by=())
    assert w.totals["baseline_cost"] == sum(BASE.values()) == w.totals["scenario_cost"]
    assert w.totals["difference"] == 0
    assert w.accounting.priced == 5 and w.scenario_accounting == {
        "rows": 5, "compared": 5, "unpriced": 0, "unpriced_models": {}, "unpriced_reasons": {}}


def test_swap_prices_the_same_tokens_at_the_other_models_rates(log, tmp_path):
    w = run(log, tmp_path, by=("model",), swaps=(("claude-sonnet-4-5-20250929", "claude-haiku-4-5"),))
    rows = {r["model"]: r for r in w.rows.to_dicts()}
    sonnet = rows["claude-sonnet-4-5-20250929"]
    # r3 (2025-10-01) predates Haiku 4.5's first price (2025-10-15): counted and named, not compared.
    assert sonnet["unpriced_requests"] == 1 and sonnet["unpriced_baseline_cost"] == D("0.3")
    assert sonnet["baseline_cost"] == BASE["r1"] + BASE["r4"] + BASE["r5"]
    assert sonnet["scenario_cost"] == D("0.1") + D("0.05") + D("0.1") + D("0.1")
    assert sonnet["difference"] == D("0.35") - D("1.05")
    assert rows["claude-haiku-4-5-20251001"]["difference"] == 0
    assert w.scenario_accounting["unpriced"] == 1
    assert w.scenario_accounting["unpriced_models"] == {"claude-haiku-4-5-20251001": 1}
    assert "no price for claude-haiku-4-5-20251001 before 2025-10-15" in \
        w.scenario_accounting["unpriced_reasons"]["claude-haiku-4-5-20251001"]
    assert any("tokenizers differ" in n for n in w.notes)


def test_batch_moves_requests_but_fast_ones_stay(log, tmp_path):
    w = run(log, tmp_path, by=(), batch=True)
    # r4 is fast: stays at 0.3; every other request halves.
    assert w.totals["scenario_cost"] == (D("0.45") + D("0.2") + D("0.3") + D("0.3")) / 2 + D("0.3")
    assert w.totals["difference"] == w.totals["scenario_cost"] - sum(BASE.values())


def test_where_limits_the_scenario(log, tmp_path):
    w = run(log, tmp_path, by=("workspace",), batch=True, where=(("workspace", "a"),))
    rows = {r["workspace"]: r for r in w.rows.to_dicts()}
    assert rows["a"]["scenario_cost"] == (D("0.45") + D("0.3")) / 2 + D("0.3") and rows["a"]["scenario_requests"] == 3
    assert rows["b"]["scenario_cost"] == rows["b"]["baseline_cost"] == D("0.5") and rows["b"]["scenario_requests"] == 0


def test_where_on_a_time_bucket(log, tmp_path):
    w = run(log, tmp_path, by=("day",), batch=True, where=(("day", "2026-01-10"),))
    rows = {r["day"]: r for r in w.rows.to_dicts()}
    assert rows["2026-01-10"]["scenario_cost"] == D("0.325")
    assert rows["2026-01-11"]["difference"] == 0


def test_scenario_prices_change_mid_day(log, tmp_path):
    """The overlay's period starts at noon: r5 (09:00) keeps its rate, r4 (13:00) gets the new one,
    though the shipped book's days group them together."""
    overlay = tmp_path / "new.toml"
    overlay.write_text('[[model]]\nid = "claude-sonnet-4-5-20250929"\n  [[model.period]]\n'
                       '  from = 2026-01-11T12:00:00Z\n  input = 2.4\n  output = 12\n'
                       '  cache_write_5m = 3\n  cache_write_1h = 4.8\n  cache_read = 0.24\n')
    w = run(log, tmp_path, by=("day",), prices=(str(overlay),))
    rows = {r["day"]: r for r in w.rows.to_dicts()}
    assert rows["2026-01-11"]["baseline_cost"] == D("0.6")
    assert rows["2026-01-11"]["scenario_cost"] == D("0.24") + D("0.3")
    assert rows["2026-01-10"]["difference"] == 0


def test_every_option_together(log, tmp_path):
    w = run(log, tmp_path, by=(), swaps=(("claude-sonnet-4-5", "claude-haiku-4-5"),), batch=True,
            where=(("workspace", "a"),))
    # r1 -> haiku batch 0.075; r2 (b) 0.2; r3 unpriced (haiku not yet priced); r4 fast haiku 0.1; r5 (b) 0.3.
    assert w.totals["scenario_cost"] == D("0.075") + D("0.2") + D("0.1") + D("0.3")
    assert w.totals["baseline_cost"] == D("0.45") + D("0.2") + D("0.3") + D("0.3")
    assert w.totals["unpriced_requests"] == 1 and w.totals["unpriced_baseline_cost"] == D("0.3")
    assert w.totals["difference"] == D("0.675") - D("1.25")


def test_bad_options_are_one_line(log, tmp_path):
    with pytest.raises(OptionError, match="did you mean"):
        run(log, tmp_path, swaps=(("claude-sonet-4-5", "claude-haiku-4-5"),))
    with pytest.raises(OptionError, match="FROM=TO"):
        Scenario.pairs(["claude-sonnet-4-5"], "--swap")
    r = CliRunner().invoke(main, ["whatif", log, "--swap", "nope=claude-haiku-4-5", "--quarantine",
                                  str(tmp_path / "q.jsonl")])
    assert r.exit_code == 2 and "--swap nope: unknown model" in r.output


def test_cli_json_carries_decimal_strings_and_accounting(log, tmp_path):
    r = CliRunner().invoke(main, ["whatif", log, "--batch", "--by", "workspace", "--format", "json", "--quarantine",
                                  str(tmp_path / "q.jsonl")])
    assert r.exit_code == 0, r.output
    d = json.loads(r.stdout)
    assert d["totals"]["baseline_cost"] == "1.550000000000"
    assert d["totals"]["scenario_cost"] == "0.925000000000"
    assert d["totals"]["difference"] == "-0.625000000000"
    assert d["accounting"]["rows_read"] == 5 and d["accounting"]["balanced"]
    assert d["scenario_accounting"]["compared"] == 5
    assert [r["workspace"] for r in d["rows"]] == ["a", "b"]


def test_cli_csv_and_markdown_keep_data_as_data(tmp_path):
    p = tmp_path / "log.csv"
    p.write_text("timestamp,model,workspace,input_tokens,output_tokens\n"
                 "2026-01-10T10:00:00Z,claude-haiku-4-5,=HYPERLINK(\"x\")|*b*,100000,0\n")
    q = str(tmp_path / "q.jsonl")
    r = CliRunner().invoke(main, ["whatif", str(p), "--batch", "--by", "workspace", "--format", "csv", "--quarantine", q])
    assert r.exit_code == 0 and "'=HYPERLINK" in r.stdout and ",0.100000000000,0.050000000000,-0.050000000000," in r.stdout
    r = CliRunner().invoke(main, ["whatif", str(p), "--batch", "--by", "workspace", "--format", "markdown",
                                  "--quarantine", q])
    assert r.exit_code == 0 and "\\|" in r.stdout and "\\*b\\*" in r.stdout


def test_store_gives_the_same_comparison(log, tmp_path):
    from analyzer import store

    store.ingest([log], str(tmp_path / "st"))
    opts = pipeline.Options()
    s = whatif.run([], Scenario(batch=True, where=(("workspace", "a"),)), ["workspace"], opts,
                   store_dir=str(tmp_path / "st"))
    w = run(log, tmp_path, by=("workspace",), batch=True, where=(("workspace", "a"),))
    assert s.rows.equals(w.rows) and s.totals == w.totals


def test_where_model_takes_an_alias(log, tmp_path):
    w = run(log, tmp_path, by=("model",), batch=True, where=(("model", "claude-haiku-4-5"),))
    rows = {r["model"]: r for r in w.rows.to_dicts()}
    assert rows["claude-haiku-4-5-20251001"]["scenario_cost"] == D("0.1")
    assert rows["claude-sonnet-4-5-20250929"]["difference"] == 0


def test_by_block_labels_claudes_5_hour_windows_like_the_report(tmp_path):
    """`--by block` is offered by whatif's help: it failed with "`to_string` operation not supported
    for dtype i64". The windows are the report's, and an unpriced request opens one too (08:30 here
    starts the 08:00 window that takes r5 and r4, as in `report --by block`)."""
    log = tmp_path / "log.csv"
    log.write_text(LOG + "r6,2026-01-11T08:30:00Z,gpt-nope,a,standard,5,5\n")
    w = run(str(log), tmp_path, by=("block",), batch=True, where=(("block", "2026-01-11 08:00"),))
    rows = {r["block"]: r for r in w.rows.to_dicts()}
    assert rows == {
        "2025-10-01 10:00": rows["2025-10-01 10:00"] | {"requests": 1, "baseline_cost": D("0.3"), "difference": 0},
        "2026-01-10 10:00": rows["2026-01-10 10:00"] | {"requests": 2, "baseline_cost": D("0.65"), "difference": 0},
        # r5 to batch: 0.3 -> 0.15; r4 is fast and stays.
        "2026-01-11 08:00": rows["2026-01-11 08:00"] | {"requests": 2, "baseline_cost": D("0.6"),
                                                        "scenario_cost": D("0.45")},
    }
    report = pipeline.analyze([str(log)], ["block"], pipeline.Options(quarantine=str(tmp_path / "q.jsonl")))
    assert dict(zip(report.rows["block"], report.rows["cost"])) == {
        k: r["baseline_cost"] for k, r in rows.items()}
    r = CliRunner().invoke(main, ["whatif", str(log), "--by", "block", "--batch", "-q", "--format", "json",
                                  "--quarantine", str(tmp_path / "q.jsonl")])
    assert r.exit_code == 0, r.output
    assert [x["block"] for x in json.loads(r.output)["rows"]] == sorted(rows)


def test_where_component_is_refused_like_by_component(log, tmp_path):
    """A request is not split by component, so `--where component=input` cannot select requests: it
    said "cannot read input: unable to find column component"."""
    with pytest.raises(OptionError, match=r"^--where component: .*compares requests"):
        run(log, tmp_path, batch=True, where=(("component", "input"),))
    r = CliRunner().invoke(main, ["whatif", log, "--batch", "--where", "component=input", "--quarantine",
                                  str(tmp_path / "q.jsonl")])
    assert r.exit_code == 2 and "cannot read input" not in r.output and "--where component" in r.output


def test_one_model_swapped_to_two_targets_is_refused(log, tmp_path):
    """`--swap A=B --swap A=C` silently priced A as C only (the last won)."""
    with pytest.raises(OptionError, match="claude-sonnet-4-5-20250929 twice"):
        run(log, tmp_path, swaps=(("claude-sonnet-4-5", "claude-haiku-4-5"),
                                  ("claude-sonnet-4-5-20250929", "claude-opus-4-5")))
    # The same pair twice says the same thing twice: harmless.
    w = run(log, tmp_path, by=(), swaps=(("claude-sonnet-4-5", "claude-haiku-4-5"),) * 2)
    assert w.totals["scenario_requests"] == 5


def test_output_without_extension_names_whatifs_own_formats(log, tmp_path):
    """`whatif -o out` suggested `--format` parquet and jsonl, which whatif then refuses (html it writes)."""
    r = CliRunner().invoke(main, ["whatif", log, "-o", str(tmp_path / "out"), "--quarantine", str(tmp_path / "q.jsonl")])
    assert r.exit_code == 2
    assert "pass --format (table, json, markdown, csv, html)" in r.output
    assert "parquet" not in r.output and "jsonl" not in r.output
    assert not (tmp_path / "out").exists()


def test_strict_fails_when_the_scenario_cannot_price_a_row(log, tmp_path):
    """--strict ("exit 1 if any row is unpriced") exited 0 while r3 was left out of both costs
    because its swap target had no price yet: a cron job would never see the comparison is partial."""
    args = ["whatif", log, "--swap", "claude-sonnet-4-5=claude-haiku-4-5", "-q", "--quarantine", str(tmp_path / "q.jsonl")]
    assert CliRunner().invoke(main, args).exit_code == 0  # without --strict: counted, named, exit 0
    r = CliRunner().invoke(main, [*args, "--strict"])
    assert r.exit_code == 1 and "--strict: 1 row not priced under the scenario" in r.output
    ok = CliRunner().invoke(main, ["whatif", log, "--batch", "--strict", "-q", "--quarantine", str(tmp_path / "q.jsonl")])
    assert ok.exit_code == 0, ok.output


@pytest.mark.parametrize("where, said", [
    ("day=garbage", "--where day=garbage: not a day label; write it as YYYY-MM-DD"),
    ("day=2026-02-30", "--where day=2026-02-30: not a day label; write it as YYYY-MM-DD (no such date)"),
    ("day=2026-1-10", "--where day=2026-1-10: not a day label; write it as YYYY-MM-DD (2026-01-10?)"),
    ("month=2026-13", "--where month=2026-13: not a month label; write it as YYYY-MM"),
    ("month=2026-01-10", "--where month=2026-01-10: not a month label; write it as YYYY-MM"),
    ("hour=2026-01-10T10", "--where hour=2026-01-10T10: not an hour label; write it as YYYY-MM-DD HH:00"),
    ("hour=2026-01-10 10:30", "--where hour=2026-01-10 10:30: not an hour label; write it as YYYY-MM-DD HH:00"),
    ("quarter=2026-Q5", "--where quarter=2026-Q5: not a quarter label; write it as YYYY-Qn (2026-Q4)"),
    ("year=26", "--where year=26: not a year label; write it as YYYY"),
    ("week=2026-01-07", "--where week=2026-01-07: a week is labelled by its Monday; 2026-01-07 is a Wednesday, "
                        "in the week 2026-01-05"),
    ("model=claude-sonet-4-5", "--where model=claude-sonet-4-5: unknown model, so it matches no priced request; "
                               "did you mean claude-sonnet-4-5"),
])
def test_where_that_can_match_no_request_is_a_usage_error(log, tmp_path, where, said):
    """`--where day=garbage` compared nothing and said so nowhere: a value no request of any log can
    have (a malformed or impossible label, a model the book lacks) is one line, exit 2."""
    r = CliRunner().invoke(main, ["whatif", log, "--batch", "--where", where, "--quarantine", str(tmp_path / "q.jsonl")])
    assert r.exit_code == 2 and r.output.startswith(f"llm-cost: error: {said}") and len(r.output.splitlines()) == 1


@pytest.mark.parametrize("where", ["day=2026-01-10", "week=2026-01-05", "month=2026-01", "quarter=2026-Q1",
                                   "year=2026", "hour=2026-01-10 10:00"])
def test_every_bucket_label_form_is_taken(log, tmp_path, where):
    key, value = where.split("=")
    w = run(log, tmp_path, by=(), batch=True, where=((key, value),))
    assert w.totals["scenario_requests"] >= 1 and not w.warnings


@pytest.mark.parametrize("where, warning", [
    (["workspace=nobody"], "--where workspace=nobody: no request the baseline priced has workspace=nobody; "
                           "the scenario changes nothing"),
    (["workspace=aa"], "--where workspace=aa: no request the baseline priced has workspace=aa (did you mean a?); "
                       "the scenario changes nothing"),
    (["day=2026-01-12"], "--where day=2026-01-12: no request the baseline priced has day=2026-01-12; "
                         "the scenario changes nothing"),
    (["model=claude-opus-4-1"], "--where model=claude-opus-4-1: no request the baseline priced has "
                                "model=claude-opus-4-1"),
    (["workspace=b", "model=claude-sonnet-4-5", "day=2026-01-10"],
     "--where workspace=b and model=claude-sonnet-4-5 and day=2026-01-10: no request the baseline priced matches "
     "all of these; the scenario changes nothing"),
])
def test_where_matching_nothing_warns_once_and_exits_0(log, tmp_path, where, warning):
    args = ["whatif", log, "--batch", "--quarantine", str(tmp_path / "q.jsonl")]
    for w in where:
        args += ["--where", w]
    r = CliRunner().invoke(main, [*args, "--format", "json"])
    assert r.exit_code == 0
    assert [line for line in r.stderr.splitlines() if "warning" in line][0].startswith(f"llm-cost: warning: {warning}")
    doc = json.loads(r.stdout)
    assert doc["totals"]["difference"] == "0.000000000000" and doc["totals"]["scenario_requests"] == 0
    assert any(n.startswith(warning) for n in doc["notes"])
    # Under a table it is a note, said once (not again on stderr); -q keeps it in the output.
    r = CliRunner().invoke(main, args)
    assert (r.stdout + r.stderr).count(warning) == 1 and f"note: {warning}" in r.stdout
    r = CliRunner().invoke(main, [*args, "-q", "--format", "json"])
    assert r.stderr == "" and any(n.startswith(warning) for n in json.loads(r.stdout)["notes"])


def test_counts_are_said_with_their_grammar(tmp_path):
    """whatif said "unpriced: gpt-nope (1 rows)" and "1 row(s) the scenario cannot price are left out"."""
    log = tmp_path / "log.csv"
    log.write_text(LOG + "r6,2026-01-11T08:30:00Z,gpt-nope,a,standard,5,5\n"
                   "r7,2025-10-01T11:00:00Z,claude-sonnet-4-5,a,standard,100000,0\n")
    r = CliRunner().invoke(main, ["whatif", str(log), "--swap", "claude-sonnet-4-5=claude-haiku-4-5", "--format",
                                  "markdown", "-q", "--quarantine", str(tmp_path / "q.jsonl")])
    out = r.stdout
    assert "- unpriced: gpt-nope (1 row): unknown model" in out
    # r3 and r7 (2025-10-01) are before Haiku 4.5's first price: two rows, plural
    assert "- not priced under the scenario: claude-haiku-4-5-20251001 (2 rows):" in out
    assert "- note: 2 rows the scenario cannot price are left out of both costs" in out
    log.write_text(LOG)
    out = CliRunner().invoke(main, ["whatif", str(log), "--swap", "claude-sonnet-4-5=claude-haiku-4-5", "--format",
                                    "markdown", "-q", "--quarantine", str(tmp_path / "q.jsonl")]).stdout
    assert "(1 row):" in out and "- note: 1 row the scenario cannot price is left out of both costs" in out
    assert not re.search(r"\b1 (rows|files|lines|groups|days|requests)\b|\(s\)", out)


@pytest.mark.parametrize("n, noun, said", [(0, "row", "0 rows"), (1, "row", "1 row"), (2, "row", "2 rows"),
                                           (1234, "file", "1,234 files"), (1, "log row", "1 log row"),
                                           (3, "entry", "3 entries")])
def test_counted(n, noun, said):
    from analyzer.words import counted

    assert counted(n, noun, "entries" if noun == "entry" else None) == said

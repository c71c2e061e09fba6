"""llm-cost check: budgets, run-rate forecasts, anomalous days (analyzer/checks.py).

Costs are hand-computed: every request is claude-sonnet-4-5 output tokens at $15 per million, so
N tokens cost N x 15 / 10^6 dollars (100,000 tokens = $1.50) on any date of 2026.
"""

from __future__ import annotations

import datetime as dt
import json
import random
from decimal import Decimal
from pathlib import Path

import polars as pl
import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from analyzer import checks, pipeline
from analyzer.cli import main
from analyzer.schema import MONEY

RATE = Decimal(15) / 10**6


def usd(tokens: int) -> Decimal:
    return tokens * RATE


def write_log(path: Path, days: dict, model: str = "claude-sonnet-4-5") -> Path:
    """days: {(date, workspace): output tokens} -> a canonical CSV, one request per entry."""
    lines = ["timestamp,model,workspace,input_tokens,output_tokens"]
    for (day, ws), tokens in sorted(days.items(), key=lambda kv: (kv[0][0], kv[0][1] or "")):
        lines.append(f"{day.isoformat()}T12:00:00Z,{model},{ws if ws is not None else ''},0,{tokens}")
    path.write_text("\n".join(lines) + "\n")
    return path


def budgets_file(path: Path, text: str) -> str:
    path.write_text(text)
    return str(path)


def run(*args):
    result = CliRunner().invoke(main, ["check", *[str(a) for a in args]], catch_exceptions=False)
    return result


def check_json(*args) -> tuple[int, dict]:
    r = run(*args, "--format", "json", "-q")
    return r.exit_code, json.loads(r.stdout)


def daterange(start: dt.date, n: int) -> list[dt.date]:
    return [start + dt.timedelta(days=i) for i in range(n)]


MARCH = daterange(dt.date(2026, 3, 1), 31)


# ------------------------------------------------------------------------------------------------
# Budgets

def test_month_budget_over_names_period_actual_and_limit(tmp_path):
    log = write_log(tmp_path / "l.csv", {**{(d, "etl"): 100_000 for d in MARCH[:20]},  # $1.50 a day
                                         **{(d, "web"): 500_000 for d in MARCH[:20]}})
    b = budgets_file(tmp_path / "b.toml", '[[budget]]\nname = "etl"\nperiod = "month"\nlimit = "29.99"\n'
                                          'where = { workspace = "etl" }\n')
    code, out = check_json(log, "--budgets", b)
    assert code == 1
    assert out["as_of"] == "2026-03-20"  # the last day in the data
    [alert] = out["alerts"]
    assert alert == {"kind": "budget", "name": "etl", "key": {"workspace": "etl"}, "period": "2026-03",
                     "actual": "30.000000000000", "limit": "29.99", "message": alert["message"]}
    assert Decimal(alert["actual"]) == 20 * usd(100_000)
    assert "$30.00" in alert["message"] and "over the $29.99 limit by $0.01" in alert["message"]
    assert out["accounting"]["balanced"] and out["accounting"]["priced"] == 40


def test_budget_exactly_at_limit_is_not_over(tmp_path):
    log = write_log(tmp_path / "l.csv", {(d, "etl"): 100_000 for d in MARCH[:20]})
    b = budgets_file(tmp_path / "b.toml", '[[budget]]\nname = "etl"\nperiod = "month"\nlimit = "30"\n')
    code, out = check_json(log, "--budgets", b, "--as-of", "2026-03-31")  # nothing spent after the 20th
    assert code == 0 and out["alerts"] == []
    assert out["budgets"][0]["status"] == "ok" and Decimal(out["budgets"][0]["actual"]) == Decimal(30)


def test_where_list_and_builtin_key(tmp_path):
    days = {(d, ws): 100_000 for d in MARCH[:2] for ws in ("a", "b", "c")}
    log = write_log(tmp_path / "l.csv", days)
    b = budgets_file(tmp_path / "b.toml", '[[budget]]\nname = "ab"\nperiod = "day"\nlimit = "2.99"\n'
                                          'where = { workspace = ["a", "b"], model = "claude-sonnet-4-5" }\n')
    code, out = check_json(log, "--budgets", b)
    assert code == 1
    assert out["alerts"][0]["actual"] == "3.000000000000" and out["alerts"][0]["period"] == "2026-03-02"
    assert out["alerts"][0]["key"] == {"workspace": ["a", "b"], "model": "claude-sonnet-4-5"}


def test_iso_week_contains_as_of_across_a_year_boundary(tmp_path):
    # 2026-01-01 is a Thursday: ISO week 2026-W01 runs Monday 2025-12-29 to Sunday 2026-01-04.
    days = {(dt.date(2025, 12, 28), "x"): 1_000_000,  # Sunday of 2025-W52: not in the week
            (dt.date(2025, 12, 29), "x"): 100_000, (dt.date(2026, 1, 1), "x"): 100_000}
    log = write_log(tmp_path / "l.csv", days)
    b = budgets_file(tmp_path / "b.toml", '[[budget]]\nname = "w"\nperiod = "week"\nlimit = "2.99"\n')
    code, out = check_json(log, "--budgets", b, "--as-of", "2026-01-01")
    assert code == 1
    assert out["alerts"][0]["period"] == "2026-W01" and out["alerts"][0]["actual"] == "3.000000000000"
    assert out["budgets"][0]["from"] == "2025-12-29"
    # On Monday 2026-01-05 a new week begins: nothing spent in it.
    code, out = check_json(log, "--budgets", b, "--as-of", "2026-01-05")
    assert code == 0 and out["budgets"][0]["period"] == "2026-W02" and Decimal(out["budgets"][0]["actual"]) == 0


def test_month_boundary_and_leap_day(tmp_path):
    days = {(dt.date(2028, 2, 28), "x"): 1_000_000, (dt.date(2028, 2, 29), "x"): 100_000,
            (dt.date(2028, 3, 1), "x"): 200_000}
    log = write_log(tmp_path / "l.csv", days)
    b = budgets_file(tmp_path / "b.toml", '[[budget]]\nname = "m"\nperiod = "month"\nlimit = "100"\n')
    _, out = check_json(log, "--budgets", b, "--as-of", "2028-02-29")
    assert out["budgets"][0]["period"] == "2028-02" and Decimal(out["budgets"][0]["actual"]) == Decimal("16.5")
    assert out["budgets"][0]["expected"] is not None  # the month's last day: nothing left to project
    assert Decimal(out["budgets"][0]["expected"]) == Decimal("16.5")
    _, out = check_json(log, "--budgets", b, "--as-of", "2028-03-01")
    assert out["budgets"][0]["period"] == "2028-03" and Decimal(out["budgets"][0]["actual"]) == Decimal(3)
    # the Feb 29 run-rate: after the as-of day, rows are filtered, and counted as such
    assert out["accounting"]["filtered_out"] == 0
    _, out = check_json(log, "--budgets", b, "--as-of", "2028-02-28")
    assert out["accounting"]["filtered_out"] == 2 and out["accounting"]["balanced"]


def test_time_zone_decides_the_day(tmp_path):
    # 23:30 UTC on March 31 is April 1 in Berlin: the March budget there does not count it.
    (tmp_path / "l.csv").write_text("timestamp,model,workspace,input_tokens,output_tokens\n"
                                    "2026-03-31T23:30:00Z,claude-sonnet-4-5,x,0,100000\n")
    b = budgets_file(tmp_path / "b.toml", '[[budget]]\nname = "m"\nperiod = "month"\nlimit = "1"\n')
    code, out = check_json(tmp_path / "l.csv", "--budgets", b, "--as-of", "2026-03-31")
    assert code == 1
    code, out = check_json(tmp_path / "l.csv", "--budgets", b, "--as-of", "2026-03-31", "--tz", "Europe/Berlin")
    assert code == 0 and out["accounting"]["filtered_out"] == 1 and out["time_zone"] == "Europe/Berlin"


# ------------------------------------------------------------------------------------------------
# Forecast

def test_forecast_mean_of_last_seven_days_times_days_left(tmp_path):
    # Mar 1-17: $1.50 a day; Mar 18-24: $3.00 a day. As of Mar 24 (7 days left in March):
    # spent 17 x 1.50 + 7 x 3.00 = 46.50; run rate = 21.00 / 7 = 3.00; expected 46.50 + 7 x 3.00 = 67.50.
    days = {(d, "x"): 100_000 for d in MARCH[:17]} | {(d, "x"): 200_000 for d in MARCH[17:24]}
    log = write_log(tmp_path / "l.csv", days)
    b = budgets_file(tmp_path / "b.toml", '[[budget]]\nname = "m"\nperiod = "month"\nlimit = "67.49"\n')
    code, out = check_json(log, "--budgets", b)
    assert code == 1
    [alert] = out["alerts"]
    assert alert["kind"] == "forecast" and alert["period"] == "2026-03"
    assert Decimal(alert["actual"]) == Decimal("46.5") and Decimal(alert["expected"]) == Decimal("67.5")
    assert alert["limit"] == "67.49" and "last 7 days" in alert["message"]
    b = budgets_file(tmp_path / "b.toml", '[[budget]]\nname = "m"\nperiod = "month"\nlimit = "67.50"\n')
    code, out = check_json(log, "--budgets", b)
    assert code == 0 and out["budgets"][0]["status"] == "ok"  # ends exactly at the limit: not over


def test_forecast_compares_exactly_not_the_rounded_expectation(tmp_path):
    # One day of $1.00 is 66,666.6.. tokens: use $3 over 7 days = 200,000 tokens on the last day
    # alone. As of Mar 28 (3 days left): expected = 3 + 3/7 x 3 = 3 + 9/7 = 4.285714285714285...
    log = write_log(tmp_path / "l.csv", {(d, "x"): 0 for d in MARCH[21:27]} | {(MARCH[27], "x"): 200_000})
    for limit, over in (("4.285714285714", True), ("4.285714285715", False)):
        b = budgets_file(tmp_path / "b.toml", f'[[budget]]\nname = "m"\nperiod = "month"\nlimit = "{limit}"\n')
        code, out = check_json(log, "--budgets", b, "--anomaly-min", "1000")  # (Mar 28 is a spike too)
        assert (code == 1) is over, limit
        assert out["budgets"][0]["expected"] == "4.285714285714"  # shown rounded; compared exactly


def test_forecast_window_starts_with_the_data(tmp_path):
    # Data begins Mar 29; as of Mar 30: run rate = (1.50 + 1.50) / 2 days; 1 day left -> expected 4.50.
    log = write_log(tmp_path / "l.csv", {(MARCH[28], "x"): 100_000, (MARCH[29], "x"): 100_000})
    b = budgets_file(tmp_path / "b.toml", '[[budget]]\nname = "m"\nperiod = "month"\nlimit = "4.49"\n')
    code, out = check_json(log, "--budgets", b)
    assert code == 1 and Decimal(out["alerts"][0]["expected"]) == Decimal("4.5")
    assert "last 2 days" in out["alerts"][0]["message"]


def test_day_budget_never_forecasts_and_stale_data_projects_zero(tmp_path):
    log = write_log(tmp_path / "l.csv", {(d, "x"): 100_000 for d in MARCH[:10]})
    b = budgets_file(tmp_path / "b.toml", '[[budget]]\nname = "d"\nperiod = "day"\nlimit = "1.49"\n'
                                          '[[budget]]\nname = "m"\nperiod = "month"\nlimit = "15.01"\n')
    code, out = check_json(log, "--budgets", b, "--as-of", "2026-03-10")
    assert [a["kind"] for a in out["alerts"]] == ["budget", "forecast"]
    # A week after the last request: the last 7 days cost nothing, so the month ends where it is.
    code, out = check_json(log, "--budgets", b, "--as-of", "2026-03-17")
    assert code == 0 and Decimal(out["budgets"][1]["expected"]) == Decimal(15)


# ------------------------------------------------------------------------------------------------
# Anomalies

def test_planted_spike_found_with_its_day_and_key(tmp_path):
    days = {(d, ws): 100_000 + 10_000 * (i % 4) for i, d in enumerate(MARCH) for ws in ("etl", "web")}
    days[(MARCH[19], "web")] = 700_000  # $10.50 on Mar 20 in web
    log = write_log(tmp_path / "l.csv", days)
    code, out = check_json(log, "--by", "workspace", "--anomaly-period", "month")
    assert code == 1
    [a] = out["alerts"]
    assert a["kind"] == "anomaly" and a["period"] == "2026-03-20" and a["key"] == {"workspace": "web"}
    assert Decimal(a["actual"]) == usd(700_000)
    # median of the 14 days before (Mar 6-19): tokens 110k,120k,130k,100k,... -> sorted middle pair
    before = sorted(100_000 + 10_000 * (i % 4) for i in range(5, 19))
    assert Decimal(a["expected"]) == usd(before[6] + before[7]) / 2
    # By default only the as-of day is judged (a nightly run mails a spike once).
    code, out = check_json(log, "--by", "workspace")
    assert code == 0 and out["alerts"] == []
    code, out = check_json(log, "--by", "workspace", "--as-of", "2026-03-20")
    assert code == 1 and out["alerts"][0]["period"] == "2026-03-20"
    # Without --by, the spike is also a spike of the whole.
    code, out = check_json(log, "--as-of", "2026-03-20")
    assert code == 1 and out["alerts"][0]["key"] == {} and out["alerts"][0]["name"] == "all requests"


def test_anomaly_threshold_is_strict_and_exact(tmp_path):
    # History 1.50, 3.00, 4.50, 6.00 -> median 3.75, 3x = 11.25 = 750,000 tokens.
    hist = {(MARCH[i], "x"): t for i, t in enumerate((100_000, 200_000, 300_000, 400_000))}
    for tokens, fires in ((750_000, False), (750_001, True)):
        log = write_log(tmp_path / "l.csv", hist | {(MARCH[4], "x"): tokens})
        code, out = check_json(log)
        assert (code == 1) is fires, tokens
        if fires:
            assert out["alerts"][0]["expected"] == "3.750000000000"


def test_anomaly_options_minimum_factor_window_history(tmp_path):
    hist = {(d, "x"): 10_000 for d in MARCH[:14]}  # $0.15 a day
    log = write_log(tmp_path / "l.csv", hist | {(MARCH[14], "x"): 60_000})  # $0.90: 6x, under $1
    assert check_json(log)[0] == 0
    assert check_json(log, "--anomaly-min", "0.50")[0] == 1
    assert check_json(log, "--anomaly-min", "0.50", "--anomaly-factor", "6")[0] == 0  # 6x is not above 6x
    assert check_json(log, "--anomaly-min", "0.50", "--anomaly-factor", "5.99")[0] == 1
    assert check_json(log, "--anomaly-min", "0.50", "--anomaly-factor", "5.990000000")[0] == 1  # trailing zeros
    # Fewer than 3 days with requests in the window: no baseline, no judgement.
    assert check_json(log, "--anomaly-min", "0", "--anomaly-window", "2")[0] == 0
    assert check_json(log, "--anomaly-min", "0", "--anomaly-window", "3")[0] == 1


def test_days_without_requests_are_not_zero_in_the_median(tmp_path):
    # A weekly job: $15 on each Monday; the 4th Monday costs $30 (2x): not an anomaly, although
    # counting the 6 empty days of each week as $0 would make the median $0.
    mondays = [dt.date(2026, 3, 2) + dt.timedelta(weeks=w) for w in range(5)]
    log = write_log(tmp_path / "l.csv", {(d, "x"): 1_000_000 for d in mondays[:4]} | {(mondays[4], "x"): 2_000_000})
    code, out = check_json(log, "--anomaly-window", "28")
    assert code == 0
    log = write_log(tmp_path / "l.csv", {(d, "x"): 1_000_000 for d in mondays[:4]} | {(mondays[4], "x"): 4_000_000})
    code, out = check_json(log, "--anomaly-window", "28")
    assert code == 1 and out["alerts"][0]["period"] == "2026-03-30"


def test_null_group_key_is_its_own_group(tmp_path):
    days = {(d, None): 100_000 for d in MARCH[:10]} | {(d, "a"): 1_000_000 for d in MARCH[:11]}
    days[(MARCH[10], None)] = 1_000_000
    log = write_log(tmp_path / "l.csv", days)
    code, out = check_json(log, "--by", "workspace")
    assert code == 1
    [a] = out["alerts"]
    assert a["key"] == {"workspace": None} and a["name"] == "workspace=(none)"


def test_seeded_noisy_series_gives_no_false_alarm(tmp_path):
    rng = random.Random(16)
    days = {(d, ws): rng.randint(100_000, 280_000) for d in daterange(dt.date(2026, 1, 1), 90)
            for ws in ("etl", "web", "research")}
    log = write_log(tmp_path / "l.csv", days)
    code, out = check_json(log, "--by", "workspace", "--anomaly-period", "month")
    assert code == 0 and out["alerts"] == []


def _daily(costs: list[Decimal]) -> pl.DataFrame:
    return pl.DataFrame({"day": daterange(dt.date(2026, 1, 1), len(costs)), "cost": costs},
                        schema={"day": pl.Date, "cost": MONEY})


money = st.decimals(min_value=Decimal("0.01"), max_value=Decimal("10000"), places=2)


@settings(max_examples=60, deadline=None)
@given(base=money, ratios=st.lists(st.integers(100, 299), min_size=3, max_size=40))
def test_no_anomaly_when_every_day_is_within_the_factor(base, ratios):
    """Days within [base, 2.99 base]: no day exceeds 3x a median of such days."""
    costs = [base * r / 100 for r in ratios]
    s = checks.Settings(period="month", minimum=Decimal(0))
    day = dt.date(2026, 1, 1) + dt.timedelta(days=len(costs) - 1)
    assert checks._anomalies(_daily(costs), [], day, s) == []


@settings(max_examples=60, deadline=None)
@given(base=money, ratios=st.lists(st.integers(100, 299), min_size=3, max_size=13),
       extra=st.decimals(min_value=Decimal("0.000000000001"), max_value=Decimal(1000), places=12))
def test_a_day_above_factor_times_every_past_day_is_found(base, ratios, extra):
    costs = [base * r / 100 for r in ratios]
    spike = 3 * max(costs) + extra
    s = checks.Settings(minimum=Decimal(0))
    day = dt.date(2026, 1, 1) + dt.timedelta(days=len(costs))
    [a] = checks._anomalies(_daily([*costs, spike]), [], day, s)
    assert a["actual"] == spike and a["period"] == day.isoformat()
    ordered = sorted(costs)
    assert a["expected"] == (ordered[(len(ordered) - 1) // 2] + ordered[len(ordered) // 2]) / 2


# ------------------------------------------------------------------------------------------------
# As-of, empty input, store

def test_as_of_before_and_after_the_data(tmp_path):
    log = write_log(tmp_path / "l.csv", {(d, "x"): 1_000_000 for d in MARCH[:5]})
    b = budgets_file(tmp_path / "b.toml", '[[budget]]\nname = "m"\nperiod = "month"\nlimit = "1"\n')
    code, out = check_json(log, "--budgets", b, "--as-of", "2026-02-27")
    assert code == 0 and out["as_of"] == "2026-02-27"
    assert out["accounting"]["filtered_out"] == 5 and out["accounting"]["priced"] == 0
    code, out = check_json(log, "--budgets", b, "--as-of", "2026-04-02")
    assert code == 0 and out["budgets"][0]["period"] == "2026-04" and out["accounting"]["priced"] == 5


def test_empty_input_is_a_quiet_night(tmp_path):
    (tmp_path / "empty.csv").write_text("")
    b = budgets_file(tmp_path / "b.toml", '[[budget]]\nname = "m"\nperiod = "month"\nlimit = "1"\n'
                                          'where = { workspace = "etl" }\n')
    code, out = check_json(tmp_path / "empty.csv", "--budgets", b, "--by", "workspace")
    assert code == 0 and out["as_of"] is None and out["alerts"] == []
    code, out = check_json(tmp_path / "empty.csv", "--by", "workspace", "--anomaly-period", "month")
    assert code == 0 and out["alerts"] == [] and out["anomaly"]["by"] == []
    code, out = check_json(tmp_path / "empty.csv", "--budgets", b, "--as-of", "2026-03-01")
    assert code == 0 and out["budgets"][0]["actual"] == "0.000000000000"


def test_store_input_equals_log_input(tmp_path):
    days = {(d, ws): 100_000 + 7_000 * (i % 5) for i, d in enumerate(MARCH) for ws in ("etl", "web")}
    days[(MARCH[25], "etl")] = 900_000
    log = write_log(tmp_path / "l.csv", days)
    b = budgets_file(tmp_path / "b.toml", '[[budget]]\nname = "etl"\nperiod = "week"\nlimit = "10"\n'
                                          'where = { workspace = "etl" }\n'
                                          '[[budget]]\nname = "all"\nperiod = "month"\nlimit = "120"\n')
    store = tmp_path / "store"
    assert CliRunner().invoke(main, ["ingest", str(log), "--store", str(store), "-q"]).exit_code == 0
    args = ("--budgets", b, "--by", "workspace", "--as-of", "2026-03-26")
    code_l, from_logs = check_json(log, *args)
    code_s, from_store = check_json("--store", store, *args)
    assert code_l == code_s == 1
    assert from_logs["alerts"] == from_store["alerts"] and from_logs["budgets"] == from_store["budgets"]
    assert {a["kind"] for a in from_logs["alerts"]} == {"budget", "forecast", "anomaly"}
    assert from_logs["accounting"]["filtered_out"] == from_store["accounting"]["filtered_out"] == 10


def test_library_api_matches_cli(tmp_path):
    log = write_log(tmp_path / "l.csv", {(d, "x"): 100_000 for d in MARCH[:3]})
    budgets = [checks.Budget("m", "month", Decimal("4"))]
    import analyzer

    assert analyzer.check is checks.run and "check" in analyzer.__all__
    r = analyzer.check([str(log)], budgets, opts=pipeline.Options(quarantine=str(tmp_path / "q.jsonl")))
    assert r.failed and r.as_of == dt.date(2026, 3, 3) and r.alerts[0]["actual"] == Decimal("4.5")


# ------------------------------------------------------------------------------------------------
# Errors: one line, exit 2

@pytest.mark.parametrize("text, message", [
    ('[[budget]]\nname = "a"\nperiod = "mnth"\nlimit = "1"\n', "budget 'a': period 'mnth': expected day, week or month (did you mean month?)"),
    ('[[budget]]\nname = "a"\nperiod = "day"\nlimit = "abc"\n', "budget 'a': limit 'abc': not a decimal amount"),
    ('[[budget]]\nname = "a"\nperiod = "day"\nlimit = "-1"\n', "budget 'a': limit '-1': expected a finite amount of 0 or more"),
    ('[[budget]]\nname = "a"\nperiod = "day"\nlimit = "NaN"\n', "budget 'a': limit 'NaN': expected a finite amount"),
    ('[[budget]]\nname = "a"\nperiod = "day"\nlimit = true\n', "budget 'a': limit True: expected a decimal amount"),
    ('[[budget]]\nname = "a"\nperiod = "day"\n', "budget 'a': limit: required"),
    ('[[budget]]\nname = "a"\nperiod = "day"\nlimit = "1"\nlimt = "2"\n', "budget 'a': unknown field 'limt' (did you mean limit?)"),
    ('[[budget]]\nname = "a"\nperiod = "day"\nlimit = "1"\n[[budget]]\nname = "a"\nperiod = "week"\nlimit = "2"\n',
     "budget 'a': name used twice (budgets #1 and #2)"),
    ('[[budget]]\nperiod = "day"\nlimit = "1"\n', "budget #1: name: required"),
    ('[[budget]]\nname = "a"\nperiod = "day"\nlimit = "1"\nwhere = { workspace = 3 }\n',
     "budget 'a': where.workspace: expected a string or a list of strings"),
    ('[[budget]]\nname = "a"\nperiod = "day"\nlimit = "1"\nwhere = { day = "2026-03-01" }\n', "budget 'a': where.day:"),
    ('[[budget]]\nname = "a"\nperiod = "day"\nlimit = "1e400"\n', "budget 'a': limit '1e400': expected at most 12 "),
    ('[[budget]]\nname = "a"\nperiod = "day"\nlimit = "0.0000000000001"\n', "at most 12 decimal places"),
    ('[[budgets]]\nname = "a"\n', "unknown key 'budgets' (did you mean budget?)"),
    ('[[budget]\n', "not valid TOML"),
])
def test_budgets_file_errors(tmp_path, text, message):
    log = write_log(tmp_path / "l.csv", {(MARCH[0], "x"): 100})
    b = budgets_file(tmp_path / "b.toml", text)
    r = run(log, "--budgets", b)
    assert r.exit_code == 2
    assert r.stderr.count("\n") == 1 and r.stderr.startswith(f"llm-cost: error: {b}: "), r.stderr
    assert message in r.stderr, r.stderr


def test_unknown_where_dimension_names_budget_with_a_hint(tmp_path):
    log = write_log(tmp_path / "l.csv", {(MARCH[0], "x"): 100})
    b = budgets_file(tmp_path / "b.toml", '[[budget]]\nname = "etl"\nperiod = "day"\nlimit = "1"\n'
                                          'where = { workspac = "etl" }\n')
    r = run(log, "--budgets", b)
    assert r.exit_code == 2 and r.stderr.count("\n") == 1
    assert "budget 'etl': where.workspac: unknown dimension (did you mean workspace?)" in r.stderr


@pytest.mark.parametrize("args, message", [
    (("--as-of", "2026-3-1"), "--as-of '2026-3-1': expected a date like 2026-11-20"),
    (("--as-of", "2026-03-01", "--until", "2026-03-01"), "--until with check"),
    (("--by", "day"), "--by day: check already works per day"),
    (("--as-of", "2026-03-01", "--since", "2026-03-02"), "--as-of 2026-03-01 is before --since 2026-03-02"),
    (("--by", "workspac"), "did you mean workspace?"),
    (("--anomaly-factor", "0"), "--anomaly-factor 0: expected a number above 0"),
    (("--anomaly-factor", "x"), "--anomaly-factor 'x': expected a decimal number"),
    (("--anomaly-min", "-1"), "--anomaly-min -1: expected an amount of 0 or more"),
    (("--anomaly-window", "0"), "--anomaly-window 0: expected a number of days"),
    (("--anomaly-min", "1e30"), "--anomaly-min 1E+30: expected at most 12 decimal places and less than"),
    (("--anomaly-factor", "3.0000001"), "at most 6 decimal places"),
    (("--budgets", "nope.toml"), "--budgets nope.toml: no such file"),
    (("-o", "x.csv"), "a check is written as .json, .md or .html"),
])
def test_option_errors(tmp_path, args, message):
    log = write_log(tmp_path / "l.csv", {(MARCH[0], "x"): 100})
    r = run(log, *args)
    assert r.exit_code == 2 and r.stderr.count("\n") == 1 and message in r.stderr, r.stderr


def test_logs_and_store_not_both(tmp_path):
    log = write_log(tmp_path / "l.csv", {(MARCH[0], "x"): 100})
    r = run(log, "--store", tmp_path / "s")
    assert r.exit_code == 2 and "not both" in r.stderr


# ------------------------------------------------------------------------------------------------
# Human formats: data is text, secrets masked

def test_markdown_and_table_escape_data_and_mask_keys(tmp_path):
    key = "sk-ant-api03-" + "A" * 40 + "wxyz"
    hostile = "a|b\x1b[2J*x*"
    days = {(d, ws): 100_000 for d in MARCH[:10] for ws in (key, hostile)}
    days[(MARCH[10], key)] = 1_000_000
    days[(MARCH[10], hostile)] = 1_000_000
    # (a CSV cell holding the escape character: written through the CSV writer of Polars)
    log = tmp_path / "l.csv"
    pl.DataFrame({"timestamp": [f"{d.isoformat()}T12:00:00Z" for (d, _) in days],
                  "model": ["claude-sonnet-4-5"] * len(days), "workspace": [w for (_, w) in days],
                  "input_tokens": [0] * len(days), "output_tokens": list(days.values())}).write_csv(log)
    md = run(log, "--by", "workspace", "--format", "markdown", "-q")
    assert md.exit_code == 1
    assert key not in md.stdout and "sk-ant-api03-\u2026wxyz" in md.stdout
    assert "a\\|b" in md.stdout and "\x1b" not in md.stdout
    table = run(log, "--by", "workspace", "--format", "table", "-q")
    assert key not in table.stdout and "\x1b" not in table.stdout
    js = run(log, "--by", "workspace", "--format", "json", "-q")
    assert key not in js.stdout
    revealed = run(log, "--by", "workspace", "--format", "json", "-q", "--reveal-keys")
    assert key in revealed.stdout


def test_output_file_and_exit_code(tmp_path):
    log = write_log(tmp_path / "l.csv", {(d, "x"): 100_000 for d in MARCH[:3]})
    b = budgets_file(tmp_path / "b.toml", '[[budget]]\nname = "m"\nperiod = "month"\nlimit = "1"\n')
    r = run(log, "--budgets", b, "-o", tmp_path / "out.json")
    assert r.exit_code == 1 and "wrote" in r.stderr
    assert json.loads((tmp_path / "out.json").read_text())["alerts"][0]["kind"] == "budget"
    r = run(log, "--budgets", b, "-o", tmp_path / "out.md")
    assert r.exit_code == 1 and (tmp_path / "out.md").read_text().startswith("| kind |")


@pytest.mark.parametrize("as_of, period", [("9999-12-31", "9999-12"), ("0001-01-01", "0001-01")])
def test_as_of_at_the_ends_of_the_calendar(tmp_path, as_of, period):
    log = write_log(tmp_path / "l.csv", {(MARCH[0], "x"): 100_000})
    b = budgets_file(tmp_path / "b.toml", '[[budget]]\nname = "m"\nperiod = "month"\nlimit = "1"\n'
                                          '[[budget]]\nname = "w"\nperiod = "week"\nlimit = "1"\n')
    code, out = check_json(log, "--budgets", b, "--as-of", as_of)
    assert out["budgets"][0]["period"] == period and out["accounting"]["balanced"]
    assert code == 0 and Decimal(out["budgets"][1]["actual"]) == 0  # (March's $1.50 is in neither)


def test_since_inside_a_budget_period_is_refused(tmp_path):
    """`--since` cut the month's first days out of a month budget: $30 spent showed as $16.50 and the
    alert did not fire (exit 0). A budget is checked on its whole period or not at all."""
    log = write_log(tmp_path / "l.csv", {(d, "etl"): 100_000 for d in MARCH[:20]})  # $1.50 a day
    b = budgets_file(tmp_path / "b.toml", '[[budget]]\nname = "etl"\nperiod = "month"\nlimit = "29.99"\n')
    r = run(log, "--budgets", b, "--since", "2026-03-10", "-q")
    assert r.exit_code == 2
    assert "--since 2026-03-10 starts inside budget 'etl''s period 2026-03-01..2026-03-31" in r.output
    # From the period's first day (or earlier) the budget sees all its spending.
    code, out = check_json(log, "--budgets", b, "--since", "2026-03-01")
    assert code == 1 and Decimal(out["budgets"][0]["actual"]) == 20 * usd(100_000)
    # Without budgets, --since only limits the days the anomalies look at.
    assert run(log, "--since", "2026-03-10", "-q").exit_code == 0

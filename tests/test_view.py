"""The terminal table fits its width; --columns, --sort, --top, --precision (analyzer/view.py, writers)."""

from __future__ import annotations

import json
import re
from decimal import Decimal

import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from analyzer import pipeline, view, writers
from analyzer.cli import main

from .conftest import SAMPLE

MODELS = ["claude-fable-5-1", "claude-haiku-4-5-20251001", "claude-haiku-5-5", "claude-opus-4-8", "claude-opus-5-5",
          "claude-sonnet-4-5-20250929", "claude-sonnet-5-5", "claude-fable-5-2"]


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    q = tmp_path_factory.mktemp("q") / "q.jsonl"
    return pipeline.analyze([str(SAMPLE)], ["month", "model"], pipeline.Options(quarantine=str(q)))


def run(*args, env=None):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False, env=env)


def table_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line[:1] in "┏┃┡│├└"]


@pytest.mark.parametrize("width", [60, 80, 120, 200])
def test_table_fits_and_keeps_keys_requests_cost_whole(sample, width):
    text = writers.table_text(sample, width=width)
    lines = table_lines(text)
    assert lines and all(len(line) <= width for line in lines)
    assert "…" not in text
    for m in MODELS:  # whole model ids
        assert f"│ {m} " in text
    header = " ".join(lines[:4])
    assert "month" in header and "requests" in header and "cost" in header
    assert re.search(r"│\s+19 │", text)  # total requests
    assert "│ 1.88 │" in text.replace("   ", " ").replace("  ", " ") or " 1.88 │" in text


def test_dropped_columns_are_named_once(sample):
    narrow = writers.table_text(sample, width=80)
    dropped = [line for line in narrow.splitlines() if line.startswith("columns not shown")]
    assert dropped == ["columns not shown, to fit 80 columns: cache write 5m, cache write 1h, cache read, web "
                       "searches, list $, saved $ (--columns chooses; CSV and JSON have them all)"]
    assert "input" in narrow and "output" in narrow  # kept before the cache columns (view.KEEP_ORDER)
    wide = writers.table_text(sample, width=200)
    assert "columns not shown" not in wide and "cache write 5m" in wide  # one-line headers when they fit


def test_a_table_that_cannot_fit_is_drawn_wider_not_cut(sample):
    text = writers.table_text(sample, width=30)
    assert "…" not in text and "claude-sonnet-4-5-20250929" in text and "1.88" in text


@settings(max_examples=25, deadline=None)
@given(width=st.integers(min_value=20, max_value=260))
def test_no_number_is_ever_cut(sample, width):
    text = writers.table_text(sample, width=width)
    assert "…" not in text
    cost = {r["model"]: r["cost"] for r in sample.rows.to_dicts() if r["month"] == "2026-10"}
    for c in cost.values():
        assert writers.money_text(c, 2) in text
    # Requests and cost always; and the table is as narrow as the width allows (keys, requests, cost).
    lines = table_lines(text)
    minimum = len("│ 2026-10 │ claude-sonnet-4-5-20250929 │ requests │ cost $ │")
    assert all(len(line) <= max(width, minimum) for line in lines)


def test_columns_option_chooses_and_orders(sample):
    v = view.View.parse("cost, saved $,input")
    assert v.columns == ("cost", "savings", "input_tokens")
    text = writers.table_text(sample, width=200, view=v)
    header = [line for line in text.splitlines() if line.startswith("┃")][0]
    assert header.index("cost $") < header.index("saved $") < header.index("input")
    assert "requests" not in header and "output" not in header


def test_columns_option_rejects_unknown_with_hint(tmp_path):
    r = run("report", SAMPLE, "--columns", "cost,inptu", "--quarantine", tmp_path / "q.jsonl")
    assert r.exit_code == 2
    assert "--columns 'inptu': unknown column ('inptu': did you mean input?)" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


def test_precision_shows_more_digits_exact_stays_exact(sample):
    # total cost 1.879380025: 4 places half-even -> 1.8794; 0 places -> 2
    text = writers.table_text(sample, width=200, view=view.View.parse(precision=4))
    assert "1.8794" in text and "rounded half-even to 4 decimal places" in text
    assert "2 │" in writers.table_text(sample, width=200, view=view.View.parse(precision=0))
    with pytest.raises(Exception, match="--precision 13"):
        view.View.parse(precision=13)


def test_sort_descending_and_ties_keep_key_order(sample):
    rep = view.arrange(sample, "-requests")
    req = rep.rows["requests"].to_list()
    assert req == sorted(req, reverse=True)
    threes = [(r["month"], r["model"]) for r in rep.rows.to_dicts() if r["requests"] == 3]
    assert threes == [("2026-10", "claude-sonnet-4-5-20250929"), ("2026-10", "claude-sonnet-5-5")]
    assert view.arrange(sample, "model").rows["model"].to_list() == sorted(sample.rows["model"].to_list())


def test_sort_unknown_key_is_one_line(tmp_path):
    r = run("report", SAMPLE, "--sort", "-price", "--quarantine", tmp_path / "q.jsonl")
    assert r.exit_code == 2 and "--sort 'price': not a column of this report" in r.stderr


@pytest.mark.parametrize("n", [1, 3, 10])
def test_top_other_row_adds_up(sample, n):
    rep = view.arrange(sample, None, n)
    rows = rep.rows
    assert rows.height == n + 1
    other = rows.row(n, named=True)
    assert other["month"] is None and other["model"] is None
    assert other[view.OTHER_ROWS] == sample.rows.height - n
    assert rows[view.OTHER_ROWS].to_list()[:n] == [None] * n
    head_cost = sum(rows["cost"].to_list()[:n], Decimal(0))
    assert other["cost"] == sample.totals["cost"] - head_cost
    for c in ("requests", "input_tokens", "cost", "list_cost", "savings"):
        assert sum(rows[c].to_list(), Decimal(0) if c != "requests" and "tokens" not in c else 0) == sample.totals[c]
    # the head is the N most expensive rows
    assert rows["cost"].to_list()[:n] == sorted(sample.rows["cost"].to_list(), reverse=True)[:n]


def test_top_covering_all_rows_adds_no_other_row(sample):
    assert view.arrange(sample, None, sample.rows.height - 1).rows.height == sample.rows.height  # one left: shown
    with pytest.raises(Exception, match="--top 0"):
        view.arrange(sample, None, 0)


def test_top_in_json_and_csv(tmp_path):
    q = tmp_path / "q.jsonl"
    r = run("report", SAMPLE, "--by", "model", "--top", "2", "--format", "json", "--quarantine", q)
    doc = json.loads(r.stdout)
    assert len(doc["rows"]) == 3 and doc["rows"][2]["model"] is None and doc["rows"][2]["other_rows"] == 6
    assert [row["other_rows"] for row in doc["rows"][:2]] == [None, None]
    assert sum(Decimal(row["cost"]) for row in doc["rows"]) == Decimal(doc["totals"]["cost"]) == Decimal("1.879380025")
    csv = run("report", SAMPLE, "--by", "model", "--top", "2", "--format", "csv", "--quarantine", q).stdout.splitlines()
    assert csv[0].startswith("model,") and csv[0].endswith(",other_rows")
    assert csv[1].endswith(",") and csv[3].startswith(",15,") and csv[3].endswith(",6")


HOSTILE_NAME = "(other 3 rows)"


@pytest.fixture()
def other_named(tmp_path):
    """Five workspaces, one literally named as a --top rest row would be."""
    log = tmp_path / "log.csv"
    names = ["a", "b", HOSTILE_NAME, "c", "d"]
    log.write_text("request_id,timestamp,model,workspace,input_tokens,output_tokens\n" + "".join(
        f"r{i},2026-10-01T09:00:00Z,claude-sonnet-4-5,{w},{1000 * (10 - i)},0\n" for i, w in enumerate(names)))
    return log


def test_top_rest_row_is_not_a_workspace_named_like_it(other_named, tmp_path):
    """A workspace named "(other 3 rows)" is one of the head rows; the rest row is told apart by its
    marker column, not its label, in every machine format."""
    q = tmp_path / "q.jsonl"
    args = ("report", other_named, "--by", "workspace", "--top", "3", "--quarantine", q)
    doc = json.loads(run(*args, "--format", "json").stdout)
    assert [(r["workspace"], r["other_rows"]) for r in doc["rows"]] == [
        ("a", None), ("b", None), (HOSTILE_NAME, None), (None, 2)]
    # input 1000 x (10 - i) at $3/M: the rest is c (7,000) and d (6,000) -> 13,000 x 3 / 1e6 = 0.039
    assert doc["rows"][3]["cost"] == "0.039000000000" and doc["rows"][3]["requests"] == 2
    out = tmp_path / "top.parquet"
    run(*args, "-o", out)
    import polars as pl

    df = pl.read_parquet(out)
    assert df["workspace"].to_list() == ["a", "b", HOSTILE_NAME, None]
    assert df["other_rows"].to_list() == [None, None, None, 2]
    # For people the rest row has its label; the real workspace keeps its name.
    md = run(*args, "--format", "markdown").stdout.splitlines()
    assert md[4].startswith(f"| {HOSTILE_NAME} | 1 |") and md[5].startswith("| (other 2 rows) | 2 |")
    table = table_lines(run(*args).stdout)
    assert any(line.startswith(f"│ {HOSTILE_NAME} ") for line in table)
    assert any(line.startswith("│ (other 2 rows) ") for line in table)
    page = tmp_path / "top.html"
    run(*args, "-o", page)
    cells = re.findall(r"<td[^>]*>([^<]*)</td>", page.read_text())
    assert HOSTILE_NAME in cells and "(other 2 rows)" in cells


def test_top_with_nothing_left_over_keeps_the_marker_column(sample):
    rows = view.arrange(sample, None, sample.rows.height).rows
    assert rows.height == sample.rows.height and rows[view.OTHER_ROWS].null_count() == rows.height


def test_a_log_column_named_other_rows_does_not_shadow_the_marker(tmp_path):
    log = tmp_path / "log.csv"
    log.write_text("request_id,timestamp,model,other_rows,input_tokens,output_tokens\n"
                   "r1,2026-10-01T09:00:00Z,claude-sonnet-4-5,x,1000,0\n"
                   "r2,2026-10-01T09:00:00Z,claude-sonnet-4-5,y,2000,0\n"
                   "r3,2026-10-01T09:00:00Z,claude-sonnet-4-5,z,3000,0\n")
    r = run("report", log, "--by", "log_other_rows", "--top", "1", "--format", "json", "--quarantine",
            tmp_path / "q.jsonl")
    rows = json.loads(r.stdout)["rows"]
    assert [(x["log_other_rows"], x["other_rows"]) for x in rows] == [("z", None), (None, 2)]


def test_unpriced_and_quarantine_lines_said_once(tmp_path):
    q = tmp_path / "q.jsonl"
    r = run("report", SAMPLE, "--by", "model", "--quarantine", q)
    both = r.stdout + r.stderr
    assert both.count("claude-sonnett-5-5 (did you mean") == 1
    assert both.count(str(q)) == 1
    # JSON on stdout is for machines: the person still gets the warnings on stderr.
    r = run("report", SAMPLE, "--by", "model", "--format", "json", "--quarantine", q)
    assert "warning: 1 row unpriced" in r.stderr and "warning: 4 rows quarantined" in r.stderr


def test_columns_env_fits_a_piped_table(tmp_path):
    r = run("report", SAMPLE, "--by", "month,model", "--quarantine", tmp_path / "q.jsonl", env={"COLUMNS": "80"})
    assert all(len(line) <= 80 for line in table_lines(r.stdout)) and "…" not in r.stdout


def test_markdown_follows_columns_precision_and_top(tmp_path):
    r = run("report", SAMPLE, "--by", "model", "--format", "markdown", "--precision", "3", "--columns", "cost,requests",
            "--top", "2", "--quarantine", tmp_path / "q.jsonl")
    lines = r.stdout.splitlines()
    assert lines[0] == "| model | cost $ | requests |"
    # opus 5.5 0.792, fable 5.2 0.464, the other six 1.87938 - 1.256 = 0.62338 -> 0.623; total 1.879
    assert lines[2:6] == ["| claude-opus-5-5 | 0.792 | 3 |", "| claude-fable-5-2 | 0.464 | 1 |",
                          "| (other 6 rows) | 0.623 | 15 |", "| **total** | **1.879** | **19** |"]
    assert "rounded half-even to 3 decimal places" in r.stdout


def test_a_table_file_is_whole_whatever_columns_says(tmp_path):
    out = tmp_path / "report.txt"
    r = run("report", SAMPLE, "--by", "month,model", "-o", out, "--quarantine", tmp_path / "q.jsonl",
            env={"COLUMNS": "60"})
    assert r.exit_code == 0, r.output
    text = out.read_text()
    assert "cache write 5m" in text and "columns not shown" not in text

"""The CLI as a user meets it: each command, its exit codes and its one-line errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from decimal import Decimal

import polars as pl
import pytest
from click.testing import CliRunner

from analyzer.cli import main

from .conftest import SAMPLE, canonical_frame, write_frame


def run(*args, input=None):
    result = CliRunner().invoke(main, [str(a) for a in args], input=input, catch_exceptions=False)
    return result


@pytest.fixture
def clean_log(tmp_path):
    df = canonical_frame([
        {"request_id": "a", "timestamp": "2026-10-10T10:00:00Z", "model": "claude-sonnet-4-5", "input_tokens": 1000,
         "output_tokens": 100},
        {"request_id": "b", "timestamp": "2026-10-11T10:00:00Z", "model": "claude-haiku-4-5", "input_tokens": 2000,
         "output_tokens": 200},
    ])
    return write_frame(df, tmp_path / "clean.csv")


def test_report_json_shape(clean_log, quarantine):
    r = run("report", clean_log, "--by", "model", "--format", "json", "--quarantine", quarantine)
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    assert doc["currency"] == "USD" and doc["group_by"] == ["model"]
    assert set(doc) >= {"price_book", "rows", "totals", "accounting"}
    # sonnet 4.5: 1000*3/1e6 + 100*15/1e6 = 0.0045; haiku 4.5: 2000*1/1e6 + 200*5/1e6 = 0.003
    costs = {row["model"]: Decimal(row["cost"]) for row in doc["rows"]}
    assert costs == {"claude-haiku-4-5-20251001": Decimal("0.003"), "claude-sonnet-4-5-20250929": Decimal("0.0045")}
    assert Decimal(doc["totals"]["cost"]) == Decimal("0.0075")
    assert isinstance(doc["totals"]["cost"], str)
    assert doc["accounting"]["rows_read"] == 2 and doc["accounting"]["balanced"]


def test_report_table_is_default(clean_log, quarantine):
    r = run("report", clean_log, "--quarantine", quarantine)
    assert r.exit_code == 0
    assert "claude-sonnet-4-5-20250929" in r.stdout and "rows read 2 = priced 2" in r.stdout
    assert "half-even" in r.stdout


@pytest.mark.parametrize("ext,fmt", [("csv", "csv"), ("json", "json"), ("jsonl", "jsonl"), ("parquet", "parquet"),
                                     ("md", "markdown")])
def test_report_output_file_format_from_extension(clean_log, tmp_path, ext, fmt, quarantine):
    out = tmp_path / f"report.{ext}"
    r = run("report", clean_log, "--by", "day,model", "-o", out, "--quarantine", quarantine)
    assert r.exit_code == 0, r.output
    assert "wrote" in r.stderr and "rows read 2" in r.stderr
    if fmt == "parquet":
        assert pl.read_parquet(out).height == 2
    elif fmt == "csv":
        df = pl.read_csv(out, infer_schema=False)
        assert df["day"].to_list() == ["2026-10-10", "2026-10-11"]
        assert df["cost"].to_list() == ["0.004500000000", "0.003000000000"]
    else:
        assert "claude-haiku-4-5-20251001" in out.read_text()
    assert not list(tmp_path.glob(".llm-cost-*")), "temporary files left behind"


def test_price_writes_rows_that_read_back(clean_log, tmp_path, quarantine):
    out = tmp_path / "priced.parquet"
    r = run("price", clean_log, "-o", out, "--quarantine", quarantine)
    assert r.exit_code == 0, r.output
    rows = pl.read_parquet(out)
    assert rows.height == 2
    assert rows["cost"].to_list() == [Decimal("0.0045"), Decimal("0.003")]
    assert {"model", "discount_type", "context_tier", "price_book", "cost_input"} <= set(rows.columns)
    # What `price` writes is canonical input again: re-pricing it gives the same total.
    again = run("report", out, "--by", "model", "--format", "json", "--quarantine", quarantine)
    assert Decimal(json.loads(again.stdout)["totals"]["cost"]) == Decimal("0.0075")


def test_price_csv_keeps_exact_money(clean_log, tmp_path, quarantine):
    out = tmp_path / "priced.csv"
    assert run("price", clean_log, "-o", out, "--quarantine", quarantine).exit_code == 0
    assert pl.read_csv(out, infer_schema=False)["cost"].to_list() == ["0.004500000000", "0.003000000000"]


def test_stdin(clean_log, quarantine):
    r = run("report", "-", "--format", "json", "--quarantine", quarantine, input=clean_log.read_text())
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["accounting"]["rows_read"] == 2


def test_strict_exits_1_on_unpriced_or_quarantined(tmp_path, quarantine):
    r = run("report", SAMPLE, "--strict", "--quarantine", quarantine)
    assert r.exit_code == 1
    assert "--strict" in r.stderr and "1 unpriced and 4 quarantined" in r.stderr


def test_strict_passes_clean_input(clean_log, quarantine):
    assert run("report", clean_log, "--strict", "--quarantine", quarantine).exit_code == 0


def test_quarantine_file_names_file_line_and_reason(tmp_path, quarantine):
    r = run("report", SAMPLE, "--quarantine", quarantine)
    assert r.exit_code == 0
    lines = [json.loads(x) for x in open(quarantine)]
    by_line = {(x["file"].split("/")[-1], x["line"]): x["reason"] for x in lines}
    assert by_line[("october.csv", 14)] == "negative input_tokens (-40)"
    assert by_line[("october.csv", 16)] == "unparsable timestamp (not-a-time)"
    assert by_line[("november.jsonl", 7)] == "input_tokens is not a number (abc)"
    assert by_line[("november.jsonl", 8)].startswith("not a JSON object")
    assert all(x["raw"] for x in lines)


@pytest.mark.parametrize("args,message", [
    (["report", "does/not/exist.csv"], "does/not/exist.csv: no such file or directory"),
    (["report", "{clean}", "--by", "colour"], "--by 'colour': unknown key"),
    (["report", "{clean}", "--tz", "Mars/Olympus"], "--tz 'Mars/Olympus': not an IANA time zone"),
    (["report", "{clean}", "--since", "yesterday"], "--since 'yesterday'"),
    (["report", "{clean}", "--dialect", "nope"], "unknown dialect 'nope'"),
    (["report", "{clean}", "-o", "{tmp}/x.xlsx"], "cannot tell the format"),
    (["report", "{weird}"], "unknown log format (columns seen: colour, size). A log of your own: describe it with a mapping"),
    (["report", "{clean}", "--prices", "{badbook}"], "model claude-x (from 2026-01-01): unknown key 'inptu'"),
    (["prices", "show", "claude-sonet-4-5"], "did you mean claude-sonnet-4-5-20250929?"),
])
def test_errors_are_one_line_exit_2(args, message, clean_log, tmp_path):
    weird = tmp_path / "weird.csv"
    weird.write_text("colour,size\nred,3\n")
    badbook = tmp_path / "bad.toml"
    badbook.write_text('[[model]]\nid = "claude-x"\n[[model.period]]\nfrom = 2026-01-01\ninptu = 3\noutput = 1\n')
    args = [a.format(clean=clean_log, tmp=tmp_path, weird=weird, badbook=badbook) for a in args]
    r = run(*args)
    assert r.exit_code == 2, r.output
    err = r.stderr.strip()
    assert len(err.splitlines()) == 1 and err.startswith("llm-cost: error:")
    assert message in err
    assert "Traceback" not in r.output


def test_since_until_filter_and_count(clean_log, quarantine):
    r = run("report", clean_log, "--since", "2026-10-11", "--until", "2026-10-11", "--format", "json",
            "--quarantine", quarantine)
    doc = json.loads(r.stdout)
    assert [row["model"] for row in doc["rows"]] == ["claude-haiku-4-5-20251001"]
    assert doc["accounting"]["filtered_out"] == 1 and doc["accounting"]["balanced"]


def test_prices_list_show_check(tmp_path):
    r = run("prices", "list")
    assert r.exit_code == 0 and "claude-haiku-5-5" in r.stdout and "gpt-6-astra" in r.stdout
    r = run("prices", "show", "us.anthropic.claude-sonnet-4-5-20250929-v1:0")
    assert r.exit_code == 0
    assert "long context when prompt > 200,000 tokens (2025-09-29..2026-04-30)" in r.stdout
    overlay = tmp_path / "negotiated.toml"
    overlay.write_text('[book]\ndiscount = 15\n')
    r = run("prices", "check", overlay)
    assert r.exit_code == 0 and "ok" in r.stdout


def test_formats_lists_canonical():
    r = run("formats")
    assert r.exit_code == 0 and "canonical" in r.stdout and "recognised by" in r.stdout


def test_help_is_fast_and_lists_commands():
    r = run("--help")
    assert r.exit_code == 0
    for cmd in ("report", "price", "prices", "formats"):
        assert cmd in r.stdout


def test_by_help_names_every_builtin_key():
    # BY_HELP is spelled out (--help must not import Polars): a new built-in key must be added there too.
    from analyzer.cli import BY_HELP
    from analyzer.schema import BUILTIN_KEYS

    listed = {k.strip() for k in BY_HELP.split(":", 1)[1].split(", or any")[0].split(",")}
    assert listed == set(BUILTIN_KEYS)


@pytest.mark.parametrize("fmt", ["parquet", "csv", "jsonl"])
def test_price_one_file_and_two_files_write_the_same_rows(tmp_path, quarantine, fmt):
    """One input file is sunk straight into the output; several are joined part by part: the same
    rows, money and masking either way (a key in a dimension column is masked on both paths)."""
    rows = [{"request_id": f"r{i}", "timestamp": f"2026-10-1{i}T10:00:00Z", "model": "claude-sonnet-4-5",
             "input_tokens": 1000 * (i + 1), "output_tokens": 100, "workspace": "sk-ant-api03-" + "x" * 20 + f"{i:04d}"}
            for i in range(4)]
    one, two = tmp_path / "one", tmp_path / "two"
    one.mkdir(), two.mkdir()
    write_frame(canonical_frame(rows), one / "all.csv")
    write_frame(canonical_frame(rows[:2]), two / "a.csv")
    write_frame(canonical_frame(rows[2:]), two / "b.csv")
    outs = {}
    for name, src in (("one", one), ("two", two)):
        out = tmp_path / f"{name}.{fmt}"
        r = run("price", src, "-o", out, "-q", "--quarantine", quarantine)
        assert r.exit_code == 0, r.output
        df = (pl.read_parquet(out) if fmt == "parquet" else pl.read_csv(out, infer_schema=False) if fmt == "csv"
              else pl.read_ndjson(out))
        outs[name] = df.drop("source_file", "source_row").sort("request_id")
    assert outs["one"].equals(outs["two"])
    # sonnet 4.5: 1000(i+1) * 3/1e6 + 100 * 15/1e6
    assert [Decimal(str(c)) for c in outs["one"]["cost"]] == [Decimal("0.0045"), Decimal("0.0075"),
                                                              Decimal("0.0105"), Decimal("0.0135")]
    assert not any("x" * 20 in str(v) for v in outs["one"]["workspace"]), "credential written unmasked"
    assert not list(tmp_path.glob(".llm-cost-*")), "temporary files left behind"


@pytest.mark.parametrize("given,expected", [(None, f"narenas:{max(1, (os.cpu_count() or 1) // 2)}"),
                                            ("narenas:4", "narenas:4")])
def test_the_command_sets_polars_allocator_arenas_unless_the_user_did(given, expected):
    """One jemalloc arena per two cores (see cli.py), set before Polars loads; a user's own setting wins.
    Polars reads it once it is loaded: its allocator then reports the arenas it was given."""
    env = {k: v for k, v in os.environ.items() if k != "_RJEM_MALLOC_CONF"}
    if given:
        env["_RJEM_MALLOC_CONF"] = given
    code = ("import os, analyzer.cli; conf = os.environ['_RJEM_MALLOC_CONF']; print(conf); "
            "os.environ['_RJEM_MALLOC_CONF'] = conf + ',stats_print:true'; import polars")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.splitlines()[0] == expected
    assert f"opt.narenas: {expected.split(':')[1]}" in out.stderr


def _allocator_of(command: list[str], tmp_path, given: str | None = None) -> tuple[str, str]:
    """The allocator setting `llm-cost COMMAND` ran with: the environment as the command left it
    before Polars loaded (or as it was when Polars had loaded first), and jemalloc's own report of
    the options it read (stats_print, added after the command's choice, printed at exit)."""
    env = {k: v for k, v in os.environ.items() if k != "_RJEM_MALLOC_CONF"}
    if given:
        env["_RJEM_MALLOC_CONF"] = given
    log = tmp_path / "t.csv"
    log.write_text("timestamp,model,input_tokens,output_tokens\n2026-11-01T00:00:00Z,claude-sonnet-4-5,1000,100\n")
    code = ("import os, sys, analyzer.cli as c\n"
            "keep = c._keep_freed_memory\n"
            "def spy():\n"
            "    keep()\n"
            "    print('loaded' if 'polars' in sys.modules else 'not loaded', os.environ['_RJEM_MALLOC_CONF'])\n"
            "c._keep_freed_memory = spy\n"
            "os.environ['_RJEM_MALLOC_CONF'] += ',stats_print:true'\n"  # (report: its setting as it stands)
            "_ = c.main(sys.argv[1:], prog_name='llm-cost')\n")
    if command == ["price"]:  # (stats_print after the command's own choice, not before it)
        code = code.replace("os.environ['_RJEM_MALLOC_CONF'] += ',stats_print:true'\n", "").replace(
            "os.environ['_RJEM_MALLOC_CONF'])\n", "os.environ['_RJEM_MALLOC_CONF'])\n"
            "    os.environ['_RJEM_MALLOC_CONF'] += ',stats_print:true'\n")
        command = [*command, str(log), "-o", str(tmp_path / "o.parquet"), "-q"]
    else:
        command = [*command, str(log), "-q", "-o", str(tmp_path / "r.csv")]
    out = subprocess.run([sys.executable, "-c", code, *command], env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout, out.stderr


def test_price_keeps_freed_memory_before_polars_loads(tmp_path):
    """`price` sets Polars' allocator to keep the memory a slice freed (see cli._keep_freed_memory),
    before Polars loads: jemalloc then reports no decay (-1) for dirty and muzzy pages."""
    said, stats = _allocator_of(["price"], tmp_path)
    arenas = f"narenas:{max(1, (os.cpu_count() or 1) // 2)}"
    assert said.splitlines()[0] == f"not loaded {arenas},dirty_decay_ms:-1,muzzy_decay_ms:-1"
    assert "opt.dirty_decay_ms: -1" in stats and "opt.muzzy_decay_ms: -1" in stats
    assert (tmp_path / "o.parquet").exists()


def test_price_leaves_a_users_allocator_setting_and_report_polars_default(tmp_path):
    """A user's own _RJEM_MALLOC_CONF is theirs (price adds nothing); `report` keeps Polars' decay
    (freed memory handed back: its peak memory is what the 1 GiB target measures)."""
    said, stats = _allocator_of(["price"], tmp_path, given="narenas:2")
    assert said.splitlines()[0] == "not loaded narenas:2"
    assert "opt.dirty_decay_ms: 500" in stats and "opt.narenas: 2" in stats
    said, stats = _allocator_of(["report"], tmp_path)
    assert said == ""
    assert "opt.dirty_decay_ms: 500" in stats and "opt.muzzy_decay_ms: 1000" in stats


@pytest.mark.parametrize("command", [["report"], ["whatif", "--batch"]])
def test_a_repeated_by_groups_by_every_key_given(tmp_path, command):
    """`--by month --by team` kept only its last value (Click's rule for a single option): the report
    grouped by team alone, exit 0. It now means `--by month,team`."""
    p = tmp_path / "t.csv"
    p.write_text("timestamp,model,input_tokens,output_tokens,team\n"
                 "2026-11-01T00:00:00Z,claude-sonnet-4-5,1000,100,a\n"
                 "2026-12-01T00:00:00Z,claude-sonnet-4-5,1000000,100,a\n")
    run = lambda *by: CliRunner().invoke(main, [*command, str(p), *by, "--format", "csv", "-q"])  # noqa: E731
    repeated, joined = run("--by", "month", "--by", "team"), run("--by", "month,team")
    assert repeated.exit_code == joined.exit_code == 0
    assert repeated.output == joined.output
    assert [r.split(",")[:2] for r in repeated.output.splitlines()[:3]] == [["month", "team"], ["2026-11", "a"],
                                                                            ["2026-12", "a"]]

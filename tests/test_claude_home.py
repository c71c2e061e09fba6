"""Claude Code users: no path reads the Claude Code data directories, --by project shows the project's
path, --by block gives the 5-hour usage windows."""

from __future__ import annotations

import datetime as dt
import json
import shutil
from decimal import Decimal

import polars as pl
import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from analyzer import pipeline, tagging
from analyzer.cli import main
from analyzer.dialects.claude_code import data_dirs, project_path
from analyzer.errors import OptionError

from .conftest import ROOT, canonical_frame, write_frame

TRANSCRIPTS = ROOT / "fixtures" / "dialects" / "claude-code" / "projects"


def run(*args, env=None):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False, env=env)


# --- where the transcripts are ------------------------------------------------------------------

def test_default_dirs_both_when_both(tmp_path):
    (tmp_path / ".claude" / "projects").mkdir(parents=True)
    assert data_dirs({}, str(tmp_path)) == [str(tmp_path / ".claude" / "projects")]
    (tmp_path / ".config" / "claude" / "projects").mkdir(parents=True)
    assert data_dirs({}, str(tmp_path)) == [str(tmp_path / ".config" / "claude" / "projects"),
                                            str(tmp_path / ".claude" / "projects")]


def test_claude_config_dir_list_replaces_the_defaults(tmp_path):
    (tmp_path / ".claude" / "projects").mkdir(parents=True)
    a, b = tmp_path / "a", tmp_path / "b"
    (a / "projects").mkdir(parents=True)
    (b / "projects").mkdir(parents=True)
    env = {"CLAUDE_CONFIG_DIR": f"{a}, {tmp_path / 'missing'},{b},{a}"}
    assert data_dirs(env, str(tmp_path)) == [str(a / "projects"), str(b / "projects")]
    with pytest.raises(OptionError, match="CLAUDE_CONFIG_DIR=.*holds no projects directory"):
        data_dirs({"CLAUDE_CONFIG_DIR": str(tmp_path / "missing")}, str(tmp_path))


def test_none_found_is_one_line_exit_2(tmp_path):
    r = run("report", env={"HOME": str(tmp_path), "CLAUDE_CONFIG_DIR": ""})
    assert r.exit_code == 2
    assert r.stderr.count("\n") == 1 and "no Claude Code transcripts found (looked in" in r.stderr


def test_report_and_price_without_paths_read_claude_code(tmp_path):
    home = tmp_path / "home"
    shutil.copytree(TRANSCRIPTS, home / ".claude" / "projects")
    env = {"HOME": str(home), "CLAUDE_CONFIG_DIR": ""}
    r = run("report", "--by", "project", "--format", "json", "--quarantine", tmp_path / "q.jsonl", env=env)
    assert r.exit_code == 0, r.output
    assert f"reading Claude Code transcripts in {home / '.claude' / 'projects'}" in r.stderr
    doc = json.loads(r.stdout)
    assert [(row["project"], row["requests"]) for row in doc["rows"]] == [("/home/dev/acme-billing", 3)]
    out = tmp_path / "rows.csv"
    r = run("price", "-o", out, "--quarantine", tmp_path / "q.jsonl", env=env)
    assert r.exit_code == 0, r.output
    assert "reading Claude Code transcripts" in r.stderr
    assert pl.read_csv(out).height == 3
    r = run("report", "--quiet", "--quarantine", tmp_path / "q.jsonl", env=env)
    assert r.stderr == ""


# --- the project's path ------------------------------------------------------------------------

@pytest.mark.parametrize("cwd,folder,project", [
    ("/home/dev/acme-billing", "-home-dev-acme-billing", "/home/dev/acme-billing"),
    ("/home/dev/acme-billing/src/api", "-home-dev-acme-billing", "/home/dev/acme-billing"),  # a subdirectory
    ("/home/dev/acme-billing-v2", "-home-dev-acme-billing", "-home-dev-acme-billing"),  # not a subdirectory
    ("/home/dev/my_app.v2", "-home-dev-my-app-v2", "/home/dev/my_app.v2"),  # . and _ escaped too
    ("/home/dev/my_app.v2", "-home-dev-my_app.v2", "/home/dev/my_app.v2"),  # (older versions kept them)
    ("C:\\Users\\dev\\app", "C--Users-dev-app", "C:\\Users\\dev\\app"),
    ("/tmp", "-home-dev-acme-billing", "-home-dev-acme-billing"),  # a cwd outside the project
    (None, "-home-dev-acme-billing", "-home-dev-acme-billing"),
])
def test_project_path(cwd, folder, project):
    df = pl.DataFrame({"cwd": [cwd], "folder": [folder]}, schema={"cwd": pl.String, "folder": pl.String})
    assert df.select(project_path(pl.col("cwd"), pl.col("folder")))["cwd"].item() == project


def test_rows_without_the_path_join_the_rows_with_it():
    # The fixture's transcript has one line whose cwd lies outside the project: still the same project.
    r = run("report", TRANSCRIPTS, "--by", "project,cwd", "--format", "json", "--quarantine", "/dev/null")
    rows = json.loads(r.stdout)["rows"]
    assert {(row["project"], row["cwd"]) for row in rows} == {("/home/dev/acme-billing", "/home/dev/acme-billing"),
                                                              ("/home/dev/acme-billing", "/home/dev/old-project")}


# --- 5-hour blocks --------------------------------------------------------------------------------

def reference_blocks(times: list[dt.datetime]) -> dict[dt.datetime, dt.datetime]:
    """ccusage's rule, request by request (a test may loop): each request -> its window's start."""
    out, start = {}, None
    for t in sorted(times):
        if start is None or t - start > dt.timedelta(hours=5):
            start = t.replace(minute=0, second=0, microsecond=0)
        out[t] = start
    return out


def starts_of(times: list[dt.datetime]) -> dict[dt.datetime, dt.datetime]:
    frame = pl.DataFrame({"timestamp": times}, schema={"timestamp": pl.Datetime("us", "UTC")})
    keyed = frame.with_columns(tagging.block_key(pl.col("timestamp")))
    starts = tagging.block_starts(keyed["block"])
    joined = keyed.join(starts, on="block")
    return dict(zip(joined["timestamp"].dt.replace_time_zone(None).to_list(), joined["_start"].to_list()))


def t(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text)


def test_blocks_by_hand():
    times = [t("2026-10-01 10:05"), t("2026-10-01 14:59:59"), t("2026-10-01 15:00:00"),  # the boundary: in
             t("2026-10-01 15:00:00.000001"),  # just after: a new window, from 15:00
             t("2026-10-01 19:30"), t("2026-10-01 20:00"),  # 20:00 exactly: still the 15:00 window
             t("2026-10-01 20:00:01"),  # next window 20:00
             t("2026-10-02 09:45")]  # after a gap: 09:00
    want = ["2026-10-01 10:00"] * 3 + ["2026-10-01 15:00"] * 3 + ["2026-10-01 20:00", "2026-10-02 09:00"]
    got = starts_of([x.replace(tzinfo=dt.UTC) for x in times])
    assert [got[x].strftime("%Y-%m-%d %H:%M") for x in times] == want


@settings(max_examples=60, deadline=None)
@given(st.lists(st.datetimes(min_value=dt.datetime(2026, 1, 1), max_value=dt.datetime(2026, 1, 4)), min_size=1,
                max_size=40)
       | st.lists(st.integers(0, 40).map(lambda h: dt.datetime(2026, 3, 1) + dt.timedelta(hours=h)), min_size=1,
                  max_size=30))
def test_blocks_agree_with_the_request_by_request_rule(times):
    assert starts_of([x.replace(tzinfo=dt.UTC) for x in times]) == reference_blocks(times)


def test_report_by_block_costs_and_time_zone(tmp_path):
    rows = [{"request_id": str(i), "timestamp": ts, "model": "claude-haiku-4-5", "input_tokens": 1000, "output_tokens": 0}
            for i, ts in enumerate(["2026-10-01T10:05:00Z", "2026-10-01T15:00:00Z", "2026-10-01T15:00:01Z",
                                    "2026-10-01T23:10:00Z"])]
    rows.append({"request_id": "x", "timestamp": "2026-10-01T09:30:00Z", "model": "claude-unknown-9",
                 "input_tokens": 1, "output_tokens": 1})  # unpriced, but it opens the first window at 09:00
    log = write_frame(canonical_frame(rows), tmp_path / "b.csv")
    rep = pipeline.analyze([str(log)], ["block"], pipeline.Options(quarantine=str(tmp_path / "q.jsonl")))
    # haiku 4.5 input $1/MTok: 1000 tokens = $0.001 each
    got = {r["block"]: (r["requests"], r["cost"]) for r in rep.rows.to_dicts()}
    assert got == {"2026-10-01 09:00": (1, Decimal("0.001")), "2026-10-01 15:00": (2, Decimal("0.002")),
                   "2026-10-01 23:00": (1, Decimal("0.001"))}
    rep = pipeline.analyze([str(log)], ["block"], pipeline.Options(quarantine=str(tmp_path / "q.jsonl"),
                                                                   tz="Asia/Kolkata"))
    assert rep.rows["block"].to_list() == ["2026-10-01 14:30", "2026-10-01 20:30", "2026-10-02 04:30"]


@pytest.mark.parametrize("fmt", ["html", "markdown", "csv", "json"])
def test_block_in_every_format(tmp_path, fmt):
    out = tmp_path / f"r.{ {'markdown': 'md'}.get(fmt, fmt) }"
    r = run("report", TRANSCRIPTS, "--by", "block,model", "--format", fmt, "-o", out, "--quarantine", tmp_path / "q.jsonl")
    assert r.exit_code == 0, r.output
    assert "2026-11-24 09:00" in out.read_text()

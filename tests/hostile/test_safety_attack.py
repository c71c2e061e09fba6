"""A reviewer's attack on issue 13 §4-§7 after it landed: each test is a way through that worked
(an input overwritten, a key printed, a formula or invisible character passed) before its fix."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from analyzer import safe_text
from analyzer.cli import main

SONNET = "claude-sonnet-4-5"
KEY = "sk-ant-api03-" + "A" * 40 + "a1B2"
HEADER = "timestamp,model,input_tokens,output_tokens,request_id,workspace\n"


def run(*args, input=None):
    return CliRunner().invoke(main, [str(a) for a in args], input=input, catch_exceptions=False)


def _csv(v: str) -> str:
    return '"' + v.replace('"', '""') + '"'


def log(path: Path, rows: list[tuple[str, str, str]]) -> Path:
    """(model, request id, workspace) per request, 1000 input + 1000 output tokens each."""
    lines = [f"2026-10-08T00:00:{i:02d}Z,{_csv(m)},1000,1000,{_csv(r)},{_csv(w)}" for i, (m, r, w) in enumerate(rows)]
    path.write_text(HEADER + "\n".join(lines) + "\n", encoding="utf-8", newline="")
    return path


def cli(*args, stdin=None, cwd=None):
    """The installed command in a real process: `-` must be a real file descriptor 0."""
    return subprocess.run([sys.executable, "-m", "analyzer", *map(str, args)], stdin=stdin, cwd=cwd,
                          capture_output=True, text=True, timeout=120)


# ---------------------------------------------------------------------------------------------------
# §4 An output onto the log read from standard input


@pytest.mark.parametrize("target", ["v.csv", "/dev/stdin", "/dev/fd/0"])
def test_an_output_onto_the_file_behind_stdin_is_refused(tmp_path, target):
    v = log(tmp_path / "v.csv", [(SONNET, "r1", "w")])
    before = v.read_bytes()
    with open(v, "rb") as stdin:
        r = cli("report", "-", "-o", target, "--format", "csv", "-q", stdin=stdin, cwd=tmp_path)
    assert r.returncode == 2, r.stderr
    assert r.stderr.startswith("llm-cost: error: -o ") and "standard input" in r.stderr, r.stderr
    assert v.read_bytes() == before


def test_a_quarantine_file_onto_stdin_is_refused(tmp_path):
    v = tmp_path / "v.csv"
    v.write_text(HEADER + "not a time,x,1,1,r1,w\n")
    before = v.read_bytes()
    with open(v, "rb") as stdin:
        r = cli("report", "-", "--quarantine", "v.csv", "-q", stdin=stdin, cwd=tmp_path)
    assert r.returncode == 2 and "--quarantine v.csv" in r.stderr, r.stderr
    assert v.read_bytes() == before


def test_stdin_from_a_terminal_or_pipe_does_not_block_stdout(tmp_path):
    v = log(tmp_path / "v.csv", [(SONNET, "r1", "w")])
    with open(v, "rb") as stdin:
        r = cli("report", "-", "-o", "/dev/stdout", "--format", "csv", "-q", stdin=stdin, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("model,requests,")

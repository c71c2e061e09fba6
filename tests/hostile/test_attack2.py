"""Attacks on main after the price-data, audit and safety merges (issue 13): each test is a way
through that worked before its fix."""

from __future__ import annotations

import shutil

import pytest
from click.testing import CliRunner

from analyzer.cli import main

KEY = "sk-ant-api03-" + "A" * 40 + "a1B2"


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


# An overlay and a quarantine file whose names hold a key (a key pasted into a file name): the price
# book's overlay list and the accounting's quarantine path are file names, masked like the notes.
@pytest.mark.parametrize("command", [
    ["report", "fixtures/sample", "--format", "json"],
    ["report", "fixtures/sample", "--format", "markdown"],
    ["report", "fixtures/sample", "--format", "html"],
    ["whatif", "fixtures/sample", "--batch", "--format", "json"],
    ["check", "fixtures/sample", "--format", "json"],
    ["audit", "fixtures/audit/logs.csv", "--invoice", "fixtures/audit/cost_report.json"],
    ["audit", "fixtures/audit/logs.csv", "--invoice", "fixtures/audit/cost_report.json", "--format", "json"],
    ["audit", "fixtures/audit/logs.csv", "--invoice", "fixtures/audit/cost_report.json", "--format", "markdown"],
])
def test_a_key_in_an_overlay_or_quarantine_file_name_is_masked(tmp_path, command):
    overlay = tmp_path / f"contract-{KEY}.toml"
    shutil.copy("fixtures/prices/negotiated.toml", overlay)
    r = run(*command, "--prices", overlay, "--quarantine", tmp_path / f"q-{KEY}.jsonl")
    assert r.exit_code in (0, 1), r.output
    assert "A" * 20 not in r.output, r.output
    # The file is still named, masked (JSON writes the ellipsis as \u2026, HTML as an entity).
    assert "a1B2.toml" in r.output or command[0] == "check", r.output

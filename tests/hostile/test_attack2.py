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


# Bedrock names Claude Instant and Claude 2 by their version suffix alone (AWS model ids
# anthropic.claude-instant-v1, anthropic.claude-v2 = Claude 2.0, anthropic.claude-v2:1 = Claude 2.1):
# stripping `-vN:M` as for later models left `claude`, unknown, and the rows unpriced.
@pytest.mark.parametrize("raw, model", [
    ("anthropic.claude-instant-v1", "claude-instant-1.2"),
    ("anthropic.claude-v2", "claude-2.0"),
    ("anthropic.claude-v2:1", "claude-2.1"),
    ("us.anthropic.claude-v2:1", "claude-2.1"),
    ("arn:aws:bedrock:us-east-1::foundation-model/anthropic.claude-v2:1", "claude-2.1"),
    ("anthropic.claude-3-haiku-20240307-v1:0", "claude-3-haiku-20240307"),  # later models: suffix stripped
])
def test_bedrock_ids_of_claude_instant_and_claude_2_resolve(raw, model):
    from analyzer.models import Resolver
    from analyzer.pricebook import load_price_book

    assert Resolver(load_price_book()).resolve(raw)[0] == model


def test_a_bedrock_claude_2_1_row_is_priced_by_hand(tmp_path):
    # Claude 2.1: input $8, output $24 per MTok; 1,000,000 input + 500,000 output = 8 + 12 = $20.
    p = tmp_path / "log.csv"
    p.write_text("request_id,timestamp,model,input_tokens,output_tokens\n"
                 "r1,2024-03-01T00:00:00Z,anthropic.claude-v2:1,1000000,500000\n")
    out = tmp_path / "rows.csv"
    r = run("price", p, "-o", out, "--quarantine", tmp_path / "q.jsonl")
    assert r.exit_code == 0, r.output
    import csv
    row = next(csv.DictReader(out.open()))
    assert (row["model"], row["cost"]) == ("claude-2.1", "20.000000000000")

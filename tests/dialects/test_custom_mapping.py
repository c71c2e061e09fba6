"""`--map mapping.toml`: a home-grown log read with a user's mapping (the shipped dialects' format)."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal

import pytest
from click.testing import CliRunner

from analyzer import Options, analyze
from analyzer.cli import main

from .cloud_helpers import FIXTURES, M, priced, quarantine_lines, report

DIR = FIXTURES / "custom-mapping"
MAPPING = DIR / "mapping.toml"
LOG = DIR / "homegrown.csv"
# prompt_total includes cached reads and cache writes (input_includes_cache = true).
COSTS = {
    "gw-0001": (500 * 3 + 1500 * Decimal("3.75") + 10000 * Decimal("0.3") + 400 * 15) / M + 2 * Decimal(10) / 1000,
    "gw-0002": Decimal("0.5") * (1000 * 1 + 4000 * 2 + 300 * 5) / M,  # "batch-api" -> batch
    "gw-0003": (800 * 5 + 90 * 25) / M,
}


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def test_mapped_log_total_is_hand_computed(tmp_path):
    rep = report([LOG], tmp_path, mapping=str(MAPPING))
    assert rep.totals["cost"] == sum(COSTS.values())
    assert (rep.accounting.priced, rep.accounting.quarantined) == (3, 1)
    assert rep.dialects == {str(LOG): "acme-gateway"}


def test_per_request_conversion_of_cache_inclusive_input(tmp_path):
    rows = priced([LOG], tmp_path, mapping=str(MAPPING)).sort("request_id")
    assert rows.select("input_tokens", "cache_read_tokens", "cache_write_5m_tokens", "cache_write_1h_tokens",
                       "service_tier", "team").rows() == [
        (500, 10000, 1500, 0, "standard", "search"), (1000, 0, 0, 4000, "batch", "ml"), (800, 0, 0, 0, "standard", "ml")]
    assert dict(zip(rows["request_id"], rows["cost"])) == COSTS


def test_cache_larger_than_input_is_quarantined_with_line(tmp_path):
    report([LOG], tmp_path, mapping=str(MAPPING))
    assert quarantine_lines(tmp_path) == {("homegrown.csv", 5): "cache tokens exceed input tokens (input is cache-inclusive in this format)"}


def test_cli_report_with_map(tmp_path):
    r = run("report", "--map", MAPPING, LOG, "--by", "team", "--format", "json", "--quarantine", tmp_path / "q.jsonl")
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    assert Decimal(doc["totals"]["cost"]) == sum(COSTS.values())
    assert {row["team"]: Decimal(row["cost"]) for row in doc["rows"]} == {
        "search": COSTS["gw-0001"], "ml": COSTS["gw-0002"] + COSTS["gw-0003"]}


def test_cli_price_with_map(tmp_path):
    out = tmp_path / "priced.csv"
    r = run("price", "--map", MAPPING, LOG, "-o", out, "--quarantine", tmp_path / "q.jsonl")
    assert r.exit_code == 0, r.output
    assert out.read_text().count("\n") == 4  # header + 3 priced requests


def _mapping(tmp_path, text: str):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    return path


GOOD = MAPPING.read_text()


@pytest.mark.parametrize("text,key", [
    (GOOD.replace("output_tokens = ", "outptu_tokens = "), "outptu_tokens"),          # unknown canonical column
    (GOOD.replace("input_includes_cache = true", 'input_includes_cache = "yes"'), "input_includes_cache"),
    (GOOD.replace("[fields]", "[feilds]"), "feilds"),                                  # unknown table
    (GOOD.replace('model_raw = "llm"\n', ""), "model_raw"),                            # a required field missing
    (GOOD.replace('timestamp = "when"', "timestamp = 3"), "timestamp"),               # a path that is not text
    (GOOD.replace("[fields]", "[fields"), "bad.toml"),                                 # not TOML
    (GOOD.replace("[fields]", 'cut = { member = "content" }\n[fields]'), "cut"),     # a cut missing its keys
    (GOOD.replace("[fields]", 'cut = { member = "team", next = "x" }\n[fields]'), "cut"),  # a cut of a read member
    # (aliases match labels trimmed and lower-cased: two spellings of one word mapped apart, a blank word)
    (GOOD.replace('batch-api = "batch"', 'batch-api = "batch"\n"Batch-API " = "priority"'), "Batch-API"),
    (GOOD.replace('batch-api = "batch"', 'batch-api = "batch"\n"\\u200b" = "priority"'), "values.service_tier"),
])
def test_invalid_mapping_is_one_line_naming_file_and_key(tmp_path, text, key):
    r = run("report", "--map", _mapping(tmp_path, text), LOG, "--quarantine", tmp_path / "q.jsonl")
    assert r.exit_code == 2
    line = r.stderr.strip()
    assert "\n" not in line and "Traceback" not in r.output
    assert "bad.toml" in line and key in line


def test_map_and_dialect_together_is_a_usage_error(tmp_path):
    r = run("report", "--map", MAPPING, "--dialect", "canonical", LOG)
    assert r.exit_code == 2
    assert "--map and --dialect" in r.stderr


def test_a_file_the_mapping_does_not_describe_is_named(tmp_path):
    other = tmp_path / "other.csv"
    other.write_text("timestamp,model,input_tokens,output_tokens\n2026-11-24T00:00:00Z,claude-haiku-4-5,1,1\n")
    r = run("report", "--map", MAPPING, other, "--quarantine", tmp_path / "q.jsonl")
    assert r.exit_code == 2
    assert "other.csv" in r.stderr and "prompt_total" in r.stderr


def test_missing_mapping_file(tmp_path):
    r = run("report", "--map", tmp_path / "nope.toml", LOG)
    assert r.exit_code == 2
    assert "nope.toml" in r.stderr


def test_a_path_read_both_as_value_and_as_parent_is_a_mapping_error(tmp_path):
    from click.testing import CliRunner

    from analyzer.cli import main

    mapping = tmp_path / "m.toml"
    mapping.write_text('name = "mine"\nsignature = ["t"]\n[fields]\ntimestamp = "t"\nmodel_raw = "m"\n'
                       'input_tokens = "u.in"\noutput_tokens = "u"\n')
    log = tmp_path / "log.jsonl"
    log.write_text('{"t": "2026-10-01T00:00:00Z", "m": "claude-sonnet-4-5", "u": {"in": 1}}\n')
    r = CliRunner().invoke(main, ["report", str(log), "--map", str(mapping), "--quarantine", str(tmp_path / "q")])
    assert r.exit_code == 2
    assert "mapping 'mine'" in r.stderr and "read as a value" in r.stderr and len(r.stderr.strip().splitlines()) == 1


def test_records_without_time_in_a_set_of_files_are_each_dated_by_their_own_file(tmp_path, monkeypatch):
    """A mapping reading many files in one scan (batch_files) whose records carry no time (file_time):
    each record gets its own file's modification time, however the set is split into scans."""
    import os

    from analyzer import pipeline, sources

    (tmp_path / "m.toml").write_text(
        'name = "untimed"\nsignature = ["model", "usage.input_tokens"]\nfile_time = true\nbatch_files = true\n'
        '[fields]\nmodel_raw = "model"\nrequest_id = "id"\ninput_tokens = "usage.input_tokens"\n'
        'output_tokens = "usage.output_tokens"\n')
    paths = []
    for i, month in enumerate(["2025-07-15", "2025-07-20", "2025-09-15", "2025-09-20"]):
        p = tmp_path / f"f{i}.jsonl"
        p.write_text("".join(f'{{"id":"r{i}{k}","model":"claude-sonnet-4-20250514","usage":{{"input_tokens":1000,'
                             f'"output_tokens":10}}}}\n' for k in range(2)))
        when = dt.datetime.fromisoformat(month).replace(tzinfo=dt.UTC).timestamp()
        os.utime(p, (when, when))
        paths.append(str(p))

    def months():
        rep = analyze(paths, ["month"], Options(mapping=str(tmp_path / "m.toml"), quarantine=str(tmp_path / "q.jsonl")))
        assert any("each dated from its file's modification time" in n for n in rep.notes)
        return rep.rows.select("month", "requests").rows()

    assert months() == [("2025-07", 4), ("2025-09", 4)]
    monkeypatch.setattr(sources, "SHARD_BYTES", 1)
    monkeypatch.setattr(sources, "concurrent_scans", lambda: 3)
    monkeypatch.setattr(pipeline, "concurrent_scans", lambda: 3)
    assert months() == [("2025-07", 4), ("2025-09", 4)]

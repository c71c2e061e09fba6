"""A log's dimension never shadows a built-in `--by` key (schema.dimension_name).

A format that kept a column named `provider` under that name showed it as the report's provider
(or broke the report, for `month`). A mapping that declares such a dimension is refused; a column or
record key of that name found in a log is read as `log_<name>`, and the report says so.
"""

from __future__ import annotations

import json

import polars as pl
import pytest

from analyzer import Options, analyze, schema
from analyzer.cli import main
from analyzer.dialects import canonical

from .conftest import ROOT, write_frame

# Built-in keys the canonical dialect reads as its own fields (a `platform` column *is* the platform).
FIELD_KEYS = [k for k in schema.BUILTIN_KEYS if k in canonical.FIELDS]
# Built-in keys a log column of the same name would otherwise have shadowed.
OTHER_KEYS = [k for k in schema.BUILTIN_KEYS if k not in canonical.FIELDS]
# What each built-in key says of the request below (Sonnet 4.5, 2026-10-01 10:15 UTC, a Wednesday).
BUILTIN = {"hour": "2026-10-01 10:00", "day": "2026-10-01", "week": "2026-09-28", "month": "2026-10", "quarter": "2026-Q4",
           "year": "2026", "block": "2026-10-01 10:00",
           "source": "canonical", "family": "claude-sonnet-4-5", "provider": "anthropic",
           "discount_type": "standard", "context_tier": "base", "price_period": "2025-09-29"}


def test_every_builtin_key_is_covered():
    assert sorted(FIELD_KEYS + OTHER_KEYS) == sorted(schema.BUILTIN_KEYS)
    assert set(OTHER_KEYS) == {*BUILTIN, "source_file", "component"}
    assert set(FIELD_KEYS) == {"model", "model_raw", "platform", "service_tier", "speed", "inference_geo",
                               "endpoint_scope"}


@pytest.mark.parametrize("key", schema.BUILTIN_KEYS)
def test_a_mapping_dimension_named_like_a_builtin_key_is_refused(key, tmp_path):
    mapping = (ROOT / "fixtures/dialects/custom-mapping/mapping.toml").read_text()
    assert '\nteam = "team"' in mapping
    bad = tmp_path / "m.toml"
    bad.write_text(mapping.replace('\nteam = "team"', f'\n{key} = "team"'))
    r = _cli("report", "--map", bad, ROOT / "fixtures/dialects/custom-mapping/homegrown.csv",
             "--quarantine", tmp_path / "q.jsonl")
    assert r.exit_code == 2
    assert r.output.strip().splitlines() == [
        f"llm-cost: error: {bad}: dimensions.{key}: named like a canonical column, a built-in --by key or a "
        f"report column, which it would shadow; name it otherwise (e.g. 'log_{key}')"]


@pytest.mark.parametrize("key", OTHER_KEYS)
def test_a_log_column_named_like_a_builtin_key_is_renamed_with_a_note(key, tmp_path):
    log = tmp_path / "log.csv"
    pl.DataFrame({"timestamp": ["2026-10-01T10:15:00Z"], "model": ["claude-sonnet-4-5"], "input_tokens": [1000],
                  "output_tokens": [100], key: ["mine"]}).write_csv(log)
    report = analyze([str(log)], [key, f"log_{key}"], Options(quarantine=str(tmp_path / "q.jsonl")))
    rows = report.rows
    assert rows[f"log_{key}"].to_list() == ["mine"] * rows.height
    expected = {"source_file": str(log), "component": None}.get(key, BUILTIN.get(key))
    if key == "component":
        assert rows["component"].to_list() == ["input", "output"]  # the built-in one row per token class
    else:
        assert rows[key].to_list() == [expected]
    assert f"{log}: dimensions renamed so as not to shadow a built-in --by key or report column: {key} -> log_{key}" \
        in report.notes
    # 1,000 x $3/MTok + 100 x $15/MTok = $0.0045, whatever the column was called
    assert str(report.totals["cost"]) == "0.004500000000"


@pytest.mark.parametrize("key", FIELD_KEYS)
def test_a_column_named_like_a_canonical_field_is_that_field(key):
    # Not a collision: the canonical dialect reads it as the key itself (documented in docs/formats.md).
    assert key in canonical.FIELDS and schema.dimension_name(key) == f"log_{key}"


def test_price_output_reads_back_without_renaming(tmp_path):
    # `llm-cost price` writes provider, family, ... beside the request: derived again when read back,
    # not the log's own columns, so no log_provider and no note.
    out = tmp_path / "priced.csv"
    assert _cli("price", ROOT / "fixtures/sample/october.csv", "-o", out, "--quarantine", tmp_path / "q.jsonl") \
        .exit_code == 0
    report = analyze([str(out)], ["provider"], Options(quarantine=str(tmp_path / "q2.jsonl")))
    assert report.rows["provider"].to_list() == ["anthropic"]
    assert not any("renamed" in n for n in report.notes)
    assert "log_provider" not in report.rows.columns


def test_an_envelope_key_named_like_a_builtin_key_is_renamed(tmp_path):
    # Messages API envelopes: keys beside the response become dimensions (workspace, user, ...).
    line = json.loads((ROOT / "fixtures/dialects/anthropic-messages/envelope.jsonl").read_text().splitlines()[0])
    log = tmp_path / "env.jsonl"
    log.write_text(json.dumps({**line, "provider": "openrouter", "month": "last"}) + "\n")
    report = analyze([str(log)], ["provider", "log_provider", "month", "log_month"],
                     Options(quarantine=str(tmp_path / "q.jsonl")))
    assert report.rows.select("provider", "log_provider", "month", "log_month").rows() == [
        ("anthropic", "openrouter", "2026-10", "last")]
    assert any("provider -> log_provider" in n and "month -> log_month" in n for n in report.notes)


def test_bedrock_request_metadata_named_like_a_builtin_key_is_prefixed(tmp_path):
    line = json.loads((ROOT / "fixtures/dialects/bedrock-invocations/invocations.jsonl").read_text().splitlines()[0])
    log = tmp_path / "bedrock.jsonl"
    log.write_text(json.dumps({**line, "requestMetadata": {"provider": "team-a"}}) + "\n")
    report = analyze([str(log)], ["provider", "meta_provider"], Options(quarantine=str(tmp_path / "q.jsonl")))
    assert report.rows.select("provider", "meta_provider").rows() == [("anthropic", "team-a")]


def _cli(*args):
    from click.testing import CliRunner

    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


@pytest.mark.parametrize("suffix", [".jsonl", ".parquet"])
def test_renamed_in_every_container(suffix, tmp_path):
    df = pl.DataFrame({"timestamp": ["2026-10-01T10:15:00Z"], "model": ["claude-sonnet-4-5"], "input_tokens": [1000],
                       "output_tokens": [100], "month": ["mine"]})
    log = write_frame(df, tmp_path / f"log{suffix}")
    report = analyze([str(log)], ["month", "log_month"], Options(quarantine=str(tmp_path / "q.jsonl")))
    assert report.rows.select("month", "log_month").rows() == [("2026-10", "mine")]


def test_a_renamed_column_does_not_collide_with_one_already_named_so(tmp_path):
    # `provider` beside a real `log_provider` column: Polars refused the duplicate name ("duplicate
    # output name"), and in a JSON envelope one value silently replaced the other.
    csv = tmp_path / "both.csv"
    csv.write_text("timestamp,model,input_tokens,output_tokens,provider,log_provider\n"
                   "2026-10-01T00:00:00Z,claude-sonnet-4-5,1000,100,a,b\n")
    line = json.loads((ROOT / "fixtures/dialects/anthropic-messages/envelope.jsonl").read_text().splitlines()[0])
    env = tmp_path / "both.jsonl"
    env.write_text(json.dumps({**line, "provider": "a", "log_provider": "b"}) + "\n")
    for log in (csv, env):
        report = analyze([str(log)], ["provider", "log_provider", "log_log_provider"],
                         Options(quarantine=str(tmp_path / "q.jsonl")))
        assert report.rows.select("provider", "log_provider", "log_log_provider").rows() == [("anthropic", "b", "a")]
        assert f"{log}: dimensions renamed so as not to shadow a built-in --by key or report column: " \
               "provider -> log_log_provider" in report.notes


def test_dimension_names_are_unique_and_keep_free_names():
    assert schema.dimension_names(["team", "month", "log_month", "cost"]) == {
        "team": "team", "month": "log_log_month", "log_month": "log_month", "cost": "log_cost"}

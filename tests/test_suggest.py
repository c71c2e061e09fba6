"""Help for home-grown logs: the error names --map, and `formats --suggest` writes a mapping that reads
the log (analyzer/dialects/_suggest.py)."""

from __future__ import annotations

import json
import tomllib
from decimal import Decimal

from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from analyzer.cli import main
from analyzer.dialects import mapped
from analyzer.dialects._suggest import suggest
from analyzer.sources import open_source

from .conftest import ROOT

HOMEGROWN = ROOT / "fixtures" / "dialects" / "custom-mapping"


def run(*args, input=None):
    return CliRunner().invoke(main, [str(a) for a in args], input=input, catch_exceptions=False)


def home_csv(tmp_path):
    p = tmp_path / "usage.csv"
    p.write_text("date,model_name,prompt_tokens,completion_tokens\n"
                 "2026-10-01,claude-sonnet-4-5,1000,100\n"
                 "2026-10-02,claude-haiku-4-5,2000,200\n")
    return p


def test_unknown_csv_suggests_map_not_a_far_dialect(tmp_path):
    r = run("report", home_csv(tmp_path))
    assert r.exit_code == 2
    line = r.stderr.strip()
    assert len(line.splitlines()) == 1
    assert "--dialect" not in line and "litellm" not in line
    assert f"llm-cost formats --suggest {tmp_path / 'usage.csv'} -o mapping.toml" in line and "--map" in line


def test_a_near_miss_still_names_the_format(tmp_path):
    p = tmp_path / "near.csv"
    p.write_text("timestamp,model,input_tokens\n2026-10-01T00:00:00Z,claude-haiku-4-5,1\n")
    r = run("report", p)
    assert r.exit_code == 2 and "Closest format: 'canonical', missing output_tokens." in r.stderr


def test_suggested_mapping_works_unedited(tmp_path):
    log = home_csv(tmp_path)
    out = tmp_path / "mapping.toml"
    r = run("formats", "--suggest", log, "-o", out)
    assert r.exit_code == 0, r.output
    assert f"llm-cost report {log} --map {out}" in r.stderr and "not guessed" not in r.stderr
    doc = tomllib.loads(out.read_text())
    assert doc["fields"] == {"timestamp": "date", "model_raw": "model_name", "input_tokens": "prompt_tokens",
                             "output_tokens": "completion_tokens"}
    r = run("report", log, "--map", out, "--format", "json", "--quarantine", tmp_path / "q.jsonl")
    assert r.exit_code == 0, r.output
    d = json.loads(r.stdout)
    # sonnet 4.5: 1000*3/1e6 + 100*15/1e6 = 0.0045; haiku 4.5: 2000*1/1e6 + 200*5/1e6 = 0.003
    assert Decimal(d["totals"]["cost"]) == Decimal("0.0075")
    assert d["accounting"]["priced"] == 2 and d["accounting"]["quarantined"] == 0


def test_suggestion_for_the_homegrown_fixture_matches_the_hand_written_mapping():
    got = tomllib.loads(suggest(open_source(str(HOMEGROWN / "homegrown.csv"))).text)
    want = tomllib.loads((HOMEGROWN / "mapping.toml").read_text())
    assert got["fields"] == want["fields"]
    assert got["input_includes_cache"] is True
    mapped.parse_mapping(got, "suggested")  # a valid mapping as it stands


def test_nested_json_paths_and_dimensions(tmp_path):
    p = tmp_path / "gw.jsonl"
    rows = [{"ts": "2026-10-01T10:00:00Z", "user": "bob",
             "response": {"id": "r1", "model": "claude-haiku-4-5", "usage": {"promptTokens": 2000, "completionTokens": 200}}},
            {"ts": "2026-10-01T11:00:00Z", "user": "amy",
             "response": {"id": "r2", "model": "claude-haiku-4-5", "usage": {"promptTokens": 1000, "completionTokens": 100}}}]
    p.write_text("".join(json.dumps(r) + "\n" for r in rows))
    s = suggest(open_source(str(p)))
    doc = tomllib.loads(s.text)
    assert doc["fields"] == {"timestamp": "ts", "model_raw": "response.model", "input_tokens": "response.usage.promptTokens",
                             "output_tokens": "response.usage.completionTokens", "request_id": "response.id"}
    assert '# user = "user"' in s.text  # a dimension to uncomment
    m = tmp_path / "m.toml"
    m.write_text(s.text.replace('# user = "user"', 'user = "user"'))
    r = run("report", p, "--map", m, "--by", "user", "--format", "json", "--quarantine", tmp_path / "q.jsonl")
    d = json.loads(r.stdout)
    # haiku 4.5: bob 2000*1/1e6 + 200*5/1e6 = 0.003; amy 0.0015
    assert {row["user"]: Decimal(row["cost"]) for row in d["rows"]} == {"bob": Decimal("0.003"), "amy": Decimal("0.0015")}


def test_nothing_guessable_says_what_to_fill_in(tmp_path):
    p = tmp_path / "weird.csv"
    p.write_text("colour,size\nred,3\n")
    out = tmp_path / "m.toml"
    r = run("formats", "--suggest", p, "-o", out)
    assert r.exit_code == 0
    assert "not guessed (required; edit the mapping): timestamp, model_raw, input_tokens, output_tokens" in r.stderr
    assert '# timestamp = "?"' in out.read_text()
    r = run("report", p, "--map", out)
    assert r.exit_code == 2 and "fields.model_raw is required" in r.stderr


def test_example_values_mask_credentials(tmp_path):
    p = tmp_path / "k.csv"
    key = "sk-ant-api03-" + "A" * 80 + "a1B2"
    p.write_text(f"time,model,input_tokens,output_tokens,api_key\n2026-10-01,claude-haiku-4-5,1,1,{key}\n")
    r = run("formats", "--suggest", p)
    assert key not in r.stdout and "api_key" in r.stdout


def test_o_without_suggest_is_refused():
    r = run("formats", "-o", "x.toml")
    assert r.exit_code == 2 and "-o: applies to --suggest FILE" in r.stderr


_key = st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=12)


@settings(max_examples=40, deadline=None)
@given(record=st.dictionaries(_key, st.one_of(st.integers(0, 10**6), _key, st.none()), min_size=1, max_size=6))
def test_any_columns_give_valid_toml(tmp_path_factory, record):
    p = tmp_path_factory.mktemp("s") / "any.jsonl"
    p.write_text(json.dumps(record) + "\n")
    src = open_source(str(p))
    if not src.columns:
        return
    tomllib.loads(suggest(src).text)  # whatever the names, the file parses

"""The robust reading reads every line as the fast one does (dialects/_json_text.py).

One malformed line sends a JSON Lines run to the robust reading (every value read by its own JSON
path, which keeps a key's last value where Polars' decoder keeps the first). A file with and without
an extra broken line must give the same rows, apart from that line's quarantine: here each record of
every JSON Lines format names each of its keys twice, the second time with another value (a model
that is not priced, a count 7 higher, a time that does not parse, another object), so that a
reading taking any second value differs."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from analyzer.cli import main
from analyzer.dialects._json_text import first_keys_only

FIXTURES = Path(__file__).parent.parent / "fixtures" / "dialects"
BROKEN = '{"type": "assistant", "x": }'


def _other(value):
    """A different value of the same kind (an object's every value other; a list emptied)."""
    if isinstance(value, bool):
        return not value
    if isinstance(value, int):
        return value + 7
    if isinstance(value, str):
        return value + "-2"
    if isinstance(value, dict):
        return {k: _other(v) for k, v in value.items()}
    return [] if isinstance(value, list) else "other"


def _twice(value, at_end: bool) -> str:
    """`value` as JSON text in which every object names each of its keys twice: first as it is, then
    another value, right after it or (`at_end`) after all its keys."""
    if isinstance(value, list):
        return "[" + ", ".join(_twice(v, at_end) for v in value) + "]"
    if not isinstance(value, dict):
        return json.dumps(value)
    firsts = [f"{json.dumps(k)}: {_twice(v, at_end)}" for k, v in value.items()]
    seconds = [f"{json.dumps(k)}: {json.dumps(_other(v))}" for k, v in value.items()]
    pairs = firsts + seconds if at_end else [p for pair in zip(firsts, seconds) for p in pair]
    return "{" + ", ".join(pairs) + "}"


# A canonical log names a read key twice only where the search for such keys (canonical._late_keys)
# does not look: past an object of two levels (`meta`, last, so that every second value is past it).
CANONICAL = [{"timestamp": "2026-10-08T00:00:00Z", "model": "claude-sonnet-4-5", "input_tokens": 1000,
              "output_tokens": 5, "request_id": f"r{i}", "team": "a", "meta": {"a": {"b": 1}}} for i in range(3)]

LOGS = {  # format -> (the file's place under the logs' root, its records)
    "canonical": ("c.jsonl", CANONICAL),
    "anthropic-messages": ("m.jsonl", FIXTURES / "anthropic-messages" / "responses.jsonl"),
    "anthropic-messages envelope": ("m.jsonl", FIXTURES / "anthropic-messages" / "envelope.jsonl"),
    "anthropic-messages stream": ("m.jsonl", FIXTURES / "anthropic-messages" / "stream.jsonl"),
    "bedrock-invocations": ("b.jsonl", FIXTURES / "bedrock-invocations" / "invocations.jsonl"),
    "openai": ("o.jsonl", FIXTURES / "openai" / "openai_batch_output.jsonl"),
    "claude-code": ("projects/p/s.jsonl",
                    next((FIXTURES / "claude-code" / "projects").glob("*/*.jsonl"))),
    "claude-code-stream": ("s.jsonl", FIXTURES / "claude-code-stream" / "stream.jsonl"),
    # Pages whose hook reads each usage row from the page (the robust reading's paths then read the
    # row's own text, not the page's: a page read robustly was quarantined whole, every field missing)
    # (OpenAI's usage pages are left out: with every key named twice the page is not recognised, as
    # the sample that detects a format is read by Python's json, which keeps a key's last value)
    "anthropic-usage-report": ("r.jsonl", FIXTURES / "anthropic-usage-report" / "admin_usage_report.json"),
    "litellm-spendlogs": ("l.jsonl", FIXTURES / "litellm-spendlogs" / "spend_logs_ui.jsonl"),
    "anthropic-batch": ("a.jsonl", FIXTURES / "anthropic-batch" / "results.jsonl"),
    "vertex-logging": ("v.jsonl", FIXTURES / "vertex-logging" / "requests.jsonl"),
    "otel-genai": ("g.jsonl", FIXTURES / "otel-genai" / "spans.jsonl"),
}


def _records(source) -> list:
    """The records of a fixture (not its broken lines: a clean file is read on the fast path)."""
    if isinstance(source, list):
        return source
    if source.suffix == ".json":  # (one page: a line of its own)
        return [json.loads(source.read_text())]
    records = []
    for line in source.read_text().splitlines():
        try:
            records.append(json.loads(line))
        except ValueError:
            continue
    return records


def _price(root: Path, name: str, lines: list[str]):
    """`llm-cost price` of one file: its exit code and output, and its rows (null for an error)."""
    (root / name).parent.mkdir(parents=True)
    (root / name).write_text("".join(x + "\n" for x in lines))
    out, q = root.parent / f"{root.name}.jsonl", root.parent / f"{root.name}-q.jsonl"
    r = CliRunner().invoke(main, ["price", str(root), "-o", str(out), "--quarantine", str(q), "-q",
                                  "--batch-time", "2026-10-08T00:00:00Z"], catch_exceptions=False)
    # (`meta`, a dimension holding an object, is its text as written on the fast path, a JSON path's
    # rendering of it on the robust one, with or without a key named twice: not compared)
    rows = pl.read_ndjson(out).drop("source_file", "meta", strict=False) if r.exit_code == 0 else None
    reasons = [json.loads(x)["reason"] for x in q.read_text().splitlines()] if q.exists() else []
    return r.exit_code, rows, reasons


# (A canonical record naming a key twice next to each other is refused on either reading: test_attack3.)
@pytest.mark.parametrize("log,at_end", [(log, at_end) for log in sorted(LOGS) for at_end in (False, True)
                                        if at_end or log != "canonical"])
def test_a_file_with_a_broken_line_reads_every_other_line_alike(tmp_path, log, at_end):
    name, source = LOGS[log]
    lines = [_twice(rec, at_end) for rec in _records(source)]
    code, rows, reasons = _price(tmp_path / "clean", name, lines)
    broken_code, broken_rows, broken_reasons = _price(tmp_path / "broken", name, [*lines, BROKEN])
    assert code == broken_code == 0
    assert rows.height > 0 and broken_reasons == [*reasons, "not a JSON object (unparsable line)"]
    assert rows.equals(broken_rows), (rows.to_dicts(), broken_rows.to_dicts())


# ------------------------------------------------------------------------------------------------
# A key named again renamed: a JSON path then reads what Python's json reads with the first value of
# each key kept, and what Polars' decoder reads

def _first_kept(pairs):
    out = {}
    for k, v in pairs:
        out.setdefault(k, v)
    return out


def _without_renamed(value):
    """A value as read from a text with keys named again renamed `""`, without those."""
    if isinstance(value, dict):
        return {k: _without_renamed(v) for k, v in value.items() if k != ""}
    return [_without_renamed(v) for v in value] if isinstance(value, list) else value


def _read(text: str, path: tuple[str, ...]):
    """The value at `path` as the robust reading reads it (a JSON path's text, or null)."""
    json_path = "$." + ".".join(path)
    return pl.select(pl.coalesce(first_keys_only(pl.lit(text)), pl.lit(text)).str.json_path_match(json_path)).item()


def _lookup(record, path):
    for key in path:
        if not isinstance(record, dict) or key not in record:
            return None
        record = record[key]
    return record


KEYS = st.sampled_from(["a", "b", "mod\\u0065l", "model"])  # (as written: `mod\u0065l` is model)
SCALARS = st.one_of(st.integers(-10**6, 10**6), st.booleans(), st.none(),
                    st.text(st.sampled_from('ab{}[]:,"\\ '), max_size=6).map(json.dumps))
SPACES = st.sampled_from(["", " ", "\t", " \r\n "])


def _scalar_text(v) -> str:
    return v if isinstance(v, str) else json.dumps(v)


VALUES = st.recursive(
    SCALARS.map(_scalar_text),
    lambda inner: st.one_of(
        st.lists(inner, max_size=3).map(lambda xs: "[" + ",".join(xs) + "]"),
        st.lists(st.tuples(KEYS, SPACES, inner), max_size=4).map(
            lambda ps: "{" + ",".join(f'"{k}"{s}:{s}{v}' for k, s, v in ps) + "}")),
    max_leaves=12)
RECORDS = st.lists(st.tuples(KEYS, SPACES, VALUES), min_size=1, max_size=5).map(
    lambda ps: "{" + ", ".join(f'"{k}"{s}:{s}{v}' for k, s, v in ps) + "}")
PATHS = st.lists(st.sampled_from(["a", "b", "model"]), min_size=1, max_size=3).map(tuple)


@settings(max_examples=300, deadline=None)
@given(RECORDS, PATHS)
def test_a_path_reads_the_value_a_first_keeping_parser_reads(text, path):
    expected = _lookup(json.loads(text, object_pairs_hook=_first_kept), path)
    got = _read(text, path)
    if isinstance(expected, str) or got is None:  # (a JSON path gives a string's value as it is)
        assert got == expected
    else:
        assert _without_renamed(json.loads(got)) == expected


# The decoder of the fast path itself: a record whose values at the paths are strings reads the same.
STRINGS = st.text(st.sampled_from('ab{}[]:,"\\ é'), max_size=5).map(json.dumps)
FLAT_OBJECT = st.lists(st.tuples(KEYS, SPACES, STRINGS), min_size=1, max_size=4).map(
    lambda ps: "{" + ",".join(f'"{k}"{s}:{s}{v}' for k, s, v in ps) + "}")
TWO_LEVELS = st.lists(st.tuples(KEYS, SPACES, st.one_of(STRINGS, FLAT_OBJECT)), min_size=1, max_size=5).map(
    lambda ps: "{" + ", ".join(f'"{k}"{s}:{s}{v}' for k, s, v in ps) + "}")


@settings(max_examples=200, deadline=None)
@given(TWO_LEVELS, st.sampled_from(["a", "b", "model"]), st.sampled_from(["a", "b", "model"]))
def test_the_first_value_is_the_decoders(text, outer, inner):
    decoded = json.loads(text, object_pairs_hook=_first_kept)
    if isinstance(decoded.get(outer), dict):
        dtype = pl.Struct({outer: pl.Struct({inner: pl.String})})
        path = (outer, inner)
    else:
        dtype, path = pl.Struct({outer: pl.String}), (outer,)
    if isinstance(_lookup(decoded, path), dict):
        return  # (an object where the decoder reads a string: that fails the fast pass)
    lines = pl.DataFrame({"line": [text]})
    fast = lines.select(pl.col("line").str.json_decode(dtype)).to_series().struct.unnest().to_dicts()[0]
    for key in path:
        fast = fast[key] if fast is not None else None
    assert _read(text, path) == fast

"""Attacks on the move to Polars 2.2 (commit cae2837): `str.find` counts characters there, so the
Claude Code content cut (mapped._cut) slices by characters; the CSV reader refuses some malformed
records 2.1 read.

Where the inputs come from: every line here is built by the tests (Claude Code transcript lines in
the shape of fixtures/dialects/claude-code, whose session file the end-to-end test rewrites; CSV
records in the shape of fixtures/sample/october.csv). The differential run of every fixture, the
real samples and the bench generators' outputs under Polars 2.1 + 04f42b9 against Polars 2.2 + this
code is not a test (two virtual environments): its result is in the branch's report.

Invariant (A): the cut never changes what is read: a line cut reads, as JSON, what the whole line
reads without its content, whatever characters the line holds before, inside and after the
content (non-ASCII of every width, combining marks, U+FFFD, U+2028); and a line whose content holds
none of the cut's markers is cut (non-ASCII text does not silently turn the cut off).
Invariant (B): a refused file's one line quotes the file, never text the reader made up.
"""

from __future__ import annotations

import ast
import importlib.metadata
import json
import re
import sys
import tomllib

import polars as pl
import pytest
from click.testing import CliRunner
from hypothesis import example, given, settings
from hypothesis import strategies as st

from analyzer import line_retry, price_requests
from analyzer.cli import main
from analyzer.dialects import mapped

from ..conftest import ROOT

SESSION = (ROOT / "fixtures" / "dialects" / "claude-code" / "projects" / "-home-dev-acme-billing"
           / "2ff46cd5-f4e7-4724-bb20-579dae7956ea.jsonl")

# Characters of every UTF-8 width and the ones that trip character counting: a combining mark, a
# 4-byte emoji and clef, the largest code point, U+FFFD (what a byte that is not UTF-8 is shown as),
# the line and paragraph separators (JSON allows them raw; Python's splitlines() does not), a BOM,
# NBSP, a ligature whose case folding changes its length.
_WIDE = ["é", "e\u0301", "→", "中", "😀", "𝄞", "\U0010ffff", "\ufffd", "\u2028", "\u2029", "\ufeff", "\u00a0", "ﬁ",
         "a", " "]
_wide_text = st.lists(st.sampled_from(_WIDE), max_size=12).map("".join)
# The same, and the cut's markers and JSON's structural characters.
_MARKERS = ['"content":[', '],"stop_reason":', "]", "[", "}", "{", ",", '"', "\\", ":"]
_any_text = st.lists(st.sampled_from(_WIDE + _MARKERS), max_size=12).map("".join)


def _json_value(text):
    return st.recursive(st.none() | st.integers(0, 9) | text,
                        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(text, inner, max_size=3),
                        max_leaves=6)


def _line(cwd: str, branch: str, blocks: list, after: object, ascii_only: bool) -> str:
    message = {"id": "msg_1", "type": "message", "role": "assistant", "model": "claude-opus-4-6", "content": blocks,
               "stop_reason": "end_turn", "stop_sequence": None,
               "usage": {"input_tokens": 3, "output_tokens": 5, "cache_read_input_tokens": 7}}
    record = {"parentUuid": "p", "isSidechain": False, "cwd": cwd, "gitBranch": branch, "message": message,
              "x": after, "requestId": "req_1", "type": "assistant", "timestamp": "2026-11-24T09:12:01.098Z"}
    return json.dumps(record, ensure_ascii=ascii_only, separators=(",", ":"))


def _cut(line: str) -> str:
    return pl.select(mapped._cut(pl.lit(line), "content", "stop_reason")).item()


def _without_content(line: str) -> dict:
    record = json.loads(line)
    record["message"].pop("content")
    return record


_blocks_of = lambda text: st.lists(st.one_of(  # noqa: E731
    st.fixed_dictionaries({"type": st.just("text"), "text": text}),
    st.fixed_dictionaries({"type": st.just("tool_use"), "id": st.just("toolu_1"), "input": _json_value(text)})),
    max_size=3)


# Blocks with no array or object nested in them: a `]` there would be followed by `}`, which leaves
# the line whole (see mapped._cut), whatever its characters.
_flat_blocks = st.lists(st.one_of(
    st.fixed_dictionaries({"type": st.just("text"), "text": _wide_text}),
    st.fixed_dictionaries({"type": st.just("tool_use"), "id": st.just("toolu_1"),
                           "input": st.dictionaries(_wide_text, _wide_text, max_size=3)})), max_size=3)


@settings(max_examples=300, deadline=None)
@example(cwd="/home/😀/e\u0301", branch="\u2028", blocks=[{"type": "text", "text": "中\ufffd"}], after=None,
         ascii_only=False)
@example(cwd="ﬁ" * 40, branch="", blocks=[{"type": "tool_use", "id": "toolu_1", "input": {"𝄞": "\U0010ffff"}}],
         after={"\u2029": "é"}, ascii_only=False)
@given(cwd=_wide_text, branch=_wide_text, blocks=_flat_blocks, after=st.none() | _wide_text | st.dictionaries(
       _wide_text, _wide_text, max_size=2), ascii_only=st.booleans())
def test_a_line_whose_content_holds_no_marker_is_cut_and_reads_the_same(cwd, branch, blocks, after, ascii_only):
    """Non-ASCII anywhere on the line (before the content in cwd and gitBranch, inside it, after it),
    written raw or escaped: the content holds none of the cut's markers and no nested array, so
    the line is cut, and
    the cut line reads as the whole line without its content. (Byte offsets where Polars 2.2 counts
    characters cut such a line inside a character, or at the wrong place.)"""
    line = _line(cwd, branch, blocks, after, ascii_only)
    cut = _cut(line)
    assert cut != line
    assert json.loads(cut) == _without_content(line)


@settings(max_examples=400, deadline=None)
@example(cwd="é", branch="", blocks=[{"type": "text", "text": '😀],"stop_reason":'}], after=None, ascii_only=False)
@example(cwd="", branch="\u2028", blocks=[{"type": "text", "text": '\\"content":[é'}], after=["]}"],
         ascii_only=False)
@given(cwd=_any_text, branch=_any_text, blocks=_blocks_of(_any_text), after=_json_value(_any_text),
       ascii_only=st.booleans())
def test_a_line_of_any_text_is_cut_into_the_same_reading_or_left_whole(cwd, branch, blocks, after, ascii_only):
    """The markers, brackets, quotes and backslashes mixed with non-ASCII anywhere on the line:
    the line is left whole, or its cut reads as the whole line without its content."""
    line = _line(cwd, branch, blocks, after, ascii_only)
    cut = _cut(line)
    if cut != line:
        assert json.loads(cut) == _without_content(line)


@settings(max_examples=60, deadline=None)
@given(lines=st.lists(st.tuples(_wide_text, _blocks_of(_any_text), st.booleans()), min_size=1, max_size=12),
       split=st.integers(0, 12))
def test_a_batch_in_several_chunks_cuts_each_line_as_alone(lines, split):
    """A column of many lines, held in two chunks (as pieces are concatenated), mixing ASCII and
    non-ASCII lines: each line is cut as it is alone (an offset counted in one chunk, or in bytes
    of another line, would cut its neighbour's text)."""
    texts = [_line(cwd, "main", blocks, None, raw) for cwd, blocks, raw in lines]
    k = min(split, len(texts))
    column = pl.concat([pl.Series("l", texts[:k], dtype=pl.String), pl.Series("l", texts[k:], dtype=pl.String)],
                       rechunk=False)
    got = pl.DataFrame({"l": column}).select(mapped._cut(pl.col("l"), "content", "stop_reason")).to_series()
    assert got.to_list() == [_cut(t) for t in texts]


def _priced(root, monkeypatch, cut: bool) -> tuple[list, dict]:
    with monkeypatch.context() as m:
        if not cut:
            m.setattr(mapped, "_cut", lambda line, member, next_: line)
        m.setattr(line_retry, "PIECE", 1 << 12)  # (pieces smaller than a line, where read by pieces)
        rows, acc = price_requests([str(root)])
    df = rows.lazy().collect().sort("request_id")
    assert acc.balanced
    return df.rows(), {k: v for k, v in vars(acc).items() if "file" not in k}


def test_a_tree_with_non_ascii_everywhere_prices_the_same_cut_or_whole(tmp_path, monkeypatch):
    """The fixture session rewritten with non-ASCII in cwd, text and tool input, one line of 9 MB of
    4-byte characters and U+2028 (larger than a reader's 8 MiB piece), one with a byte that is not UTF-8 before its content:
    the rows priced and the accounting are those of the same tree read with no cut at all."""
    proj = tmp_path / "projects" / "-home-dév-😀"
    proj.mkdir(parents=True)
    out = []
    for n, text in enumerate(SESSION.read_text().splitlines()):
        record = json.loads(text)
        if isinstance(record.get("cwd"), str):
            record["cwd"] += "/проект😀e\u0301"
        message = record.get("message")
        if isinstance(message, dict) and isinstance(message.get("content"), list):
            message["content"] = message["content"] + [
                {"type": "text", "text": "中\u2028\ufffd𝄞" * (700_000 if n == 3 else 5)},
                {"type": "tool_use", "id": "toolu_9", "name": "Edit", "input": {"é": "😀", "\u2029": "ﬁ"}}]
        out.append(json.dumps(record, ensure_ascii=False, separators=(",", ":")).encode())
    broken = [i for i, t in enumerate(out) if b'"content":[' in t and b'"usage"' in t][-1]
    out[broken] = out[broken].replace(b'"cwd":"', b'"cwd":"\xe9', 1)  # (Latin-1 é: not UTF-8)
    (proj / "s.jsonl").write_bytes(b"\n".join(out) + b"\n")
    whole = [t.decode("utf-8", "replace") for t in out]
    assert sum(_cut(t) != t for t in whole) >= 3  # (the cut is made: else this compares nothing)
    rows, acc = _priced(tmp_path, monkeypatch, cut=True)
    assert len(rows) == 2 and acc["quarantined"] == 1  # (3 requests, the last one's line broken)
    assert (rows, acc) == _priced(tmp_path, monkeypatch, cut=False)


def test_a_refused_csv_quotes_its_own_bytes_not_the_readers_mark(tmp_path):
    """A record with a stray quote right before a byte that is not UTF-8: Polars refuses the file
    (the quote opens a field that never closes properly), one line, exit 2. The reader had replaced
    the byte by a mark of its own (U+FFFD and 16 random hex digits, to tell it from a U+FFFD the
    file holds): the line quoted that mark, text the file does not hold and a different one at
    every run. It shows U+FFFD, as everywhere else a byte that is not UTF-8 is shown."""
    text = (ROOT / "fixtures" / "sample" / "october.csv").read_bytes()
    lines = text.split(b"\n")
    lines[3] = lines[3].replace(b",research,", b',"\xe9research,', 1)
    log = tmp_path / "log.csv"
    log.write_bytes(b"\n".join(lines))
    seen = set()
    for _ in range(2):
        result = CliRunner().invoke(main, ["report", str(log), "--quarantine", str(tmp_path / "q.jsonl")])
        assert result.exit_code == 2
        assert result.exception is None or isinstance(result.exception, SystemExit)
        (said,) = [x for x in result.output.splitlines() if "error" in x]
        seen.add(said)
    assert len(seen) == 1  # (the same file, the same line)
    (said,) = seen
    assert str(log) in said and "\ufffdresearch" in said
    assert not re.search("\ufffd[0-9a-f]{16}", said)
    assert not (tmp_path / "q.jsonl").exists()


def _imports(node, guarded: bool = False):
    """(top-level module, whether in a `try:` body that catches ImportError) of every import."""
    if isinstance(node, ast.Import | ast.ImportFrom):
        if isinstance(node, ast.Import):
            yield from ((a.name.split(".")[0], guarded) for a in node.names)
        elif node.level == 0 and node.module:
            yield node.module.split(".")[0], guarded
        return
    catches = isinstance(node, ast.Try) and any(
        h.type is None or re.search(r"\b(ImportError|ModuleNotFoundError)\b", ast.unparse(h.type)) for h in node.handlers)
    for field, value in ast.iter_fields(node):
        inner = guarded or (catches and field == "body")
        for child in value if isinstance(value, list) else [value]:
            if isinstance(child, ast.AST):
                yield from _imports(child, inner)


def test_every_module_the_analyzer_imports_is_installed_with_it():
    """A fresh `pip install llm-cost` (no extras, as the differential run's Polars 2.1 environment
    was) has numpy only if something asks for it: pyarrow no longer does, and no other dependency
    did. `report` of any plain JSON Lines log imported it (sources.key_colons) and ended in a
    traceback, ModuleNotFoundError, where the dev environment (numpy by pandas, duckdb) passed.
    Every third-party module analyzer/ imports is a dependency, one of an extra's, or imported
    under `try: ... except ImportError` somewhere (an optional one, checked before use)."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = [*project["dependencies"], *(r for extra in project["optional-dependencies"].values() for r in extra)]
    names = {re.split(r"[\[<>=!~; ]", r, maxsplit=1)[0].lower().replace("_", "-") for r in declared}
    dists = importlib.metadata.packages_distributions()
    imported, optional = {}, set()
    for path in sorted((ROOT / "analyzer").rglob("*.py")):
        for mod, guarded in _imports(ast.parse(path.read_text())):
            if mod in sys.stdlib_module_names or mod == "analyzer":
                continue
            imported.setdefault(mod, path.relative_to(ROOT).as_posix())
            if guarded:
                optional.add(mod)
    missing = {mod: where for mod, where in imported.items() if mod not in optional
               and not {d.lower().replace("_", "-") for d in dists.get(mod, [mod])} & names}
    assert imported and not missing, missing


def test_unpriced_models_of_equal_counts_are_listed_in_one_order(tmp_path):
    """Found by the differential run (a mutated october.csv): two unpriced models of one row each
    were listed in either order, from run to run (group_by's order), in the JSON report and in the
    warnings on stderr: a diff of two reports of the same logs showed changes. Ties by name."""
    models = ["claude-zeta-9", "claude-alpha-9", "claude-mu-9", "claude-beta-9", "claude-omega-9", "claude-eta-9"]
    log = tmp_path / "log.csv"
    log.write_text("request_id,timestamp,model,input_tokens,output_tokens\n"
                   + "".join(f"r{i},2026-10-08T00:00:0{i}Z,{m},1,1\n" for i, m in enumerate(models)))
    seen = []
    for _ in range(3):
        result = CliRunner().invoke(main, ["report", "--format", "json", str(log),
                                           "--quarantine", str(tmp_path / "q.jsonl")])
        assert result.exit_code == 0, result.output
        said = json.loads(result.stdout)["accounting"]["unpriced_models"]
        seen.append(list(said))
        assert said == dict.fromkeys(models, 1) and list(said) == sorted(models)  # (dicts compare unordered)
    assert seen[0] == seen[1] == seen[2]


@pytest.mark.parametrize("tz", ["+05:30", "-0800", "UTC+1"])
def test_a_parquet_log_of_fixed_offset_times_is_refused_naming_the_column(tmp_path, tz):
    """Found by the differential run (fixtures/sample/october.csv written as Parquet by PyArrow with
    its times in zone `+05:30`, as pandas writes a fixed-offset zone): Polars 2.1 and 2.2 both panic
    reading its schema, 168 lines of Rust backtrace and `Polars failed (called Result::unwrap() ...)`.
    One line names the file, the column and the zone, exit 2; a named zone is read."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = {"request_id": ["r1"], "model": ["claude-haiku-4-5"], "input_tokens": [10], "output_tokens": [3]}
    instant = pa.array([1_791_936_000_000], pa.timestamp("ms", "UTC"))  # 2026-10-14T00:00:00Z
    for zone in (tz, "Asia/Kolkata"):
        log = tmp_path / f"log-{len(zone)}.parquet"
        pq.write_table(pa.table({**rows, "timestamp": instant.cast(pa.timestamp("ms", zone))}), log)
        result = CliRunner().invoke(main, ["report", "--format", "json", str(log),
                                           "--quarantine", str(tmp_path / "q.jsonl")])
        assert result.exception is None or isinstance(result.exception, SystemExit)
        if zone != tz:
            assert result.exit_code == 0 and json.loads(result.stdout)["accounting"]["priced"] == 1
            continue
        assert result.exit_code == 2
        (said,) = result.output.strip().splitlines()
        assert str(log) in said and "'timestamp'" in said and repr(tz) in said and "Polars failed" not in said

"""Attack on what branch xfails landed (40b9af1..832ef64): labels.trim / labels.spelled, the files'
fingerprints (analyzer/fingerprint.py), a CSV record's raw as written, mapped._nested_where_text.

Tried, and held (a test below where one was worth keeping):
- every label column (model, tier, speed, workspace, a custom dimension) with U+200B, U+200E/U+200F,
  U+2028, U+0085 and U+FEFF at either end, in the middle of a CSV: one group, trimmed, in --by;
  a mark inside a label (`stan\\u200bdard`) or a combining mark at its end is kept (not invisible).
- the Spark engine on a CSV of all those marks, with a copy of one request per mark: the same
  single group and the same counts as Polars (its FIT and its groups' cleaning are labels.py's).
- a custom mapping's `[values.<column>]` on a Parquet file whose label columns are integers
  (tier 1/2, team 7/8), keys `"8 "` and `"2" = "Priority"`: matched and cleaned (base: `8 ` missed).
- a lone surrogate escape in a JSON label (`\\ud800`): the line is quarantined whole, as before
  (Polars does not decode it); a label ending U+200B + U+0301 keeps both (a combining mark is
  not invisible): unpriced, named with the escape.
- two copies of a request whose model differs only by invisible characters: one request. (Request
  ids are not labels: `r4` and `r4\\u200b`, like `r5` and `r5 `, are two requests, as before.)
- a file created in the logs' directory during the run, with a bad record, is not in the quarantine
  file (CSV and JSON Lines); a file deleted during the run is named (exit 2); a symlinked log is its
  target's fingerprint, an append through it is no change, its target replaced is named; a named
  FIFO is refused before any fingerprint is taken (so no blocking open); object storage and stdin
  have none (fingerprint.take: not a local regular file; read, not run against moto).
- the store's ingest prices through price_requests: its quarantine pass checks the fingerprints.
- a CSV record's raw in the quarantine file is its text as written (`"-04"`, `"+3"`) read plain,
  gzip, zstd and from stdin; a Parquet file's raw keeps its own types (`-4`), as it was written.
- the fingerprints of a Claude Code tree of 2,000 transcripts (118 MB): no CPU difference measured
  against 40b9af1 (see the branch report).

Found (each a test below):
- a Parquet file of Messages responses none of which had `usage.iterations` (a struct without the
  field, the common case) failed "cannot read input: iterations", naming no file: a path into a
  struct column was read with struct.field, which fails on a field the struct lacks. Fixed: a
  field the struct lacks is absent (null), as a key a JSON record lacks.
- a Parquet file of Messages responses whose usage.iterations is typed a list of structs but null
  on every row was refused (the check was on the schema alone); 40b9af1 read it, and rightly (no
  iterations: the top-level counts). The check now reads that column when the schema differs.
- (strict xfail, closed since) a store row written before labels.trim, `claude-haiku-4-5\\u200b`,
  stays unpriced under `reprice`: stored labels are never cleaned again, so the same model logged
  the same way is priced from new nights and unpriced from old ones. Now reprice cleans the labels
  of its window again.
"""

from __future__ import annotations

import json
import os
from decimal import Decimal as D
from pathlib import Path

import polars as pl
import pytest
from click.testing import CliRunner

from analyzer import Options, analyze, labels, store
from analyzer.cli import main

ROOT = Path(__file__).resolve().parents[2]
RESPONSES = ROOT / "fixtures" / "dialects" / "anthropic-messages" / "responses.jsonl"
HAIKU = "claude-haiku-4-5"
HEADER = "request_id,timestamp,model,input_tokens,output_tokens,workspace,team,service_tier"


def _csv(path: Path, rows: list[tuple[str, ...]]) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    text = "".join(f'"{r}",2026-10-08T00:00:00Z,"{m}",{n},3,"{w}","{t}","{tier}"\n' for r, m, n, w, t, tier in rows)
    path.write_text(HEADER + "\n" + text, encoding="utf-8")
    return str(path)


def _cli(tmp_path: Path, args: list[str]):
    q = tmp_path / "q.jsonl"
    q.unlink(missing_ok=True)
    r = CliRunner().invoke(main, [*args, "--quarantine", str(q)])
    assert r.exception is None or isinstance(r.exception, SystemExit), r.exception
    return r.exit_code, r.output, q.read_text() if q.exists() else ""


# --- labels: every label column, every invisible end ----------------------------------------------

INVISIBLE = ["\u200b", "\u200e", "\u200f", "\u2028", "\u0085", "\ufeff", "\u00a0\u200d"]


@pytest.mark.parametrize("mark", INVISIBLE)
def test_every_label_column_is_one_group_whatever_its_invisible_ends(tmp_path, mark):
    path = _csv(tmp_path / "l.csv", [("a", HAIKU, 1000, "ws", "t", "standard"),
                                     ("b", HAIKU + mark, 1000, mark + "ws", "t" + mark, "Standard" + mark),
                                     ("c", mark + HAIKU, 1000, "ws" + mark, mark + "t", mark + "standard")])
    code, out, quarantine = _cli(tmp_path, ["report", path, "--by", "model_raw,service_tier,workspace,team",
                                            "--format", "csv"])
    assert code == 0 and not quarantine, out
    rows = out.splitlines()
    # (haiku 4.5: $1 per million input tokens, $5 per million output: 3,000 and 9 tokens)
    assert rows[1].split(",")[:5] == [HAIKU, "standard", "ws", "t", "3"], out
    assert len(rows) == 2 and D(rows[1].split(",")[rows[0].split(",").index("cost")]) == D("0.003045")


def test_copies_differing_only_in_invisible_characters_are_one_request(tmp_path):
    path = _csv(tmp_path / "l.csv", [("a", HAIKU, 1000, "ws", "t", "standard"),
                                     ("a", HAIKU + "\u200b", 1000, "ws\u200f", "t", "standard\ufeff")])
    rep = analyze([path], ["workspace"], Options(quarantine=str(tmp_path / "q.jsonl")))
    assert (rep.accounting.priced, rep.accounting.duplicates) == (1, 1)
    assert rep.totals["cost"] == D("0.001015")


def test_a_mark_inside_a_label_is_kept(tmp_path):
    path = _csv(tmp_path / "l.csv", [("a", HAIKU, 10, "w\u200bs", "t\u0301", "standard")])
    code, out, _ = _cli(tmp_path, ["report", path, "--by", "workspace,team", "--format", "csv"])
    assert code == 0 and out.splitlines()[1].startswith("w\u200bs,t\u0301,1,"), out


# --- a Parquet file of a JSON format ---------------------------------------------------------------

def _responses() -> pl.DataFrame:
    return pl.read_ndjson(RESPONSES, infer_schema_length=None)


def test_a_parquet_of_responses_without_iterations_reads_as_its_json_lines(tmp_path):
    """Most responses carry no usage.iterations: a struct without the field failed "cannot read
    input: iterations", naming no file. It reads as the same records as JSON Lines (and an extra
    nested column the format does not read, content, changes nothing)."""
    df = _responses()
    usage = df.schema["usage"].to_schema()
    df = df.with_columns(pl.struct([pl.col("usage").struct.field(f) for f in usage if f != "iterations"]).alias("usage"))
    df.write_ndjson(tmp_path / "r.jsonl")
    df.write_parquet(tmp_path / "r.parquet")
    df.drop("content").write_parquet(tmp_path / "bare.parquet")
    outs = []
    for name in ("r.jsonl", "r.parquet", "bare.parquet"):
        code, out, quarantine = _cli(tmp_path, ["report", str(tmp_path / name), "--by", "model", "--format", "csv",
                                                "-q", "--batch-time", "2026-10-08T00:00:00Z"])
        assert code == 0, out
        outs.append((out, quarantine.replace(name, "F")))
    assert outs[0][0] == outs[1][0] == outs[2][0]
    assert outs[0][0].count("\n") > 2  # (several models priced: not an empty report agreeing)


def test_a_parquet_whose_iterations_are_all_null_lists_reads_as_its_json_lines(tmp_path):
    df = _responses()
    usage = df.schema["usage"].to_schema()
    bare = df.with_columns(pl.struct([pl.col("usage").struct.field(f) for f in usage if f != "iterations"]).alias("usage"))
    bare.write_ndjson(tmp_path / "r.jsonl")
    df.with_columns(pl.col("usage").struct.with_fields(pl.lit(None, usage["iterations"]).alias("iterations"))
                    ).write_parquet(tmp_path / "r.parquet")
    outs = [_cli(tmp_path, ["report", str(tmp_path / name), "--by", "model", "--format", "csv", "-q",
                            "--batch-time", "2026-10-08T00:00:00Z"])[:2] for name in ("r.jsonl", "r.parquet")]
    assert outs[0][0] == 0 and outs[1] == outs[0], outs


# --- fingerprints -----------------------------------------------------------------------------------

from .test_attack13 import _during_quarantine  # noqa: E402 - the same patch as attack13's


def _jsonl(path: Path, prefix: str, bad: int, n: int = 5) -> None:
    path.write_text("".join(json.dumps({"request_id": f"{prefix}{i}", "timestamp": "2026-10-08T00:00:00Z",
                                        "model": HAIKU, "input_tokens": -1 if i == bad else 10,
                                        "output_tokens": 3}) + "\n" for i in range(n)))


def test_a_file_created_in_the_directory_during_the_run_is_not_quarantined(tmp_path, monkeypatch):
    logs = tmp_path / "logs"
    logs.mkdir()
    _jsonl(logs / "a.jsonl", "a", bad=2)
    _during_quarantine(monkeypatch, lambda: _jsonl(logs / "c.jsonl", "c", bad=1))
    code, out, quarantine = _cli(tmp_path, ["report", str(logs), "--by", "model", "--format", "csv"])
    assert code == 0, out
    assert [json.loads(x)["file"] for x in quarantine.splitlines()] == [str(logs / "a.jsonl")]


def test_a_file_deleted_during_the_run_is_named(tmp_path, monkeypatch):
    path = tmp_path / "a.jsonl"
    _jsonl(path, "a", bad=2)
    _during_quarantine(monkeypatch, path.unlink)
    code, out, quarantine = _cli(tmp_path, ["report", str(path), "--by", "model", "--format", "csv"])
    assert (code, quarantine) == (2, "")
    assert out.startswith(f"llm-cost: error: {path}: changed during the run (unreadable (No such file"), out


def test_a_symlinked_log_appended_is_no_change_and_its_target_replaced_is(tmp_path, monkeypatch):
    real, link = tmp_path / "real.jsonl", tmp_path / "link.jsonl"
    _jsonl(real, "a", bad=2)
    os.symlink(real, link)
    with monkeypatch.context() as m:
        _during_quarantine(m, lambda: real.open("a").write(json.dumps({"request_id": "late"}) + "\n"))
        code, out, quarantine = _cli(tmp_path, ["report", str(link), "--by", "model", "--format", "csv"])
    assert code == 0 and [json.loads(x)["line"] for x in quarantine.splitlines()] == [3], out
    other = tmp_path / "other.jsonl"
    _jsonl(other, "o", bad=1)
    _jsonl(real, "a", bad=2)

    def repoint():
        link.unlink()
        os.symlink(other, link)
    _during_quarantine(monkeypatch, repoint)
    code, out, quarantine = _cli(tmp_path, ["report", str(link), "--by", "model", "--format", "csv"])
    assert (code, quarantine) == (2, "") and "changed during the run (replaced by another file)" in out, out


# --- the store: rows written before labels.trim ----------------------------------------------------

def test_a_stored_model_with_an_invisible_end_is_priced_by_reprice(tmp_path, monkeypatch):
    st = str(tmp_path / "store")
    old = _csv(tmp_path / "n1" / "x.csv", [("a", HAIKU + "\u200b", 1000, "ws", "t", "standard")])
    new = _csv(tmp_path / "n2" / "y.csv", [("b", HAIKU + "\u200b", 1000, "ws", "t", "standard")])
    with monkeypatch.context() as m:  # (the version before labels.trim: whitespace alone)
        m.setattr(labels, "trim", lambda value: value.str.strip_chars())
        store.ingest([old], st)
    store.ingest([new], st)
    store.reprice(st)
    rep = store.report(st, ["model"])
    assert (rep.accounting.priced, rep.accounting.unpriced) == (2, 0)
    assert rep.totals["cost"] == D("0.002030")

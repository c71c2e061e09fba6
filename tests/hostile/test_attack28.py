"""Attacks on the store's records (copies compete and leave as whole records, kept files, reprice
restoring kept copies, compact's retention) through what a user runs. The oracle: `report` of the
same files without a store (rows, exact totals, accounting), and `store status` consistent only
when the store says what they say.

What held (no test beyond this file's last; the runs are in the report of attack28): random nights
of Messages responses with steps, CSV rows and Claude Code runs sharing ids (`msg_0#1`,
`u0#<model>`, empty, unicode, 300 characters), ingested, exported again, compacted (retention 0
and 7), repriced (same book, a window, an overlay with every later night priced by it) and copied
under another name, each step compared with the report of the files; kill -9 of replacing
ingests, compactions and reprices at random moments (before or after, status consistent, the rerun
complete); two ingests and a compaction at once.
"""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pytest
from click.testing import CliRunner

from analyzer import pipeline, store
from analyzer.cli import main

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "dialects"


def _csv(path: Path, rows: list[tuple[str, int, int]]) -> Path:
    """A canonical CSV with a `requests` column (docs/formats.md: "requests a row stands for")."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("request_id,timestamp,model,input_tokens,output_tokens,requests\n" + "".join(
        f"{rid},2026-11-10T10:00:00Z,claude-sonnet-4-5,{tokens},0,{requests}\n" for rid, tokens, requests in rows))
    return path


def _both(tmp_path: Path, st: Path, files: list[Path]):
    logs = pipeline.analyze([str(f) for f in files], ["model"], pipeline.Options(quarantine=str(tmp_path / "q.jsonl")))
    return logs, store.report(str(st), ["model"])


# --- A row standing for 0 requests -----------------------------------------------------------------
# The store told a record's first row from a later one (a Messages response's step, a Claude Code
# run's other models) by `requests == 0` alone (store._is_record), where a report of the logs uses
# the format's `_rec`. A canonical CSV (or Parquet: "requests a row stands for") or a usage page
# (OpenAI's `num_model_requests`) may say 0 on a row of its own: the report counts it as a row of
# its own id; the store took it for a step of the row before. Fixed: only the formats that read a
# record as several rows (store.SEVERAL_ROWS) have later rows.


def test_a_canonical_row_of_zero_requests_is_a_record_of_its_own_in_the_store(tmp_path):
    """One night, rows a (requests 1) and b (requests 0). Its store reported what the file says,
    but counted priced 1 (the log: 2) and `store status` said NOT CONSISTENT (exit 1)."""
    n1 = _csv(tmp_path / "n1" / "1.csv", [("a", 1000, 1), ("b", 500, 0)])
    st = tmp_path / "st"
    store.ingest([str(n1)], str(st))
    logs, stored = _both(tmp_path, st, [n1])
    assert stored.totals == logs.totals
    assert (stored.accounting.priced, logs.accounting.priced) == (2, 2)
    assert store.status(str(st))["consistent"]


def test_a_fuller_copy_of_a_zero_request_row_displaces_it(tmp_path):
    """Night 1: a (1000 tokens, requests 1), b (500, requests 0). Night 2: b again with 5000 tokens.
    The report of both files keeps b's fuller copy: 6000 input tokens, $0.018, 1 duplicate. The
    store held night 1's b under a's record, so night 2's b met no stored copy: both were stored,
    6500 tokens, $0.0195, 0 duplicates."""
    n1 = _csv(tmp_path / "n1" / "1.csv", [("a", 1000, 1), ("b", 500, 0)])
    n2 = _csv(tmp_path / "n2" / "2.csv", [("b", 5000, 1)])
    st = tmp_path / "st"
    for n in (n1, n2):
        store.ingest([str(n)], str(st))
    logs, stored = _both(tmp_path, st, [n1, n2])
    assert logs.rows["input_tokens"].to_list() == [6000]
    assert stored.rows["input_tokens"].to_list() == [6000]
    assert stored.totals == logs.totals == {**logs.totals, "cost": Decimal("0.018")}
    assert stored.accounting.duplicates == logs.accounting.duplicates == 1
    assert store.status(str(st))["consistent"]


def test_a_usage_page_result_of_zero_requests_is_no_step_in_report_store(tmp_path):
    """An OpenAI usage page whose second result says `num_model_requests` 0. `report --store` said
    `rows read 2 = priced 1 + ... + outside the dates 1` with no window given (the log: priced 2),
    and `store status` NOT CONSISTENT, exit 1."""
    page = json.loads((FIXTURES / "openai-usage" / "openai_org_usage_completions.json").read_text())
    page["data"][0]["results"][1]["num_model_requests"] = 0
    log = tmp_path / "usage.json"
    log.write_text(json.dumps(page))
    st = tmp_path / "st"
    runner = CliRunner()
    assert runner.invoke(main, ["ingest", str(log), "--store", str(st), "-q"]).exit_code == 0
    said = runner.invoke(main, ["report", "--store", str(st)]).output
    assert "rows read 2 = priced 2 + unpriced 0 + duplicates 0 + quarantined 0\n" in said
    status = runner.invoke(main, ["store", "status", str(st)])
    assert (status.exit_code, status.output.strip().splitlines()[-1]) == (0, "consistent")


# --- A step that used no token ----------------------------------------------------------------------


def _response(rid: str, first: int, steps: list[tuple[str, int]]) -> str:
    usage = {"input_tokens": 0, "output_tokens": 0, "iterations": [
        {"type": "message", "input_tokens": first, "output_tokens": 0},
        *[{"type": "message", "model": m, "input_tokens": t, "output_tokens": 0} for m, t in steps]]}
    return json.dumps({"timestamp": "2026-11-01T08:00:00Z", "id": rid, "type": "message", "role": "assistant",
                       "model": "claude-sonnet-4-5-20250929", "content": [], "usage": usage})


@pytest.mark.parametrize("model", ["claude-haiku-4-5-20251001", "claude-nonexistent-9"])
def test_a_step_of_no_tokens_is_no_blank_row_of_report_store(tmp_path, model):
    """A Messages response whose advisor step used no token: its step row is stored with no model
    (pricing resolves none for it) and nothing to sum. A report of the log drops that group of
    zeros (pipeline._regroup); `report --store --by model` printed it, a blank model line of 0
    requests and $0.00 (the store's rows 2 against the log's 1, totals equal)."""
    log = tmp_path / "n1" / "1.jsonl"
    log.parent.mkdir(parents=True)
    log.write_text(_response("msg_1", 1000, [(model, 0)]) + "\n")
    st = tmp_path / "st"
    store.ingest([str(log)], str(st))
    logs, stored = _both(tmp_path, st, [log])
    assert logs.rows["model"].to_list() == ["claude-sonnet-4-5-20250929"]
    assert stored.rows["model"].to_list() == logs.rows["model"].to_list()
    assert stored.totals == logs.totals


def test_a_step_of_no_tokens_is_no_blank_row_of_whatif_store(tmp_path):
    """The same for `whatif --store` (store.groups): its CSV had a line `,0,0,0.000000000000,...`
    that the what-if of the log has not."""
    log = tmp_path / "n1" / "1.jsonl"
    log.parent.mkdir(parents=True)
    log.write_text(_response("msg_1", 1000, [("claude-haiku-4-5-20251001", 0)]) + "\n")
    st = tmp_path / "st"
    store.ingest([str(log)], str(st))
    args = ["whatif", "--swap", "claude-sonnet-4-5=claude-haiku-4-5", "--by", "model", "-q", "--format", "csv"]
    runner = CliRunner()
    stored = runner.invoke(main, [*args, "--store", str(st)])
    logs = runner.invoke(main, [*args, str(log), "--quarantine", str(tmp_path / "q.jsonl")])
    assert (stored.exit_code, logs.exit_code) == (0, 0)
    assert len(logs.output.splitlines()) == 2
    assert stored.output == logs.output


def test_reprice_with_the_same_book_keeps_a_request_whose_step_used_no_token_priced(tmp_path):
    """The response priced at ingest ($0.003: 1000 Sonnet input tokens; its advisor step, on a model
    the book does not know, used no token: nothing to price, as a report of the log says). `reprice`
    with the same book made it unpriced whole ("another part of its request cannot be priced"):
    `report --store` $0 and priced 0 + unpriced 1, against the log's $0.003 and priced 1, with
    `store status` consistent. The reprice priced the step's rate key, which an ingest never sees
    (its aggregate drops a group of nothing)."""
    log = tmp_path / "n1" / "1.jsonl"
    log.parent.mkdir(parents=True)
    log.write_text(_response("msg_1", 1000, [("claude-nonexistent-9", 0)]) + "\n")
    st = tmp_path / "st"
    store.ingest([str(log)], str(st))
    result = store.reprice(str(st))
    assert result.changes["new_cost"].sum() == result.changes["old_cost"].sum() == Decimal("0.003")
    # (and its table has no "(unpriced)" line of 0 requests for the step: it has no model)
    assert result.changes["model"].to_list() == ["claude-sonnet-4-5-20250929"]
    logs, stored = _both(tmp_path, st, [log])
    assert stored.totals == logs.totals
    assert (stored.accounting.priced, stored.accounting.unpriced) == (logs.accounting.priced, 0) == (1, 0)
    assert store.status(str(st))["consistent"]



def test_hostile_ids_of_copies_brought_back_are_named_exactly(tmp_path):
    """Held: night b's fuller copies displace night a's; b exported again without them brings a's
    back, named to Delta's writer by file, line and id (store._restored_predicate): ids with a
    quote, a backslash, a newline, a double quote, SQL wildcards, unicode, 5,000 characters."""
    import csv
    import io

    ids = ["a'b", "c\\d", "e\nf", 'g"h', "i\\'j", "k%_", "\u00fcx", "'", "x" * 5000, "tab\there"]

    def night(path: Path, tokens: int, own: str, rows=ids) -> Path:
        out = io.StringIO()
        w = csv.writer(out, lineterminator="\n")
        w.writerow(["request_id", "timestamp", "model", "input_tokens", "output_tokens", "workspace"])
        w.writerows([(i, "2026-11-10T10:00:00Z", "claude-sonnet-4-5", tokens, 0, own) for i in [*rows, own]])
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(out.getvalue())
        return path

    a, b = night(tmp_path / "a" / "a.csv", 100, "wa"), night(tmp_path / "b" / "b.csv", 900, "wb")
    st = tmp_path / "st"
    store.ingest([str(a)], str(st))
    assert store.ingest([str(b)], str(st)).files[0].displaced == len(ids)
    night(b, 5, "wb", rows=[])
    assert store.ingest([str(b)], str(st)).files[0].restored == len(ids)
    logs, stored = _both(tmp_path, st, [a, b])
    assert stored.totals == logs.totals and stored.rows["input_tokens"].sum() == 100 * len(ids) + 105
    assert store.status(str(st))["consistent"]


# --- A format dated by its file's modification time -------------------------------------------------


def test_a_touched_batch_results_file_keeps_the_month_of_its_first_ingest_and_says_so(tmp_path):
    """Message Batches results carry no time: dated by `--batch-time`, else the file's modification
    time. Ingested at 2026-11-30T23:00Z, then touched to 2026-12-01T01:00Z and ingested again: the
    same bytes, "unchanged", and its 2 requests ($0.0038469) stay in 2026-11 (a touched or copied
    file does not move spend into another month), where a report of the file itself now says
    2026-12. Was (attack28): the same, without a word; the ingest now says why the two differ."""
    import os

    log = tmp_path / "results.jsonl"
    log.write_bytes((FIXTURES / "anthropic-batch" / "results.jsonl").read_bytes())
    os.utime(log, (1796079600, 1796079600))  # 2026-11-30T23:00:00Z
    st = tmp_path / "st"
    said: list[str] = []
    store.ingest([str(log)], str(st), warn=said.append)
    assert said == []
    os.utime(log, (1796086800, 1796086800))  # 2026-12-01T01:00:00Z
    assert store.ingest([str(log)], str(st), warn=said.append).files[0].status == "unchanged"
    assert said == [f"{log}: unchanged (the same bytes), its modification time moved from 2026-11-30T23:00:00+00:00 "
                    "to 2026-12-01T01:00:00+00:00: its records that carry no time keep the date of its first ingest"]
    logs = pipeline.analyze([str(log)], ["month"], pipeline.Options(quarantine=str(tmp_path / "q.jsonl")))
    stored = store.report(str(st), ["month"])
    assert logs.rows["month"].to_list() == ["2026-12"]
    assert stored.rows["month"].to_list() == ["2026-11"]
    assert stored.totals["cost"] == logs.totals["cost"] == Decimal("0.0038469")
    said.clear()
    assert store.ingest([str(log)], str(st), warn=said.append).files[0].status == "unchanged"
    assert len(said) == 1  # (said on every ingest that finds it moved: the store keeps the first time)


def test_a_touched_file_whose_records_carry_their_time_is_unchanged_without_a_word(tmp_path):
    import os

    log = tmp_path / "october.csv"
    log.write_bytes((FIXTURES.parents[0] / "sample" / "october.csv").read_bytes())
    st = tmp_path / "st"
    said: list[str] = []
    store.ingest([str(log)], str(st), warn=said.append, opts=pipeline.Options(quarantine=str(tmp_path / "q.jsonl")))
    os.utime(log, (1796086800, 1796086800))
    assert store.ingest([str(log)], str(st), warn=said.append).files[0].status == "unchanged"
    assert not [m for m in said if "modification time" in m], said


def test_a_touched_file_of_a_users_own_format_without_times_says_so_too(tmp_path):
    """A `--map` format whose records carry no time (`file_time`) is in no registry: the ingest
    that reads it with the same --map knows it all the same."""
    import os

    mapping = tmp_path / "mine.toml"
    mapping.write_text('name = "my-batch"\nsignature = ["uid", "tok_in"]\nfile_time = true\n\n[fields]\n'
                       'model_raw = "m"\nrequest_id = "uid"\ninput_tokens = "tok_in"\noutput_tokens = "tok_out"\n')
    log = tmp_path / "night.jsonl"
    log.write_text('{"uid": "a1", "m": "claude-sonnet-4-5", "tok_in": 1000, "tok_out": 100}\n')
    os.utime(log, (1796079600, 1796079600))  # 2026-11-30T23:00:00Z
    st = tmp_path / "st"
    opts = pipeline.Options(mapping=str(mapping), quarantine=str(tmp_path / "q.jsonl"))
    said: list[str] = []
    assert store.ingest([str(log)], str(st), opts=opts, warn=said.append).files[0].status.startswith("ingested")
    os.utime(log, (1796086800, 1796086800))  # 2026-12-01T01:00:00Z
    assert store.ingest([str(log)], str(st), opts=opts, warn=said.append).files[0].status == "unchanged"
    assert [m for m in said if "modification time moved" in m] == [
        f"{log}: unchanged (the same bytes), its modification time moved from 2026-11-30T23:00:00+00:00 to "
        "2026-12-01T01:00:00+00:00: its records that carry no time keep the date of its first ingest"]
    assert store.report(str(st), ["month"]).rows["month"].to_list() == ["2026-11"]

"""Claude Code copies of one API response are billed once (the request key is the message id).

A `/btw` side question copies the parent's assistant lines into
`<session>/subagents/agent-aside_question-*.jsonl`: same message id, content and usage, a new
requestId, `isSidechain: true` (ccusage issue #913; ccusage counts such a copy once since its PR
#1155, https://github.com/ccusage/ccusage/pull/1155: a sidechain entry whose message id also has a
non-sidechain entry is dropped). The lines below are built the way Claude Code writes them (the
members of fixtures/dialects/claude-code), reduced to what the mapping reads.
"""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import polars as pl
import pytest

from analyzer import analyze, price_requests, store
from analyzer.dialects import claude_code

SESSION = "2ff46cd5-f4e7-4724-bb20-579dae7956ea"
USAGE = {"input_tokens": 6, "cache_creation_input_tokens": 8837, "cache_read_input_tokens": 16410,
         "cache_creation": {"ephemeral_5m_input_tokens": 0, "ephemeral_1h_input_tokens": 8837}, "output_tokens": 136}
# Opus 4.6: $5 in, $25 out, 1h write $10, read $0.50 per MTok
PARENT = (6 * 5 + 8837 * 10 + 16410 * Decimal("0.5") + 136 * 25) / 10**6


def line(mid: str | None, rid: str | None, *, sidechain: bool = False, usage: dict | None = None,
         ts: str = "2026-11-24T09:12:01.098Z", text: str = "Let me look at the exporter first.") -> str:
    message = {"id": mid, "type": "message", "role": "assistant", "model": "claude-opus-4-6",
               "content": [{"type": "text", "text": text}], "stop_reason": "end_turn", "stop_sequence": None,
               "usage": usage or USAGE}
    if mid is None:
        del message["id"]
    rec = {"parentUuid": "p", "isSidechain": sidechain, "userType": "external", "cwd": "/home/dev/acme",
           "sessionId": SESSION, "version": "2.1.3", "message": message, "type": "assistant",
           "uuid": "u", "timestamp": ts}
    if rid is not None:
        rec["requestId"] = rid
    return json.dumps(rec, separators=(",", ":"))


def tree(root: Path, parent: list[str], aside: list[str]) -> str:
    proj = root / "projects" / "-home-dev-acme"
    (proj / SESSION / "subagents").mkdir(parents=True)
    (proj / f"{SESSION}.jsonl").write_text("\n".join(parent) + "\n")
    if aside:
        (proj / SESSION / "subagents" / "agent-aside_question-a1b2c3.jsonl").write_text("\n".join(aside) + "\n")
    return str(root)


def test_a_btw_copy_of_the_parents_response_is_billed_once(tmp_path):
    own = {"input_tokens": 3, "cache_read_input_tokens": 25247, "output_tokens": 40}
    root = tree(tmp_path, [line("msg_01P", "req_011A")],
                [line("msg_01P", "req_011B", sidechain=True),  # the copy: same message, a new request id
                 line("msg_01Q", "req_011C", sidechain=True, usage=own)])  # the side question's own answer
    rep = analyze([root], ["model"])
    own_cost = (3 * 5 + 25247 * Decimal("0.5") + 40 * 25) / 10**6
    assert rep.totals["cost"] == PARENT + own_cost and rep.totals["requests"] == 2
    acc = rep.accounting
    assert (acc.rows_read, acc.priced, acc.repeats, acc.duplicates) == (3, 2, 1, 0) and acc.balanced
    rows, _ = price_requests([root])
    df = rows.lazy().collect().sort("request_id")
    assert df["request_id"].to_list() == ["msg_01P", "msg_01Q"]
    assert df["source_file"].str.ends_with(f"{SESSION}.jsonl").to_list() == [True, False]  # the parent's line


@pytest.mark.parametrize("copy_first", [False, True])
def test_a_differing_sidechain_copy_never_beats_its_parent(tmp_path, copy_first):
    """Copies whose usage differs keep dedupe's rule: the non-sidechain copy wins (rank), even
    against a sidechain copy with more tokens, wherever it lies in the walk; then the most tokens."""
    more = {**USAGE, "cache_read_input_tokens": 99999, "output_tokens": 999}
    parent, aside = [line("msg_01P", "req_011A")], [line("msg_01P", "req_011B", sidechain=True, usage=more)]
    root = tree(tmp_path, aside if copy_first else parent, parent if copy_first else aside)
    rep = analyze([root], ["model"])
    assert rep.totals["cost"] == PARENT and rep.totals["output_tokens"] == 136
    assert (rep.accounting.priced, rep.accounting.repeats) == (1, 1) and rep.accounting.balanced


def test_copies_outside_a_sidechain_merge_on_the_message_id_the_most_tokens_winning(tmp_path):
    partial = {**USAGE, "output_tokens": 8}
    root = tree(tmp_path, [line("msg_01P", "req_011A", usage=partial), line("msg_01P", "req_011B")], [])
    rep = analyze([root], [])
    assert rep.totals["cost"] == PARENT and (rep.accounting.priced, rep.accounting.repeats) == (1, 1)


def test_lines_without_a_message_id_are_keyed_on_their_request_id(tmp_path):
    root = tree(tmp_path, [line(None, "req_1"), line(None, "req_1"), line(None, "req_2"), line("", "req_2")], [])
    rep = analyze([root], [])
    assert rep.totals["cost"] == 2 * PARENT and (rep.accounting.priced, rep.accounting.repeats) == (2, 2)


def _old_key(message_id: pl.Expr, request_id: pl.Expr) -> pl.Expr:
    """The key the version before wrote: `message.id:requestId` (message id escaped)."""
    mid = message_id.cast(pl.String).str.replace_all("\\", "\\\\", literal=True).str.replace_all(":", "\\:", literal=True)
    rid = pl.lit(":") + request_id.cast(pl.String)
    return pl.when(mid.is_null()).then(rid).otherwise(mid + rid.fill_null(""))


def test_a_store_written_with_the_old_key_still_finds_a_nights_copies(tmp_path, monkeypatch):
    """Stored Claude Code ids of earlier versions are `message.id:requestId`. A night ingested now
    (keys: the message id) that repeats stored rows, or copies them under a new request id (`/btw`),
    finds them: its copies are repeats (a transcript writes a request several times: so a report of
    the nights together counts them), the stored rows stay, and the store's totals do not move.
    Nothing is rewritten: the stored ids are read as the message id when compared."""
    st = str(tmp_path / "store")
    night1 = tmp_path / "n1" / "projects" / "p"
    night1.mkdir(parents=True)
    (night1 / "a.jsonl").write_text(line("msg_01P", "req_011A") + "\n" + line("msg_0:odd", "req_9") + "\n")
    with monkeypatch.context() as m:
        m.setattr(claude_code, "request_key", _old_key)
        first = store.ingest([str(night1 / "a.jsonl")], st)
    stored = pl.read_delta(st)["request_id"].sort().to_list()
    assert stored == ["msg_01P:req_011A", "msg_0\\:odd:req_9"]  # (built as the old version wrote it)
    before = store.report(st, ["model"]).totals
    assert before["cost"] == 2 * PARENT and first.files[0].stored == 2
    night2 = tmp_path / "n2" / "projects" / "p"
    (night2 / SESSION / "subagents").mkdir(parents=True)
    (night2 / "b.jsonl").write_text(line("msg_01P", "req_011A") + "\n" + line("msg_0:odd", "req_9") + "\n"
                                    + line("msg_01N", "req_011N", ts="2026-11-24T10:00:00Z") + "\n")
    (night2 / SESSION / "subagents" / "agent-aside_question-x.jsonl").write_text(
        line("msg_01P", "req_011B", sidechain=True) + "\n")
    second = store.ingest([str(night2 / "b.jsonl"), str(night2 / SESSION / "subagents" / "agent-aside_question-x.jsonl")], st)
    b, aside = second.files
    assert (b.accounting.repeats, b.accounting.duplicates, b.stored) == (2, 0, 1)  # the two stored requests again; one new
    assert (aside.accounting.repeats, aside.stored) == (1, 0)  # the /btw copy of a stored request
    after = store.report(st, ["model"])
    assert after.totals["cost"] == 3 * PARENT and after.accounting.balanced
    assert pl.read_delta(st)["request_id"].sort().to_list() == ["msg_01N", "msg_01P:req_011A", "msg_0\\:odd:req_9"]


def test_the_store_key_of_other_sources_is_left_as_it_is(tmp_path):
    """Only Claude Code rows are read with the old key's rule: another source's id may hold `:`."""
    frame = pl.DataFrame({"request_id": ["msg_a:b", "msg_a:b", "msg_1:req", ":r", "gw:req", "msg_1"],
                          "source": ["openai", None, "claude-code", "claude-code", "claude-code", "claude-code"]})
    assert frame.select(store._stored_key())["request_id"].to_list() == ["msg_a:b", "msg_a:b", "msg_1", ":r", "gw:req", "msg_1"]


def test_a_relays_own_message_ids_stay_keyed_with_the_request_id(tmp_path):
    """A relay that answers every response with one message id of its own (ccusage #1635: "ocgo")
    and passes request ids: its responses are not copies of one another. Only an Anthropic
    message id (`msg_...`) is a response's identity alone."""
    root = tree(tmp_path, [line("ocgo", "req_1"), line("ocgo", "req_2"), line("ocgo", "req_2")], [])
    rep = analyze([root], [])
    assert rep.totals["cost"] == 2 * PARENT and (rep.accounting.priced, rep.accounting.repeats) == (2, 1)

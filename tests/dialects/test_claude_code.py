"""claude-code: transcripts, one line per content block, merged per message."""

from __future__ import annotations

import json
import shutil
from decimal import Decimal

import polars as pl
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from analyzer import analyze, dialects
from analyzer.dialects import mapped
from analyzer.dialects.claude_code import project_of
from analyzer.pipeline import Options
from analyzer.sources import NOT_UTF8, open_source
from tests.conftest import ROOT

TREE = ROOT / "fixtures" / "dialects" / "claude-code" / "projects"
SESSION = TREE / "-home-dev-acme-billing" / "2ff46cd5-f4e7-4724-bb20-579dae7956ea.jsonl"
OPUS = (6 * 5 + 8837 * 10 + 16410 * Decimal("0.5") + 136 * 25) / 10**6  # Opus 4.6: 1h write $10, read $0.50
HAIKU = (1 * 1 + 166 * 2 + 10444 * Decimal("0.1") + 25 * 5) / 10**6  # subagent (sidechain), own message
SONNET4 = (4 * 3 + 2230 * Decimal("3.75") + 13910 * Decimal("0.3") + 87 * 15) / 10**6  # legacy line, no split: 5m
# The sidechain line that repeats the parent's message id under a new requestId is a copy of the
# parent's response (a message id names one billed response), though its usage differs (25,247
# read, no write): the parent wins (a sidechain copy never beats its parent) and it is a repeat.
TOTAL = OPUS + HAIKU + SONNET4


def test_detected_and_project_from_path():
    assert dialects.detect(open_source(str(SESSION))).name == "claude-code"
    assert project_of(str(SESSION)) == "-home-dev-acme-billing"
    assert project_of("/x/projects/p/sess/subagents/agent-1.jsonl") == "p"


def test_reference_transcript_by_hand():
    rep = analyze([str(TREE)], ["model", "project"])
    costs = {r["model"]: r["cost"] for r in rep.rows.to_dicts()}
    assert costs == {"claude-opus-4-6": OPUS, "claude-haiku-4-5-20251001": HAIKU,
                     "claude-sonnet-4-20250514": SONNET4}
    assert set(rep.rows["project"].to_list()) == {"/home/dev/acme-billing"}  # (from the lines' cwd)
    # the two streamed lines of one message are a repeat, and so is the sidechain line with the same
    # message id and another requestId; the <synthetic> limit message is not billable; user and
    # snapshot lines are not usage and not records.
    acc = rep.accounting
    assert (acc.rows_read, acc.priced, acc.repeats, acc.not_billable, acc.duplicates, acc.quarantined) == (
        6, 3, 2, 1, 0, 0)
    # the legacy line's costUSD is kept beside the computed cost, and agrees with it
    assert rep.rows.filter(rep.rows["model"] == "claude-sonnet-4-20250514")["reported_cost"].item() == SONNET4


def test_line_with_most_tokens_wins_and_a_sidechain_copy_of_the_message_never_beats_its_parent():
    rep = analyze([str(TREE)], ["model"])
    opus = rep.rows.filter(rep.rows["model"] == "claude-opus-4-6").to_dicts()[0]
    # final output 136 (not the partial 8) of the parent; the sidechain copy (more reads: 25,247, but
    # a sidechain line) is not counted
    assert (opus["requests"], opus["output_tokens"], opus["cache_write_1h_tokens"], opus["cache_read_tokens"]) == (
        1, 136, 8837, 16410)


def test_resumed_session_repeats_across_files_and_no_dedupe_still_merges(tmp_path):
    proj = tmp_path / "projects" / "p"
    proj.mkdir(parents=True)
    shutil.copy(SESSION, proj / "a.jsonl")
    shutil.copy(SESSION, proj / "b.jsonl")  # a resumed session replays the earlier messages
    for opts in (Options(), Options(dedupe=False)):
        rep = analyze([str(tmp_path)], ["model"], opts)
        assert rep.totals["cost"] == TOTAL
        assert rep.accounting.repeats == 2 + 5 and rep.accounting.balanced  # all 5 usage lines of b repeat


def test_broken_assistant_line_is_quarantined_with_its_line(tmp_path, quarantine):
    proj = tmp_path / "projects" / "p"
    proj.mkdir(parents=True)
    lines = SESSION.read_text().splitlines()
    lines.insert(3, lines[1][:150])  # a cut user line: it cannot be told from usage, so it is quarantined too
    lines.insert(3, '{"type":"assistant","message":{"id":"m","model":"claude-opus-4-6","usage":{"input_tokens":')
    (proj / "s.jsonl").write_text("\n".join(lines) + "\n")
    shutil.copy(SESSION, proj / "t.jsonl")  # read in the same scan: line numbers stay per file
    rep = analyze([str(tmp_path)], ["model"], Options(quarantine=quarantine))
    assert rep.totals["cost"] == TOTAL
    assert rep.accounting.quarantined == 2
    bad = [json.loads(x) for x in open(quarantine)]
    assert [(b["file"].rsplit("/", 1)[1], b["line"]) for b in bad] == [("s.jsonl", 4), ("s.jsonl", 5)]
    assert all("not a JSON object" in b["reason"] for b in bad)


def test_a_line_holding_two_records_is_quarantined_not_a_crash(tmp_path, quarantine):
    """`{..},{..}` starts and ends like one record; Polars' decoder reads it as two values (a batch
    of one line too many): the run is read again field by field, and the line is quarantined."""
    proj = tmp_path / "projects" / "p"
    proj.mkdir(parents=True)
    lines = SESSION.read_text().splitlines()
    usage = [line for line in lines if '"assistant"' in line]
    lines.insert(3, usage[0] + "," + usage[1])
    (proj / "s.jsonl").write_text("\n".join(lines) + "\n")
    rep = analyze([str(tmp_path)], ["model"], Options(quarantine=quarantine))
    assert rep.totals["cost"] == TOTAL
    assert rep.accounting.quarantined == 1 and rep.accounting.balanced
    assert [json.loads(x)["line"] for x in open(quarantine)] == [4]


def test_per_request_rows_match_the_report(tmp_path):
    from analyzer import price_requests

    rows, acc = price_requests([str(TREE)])
    df = rows.lazy().collect()
    assert df["request_id"].to_list() == [  # the message id
        "msg_015oRrxAaM8CuSF2MFET9J3i", "msg_01Kx8wPq2ZrT5vN7yB3mC4dE", "msg_01LegacyCostUsdLine00001"]
    assert df["source_row"].to_list() == [4, 6, 9]  # the winning line of each request, in its file
    assert df["cost"].sum() == TOTAL and acc.repeats == 2 and acc.balanced


def test_summary_only_file_in_a_tree_is_a_transcript_and_envelopes_are_not(tmp_path):
    proj = tmp_path / "projects" / "p"
    proj.mkdir(parents=True)
    shutil.copy(SESSION, proj / "a.jsonl")
    (proj / "b.jsonl").write_text('{"type":"summary","summary":"x","leafUuid":"u1"}\n')
    (proj / "c.jsonl").write_text(SESSION.read_text().splitlines()[0] + "\n")  # a file-history snapshot only
    rep = analyze([str(tmp_path)], ["model"])
    assert rep.totals["cost"] == TOTAL and set(rep.dialects.values()) == {"claude-code"}
    env = tmp_path / "env.jsonl"  # a Messages envelope that happens to carry a sessionId
    env.write_text(json.dumps({"timestamp": "2026-10-01T00:00:00Z", "sessionId": "s", "message": {
        "id": "m1", "model": "claude-sonnet-4-5", "usage": {"input_tokens": 1000, "output_tokens": 100}}}) + "\n")
    assert dialects.detect(open_source(str(env))).name == "anthropic-messages"
    # ... or a camelCase requestId, with its response under `response` (it would be read as a
    # transcript without usage: every line silently skipped)
    env.write_text(json.dumps({"timestamp": "2026-10-01T00:00:00Z", "requestId": "req_1", "response": {
        "id": "m1", "model": "claude-sonnet-4-5", "usage": {"input_tokens": 1000, "output_tokens": 100}}}) + "\n")
    assert dialects.detect(open_source(str(env))).name == "anthropic-messages"


def test_no_dedupe_merges_only_a_transcripts_own_repeats(tmp_path):
    """--no-dedupe: a transcript's repeated lines still merge, but a CSV row with the same id is
    another request, not a copy to merge with."""
    proj = tmp_path / "projects" / "p"
    proj.mkdir(parents=True)
    shutil.copy(SESSION, proj / "a.jsonl")
    csv = tmp_path / "other.csv"
    csv.write_text("timestamp,model,input_tokens,output_tokens,request_id\n"
                   "2026-11-24T10:00:00Z,claude-opus-4-6,1000,0,msg_015oRrxAaM8CuSF2MFET9J3i\n")
    rep = analyze([str(tmp_path)], ["model"], Options(dedupe=False))
    acc = rep.accounting
    assert (acc.priced, acc.repeats, acc.duplicates) == (4, 2, 0)
    assert rep.totals["cost"] == TOTAL + Decimal(1000 * 5) / 10**6
    rep = analyze([str(tmp_path)], ["model"])  # with dedupe, the CSV copy (fewer tokens) is the duplicate
    assert (rep.accounting.priced, rep.accounting.duplicates) == (3, 1)


def test_a_tree_is_detected_cheaply_but_other_formats_in_it_still_are(tmp_path):
    """After one transcript is detected, siblings that look like transcripts join its scan without a
    full peek; a file of another format in the same tree is still detected as that format."""
    proj = tmp_path / "projects" / "p"
    proj.mkdir(parents=True)
    for name in ("a.jsonl", "b.jsonl", "c.jsonl"):
        shutil.copy(SESSION, proj / name)
    shutil.copy(ROOT / "fixtures" / "dialects" / "anthropic-messages" / "envelope.jsonl", proj / "d.jsonl")
    rep = analyze([str(tmp_path)], ["source"], Options(quarantine=str(tmp_path / "q.jsonl")))
    assert {k.rsplit("/", 1)[1]: v for k, v in rep.dialects.items()} == {
        "a.jsonl": "claude-code", "b.jsonl": "claude-code", "c.jsonl": "claude-code", "d.jsonl": "anthropic-messages"}
    by = {r["source"]: r["cost"] for r in rep.rows.to_dicts()}
    assert by["claude-code"] == TOTAL and by["anthropic-messages"] == Decimal("0.17275")


def test_lines_not_decoded_are_only_those_that_cannot_be_usage(tmp_path, quarantine):
    """Only lines that mention "assistant" (or do not end as a JSON object) are decoded. Spaces
    around the colon do not hide a usage line; bytes that are not UTF-8 inside a message's text do
    not fail the run: that line is quarantined (issue 12 §7), and its request is still counted from
    its other copies."""
    proj = tmp_path / "projects" / "p"
    proj.mkdir(parents=True)
    spaced = [json.dumps(json.loads(x)) if x.strip() else x for x in SESSION.read_text().splitlines()]
    (proj / "spaced.jsonl").write_text("\n".join(spaced) + "\n")
    rep = analyze([str(tmp_path)], ["model"], Options(quarantine=quarantine))
    assert rep.totals["cost"] == TOTAL and rep.accounting.repeats == 2
    raw = SESSION.read_bytes().replace(b"Let me look at the exporter first.", b"Let me look at the \xff exporter.")
    assert raw != SESSION.read_bytes()
    (proj / "spaced.jsonl").write_bytes(raw)
    shutil.copy(SESSION, proj / "other.jsonl")
    rep = analyze([str(tmp_path)], ["model"], Options(quarantine=quarantine))
    assert rep.totals["cost"] == TOTAL
    assert (rep.accounting.repeats, rep.accounting.quarantined) == (2 + 4, 1) and rep.accounting.balanced
    [q] = [json.loads(x) for x in open(quarantine)]
    line = raw.split(b"\n").index(next(x for x in raw.split(b"\n") if b"\xff" in x)) + 1
    assert (q["file"], q["line"], q["reason"]) == (str(proj / "spaced.jsonl"), line, NOT_UTF8)
    assert "Let me look at the \ufffd exporter." in q["raw"]


def test_a_cut_line_costs_no_reading_of_the_whole_tree_field_by_field(tmp_path, quarantine, monkeypatch):
    """A live session's last line may be cut (being written as the logs are read). The fast path
    quarantines it itself; only the file holding it is read again line by line, for the quarantine
    file (reading a 17,000-file tree field by field took 430 s instead of 9)."""
    from analyzer import pipeline

    proj = tmp_path / "projects" / "p"
    proj.mkdir(parents=True)
    for name in ("a.jsonl", "b.jsonl"):
        shutil.copy(SESSION, proj / name)
    lines = SESSION.read_text().splitlines()
    live = proj / "live.jsonl"
    live.write_text("\n".join(lines[:3]) + "\n" + lines[3][:200])  # no newline: still being written
    reads = []
    real = pipeline.read_logs

    def load(paths, opts, robust=False, **kw):
        reads.append((sorted(paths), robust))
        return real(paths, opts, robust, **kw)

    monkeypatch.setattr(pipeline, "read_logs", load)
    rep = analyze([str(tmp_path)], ["model"], Options(quarantine=quarantine))
    assert rep.totals["cost"] == TOTAL and rep.accounting.quarantined == 1
    assert rep.accounting.balanced
    assert [paths for paths, robust in reads if robust] == [[str(live)]]
    bad = [json.loads(x) for x in open(quarantine)]
    assert [(b["file"], b["line"]) for b in bad] == [(str(live), 4)]
    assert bad[0]["raw"] == lines[3][:200] and "not a JSON object" in bad[0]["reason"]


# -- the content blocks cut out before decoding (mapped._cut) ----------------------------------------

_PIECES = ['"content":[', '],"stop_reason":', '"usage":', '"usage":{"input_tokens":9}', "é", "→", "a", "[", "]",
           "{", "}", '"', "\\", ","]
_text = st.lists(st.sampled_from(_PIECES), max_size=6).map("".join)
_json = st.recursive(st.none() | st.integers(0, 99) | _text,
                     lambda inner: st.lists(inner, max_size=3)
                     | st.dictionaries(st.sampled_from(["content", "stop_reason", "usage", "x"]), inner, max_size=3),
                     max_leaves=8)
_block = st.one_of(st.fixed_dictionaries({"type": st.just("text"), "text": _text}),
                   st.fixed_dictionaries({"type": st.just("tool_use"), "id": st.just("toolu_1"), "input": _json}))
_API_ORDER = ["id", "type", "role", "model", "content", "stop_reason", "stop_sequence", "usage"]
_COMPACT = ((",", ":"),) * 3
_SEPARATORS = st.sampled_from([(",", ":"), (", ", ": "), (", ", ":"), (" ,", ":"), (",\t", ":"), (",", " : ")])


def _read(record) -> tuple:
    """What the claude-code mapping reads from a record."""
    m = record.get("message") if isinstance(record.get("message"), dict) else {}
    return (record.get("timestamp"), record.get("requestId"), record.get("isSidechain"), m.get("id"),
            m.get("model"), m.get("usage"))


@settings(max_examples=300, deadline=None)
@example(blocks=[], order=_API_ORDER, extra={}, before={"content": [1]}, after=None, spacing=_COMPACT)  # earlier content
@example(blocks=[], order=[*_API_ORDER[:5], "usage", *_API_ORDER[5:7]], extra={"citations": [1]}, before=None,
         after=None, spacing=_COMPACT)  # usage between content and an array before stop_reason
@example(blocks=[], order=[*_API_ORDER[:5], "usage", *_API_ORDER[5:7]], extra={}, before=None,
         after={"x": [1], "stop_reason": 1}, spacing=_COMPACT)  # a later object ending like the content
@example(blocks=[], order=["type", "role", "model", "content", "id", "stop_reason", "stop_sequence", "usage"],
         extra={"container": []}, before=None, after=None, spacing=_COMPACT)  # the id between content and an array
@example(blocks=[], order=_API_ORDER, extra={}, before={"content": [1]}, after={"notes": [], "stop_reason": 1},
         spacing=_COMPACT)  # an earlier object's content, a later object's array before a stop_reason
@example(blocks=[], order=["id", "type", "role", "model", "stop_reason", "stop_sequence", "usage", "content"],
         extra={}, before=None, after={"notes": [], "stop_reason": 1}, spacing=_COMPACT)  # content last in its object
@example(blocks=[], order=_API_ORDER, extra={}, before={"content": [], "stop_reason": None}, after=None,
         spacing=((", ", ":"), _COMPACT[1], _COMPACT[2]))  # an earlier content array closed by `], "`
@given(blocks=st.lists(_block, max_size=3), order=st.one_of(st.just(_API_ORDER), st.permutations(_API_ORDER)),
       extra=st.dictionaries(st.sampled_from(["citations", "container"]), _json, max_size=2),
       before=st.one_of(st.none(), _json), after=st.one_of(st.none(), _json),
       spacing=st.tuples(_SEPARATORS, _SEPARATORS, _SEPARATORS))
def test_cutting_the_content_out_never_changes_what_is_read(blocks, order, extra, before, after, spacing):
    """Whatever the content blocks hold (the markers themselves, in text and as tool-input keys,
    multi-byte text), however the message's members are ordered and whatever arrays and objects
    surround it, the line with its content cut out is valid JSON that reads the same as the whole
    line, or the line is left whole. Never a different reading, and never a line the cut broke.
    (`spacing`: the separators the object before the message, the message and the object after it
    are written with.)"""
    j = order.index("stop_reason")
    values = {"id": "msg_1", "type": "message", "role": "assistant", "model": "claude-opus-4-6", "content": blocks,
              "stop_reason": "end_turn", "stop_sequence": None,
              "usage": {"input_tokens": 3, "output_tokens": 5, "cache_read_input_tokens": 7}, **extra}
    members = [*order[:j], *extra, *order[j:]] if extra else order
    def text(value, separators) -> str:
        return json.dumps(value, ensure_ascii=False, separators=separators)

    members_ = ['"parentUuid":"p"', *([f'"x":{text(before, spacing[0])}'] if before is not None else []),
                '"isSidechain":false', f'"message":{text({k: values[k] for k in members}, spacing[1])}',
                *([f'"y":{text(after, spacing[2])}'] if after is not None else []),
                '"requestId":"req_1"', '"type":"assistant"', '"timestamp":"2026-11-24T09:12:01.098Z"']
    line = "{" + ",".join(members_) + "}"
    record = json.loads(line)
    cut = pl.select(mapped._cut(pl.lit(line), "content", "stop_reason")).item()
    if cut == line:
        return
    assert len(cut.encode()) < len(line.encode())
    got = json.loads(cut)
    assert _read(got) == _read(record)
    assert "content" not in got["message"]  # (what the cut is for)


def test_a_tool_input_ending_like_the_content_leaves_the_line_whole():
    """Cut at the tool input's `],"stop_reason":`, the line would not decode, and the whole run would
    be read field by field: such a line is decoded whole instead."""
    message = {"id": "m", "content": [{"type": "tool_use", "input": {"k": [1], "stop_reason": 1}}],
               "stop_reason": "tool_use", "usage": {"input_tokens": 1}}
    line = json.dumps({"message": message}, separators=(",", ":"))
    assert pl.select(mapped._cut(pl.lit(line), "content", "stop_reason")).item() == line
    plain = json.dumps({"message": {**message, "content": [{"type": "text", "text": "hi"}]}}, separators=(",", ":"))
    assert json.loads(pl.select(mapped._cut(pl.lit(plain), "content", "stop_reason")).item()) == {
        "message": {"id": "m", "stop_reason": "tool_use", "usage": {"input_tokens": 1}}}


@pytest.mark.parametrize("line", [
    '{"x\\"content":[1],"stop_reason":"end"}',  # the marker's quote escaped, inside another key
    '{"meta":{"k\\"content":["a"],"stop_reason":"in"},"usage":{"input_tokens":9}}',
    '{"content":[1] ,"usage":{"input_tokens":10},"m":[0],"stop_reason":"end_turn"}',  # spaces after the array
    '{"content":[1], "a":[2],"stop_reason":"x"}',
    '{"o":{"content":[1] },"p":{"q":[3],"stop_reason":1}}',
    '{"o":{"content":[1] },"p":[3],"stop_reason":1}',
    '{"a":{"content":[], "stop_reason":null},"content":[],"stop_reason":0}',
])
def test_lines_whose_text_does_not_show_where_the_content_ends_are_left_whole(line):
    """Found by fuzzing earlier versions of the rule: each was cut into a different reading or
    into invalid JSON."""
    assert pl.select(mapped._cut(pl.lit(line), "content", "stop_reason")).item() == line


def _cut_as_three_searches(line: pl.Expr, member: str, next_: str) -> pl.Expr:
    """The cut's rule with the member counted literally and each kind of `]` counted by a search of
    its own (mapped._cut counts both kinds in one search), then the same check of the array."""
    start, end = f'"{member}":[', f'],"{next_}":'
    a, b = line.str.find(start, literal=True), line.str.find(end, literal=True)
    opener = line.str.slice(a - 1, 1)
    fits = ((a >= 1) & (a < b) & ((opener == "{") | (opener == ","))
            & (line.str.count_matches(start, literal=True) == 1)
            & (line.str.count_matches(r'\][ \t\r\n]*,[ \t\r\n]*"') == 1)
            & ~line.str.contains(r"\][ \t\r\n]*\}"))
    fits = fits & mapped._valid_array(line.str.slice(a + len(start) - 1, b - a - len(start) + 2))
    return pl.when(fits).then(line.str.slice(0, a) + line.str.slice(b + 2)).otherwise(line)


_NEAR_MARKERS = st.lists(st.sampled_from(['"content":[', '],"stop_reason":', "]", "}", "{", ",", '"', " ", "\t", "\n",
                                          "[", "a", "é", "\\", ':', '"content"', "stop_reason"]),
                         max_size=14).map("".join)


@settings(max_examples=500, deadline=None)
@example(text='{"content":[],"content":[],"stop_reason":1}')
@example(text='{"content":[1] }],"stop_reason":1}')
@example(text='{"content":[1] , "x":[2],"stop_reason":1}')
@given(text=_NEAR_MARKERS)
def test_one_count_of_both_kinds_of_close_cuts_as_two_searches_did(text):
    """Any text made of the markers, brackets, quotes and spaces: cut exactly as the rule with one
    search per test (also as a column of many such lines, as a batch is cut)."""
    got = pl.select(mapped._cut(pl.lit(text), "content", "stop_reason")).item()
    assert got == pl.select(_cut_as_three_searches(pl.lit(text), "content", "stop_reason")).item()
    lines = pl.DataFrame({"l": [text, "{" + text, text + "}", "{" + text + "}"]})
    assert lines.select(mapped._cut(pl.col("l"), "content", "stop_reason")).equals(
        lines.select(_cut_as_three_searches(pl.col("l"), "content", "stop_reason")))


@pytest.mark.parametrize("text", ["a<b>", "x-y", "p.q", "r|s", "t(u)", "v\\w", "[z]", "#&~", "^$", "*+?{}"])
def test_a_member_name_is_counted_as_text_in_the_regex(text):
    """The member is counted by a regex: every character of its name stands for itself."""
    line = pl.lit(f"{text}{text}x{text}")
    assert pl.select(line.str.count_matches(mapped._regex_literal(text))).item() == 3


def test_two_records_torn_into_one_line_are_quarantined_not_cut_into_one(tmp_path, quarantine):
    """Two writes interleaved: the first half of one record, then another whole record. Cutting from
    the first record's content to the second's end would make one valid record of both (the first's
    id and model, the second's usage); the line is decoded whole instead, fails, and is quarantined."""
    proj = tmp_path / "projects" / "p"
    proj.mkdir(parents=True)
    lines = SESSION.read_text().splitlines()
    usage = [i for i, line in enumerate(lines) if '"assistant"' in line and '"content":[' in line]
    first, second = lines[usage[0]], lines[usage[-1]]
    torn = first[:first.index('"content":[') + 30] + second
    (proj / "s.jsonl").write_text("\n".join([*lines, torn]) + "\n")
    rep = analyze([str(tmp_path)], ["model"], Options(quarantine=quarantine))
    assert rep.totals["cost"] == TOTAL
    assert rep.accounting.quarantined == 1 and rep.accounting.balanced


def test_a_transcript_whose_content_mentions_the_markers_costs_the_same(tmp_path, quarantine):
    """Content blocks holding the cut's markers (in text, as a tool input's keys, a usage object of a
    tool's own) and multi-byte text before them: the usage read is the message's, line by line."""
    proj = tmp_path / "projects" / "p"
    proj.mkdir(parents=True)
    tricky = [
        {"type": "text", "text": 'é→ "content":[1],"stop_reason":"x","usage":{"input_tokens":999999}'},
        {"type": "tool_use", "id": "toolu_9", "name": "Edit",
         "input": {"content": [1, {"usage": {"input_tokens": 999999}}], "stop_reason": "z"}},
    ]
    out = []
    for n, text in enumerate(SESSION.read_text().splitlines()):
        record = json.loads(text)
        if record.get("type") == "assistant" and "content" in record["message"]:
            record["message"]["content"] = record["message"]["content"] + tricky[: n % 3]
        out.append(json.dumps(record, ensure_ascii=False, separators=(",", ":")))
    (proj / "s.jsonl").write_text("\n".join(out) + "\n")
    rep = analyze([str(tmp_path)], ["model"], Options(quarantine=quarantine))
    assert rep.totals["cost"] == TOTAL
    assert (rep.accounting.repeats, rep.accounting.quarantined) == (2, 0) and rep.accounting.balanced


def _tree_of_sessions(root, n: int = 6) -> str:
    """Sessions in several projects: each its own messages (ids renamed), the third resumed by the
    last one (repeats in another file, far away in the walk), one with a broken assistant line."""
    text = SESSION.read_text()
    for i in range(n):
        body = text.replace('"msg_01', f'"msg_{i % (n - 1)}1')  # the last session replays session 0's ids
        if i == 2:
            lines = body.splitlines()
            lines.insert(3, '{"type":"assistant","message":{"id":"m","model":"claude-opus-4-6","usage":{"input_tokens":')
            body = "\n".join(lines) + "\n"
        proj = root / "projects" / f"p{i}"
        proj.mkdir(parents=True)
        (proj / f"s{i}.jsonl").write_text(body)
    return str(root)


def test_a_tree_read_as_concurrent_shards_reads_the_same_requests(tmp_path, monkeypatch):
    """A large tree is decoded by several scans at once (shards of consecutive files). That is only
    how the work is split: the report, the accounting, which copy of a repeated message wins, each
    request's file and line, and the quarantine file are those of one scan."""
    from polars.testing import assert_frame_equal

    from analyzer import pipeline, price_requests, sources

    tree = _tree_of_sessions(tmp_path / "t")

    def run(name: str):
        q = str(tmp_path / f"{name}.jsonl")
        rep = analyze([tree], ["day", "model", "project"], Options(quarantine=q))
        rows, acc = price_requests([tree], Options(quarantine=q))
        return rep, rows.lazy().collect(), acc.as_dict(), open(q).read()

    one = run("one")
    assert len(pipeline.read_logs([tree], Options()).parts) == 1
    monkeypatch.setattr(sources, "SHARD_BYTES", 1)
    for scans in (2, 3, 6):
        monkeypatch.setattr(sources, "concurrent_scans", lambda scans=scans: scans)
        monkeypatch.setattr(pipeline, "concurrent_scans", lambda scans=scans: scans)
        assert 1 < len(pipeline.read_logs([tree], Options()).parts) <= scans  # (shards of about equal bytes)
        rep, rows, acc, quarantined = run(f"shards{scans}")
        assert_frame_equal(rep.rows, one[0].rows)
        assert rep.accounting.as_dict() | {"quarantine_file": None} == one[0].accounting.as_dict() | {"quarantine_file": None}
        assert_frame_equal(rows, one[1])
        assert acc | {"quarantine_file": None} == one[2] | {"quarantine_file": None}
        assert quarantined == one[3]
    # (what the runs agree on is right: 5 sessions of their own, one replayed, one broken line)
    assert one[0].totals["cost"] == 5 * (TOTAL)
    acc = one[0].accounting
    assert (acc.priced, acc.repeats, acc.quarantined, acc.not_billable) == (15, 5 * 2 + 5, 1, 6)
    assert set(one[1].filter(pl.col("request_id").str.starts_with("msg_01"))["source_file"].str.extract(r"(s\d)\.jsonl")) == {"s0"}


def test_shards_are_consecutive_runs_of_files_of_about_equal_size(tmp_path, monkeypatch):
    from analyzer import sources

    sizes = [5, 1, 1, 1, 9, 1, 1, 1, 1, 3]
    paths = []
    for i, size in enumerate(sizes):
        paths.append(str(tmp_path / f"{i}.jsonl"))
        (tmp_path / f"{i}.jsonl").write_bytes(b"x" * size)
    src = sources.SourceFile(paths[0], "jsonl", index=10, members=tuple(paths[1:]),
                             member_indexes=tuple(range(11, 20)))
    monkeypatch.setattr(sources, "concurrent_scans", lambda: 3)
    monkeypatch.setattr(sources, "SHARD_BYTES", 100)
    assert sources.shards(src) == [src]  # 24 bytes: not worth a second scan
    monkeypatch.setattr(sources, "SHARD_BYTES", 8)
    got = sources.shards(src)
    assert [s.paths for s in got] == [paths[:4], paths[4:5], paths[5:]]  # 8, 9, 7 bytes
    assert [(s.index, s.member_indexes) for s in got] == [(10, (11, 12, 13)), (14, ()), (15, (16, 17, 18, 19))]
    assert [s.display for s in got] == [paths[0], paths[4], paths[5]]
    assert [sum(s.file_sizes()) for s in got] == [8, 9, 7]


# -- §9 of issue 12: dialect details learnt from other projects' real logs ----------------------------

def _line(**kw) -> str:
    usage = {"input_tokens": 100, "output_tokens": 50, **kw.pop("usage", {})}
    rec = {"timestamp": "2025-06-01T10:00:00Z", "message": {"id": kw.pop("mid", "msg_1"),
           "model": "claude-sonnet-4-20250514", "usage": usage}, **kw}
    return json.dumps(rec)


SONNET4_LINE = (100 * 3 + 50 * 15) / Decimal(10**6)  # $3 in, $15 out


def test_service_tier_default_is_the_standard_tier(tmp_path, quarantine):
    """Older Claude Code and SDK versions wrote `"service_tier": "default"`: whole sessions were
    quarantined as an unknown tier."""
    proj = tmp_path / "projects" / "p"
    proj.mkdir(parents=True)
    (proj / "s.jsonl").write_text(_line(type="assistant", sessionId="s", requestId="r1",
                                        usage={"service_tier": "default"}) + "\n")
    rep = analyze([str(tmp_path)], ["service_tier"], Options(quarantine=quarantine))
    assert rep.rows["service_tier"].to_list() == ["standard"] and rep.totals["cost"] == SONNET4_LINE
    assert (rep.accounting.priced, rep.accounting.quarantined) == (1, 0)


def test_lines_without_a_type_are_transcripts_with_project_session_and_cost(tmp_path):
    """Older versions (and ccusage's fixtures) wrote usage lines without `type`: once read as Messages
    API records (no project, sessionId and costUSD as raw dimensions)."""
    proj = tmp_path / "projects" / "-home-me-app"
    proj.mkdir(parents=True)
    lines = [_line(sessionId="s1", requestId="r1", costUSD=0.00105),
             _line(sessionId="s1", requestId="r1", costUSD=0.00105),  # the same request again: a repeat
             _line(mid="msg_2", costUSD=0.00105),  # no session, no requestId: costUSD alone says Claude Code
             json.dumps({"type": "user", "sessionId": "s1", "message": {"role": "user", "content": "usage?"}}),
             json.dumps({"sessionId": "s1", "cwd": "/home/me/app"})]  # no usage: not a record
    (proj / "s.jsonl").write_text("\n".join(lines) + "\n")
    assert dialects.detect(open_source(str(proj / "s.jsonl"))).name == "claude-code"
    rep = analyze([str(tmp_path)], ["project", "session"])
    rows = {r["session"]: r for r in rep.rows.to_dicts()}
    assert set(rows) == {"s1", None} and {r["project"] for r in rows.values()} == {"-home-me-app"}
    assert rows["s1"]["cost"] == SONNET4_LINE and rows["s1"]["reported_cost"] == Decimal("0.00105")
    acc = rep.accounting
    assert (acc.rows_read, acc.priced, acc.repeats, acc.quarantined) == (3, 2, 1, 0) and acc.balanced


def test_a_message_id_under_two_request_ids_is_one_request(tmp_path):
    """A message id names one billed response: the same message id under another requestId (a
    `/btw` copy, outside a sidechain too) is a copy, not a second request (keyed on both, as ccusage
    keyed them before its #1155, it was billed twice)."""
    proj = tmp_path / "projects" / "p"
    proj.mkdir(parents=True)
    lines = [_line(type="assistant", sessionId="s", requestId="req_a"),
             _line(type="assistant", sessionId="s", requestId="req_a", usage={"output_tokens": 10}),  # partial
             _line(type="assistant", sessionId="s", requestId="req_b")]
    (proj / "s.jsonl").write_text("\n".join(lines) + "\n")
    rep = analyze([str(tmp_path)], [])
    assert rep.totals["cost"] == SONNET4_LINE and rep.totals["requests"] == 1
    assert (rep.accounting.priced, rep.accounting.repeats) == (1, 2)


_ids = st.one_of(st.none(), st.text(alphabet=":\\ab", max_size=4))
_mids = st.one_of(_ids, st.text(alphabet=":\\ab", max_size=4).map(lambda t: "msg_" + t))


@given(a=st.tuples(_mids, _ids), b=st.tuples(_mids, _ids))
@settings(max_examples=300, deadline=None)
@example(a=("msg_a", "r1"), b=("msg_a", "r2"))  # an Anthropic message id under two request ids: one
@example(a=("a", "r1"), b=("a", "r2"))  # another message id (a relay's): two
@example(a=("msg_a:r1", None), b=("msg_a", "r1"))
def test_the_request_key_names_the_message_or_else_the_request(a, b):
    """Two lines share a key exactly when they share an Anthropic message id (`msg_...`), or share
    another message id and the request id, or have none and share the request id, whatever `:` and
    `\\` they hold (an empty message id counts as none). An earlier version's key
    (`message.id:requestId`) maps to this one's, and this one's to itself."""
    from analyzer.dialects.claude_code import old_key_to_new, request_key

    def names(m, r):
        if not m:
            return ("request", r)
        return ("message", m) if m.startswith("msg_") else ("pair", m, r)
    norm = [names(*a), names(*b)]
    frame = pl.DataFrame({"m": [a[0], b[0]], "r": [a[1], b[1]]}, schema={"m": pl.String, "r": pl.String})
    esc = pl.col("m").str.replace_all("\\", "\\\\", literal=True).str.replace_all(":", "\\:", literal=True)
    old = pl.when(pl.col("m").is_null()).then(pl.lit(":") + pl.col("r")).otherwise(esc + (pl.lit(":") + pl.col("r")).fill_null(""))
    got = frame.select(request_key(pl.col("m"), pl.col("r")).alias("k"), old_key_to_new(old).alias("o"))
    assert got["k"].to_list() == [x if x != "" else None for x in got["o"].to_list()]  # (old: "" for ("", None))
    assert got.select(old_key_to_new(pl.col("k")))["k"].to_list() == got["k"].to_list()
    keys = got["k"].to_list()
    if ("request", None) in norm:
        assert None in keys
    else:
        assert (keys[0] == keys[1]) == (norm[0] == norm[1])


def test_a_log_holding_request_id_and_usage_does_not_join_a_transcript_tree(tmp_path):
    """Typeless transcripts widened the signature (requestId, costUSD): a tree's further files are
    still recognised cheaply only as current transcripts. A Bedrock invocation log (its text holds
    "requestId" and "usage") read after a transcript once joined its scan, every line then skipped
    as not usage: 6 requests silently gone. A typeless transcript is detected in full, and joins."""
    proj = tmp_path / "projects" / "p"
    proj.mkdir(parents=True)
    shutil.copy(SESSION, proj / "a.jsonl")
    (proj / "b.jsonl").write_text(_line(sessionId="s", requestId="r1", costUSD=0.00105) + "\n")  # typeless
    bedrock = ROOT / "fixtures" / "dialects" / "bedrock-invocations" / "invocations.jsonl"
    shutil.copy(bedrock, proj / "c.jsonl")
    rep = analyze([str(tmp_path)], ["source"], Options(quarantine=str(tmp_path / "q.out")))
    alone = analyze([str(bedrock)], ["source"], Options(quarantine=str(tmp_path / "q2.out")))
    assert {k.rsplit("/", 1)[1]: v for k, v in rep.dialects.items()} == {
        "a.jsonl": "claude-code", "b.jsonl": "claude-code", "c.jsonl": "bedrock-invocations"}
    by = {r["source"]: r["cost"] for r in rep.rows.to_dicts()}
    assert by == {"claude-code": TOTAL + SONNET4_LINE, "bedrock-invocations": alone.totals["cost"]}
    assert rep.accounting.balanced

"""attack23: the change merged as 12ea253 (cc2): a file set's files fingerprinted from the bytes its
reader reads, a Claude Code run's reported $ on its model with most tokens, and the file-name
masking's lower-case-word fast path.

What broke:
- A transcript shrunk (logrotate's copytruncate) between the reader's fstat and its read, then
  written again before the quarantine pass: the fingerprint covered only the bytes read (none), but
  the run's later passes read up to the size of the fstat, so records the count never saw were
  written to the quarantine file (`1 row quarantined`, three lines in the file). 1804dbe refused
  the run. Fixed: a short read lowers the run's size of the file to the bytes read.
- Reported $ placed by a window over the rows (`over` each result line) of the counts taken again:
  not streamed, a 200 MB stream file of 100,000 runs went 9.6-11.1 -> 16.5-16.8 CPU s, 438-501 ->
  712-773 MB. Fixed: chosen among the line's members before the explode (9.8-11.1 s, 462-488 MB).
- A count written `100000.0` (counted 100,000 by the rows) read as 0 when the $ was placed. Fixed;
  `1e5` still read 0 there: fixed since (cc3), the counts read once for the rows and the placing.
- A transcript written again between detection and its reading is no longer refused (1804dbe did):
  kept so (cc3): count and quarantine file agree, both read the new bytes; only detection saw the
  old ones (see the test below).

What held (tried by hand against 1804dbe, in a tree of three transcripts; a change made after
detection, at the reader's read, and before the quarantine pass): truncated, shrunk, rewritten the
same size, appended mid-line, appended, replaced by rename (other or same bytes), deleted, a 10 MiB
file (read alone in its batch). Before the quarantine pass every one is refused as before (an
append is no change). At the read itself, the reader counts what it reads and the quarantine pass
reads the same bytes (the old code refused these runs: its fingerprint predated detection; so does
the window between detection and the read, see below).
Reported $: copies of a run across files in other member order or with other counts compete as
whole records (one reported $ either file order); zero tokens, null, a string cost, a quarantined
member. Masking: 300,000 random names of ASCII, `ſ`, `İ`, `ı`, Kelvin sign and fullwidth letters
around the words: the fast path says what the regex says, and masks the same.
"""

from __future__ import annotations

import csv
import io
import itertools
import json
import os
import random
from decimal import Decimal as D

import pytest
from click.testing import CliRunner

from analyzer import pipeline, safe_text, sources
from analyzer.cli import main

SESSION = "2ff46cd5-f4e7-4724-bb20-579dae7956ea"


def _line(i: int, output: int = 7, tag: str = "msg") -> str:
    return json.dumps({"isSidechain": False, "cwd": "/home/dev/acme", "sessionId": SESSION, "type": "assistant",
                       "timestamp": f"2026-11-24T09:{i % 60:02d}:00.000Z", "requestId": f"req_{tag}{i}",
                       "message": {"id": f"{tag}_{i:04d}", "role": "assistant", "model": "claude-haiku-4-5",
                                   "content": [{"type": "text", "text": "x" * 5000}],
                                   "usage": {"input_tokens": 10, "output_tokens": output}}},
                      separators=(",", ":"))


def _tree(tmp_path):
    """Three transcripts of one project (one file set) of 4 records; s1's third is quarantined (-1)."""
    proj = tmp_path / "claude" / "projects" / "-home-dev-acme"
    proj.mkdir(parents=True)
    files = []
    for k in range(3):
        path = proj / f"s{k}.jsonl"
        path.write_text("".join(_line(100 * k + i, -1 if (k, i) == (1, 2) else 7) + "\n" for i in range(4)))
        files.append(path)
    return tmp_path / "claude" / "projects", files


def _report(tmp_path, root):
    q = tmp_path / "q.jsonl"
    result = CliRunner().invoke(main, ["report", str(root), "--by", "day", "--format", "csv", "--quarantine", str(q)])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result, q


@pytest.mark.parametrize("keep", [0, 7_000])
def test_a_file_shrunk_as_it_is_read_then_written_again_quarantines_only_what_was_counted(tmp_path, monkeypatch,
                                                                                          keep):
    """copytruncate between the reader's fstat of s0 and its read (to nothing, or mid-way through its
    second record), the writer's new records (one bad) before the quarantine pass: the quarantine file
    holds what the count quarantined, no record it never read."""
    root, files = _tree(tmp_path)
    real_read, real_write, done = sources._read_into, pipeline.write_quarantine, []

    def read_into(fd, view, path):
        if path == str(files[0]) and not done:
            done.append(path)
            os.truncate(path, keep)
        return real_read(fd, view, path)

    def write(*args, **kwargs):
        with files[0].open("a") as f:
            f.write("".join(_line(700 + i, -5 if i == 0 else 7, tag="new") + "\n" for i in range(4)))
        return real_write(*args, **kwargs)
    monkeypatch.setattr(sources, "_read_into", read_into)
    monkeypatch.setattr(pipeline, "write_quarantine", write)
    result, q = _report(tmp_path, root)
    assert done and result.exit_code == 0, result.output
    rows = [(os.path.basename(r["file"]), r["line"]) for r in map(json.loads, q.read_text().splitlines())]
    # s0 counted: nothing (keep 0), or its first record and the cut second (unparsable: quarantined)
    assert rows == ([("s1.jsonl", 3)] if keep == 0 else [("s0.jsonl", 2), ("s1.jsonl", 3)])
    assert f"{len(rows)} row{'s' if len(rows) > 1 else ''} quarantined" in result.output
    day = next(csv.DictReader(io.StringIO(result.output[result.output.index("day,"):])))
    assert day["requests"] == str(7 + (keep > 0))  # s1's 3 good, s2's 4, s0's first if kept


def _rewrite_same_size(path):
    path.write_text(path.read_text().replace("msg_", "MSG_", 1))


def _bom(path):
    path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())


@pytest.mark.parametrize("link", ["symlink", "hardlink"])
def test_a_file_of_the_set_named_twice_and_rewritten_before_the_quarantine_pass_is_refused(tmp_path, monkeypatch,
                                                                                           link):
    """A tree that also holds an empty transcript, one with a byte order mark, and a second name of s1
    (the file with the quarantined line): s1 written again the same size is named (refused, no file)."""
    root, files = _tree(tmp_path)
    _bom(files[2])
    (files[0].parent / "empty.jsonl").write_bytes(b"")
    other = files[0].parent / "z-link.jsonl"
    (os.symlink if link == "symlink" else os.link)(files[1], other)
    real_write = pipeline.write_quarantine

    def write(*args, **kwargs):
        _rewrite_same_size(files[1])
        return real_write(*args, **kwargs)
    monkeypatch.setattr(pipeline, "write_quarantine", write)
    result, q = _report(tmp_path, root)
    assert result.exit_code == 2 and not q.exists()
    assert result.output.startswith("llm-cost: error: ") and result.output.count("\n") == 1
    assert "changed during the run (written again)" in result.output
    assert os.path.basename(result.output.split(": changed")[0]) in ("s1.jsonl", "z-link.jsonl")


def test_a_tree_with_bom_empty_and_linked_files_unchanged_is_read_once_each(tmp_path):
    root, files = _tree(tmp_path)
    _bom(files[2])
    (files[0].parent / "empty.jsonl").write_bytes(b"")
    os.link(files[1], files[0].parent / "z-link.jsonl")
    result, q = _report(tmp_path, root)
    assert result.exit_code == 0, result.output
    # the hard link is the same file under another name: skipped (read once), named as such
    rows = [(os.path.basename(r["file"]), r["line"]) for r in map(json.loads, q.read_text().splitlines())]
    assert rows == [("s1.jsonl", 3)]
    day = next(csv.DictReader(io.StringIO(result.output[result.output.index("day,"):])))
    assert day["requests"] == "11"


def test_a_transcript_written_again_between_detection_and_its_reading_is_counted_and_quarantined_as_read(
        tmp_path, monkeypatch):
    """s1 written again after detection told its format, before its records are read: its bad record
    is now its first (its third good), and it has a fifth. The run counts the bytes it reads and the
    quarantine pass reads those same bytes (the reader's fingerprint, checked before it): the quarantine
    file holds the record the count quarantined, as now written, and the report counts the new good
    ones. 1804dbe refused this run (its fingerprint was taken before detection): there is nothing to
    refuse, the count and the quarantine file agree; only detection saw the old first bytes, and a
    transcript's are a transcript's either way (its format told again from them would be the same)."""
    root, files = _tree(tmp_path)
    real_detect = pipeline._detect_formats

    def detect(*args, **kwargs):
        det = real_detect(*args, **kwargs)
        if not (tmp_path / "done").exists():
            (tmp_path / "done").touch()
            files[1].write_text("".join(_line(500 + i, -3 if i == 0 else 7, tag="new") + "\n" for i in range(5)))
        return det
    monkeypatch.setattr(pipeline, "_detect_formats", detect)
    result, q = _report(tmp_path, root)
    assert (tmp_path / "done").exists() and result.exit_code == 0, result.output
    quarantined = list(map(json.loads, q.read_text().splitlines()))
    assert [(os.path.basename(r["file"]), r["line"]) for r in quarantined] == [("s1.jsonl", 1)]
    assert json.loads(quarantined[0]["raw"])["message"]["id"] == "new_0500"  # the record as now written
    assert "1 row quarantined" in result.output
    day = next(csv.DictReader(io.StringIO(result.output[result.output.index("day,"):])))
    assert day["requests"] == "12"  # s0's 4, s1's 4 good of 5 (as now written), s2's 4


# -- reported $ -------------------------------------------------------------------------------------

OPUS, HAIKU, SONNET = "claude-opus-4-5-20251101", "claude-haiku-4-5-20251001", "claude-sonnet-4-5-20250929"


def _usage(i=0, o=0, r=0, w=0):
    return {"inputTokens": i, "outputTokens": o, "cacheReadInputTokens": r, "cacheCreationInputTokens": w,
            "webSearchRequests": 0}


def _result(uuid: str, members: list, cost) -> str:
    return json.dumps({"type": "result", "subtype": "success", "is_error": False, "duration_ms": 3952,
                       "duration_api_ms": 12932, "num_turns": 2, "result": "Done.", "session_id": SESSION,
                       "total_cost_usd": cost, "usage": {"input_tokens": 1, "output_tokens": 1},
                       "modelUsage": dict(members), "uuid": uuid})


RUNS = [("run-a", [(OPUS, _usage(8, 269, 23048, 13507)), (HAIKU, _usage(1710, 36))], "0.10459775"),
        ("run-b", [(SONNET, _usage(600, 400)), (HAIKU, _usage(r=1000))], "0.25"),  # a tie: Haiku, first by name
        ("run-c", [(OPUS, _usage()), (SONNET, _usage())], "1.5")]  # no tokens: the first by name


def _reported(tmp_path, name, files):
    d = tmp_path / name
    d.mkdir()
    for k, lines in enumerate(files):
        (d / f"{k}.jsonl").write_text("".join(x + "\n" for x in lines))
    result = CliRunner().invoke(main, ["report", str(d), "--by", "model", "--format", "csv",
                                       "--batch-time", "2026-11-20T10:00:00Z"])
    assert result.exit_code == 0, result.output
    rows = csv.DictReader(io.StringIO(result.output[result.output.index("model,"):]))
    return {r["model"]: D(r["reported_cost"]) for r in rows if r["reported_cost"]}


def test_reported_cost_sum_and_place_whatever_the_member_and_file_order(tmp_path):
    """Each run saved twice (stream-json and json), in two files, with its members in every order,
    and the files either way: every run's reported $ once, on the same model."""
    want = {HAIKU: D("0.25"), OPUS: D("0.10459775") + D("1.5")}
    for n, (flip, order) in enumerate(itertools.product([False, True], itertools.permutations(range(2)))):
        first = [_result(u, [m[i] for i in order], float(c)) for u, m, c in RUNS]
        second = [_result(u, m[::-1], float(c)) for u, m, c in RUNS[::-1]]
        assert _reported(tmp_path, f"t{n}", [second, first] if flip else [first, second]) == want


@pytest.mark.parametrize(("haiku", "where"), [
    # a count named twice counts its first value (as the rows count it): 5, not 100,000
    ('{"inputTokens": 5, "outputTokens": 0, "inputTokens": 100000}', OPUS),
    ('{"inputTokens" : 100000 , "outputTokens":0}', HAIKU),  # spaces around the colon and comma
    ('{"inputTokens": 100000.0, "outputTokens": 0}', HAIKU),  # counted as 100,000 by the rows
    ('{"inputTokens": "100000", "outputTokens": 0}', HAIKU),
    ('{"inputTokens": 1e5, "outputTokens": 0}', HAIKU),  # an exponent: 100,000 to the rows, and here
    ('{"inputTokens": "1E+5", "outputTokens": 0}', HAIKU),
    ('{"inputTokens": " 100000 ", "outputTokens": 0}', HAIKU),  # (the rows strip a quoted count)
    ('{"inputTokens": 1e2, "outputTokens": 0}', OPUS),  # 100 < Opus's 1,000
    ('{"inputTokens": 100000.5, "outputTokens": 0}', None),  # no integer: the run quarantined whole
])
def test_reported_cost_is_placed_by_the_counts_the_rows_count(tmp_path, haiku, where):
    line = _result("run-d", [(OPUS, _usage(i=1000))], "0.5")
    line = line.replace('"modelUsage": {', f'"modelUsage": {{"{HAIKU}": {haiku}, ', 1)
    d = tmp_path / "d"
    d.mkdir()
    (d / "run.jsonl").write_text(line + "\n")
    result = CliRunner().invoke(main, ["report", str(d), "--by", "model", "--format", "csv", "--batch-time",
                                       "2026-11-20T10:00:00Z", "--quarantine", str(tmp_path / "q.jsonl")])
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(result.output[result.output.index("model,"):])))
    if where is None:  # the whole record quarantined: nothing reported
        assert rows == [] and "1 row quarantined" in result.output
    else:
        assert {r["model"]: r["reported_cost"] for r in rows if r["reported_cost"]} == {where: "0.500000000000"}


# -- masking --------------------------------------------------------------------------------------

def test_the_fast_path_says_what_the_regex_says_and_masks_the_same():
    alphabet = list("skSK-aAiIzZoObBeErRcCtTuUhHnN_ /.0123456789") + ["\u017f", "\u0130", "\u0131", "\u212a",
                                                                      "\uff53", "\uff4b", "\uff0d", "\u00e9"]
    words = ["sk-", "AKIA", "ASIA", "AIza", "bearer", "secret", "authorization", "Sk-", "akia", "SECRET",
             "\u017fecret", "Bearer", "aiza", "AuThOrIzAtIoN", "\u017fk-", "\u212aey", "sk-ant-api03-"]
    rng = random.Random(23)
    for _ in range(20_000):
        text = "".join(rng.choice(words) if rng.random() < 0.3 else "".join(rng.choices(alphabet, k=rng.randint(0, 6)))
                       for _ in range(rng.randint(1, 5)))
        regex = safe_text._PY_CANDIDATE.search(text) is not None
        assert safe_text._maybe_secret(text) == regex, text
        masked = text
        for rx, replacement in safe_text._PY_SECRETS if regex else ():
            masked = rx.sub(replacement, masked)
        assert safe_text.mask_secrets(text) == masked, text


@pytest.mark.parametrize(("name", "masked"), [
    ("/logs/sk-ant-api03-" + "A" * 40 + ".jsonl", "/logs/sk-ant-api03-\u2026AAAA.jsonl"),
    ("x" * 100_000 + "_sk-proj-" + "b" * 30, "x" * 100_000 + "_sk-proj-\u2026bbbb"),
    ("sk-" + "a" * 20, "sk-\u2026aaaa"),
    ("\u0130authorization: Basic dXNlcjpwYXNzd29yZA==", "\u0130authorization: Basic \u20269yZA"),
    ("Bearer " + "t" * 30 + ".csv", "Bearer \u2026.csv"),  # (`.` is a token character)
    ("AKIA" + "ABCDEFGHIJKLMNOP", "AKIA\u2026MNOP"),
])
def test_names_the_old_code_masked_are_masked(name, masked):
    assert safe_text.mask_secrets(name) == masked

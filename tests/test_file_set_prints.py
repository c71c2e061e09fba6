"""A file set's files (a Claude Code tree) are fingerprinted by the reader, from the bytes it reads.

The run refuses to write a quarantine file from a log changed since it was counted (see
analyzer/fingerprint.py). Files read in one scan as a file set used to be opened and read once more
for that fingerprint before detection: the tree reader now takes it from the bytes it reads. The
checks must say the same as before: a file written again or replaced during the run is named, one
appended to is not a change.
"""

from __future__ import annotations

import json
import os

import pytest
from click.testing import CliRunner

from analyzer import fingerprint, pipeline
from analyzer.cli import main

SESSION = "2ff46cd5-f4e7-4724-bb20-579dae7956ea"


def _line(i: int, output: int = 7) -> str:
    return json.dumps({"isSidechain": False, "cwd": "/home/dev/acme", "sessionId": SESSION, "type": "assistant",
                       "timestamp": f"2026-11-24T09:{i:02d}:00.000Z", "requestId": f"req_{i}",
                       "message": {"id": f"msg_{i:04d}", "role": "assistant", "model": "claude-haiku-4-5",
                                   "content": [{"type": "text", "text": "x" * 5000}],
                                   "usage": {"input_tokens": 10, "output_tokens": output}}},
                      separators=(",", ":"))


def _tree(tmp_path):
    """Three transcripts of one project (one file set); the second holds a quarantined line (-1)."""
    proj = tmp_path / "claude" / "projects" / "-home-dev-acme"
    proj.mkdir(parents=True)
    files = []
    for k in range(3):
        path = proj / f"s{k}.jsonl"
        path.write_text("".join(_line(10 * k + i, -1 if (k, i) == (1, 2) else 7) + "\n" for i in range(4)))
        files.append(path)
    return tmp_path / "claude" / "projects", files


def _run(tmp_path, monkeypatch, change=None, command="report"):
    """(exit code, output, files fingerprinted apart from their reading before the quarantine pass, which
    reads the one file it needs alone) of a report of the tree."""
    root, files = _tree(tmp_path)
    taken, before = [], []
    real_take, real_write = fingerprint.take, pipeline.write_quarantine

    def take(path):
        taken.append(os.path.basename(path))
        return real_take(path)

    def write(*args, **kwargs):
        before.extend(taken)
        if change is not None:
            change(files)
        return real_write(*args, **kwargs)
    monkeypatch.setattr(fingerprint, "take", take)
    monkeypatch.setattr(pipeline, "write_quarantine", write)
    args = ["--by", "day", "--format", "csv"] if command == "report" else ["-o", str(tmp_path / "rows.parquet")]
    result = CliRunner().invoke(main, [command, str(root), *args, "--quarantine", str(tmp_path / "q.jsonl")])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result.exit_code, result.output, before, files


def test_a_file_sets_files_are_not_opened_again_for_their_fingerprints(tmp_path, monkeypatch):
    code, out, taken, _ = _run(tmp_path, monkeypatch)
    assert code == 0, out
    assert taken == []
    assert len((tmp_path / "q.jsonl").read_text().splitlines()) == 1


def _rewritten(files):
    path = files[1]
    text = path.read_text()
    path.write_text(text.replace("msg_", "MSG_", 1))  # the same size, its first bytes changed


def _replaced(files):
    path = files[2]
    text = path.read_text()
    path.rename(path.with_suffix(".old"))
    path.write_text(text)  # the same bytes, another file


def _appended(files):
    with files[0].open("a") as f:
        f.write(_line(99) + "\n")


@pytest.mark.parametrize("command", ["report", "price"])
@pytest.mark.parametrize(("change", "index", "why"), [(_rewritten, 1, "written again"),
                                                      (_replaced, 2, "replaced by another file")])
def test_a_file_of_the_set_changed_during_the_run_is_named(tmp_path, monkeypatch, change, index, why, command):
    code, out, _, files = _run(tmp_path, monkeypatch, change, command)
    assert code == 2 and not (tmp_path / "q.jsonl").exists()
    assert out == (f"llm-cost: error: {files[index]}: changed during the run ({why}); its records were counted as "
                   "it was before, and cannot be read again: run again\n")


def test_a_file_of_the_set_appended_to_during_the_run_is_no_change(tmp_path, monkeypatch):
    code, out, _, _ = _run(tmp_path, monkeypatch, _appended)
    assert code == 0, out
    assert [json.loads(x)["line"] for x in (tmp_path / "q.jsonl").read_text().splitlines()] == [3]

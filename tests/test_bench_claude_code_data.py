"""bench/claude_code_data.py: the generated Claude Code tree is shaped like real transcripts."""

from __future__ import annotations

import json
import sys

from tests.conftest import ROOT

sys.path.insert(0, str(ROOT / "bench"))
from claude_code_data import generate_tree  # noqa: E402


def test_a_sidechain_replay_is_a_copy_of_its_parents_message_under_a_new_request_id(tmp_path):
    """Claude Code's `/btw` side questions write the parent's responses again into the sidechain file
    (ccusage issue #913): the same message (id, content, usage) under a new requestId. The bench's
    replays are such copies, not responses of their own."""
    manifest = generate_tree(tmp_path / "claude", 3000, 7, workers=1)
    assert manifest["replays"] >= 1
    main, side = {}, []
    for path in (tmp_path / "claude" / "projects").rglob("*.jsonl"):
        for line in path.read_text().splitlines():
            rec = json.loads(line)
            if rec.get("type") != "assistant" or rec["message"]["model"] == "<synthetic>":
                continue
            if rec["isSidechain"]:
                assert "subagents" in path.parts
                side.append(rec)
            else:
                main.setdefault(rec["message"]["id"], []).append(rec)
    replays = [r for r in side if r["message"]["id"] in main]
    assert len(replays) == manifest["replays"]
    for r in replays:
        parent = main[r["message"]["id"]][-1]  # the response's last line: its final usage
        assert r["message"] == parent["message"]
        assert r["requestId"] != parent["requestId"]

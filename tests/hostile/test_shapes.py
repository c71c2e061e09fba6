"""Hostile inputs for issue 21's log shapes: each test is the minimal input of a defect found by trying
to get a wrong total with exit 0, a lost or double-counted row, or a misdetection (attack21).

Prices by hand (per 1M tokens): Opus 4.5 $5 in, $6.25 5m write, $0.50 read, $25 out; Haiku 4.5 $1 in,
$5 out; Sonnet 4.5 $3 in, $15 out.
"""

from __future__ import annotations

import json
from decimal import Decimal as D

from ..dialects.exports_util import FIXTURES, cost

STREAM = FIXTURES / "claude-code-stream" / "stream.jsonl"
BT = "2026-11-20T10:00:00Z"
# The fixture run, by hand: Opus 8 x 5 + 13,507 x 6.25 + 23,048 x 0.50 + 269 x 25 = 0.10270775;
# Haiku 1,710 x 1 + 36 x 5 = 0.00189.
RUN = D("0.10270775") + D("0.00189")


def _write(tmp_path, lines, name="run.jsonl"):
    path = tmp_path / name
    path.write_text("".join(line + "\n" for line in lines))
    return path


# --- claude-code-stream ---------------------------------------------------------------------------

def test_two_runs_of_one_session_without_uuid_both_count(tmp_path):
    """Older results carry no uuid; a resumed session keeps its session id. The second run's result
    was taken for a repeat of the first (same `<session>#<model>` id): half the spend lost, exit 0."""
    lines = STREAM.read_text().splitlines()
    first = json.loads(lines[-1])
    del first["uuid"]
    second = {**first, "duration_ms": 5120, "duration_api_ms": 14001}
    path = _write(tmp_path, [*lines[:-1], json.dumps(first), *lines[1:-1], json.dumps(second)])
    total, report = cost([path], batch_time=BT)
    assert total == 2 * RUN
    acc = report.accounting
    assert (acc.priced, acc.repeats, acc.duplicates, acc.balanced) == (2, 4, 0, True)


def test_same_run_without_uuid_saved_twice_counts_once(tmp_path):
    """The other side of the rule above: the same uuid-less run as stream-json and as json is one run."""
    lines = STREAM.read_text().splitlines()
    res = json.loads(lines[-1])
    del res["uuid"]
    a = _write(tmp_path, [*lines[:-1], json.dumps(res)], "stream.jsonl")
    b = tmp_path / "result.json"
    b.write_text(json.dumps(res, indent=2))
    total, report = cost([a, b], batch_time=BT)
    assert total == RUN and report.accounting.priced == 1 and report.accounting.balanced

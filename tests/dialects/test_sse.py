"""Issue 21.4: raw server-sent events, as saved from a streaming response by curl (`-N`, or `-i` with the
HTTP headers first) or a proxy: `event:`/`data:` lines read exactly like the same events as JSON lines.

stream.sse holds the events of stream.jsonl in the framing of Anthropic's "Streaming Messages" docs
(`event: <type>` then `data: <json>`, a blank line after each event). By hand: Sonnet 4.5 1,200 in x $3
+ 5,000 read x $0.30 + 310 out x $15; Haiku 4.5 800 in x $1 + 55 out x $5 (per 1M) = 0.010825.
"""

from __future__ import annotations

import gzip
import json
import os
import shutil
from decimal import Decimal as D
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from analyzer import sources
from analyzer.cli import main
from analyzer.sources import expand_paths, open_source, sse_to_lines

from .exports_util import FIXTURES, cost, detect, quarantined

HERE = FIXTURES / "anthropic-messages"
SSE, JSONL = HERE / "stream.sse", HERE / "stream.jsonl"
BT = "2026-10-01T00:00:00Z"
TOTAL = D("0.010825")


def _curl_i(tmp_path, body: str, name="curl.txt"):
    """`curl -i`: status line and headers, CRLF line ends, then the events (and OpenAI's `[DONE]`)."""
    head = "HTTP/2 200\r\ncontent-type: text/event-stream; charset=utf-8\r\nrequest-id: req_011CV\r\n\r\n"
    path = tmp_path / name
    path.write_bytes((head + body.replace("\n", "\r\n") + "data: [DONE]\r\n\r\n").encode())
    return path


def test_detected_and_priced_like_the_json_lines():
    assert open_source(str(SSE)).container == "jsonl"  # read as the events' JSON lines
    assert detect(SSE) == detect(JSONL) == "anthropic-messages"
    sse_total, sse = cost([SSE], batch_time=BT)
    jsonl_total, jsonl = cost([JSONL], batch_time=BT)
    assert sse_total == jsonl_total == TOTAL
    assert sse.accounting.as_dict() | {"files": 0} == jsonl.accounting.as_dict() | {"files": 0}


@pytest.mark.parametrize("name", ["capture.txt", "capture.log", "capture"])
def test_sniffed_whatever_the_name(tmp_path, name):
    path = tmp_path / name
    shutil.copy(SSE, path)
    assert cost([path], batch_time=BT)[0] == TOTAL


def test_curl_with_headers_crlf_and_done(tmp_path):
    path = _curl_i(tmp_path, SSE.read_text())
    total, report = cost([path], batch_time=BT)
    assert total == TOTAL and report.accounting.quarantined == 0


def test_gzipped_and_stdin(tmp_path, monkeypatch):
    gz = tmp_path / "stream.sse.gz"
    gz.write_bytes(gzip.compress(SSE.read_bytes()))
    assert cost([gz], batch_time=BT)[0] == TOTAL
    monkeypatch.setattr(sources, "_STDIN_SPOOL", None)  # (stdin is spooled once per process)
    res = CliRunner().invoke(main, ["report", "-", "--batch-time", BT, "--format", "json"], input=SSE.read_bytes())
    assert res.exit_code == 0 and '"cost": "0.010825000000"' in res.output


def test_broken_event_is_quarantined_at_its_line_in_the_capture(tmp_path, quarantine):
    lines = SSE.read_text().splitlines()
    n = next(i for i, line in enumerate(lines) if '"output_tokens":310' in line)
    lines[n] = lines[n][:60]
    path = tmp_path / "cut.sse"
    path.write_text("\n".join(lines) + "\n")
    _, report = cost([path], batch_time=BT, quarantine=quarantine)
    [bad] = quarantined(quarantine)
    assert (bad["file"], bad["line"]) == (str(path), n + 1) and report.accounting.balanced
    assert bad["raw"].startswith('{"type":"message_delta"')


def test_untimed_events_dated_by_the_captures_own_mtime(tmp_path):
    path = tmp_path / "old.sse"
    shutil.copy(SSE, path)
    os.utime(path, (1_790_000_000, 1_790_000_000))  # 2026-09-21T14:13:20Z
    _, report = cost([path])
    assert any("dated 2026-09-21T14:13:20" in n for n in report.notes)


def test_directory_walk_finds_sse_files(tmp_path):
    shutil.copy(SSE, tmp_path / "a.sse")
    assert expand_paths([str(tmp_path)]) == [str(tmp_path / "a.sse")]


def test_capture_without_events_is_one_clear_error(tmp_path):
    path = tmp_path / "idle.sse"
    path.write_text(": keep-alive\n\nevent: ping\ndata: {\"type\": \"ping\"}\n\n")
    res = CliRunner().invoke(main, ["report", str(path)])
    assert res.exit_code == 2 and "Traceback" not in res.output


_JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=8),
                     lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
                     max_leaves=8)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.dictionaries(st.text(max_size=6), _JSON, max_size=4), min_size=1, max_size=6),
       st.sampled_from(["\n", "\r\n"]), st.booleans())
def test_every_data_payload_keeps_its_text_and_line(tmp_path, events, newline, comments):
    """The rule: each `data:` line's payload is the record at that line number, exactly; every other
    line is blank."""
    lines = []
    for i, e in enumerate(events):
        if comments:
            lines.append(": keep-alive")
        lines += [f"event: e{i}", "data: " + json.dumps(e), f"id: {i}", ""]
    path = tmp_path / "capture.sse"
    path.write_bytes(newline.join(lines).encode() + newline.encode())
    out = Path(sse_to_lines(str(path))).read_text(encoding="utf-8").split("\n")
    assert out[-1] == "" and len(out) - 1 == len(lines)
    for i, line in enumerate(lines):
        want = line[len("data: "):] if line.startswith("data: ") else ""
        assert out[i] == want
        if want:
            assert json.loads(out[i]) == json.loads(want)

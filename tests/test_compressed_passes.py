"""Compressed logs: inflated a piece at a time (bounded memory), and decoded once for dedupe's passes."""

from __future__ import annotations

import gzip
import json

import pytest
from click.testing import CliRunner

from analyzer import pipeline, sources
from analyzer.cli import main


@pytest.mark.parametrize("members", [1, 3])
def test_gunzip_yields_at_most_a_piece_at_a_time(members, monkeypatch):
    monkeypatch.setattr(sources, "PIECE_BYTES", 1 << 12)
    raw = [(b'{"request_id":"r%d","x":"%s"}\n' % (m, b"a" * 50)) * 3000 for m in range(members)]
    data = b"".join(gzip.compress(r) for r in raw)  # `cat a.gz b.gz`: one valid gzip file
    g = sources._Gunzip()
    out = [chunk for i in range(0, len(data), 1000) for chunk in g(data[i:i + 1000])]
    assert b"".join(out) == b"".join(raw) and not g.cut()
    assert max(map(len, out)) <= 1 << 12 and len(out) > members  # (700 KB inflated from a few KB)


def test_gunzip_truncated_is_cut():
    data = gzip.compress(b"x" * 100_000)
    g = sources._Gunzip()
    list(g(data[:-10]))
    assert g.cut()


@pytest.mark.parametrize("suffix", [".csv", ".jsonl"])
def test_compressed_log_is_decoded_once_and_reports_as_plain(suffix, tmp_path, monkeypatch):
    rows = [{"request_id": f"r{i % 5}", "timestamp": "2026-11-01T10:00:00+0000", "model": "claude-haiku-4-5",
             "input_tokens": 100 + i, "output_tokens": i} for i in range(12)]
    if suffix == ".csv":
        text = "request_id,timestamp,model,input_tokens,output_tokens\n" + "".join(
            f"{r['request_id']},{r['timestamp']},{r['model']},{r['input_tokens']},{r['output_tokens']}\n" for r in rows)
    else:
        text = "".join(json.dumps(r) + "\n" for r in rows)
    plain, packed = tmp_path / f"log{suffix}", tmp_path / f"log{suffix}.gz"
    plain.write_text(text)
    packed.write_bytes(gzip.compress(text.encode()))
    spooled = []
    real = pipeline.spool
    monkeypatch.setattr(pipeline, "spool", lambda *a, **k: spooled.append(out := real(*a, **k)) or out)

    def report(path) -> dict:
        r = CliRunner().invoke(main, ["report", str(path), "--by", "day,model", "--format", "json", "--quarantine",
                                      str(tmp_path / "q.jsonl")], catch_exceptions=False)
        assert r.exit_code == 0, r.output
        doc = json.loads(r.stdout)
        return {k: doc[k] for k in ("rows", "totals", "accounting")}

    assert report(packed) == report(plain)
    assert spooled[0].decoded and spooled[0].spooled  # the gzip file: decoded once into spooled rows
    assert spooled[1].decoded == (suffix == ".jsonl")  # a plain CSV is read again instead (cheap)
    acc = report(packed)["accounting"]
    assert (acc["rows_read"], acc["duplicates"]) == (12, 7)

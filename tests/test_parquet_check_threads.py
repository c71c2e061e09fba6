"""The Parquet check (sources.check_parquet) decodes a file's column chunks on several threads: the
line a damaged file gives is the one the check gave a chunk at a time (the first chunk that fails,
column by column), and the check reads the held descriptor (a duplicate of it), closing what it
opened whatever it found."""

from __future__ import annotations

import json
import os
import threading
from decimal import Decimal as D
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from analyzer import sources
from analyzer.cli import main

MODELS = ["claude-sonnet-4-5", "claude-opus-4-6", "claude-haiku-4-5"]
N, GROUP = 4000, 500  # (8 row groups of 6 columns: 48 chunks)
CRC = "damaged Parquet: could not verify page integrity, CRC checksum verification failed for page_ordinal 0"


def _write(path: Path, bad_text_group: int | None = None) -> None:
    """A log in 8 row groups, page checksums stored; `user` (bytes) holds a byte that is not UTF-8 in
    row group `bad_text_group` (0-based), if any."""
    users = [b"u%d" % (i % 7) for i in range(N)]
    if bad_text_group is not None:
        users[bad_text_group * GROUP + 3] = b"\xff\xfe"
    pq.write_table(pa.table({
        "request_id": [f"req_{i:05d}" for i in range(N)],
        "timestamp": [f"2026-10-01T{i // 3600 % 24:02d}:{i // 60 % 60:02d}:{i % 60:02d}Z" for i in range(N)],
        "model": [MODELS[i % 3] for i in range(N)],
        "input_tokens": [1000] * N,
        "output_tokens": [100] * N,
        "user": pa.array(users, pa.binary()),
    }), path, row_group_size=GROUP, compression="NONE", use_dictionary=False, write_page_checksum=True)


def _damage_page(path: Path, column: str, group: int) -> None:
    """The last byte of `column`'s last page in row group `group` flipped: its checksum fails."""
    meta = pq.ParquetFile(path).metadata
    chunk = meta.row_group(group).column(meta.schema.names.index(column))
    data = bytearray(path.read_bytes())
    data[chunk.data_page_offset + chunk.total_compressed_size - 1] ^= 0xFF
    path.write_bytes(bytes(data))


def _open_descriptors(folder: Path) -> int:
    """This process's descriptors of files in `folder`."""
    names = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            names.append(os.readlink(f"/proc/self/fd/{fd}"))
        except OSError:
            continue
    return sum(name.startswith(f"{folder}/") for name in names)


@pytest.fixture
def parallel(monkeypatch, tmp_path):
    """The check on 4 threads, whatever the machine's cores; the first two chunks wait for each other
    (on one thread, the first would wait for ever: a test that ran a chunk at a time fails), and no
    chunk is decoded while more than the held descriptor and its one duplicate are open."""
    monkeypatch.setattr(sources, "_check_threads", lambda: 4)
    meet, calls, lock = threading.Barrier(2, timeout=30), [0], threading.Lock()
    seen: dict[str, object] = {"threads": set(), "open": 0}
    decode = sources._decode_chunk

    def spied(*args):
        with lock:
            calls[0] += 1
            first = calls[0] <= 2
            seen["threads"].add(threading.get_ident())
            seen["open"] = max(seen["open"], _open_descriptors(tmp_path))
        if first:
            meet.wait()
        return decode(*args)
    monkeypatch.setattr(sources, "_decode_chunk", spied)
    return seen


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="counts descriptors in /proc")
def test_a_clean_file_checked_on_threads_is_read_whole_and_closes_what_it_opened(tmp_path, parallel):
    log = tmp_path / "log.parquet"
    _write(log)
    r = CliRunner().invoke(main, ["report", str(log), "--format", "json", "-q"])
    assert r.exit_code == 0, r.output
    # (1,000 in / 100 out each: sonnet $0.0045, opus $0.0075, haiku $0.0015; 1,334 + 1,333 + 1,333 of them)
    assert D(json.loads(r.output)["totals"]["cost"]) == 1334 * D("0.0045") + 1333 * D("0.0075") + 1333 * D("0.0015")
    assert len(parallel["threads"]) >= 2
    assert parallel["open"] == 2  # (the held descriptor and the duplicate PyArrow reads: not one a thread)
    assert _open_descriptors(tmp_path) == 0


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="counts descriptors in /proc")
@pytest.mark.parametrize("damage", ["late page", "late page, and bad text earlier", "bad text"])
def test_a_late_damaged_page_is_the_same_line_on_threads(tmp_path, monkeypatch, parallel, damage):
    """A page damaged in the last row group of `model` (the third of six columns), and/or text that is
    not UTF-8 in the second row group of `user` (the last column, an earlier row group: decoded
    earlier by some thread, but later in the check's order): the first, by column, is the line."""
    log = tmp_path / "log.parquet"
    _write(log, bad_text_group=None if damage == "late page" else 1)
    if damage != "bad text":
        _damage_page(log, "model", 7)
    why = CRC if damage.startswith("late page") else "column 'user' holds bytes that are not UTF-8 text"
    line = f"llm-cost: error: {log}: cannot read ({why})\n"
    for command in (["report", str(log)], ["price", str(log), "-o", str(tmp_path / "rows.csv")]):
        r = CliRunner().invoke(main, command)
        assert r.exit_code == 2, r.output
        assert r.output == line
        assert _open_descriptors(tmp_path) == 0
    assert len(parallel["threads"]) >= 2
    assert not (tmp_path / "rows.csv").exists()
    monkeypatch.setattr(sources, "_check_threads", lambda: 1)  # (a chunk at a time: the same line)
    monkeypatch.setattr(sources, "_decode_chunk", _plain_decode)
    r = CliRunner().invoke(main, ["report", str(log)])
    assert (r.exit_code, r.output) == (2, line)


_plain_decode = sources._decode_chunk

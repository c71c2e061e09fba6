"""File naming of cloud log deliveries: S3 `.json.gz` holding JSON Lines, Bedrock batch `*.jsonl.out`."""

from __future__ import annotations

import gzip
import json

from analyzer.sources import expand_paths, open_source

RECORDS = [{"timestamp": "2026-10-10T10:00:00Z", "model": "claude-haiku-4-5", "input_tokens": 10, "output_tokens": 1},
           {"timestamp": "2026-10-10T11:00:00Z", "model": "claude-haiku-4-5", "input_tokens": 20, "output_tokens": 2}]


def test_json_named_file_holding_json_lines_is_read_as_lines(tmp_path):
    path = tmp_path / "20261124T1015Z_0a1b.json.gz"
    path.write_bytes(gzip.compress("".join(json.dumps(r) + "\n" for r in RECORDS).encode()))
    src = open_source(str(path))
    assert (src.container, src.compression, len(src.sample)) == ("jsonl", "gzip", 2)


def test_json_document_stays_a_document(tmp_path):
    one = tmp_path / "one.json"
    one.write_text(json.dumps({"data": RECORDS}, indent=2))
    arr = tmp_path / "arr.json"
    arr.write_text("[\n" + ",\n".join(json.dumps(r) for r in RECORDS) + "\n]\n")
    assert open_source(str(one)).container == "json"
    assert open_source(str(arr)).container == "json"


def test_bedrock_batch_output_is_walked_and_its_manifest_is_not(tmp_path):
    (tmp_path / "job").mkdir()
    (tmp_path / "job" / "input.jsonl.out").write_text(json.dumps(RECORDS[0]) + "\n")
    (tmp_path / "job" / "manifest.json.out").write_text('{"totalRecordCount": 1}\n')
    assert [p.split("/")[-1] for p in expand_paths([str(tmp_path)])] == ["input.jsonl.out"]
    assert open_source(str(tmp_path / "job" / "input.jsonl.out")).container == "jsonl"


def test_json_lines_named_json_with_a_first_line_longer_than_the_peek(tmp_path):
    """A Bedrock record carrying a long prompt can be larger than the first bytes looked at."""
    big = dict(RECORDS[0], prompt="x" * 200_000)
    path = tmp_path / "long.json.gz"
    path.write_bytes(gzip.compress((json.dumps(big) + "\n" + json.dumps(RECORDS[1]) + "\n").encode()))
    assert open_source(str(path)).container == "jsonl"

"""Logs read where they live: s3:// against a real local S3 (moto's server on 127.0.0.1), http://
against a local web server. The same bytes read from a bucket and from local files give the same
report; every failure is one line naming the URL, exit 2."""

from __future__ import annotations

import functools
import gzip
import http.server
import json
import os
import shutil
import threading
from decimal import Decimal
from pathlib import Path

import polars as pl
import pytest
from click.testing import CliRunner

from analyzer.cli import main

from .conftest import ROOT, SAMPLE, canonical_frame, write_frame

moto_server = pytest.importorskip("moto.server")
boto3 = pytest.importorskip("boto3")

CLAUDE_CODE = ROOT / "fixtures" / "dialects" / "claude-code"


def run(*args, env=None):
    return CliRunner().invoke(main, [str(a) for a in args], env=env, catch_exceptions=False)


@pytest.fixture(scope="module")
def s3_server():
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def s3(s3_server, monkeypatch):
    """A fresh bucket `logs` on the local S3, and the standard AWS variables pointing at it."""
    for k in list(os.environ):
        if k.startswith("AWS_"):
            monkeypatch.delenv(k)
    env = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_REGION": "us-east-1",
           "AWS_ENDPOINT_URL": s3_server}
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    client = boto3.client("s3", endpoint_url=s3_server, region_name="us-east-1",
                          aws_access_key_id="testing", aws_secret_access_key="testing")
    client.create_bucket(Bucket="logs")
    yield client
    for page in client.get_paginator("list_objects_v2").paginate(Bucket="logs"):
        for o in page.get("Contents", []):
            client.delete_object(Bucket="logs", Key=o["Key"])
    client.delete_bucket(Bucket="logs")


def upload_tree(client, local: Path, prefix: str) -> None:
    for path in sorted(local.rglob("*")):
        if path.is_file():
            client.upload_file(str(path), "logs", f"{prefix}/{path.relative_to(local).as_posix()}")


def report_json(*args) -> dict:
    result = run("report", *args, "--by", "month,model", "--format", "json", "-q")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def without_sources(report: dict) -> dict:
    """A report with file names left out (the bucket's URLs and the local paths differ by design)."""
    out = json.loads(json.dumps(report))
    out["dialects"] = {k.rsplit("/", 1)[-1]: v for k, v in out.get("dialects", {}).items()}
    out["accounting"].pop("quarantine_file")  # (each run writes its own)
    return out


def test_sample_from_a_bucket_equals_local(s3, tmp_path):
    upload_tree(s3, SAMPLE, "exports/2026")
    local = report_json(SAMPLE, "--quarantine", tmp_path / "q1.jsonl")
    remote = report_json("s3://logs/exports/2026", "--quarantine", tmp_path / "q2.jsonl")
    assert without_sources(remote) == without_sources(local)
    assert local["totals"]["cost"] == remote["totals"]["cost"]


def test_gzip_csv_jsonl_parquet_objects(s3, tmp_path):
    rows = canonical_frame([
        {"request_id": "r1", "timestamp": "2026-11-02T10:00:00Z", "model": "claude-sonnet-4-5",
         "input_tokens": 1_000_000, "output_tokens": 100_000},
        {"request_id": "r2", "timestamp": "2026-11-03T10:00:00Z", "model": "claude-haiku-4-5",
         "input_tokens": 2_000_000, "output_tokens": 0},
    ])
    local = tmp_path / "local"
    local.mkdir()
    for name in ("a.csv", "b.jsonl", "c.parquet"):
        write_frame(rows.with_columns(pl.col("request_id") + name), local / name)
    (local / "b.jsonl.gz").write_bytes(gzip.compress((local / "b.jsonl").read_bytes()))
    (local / "b.jsonl").unlink()
    upload_tree(s3, local, "night")
    want = report_json(local, "--quarantine", tmp_path / "q1.jsonl")
    got = report_json("s3://logs/night/", "--quarantine", tmp_path / "q2.jsonl")
    assert without_sources(got) == without_sources(want)
    assert got["accounting"]["files"] == 3
    # each file: Sonnet 4.5 1M in ($3) + 0.1M out ($1.50), Haiku 4.5 2M in ($2): $6.50; three files
    assert Decimal(got["totals"]["cost"]) == Decimal("19.5")


def test_a_plain_json_lines_object_with_a_late_key_is_read_whole(s3, tmp_path, monkeypatch):
    """A plain JSON Lines object is read before its search for late keys (canonical.KeyCheck): its
    keys are counted after the read, in the copy the run took of the object. A `Cache_Read_Tokens`
    first written on the 300th line is priced from the bucket as from the local file, and a file
    without one is read once, by the count alone."""
    lines = [{"request_id": f"r{i}", "timestamp": "2026-11-02T10:00:00Z", "model": "claude-sonnet-4-5",
              "input_tokens": 1000, "output_tokens": 100} for i in range(300)]
    late = {**lines[-1], "request_id": "late", "Cache_Read_Tokens": 1_000_000}
    local = tmp_path / "local"
    local.mkdir()
    (local / "late.jsonl").write_text("".join(json.dumps(r, separators=(",", ":")) + "\n" for r in [*lines, late]))
    (local / "clean.jsonl").write_text("".join(json.dumps(r, separators=(",", ":")) + "\n" for r in lines))
    upload_tree(s3, local, "plain")
    from analyzer import pipeline

    counted = []
    monkeypatch.setattr(pipeline, "key_colons", lambda path, _count=pipeline.key_colons: counted.append(path) or _count(path))
    monkeypatch.setattr(pipeline, "SEARCH_KEYS_FIRST", False)
    for name in ("late.jsonl", "clean.jsonl"):
        want = report_json(local / name, "--quarantine", tmp_path / "q1.jsonl")
        got = report_json(f"s3://logs/plain/{name}", "--quarantine", tmp_path / "q2.jsonl")
        assert without_sources(got) == without_sources(want)
    assert len(counted) == 4  # (each file, local and remote, was read before its search)
    # Sonnet 4.5: 301 x (1,000 in at $3 + 100 out at $15 a million) = $1.354500; 1M cache reads at $0.30: $0.30
    assert Decimal(got["totals"]["cost"]) == Decimal("1.3545") - Decimal("0.0045")
    late_report = report_json("s3://logs/plain/late.jsonl", "--quarantine", tmp_path / "q3.jsonl")
    assert Decimal(late_report["totals"]["cost"]) == Decimal("1.3545") + Decimal("0.30")


def test_claude_code_tree_in_a_bucket(s3, tmp_path):
    upload_tree(s3, CLAUDE_CODE, "laptop")
    want = report_json(CLAUDE_CODE, "--quarantine", tmp_path / "q1.jsonl")
    got = report_json("s3://logs/laptop", "--quarantine", tmp_path / "q2.jsonl")
    assert without_sources(got) == without_sources(want)
    result = run("report", "s3://logs/laptop", "--by", "project", "--format", "json", "-q",
                 "--quarantine", tmp_path / "q3.jsonl")
    projects = {r["project"] for r in json.loads(result.stdout)["rows"]}
    assert projects == {r["project"] for r in json.loads(run(
        "report", CLAUDE_CODE, "--by", "project", "--format", "json", "-q", "--quarantine",
        tmp_path / "q4.jsonl").stdout)["rows"]}


def test_glob_matches_keys_by_part(s3, tmp_path):
    upload_tree(s3, SAMPLE, "x/2026")
    s3.put_object(Bucket="logs", Key="x/2026/deep/october.csv", Body=(SAMPLE / "october.csv").read_bytes())
    one = report_json("s3://logs/x/2026/*.csv", "--quarantine", tmp_path / "q1.jsonl")
    assert without_sources(one) == without_sources(
        report_json("s3://logs/x/2026/october.csv", "--quarantine", tmp_path / "q1.jsonl"))
    assert one["accounting"]["files"] == 1
    deep = report_json("s3://logs/x/**/*.csv", "--quarantine", tmp_path / "q2.jsonl")
    assert deep["accounting"]["files"] == 2


def test_price_rows_name_the_object(s3, tmp_path):
    upload_tree(s3, SAMPLE, "e")
    out = tmp_path / "rows.csv"
    result = run("price", "s3://logs/e/october.csv", "-o", out, "-q", "--quarantine", tmp_path / "q.jsonl")
    assert result.exit_code == 0, result.output
    files = pl.read_csv(out)["source_file"].unique().to_list()
    assert files == ["s3://logs/e/october.csv"]


def test_quarantine_names_the_object(s3, tmp_path):
    s3.put_object(Bucket="logs", Key="bad/night.jsonl", Body=b'{"request_id": "a", "timestamp": "2026-11-01T00:00:00Z", '
                  b'"model": "claude-sonnet-4-5", "input_tokens": 10, "output_tokens": 1}\n{"broken\n')
    q = tmp_path / "q.jsonl"
    result = run("report", "s3://logs/bad/night.jsonl", "--quarantine", q, "-q")
    assert result.exit_code == 0, result.output
    record = json.loads(q.read_text().splitlines()[0])
    assert record["file"] == "s3://logs/bad/night.jsonl" and record["line"] == 2


def test_ingest_from_a_bucket_is_idempotent_by_url(s3, tmp_path):
    upload_tree(s3, SAMPLE, "e")
    store = tmp_path / "store"
    first = run("ingest", "s3://logs/e", "--store", store)
    assert first.exit_code == 0, first.output
    again = run("ingest", "s3://logs/e", "--store", store)
    assert again.exit_code == 0, again.output
    assert "unchanged" in again.output or "0 of" in again.output
    local = report_json(SAMPLE, "--quarantine", tmp_path / "q.jsonl")
    stored = report_json("--store", store)
    assert stored["totals"]["cost"] == local["totals"]["cost"]


@pytest.mark.parametrize("url, said", [
    ("s3://logs/nothing/here.csv", "no such object or prefix"),
    ("s3://no-such-bucket/x.csv", "no such bucket"),
    ("s3://logs/none/*.csv", "no object matches this pattern"),
])
def test_missing_things_are_one_line(s3, url, said):
    result = run("report", url)
    assert result.exit_code == 2
    assert result.output.strip().count("\n") == 0, result.output
    assert said in result.output and url.split("/")[2] in result.output


def test_no_endpoint_is_one_line(s3, monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")  # (the discard port: nothing listens)
    result = run("report", "s3://logs/x.csv")
    assert result.exit_code == 2
    assert result.output.startswith("llm-cost: error: s3://logs/x.csv: ") and result.output.count("\n") == 1


def test_a_key_that_climbs_out_is_never_written_outside(s3, tmp_path):
    s3.put_object(Bucket="logs", Key="t/../../../escape.csv", Body=(SAMPLE / "october.csv").read_bytes())
    s3.put_object(Bucket="logs", Key="t/ok.csv", Body=(SAMPLE / "october.csv").read_bytes())
    result = run("report", "s3://logs/t/", "--format", "json", "-q", "--quarantine", tmp_path / "q.jsonl")
    # (the listing itself is refused by the object store client: one line, nothing copied)
    assert result.exit_code == 2 and "key holds `..`" in result.output and result.output.count("\n") == 1
    assert not Path("/tmp/escape.csv").exists() and not (tmp_path / "escape.csv").exists()


def test_outputs_and_stores_on_object_storage_are_refused(s3, tmp_path):
    result = run("report", SAMPLE, "-o", "s3://logs/out.csv")
    assert result.exit_code == 2 and "writes local files only" in result.output
    result = run("ingest", SAMPLE, "--store", "s3://logs/store")
    assert result.exit_code == 2 and "the store is a local directory" in result.output


def test_secrets_in_a_url_are_not_printed(s3):
    result = run("report", "https://user:sk-ant-api03-" + "x" * 40 + "@example.invalid/a.csv?X-Amz-Signature=abc")
    assert result.exit_code == 2
    assert "sk-ant-api03-" + "x" * 40 not in result.output and "X-Amz-Signature=abc" not in result.output


@pytest.fixture
def web(tmp_path):
    root = tmp_path / "site"
    shutil.copytree(SAMPLE, root)
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *a: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_a_file_from_a_web_server(web, tmp_path):
    want = report_json(SAMPLE / "october.csv", "--quarantine", tmp_path / "q1.jsonl")
    got = report_json(f"{web}/october.csv", "--quarantine", tmp_path / "q2.jsonl")
    assert without_sources(got) == without_sources(want)
    missing = run("report", f"{web}/nope.csv")
    assert missing.exit_code == 2 and "nope.csv" in missing.output


def test_plain_http_elsewhere_is_refused():
    result = run("report", "http://example.com/logs.csv")
    assert result.exit_code == 2 and "use https://" in result.output


def test_wrong_credentials_are_one_line(s3, monkeypatch):
    from moto.core.authorization import enable_iam_authentication

    s3.put_object(Bucket="logs", Key="n/october.csv", Body=(SAMPLE / "october.csv").read_bytes())
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAWRONGWRONGWRONG1")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "not-the-secret")
    with enable_iam_authentication():
        result = run("report", "s3://logs/n/october.csv")
    assert result.exit_code == 2 and result.output.count("\n") == 1
    assert "s3://logs/n/october.csv" in result.output and "not-the-secret" not in result.output
    assert "access denied (check the credentials" in result.output


def test_a_password_in_a_url_is_not_in_the_report(web, tmp_path):
    """The error lines hid `user:password@`, but a report read through such a URL named its source
    with the password in full (source_file, dialects, notes)."""
    secret = "hunter2-" + "p" * 20
    url = web.replace("http://", f"http://user:{secret}@") + "/october.csv"
    result = run("report", url, "--by", "source_file", "--format", "json", "--quarantine", tmp_path / "q.jsonl")
    assert result.exit_code == 0, result.output
    assert secret not in result.output
    got = json.loads(result.stdout)
    assert [r["source_file"] for r in got["rows"]] == [f"{web}/october.csv"]
    assert list(got["dialects"]) == [f"{web}/october.csv"]

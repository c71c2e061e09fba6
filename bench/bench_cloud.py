"""Benchmark `llm-cost report` on the cloud log formats (Bedrock invocation logs, Vertex logging rows,
OpenTelemetry span exports), at realistic record sizes.

    python bench/bench_cloud.py --records 200000

Each format's file is made from its fixture records, repeated with fresh ids and times (Bedrock
records keep their request bodies: a real invocation log carries the prompt when text delivery is
on). Each report runs in its own process; wall time and that process's peak RSS are printed.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FIX = ROOT / "fixtures" / "dialects"


def _good_lines(path: Path, n: int) -> list[dict]:
    return [json.loads(x) for x in path.read_text().splitlines()[:n]]


def make_bedrock(out: Path, records: int) -> None:
    base = _good_lines(FIX / "bedrock-invocations" / "invocations.jsonl", 6)
    with out.open("w") as f:
        for i in range(records):
            r = dict(base[i % len(base)])
            r["requestId"] = f"req-{i:012d}"
            r["timestamp"] = f"2026-11-{1 + i % 24:02d}T{i % 24:02d}:{i % 60:02d}:00Z"
            f.write(json.dumps(r, separators=(",", ":")) + "\n")


def make_vertex(out: Path, records: int) -> None:
    base = _good_lines(FIX / "vertex-logging" / "requests.jsonl", 3)
    with out.open("w") as f:
        for i in range(records):
            r = json.loads(json.dumps(base[i % len(base)]))
            r["full_response"]["id"] = f"msg_vrtx_{i:012d}"
            r["logging_time"] = f"2026-11-{1 + i % 24:02d} {i % 24:02d}:{i % 60:02d}:00.000000 UTC"
            f.write(json.dumps(r, separators=(",", ":")) + "\n")


def make_otel(out: Path, records: int, per_document: int = 10) -> None:
    doc = _good_lines(FIX / "otel-genai" / "spans.jsonl", 1)[0]
    span = doc["resourceSpans"][0]["scopeSpans"][0]["spans"][0]
    with out.open("w") as f:
        for d in range(0, records, per_document):
            spans = []
            for i in range(d, min(d + per_document, records)):
                s = json.loads(json.dumps(span))
                s["spanId"] = f"{i:016x}"
                s["startTimeUnixNano"] = str(1_763_942_400_000_000_000 + i * 1_000_000_000)
                for a in s["attributes"]:
                    if a["key"] == "gen_ai.response.id":
                        a["value"]["stringValue"] = f"msg_{i:012d}"
                spans.append(s)
            doc["resourceSpans"][0]["scopeSpans"][0]["spans"] = spans
            f.write(json.dumps(doc, separators=(",", ":")) + "\n")


REPORT = ("from analyzer.cli import main;"
          "sys.argv=['llm-cost','report',sys.argv[1],'--by','day,model','--format','json','-q',"
          "'--quarantine','/dev/null'];"
          "\ntry: main()\nexcept SystemExit: pass\n")
# The floor: read every line and parse one field of it (what touching each record once costs).
FLOOR = ("import polars as pl;pl.scan_csv(sys.argv[1],has_header=False,separator='\\x1f',quote_char=None,"
         "new_columns=['l'],schema_overrides={'l':pl.String}).select(pl.col('l').str.json_path_match('$.x')"
         ".is_null().sum()).collect(engine='streaming')\n")


def run(code: str, path: Path) -> tuple[float, float, float]:
    """(wall s, CPU s, peak RSS MiB) of `code` in a fresh process (CPU time: the machine may be shared)."""
    code = ("import resource,sys\n" + code + "r=resource.getrusage(resource.RUSAGE_SELF);"
            "print(r.ru_utime+r.ru_stime, r.ru_maxrss, file=sys.stderr)")
    t = time.perf_counter()
    p = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, check=True)
    cpu, rss = p.stderr.strip().splitlines()[-1].split()
    return time.perf_counter() - t, float(cpu), int(rss) / 1024


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--records", type=int, default=200_000)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        print(f"{'format':<22}{'records':>10}{'MiB':>6}{'wall s':>8}{'CPU s':>7}{'RSS MiB':>9}"
              f"{'floor CPU s':>13}")
        for name, make in (("bedrock-invocations", make_bedrock), ("vertex-logging", make_vertex),
                           ("otel-genai", make_otel)):
            path = Path(tmp) / f"{name}.jsonl"
            make(path, args.records)
            wall, cpu, rss = run(REPORT, path)
            floor = run(FLOOR, path)[1]
            print(f"{name:<22}{args.records:>10,}{path.stat().st_size / 2**20:>6.0f}{wall:>8.2f}{cpu:>7.2f}{rss:>9.0f}"
                  f"{floor:>13.2f}")


if __name__ == "__main__":
    main()

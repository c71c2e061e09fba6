"""Benchmark `llm-cost report` on a Claude Code projects tree, against ccusage and a Polars baseline.

    python bench/bench_claude_code.py --records 1000000        # or: make bench-cc
    python bench/bench_claude_code.py --records 10000000       # or: make bench-large (35 GB on disk)
    python bench/bench_claude_code.py --by-project             # the same lines, one file per project

1. Generates (bench/claude_code_data.py; reused between runs) a Claude Code config dir of --records
   assistant lines, ~17,000 transcript files and ~3.5 GB per million, and a Messages-API JSONL of
   --messages responses, under bench/data/ (git-ignored).
2. Installs ccusage@20.0.24 into bench/.ccusage (npm; a benchmark tool, not a dependency of llm-cost)
   unless it is there, and runs its native binary as `ccusage daily --offline --json` with
   CLAUDE_CONFIG_DIR pointing at the tree (HOME is an empty directory, so that it finds nothing else;
   TZ=UTC, so that its days are UTC days like llm-cost's).
3. Measures each command in its own process (bench.py's harness: wall time, peak RSS via GNU time):
   ccusage; `llm-cost report <tree> --by day --format json`; a hand-written Polars plan (decode every
   line with a typed schema, keep assistant lines, dedupe, price in Float64); the same plan decoding
   only the lines that contain `"usage"`; a decode floor (every line's `type` only); `llm-cost
   report` of the Messages-API file. Wall time, CPU time and how busy the rest of the machine was.
4. Compares the daily totals of llm-cost and ccusage, and explains the difference with the Polars
   plan, which prices every request both ways: Anthropic's rule (a request whose prompt is over 200K
   tokens is billed entirely at the long-context rates, where the model had them then) and ccusage's
   (only the tokens above 200K of each token category at the higher rate, for the models its price
   table gives `*_above_200k_tokens`, at any date). Writes bench/results-claude-code-<records>.json.
"""

from __future__ import annotations

import argparse
import compileall
import datetime as dt
import json
import os
import platform
import shutil
import stat
import statistics
import subprocess
import sys
import tempfile
from dataclasses import asdict
from decimal import Decimal
from pathlib import Path

import polars as pl
from claude_code_data import GENERATOR_VERSION, RECORDS_PER_FILE, generate_messages, generate_tree

import bench as harness
from bench import Measurement, llm_cost, log, run_measured

BENCH_DIR = Path(__file__).resolve().parent
CCUSAGE_VERSION = "20.0.24"
CCUSAGE_DIR = BENCH_DIR / ".ccusage"
LONG_CONTEXT = 200_000

# ---------------------------------------------------------------------------------------------
# The Polars baseline: what a competent user would write to price Claude Code transcripts
# ---------------------------------------------------------------------------------------------

USAGE = pl.Struct({
    "input_tokens": pl.Int64, "cache_creation_input_tokens": pl.Int64, "cache_read_input_tokens": pl.Int64,
    "cache_creation": pl.Struct({"ephemeral_5m_input_tokens": pl.Int64, "ephemeral_1h_input_tokens": pl.Int64}),
    "output_tokens": pl.Int64, "speed": pl.String,
})
LINE = {"type": pl.String, "timestamp": pl.String, "requestId": pl.String, "isSidechain": pl.Boolean,
        "message": pl.Struct({"id": pl.String, "model": pl.String, "usage": USAGE})}
COUNTS = ("input", "write_5m", "write_1h", "read", "output")


def _ms(y: int, m: int, d: int) -> int:
    return int(dt.datetime(y, m, d, tzinfo=dt.UTC).timestamp() * 1000)


NEVER = _ms(2100, 1, 1)
# USD per MTok (input, 5m write, 1h write, cache read, output), as in analyzer/pricebook/anthropic.toml
# for the models the generator uses: base rates; long-context rates and the day they ended (a request
# over 200K tokens is billed entirely at them before that day); fast-mode rates and their window.
BASE = {
    "claude-opus-4-5-20251101": (5, 6.25, 10, 0.5, 25),
    "claude-opus-4-6": (5, 6.25, 10, 0.5, 25),
    "claude-opus-4-7": (5, 6.25, 10, 0.5, 25),
    "claude-opus-4-8": (5, 6.25, 10, 0.5, 25),
    "claude-sonnet-4-5-20250929": (3, 3.75, 6, 0.3, 15),
    "claude-sonnet-4-6": (3, 3.75, 6, 0.3, 15),
    "claude-haiku-4-5-20251001": (1, 1.25, 2, 0.1, 5),
}
LONG = {
    "claude-opus-4-6": ((10, 12.5, 20, 1, 37.5), _ms(2026, 3, 13)),
    "claude-sonnet-4-6": ((6, 7.5, 12, 0.6, 22.5), _ms(2026, 3, 13)),
    "claude-sonnet-4-5-20250929": ((6, 7.5, 12, 0.6, 22.5), _ms(2026, 4, 30)),
}
FAST = {"claude-opus-4-6": ((30, 37.5, 60, 3, 150), _ms(2026, 2, 7), _ms(2026, 6, 29))}
# ccusage 20.0.24's offline table (probed: one request per token category at 100K and at 300K tokens):
# the same base and fast rates; `*_above_200k_tokens` only for Sonnet 4 and 4.5, at any date.
CCUSAGE_ABOVE_200K = {"claude-sonnet-4-5-20250929": (6, 7.5, 12, 0.6, 22.5)}


def price_table() -> pl.DataFrame:
    rows = []
    for model, base in BASE.items():
        long, long_until = LONG.get(model, (base, 0))
        fast, fast_from, fast_until = FAST.get(model, (base, 0, 0))
        above = CCUSAGE_ABOVE_200K.get(model, base)
        rows.append({"model": model, "long_until": long_until, "fast_from": fast_from, "fast_until": fast_until,
                     **{f"base_{c}": float(r) for c, r in zip(COUNTS, base, strict=True)},
                     **{f"long_{c}": float(r) for c, r in zip(COUNTS, long, strict=True)},
                     **{f"fast_{c}": float(r) for c, r in zip(COUNTS, fast, strict=True)},
                     **{f"above_{c}": float(r) for c, r in zip(COUNTS, above, strict=True)}})
    return pl.DataFrame(rows)


def transcript_files(tree: str) -> list[str]:
    return sorted(str(p) for p in Path(tree).rglob("*.jsonl"))


def _decoded_lines(tree: str, prefilter: bool) -> pl.LazyFrame:
    """Every line decoded with a typed schema (Polars' NDJSON reader), or (prefilter) only the lines
    that contain `"usage"`, read as text in one scan of all files and decoded to the same struct."""
    files = transcript_files(tree)
    if not prefilter:
        return pl.scan_ndjson(files, schema=LINE)
    text = pl.scan_csv(files, has_header=False, new_columns=["line"], separator="\x1f", quote_char=None,
                       schema_overrides={"line": pl.String})
    return (text.filter(pl.col("line").str.contains('"usage"', literal=True))
            .select(pl.col("line").str.json_decode(pl.Struct(LINE)).alias("r")).unnest("r"))


def job_polars(tree: str, prefilter: bool = False) -> dict:
    """Decode lines, keep assistant lines, dedupe like Claude Code's repeats need, price, sum per day."""
    usage = pl.col("message").struct.field("usage")
    cache = usage.struct.field("cache_creation")
    lines = (
        _decoded_lines(tree, prefilter)
        .filter(pl.col("type") == "assistant")
        .select(
            pl.col("message").struct.field("id").alias("id"), pl.col("requestId").alias("req"),
            pl.col("isSidechain").fill_null(False).alias("sidechain"),
            pl.col("message").struct.field("model").alias("model"),
            pl.col("timestamp").str.to_datetime("%Y-%m-%dT%H:%M:%S%.3fZ", time_zone="UTC", time_unit="ms").alias("ts"),
            usage.struct.field("input_tokens").alias("input"),
            # No split: the flat total was a 5m write.
            pl.coalesce(cache.struct.field("ephemeral_5m_input_tokens"), usage.struct.field("cache_creation_input_tokens"))
            .alias("write_5m"),
            cache.struct.field("ephemeral_1h_input_tokens").fill_null(0).alias("write_1h"),
            usage.struct.field("cache_read_input_tokens").alias("read"),
            usage.struct.field("output_tokens").alias("output"),
            (usage.struct.field("speed") == "fast").fill_null(False).alias("fast"),
        )
        .filter(pl.col("model") != "<synthetic>")
        .with_columns(pl.sum_horizontal(*COUNTS).alias("tokens"))
    )
    # One API response is written as several lines (partial output_tokens first): keep the one with
    # the most tokens. A sidechain replay of a parent's message (a copy under a new requestId) is not billed
    # again, as ccusage counts it (and llm-cost, which keys a request by its Anthropic message id).
    requests = (
        lines.group_by("id", "req").agg(pl.all().sort_by("tokens").last())
        .filter(~pl.col("sidechain") | ((~pl.col("sidechain")).sum().over("id") == 0))
    )
    ms = pl.col("ts").dt.epoch("ms")
    prompt = pl.sum_horizontal("input", "write_5m", "write_1h", "read")
    long = (prompt > LONG_CONTEXT) & (ms < pl.col("long_until"))
    fast = pl.col("fast") & (ms >= pl.col("fast_from")) & (ms < pl.col("fast_until"))

    def rate(c: str) -> pl.Expr:
        return (pl.when(fast).then(pl.col(f"fast_{c}")).when(long).then(pl.col(f"long_{c}"))
                .otherwise(pl.col(f"base_{c}")))

    anthropic = pl.sum_horizontal(pl.col(c) * rate(c) for c in COUNTS) / 1e6
    # ccusage: per category, the tokens above 200K at the higher rate; fast mode as a multiplier on the model.
    ccusage = pl.sum_horizontal(
        pl.when(fast).then(pl.col(c) * pl.col(f"fast_{c}"))
        .otherwise(pl.min_horizontal(pl.col(c), LONG_CONTEXT) * pl.col(f"base_{c}")
                   + (pl.col(c) - LONG_CONTEXT).clip(0) * pl.col(f"above_{c}"))
        for c in COUNTS) / 1e6
    per_day = (
        requests.join(price_table().lazy(), on="model", how="left")
        .group_by(pl.col("ts").dt.date().cast(pl.String).alias("day"), "model",
                  (prompt > LONG_CONTEXT).alias("over_200k"), long.alias("long_rates"))
        .agg(pl.len().alias("requests"), anthropic.sum().alias("cost"), ccusage.sum().alias("cost_ccusage_rules"),
             *[pl.col(c).sum() for c in COUNTS])
        .sort("day", "model", "over_200k", "long_rates")
        .collect(engine="streaming")
    )
    return {"rows": per_day.to_dicts(), "requests": int(per_day["requests"].sum()), "cost": float(per_day["cost"].sum())}


def job_floor(tree: str) -> dict:
    """The decode floor: every line of every file parsed, only `type` kept, lines counted."""
    # (Counting rows alone would let the reader skip the decode: each line's type is tallied.)
    types = pl.scan_ndjson(transcript_files(tree), schema={"type": pl.String}).group_by("type").len().collect()
    return {"lines": int(types["len"].sum())}


JOBS = {"polars": job_polars, "polars-prefilter": lambda tree: job_polars(tree, prefilter=True), "floor": job_floor}

# ---------------------------------------------------------------------------------------------
# ccusage, installed for the benchmark only
# ---------------------------------------------------------------------------------------------


def ccusage_binary(version: str) -> Path:
    """The native binary of ccusage@version (the npm package is a Node shim that spawns it; running it
    directly keeps Node out of the time and the memory). Installed with npm on first use."""
    pkg = CCUSAGE_DIR / "node_modules" / "ccusage" / "package.json"
    if not pkg.exists() or json.loads(pkg.read_text())["version"] != version:
        log(f"installing ccusage@{version} into {CCUSAGE_DIR} (npm)")
        subprocess.run(["npm", "install", "--no-save", "--no-audit", "--no-fund", "--prefix", str(CCUSAGE_DIR),
                        f"ccusage@{version}"], check=True, stdout=subprocess.DEVNULL)
    found = sorted((CCUSAGE_DIR / "node_modules" / "@ccusage").glob("ccusage-*/bin/ccusage"))
    if not found:
        raise SystemExit(f"ccusage@{version}: no native binary for this platform under {CCUSAGE_DIR}")
    binary = found[0]
    binary.chmod(binary.stat().st_mode | stat.S_IXUSR)  # npm unpacks it without the x bit; the shim sets it
    return binary


# ---------------------------------------------------------------------------------------------
# Comparison
# ---------------------------------------------------------------------------------------------


def compare(llm: dict | None, cc: dict | None, base: dict | None) -> dict:
    """Daily totals of llm-cost vs ccusage, and how much of the difference each known cause explains."""
    out: dict = {}
    days: dict[str, dict] = {}
    if llm:
        for row in llm["rows"]:
            days.setdefault(row["day"], {})["llm_cost"] = Decimal(row["cost"])
        out["llm_cost_total"] = str(sum((d["llm_cost"] for d in days.values()), Decimal(0)))
    if cc:
        for row in cc["daily"]:
            days.setdefault(row["period"], {})["ccusage"] = row["totalCost"]
        out["ccusage_total"] = cc["totals"]["totalCost"]
    if base:
        causes: dict[str, float] = {}
        for row in base["rows"]:
            d = days.setdefault(row["day"], {})
            d["baseline"] = d.get("baseline", 0.0) + row["cost"]
            d["baseline_ccusage_rules"] = d.get("baseline_ccusage_rules", 0.0) + row["cost_ccusage_rules"]
            gap = row["cost"] - row["cost_ccusage_rules"]
            if abs(gap) > 1e-9:
                if row["model"] in CCUSAGE_ABOVE_200K:
                    cause = (f"{row['model']}, prompt over 200K: Anthropic bills the whole request at the long-context"
                             " rates; ccusage only the tokens above 200K of each category")
                else:
                    cause = (f"{row['model']}, prompt over 200K before 1M GA (2026-03-13): long-context rates"
                             " in the price book; ccusage has no long-context rates for it")
                causes[cause] = causes.get(cause, 0.0) + gap
        out["baseline_total"] = base["cost"]
        out["baseline_ccusage_rules_total"] = sum(d.get("baseline_ccusage_rules", 0.0) for d in days.values())
        out["explained_by_200k_rule"] = causes
        over = [r for r in base["rows"] if r["over_200k"]]
        out["requests"] = base["requests"]
        out["requests_over_200k"] = sum(r["requests"] for r in over)
        out["requests_at_long_rates"] = sum(r["requests"] for r in over if r["long_rates"])
    if llm and cc:
        diffs = {day: float(d.get("llm_cost", 0)) - d.get("ccusage", 0.0) for day, d in days.items()}
        out["days"] = len(days)
        out["days_differing_over_1_cent"] = sum(abs(v) >= 0.01 for v in diffs.values())
        out["difference_total"] = sum(diffs.values())
        if base:
            explained = {day: d.get("baseline", 0.0) - d.get("baseline_ccusage_rules", 0.0) for day, d in days.items()}
            residual = {day: diffs[day] - explained[day] for day in days}
            out["residual_after_200k_rule"] = sum(residual.values())
            out["days_with_residual_over_1_cent"] = sorted(
                (day, round(v, 6)) for day, v in residual.items() if abs(v) >= 0.01)
            out["llm_cost_vs_baseline"] = float(Decimal(out["llm_cost_total"])) - base["cost"]
            out["ccusage_vs_baseline_ccusage_rules"] = cc["totals"]["totalCost"] - out["baseline_ccusage_rules_total"]
    out["per_day"] = {day: {k: (str(v) if isinstance(v, Decimal) else v) for k, v in d.items()}
                      for day, d in sorted(days.items())}
    return out


# ---------------------------------------------------------------------------------------------
# Main
# ---------------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--records", type=int, default=1_000_000, help="assistant lines in the tree (default 1,000,000)")
    p.add_argument("--messages", type=int, default=None, help="responses in the Messages-API file (default: --records, at most 1M)")
    p.add_argument("--bare-share", type=float, default=0.0,
                   help="share of Messages-API lines logged as the bare Message, without the {timestamp, request_id, "
                        "response} envelope (default 0: a bare Message carries no time)")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--records-per-file", type=int, default=RECORDS_PER_FILE,
                   help=f"assistant lines per transcript file on average (default {RECORDS_PER_FILE}: ~17,000 files per million)")
    p.add_argument("--tree", type=Path, default=None,
                   help="measure this Claude config dir (holding projects/) instead of a generated one")
    p.add_argument("--by-project", action="store_true",
                   help="measure the same lines with each project's files concatenated into one (isolates per-file costs)")
    p.add_argument("--repeat", type=int, default=1, help="runs of each command; the table shows the median wall time")
    p.add_argument("--only", default="ccusage,llm-cost,polars,polars-prefilter,floor,messages",
                   help="comma-separated subset of ccusage,llm-cost,polars,polars-prefilter,floor,messages")
    p.add_argument("--ccusage-version", default=CCUSAGE_VERSION)
    p.add_argument("--data-dir", type=Path, default=BENCH_DIR / "data")
    p.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1), help="processes generating the tree")
    p.add_argument("--timeout", type=float, default=3600)
    p.add_argument("--max-rss-mib", type=float, default=None, help="stop a command over this RSS (default 75%% of RAM)")
    p.add_argument("--llm-cost-max-rss-mib", type=float, default=None,
                   help="a lower cap for llm-cost and the Polars plans (ccusage may need more at 10M)")
    p.add_argument("--job", choices=sorted(JOBS), help=argparse.SUPPRESS)
    p.add_argument("--dir", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    args.only = {s.strip() for s in args.only.split(",") if s.strip()}
    if args.messages is None:
        args.messages = min(args.records, 1_000_000)
    return args


def concatenated_per_project(tree: Path, out: Path) -> Path:
    """The tree's lines with each project's files (sessions and subagents) concatenated into one file."""
    marker = out.with_name(out.name + ".json")
    if not marker.exists():
        log(f"concatenating each project's files into {out} ...")
        for project in sorted((tree / "projects").iterdir()):
            target = out / "projects" / project.name / "all.jsonl"
            target.parent.mkdir(parents=True, exist_ok=True)
            with open(target, "wb") as f:
                for path in sorted(project.rglob("*.jsonl")):
                    with open(path, "rb") as part:
                        shutil.copyfileobj(part, f)
        marker.write_text(json.dumps({"from": str(tree)}) + "\n")
    return out


def _row(m: Measurement) -> str:
    wall = f"{m.wall:.2f}" if m.wall is not None else "FAILED"
    rss = f"{m.rss:,.0f}" if m.rss is not None else "-"
    cpu = f"{statistics.median(m.cpu_s):.1f}" if m.cpu_s else "-"
    other = max(m.other_cpu_s, default=0.0) / max(m.wall_s, default=1.0)  # CPUs other processes kept busy
    return (f"{m.what:<52} {wall:>8} {cpu:>8} {rss:>13} {other:>10.2f}"
            + (f"\n   ! {m.failure}" if m.failure else ""))


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.job:
        print(json.dumps(JOBS[args.job](args.dir)))
        return 0

    layout = "" if args.records_per_file == RECORDS_PER_FILE else f"-per{args.records_per_file}"
    data = args.data_dir / f"cc-n{args.records}{layout}-seed{args.seed}-g{GENERATOR_VERSION}"
    tree = data / "claude"  # a Claude config dir: tree/projects/<escaped-cwd>/<session>.jsonl
    messages = data / f"messages-n{args.messages}.jsonl"
    data.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(data).free
    if not tree.with_name("claude.json").exists() and free < args.records * 4_000:
        raise SystemExit(f"not enough disk for the tree: {free / 2**30:.0f} GiB free, ~{args.records * 3.6e3 / 2**30:.0f} GiB needed")
    if args.by_project and args.tree is None:
        generate_tree(tree, args.records, args.seed, args.workers, args.records_per_file)
        args.tree = concatenated_per_project(tree, data.with_name(data.name + "-by-project") / "claude")
    if args.tree is not None:  # e.g. the same tree with its files concatenated, to isolate per-file costs
        tree = args.tree.resolve()
        files = transcript_files(str(tree))
        manifest = {"tree": str(tree), "files": len(files), "bytes": sum(os.path.getsize(f) for f in files),
                    "lines": None, "assistant_lines": args.records, "seconds": 0}
        layout += "-" + (tree.parent.name.removeprefix(data.name).strip("-") or tree.parent.name)
    else:
        log(f"tree: {tree} ...")
        manifest = generate_tree(tree, args.records, args.seed, args.workers, args.records_per_file)
    log(f"tree: {tree}: {manifest['files']:,} files, {manifest['bytes'] / 2**30:.2f} GiB, {manifest['lines'] or 0:,} lines "
        f"({manifest['assistant_lines']:,} assistant); generated in {manifest['seconds']}s (once)")
    messages_manifest = None
    if "messages" in args.only:
        messages_manifest = generate_messages(messages, args.messages, args.seed, args.bare_share)
        log(f"messages: {messages} ({messages_manifest['bytes'] / 2**30:.2f} GiB)")

    # The package as an installed one runs it: compiled once. (With PYTHONDONTWRITEBYTECODE set, as on
    # this VM, an editable install compiles every module of llm-cost on every run: ~0.3 s of each.)
    compileall.compile_dir(str(BENCH_DIR.parent / "analyzer"), quiet=1)
    total_ram = harness.psutil.virtual_memory().total if harness.psutil else None
    max_rss = args.max_rss_mib or (0.75 * total_ram / 2**20 if total_ram else float("inf"))
    me = [sys.executable, str(Path(__file__).resolve())]
    measurements: dict[str, Measurement] = {}
    with tempfile.TemporaryDirectory(prefix="llm-cost-bench-cc-") as workdir:
        work = Path(workdir)
        home = work / "home"  # ccusage also looks for other agents' logs under HOME: give it none
        home.mkdir()
        todo: list[tuple[str, Measurement, dict]] = []
        env = dict(os.environ, TZ="UTC")
        if "ccusage" in args.only:
            binary = ccusage_binary(args.ccusage_version)
            cmd = ["sh", "-c", 'exec "$0" daily --offline --json > ccusage.json', str(binary)]
            todo.append(("ccusage", Measurement("tree", f"ccusage@{args.ccusage_version} daily --offline --json", cmd,
                                                rows=args.records),
                         dict(env, HOME=str(home), CLAUDE_CONFIG_DIR=str(tree))))
        if "llm-cost" in args.only:
            cmd = [*llm_cost(), "report", str(tree), "--by", "day", "--format", "json", "-o", str(work / "llm-cost.json"),
                   "--quarantine", str(work / "quarantine.jsonl")]
            todo.append(("llm-cost", Measurement("tree", "llm-cost report <tree> --by day --format json", cmd,
                                                 rows=args.records), env))
        if "polars" in args.only:
            todo.append(("polars", Measurement("tree", "Polars plan: decode all, dedupe, price (Float64)",
                                               [*me, "--job", "polars", "--dir", str(tree)], rows=args.records,
                                               json_stdout=True), env))
        if "polars-prefilter" in args.only:
            todo.append(("polars-prefilter", Measurement("tree", "Polars plan, prefiltered: decode usage lines only",
                                                         [*me, "--job", "polars-prefilter", "--dir", str(tree)],
                                                         rows=args.records, json_stdout=True), env))
        if "floor" in args.only:
            todo.append(("floor", Measurement("tree", "floor: decode every line's type", [*me, "--job", "floor", "--dir",
                                              str(tree)], rows=args.records, json_stdout=True), env))
        if "messages" in args.only:
            cmd = [*llm_cost(), "report", str(messages), "--by", "day", "--format", "json",
                   "-o", str(work / "messages.json"), "--quarantine", str(work / "quarantine-messages.jsonl")]
            todo.append(("messages", Measurement("messages", f"llm-cost report <{args.messages:,} Messages> --by day", cmd,
                                                 rows=args.messages), env))
        # Rounds: each command once per round, so that a slow spell of a shared machine falls on all
        # of them rather than on whichever ran then.
        for _ in range(args.repeat):
            for key, m, cmd_env in todo:
                if m.failure:
                    continue
                log(f"{m.what} ...")
                cap = max_rss if key == "ccusage" or not args.llm_cost_max_rss_mib else args.llm_cost_max_rss_mib
                run_measured(m, workdir, args.timeout, cap, cmd_env)
                log(f"{m.what}: {m.wall_s[-1]:.2f}s, {m.rss or 0:,.0f} MiB" + (f" ({m.failure})" if m.failure else ""))
                measurements[key] = m
        outputs = {"ccusage": work / "ccusage.json", "llm-cost": work / "llm-cost.json", "messages": work / "messages.json"}
        reports = {k: json.loads(p.read_text()) for k, p in outputs.items()
                   if k in measurements and not measurements[k].failure and p.exists()}
        quarantined = (work / "quarantine.jsonl").stat().st_size if (work / "quarantine.jsonl").exists() else 0

    base = measurements["polars"].result if "polars" in measurements and not measurements["polars"].failure else None
    cmp = compare(reports.get("llm-cost"), reports.get("ccusage"), base)
    accounting = {k: reports[k].get("accounting") for k in ("llm-cost", "messages") if k in reports}

    print(f"\nClaude Code tree: {args.records:,} assistant lines, {manifest['files']:,} files, "
          f"{manifest['bytes'] / 2**30:.2f} GiB; code {', '.join(sorted({v or '?' for m in measurements.values() for v in m.code}))}; "
          f"{os.cpu_count()} CPUs; Polars {pl.__version__}; "
          f"{'warm page cache' if manifest['bytes'] < 0.5 * (total_ram or 0) else 'data larger than the page cache'}; "
          f"median of {args.repeat} run(s); "
          "'busy else': CPUs other processes kept busy meanwhile (wall times are inflated when it is high)\n")
    head = f"{'run':<52} {'wall s':>8} {'CPU s':>8} {'peak RSS MiB':>13} {'busy else':>10}"
    print(head + "\n" + "-" * len(head))
    for m in measurements.values():
        print(_row(m))
    cc, llm = measurements.get("ccusage"), measurements.get("llm-cost")
    ratio = {}
    if cc and llm and cc.wall and llm.wall:
        ratio = {"speedup_vs_ccusage": cc.wall / llm.wall, "rss_vs_ccusage": llm.rss / cc.rss if cc.rss and llm.rss else None}
        print(f"\nllm-cost vs ccusage: {ratio['speedup_vs_ccusage']:.2f}x the speed"
              + (f", {ratio['rss_vs_ccusage']:.2f}x the peak memory" if ratio["rss_vs_ccusage"] else ""))
    totals = [f"{name} ${float(cmp[k]):,.2f}" for k, name in (
        ("llm_cost_total", "llm-cost"), ("ccusage_total", "ccusage"),
        ("baseline_total", "Polars plan (Anthropic's rule)"),
        ("baseline_ccusage_rules_total", "Polars plan (ccusage's rule)")) if k in cmp]
    if totals:
        print("\ntotals: " + "; ".join(totals))
    if "difference_total" in cmp:
        print(f"llm-cost - ccusage: ${cmp['difference_total']:,.2f} over {cmp['days']} days "
              f"({cmp['days_differing_over_1_cent']} differ by a cent or more)")
    for cause, usd in cmp.get("explained_by_200k_rule", {}).items():
        print(f"  ${usd:,.2f}  {cause}")
    if "residual_after_200k_rule" in cmp:
        print(f"  ${cmp['residual_after_200k_rule']:,.6f}  left unexplained ({len(cmp['days_with_residual_over_1_cent'])} days over a cent)")
    for k, acc in accounting.items():
        if acc:
            print(f"{k} accounting: " + ", ".join(f"{a} {acc[a]:,}" for a in acc if isinstance(acc[a], int)))
    if quarantined:
        print(f"note: llm-cost wrote {quarantined:,} bytes of quarantine for the tree")

    results = {
        "records": args.records, "seed": args.seed, "generator": GENERATOR_VERSION, "tree": manifest,
        "messages": messages_manifest, "ccusage_version": args.ccusage_version,
        "generated_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "ram_gib": round((total_ram or 0) / 2**30, 1),
                    "platform": platform.platform(), "python": platform.python_version(), "polars": pl.__version__},
        "rss_method": "GNU time -v" if harness.GNU_TIME else "psutil polling",
        "measurements": {k: {**asdict(m), "result": None if k.startswith("polars") else m.result, "median_wall_s": m.wall,
                             "max_peak_rss_mib": m.rss} for k, m in measurements.items()},
        **ratio, "accounting": accounting, "comparison": cmp,
    }
    out = BENCH_DIR / f"results-claude-code-{args.records}{layout}.json"
    out.write_text(json.dumps(results, indent=2, default=str) + "\n")
    log(f"wrote {out}")
    return 1 if any(m.failure for m in measurements.values()) else 0


if __name__ == "__main__":
    sys.exit(main())

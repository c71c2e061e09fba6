"""Synthetic Claude Code transcript trees and Messages-API logs, for bench/bench_claude_code.py.

    python bench/claude_code_data.py --records 1000000 --out bench/data/cc-n1000000-seed42-g1

A tree looks like ~/.claude: `projects/<escaped-cwd>/<sessionId>.jsonl`, plus subagent files at
`projects/<escaped-cwd>/<sessionId>/subagents/agent-<agentId>.jsonl`. `--records` counts assistant
lines (the records that carry usage); about 1 in 59 of them starts a file, so 1M records make ~17,000
files and ~3.5 GB, as the issue asks.

What a session holds, after real transcripts (and ccusage's loader, https://github.com/ryoppippi/ccusage):
- per user turn: a `file-history-snapshot` line, the user's prompt, then a chain of API responses;
- each response is written as one assistant line per content block (thinking / text / tool_use), all
  sharing `message.id` and `requestId`; the earlier lines carry a partial `output_tokens`, the last
  the final count; every tool_use is answered by a user line with the tool result (Read/Bash output
  of realistic size, repeated in `toolUseResult` as Claude Code does);
- usage follows a growing context: a cached prefix read back (`cache_read_input_tokens`), the new
  turn written to the cache (5m TTL, 1h in some sessions), a few uncached tokens; auto-compaction
  (a `system` compact_boundary line) near 160K, or near 600K in the sessions with a 1M window,
  whose requests may go over 200K input tokens (priced at the long-context rates where they apply);
- `<synthetic>` error lines (`isApiErrorMessage`, zero usage), `summary` lines, fast-mode sessions;
- subagent files (`isSidechain: true`, `agentId`) with their own responses, some starting with a
  replay of the parent's latest response: Claude Code's `/btw` side questions write the parent's
  conversation again into the sidechain file (ccusage issue #913), each response a copy of its
  parent line (same `message.id`, content and usage) under a new `requestId`. ccusage 20.x counts
  such a copy once, keeping the parent's (its PR #1155, matching on `message.id` for sidechain
  lines); llm-cost keys requests by (`message.id`, `requestId`) and bills the copy again (the
  bench's comparison shows it as the residual);
- sessions that resume in a new file: the new file first repeats the earlier session's lines, so
  the same (message.id, requestId) appears in two files.

Every line is compact JSON (ccusage skips lines without the literal `"usage":{`). Sessions are spread
over 2025-12-01..2026-11-24 (UTC) and use the Claude 4.x model each date had (Opus 4.5 -> 4.6 -> 4.7 ->
4.8, Sonnet 4.5 -> 4.6, Haiku 4.5). Everything is a pure function of (seed, project index), so two
worker processes write the same tree as one.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import random
import string
import sys
import time
from multiprocessing import Pool
from pathlib import Path

# Bump when the generated data changes, so that a cached tree made by an older generator is not reused.
GENERATOR_VERSION = 2  # 2: a sidechain replay copies its parent's message (usage too)
RECORDS_PER_FILE = 59  # assistant lines per file, on average: 1M records -> ~17,000 files
SUBAGENT_FILE_SHARE = 0.25  # of all files
RESUME_SHARE = 0.03  # sessions that continue an earlier one in a new file, repeating it first
SIDECHAIN_REPLAY_SHARE = 0.15  # subagent files that open with a replay of the parent's message
SYNTHETIC_SHARE = 0.003  # responses replaced by a `<synthetic>` API-error line
SUMMARY_SHARE = 0.10  # files that open with a `summary` line
ONE_HOUR_CACHE_SHARE = 0.20  # sessions whose cache writes use the 1h TTL
LONG_WINDOW_SHARE = 0.08  # sessions on a 1M-window model that let the context grow past 200K
FAST_SHARE = 0.03  # Opus 4.6 sessions in fast mode (while it existed)
SESSIONS_PER_PROJECT = 100

START = dt.datetime(2025, 12, 1, tzinfo=dt.UTC)
END = dt.datetime(2026, 11, 25, tzinfo=dt.UTC)  # exclusive
VERSIONS = ("2.0.55", "2.0.76", "2.1.12", "2.1.98", "2.1.205")


def _day(y: int, m: int, d: int) -> int:
    return int(dt.datetime(y, m, d, tzinfo=dt.UTC).timestamp() * 1000)


# (from, model) per family, newest last; a session takes the newest model its start date had, or
# (LINGER) the one before it.
OPUS = ((0, "claude-opus-4-5-20251101"), (_day(2026, 2, 5), "claude-opus-4-6"),
        (_day(2026, 4, 16), "claude-opus-4-7"), (_day(2026, 5, 28), "claude-opus-4-8"))
SONNET = ((0, "claude-sonnet-4-5-20250929"), (_day(2026, 2, 17), "claude-sonnet-4-6"))
HAIKU = ((0, "claude-haiku-4-5-20251001"),)
LINGER = 0.10
FAMILY_SHARES = ((0.55, OPUS), (0.90, SONNET), (1.0, HAIKU))
# Models with a 1M context window (Sonnet 4.5 only with the 1M beta, which ended 2026-04-30).
LONG_WINDOW = {"claude-opus-4-6": None, "claude-opus-4-7": None, "claude-opus-4-8": None,
               "claude-sonnet-4-6": None, "claude-sonnet-4-5-20250929": _day(2026, 4, 30)}
FAST_WINDOW = ("claude-opus-4-6", _day(2026, 2, 7), _day(2026, 6, 29))

B62 = string.ascii_letters + string.digits
B64 = string.ascii_letters + string.digits + "+/"
PROJECT_WORDS = ("acme", "billing", "api", "web", "infra", "ml", "data", "mobile", "docs", "auth", "search",
                 "etl", "dashboard", "core", "cli", "sdk", "payments", "gateway", "ops", "platform")
USERS = ("dev", "alice", "bob", "carol", "dan", "erin")
BRANCHES = ("main", "main", "main", "develop", "feature/retry", "fix/flaky-test", "release/2.4")
TOOLS = ("Read", "Read", "Read", "Bash", "Bash", "Edit", "Grep", "Glob", "Write", "TodoWrite")

# ---------------------------------------------------------------------------------------------
# Text: slices of two pre-built, already JSON-escaped corpora (source-like text and base64)
# ---------------------------------------------------------------------------------------------

CODE_WORDS = ("def", "return", "self", "import", "from", "class", "if", "else", "for", "in", "None", "True",
              "await", "async", "raise", "ValueError", "invoice", "export", "retry", "request", "response",
              "config", "client", "session", "timeout", "items", "total", "amount", "user_id", "logger",
              "json", "status", "error", "result", "cache", "token", "parse", "build", "path", "open",
              "with", "as", "try", "except", "yield", "lambda", "len", "range", "dict", "list", "str", "int")
PROSE_WORDS = ("the", "a", "to", "of", "and", "this", "that", "function", "file", "test", "I'll", "let", "me",
               "check", "now", "update", "add", "fix", "should", "we", "need", "call", "sites", "found",
               "looks", "like", "retry", "exporter", "because", "when", "then", "first", "run", "tests", "pass")


def _corpus(rng: random.Random, words: tuple[str, ...], size: int, numbered: bool) -> str:
    """Text of about `size` characters as it appears inside a JSON string: newlines escaped as
    \\n, some quotes as \\", Read-tool line numbers with their arrow (→)."""
    out, n, line_no = [], 0, 1
    while n < size:
        words_in_line = rng.randint(2, 12)
        line = " " * (4 * rng.randint(0, 3)) + " ".join(rng.choice(words) for _ in range(words_in_line))
        if rng.random() < 0.1:
            line += ' \\"' + rng.choice(words) + '\\"'
        if numbered:
            line = f"{line_no:>6}→{line}"
            line_no = line_no + 1 if line_no < 900 else 1
        out.append(line)
        n += len(line) + 2
    return "\\n".join(out)


class Text:
    def __init__(self, seed: int) -> None:
        rng = random.Random(seed)
        self.code = _corpus(rng, CODE_WORDS, 3_000_000, numbered=True)
        self.prose = _corpus(rng, PROSE_WORDS, 1_000_000, numbered=False)
        self.b64 = "".join(rng.choice(B64) for _ in range(200_000))

    @staticmethod
    def _slice(corpus: str, rng: random.Random, length: int) -> str:
        length = max(1, min(length, len(corpus) - 1))
        start = rng.randrange(len(corpus) - length)
        s = corpus[start:start + length]
        # Never cut an escape sequence: a slice must not start with the quote of a \" nor end with a
        # lone backslash (which would escape the closing quote).
        if s.startswith('"'):
            s = s[1:]
        while s.endswith("\\"):
            s = s[:-1]
        return s

    def code_text(self, rng: random.Random, length: int) -> str:
        return self._slice(self.code, rng, length)

    def prose_text(self, rng: random.Random, length: int) -> str:
        return self._slice(self.prose, rng, length)

    def signature(self, rng: random.Random) -> str:
        return self._slice(self.b64, rng, rng.randint(300, 1600))


def lognormal(rng: random.Random, median: float, sigma: float, lo: int, hi: int) -> int:
    return int(min(hi, max(lo, round(median * math.exp(sigma * rng.gauss(0.0, 1.0))))))


def b62(rng: random.Random, n: int) -> str:
    return "".join(rng.choices(B62, k=n))


def uuid4(rng: random.Random) -> str:
    h = f"{rng.getrandbits(128):032x}"
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{'89ab'[int(h[16], 16) & 3]}{h[17:20]}-{h[20:]}"


_DAY_CACHE: dict[int, str] = {}


def iso(ms: int) -> str:
    """Millisecond epoch -> 2026-11-24T09:12:05.704Z (Claude Code's timestamp form)."""
    day, rem = divmod(ms, 86_400_000)
    date = _DAY_CACHE.get(day)
    if date is None:
        date = _DAY_CACHE[day] = (dt.date(1970, 1, 1) + dt.timedelta(days=day)).isoformat()
    s, msec = divmod(rem, 1000)
    h, s = divmod(s, 3600)
    m, s = divmod(s, 60)
    return f"{date}T{h:02d}:{m:02d}:{s:02d}.{msec:03d}Z"


def pick_model(rng: random.Random, family: tuple[tuple[int, str], ...], t: int) -> str:
    current = max(i for i, (start, _) in enumerate(family) if start <= t)
    if current > 0 and rng.random() < LINGER:
        current -= 1
    return family[current][1]


# ---------------------------------------------------------------------------------------------
# One session file (and its subagent files)
# ---------------------------------------------------------------------------------------------

class Session:
    """Writes the lines of one transcript file. `target` is the number of assistant lines it must hold."""

    def __init__(self, text: Text, rng: random.Random, cwd: str, session_id: str, version: str, branch: str,
                 model: str, t: int, agent_id: str | None = None) -> None:
        self.text, self.rng, self.t = text, rng, t
        self.model = model
        self.sidechain = agent_id is not None
        agent = f'"agentId":"{agent_id}",' if agent_id else ""
        self.head = (f'"isSidechain":{"true" if self.sidechain else "false"},"userType":"external",'
                     f'"cwd":"{cwd}","sessionId":"{session_id}","version":"{version}","gitBranch":"{branch}",{agent}')
        self.session_id = session_id
        self.lines: list[str] = []
        self.assistant_lines = 0
        self.parent: str | None = None
        self.ttl_1h = rng.random() < ONE_HOUR_CACHE_SHARE
        long_ok = model in LONG_WINDOW and (LONG_WINDOW[model] is None or t < LONG_WINDOW[model])
        self.long_window = long_ok and rng.random() < LONG_WINDOW_SHARE
        fast_model, fast_from, fast_until = FAST_WINDOW
        self.fast = model == fast_model and fast_from <= t < fast_until and rng.random() < FAST_SHARE
        self.compact_at = rng.randint(450_000, 800_000) if self.long_window else rng.randint(150_000, 167_000)
        self.context = rng.randint(14_000, 24_000)  # system prompt + tool definitions
        if self.long_window:
            self.context += rng.randint(0, 250_000)  # a large context loaded up front
        self.cached = 0
        self.last_message: str | None = None  # the `message` object of the latest response's last line

    def tick(self, lo_ms: int, hi_ms: int) -> str:
        self.t += self.rng.randint(lo_ms, hi_ms)
        return iso(self.t)

    def _uuid(self) -> str:
        return uuid4(self.rng)

    def _linked(self, body: str, ts: str) -> str:
        """A conversation line: parentUuid chain, the shared head, the body, uuid and timestamp."""
        uid = self._uuid()
        parent = f'"{self.parent}"' if self.parent else "null"
        self.parent = uid
        return f'{{"parentUuid":{parent},{self.head}{body},"uuid":"{uid}","timestamp":"{ts}"}}'

    # -- line kinds --------------------------------------------------------------------------

    def summary(self) -> None:
        self.lines.append(f'{{"type":"summary","summary":"{self.text.prose_text(self.rng, 60)}",'
                          f'"leafUuid":"{self._uuid()}"}}')

    def user_prompt(self) -> None:
        ts = self.tick(20_000, 900_000)
        mid = self._uuid()
        self.lines.append(f'{{"type":"file-history-snapshot","messageId":"{mid}","snapshot":{{"messageId":"{mid}",'
                          f'"trackedFileBackups":{{}},"timestamp":"{ts}"}},"isSnapshotUpdate":false}}')
        prompt = self.text.prose_text(self.rng, lognormal(self.rng, 160, 1.0, 10, 6_000))
        self.lines.append(self._linked(f'"type":"user","message":{{"role":"user","content":"{prompt}"}}', ts)[:-1]
                          + ',"permissionMode":"default"}')
        self.context += len(prompt) // 4

    def tool_result(self, tool_id: str, tool: str) -> None:
        rng = self.rng
        ts = self.tick(50, 4_000)
        size = lognormal(rng, 1_200, 1.3, 20, 60_000)
        body = self.text.code_text(rng, size)
        if tool == "Read":
            extra = (f'"toolUseResult":{{"type":"text","file":{{"filePath":"/src/{rng.choice(CODE_WORDS)}.py",'
                     f'"content":"{body}","numLines":{body.count("→")},"startLine":1,"totalLines":{body.count("→")}}}}}')
        elif tool == "Bash":
            extra = f'"toolUseResult":{{"stdout":"{body}","stderr":"","interrupted":false,"isImage":false}}'
        else:
            extra = '"toolUseResult":{"type":"update"}'
        self.lines.append(self._linked(
            f'"type":"user","message":{{"role":"user","content":[{{"tool_use_id":"{tool_id}","type":"tool_result",'
            f'"content":"{body}"}}]}}', ts)[:-1] + "," + extra + "}")
        self.context += size // 4

    def _block(self, kind: str) -> tuple[str, str | None, str | None]:
        """One content block: (JSON, tool_use id, tool name)."""
        rng, text = self.rng, self.text
        if kind == "thinking":
            return (f'{{"type":"thinking","thinking":"{text.prose_text(rng, lognormal(rng, 500, 1.0, 20, 20_000))}",'
                    f'"signature":"{text.signature(rng)}"}}'), None, None
        if kind == "text":
            return f'{{"type":"text","text":"{text.prose_text(rng, lognormal(rng, 350, 1.1, 5, 12_000))}"}}', None, None
        tool = rng.choice(TOOLS)
        tool_id = "toolu_01" + b62(rng, 22)
        if tool == "Bash":
            args = f'"command":"{text.code_text(rng, lognormal(rng, 60, 0.6, 5, 400))}","description":"Run the tests"'
        elif tool in ("Edit", "Write"):
            args = (f'"file_path":"/src/{rng.choice(CODE_WORDS)}.py","old_string":"{text.code_text(rng, lognormal(rng, 300, 1.0, 5, 8_000))}",'
                    f'"new_string":"{text.code_text(rng, lognormal(rng, 400, 1.0, 5, 10_000))}"')
        else:
            args = f'"file_path":"/src/{rng.choice(CODE_WORDS)}/{rng.choice(CODE_WORDS)}.py"'
        return f'{{"type":"tool_use","id":"{tool_id}","name":"{tool}","input":{{{args}}}}}', tool_id, tool

    def response(self, max_lines: int) -> list[tuple[str, str]]:
        """One API response as 1..max_lines assistant lines; returns its tool calls (id, name)."""
        rng = self.rng
        kinds = []
        if self.model.startswith(("claude-opus", "claude-sonnet")) and rng.random() < 0.45:
            kinds.append("thinking")
        if rng.random() < 0.6 or not kinds:
            kinds.append("text")
        if rng.random() < 0.7:
            kinds.append("tool_use")
            if rng.random() < 0.15:
                kinds.append("tool_use")
        kinds = kinds[:max_lines]
        if rng.random() < 0.05:  # the prompt cache expired: the whole context is written again
            self.cached = min(self.cached, rng.randint(0, 20_000))
        write = max(0, self.context - self.cached)
        read = self.cached
        uncached = rng.randint(1, 12) if rng.random() < 0.97 else rng.randint(100, 5_000)
        write_5m, write_1h = (0, write) if self.ttl_1h else (write, 0)
        output = lognormal(rng, 180, 1.2, 1, 32_000) + (lognormal(rng, 300, 1.0, 10, 16_000) if kinds[0] == "thinking" else 0)
        message_id = "msg_01" + b62(rng, 22)
        request_id = "req_011C" + b62(rng, 20)
        fast = ',"speed":"fast"' if self.fast else ""
        usage_head = (f'"usage":{{"input_tokens":{uncached},"cache_creation_input_tokens":{write},'
                      f'"cache_read_input_tokens":{read},"cache_creation":{{"ephemeral_5m_input_tokens":{write_5m},'
                      f'"ephemeral_1h_input_tokens":{write_1h}}},"output_tokens":')
        usage_tail = f',"service_tier":"standard"{fast}}}'
        stop = "tool_use" if kinds[-1] == "tool_use" else "end_turn"
        tools = []
        partial = rng.randint(1, 12)
        for k, kind in enumerate(kinds):
            block, tool_id, tool = self._block(kind)
            if tool_id:
                tools.append((tool_id, tool))
            last = k == len(kinds) - 1
            ts = self.tick(300, 20_000) if k == 0 else self.tick(100, 3_000)
            out = output if last else partial
            message = (f'{{"id":"{message_id}","type":"message","role":"assistant","model":"{self.model}",'
                       f'"content":[{block}],"stop_reason":{f"{chr(34)}{stop}{chr(34)}" if last else "null"},'
                       f'"stop_sequence":null,{usage_head}{out}{usage_tail}}}')
            self.lines.append(self._linked(f'"message":{message},"requestId":"{request_id}","type":"assistant"', ts))
            self.assistant_lines += 1
        self.last_message = message
        self.cached += write
        self.context += output + uncached
        return tools

    def synthetic_error(self) -> None:
        ts = self.tick(500, 5_000)
        text = self.rng.choice(("API Error: 529 {\\\"type\\\":\\\"error\\\",\\\"error\\\":{\\\"type\\\":\\\"overloaded_error\\\"}}",
                                "Claude AI usage limit reached|1764007200", "API Error: Request timed out."))
        self.lines.append(self._linked(
            f'"type":"assistant","message":{{"id":"{self._uuid()}","model":"<synthetic>","role":"assistant",'
            f'"stop_reason":"stop_sequence","stop_sequence":"","type":"message","usage":{{"input_tokens":0,'
            f'"output_tokens":0,"cache_creation_input_tokens":0,"cache_read_input_tokens":0,'
            f'"server_tool_use":{{"web_search_requests":0}},"service_tier":null}},'
            f'"content":[{{"type":"text","text":"{text}"}}]}}', ts)[:-1] + ',"isApiErrorMessage":true}')
        self.assistant_lines += 1

    def replay(self, message: str) -> None:
        """A sidechain replay of the parent's latest response (see the module's docstring): its
        `message` object copied whole (id, content, usage), under a new requestId."""
        ts = self.tick(100, 2_000)
        self.lines.append(self._linked(
            f'"message":{message},"requestId":"req_011C{b62(self.rng, 20)}","type":"assistant"', ts))
        self.assistant_lines += 1

    def compact(self) -> None:
        ts = self.tick(1_000, 30_000)
        self.lines.append(self._linked(
            f'"type":"system","subtype":"compact_boundary","content":"Conversation compacted","isMeta":false,'
            f'"level":"info","compactMetadata":{{"trigger":"auto","preTokens":{self.context}}}', ts))
        self.context = self.rng.randint(20_000, 40_000)
        self.cached = 0

    def run(self, target: int, on_tool_call=None) -> None:
        """Add turns until the file holds `target` assistant lines."""
        rng = self.rng
        while self.assistant_lines < target:
            self.user_prompt()
            for _ in range(lognormal(rng, 5, 0.8, 1, 40)):
                if self.assistant_lines >= target:
                    break
                if rng.random() < SYNTHETIC_SHARE:
                    self.synthetic_error()
                    break
                if self.context > self.compact_at:
                    self.compact()
                tools = self.response(target - self.assistant_lines)
                for tool_id, tool in tools:
                    self.tool_result(tool_id, tool)
                    if on_tool_call is not None:
                        on_tool_call(self)
                if not tools:
                    break


# ---------------------------------------------------------------------------------------------
# Plan (how many files, how many records each) and the worker that writes a project
# ---------------------------------------------------------------------------------------------

def plan(records: int, seed: int, per_file: int = RECORDS_PER_FILE) -> list[list[tuple[int, list[int]]]]:
    """Projects -> sessions -> (main-file records, [subagent-file records]); sums to `records`."""
    rng = random.Random(seed)
    files = max(1, round(records / per_file))
    sessions = max(1, round(files * (1 - SUBAGENT_FILE_SHARE)))
    subagents = files - sessions
    weights = [[lognormal(rng, 38, 1.0, 1, 10**9)] for _ in range(sessions)]
    for _ in range(subagents):
        weights[rng.randrange(sessions) if rng.random() < 0.5 else rng.randrange(max(1, sessions // 5))].append(
            lognormal(rng, 25, 0.9, 1, 10**9))
    flat = [w for s in weights for w in s]
    scale = records / sum(flat)
    counts = [max(1, round(w * scale)) for w in flat]
    counts[counts.index(max(counts))] += records - sum(counts)  # exact total
    it = iter(counts)
    per_session = [(next(it), [next(it) for _ in s[1:]]) for s in weights]
    n_projects = max(1, math.ceil(sessions / SESSIONS_PER_PROJECT))
    return [per_session[p::n_projects] for p in range(n_projects)]


def _cwd(rng: random.Random, p: int) -> str:
    user = rng.choice(USERS)
    name = "-".join(rng.sample(PROJECT_WORDS, rng.randint(1, 3)))
    return f"/home/{user}/{'work/' if rng.random() < 0.5 else ''}{name}-{p}"


def escape_cwd(cwd: str) -> str:
    return cwd.replace("/", "-").replace(".", "-").replace("_", "-")


def write_project(args: tuple[Path, int, int, list[tuple[int, list[int]]]]) -> dict:
    root, seed, p, sessions = args
    rng = random.Random(seed * 1_000_003 + p)
    text = _TEXT[0] if _TEXT else Text(seed)
    cwd = _cwd(rng, p)
    pdir = root / "projects" / escape_cwd(cwd)  # root is the config dir (what CLAUDE_CONFIG_DIR names)
    pdir.mkdir(parents=True, exist_ok=True)
    span = int((END - START).total_seconds() * 1000)
    starts = sorted(int(START.timestamp() * 1000) + rng.randrange(span) for _ in sessions)
    stats = {"files": 0, "bytes": 0, "lines": 0, "assistant_lines": 0, "resumed_sessions": 0, "subagent_files": 0,
             "replays": 0}
    previous: Session | None = None
    for (main_records, sub_records), t0 in zip(sessions, starts, strict=True):
        srng = random.Random(rng.getrandbits(64))
        family = next(f for share, f in FAMILY_SHARES if srng.random() < share)
        sid = uuid4(srng)
        version, branch = srng.choice(VERSIONS), srng.choice(BRANCHES)
        resumed = previous is not None and srng.random() < RESUME_SHARE and previous.assistant_lines < main_records
        if resumed:
            t0 = max(t0, previous.t + srng.randint(60_000, 86_400_000))
        model = previous.model if resumed else pick_model(srng, family, t0)
        s = Session(text, srng, cwd, sid, version, branch, model, t0)
        if resumed:
            # `claude --resume`: the new file repeats the earlier conversation, then continues it.
            s.lines += [line.replace(previous.session_id, sid) for line in previous.lines]
            s.assistant_lines = previous.assistant_lines
            s.context, s.cached, s.parent = previous.context, previous.cached, previous.parent
            stats["resumed_sessions"] += 1
        elif srng.random() < SUMMARY_SHARE:
            s.summary()
        pending = list(sub_records)
        subagent_files: list[tuple[str, Session]] = []

        def subagent(parent: Session, records: int, srng=srng, sid=sid, version=version, branch=branch,
                     subagent_files=subagent_files) -> None:
            agent_id = f"{srng.getrandbits(28):07x}"
            model = HAIKU[0][1] if srng.random() < 0.4 else parent.model
            sub = Session(text, srng, cwd, sid, version, branch, model, parent.t, agent_id=agent_id)
            if parent.last_message and srng.random() < SIDECHAIN_REPLAY_SHARE:
                sub.replay(parent.last_message)
                stats["replays"] += 1
            sub.run(records)
            parent.t = max(parent.t, sub.t)
            subagent_files.append((agent_id, sub))

        def on_tool_call(parent: Session, pending=pending, srng=srng, subagent=subagent) -> None:
            if pending and srng.random() < 0.2:  # a Task tool call starts a subagent
                subagent(parent, pending.pop())

        s.run(main_records, on_tool_call=on_tool_call)
        while pending:  # subagents the session had no tool call left for: they run at its end
            subagent(s, pending.pop())
        files = [(pdir / f"{sid}.jsonl", s.lines)]
        files += [(pdir / sid / "subagents" / f"agent-{agent}.jsonl", sub.lines) for agent, sub in subagent_files]
        for path, lines in files:
            path.parent.mkdir(parents=True, exist_ok=True)
            data = ("\n".join(lines) + "\n").encode()
            path.write_bytes(data)
            stats["files"] += 1
            stats["bytes"] += len(data)
            stats["lines"] += len(lines)
        stats["subagent_files"] += len(subagent_files)
        stats["assistant_lines"] += s.assistant_lines + sum(sub.assistant_lines for _, sub in subagent_files)
        previous = s
    return stats


_TEXT: list[Text] = []


def _init_worker(seed: int) -> None:
    _TEXT.append(Text(seed))


def generate_tree(root: Path, records: int, seed: int, workers: int = 2, per_file: int = RECORDS_PER_FILE) -> dict:
    """Write the tree under root/projects, root being a Claude config dir (~/.claude); skipped if the
    manifest beside it (root + ".json") exists, which is written last. Returns the manifest."""
    marker = root.with_name(root.name + ".json")
    if marker.exists():
        return json.loads(marker.read_text())
    t0 = time.perf_counter()
    projects = plan(records, seed, per_file)
    jobs = [(root, seed, p, sessions) for p, sessions in enumerate(projects)]
    # Largest projects first, so that the two workers finish together.
    jobs.sort(key=lambda j: -sum(m + sum(s) for m, s in j[3]))
    totals: dict[str, int] = {}
    with Pool(workers, initializer=_init_worker, initargs=(seed,)) as pool:
        for k, stats in enumerate(pool.imap_unordered(write_project, jobs), 1):
            for key, v in stats.items():
                totals[key] = totals.get(key, 0) + v
            if k % max(1, len(jobs) // 10) == 0:
                print(f"[gen] {k}/{len(jobs)} projects, {totals['bytes'] / 2**30:.2f} GiB, "
                      f"{time.perf_counter() - t0:.0f}s", file=sys.stderr, flush=True)
    manifest = {"records": records, "seed": seed, "generator": GENERATOR_VERSION, "records_per_file": per_file,
                "projects": len(projects),
                **totals, "seconds": round(time.perf_counter() - t0, 1)}
    marker.write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


# ---------------------------------------------------------------------------------------------
# Messages-API log: logged Message objects, some inside an envelope with a timestamp
# ---------------------------------------------------------------------------------------------

MESSAGES_MODELS = ("claude-sonnet-4-6", "claude-sonnet-4-6", "claude-opus-4-8", "claude-haiku-4-5-20251001",
                   "claude-haiku-4-5", "claude-sonnet-4-5-20250929", "claude-opus-4-7")
ENVELOPE_SHARE = 1.0  # every response carries its time; see --bare-share


def _message(rng: random.Random, text: Text) -> str:
    model = rng.choice(MESSAGES_MODELS)
    cached = rng.random() < 0.5
    read = lognormal(rng, 12_000, 1.0, 1, 150_000) if cached else 0
    w5 = lognormal(rng, 2_000, 1.0, 1, 50_000) if rng.random() < 0.3 else 0
    w1 = lognormal(rng, 4_000, 1.0, 1, 50_000) if rng.random() < 0.05 else 0
    inp = lognormal(rng, 900, 1.4, 1, 180_000)
    out = lognormal(rng, 300, 1.1, 1, 32_000)
    search = rng.randint(1, 5) if rng.random() < 0.02 else 0
    tier = "batch" if rng.random() < 0.05 else ("priority" if rng.random() < 0.02 else "standard")
    geo = ',"inference_geo":"us"' if model.startswith(("claude-opus-4-8", "claude-sonnet-4-6")) and rng.random() < 0.05 else ""
    server = f',"server_tool_use":{{"web_search_requests":{search},"web_fetch_requests":0}}' if search else ""
    return (f'{{"id":"msg_01{b62(rng, 22)}","type":"message","role":"assistant","model":"{model}",'
            f'"content":[{{"type":"text","text":"{text.prose_text(rng, lognormal(rng, 400, 1.0, 5, 8_000))}"}}],'
            f'"stop_reason":"end_turn","stop_sequence":null,"usage":{{"input_tokens":{inp},'
            f'"cache_creation_input_tokens":{w5 + w1},"cache_read_input_tokens":{read},'
            f'"cache_creation":{{"ephemeral_5m_input_tokens":{w5},"ephemeral_1h_input_tokens":{w1}}},'
            f'"output_tokens":{out}{server},"service_tier":"{tier}"{geo}}}}}')


def generate_messages(path: Path, responses: int, seed: int, bare_share: float) -> dict:
    """One JSONL file of `responses` Messages API responses (1% logged twice, as a retrying logger
    does); a share `bare_share` is the bare Message, the rest an envelope
    {timestamp, request_id, app, response}."""
    marker = path.with_name(path.name + ".manifest")
    if marker.exists() and path.exists():
        return json.loads(marker.read_text())
    rng = random.Random(seed + 7)
    text = Text(seed)
    start = int(dt.datetime(2026, 6, 1, tzinfo=dt.UTC).timestamp() * 1000)
    span = int((END.timestamp() * 1000) - start)
    t0 = time.perf_counter()
    written = 0
    with open(path, "w") as f:
        chunk: list[str] = []
        recent: list[str] = []
        for i in range(responses):
            if recent and rng.random() < 0.01:
                line = rng.choice(recent)
            else:
                msg = _message(rng, text)
                if rng.random() < bare_share:
                    line = msg
                else:
                    ts = iso(start + (i * span) // responses + rng.randint(0, 999))
                    line = (f'{{"timestamp":"{ts}","request_id":"req_011C{b62(rng, 20)}",'
                            f'"app":"{rng.choice(("support-bot", "search", "evals", "docs"))}","response":{msg}}}')
                recent.append(line)
                if len(recent) > 1000:
                    recent.pop(0)
            chunk.append(line)
            if len(chunk) >= 50_000:
                f.write("\n".join(chunk) + "\n")
                written += len(chunk)
                chunk = []
        if chunk:
            f.write("\n".join(chunk) + "\n")
    manifest = {"responses": responses, "seed": seed, "bare_share": bare_share, "bytes": path.stat().st_size,
                "seconds": round(time.perf_counter() - t0, 1)}
    marker.write_text(json.dumps(manifest) + "\n")
    return manifest


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--records", type=int, default=1_000_000)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1))
    p.add_argument("--records-per-file", type=int, default=RECORDS_PER_FILE)
    args = p.parse_args(argv)
    print(json.dumps(generate_tree(args.out, args.records, args.seed, args.workers, args.records_per_file), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The docs are executed: every ```console block is run and its output compared.

Collected from README.md, CONTRIBUTING.md, docs/*.md, analyzer/dialects/MAPPING.md and
analyzer/pricebook/FORMAT.md. In a block, a line starting with `$ ` is a command (a trailing `\\`
continues it on the next line; a here-document `<<'EOF'` takes the lines up to `EOF`); the lines up to the
next command are its expected output, stdout and stderr together, as a user sees them.

How a block runs (so that it means the same on a reader's machine and in the suite):
- with the repository as the working directory, the test environment's `llm-cost` first on PATH,
  `TZ=UTC`, no colour, and COLUMNS=200 (a block's info string may say `columns=N`);
- a report's default quarantine file (./llm-cost-quarantine.jsonl) is removed after the block;
- every block gets a fresh scratch directory that stands in for `/tmp/`: the commands say `/tmp/x`,
  run on `<scratch>/x`, and the output says `/tmp/x` again. Runs of the suite in parallel (or a
  reader's own files in /tmp) cannot collide;
- a command that exits non-zero must be followed by `$ echo $?` showing its code, so a failing
  example cannot pass unnoticed;
- `...` in expected output matches any text (also across lines): for what changes from run to run
  (the time of an ingest). The price book's version is compared as "some version", not as the hash
  of today's book: a price change must not break every example.
- a block that cannot run here (needs the network, a browser, or minutes) is marked
  ```console not-run: <why>; the reason is required.

`make docs` (python -m tests.test_docs --update) rewrites every expected output with what the
commands print now (outputs with `...` are kept): review the diff as you would a golden file's.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
DOC_GLOBS = ("README.md", "CONTRIBUTING.md", "docs/*.md", "analyzer/dialects/MAPPING.md", "analyzer/pricebook/FORMAT.md")
FENCE = re.compile(r"^```console(?P<info>.*)$")
# A price book's version where a report, a store or an audit prints it (12 hex digits of a hash).
VERSION = re.compile(r"(price books?:? |\"version\": \"|version |PriceBookVersion: )[0-9a-f]{12}\b")
TIMEOUT = 120
# `cat > /tmp/x.toml <<'EOF'`: the lines up to EOF belong to the command (a file written in the example).
HEREDOC = re.compile(r"<<-?\s*'?(\w+)'?")


def doc_files() -> list[Path]:
    return sorted({p for g in DOC_GLOBS for p in REPO.glob(g) if p.is_file()})


@dataclass
class Command:
    text: str  # the command as written (continuations joined)
    line: int  # 1-based line of its `$ ` in the file
    expected: list[str] = field(default_factory=list)
    out_start: int = 0  # 0-based index of its first output line in the file
    out_end: int = 0  # 0-based index after its last output line


@dataclass
class Block:
    path: Path
    line: int  # 1-based line of the opening fence
    info: str
    commands: list[Command]

    @property
    def id(self) -> str:
        return f"{self.path.relative_to(REPO)}:{self.line}"

    @property
    def not_run(self) -> str | None:
        m = re.search(r"not-run(?::\s*(.*))?", self.info)
        return None if m is None else (m.group(1) or "").strip()

    @property
    def columns(self) -> int:
        m = re.search(r"columns=(\d+)", self.info)
        return int(m.group(1)) if m else 200


def parse(path: Path) -> list[Block]:
    lines = path.read_text(encoding="utf-8").split("\n")
    blocks: list[Block] = []
    i = 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        block = Block(path, i + 1, m.group("info").strip(), [])
        i += 1
        current: Command | None = None
        while i < len(lines) and lines[i] != "```":
            if lines[i].startswith("$ "):
                start = i
                text = lines[i][2:]
                while text.endswith("\\") and i + 1 < len(lines):
                    i += 1
                    text = text + "\n" + lines[i]  # bash joins the lines
                heredoc = HEREDOC.search(text)
                while heredoc and i + 1 < len(lines):  # the document's lines are the command's, to its end
                    i += 1
                    text = text + "\n" + lines[i]
                    if lines[i] == heredoc.group(1):
                        break
                current = Command(text, start + 1, [], i + 1, i + 1)
                block.commands.append(current)
            elif current is not None:
                current.expected.append(lines[i])
                current.out_end = i + 1
            i += 1
        blocks.append(block)
        i += 1
    return blocks


def all_blocks() -> list[Block]:
    return [b for p in doc_files() for b in parse(p)]


def _env(columns: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LLM_COST", "CLAUDE_CONFIG_DIR"))}
    env.update(
        PATH=f"{BIN}{os.pathsep}{env.get('PATH', '')}",
        COLUMNS=str(columns),
        LINES="50",
        TZ="UTC",
        NO_COLOR="1",
        TERM="dumb",
        PYTHONUNBUFFERED="1",
        LC_ALL="C.UTF-8",
    )
    return env


def run_block(block: Block) -> list[tuple[Command, str, int]]:
    """Run a block's commands in order; each command's output (scratch shown as /tmp) and exit code."""
    scratch = Path(tempfile.mkdtemp(prefix="llm-cost-docs-"))
    env = _env(block.columns)
    results = []
    rc = 0
    # A report's default quarantine file lands in the working directory (the repository; git ignores
    # it): removed after the block unless it was there before.
    default_quarantine = REPO / "llm-cost-quarantine.jsonl"
    existed = default_quarantine.exists()
    try:
        for cmd in block.commands:
            # `(exit N)` first: `$ echo $?` shows the previous command's code, as in a shell.
            script = f"(exit {rc}); " + cmd.text.replace("/tmp/", f"{scratch}/")
            proc = subprocess.run(
                ["bash", "-c", script],
                cwd=REPO,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                timeout=TIMEOUT,
                check=False,
            )
            rc = proc.returncode
            out = proc.stdout.decode("utf-8", "replace").replace(f"{scratch}/", "/tmp/").replace(str(scratch), "/tmp")
            results.append((cmd, out, rc))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
        if not existed:
            default_quarantine.unlink(missing_ok=True)
    return results


def _clean(text: str) -> str:
    lines = [line.rstrip() for line in text.split("\n")]
    while lines and not lines[-1]:
        lines.pop()
    return "\n".join(lines)


def matches(expected: str, actual: str) -> bool:
    expected, actual = (VERSION.sub(r"\1<version>", _clean(t)) for t in (expected, actual))
    if "..." not in expected:
        return expected == actual
    pattern = ".*?".join(re.escape(part) for part in expected.split("..."))
    return re.fullmatch(pattern, actual, flags=re.DOTALL) is not None


BLOCKS = all_blocks()


@pytest.mark.parametrize("block", [b for b in BLOCKS if b.not_run is None], ids=lambda b: b.id)
def test_console_block(block: Block) -> None:
    assert block.commands, f"{block.id}: a console block without a `$ ` command"
    assert (BIN / "llm-cost").exists(), f"no llm-cost beside {sys.executable}: run the suite with .venv/bin/python"
    results = run_block(block)
    for n, (cmd, out, rc) in enumerate(results):
        where = f"{block.path.relative_to(REPO)}:{cmd.line}: $ {cmd.text}"
        assert matches("\n".join(cmd.expected), out), (
            f"{where}\n--- expected\n{_clean(chr(10).join(cmd.expected))}\n--- actual\n{_clean(out)}\n"
            "(make docs rewrites the outputs; review the diff)"
        )
        nxt = results[n + 1][0].text.strip() if n + 1 < len(results) else ""
        assert rc == 0 or nxt == "echo $?", f"{where}: exited {rc}; show it with `$ echo $?` or fix the example"


def test_not_run_blocks_say_why() -> None:
    for block in BLOCKS:
        if block.not_run is not None:
            assert len(block.not_run) >= 10, f"{block.id}: `not-run` needs a reason (network, browser, long run)"


def test_the_collector_finds_the_examples() -> None:
    # The guard against a collector that silently finds nothing: README's five commands and the
    # reference pages' examples are all there and run.
    by_file: dict[str, int] = {}
    for b in BLOCKS:
        if b.not_run is None:
            by_file[str(b.path.relative_to(REPO))] = by_file.get(str(b.path.relative_to(REPO)), 0) + 1
    assert by_file.get("README.md", 0) >= 6
    assert by_file.get("CONTRIBUTING.md", 0) >= 3
    assert by_file.get("analyzer/dialects/MAPPING.md", 0) >= 1 and by_file.get("analyzer/pricebook/FORMAT.md", 0) >= 1
    assert sum(by_file.values()) >= 21


def test_a_here_document_belongs_to_its_command(tmp_path) -> None:
    doc = tmp_path / "x.md"
    doc.write_text("```console\n$ cat > /tmp/a.txt <<'EOF'\n$ not a command\nEOF\n$ cat /tmp/a.txt\n$ not a command\n```\n")
    (block,) = parse(doc)
    assert [c.text for c in block.commands] == ["cat > /tmp/a.txt <<'EOF'\n$ not a command\nEOF", "cat /tmp/a.txt",
                                                "not a command"]
    (_, written, rc), (_, shown, _), _ = run_block(block)
    assert (written, rc, shown) == ("", 0, "$ not a command\n")


def test_matching_rules() -> None:
    assert matches("a\n...\nz", "a\nb\nc\nz")
    assert not matches("a\n...\nz", "a\nb\nc\ny")
    assert matches("price book b82eeab94ea1; x", "price book 0123456789ab; x  \n\n")
    assert not matches("rows read 25", "rows read 26")
    assert not matches("price book b82eeab94ea1; rows 1", "price book b82eeab94ea1; rows 2")


def test_readme_is_a_way_in() -> None:
    assert len((REPO / "README.md").read_text(encoding="utf-8").split("\n")) <= 300


LINK = re.compile(r"\]\((?!https?://|#|mailto:)([^)#\s]+)(?:#[^)]*)?\)")


@pytest.mark.parametrize("path", doc_files(), ids=lambda p: str(p.relative_to(REPO)))
def test_relative_links_exist(path: Path) -> None:
    for target in LINK.findall(path.read_text(encoding="utf-8")):
        assert (path.parent / target).exists(), f"{path.relative_to(REPO)}: link to a missing file: {target}"


def test_every_format_and_by_key_is_documented() -> None:
    from analyzer import schema
    from analyzer.dialects import DIALECTS

    formats = "".join(p.read_text(encoding="utf-8") for p in (REPO / "docs").glob("formats*.md"))
    assert [n for n in DIALECTS if f"`{n}`" not in formats] == []
    reports = (REPO / "docs" / "reports.md").read_text(encoding="utf-8")
    spelled = {w for span in re.findall(r"`([^`]*)`", reports) for w in re.findall(r"\w+", span)}
    assert [k for k in schema.BUILTIN_KEYS if k not in spelled] == []


def test_no_pointers_outside_the_repository() -> None:
    # Facts are cited by their public source (a URL, a date), never by a path that exists only on the
    # machine where they were researched.
    outside = re.compile("|".join(re.escape(s) for s in ("/work/" + "shared", "../" + "shared/", "claude-" + "prices.",
                                                          "claude-" + "price-modifiers", "claude-" + "model-ids")))
    tracked = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True, check=True).stdout.split()
    for name in tracked:
        path = REPO / name
        if path.suffix in {".py", ".toml", ".md", ".txt", ".cfg", ""} and path.is_file():
            assert not outside.search(path.read_text(encoding="utf-8", errors="replace")), name


def update() -> int:
    """Rewrite every run block's expected outputs with what the commands print now."""
    changed = 0
    for path in doc_files():
        lines = path.read_text(encoding="utf-8").split("\n")
        edits = []
        for block in parse(path):
            if block.not_run is not None:
                continue
            for cmd, out, _rc in run_block(block):
                if "..." in "\n".join(cmd.expected) or matches("\n".join(cmd.expected), out):
                    continue
                edits.append((cmd.out_start, cmd.out_end, _clean(out).split("\n") if _clean(out) else []))
        for start, end, new in sorted(edits, reverse=True):
            lines[start:end] = new
        if edits:
            path.write_text("\n".join(lines), encoding="utf-8")
            print(f"{path.relative_to(REPO)}: {len(edits)} output(s) rewritten")
            changed += len(edits)
    print(f"{changed} output(s) rewritten" if changed else "docs match the commands' output")
    return 0


if __name__ == "__main__":
    if sys.argv[1:] != ["--update"]:
        sys.exit("usage: python -m tests.test_docs --update")
    sys.exit(update())

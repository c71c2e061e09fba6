"""`llm-cost formats --suggest FILE`: a starter mapping (the `--map` TOML, see MAPPING.md) for a log
no built-in format reads, guessed from its columns' names (suggest.toml) and the kinds of values in its
first records. The user checks it, edits what was not guessed, and passes it with `--map`.

Only the file's first records (the sample detection reads) are looked at: a guess, never a parse.
"""

from __future__ import annotations

import json
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path, PurePath

from .. import schema
from ..sources import SourceFile, loads_first

_NAMES = Path(__file__).with_name("suggest.toml")
REQUIRED = ("timestamp", "model_raw", "input_tokens", "output_tokens")
_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}.*)?$|^\d{10}(\d{3})?(\d{3})?(\d{3})?(\.\d+)?$")
_INT = re.compile(r"^\s*\d+\s*$")
_NUMBER = re.compile(r"^\s*-?\d+(\.\d+)?([eE][-+]?\d+)?\s*$")
SAMPLE_RECORDS = 200


@dataclass
class Suggestion:
    text: str  # the mapping TOML
    missing: list[str]  # required fields no column was guessed for


def _normal(key: str) -> str:
    """`promptTokens`, `Prompt Tokens`, `prompt-tokens` -> `prompt_tokens`."""
    key = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", key.strip())
    return re.sub(r"[\s.\-/]+", "_", key).lower().strip("_")


def _leaves(record, prefix: tuple[str, ...] = ()) -> dict[tuple[str, ...], object]:
    """Every path to a scalar in a decoded record (lists are not walked: a mapping cannot index them);
    a column holding JSON object text (CSV/Parquet) is walked too, as mappings read into it."""
    out: dict[tuple[str, ...], object] = {}
    for k, v in record.items() if isinstance(record, dict) else ():
        path = (*prefix, str(k))
        if isinstance(v, str) and v[:1] == "{":
            try:
                v = loads_first(v)  # (a key named twice: its first value, as a mapping reads it)
            except ValueError:
                pass
        if isinstance(v, dict):
            out.update(_leaves(v, path))
        elif not isinstance(v, list):
            out[path] = v
    return out


def _kind_fits(kind: str, values: list) -> bool:
    seen = [v for v in values if v is not None and v != ""]
    if not seen:
        return kind != "time"  # an empty column may be a count or a label; never the time
    text = [str(v) for v in seen]
    if kind == "count":
        return all(isinstance(v, int) and not isinstance(v, bool) or isinstance(v, str) and _INT.match(v)
                   for v in seen)
    if kind == "number":
        return all(isinstance(v, (int, float)) and not isinstance(v, bool) or isinstance(v, str) and _NUMBER.match(v)
                   for v in seen)
    if kind == "time":
        return all(_TIME.match(t.strip()) for t in text)
    return not all(_NUMBER.match(t) for t in text)  # a label: not (only) numbers


def _path_text(path: tuple[str, ...]) -> str:
    return ".".join(p if re.fullmatch(r"[A-Za-z0-9_\-]+", p) else '"' + p.replace('"', '') + '"' for p in path)


def _toml_string(text: str) -> str:
    # A JSON string is a TOML basic string, but for DEL, which TOML wants escaped too.
    return json.dumps(text, ensure_ascii=False).replace("\x7f", "\\u007f")


def _example(values: list) -> str:
    """The first value, short, as the comment shows it: credentials masked (a key pasted in a log
    must not end up in a file meant to be committed)."""
    from ..safe_text import mask_secrets

    first = next((v for v in values if v not in (None, "")), None)
    shown = mask_secrets(str(first))
    return (shown[:30] + "...") if len(shown) > 30 else shown


def suggest(src: SourceFile) -> Suggestion:
    rules = tomllib.loads(_NAMES.read_text(encoding="utf-8"))
    values: dict[tuple[str, ...], list] = {}
    for record in src.sample[:SAMPLE_RECORDS]:
        for path, v in _leaves(record).items():
            values.setdefault(path, []).append(v)
    for c in src.columns:  # a CSV column empty in every sampled row still exists
        values.setdefault((c,), [])
    chosen: dict[str, tuple[str, ...]] = {}
    used: set[tuple[str, ...]] = set()
    for field, rule in rules.items():
        patterns = [re.compile(p) for p in rule["names"]]
        for pattern in patterns:
            hit = next((p for p in values if p not in used and pattern.fullmatch(_normal(p[-1]))
                        and _kind_fits(rule["kind"], values[p])), None)
            if hit is not None:
                chosen[field] = hit
                used.add(hit)
                break
    name = re.sub(r"[^a-z0-9]+", "-", PurePath(src.display).name.split(".")[0].lower()).strip("-") or "my-log"
    lines = [
        f"# A starter mapping for {_toml_string(src.display)}, guessed by `llm-cost formats --suggest` from the names and",
        "# values of its first records. Check every line, then: llm-cost report FILE... --map THIS.toml",
        "# (the mapping format: analyzer/dialects/MAPPING.md; docs/formats.md)",
        f"name = {_toml_string(name)}",
        f"description = {_toml_string('home-grown log like ' + PurePath(src.display).name)}",
        "# Every file read with --map must carry these columns (checked before reading it):",
        "signature = [" + ", ".join(_toml_string(_path_text(chosen[f])) for f in REQUIRED if f in chosen) + "]",
    ]
    has_cache = any(f in chosen for f in ("cache_read_tokens", "cache_write_tokens", "cache_write_5m_tokens",
                                          "cache_write_1h_tokens"))
    if has_cache:
        includes = "prompt" in _normal(chosen.get("input_tokens", ("",))[-1])
        lines += ["# true when the input count includes the cached tokens (OpenAI's prompt_tokens do;",
                  "# Anthropic's input_tokens do not)",
                  f"input_includes_cache = {'true' if includes else 'false'}"]
    lines += ["", "[fields]                      # canonical column = column (CSV/Parquet) or dotted JSON path"]
    missing = [f for f in REQUIRED if f not in chosen]
    for field in rules:
        if field in chosen:
            path = chosen[field]
            lines.append(f"{field} = {_toml_string(_path_text(path))}".ljust(46)
                         + f"# e.g. {_toml_string(_example(values[path]))}")
    for field in missing:
        lines.append(f'# {field} = "?"'.ljust(46) + "# REQUIRED: no column looked like one; name it")
    rest = [p for p in values if p not in used]
    dims = [p for p in rest if _kind_fits("text", values[p]) and values[p]]
    lines += ["", "[constants]                   # the same value for every record (optional)",
              '# platform = "anthropic"        # where requests were served: anthropic, bedrock, vertex, openai, ...']
    lines += ["", "[dimensions]                  # report keys (--by NAME) = column; uncomment the ones you want"]
    for p in dims:
        dim = re.sub(r"[^a-z0-9_]+", "_", _normal(p[-1])).strip("_") or "column"
        dim = f"log_{dim}" if dim in schema.RESERVED or dim.startswith("_") else dim
        lines.append(f"# {dim} = {_toml_string(_path_text(p))}".ljust(46)
                     + f"# e.g. {_toml_string(_example(values[p]))}")
    other = [p for p in rest if p not in dims]
    if other:
        lines += ["", "# Not used (numbers no field name matched): " + ", ".join(_toml_string(_path_text(p)) for p in other)]
    return Suggestion("\n".join(lines) + "\n", missing)

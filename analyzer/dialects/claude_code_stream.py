"""`claude-code-stream`: Claude Code's print-mode output (`-p --output-format stream-json` or `json`)
and the Agent SDK's message stream. The mapping (claude_code_stream.toml) names columns this module
makes, because what a run cost is not where a path can reach:

- The final `result` message totals the run: `modelUsage` maps each model used to its counts. It is
  read as one row per model (the record still counts once: `_rec`). Its keys are model ids, unknown
  in advance, so the object is picked out of the line's text and split into its flat members (a key
  inside the answer's text has its quotes escaped and never matches). A result without modelUsage
  (older versions) is one row from its `usage`, with the model of the messages before it.
- `assistant` messages carry a mid-stream partial of one response's usage (the output count is not
  final). They are never priced on top of the result: each is a repeat of its run's result (its first
  row's id `<run>#<model>`, ranked after it, whatever model the message names: modelUsage names them
  its own way, `claude-opus-4-7[1m]`), so the accounting counts them as repeats. The run is the
  next result in the file (its `uuid`, else the session id with the run's durations, turns and
  cost), so several runs saved in one file, or a resumed session's runs, each keep their own total.
  Messages after the last result (a run cut short) have no total: each response is priced from its
  own message (merged on its id), a lower bound on output.
- `total_cost_usd` is the reported cost of the whole run: on the row of its model with most tokens
  (ties: the first by name), beside the computed one; the record stays its first row's by name.
- A result row sums many requests: its request count is unknown (null), and it is priced at the base
  context tier (the per-request long-context rule must never see summed prompts): both noted.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import polars as pl

from ..sources import LINE
from . import mapped
from ._json_text import first_keys_only
from ._parse import count_value

NAME = "claude-code-stream"
BASE_WINDOW = "0-200k"
_STR = pl.String()
_MESSAGE = ("message", "usage")
READS = {path: _STR for path in [
    ("type",), ("subtype",), ("session_id",), ("uuid",), ("model",), ("total_cost_usd",),
    ("duration_ms",), ("duration_api_ms",), ("num_turns",),
    ("message", "id"), ("message", "model"),
    *[(*root, key) for root in (("usage",), _MESSAGE) for key in (
        "input_tokens", "output_tokens", "cache_read_input_tokens", "cache_creation_input_tokens", "service_tier")],
    *[(*root, "cache_creation", key) for root in (("usage",), _MESSAGE)
      for key in ("ephemeral_5m_input_tokens", "ephemeral_1h_input_tokens")],
    *[(*root, "server_tool_use", key) for root in (("usage",), _MESSAGE)
      for key in ("web_search_requests", "web_fetch_requests")],
]}
# modelUsage: `"<model>": {flat object}` members of one object (values hold no braces).
_MEMBER = r'"(?:[^"\\]|\\.)*"\s*:\s*\{[^{}]*\}'
_KEY = r'^"((?:[^"\\]|\\.)*)"'  # a member's key: its model
_MODEL_USAGE = r'"modelUsage"\s*:\s*(\{\s*(?:' + _MEMBER + r'\s*,?\s*)*\})'
_COUNTS = {"input": "inputTokens", "output": "outputTokens", "cache_read": "cacheReadInputTokens",
           "cache_write": "cacheCreationInputTokens", "web_search": "webSearchRequests"}


def _is_stream(src) -> bool:
    """Claude Code's messages: a run's init or its result (the keys alone are shared with other tools),
    or its messages, which carry `session_id` and `parent_tool_use_id` beside the API message (neither
    a Messages API log nor a Claude Code transcript has them): a stream saved without its init, whose
    result lies past the first records, was read as Messages API records, its partials priced."""
    return any((r.get("type") == "system" and r.get("subtype") == "init")
               or (r.get("type") == "result" and ("total_cost_usd" in r or "modelUsage" in r))
               or (r.get("type") in ("assistant", "user") and isinstance(r.get("message"), dict)
                   and "session_id" in r and "parent_tool_use_id" in r)
               for r in src.sample)


def _prepare(lf: pl.LazyFrame, src, ctx, get) -> pl.LazyFrame:
    def text(*path: str) -> pl.Expr:
        return get(path).cast(pl.String)

    kind = text("type")
    result = kind == "result"
    # A result without a uuid (older versions) is told apart from the session's other runs (a resumed
    # session keeps its id) by what it measured: the session id alone made a second run a repeat of
    # the first, and its total was lost. The same run saved twice (stream-json and json) still matches.
    measured = pl.format("{}@{}/{}/{}/{}", *[text(k).fill_null("") for k in
                                             ("session_id", "duration_ms", "duration_api_ms", "num_turns",
                                              "total_cost_usd")])
    run = pl.coalesce(text("uuid"), pl.when(text("session_id").is_not_null()).then(measured))
    lf = lf.with_columns(
        # The model of the messages so far: a result without modelUsage is theirs.
        pl.when(kind == "assistant").then(text("message", "model"))
        .when((kind == "system") & (text("subtype") == "init")).then(text("model"))
        .forward_fill().alias("_x_seen_model"),
        # A model named twice is its first member, as the decoder reads a key named twice: both rows
        # shared one id (`<run>#<model>`), and each was taken for the other's copy: the model was lost.
        pl.when(result).then(pl.col(LINE).str.extract(_MODEL_USAGE, 1))
        .str.extract_all(_MEMBER).list.eval(pl.element().filter(pl.element().str.extract(_KEY, 1).is_first_distinct()))
        # In the models' order, not the line's: the run's record is its first row's id (`<run>#<model>`),
        # and the same run saved by another writer (stream-json and json) may list them in another
        # order: listed as logged, the two copies were two records, and the run was billed twice.
        .list.sort()
        .alias("_x_members"),
    )
    # The record an assistant message repeats: its run's (the next result in the file; null after the
    # last) first row. Not the row of the message's own model: modelUsage names a model as Claude Code
    # does (`claude-opus-4-7[1m]` for a 1M-context run, where the messages say `claude-opus-4-7`), and a
    # message matching no row was priced on top of the run's total.
    first_model = pl.coalesce(pl.col("_x_members").list.first().str.extract(_KEY, 1), pl.col("_x_seen_model"))
    lf = lf.with_columns(pl.when(result).then(pl.format("{}#{}", run, first_model)).backward_fill().alias("_x_run"))
    n = pl.col("_x_members").list.len().fill_null(0)
    # The run's reported cost goes on the model that did most of its work (most tokens; a tie: the first
    # by name, as the members are sorted), where a reader looks for it, not on whichever name sorts first.
    # Chosen from the counts alone, so the same run listed in another order puts it on the same row.
    # (A count that is no integer reads as 0 here: its result is quarantined whole anyway.)
    # Each member's counts are read once, before the members become rows: their texts (a count named
    # twice: its first value, see first_keys_only) are what the rows count, and their values here are
    # what the rows' parser reads from them (_parse.count_value). A pattern of its own for the values
    # here read `1e5`, which the rows count 100,000, as 0: the $ went to another model. A window over
    # the rows (`over`) held the whole file in memory, and the counts taken again as the rows take them
    # cost ~5 CPU s more (100,000 runs in 200 MB, `report`: 9.6-11.1 CPU s and 438-501 MB with the
    # cost on the first row, 16.5-16.8 s and 712-773 MB so, 9.8-11.1 s and 462-488 MB when chosen
    # among the members).
    body = pl.element().str.extract(r"(\{[^{}]*\})$", 1)
    # A model's count named twice counts its first value, as the decoder reads every other path (a
    # JSON path keeps the last: 1,710 input tokens became 999,999): the key named again is renamed.
    body = pl.coalesce(first_keys_only(body), body)
    lf = lf.with_columns(pl.col("_x_members").list.eval(body).alias("_x_bodies"))
    lf = lf.with_columns(pl.col("_x_bodies").list.eval(pl.element().str.json_path_match(f"$.{key}"))
                         .alias(f"_x_m_{name}") for name, key in _COUNTS.items())
    tokens = [pl.col(f"_x_m_{name}").list.eval(count_value(pl.element()).cast(pl.Int128).fill_null(0))
              for name in ("input", "output", "cache_read", "cache_write")]
    lf = (lf.with_columns((tokens[0] + tokens[1] + tokens[2] + tokens[3]).list.arg_max().fill_null(0)
                          .cast(pl.Int64).alias("_x_cost_idx")).drop("_x_bodies")
          .with_columns(pl.int_ranges(0, pl.max_horizontal(n, 1)).alias("_x_idx")).explode("_x_idx")
          .with_columns(pl.col("_x_members").list.get(pl.col("_x_idx"), null_on_oob=True).alias("_x_member")))
    member = pl.col("_x_member")

    def per_model(name: str) -> pl.Expr:
        return pl.col(f"_x_m_{name}").list.get(pl.col("_x_idx"), null_on_oob=True)

    def count(name: str, *usage_key: str) -> pl.Expr:
        """A result's count from its modelUsage member, else its usage; an assistant's from its message."""
        # (A model's member, when the result has them: the usage beside them is the whole run's.)
        whole = pl.when(member.is_null()).then(text("usage", *usage_key))
        from_result = pl.when(member.is_not_null()).then(per_model(name)).otherwise(whole) \
            if name in _COUNTS else whole
        return pl.when(result).then(from_result).otherwise(text(*_MESSAGE, *usage_key))

    model = pl.when(result).then(pl.coalesce(member.str.extract(_KEY, 1),
                                              pl.col("_x_seen_model"))).otherwise(text("message", "model"))
    return lf.with_columns(
        (pl.col("_x_idx") == 0).cast(pl.Int64).alias("_rec"),
        model.alias("_x_model"),
        pl.when(result).then(pl.format("{}#{}", run, model))
        .otherwise(pl.coalesce(pl.col("_x_run"), text("message", "id"))).alias("_x_id"),
        pl.when(result).then(pl.lit("0")).otherwise(pl.lit("1")).alias("_x_rank"),
        count("input", "input_tokens").alias("_x_input"),
        count("output", "output_tokens").alias("_x_output"),
        count("cache_read", "cache_read_input_tokens").alias("_x_cache_read"),
        count("cache_write", "cache_creation_input_tokens").alias("_x_cache_write"),
        # A TTL split only where the counts are one response's or the run's usage (not a model's member).
        count("split_5m", "cache_creation", "ephemeral_5m_input_tokens").alias("_x_cache_write_5m"),
        count("split_1h", "cache_creation", "ephemeral_1h_input_tokens").alias("_x_cache_write_1h"),
        count("web_search", "server_tool_use", "web_search_requests").alias("_x_web_search"),
        count("web_fetch", "server_tool_use", "web_fetch_requests").alias("_x_web_fetch"),
        pl.when(result).then(text("usage", "service_tier")).otherwise(text(*_MESSAGE, "service_tier")).alias("_x_tier"),
        pl.when(result & (pl.col("_x_idx") == pl.col("_x_cost_idx"))).then(text("total_cost_usd")).alias("_x_cost"),
        # An assistant message is one request; a result row sums many (unknown: null, never 1 per row).
        pl.when(~result).then(pl.lit("1")).alias("_x_requests"),
        result.alias("_x_result"),
    ).drop("_x_members", "_x_member", "_x_idx", "_x_seen_model", "_x_run", "_x_cost_idx",
           *[f"_x_m_{name}" for name in _COUNTS])


def _finish(lf: pl.LazyFrame, src, ctx) -> pl.LazyFrame:
    ctx.note(f"{NAME}: a run's result totals many requests: its request count is unknown, and it is priced "
             f"at the base context tier ({BASE_WINDOW}), a lower bound for runs with prompts over 200K")
    result = pl.col("_x_result")
    return lf.with_columns(
        # A result's first row: unknown (null); its other models' rows are part of the same record (0,
        # as a request's later iterations are: what the store counts records by).
        pl.when(result & (pl.col("_rec") == 1)).then(None).when(result).then(0).otherwise(pl.col("requests"))
        .alias("requests"),
        pl.when(result).then(pl.col("context_window").fill_null(BASE_WINDOW)).otherwise(pl.col("context_window"))
        .alias("context_window"),
    )


DIALECT = dataclasses.replace(
    # `adds`: the finish hook states a result row's context window (the base tier), which no path reads
    mapped.dialect_from_mapping(Path(__file__).with_suffix(".toml"), prepare=_prepare, finish=_finish, reads=READS,
                adds=("context_window",), several_rows=True),
    matches=_is_stream)

"""`anthropic-batch`: Message Batches results. A mapping (anthropic_batch.toml), and the Messages
steps hook: a result's message is a Message, and one with `usage.iterations` (compaction) bills the
sum of its iterations, each priced by its own model, where its top-level counts leave the compaction
out (they alone under-billed such a result)."""

from pathlib import Path

from . import mapped
from .anthropic_messages import steps_finished, steps_read_as_text, with_steps

ROOTS = (("result", "message"),)

DIALECT = mapped.dialect_from_mapping(
    Path(__file__).with_suffix(".toml"), prepare=lambda lf, src, ctx, get: with_steps(lf, get, ROOTS),
    finish=lambda lf, src, ctx: steps_finished(lf), line_local=lambda src: True,
    reads=steps_read_as_text(ROOTS), several_rows=True)

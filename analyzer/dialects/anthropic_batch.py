"""`anthropic-batch`: Message Batches results. Pure mapping (anthropic_batch.toml)."""

from pathlib import Path

from . import mapped

DIALECT = mapped.dialect_from_mapping(Path(__file__).with_suffix(".toml"))

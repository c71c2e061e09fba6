"""Errors the library raises on purpose, and the exit codes the CLI maps them to.

Anything that is the user's to fix (a path that does not exist, an unknown format, an invalid price
book) is an `AnalyzerError` with a one-line message saying what is wrong and what to do. The CLI
prints that line and exits 2; it never shows a traceback for these.
"""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    OK = 0
    CHECK_FAILED = 1  # --strict saw unpriced/quarantined rows; an audit is out of tolerance
    USAGE = 2  # bad option, unreadable path, unknown format, invalid price book


class AnalyzerError(Exception):
    """A problem with the user's input or options, explained in one line."""

    exit_code = ExitCode.USAGE


class SourceError(AnalyzerError):
    """A path cannot be read, or its container/format cannot be recognised."""


class DialectError(AnalyzerError):
    """The records do not match any known log format (or the forced one)."""


class PriceBookError(AnalyzerError):
    """A price book or overlay is invalid; the message names file, model and field."""


class OptionError(AnalyzerError):
    """An option value is invalid (a --by key, a time zone, a date)."""


class OutputError(AnalyzerError):
    """An output cannot be written (disk full, permission), or would destroy an input."""


class UnknownKeys(OptionError):
    """--by (or a check's budget) names keys the data does not have; carries them, so that a caller
    that added keys of its own (a budget's `where`) can say where they came from."""

    def __init__(self, message: str, unknown: list[str], standard: list[str], dimensions: list[str]):
        super().__init__(message)
        self.unknown, self.standard, self.dimensions = unknown, standard, dimensions

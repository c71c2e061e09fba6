"""How a count is said in a message: "1 row", "2 rows", "1,234 files" (never "1 rows")."""

from __future__ import annotations


def counted(n: int, noun: str, plural: str | None = None) -> str:
    """`n` with thousands separators and `noun`, plural unless n is 1 (`plural`, else noun + "s")."""
    return f"{n:,} {noun if n == 1 else plural or noun + 's'}"

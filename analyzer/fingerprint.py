"""Whether a log file is still the one a run first read (a log rotated by copytruncate is not).

A run reads its files more than once: the pass that counts, then the quarantine pass, which reads
the records the count quarantined again by their numbers. A file truncated and written again in
between (logrotate's copytruncate) holds other records at those numbers: the quarantine file would
list records the accounting never counted, without a word. So a file's fingerprint is taken when
the run first reads it, and checked before (and after) it is read again: a file replaced (another
inode), shorter, or whose first bytes or bytes before its first size's end differ, has changed.
Records appended since are not a change: they are left for the next run (the counted records are
still where they were).

Edges, not a hash of the file: reading every byte again would cost a pass of its own. A file
written again whose first and last 4 KiB (up to its first size) are the same bytes is not seen;
a rotated log's new records differ from the old ones in their first bytes (times, ids).
"""

from __future__ import annotations

import os
import stat
import zlib

EDGE = 4096  # bytes compared at each end

Fingerprint = tuple[int, int, int, bytes]  # device, inode, size, CRC-32 of the edges


def _edges(f, size: int) -> bytes:
    f.seek(0)
    head = f.read(min(size, EDGE))
    f.seek(max(size - EDGE, 0))
    tail = f.read(min(size, EDGE))
    return edges_hash(head, tail)


def edges_hash(head, tail) -> bytes:
    """The hash of a file's first and last EDGE bytes (bytes or memoryviews): a CRC-32. A fingerprint
    tells a file written again by accident (a rotation), and lives only in the run that took it; a
    writer who means to hide a change keeps the edges as they were, which no hash of them sees. So a
    CRC, not BLAKE2: every file of a tree is hashed (16,949 at 1M transcripts: 0.17 -> 0.06 CPU s)."""
    return zlib.crc32(tail, zlib.crc32(b"\0", zlib.crc32(head))).to_bytes(4, "big")


def of_bytes_read(st: os.stat_result, data) -> Fingerprint:
    """The fingerprint of a file from the bytes a reader has just read of it (`data`: all of them, up to
    the run's size) and its `fstat`: what `take` would give, without opening and reading it again."""
    n = len(data)
    return st.st_dev, st.st_ino, n, edges_hash(data[:min(n, EDGE)], data[max(n - EDGE, 0):n])


def take(path: str) -> Fingerprint | None:
    """The file's fingerprint now; None for what is not a local regular file (stdin, a pipe)."""
    try:
        with open(path, "rb") as f:
            st = os.fstat(f.fileno())
            if not stat.S_ISREG(st.st_mode):
                return None
            return st.st_dev, st.st_ino, st.st_size, _edges(f, st.st_size)
    except OSError:
        return None


def change(path: str, then: Fingerprint) -> str | None:
    """How the file differs from `then` (None: the same file, perhaps with records appended)."""
    try:
        with open(path, "rb") as f:
            st = os.fstat(f.fileno())
            if (st.st_dev, st.st_ino) != then[:2]:
                return "replaced by another file"
            if st.st_size < then[2]:
                return f"truncated: {st.st_size:,} bytes, {then[2]:,} when first read"
            if _edges(f, then[2]) != then[3]:
                return "written again"
    except OSError as e:
        return f"unreadable ({e.strerror})"
    return None

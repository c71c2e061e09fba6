"""Descriptors that other code opens again by their name, /proc/self/fd/N: a Parquet file the check
read, held for Polars to read (held.py), and an output's unnamed file, which Polars writes
(writers.atomic_write).

Such a name opens whatever file holds the number N at that moment. Code anywhere in the process
that closes a number it no longer owns (a library closing twice, a finalizer run late, a test
closing a fixture's descriptor) frees N, and the next file opened is given it: Polars then reads
another file's rows as the log's, or writes an output over another file. A newly opened file always
gets the lowest free number, so these descriptors are moved far above the numbers in use: no file
opened later is given one of their numbers, and a stray close of a low number cannot reach them."""

from __future__ import annotations

import os

# The numbers these are moved to start at this fraction of the process's limit on open files (at
# most TOP): below it, every number a process ordinarily uses.
SHARE = 3 / 4
TOP = 4096


def floor() -> int:
    """The first number a descriptor opened by name is moved to (see out_of_reach)."""
    import resource

    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    if soft == resource.RLIM_INFINITY or soft <= 0:
        return TOP
    return min(int(soft * SHARE), TOP)


def out_of_reach(fd: int) -> int:
    """`fd` moved to the lowest free number at or above `floor()` (the old number closed; still closed
    on exec), or `fd` as it is where there is none free there, or no fcntl (not Linux: no /proc names
    either)."""
    try:
        import fcntl
    except ImportError:
        return fd
    low = floor()
    if fd >= low:
        return fd
    try:
        high = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, low)
    except OSError:  # (EMFILE, EINVAL: the limit leaves no number above the floor free)
        return fd
    os.close(fd)
    return high


def names(fd: int, made: os.stat_result) -> bool:
    """Whether `fd` is still open on the file `made` (its fstat when opened) describes: not closed
    by mistake elsewhere, nor its number given to another file since."""
    try:
        return os.path.samestat(made, os.fstat(fd))
    except OSError:  # (closed, and no file took the number)
        return False


def close_own(fd: int, made: os.stat_result) -> None:
    """Close `fd` if it still names the file `made` describes. A number given to another file is that
    file's now: closing it would close the file of whatever part of the process opened it, and the
    next file opened would take the number again (a stray close passed on to a traceback's source
    file, or an import)."""
    if names(fd, made):
        os.close(fd)

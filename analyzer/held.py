"""Parquet files held open for Polars after their check (sources.check_parquet), and what each was
when checked: a scope holds them (holding_parquet: a pipeline call, a CLI command, a file of a
store's ingest) and closes them when it ends; until then Polars reads each by its descriptor's name.
(No Polars here: the CLI enters a scope for every command, `llm-cost --help` too.)"""

from __future__ import annotations

import contextlib
import contextvars
import hashlib
import os
import stat
import weakref

from .errors import SourceError

EDGE = 4096  # the bytes at a file's end a stamp hashes: a Parquet file's footer (see Held)


class Held:
    """One checked Parquet file: the file the check read (kept open while the scope that checked it
    lasts, see holding_parquet) or None when Polars reads it by path, and its stamp when checked.

    Polars reads the file after the check, and the check says nothing of bytes written since: a file
    overwritten in place (the same inode: the kept descriptor reads the new bytes) or, read by path,
    replaced, is read unchecked, and Polars panics on some damaged files. So the stamp is compared
    before each plan that reads the file is made (SourceFile.scan_parquet) and after the reads (the
    scope's end, the written rows' end: write_rows): a file changed stops the run in one line naming
    it, and a panic or an error of Polars while it changed is that line, not a traceback. The stamp is
    the size, the modification time and a hash of the last 4 KiB (the footer, which names every page's
    place and statistics: a file written again with other rows has another) of the open file; read by
    path, its device and inode too. Not the change time: renaming a file, or another over it, changes
    it, and the descriptor still reads the checked bytes."""

    def __init__(self, path: str, file, by_path: bool):
        self.path, self.file, self.by_path = path, file, by_path
        self.source = path  # what Polars reads (see HeldParquet.hold)
        self.stamp = stamp(file.fileno())

    def change(self) -> str | None:
        """How the file Polars reads differs from the one checked (None: the same)."""
        try:
            if self.by_path:
                # (not blocking: a FIFO put at the path since opens at once, and is another file; a
                # blocking open waited for a writer for ever, and Ctrl-C or SIGTERM opened it again)
                fd = os.open(self.path, os.O_RDONLY | os.O_NONBLOCK)
                try:
                    st = os.fstat(fd)
                    # (the type too: a FIFO made where the file was unlinked may take its inode's number)
                    if not stat.S_ISREG(st.st_mode) or (st.st_dev, st.st_ino) != self.stamp[:2]:
                        return "replaced by another file"
                    now = stamp(fd)
                finally:
                    os.close(fd)
            else:
                now = stamp(self.file.fileno())
        except OSError as e:
            return f"unreadable ({e.strerror})"
        except ValueError:  # (closed: its scope ended; nothing reads it any more)
            return None
        if now[:2] != self.stamp[:2]:
            return "replaced by another file"
        if now[2] != self.stamp[2]:
            return f"written again: {now[2]:,} bytes, {self.stamp[2]:,} when checked"
        return "written again" if now != self.stamp else None

    def verify(self) -> None:
        why = self.change()
        if why is not None:
            raise SourceError(self.said(why)) from None

    def said(self, why: str) -> str:
        from .remote import display
        from .sources import shown

        return f"{shown(display(self.path))}: changed while being read ({why}); run again"


def stamp(fd: int) -> tuple:
    st = os.fstat(fd)
    tail = os.pread(fd, EDGE, max(st.st_size - EDGE, 0))
    return st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, hashlib.blake2b(tail, digest_size=16).digest()


class HeldParquet:
    """The Parquet files one scope checked (see holding_parquet), each held open for Polars to read
    by its descriptor's name; closed when the scope ends, or, kept for the rows `price_requests`
    returns (read when they are written), when nothing refers to this any more."""

    def __init__(self) -> None:
        self.files: list[Held] = []
        # What check_parquet found of each path, while the file at the path is the one it checked,
        # unchanged: a file checked once a scope (a store's ingest opens a file three times).
        self.found: dict[str, object] = {}
        # (a list the finalizer closes, not this object: it is called once nothing refers to it)
        self._open: list = []
        self.closed = False
        self._finalizer = weakref.finalize(self, _close, self._open)

    def hold(self, path: str, file, shipped: bool) -> Held:
        """`file` (open, checked) held for Polars: read by its descriptor's name, or (shipped to other
        processes, or past a quarter of the descriptors the process may open: Polars opens files too,
        and so do the writers) by path, closed now."""
        name = None if shipped or _HELD_OPEN[0] >= _descriptor_cap() else _descriptor_name(file)
        held = Held(path, file, by_path=name is None)
        if name is None:
            file.close()
        else:
            self._open.append(file)
            _HELD_OPEN[0] += 1
        held.source = name or path
        self.files.append(held)
        return held

    def again(self, path: str):
        """What check_parquet found of `path` in this scope, if the file there is still the one it
        checked, unchanged (None: check it)."""
        found = self.found.get(path)
        if found is None or found.held.change() is not None:
            return None
        try:
            st = os.stat(path)
        except OSError:
            return None
        return found if (st.st_dev, st.st_ino) == found.held.stamp[:2] else None

    def changed(self) -> str | None:
        """The line saying which file changed since its check, and how (None: none did)."""
        for held in self.files:
            why = held.change()
            if why is not None:
                return held.said(why)
        return None

    def verify(self) -> None:
        """Stop the run in one line if a file checked changed (see Held)."""
        for held in self.files:
            held.verify()

    def close(self) -> None:
        self.closed = True
        self._finalizer()

    def unreadable(self) -> bool:
        """Closed, and some plan reads a file by its descriptor's name: a name that now names
        nothing, or the file opened since with that number (see PricedRows.plan)."""
        return self.closed and any(not held.by_path for held in self.files)


_HELD_OPEN = [0]  # descriptors held by every scope of the process (see HeldParquet.hold)


def _close(files: list) -> None:
    for f in files:
        f.close()
        _HELD_OPEN[0] -= 1
    files.clear()


def _descriptor_cap() -> int:
    import resource

    return resource.getrlimit(resource.RLIMIT_NOFILE)[0] // 4


# The scope check_parquet holds its files in (see holding_parquet); outside any, _UNSCOPED: held until
# the process ends, as a plan made there may be collected at any time later.
_HELD: contextvars.ContextVar[HeldParquet | None] = contextvars.ContextVar("llm_cost_held", default=None)
_UNSCOPED = HeldParquet()


def current() -> HeldParquet | None:
    """The scope check_parquet holds files in now (None: none)."""
    return _HELD.get()


def holder() -> HeldParquet:
    return _HELD.get() or _UNSCOPED


@contextlib.contextmanager
def holding_parquet(held: HeldParquet | None = None, keep: bool = False, compare: bool = True):
    """The Parquet files checked inside (see check_parquet) are held open for Polars until it ends
    (a pipeline call, a CLI command, a file of a store's ingest), then closed: a process calling the
    pipeline again and again keeps none. `held`: an enclosing scope's, whose files these are (checked
    in it, closed when it ends, never here). `keep`: held on when it ends without an error, for a
    caller that reads them later (PricedRows: its plans read them when its rows are written).
    `compare`: compare the files when it ends without an error (not the CLI's: a command's reads are
    compared where they end, before the outputs are put in place).

    Ending, it compares each file with what was checked (Held): one changed stops the run in one line,
    also when the run failed on the way (a Polars panic, a PanicException, or an error: reading a file
    written since it was checked), instead of the failure."""
    owned = held is None
    held = held or HeldParquet()
    token = _HELD.set(held)
    try:
        yield held
    except BaseException:
        changed = held.changed()
        if owned:
            held.close()
        if changed is not None:  # (the failure was the file's change: said in its line)
            raise SourceError(changed) from None
        raise
    finally:
        _HELD.reset(token)
    try:
        if compare:
            held.verify()
    finally:
        if owned and not keep:
            held.close()


def _descriptor_name(file) -> str | None:
    """A name Polars can open a file by that names this open file, whatever is at its path now; None
    if the system has none."""
    for folder in ("/proc/self/fd", "/dev/fd"):
        name = f"{folder}/{file.fileno()}"
        if os.path.exists(name) and os.path.samestat(os.stat(name), os.fstat(file.fileno())):
            return name
    return None

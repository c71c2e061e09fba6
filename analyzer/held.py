"""Parquet files held open for Polars after their check (sources.check_parquet), and what each was
when checked: a scope holds them (holding_parquet: a pipeline call, a CLI command, a file of a
store's ingest) and closes them when it ends; until then Polars reads each by its descriptor's name.
A plan that reads one keeps its descriptor open as long as the plan lasts (see Held.scan): closed
while a plan could still read it, the number named whatever was opened next.
(No Polars imported at the top: the CLI enters a scope for every command, `llm-cost --help` too.)"""

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
    the size, the modification time, the change time and a hash of the last 4 KiB (the footer, which
    names every page's place and statistics: a file written again with other rows has another) of the
    open file; read by path, its device and inode too.

    The change time, because the others miss a page rewritten in place with the same size, the same
    footer and the modification time set back (`touch -d`, os.utime): the run priced the new bytes
    without a word. No one sets the change time back (only the system's clock does), and every write
    moves it, so an unchanged one is exact without reading the file again. It also moves when the
    file is renamed or its mode changed, while the descriptor still reads the checked bytes: such a
    run stops too ("run again"). That is the safe side: a run refused needlessly costs a rerun, one
    that read other bytes unseen costs wrong money; and a hash of the bytes would read the whole
    file once more (Polars reads it itself: we never see its bytes). Not when a link is removed or
    made with it (another file renamed over this one, the usual replace): see difference."""

    def __init__(self, path: str, file, by_path: bool, keeper: _Keeper | None = None):
        self.path, self.file, self.by_path = path, file, by_path
        self.source = path  # what Polars reads (see HeldParquet.hold)
        self.stamp = stamp(file.fileno())
        # What keeps the descriptor open (None: read by path, or its scope ended): a plan reading it
        # refers to it (see scan), so that the descriptor outlives every plan that reads it.
        self.keeper = keeper
        self.closed = False

    def change(self) -> str | None:
        """How the file Polars reads differs from the one checked (None: the same)."""
        if self.closed:  # (its scope ended, and compared it then)
            return None
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
        return difference(self.stamp, now)

    def scan(self):
        """A plan reading the file; by its descriptor's name, one that refers to the descriptor's
        keeper: the descriptor stays open while the plan, or any plan made from it, exists.

        Was: `price_requests(paths)[0].lazy()`: the rows dropped as `.lazy()` returned closed their
        descriptors, and the plan read whatever was opened since under the same number (another
        file's rows priced as these) or nothing. A LazyFrame refers to no Python object but its
        scan's credential provider (never called for a local file), so the keeper is that."""
        import polars as pl

        if self.by_path:
            return pl.scan_parquet(self.source, glob=False)
        if self.keeper is None:  # (its scope ended: the number may name another file by now)
            raise SourceError(self.said("its scope ended, and it was closed"))
        return pl.scan_parquet(self.source, glob=False, credential_provider=self.keeper.provider())

    def verify(self) -> None:
        why = self.change()
        if why is not None:
            raise SourceError(self.said(why)) from None

    def said(self, why: str) -> str:
        from .remote import display
        from .sources import shown

        return f"{shown(display(self.path))}: changed while being read ({why}); run again"


def stamp(fd: int) -> tuple:
    """device, inode, size, modification time, hash of the last EDGE bytes, change time, links (see
    Held and difference)."""
    st = os.fstat(fd)
    tail = os.pread(fd, EDGE, max(st.st_size - EDGE, 0))
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, hashlib.blake2b(tail, digest_size=16).digest(),
            st.st_ctime_ns, st.st_nlink)


def difference(then: tuple, now: tuple) -> str | None:
    """How a file stamped `now` differs from the one stamped `then` (None: the same bytes, as far as
    its stamps tell: see Held).

    The change time moves on every write; on a rename too, and when a link is made or removed. A
    file renamed over (a collector writing its export anew, then `mv`) has one link less, and the
    descriptor still reads the checked bytes: a change time moved with the links is that, not a
    write (a write as well, in the same moment, through a descriptor opened before, is not seen).
    Moved alone, it is a write with the modification time set back, or a rename or `chmod` of the
    file itself: refused, as the stamp cannot tell them apart. Moved with more links, a link was made
    to it (`ln`, a snapshot by hard links), and perhaps a write too: refused as well. Was: read as
    a rename over it, and a page rewritten with the time set back and then linked was priced
    unseen (1,000,000 tokens for 1,000, exit 0). Only a link less (the usual replace) is let be."""
    if now[:2] != then[:2]:
        return "replaced by another file"
    if now[2] != then[2]:
        return f"written again: {now[2]:,} bytes, {then[2]:,} when checked"
    if now[3:5] != then[3:5]:
        return "written again"
    if now[5] != then[5] and now[6] == then[6]:
        return "its change time moved: written with its time set back, renamed, or its mode changed"
    if now[5] != then[5] and now[6] > then[6]:
        return f"a link was made to it ({now[6]:,} links, {then[6]:,} when checked), or it was written"
    return None


class _Keeper:
    """The descriptors of one scope's checked files, closed when nothing refers to this any more: not
    the scope (until it ends) nor any plan reading them (see Held.scan). Called by Polars only
    as a credential provider, which it never asks of a local file: no credentials, should it ever."""

    def __init__(self) -> None:
        self.files: list = []
        self._finalizer = weakref.finalize(self, _close, self.files)

    def __call__(self, *args):
        return {}, None

    def provider(self):
        """This as scan_parquet's credential provider: wrapped as Polars wraps one (its builder), which
        it takes without warning that the parameter is unstable (POLARS_WARN_UNSTABLE=1 printed it
        on every run; `-W error` made it an error). The builder is Polars' own, not public: were it
        gone, the provider itself, which warns only when asked to."""
        try:
            from polars.io.cloud.credential_provider._builder import CredentialProviderBuilder
        except ImportError:
            return self
        return CredentialProviderBuilder.from_initialized_provider(self)


class HeldParquet:
    """The Parquet files one scope checked (see holding_parquet), each held open for Polars to read
    by its descriptor's name; closed when the scope ends, or, kept for the rows `price_requests`
    returns (read when they are written), when nothing refers to this any more; in either case not
    before the last plan that reads them is gone (see Held.scan)."""

    def __init__(self) -> None:
        self.files: list[Held] = []
        # What check_parquet found of each path, while the file at the path is the one it checked,
        # unchanged: a file checked once a scope (a store's ingest opens a file three times).
        self.found: dict[str, object] = {}
        # (the descriptors, in an object of their own that plans refer to: see _Keeper)
        self._keeper: _Keeper | None = _Keeper()
        self.closed = False
        self.read_by_name = False  # (some plan read a file by its descriptor's name: see unreadable)

    def hold(self, path: str, file, shipped: bool) -> Held:
        """`file` (open, checked) held for Polars: read by its descriptor's name, or (shipped to other
        processes, or past a quarter of the descriptors the process may open: Polars opens files too,
        and so do the writers) by path, closed now."""
        keeper = self._keeper
        name = None if shipped or keeper is None or _HELD_OPEN[0] >= _descriptor_cap() else _descriptor_name(file)
        held = Held(path, file, by_path=name is None, keeper=None if name is None else keeper)
        if name is None:
            file.close()
        else:
            keeper.files.append(file)
            _HELD_OPEN[0] += 1
            self.read_by_name = True
        held.source = name or path
        if name is not None:
            _NAMED[name] = path
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
        """Its files are no longer held by it: closed now, unless a plan reading one still exists (then
        when the last such plan is gone: see Held.scan). No plan is made of them after."""
        self.closed = True
        for held in self.files:
            held.closed, held.keeper = True, None
        self.found.clear()
        self._keeper = None  # (the last reference, but the plans': the descriptors close with it)

    def unreadable(self) -> bool:
        """Closed, and some plan reads a file by its descriptor's name: a name that may name nothing
        by now, or the file opened since with that number (see PricedRows.plan)."""
        return self.closed and self.read_by_name


_HELD_OPEN = [0]  # descriptors held by every scope of the process (see HeldParquet.hold)

# The file each descriptor name Polars was given last named (see named): kept past the scope's end,
# as the error naming it is shown after the scope closed its files.
_NAMED: dict[str, str] = {}


def named(text: str) -> str:
    """`text` (a Polars error: `Too many open files (os error 24): /proc/self/fd/13`) with the
    descriptor names of held files replaced by the files' own: the name means nothing to the user."""
    import re

    from .sources import shown

    def path(m: re.Match) -> str:
        return shown(_NAMED[m.group(0)]) if m.group(0) in _NAMED else m.group(0)

    return re.sub(r"(?:/proc/self/fd|/dev/fd)/\d+\b", path, text)


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

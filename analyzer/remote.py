"""Logs where they live: `s3://`, `gs://`, `az://` (`abfs://`, `abfss://`) and `https://` paths.

Each object a URL names (one object, every log under a prefix, or a glob's matches) is copied, as
it streams in, into a private temporary directory (0700, removed at exit) under its own key, and
read from there by the same readers as a local file. Why copy instead of reading the stream:
every pass of a run (the fast pass, a robust retry, the quarantine pass) must read the same bytes,
line numbers must be exact, gzip members and UTF-16 are handled by the local readers, and the
store's content hash comes from those bytes. Memory stays bounded (chunks of CHUNK bytes); the
disk needs room for the objects of one run. A file's name in every message, quarantine record and
`source_file` is its URL, never the temporary path.

The object stores are reached through obstore (Rust's `object_store`, one API for S3, GCS, Azure
and HTTP, no SDK per cloud); credentials and endpoints come from each cloud's standard environment
variables (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_REGION`, `AWS_ENDPOINT_URL`,
`GOOGLE_APPLICATION_CREDENTIALS`, `AZURE_STORAGE_ACCOUNT_NAME`, `AZURE_STORAGE_ACCOUNT_KEY`, ...).
"""

from __future__ import annotations

import atexit
import concurrent.futures
import contextlib
import fnmatch
import ipaddress
import os
import re
import shutil
import tempfile
import urllib.parse
from dataclasses import dataclass

from .errors import SourceError
from .safe_text import mask_secrets

SCHEMES = ("s3", "s3a", "gs", "az", "abfs", "abfss", "azure", "adl", "https", "http")
_URL = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")
_MAGIC = frozenset("*?[")
CHUNK = 8 << 20  # bytes of an object held in memory at a time
DOWNLOADS = 8  # objects fetched at once (a tree of transcripts is thousands of small objects)
LISTED_MAX = 1_000_000  # objects one URL may list: more is a mistake (a bucket's root), not a night's logs


def is_url(path: str) -> bool:
    """A path that names an object store (or web server) rather than a local file."""
    m = _URL.match(path)
    return m is not None and m.group(1).lower() in SCHEMES


@dataclass
class _Spool:
    """Where this process keeps the objects it copied: `root`, and for each `root/<n>` the URL of
    the bucket (or host) whose keys lie below it."""

    root: str
    bases: dict[str, str]


_SPOOL: _Spool | None = None


def _spool() -> _Spool:
    global _SPOOL
    if _SPOOL is None:
        from .sources import process_dir

        # (in the process's temporary directory: removed by a later run if this one is killed)
        _SPOOL = _Spool(tempfile.mkdtemp(prefix="remote-", dir=process_dir()), {})  # (mkdtemp: 0700)
        atexit.register(shutil.rmtree, _SPOOL.root, True)
    return _SPOOL


def display(path: str) -> str:
    """The URL of a copied object (its name for people and outputs); any other path as given."""
    spool = _SPOOL
    if spool is None or not path.startswith(spool.root + os.sep):
        return path
    top, _, key = path[len(spool.root) + 1:].partition(os.sep)
    base = spool.bases.get(top)
    return path if base is None else f"{base}/{key.replace(os.sep, '/')}"


def spool_prefixes() -> dict[str, str]:
    """Local directory prefix -> URL prefix of every bucket copied so far (to map many names at once)."""
    spool = _SPOOL
    return {} if spool is None else {os.path.join(spool.root, k) + os.sep: v + "/" for k, v in spool.bases.items()}


def _split(url: str) -> tuple[str, str, str]:
    """(scheme, the store's base URL, the key or pattern below it)."""
    parts = urllib.parse.urlsplit(url)
    scheme = parts.scheme.lower()
    if not parts.netloc:
        raise SourceError(f"{shown_url(url)}: no bucket or host in the URL")
    if parts.query or parts.fragment:
        if scheme not in ("http", "https"):
            raise SourceError(f"{shown_url(url)}: an object URL takes no ?query or #fragment")
        if parts.query:
            # The store is the host and the key the path: the query would never be sent. A signed URL
            # would go unsigned, and `export.csv?day=1` and `?day=2` would be one object read twice.
            raise SourceError(f"{shown_url(url)}: a web URL with a ?query (a signed URL, a query for an export) "
                              "cannot be read: the query would not be sent; download the file and name it")
    base = f"{scheme}://{parts.netloc}"  # (az://container: the account from AZURE_STORAGE_ACCOUNT_NAME)
    key = urllib.parse.unquote(parts.path.lstrip("/"))
    return scheme, base, key


def _named(base: str) -> str:
    """A store's base URL as it names objects in outputs: without a web server's user:password@."""
    parts = urllib.parse.urlsplit(base)
    if "@" not in parts.netloc or parts.scheme not in ("http", "https"):
        return base
    return urllib.parse.urlunsplit((parts.scheme, parts.netloc.rpartition("@")[2], parts.path, "", ""))


def shown_url(url: str) -> str:
    """A URL in a message: no credentials (user:password@, signed query strings), no control characters."""
    parts = urllib.parse.urlsplit(url)
    netloc = parts.netloc.rpartition("@")[2] if "@" in parts.netloc and parts.scheme in ("http", "https") else parts.netloc
    text = urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, "…" if parts.query else "", ""))
    text = mask_secrets(text)
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode() for c in text)


def _loopback(host: str | None) -> bool:
    if host is None:
        return False
    if host == "localhost":
        return True
    with contextlib.suppress(ValueError):
        return ipaddress.ip_address(host).is_loopback
    return False


def _store(scheme: str, base: str, url: str):
    """The obstore store of a bucket or host, configured from the environment."""
    try:
        from obstore.store import from_url
    except ImportError:  # pragma: no cover - obstore is a dependency
        raise SourceError(f"{shown_url(url)}: reading object storage needs the obstore package") from None
    options: dict = {"timeout": "120s", "connect_timeout": "10s"}
    if scheme == "http":
        if not _loopback(urllib.parse.urlsplit(url).hostname):
            raise SourceError(f"{shown_url(url)}: plain http is not encrypted (logs and credentials would travel in "
                              "the clear): use https:// (http:// is read only from this machine, for tests)")
        options["allow_http"] = True
    endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL") or ""
    if scheme in ("s3", "s3a") and endpoint.startswith("http://"):
        options["allow_http"] = True  # a local S3 (MinIO, moto) named by the user's own environment
    try:
        return from_url(base, client_options=options)
    except Exception as e:  # noqa: BLE001 - obstore raises its own kinds for a bad configuration
        raise SourceError(f"{shown_url(url)}: cannot reach the object store ({_reason(e)})") from None


_DENIED = "access denied (check the credentials in the environment and the bucket's policy)"


def _reason(e: BaseException) -> str:
    """obstore's error in one line, without the request's XML body or a secret."""
    text = str(e).strip()
    kinds = (("NoSuchBucket", "no such bucket"), ("NoSuchKey", "no such object"),
             ("InvalidAccessKeyId", "the access key is not valid (check AWS_ACCESS_KEY_ID)"),
             ("SignatureDoesNotMatch", "the credentials were refused (check AWS_SECRET_ACCESS_KEY)"),
             ("AccessDenied", _DENIED), ("403 Forbidden", _DENIED),
             ("401 Unauthorized", "not authorized (check the credentials)"),
             ("404 Not Found", "not found"),
             ("Connection refused", "connection refused (is the endpoint right?)"),
             ("dns error", "the host name does not resolve"),
             ("error sending request", "cannot connect to the endpoint"),
             ("timed out", "timed out"),
             ("illegal character sequence", "an object's key holds `..` or an empty part: it cannot be a file's "
              "path (rename it, or name the other objects)"))
    for needle, said in kinds:
        if needle.lower() in text.lower():
            return said
    if isinstance(e, FileNotFoundError):
        return "not found"
    first = text.splitlines()[0] if text else type(e).__name__
    # obstore's message may quote the URL it requested, with the user:password@ given in it (a
    # redirect loop: "Error performing GET https://user:pw@host/..."): the password is taken out.
    first = re.sub(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/\s@]*@", r"\1", first)
    return mask_secrets(first[:200])


def _safe_key(key: str) -> bool:
    """An object key that can be a path below the spool: no `..`, `.` or empty segment (a key
    `../../etc/x` must not be written outside the spool), no NUL."""
    parts = key.split("/")
    return bool(key) and "\x00" not in key and all(p not in ("", ".", "..") for p in parts)


def _pattern(glob: str) -> re.Pattern:
    """A key pattern as a regular expression: `*` and `?` within one `/` part, `**` any depth."""
    out, i = [], 0
    while i < len(glob):
        c = glob[i]
        if glob.startswith("**/", i):
            out.append("(?:[^/]+/)*")
            i += 3
        elif glob.startswith("**", i):
            out.append(".*")
            i += 2
        elif c == "*":
            out.append("[^/]*")
            i += 1
        elif c == "?":
            out.append("[^/]")
            i += 1
        elif c == "[":
            # A class is read by fnmatch itself (as the local walk reads it), so that a pattern picks
            # the same names in a bucket as on disk; `(?!/)`: it never matches the `/` between parts.
            # (Read here before, `[!a-c]` had its range escaped into three letters, `[^A]` was
            # negated, and `[!]a]` or `[b-a]` was a re.error traceback.)
            j = i + 1
            j += j < len(glob) and glob[j] == "!"
            j += j < len(glob) and glob[j] == "]"
            j = glob.find("]", j)
            if j < 0:
                out.append(re.escape(c))
                i += 1
            else:
                one = fnmatch.translate(glob[i:j + 1])  # '(?s:CLASS)\\Z'
                out.append("(?!/)" + one.removeprefix("(?s:").removesuffix(")\\Z"))
                i = j + 1
        else:
            out.append(re.escape(c))
            i += 1
    return re.compile("".join(out) + r"\Z")


def _listed(store, prefix: str, url: str) -> list[tuple[str, int, str | None]]:
    """Every object below `prefix` (a `/`-ended key prefix, or "" for the bucket): (key, size, ETag)."""
    import obstore

    out: list[tuple[str, int, str | None]] = []
    try:
        for chunk in obstore.list(store, prefix=prefix or None, chunk_size=1000):
            out.extend((m["path"], m["size"], m.get("e_tag")) for m in chunk)
            if len(out) > LISTED_MAX:
                raise SourceError(f"{shown_url(url)}: more than {LISTED_MAX:,} objects under this prefix: name a "
                                  "narrower prefix or a pattern")
    except SourceError:
        raise
    except Exception as e:  # noqa: BLE001
        raise SourceError(f"{shown_url(url)}: cannot list ({_reason(e)})") from None
    return sorted(out)


def _head(store, key: str, url: str) -> tuple[int, str | None] | None:
    """The size and ETag of the object `key`, or None when there is none."""
    import obstore

    try:
        meta = obstore.head(store, key)
        return meta["size"], meta.get("e_tag")
    except FileNotFoundError:
        return None
    except Exception as e:  # noqa: BLE001
        if "404" in str(e) or "not found" in str(e).lower():
            return None
        raise SourceError(f"{shown_url(url)}: cannot read ({_reason(e)})") from None


def _is_hidden(key: str, below: str) -> bool:
    """Hidden on purpose, as in a local walk: a part of the key below the named prefix starts with `.`."""
    return any(p.startswith(".") for p in key[len(below):].split("/"))


@dataclass
class Listing:
    """The objects one URL names: (URL, key, size) of each log to read; what was passed over, with why;
    `explicit`: the URL named one object."""

    store: object
    base: str
    objects: list[tuple[str, int, str | None]]  # (key, size or -1 if unknown, ETag or None)
    skipped: dict[str, str]
    explicit: bool


def _readable(objects: list, base: str, skipped: dict[str, str], is_log_name) -> list:
    """The objects a walk or a pattern reads; each other one named in `skipped`, with why."""
    out = []
    for k, size, tag in objects:
        name = k.rsplit("/", 1)[-1]
        if not _safe_key(k):
            skipped[f"{base}/{k}"] = "object key is not a safe file path (empty, . or .. parts)"
        elif name.startswith("llm-cost-quarantine"):
            skipped[f"{base}/{k}"] = "llm-cost's own quarantine file"
        elif not is_log_name(name):
            skipped[f"{base}/{k}"] = "not a log file name (.csv .tsv .jsonl .ndjson .json .parquet, or .gz/.zst)"
        else:
            out.append((k, size, tag))
    return out


def resolve(url: str, is_log_name) -> Listing:
    """What a URL names: one object, every log under a prefix (walked like a directory), or the objects
    a pattern (`*`, `?`, `[...]`, `**`) matches. `is_log_name(name)` says whether a walk reads a name."""
    scheme, base, key = _split(url)
    store = _store(scheme, base, url)
    skipped: dict[str, str] = {}
    if scheme in ("http", "https"):
        if _MAGIC & set(key):
            raise SourceError(f"{shown_url(url)}: a web server cannot be listed: name each file (patterns work on s3://, "
                              "gs:// and az://)")
        return Listing(store, base, [(key, -1, None)], skipped, True)  # (its size comes with the body)
    magic = next((i for i, c in enumerate(key) if c in _MAGIC), None)
    if magic is not None:
        fixed = key[:key.rfind("/", 0, magic) + 1]
        rx = _pattern(key)
        matched = [o for o in _listed(store, fixed, url) if rx.match(o[0])]
        objects = _readable(matched, base, skipped, lambda name: True)
        if not objects:
            raise SourceError(f"{shown_url(url)}: no object matches this pattern")
        return Listing(store, base, objects, skipped, False)
    if key and not key.endswith("/"):
        meta = _head(store, key, url)
        if meta is not None:
            if not _safe_key(key):
                raise SourceError(f"{shown_url(url)}: the object key is not a safe file path (empty, . or .. parts)")
            return Listing(store, base, [(key, *meta)], skipped, True)
    below = key if not key or key.endswith("/") else key + "/"
    listed = _listed(store, below, url)
    if not listed:
        raise SourceError(f"{shown_url(url)}: no such object or prefix")
    # (hidden on purpose, as in a local walk: not read and not named)
    objects = _readable([o for o in listed if not _is_hidden(o[0], below)], base, skipped, is_log_name)
    if not objects:
        raise SourceError(f"{shown_url(url)}: prefix holds no .csv/.jsonl/.ndjson/.json/.parquet objects (optionally .gz/.zst)")
    return Listing(store, base, objects, skipped, False)


def fetch(listing: Listing) -> list[str]:
    """Copy the listed objects into the spool (DOWNLOADS at a time, each streamed in CHUNK pieces);
    their local paths, in the listing's order."""
    spool = _spool()
    named = _named(listing.base)  # (the same host's objects under the same name, whoever logged in)
    top = next((k for k, v in spool.bases.items() if v == named), None)
    if top is None:
        top = str(len(spool.bases))
        spool.bases[top] = named
    where = os.path.join(spool.root, top)
    paths = [os.path.join(where, *k.split("/")) for k, _, _ in listing.objects]
    with concurrent.futures.ThreadPoolExecutor(DOWNLOADS) as pool:
        jobs = [pool.submit(_copy, listing, k, size, tag, p) for (k, size, tag), p in zip(listing.objects, paths)]
        for job in jobs:
            job.result()
    return paths


# ETag and size of each object copied by this process, by its local path: an object listed again
# unchanged (the CLI counts the files before `ingest` reads them) is not copied again.
_COPIED: dict[str, tuple[str, int]] = {}


def _copy(listing: Listing, key: str, size: int, tag: str | None, path: str) -> None:
    import obstore

    url = f"{listing.base}/{key}"
    if tag is not None and _COPIED.get(path) == (tag, size) and os.path.isfile(path):
        return
    # Keys are paths in the spool: `x.csv` and `x.csv/y.csv` are both legal keys, but one cannot be
    # a file and a folder at once (Python's own message named the spool's temporary path, not a URL).
    clash = SourceError(f"{shown_url(url)}: another object's key continues this one as a folder (or this one "
                        "continues another's): they cannot both be read in one run; name them in separate runs")
    try:
        os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise clash from None
    tmp = f"{path}.part-{os.getpid()}"
    got = 0
    try:
        reply = obstore.get(listing.store, key)
        with open(tmp, "wb") as out:
            for chunk in reply.stream(min_chunk_size=CHUNK):
                out.write(chunk)
                got += len(chunk)
        modified = reply.meta.get("last_modified")
        if modified is not None:  # (a log without times is dated by its file's time: the object's, not the copy's)
            os.utime(tmp, (modified.timestamp(), modified.timestamp()))
    except FileNotFoundError:
        _discard(tmp)
        raise SourceError(f"{shown_url(url)}: no such object") from None
    except OSError as e:
        _discard(tmp)
        if e.filename is not None:  # (the local disk: full, or not writable)
            raise SourceError(f"{shown_url(url)}: cannot copy to a temporary file ({e.strerror})") from None
        raise SourceError(f"{shown_url(url)}: cannot read ({_reason(e)})") from None
    except Exception as e:  # noqa: BLE001 - obstore's errors
        _discard(tmp)
        raise SourceError(f"{shown_url(url)}: cannot read ({_reason(e)})") from None
    if size >= 0 and got != size:
        _discard(tmp)
        raise SourceError(f"{shown_url(url)}: the object changed while it was read ({got:,} of {size:,} bytes)")
    try:
        os.replace(tmp, path)
    except IsADirectoryError:
        _discard(tmp)
        raise clash from None
    etag = reply.meta.get("e_tag")
    if etag is not None:
        _COPIED[path] = (etag, got)


def _discard(path: str) -> None:
    with contextlib.suppress(OSError):
        os.unlink(path)



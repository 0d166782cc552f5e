"""Client code for files on any fsspec filesystem (local paths, ``file://``,
``memory://``, ``s3://`` with s3fs...) and for Parquet through pyarrow: the one-line
install hints, resolving a URL to its filesystem, and atomic small writes.

Used by ``to_parquet`` (:mod:`millstream.sinks.parquet`), the file sources
(:mod:`millstream.sources.files`) and the readers (:mod:`millstream.sources.file_readers`).
``fsspec`` and ``pyarrow`` are imported on first use, never by ``import millstream``.
"""

from __future__ import annotations

import os
from typing import Any

__all__ = [
    "HIDDEN_PREFIXES",
    "TailReader",
    "import_fsspec",
    "import_pyarrow",
    "is_local",
    "is_url",
    "listing",
    "resolve",
    "write_atomically",
]

#: Names that readers (pyarrow datasets, dask, the millstream readers) skip: files being
#: written, and the sink's own bookkeeping.
HIDDEN_PREFIXES = (".", "_")


def import_fsspec() -> Any:
    """The ``fsspec`` module, or an ImportError that says how to install it."""
    try:
        import fsspec
    except ImportError:
        raise ImportError(
            "files on fsspec URLs need fsspec: pip install 'millstream[parquet]'"
        ) from None
    return fsspec


def import_pyarrow() -> Any:
    """The ``pyarrow`` module (with ``pyarrow.parquet`` loaded), or an ImportError that
    says how to install it."""
    try:
        import pyarrow
        import pyarrow.parquet
    except ImportError:
        raise ImportError("Parquet needs pyarrow: pip install 'millstream[parquet]'") from None
    return pyarrow


def is_url(path: Any) -> bool:
    """Whether ``path`` is a URL with a protocol (``memory://x``, ``s3://b/k``).

    >>> is_url('memory://data/a.txt'), is_url('data/a.txt'), is_url('C:/x')
    (True, False, False)
    """
    return isinstance(path, str) and "://" in path


def resolve(path: str | os.PathLike[str], **storage_options: Any) -> tuple[Any, str]:
    """``(filesystem, path on it)`` for a local path or an fsspec URL.

    >>> fs, p = resolve('memory://demo/out')
    >>> type(fs).__name__, p
    ('MemoryFileSystem', '/demo/out')
    >>> resolve('memory://demo/*.csv')[1]
    '/demo/*.csv'

    """
    fsspec = import_fsspec()
    path = os.fspath(path)
    if not is_url(path):
        path = os.path.abspath(path)
    # url_to_fs keeps a glob as it is (get_fs_token_paths would expand it to its matches)
    fs, stripped = fsspec.core.url_to_fs(path, **storage_options)
    return fs, stripped


def listing(fs: Any, path: str) -> Any:
    """``fs`` with its cached listings of ``path`` (and the directories above) dropped, so
    that the next ``ls``/``glob``/``info`` asks the store: s3fs and other object-store
    filesystems cache listings and would not see objects written by another client.

    >>> import fsspec
    >>> fs = fsspec.filesystem('memory')
    >>> listing(fs, '/x') is fs
    True
    """
    fs.invalidate_cache(path)
    return fs


def is_local(fs: Any) -> bool:
    """Whether ``fs`` is the local filesystem (where plain ``open`` works)."""
    return "file" in (fs.protocol if isinstance(fs.protocol, tuple) else (fs.protocol,))


def write_atomically(fs: Any, path: str, data: bytes) -> None:
    """Write ``data`` to ``path`` on ``fs`` so that readers see all of it or nothing:
    under a hidden temporary name, then renamed (on S3: a COPY and a DELETE)."""
    directory, name = path.rsplit("/", 1)
    temporary = f"{directory}/.{name}.tmp"
    with fs.open(temporary, "wb") as f:
        f.write(data)
        if is_local(fs):
            f.flush()
            os.fsync(f.fileno())
    fs.mv(temporary, path)


class TailReader:
    """A file on an fsspec filesystem read like a growing local file: each ``read``
    opens it at the current position if it grew (object stores and ``memory://`` give a
    snapshot of the file when it is opened, so an open file never sees appends).

    >>> import fsspec
    >>> fs = fsspec.filesystem('memory')
    >>> fs.pipe('/tail/log.txt', b'ab')
    >>> f = TailReader(fs, '/tail/log.txt')
    >>> f.read(10)
    b'ab'
    >>> fs.pipe('/tail/log.txt', b'abcd')
    >>> f.read(10), f.tell(), f.read(10)
    (b'cd', 4, b'')
    """

    def __init__(self, fs: Any, path: str):
        self.fs = fs
        self.path = path
        fs.info(path)  # FileNotFoundError now, not at the first read
        self.position = 0
        self.closed = False

    def _size(self) -> int:
        return int(listing(self.fs, self.path).size(self.path))

    def seek(self, offset: int, whence: int = 0) -> int:
        self.position = self._size() + offset if whence == 2 else offset
        return self.position

    def tell(self) -> int:
        return self.position

    def read(self, n: int = -1) -> bytes:
        if self._size() <= self.position:
            return b""
        with self.fs.open(self.path, "rb") as f:
            f.seek(self.position)
            data: bytes = f.read(n)
        self.position += len(data)
        return data

    def close(self) -> None:
        self.closed = True

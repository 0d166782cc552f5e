"""Where checkpoints are kept: a local directory or any fsspec URL.

Each checkpoint is one file, ``checkpoint-<id>.ckpt``: a header line with the format,
the length and the SHA-256 of the body, then the body (a pickle). A checkpoint is
written under a temporary name and renamed once complete (on a local disk after an
``fsync``), so a crash at any moment leaves either the new file complete or no new file;
a file cut short or changed by other means fails its checksum when read, and
:meth:`CheckpointStore.latest` then falls back to the one before, with a warning.

Examples
--------
>>> import tempfile
>>> store = CheckpointStore(tempfile.mkdtemp())
>>> store.write(1, b'first')      # the bytes written, header included
96
>>> _ = store.write(2, b'second')
>>> store.ids(), store.read(2)
([2, 1], b'second')
>>> store.latest()
(2, b'second')
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import uuid
from typing import Any

from ..core.failpoints import failpoint
from ..exceptions import CheckpointError

__all__ = ["CheckpointStore"]

logger = logging.getLogger("millstream.checkpoint")

_MAGIC = b"millstream-checkpoint 1"
_NAME = re.compile(r"^checkpoint-(\d{10})\.ckpt$")


class CheckpointStore:
    """The checkpoint files of one location (a directory path or an fsspec URL)."""

    def __init__(self, location: str | os.PathLike[str], **storage_options: Any):
        location = os.fspath(location)
        self.location = location
        self._fs: Any = None
        if "://" in location and not location.startswith("file://"):
            try:
                import fsspec
            except ImportError:  # pragma: no cover - fsspec is a dependency
                raise ImportError("checkpoints at a URL need fsspec: pip install fsspec") from None
            fs, path = fsspec.core.url_to_fs(location, **storage_options)
            self._fs, self._root = fs, path.rstrip("/")
            fs.makedirs(self._root, exist_ok=True)
        else:
            if location.startswith("file://"):
                location = location[len("file://") :]
            self._root = os.path.abspath(location)
            os.makedirs(self._root, exist_ok=True)

    # -- paths --------------------------------------------------------------------------
    def _path(self, name: str) -> str:
        return f"{self._root}/{name}"

    @staticmethod
    def name_of(checkpoint_id: int) -> str:
        """The file name of checkpoint ``checkpoint_id``."""
        return f"checkpoint-{checkpoint_id:010d}.ckpt"

    # -- writing ------------------------------------------------------------------------
    def write(self, checkpoint_id: int, body: bytes) -> int:
        """Write checkpoint ``checkpoint_id`` atomically; return the bytes written."""
        header = b"%s %d %s\n" % (_MAGIC, len(body), hashlib.sha256(body).hexdigest().encode())
        final = self._path(self.name_of(checkpoint_id))
        temp = self._path(f".tmp-{uuid.uuid4().hex}-{self.name_of(checkpoint_id)}")
        half = len(body) // 2
        if self._fs is None:
            try:
                with open(temp, "wb") as f:
                    f.write(header)
                    f.write(body[:half])
                    f.flush()
                    failpoint("during_checkpoint_write")
                    f.write(body[half:])
                    f.flush()
                    os.fsync(f.fileno())
                failpoint("before_checkpoint_rename")
                os.replace(temp, final)
                self._sync_dir()
            except BaseException:
                if os.path.exists(temp):
                    os.unlink(temp)
                raise
        else:
            self._fs.pipe_file(temp, header + body)
            failpoint("before_checkpoint_rename")
            self._fs.mv(temp, final)
        return len(header) + len(body)

    def _sync_dir(self) -> None:
        try:
            fd = os.open(self._root, os.O_RDONLY)
        except OSError:  # pragma: no cover - platforms without directory fds
            return
        try:
            os.fsync(fd)
        except OSError:  # pragma: no cover
            pass
        finally:
            os.close(fd)

    def delete(self, checkpoint_id: int) -> None:
        """Remove checkpoint ``checkpoint_id`` (no error if it is gone)."""
        path = self._path(self.name_of(checkpoint_id))
        try:
            if self._fs is None:
                os.unlink(path)
            else:
                self._fs.rm_file(path)
        except FileNotFoundError:
            pass

    def clean_temporary(self) -> None:
        """Remove files of writes a crash interrupted."""
        for name in self._names():
            if name.startswith(".tmp-"):
                try:
                    if self._fs is None:
                        os.unlink(self._path(name))
                    else:
                        self._fs.rm_file(self._path(name))
                except FileNotFoundError:
                    pass

    # -- reading ------------------------------------------------------------------------
    def _names(self) -> list[str]:
        if self._fs is None:
            return os.listdir(self._root)
        return [p.rstrip("/").rsplit("/", 1)[-1] for p in self._fs.ls(self._root, detail=False)]

    def ids(self) -> list[int]:
        """The ids of the checkpoint files here, newest first."""
        found = (_NAME.match(name) for name in self._names())
        return sorted((int(m.group(1)) for m in found if m), reverse=True)

    def read(self, checkpoint_id: int) -> bytes:
        """The body of checkpoint ``checkpoint_id``; raises :class:`CheckpointError` if the
        file is damaged (cut short, changed, not a checkpoint)."""
        path = self._path(self.name_of(checkpoint_id))
        if self._fs is None:
            with open(path, "rb") as f:
                data = f.read()
        else:
            data = self._fs.cat_file(path)
        line, sep, body = data.partition(b"\n")
        parts = line.split(b" ")
        if not sep or len(parts) != 4 or b" ".join(parts[:2]) != _MAGIC:
            raise CheckpointError(f"{path} is not a millstream checkpoint (bad header)")
        size, digest = int(parts[2]), parts[3].decode()
        if len(body) != size:
            raise CheckpointError(
                f"{path} is damaged: {len(body)} bytes of body where its header says {size}"
            )
        if hashlib.sha256(body).hexdigest() != digest:
            raise CheckpointError(f"{path} is damaged: its checksum does not match")
        return body

    def latest(self) -> tuple[int, bytes] | None:
        """The newest checkpoint that reads back whole, as ``(id, body)``; damaged newer ones
        are skipped with a warning. ``None`` when there is none; :class:`CheckpointError`
        when there are checkpoints but none reads back (state is never reset silently)."""
        ids = self.ids()
        problems = []
        for checkpoint_id in ids:
            try:
                return checkpoint_id, self.read(checkpoint_id)
            except (CheckpointError, OSError, ValueError) as e:
                logger.warning("skipping checkpoint %d: %s", checkpoint_id, e)
                problems.append(str(e))
        if ids:
            raise CheckpointError(
                f"no checkpoint in {self.location} reads back: " + "; ".join(problems)
            )
        return None

    def __repr__(self) -> str:
        return f"CheckpointStore({self.location!r})"

"""sha256 of source files, computed once per file version per process."""

from __future__ import annotations

import hashlib
from pathlib import Path

from mmhash.errors import DataError

_CHUNK = 1 << 20
# (resolved path, mtime_ns, size) -> hex digest. A file that changes gets a new key, so a
# cached digest is never used for different content written in place.
_digests: dict[tuple[str, int, int], str] = {}


def file_key(path: Path) -> tuple[str, int, int]:
    """The identity of one version of a file: resolved path, modification time (ns), size."""
    st = path.stat()
    return str(path.resolve()), st.st_mtime_ns, st.st_size


def sha256(path: str | Path) -> str:
    """Hex sha256 of a file's bytes (cached by :func:`file_key`)."""
    path = Path(path)
    try:
        key = file_key(path)
    except OSError as e:
        raise DataError(f"cannot read {path} ({type(e).__name__})") from e
    if key not in _digests:
        h = hashlib.sha256()
        with path.open("rb") as fh:
            while chunk := fh.read(_CHUNK):
                h.update(chunk)
        _digests[key] = h.hexdigest()
    return _digests[key]


def verify(path: str | Path, expected: str, dataset: str) -> str:
    """Check a file against the sha256 pinned in its dataset card; return the digest.

    Raises :class:`DataError` naming the file, the expected and the actual hash: a different
    file version is an error, never silently read (its rows would not match the stored split).
    """
    actual = sha256(path)
    if actual != expected.lower():
        raise DataError(
            f"dataset {dataset!r}: {path} is not the pinned version (sha256 expected "
            f"{expected.lower()}, actual {actual}); restore the original file"
        )
    return actual

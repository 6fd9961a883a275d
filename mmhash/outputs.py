"""The one check of every path a command writes, made before any work is done.

Each writing command (``bench -o/--store``, ``tune -o/--store``, ``fit -o``, ``encode -o``,
``index build -o``, ``search -o``, ``report -o/--plot``, ``features -o``, ``regress
--reference/--store``) calls :func:`check_output` (or :func:`check_output_folder` for a folder of
figures) on each of its outputs first, so that a long run never ends in a write that was bound to
fail, and no input is ever overwritten by an output. The check refuses, in one
:class:`~mmhash.errors.InvalidInputError` naming the option and the path:

* an output that is a folder (or, for a folder of outputs, a file);
* an extension not among those of the format the command writes (the valid ones are named);
* an output whose folder does not exist or cannot be written (a read-only folder or mount);
* an output that is one of the command's inputs (the same file, also through another path or a
  hard link);
* for a file updated in place (a SQLite result store), a file that is itself read-only.

The writes themselves go through :func:`mmhash.codefiles.atomic_output` (a temporary file beside
the target, renamed into place), so a failed command leaves no partial file behind.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path

from mmhash.errors import InvalidInputError

#: Extensions of each kind of file mmhash writes (the first is the one suggested).
MODEL_EXTENSIONS = (".npz",)
CODES_EXTENSIONS = (".npz",)
INDEX_EXTENSIONS = (".index", ".npz")
FEATURE_EXTENSIONS = (".npz",)
TABLE_EXTENSIONS = (".csv", ".json")
PARAMS_EXTENSIONS = (".toml",)
REFERENCE_EXTENSIONS = (".json",)
#: ``mmhash report --format F -o PATH``: the extensions of each format's file.
REPORT_EXTENSIONS = {"markdown": (".md", ".markdown", ".txt"), "latex": (".tex",),
                     "csv": TABLE_EXTENSIONS, "html": (".html", ".htm")}


def check_output(path: str | os.PathLike, *, option: str | None = None,
                 extensions: Sequence[str] | None = None,
                 inputs: Iterable[str | os.PathLike | None] = (), what: str = "the output",
                 in_place: bool = False, make_folder: bool = False) -> Path:
    """``path`` as a :class:`~pathlib.Path` if the command may write it; one clear
    :class:`InvalidInputError` otherwise (see the module docstring).

    ``option``: the flag that named the path (``"-o"``, ``"--store"``), quoted in the message.
    ``extensions``: the valid extensions, lower case with the dot (None: any). ``inputs``: what
    the command reads (paths; None and names of things that are not files are skipped).
    ``what``: the kind of file, for the extension message (``"codes files"``). ``in_place``:
    the file is updated where it stands (SQLite) rather than replaced, so it must itself be
    writable. ``make_folder``: missing folders are created (the nearest existing one must then
    be writable).
    """
    target = Path(path)
    name = f"{option} {target}" if option else str(target)
    if target.is_dir():
        raise InvalidInputError(f"{name} is a folder; name a file")
    _check_not_an_input(target, name, inputs)
    if extensions is not None and target.suffix.lower() not in extensions:
        valid = ", ".join(extensions[:-1]) + " or " if len(extensions) > 1 else ""
        stem = target.stem if target.suffix else target.name
        raise InvalidInputError(f"{name}: {what} are {valid}{extensions[-1]} files; name it "
                                f"e.g. {stem}{extensions[0]}")
    _check_folder(target.parent, name, make_folder)
    if in_place and target.exists() and not os.access(target, os.W_OK):
        raise InvalidInputError(f"{name} cannot be written: the file is read-only")
    return target


def check_output_folder(path: str | os.PathLike, *, option: str | None = None,
                        inputs: Iterable[str | os.PathLike | None] = ()) -> Path:
    """``path`` as a Path if the command may write files into it (it is created if missing);
    one clear :class:`InvalidInputError` otherwise."""
    target = Path(path)
    name = f"{option} {target}" if option else str(target)
    if target.exists() and not target.is_dir():
        raise InvalidInputError(f"{name} is a file; name a folder")
    _check_folder(target, name, make_folder=True)
    _check_not_an_input(target, name, inputs)
    return target


def _check_folder(folder: Path, name: str, make_folder: bool) -> None:
    folder = folder if str(folder) else Path(".")
    if make_folder:
        # mkdir(parents=True) will create what is missing: the nearest existing folder decides
        while not folder.exists() and folder != folder.parent:
            folder = folder.parent
    if not folder.exists():
        raise InvalidInputError(f"{name} cannot be written: the folder {folder} does not exist "
                                "(create it first)")
    if not folder.is_dir():
        raise InvalidInputError(f"{name} cannot be written: {folder} is not a folder")
    # os.access also answers False on a read-only mount, where even root cannot write
    if not os.access(folder, os.W_OK | os.X_OK):
        raise InvalidInputError(f"{name} cannot be written: the folder {folder} is read-only")


def _check_not_an_input(target: Path, name: str,
                        inputs: Iterable[str | os.PathLike | None]) -> None:
    for given in inputs:
        if given is None or not str(given):
            continue
        if _same_file(target, Path(given)):
            raise InvalidInputError(f"{name}: that is the input {given}, which would be "
                                    "overwritten; name another file")


def _same_file(a: Path, b: Path) -> bool:
    """True when ``a`` and ``b`` name one file: the same inode if both exist (hard links,
    symbolic links, other spellings), else the same resolved path."""
    if a.exists() and b.exists():
        try:
            return os.path.samefile(a, b)
        except OSError:
            return False
    if a.exists() or b.exists():
        return False
    return a.resolve() == b.resolve()

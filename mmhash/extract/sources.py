"""Readers of the raw inputs of ``mmhash features``: images (a DCMH-family ``IAll`` array or a
folder of image files) and texts (a tag matrix, or captions one per line / in a CSV column).

Images are read **lazily, in blocks of rows**: NUS-WIDE's ``IAll`` is a ~28 GB MATLAB v7.3
file, so only the rows asked for are read from disk (h5py through
:func:`mmhash.data.formats.matfile.open_keyed`; a v5 file is parsed whole by scipy, as v5 files
are under 2 GB; a ``.npy`` is memory-mapped).

``IAll`` layouts. A 4-D uint8 array in any of the orders the field circulates: images first,
``(n, 3, H, W)`` or ``(n, H, W, 3)``, or images last, ``(H, W, 3, n)`` or ``(3, H, W, n)``.
Shapes are taken as MATLAB gives them: a v7.3 file stores the column-major array with its axes
reversed, so h5py sees ``(n, 3, W, H)`` for MATLAB's ``H x W x 3 x n``, and the reader reverses
every axis back (UCCH reads the same file with ``transpose([0, 3, 2, 1])`` to ``N x H x W x 3``,
penghu-cs/UCCH@0c20e62 ``src/cmdataset.py:126-140``). A dataset is MATLAB's when it carries the
``MATLAB_class`` attribute; a plain HDF5 dataset written from Python is taken as stored. The
channel axis is the one of size 3 next to the spatial pair, the image axis is the first or the
last; anything else is a :class:`~mmhash.errors.DataError`.

Every image leaves a source as an RGB :class:`PIL.Image.Image`; the extractor's
preprocessing (:mod:`mmhash.extract.preprocess`) starts from there.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mmhash.errors import DataError, InvalidInputError

#: ``(name, image axis, channel axis)`` of each accepted 4-D layout, in the order tried.
LAYOUTS = (("NCHW", 0, 1), ("NHWC", 0, 3), ("HWCN", 3, 2), ("CHWN", 3, 0))
#: Variable names tried, in order, when ``key`` is not given.
IMAGE_KEYS = ("IAll", "images", "I")
TEXT_KEYS = ("YAll", "tags", "T")
#: Extensions of image files a folder source lists when no id file is given.
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm")
ARRAY_SUFFIXES = (".mat", ".h5", ".hdf5", ".npz", ".npy")
CAPTION_SUFFIXES = (".txt", ".csv")
TEXT_COLUMN = "text"
ID_COLUMN = "id"
_CHUNK = 1 << 20


def file_sha256(path: Path) -> str:
    """Hex sha256 of a file (cached per file version, :mod:`mmhash.data.checksum`)."""
    from mmhash.data.checksum import sha256

    return sha256(path)


def images_layout(shape: tuple[int, ...], source: str) -> tuple[str, int, int]:
    """``(layout name, image axis, channel axis)`` of a 4-D image array of ``shape`` (MATLAB's
    axis order); :class:`DataError` when no layout fits."""
    if len(shape) != 4:
        raise DataError(f"{source}: images must be a 4-D array, got shape {tuple(shape)}")
    for name, image_axis, channel_axis in LAYOUTS:
        spatial = [a for a in range(4) if a not in (image_axis, channel_axis)]
        if (shape[channel_axis] == 3 and spatial == sorted(spatial)
                and all(shape[a] > 3 for a in spatial)):
            return name, image_axis, channel_axis
    raise DataError(f"{source}: a 4-D array of shape {tuple(shape)} is not images; expected "
                    f"(n, 3, H, W), (n, H, W, 3), (H, W, 3, n) or (3, H, W, n) uint8")


@dataclass
class ImageSource:
    """Rows of images to extract from: ``n`` images, ``ids`` (str ``(n,)`` or None),
    ``describe()`` for provenance, ``read(start, stop)`` -> list of RGB PIL images."""

    n: int = 0
    ids: np.ndarray | None = None

    def read(self, start: int, stop: int) -> list[Any]:
        raise NotImplementedError

    def describe(self) -> dict[str, Any]:
        """What was read: kind, file(s) and their sha256, key, layout, shape."""
        raise NotImplementedError

    def close(self) -> None:
        pass

    def __enter__(self) -> ImageSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass
class ArrayImages(ImageSource):
    """An ``IAll``-style 4-D uint8 array in a ``.mat`` (v5 or v7.3), ``.h5``, ``.npz`` or
    ``.npy`` file, read ``read(start, stop)`` rows at a time."""

    path: Path = Path()
    key: str | None = None
    layout: str = ""
    shape: tuple[int, ...] = ()
    _file: Any = None
    _image_axis: int = 0
    _order: tuple[int, ...] = ()  # (image, H, W, channel) axes of a block
    _format: str = ""

    def read(self, start: int, stop: int) -> list[Any]:
        """RGB PIL images of rows ``start:stop``; only those rows are read from a v7.3 file."""
        from PIL import Image

        if self._format == "npy":
            index = [slice(None)] * 4
            index[self._image_axis] = slice(start, stop)
            block = np.asarray(self._file[tuple(index)])
        else:
            block = self._file.read_block(self.key, self._image_axis, start, stop)
        if block.dtype != np.uint8:
            raise DataError(f"{self.path}: images must be uint8 (0-255), got {block.dtype}")
        block = np.ascontiguousarray(np.transpose(block, self._order))  # (rows, H, W, 3)
        return [Image.fromarray(image, "RGB") for image in block]

    def describe(self) -> dict[str, Any]:
        return {"kind": "image-array", "files": [_file_record(self.path)], "key": self.key,
                "format": self._format, "layout": self.layout, "shape": list(self.shape)}

    def close(self) -> None:
        if self._file is not None and self._format != "npy":
            self._file.close()
        self._file = None


def open_image_array(path: str | os.PathLike, key: str | None = None) -> ArrayImages:
    """Open a 4-D image array file lazily (see the module docstring for layouts).

    ``key``: the variable holding the images (default ``IAll``, else the only 4-D array).
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in ARRAY_SUFFIXES:
        raise DataError(f"{path}: unknown image file type {suffix or '(none)'!r}; use one of "
                        f"{', '.join(ARRAY_SUFFIXES)} or a folder of images")
    if suffix == ".npy":
        handle: Any = _load_npy(path, key, mmap_mode="r")
        shape, fmt = tuple(handle.shape), "npy"
    else:
        import h5py

        from mmhash.data.formats.matfile import open_hdf5_arrays, open_keyed

        handle = open_hdf5_arrays(path) if h5py.is_hdf5(path) else open_keyed(path)
        try:
            key = _pick_key(handle, key, IMAGE_KEYS, 4, path)
            shape, fmt = tuple(handle.shape(key)), handle.format
        except BaseException:
            handle.close()
            raise
    try:
        layout, image_axis, channel_axis = images_layout(shape, str(path))
    except DataError:
        if fmt != "npy":
            handle.close()
        raise
    spatial = tuple(a for a in range(4) if a not in (image_axis, channel_axis))
    return ArrayImages(n=int(shape[image_axis]), ids=None, path=path, key=key, layout=layout,
                       shape=shape, _file=handle, _image_axis=image_axis,
                       _order=(image_axis, *spatial, channel_axis), _format=fmt)


def _load_npy(path: Path, key: str | None, mmap_mode: str | None = None) -> np.ndarray:
    """The one array of a ``.npy`` file (memory-mapped with ``mmap_mode="r"``); a ``--key``
    is an error, as is an unreadable file."""
    if key is not None:
        raise InvalidInputError(f"{path}: a .npy file holds one array; --key is for "
                                f".mat, .h5 and .npz files")
    try:
        return np.load(path, mmap_mode=mmap_mode, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: not a readable .npy array ({exc})") from None


def _pick_key(handle: Any, key: str | None, preferred: tuple[str, ...], ndim: int,
              path: Path) -> str:
    keys = [k for k in handle.keys() if not k.startswith("__")]
    if key is not None:
        if key not in keys:
            raise DataError(f"{path}: no array named {key!r}; it holds {', '.join(keys)}")
        return key
    for name in preferred:
        if name in keys:
            return name
    shapes = {}
    for k in keys:
        try:
            shapes[k] = tuple(handle.shape(k))
        except DataError:
            continue
    fits = [k for k, s in shapes.items() if len(s) == ndim]
    if len(fits) != 1:
        held = ", ".join(f"{k} {s}" for k, s in shapes.items()) or "none"
        raise DataError(f"{path}: name the {ndim}-D array with --key; it holds {held}")
    return fits[0]


@dataclass
class FolderImages(ImageSource):
    """Image files in a folder, named by an id list (one path relative to the folder per line)
    or, without one, every image file directly in the folder in name order."""

    folder: Path = Path()
    id_file: Path | None = None
    names: list[str] = field(default_factory=list)

    def read(self, start: int, stop: int) -> list[Any]:
        from PIL import Image, UnidentifiedImageError

        out = []
        for name in self.names[start:stop]:
            path = self.folder / name
            try:
                with Image.open(path) as image:
                    out.append(image.convert("RGB"))
            except FileNotFoundError:
                raise DataError(f"image not found: {path} (listed in "
                                f"{self.id_file or self.folder})") from None
            except (UnidentifiedImageError, OSError) as exc:
                raise DataError(f"{path}: not a readable image ({exc})") from None
        return out

    def describe(self) -> dict[str, Any]:
        files = [_file_record(self.id_file)] if self.id_file else []
        return {"kind": "image-folder", "folder": str(self.folder), "files": files,
                "images": len(self.names), "images_sha256": self._content_sha256()}

    def _content_sha256(self) -> str:
        """sha256 over ``"<sha256 of file>  <name>\\n"`` of every image, in row order (the
        images' bytes and order, without listing 200k digests in the provenance)."""
        digest = hashlib.sha256()
        for name in self.names:
            path = self.folder / name
            if not path.is_file():
                raise DataError(f"image not found: {path} (listed in "
                                f"{self.id_file or self.folder})")
            digest.update(f"{file_sha256(path)}  {name}\n".encode())
        return digest.hexdigest()


def open_image_folder(folder: str | os.PathLike, id_file: str | os.PathLike | None = None
                      ) -> FolderImages:
    """A folder of image files; ``id_file`` lists them (one relative name per line, blank lines
    ignored), else every image file directly in ``folder``, sorted by name."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"image folder not found: {folder}")
    if id_file is not None:
        id_path = Path(id_file)
        if not id_path.is_file():
            raise DataError(f"id list not found: {id_path}")
        names = [line.strip() for line in id_path.read_text(encoding="utf-8").splitlines()]
        names = [n for n in names if n]
    else:
        id_path = None
        names = sorted(p.name for p in folder.iterdir()
                       if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not names:
        raise DataError(f"{id_path or folder}: no images listed (image files: "
                        f"{', '.join(IMAGE_SUFFIXES)})")
    return FolderImages(n=len(names), ids=np.asarray(names, dtype=str), folder=folder,
                        id_file=id_path, names=names)


def open_images(path: str | os.PathLike, *, key: str | None = None,
                id_file: str | os.PathLike | None = None) -> ImageSource:
    """A folder (with an optional id list) or a 4-D image array file."""
    path = Path(path)
    if path.is_dir():
        if key is not None:
            raise InvalidInputError(f"{path}: --key names an array in a file; IMAGES is a "
                                    f"folder")
        return open_image_folder(path, id_file)
    if id_file is not None:
        raise InvalidInputError(f"{path}: --ids lists the files of an image folder; IMAGES "
                                f"is a file")
    if not path.is_file():
        raise DataError(f"images not found: {path}")
    return open_image_array(path, key)


# ---- texts ------------------------------------------------------------------------------
@dataclass
class TextInput:
    """Texts read whole: either a ``matrix`` (float ``(n, vocab)`` tag counts or 0/1, as
    stored) or ``captions`` (list of n str), with ``ids`` (str ``(n,)``) or None."""

    path: Path
    matrix: np.ndarray | None = None
    captions: list[str] | None = None
    ids: np.ndarray | None = None
    key: str | None = None

    @property
    def n(self) -> int:
        return len(self.captions) if self.captions is not None else int(self.matrix.shape[0])

    def describe(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": "tag-matrix" if self.matrix is not None else "captions",
                               "files": [_file_record(self.path)]}
        if self.matrix is not None:
            out.update(key=self.key, shape=list(self.matrix.shape))
        else:
            out.update(rows=len(self.captions))
            if self.path.suffix.lower() == ".csv":
                out.update(column=TEXT_COLUMN)
        return out


def is_caption_file(path: str | os.PathLike) -> bool:
    """Whether ``path`` names captions (``.txt`` one per line, ``.csv`` with a text column)."""
    return Path(path).suffix.lower() in CAPTION_SUFFIXES


def read_texts(path: str | os.PathLike, key: str | None = None) -> TextInput:
    """Read a tag matrix (``.mat``/``.h5``/``.npz``: ``key``, default ``YAll`` or the only 2-D
    array; ``.npy``) or captions (``.txt``: one per line, every line a row, blank ones too;
    ``.csv``: the ``text`` column, ``id`` names the rows if present)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"texts not found: {path}")
    suffix = path.suffix.lower()
    if suffix == ".txt":
        lines = path.read_text(encoding="utf-8").split("\n")
        if lines and lines[-1] == "":
            lines.pop()  # the final newline ends the last row; it does not start another
        if not lines:
            raise DataError(f"{path}: no captions")
        return TextInput(path, captions=[line.rstrip("\r") for line in lines])
    if suffix == ".csv":
        import pandas as pd

        try:
            frame = pd.read_csv(path, dtype=str, keep_default_na=False)
        except (ValueError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
            raise DataError(f"{path}: not a readable CSV with a header row ({exc})") from None
        if TEXT_COLUMN not in frame.columns:
            raise DataError(f"{path}: no {TEXT_COLUMN!r} column; it has "
                            f"{', '.join(map(str, frame.columns))}")
        ids = frame[ID_COLUMN].to_numpy(dtype=str) if ID_COLUMN in frame.columns else None
        return TextInput(path, captions=frame[TEXT_COLUMN].tolist(), ids=ids)
    if suffix not in ARRAY_SUFFIXES:
        raise DataError(f"{path}: unknown text file type {suffix or '(none)'!r}; use a tag "
                        f"matrix ({', '.join(ARRAY_SUFFIXES)}) or captions "
                        f"({', '.join(CAPTION_SUFFIXES)})")
    if suffix == ".npy":
        matrix = _load_npy(path, key)
    else:
        from mmhash.data.formats.matfile import open_keyed

        with open_keyed(path) as handle:
            key = _pick_key(handle, key, TEXT_KEYS, 2, path)
            matrix = handle.read([key])[key]
    if hasattr(matrix, "toarray"):  # a MATLAB sparse matrix
        matrix = matrix.toarray()
    matrix = np.asarray(matrix)
    if matrix.ndim != 2 or not np.issubdtype(matrix.dtype, np.number) and matrix.dtype != bool:
        raise DataError(f"{path}: a tag matrix must be 2-D numbers (items x vocabulary), got "
                        f"{matrix.dtype} {matrix.shape}")
    if matrix.size == 0:
        raise DataError(f"{path}: empty tag matrix {matrix.shape}")
    matrix = matrix.astype(np.float32)
    if not np.isfinite(matrix).all():
        raise DataError(f"{path}: the tag matrix holds NaN or infinite values")
    return TextInput(path, matrix=matrix, key=key)


def _file_record(path: Path) -> dict[str, Any]:
    path = Path(path)
    return {"path": str(path), "name": path.name, "bytes": path.stat().st_size,
            "sha256": file_sha256(path)}

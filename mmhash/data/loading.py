"""``load_dataset`` and ``list_datasets``: registered datasets from their cards, or a user's file.

A registered dataset's files are looked up under the data directory (the ``data_dir`` argument,
else the ``MMHASH_DATA`` environment variable, else ``./data``; relative paths are resolved
against the current directory), whose layout mirrors the staged ``datasets`` folder
(``wikipedia/``, ``cub10/``, ``uci_mfeat/csv/``). Each file is checked against the sha256 in the
card, the split comes from the package's stored index file, and the parsed arrays are cached in
the process (keyed by the files' path, mtime and size), so a second load costs a copy.

A synthetic card's ``reader`` names its generator in :data:`GENERATORS`; it is called with the
card's ``[params]`` on every load (nothing is cached: the full ``synthetic-nuswide`` is 7.6 GB).
A synthetic card may also list ``[[files]]`` (``synthetic-mirflickr``'s real tags and labels):
they are looked up and checked exactly like a real set's files and passed as ``files=``.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from mmhash.data.cards import Card, all_cards, get_card
from mmhash.data.checksum import file_key, sha256, verify
from mmhash.data.dataset import PARTS, Dataset, Split
from mmhash.data.formats import READERS, RawData, detect_format
from mmhash.data.formats.keyed import triple_paths
from mmhash.data.protocols import apply_protocol, get_protocol
from mmhash.data.splits import stored_split
from mmhash.data.standard_shaped import make_synthetic_mirflickr, make_synthetic_nuswide
from mmhash.data.synthetic import make_synthetic
from mmhash.errors import DataError, UnknownNameError

#: ``reader`` of a synthetic card -> its generator, called as ``generator(**card's [params],
#: name=card name)``, plus ``files=`` (role -> checked path) when the card lists ``[[files]]``.
GENERATORS: dict[str, Callable[..., Dataset]] = {
    "synthetic": make_synthetic,
    "synthetic-mirflickr": make_synthetic_mirflickr,
    "synthetic-nuswide": make_synthetic_nuswide,
}

ENV = "MMHASH_DATA"
DEFAULT_DIR = "data"
_CACHE_SIZE = 8
# (kind, identifier) -> (file versions read, RawData). Entries are checked against the files'
# current versions before use, and callers only ever get copies of the arrays.
_parsed: OrderedDict[tuple[str, str], tuple[tuple, RawData]] = OrderedDict()


def data_root(data_dir: str | os.PathLike | None = None) -> tuple[Path, str]:
    """The data directory (absolute) and where the choice came from, for error messages."""
    if data_dir is not None:
        return Path(data_dir).expanduser().resolve(), "the data_dir argument"
    if os.environ.get(ENV):
        return Path(os.environ[ENV]).expanduser().resolve(), f"${ENV}"
    return Path(DEFAULT_DIR).resolve(), f"the default ./{DEFAULT_DIR}; {ENV} is not set"


def _file_paths(card: Card, root: Path) -> dict[str, Path]:
    return {f["role"]: root / f["path"] for f in card.files}


def _missing_message(card: Card, root: Path, origin: str, missing: list[str]) -> str:
    first = missing[0]
    more = f" (and {len(missing) - 1} more file(s))" if len(missing) > 1 else ""
    where = "does not exist" if not root.is_dir() else "lacks it"
    folder = Path(card.folder or first).parts[0]
    return (
        f"dataset {card.name!r} needs {first}{more}, expected at {root / first}; the data "
        f"directory {root} (from {origin}) {where}. Put the files there, or point {ENV} (or "
        f"data_dir=) at the folder that holds {folder}/"
    )


def _cached_read(kind: str, ident: str, read: Any, limit: int | None = None) -> RawData:
    """``read()`` once per version of the files it reads; later calls reuse the arrays. With
    ``limit``, data whose views hold more bytes is returned without being cached."""
    key = (kind, ident)
    if key in _parsed:
        versions, raw = _parsed[key]
        try:
            if tuple(file_key(p) for p in raw.files) == versions:
                _parsed.move_to_end(key)
                return raw
        except OSError:
            pass  # a file vanished: read again, which reports it
    raw = read()
    if limit is not None and sum(X.nbytes for X in raw.views.values()) > limit:
        return raw  # not cached: the caller may hand these arrays over without a copy
    for X in raw.views.values():  # the cache must never be modified through a caller
        X.setflags(write=False)
    raw.labels.setflags(write=False)
    _parsed[key] = (tuple(file_key(p) for p in raw.files), raw)
    while len(_parsed) > _CACHE_SIZE:
        _parsed.popitem(last=False)
    return raw


def _is_cached(raw: RawData) -> bool:
    return any(entry is raw for _, entry in _parsed.values())


def _read_registered(card: Card, paths: dict[str, Path]) -> RawData:
    view_names = list(card.views)
    if card.reader == "svcl":
        return READERS["svcl"](
            paths["features"], paths["train_list"], paths["test_list"], views=view_names
        )
    if card.reader == "cell":
        return READERS["cell"](paths["data"], view_names=view_names)
    if card.reader == "mfeat":
        return READERS["mfeat"]({v: paths[v] for v in view_names}, views=view_names)
    if card.reader == "triple":
        return READERS["triple"](paths["train"])
    if card.reader in READERS:
        return READERS[card.reader](paths["data"])
    raise DataError(f"dataset card {card.name!r} names an unknown reader {card.reader!r}")


def _check_shapes(card: Card, views: dict[str, np.ndarray], labels: np.ndarray, split: Split,
                  source: str) -> None:
    """:class:`DataError` unless the views, labels and split have the card's declared sizes;
    ``source`` says where the arrays came from ("the files hold", "the generator made")."""
    dims = {v: int(X.shape[1]) for v, X in views.items()}
    n, classes = int(labels.shape[0]), int(labels.shape[1])
    if dims != card.dims or n != card.n or classes != card.classes:
        raise DataError(
            f"dataset {card.name!r}: {source} n={n}, views {dims}, {classes} classes; the card "
            f"says n={card.n}, views {card.dims}, {card.classes} classes"
        )
    sizes = {p: len(getattr(split, p)) for p in PARTS}
    expected = {p: int(card.split[p]) for p in PARTS}
    if sizes != expected:
        raise DataError(f"dataset {card.name!r}: split sizes {sizes}, card says {expected}")


def _check_against_card(card: Card, raw: RawData, split: Split) -> None:
    _check_shapes(card, raw.views, raw.labels, split, "the files hold")
    if card.split.get("source") == "original":
        # The stored indices must be exactly the release's own train/test rows.
        if not (np.array_equal(split.query, raw.parts.get("test", []))
                and np.array_equal(split.train, raw.parts.get("train", []))):
            raise DataError(
                f"dataset {card.name!r}: the stored split is not the original train/test split "
                f"of the files"
            )


def _checked_files(card: Card, data_dir: str | os.PathLike | None
                   ) -> tuple[Path, dict[str, Path], list[dict[str, str]]]:
    """The card's files under the data directory: (root, role -> path, [{path, sha256}]);
    :class:`DataError` naming the first missing file, or a file that is not the pinned version."""
    root, origin = data_root(data_dir)
    paths = _file_paths(card, root)
    missing = [f["path"] for f in card.files if not paths[f["role"]].is_file()]
    if missing:
        raise DataError(_missing_message(card, root, origin, missing))
    digests = [
        {"path": str(paths[f["role"]]), "sha256": verify(paths[f["role"]], f["sha256"], card.name)}
        for f in card.files
    ]
    return root, paths, digests


def _load_synthetic(card: Card, data_dir: str | os.PathLike | None) -> Dataset:
    generator = GENERATORS.get(card.reader)
    if generator is None:
        raise DataError(f"dataset card {card.name!r} names an unknown generator {card.reader!r} "
                        f"(known: {', '.join(sorted(GENERATORS))})")
    params, info = dict(card.params), {"source_files": []}
    if card.files:  # real parts (synthetic-mirflickr's tags and labels): checked like real sets
        root, params["files"], info["source_files"] = _checked_files(card, data_dir)
        info["data_dir"] = str(root)
    ds = generator(**params, name=card.name)
    _check_shapes(card, ds.views, ds.labels, ds.split, "the generator made")
    ds.info.update({**info, "card": card.name, "reader": card.reader,
                    "split": {k: card.split[k] for k in ("file", "source", "definition")
                              if k in card.split},
                    "split_generated": card.split.get("source") == "generator"})
    return ds


def _load_registered(card: Card, data_dir: str | os.PathLike | None,
                     protocol: str | None = None) -> Dataset:
    if protocol is not None and not card.release:
        get_protocol(protocol)  # an unknown name is its own error
        raise DataError(f"dataset {card.name!r} has its card's fixed split; --protocol applies "
                        f"to the field's benchmark files given by path (e.g. --dataset "
                        f"mirflickr25k-iall-vgg.mat --protocol djsrh)")
    if card.release:
        return _load_release(card, data_dir, protocol)
    if card.synthetic:
        return _load_synthetic(card, data_dir)
    root, paths, digests = _checked_files(card, data_dir)
    raw = _cached_read("card", f"{card.name}\0{root}", lambda: _read_registered(card, paths))
    split = stored_split(card.split["file"])
    _check_against_card(card, raw, split)
    info = {
        "description": card.description,
        "card": card.name,
        "reader": raw.reader,
        "data_dir": str(root),
        "source_files": digests,
        "split": {k: card.split[k] for k in ("file", "source", "definition") if k in card.split},
        "split_generated": False,
        "reader_notes": dict(raw.notes),
    }
    return _dataset(card.name, raw, split, info)


def _load_release(card: Card, data_dir: str | os.PathLike | None,
                  protocol: str | None) -> Dataset:
    """One of the field's benchmark releases: its family's reader on the files under the data
    directory, split by ``protocol`` (default the card's). A file that is not the common
    release's (or whose sha256 the card does not know) is accepted and recorded."""
    root, origin = data_root(data_dir)
    paths = _file_paths(card, root)
    missing = [f["path"] for f in card.files if not paths[f["role"]].is_file()]
    if missing:
        raise DataError(_missing_message(card, root, origin, missing))
    protocol = protocol or card.raw.get("protocol") or card.split.get("protocol")
    ds = _load_path(paths[card.files[0]["role"]], protocol)
    read = {Path(s["path"]): s["sha256"] for s in ds.info["source_files"]}
    release = {}
    for f in card.files:
        actual = read.get(paths[f["role"]]) or sha256(paths[f["role"]])
        release[f["path"]] = ("the common release" if f["sha256"] == actual else
                              "not the common release's sha256" if f["sha256"] else
                              "no common sha256 known")
    summary = ds.summary()
    declared = {"n": card.n, "views": card.dims, "classes": card.classes}
    found = {"n": summary["n"], "views": summary["views"], "classes": summary["classes"]}
    ds.name = f"{card.name}@{ds.info['protocol']['name']}"
    ds.info.update({"card": card.name, "description": card.description, "data_dir": str(root),
                    "release_files": release,
                    "differs_from_card": {k: found[k] for k in found if found[k] != declared[k]}})
    return ds


def _dataset(name: str, raw: RawData, split: Split, info: dict[str, Any],
             copy: bool = True) -> Dataset:
    """The Dataset of ``raw``: writable copies of cached arrays, or ``raw``'s own arrays when it
    is not cached (``copy=False``: large data is held once)."""
    views = {v: np.array(X) if copy else X for v, X in raw.views.items()}
    labels = np.array(raw.labels) if copy else raw.labels
    return Dataset(name, views, labels, split, synthetic=False, info=info)


#: Readers of the field's benchmark files: name -> how a dataset read by it is named, from the
#: collection it recognised (None: from the file name).
_FAMILY_NAMES = {"dcmh": "{collection}", "extracted": "{collection}-{extractor}",
                 "ucch-vgg": "{collection}-vgg", "xyl": "{collection}-vgg",
                 "dbtest": "{collection}-cnnf", "ucmfh": "{collection}-clip"}


def _user_name(reader: str, target: Path, raw: RawData) -> str:
    collection = raw.notes.get("collection")
    if reader in _FAMILY_NAMES and collection:
        extractor = (raw.notes.get("image_features") or {}).get("extractor") or "features"
        return _FAMILY_NAMES[reader].format(collection=collection, extractor=extractor)
    if reader in ("mfeat", "ucmfh"):
        return target.name
    if reader == "svcl":
        return target.parent.name
    if reader == "triple":
        return triple_paths(target)["train"].stem.removesuffix("_train")
    if reader in ("dcmh", "ucch-vgg"):  # mirflickr25k-iall.mat -> mirflickr25k
        return re.sub(r"-(iall|yall|lall|iall-vgg|xall-vgg)$", "", target.stem)
    return target.stem


#: Views of at most this many bytes are cached between loads and handed out as copies; larger
#: ones (the field's NUS-WIDE and MS-COCO features) are read for each load and handed over as
#: read, so a load holds them once (float32 as stored), not twice.
CACHE_LIMIT_BYTES = 512 * 2**20


def _load_path(path: Path, protocol: str | None = None) -> Dataset:
    reader, target = detect_format(path)

    def read() -> RawData:
        return READERS[reader](target)

    raw = _cached_read("path", f"{reader}\0{target.resolve()}", read, CACHE_LIMIT_BYTES)
    split, protocol_name, definition = apply_protocol(raw, protocol)
    if protocol_name == "file":
        split_source = "file" if raw.parts else "generated"
    else:
        split_source = "protocol"
    files = [{"path": str(p), "sha256": sha256(p)} for p in raw.files]
    info = {
        "description": f"user data {path} read by the {reader!r} reader",
        "path": str(path),
        "reader": reader,
        "source_files": files,
        "split": {"source": split_source, "definition": definition},
        "split_generated": split_source == "generated",
        "protocol": {"name": protocol_name, "metric": get_protocol(protocol_name).metric},
        "reader_notes": dict(raw.notes),
        # The fingerprint (mmhash.bench.cell.dataset_fingerprint): the files' bytes and the
        # rows of every part, so other files or another split under one name are other data.
        "sha256": {"files": [f["sha256"] for f in files], "split": _split_digest(split)},
    }
    split.check(raw.n, str(path))
    name = _user_name(reader, target, raw)
    if protocol is not None or protocol_name != "file":
        name = f"{name}@{protocol_name}"  # the protocol is part of what the numbers mean
    return _dataset(name, raw, split, info, copy=_is_cached(raw))


def _split_digest(split: Split) -> str:
    digest = hashlib.sha256()
    for part in PARTS:
        digest.update(part.encode() + np.ascontiguousarray(getattr(split, part)).tobytes())
    return digest.hexdigest()


def _looks_like_path(name: str) -> bool:
    return (
        os.sep in name
        or "/" in name
        or (os.altsep is not None and os.altsep in name)
        or Path(name).suffix.lower() in (".mat", ".npz", ".csv", ".h5", ".hdf5")
        or Path(name).exists()
    )


def load_dataset(name_or_path: str | os.PathLike, *, data_dir: str | os.PathLike | None = None,
                 protocol: str | None = None) -> Dataset:
    """Load a registered dataset by name, or a user's file or folder by path.

    Parameters
    ----------
    name_or_path : a registered name (see :func:`list_datasets`: ``synthetic``, ``synthetic3``,
        ``synthetic-mirflickr``, ``synthetic-nuswide``, ``wiki``, ``wiki3``, ``cub10``,
        ``mfeat``), or a path (``os.PathLike``, or a string with
        a path separator, a known extension, or naming an existing file) to a file in one of the
        formats of :mod:`mmhash.data.formats`. A registered name wins over a file of the same
        name in the current directory; write ``./wiki`` for the file.
    data_dir : where registered datasets' files are; default ``$MMHASH_DATA``, else ``./data``.
    protocol : the split protocol (:mod:`mmhash.data.protocols`: ``dcmh``, ``djsrh``,
        ``ucch``, ``ucmfh``, ``file``); default the family's own (``file`` for formats outside
        the field's benchmark families). A protocol other than ``file`` is part of the dataset's
        name (``mirflickr25k-vgg@ucch``), so its cells, tables and captions never mix with
        another split's. Registered datasets without a protocol have their card's stored split.

    Returns
    -------
    Dataset with float64 views (fresh, writable copies), uint8 multi-hot labels and a fixed
    split. ``info`` records the source files and their sha256, the reader, the split's origin
    (``split_generated`` is True when a user's file carried no split), and for a user's file its
    path.

    Raises
    ------
    UnknownNameError : a name that is neither registered nor a path (with a did-you-mean).
    DataError : a missing, corrupt or altered file, or a layout no reader knows.
    """
    if isinstance(name_or_path, os.PathLike):
        return _load_path(Path(name_or_path), protocol)
    if not isinstance(name_or_path, str):
        raise UnknownNameError("dataset", repr(name_or_path), all_cards())
    cards = all_cards()
    if name_or_path in cards:
        return _load_registered(cards[name_or_path], data_dir, protocol)
    if _looks_like_path(name_or_path):
        return _load_path(Path(name_or_path), protocol)
    raise UnknownNameError("dataset", name_or_path, cards)


def _entry(card: Card, root: Path) -> dict[str, Any]:
    paths = _file_paths(card, root)
    missing = [str(paths[f["role"]]) for f in card.files if not paths[f["role"]].is_file()]
    present = not missing
    if card.synthetic and not card.files:
        path = "(generated)"
    else:
        path = str(root / card.folder) if card.folder else str(root)
    return {
        "name": card.name,
        "present": present,
        "path": path,
        "n": card.n if present else None,
        "views": card.dims if present else None,
        "classes": card.classes if present else None,
        "description": card.description,
        "synthetic": card.synthetic,
        "multi_label": card.multi_label,
        "reader": card.reader,
        **{p: int(card.split[p]) for p in PARTS},
        "split": card.split.get("source", ""),
        "files": [f["path"] for f in card.files],
        "missing": missing,
        "declared": {"n": card.n, "views": card.dims, "classes": card.classes},
    }


def list_datasets(*, data_dir: str | os.PathLike | None = None) -> list[dict[str, Any]]:
    """Every registered dataset and whether its files are in the data directory.

    Returns one dict per dataset, sorted by name: ``name``, ``present`` (bool: all files
    exist; hashes are checked at load), ``path`` (the dataset's folder, or ``(generated)`` for a
    synthetic set without files),
    ``n``, ``views`` (dict view -> dim), ``classes`` (these three are None when absent; the
    card's values are always under ``declared``), ``description``, ``synthetic``,
    ``multi_label``, ``reader``, the split sizes ``query``/``retrieval``/``train``/
    ``validation``, ``split`` (its source), ``files`` (relative paths) and ``missing``
    (absolute paths of absent files).
    """
    root, _ = data_root(data_dir)
    return [_entry(card, root) for card in all_cards().values()]


def dataset_card(name: str) -> dict[str, Any]:
    """The full card of a registered dataset, as parsed from its TOML file."""
    return dict(get_card(name).raw)

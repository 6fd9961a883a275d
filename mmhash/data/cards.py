"""Dataset cards: what a registered dataset is, where its files come from, how it is read.

Cards are TOML files shipped inside the package (``mmhash/data/cards/<name>.toml``) so that an
installed mmhash (editable or not) finds them; ``datasets/README.md`` at the top of the repository
is the human index. The fields:

- ``name``, ``description``, ``synthetic``, ``reader`` (a key of
  :data:`mmhash.data.formats.READERS`; for a synthetic set a key of
  :data:`mmhash.data.loading.GENERATORS`: ``synthetic``, ``synthetic-mirflickr``,
  ``synthetic-nuswide``), ``n``, ``classes``, ``multi_label``; optional ``class_names``,
  ``citation``, ``license``, ``folder`` (under the data directory), ``notes``. A synthetic
  set's ``description`` starts with ``SYNTHETIC`` and says which parts, if any, are real.
- ``[views.<name>]`` with ``dim`` and ``description``, in the dataset's view order.
- ``[[files]]`` with ``path`` (relative to the data directory), ``role`` (how the reader uses
  it), ``sha256``, ``size`` and provenance (``upstream``, ``upstream_path``, ``commit``,
  ``blob``). Required for a real set; a synthetic set lists the real files it uses, if any
  (passed to its generator as ``files=``, role -> path).
- ``[split]`` with ``file`` (in ``mmhash/data/splits/``), ``source`` (``original``: must equal
  the train/test rows of the files; ``suggested``; ``protocol``: a field's standard rule with a
  stored draw; ``generator``: drawn by the generator from its seed), ``definition`` and the
  sizes of ``query``, ``retrieval``, ``train``, ``validation``.
- ``[params]`` (synthetic sets): keyword arguments of the generator (the standard sizes and
  the seed).
- ``release = true`` marks one of the field's benchmark releases (MIRFlickr-25K, NUS-WIDE,
  MS-COCO, IAPR TC-12 in a paper family's files): ``reader`` is the family's reader, the
  ``[split]`` is the named ``protocol``'s (any other protocol may be asked for), and the
  ``sha256`` of a file is that of the common release where known, else empty. Copies of these
  files circulate in versions, so a file that differs is accepted: its own sha256 goes into the
  fingerprint and the load records that it differs, as it records sizes that differ from the
  card's.

:attr:`Card.nbytes` is what loading a set allocates for its float64 views; tests that load
every card skip the large ones by it.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from typing import Any

from mmhash.errors import DataError, UnknownNameError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

REQUIRED = ("name", "description", "synthetic", "reader", "n", "classes", "views", "split")
SPLIT_SIZES = ("query", "retrieval", "train", "validation")


@dataclass(frozen=True)
class Card:
    """One parsed dataset card (see the module docstring for the fields)."""

    name: str
    description: str
    synthetic: bool
    reader: str
    n: int
    classes: int
    views: dict[str, dict[str, Any]]
    split: dict[str, Any]
    files: list[dict[str, Any]] = field(default_factory=list)
    params: dict[str, Any] = field(default_factory=dict)
    folder: str = ""
    multi_label: bool = False
    raw: dict[str, Any] = field(default_factory=dict)

    @property
    def release(self) -> bool:
        """One of the field's benchmark releases (see the module docstring)."""
        return bool(self.raw.get("release", False))

    @property
    def dims(self) -> dict[str, int]:
        """View name -> feature dimension, in view order."""
        return {v: int(spec["dim"]) for v, spec in self.views.items()}

    @property
    def nbytes(self) -> int:
        """Bytes of the float64 views a load returns: ``n * sum(dims) * 8``."""
        return self.n * sum(self.dims.values()) * 8


def parse_card(text: str, source: str) -> Card:
    """Parse and check one card; :class:`DataError` naming ``source`` if it is malformed."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise DataError(f"dataset card {source} is not valid TOML ({e})") from e
    missing = [k for k in REQUIRED if k not in data]
    if missing:
        raise DataError(f"dataset card {source} lacks {', '.join(missing)}")
    for f in data.get("files", []):  # synthetic sets' real files are checked the same way
        if not {"path", "sha256", "role"} <= set(f):
            raise DataError(f"dataset card {source}: each [[files]] needs path, sha256, role")
        if not f["sha256"] and not data.get("release"):
            raise DataError(f"dataset card {source}: {f['path']} has no sha256 (only a "
                            f"release card may leave it unknown)")
    if not data["synthetic"] and not data.get("files"):
        raise DataError(f"dataset card {source} lists no files")
    for size in SPLIT_SIZES:
        if size not in data["split"]:
            raise DataError(f"dataset card {source}: [split] lacks {size}")
    for v, spec in data["views"].items():
        if "dim" not in spec:
            raise DataError(f"dataset card {source}: [views.{v}] lacks dim")
    return Card(
        name=data["name"],
        description=data["description"],
        synthetic=bool(data["synthetic"]),
        reader=data["reader"],
        n=int(data["n"]),
        classes=int(data["classes"]),
        views=dict(data["views"]),
        split=dict(data["split"]),
        files=list(data.get("files", [])),
        params=dict(data.get("params", {})),
        folder=data.get("folder", ""),
        multi_label=bool(data.get("multi_label", False)),
        raw=data,
    )


@lru_cache(maxsize=1)
def all_cards() -> dict[str, Card]:
    """Every card shipped in ``mmhash/data/cards``, by name, sorted by name."""
    folder = resources.files("mmhash.data").joinpath("cards")
    found: dict[str, Card] = {}
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if entry.name.endswith(".toml"):
            card = parse_card(entry.read_text(encoding="utf-8"), f"cards/{entry.name}")
            if card.name != entry.name[: -len(".toml")]:
                raise DataError(f"dataset card cards/{entry.name} is named {card.name!r}")
            found[card.name] = card
    return found


def get_card(name: str) -> Card:
    """The card of a registered dataset; :class:`UnknownNameError` with the valid names."""
    cards = all_cards()
    if name not in cards:
        raise UnknownNameError("dataset", name, cards)
    return cards[name]

"""mmhash: unsupervised multimodal hashing with one Hasher contract and exact evaluation.

``import mmhash`` is light: no torch, no plugin imports. Hashers are found lazily through the
``mmhash.hashers`` entry-point group.
"""

from mmhash.base import (
    CAPABILITIES,
    EPOCH_PROGRESS,
    REAL_VALUED_RANKING,
    UNIFIED_DATABASE,
    BaseHasher,
    Hasher,
    declares,
)
from mmhash.errors import (
    DataError,
    InvalidInputError,
    MMHashError,
    NotFittedError,
    PluginError,
    UnknownNameError,
)
from mmhash.registry import get_hasher, list_hashers, load_hasher, register

__version__ = "0.1.0"


def load_dataset(name_or_path, *, data_dir=None):
    """Load a registered dataset or a user's file; see :func:`mmhash.data.load_dataset`."""
    from mmhash.data import load_dataset as _load

    return _load(name_or_path, data_dir=data_dir)


__all__ = [
    "CAPABILITIES",
    "EPOCH_PROGRESS",
    "REAL_VALUED_RANKING",
    "UNIFIED_DATABASE",
    "BaseHasher",
    "DataError",
    "Hasher",
    "InvalidInputError",
    "MMHashError",
    "NotFittedError",
    "PluginError",
    "UnknownNameError",
    "declares",
    "get_hasher",
    "list_hashers",
    "load_dataset",
    "load_hasher",
    "register",
]

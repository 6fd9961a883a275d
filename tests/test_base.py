"""BaseHasher: validation messages, parameters, persistence format."""

from __future__ import annotations

import json

import numpy as np
import pytest

from mmhash.base import check_n_bits
from mmhash.errors import DataError, InvalidInputError, NotFittedError, UnknownNameError
from mmhash.hashers.rp import RandomProjectionHasher


@pytest.fixture
def views():
    rng = np.random.default_rng(0)
    return {"image": rng.standard_normal((30, 6)), "text": rng.standard_normal((30, 4))}


@pytest.mark.parametrize("bits", [8, 16, 1024, np.int64(64)])
def test_valid_bit_lengths(bits):
    assert check_n_bits(bits) == int(bits)


@pytest.mark.parametrize("bits", [0, -8, 12, 1032, 16.0, "16", True, None])
def test_invalid_bit_lengths(bits):
    with pytest.raises(InvalidInputError, match="n_bits"):
        check_n_bits(bits)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda v: {**v, "text": v["text"][:-1]}, "paired rows"),
        (lambda v: {**v, "image": np.full((30, 6), np.inf)}, "NaN or infinite"),
        (lambda v: {**v, "image": v["image"][:, 0]}, "must be 2-D"),
        (lambda v: {**v, "image": np.zeros((30, 0))}, "empty"),
        (lambda v: {**v, "image": np.array([["a"] * 6] * 30)}, "numeric"),
        (lambda v: list(v.values()), "mapping"),
        (lambda v: {"": v["image"], "text": v["text"]}, "non-empty strings"),
    ],
)
def test_fit_validation_names_the_problem(views, change, message):
    with pytest.raises(InvalidInputError, match=message):
        RandomProjectionHasher(n_bits=8).fit(change(views))


def test_encode_validation(views):
    hasher = RandomProjectionHasher(n_bits=8)
    with pytest.raises(NotFittedError, match="fit"):
        hasher.encode(views["image"], "image")
    hasher.fit(views)
    with pytest.raises(UnknownNameError, match="unknown modality 'imgae'; did you mean 'image'"):
        hasher.encode(views["image"], "imgae")
    with pytest.raises(InvalidInputError, match="has 4 features, but the hasher was fitted with 6"):
        hasher.encode(views["text"], "image")


def test_params_clone_and_set_params(views):
    hasher = RandomProjectionHasher(n_bits=np.int64(16), random_state=3)
    assert hasher.get_params() == {"n_bits": 16, "random_state": 3}
    assert type(hasher.get_params()["n_bits"]) is np.int64  # stored exactly as given
    hasher.fit(views)
    clone = hasher.clone()
    assert clone.get_params() == hasher.get_params() and not hasattr(clone, "modalities_")
    with pytest.raises(UnknownNameError, match="n_bitz"):
        clone.set_params(n_bitz=8)


def test_save_is_plain_npz_without_pickle(views, tmp_path):
    hasher = RandomProjectionHasher(n_bits=8).fit(views)
    path = tmp_path / "h.bin"  # any file name: nothing is appended
    hasher.save(path)
    with np.load(path, allow_pickle=False) as npz:
        meta = json.loads(str(npz["__meta__"]))
        assert all(npz[k].dtype != object for k in npz.files)
    assert meta["name"] == "rp" and meta["params"] == {"n_bits": 8, "random_state": 0}
    loaded = RandomProjectionHasher.load(path)
    assert (loaded.encode(views["image"], "image") == hasher.encode(views["image"], "image")).all()


def test_load_rejects_foreign_and_corrupt_files(views, tmp_path):
    with pytest.raises(NotFittedError):
        RandomProjectionHasher().save(tmp_path / "x.npz")
    (tmp_path / "junk.npz").write_bytes(b"junk")
    with pytest.raises(DataError, match="not an mmhash model file"):
        RandomProjectionHasher.load(tmp_path / "junk.npz")
    np.savez(tmp_path / "other.npz", a=np.zeros(3))
    with pytest.raises(DataError, match="not an mmhash model file"):
        RandomProjectionHasher.load(tmp_path / "other.npz")
    with pytest.raises(DataError, match="no saved hasher"):
        RandomProjectionHasher.load(tmp_path / "missing.npz")


class _OneStuckBit(RandomProjectionHasher):
    """Random projections whose first bit is +1 for every text item."""

    name = "one-stuck-bit"

    def _encode(self, X, modality):
        scores = super()._encode(X, modality)
        if modality == "text":
            scores[:, 0] = 1.0
        return scores


def test_fit_warns_when_a_view_has_constant_bits(views):
    import warnings

    from mmhash.errors import DegenerateCodesWarning, MMHashWarning

    with pytest.warns(DegenerateCodesWarning, match="n_bits=16: constant bits on the .* "
                      "training items checked: 1 for view 'text'") as caught:
        _OneStuckBit(n_bits=16).fit(views)
    assert issubclass(caught[0].category, MMHashWarning)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # random projections fill every bit: no warning
        RandomProjectionHasher(n_bits=16).fit(views)

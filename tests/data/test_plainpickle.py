"""The restricted unpickler UCMFH's pickles are read with: plain data in, nothing run.

Every refusal is one :class:`DataError` line naming the file; a refused global is never
imported or called (shown with callables that would leave a file behind, and a module that
would leave one when imported).
"""

from __future__ import annotations

import io
import os
import pickle
import sys
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest

from mmhash.data.formats import read_path
from mmhash.data.formats.plainpickle import PlainUnpickler, load_plain_pickle
from mmhash.errors import DataError

PROTOCOLS = range(pickle.HIGHEST_PROTOCOL + 1)
assert pickle.HIGHEST_PROTOCOL >= 5


def _write(tmp_path: Path, obj=None, *, data: bytes | None = None, protocol=4) -> Path:
    path = tmp_path / "data.pkl"
    path.write_bytes(pickle.dumps(obj, protocol=protocol) if data is None else data)
    return path


def _refused(path: Path) -> str:
    with pytest.raises(DataError) as e:
        load_plain_pickle(path)
    msg = str(e.value)
    assert msg and "\n" not in msg, msg
    assert str(path) in msg
    return msg


def _touch(path):
    """What a malicious pickle would run: it leaves ``path`` behind."""
    Path(path).write_text("ran")
    return 0


class _Evil:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return _touch, (str(self.marker),)


class _ShellEvil:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


class _Plain:
    """An ordinary class instance (pickled as its class and ``__dict__``)."""

    def __init__(self):
        self.x = np.ones(2)


def _equal(a, b):
    if isinstance(a, np.ndarray):
        assert isinstance(b, np.ndarray) and a.dtype == b.dtype and a.shape == b.shape
        np.testing.assert_array_equal(a, b)
    elif isinstance(a, dict):
        assert type(a) is type(b) and list(a) == list(b)
        for k in a:
            _equal(a[k], b[k])
    elif isinstance(a, list | tuple):
        assert type(a) is type(b) and len(a) == len(b)
        for x, y in zip(a, b):
            _equal(x, y)
    else:
        assert type(a) is type(b) and a == b


# --- admitted --------------------------------------------------------------------------------


def _plain_data():
    rng = np.random.default_rng(0)
    return {
        "image": rng.standard_normal((5, 512)).astype(np.float32),
        "text": rng.standard_normal((5, 8)).astype(np.float32),
        "label": (rng.random((5, 24)) < 0.3).astype(np.int64),
        "mask": np.array([True, False, True]),
        "fortran": np.asfortranarray(rng.random((3, 4))),
        "strided": np.arange(20, dtype=np.int32)[::3],
        "empty": np.zeros((0, 4), dtype=np.float32),
        "uint8": np.arange(6, dtype=np.uint8).reshape(2, 3),
        "scalar": np.float32(1.5),
        "int_scalar": np.int64(-3),
        "list": [1, 2.5, "three", None, True],
        "tuple": (1, (2, 3)),
        "nested": {"a": [np.ones(2, np.float32), {"b": b"\x00\xff bytes"}]},
        "ordered": OrderedDict([("z", 1), ("a", 2)]),
        "big": 2**80,
        "complex": 1 + 2j,
        "str": "ünïcode",
        "bytes": bytes(range(256)),
        "bytearray": bytearray(b"xy"),
        7: "an int key",
    }


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_plain_data_is_admitted_under_every_protocol(tmp_path, protocol):
    data = _plain_data()
    back = load_plain_pickle(_write(tmp_path, data, protocol=protocol))
    _equal(data, back)
    sets = {"set": {1, 2, "x"}, "frozenset": frozenset({(1, 2)})}
    assert load_plain_pickle(_write(tmp_path, sets, protocol=protocol)) == sets


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_a_ucmfh_part_round_trips(tmp_path, protocol):
    rng = np.random.default_rng(1)
    part = {"image": rng.standard_normal((40, 512)).astype(np.float32),
            "text": rng.standard_normal((40, 512)).astype(np.float32),
            "label": (rng.random((40, 24)) < 0.2).astype(np.int64)}
    back = load_plain_pickle(_write(tmp_path, part, protocol=protocol))
    _equal(part, back)


def test_protocol_5_out_of_band_layout_in_band(tmp_path):
    # Protocol 5 pickles an array as numpy's _frombuffer of its bytes.
    x = np.arange(12, dtype=np.float32).reshape(3, 4)
    raw = pickle.dumps(x, protocol=5)
    assert b"_frombuffer" in raw
    _equal(x, load_plain_pickle(_write(tmp_path, data=raw)))


@pytest.mark.parametrize("protocol", [0, 1, 2])
def test_range_under_the_old_protocols(tmp_path, protocol):
    assert load_plain_pickle(_write(tmp_path, range(3), protocol=protocol)) == range(3)


def test_range_and_slice_under_the_newer_protocols(tmp_path):
    for protocol in (3, 4, 5):
        assert load_plain_pickle(_write(tmp_path, [range(3), slice(1, 5, 2)],
                                        protocol=protocol)) == [range(3), slice(1, 5, 2)]


# --- refused: nothing named is imported or called --------------------------------------------


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_a_reduce_to_a_callable_is_never_called(tmp_path, protocol):
    marker = tmp_path / "ran"
    path = _write(tmp_path, {"image": np.ones(2), "x": _Evil(marker)}, protocol=protocol)
    msg = _refused(path)
    assert "_touch" in msg and "not plain data" in msg
    assert not marker.exists()
    path = _write(tmp_path, [_ShellEvil(marker)], protocol=protocol)
    msg = _refused(path)
    assert "system" in msg  # posix.system / os.system, by the name the pickle gives
    assert not marker.exists()


def test_a_global_of_an_unimported_module_is_not_imported(tmp_path, monkeypatch):
    marker = tmp_path / "imported"
    (tmp_path / "mmhash_evil_mod.py").write_text(
        f"open({str(marker)!r}, 'w').write('imported')\n"
        f"def run(*a):\n    open({str(marker)!r}, 'w').write('ran')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    data = b"cmmhash_evil_mod\nrun\n(S'x'\ntR."  # protocol 0: mmhash_evil_mod.run('x')
    msg = _refused(_write(tmp_path, data=data))
    assert "mmhash_evil_mod.run" in msg
    assert not marker.exists() and "mmhash_evil_mod" not in sys.modules


# Names as the pickle spells them: protocols 0-2 say __builtin__ for builtins, protocols 0-1
# rebuild an instance through copy_reg._reconstructor (refused before the class is looked up),
# a method is getattr(class, name).
@pytest.mark.parametrize("obj,names", [(_Plain(), ("_Plain", "copy_reg._reconstructor")),
                                       (_touch, ("_touch",)), (len, ("len",)),
                                       (eval, ("eval",)), (getattr, ("getattr",)),
                                       (os.system, ("system",)), (np.load, ("load",)),
                                       (np.ndarray.tofile, ("getattr",))])
def test_instances_and_functions_are_refused(tmp_path, obj, names):
    for protocol in PROTOCOLS:
        msg = _refused(_write(tmp_path, {"image": obj}, protocol=protocol))
        assert "not plain data" in msg and any(name in msg for name in names), msg


def test_an_object_array_is_refused(tmp_path):
    for protocol in PROTOCOLS:
        arr = np.array([1, "a", None], dtype=object)
        msg = _refused(_write(tmp_path, {"image": arr}, protocol=protocol))
        assert "dtype object" in msg
        structured = np.zeros(2, dtype=[("a", "f4"), ("b", "O")])
        _refused(_write(tmp_path, structured, protocol=protocol))


@pytest.mark.parametrize("module", [b"numpy._core.multiarray\n_reconstruct\ncnumpy\nndarray\n",
                                    b"numpy\nndarray\n"], ids=["_reconstruct", "ndarray"])
def test_an_object_array_built_without_numpy_dtype_is_refused(tmp_path, module):
    # protocol 2: GLOBAL [ndarray] (3,) 'O' TUPLE REDUCE -> an object array of None
    args = b"K\x03\x85X\x01\x00\x00\x00O" + (b"\x87" if module.count(b"\n") > 2 else b"\x86")
    data = b"\x80\x02c" + module + args + b"R."
    assert pickle.loads(data).dtype == object  # what the plain unpickler would build
    _refused(_write(tmp_path, data=data))


def test_a_torch_tensor_is_refused(tmp_path):
    torch = pytest.importorskip("torch")
    t = torch.ones(3, 2)
    for protocol in (2, 4, 5):
        msg = _refused(_write(tmp_path, {"image": t}, protocol=protocol))
        assert "torch" in msg
    # torch.save's zip container is not a plain pickle either
    path = tmp_path / "train.pkl"
    torch.save({"image": t}, path)
    _refused(path)


def test_a_persistent_id_is_refused(tmp_path):
    class External(pickle.Pickler):
        def persistent_id(self, obj):
            return "ext-1" if isinstance(obj, np.ndarray) else None

    for protocol in (0, 2, 4, 5):
        buf = io.BytesIO()
        External(buf, protocol=protocol).dump({"image": np.ones(3)})
        msg = _refused(_write(tmp_path, data=buf.getvalue()))
        assert "persistent id" in msg


def test_copyreg_reconstructor_only_for_plain_types(tmp_path):
    # Protocol 0-1 rebuild an instance through copyreg._reconstructor(cls, base, state): a
    # class named there is a global and refused; a plain type is not a way in either.
    for protocol in (0, 1):
        msg = _refused(_write(tmp_path, _Plain(), protocol=protocol))
        assert "_reconstructor" in msg
    data = b"ccopyreg\n_reconstructor\n(c__builtin__\ndict\nc__builtin__\nobject\nNtR."
    _refused(_write(tmp_path, data=data))  # object.__new__(dict): refused, not a crash


# --- broken files ----------------------------------------------------------------------------


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize("keep", [0.0, 0.3, 0.95])
def test_a_truncated_pickle(tmp_path, protocol, keep):
    full = pickle.dumps(_plain_data(), protocol=protocol)
    path = _write(tmp_path, data=full[: int(len(full) * keep)])
    assert "truncated" in _refused(path)


def test_not_a_pickle_and_a_missing_file(tmp_path):
    msg = _refused(_write(tmp_path, data=b"image,text\n1,2\n"))
    assert "pickle" in msg
    missing = tmp_path / "nope.pkl"
    assert "cannot read" in _refused(missing)


def test_the_unpickler_raises_unpickling_error_naming_the_global():
    data = pickle.dumps(_Evil("x"))
    with pytest.raises(pickle.UnpicklingError, match=r"_touch"):
        PlainUnpickler(io.BytesIO(data)).load()


def test_the_ucmfh_reader_refuses_what_the_unpickler_refuses(tmp_path):
    marker = tmp_path / "ran"
    folder = tmp_path / "mirflickr"
    folder.mkdir()
    part = {"image": np.ones((4, 512), np.float32), "text": np.ones((4, 512), np.float32),
            "label": np.eye(4, dtype=np.int64)}
    for name in ("train", "query"):
        (folder / f"{name}.pkl").write_bytes(pickle.dumps(part))
    (folder / "retrieval.pkl").write_bytes(pickle.dumps({**part, "extra": _Evil(marker)}))
    with pytest.raises(DataError) as e:
        read_path(folder)
    assert "retrieval.pkl" in str(e.value) and "\n" not in str(e.value)
    assert not marker.exists()

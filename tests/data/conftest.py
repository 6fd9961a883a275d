"""Fixtures for the data tests: the real data directory, and writers of MATLAB files.

``write_mat73`` writes a MATLAB v7.3 file the way MATLAB does: an HDF5 file behind a 512-byte
MATLAB header, every array stored with its axes reversed (MATLAB is column-major), a
``MATLAB_class`` attribute on each variable, cells as arrays of object references into
``#refs#``, sparse matrices as groups of ``data``/``ir``/``jc`` with ``MATLAB_sparse``.
"""

from __future__ import annotations

import os
from pathlib import Path

import h5py
import numpy as np
import pytest
import scipy.io
import scipy.sparse

_CLASSES = {
    np.dtype(np.float64): "double",
    np.dtype(np.float32): "single",
    np.dtype(np.uint8): "uint8",
    np.dtype(np.uint16): "uint16",
    np.dtype(np.int32): "int32",
    np.dtype(np.int64): "int64",
    np.dtype(bool): "logical",
}


def _put(group: h5py.Group, refs: h5py.Group, name: str, value) -> None:
    if scipy.sparse.issparse(value):
        m = scipy.sparse.csc_matrix(value)
        g = group.create_group(name)
        g.create_dataset("data", data=m.data.astype(np.float64))
        g.create_dataset("ir", data=m.indices.astype(np.uint64))
        g.create_dataset("jc", data=m.indptr.astype(np.uint64))
        g.attrs["MATLAB_class"] = np.bytes_(b"double")
        g.attrs["MATLAB_sparse"] = np.uint64(m.shape[0])
        return
    value = np.asarray(value)
    if value.dtype == object:  # a cell: references to the elements, stored under #refs#
        ref_array = np.empty(value.shape, dtype=h5py.ref_dtype)
        for idx in np.ndindex(value.shape):
            key = f"{name}_{len(refs)}"
            _put(refs, refs, key, value[idx])
            ref_array[idx] = refs[key].ref
        ds = group.create_dataset(name, data=ref_array.T)
        ds.attrs["MATLAB_class"] = np.bytes_(b"cell")
        return
    ds = group.create_dataset(name, data=value.T)  # column-major: reverse every axis
    ds.attrs["MATLAB_class"] = np.bytes_(_CLASSES[value.dtype].encode())


def _write_mat73(path: Path, variables: dict) -> Path:
    """Write ``variables`` as a MATLAB v7.3 file (see the module docstring)."""
    path = Path(path)
    with h5py.File(path, "w", userblock_size=512) as f:
        refs = f.create_group("#refs#")
        for name, value in variables.items():
            _put(f, refs, name, value)
    text = b"MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: Mon Jan  1 00:00:00 2024 HDF5 "
    text += b"schema 1.00 ."
    header = text.ljust(116, b" ") + b"\x00" * 8 + b"\x00\x02" + b"IM"
    with path.open("r+b") as fh:
        fh.write(header)  # the rest of the 512-byte user block stays zero, as MATLAB leaves it
    return path


def _write_mat5(path: Path, variables: dict) -> Path:
    """Write ``variables`` as a MATLAB v5 file (scipy.io.savemat)."""
    scipy.io.savemat(Path(path), variables)
    return Path(path)


def _cell(*arrays: np.ndarray) -> np.ndarray:
    """A 1 x V MATLAB cell holding the given matrices."""
    out = np.empty((1, len(arrays)), dtype=object)
    for i, a in enumerate(arrays):
        out[0, i] = a
    return out


@pytest.fixture(params=["v5", "v7.3"])
def mat_writer(request):
    """Each test that takes it runs once with a v5 writer and once with a v7.3 writer."""
    return _write_mat5 if request.param == "v5" else _write_mat73


@pytest.fixture
def write_mat73():
    return _write_mat73


@pytest.fixture
def write_mat5():
    return _write_mat5


@pytest.fixture
def make_cell():
    return _cell


@pytest.fixture(scope="session")
def real_data() -> Path:
    """The real data directory ($MMHASH_DATA, relative to the current directory); tests that
    need it are skipped when it is not set or absent."""
    env = os.environ.get("MMHASH_DATA")
    if not env:
        pytest.skip("MMHASH_DATA is not set")
    root = Path(env).resolve()
    if not root.is_dir():
        pytest.skip(f"MMHASH_DATA={env} is not a directory")
    return root


@pytest.fixture
def need(real_data):
    """``need("wikipedia/raw_features.mat", ...)``: those real files, or skip the test."""

    def _need(*relative: str) -> list[Path]:
        paths = [real_data / r for r in relative]
        for p in paths:
            if not p.is_file():
                pytest.skip(f"{p} is absent")
        return paths

    return _need

"""mmhash features: the real VGG-19 and CLIP ViT-B/32 networks with seeded random weights (no
download) on generated images; sources in every IAll layout; resume; provenance; texts; CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import h5py
import numpy as np
import pytest
import scipy.io

pytest.importorskip("torch")
pytest.importorskip("PIL")

from click.testing import CliRunner  # noqa: E402
from PIL import Image  # noqa: E402

from mmhash.cli import main  # noqa: E402
from mmhash.errors import DataError, InvalidInputError, UnknownNameError  # noqa: E402
from mmhash.extract import feature_provenance  # noqa: E402
from mmhash.extract.preprocess import IMAGENET_MEAN, IMAGENET_STD, Preprocess  # noqa: E402
from mmhash.extract.run import (  # noqa: E402
    extract_image_features,
    extract_text_features,
)
from mmhash.extract.sources import images_layout, open_images  # noqa: E402

# VGG-19 at 32 x 32 (the real network: its adaptive pooling takes any size >= 32) keeps the
# tests fast; CLIP's positional embedding fixes it at 224.
SMALL = Preprocess(resize=None, crop=32, interpolation="bilinear", mean=IMAGENET_MEAN,
                   std=IMAGENET_STD)


@pytest.fixture(scope="module")
def _built():
    return {}


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    """One torch thread: on a shared 2-core machine two threads that wait for each other in
    every parallel region make a CLIP forward pass 10x slower."""
    import torch

    saved = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(saved)


@pytest.fixture(autouse=True)
def _build_each_network_once(monkeypatch, _built):
    """Random initialisation of 143M parameters takes a second: build each (network, seed)
    once per module. Extraction never changes the weights (eval, inference mode)."""
    import torch

    from mmhash.extract import models

    real = models.build

    def build(extractor):
        key = (extractor, torch.initial_seed())
        if key not in _built:
            _built[key] = real(extractor)
        return _built[key]

    monkeypatch.setattr(models, "build", build)


@pytest.fixture(scope="module")
def images():
    """7 uint8 RGB images (n, H, W, 3), not square, so H and W cannot be confused."""
    return np.random.default_rng(0).integers(0, 256, (7, 36, 40, 3), dtype=np.uint8)


def _vgg(source, out, **kw):
    kw = {"random_init_seed": 0, "device": "cpu", "preprocess": SMALL, **kw}
    return extract_image_features(source, out, extractor="vgg19-fc7", **kw)


def _features(path):
    with np.load(path, allow_pickle=False) as z:
        return z["features"]


def _write_mat73(path, name, value):
    """A MATLAB v7.3 file as MATLAB writes it: HDF5 with the 512-byte header, the array with
    every axis reversed (column-major) and its MATLAB_class."""
    with h5py.File(path, "w", userblock_size=512) as f:
        f.create_dataset(name, data=np.asarray(value).T).attrs["MATLAB_class"] = np.bytes_(b"uint8")
    header = b"MATLAB 7.3 MAT-file, Platform: GLNXA64, HDF5 schema 1.00 .".ljust(116, b" ")
    with open(path, "r+b") as fh:
        fh.write(header + b"\x00" * 8 + b"\x00\x02" + b"IM")
    return path


def test_import_is_light():
    code = ("import sys, mmhash, mmhash.extract, mmhash.extract.sources, "
            "mmhash.extract.preprocess; print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


@pytest.mark.parametrize("shape, layout", [((5, 3, 8, 9), "NCHW"), ((5, 8, 9, 3), "NHWC"),
                                           ((8, 9, 3, 5), "HWCN"), ((3, 8, 9, 5), "CHWN")])
def test_layouts(shape, layout):
    assert images_layout(shape, "x")[0] == layout


@pytest.mark.parametrize("shape", [(5, 4, 8, 9), (5, 8, 9), (3, 3, 3, 3)])
def test_not_images_is_one_line(shape):
    with pytest.raises(DataError, match="not images|4-D") as err:
        images_layout(shape, "f.mat")
    assert "\n" not in str(err.value)


def test_vgg_shape_dtype_determinism_provenance(tmp_path, images):
    np.save(tmp_path / "i.npy", images)
    a = _vgg(tmp_path / "i.npy", tmp_path / "a.npz")
    b = _vgg(tmp_path / "i.npy", tmp_path / "b.npz")
    fa = _features(tmp_path / "a.npz")
    assert fa.shape == (7, 4096) and fa.dtype == np.float32 and a.dim == 4096
    assert np.array_equal(fa, _features(tmp_path / "b.npz"))
    assert (fa >= 0).all() and fa.any()  # after the ReLU
    record = feature_provenance(tmp_path / "a.npz")
    assert record == json.loads(json.dumps(a.provenance)) and b.provenance == a.provenance
    assert record["extractor"] == "vgg19-fc7" and record["weights"] == {
        "sha256": "random-init", "seed": 0}
    assert record["source"]["files"][0]["sha256"] and record["source"]["layout"] == "NHWC"
    assert record["torch"] and record["device"] == "cpu" and record["architecture"]
    steps = [s["step"] for s in record["preprocessing"]]
    assert steps == ["convert", "center_crop", "to_float", "normalize"]
    assert record["preprocessing"][-1]["mean"] == list(IMAGENET_MEAN)
    assert not (tmp_path / "a.npz.partial").exists()


def test_vgg_batch_size_independent(tmp_path, images):
    np.save(tmp_path / "i.npy", images)
    one = _vgg(tmp_path / "i.npy", tmp_path / "1.npz", batch_size=1)
    seven = _vgg(tmp_path / "i.npy", tmp_path / "7.npz", batch_size=7)
    assert one.provenance == seven.provenance
    np.testing.assert_allclose(_features(tmp_path / "1.npz"), _features(tmp_path / "7.npz"),
                               rtol=1e-5, atol=1e-5 * float(_features(tmp_path / "7.npz").max()))


def test_clip_images_shape_norm_batch_independent(tmp_path, images):
    np.save(tmp_path / "i.npy", images)
    kw = {"extractor": "clip-vit-b32", "random_init_seed": 0, "device": "cpu"}
    one = extract_image_features(tmp_path / "i.npy", tmp_path / "1.npz", batch_size=1, **kw)
    extract_image_features(tmp_path / "i.npy", tmp_path / "7.npz", batch_size=7, **kw)
    f1, f7 = _features(tmp_path / "1.npz"), _features(tmp_path / "7.npz")
    assert f7.shape == (7, 512) and f7.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(f7, axis=1), 1, rtol=1e-5)
    np.testing.assert_allclose(f1, f7, atol=1e-5)
    steps = one.provenance["preprocessing"]
    assert steps[1] == {"step": "resize", "shorter_side": 224, "interpolation": "bicubic",
                        "library": "PIL", "longer_side": "int(size * long / short)"}
    assert steps[-1]["mean"] == [0.48145466, 0.4578275, 0.40821073]


def test_iall_layouts_and_files_give_the_same_features(tmp_path, images):
    """NCHW / NHWC arrays, MATLAB v5 (H x W x 3 x n, as MATLAB's IAll) and v7.3 (written as
    MATLAB writes it: h5py sees (n, 3, W, H)), and a folder of PNGs: the same features."""
    nhwc = images
    hwcn = np.ascontiguousarray(nhwc.transpose(1, 2, 3, 0))
    np.save(tmp_path / "nhwc.npy", nhwc)
    np.save(tmp_path / "nchw.npy", np.ascontiguousarray(nhwc.transpose(0, 3, 1, 2)))
    scipy.io.savemat(tmp_path / "v5-iall.mat", {"IAll": hwcn})
    _write_mat73(tmp_path / "v73-iall.mat", "IAll", hwcn)
    with h5py.File(tmp_path / "v73-iall.mat", "r") as f:
        assert f["IAll"].shape == (7, 3, 40, 36)  # (n, 3, W, H): what h5py shows
    with h5py.File(tmp_path / "plain.h5", "w") as f:  # written from Python: no reversal
        f.create_dataset("images", data=nhwc)
    folder = tmp_path / "png"
    folder.mkdir()
    names = [f"sub{i % 2}/img{i}.png" for i in range(len(nhwc))]
    for name, image in zip(names, nhwc):
        (folder / name).parent.mkdir(exist_ok=True)
        Image.fromarray(image).save(folder / name)
    (tmp_path / "ids.txt").write_text("\n".join(names) + "\n")

    base = _vgg(tmp_path / "nhwc.npy", tmp_path / "base.npz")
    expected = _features(tmp_path / "base.npz")
    layouts = {}
    for name in ("nchw.npy", "v5-iall.mat", "v73-iall.mat", "plain.h5"):
        result = _vgg(tmp_path / name, tmp_path / f"{name}.npz")
        layouts[name] = result.provenance["source"]["layout"]
        assert np.array_equal(_features(tmp_path / f"{name}.npz"), expected), name
    assert layouts == {"nchw.npy": "NCHW", "v5-iall.mat": "HWCN", "v73-iall.mat": "HWCN",
                       "plain.h5": "NHWC"}
    from_folder = _vgg(folder, tmp_path / "folder.npz", id_file=tmp_path / "ids.txt")
    assert np.array_equal(_features(tmp_path / "folder.npz"), expected)
    with np.load(tmp_path / "folder.npz") as z:
        assert z["ids"].tolist() == names
    assert from_folder.provenance["source"]["images_sha256"]
    assert base.provenance["source"]["format"] == "npy"


def test_v73_is_read_by_blocks(tmp_path, images):
    _write_mat73(tmp_path / "iall.mat", "IAll", images.transpose(1, 2, 3, 0))
    with open_images(tmp_path / "iall.mat") as source:
        assert source._format == "mat-v7.3" and source.n == 7
        got = [np.asarray(im) for im in source.read(2, 5)]
    assert np.array_equal(np.stack(got), images[2:5])


def test_resume_after_interruption_gives_identical_output(tmp_path, images):
    np.save(tmp_path / "i.npy", images)
    _vgg(tmp_path / "i.npy", tmp_path / "whole.npz", block_rows=3)
    seen = []

    def interrupt(label, done, total):
        seen.append(done)
        if done is not None and done >= 4:  # block 0 (rows 0-2) is saved, block 1 is not
            raise KeyboardInterrupt

    out = tmp_path / "out.npz"
    with pytest.raises(KeyboardInterrupt):
        _vgg(tmp_path / "i.npy", out, block_rows=3, progress=interrupt)
    assert not out.exists()  # nothing half-written
    assert sorted(p.name for p in (tmp_path / "out.npz.partial").glob("block-*.npy")) == [
        "block-000000.npy"]
    starts = []
    # The same batches as the whole run: bitwise equality (other batch sizes agree to float
    # rounding, test_vgg_batch_size_independent).
    result = _vgg(tmp_path / "i.npy", out, block_rows=3,
                  progress=lambda label, done, total: starts.append(done))
    assert result.resumed_rows == 3 and starts[1] == 3  # went on from row 3
    assert np.array_equal(_features(out), _features(tmp_path / "whole.npz"))
    assert result.provenance == feature_provenance(tmp_path / "whole.npz")
    assert not (tmp_path / "out.npz.partial").exists()


def test_partial_from_other_inputs_is_not_reused(tmp_path, images):
    np.save(tmp_path / "i.npy", images)
    out = tmp_path / "out.npz"

    def stop(label, done, total):
        if done is not None and done >= 4:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        _vgg(tmp_path / "i.npy", out, block_rows=3, batch_size=1, progress=stop)
    np.save(tmp_path / "i.npy", images[::-1].copy())  # other images under the same name
    result = _vgg(tmp_path / "i.npy", out, block_rows=3)
    assert result.resumed_rows == 0
    _vgg(tmp_path / "i.npy", tmp_path / "fresh.npz", block_rows=3)
    assert np.array_equal(_features(out), _features(tmp_path / "fresh.npz"))


def test_missing_weights_is_one_line_naming_the_place(tmp_path, monkeypatch, images):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    np.save(tmp_path / "i.npy", images)
    runner = CliRunner()
    for extractor, where in (("vgg19-fc7", tmp_path / "torch/hub/checkpoints/vgg19-dcbb9e9d.pth"),
                             ("clip-vit-b32", tmp_path / "home/.cache/clip/ViT-B-32.pt")):
        res = runner.invoke(main, ["features", str(tmp_path / "i.npy"), "--extractor",
                                   extractor, "-o", str(tmp_path / "f.npz")])
        assert res.exit_code == 2, res.output
        lines = res.output.strip().splitlines()
        assert len(lines) == 1 and str(where) in lines[0] and "--weights" in lines[0], lines
    assert not (tmp_path / "f.npz").exists()


def test_wrong_weights_file_is_one_clear_error(tmp_path, images):
    import torch

    torch.save({"features.0.weight": torch.zeros(1)}, tmp_path / "w.pth")
    np.save(tmp_path / "i.npy", images)
    with pytest.raises(DataError, match="not vgg19-fc7 weights .*missing"):
        _vgg(tmp_path / "i.npy", tmp_path / "f.npz", random_init_seed=None,
             weights=tmp_path / "w.pth")
    assert not (tmp_path / "f.npz.partial").exists()  # a failed start leaves nothing
    with pytest.raises(DataError, match="weights file not found"):
        _vgg(tmp_path / "i.npy", tmp_path / "f.npz", random_init_seed=None,
             weights=tmp_path / "none.pth")


def test_bad_inputs(tmp_path, images):
    np.save(tmp_path / "i.npy", images)
    with pytest.raises(UnknownNameError, match="choose from: clip-vit-b32, vgg19-fc7"):
        extract_image_features(tmp_path / "i.npy", tmp_path / "f.npz", extractor="resnet",
                               random_init_seed=0)
    with pytest.raises(InvalidInputError, match=r"\.npz"):
        _vgg(tmp_path / "i.npy", tmp_path / "f.npy")
    with pytest.raises(InvalidInputError, match="does not exist"):
        _vgg(tmp_path / "i.npy", tmp_path / "no" / "f.npz")
    np.save(tmp_path / "cube.npy", np.zeros((4, 5, 6, 7), np.uint8))
    with pytest.raises(DataError, match="is not images"):
        _vgg(tmp_path / "cube.npy", tmp_path / "f.npz")
    np.save(tmp_path / "float.npy", images.astype(np.float64))
    with pytest.raises(DataError, match="uint8"):
        _vgg(tmp_path / "float.npy", tmp_path / "f.npz")
    assert not (tmp_path / "f.npz").exists()


def test_cli_rejects_a_bad_extractor_and_text_options_on_images(tmp_path, images):
    np.save(tmp_path / "i.npy", images)
    runner = CliRunner()
    res = runner.invoke(main, ["features", str(tmp_path / "i.npy"), "--extractor", "resnet",
                               "-o", str(tmp_path / "f.npz")])
    assert res.exit_code == 2 and "vgg19-fc7" in res.output
    res = runner.invoke(main, ["features", str(tmp_path / "i.npy"), "--extractor", "vgg19-fc7",
                               "--vocab-size", "10", "-o", str(tmp_path / "f.npz")])
    assert res.exit_code == 2 and "--vocab-size is for captions" in res.output


# ---- texts ----------------------------------------------------------------------------------
@pytest.fixture
def tags():
    return (np.random.default_rng(1).random((6, 9)) < 0.3).astype(np.uint8)


def test_tag_matrix_bow_and_tfidf_cli(tmp_path, tags):
    from sklearn.feature_extraction.text import TfidfTransformer

    from mmhash.features import open_features

    scipy.io.savemat(tmp_path / "x-yall.mat", {"YAll": tags})
    runner = CliRunner()
    for extractor in ("bow", "tfidf"):
        out = tmp_path / f"{extractor}.npz"
        res = runner.invoke(main, ["features", str(tmp_path / "x-yall.mat"), "--extractor",
                                   extractor, "-o", str(out)])
        assert res.exit_code == 0, res.output
        assert "6 x 9" in res.output
        record = feature_provenance(out)
        assert record["source"]["key"] == "YAll" and record["source"]["files"][0]["sha256"]
        assert open_features(out).n_features == 9  # readable as a feature file
    np.testing.assert_array_equal(_features(tmp_path / "bow.npz"), tags.astype(np.float32))
    expected = TfidfTransformer().fit_transform(tags).toarray().astype(np.float32)
    np.testing.assert_allclose(_features(tmp_path / "tfidf.npz"), expected, rtol=1e-6)
    assert feature_provenance(tmp_path / "tfidf.npz")["vectorizer"]["params"]["norm"] == "l2"


def test_captions_bow_tfidf_vocabulary_and_ids(tmp_path):
    captions = ["a dog on a beach", "two dogs", "a cat, a cat and a dog", "sunset"]
    (tmp_path / "c.txt").write_text("\n".join(captions) + "\n")
    (tmp_path / "c.csv").write_text("id,text\n" + "\n".join(
        f"item{i},\"{c}\"" for i, c in enumerate(captions)) + "\n")
    r = extract_text_features(tmp_path / "c.txt", tmp_path / "t.npz", extractor="bow",
                              vocab_size=4)
    with np.load(tmp_path / "t.npz") as z:
        assert z["features"].shape == (4, 4) and z["features"].dtype == np.float32
        assert len(z["vocabulary"]) == 4 and "ids" not in z.files
        assert z["features"][2, z["vocabulary"].tolist().index("cat")] == 2  # counts
    assert r.provenance["vectorizer"]["vocabulary_size"] == 4
    assert r.provenance["vectorizer"]["params"]["max_features"] == 4
    extract_text_features(tmp_path / "c.csv", tmp_path / "c.npz", extractor="tfidf")
    with np.load(tmp_path / "c.npz") as z:
        assert z["ids"].tolist() == [f"item{i}" for i in range(4)]
        np.testing.assert_allclose(np.linalg.norm(z["features"], axis=1), 1, rtol=1e-6)
    with pytest.raises(InvalidInputError, match="captions"):
        np.save(tmp_path / "tags.npy", np.eye(3, dtype=np.float32))
        extract_text_features(tmp_path / "tags.npy", tmp_path / "y.npz",
                              extractor="clip-vit-b32")


def test_clip_text_tower(tmp_path):
    from mmhash.extract.models import clip_tokenizer

    try:
        clip_tokenizer()
    except DataError as exc:  # .ci/run installs it: there a missing tokenizer is a failure
        if os.environ.get("CI"):
            raise
        pytest.skip(f"open_clip's tokenizer is not installed ({exc})")
    (tmp_path / "c.txt").write_text("a dog on a beach\ntwo cats\na dog on a beach\n")
    kw = {"extractor": "clip-vit-b32", "random_init_seed": 0, "device": "cpu"}
    r = extract_text_features(tmp_path / "c.txt", tmp_path / "a.npz", batch_size=1, **kw)
    extract_text_features(tmp_path / "c.txt", tmp_path / "b.npz", batch_size=3, **kw)
    fa, fb = _features(tmp_path / "a.npz"), _features(tmp_path / "b.npz")
    assert fa.shape == (3, 512) and fa.dtype == np.float32
    np.testing.assert_allclose(fa, fb, atol=1e-5)
    np.testing.assert_allclose(fa[0], fa[2], atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(fa, axis=1), 1, rtol=1e-5)
    assert r.provenance["preprocessing"][0]["step"] == "tokenize"


@pytest.mark.slow
def test_cli_with_a_weights_file_matches_random_init(tmp_path, images):
    """The CLI end to end with --weights: a saved random-init state dict (600 MB) loads
    strictly and gives the library's random-init features."""
    import torch

    from mmhash.extract import models

    torch.manual_seed(0)
    model, _ = models.build("clip-vit-b32")
    torch.save(model.state_dict(), tmp_path / "clip.pt")
    del model
    np.save(tmp_path / "i.npy", images[:3])
    res = CliRunner().invoke(main, ["features", str(tmp_path / "i.npy"), "--extractor",
                                    "clip-vit-b32", "--weights", str(tmp_path / "clip.pt"),
                                    "--device", "cpu", "-o", str(tmp_path / "w.npz")])
    assert res.exit_code == 0, res.output
    extract_image_features(tmp_path / "i.npy", tmp_path / "r.npz", extractor="clip-vit-b32",
                           random_init_seed=0, device="cpu")
    np.testing.assert_allclose(_features(tmp_path / "w.npz"), _features(tmp_path / "r.npz"),
                               atol=1e-6)
    assert feature_provenance(tmp_path / "w.npz")["weights"]["name"] == "clip.pt"


def test_the_output_is_never_one_of_the_inputs(tmp_path):
    tags = tmp_path / "tags.npz"
    np.savez(tags, YAll=np.eye(4, dtype=np.float32))
    before = tags.read_bytes()
    result = CliRunner().invoke(main, ["features", str(tags), "--extractor", "bow", "-o",
                                       str(tags)])
    assert result.exit_code == 2 and "that is the input" in result.output
    assert len(result.output.strip().splitlines()) == 1 and tags.read_bytes() == before

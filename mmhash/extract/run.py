"""Batched feature extraction with resume and provenance: what ``mmhash features`` runs.

Output (``.npz``, no pickle)
    ``features``: float32 ``(n, d)`` (4096 for ``vgg19-fc7``, 512 and L2-normalised rows for
    ``clip-vit-b32``, the vocabulary size for ``bow``/``tfidf``); ``ids``: str ``(n,)`` when the
    input names its rows (a folder's file names, a CSV's ``id`` column); ``vocabulary``: str
    ``(d,)`` for captions turned into ``bow``/``tfidf``; ``provenance``: a 0-d str array holding
    JSON -- the extractor, the weights file and its sha256 (``"random-init"`` and the seed for
    untrained networks), every preprocessing step and constant, the source file(s) and their
    sha256, the torch (or scikit-learn) version and the device. :func:`feature_provenance`
    reads it back; it is part of the fingerprint of a dataset built on these features.

Resume
    Rows are extracted in blocks of ``block_rows`` (2,048); each finished block is saved at once
    to ``OUT.partial/block-NNNNNN.npy`` beside the output, with a ``manifest.json`` naming the
    inputs (extractor, weights sha256, preprocessing, source sha256, rows). A rerun with the
    same inputs skips the finished blocks (batch size and device may change: the features do
    not depend on them beyond float rounding); a partial folder from other inputs is cleared.
    The final file is streamed block by block into a temporary file renamed into place
    (:func:`mmhash.codefiles.atomic_output`), so 200k x 4096 features never sit in memory whole,
    and the partial folder is removed after.

torch is imported only when an image or CLIP extraction runs; ``bow``/``tfidf`` need only
scikit-learn.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import json
import logging
import os
import shutil
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mmhash.errors import DataError, InvalidInputError, UnknownNameError
from mmhash.extract.sources import ImageSource, TextInput, open_images, read_texts

log = logging.getLogger(__name__)

FORMAT = "mmhash-features/1"
PARTIAL_FORMAT = "mmhash-features-partial/1"
IMAGE_EXTRACTORS = ("clip-vit-b32", "vgg19-fc7")
TEXT_EXTRACTORS = ("bow", "clip-vit-b32", "tfidf")
EXTRACTORS = ("bow", "clip-vit-b32", "tfidf", "vgg19-fc7")
DIMS = {"vgg19-fc7": 4096, "clip-vit-b32": 512}
LAYERS = {"vgg19-fc7": "classifier.4: fc7 after its ReLU (classifier[:5])",
          "clip-vit-b32": "visual: ln_post(class token) @ proj, L2-normalised"}
BLOCK_ROWS = 2048
DEFAULT_BATCH = 32
#: Vocabulary of captions turned into bow/tfidf when not given: the 1,000 most frequent
#: words, NUS-WIDE's convention for its tags.
DEFAULT_VOCAB = 1000
RANDOM_INIT = "random-init"

#: ``progress(label, done, total)``: rows done of ``total`` (None while unknown).
Progress = Callable[[str, int, "int | None"], None]


@dataclass
class FeaturesResult:
    """A written feature file: ``path``, ``rows`` x ``dim``, ``provenance`` (the stored
    record), and ``resumed_rows`` (rows taken from an earlier, interrupted run)."""

    path: Path
    rows: int
    dim: int
    provenance: dict[str, Any]
    resumed_rows: int = 0


def feature_provenance(path: str | os.PathLike) -> dict[str, Any]:
    """The provenance record of a feature file written by ``mmhash features`` (JSON from its
    ``provenance`` entry): ``format``, ``extractor``, ``modality``, ``output`` (rows, dim,
    dtype, layer), ``weights`` (file, sha256; or sha256 ``"random-init"`` and seed),
    ``architecture``, ``preprocessing`` (the steps, in order, with every constant), ``source``
    (kind, files with sha256, key, layout), ``torch``/``sklearn`` and ``device``. Reads only
    that entry; :class:`DataError` for a file without one."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as npz:
            if "provenance" not in npz.files:
                raise DataError(f"{path}: no provenance record; not written by mmhash features")
            record = json.loads(str(npz["provenance"][()]))
    except DataError:
        raise
    except (OSError, ValueError, zipfile.BadZipFile) as exc:
        raise DataError(f"{path}: not a readable feature file ({exc})") from None
    if not isinstance(record, dict) or record.get("format") != FORMAT:
        raise DataError(f"{path}: provenance is not a {FORMAT} record")
    return record


def check_features_output(output: str | os.PathLike,
                          inputs: tuple[str | os.PathLike | None, ...] = ()) -> Path:
    """``output`` as a Path if a ``.npz`` file can be written there and it is none of
    ``inputs`` (the images or texts, an id list, a weights file: never overwritten)."""
    from mmhash.outputs import FEATURE_EXTENSIONS, check_output

    return check_output(output, option="-o", extensions=FEATURE_EXTENSIONS, inputs=inputs,
                        what="feature files")


def _check_extractor(extractor: str, choices: tuple[str, ...], what: str) -> None:
    if extractor not in choices:
        raise UnknownNameError(f"extractor for {what}", extractor, choices)


def _require_torch(extractor: str) -> None:
    if importlib.util.find_spec("torch") is None:
        raise InvalidInputError(f"{extractor} needs torch: pip install 'mmhash[features]'")


def _check_batch(batch_size: Any) -> int:
    if isinstance(batch_size, bool) or not isinstance(batch_size, int | np.integer) \
            or batch_size < 1:
        raise InvalidInputError(f"batch size must be an integer >= 1, got {batch_size!r}")
    return int(batch_size)


# ---- images ---------------------------------------------------------------------------------
def extract_image_features(images: str | os.PathLike | ImageSource, output: str | os.PathLike,
                           *, extractor: str, weights: str | os.PathLike | None = None,
                           random_init_seed: int | None = None, device: str = "auto",
                           batch_size: int = DEFAULT_BATCH, preprocess: Any = "resize-crop",
                           key: str | None = None, id_file: str | os.PathLike | None = None,
                           block_rows: int = BLOCK_ROWS, progress: Progress | None = None
                           ) -> FeaturesResult:
    """Run ``extractor`` (``vgg19-fc7`` or ``clip-vit-b32``) over every image and write
    ``output`` (see the module docstring).

    ``images``: a 4-D image array file (``key`` picks the variable) or a folder (``id_file``
    lists its images), or an opened :class:`~mmhash.extract.sources.ImageSource`.
    ``weights``: a weights file, else the library cache (:mod:`mmhash.extract.models`);
    ``random_init_seed``: instead of weights, the network's random initialisation under this
    torch seed (tests, timing). ``preprocess``: ``"resize-crop"`` (default), ``"crop"``, or a
    :class:`~mmhash.extract.preprocess.Preprocess`. ``device``: ``"auto"`` (CUDA when present),
    ``"cpu"``, ``"cuda"``...
    """
    from mmhash.extract.preprocess import Preprocess, for_extractor

    _check_extractor(extractor, IMAGE_EXTRACTORS, "images")
    _require_torch(extractor)
    batch_size = _check_batch(batch_size)
    target = check_features_output(output)
    prep = preprocess if isinstance(preprocess, Preprocess) else for_extractor(extractor,
                                                                               preprocess)
    weights_path, weights_record = _weights(extractor, weights, random_init_seed)
    network = _Network(extractor, weights_path, random_init_seed, device)  # checks device
    with _opened(images, key, id_file) as source:
        _emit(progress, "hashing inputs", 0, None)
        record = {"format": FORMAT, "extractor": extractor, "modality": "image",
                  "output": {"rows": source.n, "dim": DIMS[extractor], "dtype": "float32",
                             "layer": LAYERS[extractor]},
                  "weights": weights_record, "preprocessing": prep.describe(),
                  "source": source.describe()}

        def compute(start: int, stop: int, step: Callable[[int], None]) -> np.ndarray:
            model = network.get()
            return _image_block(source, start, stop, batch_size, prep, model, network, step)

        blocks, resumed, devices = _run_blocks(target, record, source.n, DIMS[extractor],
                                               block_rows, compute, network, progress,
                                               f"{extractor} images")
        record.update(network.describe(devices))
        ids = source.ids
    _write_features(target, blocks, source.n, DIMS[extractor], record, ids=ids)
    shutil.rmtree(_partial_dir(target), ignore_errors=True)
    return FeaturesResult(target, source.n, DIMS[extractor], record, resumed)


@contextlib.contextmanager
def _opened(images: Any, key: str | None, id_file: Any) -> Iterator[ImageSource]:
    if isinstance(images, ImageSource):
        yield images
        return
    source = open_images(images, key=key, id_file=id_file)
    try:
        yield source
    finally:
        source.close()


def _image_block(source: ImageSource, start: int, stop: int, batch_size: int, prep: Any,
                 model: Any, network: _Network, step: Callable[[int], None]) -> np.ndarray:
    """Features of rows ``start:stop``; the next batch is read and preprocessed in a thread
    while the network runs on this one."""
    from concurrent.futures import ThreadPoolExecutor

    import torch

    starts = list(range(start, stop, batch_size))
    out = []
    with ThreadPoolExecutor(max_workers=1) as pool:
        pending = pool.submit(lambda s: prep(source.read(s, min(s + batch_size, stop))),
                              starts[0])
        for i, _ in enumerate(starts):
            batch = pending.result()
            if i + 1 < len(starts):
                nxt = starts[i + 1]
                pending = pool.submit(lambda s: prep(source.read(s, min(s + batch_size, stop))),
                                      nxt)
            with torch.inference_mode():
                x = torch.from_numpy(batch).to(network.device)
                if network.extractor == "vgg19-fc7":
                    from mmhash.extract.models import vgg19_fc7

                    y = vgg19_fc7(model, x)
                else:
                    y = model.encode_image(x, normalize=True)
                out.append(y.float().cpu().numpy())
            step(len(batch))
    return np.concatenate(out).astype(np.float32, copy=False)


# ---- texts ----------------------------------------------------------------------------------
def extract_text_features(texts: str | os.PathLike | TextInput, output: str | os.PathLike, *,
                          extractor: str, key: str | None = None, vocab_size: int | None = None,
                          weights: str | os.PathLike | None = None,
                          random_init_seed: int | None = None, device: str = "auto",
                          batch_size: int = DEFAULT_BATCH, block_rows: int = BLOCK_ROWS,
                          progress: Progress | None = None) -> FeaturesResult:
    """Turn texts into features and write ``output``.

    * a tag matrix (``n x vocabulary`` counts or 0/1): ``bow`` keeps it as given (float32),
      ``tfidf`` applies scikit-learn's ``TfidfTransformer`` (defaults: l2 norm, smooth idf);
    * captions (``.txt``, ``.csv`` ``text`` column): ``bow`` = ``CountVectorizer`` counts,
      ``tfidf`` = ``TfidfVectorizer``, over the ``vocab_size`` most frequent words (default
      1,000; the vocabulary is stored); ``clip-vit-b32`` = CLIP's text tower on open_clip's
      tokenizer (77 tokens, longer captions truncated), L2-normalised, resumable like images.
    """
    _check_extractor(extractor, TEXT_EXTRACTORS, "texts")
    target = check_features_output(output)
    source = texts if isinstance(texts, TextInput) else read_texts(texts, key)
    if source.matrix is not None:
        if extractor == "clip-vit-b32":
            raise InvalidInputError(f"{source.path}: clip-vit-b32 reads captions (.txt, .csv), "
                                    f"not a tag matrix; use bow or tfidf")
        if vocab_size is not None:
            raise InvalidInputError(f"{source.path}: --vocab-size is for captions; a tag "
                                    f"matrix keeps its {source.matrix.shape[1]} columns")
    if extractor == "clip-vit-b32":
        return _clip_text(source, target, weights, random_init_seed, device,
                          _check_batch(batch_size), block_rows, progress)
    import sklearn

    _emit(progress, f"{extractor} texts", 0, source.n)
    vocabulary = None
    if source.matrix is not None:
        if extractor == "bow":
            features, vectorizer = source.matrix, {"class": None, "note": "as stored"}
        else:
            from sklearn.feature_extraction.text import TfidfTransformer

            model = TfidfTransformer()
            features = model.fit_transform(source.matrix).toarray()
            vectorizer = {"class": "sklearn.feature_extraction.text.TfidfTransformer",
                          "params": _params(model)}
    else:
        from sklearn.feature_extraction.text import CountVectorizer, TfidfVectorizer

        size = DEFAULT_VOCAB if vocab_size is None else vocab_size
        if isinstance(size, bool) or not isinstance(size, int | np.integer) or size < 1:
            raise InvalidInputError(f"vocabulary size must be an integer >= 1, got {size!r}")
        cls = CountVectorizer if extractor == "bow" else TfidfVectorizer
        model = cls(max_features=int(size), dtype=np.float32)
        try:
            features = model.fit_transform(source.captions).toarray()
        except ValueError as exc:  # e.g. "empty vocabulary"
            raise DataError(f"{source.path}: {exc}") from None
        vocabulary = model.get_feature_names_out().astype(str)
        vectorizer = {"class": f"sklearn.feature_extraction.text.{cls.__name__}",
                      "params": _params(model), "vocabulary_size": len(vocabulary)}
    features = np.ascontiguousarray(features, dtype=np.float32)
    record = {"format": FORMAT, "extractor": extractor, "modality": "text",
              "output": {"rows": source.n, "dim": int(features.shape[1]), "dtype": "float32"},
              "vectorizer": vectorizer, "source": source.describe(),
              "sklearn": sklearn.__version__}
    _write_features(target, [features], source.n, features.shape[1], record, ids=source.ids,
                    vocabulary=vocabulary)
    _emit(progress, f"{extractor} texts", source.n, source.n)
    return FeaturesResult(target, source.n, int(features.shape[1]), record)


def _params(model: Any) -> dict[str, Any]:
    return json.loads(json.dumps(model.get_params(), default=lambda v: getattr(v, "__name__",
                                                                               str(v))))


def _clip_text(source: TextInput, target: Path, weights: Any, seed: int | None, device: str,
               batch_size: int, block_rows: int, progress: Progress | None) -> FeaturesResult:
    from mmhash.extract.models import clip_tokenizer

    _require_torch("clip-vit-b32")
    tokenizer = clip_tokenizer()
    weights_path, weights_record = _weights("clip-vit-b32", weights, seed)
    network = _Network("clip-vit-b32", weights_path, seed, device)  # checks device
    _emit(progress, "hashing inputs", 0, None)
    record = {"format": FORMAT, "extractor": "clip-vit-b32", "modality": "text",
              "output": {"rows": source.n, "dim": 512, "dtype": "float32",
                         "layer": "text: ln_final(end-of-text token) @ text_projection, "
                                  "L2-normalised"},
              "weights": weights_record,
              "preprocessing": [{"step": "tokenize", "tokenizer": "open_clip SimpleTokenizer "
                                 "(BPE bpe_simple_vocab_16e6, ftfy, lower-cased)",
                                 "context_length": 77, "truncate": True}],
              "source": source.describe()}

    def compute(start: int, stop: int, step: Callable[[int], None]) -> np.ndarray:
        import torch

        model = network.get()
        out = []
        for s in range(start, stop, batch_size):
            chunk = source.captions[s:min(s + batch_size, stop)]
            with torch.inference_mode():
                tokens = tokenizer(chunk).to(network.device)
                out.append(model.encode_text(tokens, normalize=True).float().cpu().numpy())
            step(len(chunk))
        return np.concatenate(out).astype(np.float32, copy=False)

    blocks, resumed, devices = _run_blocks(target, record, source.n, 512, block_rows, compute,
                                           network, progress, "clip-vit-b32 texts")
    record.update(network.describe(devices))
    _write_features(target, blocks, source.n, 512, record, ids=source.ids)
    shutil.rmtree(_partial_dir(target), ignore_errors=True)
    return FeaturesResult(target, source.n, 512, record, resumed)


# ---- networks -------------------------------------------------------------------------------
def _weights(extractor: str, weights: Any, seed: int | None) -> tuple[Path | None, dict]:
    """The weights file (found before any work) and its provenance entry."""
    from mmhash.extract.models import find_weights
    from mmhash.extract.sources import file_sha256

    if seed is not None:
        if weights is not None:
            raise InvalidInputError("give either a weights file or a random-init seed, not both")
        return None, {"sha256": RANDOM_INIT, "seed": int(seed)}
    path = find_weights(extractor, weights)
    return path, {"file": str(path), "name": path.name, "bytes": path.stat().st_size,
                  "sha256": file_sha256(path)}


class _Network:
    """The network, built and loaded on first use (a fully resumed run never builds it)."""

    def __init__(self, extractor: str, weights: Path | None, seed: int | None, device: str):
        from mmhash.deep.training import resolve_device

        self.extractor, self.weights, self.seed = extractor, weights, seed
        self.device = resolve_device(device)
        self.architecture = ""
        self._model = None

    def get(self) -> Any:
        if self._model is None:
            import torch

            from mmhash.extract import models

            with torch.random.fork_rng(devices=[]):
                if self.seed is not None:
                    torch.manual_seed(self.seed)
                model, self.architecture = models.build(self.extractor)
            if self.weights is not None:
                models.load_weights(model, self.weights, self.extractor)
            self._model = model.eval().to(self.device)
        return self._model

    def describe(self, devices: list[str]) -> dict[str, Any]:
        import torch

        return {"architecture": self.architecture or "(not built: every block resumed)",
                "torch": torch.__version__, "device": "+".join(devices) or str(self.device),
                "tf32": False}


@contextlib.contextmanager
def _exact_float32() -> Iterator[None]:
    """TF32 off on CUDA for the run: features must not depend on the GPU's fast-math mode."""
    import torch

    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


# ---- blocks, resume, output -----------------------------------------------------------------
def _partial_dir(target: Path) -> Path:
    return target.with_name(target.name + ".partial")


def _run_key(record: dict[str, Any], block_rows: int) -> str:
    """sha256 of everything the features depend on (not the batch size nor the device)."""
    text = json.dumps({k: record[k] for k in ("extractor", "modality", "output", "weights",
                                              "preprocessing", "source")} | {
        "block_rows": block_rows}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


def _run_blocks(target: Path, record: dict[str, Any], n: int, dim: int, block_rows: int,
                compute: Callable[[int, int, Callable[[int], None]], np.ndarray],
                network: _Network, progress: Progress | None, label: str
                ) -> tuple[list[Path], int, list[str]]:
    """Compute every block not already in the partial folder; return the block files in row
    order, the rows resumed, and the devices that computed blocks."""
    if isinstance(block_rows, bool) or not isinstance(block_rows, int) or block_rows < 1:
        raise InvalidInputError(f"block_rows must be an integer >= 1, got {block_rows!r}")
    folder = _partial_dir(target)
    key = _run_key(record, block_rows)
    manifest = _read_manifest(folder)
    if manifest.get("key") != key:
        if any(folder.glob("block-*.npy")):
            log.warning("%s: made from other inputs; starting over", folder)
        shutil.rmtree(folder, ignore_errors=True)
        manifest = {"format": PARTIAL_FORMAT, "key": key, "rows": n, "dim": dim,
                    "block_rows": block_rows, "devices": []}
    starts = list(range(0, n, block_rows))
    files = [folder / f"block-{i:06d}.npy" for i in range(len(starts))]
    done = [_valid_block(f, min(s + block_rows, n) - s, dim) for s, f in zip(starts, files)]
    resumed = sum(min(s + block_rows, n) - s for s, ok in zip(starts, done) if ok)
    finished = resumed
    _emit(progress, label, finished, n)
    if not all(done):
        manifest["devices"] = sorted(set(manifest["devices"]) | {str(network.device)})

        def step(rows: int) -> None:
            nonlocal finished
            finished += rows
            _emit(progress, label, finished, n)

        with _exact_float32():
            for s, f, ok in zip(starts, files, done):
                if ok:
                    continue
                block = compute(s, min(s + block_rows, n), step)
                # The folder appears with the first finished block: a run that fails before
                # (wrong weights, unreadable input) leaves nothing behind.
                folder.mkdir(exist_ok=True)
                _write_json(folder / "manifest.json", manifest)
                _save_atomically(f, block)
    return files, resumed, list(manifest["devices"])


def _read_manifest(folder: Path) -> dict[str, Any]:
    try:
        manifest = json.loads((folder / "manifest.json").read_text())
    except (OSError, ValueError):
        return {}
    return manifest if isinstance(manifest, dict) else {}


def _valid_block(path: Path, rows: int, dim: int) -> bool:
    try:
        block = np.load(path, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError):
        return False
    return block.shape == (rows, dim) and block.dtype == np.float32


def _write_json(path: Path, value: Any) -> None:
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(json.dumps(value, indent=1))
    os.replace(temporary, path)


def _save_atomically(path: Path, block: np.ndarray) -> None:
    temporary = path.with_name(path.name + ".tmp")
    with temporary.open("wb") as fh:
        np.save(fh, np.ascontiguousarray(block, dtype=np.float32), allow_pickle=False)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(temporary, path)


def _write_features(target: Path, blocks: list[Any], n: int, dim: int, record: dict[str, Any],
                    *, ids: np.ndarray | None = None, vocabulary: np.ndarray | None = None
                    ) -> None:
    """Write the ``.npz`` atomically, streaming ``features`` from ``blocks`` (arrays or
    ``.npy`` files, in row order) so that only one block is in memory."""
    from mmhash.codefiles import atomic_output

    header = {"descr": np.lib.format.dtype_to_descr(np.dtype("<f4")), "fortran_order": False,
              "shape": (int(n), int(dim))}
    extra = {"provenance": np.array(json.dumps(record, sort_keys=True))}
    if ids is not None:
        extra["ids"] = np.asarray(ids).astype(str)
    if vocabulary is not None:
        extra["vocabulary"] = np.asarray(vocabulary).astype(str)
    with atomic_output(target) as temporary:
        with zipfile.ZipFile(temporary, "w", compression=zipfile.ZIP_STORED,
                             allowZip64=True) as zf:
            with zf.open("features.npy", "w", force_zip64=True) as fh:
                np.lib.format.write_array_header_1_0(fh, header)
                written = 0
                for block in blocks:
                    array = np.load(block, allow_pickle=False) if isinstance(block, Path) \
                        else block
                    array = np.ascontiguousarray(array, dtype="<f4")
                    fh.write(array.tobytes())
                    written += len(array)
                if written != n:
                    raise DataError(f"{target}: {written} feature rows written for {n} inputs")
            for name, array in extra.items():
                with zf.open(f"{name}.npy", "w", force_zip64=True) as fh:
                    np.lib.format.write_array(fh, array, allow_pickle=False)


def _emit(progress: Progress | None, label: str, done: int, total: int | None) -> None:
    if progress is not None:
        progress(label, done, total)

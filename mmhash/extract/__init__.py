"""Features from raw images and texts: what ``mmhash features`` runs (extra ``features``).

Modules, one job each:

* :mod:`~mmhash.extract.sources`: lazy readers of the inputs -- a DCMH-family ``IAll`` array
  (MATLAB v5/v7.3, any axis order) or a folder of images; a tag matrix or captions;
* :mod:`~mmhash.extract.preprocess`: the image transforms (resize, centre crop, normalise);
* :mod:`~mmhash.extract.models`: VGG-19 and CLIP ViT-B/32 (torchvision/open_clip when they
  import, else the same networks in plain torch), their weights files, CLIP's tokenizer;
* :mod:`~mmhash.extract.run`: batched extraction, resume, provenance, the ``.npz`` output.

``import mmhash.extract`` is light: torch is imported only when a network runs.

:func:`feature_provenance` ``(path) -> dict`` reads the provenance record of a feature file
(extractor, weights sha256, preprocessing, sources and their sha256, torch version, device);
it belongs in the fingerprint of any dataset built on the file.
"""

from __future__ import annotations

from typing import Any

EXTRACTORS = ("bow", "clip-vit-b32", "tfidf", "vgg19-fc7")
IMAGE_EXTRACTORS = ("clip-vit-b32", "vgg19-fc7")
TEXT_EXTRACTORS = ("bow", "clip-vit-b32", "tfidf")

__all__ = ["EXTRACTORS", "IMAGE_EXTRACTORS", "TEXT_EXTRACTORS", "FeaturesResult",
           "extract_image_features", "extract_text_features", "feature_provenance"]


def __getattr__(name: str) -> Any:
    if name in ("FeaturesResult", "extract_image_features", "extract_text_features",
                "feature_provenance"):
        from mmhash.extract import run

        return getattr(run, name)
    raise AttributeError(f"module 'mmhash.extract' has no attribute {name!r}")

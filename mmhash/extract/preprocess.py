"""Image preprocessing of the extractors, done with PIL and numpy exactly as torchvision's
transforms do it on PIL images (torchvision need not be importable, see
:mod:`mmhash.extract.models`).

Each step and constant is written into the feature file's provenance by :meth:`Preprocess.describe`.

* ``vgg19-fc7``: torchvision's ImageNet evaluation transform of ``VGG19_Weights.IMAGENET1K_V1``
  -- resize the shorter side to 256 (bilinear, PIL), centre crop 224, scale to [0, 1],
  normalise with the ImageNet mean (0.485, 0.456, 0.406) and std (0.229, 0.224, 0.225)
  (pytorch/vision@8fb87713 = v0.28.0 ``torchvision/models/vgg.py:268-269``,
  ``torchvision/transforms/_presets.py:39-63``). DJSRH's and JDSH's test transform is the same
  (zs-zhong/DJSRH@6041c2d ``datasets.py:142-155``). On a DCMH-family ``IAll`` (already
  224 x 224) this enlarges to 256 and crops the centre 224, dropping a border of 16 pixels at
  the 256 scale. ``mode="crop"`` is UCCH's test transform instead (its ``Resize(256)`` is
  commented out: penghu-cs/UCCH@0c20e62 ``src/cmdataset.py:58-75``): centre crop 224 only,
  which leaves a 224 x 224 ``IAll`` untouched.
* ``clip-vit-b32``: open_clip's inference transform for OpenAI's ViT-B-32 -- resize the shorter
  side to 224 (bicubic), centre crop 224, scale to [0, 1], normalise with OPENAI_DATASET_MEAN
  (0.48145466, 0.4578275, 0.40821073) and OPENAI_DATASET_STD (0.26862954, 0.26130258,
  0.27577711) (mlfoundations/open_clip@89fb801 ``src/open_clip/constants.py:1-2``,
  ``src/open_clip/pretrained.py:40-50`` (``_pcfg``: bicubic, resize_mode "shortest"),
  ``src/open_clip/transform.py:474-491``).

Resize size: torchvision's rule for an int size -- the shorter side becomes ``size``, the longer
``int(size * long / short)`` (``torchvision/transforms/functional.py:370``); centre crop: top
``int(round((h - crop) / 2))``, left likewise (``functional.py:592-593``), zero padding where the
image is smaller than the crop.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from mmhash.errors import InvalidInputError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
OPENAI_DATASET_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_DATASET_STD = (0.26862954, 0.26130258, 0.27577711)
#: ``--preprocess`` choices: resize then centre crop (default), or centre crop only.
MODES = ("resize-crop", "crop")


@dataclass(frozen=True)
class Preprocess:
    """Resize the shorter side to ``resize`` (``interpolation``: ``"bilinear"`` or
    ``"bicubic"``; skipped when ``resize`` is None), centre crop ``crop`` x ``crop``, scale to
    [0, 1], subtract ``mean`` and divide by ``std`` per RGB channel."""

    resize: int | None
    crop: int
    interpolation: str
    mean: tuple[float, float, float]
    std: tuple[float, float, float]

    def __call__(self, images: list[Any]) -> np.ndarray:
        """RGB PIL images -> float32 ``(n, 3, crop, crop)`` (NCHW), normalised."""
        out = np.empty((len(images), 3, self.crop, self.crop), dtype=np.float32)
        mean = np.asarray(self.mean, dtype=np.float32)[:, None, None]
        std = np.asarray(self.std, dtype=np.float32)[:, None, None]
        for i, image in enumerate(images):
            if self.resize is not None:
                image = resize_shorter(image, self.resize, self.interpolation)
            pixels = center_crop(np.asarray(image.convert("RGB"), dtype=np.uint8), self.crop)
            # ToTensor: uint8 / 255 in float32, HWC -> CHW; then Normalize.
            chw = pixels.transpose(2, 0, 1).astype(np.float32) / np.float32(255)
            out[i] = (chw - mean) / std
        return out

    def describe(self) -> list[dict[str, Any]]:
        """Every step and constant, in order, for the provenance record."""
        steps: list[dict[str, Any]] = [{"step": "convert", "to": "RGB", "library": "PIL"}]
        if self.resize is not None:
            steps.append({"step": "resize", "shorter_side": self.resize,
                          "longer_side": "int(size * long / short)",
                          "interpolation": self.interpolation, "library": "PIL"})
        steps += [{"step": "center_crop", "size": [self.crop, self.crop],
                   "offset": "int(round((side - size) / 2))", "pad": 0},
                  {"step": "to_float", "scale": "1/255", "layout": "CHW", "dtype": "float32"},
                  {"step": "normalize", "mean": list(self.mean), "std": list(self.std)}]
        return steps


def for_extractor(extractor: str, mode: str = "resize-crop") -> Preprocess:
    """The preprocessing of ``extractor`` (see the module docstring); ``mode="crop"`` skips
    the resize."""
    if mode not in MODES:
        raise InvalidInputError(f"unknown preprocessing {mode!r} (choose from: "
                                f"{', '.join(MODES)})")
    if extractor == "vgg19-fc7":
        resize, interpolation, mean, std = 256, "bilinear", IMAGENET_MEAN, IMAGENET_STD
    elif extractor == "clip-vit-b32":
        resize, interpolation, mean, std = 224, "bicubic", OPENAI_DATASET_MEAN, OPENAI_DATASET_STD
    else:
        raise InvalidInputError(f"no image preprocessing for extractor {extractor!r} (choose "
                                f"from: clip-vit-b32, vgg19-fc7)")
    return Preprocess(resize=resize if mode == "resize-crop" else None, crop=224,
                      interpolation=interpolation, mean=mean, std=std)


def resize_shorter(image: Any, size: int, interpolation: str) -> Any:
    """``image`` (PIL) with its shorter side ``size`` and aspect kept (torchvision's rule)."""
    from PIL import Image

    filters = {"bilinear": Image.BILINEAR, "bicubic": Image.BICUBIC}
    w, h = image.size
    short, long = (w, h) if w <= h else (h, w)
    new_short, new_long = size, int(size * long / short)
    new_w, new_h = (new_short, new_long) if w <= h else (new_long, new_short)
    if (new_w, new_h) == (w, h):
        return image
    return image.resize((new_w, new_h), filters[interpolation])


def center_crop(pixels: np.ndarray, size: int) -> np.ndarray:
    """The centre ``size`` x ``size`` of a ``(H, W, 3)`` uint8 array, zero-padded (evenly,
    the odd pixel after) where it is smaller, as torchvision's ``center_crop``."""
    h, w = pixels.shape[:2]
    if h < size or w < size:
        pad_h, pad_w = max(size - h, 0), max(size - w, 0)
        pixels = np.pad(pixels, ((pad_h // 2, (pad_h + 1) // 2), (pad_w // 2, (pad_w + 1) // 2),
                                 (0, 0)))
        h, w = pixels.shape[:2]
    top, left = int(round((h - size) / 2.0)), int(round((w - size) / 2.0))
    return pixels[top:top + size, left:left + size]

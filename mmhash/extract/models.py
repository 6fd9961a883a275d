"""The extractors' networks and their weights: VGG-19 (fc7 after ReLU, 4096-d) and OpenAI's
CLIP ViT-B/32 (image and text towers, 512-d), and where their weights are found.

Architectures. torchvision's ``vgg19`` and open_clip's ``ViT-B-32-quickgelu`` are used when
they import; otherwise (the usual case beside the CPU build of torch 2.13.0 that mmhash pins:
PyPI's torchvision wheels are CUDA builds whose ops fail to register, "operator
torchvision::nms does not exist", and open_clip imports torchvision) the same networks are built
here in plain torch with **the same module names**, so the official checkpoints load with
``load_state_dict(strict=True)``:

* :class:`VGG19`: ``features.N`` (configuration "E"), ``avgpool``, ``classifier.N``
  (pytorch/vision@8fb87713 = v0.28.0 ``torchvision/models/vgg.py:36-51, 94``); fc7 after ReLU is
  ``classifier[:5]``, what UCCH's ``feature=True`` keeps (penghu-cs/UCCH@0c20e62
  ``nets/vgg.py:31-39``).
* :class:`CLIP`: ``visual.{conv1, class_embedding, positional_embedding, ln_pre,
  transformer.resblocks.N.{ln_1, attn (in_proj_weight, in_proj_bias, out_proj), ln_2, mlp.c_fc,
  mlp.c_proj}, ln_post, proj}``, ``token_embedding``, ``positional_embedding``,
  ``transformer...``, ``ln_final``, ``text_projection``, ``logit_scale`` -- open_clip's
  ``ViT-B-32`` (mlfoundations/open_clip@89fb801 ``src/open_clip/model_configs/ViT-B-32.json``:
  width 768, 12 layers, patch 32, text width 512, 8 heads, 12 layers, context 77, vocabulary
  49408, embedding 512; ``src/open_clip/transformer.py:592-800``,
  ``src/open_clip/model.py:393-415``), with QuickGELU, as OpenAI's weights were trained
  (``src/open_clip/pretrained.py:176-180``: ``openai=_pcfg(..., quick_gelu=True)``).

Weights. ``--weights FILE`` (a state dict: ``.pth``/``.pt``/``.bin`` read with
``torch.load(weights_only=True)``, ``.safetensors``, or OpenAI's TorchScript ``ViT-B-32.pt``),
else the libraries' own caches (:func:`cached_weights`). mmhash never downloads: when no file is
found, :class:`~mmhash.errors.DataError` says in one line where to put one.

``MMHASH_PLAIN_MODELS=1`` in the environment makes :func:`build` use this module's classes even
where torchvision or open_clip import (to compare the two).
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import importlib.util
import json
import os
import struct
import sys
from collections import OrderedDict
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from mmhash.errors import DataError

VGG19_CFG = (64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M",
             512, 512, 512, 512, "M")
#: torchvision's file name for the ImageNet weights of vgg19 (VGG19_Weights.IMAGENET1K_V1).
VGG19_FILE = "vgg19-dcbb9e9d.pth"
#: open_clip's Hugging Face repository of OpenAI's ViT-B-32 weights, and its file names.
CLIP_HF_REPO = "timm/vit_base_patch32_clip_224.openai"
CLIP_HF_FILES = ("open_clip_model.safetensors", "open_clip_pytorch_model.bin")
#: OpenAI's own file (the ``clip`` package's cache, ``~/.cache/clip``).
CLIP_OPENAI_FILE = "ViT-B-32.pt"
CLIP_CONTEXT = 77
# Keys of OpenAI's TorchScript state dict that are hyperparameters, not weights.
_OPENAI_EXTRA_KEYS = ("input_resolution", "context_length", "vocab_size")


# ---- VGG-19 --------------------------------------------------------------------------------
class VGG19(nn.Module):
    """torchvision's ``vgg19`` (no batch norm) with its module names. Input float32
    ``(n, 3, H, W)`` (H, W >= 32); :func:`vgg19_fc7` gives ``(n, 4096)``."""

    def __init__(self, num_classes: int = 1000):
        super().__init__()
        layers: list[nn.Module] = []
        channels = 3
        for v in VGG19_CFG:
            if v == "M":
                layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
            else:
                layers += [nn.Conv2d(channels, int(v), kernel_size=3, padding=1),
                           nn.ReLU(inplace=True)]
                channels = int(v)
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d((7, 7))
        self.classifier = nn.Sequential(
            nn.Linear(512 * 7 * 7, 4096), nn.ReLU(True), nn.Dropout(p=0.5),
            nn.Linear(4096, 4096), nn.ReLU(True), nn.Dropout(p=0.5),
            nn.Linear(4096, num_classes))
        # torchvision's initialisation (vgg.py:53-63), so random-init features look alike.
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                nn.init.constant_(m.bias, 0)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0, 0.01)
                nn.init.constant_(m.bias, 0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.avgpool(self.features(x)), 1))


def vgg19_fc7(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """fc7 after its ReLU: float32 ``(n, 3, H, W)`` -> ``(n, 4096)`` (either VGG19 class)."""
    return model.classifier[:5](torch.flatten(model.avgpool(model.features(x)), 1))


# ---- CLIP ViT-B/32 -------------------------------------------------------------------------
class QuickGELU(nn.Module):
    """``x * sigmoid(1.702 x)``, the activation OpenAI's CLIP was trained with."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(1.702 * x)


class ResidualAttentionBlock(nn.Module):
    """Pre-LN transformer block: ``x + attn(ln_1(x))``, then ``x + mlp(ln_2(x))``."""

    def __init__(self, width: int, heads: int):
        super().__init__()
        self.ln_1 = nn.LayerNorm(width)
        self.attn = nn.MultiheadAttention(width, heads, batch_first=True)
        self.ln_2 = nn.LayerNorm(width)
        self.mlp = nn.Sequential(OrderedDict([("c_fc", nn.Linear(width, width * 4)),
                                              ("gelu", QuickGELU()),
                                              ("c_proj", nn.Linear(width * 4, width))]))

    def forward(self, x: torch.Tensor, attn_mask: torch.Tensor | None = None) -> torch.Tensor:
        y = self.ln_1(x)
        x = x + self.attn(y, y, y, need_weights=False, attn_mask=attn_mask)[0]
        return x + self.mlp(self.ln_2(x))


class Transformer(nn.Module):
    """``resblocks``: ``layers`` blocks over float32 ``(n, tokens, width)``."""

    def __init__(self, width: int, layers: int, heads: int):
        super().__init__()
        self.resblocks = nn.ModuleList(ResidualAttentionBlock(width, heads)
                                       for _ in range(layers))

    def forward(self, x: torch.Tensor, attn_mask: torch.Tensor | None = None) -> torch.Tensor:
        for block in self.resblocks:
            x = block(x, attn_mask=attn_mask)
        return x


class VisionTransformer(nn.Module):
    """The image tower: float32 ``(n, 3, 224, 224)`` -> ``(n, 512)`` (not normalised)."""

    def __init__(self, image_size: int = 224, patch_size: int = 32, width: int = 768,
                 layers: int = 12, heads: int = 12, output_dim: int = 512):
        super().__init__()
        scale = width ** -0.5
        self.conv1 = nn.Conv2d(3, width, kernel_size=patch_size, stride=patch_size, bias=False)
        self.class_embedding = nn.Parameter(scale * torch.randn(width))
        self.positional_embedding = nn.Parameter(
            scale * torch.randn((image_size // patch_size) ** 2 + 1, width))
        self.ln_pre = nn.LayerNorm(width)
        self.transformer = Transformer(width, layers, heads)
        self.ln_post = nn.LayerNorm(width)
        self.proj = nn.Parameter(scale * torch.randn(width, output_dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv1(x)                                  # (n, width, grid, grid)
        x = x.reshape(x.shape[0], x.shape[1], -1).permute(0, 2, 1)   # (n, grid^2, width)
        cls = self.class_embedding.to(x.dtype).expand(x.shape[0], 1, -1)
        x = torch.cat([cls, x], dim=1) + self.positional_embedding.to(x.dtype)
        x = self.transformer(self.ln_pre(x))
        return self.ln_post(x[:, 0]) @ self.proj           # the class token


class CLIP(nn.Module):
    """OpenAI's CLIP ViT-B/32 with open_clip's module names: ``encode_image`` float32
    ``(n, 3, 224, 224)`` -> ``(n, 512)``, ``encode_text`` int64 tokens ``(n, 77)`` ->
    ``(n, 512)``; ``normalize=True`` divides each row by its L2 norm."""

    def __init__(self, embed_dim: int = 512, context_length: int = CLIP_CONTEXT,
                 vocab_size: int = 49408, width: int = 512, heads: int = 8, layers: int = 12):
        super().__init__()
        self.visual = VisionTransformer(output_dim=embed_dim)
        self.transformer = Transformer(width, layers, heads)
        self.token_embedding = nn.Embedding(vocab_size, width)
        self.positional_embedding = nn.Parameter(torch.empty(context_length, width))
        self.ln_final = nn.LayerNorm(width)
        self.text_projection = nn.Parameter(torch.empty(width, embed_dim))
        self.logit_scale = nn.Parameter(torch.ones([]) * torch.log(torch.tensor(1 / 0.07)))
        mask = torch.full((context_length, context_length), float("-inf")).triu_(1)
        self.register_buffer("attn_mask", mask, persistent=False)  # causal, as open_clip's
        nn.init.normal_(self.token_embedding.weight, std=0.02)
        nn.init.normal_(self.positional_embedding, std=0.01)
        nn.init.normal_(self.text_projection, std=width ** -0.5)

    def encode_image(self, image: torch.Tensor, normalize: bool = False) -> torch.Tensor:
        x = self.visual(image)
        return F.normalize(x, dim=-1) if normalize else x

    def encode_text(self, text: torch.Tensor, normalize: bool = False) -> torch.Tensor:
        x = self.token_embedding(text) + self.positional_embedding
        x = self.ln_final(self.transformer(x, attn_mask=self.attn_mask))
        # The end-of-text token has the largest id: its position pools the sequence.
        x = x[torch.arange(x.shape[0], device=x.device), text.argmax(dim=-1)]
        x = x @ self.text_projection
        return F.normalize(x, dim=-1) if normalize else x


# ---- building ------------------------------------------------------------------------------
@functools.cache
def _quiet_import(name: str) -> Any | None:
    """The module ``name``, or None when it is absent or fails to import (torchvision beside a
    torch it was not built for raises RuntimeError, not ImportError)."""
    if importlib.util.find_spec(name) is None:
        return None
    try:
        return importlib.import_module(name)
    except Exception:  # any import failure means "not usable here"
        sys.modules.pop(name, None)
        return None


def build(extractor: str) -> tuple[nn.Module, str]:
    """A fresh network for ``extractor`` and the name of the code that built it
    (``"torchvision.models.vgg19"``, ``"open_clip ViT-B-32-quickgelu"`` or this module's class);
    the weights are random (torch's current seed) until :func:`load_weights`."""
    if extractor == "vgg19-fc7":
        if os.environ.get("MMHASH_PLAIN_MODELS") != "1":
            torchvision = _quiet_import("torchvision")
            if torchvision is not None:
                return torchvision.models.vgg19(weights=None), "torchvision.models.vgg19"
        return VGG19(), "mmhash.extract.models.VGG19"
    if extractor == "clip-vit-b32":
        if os.environ.get("MMHASH_PLAIN_MODELS") != "1":
            open_clip = _quiet_import("open_clip")
            if open_clip is not None:
                model = open_clip.create_model("ViT-B-32-quickgelu", pretrained=None)
                return model, "open_clip ViT-B-32-quickgelu"
        return CLIP(), "mmhash.extract.models.CLIP"
    raise ValueError(extractor)


# ---- weights -------------------------------------------------------------------------------
def torch_hub_checkpoints() -> Path:
    """torchvision's weights folder: ``$TORCH_HOME/hub/checkpoints`` (``torch.hub.get_dir``)."""
    return Path(torch.hub.get_dir()) / "checkpoints"


def hf_hub_cache() -> Path:
    """Hugging Face's cache folder (``$HF_HUB_CACHE``, ``$HF_HOME/hub``,
    ``~/.cache/huggingface/hub``), where open_clip's downloads land."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"])
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]) / "hub"
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache) / "huggingface" / "hub"


def clip_cache_dir() -> Path:
    """OpenAI's ``clip`` package's download folder, ``~/.cache/clip``."""
    return Path.home() / ".cache" / "clip"


def cached_weights(extractor: str) -> Path | None:
    """The weights file of ``extractor`` in its library's cache, or None. Nothing is fetched."""
    if extractor == "vgg19-fc7":
        path = torch_hub_checkpoints() / VGG19_FILE
        return path if path.is_file() else None
    repo = hf_hub_cache() / ("models--" + CLIP_HF_REPO.replace("/", "--")) / "snapshots"
    if repo.is_dir():
        for name in CLIP_HF_FILES:
            for path in sorted(repo.glob(f"*/{name}")):
                if path.is_file():
                    return path
    path = clip_cache_dir() / CLIP_OPENAI_FILE
    return path if path.is_file() else None


def missing_weights_message(extractor: str) -> str:
    """One line: no weights for ``extractor``, and where to put them."""
    if extractor == "vgg19-fc7":
        return (f"no weights for vgg19-fc7: put torchvision's {VGG19_FILE} at "
                f"{torch_hub_checkpoints() / VGG19_FILE} or pass --weights FILE "
                f"(mmhash never downloads)")
    snapshot = (hf_hub_cache() / ("models--" + CLIP_HF_REPO.replace("/", "--")) / "snapshots"
                / "main")
    return (f"no weights for clip-vit-b32: put OpenAI's {CLIP_OPENAI_FILE} at "
            f"{clip_cache_dir() / CLIP_OPENAI_FILE}, or open_clip's {CLIP_HF_FILES[1]} "
            f"(Hugging Face {CLIP_HF_REPO}) at {snapshot / CLIP_HF_FILES[1]}, or pass "
            f"--weights FILE (mmhash never downloads)")


def find_weights(extractor: str, weights: str | os.PathLike | None) -> Path:
    """``weights`` if given (it must exist), else the cached file; :class:`DataError` with
    :func:`missing_weights_message` when there is none."""
    if weights is not None:
        path = Path(weights)
        if not path.is_file():
            raise DataError(f"weights file not found: {path}")
        return path
    found = cached_weights(extractor)
    if found is None:
        raise DataError(missing_weights_message(extractor))
    return found


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """The tensors of a weights file: safetensors, a pickle-free torch state dict (optionally
    under ``"state_dict"``), or a TorchScript archive (OpenAI's ``ViT-B-32.pt``)."""
    path = Path(path)
    if path.suffix.lower() == ".safetensors":
        return _read_safetensors(path)
    try:
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as first:  # try the TorchScript reading next
        try:
            loaded = torch.jit.load(str(path), map_location="cpu").state_dict()
        except Exception:
            raise DataError(f"{path}: not a readable weights file (a torch state dict, "
                            f".safetensors or TorchScript archive): "
                            f"{type(first).__name__}") from None
    if isinstance(loaded, dict) and isinstance(loaded.get("state_dict"), dict):
        loaded = loaded["state_dict"]
    if not isinstance(loaded, dict) or not all(isinstance(v, torch.Tensor)
                                               for v in loaded.values()):
        raise DataError(f"{path}: not a state dict of tensors")
    return {k: v for k, v in loaded.items() if k not in _OPENAI_EXTRA_KEYS}


_SAFETENSORS_DTYPES = {"F64": torch.float64, "F32": torch.float32, "F16": torch.float16,
                       "BF16": torch.bfloat16, "I64": torch.int64, "I32": torch.int32,
                       "I16": torch.int16, "I8": torch.int8, "U8": torch.uint8,
                       "BOOL": torch.bool}


def _read_safetensors(path: Path) -> dict[str, torch.Tensor]:
    """A ``.safetensors`` file: u64 little-endian header length, JSON header
    ``{name: {dtype, shape, data_offsets}}``, then the raw little-endian bytes."""
    try:
        with path.open("rb") as fh:
            (length,) = struct.unpack("<Q", fh.read(8))
            header = json.loads(fh.read(length))
            data = bytearray(fh.read())
        out = {}
        for name, info in header.items():
            if name == "__metadata__":
                continue
            start, stop = info["data_offsets"]
            dtype = _SAFETENSORS_DTYPES[info["dtype"]]
            flat = torch.frombuffer(data, dtype=dtype, count=(stop - start) // dtype.itemsize,
                                    offset=start) if stop > start else torch.empty(0, dtype=dtype)
            out[name] = flat.reshape(info["shape"]).clone()
        return out
    except (OSError, ValueError, KeyError, struct.error, RuntimeError) as exc:
        raise DataError(f"{path}: not a readable .safetensors file ({exc})") from None


def load_weights(model: nn.Module, path: Path, extractor: str) -> None:
    """Load ``path`` into ``model`` with ``strict=True``; a mismatch is one
    :class:`DataError` naming a few missing and unexpected keys."""
    state = read_state_dict(path)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        expected = set(model.state_dict())
        missing = sorted(expected - set(state))[:3]
        unexpected = sorted(set(state) - expected)[:3]
        detail = (f"missing {', '.join(missing) or '-'}; unexpected {', '.join(unexpected) or '-'}"
                  if missing or unexpected else str(exc).strip().splitlines()[-1].strip())
        raise DataError(f"{path}: not {extractor} weights ({detail})") from None


# ---- CLIP's tokenizer ----------------------------------------------------------------------
def clip_tokenizer() -> Any:
    """open_clip's BPE tokenizer (``SimpleTokenizer``, context 77, lower-cased, cleaned with
    ftfy): ``tokenizer(list of str)`` -> int64 ``(n, 77)``.

    ``open_clip/tokenizer.py`` imports neither torchvision nor the rest of open_clip, so when
    ``import open_clip`` fails (no usable torchvision) the file is loaded on its own. Without
    open_clip installed there is no tokenizer and :class:`DataError` says how to install it
    (``pip install --no-deps open_clip_torch``: its dependency on torchvision would install a
    wheel that cannot load beside CPU torch)."""
    with contextlib.suppress(Exception):
        from open_clip.tokenizer import SimpleTokenizer

        return SimpleTokenizer(context_length=CLIP_CONTEXT)
    spec = importlib.util.find_spec("open_clip")
    origin = spec and spec.submodule_search_locations
    path = Path(list(origin)[0]) / "tokenizer.py" if origin else None
    if path is None or not path.is_file():
        raise DataError("clip-vit-b32 on texts needs open_clip's tokenizer: pip install "
                        "--no-deps open_clip_torch ftfy regex wcwidth")
    module_spec = importlib.util.spec_from_file_location("_mmhash_open_clip_tokenizer", path)
    module = importlib.util.module_from_spec(module_spec)
    try:
        module_spec.loader.exec_module(module)
    except ImportError as exc:
        raise DataError(f"clip-vit-b32 on texts: open_clip's tokenizer needs {exc.name}: pip "
                        f"install ftfy regex wcwidth") from None
    return module.SimpleTokenizer(context_length=CLIP_CONTEXT)

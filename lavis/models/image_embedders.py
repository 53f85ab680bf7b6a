"""Image embedders: RGB frames in, L2-normalised vectors out.

Negative mining (is this frame too like a positive?) and the ``sim_m`` metric (did the selector
find a frame like the true one?) both compare frames by cosine similarity under one of these:

- ``dinov2``: ``transformers`` ``Dinov2Model`` from a local folder, CLS token (the metric's
  definition; ``facebook/dinov2-large`` by default in the configs);
- ``clip``: the image tower of a local ``CLIPModel`` folder;
- ``pixels``: a mean-centred 16 x 16 thumbnail (Pearson correlation of thumbnails), needing no
  weights; for synthetic data, and for machines without the models.

Each is built from a spec ``{"name": ..., **kwargs}`` with ``build_embedder``. Frames are
resized whole to a square (no crop): a centre crop would hide half of a 16:9 dashcam frame.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from lavis.common.dist import resolve_device
from lavis.common.registry import registry

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def require_model_dir(path: str | None, key: str, example: str) -> Path:
    """The folder of a local ``transformers`` model, or an error naming the key and the remedy."""
    if not path or not (Path(path) / "config.json").is_file():
        raise FileNotFoundError(
            f"no model folder at {path!r} (set by '{key}'; it needs config.json and the weights). "
            f"Models are never downloaded: on a machine with internet access run "
            f"`huggingface-cli download {example} --local-dir <folder>` and point '{key}' at it"
        )
    return Path(path)


def image_statistics(folder: Path, default_mean, default_std) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """``image_mean`` / ``image_std`` from the folder's ``preprocessor_config.json`` if it has one."""
    config = folder / "preprocessor_config.json"
    if config.is_file():
        values = json.loads(config.read_text(encoding="utf-8"))
        return tuple(values.get("image_mean", default_mean)), tuple(values.get("image_std", default_std))
    return tuple(default_mean), tuple(default_std)


def to_pixels(frames: np.ndarray | torch.Tensor, size: int, mean, std) -> torch.Tensor:
    """``(N, H, W, 3)`` uint8 -> ``(N, 3, size, size)`` normalised float, each frame resized whole."""
    x = torch.as_tensor(np.asarray(frames)).permute(0, 3, 1, 2).float().div_(255.0)
    x = F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    mean_t = torch.tensor(mean, dtype=x.dtype).view(1, 3, 1, 1)
    std_t = torch.tensor(std, dtype=x.dtype).view(1, 3, 1, 1)
    return (x - mean_t) / std_t


class ImageEmbedder:
    """``embedder(frames)`` -> ``(N, D)`` float32 CPU tensor of unit vectors."""

    batch_size: int = 32

    def __call__(self, frames: np.ndarray | torch.Tensor) -> torch.Tensor:
        if len(frames) == 0:
            raise ValueError("no frames to embed")
        parts = [self.embed_batch(frames[i : i + self.batch_size]) for i in range(0, len(frames), self.batch_size)]
        return F.normalize(torch.cat(parts).float().cpu(), dim=-1)

    def embed_batch(self, frames: np.ndarray | torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def to(self, device: str | torch.device) -> ImageEmbedder:
        """Move the embedding model (if any) to ``device``."""
        model = getattr(self, "model", None)
        if model is not None:
            self.device = torch.device(device)
            model.to(self.device)
        return self


@registry.register("embedder", "pixels")
class PixelEmbedder(ImageEmbedder):
    """A ``size`` x ``size`` RGB thumbnail minus its mean: cosine = Pearson correlation."""

    def __init__(self, size: int = 16) -> None:
        self.size = size

    def embed_batch(self, frames: np.ndarray | torch.Tensor) -> torch.Tensor:
        x = to_pixels(frames, self.size, (0.0, 0.0, 0.0), (1.0, 1.0, 1.0)).flatten(1)
        return x - x.mean(dim=1, keepdim=True)


@registry.register("embedder", "dinov2")
class Dinov2Embedder(ImageEmbedder):
    """DINOv2's CLS token (after its final layer norm) from a local ``Dinov2Model`` folder."""

    def __init__(self, path: str | None = None, image_size: int = 224, batch_size: int = 32, device: str = "auto") -> None:
        from transformers import Dinov2Model

        folder = require_model_dir(path, "embedder.path", "facebook/dinov2-large")
        self.device = resolve_device(device)
        self.model = Dinov2Model.from_pretrained(folder).to(self.device).eval()
        self.mean, self.std = image_statistics(folder, IMAGENET_MEAN, IMAGENET_STD)
        self.image_size, self.batch_size = image_size, batch_size

    @torch.no_grad()
    def embed_batch(self, frames: np.ndarray | torch.Tensor) -> torch.Tensor:
        pixels = to_pixels(frames, self.image_size, self.mean, self.std).to(self.device)
        return self.model(pixel_values=pixels).pooler_output


@registry.register("embedder", "clip")
class ClipImageEmbedder(ImageEmbedder):
    """The projected image embedding of a local ``CLIPModel`` folder."""

    def __init__(self, path: str | None = None, image_size: int | None = None, batch_size: int = 32, device: str = "auto") -> None:
        from transformers import CLIPModel

        from lavis.models.clip_frame_selector.frames import CLIP_MEAN, CLIP_STD

        folder = require_model_dir(path, "embedder.path", "openai/clip-vit-large-patch14")
        self.device = resolve_device(device)
        self.model = CLIPModel.from_pretrained(folder).to(self.device).eval()
        self.mean, self.std = image_statistics(folder, CLIP_MEAN, CLIP_STD)
        self.image_size = image_size or self.model.config.vision_config.image_size
        self.batch_size = batch_size

    @torch.no_grad()
    def embed_batch(self, frames: np.ndarray | torch.Tensor) -> torch.Tensor:
        pixels = to_pixels(frames, self.image_size, self.mean, self.std).to(self.device)
        return self.model.get_image_features(pixel_values=pixels).pooler_output


def build_embedder(spec: dict[str, Any]) -> ImageEmbedder:
    """``{"name": "dinov2", "path": ...}`` -> the embedder (unknown names list the known ones)."""
    spec = dict(spec)
    if "name" not in spec:
        raise ValueError(f"an embedder spec needs a 'name' ({', '.join(registry.names('embedder'))}), got {spec}")
    return registry.get("embedder", spec.pop("name"))(**spec)

"""``object_detection``: open-vocabulary boxes on key frames with Grounding DINO.

``AutoModelForZeroShotObjectDetection`` and its processor from a local folder
(``IDEA-Research/grounding-dino-base`` by default), prompted with the clip's own tags (the field
``labels_from``, e.g. ``objects`` from the ``tagging`` stage) or else a configured label list,
as Grounding DINO expects: ``"a car. a person."``. Per key frame: its time, and the labels,
scores and ``[x0, y0, x1, y1]`` pixel boxes above ``box_threshold`` / ``text_threshold``. With
``sam_path`` each box is refined to a mask by SAM (``SamModel``), stored as COCO's uncompressed
run-length encoding (``{"size": [h, w], "counts": [...]}``, column-major) with its area.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from lavis.common.registry import registry
from lavis.datasets.video import VideoInfo, fit_within
from lavis.models.image_embedders import require_model_dir
from lavis.pipeline.stages.base import Clip, Stage, uniform_indices


def mask_to_rle(mask: np.ndarray) -> dict[str, list[int]]:
    """COCO uncompressed RLE of a boolean ``(H, W)`` mask: run lengths in column-major order,
    starting with a run of zeros (possibly empty)."""
    flat = np.asarray(mask, dtype=bool).ravel(order="F")
    if flat.size == 0:
        return {"size": list(mask.shape), "counts": []}
    edges = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    runs = np.diff(np.concatenate([[0], edges, [flat.size]])).tolist()
    return {"size": list(mask.shape), "counts": ([0] if flat[0] else []) + runs}


def grounding_prompt(labels: list[str]) -> str:
    """Grounding DINO's text format: lower-case phrases, each ended by a period."""
    return " ".join(f"{label.strip().lower().rstrip('.')}." for label in labels if label.strip())


@registry.register("stage", "object_detection")
class ObjectDetectionStage(Stage):
    name = "object_detection"

    def __init__(self, path: str | None = None, labels: list[str] | None = None, labels_from: str | None = "objects",
                 num_frames: int = 1, box_threshold: float = 0.35, text_threshold: float = 0.25,
                 max_side: int | None = 800, sam_path: str | None = None, output_key: str = "detections") -> None:
        """``labels_from``: an earlier stage's list field to prompt with (falls back to ``labels``);
        ``sam_path``: a local SAM folder (``facebook/sam-vit-base``) to refine boxes into masks."""
        self.path, self.labels, self.labels_from, self.sam_path = path, list(labels or []), labels_from, sam_path
        self.num_frames, self.max_side, self.output_key = num_frames, max_side, output_key
        self.box_threshold, self.text_threshold = box_threshold, text_threshold

    def select_frames(self, info: VideoInfo) -> list[int]:
        return uniform_indices(info, self.num_frames)

    def setup(self, device: torch.device, tp_mesh: Any = None) -> None:
        from transformers import AutoModelForZeroShotObjectDetection, AutoProcessor

        folder = require_model_dir(self.path, "object_detection.path", "IDEA-Research/grounding-dino-base")
        self.processor = AutoProcessor.from_pretrained(folder, local_files_only=True)
        self.model = AutoModelForZeroShotObjectDetection.from_pretrained(folder, local_files_only=True).to(device).eval()
        self.device = device
        if self.sam_path is not None:
            from transformers import SamModel, SamProcessor

            sam = require_model_dir(self.sam_path, "object_detection.sam_path", "facebook/sam-vit-base")
            self.sam_processor = SamProcessor.from_pretrained(sam, local_files_only=True)
            self.sam = SamModel.from_pretrained(sam, local_files_only=True).to(device).eval()

    @torch.no_grad()
    def segment(self, frame: np.ndarray, boxes: list[list[float]]) -> list[np.ndarray]:
        """One boolean ``(H, W)`` mask per box (SAM's single-mask output)."""
        inputs = self.sam_processor(images=[frame], input_boxes=[boxes], return_tensors="pt").to(self.device)
        outputs = self.sam(**inputs, multimask_output=False)
        masks = self.sam_processor.post_process_masks(
            outputs.pred_masks.cpu(), inputs["original_sizes"].cpu(), inputs["reshaped_input_sizes"].cpu())[0]
        return [m[0].numpy() for m in masks]

    def clip_labels(self, clip: Clip) -> list[str]:
        tags = clip.fields.get(self.labels_from) if self.labels_from else None
        return [str(t) for t in tags] if isinstance(tags, list) and tags else self.labels

    @torch.no_grad()
    def detect(self, frames: list[np.ndarray], prompt: str) -> list[dict[str, list]]:
        """Boxes in the given frames' own pixel coordinates."""
        small = [fit_within(f, self.max_side) for f in frames]
        inputs = self.processor(images=small, text=[prompt] * len(small), return_tensors="pt", padding=True).to(self.device)
        outputs = self.model(**inputs)
        results = self.processor.post_process_grounded_object_detection(
            outputs, inputs["input_ids"], threshold=self.box_threshold, text_threshold=self.text_threshold,
            target_sizes=[f.shape[:2] for f in frames],
        )
        return [{
            "labels": list(r.get("text_labels", r["labels"])),
            "scores": [round(float(s), 4) for s in r["scores"]],
            "boxes": [[round(float(v), 1) for v in box] for box in r["boxes"]],
        } for r in results]

    def process(self, clips: list[Clip]) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for clip in clips:
            labels = self.clip_labels(clip)
            if not labels:
                out.append({"error": f"no labels to look for: set 'labels' or run a stage that writes '{self.labels_from}'"})
                continue
            frames = list(clip.frames[self.name])
            found = self.detect(frames, grounding_prompt(labels))
            if self.sam_path is not None:
                for frame, detections in zip(frames, found):
                    masks = self.segment(frame, detections["boxes"]) if detections["boxes"] else []
                    detections["masks"] = [mask_to_rle(m) for m in masks]
                    detections["mask_areas"] = [int(m.sum()) for m in masks]
            times = clip.frame_times[self.name]
            out.append({self.output_key: [{"time": round(t, 3), **d} for t, d in zip(times, found)]})
        return out

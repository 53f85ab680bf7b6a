"""Resizing frames to a square model input: keep the aspect ratio unless told otherwise.

``shorter`` (default): scale the short side to ``size``, then center-crop the long side.
``pad``: scale the long side to ``size``, then pad the short side with black (nothing is cut).
``stretch``: scale both sides to ``size`` (distorts the aspect ratio, as LAVIS's loaders did).
"""

from __future__ import annotations

from typing import Literal

import cv2
import numpy as np

ResizeMode = Literal["shorter", "pad", "stretch"]


def scaled_size(width: int, height: int, size: int, mode: ResizeMode) -> tuple[int, int]:
    """The (width, height) to scale a frame to before cropping or padding."""
    if mode == "stretch":
        return size, size
    scale = size / (min(width, height) if mode == "shorter" else max(width, height))
    return max(1, round(width * scale)), max(1, round(height * scale))


def crop_or_pad(frame: np.ndarray, size: int, mode: ResizeMode) -> np.ndarray:
    """Center-crop (``shorter``) or center-pad (``pad``) an already scaled ``(H, W, 3)`` frame."""
    h, w = frame.shape[:2]
    if mode == "shorter":
        top, left = (h - size) // 2, (w - size) // 2
        return frame[top : top + size, left : left + size]
    if mode == "pad":
        out = np.zeros((size, size, frame.shape[2]), dtype=frame.dtype)
        top, left = (size - h) // 2, (size - w) // 2
        out[top : top + h, left : left + w] = frame
        return out
    return frame


def resize_frames(frames: np.ndarray, size: int, mode: ResizeMode = "shorter") -> np.ndarray:
    """``(T, H, W, 3)`` uint8 -> ``(T, size, size, 3)`` uint8 (area filter when shrinking)."""
    if frames.shape[1] == size and frames.shape[2] == size:
        return frames
    w, h = scaled_size(frames.shape[2], frames.shape[1], size, mode)
    shrink = w < frames.shape[2]
    interp = cv2.INTER_AREA if shrink else cv2.INTER_LINEAR
    return np.stack([crop_or_pad(cv2.resize(f, (w, h), interpolation=interp), size, mode) for f in frames])


def fit_within(frame: np.ndarray, max_side: int | None) -> np.ndarray:
    """Shrink one ``(H, W, 3)`` frame so its long side is at most ``max_side`` (aspect kept)."""
    h, w = frame.shape[:2]
    if max_side is None or max(h, w) <= max_side:
        return frame
    scale = max_side / max(h, w)
    return cv2.resize(frame, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)

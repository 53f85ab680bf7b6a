"""Drawing a scene's frames as RGB arrays (numpy for the background, PIL for the shapes)."""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np
from PIL import Image, ImageDraw

from lavis.datasets.synthetic.scenes import BACKGROUNDS, COLOURS, Scene, object_state

TEXTURE_AMPLITUDE = 12.0  # grey levels; light enough that colours stay recognisable
STAR_INNER = 0.45  # inner/outer radius ratio of the five-pointed star
SQUARE_HALF = 0.84  # half side of the square per unit radius, so it looks as big as the circle
DIAMOND_HALF_WIDTH = 0.75
POINTY_SCALE = 1.15  # triangle and star reach further out so their area is not much smaller


def background(scene: Scene, size: int) -> np.ndarray:
    """The static background: a plain colour, optionally with smooth low-contrast texture.

    The texture is smooth (no per-pixel noise) so it costs the encoder little and never
    resembles an object colour.
    """
    base = np.asarray(BACKGROUNDS[scene.background], dtype=np.float32)
    rng = np.random.default_rng(scene.texture_seed)
    if scene.texture == "plain":
        shade = np.zeros((size, size), dtype=np.float32)
    elif scene.texture == "blotchy":
        coarse = rng.uniform(-1.0, 1.0, size=(5, 5)).astype(np.float32)
        shade = np.asarray(Image.fromarray(coarse).resize((size, size), Image.Resampling.BILINEAR))
    elif scene.texture == "gradient":
        angle = rng.uniform(0.0, 2.0 * math.pi)
        ramp = np.linspace(-1.0, 1.0, size, dtype=np.float32)
        shade = math.cos(angle) * ramp[None, :] + math.sin(angle) * ramp[:, None]
        shade /= max(abs(math.cos(angle)) + abs(math.sin(angle)), 1e-6)
    else:
        raise ValueError(f"unknown texture {scene.texture!r}")
    pixels = base[None, None, :] + TEXTURE_AMPLITUDE * shade[:, :, None]
    return np.clip(np.rint(pixels), 0, 255).astype(np.uint8)


def shape_polygon(shape: str, x: float, y: float, radius: float) -> list[tuple[float, float]]:
    """Vertices (pixels) of a polygonal shape centred on (x, y); the circle is drawn separately."""
    if shape == "square":
        h = SQUARE_HALF * radius
        return [(x - h, y - h), (x + h, y - h), (x + h, y + h), (x - h, y + h)]
    if shape == "diamond":
        w = DIAMOND_HALF_WIDTH * radius
        return [(x, y - radius), (x + w, y), (x, y + radius), (x - w, y)]
    if shape == "triangle":
        # Pointing up, centred on its centroid.
        r = POINTY_SCALE * radius
        return [(x + r * math.sin(a), y - r * math.cos(a)) for a in (0.0, 2 * math.pi / 3, 4 * math.pi / 3)]
    if shape == "star":
        points = []
        for k in range(10):
            r = POINTY_SCALE * radius * (1.0 if k % 2 == 0 else STAR_INNER)
            a = k * math.pi / 5
            points.append((x + r * math.sin(a), y - r * math.cos(a)))
        return points
    raise ValueError(f"unknown shape {shape!r}")


def render_frame(scene: Scene, frame: int, size: int, base: np.ndarray) -> np.ndarray:
    """One ``size`` x ``size`` RGB frame drawn over a copy of the precomputed ``base``."""
    image = Image.fromarray(base.copy())
    draw = ImageDraw.Draw(image)
    for obj in scene.objects:
        state = object_state(obj, frame, scene.num_frames)
        if not state.visible:
            continue
        x, y, r = state.x * size, state.y * size, state.radius * size
        fill = COLOURS[state.colour]
        if obj.shape == "circle":
            draw.ellipse([x - r, y - r, x + r, y + r], fill=fill)
        else:
            draw.polygon(shape_polygon(obj.shape, x, y, r), fill=fill)
    return np.asarray(image)


def render_frames(scene: Scene, size: int) -> Iterator[np.ndarray]:
    """Every frame of the scene in order, as ``(size, size, 3)`` uint8 arrays."""
    base = background(scene, size)
    for frame in range(scene.num_frames):
        yield render_frame(scene, frame, size, base)

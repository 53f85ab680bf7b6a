"""Scene descriptions: what a synthetic video shows, sampled from a numpy Generator.

A scene is the single source of truth for a video: the renderer draws it, and captions and QA
are written from it, so no video ever has to be decoded to learn what is in it. Positions and
radii are fractions of the (square) frame side, so one scene renders at any size.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import numpy as np

SHAPES = ("circle", "square", "triangle", "star", "diamond")
COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (225, 35, 35),
    "orange": (250, 130, 10),
    "yellow": (245, 225, 40),
    "green": (40, 185, 60),
    "blue": (40, 80, 235),
    "purple": (150, 55, 205),
    "pink": (250, 130, 200),
    "white": (245, 245, 245),
}
BACKGROUNDS: dict[str, tuple[int, int, int]] = {
    "black": (15, 15, 15),
    "dark gray": (60, 60, 60),
    "gray": (125, 125, 125),
    "white": (235, 235, 235),
}
TEXTURES = ("plain", "blotchy", "gradient")
MOVES = {"move_left": (-1.0, 0.0), "move_right": (1.0, 0.0), "move_up": (0.0, -1.0), "move_down": (0.0, 1.0)}
EVENT_ACTIONS = ("appear", "disappear", "change_colour")
ACTIONS = (*MOVES, "grow", "shrink", *EVENT_ACTIONS, "still")

MIN_COLOUR_DISTANCE = 90.0  # RGB distance that keeps object colours apart after H.264 coding
EDGE_MARGIN = 0.02  # objects stay this far inside the frame
BOUND = 1.2  # a shape of radius r fits in a circle of radius BOUND * r (square corners)


@dataclass(frozen=True)
class ObjectSpec:
    """One object's whole life: its look, its path (start -> end) and its event frame if any."""

    shape: str
    colour: str
    action: str
    start: tuple[float, float]
    end: tuple[float, float]
    radius_start: float
    radius_end: float
    event_frame: int | None = None
    colour_to: str | None = None
    event_end: int | None = None  # QA scenes: the new state lasts until this frame, then reverts


@dataclass(frozen=True)
class ObjectState:
    """Where an object is and how it looks in one frame."""

    visible: bool
    x: float
    y: float
    radius: float
    colour: str


@dataclass(frozen=True)
class Scene:
    video_id: str
    num_frames: int
    fps: int
    background: str
    texture: str
    texture_seed: int
    objects: tuple[ObjectSpec, ...]

    @property
    def duration(self) -> float:
        return self.num_frames / self.fps

    def frame_time(self, frame: int) -> float:
        """Presentation time of a frame in seconds (frame i is shown at i / fps)."""
        return frame / self.fps

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def object_state(obj: ObjectSpec, frame: int, num_frames: int) -> ObjectState:
    """The object's state in ``frame``: paths and sizes change linearly over the whole video."""
    u = frame / max(num_frames - 1, 1)
    x = obj.start[0] + (obj.end[0] - obj.start[0]) * u
    y = obj.start[1] + (obj.end[1] - obj.start[1]) * u
    radius = obj.radius_start + (obj.radius_end - obj.radius_start) * u
    visible = True
    colour = obj.colour
    during = obj.event_frame is not None and frame >= obj.event_frame and (obj.event_end is None or frame < obj.event_end)
    if obj.action == "appear":
        visible = during
    elif obj.action == "disappear":
        visible = not during
    elif obj.action == "change_colour" and during:
        colour = obj.colour_to
    return ObjectState(visible, x, y, radius, colour)


def sample_scene(
    rng: np.random.Generator, video_id: str, num_frames: int, fps: int, event: bool = False
) -> Scene:
    """A random scene of one or two non-overlapping objects.

    With ``event`` (frame-selection scenes) the first object appears, disappears or changes
    colour at a known frame, only for a moment (``transient_frames``, like a sign passing a
    dashcam), and a second one moves across the frame meanwhile. So a question about "the"
    event has one answer, and only frames near the event look like it: picking frames at
    uniform times does not find it.
    """
    if num_frames < 4:
        raise ValueError(f"a scene needs at least 4 frames, got {num_frames}")
    background = str(rng.choice(list(BACKGROUNDS)))
    texture = str(rng.choice(TEXTURES))
    texture_seed = int(rng.integers(2**31))
    count = 2 if event else (1 if rng.random() < 0.5 else 2)
    for _ in range(1000):
        objects = _sample_objects(rng, count, background, num_frames, event)
        if count == 1 or not _overlap(objects, num_frames):
            return Scene(video_id, num_frames, fps, background, texture, texture_seed, tuple(objects))
    raise RuntimeError(f"could not place {count} non-overlapping objects for {video_id}")


def _sample_objects(
    rng: np.random.Generator, count: int, background: str, num_frames: int, event: bool
) -> list[ObjectSpec]:
    taken = [BACKGROUNDS[background]]
    objects = []
    for i in range(count):
        if event:
            action = str(rng.choice(EVENT_ACTIONS if i == 0 else list(MOVES)))
        else:
            action = str(rng.choice(ACTIONS))
        colour = _pick_colour(rng, taken)
        taken.append(COLOURS[colour])
        colour_to = None
        if action == "change_colour":
            colour_to = _pick_colour(rng, taken)
            taken.append(COLOURS[colour_to])
        shape = str(rng.choice(SHAPES))
        objects.append(_sample_geometry(rng, shape, colour, action, colour_to, count, num_frames, event))
    return objects


def _pick_colour(rng: np.random.Generator, taken: list[tuple[int, int, int]]) -> str:
    """A colour clearly distinct from the background and from every colour already used."""
    free = [
        name
        for name, rgb in COLOURS.items()
        if all(np.linalg.norm(np.subtract(rgb, other)) >= MIN_COLOUR_DISTANCE for other in taken)
    ]
    return str(rng.choice(free))


def _sample_geometry(
    rng: np.random.Generator,
    shape: str,
    colour: str,
    action: str,
    colour_to: str | None,
    count: int,
    num_frames: int,
    transient: bool = False,
) -> ObjectSpec:
    """Start/end positions and radii that keep the object fully inside the frame throughout."""
    radius = float(rng.uniform(0.15, 0.23) if count == 1 else rng.uniform(0.12, 0.16))
    radius_end = radius
    if action in ("grow", "shrink"):
        small = float(rng.uniform(0.08, 0.1))
        large = small * float(rng.uniform(1.9, 2.3))
        radius, radius_end = (small, large) if action == "grow" else (large, small)
    reach = max(radius, radius_end) * BOUND + EDGE_MARGIN
    x, y = (float(v) for v in rng.uniform(reach, 1.0 - reach, size=2))
    end = (x, y)
    if action in MOVES:
        dx, dy = MOVES[action]
        distance = float(rng.uniform(0.3, min(0.5, 1.0 - 2 * reach)))
        # Place the start so that the whole path lies between the margins.
        forward = dx + dy > 0
        lo, hi = (reach, 1.0 - reach - distance) if forward else (reach + distance, 1.0 - reach)
        along = float(rng.uniform(lo, hi))
        x, y = (along, y) if dx else (x, along)
        end = (x + dx * distance, y + dy * distance)
    event_frame = None
    if action in EVENT_ACTIONS:
        # Leave at least one frame before and two after the event.
        first, last = max(1, round(0.25 * num_frames)), max(2, round(0.65 * num_frames))
        event_frame = min(int(rng.integers(first, last + 1)), num_frames - 2)
    event_end = min(event_frame + transient_frames(num_frames), num_frames) if event_frame is not None and transient else None
    return ObjectSpec(shape, colour, action, (x, y), end, radius, radius_end, event_frame, colour_to, event_end)


def transient_frames(num_frames: int) -> int:
    """How long a frame-selection event's new state lasts: a tenth of the video, at least 3 frames."""
    return max(3, round(0.1 * num_frames))


def _overlap(objects: list[ObjectSpec], num_frames: int) -> bool:
    """Whether two objects ever touch (checked frame by frame, with a small gap)."""
    a, b = objects
    for frame in range(num_frames):
        sa, sb = object_state(a, frame, num_frames), object_state(b, frame, num_frames)
        if sa.visible and sb.visible:
            gap = np.hypot(sa.x - sb.x, sa.y - sb.y) - BOUND * (sa.radius + sb.radius)
            if gap < 0.04:
                return True
    return False

"""Frame-selection questions (RoadBuddy layout) about an event whose frame the scene fixes.

Each question is about the scene's one event (an object appears, disappears or changes colour
at ``event_frame``). ``support_frames`` are the times of the first frames that show the new
state, so a frame selector can be scored against them exactly.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from lavis.datasets.synthetic.scenes import COLOURS, EVENT_ACTIONS, SHAPES, ObjectSpec, Scene

NUM_CHOICES = 4
SUPPORT_FRAMES = 2  # frames from the event on that count as showing it
LABELS = "ABCD"


def event_object(scene: Scene) -> ObjectSpec:
    """The scene's event object (QA scenes are sampled with exactly one)."""
    events = [obj for obj in scene.objects if obj.action in EVENT_ACTIONS]
    if len(events) != 1:
        raise ValueError(f"{scene.video_id}: a QA scene needs exactly one event object, has {len(events)}")
    return events[0]


def support_times(scene: Scene, obj: ObjectSpec) -> list[float]:
    """Times (seconds) of the first frames after the event, within the video."""
    last = min(obj.event_frame + SUPPORT_FRAMES, scene.num_frames)
    return [round(scene.frame_time(frame), 6) for frame in range(obj.event_frame, last)]


def make_question(scene: Scene, rng: np.random.Generator, video_path: str) -> dict[str, Any]:
    """One multiple-choice question about the scene's event; the answer is one of the choices."""
    obj = event_object(scene)
    if rng.random() < 0.5:
        question, answer, distractors = _when_question(scene, obj, rng)
    elif obj.action == "change_colour":
        question, answer, distractors = _new_colour_question(obj, rng)
    else:
        question, answer, distractors = _which_shape_question(scene, obj, rng)
    options = [answer, *distractors[: NUM_CHOICES - 1]]
    order = rng.permutation(NUM_CHOICES)
    choices = [f"{LABELS[i]}. {options[j]}" for i, j in enumerate(order)]
    return {
        "id": scene.video_id,
        "question": question,
        "choices": choices,
        "answer": choices[int(np.flatnonzero(order == 0)[0])],
        "support_frames": support_times(scene, obj),
        "video_path": video_path,
    }


def _when_question(scene: Scene, obj: ObjectSpec, rng: np.random.Generator) -> tuple[str, str, list[str]]:
    if obj.action == "change_colour":
        question = f"When does the {obj.colour} {obj.shape} turn {obj.colour_to}?"
    else:
        question = f"When does the {obj.colour} {obj.shape} {obj.action}?"
    answer = _at_time(scene.frame_time(obj.event_frame))
    # Distractor frames at least a tenth of the video away from the event and from each other.
    gap = scene.duration / 10
    chosen = [scene.frame_time(obj.event_frame)]
    distractors: list[str] = []
    for frame in rng.permutation(scene.num_frames):
        t = scene.frame_time(int(frame))
        text = _at_time(t)
        if all(abs(t - c) >= gap for c in chosen) and text not in distractors and text != answer:
            chosen.append(t)
            distractors.append(text)
    if len(distractors) < NUM_CHOICES - 1:
        raise ValueError(f"{scene.video_id}: {scene.num_frames} frames are too few for {NUM_CHOICES} choices")
    return question, answer, distractors


def _new_colour_question(obj: ObjectSpec, rng: np.random.Generator) -> tuple[str, str, list[str]]:
    question = f"What color does the {obj.colour} {obj.shape} turn into?"
    others = [c for c in COLOURS if c not in (obj.colour, obj.colour_to)]
    return question, obj.colour_to, [others[i] for i in rng.permutation(len(others))]


def _which_shape_question(
    scene: Scene, obj: ObjectSpec, rng: np.random.Generator
) -> tuple[str, str, list[str]]:
    question = f"Which shape {obj.action}s during the video?"
    present = {o.shape for o in scene.objects}
    others = [s for s in SHAPES if s not in present]
    return question, obj.shape, [others[i] for i in rng.permutation(len(others))]


def _at_time(seconds: float) -> str:
    """'at 1.2 seconds': up to two decimals, no trailing zeros."""
    text = f"{seconds:.2f}".rstrip("0").rstrip(".")
    return f"at {text} second" if text == "1" else f"at {text} seconds"

"""Reference captions written from a scene: varied templates and synonyms, all true of the video.

Real caption sets (MSR-VTT, MSVD) describe one clip with different words; CIDEr rewards the
n-grams annotators agree on. Mixing synonyms for shapes, verbs and directions keeps that
behaviour, while every phrase is chosen from what the scene description says happens.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypeVar

import numpy as np

from lavis.datasets.synthetic.scenes import EVENT_ACTIONS, MOVES, ObjectSpec, Scene

T = TypeVar("T")

CAPTIONS_PER_VIDEO = (5, 8)  # inclusive range
SMALL_RADIUS = 0.14  # at or below: may be called small (fraction of the frame side)
LARGE_RADIUS = 0.19  # at or above: may be called big

SHAPE_WORDS = {
    "circle": ("circle", "ball", "disc", "round shape"),
    "square": ("square", "box", "block", "square shape"),
    "triangle": ("triangle", "triangular shape", "triangle shape"),
    "star": ("star", "star shape", "five-pointed star"),
    "diamond": ("diamond", "rhombus", "diamond shape"),
}
COLOUR_WORDS = {
    "gray": ("gray", "grey"),
    "dark gray": ("dark gray", "dark grey", "charcoal"),
    "purple": ("purple", "violet"),
}
SIZE_WORDS = {"small": ("small", "little"), "big": ("big", "large")}

Forms = tuple[str, str, str]  # present, progressive, gerund: "moves", "is moving", "moving"

MOVE_VERBS: tuple[Forms, ...] = (
    ("moves", "is moving", "moving"),
    ("slides", "is sliding", "sliding"),
    ("travels", "is traveling", "traveling"),
    ("glides", "is gliding", "gliding"),
    ("drifts", "is drifting", "drifting"),
    ("goes", "is going", "going"),
)
DIRECTION_WORDS = {
    "move_left": ("left", "to the left", "leftward", "towards the left", "from right to left"),
    "move_right": ("right", "to the right", "rightward", "towards the right", "from left to right"),
    "move_up": ("up", "upward", "upwards", "towards the top", "from bottom to top"),
    "move_down": ("down", "downward", "downwards", "towards the bottom", "from top to bottom"),
}
# Verbs that already say the direction; they take no direction phrase.
DIRECTED_VERBS: dict[str, tuple[Forms, ...]] = {
    "move_up": (("rises", "is rising", "rising"), ("climbs up", "is climbing up", "climbing up")),
    "move_down": (
        ("falls", "is falling", "falling"),
        ("sinks", "is sinking", "sinking"),
        ("drops", "is dropping", "dropping"),
    ),
}
FIXED_PHRASES: dict[str, tuple[Forms, ...]] = {
    "grow": (
        ("grows", "is growing", "growing"),
        ("grows larger", "is growing larger", "growing larger"),
        ("gets bigger", "is getting bigger", "getting bigger"),
        ("expands", "is expanding", "expanding"),
        ("increases in size", "is increasing in size", "increasing in size"),
    ),
    "shrink": (
        ("shrinks", "is shrinking", "shrinking"),
        ("gets smaller", "is getting smaller", "getting smaller"),
        ("becomes smaller", "is becoming smaller", "becoming smaller"),
        ("contracts", "is contracting", "contracting"),
        ("decreases in size", "is decreasing in size", "decreasing in size"),
    ),
    # Sudden events read the same in the progressive slot ("a red star appears on ...").
    "appear": (
        ("appears", "appears", "appearing"),
        ("pops up", "pops up", "popping up"),
        ("shows up", "shows up", "showing up"),
        ("comes into view", "comes into view", "coming into view"),
        ("suddenly appears", "suddenly appears", "suddenly appearing"),
    ),
    "disappear": (
        ("disappears", "disappears", "disappearing"),
        ("vanishes", "vanishes", "vanishing"),
        ("goes away", "goes away", "going away"),
        ("disappears from view", "disappears from view", "disappearing from view"),
        ("suddenly vanishes", "suddenly vanishes", "suddenly vanishing"),
    ),
    "still": (
        ("stays still", "is staying still", "staying still"),
        ("does not move", "is not moving", "not moving"),
        ("sits still", "is sitting still", "sitting still"),
        ("stays in one place", "is staying in one place", "staying in one place"),
        ("rests in place", "is resting in place", "resting in place"),
    ),
}
CHANGE_TO: tuple[Forms, ...] = (
    ("turns {b}", "is turning {b}", "turning {b}"),
    ("becomes {b}", "is becoming {b}", "becoming {b}"),
    ("changes to {b}", "is changing to {b}", "changing to {b}"),
    ("changes color to {b}", "is changing color to {b}", "changing color to {b}"),
)
CHANGE_FROM_TO: tuple[Forms, ...] = (
    ("changes from {a} to {b}", "is changing from {a} to {b}", "changing from {a} to {b}"),
    ("turns from {a} to {b}", "is turning from {a} to {b}", "turning from {a} to {b}"),
    ("goes from {a} to {b}", "is going from {a} to {b}", "going from {a} to {b}"),
    ("changes color from {a} to {b}", "is changing color from {a} to {b}", "changing color from {a} to {b}"),
)
ONE_OBJECT = (
    "{a1} {pres1}",
    "{the1} {pres1}",
    "{a1} {prog1}",
    "{a1} {prog1} on {bg}",
    "{a1} {ger1} on {bg}",
    "{a1} {pres1} against {bg}",
    "there is {a1} {ger1}",
    "we see {a1} {ger1}",
    "a video of {a1} {ger1}",
    "an animation of {a1} {ger1} on {bg}",
    "on {bg} {a1} {pres1}",
)
TWO_OBJECTS = (
    "{a1} {pres1} while {a2} {pres2}",
    "{a1} {pres1} and {a2} {pres2}",
    "{a1} {pres1} as {a2} {pres2}",
    "{a1} {prog1} while {a2} {prog2}",
    "{a1} {ger1} and {a2} {ger2} on {bg}",
    "two shapes on {bg}: {a1} {ger1} and {a2} {ger2}",
    "there are two shapes, {a1} {ger1} and {a2} {ger2}",
    "we see {a1} {ger1} and {a2} {ger2}",
    "while {a2} {pres2}, {a1} {pres1}",
)
# Two sudden events happen at different frames, so they are joined by "and", never "while"/"as".
TWO_EVENTS = tuple(t for t in TWO_OBJECTS if "while" not in t and " as " not in t)


@dataclass(frozen=True)
class _Mention:
    """One way to refer to an object and say what it does."""

    noun: str  # without article: "small red ball"
    forms: Forms


def make_captions(scene: Scene, rng: np.random.Generator) -> list[str]:
    """Several distinct lower-case captions for the scene (count drawn from CAPTIONS_PER_VIDEO)."""
    wanted = int(rng.integers(CAPTIONS_PER_VIDEO[0], CAPTIONS_PER_VIDEO[1] + 1))
    if len(scene.objects) == 1:
        templates = ONE_OBJECT
    elif all(obj.action in EVENT_ACTIONS for obj in scene.objects):
        templates = TWO_EVENTS
    else:
        templates = TWO_OBJECTS
    captions: dict[str, None] = {}
    for _ in range(50 * wanted):
        if len(captions) == wanted:
            break
        captions.setdefault(_one_caption(scene, rng, templates), None)
    return list(captions)


def _one_caption(scene: Scene, rng: np.random.Generator, templates: tuple[str, ...]) -> str:
    objects = list(scene.objects)
    if len(objects) == 2 and rng.random() < 0.5:
        objects.reverse()
    fields = {"bg": _with_article(f"{_pick(rng, _colour_words(scene.background))} background")}
    for i, obj in enumerate(objects, start=1):
        mention = _mention(obj, rng, colour_required=len(objects) > 1)
        fields[f"a{i}"] = _with_article(mention.noun)
        fields[f"the{i}"] = f"the {mention.noun}"
        fields[f"pres{i}"], fields[f"prog{i}"], fields[f"ger{i}"] = mention.forms
    return _pick(rng, templates).format(**fields)


def _mention(obj: ObjectSpec, rng: np.random.Generator, colour_required: bool) -> _Mention:
    """A noun phrase and verb forms for the object; colour is dropped only when it is optional."""
    words = []
    size = _size_class(obj)
    if size and rng.random() < 0.3:
        words.append(_pick(rng, SIZE_WORDS[size]))
    colour = _pick(rng, _colour_words(obj.colour))
    if obj.action == "change_colour":
        # Either "a red ball turns blue" or "a ball turns from red to blue": the colour is said once.
        show_colour = rng.random() < 0.5
    else:
        show_colour = colour_required or rng.random() < 0.85
    if show_colour:
        words.append(colour)
    words.append(_pick(rng, SHAPE_WORDS[obj.shape]))
    return _Mention(" ".join(words), _verb_forms(obj, rng, colour_named=show_colour))


def _verb_forms(obj: ObjectSpec, rng: np.random.Generator, colour_named: bool) -> Forms:
    if obj.action in MOVES:
        directed = DIRECTED_VERBS.get(obj.action, ())
        if directed and rng.random() < 0.3:
            return _pick(rng, directed)
        verb = _pick(rng, MOVE_VERBS)
        direction = _pick(rng, DIRECTION_WORDS[obj.action])
        return tuple(f"{form} {direction}" for form in verb)  # type: ignore[return-value]
    if obj.action == "change_colour":
        a = _pick(rng, _colour_words(obj.colour))
        b = _pick(rng, _colour_words(obj.colour_to))
        choices = CHANGE_TO if colour_named else CHANGE_FROM_TO
        return tuple(form.format(a=a, b=b) for form in _pick(rng, choices))  # type: ignore[return-value]
    return _pick(rng, FIXED_PHRASES[obj.action])


def _size_class(obj: ObjectSpec) -> str | None:
    """'small' or 'big' for objects whose size does not change and is clearly one of the two."""
    if obj.radius_start != obj.radius_end:
        return None
    if obj.radius_start <= SMALL_RADIUS:
        return "small"
    if obj.radius_start >= LARGE_RADIUS:
        return "big"
    return None


def _colour_words(name: str) -> tuple[str, ...]:
    return COLOUR_WORDS.get(name, (name,))


def _with_article(noun_phrase: str) -> str:
    return f"{'an' if noun_phrase[0] in 'aeiou' else 'a'} {noun_phrase}"


def _pick(rng: np.random.Generator, options: Sequence[T]) -> T:
    """One element of ``options`` (rng.choice would turn tuples into arrays)."""
    return options[int(rng.integers(len(options)))]

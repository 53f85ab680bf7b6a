"""Synthetic MSR-VTT-like caption sets: 20 references per video and model-like candidates.

Metric cost depends on how many distinct n-grams there are and how they overlap, so the text
is built the way annotators write: each video has a topic (who, doing what, to what, where),
drawn with Zipf-like frequencies from a vocabulary of subjects, activities, objects and places;
its references say the topic in different words (synonyms, tenses, optional parts, extra
clauses, now and then something else entirely), with the casing and punctuation people type.
Candidates are lower-case, model-style sentences about the topic, sometimes wrong in a part.
Seeded: the same arguments give the same captions.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path

Subject = tuple[str, bool, tuple[str, ...]]  # phrase, plural?, synonyms another annotator might use
Activity = tuple[str, str, str, tuple[str, ...], tuple[str, ...]]  # -ing, 3rd person, plural; objects; places

SUBJECTS: list[Subject] = [
    ("a man", False, ("a guy", "a person", "someone", "a young man")),
    ("a woman", False, ("a lady", "a girl", "someone", "a person")),
    ("a girl", False, ("a young girl", "a child", "a kid")),
    ("a boy", False, ("a young boy", "a kid", "a child")),
    ("two men", True, ("two guys", "men", "two people")),
    ("a group of people", True, ("people", "a crowd", "some people")),
    ("a chef", False, ("a cook", "a man", "a woman")),
    ("a cartoon character", False, ("an animated character", "a cartoon")),
    ("a dog", False, ("a puppy", "an animal")),
    ("a cat", False, ("a kitten", "an animal")),
    ("a band", False, ("musicians", "a group")),
    ("a news anchor", False, ("a reporter", "a newscaster", "a man")),
    ("a soccer player", False, ("a player", "an athlete")),
    ("kids", True, ("children", "some kids")),
    ("a couple", False, ("two people", "a man and a woman")),
    ("an old man", False, ("an elderly man", "a man")),
    ("a teenager", False, ("a teen", "a young person")),
    ("a baby", False, ("an infant", "a toddler")),
]
ACTIVITIES: list[Activity] = [
    ("playing", "plays", "play", ("a guitar", "the piano", "the drums", "a violin"), ("on stage", "in a room", "at a concert")),
    ("cooking", "cooks", "cook", ("pasta", "some food", "a meal", "eggs", "chicken", "soup"), ("in a kitchen", "on a stove", "on a cooking show")),
    ("talking about", "talks about", "talk about", ("a car", "the news", "a video game", "politics", "the weather", "a movie"), ("on a tv show", "to the camera", "in a studio")),
    ("driving", "drives", "drive", ("a car", "a red car", "a truck", "a race car"), ("down the road", "on a highway", "through the city")),
    ("dancing", "dances", "dance", ("to music", "with a partner", "to a song"), ("on stage", "at a party", "in the street")),
    ("riding", "rides", "ride", ("a horse", "a bike", "a motorcycle", "a skateboard"), ("down a road", "in a field", "in the park")),
    ("swimming", "swims", "swim", ("laps", "underwater", "with friends"), ("in a pool", "in the ocean", "in a lake")),
    ("singing", "sings", "sing", ("a song", "a pop song", "a love song"), ("on stage", "on a talent show", "in front of judges")),
    ("playing", "plays", "play", ("soccer", "basketball", "tennis", "a video game", "football"), ("in a park", "on a field", "in a stadium")),
    ("showing", "shows", "show", ("how to make a cake", "how to apply makeup", "a new phone", "a recipe"), ("in a video", "to the camera", "in a tutorial")),
    ("walking", "walks", "walk", ("down the runway", "a dog", "with friends"), ("in the park", "on the street", "at a fashion show")),
    ("fixing", "fixes", "fix", ("a car engine", "a bike", "a computer", "a sink"), ("in a garage", "at home", "in a shop")),
    ("explaining", "explains", "explain", ("a math problem", "how to draw", "a science experiment"), ("on a whiteboard", "in a classroom", "to students")),
    ("running", "runs", "run", ("a race", "around a track", "after a ball"), ("on a track", "in a field", "on the beach")),
    ("eating", "eats", "eat", ("pizza", "noodles", "some food", "a burger"), ("at a table", "in a restaurant", "at home")),
]
EXTRAS = ("while people watch", "and smiling", "and laughing", "in slow motion", "with music playing",
          "as the crowd cheers", "very fast", "for the camera", "at night", "in a video clip")
OFF_TOPIC = ("a video game is being played", "a clip from a movie is shown", "there is music playing",
             "a commercial is shown", "someone is filming a video", "a person is talking")
ADJECTIVES = ("red", "blue", "big", "small", "black", "white", "new", "old")


def _zipf(rng: random.Random, n: int, s: float = 0.9) -> int:
    return rng.choices(range(n), weights=[1 / (k + 1) ** s for k in range(n)])[0]


@dataclass
class Topic:
    subject: int
    activity: int
    obj: str
    place: str

    def parts(self) -> tuple[Subject, Activity]:
        return SUBJECTS[self.subject], ACTIVITIES[self.activity]


def draw_topic(rng: random.Random) -> Topic:
    activity = _zipf(rng, len(ACTIVITIES))
    _, _, _, objects, places = ACTIVITIES[activity]
    return Topic(_zipf(rng, len(SUBJECTS)), activity, rng.choice(objects), rng.choice(places))


def reference(topic: Topic, rng: random.Random) -> str:
    """One annotator's sentence: synonyms, tense, optional parts, casing and punctuation vary."""
    if rng.random() < 0.05:
        text = rng.choice(OFF_TOPIC)
    else:
        (subject, plural, synonyms), (ing, third, base, _, _) = topic.parts()
        who = subject if rng.random() < 0.6 else rng.choice(synonyms)
        plural = plural or who in ("people", "men", "children", "musicians", "two people", "some kids", "some people")
        form = rng.random()
        if form < 0.6:
            verb = f"{'are' if plural else 'is'} {ing}"
        elif form < 0.85:
            verb = base if plural else third
        else:
            verb = ing
        obj = topic.obj
        if rng.random() < 0.15 and obj.startswith("a "):
            obj = f"a {rng.choice(ADJECTIVES)} {obj[2:]}"
        words = [who, verb]
        if rng.random() < 0.85:
            words.append(obj)
        if rng.random() < 0.55:
            words.append(topic.place)
        if rng.random() < 0.2:
            words.append(rng.choice(EXTRAS))
        text = " ".join(words)
        if rng.random() < 0.1:
            text = f"there {'are' if plural else 'is'} {who} {ing} {obj}"
    if rng.random() < 0.4:
        text = text[0].upper() + text[1:]
    if rng.random() < 0.3:
        text += rng.choice((".", ".", "!", " ."))
    return text


def candidate(topic: Topic, rng: random.Random) -> str:
    """A model-style caption: lower case, no punctuation, sometimes wrong in one part."""
    (subject, plural, synonyms), (ing, _, _, objects, places) = topic.parts()
    who = subject if rng.random() < 0.8 else rng.choice(synonyms)
    obj = topic.obj if rng.random() < 0.7 else rng.choice(objects)
    place = topic.place if rng.random() < 0.7 else rng.choice(places)
    words = [who, "are" if plural else "is", ing, obj]
    if rng.random() < 0.5:
        words.append(place)
    return " ".join(words)


@dataclass
class CaptionSet:
    references: dict[str, list[str]]  # video id -> raw reference captions
    candidates: dict[str, list[str]]  # video id -> raw candidate captions

    def num_references(self) -> int:
        return sum(map(len, self.references.values()))


def make_caption_set(videos: int, references: int = 20, candidates: int = 1, seed: int = 0) -> CaptionSet:
    rng = random.Random(seed)
    refs, cands = {}, {}
    for v in range(videos):
        topic = draw_topic(rng)
        vid = f"video{v}"
        refs[vid] = [reference(topic, rng) for _ in range(references)]
        cands[vid] = [candidate(topic, rng) for _ in range(candidates)]
    return CaptionSet(refs, cands)


def load_caption_set(folder: Path, videos: int, references: int = 20, candidates: int = 1, seed: int = 0) -> CaptionSet:
    """``make_caption_set``, kept as JSON in ``folder`` so a run's inputs can be inspected."""
    path = folder / f"captions_{videos}x{references}_c{candidates}_s{seed}.json"
    if path.is_file():
        data = json.loads(path.read_text())
        return CaptionSet(data["references"], data["candidates"])
    made = make_caption_set(videos, references, candidates, seed)
    folder.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"references": made.references, "candidates": made.candidates}))
    tmp.replace(path)
    return made

"""``shapes``: a procedural video-caption dataset for smoke-testing the captioning pipeline.

Coloured shapes move, grow, shrink, appear, disappear or change colour over a plain or lightly
textured background; captions and frame-selection questions are written from each video's
scene description. ``python -m lavis.datasets.synthetic --out DIR --videos N --seed S``.
"""

from lavis.datasets.synthetic.generate import generate

__all__ = ["generate"]

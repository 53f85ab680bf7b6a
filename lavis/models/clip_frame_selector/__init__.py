"""The CLIP frame selector: picks the frames of a video that are relevant to a question."""

from lavis.models.clip_frame_selector.model import ClipFrameSelector

__all__ = ["ClipFrameSelector"]

"""BLIP-2 adapted to video: one composed captioner, registered under several names."""

from lavis.models.blip2_video.captioner import (
    Blip2TimeSformer, Blip2VideoCaptioner, Blip2VideoOPT, Blip2VideoT5, Blip2VideoVicunaInstruct,
)

__all__ = ["Blip2TimeSformer", "Blip2VideoCaptioner", "Blip2VideoOPT", "Blip2VideoT5", "Blip2VideoVicunaInstruct"]

"""Captioning outside the training loop: loading a captioner from any checkpoint form, the
resumable per-rank result files, the video-folder dataset and the HTML gallery that
``lavis/projects/blip2_timesformer/{inference,batch_inference}.py`` are built from."""

from lavis.inference.loading import DEMO_MODEL, DEMO_VIDEOS, LoadedCaptioner, LoadError, load_captioner

__all__ = ["DEMO_MODEL", "DEMO_VIDEOS", "LoadError", "LoadedCaptioner", "load_captioner"]

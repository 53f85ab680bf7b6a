"""``api_caption``: captions from an OpenAI-compatible chat-completions endpoint (GPT-4V, vLLM).

Each clip's ``num_frames`` frames (uniform over the clip) are shrunk to ``max_side`` and sent as
JPEG data URLs in one user message with the prompt. Standard library HTTP only, so the stage adds
no dependency. Connection errors, timeouts, 429 and 5xx are retried with exponential backoff
(``Retry-After`` honoured); other 4xx and malformed replies fail that clip at once. The API key
is read from ``api_key_env`` at setup and never written to outputs or logs.
"""

from __future__ import annotations

import base64
import http.client
import json
import logging
import os
import random
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urlparse

import cv2
import numpy as np
import torch

from lavis.common.registry import registry
from lavis.datasets.video import VideoInfo, fit_within
from lavis.pipeline.stages.base import Clip, Stage, uniform_indices

logger = logging.getLogger(__name__)

LOCAL_HOSTS = ("localhost", "127.0.0.1", "::1")
MAX_WAIT = 300.0  # seconds: cap on one backoff or Retry-After wait
_sleep = time.sleep  # the backoff wait (tests record it)


class Retryable(Exception):
    """A failure worth another attempt; ``retry_after``: the server's wait, in seconds."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class RateLimiter:
    """At most ``per_minute`` requests a minute over all threads: one every ``60 / per_minute`` s."""

    def __init__(self, per_minute: float | None) -> None:
        self.interval = 60.0 / per_minute if per_minute else 0.0
        self.next = 0.0
        self.lock = threading.Lock()

    def wait(self) -> None:
        if not self.interval:
            return
        with self.lock:  # reserve a slot, then sleep outside the lock
            now = time.monotonic()
            slot = max(now, self.next)
            self.next = slot + self.interval
        time.sleep(max(0.0, slot - now))


@registry.register("stage", "api_caption")
class ApiCaptionStage(Stage):
    name = "api_caption"

    def __init__(self, model: str, base_url: str | None = None, api_key_env: str = "OPENAI_API_KEY",
                 prompt: str = "Describe this video in detail.", num_frames: int = 4, max_side: int = 512,
                 max_tokens: int = 300, temperature: float = 0.0, timeout: float = 60.0, max_retries: int = 5,
                 backoff: float = 1.0, requests_per_minute: float | None = None, concurrency: int = 4,
                 output_key: str = "api_caption") -> None:
        """``base_url``: default ``$OPENAI_BASE_URL`` or OpenAI's; ``timeout``: seconds per request."""
        self.base_url = (base_url or os.environ.get("OPENAI_BASE_URL") or "https://api.openai.com/v1").rstrip("/")
        self.model, self.api_key_env, self.prompt, self.output_key = model, api_key_env, prompt, output_key
        self.num_frames, self.max_side = num_frames, max_side
        self.max_tokens, self.temperature = max_tokens, temperature
        self.timeout, self.max_retries, self.backoff = timeout, max_retries, backoff
        self.concurrency = max(1, concurrency)
        self.limiter = RateLimiter(requests_per_minute)
        self.api_key = ""  # set in setup (decoder workers build the stage too and need no key)

    def select_frames(self, info: VideoInfo) -> list[int]:
        return uniform_indices(info, self.num_frames)

    def setup(self, device: torch.device, tp_mesh: Any = None) -> None:
        """Read the key; only a remote server requires one (a local vLLM usually takes none)."""
        self.api_key = os.environ.get(self.api_key_env, "")
        if not self.api_key and urlparse(self.base_url).hostname not in LOCAL_HOSTS:
            raise ValueError(f"api_caption: set the environment variable {self.api_key_env} to the API key "
                             f"for {self.base_url} (or point api_key_env at the variable holding it)")

    def process(self, clips: list[Clip]) -> list[dict[str, Any]]:
        if not clips:
            return []
        with ThreadPoolExecutor(min(self.concurrency, len(clips)), thread_name_prefix="api_caption") as pool:
            return list(pool.map(self._caption_safely, clips))

    # ------------------------------------------------------------------ one clip
    def _caption_safely(self, clip: Clip) -> dict[str, Any]:
        """One clip's fields or ``{"error": ...}``; nothing raises out of a worker thread."""
        try:
            return self._caption(clip)
        except Exception as err:  # noqa: BLE001 - one clip's failure must not lose the batch
            return {"error": self._scrub(f"{type(err).__name__}: {err}")}

    def _caption(self, clip: Clip) -> dict[str, Any]:
        frames = clip.frames.get(self.name)
        if frames is None or len(frames) == 0:
            return {"error": "no frames decoded for this clip"}
        body = json.dumps(self.request_body(frames)).encode()
        attempt = 0
        while True:
            try:
                return self._parse(self._post(body))
            except ValueError as err:  # refused (4xx) or malformed: another try would fare the same
                return {"error": self._scrub(str(err))}
            except Retryable as err:
                if attempt >= self.max_retries:
                    return {"error": self._scrub(f"{err} (gave up after {attempt + 1} attempts)")}
                attempt += 1
                delay = err.retry_after if err.retry_after is not None else self._jittered(attempt - 1)
                logger.warning("api_caption %s: %s; retry %d/%d in %.2f s", clip.id, self._scrub(str(err)),
                               attempt, self.max_retries, delay)
                _sleep(min(max(delay, 0.0), MAX_WAIT))

    def request_body(self, frames: np.ndarray) -> dict[str, Any]:
        """The OpenAI vision message: the prompt, then one JPEG data URL per frame."""
        images = [{"type": "image_url", "image_url": {"url": "data:image/jpeg;base64," + encode_jpeg(f, self.max_side)}}
                  for f in frames]
        return {"model": self.model, "max_tokens": self.max_tokens, "temperature": self.temperature,
                "messages": [{"role": "user", "content": [{"type": "text", "text": self.prompt}, *images]}]}

    def _post(self, body: bytes) -> bytes:
        """One request; ``Retryable`` for what may pass, ``ValueError`` for a refusal (other 4xx)."""
        headers = {"Content-Type": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        request = urllib.request.Request(f"{self.base_url}/chat/completions", body, headers, method="POST")
        self.limiter.wait()
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                return response.read()
        except urllib.error.HTTPError as err:
            message = f"HTTP {err.code}: {server_message(err)}"
            if err.code == 429 or err.code >= 500:
                raise Retryable(message, retry_after(err.headers.get("Retry-After"))) from err
            raise ValueError(message) from err
        except (OSError, http.client.HTTPException) as err:  # refused, reset, timed out, cut short
            reason = err.reason if isinstance(err, urllib.error.URLError) else err
            raise Retryable(f"request failed: {type(reason).__name__}: {reason}") from err

    def _parse(self, raw: bytes) -> dict[str, Any]:
        try:
            reply = json.loads(raw)
            content = reply["choices"][0]["message"]["content"]
        except (ValueError, KeyError, IndexError, TypeError) as err:
            raise ValueError(f"malformed response ({type(err).__name__}: {err}): {raw[:200]!r}") from None
        if not isinstance(content, str):
            raise ValueError(f"malformed response: message content is {type(content).__name__}, not text")
        out: dict[str, Any] = {self.output_key: content.strip()}
        usage = reply.get("usage") if isinstance(reply, dict) else None
        if isinstance(usage, dict):
            for field in ("prompt_tokens", "completion_tokens"):
                if isinstance(usage.get(field), int):
                    out[f"api_{field}"] = usage[field]
        return out

    def _jittered(self, attempt: int) -> float:
        """``backoff * 2**attempt``, uniformly between half and all of it (spreads the retries)."""
        delay = self.backoff * 2**attempt
        return delay / 2 + random.uniform(0, delay / 2)

    def _scrub(self, text: str) -> str:
        """The message without the key (a server may echo it back in an error)."""
        return text.replace(self.api_key, "***") if self.api_key else text


def encode_jpeg(frame: np.ndarray, max_side: int) -> str:
    """An RGB uint8 frame, long side at most ``max_side``, as base64 JPEG."""
    ok, data = cv2.imencode(".jpg", cv2.cvtColor(fit_within(frame, max_side), cv2.COLOR_RGB2BGR),
                            [cv2.IMWRITE_JPEG_QUALITY, 90])
    if not ok:
        raise ValueError("could not encode a frame as JPEG")
    return base64.b64encode(data.tobytes()).decode("ascii")


def server_message(err: urllib.error.HTTPError) -> str:
    """The server's own error text (OpenAI: ``{"error": {"message": ...}}``), shortened."""
    try:
        raw = err.read()
    except OSError:
        return err.reason or ""
    try:
        detail = json.loads(raw)["error"]
        text = detail.get("message", detail) if isinstance(detail, dict) else detail
    except (ValueError, KeyError, TypeError):
        text = raw.decode("utf-8", "replace")
    return str(text).strip()[:500] or str(err.reason)


def retry_after(value: str | None) -> float | None:
    """``Retry-After`` as seconds: a number or an HTTP date; ``None`` when absent or unreadable."""
    if not value:
        return None
    try:
        return float(value)
    except ValueError:
        pass
    try:
        return parsedate_to_datetime(value).timestamp() - time.time()
    except (TypeError, ValueError):
        return None

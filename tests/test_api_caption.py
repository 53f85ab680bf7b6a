"""The ``api_caption`` stage against a scripted local OpenAI-compatible server.

The fake server decodes the images of each request and picks its behaviour by the first image's
size (``"WxH"``), so clips of one batch can meet different fates: a normal reply (the caption
names the number and size of the images), 429 with Retry-After, 500, a hang past the client's
timeout, 400, or a malformed body; each followed by the next scripted action, then normal replies.
"""

from __future__ import annotations

import base64
import csv
import json
import logging
import shutil
import threading
import time
from collections import defaultdict
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import cv2
import numpy as np
import pytest

import lavis.pipeline.stages.api_caption as api  # registers the stage (until STAGE_MODULES lists it)
from lavis.datasets.video import VideoInfo
from lavis.pipeline.stages.base import Clip
from tests.conftest import ROOT

KEY_ENV = "LAVIS_TEST_API_KEY"
KEY = "sk-test-secret-0123456789"
PROMPT = "Say what happens."


class FakeServer:
    """``/v1/chat/completions`` on 127.0.0.1; ``script[size]`` lists the actions for that size."""

    def __init__(self) -> None:
        self.script: dict[str, list[str]] = defaultdict(list)
        self.requests: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.hang = 1.0
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                arrived = time.monotonic()
                raw = self.rfile.read(int(self.headers["Content-Length"]))
                body = json.loads(raw)
                images = [decode_image(part["image_url"]["url"]) for part in body["messages"][0]["content"]
                          if part["type"] == "image_url"]
                size = f"{images[0].shape[1]}x{images[0].shape[0]}" if images else "none"
                with fake.lock:
                    action = fake.script[size].pop(0) if fake.script[size] else "ok"
                    fake.requests.append({"time": arrived, "path": self.path, "body": body,
                                          "auth": self.headers.get("Authorization"), "images": images,
                                          "size": size, "action": action})
                try:
                    fake.respond(self, action, len(images), size)
                except OSError:  # the client gave up (timeout)
                    pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.block_on_close = False
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def respond(self, handler: BaseHTTPRequestHandler, action: str, count: int, size: str) -> None:
        if action == "hang" and self.stop.wait(self.hang):
            return
        status, headers = 200, {"Content-Type": "application/json"}
        reply: Any = {"choices": [{"message": {"role": "assistant", "content": f" {count} images {size} "}}],
                      "usage": {"prompt_tokens": 100 + count, "completion_tokens": 7, "total_tokens": 107 + count}}
        if action.startswith("429"):
            status, headers["Retry-After"] = 429, action.partition(":")[2] or "0"
            reply = {"error": {"message": "rate limited"}}
        elif action == "500":
            status, reply = 500, {"error": {"message": "overloaded"}}
        elif action == "400":
            status, reply = 400, {"error": {"message": f"bad request: image too large (key {KEY})"}}
        elif action == "malformed":
            reply = {"choices": []}
        raw = json.dumps(reply).encode()
        handler.send_response(status)
        for key, value in {**headers, "Content-Length": str(len(raw))}.items():
            handler.send_header(key, value)
        handler.end_headers()
        handler.wfile.write(raw)

    def close(self) -> None:
        self.stop.set()
        self.server.shutdown()
        self.server.server_close()


def decode_image(url: str) -> np.ndarray:
    prefix = "data:image/jpeg;base64,"
    assert url.startswith(prefix)
    data = base64.b64decode(url[len(prefix):])
    assert data[:3] == b"\xff\xd8\xff"  # a JPEG
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    assert image is not None
    return image


@pytest.fixture
def server():
    fake = FakeServer()
    yield fake
    fake.close()


@pytest.fixture
def sleeps(monkeypatch) -> list[float]:
    """The stage's backoff waits (still slept)."""
    waits: list[float] = []

    def record(seconds: float) -> None:
        waits.append(seconds)
        time.sleep(seconds)

    monkeypatch.setattr(api, "_sleep", record)
    return waits


def make_stage(server: FakeServer, monkeypatch, **kwargs: Any) -> api.ApiCaptionStage:
    monkeypatch.setenv(KEY_ENV, KEY)
    settings = dict(model="fake-vlm", base_url=server.url, api_key_env=KEY_ENV, prompt=PROMPT, num_frames=3,
                    max_side=64, max_tokens=50, temperature=0.2, timeout=2.0, max_retries=3, backoff=0.02)
    stage = api.ApiCaptionStage(**{**settings, **kwargs})
    stage.setup(None)
    return stage


def make_clip(name: str, width: int, height: int, count: int = 3) -> Clip:
    info = VideoInfo(num_frames=30, fps=10.0, duration=3.0, width=width, height=height,
                     timestamps=tuple(i / 10 for i in range(30)))
    rng = np.random.default_rng(sum(map(ord, name)))
    clip = Clip(name, name, None, None, info)
    clip.frames["api_caption"] = rng.integers(0, 256, (count, height, width, 3), dtype=np.uint8)
    return clip


def test_request_format_and_reply(server, monkeypatch):
    stage = make_stage(server, monkeypatch)
    info = make_clip("a", 10, 10).info
    assert stage.select_frames(info) == [5, 15, 25]
    clips = [make_clip("big", 320, 180), make_clip("small", 40, 30)]
    results = stage.process(clips)
    assert results == [
        {"api_caption": "3 images 64x36", "api_prompt_tokens": 103, "api_completion_tokens": 7},
        {"api_caption": "3 images 40x30", "api_prompt_tokens": 103, "api_completion_tokens": 7},
    ]
    assert len(server.requests) == 2
    for request in server.requests:
        assert request["path"] == "/v1/chat/completions"
        assert request["auth"] == f"Bearer {KEY}"
        body = request["body"]
        assert body["model"] == "fake-vlm" and body["max_tokens"] == 50 and body["temperature"] == 0.2
        [message] = body["messages"]
        assert message["role"] == "user"
        assert message["content"][0] == {"type": "text", "text": PROMPT}
        assert [p["type"] for p in message["content"][1:]] == ["image_url"] * 3
        assert all(max(image.shape[:2]) <= 64 for image in request["images"])
    big = next(r for r in server.requests if r["size"] == "64x36")
    # the frames themselves (downscaled, JPEG-compressed), in order
    expected = cv2.resize(clips[0].frames["api_caption"][1], (64, 36), interpolation=cv2.INTER_AREA)
    assert np.abs(big["images"][1][..., ::-1].astype(int) - expected).mean() < 40


def test_retries_backoff_and_retry_after(server, monkeypatch, sleeps):
    server.script["64x36"] = ["429:0.3"]
    server.script["40x30"] = ["500", "500"]
    stage = make_stage(server, monkeypatch, backoff=0.05)
    results = stage.process([make_clip("limited", 320, 180), make_clip("flaky", 40, 30)])
    assert results[0]["api_caption"] == "3 images 64x36" and results[1]["api_caption"] == "3 images 40x30"
    by_size = defaultdict(list)
    for request in server.requests:
        by_size[request["size"]].append(request)
    assert [r["action"] for r in by_size["64x36"]] == ["429:0.3", "ok"]
    assert [r["action"] for r in by_size["40x30"]] == ["500", "500", "ok"]
    assert by_size["64x36"][1]["time"] - by_size["64x36"][0]["time"] >= 0.3  # Retry-After honoured
    assert sorted(sleeps)[-1] == 0.3
    backoffs = sorted(sleeps)[:2]  # 0.05 * 2**attempt, jittered into [half, all] of it
    assert 0.025 <= backoffs[0] <= 0.05 and 0.05 <= backoffs[1] <= 0.1


def test_timeout_then_success_and_timeouts_exhausted(server, monkeypatch, sleeps):
    server.hang = 0.8
    server.script["64x36"] = ["hang", "ok"]
    server.script["40x30"] = ["hang", "hang"]
    stage = make_stage(server, monkeypatch, timeout=0.25, max_retries=1)
    started = time.monotonic()
    results = stage.process([make_clip("slow", 320, 180), make_clip("stuck", 40, 30), make_clip("fine", 50, 20)])
    assert time.monotonic() - started < 2.0
    assert results[0]["api_caption"] == "3 images 64x36"
    assert "timed out" in results[1]["error"] and "gave up after 2 attempts" in results[1]["error"]
    assert results[2]["api_caption"] == "3 images 50x20"
    assert sum(r["size"] == "40x30" for r in server.requests) == 2 and len(sleeps) == 2


def test_refusal_and_malformed_reply_fail_only_their_clip(server, monkeypatch, sleeps, caplog):
    server.script["64x36"] = ["400"]
    server.script["40x30"] = ["malformed"]
    stage = make_stage(server, monkeypatch)
    with caplog.at_level(logging.DEBUG):
        results = stage.process([make_clip("refused", 320, 180), make_clip("garbled", 40, 30),
                                 make_clip("fine", 50, 20)])
    assert "HTTP 400" in results[0]["error"] and "image too large" in results[0]["error"]
    assert "malformed response" in results[1]["error"]
    assert results[2] == {"api_caption": "3 images 50x20", "api_prompt_tokens": 103, "api_completion_tokens": 7}
    assert len(server.requests) == 3 and not sleeps  # no retries
    assert KEY not in repr(results) and "***" in results[0]["error"]  # the echoed key is scrubbed
    assert KEY not in caplog.text

    no_frames = make_clip("empty", 40, 30)
    no_frames.frames.clear()
    assert "no frames" in stage.process([no_frames])[0]["error"]


def test_connection_refused_is_retried_then_an_error(monkeypatch, sleeps):
    server = FakeServer()
    url = server.url
    server.close()  # nothing listens there any more
    stage = api.ApiCaptionStage(model="m", base_url=url, max_retries=2, backoff=0.01)
    stage.setup(None)
    [result] = stage.process([make_clip("a", 40, 30)])
    assert "request failed" in result["error"] and "gave up after 3 attempts" in result["error"]
    assert len(sleeps) == 2


def test_rate_limit_spaces_requests(server, monkeypatch):
    stage = make_stage(server, monkeypatch, requests_per_minute=600, concurrency=4)
    clips = [make_clip(f"c{i}", 40, 30) for i in range(5)]
    assert all("api_caption" in r for r in stage.process(clips))
    times = sorted(r["time"] for r in server.requests)
    gaps = np.diff(times)
    assert len(times) == 5 and gaps.min() >= 0.07 and times[-1] - times[0] >= 0.38, gaps


def test_key_setup_local_and_remote(server, monkeypatch):
    monkeypatch.delenv(KEY_ENV, raising=False)
    remote = api.ApiCaptionStage(model="gpt-4o", base_url="https://api.example.com/v1", api_key_env=KEY_ENV)
    with pytest.raises(ValueError, match=KEY_ENV):
        remote.setup(None)
    local = api.ApiCaptionStage(model="m", base_url=server.url, api_key_env=KEY_ENV)
    local.setup(None)  # a local server needs no key, and gets no Authorization header
    assert "api_caption" in local.process([make_clip("a", 40, 30)])[0]
    assert server.requests[-1]["auth"] is None
    monkeypatch.setenv("OPENAI_BASE_URL", "http://localhost:8000/v1/")
    assert api.ApiCaptionStage(model="m").base_url == "http://localhost:8000/v1"
    monkeypatch.delenv("OPENAI_BASE_URL")
    assert api.ApiCaptionStage(model="m").base_url == "https://api.openai.com/v1"
    assert api.retry_after("2") == 2.0 and api.retry_after(None) is None and api.retry_after("soon") is None
    assert 25 < api.retry_after(formatdate(time.time() + 30, usegmt=True)) <= 31  # an HTTP date


def test_pipeline_cli_end_to_end(server, monkeypatch, tmp_path):
    from lavis.common.config import check_file
    from lavis.pipeline.__main__ import main
    from lavis.pipeline.outputs import read_table

    check_file(ROOT / "lavis" / "projects" / "pipeline" / "api_caption.yaml")
    monkeypatch.setenv(KEY_ENV, KEY)
    videos = tmp_path / "videos"
    videos.mkdir()
    for i in range(2):
        shutil.copy(ROOT / "lavis" / "demo" / "videos" / "demo_00.mp4", videos / f"clip{i}.mp4")
    with open(videos / "paths.csv", "w", newline="") as f:
        csv.writer(f).writerows([["path"], ["clip0.mp4"], ["clip1.mp4"]])
    config = tmp_path / "api.yaml"
    config.write_text(
        "pipeline:\n  stages:\n"
        f"    - {{name: api_caption, base_url: '{server.url}', model: fake-vlm, api_key_env: {KEY_ENV},\n"
        "       num_frames: 4, max_side: 64, backoff: 0.01}\n"
    )
    server.script["64x64"] = ["500"]  # the demo clips are 128x128
    out = tmp_path / "meta.csv"
    status = main(["--config", str(config), "--csv", str(videos / "paths.csv"), "--output_csv", str(out),
                   "--num_workers", "0", "--batch_size", "2"])
    assert status == 0
    rows = read_table(out)
    assert [r["id"] for r in rows] == ["clip0.mp4", "clip1.mp4"]
    assert all(r["api_caption"] == "4 images 64x64" and str(r["api_prompt_tokens"]) == "104" for r in rows)
    assert len(server.requests) == 3  # one retried 500
    written = [p.read_text() for p in tmp_path.rglob("*") if p.is_file() and p.suffix in (".csv", ".jsonl", ".json")]
    assert len(written) >= 4 and not any(KEY in text for text in written)

"""A remote engine that answers badly costs one error row, never the run: a stand-in
OpenAI-compatible server on loopback sends what a broken or hostile one could."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from pipelines.config import compose_config
from pipelines.driver.pipeline import run_pipeline

MODEL = "SmolLM2-135M-Instruct"


class Hostile(BaseHTTPRequestHandler):
    """Answers /v1/models; each chat completion as ``Hostile.mode`` says."""

    mode = "ok"

    def do_GET(self) -> None:
        self.send_json({"data": [{"id": MODEL, "object": "model"}]})

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        content = {"ok": "Answer: 4", "huge": "x" * (20 << 20)}.get(self.mode, "")
        choices = (
            []
            if self.mode == "no-choices"
            else [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": content},
                    "finish_reason": "stop",
                }
            ]
        )
        body = {
            "id": "x",
            "object": "chat.completion",
            "created": 0,
            "model": MODEL,
            "choices": choices,
            "usage": {"prompt_tokens": 5, "completion_tokens": 5, "total_tokens": 10},
        }
        self.send_json(body, trickle=self.mode == "trickle")

    def send_json(self, body: dict, trickle: bool = False) -> None:
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if not trickle:
            self.wfile.write(data)
            return
        try:  # two bytes a second: each read is within any per-read timeout
            for byte in data:
                self.wfile.write(bytes([byte]))
                self.wfile.flush()
                time.sleep(0.5)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up: what a deadline is for

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Hostile)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


@pytest.mark.parametrize(
    ("mode", "error"),
    [
        ("no-choices", "ValueError: the server's reply holds no choice"),
        ("huge", "ValueError: the server's reply holds 20,971,520 characters for at most 8 tokens"),
        ("trickle", "TimeoutError"),
    ],
)
def test_a_bad_reply_is_one_error_row_and_the_run_finishes(
    server: str, tmp_path: Path, mode: str, error: str
) -> None:
    Hostile.mode = mode
    cfg = compose_config(
        [
            "role=devops",
            "limit=1",
            "agents=2",
            "max_tokens=8",
            "engine=openai",
            f"engine.url={server}",
            "engine.timeout_s=1",
            "engine.retries=0",
            "executor=local",
            "sink=none",
            "tracking=none",
            "embeddings=false",
        ]
    )
    start = time.monotonic()
    outcome = run_pipeline(cfg, tmp_path / "run", executor=None)
    assert time.monotonic() - start < 120
    errors = outcome.results["error"].tolist()
    assert len(errors) == 2 and all(e and e.startswith(error) for e in errors), errors
    assert (outcome.results["proposal"].fillna("") == "").all()

"""A stand-in OpenAI-compatible server on loopback, for tests of what a remote engine
sends: each chat completion answered as the test says, as a broken or hostile
server could."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

MODEL = "SmolLM2-135M-Instruct"


class StandInEngine(BaseHTTPRequestHandler):
    """``/v1/models`` serves :data:`MODEL`; each chat completion is ``content``, or
    (``mode``) a reply with no choice, or ``content`` trickled two bytes a second."""

    mode = "ok"
    content = "Answer: 4"

    def do_GET(self) -> None:
        self.send_json({"data": [{"id": MODEL, "object": "model"}]})

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        message = {"role": "assistant", "content": self.content}
        choice = {"index": 0, "message": message, "finish_reason": "stop"}
        self.send_json(
            {
                "id": "x",
                "object": "chat.completion",
                "created": 0,
                "model": MODEL,
                "choices": [] if self.mode == "no-choices" else [choice],
                "usage": {"prompt_tokens": 5, "completion_tokens": 5, "total_tokens": 10},
            }
        )

    def send_json(self, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        try:
            if self.mode != "trickle" or self.command == "GET":
                self.wfile.write(data)
                return
            for byte in data:  # each read is within any per-read timeout
                self.wfile.write(bytes([byte]))
                self.wfile.flush()
                time.sleep(0.5)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up: what a deadline is for

    def log_message(self, *args: object) -> None:
        pass


@contextmanager
def stand_in_engine(content: str = "Answer: 4", mode: str = "ok") -> Iterator[str]:
    """The server's URL while the block runs."""
    handler = type("Handler", (StandInEngine,), {"content": content, "mode": mode})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()

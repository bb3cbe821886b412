"""Serve the configured model over the OpenAI API with vLLM, on loopback.

``python -m pipelines.serve_model [--host H] [--port P] [hydra overrides...]``

Starts ``vllm.entrypoints.openai.api_server`` with the same model settings as
the in-process engine (``conf/model``, ``VLLMEngineConfig``: dtype,
context length, chunked prefill off, engine environment), polls ``/health``
until it answers, prints the URL to use as ``VLLM_URL`` and serves until
interrupted. Tests and benchmarks use :func:`served`.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from pipelines.config import ModelConfig, VLLMEngineConfig
from pipelines.runtime.procs import child_server, free_port, http_ok
from pipelines.spec.exits import EXIT_BAD_INPUT, EXIT_FAILED, EXIT_OK

log = logging.getLogger("pipelines.serve_model")

DEFAULT_PORT = 8000


def serve_command(engine: VLLMEngineConfig, model: ModelConfig, host: str, port: int) -> list[str]:
    """The ``api_server`` command line for the in-process engine's model settings."""
    cmd = [
        sys.executable,
        "-m",
        "vllm.entrypoints.openai.api_server",
        "--model",
        model.path,
        "--served-model-name",
        engine.served_name(model),
        "--dtype",
        model.dtype,
        "--max-model-len",
        str(model.max_model_len),
        "--gpu-memory-utilization",
        str(engine.gpu_memory_utilization),
        "--enable-chunked-prefill"
        if engine.enable_chunked_prefill
        else "--no-enable-chunked-prefill",
        "--host",
        host,
        "--port",
        str(port),
    ]
    if engine.enforce_eager:
        cmd.append("--enforce-eager")
    return cmd


@contextmanager
def served(
    engine: VLLMEngineConfig,
    model: ModelConfig,
    host: str = "127.0.0.1",
    port: int | None = None,
    log_file: Path | None = None,
    timeout_s: float = 600.0,
) -> Iterator[str]:
    """Run a vLLM OpenAI server for ``model`` with ``engine``'s settings; yields its URL.

    The server's output goes to ``log_file``, or to this terminal when None.
    """
    port = port or free_port()
    url = f"http://{host}:{port}"
    env = {**{k: str(v) for k, v in engine.env.items()}, **os.environ}  # caller's env wins
    start = time.perf_counter()
    with child_server(
        "vLLM server",
        serve_command(engine, model, host, port),
        lambda: http_ok(f"{url}/health"),
        log_file=log_file,
        env=env,
        timeout_s=timeout_s,
        stop_timeout_s=30.0,
    ):
        log.info("vLLM server ready at %s in %.0f s", url, time.perf_counter() - start)
        yield url


def main(argv: list[str] | None = None) -> int:
    from pipelines import UserError
    from pipelines.config import compose_config
    from pipelines.engines import preflight

    parser = argparse.ArgumentParser(
        prog="python -m pipelines.serve_model",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT)
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds to wait for /health")
    parser.add_argument("overrides", nargs="*", help="Hydra overrides, e.g. model=qwen3-0.6b")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        cfg = compose_config(["engine=vllm", *args.overrides])
        engine, model = cfg.engine, cfg.model
        preflight(engine, model)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    name = engine.served_name(model)
    log.info("starting vLLM for %s (%s) on %s:%d", name, model.path, args.host, args.port)
    try:
        with served(engine, model, args.host, args.port, timeout_s=args.timeout) as url:
            print(f"serving {name} at {url}; use VLLM_URL={url} engine=openai")
            print("Ctrl-C to stop", flush=True)
            signal.signal(signal.SIGTERM, signal.default_int_handler)  # stop cleanly on both
            while True:
                time.sleep(3600)
    except KeyboardInterrupt:
        pass
    except RuntimeError as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_FAILED
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())

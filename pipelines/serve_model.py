"""Serve the configured model over the OpenAI API with vLLM, on loopback.

``python -m pipelines.serve_model [--host H] [--port P] [hydra overrides...]``

Starts ``vllm.entrypoints.openai.api_server`` with the same model settings as
the in-process engine (``conf/model``, ``conf/engine/vllm.yaml``: dtype,
context length, chunked prefill off, engine environment), polls ``/health``
until it answers, prints the URL to use as ``VLLM_URL`` and serves until
interrupted. Tests and benchmarks use :func:`served`.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from pipelines.engines import EngineConfig

log = logging.getLogger("pipelines.serve_model")

DEFAULT_PORT = 8000


def serve_command(engine: EngineConfig, host: str, port: int) -> list[str]:
    """The ``api_server`` command line for ``engine``'s model settings."""
    cmd = [
        sys.executable,
        "-m",
        "vllm.entrypoints.openai.api_server",
        "--model",
        engine.model,
        "--served-model-name",
        engine.served_model_name,
        "--dtype",
        engine.dtype,
        "--max-model-len",
        str(engine.max_model_len),
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


def wait_healthy(url: str, proc: subprocess.Popen, timeout_s: float, log_file: Path | None) -> None:
    """Poll ``url``/health until 200; raise if the server exits or time runs out."""
    import httpx

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = log_file.read_text()[-3000:] if log_file and log_file.exists() else ""
            raise RuntimeError(f"vLLM server exited with {proc.returncode} before ready:\n{tail}")
        try:
            if httpx.get(f"{url}/health", timeout=2.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise TimeoutError(f"vLLM server at {url} not healthy after {timeout_s:.0f} s")


@contextmanager
def served(
    engine: EngineConfig,
    host: str = "127.0.0.1",
    port: int | None = None,
    log_file: Path | None = None,
    timeout_s: float = 600.0,
) -> Iterator[str]:
    """Run a vLLM OpenAI server for ``engine``'s model; yields its URL.

    The server's output goes to ``log_file``, or to this terminal when None.
    """
    from pipelines.nats_server import free_port, stop_process

    port = port or free_port()
    url = f"http://{host}:{port}"
    env = {**{k: str(v) for k, v in engine.env.items()}, **os.environ}  # caller's env wins
    out = open(log_file, "w") if log_file else None  # noqa: SIM115
    proc = subprocess.Popen(
        serve_command(engine, host, port),
        env=env,
        stdout=out,
        stderr=subprocess.STDOUT if log_file else None,
        start_new_session=True,  # its own group: stopping it reaches the engine core too
    )
    try:
        start = time.perf_counter()
        wait_healthy(url, proc, timeout_s, log_file)
        log.info("vLLM server ready at %s in %.0f s", url, time.perf_counter() - start)
        yield url
    finally:
        stop_process(proc, timeout=30.0, group=True)
        if out is not None:
            out.close()


def engine_settings(overrides: list[str]) -> EngineConfig:
    """The in-process engine's settings for the configured model."""
    from hydra import compose, initialize_config_dir

    from pipelines import PROJECT_ROOT
    from pipelines.config import register
    from pipelines.settings import from_config

    register()
    with initialize_config_dir(config_dir=str(PROJECT_ROOT / "conf"), version_base="1.3"):
        cfg = compose("config", overrides=["engine=vllm", *overrides])
    return from_config(cfg).engine


def main(argv: list[str] | None = None) -> int:
    from pipelines import UserError
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
        engine = engine_settings(args.overrides)
        preflight(engine)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    log.info(
        "starting vLLM for %s (%s) on %s:%d",
        engine.served_model_name,
        engine.model,
        args.host,
        args.port,
    )
    try:
        with served(engine, args.host, args.port, timeout_s=args.timeout) as url:
            print(f"serving {engine.served_model_name} at {url}; use VLLM_URL={url} engine=openai")
            print("Ctrl-C to stop", flush=True)
            signal.signal(signal.SIGTERM, signal.default_int_handler)  # stop cleanly on both
            while True:
                time.sleep(3600)
    except KeyboardInterrupt:
        pass
    except (RuntimeError, TimeoutError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

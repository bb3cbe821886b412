"""A run's console shows the run: its own lines (one per landed batch) and every
warning; the engines' and frameworks' INFO lines go to ``run.log`` only.

- Loggers of vLLM, Ray, Ray Data, MLflow and the model libraries keep their
  records but lose their own console handlers; they reach the run's handlers
  (Hydra's console and ``run.log``), and the console lets through only
  council-eval's records and warnings.
- vLLM's engine processes on this host (its engine core, Ray engine hosts,
  Dask workers) log INFO and warnings to ``run.log`` and errors to stderr
  through ``VLLM_LOGGING_CONFIG_PATH`` (unless the environment already names
  one).
- Ray's stream of its workers' output (``log_to_driver``) is logged line by
  line: INFO into ``run.log``, a batch that holds a warning, an error or a
  traceback onto the console as well.
"""

from __future__ import annotations

import logging
import logging.config
import os
import re
import sys
from pathlib import Path
from typing import Any

OWN = ("pipelines", "__main__")
"""Loggers whose INFO records the console shows."""
NOISY = ("vllm", "ray", "ray.data", "mlflow", "alembic", "transformers", "httpx", "urllib3")
WORKER_LOG = "pipelines.ray_workers"
"""The logger Ray's worker output goes through (its INFO: run.log only)."""
ALARM = re.compile(r"\b(WARNING|ERROR|CRITICAL|Traceback|Error|Exception)\b")
VLLM_CONFIG_FILE = ".vllm-logging.json"
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def printable(text: object) -> str:
    """``text`` safe to print on a terminal as one line: control characters (ESC,
    which starts the sequences that move the cursor or retitle the window; CR and
    LF, which would start a line of its own that looks like another message; the
    C1 range) shown as ``\\xNN``, and the bidirectional overrides and isolates
    (which reorder what is shown) as ``\\uNNNN``. Model output and message fields
    pass here."""
    return _CONTROL.sub(_escape, str(text))


def _escape(m: re.Match[str]) -> str:
    code = ord(m[0])
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


class RunOnly(logging.Filter):
    """On the console: council-eval's records at INFO, anyone's from WARNING up."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno >= logging.WARNING:
            return True
        own = record.name in OWN or record.name.startswith("pipelines.")
        return own and record.name != WORKER_LOG


def _is_console(handler: logging.Handler) -> bool:
    """A handler that writes to a terminal stream (a file handler does not)."""
    return isinstance(handler, logging.StreamHandler) and not isinstance(
        handler, logging.FileHandler
    )


def run_log(root: logging.Logger | None = None) -> Path | None:
    """The file the run's root logger writes (Hydra's ``run.log``), if any."""
    for h in (root or logging.getLogger()).handlers:
        if isinstance(h, logging.FileHandler):
            return Path(h.baseFilename)
    return None


def adopt(*names: str) -> None:
    """Loggers ``names`` write through the run's handlers, not consoles of their own."""
    for name in names:
        logger = logging.getLogger(name)
        for h in [h for h in logger.handlers if _is_console(h)]:
            logger.removeHandler(h)
        logger.propagate = True
        if logger.level < logging.INFO:  # Ray Data's DEBUG records stay in its own file
            logger.setLevel(logging.INFO)


def quiet_console(run_dir: Path | None = None) -> None:
    """Set the run's console as the module says (idempotent).

    Args:
        run_dir: where the vLLM logging config is written; None: no config
            for engine processes (their INFO lines stay on their stderr).
    """
    root = logging.getLogger()
    for h in root.handlers:
        if _is_console(h) and not any(isinstance(f, RunOnly) for f in h.filters):
            h.addFilter(RunOnly())
    adopt(*NOISY)
    log_file = run_log(root)
    named = os.environ.get("VLLM_LOGGING_CONFIG_PATH")
    if run_dir is None or log_file is None or (named and not named.endswith(VLLM_CONFIG_FILE)):
        return  # the user's own vLLM logging config wins
    from pipelines.runtime.durable import write_json

    config = vllm_logging(log_file)
    path = run_dir / VLLM_CONFIG_FILE
    write_json(path, config)
    os.environ["VLLM_LOGGING_CONFIG_PATH"] = str(path)  # a multirun's next job: its own
    os.environ["VLLM_CONFIGURE_LOGGING"] = "1"
    if "vllm" in sys.modules:  # configured already: apply the file here too
        logging.config.dictConfig(config)


def vllm_logging(log_file: Path) -> dict[str, Any]:
    """vLLM's loggers: INFO and warnings appended to ``log_file``, errors to stderr
    as well (its start-up warnings, a dozen a load, are run.log's)."""
    fmt = "[%(asctime)s][%(name)s][%(levelname)s] - (pid %(process)d) %(message)s"
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"run": {"format": fmt}},
        "handlers": {
            "file": {
                "class": "logging.FileHandler",
                "filename": str(log_file),
                "formatter": "run",
                "level": "INFO",
                "delay": True,
            },
            "console": {
                "class": "logging.StreamHandler",
                "stream": "ext://sys.stderr",
                "formatter": "run",
                "level": "ERROR",
            },
        },
        "loggers": {"vllm": {"handlers": ["file", "console"], "level": "INFO", "propagate": False}},
    }


def route_ray_worker_output() -> None:
    """Log Ray's stream of worker output (see the module) instead of printing it.

    Ray prints each batch of a worker's lines to the driver's stdout or
    stderr (its ``ray_print_logs`` handler); this replaces that handler.
    """
    from ray._private import worker

    dispatcher = worker.global_worker_stdstream_dispatcher
    if not any(name == "ray_print_logs" for name, _ in dispatcher.handlers):
        return  # log_to_driver is off: nothing comes here
    dispatcher.remove_handler("ray_print_logs")
    dispatcher.add_handler("ray_print_logs", log_worker_output)


def log_worker_output(data: dict[str, Any]) -> None:
    """One batch of a Ray worker's lines, as Ray's log monitor sends them."""
    lines = [line for line in data.get("lines", []) if line.strip()]
    if not lines:
        return
    who = data.get("actor_name") or data.get("task_name") or "worker"
    level = logging.WARNING if any(ALARM.search(line) for line in lines) else logging.INFO
    logging.getLogger(WORKER_LOG).log(
        level, "(%s pid=%s) %s", who, data.get("pid"), "\n".join(lines)
    )

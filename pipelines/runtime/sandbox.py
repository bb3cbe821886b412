"""Run untrusted Python (a proposal's code and its task's tests) in a sandbox.

Never in the driver's process: a child process under bubblewrap (``bwrap``) sees
only the system's ``/usr``, the Python installation (read-only) and a throwaway
directory; it has no network (its own empty network namespace), its own PID
namespace and ``/tmp``, no environment, and these limits (``setrlimit``):
CPU time, address space, file size, open files and processes. It runs as an
unprivileged user: ``nobody`` when the driver is root (whose process limit the
kernel does not enforce), else the driver's own user. A wall-clock timeout kills
it, and every process it started, as ``bwrap --die-with-parent`` ends with it.

Without ``bwrap`` code tasks are refused (:func:`require_sandbox`), never run
unconfined.
"""

from __future__ import annotations

import contextlib
import os
import resource
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from pipelines import UserError

INSTALL = "apt-get install bubblewrap (Debian/Ubuntu), dnf install bubblewrap (Fedora)"
NOBODY = 65534
PASSED, FAILED, TIMEOUT = "passed", "failed", "timeout"
CPU_KILLED = (128 + 9, 128 + 24)
"""Exit statuses of a program the CPU-time limit killed (SIGKILL, SIGXCPU)."""


@dataclass(frozen=True)
class Limits:
    wall_s: float = 10.0
    cpu_s: int = 5
    memory_mb: int = 512
    file_mb: int = 1
    processes: int = 16
    open_files: int = 64


@dataclass(frozen=True)
class Outcome:
    """How a program ended: ``passed`` (exit 0), ``failed`` or ``timeout``."""

    status: str
    returncode: int | None
    output: str
    """The last 2,000 characters of its stdout and stderr."""

    @property
    def passed(self) -> bool:
        return self.status == PASSED


def bwrap() -> str | None:
    return shutil.which("bwrap")


def require_sandbox() -> str:
    """The ``bwrap`` binary; raises :class:`UserError` saying how to install it."""
    found = bwrap()
    if found is None:
        raise UserError(f"code tasks (verifier python_tests) need bubblewrap: {INSTALL}")
    return found


def _python() -> tuple[Path, Path]:
    """The Python installation (its prefix) and its binary's path inside it."""
    binary = Path(os.path.realpath(sys.executable))
    prefix = Path(sys.base_prefix)
    return prefix, binary.relative_to(prefix)


def _processes(limits: Limits, root: bool) -> int:
    """The process limit: it counts every process of the user, so a non-root driver's
    user gets its current count on top (``nobody`` runs nothing else)."""
    if root:
        return limits.processes
    import psutil

    uid = os.getuid()
    mine = sum(1 for p in psutil.process_iter(["uids"]) if p.info["uids"].real == uid)
    return mine + limits.processes


def _limit(limits: Limits, processes: int) -> None:  # in the child, before exec
    mb = 1024 * 1024
    for which, value in (
        (resource.RLIMIT_CPU, limits.cpu_s),
        (resource.RLIMIT_AS, limits.memory_mb * mb),
        (resource.RLIMIT_FSIZE, limits.file_mb * mb),
        (resource.RLIMIT_NOFILE, limits.open_files),
        (resource.RLIMIT_NPROC, processes),
        (resource.RLIMIT_CORE, 0),
    ):
        resource.setrlimit(which, (value, value))


def run_python(program: str, limits: Limits = Limits()) -> Outcome:
    """Run ``program`` (Python source) in the sandbox; exit 0 is ``passed``.

    Raises:
        UserError: bubblewrap is not installed.
    """
    sandbox = require_sandbox()
    prefix, binary = _python()
    root = os.geteuid() == 0
    processes = _processes(limits, root)
    with tempfile.TemporaryDirectory(prefix="council-sandbox-") as work:
        Path(work, "main.py").write_text(program)
        if root:
            os.chown(work, NOBODY, NOBODY)
        command = [
            sandbox,
            *("--unshare-ipc", "--unshare-pid", "--unshare-net", "--unshare-uts"),
            *("--unshare-cgroup-try", "--die-with-parent", "--new-session"),
            *(("--unshare-user",) if not root else ()),
            *("--ro-bind", "/usr", "/usr"),
            *(a for d in ("lib", "lib64", "bin") for a in ("--symlink", f"usr/{d}", f"/{d}")),
            *("--ro-bind", str(prefix), "/python"),
            *("--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp"),
            *("--bind", work, "/sandbox", "--chdir", "/sandbox", "--clearenv"),
            "--",
            *(
                ("/usr/bin/setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups")
                if root
                else ()
            ),
            f"/python/{binary}",
            *("-I", "-B", "/sandbox/main.py"),
        ]
        with subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            preexec_fn=lambda: _limit(limits, processes),
        ) as child:
            try:
                out, _ = child.communicate(timeout=limits.wall_s)
            except subprocess.TimeoutExpired:
                _kill_tree(child.pid)
                out, _ = child.communicate()
                return Outcome(TIMEOUT, None, out.decode(errors="replace")[-2000:])
    output = out.decode(errors="replace")[-2000:]
    returncode = child.returncode
    if returncode in CPU_KILLED:
        return Outcome(TIMEOUT, returncode, output)
    return Outcome(PASSED if returncode == 0 else FAILED, returncode, output)


def _kill_tree(pid: int) -> None:
    """Kill bwrap and what it started: killing its PID namespace's first process makes
    the kernel kill every process in that namespace (a fork bomb's included)."""
    import psutil

    try:
        children = psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        children = []
    for process in children:
        with contextlib.suppress(psutil.NoSuchProcess):
            process.kill()
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, 9)

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
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipelines import RunStopped, UserError

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
    writable_mb: int = 16
    """The size of each writable tmpfs: /sandbox (its working folder), /tmp, /dev/shm."""


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
    """The process limit: the kernel counts every thread of the user against it, so
    a non-root driver's user gets its current count of threads on top (``nobody``
    runs nothing else). Counting processes instead left a driver with 40 idle
    threads unable to start the sandbox at all."""
    if root:
        return limits.processes
    import psutil

    uid = os.getuid()
    mine = sum(
        p.info["num_threads"] or 1
        for p in psutil.process_iter(["uids", "num_threads"])
        if p.info["uids"] is not None and p.info["uids"].real == uid
    )
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


CODE = "/sandbox/code"
"""Where a sandboxed program finds its own files (read-only)."""


def _tmpfs(path: str, mb: int) -> tuple[str, ...]:
    return ("--perms", "1777", "--size", str(mb << 20), "--tmpfs", path)


def _command(
    sandbox: str, work: str, root: bool, python: list[str], binds: list[str], writable_mb: int
) -> list[str]:
    """The bwrap line that runs ``python`` with ``work`` as ``/sandbox``; ``binds``:
    more bwrap mount arguments."""
    prefix, _ = _python()
    return [
        sandbox,
        *("--unshare-ipc", "--unshare-pid", "--unshare-net", "--unshare-uts"),
        *("--unshare-cgroup-try", "--die-with-parent", "--new-session"),
        *(("--unshare-user",) if not root else ()),
        *("--ro-bind", "/usr", "/usr"),
        *(a for d in ("lib", "lib64", "bin") for a in ("--symlink", f"usr/{d}", f"/{d}")),
        *("--ro-bind", str(prefix), "/python"),
        *binds,
        *("--proc", "/proc", "--dev", "/dev"),
        # Every writable place is a tmpfs of its own size (the host's disk, and a
        # tmpfs of half the RAM, were the limit before); the code is read-only.
        *(a for d in ("/tmp", "/dev/shm", "/sandbox") for a in _tmpfs(d, writable_mb)),
        *("--ro-bind", work, CODE, "--chdir", "/sandbox", "--clearenv"),
        # One thread per numeric library: the process limit counts threads.
        *(a for v in THREAD_VARS for a in ("--setenv", v, "1")),
        "--",
        *(
            ("/usr/bin/setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups")
            if root
            else ()
        ),
        *python,
    ]


THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def run_python(program: str, limits: Limits = Limits()) -> Outcome:
    """Run ``program`` (Python source) in the sandbox; exit 0 is ``passed``.

    Raises:
        UserError: bubblewrap is not installed.
    """
    sandbox = require_sandbox()
    _, binary = _python()
    root = os.geteuid() == 0
    processes = _processes(limits, root)
    with tempfile.TemporaryDirectory(prefix="council-sandbox-") as work:
        Path(work, "main.py").write_text(program)
        if root:
            os.chown(work, NOBODY, NOBODY)
        python = [f"/python/{binary}", "-I", "-B", f"{CODE}/main.py"]
        command = _command(sandbox, work, root, python, [], limits.writable_mb)
        with subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env={},  # bwrap's own environment: --clearenv clears only its child's
            preexec_fn=lambda: _limit(limits, processes),
        ) as child:
            assert child.stdout is not None
            start = time.monotonic()
            ended, tail, flooded = _read_capped(child.stdout.fileno(), limits.wall_s)
            try:  # its output closed: it may still run (a daemon that closed it)
                if ended and not flooded:
                    child.wait(timeout=max(0.1, limits.wall_s - (time.monotonic() - start)))
            except subprocess.TimeoutExpired:
                ended = False
            if not ended or flooded:
                _kill_tree(child.pid)
            child.wait()
    output = tail.decode(errors="replace")[-OUTPUT_TAIL:]
    if not ended:
        return Outcome(TIMEOUT, None, output)
    if flooded:
        return Outcome(FAILED, child.returncode, output + f"\n[output over {OUTPUT_CAP:,} bytes]")
    returncode = child.returncode
    if returncode in CPU_KILLED:
        return Outcome(TIMEOUT, returncode, output)
    return Outcome(PASSED if returncode == 0 else FAILED, returncode, output)


OUTPUT_CAP = 1 << 20
"""Bytes of output a sandboxed program may write; more fails it (and is never held:
only the tail is kept)."""
OUTPUT_TAIL = 2000


def _next_chunk(fd: int, deadline: float) -> bytes | None:
    """What ``fd`` gives next before ``deadline`` (``time.monotonic()``): b"" at its
    end, None when nothing came in time."""
    import select

    left = deadline - time.monotonic()
    if left <= 0 or not select.select([fd], [], [], left)[0]:
        return None
    return os.read(fd, 65536)


def _read_capped(fd: int, wall_s: float) -> tuple[bool, bytes, bool]:
    """Read ``fd`` to its end within ``wall_s``, keeping only its tail: (ended, the
    last bytes, whether it passed :data:`OUTPUT_CAP`)."""
    deadline = time.monotonic() + wall_s
    tail, total = b"", 0
    while True:
        chunk = _next_chunk(fd, deadline)
        if chunk is None:
            return False, tail, False
        if not chunk:
            return True, tail, False
        total += len(chunk)
        tail = (tail + chunk)[-4 * OUTPUT_TAIL :]
        if total > OUTPUT_CAP:
            return True, tail, True


class SandboxFailed(RunStopped):
    """The sandbox itself did not work (it could not start): the run stops (what
    landed is kept; ``pipelines.resume`` scores it once the sandbox works), never
    a wrong answer."""


SITE = "/site"
"""Where a :class:`Worker` sees the driver's installed packages (read-only)."""


def site_packages() -> str:
    """The folder of the driver's installed packages (its venv's, if it runs in one)."""
    import sysconfig

    return sysconfig.get_paths()["purelib"]


def self_test() -> None:
    """Raise :class:`SandboxFailed` unless the sandbox runs a trivial program."""
    done = run_python("print('ok')")
    if not done.passed or done.output != "ok\n":
        raise SandboxFailed(f"the code sandbox does not start: {done.output.strip()[-300:]}")


WORKER_LIMITS = Limits(wall_s=5.0, cpu_s=3600, memory_mb=4096, file_mb=1, processes=32)
"""A :class:`Worker`'s: ``wall_s`` per request; the CPU limit is its whole life's."""
LINE_CAP = 64 * 1024
"""The longest reply a :class:`Worker` reads: more is a broken worker, not a reply."""


class Worker:
    """A sandboxed Python process (the driver's installed packages read-only, at the
    folder its second argument names) that answers one JSON request per line, each
    within ``limits.wall_s``.

    ``source`` reads requests from stdin and writes one JSON reply line each to
    the file descriptor numbered by its first argument (its stdout and stderr go
    nowhere, so what the code it runs prints never reaches the driver), after a
    first line ``{"ready": true}``. A request that times out, or a reply that is
    not one short line, kills the worker: :meth:`ask` returns None and the next
    call starts a new one. A worker that cannot start raises
    :class:`SandboxFailed`.
    """

    def __init__(self, source: str, limits: Limits = WORKER_LIMITS, start_s: float = 120.0):
        self.source, self.limits, self.start_s = source, limits, start_s
        self._child: subprocess.Popen[bytes] | None = None
        self._work: tempfile.TemporaryDirectory[str] | None = None
        self._pending = b""

    def _start(self) -> None:
        sandbox = require_sandbox()
        root = os.geteuid() == 0
        self._work = tempfile.TemporaryDirectory(prefix="council-worker-")
        work = self._work.name
        Path(work, "worker.py").write_text(self.source)
        if root:
            os.chown(work, NOBODY, NOBODY)
        _, binary = _python()
        read, write = os.pipe()
        python = [f"/python/{binary}", "-I", "-B", f"{CODE}/worker.py", str(write), SITE]
        binds = ["--ro-bind", site_packages(), SITE]
        command = _command(sandbox, work, root, python, binds, self.limits.writable_mb)
        processes = _processes(self.limits, root)
        try:
            self._child = subprocess.Popen(
                command,
                stdin=subprocess.PIPE,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                pass_fds=(write,),
                env={},  # bwrap's own environment: --clearenv clears only its child's
                preexec_fn=lambda: _limit(self.limits, processes),
            )
        finally:
            os.close(write)
        self._replies = read
        self._pending = b""
        ready = self._line(self.start_s)
        if ready is None or json.loads(ready) != {"ready": True}:
            self.close()
            raise SandboxFailed(f"the sandboxed worker did not start within {self.start_s:g} s")

    def _line(self, timeout_s: float) -> bytes | None:
        """The next reply line, or None (timed out, too long, or the worker ended)."""
        deadline = time.monotonic() + timeout_s
        while b"\n" not in self._pending:
            chunk = _next_chunk(self._replies, deadline) if len(self._pending) <= LINE_CAP else None
            if not chunk:
                return None
            self._pending += chunk
        line, _, self._pending = self._pending.partition(b"\n")
        return line if len(line) <= LINE_CAP else None

    def ask(self, request: dict[str, Any]) -> dict[str, Any] | None:
        """The worker's reply to ``request``, or None when it gave none in time."""
        if self._child is None or self._child.poll() is not None:
            self.close()
            self._start()
        assert self._child is not None and self._child.stdin is not None
        try:
            self._child.stdin.write(json.dumps(request).encode() + b"\n")
            self._child.stdin.flush()
        except BrokenPipeError:
            self.close()
            return None
        line = self._line(self.limits.wall_s)
        try:
            reply = json.loads(line) if line is not None else None
        except ValueError:
            reply = None
        if not isinstance(reply, dict):
            self.close()  # killed: the next request starts a new one
            return None
        return reply

    def close(self) -> None:
        if self._child is not None:
            _kill_tree(self._child.pid)
            with contextlib.suppress(Exception):
                self._child.wait(timeout=10)
            if self._child.stdin is not None:
                with contextlib.suppress(OSError):
                    self._child.stdin.close()
            os.close(self._replies)
            self._child = None
        if self._work is not None:
            self._work.cleanup()
            self._work = None


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

"""The bench's ``ray-runtime`` peer: a resting Ray pipeline (raylet, engine host,
Ray Data's map worker) is up while the measured function runs beside it, and none
of its processes outlives it."""

import psutil

from pipelines.bench import bench_requests
from pipelines.bench.ray_runtime import beside_resting_ray
from pipelines.runtime.procs import live_descendants


def command(p: psutil.Process) -> str:
    try:
        return " ".join(p.cmdline())
    except psutil.Error:
        return ""


def test_the_resting_ray_pipeline_runs_beside_the_engine_and_stops_after() -> None:
    settings, table = bench_requests(60, 8, 30)
    beside: list[psutil.Process] = []
    commands: list[str] = []  # read while they run

    def run() -> dict:
        # Multiprocessing's resource tracker serves this process until it exits.
        beside.extend(p for p in live_descendants() if "resource_tracker" not in command(p))
        commands.extend(command(p) for p in beside)
        return {"tokens": 0}

    assert beside_resting_ray(run, settings, table) == {"tokens": 0}

    assert any("raylet" in c for c in commands), commands
    assert any(c.startswith("ray::EngineHost") for c in commands), commands
    assert any(c.startswith("ray::MapWorker") for c in commands), commands
    _, alive = psutil.wait_procs(beside, timeout=30)
    assert not alive, [command(p) for p in alive]

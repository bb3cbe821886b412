"""Live publishing costs at most 2 % of generation throughput, and a batch's
messages are acked within 1 s of its engine finishing (bracketed runs)."""

from pathlib import Path

from pipelines.bench_stream import main


def test_live_publishing_cost_and_ack_delay(model_dir: Path, tmp_path: Path) -> None:
    assert main(["--rounds", "2", "--out", str(tmp_path / "bench-stream.json")]) == 0

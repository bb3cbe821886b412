"""run.json records every resolved group, never a password, and gives the config back."""

import json
from dataclasses import asdict
from pathlib import Path

from pipelines.config import MlflowTrackingConfig, NatsSinkConfig, compose_config
from pipelines.driver.runinfo import read_run_config, write_run_info
from pipelines.spec.run_folder import RUN_INFO_FILE


def test_run_json_records_every_group_and_masks_passwords(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("NATS_URL", "nats://council:s3cret@nats:4222")
    cfg = compose_config(
        ["role=qa", "batch_size=3", "sink.stream=NIGHTLY", "tracking.experiment=nightly/qa"]
    )
    write_run_info(tmp_path, "run-1", cfg)

    text = (tmp_path / RUN_INFO_FILE).read_text()
    assert "s3cret" not in text
    info = json.loads(text)
    recorded = NatsSinkConfig(url="nats://council:***@nats:4222", stream="NIGHTLY")
    assert info["config"]["sink"] == asdict(recorded)  # stream, duplicate window, ...
    assert info["params"]["sink.duplicate_window_s"] == recorded.duplicate_window_s
    assert info["params"]["batch_size"] == 3
    assert info["params"]["role"] == "qa"

    again = read_run_config(tmp_path)
    assert isinstance(again.sink, NatsSinkConfig) and again.sink.stream == "NIGHTLY"
    assert isinstance(again.tracking, MlflowTrackingConfig)
    assert again.tracking.experiment == "nightly/qa"
    assert again.batch_size == 3 and again.system_prompts == cfg.system_prompts

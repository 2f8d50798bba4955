"""``benchmarks/gpu_throughput.py --quick``: the GPU throughput benchmark's code path, run on the CPU with a
tiny teacher; its last line is the JSON a GPU run prints. No wall-clock assertion: only that every worker
count completed trials and that the HF Trainer peer ran."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu_throughput.py"
KEYS = {
    "device",
    "trials_per_hour",
    "wall_s",
    "peer_trials_per_hour",
    "gpu_utilisation",
    "best_vs_baseline",
    "peer_slowdown",
}


@pytest.mark.slow
def test_quick_run_prints_its_figures_as_json(tmp_path: Path) -> None:
    pytest.importorskip("accelerate")  # the peer's Trainer needs it
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick", "--out", str(tmp_path / "run")],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert not KEYS - result.keys(), f"missing {KEYS - result.keys()}"
    assert set(result["trials_per_hour"]) == {"1", "2"} == set(result["wall_s"])
    for workers, per_hour in result["trials_per_hour"].items():
        assert per_hour is not None and per_hour > 0, (workers, result)
        assert result["workers_seen"][workers] == int(workers), result  # each worker completed a trial
    assert result["peer_trials_per_hour"] is not None and result["peer_trials_per_hour"] > 0, result
    assert result["peer_slowdown"] is not None
    if result["device"].startswith("cpu"):  # no GPU: nothing to sample, no H200 baseline to compare with
        assert result["gpu_utilisation"] is None and result["best_vs_baseline"] is None

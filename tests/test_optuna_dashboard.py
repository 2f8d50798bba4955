"""optuna-dashboard (the `dev` extra installs it) serves a finished study: its three named objectives and
its trials, read over HTTP from the dashboard's JSON API (optuna_dashboard/_app.py's routes)."""

from __future__ import annotations

import json
import os
import shutil
import sys
import urllib.request
from pathlib import Path
from typing import Any

import optuna
import pytest

from tests.conftest import free_port, http_server

pytestmark = pytest.mark.slow


def dashboard_command() -> str:
    """The `optuna-dashboard` console script beside this Python, else on PATH."""
    found = shutil.which(
        "optuna-dashboard",
        path=os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]),
    )
    if found is None:
        if os.environ.get("CI"):
            pytest.fail("optuna-dashboard is missing: the dev extra installs it")
        pytest.skip("pip install optuna-dashboard to run")
    return found


def get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=30) as response:
        return json.loads(response.read())


def test_optuna_dashboard_serves_the_study(tiny_study: Path, tmp_path: Path) -> None:
    command = dashboard_command()
    storage = f"sqlite:///{(tiny_study / 'optuna.db').resolve()}"
    study = optuna.load_study(study_name="tiny", storage=storage)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    cmd = [command, storage, "--host", "127.0.0.1", "--port", str(port)]
    with http_server(cmd, f"{base}/api/studies", tmp_path / "dashboard.log", timeout=120):
        summaries = get(f"{base}/api/studies")["study_summaries"]
        assert [s["study_name"] for s in summaries] == ["tiny"]
        assert summaries[0]["directions"] == ["maximize", "minimize", "minimize"]
        detail = get(f"{base}/api/studies/{summaries[0]['study_id']}")
    assert detail["name"] == "tiny"
    assert detail["objective_names"] == ["accuracy", "latency_ms", "size_mb"]
    assert sorted(t["number"] for t in detail["trials"]) == [t.number for t in study.trials]
    assert {t["number"] for t in detail["best_trials"]} == {t.number for t in study.best_trials}
    values = {t["number"]: t["values"] for t in detail["trials"]}
    for trial in study.trials:
        assert values[trial.number] == pytest.approx(trial.values)

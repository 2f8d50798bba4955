"""Hours of searching survive what hours bring: SIGKILL, Ctrl-C, faults inside trials; and runs repeat.

The kill tests send real signals to real search processes and resume them with the same command.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import optuna
import pytest
import torch
from mlflow import MlflowClient
from optuna.storages import RetryHeartbeatStaleTrialCallback
from optuna.trial import TrialState

import autodistill.search.objective
from autodistill.cli import main
from autodistill.distill.loop import DistillRecipe, distill
from autodistill.tasks.classification.encoding import Encoded
from autodistill.tasks.classification.task import LabelledBatches, SequenceClassification
from tests.conftest import search_args, search_command

pytestmark = pytest.mark.slow
SLOW_TRIALS = ["--set", "train.steps=400", "--set", "search.heartbeat_seconds=1"]


def command(space: Path, teacher: Path, data: Path, out: Path, trials: int, *extra: str) -> list[str]:
    return search_command(space, teacher, data, out, "--trials", str(trials), *SLOW_TRIALS, *extra)


def start(cmd: list[str]) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(
        cmd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        # A test run started in the background (`cmd &`) passes SIGINT on as ignored, and Python then
        # installs no KeyboardInterrupt handler: give the search Ctrl-C as a terminal would.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )


def study_of(out: Path) -> optuna.Study:
    return optuna.load_study(study_name="tiny", storage=f"sqlite:///{out / 'optuna.db'}")


def wait_for_running_trial(
    out: Path, proc: subprocess.Popen[str], after_complete: int, timeout: float = 480
) -> int:
    """Poll the real storage until a trial runs after ``after_complete`` trials have completed."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
        if (out / "optuna.db").exists():
            try:
                trials = study_of(out).trials
            except Exception:  # the study is being created
                trials = []
            complete = [t for t in trials if t.state == TrialState.COMPLETE]
            running = [t for t in trials if t.state == TrialState.RUNNING]
            if len(complete) >= after_complete and running:
                time.sleep(1.0)  # well inside the trial: its MLflow run exists, training is under way
                return running[0].number
        time.sleep(0.2)
    raise AssertionError("no running trial appeared")


def test_sigkill_during_caching_and_mid_trial_loses_nothing(
    tiny_space: Path, tiny_teacher: Path, sst2_slice: Path, tmp_path: Path
) -> None:
    out = tmp_path / "study"
    cmd = command(tiny_space, tiny_teacher, sst2_slice, out, 3)

    # 1. killed while the teacher's logits are being cached: no half-written cache is ever read
    proc = start(cmd)
    assert proc.stdout is not None
    for line in proc.stdout:
        if "teacher: computing logits" in line:
            break
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    for cached in (out / "cache").glob("*.pt"):
        torch.load(cached, weights_only=True)  # every file under its final name is whole

    # 2. killed in the middle of the second trial
    proc = start(cmd)
    killed = wait_for_running_trial(out, proc, after_complete=1)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    before = {t.number: t.values for t in study_of(out).trials if t.state == TrialState.COMPLETE}
    killed_params = study_of(out).trials[killed].params

    # 3. the same command again, once the dead trial's heartbeat is stale (2 × 1 s)
    time.sleep(3)
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    study = study_of(out)
    assert all(study.trials[n].values == v for n, v in before.items())  # nothing finished was lost
    assert study.trials[killed].state == TrialState.FAIL
    retries = [t for t in study.trials if RetryHeartbeatStaleTrialCallback.retried_trial_number(t) == killed]
    assert (
        len(retries) == 1 and retries[0].params == killed_params and retries[0].state == TrialState.COMPLETE
    )
    assert len([t for t in study.trials if t.state == TrialState.COMPLETE]) == 3
    client = MlflowClient(f"sqlite:///{out / 'mlflow.db'}")
    dead_run = client.get_run(study.trials[killed].user_attrs["mlflow_run_id"])
    assert dead_run.info.status == "KILLED" and "died" in dead_run.data.tags["fail_reason"]
    assert all(r.info.status != "RUNNING" for r in client.search_runs([dead_run.info.experiment_id]))


def test_ctrl_c_ends_the_trial_cleanly_and_resume_retries_it(
    tiny_space: Path, tiny_teacher: Path, sst2_slice: Path, tmp_path: Path
) -> None:
    out = tmp_path / "study"
    # long enough that Ctrl-C lands inside the trial, not after it: a tiny step takes 0.03-0.09 s on
    # 2 cores, so a trial lasts about a minute or more
    cmd = command(tiny_space, tiny_teacher, sst2_slice, out, 2, "--set", "train.steps=1200")
    proc = start(cmd)
    interrupted = wait_for_running_trial(out, proc, after_complete=0)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130
    assert "rerun the same command to resume" in stderr and "Traceback" not in stderr
    trial = study_of(out).trials[interrupted]
    assert trial.state == TrialState.FAIL and trial.user_attrs["interrupted"]
    run = MlflowClient(f"sqlite:///{out / 'mlflow.db'}").get_run(trial.user_attrs["mlflow_run_id"])
    assert run.info.status == "FAILED" and run.data.tags["fail_reason"] == "interrupted"

    # two whole trials: minutes on 2 busy cores (at 3000 steps, 586 s once, with a benchmark running beside)
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=1500)
    assert done.returncode == 0, done.stderr[-3000:]
    study = study_of(out)
    retry = [t for t in study.trials if t.user_attrs.get("retry_of") == interrupted]
    assert len(retry) == 1 and retry[0].params == trial.params and retry[0].state == TrialState.COMPLETE
    assert len([t for t in study.trials if t.state == TrialState.COMPLETE]) == 2


def test_same_seed_same_trials_and_metrics(
    tiny_space: Path, tiny_teacher: Path, sst2_slice: Path, tmp_path: Path
) -> None:
    """Sequential runs with the same space and seed repeat, past TPE's 8 random start-up trials when no
    objective is a measured latency; on CPU the metrics match to 1e-6 (latency aside, never repeated)."""
    studies = []
    for name in ("a", "b"):
        out = tmp_path / name
        argv = [
            *search_args(tiny_space, tiny_teacher, sst2_slice, out),
            "--trials",
            "10",
            "--seed",
            "7",
            "--set",
            "search.objectives=[accuracy, size_mb]",
        ]
        assert main(argv) == 0
        studies.append(study_of(out))
    a, b = studies
    assert len(a.trials) == 10 and all(t.state == TrialState.COMPLETE for t in a.trials)
    assert all(t.user_attrs["worker"]["sampler_seed"] == 7 for t in a.trials)
    assert [t.params for t in a.trials] == [t.params for t in b.trials]
    for x, y in zip(a.trials, b.trials, strict=True):
        for key in ("accuracy", "size_mb", "params"):
            assert x.user_attrs["metrics"][key] == pytest.approx(y.user_attrs["metrics"][key], abs=1e-6)


def test_a_non_finite_loss_stops_at_the_first_step() -> None:
    ids = torch.randint(1, 50, (8, 6))
    data = Encoded(input_ids=ids, lengths=torch.full((8,), 6), labels=torch.zeros(8, dtype=torch.long))
    from transformers import BertConfig, BertForSequenceClassification

    model = BertForSequenceClassification(
        BertConfig(
            vocab_size=50, hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32
        )
    )
    teacher_logits = torch.full((8, 2), float("nan"))
    recipe = DistillRecipe(steps=5, batch_size=4, learning_rate=1e-3, lam=0.5, temperature=2.0)
    with pytest.raises(FloatingPointError, match="at step 1"):
        distill(model, LabelledBatches(data, teacher_logits), SequenceClassification().loss, recipe, "cpu")


def test_a_study_where_every_trial_fails_says_so(
    tiny_space: Path,
    tiny_teacher: Path,
    sst2_slice: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    def out_of_memory(*_a: object, **_k: object) -> None:
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(autodistill.search.objective, "run_trial", out_of_memory)
    out = tmp_path / "study"
    argv = [
        *search_args(tiny_space, tiny_teacher, sst2_slice, out),
        "--trials",
        "2",
    ]
    assert main(argv) == 1
    printed = capsys.readouterr().out
    assert "every trial failed" in printed and "OutOfMemoryError" in printed
    study = study_of(out)
    assert [t.state for t in study.trials] == [TrialState.FAIL, TrialState.FAIL]
    assert study.trials[0].user_attrs["fail_reason"].startswith("OutOfMemoryError: CUDA out of memory")

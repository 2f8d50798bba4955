"""Early stopping in a multi-objective search: a trial already beaten at a checkpoint by a trial that
costs no more is stopped (pruned, with its reason); a promising one goes on."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest
from mlflow import MlflowClient

from autodistill.cli import main
from autodistill.config import SpaceConfig
from autodistill.search.early_stopping import EarlyStopping, checkpoint_attr
from tests.conftest import search_args

CHECKPOINT_ATTR = checkpoint_attr("accuracy")
SPACE = {
    "student": {"depth": 2, "width": 64},
    "distill": {"lambda": 0.5, "temperature": 2.0, "learning_rate": 1e-3},
    "train": {"steps": 200},
}


def completed(study: optuna.Study, accuracy_at_100: float, latency: float, size: float) -> None:
    study.add_trial(
        optuna.trial.create_trial(
            values=[accuracy_at_100 + 0.05, latency, size],
            user_attrs={
                "metrics": {"accuracy": accuracy_at_100 + 0.05, "latency_ms": latency, "size_mb": size},
                CHECKPOINT_ATTR: {"50": accuracy_at_100 - 0.1, "100": accuracy_at_100},
            },
        )
    )


def test_a_dominated_trial_is_stopped_and_a_promising_one_is_not() -> None:
    early = EarlyStopping(SpaceConfig.model_validate(SPACE), "accuracy", "maximize")
    assert early.enabled and early.steps == [50, 100, 150]
    study = optuna.create_study(directions=["maximize", "minimize", "minimize"])
    completed(study, accuracy_at_100=0.80, latency=2.0, size=10.0)  # trial 0: small, fast, good early
    completed(study, accuracy_at_100=0.90, latency=9.0, size=50.0)  # trial 1: large, slow, better

    def decide(accuracy: float, latency: float, size: float) -> str | None:
        trial = study.ask()
        reason = early.decide(trial, 100, accuracy, {"latency_ms": latency, "size_mb": size})
        assert trial.user_attrs[CHECKPOINT_ATTR] == {"100": accuracy}  # recorded either way
        study.tell(trial, state=optuna.trial.TrialState.PRUNED if reason else optuna.trial.TrialState.FAIL)
        return reason

    reason = decide(0.70, latency=3.0, size=12.0)  # larger, slower and 10 points behind trial 0
    assert reason is not None and "dominated at step 100" in reason and "trial 0's 0.8000" in reason
    assert "latency_ms 2 ≤ 3" in reason and "size_mb 10 ≤ 12" in reason
    assert decide(0.79, latency=3.0, size=12.0) is None  # within the margin: could still catch up
    assert decide(0.70, latency=1.5, size=12.0) is None  # faster than every better trial
    assert decide(0.70, latency=3.0, size=8.0) is None  # smaller than every better trial
    reason = decide(0.85, latency=9.5, size=60.0)  # beaten by trial 1 too: the best rival is named
    assert reason is not None and "trial 1's 0.9000" in reason
    # a trial completed since (by this worker or another) is a rival at the next checkpoint
    assert decide(0.70, latency=1.5, size=12.0) is None
    completed(study, accuracy_at_100=0.85, latency=1.0, size=5.0)
    reason = decide(0.70, latency=1.5, size=12.0)
    assert reason is not None and f"trial {len(study.trials) - 2}'s 0.8500" in reason


def test_each_completed_trial_is_read_once_per_worker(monkeypatch: pytest.MonkeyPatch) -> None:
    early = EarlyStopping(SpaceConfig.model_validate(SPACE), "accuracy", "maximize")
    study = optuna.create_study(directions=["maximize", "minimize", "minimize"])
    for k in range(20):
        completed(study, accuracy_at_100=0.5 + k / 100, latency=2.0 + k, size=10.0)
    read = []
    as_rival = early._as_rival
    monkeypatch.setattr(early, "_as_rival", lambda t: read.append(t.number) or as_rival(t))
    for _ in range(3):  # three checkpoints
        trial = study.ask()
        early.decide(trial, 100, 0.4, {"latency_ms": 50.0, "size_mb": 50.0})
        study.tell(trial, state=optuna.trial.TrialState.FAIL)
    assert sorted(read) == list(range(20))  # not 60: the rule's view of a finished trial is kept


def test_only_feasible_and_strictly_better_trials_stop_others() -> None:
    constrained = SpaceConfig.model_validate({**SPACE, "search": {"constraints": {"latency_ms": {"max": 5}}}})
    study = optuna.create_study(directions=["maximize", "minimize", "minimize"])
    completed(study, accuracy_at_100=0.90, latency=9.0, size=50.0)  # breaks the latency constraint
    trial = study.ask()
    assert (
        EarlyStopping(constrained, "accuracy", "maximize").decide(
            trial, 100, 0.70, {"latency_ms": 9.5, "size_mb": 60.0}
        )
        is None
    )
    assert EarlyStopping(SpaceConfig.model_validate(SPACE), "accuracy", "maximize").decide(
        trial, 100, 0.70, {"latency_ms": 9.5, "size_mb": 60.0}
    )  # the same rival counts when there is no constraint
    no_margin = SpaceConfig.model_validate({**SPACE, "search": {"early_stopping": {"margin": 0}}})
    assert (
        EarlyStopping(no_margin, "accuracy", "maximize").decide(
            trial, 100, 0.90, {"latency_ms": 9.0, "size_mb": 50.0}
        )
        is None
    )  # a tie


def test_switched_off_or_without_accuracy_it_never_checks() -> None:
    off = SpaceConfig.model_validate({**SPACE, "search": {"early_stopping": {"enabled": False}}})
    assert EarlyStopping(off, "accuracy", "maximize").steps == []
    no_accuracy = SpaceConfig.model_validate({**SPACE, "search": {"objectives": ["latency_ms", "size_mb"]}})
    assert EarlyStopping(no_accuracy, "accuracy", "maximize").steps == []
    with pytest.raises(ValueError, match=r"each in \(0, 1\)"):
        SpaceConfig.model_validate({**SPACE, "search": {"early_stopping": {"checkpoints": [0.5, 1.5]}}})


@pytest.mark.slow
def test_a_real_search_stops_beaten_trials_and_records_why(
    tiny_space: Path, tiny_teacher: Path, sst2_slice: Path, tmp_path: Path
) -> None:
    """A study that already holds an unbeatable trial (perfect at every checkpoint, free): every new
    trial is stopped at its first checkpoint; with early stopping off, the same trials complete."""
    out = tmp_path / "study"
    out.mkdir()
    storage = f"sqlite:///{out / 'optuna.db'}"
    study = optuna.create_study(
        storage=storage, study_name="tiny", directions=["maximize", "minimize", "minimize"]
    )
    study.add_trial(
        optuna.trial.create_trial(
            values=[1.0, 0.0, 0.0],
            user_attrs={
                "metrics": {"accuracy": 1.0, "latency_ms": 0.0, "size_mb": 0.0},
                CHECKPOINT_ATTR: {"2": 1.0, "4": 1.0, "6": 1.0},  # tiny space: 8 steps
            },
        )
    )
    args = search_args(tiny_space, tiny_teacher, sst2_slice, out, "--trials", "3")
    assert main([*args, "--set", "search.early_stopping.enabled=true"]) == 0

    study = optuna.load_study(study_name="tiny", storage=storage)
    assert [t.state.name for t in study.trials] == ["COMPLETE", "PRUNED", "PRUNED"]
    client = MlflowClient(f"sqlite:///{out / 'mlflow.db'}")
    for trial in study.trials[1:]:
        assert trial.user_attrs["prune_reason"].startswith("dominated at step 2: accuracy")
        assert "trial 0's 1.0000" in trial.user_attrs["prune_reason"]
        assert set(trial.user_attrs[CHECKPOINT_ATTR]) == {"2"}
        assert trial.user_attrs["metrics"]["latency_ms"] > 0 and "accuracy" not in trial.user_attrs["metrics"]
        run = client.get_run(trial.user_attrs["mlflow_run_id"])
        assert run.info.status == "FINISHED" and run.data.tags["optuna.trial_state"] == "PRUNED"
        assert run.data.tags["prune_reason"] == trial.user_attrs["prune_reason"]
        assert run.data.metrics["latency_ms"] > 0
        (point,) = client.get_metric_history(run.info.run_id, "checkpoint_accuracy")
        assert point.step == 2

    args = search_args(tiny_space, tiny_teacher, sst2_slice, out, "--trials", "4")
    assert main([*args, "--set", "search.early_stopping.enabled=false"]) == 0
    study = optuna.load_study(study_name="tiny", storage=storage)
    assert study.trials[-1].state.name == "COMPLETE"
    assert set(study.trials[-1].user_attrs.get(CHECKPOINT_ATTR, {})) == set()

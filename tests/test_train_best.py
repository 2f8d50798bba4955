"""`autodistill train --best N`: refusals before any compute, and the choosing form end to end."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
from mlflow import MlflowClient

from autodistill.store.tracking import CHOICE_TAG, ROLE_TAG


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "autodistill", *args], capture_output=True, text=True, timeout=600
    )


def one_line_refusal(done: subprocess.CompletedProcess[str], expected: str) -> None:
    assert done.returncode == 2, done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("autodistill: error: ") and expected in lines[0], lines[0]


FLAG_CASES = {
    "both TRIAL and --best": (
        ["0", "--best", "2", "--max-latency-ms", "5"],
        "give TRIAL or --best N, not both",
    ),
    "--best without a bound": (["--best", "2"], "--best needs a latency bound: --max-latency-ms X or"),
    "neither TRIAL nor --best": ([], "give TRIAL (one trial) or --best N"),
    "a bound without --best": (
        ["0", "--max-latency-fraction", "0.5"],
        "--max-latency-fraction: only with --best N",
    ),
    "--best 0": (["--best", "0", "--max-latency-ms", "5"], "--best 0: must be at least 1"),
    "a negative bound": (
        ["--best", "2", "--max-latency-ms", "-1"],
        "--max-latency-ms -1.0: must be positive",
    ),
}


@pytest.mark.parametrize("case", list(FLAG_CASES))
def test_bad_flags_are_one_line_before_the_study_is_read(tmp_path: Path, case: str) -> None:
    args, expected = FLAG_CASES[case]
    out = tmp_path / "no-study-here"  # the flags are refused before --out is even looked at
    one_line_refusal(cli("train", *args, "--out", str(out)), expected)
    assert not out.exists()


def load(out: Path) -> optuna.Study:
    return optuna.load_study(study_name="tiny", storage=f"sqlite:///{out / 'optuna.db'}")


@pytest.mark.slow
def test_no_front_student_under_the_bound_names_the_fastest(tiny_study: Path) -> None:
    study = load(tiny_study)
    fastest = min(t.user_attrs["metrics"]["latency_ms"] for t in study.best_trials)
    done = cli("train", "--best", "2", "--max-latency-ms", "1e-6", "--out", str(tiny_study))
    one_line_refusal(done, "--max-latency-ms 1e-06: no student is that fast; the fastest, trial ")
    assert f"takes {fastest:.3g} ms" in done.stderr
    assert not (tiny_study / "exports").exists() or not any((tiny_study / "exports").iterdir())


def study_with_two_front_students(tiny_study: Path, tmp_path: Path) -> tuple[str, list[int], float]:
    """A copy of the tiny study's Optuna storage with a second front student; its URL, the two
    expected candidates (best validation accuracy first) and a ``--max-latency-fraction`` both meet.

    The fixture's five trials (a random teacher) tie on accuracy, so its fastest, smallest student
    dominates the rest and the front holds one student. The stand-in reuses a real trial's recipe
    (what full-length training reads) with a made-up search accuracy just above the front's and a
    latency of 0.9 × the teacher's, so it is on the front. The tiny students and their tiny teacher
    take about the same time, so the fixture's fastest student may time above the teacher: the
    fraction is 1.0, or more when it does. The runs go to the fixture's MLflow store (tagged, so they
    are told apart), the export to ``--to`` under tmp_path.
    """
    copy = tmp_path / "optuna.db"
    shutil.copy(tiny_study / "optuna.db", copy)
    storage = f"sqlite:///{copy}"
    study = optuna.load_study(study_name="tiny", storage=storage)
    teacher_ms = study.user_attrs["teacher_reference"]["latency_ms"]
    # best first as `train --best` ranks: accuracy, then the faster, then the earlier trial
    front = sorted(
        study.best_trials,
        key=lambda t: (-t.user_attrs["metrics"]["accuracy"], t.user_attrs["metrics"]["latency_ms"], t.number),
    )
    fraction = max(1.0, 1.5 * front[0].user_attrs["metrics"]["latency_ms"] / teacher_ms)
    donor = next(t for t in study.trials if t.number != front[0].number and t.state.name == "COMPLETE")
    metrics = {
        **donor.user_attrs["metrics"],
        "accuracy": front[0].user_attrs["metrics"]["accuracy"] + 0.01,
        "latency_ms": 0.9 * teacher_ms,
    }
    attrs = {**donor.user_attrs, "metrics": metrics}
    objectives = study.user_attrs["objectives"]
    stand_in = optuna.trial.create_trial(
        params=donor.params,
        distributions=donor.distributions,
        values=[metrics[o] for o in objectives],
        user_attrs=attrs,
    )
    study.add_trial(stand_in)
    added = study.trials[-1].number
    assert {added, front[0].number} <= {t.number for t in study.best_trials}
    return storage, [added, front[0].number], fraction


@pytest.mark.slow
def test_best_two_trains_both_and_registers_the_better_on_validation(
    tiny_study: Path, tmp_path: Path
) -> None:
    storage, expected, fraction = study_with_two_front_students(tiny_study, tmp_path)
    to = tmp_path / "chosen"
    done = cli(
        "train",
        "--best",
        "2",
        "--max-latency-fraction",
        str(fraction),
        "--steps",
        "5",
        "--storage",
        storage,
        "--study",
        "tiny",
        "--to",
        str(to),
        "--model-name",
        "tiny-best",
    )
    assert done.returncode == 0, done.stderr[-3000:]

    client = MlflowClient(f"sqlite:///{tiny_study / 'mlflow.db'}")
    runs = [
        r
        for r in client.search_runs([client.get_experiment_by_name("tiny").experiment_id])
        if r.data.tags.get(ROLE_TAG) == "full-training" and CHOICE_TAG in r.data.tags
    ]
    assert sorted(int(r.data.params["source_trial"]) for r in runs) == sorted(expected)
    assert all(r.info.status == "FINISHED" and r.data.params["train.steps"] == "5" for r in runs)
    assert sorted(r.data.tags[CHOICE_TAG] for r in runs) == ["candidate", "registered"]
    (version,) = client.search_model_versions("name = 'tiny-best'")
    (registered,) = [r for r in runs if r.data.tags[CHOICE_TAG] == "registered"]
    assert version.run_id == registered.info.run_id
    # chosen on validation after training, never on test
    assert registered.data.metrics["accuracy"] == max(r.data.metrics["accuracy"] for r in runs)

    table = done.stdout[done.stdout.index("candidates, trained 5 steps each") :].splitlines()
    assert [int(line.split()[0]) for line in table[2:4]] == expected  # best before training first
    chosen = int(registered.data.params["source_trial"])
    assert f"registered trial {chosen} as 'tiny-best' version 1" in done.stdout
    assert "not chosen on" in done.stdout
    assert json.loads((to / "autodistill.json").read_text())["trial"] == chosen  # only the chosen one


def test_candidates_trained_together_share_one_hidden_state_cache(tiny_study: Path) -> None:
    """``train --best`` asks the teacher's hidden states for every candidate's depth at once, so one
    cache (one teacher pass) serves them all, not one per candidate."""
    from dataclasses import replace

    from transformers import AutoConfig

    from autodistill.deliver.full_training import TrainingLength, trial_space
    from autodistill.distill.student import select_layers, teacher_arch
    from autodistill.search.preparation import matched_layers
    from autodistill.search.sampling import TrialSettings

    study = optuna.load_study(study_name="tiny", storage=f"sqlite:///{tiny_study / 'optuna.db'}")
    trial = study.best_trials[0]
    settings = replace(TrialSettings.from_params(trial.user_attrs["settings"]), hidden_weight=1.0)
    alone, _, _ = trial_space(study, settings, TrainingLength(steps=5))
    together, _, _ = trial_space(study, settings, TrainingLength(steps=5), depths=[1, 2])
    teacher = teacher_arch(AutoConfig.from_pretrained(str(together.teacher)))
    wanted = {layer for depth in (1, 2) for layer in select_layers(teacher.depth, depth, "even")}
    assert matched_layers(together, teacher) == sorted(wanted)
    assert matched_layers(alone, teacher) == select_layers(teacher.depth, settings.arch.depth, "even")

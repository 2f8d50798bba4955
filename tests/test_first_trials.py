"""``search.first_trials``: students queued ahead of the sampler (a shape known to do well is tried first),
with a real tiny search: Optuna's queue, the trials' parameters, and a resumed study that does not queue
them again."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest

from autodistill.cli import main
from autodistill.config.spacefile import load_space
from autodistill.distill.student import StudentArch
from autodistill.search.sampling import sample
from tests.conftest import TINY_SPACE, search_args


def test_every_name_a_first_trial_may_give_is_one_a_trial_asks_for(tmp_path: Path) -> None:
    """The names the space validates first trials by are the names ``sample`` asks Optuna for."""
    space_file = tmp_path / "all.yaml"
    space_file.write_text(
        TINY_SPACE.replace("  ffn_ratio: 2\n", "  ffn_ratio: {type: categorical, choices: [1, 2]}\n")
        .replace("student:\n", "student:\n  init: {type: categorical, choices: [random, weight-select]}\n")
        .replace(
            "distill:\n",
            "distill:\n  hidden_weight: {type: float, low: 0.0, high: 1.0}\n"
            "  attention_weight: {type: float, low: 0.0, high: 1.0}\n",
        )
    )
    space = load_space(space_file).config
    named = space.values_by_trial_name()
    given = {
        "init": "weight-select", "depth": 2, "width": 64, "ffn_ratio": 1, "lambda": 0.3, "temperature": 2.5,
        "learning_rate": 5e-4, "hidden_weight": 0.7, "attention_weight": 0.2,
    }  # fmt: skip
    assert set(given) == set(named)
    study = optuna.create_study()
    study.enqueue_trial(given)
    trial = study.ask()
    settings = sample(trial, space, StudentArch(depth=2, width=64, heads=4, ffn=128))
    assert trial.params == given  # each name was asked for, and the queued value was used
    assert (settings.arch.depth, settings.arch.width, settings.arch.ffn, settings.init) == (
        2,
        64,
        64,
        "weight-select",
    )
    assert (settings.lam, settings.hidden_weight, settings.attention_weight) == (0.3, 0.7, 0.2)


@pytest.mark.slow
def test_first_trials_run_first_and_a_resumed_study_does_not_queue_them_again(
    tiny_teacher: Path, sst2_slice: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    space = tmp_path / "tiny.yaml"
    space.write_text(
        TINY_SPACE
        + "  first_trials:\n    - {depth: 2, width: 64, lambda: 0.25}\n    - {depth: 1, width: 32}\n"
    )
    out = tmp_path / "study"
    assert main(search_args(space, tiny_teacher, sst2_slice, out, "--trials", "3")) == 0
    assert "search.first_trials: 2 queued ahead of the sampler's proposals" in capsys.readouterr().out

    study = optuna.load_study(study_name="tiny", storage=f"sqlite:///{out / 'optuna.db'}")
    first, second, third = study.trials
    assert first.state == second.state == third.state == optuna.trial.TrialState.COMPLETE
    assert (first.params["depth"], first.params["width"], first.params["lambda"]) == (2, 64, 0.25)
    assert (second.params["depth"], second.params["width"]) == (1, 32)
    assert 0.0 <= second.params["lambda"] <= 1.0  # left out: sampled
    assert "fixed_params" not in third.system_attrs  # the sampler's own proposal

    assert main(search_args(space, tiny_teacher, sst2_slice, out, "--trials", "4")) == 0
    assert "queued" not in capsys.readouterr().out
    study = optuna.load_study(study_name="tiny", storage=f"sqlite:///{out / 'optuna.db'}")
    assert len(study.trials) == 4 and "fixed_params" not in study.trials[3].system_attrs

"""Every shipped space file validates and yields sensible students."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest

from autodistill.config import Dist
from autodistill.config.spacefile import load_space
from autodistill.distill.student import StudentArch
from autodistill.search.sampling import sample

MINILM = StudentArch(depth=6, width=384, heads=12, ffn=1536)
SPACES = sorted((Path(__file__).resolve().parents[1] / "search_spaces").glob("*.yaml"))


def test_there_are_space_files() -> None:
    assert any(p.name == "bert.yaml" for p in SPACES)


@pytest.mark.parametrize("path", SPACES, ids=lambda p: p.name)
def test_space_file_is_valid_and_samples(path: Path) -> None:
    space = load_space(path).config
    study = optuna.create_study(
        directions=["maximize", "minimize"], sampler=optuna.samplers.RandomSampler(seed=0)
    )
    for _ in range(20):
        trial = study.ask()
        settings = sample(trial, space, MINILM)
        if settings.init == "teacher-layers":  # whole teacher layers: the teacher's width and heads
            assert settings.arch == StudentArch(settings.arch.depth, 384, 12, 1536)
        else:
            assert settings.arch.heads * space.student.head_size == settings.arch.width
        assert 0.0 <= settings.lam <= 1.0 and settings.temperature > 0 and settings.learning_rate > 0
        study.tell(trial, [0.5, 1.0])


def test_bert_space_students_are_no_larger_than_minilm() -> None:
    space = load_space(SPACES[[p.name for p in SPACES].index("bert.yaml")]).config
    depth, width = space.student.depth, space.student.width
    assert depth.values_bound()[1] < 6 and width.values_bound()[1] <= 384  # type: ignore[union-attr]
    assert space.student.head_size <= 32 and set(space.student.init_choices()) <= {
        "weight-select",
        "teacher-layers",
    }


def test_a_searched_ffn_ratio_sets_each_students_feed_forward_size() -> None:
    path = SPACES[[p.name for p in SPACES].index("bert.yaml")]
    space = load_space(path).config
    space.student.init = "weight-select"
    space.student.ffn_ratio = Dist(type="categorical", choices=[1, 2, 4])
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    ratios = set()
    for _ in range(12):
        trial = study.ask()
        arch = sample(trial, space, MINILM).arch
        ratios.add(trial.params["ffn_ratio"])
        assert arch.ffn == arch.width * trial.params["ffn_ratio"]
        study.tell(trial, 0.5)
    assert ratios == {1, 2, 4}

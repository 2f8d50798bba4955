"""Nothing lost on interruption (issue 24): `train --best` resumes at the next candidate, a directory
swap killed half-way is put back, and what a killed writer left beside a file is cleaned, never what a
live writer is writing. The kills are real: a child process dies with SIGKILL at the moment named."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import optuna
import pytest
from mlflow import MlflowClient

from autodistill.deliver import full_training
from autodistill.deliver.candidates import RECORD, candidate_key, saved_candidate
from autodistill.deliver.full_training import TrainingLength
from autodistill.store.tracking import CHOICE_TAG
from autodistill.util.files import (
    atomic_json_save,
    compute_once,
    load_json,
    replaceable,
    swap_into_place,
    temporary_sibling,
)
from autodistill.util.leftovers import STALE_AFTER, clean_leftovers, temporary_prefix
from tests.test_train_best import study_with_two_front_students

MARKER = "autodistill.json"


def killed_child(code: str) -> None:
    """Run ``code`` in a fresh Python that ends by killing itself with SIGKILL (no cleanup runs)."""
    script = textwrap.dedent(code) + "\nimport os, signal\nos.kill(os.getpid(), signal.SIGKILL)\n"
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert done.returncode == -9, done.stderr


def hidden(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.startswith("."))


def an_export(directory: Path, text: str) -> Path:
    directory.mkdir(parents=True)
    (directory / MARKER).write_text(text)
    return directory


# --- a directory swap killed between its two renames -------------------------------------------------


def test_a_swap_killed_after_moving_the_old_one_aside_puts_it_back(tmp_path: Path) -> None:
    to = an_export(tmp_path / "export", "old")
    killed_child(f"""
        from pathlib import Path
        from autodistill.util.files import move_aside, temporary_sibling
        to = Path({str(to)!r})
        tmp = temporary_sibling(to)
        (tmp / {MARKER!r}).write_text("new")
        move_aside(to)  # ... and killed before renaming tmp into place
    """)
    assert not to.exists()  # neither the old nor the new one is in place
    assert [n.endswith(".aside") for n in hidden(tmp_path)].count(True) == 1

    assert replaceable(to, MARKER)  # the next start (every check before writing there) recovers
    assert (to / MARKER).read_text() == "old"
    assert hidden(tmp_path) == []  # the dead writer's unfinished new one is gone too

    tmp = temporary_sibling(to)
    (tmp / MARKER).write_text("newer")
    swap_into_place(tmp, to, MARKER, "an export")
    assert (to / MARKER).read_text() == "newer"
    assert hidden(tmp_path) == []


def test_a_swap_killed_before_removing_the_old_copy_keeps_the_new_one(tmp_path: Path) -> None:
    to = an_export(tmp_path / "export", "old")
    killed_child(f"""
        from pathlib import Path
        from autodistill.util.files import move_aside, temporary_sibling
        to = Path({str(to)!r})
        tmp = temporary_sibling(to)
        (tmp / {MARKER!r}).write_text("new")
        move_aside(to)
        tmp.rename(to)  # ... and killed before removing the old copy
    """)
    assert (to / MARKER).read_text() == "new"
    assert len(hidden(tmp_path)) == 1  # the old copy, aside

    temporary_sibling(to)  # the next write beside it removes it
    assert (to / MARKER).read_text() == "new"
    assert [n.endswith(".aside") for n in hidden(tmp_path)] == [False]  # only the fresh temporary


def test_a_failed_swap_leaves_the_old_directory_in_place(tmp_path: Path) -> None:
    to = an_export(tmp_path / "export", "old")
    missing = tmp_path / ".never-built.tmp"
    with pytest.raises(FileNotFoundError):
        swap_into_place(missing, to, MARKER, "an export")
    assert (to / MARKER).read_text() == "old"
    assert hidden(tmp_path) == []


# --- temporaries a killed writer left --------------------------------------------------------------


def test_a_killed_writers_temporary_is_removed_and_a_live_ones_kept(tmp_path: Path) -> None:
    cache = tmp_path / "cache" / "teacher-logits-0123.json"
    killed_child(f"""
        from pathlib import Path
        from autodistill.util.files import atomic_write

        def half(tmp):
            Path(tmp).write_text("half of a cache")
            import os, signal
            os.kill(os.getpid(), signal.SIGKILL)

        atomic_write(Path({str(cache)!r}), half)
    """)
    (dead,) = hidden(cache.parent)
    assert dead.startswith(f".{cache.name}.w") and dead.endswith(".tmp")
    # a writer in another live process, still writing the same file
    live = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, tempfile\n"
            "from pathlib import Path\n"
            "from autodistill.util.leftovers import temporary_prefix\n"
            f"p = Path({str(cache)!r})\n"
            "fd, tmp = tempfile.mkstemp(dir=p.parent, prefix=temporary_prefix(p), suffix='.tmp')\n"
            "print(tmp, flush=True)\n"
            "sys.stdin.read()\n",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert live.stdout is not None
        writing = Path(live.stdout.readline().strip())
        assert compute_once(cache, load_json, atomic_json_save, lambda: {"a": 1}) == {"a": 1}
        assert hidden(cache.parent) == [writing.name]  # the dead one is gone, the live one kept
    finally:
        live.communicate("")  # ends it
    assert clean_leftovers(cache.parent) == 1  # now its writer is gone too
    assert hidden(cache.parent) == []


def test_another_places_temporary_is_removed_only_once_it_is_a_day_old(tmp_path: Path) -> None:
    """A writer on another machine or container cannot be looked up from here: only age tells."""
    elsewhere = tmp_path / ".teacher-logits-0123.pt.w1-deadbeef.abcd1234.tmp"
    if temporary_prefix(tmp_path / "teacher-logits-0123.pt").endswith("-deadbeef."):
        pytest.skip("this machine hashes to the made-up place")
    elsewhere.write_text("a cache being written on another machine")
    users = [tmp_path / ".notes.tmp", tmp_path / ".model.abcd1234.tmp"]  # not named by our writers
    for path in users:
        path.write_text("the user's")
    assert clean_leftovers(tmp_path) == 0
    assert clean_leftovers(tmp_path, now=time.time() + STALE_AFTER / 2) == 0
    assert elsewhere.exists()
    assert clean_leftovers(tmp_path, now=time.time() + STALE_AFTER + 60) == 1
    assert not elsewhere.exists()
    assert all(path.exists() for path in users)


# --- train --best resumes at the next candidate ------------------------------------------------------


def study_copy(tiny_study: Path, tmp_path: Path) -> tuple[optuna.Study, list[int], str]:
    """A copy of the tiny study with two front students (see ``study_with_two_front_students``), the
    two (best first) and a copy of its MLflow store, so these runs never show in the fixture's own."""
    storage, expected, _ = study_with_two_front_students(tiny_study, tmp_path)
    shutil.copy(tiny_study / "mlflow.db", tmp_path / "mlflow.db")
    study = optuna.load_study(study_name="tiny", storage=storage)
    return study, expected, f"sqlite:///{tmp_path / 'mlflow.db'}"


class InterruptSecond:
    """``run_trial`` that is interrupted (Ctrl-C) when the second candidate starts training."""

    def __init__(self, interrupt_at: int | None):
        self.calls, self.interrupt_at, self.real = 0, interrupt_at, full_training.run_trial

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        self.calls += 1
        if self.calls == self.interrupt_at:
            raise KeyboardInterrupt
        return self.real(*args, **kwargs)


def test_an_interrupted_train_best_resumes_at_the_next_candidate(
    tiny_study: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    study, expected, uri = study_copy(tiny_study, tmp_path)
    trials = [study.trials[n] for n in expected]  # best validation before training first
    saved_in, to, length = tmp_path / "candidates", tmp_path / "chosen", TrainingLength(steps=5)
    lines: list[str] = []

    def train_best() -> full_training.BestResult:
        return full_training.train_best(
            study, trials, length, lambda n: to, "tiny-resume", uri, None, lines.append, saved_in=saved_in
        )

    first_run = InterruptSecond(interrupt_at=2)
    monkeypatch.setattr(full_training, "run_trial", first_run)
    with pytest.raises(KeyboardInterrupt):
        train_best()
    saved = json.loads((saved_in / f"trial-{expected[0]}" / RECORD).read_text())
    assert saved["trial"] == expected[0] and not (saved_in / f"trial-{expected[1]}").exists()
    assert {"validation_before", "validation_after", "test_after", "mlflow_run_id"} <= set(saved)
    client = MlflowClient(uri)
    run = client.get_run(saved["mlflow_run_id"])
    assert run.info.status == "FINISHED" and run.data.tags[CHOICE_TAG] == "candidate"
    assert not to.exists()

    lines.clear()
    rerun = InterruptSecond(interrupt_at=None)
    monkeypatch.setattr(full_training, "run_trial", rerun)
    result = train_best()
    assert rerun.calls == 1  # only the second candidate was trained
    reused = next(line for line in lines if line.startswith(f"candidate 1 of 2: trial {expected[0]}"))
    assert reused.endswith("), reused") and "already trained (validation accuracy" in reused
    first, second = result.candidates
    assert (first.run_id, first.after, first.test_after) == (
        saved["mlflow_run_id"],
        saved["validation_after"],
        saved["test_after"],
    )
    # the choice rule is unchanged: the best on validation after training, whichever run trained it
    assert result.chosen == (0 if first.after >= second.after else 1)
    best = result.candidates[result.chosen]
    assert json.loads((to / MARKER).read_text())["trial"] == best.trial.number
    assert client.get_run(best.run_id).data.tags[CHOICE_TAG] == "registered"
    assert client.get_run(best.run_id).info.status == "FINISHED"


def test_a_saved_candidate_is_reused_only_when_it_still_fits(tiny_study: Path, tmp_path: Path) -> None:
    study, expected, uri = study_copy(tiny_study, tmp_path)
    trial = study.trials[expected[1]]
    saved_in = tmp_path / "candidates"
    tracker = full_training.study_tracker(study, uri)
    length = TrainingLength(steps=3)
    full_training.train_candidates(study, [trial], length, tracker, None, print, saved_in=saved_in)

    key = candidate_key(study, trial, length)
    assert saved_candidate(saved_in, trial, key, tracker.has_run)[0] is not None
    other_steps = candidate_key(study, trial, TrainingLength(steps=4))
    assert "other settings" in saved_candidate(saved_in, trial, other_steps, tracker.has_run)[1]
    assert "not in this tracking store" in saved_candidate(saved_in, trial, key, lambda run: False)[1]
    for weights in (saved_in / f"trial-{trial.number}").glob("*.safetensors"):
        os.unlink(weights)
    assert "files are missing" in saved_candidate(saved_in, trial, key, tracker.has_run)[1]

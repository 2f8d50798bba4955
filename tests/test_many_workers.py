"""Many workers, one teacher cache, and the ecosystem's own tools (MLflow's UI, optuna-dashboard).

Two real `autodistill search` processes started together share one ``--cache-dir``; the lock behind it
is also tested on its own, with callers released at the same instant, where a missing lock shows.
"""

from __future__ import annotations

import multiprocessing
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import optuna
import pytest
from mlflow import MlflowClient

from autodistill.cli.main import browse_lines
from autodistill.config.spacefile import load_space
from autodistill.search.study import comparable_fingerprint, make_sampler
from autodistill.store.caches import cached
from autodistill.store.locations import experiment_url
from autodistill.store.studies import study_cache_dir
from autodistill.store.tracking import ROLE_TAG, STUDY_TAG, Tracker
from tests.conftest import TINY_SPACE, search_command

OBJECTIVES = ["accuracy", "latency_ms", "size_mb"]


def test_tpe_penalises_the_trials_other_workers_are_running() -> None:
    sampler = make_sampler("tpe", seed=0)
    assert isinstance(sampler, optuna.samplers.TPESampler)
    assert sampler._constant_liar is True  # optuna/samplers/_tpe/sampler.py keeps the flag here
    assert sampler._multivariate is True and sampler._group is True


def _compute_through_the_cache(cache_dir: Path, calls: Path, start: Any, results: Any) -> None:
    def slow_compute() -> dict[str, int]:
        with calls.open("a") as f:
            f.write("computed\n")
        time.sleep(1.0)  # long enough that every caller arrives while the first computes
        return {"value": 42}

    start.wait()
    results.put(cached("slow", cache_dir, ["key"], slow_compute, fmt="json"))


def test_callers_released_together_compute_a_cache_once(tmp_path: Path) -> None:
    # fork: the children need only this function, and none of them touches torch
    context = multiprocessing.get_context("fork")
    start, results = context.Barrier(3), context.Queue()
    calls = tmp_path / "calls.txt"
    workers = [
        context.Process(target=_compute_through_the_cache, args=(tmp_path / "cache", calls, start, results))
        for _ in range(3)
    ]
    for w in workers:
        w.start()
    values = [results.get(timeout=60) for _ in workers]
    for w in workers:
        w.join(timeout=60)
        assert w.exitcode == 0
    assert values == [{"value": 42}] * 3
    assert calls.read_text().splitlines() == ["computed"]
    assert len(list((tmp_path / "cache").glob("slow-*.json"))) == 1


def test_a_study_keeps_its_cache_dir_unless_another_is_chosen(tmp_path: Path) -> None:
    study = optuna.create_study(directions=["maximize", "minimize"])
    default = tmp_path / "out" / "cache"
    assert study_cache_dir(study, None, default) == default  # nothing recorded
    shared = tmp_path / "shared-cache"
    study.set_user_attr("cache_dir", str(shared))
    assert study_cache_dir(study, None, default) == default  # recorded, but not on this machine
    shared.mkdir()
    assert study_cache_dir(study, None, default) == shared
    assert study_cache_dir(study, tmp_path / "flag", default) == tmp_path / "flag"


def test_moving_the_cache_keeps_a_study_resumable(tiny_space: Path) -> None:
    config = load_space(tiny_space).config
    moved = load_space(tiny_space, ["cache.dir=/shared/cache"]).config
    assert moved.cache.dir == "/shared/cache"
    assert comparable_fingerprint(moved) == comparable_fingerprint(config)


def test_experiment_urls() -> None:
    assert (
        experiment_url("sqlite:////x/mlflow.db", "7")
        == "http://127.0.0.1:5000/#/experiments/7/runs?workflowType=machine_learning"
    )
    assert (
        experiment_url("https://u:secret@mlflow.example/", "7")
        == "https://u:***@mlflow.example/#/experiments/7/runs?workflowType=machine_learning"
    )


def test_a_tracking_server_is_browsed_at_its_own_address() -> None:
    lines = browse_lines("https://u:secret@mlflow.example", "postgresql://u:secret@db/optuna", "3")
    assert lines == (
        "browse the runs:  https://u:***@mlflow.example/#/experiments/3/runs?workflowType=machine_learning\n"
        "or:  optuna-dashboard postgresql://u:***@db/optuna"
    )


def test_an_experiment_created_before_gets_its_kind(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(uri)
    old = client.create_experiment("older-study")
    assert "mlflow.experimentKind" not in client.get_experiment(old).tags
    assert Tracker(uri, "older-study").experiment_id == old
    assert client.get_experiment(old).tags["mlflow.experimentKind"] == "custom_model_development"


def test_workers_settle_on_the_earliest_parent_run_even_when_it_lands_late(tmp_path: Path) -> None:
    """Through a server a run's start time is taken before its request lands: a worker can create the
    first visible parent run, and a run stamped earlier by another worker arrives after it. Both workers
    must settle on that earlier one (CI saw two parent runs when the first worker kept its own)."""
    import threading

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    tracker = Tracker(uri, "racing")
    client = MlflowClient(uri)
    settled: list[str] = []
    worker = threading.Thread(target=lambda: settled.append(tracker.start_study({})))
    worker.start()
    study_runs = f"tags.`{ROLE_TAG}` = 'study'"
    while not (mine := client.search_runs([tracker.experiment_id], filter_string=study_runs)):
        time.sleep(0.05)
    stamped_earlier = mine[0].info.start_time - 500
    late = client.create_run(
        tracker.experiment_id, start_time=stamped_earlier, tags={ROLE_TAG: "study", STUDY_TAG: "racing"}
    )
    worker.join()
    assert settled == [late.info.run_id]
    remaining = client.search_runs([tracker.experiment_id], filter_string=study_runs)
    assert [r.info.run_id for r in remaining] == [late.info.run_id]
    # a second worker arriving now reads the same parent
    assert Tracker(uri, "racing").start_study({}) == late.info.run_id


@pytest.fixture(scope="module")
def two_workers(
    tmp_path_factory: pytest.TempPathFactory, tiny_teacher: Path, sst2_slice: Path
) -> dict[str, Any]:
    """Two one-trial searches started together, each with its own --out, sharing one --cache-dir."""
    root = tmp_path_factory.mktemp("two-workers")
    space = root / "tiny.yaml"
    space.write_text(TINY_SPACE)
    cache = root / "shared-cache"
    outs = [root / "machine-a", root / "machine-b"]
    procs = [
        subprocess.Popen(
            search_command(space, tiny_teacher, sst2_slice, out, "--trials", "1", "--cache-dir", str(cache)),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for out in outs
    ]
    done = []
    for p in procs:
        stdout, stderr = p.communicate(timeout=600)
        done.append((p.returncode, stdout, stderr))
    return {"root": root, "space": space, "cache": cache, "outs": outs, "done": done}


@pytest.mark.slow
def test_two_workers_compute_the_teachers_targets_once(two_workers: dict[str, Any]) -> None:
    for code, stdout, stderr in two_workers["done"]:
        assert code == 0, stdout[-2000:] + stderr[-3000:]
    stdout = "".join(out for _, out, _ in two_workers["done"])
    assert stdout.count("teacher: computing logits") == 1
    assert stdout.count("teacher: measuring") == 1
    # the log says which worker computed the teacher's logits and which reused them
    logits = [
        line for line in stdout.splitlines() if "teacher-logits-" in line and line.startswith("cache: ")
    ]
    assert sorted(line.split()[1] for line in logits) == ["computed", "reused"], logits
    cache: Path = two_workers["cache"]
    assert len(list(cache.glob("teacher-logits-*.pt"))) == 1
    assert len(list(cache.glob("teacher-reference-*.json"))) == 1
    for out in two_workers["outs"]:
        assert not (out / "cache").exists()
        study = optuna.load_study(study_name="tiny", storage=f"sqlite:///{out / 'optuna.db'}")
        assert study.user_attrs["cache_dir"] == str(cache.resolve())


@pytest.mark.slow
def test_the_study_opens_in_mlflow_and_optuna_dashboard(two_workers: dict[str, Any]) -> None:
    code, stdout, stderr = two_workers["done"][0]
    assert code == 0, stderr[-3000:]
    out = two_workers["outs"][0]
    experiment = MlflowClient(f"sqlite:///{out / 'mlflow.db'}").get_experiment_by_name("tiny")
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"
    assert (
        f"then open http://127.0.0.1:5000/#/experiments/{experiment.experiment_id}/runs?workflowType=machine_learning\n"
        in stdout
    )
    storage = f"sqlite:///{(out / 'optuna.db').resolve()}"
    assert f"\nor:  optuna-dashboard {storage}\n" in stdout
    assert optuna.load_study(study_name="tiny", storage=storage).metric_names == OBJECTIVES


@pytest.mark.slow
def test_train_uses_the_cache_dir_the_search_used(two_workers: dict[str, Any]) -> None:
    out = two_workers["outs"][0]
    before = set(two_workers["cache"].glob("teacher-logits-*.pt"))
    cmd = [sys.executable, "-m", "autodistill", "train", "0", "--out", str(out), "--steps", "2"]
    cmd += ["--to", str(two_workers["root"] / "trial-0-full")]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    # --steps 2 labels another subset of examples: its targets are new, and land in the shared cache
    assert len(set(two_workers["cache"].glob("teacher-logits-*.pt")) - before) == 1
    assert not (out / "cache").exists()


@pytest.mark.slow
def test_a_resume_without_the_flag_keeps_the_studys_cache(
    two_workers: dict[str, Any], tiny_teacher: Path, sst2_slice: Path
) -> None:
    out = two_workers["outs"][1]
    cmd = search_command(two_workers["space"], tiny_teacher, sst2_slice, out, "--trials", "1")
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    assert f"teacher cache: {two_workers['cache'].resolve()}, where this study kept it" in done.stdout
    assert "already has 1 finished trials" in done.stdout and "teacher: computing" not in done.stdout
    assert not (out / "cache").exists()

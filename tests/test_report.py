"""The report: its data (front membership, counts, importances) without rendering, and the page in Chromium."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import optuna
import pytest

from autodistill.report.html import render
from autodistill.report.pareto import importances, trials_frame
from tests.test_pareto import DIRECTIONS, add


def test_report_data_front_membership_counts_and_importances() -> None:
    study = optuna.create_study(directions=DIRECTIONS, sampler=optuna.samplers.RandomSampler(seed=0))
    study.set_user_attr("objectives", ["accuracy", "latency_ms", "size_mb"])
    points = [(0.8, 2.0, 20.0), (0.7, 3.0, 30.0), (0.9, 5.0, 50.0), (0.6, 1.0, 10.0)]
    for i, p in enumerate(points):
        add(study, i, *p)
    frame = trials_frame(study)
    assert list(frame["on_front"]) == [True, False, True, True]
    page = render(study, {"accuracy": 0.95, "latency_ms": 9.0, "size_mb": 90.0})
    assert page.count('id="fig-') == 4 and 'id="trials"' in page
    assert "4 trials (4 complete), 3 on the front" in page


def test_importances_per_objective_name_the_searched_parameters() -> None:
    study = optuna.create_study(directions=DIRECTIONS, sampler=optuna.samplers.RandomSampler(seed=0))
    study.set_user_attr("objectives", ["accuracy", "latency_ms", "size_mb"])

    def objective(trial: optuna.Trial) -> tuple[float, float, float]:
        depth = trial.suggest_int("depth", 1, 4)
        lam = trial.suggest_float("lambda", 0.0, 1.0)
        return (
            0.5 + 0.1 * lam,
            float(depth),
            10.0 * depth,
        )  # accuracy follows λ, latency and size follow depth

    study.optimize(objective, n_trials=24)
    scores = importances(study)
    assert set(scores) == {"accuracy", "latency_ms", "size_mb"}
    assert max(scores["accuracy"], key=scores["accuracy"].get) == "lambda"
    assert max(scores["latency_ms"], key=scores["latency_ms"].get) == "depth"
    assert sum(scores["size_mb"].values()) == pytest.approx(1.0)


def test_report_with_no_completed_trial_still_renders() -> None:
    study = optuna.create_study(directions=DIRECTIONS)
    study.tell(study.ask(), state=optuna.trial.TrialState.FAIL)
    assert "1 trials (0 complete), 0 on the front" in render(study, {})


CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.mark.slow
def test_report_renders_in_headless_chromium(tiny_study: Path, tmp_path: Path) -> None:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        if os.environ.get("CI"):
            pytest.fail("CI must install Debian's chromium (see .ci/run)")
        pytest.skip("no system Chromium")
    from playwright.sync_api import sync_playwright

    study = optuna.load_study(study_name="tiny", storage=f"sqlite:///{tiny_study / 'optuna.db'}")
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1300, "height": 1600})
        page.goto((tiny_study / "report.html").as_uri())
        page.wait_for_selector("#fig-history .scatterlayer")
        counts = page.evaluate("""() => ({
          latency: document.querySelectorAll('#fig-latency .scatterlayer path.point').length,
          size: document.querySelectorAll('#fig-size .scatterlayer path.point').length,
          front: document.querySelectorAll('#fig-latency .scatterlayer .trace:nth-child(2) path.point').length,
          rows: document.querySelectorAll('#trials tbody tr').length,
          bars: document.querySelectorAll('#fig-importance .barlayer path').length,
          importance: document.querySelector('#fig-importance').textContent,
          first: document.querySelector('#trials tbody tr td').textContent,
        })""")
        page.click("#trials th:nth-child(1)")  # sort by trial, descending after the first click
        page.click("#trials th:nth-child(1)")
        first_after_sort = page.evaluate("document.querySelector('#trials tbody tr td').textContent")
        page.screenshot(path=str(tmp_path / "report.png"), full_page=True)
        browser.close()
    assert counts["latency"] == counts["size"] == len(complete) + 1  # every complete trial and the teacher
    assert counts["front"] == len(study.best_trials)
    assert counts["rows"] == len(study.trials)
    # 5 complete trials: too few for importances, so the chart says why instead of drawing noise
    assert counts["bars"] == 0 and "importances need ≥ 10 complete trials" in counts["importance"]
    assert first_after_sort == str(max(t.number for t in study.trials))
    assert (tmp_path / "report.png").stat().st_size > 10_000

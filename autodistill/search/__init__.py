"""The search: check inputs, prepare the study's shared job once, and run trials in an Optuna study
(sampling, one trial, early stopping, the objective, the per-trial callbacks, the controller)."""

from autodistill.search.controller import SearchResult, run_search
from autodistill.search.inputs import inspect_inputs
from autodistill.search.preparation import Job, prepare_job
from autodistill.search.sampling import TrialSettings, sample
from autodistill.search.study import SearchError, open_study
from autodistill.search.trial import run_trial

__all__ = [
    "Job",
    "SearchError",
    "SearchResult",
    "TrialSettings",
    "inspect_inputs",
    "open_study",
    "prepare_job",
    "run_search",
    "run_trial",
    "sample",
]

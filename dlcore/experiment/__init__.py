"""Experiments: build once from a config, run, resume, evaluate, sweep and sample."""

from dlcore.experiment.build import Experiment, build
from dlcore.experiment.overfit import OverfitReport, check_overfit
from dlcore.experiment.restore import RestoredRun, load_checkpoint, restore_run, template_state
from dlcore.experiment.run import evaluate_run, resume_experiment, run_experiment, validation_hook

__all__ = [
    "Experiment",
    "OverfitReport",
    "RestoredRun",
    "build",
    "check_overfit",
    "evaluate_run",
    "load_checkpoint",
    "restore_run",
    "resume_experiment",
    "run_experiment",
    "template_state",
    "validation_hook",
]

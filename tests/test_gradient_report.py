"""The gradient report shows vanishing, exploding and preserved BPTT gradients."""

import importlib.util

from tests.helpers import REPO


def load_report():
    spec = importlib.util.spec_from_file_location(
        "gradient_report", REPO / "examples" / "gradient_report.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_profiles_vanish_explode_and_are_preserved():
    report = load_report()
    profiles = report.gradient_profiles(steps=60, hidden=16, batch=2)
    vanishing, exploding, lstm = (profiles[label] for label, _, _ in report.CASES)
    # ratio of the gradient reaching the first step to the one at the last step
    assert vanishing[0] / vanishing[-1] < 1e-6
    assert exploding[0] / exploding[-1] > 1e3
    assert 1e-3 < lstm[0] / lstm[-1] < 10

"""moto's EMR runs no step: decide in its backend how submitted steps end (state, FailureDetails, reason)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from moto.emr.models import Cluster, Step


def patch_step_outcomes(
    monkeypatch: pytest.MonkeyPatch, on_completed: Callable[[list[str]], None] | None = None
) -> dict[str, Any]:
    """Make every step added from now on end as ``outcome`` says; tests change the returned dict.

    :param on_completed: called with the step's args for a COMPLETED step (e.g. to do S3DistCp's copy).
    """
    outcome: dict[str, Any] = {"state": "COMPLETED", "failure_details": None, "reason": None}
    add_steps, status = Cluster.add_steps, Step.status

    def add_steps_ending(self, steps):
        added = add_steps(self, steps)
        for step in added:
            if on_completed is not None and outcome["state"] == "COMPLETED":
                on_completed(step.args)
            step.state = outcome["state"]
            step.failure_details = outcome["failure_details"]
            if outcome["reason"]:
                step.last_state_change_reason = outcome["reason"]
        return added

    def status_with_failure_details(self):
        result = status.fget(self)
        if getattr(self, "failure_details", None):
            result["FailureDetails"] = self.failure_details
        return result

    monkeypatch.setattr(Cluster, "add_steps", add_steps_ending)
    monkeypatch.setattr(Step, "status", property(status_with_failure_details))
    return outcome

"""Steps on an existing EMR cluster, through the amazon provider: submit, describe, wait, defer, cancel.

Every EMR step of the provider (the S3DistCp copies of :mod:`airflow_hybrid.migration.s3distcp`, the SQL
steps of :mod:`airflow_hybrid.query.steps`) goes through :class:`EmrSteps`, on the provider's
:class:`~airflow.providers.amazon.aws.hooks.emr.EmrHook`. A synchronous wait runs the provider's
``step_wait_for_terminal`` waiter, the one its :class:`~airflow.providers.amazon.aws.triggers.emr.EmrStepSensorTrigger`
runs on the triggerer for a deferred wait, so both ways end the same: at a terminal state, after which the
step's own :class:`StepStatus` (``DescribeStep``) decides and gives the failure reason.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from airflow.providers.amazon.aws.hooks.emr import EmrHook
    from airflow.providers.amazon.aws.triggers.emr import EmrStepSensorTrigger

#: Terminal step states (``DescribeStep``): only COMPLETED means the step did its work.
STEP_COMPLETED = "COMPLETED"
STEP_FAILURE_STATES = ("FAILED", "CANCELLED", "INTERRUPTED")
STEP_TERMINAL_STATES = (STEP_COMPLETED, *STEP_FAILURE_STATES)
#: The provider's waiter (``amazon/aws/waiters/emr.json``) that ends at any terminal state.
TERMINAL_WAITER = "step_wait_for_terminal"


@dataclass(frozen=True)
class StepStatus:
    """A step's state and, when it did not complete, why (its ``FailureDetails`` and state-change reason)."""

    step_id: str
    name: str | None
    state: str
    reason: str | None = None
    message: str | None = None
    log_file: str | None = None
    change_reason: str | None = None

    @classmethod
    def from_response(cls, response: Mapping[str, Any]) -> StepStatus:
        """The status in a ``describe_step`` response."""
        step = response["Step"]
        status = step["Status"]
        details = status.get("FailureDetails") or {}
        return cls(
            step_id=step.get("Id", ""),
            name=step.get("Name"),
            state=status["State"],
            reason=details.get("Reason"),
            message=details.get("Message"),
            log_file=details.get("LogFile"),
            change_reason=(status.get("StateChangeReason") or {}).get("Message"),
        )

    @property
    def completed(self) -> bool:
        return self.state == STEP_COMPLETED

    @property
    def terminal(self) -> bool:
        return self.state in STEP_TERMINAL_STATES

    def details(self) -> str:
        """Every reason given, joined: failure reason, message, log file, state-change message."""
        parts = (self.reason, self.message, self.log_file, self.change_reason)
        return "; ".join(str(p) for p in parts if p) or "no reason given"

    def failure_text(self) -> str:
        """One line: ``EMR step <id> (<name>) ended <state>: <reason> -- <message> (log: <file>)``."""
        text = f"EMR step {self.step_id} ({self.name}) ended {self.state}"
        reason = self.reason or self.change_reason
        if reason:
            text += f": {reason}"
        if self.message:
            text += f" -- {self.message}"
        if self.log_file:
            text += f" (log: {self.log_file})"
        return text


class EmrSteps:
    """The steps of cluster ``job_flow_id``, through the amazon provider's ``EmrHook``.

    :param job_flow_id: the EMR cluster (job flow) id.
    :param aws_conn_id: the AWS connection.
    :param region_name: the cluster's region (default: the connection's).
    """

    def __init__(self, job_flow_id: str, aws_conn_id: str | None = "aws_default", region_name: str | None = None):
        self.job_flow_id = job_flow_id
        self.aws_conn_id = aws_conn_id
        self.region_name = region_name

    @cached_property
    def hook(self) -> EmrHook:
        from airflow.providers.amazon.aws.hooks.emr import EmrHook

        return EmrHook(aws_conn_id=self.aws_conn_id, region_name=self.region_name)

    def submit(self, steps: Sequence[Mapping[str, Any]]) -> list[str]:
        """Add ``steps`` (``AddJobFlowSteps`` definitions) to the cluster; return their ids, in order."""
        return self.hook.add_job_flow_steps(job_flow_id=self.job_flow_id, steps=list(steps))

    def describe(self, step_id: str) -> StepStatus:
        return StepStatus.from_response(self.hook.conn.describe_step(ClusterId=self.job_flow_id, StepId=step_id))

    def wait(self, step_id: str, *, delay: float, max_attempts: int) -> tuple[StepStatus, str | None]:
        """Wait with the provider's waiter until the step is terminal; return its status and, when the waiter
        gave up first (``max_attempts``, an API error), the waiter's message."""
        from airflow.exceptions import AirflowException
        from airflow.providers.amazon.aws.utils.waiter_with_logging import wait

        try:
            wait(
                waiter=self.hook.get_waiter(TERMINAL_WAITER),
                waiter_delay=int(delay),
                waiter_max_attempts=max_attempts,
                args={"ClusterId": self.job_flow_id, "StepId": step_id},
                failure_message=f"EMR step {step_id} did not complete",
                status_message=f"EMR step {step_id} on {self.job_flow_id} is",
                status_args=["Step.Status.State"],
            )
        except AirflowException as err:
            return self.describe(step_id), str(err)
        return self.describe(step_id), None

    def trigger(self, step_id: str, *, delay: int, max_attempts: int) -> EmrStepSensorTrigger:
        """The provider's trigger that waits on the triggerer for the step to be terminal."""
        from airflow.providers.amazon.aws.triggers.emr import EmrStepSensorTrigger

        return EmrStepSensorTrigger(
            job_flow_id=self.job_flow_id, step_id=step_id, waiter_delay=delay, waiter_max_attempts=max_attempts,
            aws_conn_id=self.aws_conn_id, region_name=self.region_name,
        )

    def cancel(self, step_id: str) -> None:
        self.hook.conn.cancel_steps(ClusterId=self.job_flow_id, StepIds=[step_id])


class EmrStepWaitMixin:
    """For operators that wait for EMR steps: on the triggerer when ``deferrable`` (the provider's trigger),
    else in the task (the provider's waiter); ``waiter_delay`` seconds between checks, ``waiter_max_attempts``."""

    deferrable: bool
    waiter_delay: int
    waiter_max_attempts: int

    def wait_for_step(
        self, steps: EmrSteps, step_id: str, *, kwargs: dict[str, Any], method_name: str = "execute_complete"
    ) -> tuple[StepStatus, str | None]:
        """Defer on the step (the task resumes in ``method_name`` with ``kwargs``), or wait for it and return
        :meth:`EmrSteps.wait`'s status and message."""
        if self.deferrable:
            self.defer(  # type: ignore[attr-defined]
                trigger=steps.trigger(step_id, delay=self.waiter_delay, max_attempts=self.waiter_max_attempts),
                method_name=method_name,
                kwargs=kwargs,
            )
        return steps.wait(step_id, delay=self.waiter_delay, max_attempts=self.waiter_max_attempts)

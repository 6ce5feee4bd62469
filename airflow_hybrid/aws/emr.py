"""The bulk copy path: an S3DistCp step on an existing EMR cluster, through the amazon provider.

For a batch of a plan, the files that still need a copy are written, one source URI a line, to a
manifest on S3 (S3DistCp's ``--srcPrefixesFile``) by the file-list writer it shares with DistCp
(:func:`airflow_hybrid.migration.distcp.write_file_lists`); one step per (REMOVE member, STORE member) pair is
submitted to the cluster::

    command-runner.jar s3-dist-cp --src hdfs://nn:8020/warehouse --dest s3://bucket/warehouse
                                  --srcPrefixesFile s3://bucket/manifests/<plan>/00003-hdfs-s3.txt

S3DistCp keeps each file's path relative to ``--src`` under ``--dest``, so the copy lands at the same
logical path of the mount. When a step is COMPLETED the operator runs the same verification and removal
as the local path (:class:`~airflow_hybrid.migration.migrator.Migrator` with ``copy=False``); a step that FAILED,
was CANCELLED or INTERRUPTED fails the task with its reason and removes nothing.

Files whose STORE member already holds an identical copy, or a conflicting object (never overwritten),
are left out of the manifest: S3DistCp itself overwrites whatever is at the destination.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from typing import Any

log = logging.getLogger(__name__)

#: Terminal step states (``DescribeStep``): only COMPLETED lets the removal run.
STEP_COMPLETED = "COMPLETED"
STEP_FAILURE_STATES = ("FAILED", "CANCELLED", "INTERRUPTED")
STEP_TERMINAL_STATES = (STEP_COMPLETED, *STEP_FAILURE_STATES)


def s3distcp_step(
    name: str,
    src: str,
    dest: str,
    manifest_uri: str,
    *,
    extra_args: Iterable[str] = (),
    action_on_failure: str = "CONTINUE",
) -> dict[str, Any]:
    """The ``AddJobFlowSteps`` step that runs S3DistCp over the files listed in ``manifest_uri``."""
    return {
        "Name": name,
        "ActionOnFailure": action_on_failure,
        "HadoopJarStep": {
            "Jar": "command-runner.jar",
            "Args": [
                "s3-dist-cp",
                "--src",
                src,
                "--dest",
                dest,
                "--srcPrefixesFile",
                manifest_uri,
                *extra_args,
            ],
        },
    }


def describe_step(emr_client: Any, job_flow_id: str, step_id: str) -> tuple[str, str]:
    """``(state, reason)`` of a step; the reason joins its failure details and state-change message."""
    status = emr_client.describe_step(ClusterId=job_flow_id, StepId=step_id)["Step"]["Status"]
    details = status.get("FailureDetails") or {}
    parts = [
        details.get("Reason"),
        details.get("Message"),
        details.get("LogFile"),
        (status.get("StateChangeReason") or {}).get("Message"),
    ]
    return status["State"], "; ".join(str(p) for p in parts if p) or "no reason given"


def wait_for_step(
    emr_client: Any, job_flow_id: str, step_id: str, *, delay: float = 30.0, max_attempts: int = 2880
) -> tuple[str, str]:
    """Poll a step until it reaches a terminal state; return ``(state, reason)``.

    :raises TimeoutError: still running after ``max_attempts`` polls.
    """
    for attempt in range(max_attempts):
        state, reason = describe_step(emr_client, job_flow_id, step_id)
        if state in STEP_TERMINAL_STATES:
            return state, reason
        if attempt % 10 == 0:
            log.info("S3DistCp step %s on %s is %s", step_id, job_flow_id, state)
        time.sleep(delay)
    raise TimeoutError(
        f"S3DistCp step {step_id} on {job_flow_id} did not finish after {max_attempts} polls of {delay}s"
    )

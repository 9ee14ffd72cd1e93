"""Job states of CI PicProcess jobs and the sets every waiting component shares.

One enum, one place: the operator, the sensor and the trigger all decide "keep waiting",
"succeeded" or "failed" from these sets, so they cannot disagree.
"""

from __future__ import annotations

from enum import Enum


class JobState(str, Enum):  # noqa: UP042 (StrEnum would change str() of members, which messages use)
    SUBMITTED = "Submitted"
    RUNNING = "Running"
    PAUSE = "Pause"  # waiting in a paused queue; resumes when the queue is re-activated
    SUCCESS = "Success"
    FAILED = "Failed"
    CANCEL = "Cancel"

    @classmethod
    def parse(cls, value: object) -> JobState | None:
        """The state for ``value``, or None for a state this provider does not know."""
        try:
            return cls(value)
        except ValueError:
            return None


WAITING_STATES = frozenset({JobState.SUBMITTED, JobState.RUNNING, JobState.PAUSE})
FAILURE_STATES = frozenset({JobState.FAILED, JobState.CANCEL})
#: A job that is over, whatever its outcome: nothing more to wait for.
ENDED_STATES = FAILURE_STATES | {JobState.SUCCESS}

# States of a batch *item* that are not states of a CI job.
#: The item's submit failed: it has no job.
NOT_SUBMITTED = "NotSubmitted"
#: The item's job was still waiting when the batch's wait timed out.
UNFINISHED = "Unfinished"
#: The item's job could not be read (unknown id, or its polls kept failing).
UNKNOWN = "Unknown"

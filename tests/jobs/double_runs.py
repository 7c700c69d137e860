"""How the fencing tests and benchmarks/double_run_trials.py see a job run twice: each copy of a job appends its
attempt number to a file named after the job while it runs, so a line of an earlier attempt written after a later
attempt began means two copies ran at once."""

from __future__ import annotations

from pathlib import Path

__all__ = ["MARKING", "ran_twice"]

# Each copy of a job appends its attempt number four times a second while it runs.
MARKING = 'for i in $(seq 1 {ticks}); do echo "$HEADWATER_JOB_ATTEMPT" >> {marks}/"$HEADWATER_JOB_ID"; sleep 0.25; done'


def ran_twice(marks: Path) -> list[str]:
    """Jobs of which two copies ran at once: a line of an earlier attempt written after a later attempt began."""
    twice = []
    for path in sorted(marks.iterdir()):
        latest = 0
        for attempt in (int(word) for word in path.read_text().split()):
            if attempt < latest:
                twice.append(path.name)
                break
            latest = max(latest, attempt)
    return twice

"""Rows counted in the metrics when, and only when, their transaction commits: a workflow
replayed after a crash never counts twice."""

from sqlalchemy import event

from ..telemetry import metrics as telemetry


def count_on_commit(session, tasks: int, errors: int, retries: int = 0,
                    redriven: bool = False, updated: int = 0, skipped: int = 0) -> None:
    """Count rows in the metrics when, and only when, this transaction commits."""

    def committed(_session) -> None:
        telemetry.record_writes(tasks=tasks, errors=errors, retries=retries, redriven=redriven,
                                updated=updated, skipped=skipped)

    event.listen(session, "after_commit", committed, once=True)

"""How a run's state reads, for the commands that wait on it and the views that show it:
which of its workflows ``ingest resume`` must act on, its page counts so far, and the values
an incremental run asks from and leaves."""

from dataclasses import asdict
from typing import Optional

from ..contract import ERROR, GIVEN_UP, PageCounts, fork_id


def needing_resume(children: list) -> list:
    """The children ``ingest resume`` must act on: given up, or failed and not forked yet."""
    ids = {c.workflow_id for c in children}
    return [c for c in children if c.status in GIVEN_UP
            or (c.status == ERROR and fork_id(c.workflow_id) not in ids)]


def pages_dict(counts) -> Optional[dict]:
    return None if counts is None else {**asdict(counts), "fetched": counts.fetched}


def published_pages(published: Optional[dict]) -> dict:
    """A running run's page counts, from what its workflow published (``PAGES_EVENT``)."""
    return pages_dict(PageCounts(**published) if published else PageCounts())


def incremental_of(plan, summary) -> Optional[dict]:
    """An incremental run's ``{"field", "used", "new"}`` (None: not incremental): the value
    it asked from, in its plan, and (once finished, from its summary) the one it left."""
    job = getattr(plan, "job", None)
    if not getattr(job, "incremental", ""):
        return None
    if summary is not None and summary.incremental:
        return dict(summary.incremental)
    since = plan.urls[0].since if plan.urls else ()
    return {"field": job.incremental, "used": since[1] if since else None, "new": None}

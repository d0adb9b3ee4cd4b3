"""How a run's state reads, for the commands that wait on it and the views that show it:
which of its workflows ``ingest resume`` must act on, and its page counts so far."""

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

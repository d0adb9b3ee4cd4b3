"""Claiming a run's files: the first run to claim a content (fingerprint) loads it, so the
same bytes at two paths, in two runs or in two commands at once load once. A page of files
per transaction (``claim_page``); API pages are written to ``sources`` and claimed as they
are fetched (``record_pages``)."""

from sqlalchemy import select

from ..store import datasource
from ..contract import TASKS, Claimed, FetchedPage
from ..models import Source
from ..store.counting import count_on_commit
from ..store.error_rows import bad_file_row, resolve_bad_pages, write_errors_once
from ..store.files import claim, set_source_states, source_row, write_sources


def claim_page(run_id: str, low: int, high: int, table: str = TASKS) -> Claimed:
    """Claim the contents of files ``low..high-1`` of the run, in order. Bad files get their
    ``errors`` row (once, however often they are seen), filed under the run's ``table``."""
    session = datasource.session()
    rows = session.execute(
        select(Source.ordinal, Source.fingerprint, Source.state, Source.records, Source.name,
               Source.error)
        .where(Source.run_id == run_id, Source.ordinal >= low, Source.ordinal < high)
        .order_by(Source.ordinal)).all()
    planned = [(r.ordinal, r.fingerprint) for r in rows if r.state == "planned"]
    owners = claim(session, run_id, planned)
    new = [o for o, f in planned if owners[f] == (run_id, o)]
    duplicates = {o: owners[f][0] for o, f in planned if owners[f] != (run_id, o)}
    set_source_states(session, run_id, new, "new")
    set_source_states(session, run_id, list(duplicates), "duplicate", duplicates)
    bad = [r for r in rows if r.state == "bad"]
    written = write_errors_once(
        session, [bad_file_row(run_id, r.name, r.fingerprint, r.error, table) for r in bad])
    count_on_commit(session, 0, written)
    new_set = set(new)
    claimed_rows = [r for r in rows if r.ordinal in new_set]
    left_alone = sum(r.state == "skipped" for r in rows)  # rewritten, with --changed skip
    return Claimed(new=len(new), duplicate=len(rows) - len(new) - len(bad) - left_alone,
                   bad=len(bad),
                   bad_rows=written,
                   records=sum(r.records for r in claimed_rows))


def record_pages(run_id: str, low: int, pages: list, table: str = TASKS) -> Claimed:
    """The pages' ``sources`` rows (ordinals ``low``..), claimed as a file's are; a page
    that failed in an earlier run and loads now resolves that run's ``errors`` row."""
    session = datasource.session()
    write_sources(session, [page_row(run_id, low + n, page) for n, page in enumerate(pages)])
    resolve_bad_pages(session, [page.name for page in pages if not page.error], table)
    return claim_page(run_id, low, low + len(pages), table)


def page_row(run_id: str, ordinal: int, page: FetchedPage) -> dict:
    return source_row(run_id, ordinal, page.name, page.path, fingerprint=page.fingerprint,
                            records=page.records, state="bad" if page.error else "planned",
                            shape=page.shape, size=page.size, mtime_ns=page.mtime_ns,
                            pieces=[list(p) for p in page.pieces] or None, error=page.error)

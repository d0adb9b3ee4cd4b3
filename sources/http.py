"""Pages of a JSON API as inputs: URL inputs and ``--pages``, and the paging of a batch
(``fetch_pages``, a step of the run, see ``integration``): pages in flight in page order,
each fetched by ``fetcher`` and then scanned exactly as a file is, so chunks read it back by
byte ranges; where an open range ends, and when failures in a row stop a source. A URL
without ``{page}`` is a chain (``paging``): ``fetch_chained`` fetches one of its pages."""

import os
from collections import deque
from dataclasses import dataclass, replace
from typing import Optional
from urllib.parse import unquote, urlsplit, urlunsplit

from ..contract import PAGE_PLACEHOLDER, FetchedPage, HttpPolicy, Paging, UrlSource
from ..errors import InputError, UsageError, one_line
from .common import BLOCK_BYTES
from .credentials import Credentials, origin_of
from .fetcher import Answer, Fetcher, fetch_ahead, fetched_ahead, pool_of
from .paging import WrongShape, asking, next_of

FAILURES_IN_A_ROW = 3  # failed pages in a row that stop a source (its pages are alike)


def parse_pages(text: str) -> tuple:
    """``START-END`` (inclusive), ``START-`` (until the first page with no records) or ``N``."""
    start, dash, end = text.strip().partition("-")
    try:
        first = int(start)
        last = (int(end) if end.strip() else None) if dash else first
    except ValueError:
        raise UsageError(f"--pages {text}: expected START-END, START- or N (e.g. 1-100 or 1-)") from None
    if first < 0 or (last is not None and last < first):
        raise UsageError(f"--pages {text}: START must be >= 0 and END >= START")
    return first, last


def url_source(spec: str, pages: Optional[tuple], credentials: "Credentials",
               paging: Paging = Paging()) -> UrlSource:
    """The stored form of a URL input; its userinfo, if any, goes to ``credentials``.
    Messages show the URL without its userinfo (the spec may hold a password). Numbered
    pages stop at ``--max-pages`` too (and ignore ``Link`` headers)."""
    parts = urlsplit(spec)
    if "@" in parts.path or not valid_host(parts):
        # Not shown: an unencoded / or @ in a password puts the password anywhere in it.
        raise UsageError(f"an {parts.scheme}:// URL without a valid host and port (a password "
                         "with / or @ must be percent-encoded: %2F, %40)")
    template = urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))
    if parts.username is not None or parts.password is not None:
        credentials.basic[origin_of(template)] = (unquote(parts.username or ""),
                                                   unquote(parts.password or ""))
    if PAGE_PLACEHOLDER not in template:
        return UrlSource(template, 0, 0, paging=paging)
    if pages is None:
        raise UsageError(f"{template} has a {PAGE_PLACEHOLDER} placeholder: say which pages "
                         "with --pages START-END, or START- to go on until a page has no records")
    first, last = pages
    if paging.max_pages:
        cap = first + paging.max_pages - 1
        last = cap if last is None else min(last, cap)
    return UrlSource(template, first, last, paginated=True)


def valid_host(parts) -> bool:
    try:
        parts.port
    except ValueError:
        return False
    return bool(parts.hostname)


@dataclass(frozen=True)
class Scanning:
    """How a spooled page is scanned: as a file of the run is."""

    chunk_size: int
    fmt: Optional[str]
    label: str

    def plan(self, page: int, url: str, answer: Answer) -> FetchedPage:
        fetched = FetchedPage(page=page, name=url, attempts=answer.attempts, status=answer.status)
        if answer.error is not None:
            return replace(fetched, error=f"{url}: {answer.error}")
        if answer.path is None or is_blank(answer.path):
            return replace(fetched, empty=True)
        try:
            return self.scanned(fetched, answer.path)
        except InputError as exc:
            return replace(fetched, error=str(exc))

    def scanned(self, fetched: FetchedPage, path: str) -> FetchedPage:
        from .scan import scan

        plan = scan(path, self.chunk_size, self.fmt, self.label, name=fetched.name)
        stat = os.stat(plan.path)
        return replace(fetched, path=plan.path, fingerprint=plan.fingerprint, shape=plan.shape,
                       size=stat.st_size, mtime_ns=stat.st_mtime_ns, records=plan.records,
                       pieces=tuple(tuple(p) for p in plan.chunks), empty=plan.records == 0)


def is_blank(path: str) -> bool:
    """An empty body, or only whitespace: a page with no records."""
    with open(path, "rb") as f:
        return not f.read(BLOCK_BYTES).strip() and not f.read(1)


@dataclass(frozen=True)
class Tail:
    """What a source's batches so far end with: failed pages in a row, and the last
    page's fingerprint (an API that ignores ``{page}`` repeats it)."""

    failures: int = 0
    fingerprint: Optional[str] = None

    def after(self, page: FetchedPage) -> "Tail":
        return Tail(self.failures + 1 if page.error else 0,
                    page.fingerprint if not page.error else self.fingerprint)


def fetch_pages(run_id: str, source: UrlSource, first: int, count: int, policy: HttpPolicy,
                scanning: Scanning, creds: Credentials, spool: str, tail: Tail) -> tuple:
    """``(pages, ended)``: pages ``first``..``first+count-1`` of ``source`` (fewer past its
    end), ``policy.concurrency`` in flight, in page order; ``ended`` once the source ends
    (see ``ends``), the pages after it not asked for."""
    fetcher = Fetcher(run_id, policy, creds, spool)

    def one(page: int) -> FetchedPage:
        url = asking(source, source.url(page))
        try:
            return scanning.plan(page, url, fetcher.answer(url))
        except Exception as exc:  # the spool can't be written, or anything unforeseen
            return FetchedPage(page=page, name=url, attempts=1, error=f"{url}: {one_line(exc)}")

    pages: list = []
    last = first + count - 1 if source.last is None else min(first + count - 1, source.last)
    in_flight: deque = deque()
    following = first
    try:
        while following <= last or in_flight:
            while following <= last and len(in_flight) < policy.concurrency:
                in_flight.append(pool_of(policy.concurrency).submit(one, following))
                following += 1
            page = in_flight.popleft().result()
            page = replace(page, error=creds.scrub(page.error)) if page.error else page
            if ends(source, page, tail):
                if not page.error or past_the_end(source, page):
                    page = replace(page, end=True, error=None)  # holds nothing to load: the end
                return pages + [page], True
            pages.append(page)
            tail = tail.after(page)
        return pages, False
    finally:
        fetcher.stop.set()
        for future in in_flight:
            future.cancel()
        for future in in_flight:
            if not future.cancelled():
                future.exception()  # wait: a page still in flight must not outlive the step


def ends(source: UrlSource, page: FetchedPage, before: Tail) -> bool:
    """Whether the source ends at ``page``: for an open range (``--pages N-``), a page with
    no records, a 404 or 410 past the range's first page (APIs answer so past their end),
    or the same content as the page before (an API that ignores ``{page}``); for any range,
    the ``FAILURES_IN_A_ROW``-th failed page in a row (its other pages fail alike)."""
    if page.error and before.failures + 1 >= FAILURES_IN_A_ROW:
        return True
    if source.last is not None:
        return False
    return page.empty or past_the_end(source, page) or (
        page.fingerprint is not None and page.fingerprint == before.fingerprint)


def past_the_end(source: UrlSource, page: FetchedPage) -> bool:
    """A 404 or 410 after an open range's first page: how many APIs answer past their last
    page. It ends the range as an empty page does, with no ``errors`` row."""
    return source.last is None and page.status in (404, 410) and page.page > source.first


def fetch_chained(run_id: str, source: UrlSource, url: str, number: int, policy: HttpPolicy,
                  scanning: Scanning, creds: Credentials, spool: str) -> FetchedPage:
    """Page ``number`` of a chain, at ``url`` (see ``chained_page``). The page after it is
    fetched ahead, in the background, while the run records this one: its step then finds
    it fetched or in flight, so one request at a time is in flight, never two."""
    def page_at(at: str, at_number: int):
        return lambda: chained_page(run_id, source, at, at_number, policy, scanning, creds, spool)

    ahead = fetched_ahead((run_id, url, number))
    page = ahead.result() if ahead is not None else page_at(url, number)()
    cap = source.paging.max_pages
    if page.next is not None and not (cap and number >= cap):
        fetch_ahead((run_id, page.next, number + 1), policy.concurrency,
                    page_at(page.next, number + 1))
    return page


def chained_page(run_id: str, source: UrlSource, url: str, number: int, policy: HttpPolicy,
                 scanning: Scanning, creds: Credentials, spool: str) -> FetchedPage:
    """Page ``number`` of a chain, at ``url``: fetched (the credentials only within the
    origin of the chain's first page, as for redirects), spooled and scanned, with the URL
    of the page after it (``next``); a page that can't say where the next one is fails."""
    fetcher = Fetcher(run_id, policy, creds, spool, origin=origin_of(source.template))
    answer = Answer(attempts=1)
    try:
        answer = fetcher.answer(url)
        page = scanning.plan(number, url, answer)
        if not page.error:
            page = replace(page, next=next_of(source.paging, url, page, answer.link))
    except WrongShape as exc:
        page = FetchedPage(page=number, name=url, attempts=answer.attempts, status=answer.status,
                           error=f"{url}: {exc}: a page of another shape, the chain stops here")
    except Exception as exc:  # the spool can't be written, or anything unforeseen
        page = FetchedPage(page=number, name=url, attempts=answer.attempts,
                           error=f"{url}: {one_line(exc)}")
    return replace(page, error=creds.scrub(page.error)) if page.error else page


def unfetched(source: UrlSource, first: int, tail: Tail) -> FetchedPage:
    """The rest of a closed range, not asked for after its pages kept failing: one row."""
    name = f"{source.template} pages {first}-{source.last}"
    return FetchedPage(page=first, name=name, attempts=0, error=(
        f"{name}: not fetched: the {tail.failures} pages before them failed (see their errors); "
        "run the same command again once the cause is fixed"))

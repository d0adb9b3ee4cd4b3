"""Pages of a JSON API as inputs: URL inputs and ``--pages``, the credentials that are
never stored, and fetching pages, with their retry policy, into the spool.

A page is fetched by ``fetch_pages`` (a step of the run, see ``integration``): each request
waits its turn under ``--rate``, errors that may pass (no connection, a reset, a timeout,
429, 5xx) are retried with exponential backoff and jitter, honouring ``Retry-After``
(capped at ``MAX_RETRY_AFTER_SEC``); other answers are final. The body is streamed to the
spool under its content hash, then scanned exactly as a file is, so chunks read it back by
byte ranges. A marker names each spooled page of a run: a step re-run after a crash finds
it and does not fetch the page again (the markers go once the run has fetched every page).

Credentials (``--header`` values, the password of a URL's userinfo) live in this process
only, and in the environment of its helper processes; never in a workflow's input, a row,
a message or the output. Only the URL without its userinfo is stored and shown.
"""

import base64
import email.utils
import hashlib
import json
import os
import random
import shutil
import threading
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Callable, Optional
from urllib.parse import unquote, urlsplit, urlunsplit

from .. import telemetry
from ..contract import PAGE_PLACEHOLDER, FetchedPage, HttpPolicy, UrlSource
from ..errors import InputError, UsageError
from .common import BLOCK_BYTES
from .spool import remove_quietly, spool_dir

CREDENTIALS_ENV = "INGEST_HTTP_CREDENTIALS"
MAX_RETRY_AFTER_SEC = 60.0  # a longer Retry-After is waited for this long, then retried
MAX_BACKOFF_SEC = 30.0
BODY_SAMPLE_BYTES = 200  # of a refused page's body, in its errors row
RETRIED_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})
OPEN_RANGE_FAILURES = 3  # an open range (--pages N-) stops after this many failed pages in a row
USER_AGENT = "durable-ingest"


def is_url(spec: str) -> bool:
    return spec[:8].lower().startswith(("http://", "https://"))


# -- what the command line names ------------------------------------------------------------
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


def url_source(spec: str, pages: Optional[tuple], credentials: "Credentials") -> UrlSource:
    """The stored form of a URL input; its userinfo, if any, goes to ``credentials``."""
    parts = urlsplit(spec)
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise UsageError(f"{spec!r} is not an http(s) URL with a host")
    bare = parts
    if parts.username is not None or parts.password is not None:
        host = parts.netloc.rpartition("@")[2]
        bare = parts._replace(netloc=host)
        credentials.basic[origin_of(urlunsplit(bare))] = (unquote(parts.username or ""),
                                                           unquote(parts.password or ""))
    template = urlunsplit(bare)
    if PAGE_PLACEHOLDER not in template:
        return UrlSource(template, 0, 0)
    if pages is None:
        raise UsageError(f"{template} has a {PAGE_PLACEHOLDER} placeholder: say which pages "
                         "with --pages START-END, or START- to go on until a page has no records")
    return UrlSource(template, pages[0], pages[1], paginated=True)


def origin_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme.lower()}://{(parts.hostname or '').lower()}:{parts.port or ''}"


# -- credentials ---------------------------------------------------------------------------------
@dataclass
class Credentials:
    """Headers sent with every request and passwords per origin (from URLs' userinfo)."""

    headers: list = field(default_factory=list)  # [name, value]
    basic: dict = field(default_factory=dict)  # origin -> (user, password)

    def add_header(self, text: str) -> None:
        name, colon, value = text.partition(":")
        if not colon or not name.strip() or any(c in name for c in " \t\r\n") or "\n" in value:
            raise UsageError(f"--header {name.strip() or '?'}: expected 'Name: value' on one line")
        self.headers.append([name.strip(), value.strip()])

    def for_url(self, url: str) -> dict:
        headers = {name: value for name, value in self.headers}
        login = self.basic.get(origin_of(url))
        if login is not None and not any(n.lower() == "authorization" for n in headers):
            token = base64.b64encode(f"{login[0]}:{login[1]}".encode()).decode()
            headers["Authorization"] = f"Basic {token}"
        return headers

    def secrets(self) -> list:
        """What must never appear in a message: header values and passwords."""
        values = [value for _, value in self.headers] + [p for _, p in self.basic.values()]
        return [v for v in values if len(v) >= 3]

    def scrub(self, text: str) -> str:
        for secret in self.secrets():
            text = text.replace(secret, "***")
        return text

    def dumps(self) -> str:
        return json.dumps({"headers": self.headers,
                           "basic": {o: list(login) for o, login in self.basic.items()}})

    @classmethod
    def loads(cls, text: str) -> "Credentials":
        data = json.loads(text)
        return cls(data.get("headers", []), {o: tuple(v) for o, v in data.get("basic", {}).items()})


_credentials: Optional[Credentials] = None


def install(credentials: Credentials) -> None:
    """This process's credentials, and its helper processes' (through their environment)."""
    global _credentials
    _credentials = credentials
    if credentials.headers or credentials.basic:
        os.environ[CREDENTIALS_ENV] = credentials.dumps()
    else:
        os.environ.pop(CREDENTIALS_ENV, None)


def credentials() -> Credentials:
    global _credentials
    if _credentials is None:
        text = os.environ.get(CREDENTIALS_ENV)
        _credentials = Credentials.loads(text) if text else Credentials()
    return _credentials


# -- fetching ------------------------------------------------------------------------------------
@dataclass
class Answer:
    """One page's final answer: its spooled body, or why there is none."""

    attempts: int
    status: Optional[int] = None
    path: Optional[str] = None
    error: Optional[str] = None


class Retry(Exception):
    """An attempt that may succeed if tried again; ``wait``: what the server asked for."""

    def __init__(self, reason: str, wait: Optional[float] = None):
        super().__init__(reason)
        self.wait = wait


class Limiter:
    """At most ``rate`` requests per second from all threads of this process (a run's
    pages are all fetched by the process running its workflow)."""

    def __init__(self, rate: Optional[float]):
        self.interval = 1.0 / rate if rate else 0.0
        self.next_at = 0.0
        self.lock = threading.Lock()

    def wait(self) -> None:
        if not self.interval:
            return
        with self.lock:
            now = time.monotonic()
            slot = max(now, self.next_at)
            self.next_at = slot + self.interval
        if slot > now:
            time.sleep(slot - now)


_session = threading.local()


def session():
    """This thread's HTTP session: its connections are reused from request to request."""
    import requests

    if getattr(_session, "value", None) is None:
        _session.value = requests.Session()
        _session.value.headers["User-Agent"] = USER_AGENT
    return _session.value


class Fetcher:
    """Fetches pages of one run into the spool, each with the run's retry policy."""

    def __init__(self, run_id: str, policy: HttpPolicy, creds: Credentials,
                 sleep: Callable[[float], None] = time.sleep):
        self.run_id, self.policy, self.creds, self.sleep = run_id, policy, creds, sleep
        self.limiter = Limiter(policy.rate)

    def answer(self, url: str) -> Answer:
        """The page at ``url`` spooled (or its final error); a page this run already
        spooled is not fetched again."""
        marker = self.marker_of(url)
        spooled = read_marker(marker)
        if spooled is not None:
            return spooled
        answer = self.fetch(url)
        if answer.path is not None:
            write_marker(marker, answer)
        return answer

    def fetch(self, url: str) -> Answer:
        last = ""
        for attempt in range(1, self.policy.attempts + 1):
            try:
                return self.attempt(url, attempt)
            except Retry as retry:
                last = str(retry)
                if attempt < self.policy.attempts:
                    self.sleep(self.backoff(attempt, retry.wait))
        return Answer(attempts=self.policy.attempts, error=(
            f"no answer after {self.policy.attempts} attempts (last: {last}); the server or "
            "network kept failing: run the same command again later"))

    def backoff(self, attempt: int, asked: Optional[float]) -> float:
        if asked is not None:
            return min(max(asked, 0.0), MAX_RETRY_AFTER_SEC)
        return min(MAX_BACKOFF_SEC, self.policy.backoff * 2 ** (attempt - 1)) * random.uniform(0.5, 1.0)

    def attempt(self, url: str, number: int) -> Answer:
        import requests

        self.limiter.wait()
        began = time.perf_counter()
        status_class = "error"
        try:
            with session().get(url, headers=self.creds.for_url(url), stream=True,
                               timeout=self.policy.timeout, allow_redirects=True) as response:
                status_class = f"{response.status_code // 100}xx"
                if response.status_code == 200:
                    return Answer(attempts=number, status=200, path=spool_body(response))
                if response.status_code in RETRIED_STATUSES:
                    raise Retry(describe_status(response), retry_after(response))
                return Answer(attempts=number, status=response.status_code,
                              error=self.refused(response))
        except requests.Timeout:
            raise Retry(f"timed out after {self.policy.timeout:g} s") from None
        except requests.RequestException as exc:
            raise Retry(connection_problem(exc)) from None
        finally:
            telemetry.record_request(status_class, time.perf_counter() - began)

    def refused(self, response) -> str:
        sample = next(response.iter_content(BODY_SAMPLE_BYTES), b"")[:BODY_SAMPLE_BYTES]
        text = " ".join(sample.decode("utf-8", "replace").split())
        return self.creds.scrub(f"{describe_status(response)}: {text!r}")

    def marker_of(self, url: str) -> str:
        return os.path.join(markers_dir(self.run_id), hashlib.sha256(url.encode()).hexdigest()[:24])


def describe_status(response) -> str:
    return f"HTTP {response.status_code} {response.reason or ''}".strip()


def connection_problem(exc: Exception) -> str:
    text = str(exc)
    if "reset" in text.lower():
        return "connection reset"
    if "refused" in text.lower():
        return "connection refused"
    return f"{type(exc).__name__}: " + (text.splitlines() or [""])[0][:200]


def retry_after(response) -> Optional[float]:
    """``Retry-After`` in seconds (a number or an HTTP date), None if absent or unreadable."""
    value = response.headers.get("Retry-After")
    if not value:
        return None
    try:
        return float(value)
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return when.timestamp() - time.time()


def spool_body(response) -> str:
    """Stream a response's (decoded) body to the spool under its SHA-256; a body cut short
    is a ``Retry``."""
    import requests

    directory = spool_dir()
    os.makedirs(directory, exist_ok=True)
    partial = os.path.join(directory, f"page-{os.getpid()}-{threading.get_ident()}.partial")
    hasher = hashlib.sha256()
    try:
        with open(partial, "wb") as out:
            for block in response.iter_content(BLOCK_BYTES):
                hasher.update(block)
                out.write(block)
    except requests.RequestException as exc:
        remove_quietly(partial)
        raise Retry(f"{connection_problem(exc)} while reading the body") from None
    except OSError as exc:
        remove_quietly(partial)
        raise InputError(f"cannot write a fetched page into {directory} ({exc.strerror}); free "
                         "some space there or point INGEST_SPOOL_DIR at a larger directory") from None
    final = os.path.abspath(os.path.join(directory, f"page-{hasher.hexdigest()[:20]}.data"))
    if os.path.exists(final):
        remove_quietly(partial)  # the same content, spooled before: keep the first copy
    else:
        os.replace(partial, final)
    return final


def markers_dir(run_id: str) -> str:
    """Where a run notes the pages it spooled, until it has recorded them all."""
    return os.path.join(spool_dir(), "fetched", run_id)


def forget_markers(run_id: str) -> None:
    """Once every page of the run is recorded in its steps' outputs, its notes are not needed."""
    shutil.rmtree(markers_dir(run_id), ignore_errors=True)


def read_marker(marker: str) -> Optional[Answer]:
    try:
        with open(marker) as f:
            data = json.load(f)
    except (OSError, ValueError):
        return None
    return Answer(**data) if os.path.exists(data.get("path") or "") else None


def write_marker(marker: str, answer: Answer) -> None:
    os.makedirs(os.path.dirname(marker), exist_ok=True)
    partial = f"{marker}.{os.getpid()}.partial"
    with open(partial, "w") as f:
        json.dump(vars(answer), f)
    os.replace(partial, marker)


# -- a batch of pages ----------------------------------------------------------------------------
@dataclass(frozen=True)
class Scanning:
    """How a spooled page is scanned: as a file of the run is."""

    chunk_size: int
    fmt: Optional[str]
    label: str

    def plan(self, page: int, url: str, answer: Answer) -> FetchedPage:
        from .scan import scan

        fetched = FetchedPage(page=page, name=url, attempts=answer.attempts, status=answer.status)
        if answer.path is None:
            return replace(fetched, error=f"{url}: {answer.error}")
        if is_blank(answer.path):
            return replace(fetched, empty=True)
        try:
            plan = scan(answer.path, self.chunk_size, self.fmt, self.label, name=url)
        except InputError as exc:
            return replace(fetched, error=str(exc))
        stat = os.stat(plan.path)
        return replace(fetched, path=plan.path, fingerprint=plan.fingerprint, shape=plan.shape,
                       size=stat.st_size, mtime_ns=stat.st_mtime_ns, records=plan.records,
                       pieces=tuple(tuple(p) for p in plan.chunks), empty=plan.records == 0)


def is_blank(path: str) -> bool:
    """An empty body, or only whitespace: a page with no records."""
    with open(path, "rb") as f:
        return not f.read(BLOCK_BYTES).strip() and not f.read(1)


def fetch_pages(run_id: str, source: UrlSource, first: int, count: int, policy: HttpPolicy,
                scanning: Scanning) -> list:
    """Pages ``first``..``first+count-1`` of ``source`` (fewer past its end), fetched
    ``policy.concurrency`` at a time and returned in page order; an open range stops at
    its end (see ``ends``), the pages after it not asked for."""
    fetcher = Fetcher(run_id, policy, credentials())

    def one(page: int) -> FetchedPage:
        url = source.url(page)
        return scanning.plan(page, url, fetcher.answer(url))

    pages: list = []
    last = first + count - 1 if source.last is None else min(first + count - 1, source.last)
    with ThreadPoolExecutor(policy.concurrency, thread_name_prefix="ingest-fetch") as pool:
        in_flight: deque = deque()
        following = first
        while following <= last or in_flight:
            while following <= last and len(in_flight) < policy.concurrency:
                in_flight.append(pool.submit(one, following))
                following += 1
            pages.append(in_flight.popleft().result())
            if source.last is None and ends(source, pages):
                for future in in_flight:
                    future.cancel()
                break
    return pages


def ends(source: UrlSource, pages: list) -> bool:
    """Whether an open range (``--pages N-``) ends at the last of these pages: it has no
    records, or is a 404 or 410 past the range's first page (APIs answer so past their
    end), or it is the ``OPEN_RANGE_FAILURES``-th failed page in a row."""
    last = pages[-1]
    return last.empty or is_past_the_end(source, last) or (
        len(pages) >= OPEN_RANGE_FAILURES and all(p.error for p in pages[-OPEN_RANGE_FAILURES:]))


def is_past_the_end(source: UrlSource, page: FetchedPage) -> bool:
    """A 404 or 410 that ends an open range: not a failed page, the end of the pages."""
    return source.last is None and page.status in (404, 410) and page.page > source.first

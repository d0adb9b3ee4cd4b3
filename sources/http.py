"""Pages of a JSON API as inputs: URL inputs and ``--pages``, the credentials that are
never stored, and fetching pages, with their retry policy, into the spool.

A batch of pages is fetched by ``fetch_pages`` (a step of the run, see ``integration``):
each request waits its turn under ``--rate``; what may pass if tried again (no connection,
a reset, a timeout, 408, 425, 429, any 5xx) is retried with exponential backoff and jitter,
honouring ``Retry-After`` (capped at ``MAX_RETRY_AFTER_SEC``); other answers are final.
Redirects are followed within the URL's origin with its credentials, and elsewhere without
them. The body is streamed to the spool under its content hash, then scanned exactly as a
file is, so chunks read it back by byte ranges. A marker notes each spooled page of a run:
a step re-run after a crash finds it and does not fetch the page again (the markers go
once the run has fetched every page).

Credentials (``--header`` values, a URL's userinfo) live in this process only, and in the
environment of its helper processes: never in a workflow's input, a row, a message or the
output. A run records only their names and a short check, so a process that recovers the
run without the same credentials waits (``CredentialsNeeded``) rather than fetching
without them, or with another command's.
"""

import base64
import email.utils
import hashlib
import hmac
import json
import math
import os
import random
import shutil
import threading
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Optional
from urllib.parse import quote, unquote, urljoin, urlsplit, urlunsplit

from .. import telemetry
from ..contract import PAGE_PLACEHOLDER, FetchedPage, HttpPolicy, UrlSource
from ..errors import InputError, IngestError, UsageError, one_line
from .common import BLOCK_BYTES
from .spool import spool_blocks

CREDENTIALS_ENV = "INGEST_HTTP_CREDENTIALS"
MAX_RETRY_AFTER_SEC = 60.0  # a longer Retry-After is waited for this long, then retried
MAX_BACKOFF_SEC = 30.0
MAX_REDIRECTS = 5
BODY_SAMPLE_BYTES = 200  # of a refused page's body, in its errors row
RETRIED_4XX = frozenset({408, 425, 429})  # and every 5xx
NO_CONTENT = frozenset({204, 205})  # an answer without a body: a page with no records
FAILURES_IN_A_ROW = 3  # failed pages in a row that stop a source (its pages are alike)
MIN_SECRET_CHARS = 3  # shorter values are too common to mask without garbling messages
USER_AGENT = "durable-ingest"


class CredentialsNeeded(IngestError):
    """This process has not the credentials the run was started with (they are never
    stored): the run waits for a process that has them."""


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
    """The stored form of a URL input; its userinfo, if any, goes to ``credentials``.
    Messages show the URL without its userinfo (the spec may hold a password)."""
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
        return UrlSource(template, 0, 0)
    if pages is None:
        raise UsageError(f"{template} has a {PAGE_PLACEHOLDER} placeholder: say which pages "
                         "with --pages START-END, or START- to go on until a page has no records")
    return UrlSource(template, pages[0], pages[1], paginated=True)


def valid_host(parts) -> bool:
    try:
        parts.port
    except ValueError:
        return False
    return bool(parts.hostname)


def origin_of(url: str) -> str:
    parts = urlsplit(url)
    port = parts.port or {"http": 80, "https": 443}.get(parts.scheme.lower())
    return f"{parts.scheme.lower()}://{(parts.hostname or '').lower()}:{port}"


# -- credentials ---------------------------------------------------------------------------------
@dataclass
class Credentials:
    """Headers sent with every request and passwords per origin (from URLs' userinfo)."""

    headers: list = field(default_factory=list)  # [name, value]
    basic: dict = field(default_factory=dict)  # origin -> (user, password)

    def add_header(self, text: str) -> None:
        """One ``Name: value``; the value is never shown, not even when it is refused."""
        name, colon, value = text.partition(":")
        name, value = name.strip(), value.strip()
        if not colon or not name or not all(33 <= ord(c) <= 126 and c != ":" for c in name):
            raise UsageError(f"--header {name[:40] or '?'}: expected 'Name: value' on one line")
        if any(ord(c) < 32 or ord(c) == 127 for c in value) or not is_latin1(value):
            raise UsageError(f"--header {name}: its value has a control character or a "
                             "character HTTP headers can't carry (only Latin-1 text)")
        self.headers.append([name, value])

    def for_url(self, url: str) -> dict:
        headers = {name: value for name, value in self.headers}
        login = self.basic.get(origin_of(url))
        if login is not None and not any(n.lower() == "authorization" for n in headers):
            headers["Authorization"] = f"Basic {basic_token(*login)}"
        return headers

    def names(self) -> tuple:
        """What a run records of its credentials, to say what a process needs."""
        return tuple(sorted({n for n, _ in self.headers} | ({"Authorization"} if self.basic else set())))

    def check(self, run_id: str) -> str:
        """A short keyed digest: tells whether a process has the run's credentials, and
        tells nothing of them (8 hex digits match any of 2^32 others)."""
        if not (self.headers or self.basic):
            return ""
        canonical = json.dumps([sorted(map(tuple, self.headers)), sorted(self.basic.items())])
        return hmac.new(run_id.encode(), canonical.encode(), hashlib.sha256).hexdigest()[:8]

    def secrets(self) -> list:
        """What must never appear in a message: header values, each word of them (a
        token after "Bearer"), passwords and Basic tokens, as typed and percent-encoded."""
        values = [value for _, value in self.headers]
        values += [word for value in values for word in value.split()]
        for user, password in self.basic.values():
            values += [password, basic_token(user, password)]
        values += [quote(v, safe="") for v in values]
        return sorted({v for v in values if len(v) >= MIN_SECRET_CHARS}, key=len, reverse=True)

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


def is_latin1(text: str) -> bool:
    try:
        text.encode("latin-1")
    except UnicodeEncodeError:
        return False
    return True


def basic_token(user: str, password: str) -> str:
    return base64.b64encode(f"{user}:{password}".encode()).decode()


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


def credentials_for(run_id: str, check: str, names: tuple) -> Credentials:
    """The credentials to fetch the run's pages with: none for a run started without any
    (whatever this process holds), this process's if they are the run's, else
    ``CredentialsNeeded``."""
    if not check:
        return Credentials()
    mine = credentials()
    if mine.check(run_id) == check:
        return mine
    waiting.add(run_id)
    given = " ".join(f"--header '{n}: …'" for n in names)
    raise CredentialsNeeded(f"run {run_id} fetches pages with credentials this process was "
                            f"not given: run the same command again, or ingest resume {run_id} {given}")


waiting: set = set()  # runs of this process waiting for credentials (nothing to drain)


# -- fetching ------------------------------------------------------------------------------------
@dataclass
class Answer:
    """One page's final answer: its spooled body (None: an empty answer), or why not."""

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
_pools: dict = {}  # pages in flight -> the threads that fetch them, kept for their connections
_limiters: dict = {}  # run id -> its Limiter, kept from batch to batch
_shared = threading.Lock()


def session():
    """This thread's HTTP session: its connections are reused from request to request."""
    import requests

    if getattr(_session, "value", None) is None:
        _session.value = requests.Session()
        _session.value.headers["User-Agent"] = USER_AGENT
    return _session.value


def pool_of(size: int) -> ThreadPoolExecutor:
    with _shared:
        if size not in _pools:
            _pools[size] = ThreadPoolExecutor(size, thread_name_prefix="ingest-fetch")
        return _pools[size]


def limiter_of(run_id: str, rate: Optional[float]) -> Limiter:
    with _shared:
        return _limiters.setdefault(run_id, Limiter(rate))


class Fetcher:
    """Fetches pages of one run into the spool, each with the run's retry policy."""

    def __init__(self, run_id: str, policy: HttpPolicy, creds: Credentials, spool: str):
        self.run_id, self.policy, self.creds, self.spool = run_id, policy, creds, spool
        self.limiter = limiter_of(run_id, policy.rate)
        self.stop = threading.Event()  # set once the pages in flight are not wanted

    def answer(self, url: str) -> Answer:
        """The page at ``url`` spooled (or its final error); a page this run already
        spooled is not fetched again."""
        marker = os.path.join(markers_dir(self.spool, self.run_id),
                              hashlib.sha256(url.encode()).hexdigest()[:24])
        spooled = read_marker(marker)
        if spooled is not None:
            return spooled
        answer = self.fetch(url)
        if answer.error is None:
            write_marker(marker, answer)
        return answer

    def fetch(self, url: str) -> Answer:
        last = ""
        for attempt in range(1, self.policy.attempts + 1):
            try:
                return self.attempt(url, attempt)
            except Retry as retry:
                last = str(retry)
                if attempt < self.policy.attempts and self.stop.wait(self.backoff(attempt, retry.wait)):
                    break
        return Answer(attempts=attempt, error=(
            f"no answer after {attempt} attempts (last: {last}); the server or network kept "
            "failing: run the same command again later"))

    def backoff(self, attempt: int, asked: Optional[float]) -> float:
        if asked is not None:
            return min(max(asked, 0.0), MAX_RETRY_AFTER_SEC)
        return min(MAX_BACKOFF_SEC, self.policy.backoff * 2 ** (attempt - 1)) * random.uniform(0.5, 1.0)

    def attempt(self, url: str, number: int) -> Answer:
        """One request (and its redirects); a ``Retry`` if it may pass when tried again."""
        import requests

        self.limiter.wait()
        began = time.perf_counter()
        status_class = "error"
        try:
            with self.get(url) as response:
                status_class = f"{response.status_code // 100}xx"
                return self.answer_of(response, number)
        except requests.Timeout:
            raise Retry(f"timed out after {self.policy.timeout:g} s") from None
        except (requests.ConnectionError, requests.exceptions.ChunkedEncodingError) as exc:
            if isinstance(exc, requests.exceptions.SSLError):
                return Answer(attempts=number, error=f"TLS error: {self.scrubbed(exc)}")
            raise Retry(connection_problem(exc)) from None
        except requests.RequestException as exc:  # an invalid URL or header, too many redirects
            return Answer(attempts=number, error=self.scrubbed(exc))
        finally:
            telemetry.record_request(status_class, time.perf_counter() - began)

    def get(self, url: str):
        """GET, following redirects: with the credentials within the URL's origin, without
        them elsewhere (as curl does without --location-trusted)."""
        origin, target = origin_of(url), url
        for _ in range(MAX_REDIRECTS + 1):
            headers = self.creds.for_url(target) if origin_of(target) == origin else {}
            response = session().get(target, headers=headers, stream=True,
                                     timeout=self.policy.timeout, allow_redirects=False)
            location = response.headers.get("Location")
            if not (response.is_redirect and location):
                return response
            response.close()
            target = urljoin(target, location)
            if urlsplit(target).scheme.lower() not in ("http", "https"):
                break
        import requests

        raise requests.TooManyRedirects(f"more than {MAX_REDIRECTS} redirects, or one that "
                                        "leaves http(s)")

    def answer_of(self, response, number: int) -> Answer:
        status = response.status_code
        if status in NO_CONTENT:
            return Answer(attempts=number, status=status)
        if 200 <= status < 300:
            return Answer(attempts=number, status=status, path=self.spool_body(response))
        if status >= 500 or status in RETRIED_4XX:
            raise Retry(describe_status(response), retry_after(response))
        return Answer(attempts=number, status=status, error=self.refused(response))

    def refused(self, response) -> str:
        sample = next(response.iter_content(BODY_SAMPLE_BYTES), b"")[:BODY_SAMPLE_BYTES]
        text = " ".join(sample.decode("utf-8", "replace").split())
        return f"{describe_status(response)}: {text!r}"

    def scrubbed(self, exc: Exception) -> str:
        return self.creds.scrub(one_line(exc))

    def spool_body(self, response) -> str:
        """Stream a response's (decoded) body to the spool under its SHA-256; a body cut
        short is a ``Retry``."""
        import requests

        try:
            return spool_blocks(response.iter_content(BLOCK_BYTES), "page", self.spool)
        except requests.RequestException as exc:
            raise Retry(f"{connection_problem(exc)} while reading the body") from None


def describe_status(response) -> str:
    return f"HTTP {response.status_code} {response.reason or ''}".strip()


def connection_problem(exc: Exception) -> str:
    text = str(exc).lower()
    for problem in ("reset", "refused", "name or service not known", "failed to resolve",
                    "timed out", "incomplete"):
        if problem in text:
            return {"name or service not known": "host not found",
                    "failed to resolve": "host not found"}.get(problem, f"connection {problem}")
    return f"connection failed ({type(exc).__name__})"


def retry_after(response) -> Optional[float]:
    """``Retry-After`` in seconds (a number or an HTTP date), None if absent or unreadable."""
    value = response.headers.get("Retry-After")
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            seconds = email.utils.parsedate_to_datetime(value).timestamp() - time.time()
        except (TypeError, ValueError, OverflowError):
            return None
    return seconds if math.isfinite(seconds) else None


def markers_dir(spool: str, run_id: str) -> str:
    """Where a run notes the pages it spooled, until it has recorded them all."""
    return os.path.join(spool, "fetched", run_id)


def forget_run(spool: str, run_id: str) -> None:
    """Once every page of the run is recorded in its steps' outputs: its notes and its
    request limiter are not needed any more."""
    shutil.rmtree(markers_dir(spool, run_id), ignore_errors=True)
    with _shared:
        _limiters.pop(run_id, None)
    waiting.discard(run_id)


def read_marker(marker: str) -> Optional[Answer]:
    try:
        with open(marker) as f:
            data = json.load(f)
    except (OSError, ValueError):
        return None
    return Answer(**data) if data.get("path") is None or os.path.exists(data["path"]) else None


def write_marker(marker: str, answer: Answer) -> None:
    os.makedirs(os.path.dirname(marker), exist_ok=True)
    partial = f"{marker}.{os.getpid()}.{threading.get_ident()}.partial"
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
        url = source.url(page)
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
                if not page.error:
                    page = replace(page, end=True)  # holds nothing to load: the end
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
    past_the_end = page.status in (404, 410) and page.page > source.first
    return page.empty or past_the_end or (
        page.fingerprint is not None and page.fingerprint == before.fingerprint)

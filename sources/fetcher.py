"""One API page, fetched with its retry policy into the spool.

Each request waits its turn under ``--rate``; what may pass if tried again (no connection, a
reset, a timeout, 408, 425, 429, any 5xx) is retried with exponential backoff and jitter,
honouring ``Retry-After`` (capped at ``MAX_RETRY_AFTER_SEC``); other answers are final.
Redirects are followed within the URL's origin (or a chain's: its first page's) with its
credentials, and elsewhere without them. The body is streamed to the spool under its content
hash. A marker notes each spooled page of a run: a step re-run after a crash finds it and
does not fetch the page again (the markers go once the run has fetched every page).
"""

import email.utils
import hashlib
import json
import math
import os
import random
import shutil
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Optional
from urllib.parse import urljoin, urlsplit

from ..telemetry import metrics as telemetry
from ..contract import HttpPolicy
from ..errors import one_line
from .common import BLOCK_BYTES
from .credentials import Credentials, origin_of, waiting
from .spool import spool_blocks

MAX_RETRY_AFTER_SEC = 60.0  # a longer Retry-After is waited for this long, then retried
MAX_BACKOFF_SEC = 30.0
MAX_REDIRECTS = 5
BODY_SAMPLE_BYTES = 200  # of a refused page's body, in its errors row
RETRIED_4XX = frozenset({408, 425, 429})  # and every 5xx
NO_CONTENT = frozenset({204, 205})  # an answer without a body: a page with no records
USER_AGENT = "durable-ingest"


@dataclass
class Answer:
    """One page's final answer: its spooled body (None: an empty answer), or why not;
    ``link``: its ``Link`` header (where a chain's next page may be)."""

    attempts: int
    status: Optional[int] = None
    path: Optional[str] = None
    error: Optional[str] = None
    link: Optional[str] = None


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
_ahead: dict = {}  # (run id, url, number) -> a Future: a chain's next page, fetched ahead
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


def fetch_ahead(key: tuple, size: int, work) -> None:
    """Start ``work`` (a chain's next page) in the background, under ``key``: the run
    records this page meanwhile, and the step of the next one takes it (``fetched_ahead``)."""
    pool = pool_of(size)
    with _shared:
        if key not in _ahead:
            _ahead[key] = pool.submit(work)


def fetched_ahead(key: tuple):
    """The Future of the page fetched ahead under ``key``, or None."""
    with _shared:
        return _ahead.pop(key, None)


class Fetcher:
    """Fetches pages of one run into the spool, each with the run's retry policy; the
    credentials go only to ``origin`` (default: each URL's own)."""

    def __init__(self, run_id: str, policy: HttpPolicy, creds: Credentials, spool: str,
                 origin: Optional[str] = None):
        self.run_id, self.policy, self.creds, self.spool = run_id, policy, creds, spool
        self.origin = origin
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
        origin, target = self.origin or origin_of(url), url
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
            return Answer(attempts=number, status=status, link=response.headers.get("Link"))
        if 200 <= status < 300:
            return Answer(attempts=number, status=status, path=self.spool_body(response),
                          link=response.headers.get("Link"))
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
        for key in [key for key in _ahead if key[0] == run_id]:
            _ahead.pop(key)
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

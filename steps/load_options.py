"""What a load is asked to do, checked before any work: ``LoadOptions`` (chunking, retries,
faults, transform, key, the API pages' policy) built from the options of ``ingest load``
(``options_of``: the command line's and a schedule's tick's), and the checks of
``--transform``, ``--key``, ``--on-conflict``, URL inputs and ``--header``, ``--incremental``
and the value a new run asks from (``urls_asking``)."""

from dataclasses import dataclass, field
from typing import Optional

from ..contract import IDENTITY_SEPARATOR, HttpPolicy, Job, Paging, is_url

DEFAULT_CHUNK_SIZE = 5000


@dataclass(frozen=True)
class LoadOptions:
    chunk_size: int = DEFAULT_CHUNK_SIZE
    fmt: Optional[str] = None
    label: str = ""
    max_attempts: int = 3
    retry_interval: float = 0.1
    backoff: float = 2.0
    faults: dict = field(default_factory=dict)
    transform: str = "identity"  # as recorded: see transform.recorded_spec (transform.DEFAULT)
    transform_dir: str = ""
    key: str = ""
    on_conflict: str = "skip"
    http: HttpPolicy = HttpPolicy()
    urls: tuple = ()  # UrlSource of each URL input (see ``url_inputs``)
    table: str = ""  # --table: a dataset table ("": the demo's tasks)
    columns: tuple = ()  # --column: column types asked for (see tables.catalog.hints_of)
    endpoint_url: str = ""  # where s3:// inputs are read (see ``s3_endpoint``)
    settle: float = 0.0  # --settle: seconds a local file must have been left alone
    full_check: bool = False  # --full-check: read every file, known to this machine or not
    changed: str = "load"  # --changed: what a rewritten file does ("load" or "skip")
    incremental: str = ""  # --incremental: the field of each record the next run asks from
    since_initial: Optional[str] = None  # --since-initial: the first run's value

    @property
    def local(self):
        """How local files are treated (``sources.local.LocalPolicy``)."""
        from ..sources.local import LocalPolicy

        return LocalPolicy(self.settle, self.full_check)

    def job(self, run_id: str) -> Job:
        return Job(run_id=run_id, chunk_size=self.chunk_size, max_attempts=self.max_attempts,
                   retry_interval=self.retry_interval, backoff=self.backoff, faults=self.faults,
                   transform=self.transform, transform_dir=self.transform_dir, key=self.key,
                   on_conflict=self.on_conflict, http=self.http, fmt=self.fmt,
                   fingerprint_label=self.identity, table=self.table, columns=self.columns,
                   endpoint_url=self.endpoint_url, incremental=self.incremental,
                   **self.fetching(run_id))

    def fetching(self, run_id: str) -> dict:
        """What the run's page fetches need besides the policy: where to spool, and a check
        (not the values) of this command's credentials."""
        if not self.urls:
            return {}
        import os

        from ..sources.credentials import credentials
        from ..sources.spool import spool_dir

        mine = credentials()
        return {"spool": os.path.abspath(spool_dir()), "credentials_check": mine.check(run_id),
                "credential_names": mine.names()}

    @property
    def identity(self) -> str:
        """What names a file besides its bytes: the label, the dataset table and, for records
        with their own keys, how they are keyed and shaped. The same bytes load once per
        table; a keyed load of them with other settings is another run; a file already
        loaded unkeyed is not loaded again unkeyed (with a new transform either: use
        --label, or --key)."""
        from ..sources.scan import records_path

        sep = IDENTITY_SEPARATOR
        identity = self.label + (f"{sep}table={self.table}" if self.table else "")
        if records_path(self.fmt):  # other records of the same bytes: another dataset
            identity += f"{sep}records={'.'.join(records_path(self.fmt))}"
        if not self.key:
            return identity
        return f"{identity}{sep}key={self.key};on-conflict={self.on_conflict};transform={self.transform}"


def shaping_options(transform: Optional[str], key: Optional[str], on_conflict: Optional[str],
                    table: Optional[str] = None, columns: tuple = (),
                    directory: Optional[str] = None) -> dict:
    """``LoadOptions`` fields for ``--transform``, ``--key``, ``--on-conflict``, ``--table``
    and ``--column``, checked before any work: a transform that can't be imported or called is
    ``TransformNotFound`` (exit 2), a malformed key path, table name or column hint a
    ``UsageError``. The
    transform is ``transform.DEFAULT`` (``identity``) unless one is named; the run records
    it by name, so a later default never changes what an earlier run does."""
    import os

    from ..errors import UsageError
    from ..tables.catalog import hints_of
    from ..tables.names import check_table_name
    from ..transform import DEFAULT, key_path, recorded_spec, resolve

    if table is not None:
        check_table_name(table)
    transform = transform or DEFAULT

    if on_conflict and not key:
        raise UsageError("--on-conflict needs --key: without a key, records are identified "
                         "by file and position and never conflict")
    recorded = recorded_spec(transform)
    directory = directory or os.getcwd()  # a schedule's: where it was added
    resolve(recorded, directory)
    if key is not None:
        try:
            key_path(key)
        except ValueError as exc:
            raise UsageError(str(exc)) from None
    return {"transform": recorded, "transform_dir": directory, "key": key or "",
            "on_conflict": on_conflict or "skip", "table": table or "",
            "columns": hints_of(columns, table, key)}


def url_inputs(specs: list, pages: Optional[str], headers: tuple,
               paging: Paging = Paging()) -> tuple:
    """The ``UrlSource`` of each URL among ``specs``, with its paging, checked before any
    work (a ``UsageError``, exit 2); their credentials (``--header``, a URL's userinfo) are
    installed in this process and its helpers, and kept nowhere else."""
    from ..errors import UsageError
    from ..sources.credentials import Credentials, install
    from ..sources.http import parse_pages, url_source
    from ..sources.paging import check_paging

    credentials = Credentials()
    for header in headers:
        credentials.add_header(header)
    check_paging(paging, pages, [spec for spec in specs if is_url(spec)])
    page_range = parse_pages(pages) if pages is not None else None
    sources = tuple(url_source(spec, page_range, credentials, paging)
                    for spec in specs if is_url(spec))
    if pages is not None and not any(source.paginated for source in sources):
        raise UsageError("--pages is for URL inputs with a {page} placeholder, e.g. "
                         "'https://api.example.com/users?page={page}'")
    install(credentials)
    return sources


def install_headers(headers: tuple, endpoint_url: Optional[str] = None) -> None:
    """``--header`` of ``resume`` and ``worker``: the credentials a run's pages need (they
    are never stored, so a process that fetches them must be given them again); and their
    ``--endpoint-url``, where this process reads every run's s3:// inputs."""
    if headers:
        url_inputs([], None, headers)
    if endpoint_url:
        from ..sources.objects import resolved_endpoint, use_endpoint

        use_endpoint(resolved_endpoint(endpoint_url))


def s3_endpoint(specs, endpoint_url: Optional[str]) -> str:
    """With ``s3://`` inputs: the endpoint the run records for its workers (``--endpoint-url``,
    else AWS_ENDPOINT_URL_S3 or AWS_ENDPOINT_URL, else "": AWS), once the ``s3`` extra is
    known to be installed (else a ``UsageError``, exit 2). Without: ""."""
    from ..sources.s3 import is_s3

    if not any(is_s3(spec) for spec in specs):
        return ""
    from ..sources.objects import check_extra, resolved_endpoint

    check_extra()
    return resolved_endpoint(endpoint_url)


def options_of(paths, given: dict, directory: Optional[str] = None) -> LoadOptions:
    """The ``LoadOptions`` of ``ingest load``'s options (``given``, by their parameter names),
    checked before any work; a transform's module is imported from ``directory`` (default:
    the working directory)."""
    urls = url_inputs(paths, given["pages"], given["headers"], paging_of(given))
    return LoadOptions(
        chunk_size=given["chunk_size"], fmt=input_format(given["fmt"], given["records"]),
        label=given["label"],
        max_attempts=given["max_attempts"], retry_interval=given["retry_interval"],
        backoff=given["backoff"],
        faults=faults_of(given["fail_tasks"], given["flaky_rate"], given["seed"]),
        http=http_policy(given["http_attempts"], given["http_timeout"], given["rate"],
                         given["concurrency"]),
        endpoint_url=s3_endpoint(paths, given["endpoint_url"]),
        settle=given["settle"], full_check=given["full_check"], changed=given["changed"],
        **incremental_of(paths, urls, given),
        **shaping_options(given["transform_spec"], given["key"], given["on_conflict"],
                          given["table"], given["columns"], directory))


def faults_of(fail_tasks, flaky_rate, seed) -> dict:
    from ..transform import Faults

    return Faults(frozenset(fail_tasks), flaky_rate, seed).as_dict()


def http_policy(http_attempts: int, http_timeout: float, rate, concurrency: int) -> HttpPolicy:
    return HttpPolicy(attempts=http_attempts, timeout=http_timeout, rate=rate,
                      concurrency=concurrency)


def input_format(fmt, records):
    """``--format`` and ``--records`` as one format (``sources.scan.records_format``)."""
    from ..errors import UsageError
    from ..sources.scan import records_format

    if records is None:
        return fmt
    if fmt == "ndjson":
        raise UsageError("--records PATH reads a JSON document; NDJSON has no path to read: "
                         "drop --format ndjson or --records")
    return records_format(records)


def paging_of(given: dict) -> Paging:
    """How URL inputs without ``{page}`` lead to their next pages: the options of
    ``ingest load`` named as ``Paging``'s fields (``--next-url``, ``--cursor``...)."""
    defaults = Paging()
    return Paging(**{name: given.get(name) or getattr(defaults, name)
                     for name in Paging.__dataclass_fields__})


def incremental_of(specs: list, urls: tuple, given: dict) -> dict:
    """``LoadOptions`` fields of ``--incremental``, ``--since-param`` and ``--since-initial``
    (and ``urls``, the URL input with its ``--since-param``), checked before any work (a
    ``UsageError``, exit 2): one URL input alone, which tells the API the value to start from
    by its ``{since}`` placeholder or ``--since-param``."""
    from dataclasses import replace

    from ..errors import UsageError
    from ..sources.since import SINCE_PLACEHOLDER

    field, param, initial = (given.get(name) for name in
                             ("incremental", "since_param", "since_initial"))
    placeholder = any(SINCE_PLACEHOLDER in source.template for source in urls)
    if not field:
        given_alone = [what for what, there in (("--since-param", param), (
            "--since-initial", initial is not None), (f"a {SINCE_PLACEHOLDER} placeholder",
                                                      placeholder)) if there]
        if given_alone:
            raise UsageError(f"{given_alone[0]} needs --incremental FIELD: the field of each "
                             "record whose highest value the next run asks from")
        return {"urls": urls}
    if not all(field.split(".")):
        raise UsageError(f"--incremental {field!r}: expected a field name or a dotted path "
                         "such as updated_at or meta.updated")
    if len(specs) != 1 or len(urls) != 1:
        raise UsageError("--incremental is for one URL input alone (an API that can be asked "
                         "for what changed since a value); files load once by their contents")
    if not placeholder and not param:
        raise UsageError(f"--incremental needs {SINCE_PLACEHOLDER} in the URL or --since-param "
                         "NAME: how the API is told the value to start from")
    return {"urls": (replace(urls[0], since_param=param or ""),), "incremental": field,
            "since_initial": initial}


def urls_asking(engine, options: LoadOptions) -> tuple:
    """The URL inputs of a new run, an incremental one with the value it asks from (fixed in
    its plan, so that a resumed run asks the same): the value finished runs left, else
    ``--since-initial``. A ``{since}`` with neither is a ``UsageError`` (exit 2)."""
    if not options.incremental:
        return options.urls
    from dataclasses import replace

    from ..contract import TASKS
    from ..errors import UsageError
    from ..sources.since import SINCE_PLACEHOLDER, typed
    from .cursors import stored_value

    [source] = options.urls
    since = stored_value(engine, source.describe(), options.table or TASKS, options.incremental)
    if not since and options.since_initial is not None:
        since = typed(options.since_initial)
    if not since and SINCE_PLACEHOLDER in source.template:
        raise UsageError(f"{source.template}: no value for {SINCE_PLACEHOLDER} yet (no run "
                         f"of it finished): give the first run one with --since-initial VALUE")
    return (replace(source, since=since),)

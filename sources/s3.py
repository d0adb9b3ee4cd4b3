"""S3 landing buckets: the objects an ``s3://`` input names, and their bytes.

``S3Store.objects`` turns ``s3://bucket/key`` (one object), ``s3://bucket/prefix/`` (every
data file below it) and ``s3://bucket/prefix/**/*.json`` (a glob, as for local files) into
``S3Object``s, listing 1,000 keys a page and yielding each page as it arrives.
``read_range`` and ``open`` read an object's bytes on condition that it is still the object
that was listed (If-Match on its ETag, and its VersionId where it has one), so a worker on
another machine reads straight from the bucket, and never a mix of two versions.

The client is boto3 (the ``s3`` extra), imported when the first ``s3://`` input is used.
Credentials come only from AWS's default chain (AWS_ACCESS_KEY_ID..., AWS_PROFILE, SSO,
roles); the endpoint from the argument, AWS_ENDPOINT_URL_S3 or AWS_ENDPOINT_URL (MinIO, R2,
Ceph). Every failure is one line that names the fix, with the secret key and session token
scrubbed. Transient faults (5xx, throttling, resets) are retried ``attempts`` times with
backoff, and a body broken midway resumes from the byte where it broke.
"""

import io
import os
import random
import re
import threading
import time
from dataclasses import dataclass
from typing import Iterator, Optional

from ..errors import InputChanged, InputError, UsageError, one_line
from .globs import glob_regex, has_magic, is_data_file

PAGE_KEYS = 1000
NEEDS_EXTRA = "s3:// inputs need the s3 extra: pip install 'durable-ingest[s3]'"
SET_CREDENTIALS = ("set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (and AWS_SESSION_TOKEN for "
                   "temporary keys), or AWS_PROFILE to a profile of ~/.aws/config")
NO_CREDENTIALS = f"no AWS credentials found: {SET_CREDENTIALS}"
_TRANSIENT_STATUS = {429, 500, 502, 503, 504}
_TRANSIENT_CODES = {"SlowDown", "Throttling", "ThrottlingException", "RequestLimitExceeded",
                    "TooManyRequestsException", "RequestThrottled", "InternalError",
                    "ServiceUnavailable", "RequestTimeout", "RequestTimeoutException",
                    "PriorRequestNotComplete", "BandwidthLimitExceeded"}
_ACTIONS = {"list_objects_v2": "s3:ListBucket", "head_object": "s3:GetObject",
            "get_object": "s3:GetObject"}


def is_s3(spec: str) -> bool:
    return spec[:5].lower() == "s3://"


def split_url(spec: str) -> tuple:
    """``(bucket, key)`` of ``s3://bucket/key`` (the key may be empty, a prefix or a glob)."""
    bucket, _, key = spec[5:].partition("/")
    if not bucket:
        raise UsageError(f"{spec}: no bucket; write s3://BUCKET/KEY or s3://BUCKET/PREFIX/")
    return bucket, key


@dataclass(frozen=True)
class S3Object:
    """One object as it was listed: what a later read must still find."""

    url: str  # s3://bucket/key
    bucket: str
    key: str
    size: int
    etag: str
    version_id: Optional[str] = None  # from HEAD (a single key); listings carry none


class ObjectChanged(InputChanged):
    """An object is no longer the one that was listed: its chunks can't be trusted."""

    def __init__(self, obj: S3Object):
        pinned = f"version {obj.version_id}" if obj.version_id else f"ETag {obj.etag}"
        super().__init__(f"{obj.url}: changed since it was listed (no longer {pinned}); "
                         "load it again to read the new content")
        self.url = obj.url


class _Missing(InputError):
    """No such key (an input naming a folder without its trailing ``/`` is looked up again)."""


class S3Store:
    """A bucket access layer: listing and conditional reads, with one boto3 client made on
    first use. ``retries`` counts the transient faults retried so far."""

    def __init__(self, endpoint_url: Optional[str] = None, attempts: int = 5,
                 backoff: float = 0.5, max_backoff: float = 30.0):
        self.endpoint_url = (endpoint_url or os.environ.get("AWS_ENDPOINT_URL_S3")
                             or os.environ.get("AWS_ENDPOINT_URL") or None)
        self.attempts = max(1, attempts)
        self.backoff, self.max_backoff = backoff, max_backoff
        self.retries = 0
        self._client = None
        self._session = None
        self._lock = threading.Lock()

    # -- naming the objects ----------------------------------------------------------------------
    def objects(self, spec: str, skipped) -> Iterator[S3Object]:
        """The objects ``spec`` names, in key order; a prefix's hidden keys and other
        extensions are counted in ``skipped.hidden`` and ``skipped.other``."""
        bucket, key = split_url(spec)
        if has_magic(key):
            yield from self._glob(bucket, key)
        elif key == "" or key.endswith("/"):
            yield from self._walk(bucket, key, skipped)
        else:
            yield from self._single(bucket, key, skipped)

    def _single(self, bucket: str, key: str, skipped) -> Iterator[S3Object]:
        try:
            answer = self._call("head_object", Bucket=bucket, Key=key)
        except _Missing:
            # s3://b/landing names the folder landing/ when there is no object "landing"
            if not any(True for _ in self._list(bucket, key + "/", pages=1)):
                raise
            yield from self._walk(bucket, key + "/", skipped)
            return
        yield S3Object(f"s3://{bucket}/{key}", bucket, key, answer["ContentLength"],
                       answer.get("ETag", ""), answer.get("VersionId"))

    def _walk(self, bucket: str, prefix: str, skipped) -> Iterator[S3Object]:
        """Data files below ``prefix``, as a local folder is walked: a hidden component
        (a folder or a file) is counted once and nothing below it is taken."""
        counted = None
        for item in self._list(bucket, prefix):
            parts = item["Key"][len(prefix):].split("/")
            hidden = next((n for n, part in enumerate(parts) if part.startswith(".")), None)
            if hidden is not None:
                root = "/".join(parts[:hidden + 1])
                if root != counted:  # keys under one hidden folder come one after the other
                    skipped.hidden += 1
                    counted = root
            elif is_data_file(parts[-1]):
                yield self._listed(bucket, item)
            else:
                skipped.other += 1

    def _glob(self, bucket: str, pattern: str) -> Iterator[S3Object]:
        """Keys matching ``pattern`` as a local glob matches paths below its fixed folders;
        only keys starting with the text before its first wildcard are listed."""
        parts = pattern.split("/")
        fixed = 0
        while fixed < len(parts) - 1 and not has_magic(parts[fixed]):
            fixed += 1
        root = "".join(part + "/" for part in parts[:fixed])
        matcher = re.compile(glob_regex(parts[fixed:]))
        literal = re.split(r"[*?\[]", pattern, maxsplit=1)[0]
        for item in self._list(bucket, literal):
            if matcher.fullmatch(item["Key"][len(root):]):
                yield self._listed(bucket, item)

    def _list(self, bucket: str, prefix: str, pages: Optional[int] = None) -> Iterator[dict]:
        """The listing's entries (folder markers ``.../`` left out), a page at a time."""
        params = {"Bucket": bucket, "Prefix": prefix, "MaxKeys": PAGE_KEYS}
        while pages is None or pages > 0:
            page = self._call("list_objects_v2", **params)
            yield from (item for item in page.get("Contents", ()) if not item["Key"].endswith("/"))
            if not page.get("IsTruncated"):
                return
            params["ContinuationToken"] = page["NextContinuationToken"]
            pages = None if pages is None else pages - 1

    @staticmethod
    def _listed(bucket: str, item: dict) -> S3Object:
        return S3Object(f"s3://{bucket}/{item['Key']}", bucket, item["Key"], item["Size"],
                        item.get("ETag", ""))

    # -- reading them ----------------------------------------------------------------------------
    def open(self, obj: S3Object) -> "S3Reader":
        """The whole object as a binary stream (``read(n)``, ``seek``, ``close``)."""
        return S3Reader(self, obj)

    def read_range(self, obj: S3Object, start: int, end: int) -> bytes:
        """The bytes ``[start, end)`` of the object as it was listed; ``ObjectChanged`` if it is
        no longer that object."""
        if not 0 <= start <= end <= obj.size:
            raise ValueError(f"range {start}-{end} is outside {obj.url} ({obj.size} bytes)")
        with S3Reader(self, obj, start, end) as reader:
            return reader.read(end - start)

    def get(self, obj: S3Object, start: int, end: int):
        """A GET of ``[start, end)`` on the object's conditions; its streaming body."""
        params = {"Bucket": obj.bucket, "Key": obj.key}
        if obj.etag:
            params["IfMatch"] = obj.etag
        if obj.version_id:
            params["VersionId"] = obj.version_id
        if (start, end) != (0, obj.size):
            params["Range"] = f"bytes={start}-{end - 1}"
        return self._call("get_object", obj, **params)["Body"]

    # -- the client and its failures -------------------------------------------------------------
    @property
    def client(self):
        with self._lock:
            if self._client is None:
                self._client = self._make_client()
            return self._client

    def _make_client(self):
        try:
            import boto3
            from botocore.config import Config
            from botocore.exceptions import BotoCoreError
        except ImportError:
            raise UsageError(NEEDS_EXTRA) from None
        session = boto3.session.Session()
        try:
            if session.get_credentials() is None:
                raise InputError(NO_CREDENTIALS)
        except BotoCoreError as exc:  # a missing profile, partial keys, an expired SSO login
            raise InputError(self._credentials_problem(exc)) from None
        # Retries are ours (_call), so that a body broken midway is resumed on the same terms.
        config = Config(retries={"total_max_attempts": 1}, connect_timeout=10, read_timeout=60,
                        s3={"addressing_style": "path"} if self.endpoint_url else None)
        try:
            client = session.client("s3", endpoint_url=self.endpoint_url, config=config)
        except ValueError as exc:
            raise UsageError(f"S3 endpoint {self.endpoint_url!r}: {exc}; set --endpoint-url (or "
                             "AWS_ENDPOINT_URL) to a URL such as http://127.0.0.1:9000") from None
        self._session = session
        return client

    def _credentials_problem(self, exc: Exception) -> str:
        profile = os.environ.get("AWS_PROFILE") or os.environ.get("AWS_DEFAULT_PROFILE")
        if type(exc).__name__ == "ProfileNotFound":
            where = os.environ.get("AWS_CONFIG_FILE", "~/.aws/config")
            return f"AWS_PROFILE={profile}: no such profile in {where}; add it or unset AWS_PROFILE"
        return f"AWS credentials: {self.scrub(one_line(exc))}; {SET_CREDENTIALS}"

    def _call(self, operation: str, obj: Optional[S3Object] = None, **params):
        """``client.<operation>(**params)``, transient faults retried; any failure becomes one
        line naming the fix (``ObjectChanged`` for a read of an ``obj`` that changed)."""
        for attempt in range(1, self.attempts + 1):
            try:
                return getattr(self.client, operation)(**params)
            except Exception as exc:
                if isinstance(exc, (InputError, UsageError)) or not self.transient(exc) \
                        or attempt == self.attempts:
                    raise self.failure(exc, operation, params, obj, attempt) from None
                self.pause(attempt)

    def pause(self, attempt: int) -> None:
        """Wait before retry number ``attempt``: backoff, doubling, jittered, capped."""
        with self._lock:
            self.retries += 1
        delay = min(self.max_backoff, self.backoff * 2 ** (attempt - 1))
        time.sleep(delay * random.uniform(0.5, 1.0))

    @staticmethod
    def transient(exc: Exception) -> bool:
        import botocore.exceptions as bx

        if isinstance(exc, bx.ClientError):
            code, status = _code_status(exc)
            return code in _TRANSIENT_CODES or status in _TRANSIENT_STATUS
        return isinstance(exc, (bx.ConnectionError, bx.HTTPClientError, bx.IncompleteReadError)) \
            and not isinstance(exc, bx.SSLError)

    def failure(self, exc: Exception, operation: str, params: dict, obj: Optional[S3Object],
                attempts: int) -> Exception:
        """The one-line error for a failed call, scrubbed of every secret."""
        import botocore.exceptions as bx

        if isinstance(exc, (InputError, UsageError)):
            return exc
        key = params.get("Key", params.get("Prefix", ""))
        url = obj.url if obj else f"s3://{params['Bucket']}/{key}"
        if isinstance(exc, bx.ClientError):
            return self._refused(exc, operation, params, obj, url, attempts)
        text = self.scrub(one_line(exc))
        if isinstance(exc, bx.NoCredentialsError):
            return InputError(NO_CREDENTIALS)
        if isinstance(exc, (bx.EndpointConnectionError, bx.ConnectTimeoutError)):
            return InputError(f"{url}: cannot reach the S3 endpoint {self.client.meta.endpoint_url}"
                              f" ({attempts} attempts); check --endpoint-url (or "
                              "AWS_ENDPOINT_URL) and that it is up")
        if self.transient(exc):
            return InputError(f"{url}: {text} ({attempts} attempts); the store is failing or "
                              "throttling: try again later")
        if isinstance(exc, (bx.PartialCredentialsError, bx.CredentialRetrievalError,
                            bx.TokenRetrievalError, bx.SSOError, bx.ProfileNotFound)):
            return InputError(self._credentials_problem(exc))
        return InputError(f"{url}: {text}")

    def _refused(self, exc, operation: str, params: dict, obj, url: str,
                 attempts: int) -> Exception:
        code, status = _code_status(exc)
        if operation == "head_object" and code.isdigit():
            code, status, exc = self._explain_head(params, code, status, exc)
        bucket = params["Bucket"]
        action = "s3:GetObjectVersion" if params.get("VersionId") else _ACTIONS.get(operation)
        resource = f"arn:aws:s3:::{bucket}" + ("" if operation == "list_objects_v2"
                                               else f"/{params.get('Key', '')}")
        where = self.client.meta.endpoint_url
        messages = {
            "InvalidAccessKeyId": f"{url}: the access key is not known at {where} "
            "(InvalidAccessKeyId); check AWS_ACCESS_KEY_ID or the profile's aws_access_key_id",
            "SignatureDoesNotMatch": f"{url}: the secret key does not match the access key "
            "(SignatureDoesNotMatch); check AWS_SECRET_ACCESS_KEY or the profile's "
            "aws_secret_access_key",
            "AccessDenied": f"{url}: access denied to {action} on {resource}; grant it to "
            "these credentials (IAM or bucket policy), or use credentials that have it",
            "NoSuchBucket": f"s3://{bucket}: no such bucket at {where}; check the bucket's "
            "name, AWS_REGION and AWS_ENDPOINT_URL",
            "NoSuchKey": f"{url}: no such key; check the key (a prefix ends with /)",
        }
        if code in ("InvalidToken", "ExpiredToken", "TokenRefreshRequired"):
            return InputError(f"{url}: the session token is expired or invalid ({code}); get new "
                              "temporary credentials (AWS_SESSION_TOKEN, or aws sso login)")
        if obj is not None and code in ("PreconditionFailed", "NoSuchVersion", "NoSuchKey",
                                        "InvalidRange"):
            return ObjectChanged(obj)
        if code in messages:
            return (_Missing if code == "NoSuchKey" else InputError)(messages[code])
        if status in _TRANSIENT_STATUS or code in _TRANSIENT_CODES:
            return InputError(f"{url}: {code} after {attempts} attempts; the store is failing "
                              "or throttling: try again later")
        said = self.scrub(_message(exc) or one_line(exc))
        return InputError(f"{url}: {operation} refused ({code or status}): {said}")

    def _explain_head(self, params: dict, code: str, status, exc) -> tuple:
        """A HEAD's error has no body, so no code: ask again with a one-byte GET, once."""
        import botocore.exceptions as bx

        try:
            self.client.get_object(Bucket=params["Bucket"], Key=params["Key"],
                                   Range="bytes=0-0")["Body"].close()
        except bx.ClientError as again:
            found, found_status = _code_status(again)
            if found and not found.isdigit() and found != "InvalidRange":
                return found, found_status, again
        except Exception:
            pass  # the GET failed another way: the HEAD's status is all there is to go on
        return {"404": "NoSuchKey", "403": "AccessDenied"}.get(code, code), status, exc

    def scrub(self, text: str) -> str:
        """``text`` without the secret key or session token in force."""
        secrets = {os.environ.get("AWS_SECRET_ACCESS_KEY"), os.environ.get("AWS_SESSION_TOKEN")}
        try:
            found = self._session.get_credentials() if self._session else None
            if found is not None:
                secrets.update((found.secret_key, found.token))
        except Exception:
            pass  # the credentials can't be had again: the ones in the environment are scrubbed
        for secret in sorted((s for s in secrets if s), key=len, reverse=True):
            text = text.replace(secret, "***")
        return text


def _code_status(exc) -> tuple:
    response = getattr(exc, "response", None) or {}
    return (str(response.get("Error", {}).get("Code", "")),
            response.get("ResponseMetadata", {}).get("HTTPStatusCode"))


def _message(exc) -> str:
    """The server's own message, on its first line (botocore's adds its retry count)."""
    lines = str(exc.response.get("Error", {}).get("Message") or "").strip().splitlines()
    return lines[0] if lines else ""


class S3Reader(io.RawIOBase):
    """The bytes ``[start, end)`` of one object as a stream: ``read(n)`` gives ``n`` bytes until
    the end. A body broken midway is asked for again from the byte where it broke, on the
    same conditions, so the bytes are all of the version that was listed."""

    def __init__(self, store: S3Store, obj: S3Object, start: int = 0, end: Optional[int] = None):
        super().__init__()
        self._store, self._obj = store, obj
        self._end = obj.size if end is None else end
        self._offset = start
        self._body = None

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._offset

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._offset, io.SEEK_END: self._end}[whence]
        if base + offset != self._offset:
            self._drop()
            self._offset = max(0, base + offset)
        return self._offset

    def readall(self) -> bytes:
        return self.read(max(0, self._end - self._offset))

    def readinto(self, buffer) -> int:
        view = memoryview(buffer).cast("B")
        want, filled, failures = min(len(view), max(0, self._end - self._offset)), 0, 0
        while filled < want:
            if self._body is None:
                self._body = self._store.get(self._obj, self._offset, self._end)
            try:
                chunk = self._body.read(want - filled)
                if not chunk:
                    raise EOFError(f"{self._obj.url}: the body ended at byte {self._offset}")
            except Exception as exc:
                failures += 1
                self._drop()
                if not (isinstance(exc, EOFError) or self._store.transient(exc)):
                    raise self._store.failure(exc, "get_object", {"Bucket": self._obj.bucket},
                                              self._obj, failures) from None
                if failures >= self._store.attempts:
                    raise InputError(f"{self._obj.url}: reading broke off at byte {self._offset} "
                                     f"{failures} times ({self._store.scrub(one_line(exc))}); "
                                     "try again later") from None
                self._store.pause(failures)
                continue
            view[filled:filled + len(chunk)] = chunk
            filled += len(chunk)
            self._offset += len(chunk)
        return filled

    def _drop(self) -> None:
        if self._body is not None:
            try:
                self._body.close()
            except Exception:
                pass  # a broken connection may fail to close too: it is dropped all the same
            self._body = None

    def close(self) -> None:
        self._drop()
        super().close()

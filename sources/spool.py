"""Copies of inputs that can't be re-read in place, kept on disk under their content hash:
standard input, decompressed gzip files and fetched API pages. A chunk read after a crash
finds the same copy."""

import gzip
import hashlib
import os
import shutil
import threading
import zlib
from typing import BinaryIO, Iterator, Optional

from ..errors import InputError
from .common import BLOCK_BYTES, open_input

SPOOL_DIR_ENV = "INGEST_SPOOL_DIR"
GZIP_MAGIC = b"\x1f\x8b"


def spool_dir() -> str:
    """Where copies of stdin and decompressed inputs live, so chunks can be re-read later."""
    return os.environ.get(SPOOL_DIR_ENV) or ".ingest-spool"


def gunzip_to_spool(path: str, name: Optional[str] = None) -> str:
    """Decompress a gzip dataset into the spool, streamed; returns the copy's path.

    The copy is named by the SHA-256 of the compressed bytes, so a rerun, or a recovered
    run's chunks, find the same file; it is renamed into place only once complete.
    """
    name = name or path
    with open_input(path) as f:
        digest = _sha256_of(f)
    final = os.path.join(spool_dir(), f"gunzip-{digest[:20]}.data")
    if os.path.exists(final):
        return final
    partial = f"{final[:-len('.data')]}-{os.getpid()}-{threading.get_ident()}.partial"
    try:
        os.makedirs(spool_dir(), exist_ok=True)
        with gzip.open(path, "rb") as source, open(partial, "wb") as out:
            shutil.copyfileobj(source, out, BLOCK_BYTES)
    except (gzip.BadGzipFile, EOFError, zlib.error) as exc:
        remove_quietly(partial)
        raise InputError(
            f"{name}: is a corrupt or truncated gzip file ({exc}); fetch it again "
            f"(gzip -t {path} checks it)"
        ) from None
    except OSError as exc:
        remove_quietly(partial)
        raise InputError(
            f"{name}: cannot decompress it into {spool_dir()} ({exc.strerror}); free some "
            f"space there or point {SPOOL_DIR_ENV} at a larger directory"
        ) from None
    os.replace(partial, final)
    return final


def _sha256_of(f: BinaryIO) -> str:
    hasher = hashlib.sha256()
    while block := f.read(BLOCK_BYTES):
        hasher.update(block)
    return hasher.hexdigest()


def remove_quietly(path: str) -> None:
    try:
        os.remove(path)
    except FileNotFoundError:
        pass


def spool_stdin(stream: BinaryIO, name: str = "stdin") -> str:
    """Copy a stream to the spool under its hash, so chunks can be re-read after a crash."""
    return spool_blocks(iter(lambda: stream.read(BLOCK_BYTES), b""), name, spool_dir())


def spool_blocks(blocks: Iterator[bytes], name: str, directory: str) -> str:
    """Write ``blocks`` to ``directory`` as ``<name>-<SHA-256>.data``, renamed into place once
    complete; returns its path. The same content spooled before keeps its first copy (whose
    size and modification time a run's chunks check). Whatever ``blocks`` raises goes on,
    with no partial file left."""
    os.makedirs(directory, exist_ok=True)
    partial = os.path.join(directory, f"{name}-{os.getpid()}-{threading.get_ident()}.partial")
    hasher = hashlib.sha256()
    try:
        with open(partial, "wb") as out:
            for block in blocks:
                hasher.update(block)
                out.write(block)
    except BaseException:
        remove_quietly(partial)
        raise
    final = os.path.join(directory, f"{name}-{hasher.hexdigest()[:20]}.data")
    if os.path.exists(final):
        remove_quietly(partial)
    else:
        os.replace(partial, final)
    return final


def readable_copy(path: str, name: str) -> tuple:
    """``(path to read, whether it was decompressed)``: a gzip file (told by its magic bytes,
    whatever its name) is decompressed into the spool first."""
    with open_input(path) as f:
        gzipped = f.read(len(GZIP_MAGIC)) == GZIP_MAGIC
    if gzipped:
        return gunzip_to_spool(path, name), True
    if path.lower().endswith(".gz"):
        raise InputError(
            f"{name}: is named .gz but is not gzip-compressed; rename it without .gz "
            "if it is plain JSON, or fetch the compressed file again"
        )
    return path, False

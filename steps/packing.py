"""Packing a run's new files into chunks: consecutive pieces of files, about ``chunk_size``
records each (a chunk may span many small files; a big file is cut into byte ranges by its
scan). The run's workflow packs a page of files per transaction (``pack_chunks``)."""

from typing import Optional

from sqlalchemy import select

from ..store import datasource
from ..contract import Chunk
from ..models import Source

PACK_PAGE = 1000  # files read per packing step


def pack_chunks(run_id: str, chunk_size: int, state: dict, final: bool = True) -> dict:
    """The chunks of the next page of new files. ``state`` carries the chunk still open
    across pages, so chunks are cut the same way whatever the page size."""
    rows = datasource.session().execute(
        select(Source.ordinal, Source.pieces)
        .where(Source.run_id == run_id, Source.state == "new", Source.ordinal > state["after"])
        .order_by(Source.ordinal).limit(PACK_PAGE)).all()
    packer = Packer(chunk_size, state["open"], state["next_index"])
    for row in rows:
        packer.add_file(row.ordinal, row.pieces or [])
    done = len(rows) < PACK_PAGE
    if done and final:
        packer.close()
    after = rows[-1].ordinal if rows else state["after"]
    return {"chunks": packer.chunks, "done": done,
            "state": {"after": after, "open": packer.open, "next_index": packer.next_index}}


def first_state() -> dict:
    """Where packing starts: no file packed, no chunk open, none made."""
    return {"after": -1, "open": None, "next_index": 0}


class Packer:
    """Greedy packing of file pieces (each at most a chunk) into chunks of at most
    ``chunk_size`` records, in file order."""

    def __init__(self, chunk_size: int, open_chunk: Optional[dict], next_index: int):
        self.chunk_size, self.open, self.next_index = chunk_size, open_chunk, next_index
        self.chunks: list = []

    def add_file(self, ordinal: int, pieces: list) -> None:
        for number, (_, _, position, count) in enumerate(pieces):
            if self.open and self.open["records"] + count > self.chunk_size:
                self.close()
            if self.open is None:
                self.open = {"first": ordinal, "first_piece": number, "first_position": position,
                             "records": 0, "files_done": 0}
            self.open.update(last=ordinal, last_piece=number)
            self.open["records"] += count
            if number == len(pieces) - 1:
                self.open["files_done"] += 1
            if self.open["records"] >= self.chunk_size:
                self.close()

    def close(self) -> None:
        if self.open:
            self.chunks.append(Chunk(index=self.next_index, **self.open))
            self.next_index += 1
            self.open = None

"""A run's files: their ``sources`` rows (what chunks read back) and the claims of their
contents (``contents``: one claim per fingerprint, ever)."""

from typing import Optional

from sqlalchemy import case, func, select, update

from ..models import Content, Source
from .dialect import insert_ignoring_conflicts


def source_row(run_id: str, ordinal: int, name: str, path: Optional[str], **columns) -> dict:
    """A ``sources`` row of a file or an API page: ``planned``, with nothing known of its
    content, except for ``columns``."""
    return {"run_id": run_id, "ordinal": ordinal, "name": name, "path": path or name,
            "fingerprint": None, "records": 0, "state": "planned", "shape": None, "size": None,
            "mtime_ns": None, "pieces": None, "error": None, "loaded_by": None, "etag": None,
            "version_id": None, "compression": None, "origin": None, "covered": None,
            "first_position": 0, "held_back": 0, "change": None, "previous": None, **columns}


def write_sources(connection, rows: list) -> None:
    """Plan rows of a run's files; a row already written (a command run again) is kept."""
    if rows:
        connection.execute(insert_ignoring_conflicts(connection, Source), rows)


def claimed_by(connection, fingerprints: list) -> dict:
    """fingerprint -> the run that claimed it, for those already claimed."""
    if not fingerprints:
        return {}
    rows = connection.execute(select(Content.fingerprint, Content.run_id)
                              .where(Content.fingerprint.in_(fingerprints))).all()
    return dict(rows)


def claim(session, run_id: str, files: list) -> dict:
    """Claim the contents of ``(ordinal, fingerprint)`` pairs for this run, in order; returns
    fingerprint -> (owner run, owner ordinal), whoever won."""
    if files:
        statement = insert_ignoring_conflicts(session, Content)
        session.execute(statement, [{"fingerprint": f, "run_id": run_id, "ordinal": o}
                                    for o, f in files])
    rows = session.execute(select(Content.fingerprint, Content.run_id, Content.ordinal)
                           .where(Content.fingerprint.in_([f for _, f in files]))).all()
    return {f: (r, o) for f, r, o in rows}


def set_source_states(session, run_id: str, ordinals: list, state: str,
                      loaded_by: Optional[dict] = None) -> None:
    if not ordinals:
        return
    if loaded_by is None:
        session.execute(update(Source).where(Source.run_id == run_id, Source.ordinal.in_(ordinals))
                        .values(state=state))
        return
    for ordinal in ordinals:
        session.execute(update(Source).where(Source.run_id == run_id, Source.ordinal == ordinal)
                        .values(state=state, loaded_by=loaded_by[ordinal]))


def set_source_errors(session, run_id: str, errors: dict) -> None:
    """Say why in ``error`` of the run's files ``ordinal -> why`` (objects that changed
    before their chunks read them: they stay ``new``, their records in ``errors``)."""
    for ordinal, why in errors.items():
        session.execute(update(Source).where(Source.run_id == run_id, Source.ordinal == ordinal)
                        .values(error=why))


def loaded_at(connection, origins: list, run_id: str) -> dict:
    """origin -> ``(fingerprint, covered, positions)`` of the latest version of the local
    file at that origin that another run loaded or found loaded: its fingerprint, the bytes
    it covers and the positions its records took (those of the run that claimed it)."""
    if not origins:
        return {}
    latest = (select(func.max(Source.id)).where(
        Source.origin.in_(origins), Source.run_id != run_id,
        Source.state.in_(("new", "duplicate")), Source.fingerprint.is_not(None))
        .group_by(Source.origin))
    found = dict(connection.execute(select(Source.origin, Source.fingerprint)
                                    .where(Source.id.in_(latest))).all())
    owners = {f: (r, o) for f, r, o in connection.execute(
        select(Content.fingerprint, Content.run_id, Content.ordinal)
        .where(Content.fingerprint.in_(list(found.values())))).all()}
    versions = {}
    for origin, fingerprint in found.items():
        if fingerprint not in owners:
            continue
        run, ordinal = owners[fingerprint]
        owner = connection.execute(
            select(Source.covered, Source.size, Source.first_position, Source.records)
            .where(Source.run_id == run, Source.ordinal == ordinal)).one_or_none()
        if owner is not None:
            covered = owner.covered if owner.covered is not None else owner.size
            versions[origin] = (fingerprint, covered, owner.first_position + owner.records)
    return versions


SHOWN_CHANGED = 20


def file_notes(connection, run_id: str) -> dict:
    """What a run's local files said of themselves: unfinished last lines held back,
    rewritten files (the names of the first ``SHOWN_CHANGED``) and how many of those
    ``--changed skip`` left alone."""
    held_back = connection.execute(select(func.coalesce(func.sum(Source.held_back), 0))
                                   .where(Source.run_id == run_id)).scalar()
    rewritten = (Source.run_id == run_id, Source.change == "rewritten")
    names = list(connection.execute(select(Source.name).where(*rewritten)
                                    .order_by(Source.ordinal).limit(SHOWN_CHANGED)).scalars())
    count, left_alone = connection.execute(
        select(func.count(), func.coalesce(func.sum(case((Source.state == "skipped", 1),
                                                          else_=0)), 0))
        .where(*rewritten)).one()
    return {"held_back": int(held_back), "changed": names, "changed_count": int(count),
            "changed_skipped": int(left_alone)}

"""The in-process layer: ``integration``'s steps and workflows and ``store``'s rows, called
directly on DBOS launched once per test process (``inprocess`` in conftest), on SQLite.

No CLI, no subprocess, no mock: each test plans a file of its own into ``sources`` as a
command would, then calls ``write_chunk``, ``load_chunk``, ``retry_records`` or
``redrive_errors`` and looks at the rows in ``tasks`` and ``errors``.
"""

import json

import pytest
from dbos import DBOS, SetWorkflowID

from conftest import people, wait_until
from durable_ingest.steps import chunks, claims, packing
from durable_ingest import integration
from durable_ingest.store.datasource import app_db, tx_options
from durable_ingest.codec import NUL_REASON
from durable_ingest.store.error_rows import bad_file_row, error_row, write_errors_once
from durable_ingest.contract import SUCCESS, Job, chunk_workflow_id, redrive_workflow_id, retry_workflow_id
from durable_ingest.errors import InputChanged
from durable_ingest.steps.load_options import LoadOptions
from durable_ingest.steps.inputs import identify_inputs
from durable_ingest.sources.rows import write_plan
from durable_ingest.transform import Faults

pytestmark = pytest.mark.xdist_group("inprocess")  # one process, one after the other: one launch


def ndjson(records: list) -> str:
    """NDJSON lines: records are dumped, strings written as they are (bad lines)."""
    return "".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in records)


def planned(inprocess, text: str, *, chunk_size: int = 5000, suffix: str = ".ndjson") -> tuple:
    """Plan and claim a new file as ``ingest load`` does; (run id, its chunks)."""
    path = inprocess.new_file(suffix, text)
    options = LoadOptions(chunk_size=chunk_size)
    manifest, _, scanned = identify_inputs([str(path)], options)
    try:
        run_id = manifest.run_id
        write_plan(inprocess.engine, manifest, run_id, chunk_size, None, "", scanned)
    finally:
        manifest.close()
    app_db().run_tx_step(tx_options("claim_page"), claims.claim_page, run_id, 0, 1000)
    page = app_db().run_tx_step(tx_options("pack_chunks"), packing.pack_chunks, run_id,
                                chunk_size, {"after": -1, "open": None, "next_index": 0})
    return run_id, page["chunks"]


def job(run_id: str, *, max_attempts: int = 3, fail: tuple = (), chunk_size: int = 5000) -> Job:
    return Job(run_id=run_id, chunk_size=chunk_size, max_attempts=max_attempts,
               retry_interval=0.01, backoff=1.0, faults=Faults(frozenset(fail)).as_dict())


def write_chunk(job_: Job, chunk) -> dict:
    return app_db().run_tx_step(tx_options("write_chunk"), chunks.write_chunk, job_, chunk)


def result_when_done(workflow_id: str, timeout: float = 60):
    """A workflow's result, once it has succeeded (bounded: fails the test after ``timeout``)."""
    wait_until(lambda: (s := DBOS.get_workflow_status(workflow_id)) and s.status == SUCCESS,
               timeout, f"workflow {workflow_id} to succeed")
    return DBOS.retrieve_workflow(workflow_id).get_result()


# -- write_chunk: one transaction per chunk --------------------------------------------------
def test_write_chunk_writes_transformed_records_and_bad_ones_at_once(inprocess):
    run_id, [chunk] = planned(inprocess, ndjson([*people(3), "[1, 2]", "not json", {"id": 5}]))

    outcome = write_chunk(job(run_id, fail=(1,)), chunk)

    assert (outcome["tasks"], outcome["errors"]) == (3, 2)
    assert outcome["retry"] == [[0, 1, 1]]  # handed to retry_records as file 0's position 1
    rows = inprocess.query("SELECT position, title, data FROM tasks WHERE run_id = :r "
                           "ORDER BY position", r=run_id)
    assert [(p, t) for p, t, _ in rows] == [(0, "task 0"), (2, "task 2"), (5, "task 5")]
    assert json.loads(rows[1][2])["name"] == {"title": "MS", "first": "FIRST2", "last": "LAST-2"}
    assert [(m["position"], m["error_type"], m["attempts"], m["permanent"])
            for m in inprocess.messages(run_id)] == [
        (3, "NotAnObject", 0, True), (4, "InvalidJSON", 0, True)]


def test_write_chunk_with_one_attempt_writes_the_failure_to_errors(inprocess):
    run_id, [chunk] = planned(inprocess, ndjson(people(4)))

    outcome = write_chunk(job(run_id, max_attempts=1, fail=(2,)), chunk)

    assert (outcome["tasks"], outcome["errors"], outcome["retry"]) == (3, 1, [])
    [message] = inprocess.messages(run_id)
    assert (message["title"], message["error_type"], message["attempts"]) == (
        "task 2", "InjectedFailure", 1)
    assert message["error"] == "task 2 failed on purpose (--fail-task 2)"
    assert message["record"] is None  # its text is kept once, in errors.source
    [source] = inprocess.query("SELECT source FROM errors WHERE run_id = :r", r=run_id)[0]
    assert json.loads(source)["name"]["first"] == "first2"  # the original, untransformed


def test_write_chunk_refuses_a_changed_input_and_writes_nothing(inprocess):
    run_id, [chunk] = planned(inprocess, ndjson(people(3)))
    path = inprocess.query("SELECT path FROM sources WHERE run_id = :r", r=run_id)[0][0]
    with open(path, "r+") as f:
        f.write('{"other": 1}')

    with pytest.raises(InputChanged, match="changed since it was scanned"):
        write_chunk(job(run_id), chunk)

    assert inprocess.counts(run_id) == (0, 0)


def test_write_chunk_reads_a_file_that_only_grew_since_its_scan(inprocess):
    run_id, [chunk] = planned(inprocess, ndjson(people(3, start=700)))
    path = inprocess.query("SELECT path FROM sources WHERE run_id = :r", r=run_id)[0][0]
    with open(path, "a") as f:  # appended while the run loads: the next run's tail
        f.write(json.dumps({"id": 99}) + "\n")

    outcome = write_chunk(job(run_id), chunk)

    assert (outcome["tasks"], outcome["errors"]) == (3, 0)


def test_a_file_cut_into_chunks_keeps_its_positions(inprocess):
    run_id, chunks = planned(inprocess, ndjson(people(7)), chunk_size=3)

    outcomes = [write_chunk(job(run_id, chunk_size=3), c) for c in chunks]

    assert [c.records for c in chunks] == [3, 3, 1]
    assert [o["tasks"] for o in outcomes] == [3, 3, 1]
    positions = [p for (p,) in inprocess.query(
        "SELECT position FROM tasks WHERE run_id = :r ORDER BY position", r=run_id)]
    assert positions == list(range(7))


# -- load_chunk and retry_records: workflows, exactly once ------------------------------------
def test_load_chunk_run_twice_under_its_id_writes_once(inprocess):
    run_id, [chunk] = planned(inprocess, ndjson(people(5)))
    workflow_id = chunk_workflow_id(run_id, chunk.index)

    with SetWorkflowID(workflow_id):
        first = integration.load_chunk(job(run_id), chunk)
    with SetWorkflowID(workflow_id):
        again = integration.load_chunk(job(run_id), chunk)

    assert first == again and (first.tasks, first.errors, first.retry_workflow) == (5, 0, None)
    assert inprocess.counts(run_id) == (5, 0)


def test_load_chunk_hands_failures_to_a_retry_workflow_that_writes_them_once(inprocess):
    run_id, [chunk] = planned(inprocess, ndjson(people(6)))

    with SetWorkflowID(chunk_workflow_id(run_id, chunk.index)):
        result = integration.load_chunk(job(run_id, fail=(4,)), chunk)
    retried = result_when_done(result.retry_workflow)

    assert result.retry_workflow == retry_workflow_id(run_id, chunk.index)
    assert (result.tasks, result.errors) == (5, 0)
    assert retried == {"tasks": 0, "updated": 0, "skipped": 0, "errors": 1, "retries": 2,
                       "highest": None}
    [message] = inprocess.messages(run_id)
    assert (message["position"], message["error_type"], message["attempts"]) == (
        4, "InjectedFailure", 3)
    assert inprocess.counts(run_id) == (5, 1)


def test_retry_records_rescues_a_transient_failure(inprocess):
    run_id, [chunk] = planned(inprocess, ndjson(people(2)))
    outcome = write_chunk(job(run_id, fail=(0,)), chunk)  # fails once, here

    with SetWorkflowID(retry_workflow_id(run_id, chunk.index)):
        retried = integration.retry_records(job(run_id), chunk, outcome["retry"])

    assert retried == {"tasks": 1, "updated": 0, "skipped": 0, "errors": 0, "retries": 1,
                       "highest": None}
    assert inprocess.counts(run_id) == (2, 0)


# -- redrive_errors: errors rows through the transform again ------------------------------------
def test_redrive_rescues_what_can_load_and_keeps_the_audit_trail(inprocess):
    run_id, [chunk] = planned(inprocess, ndjson([*people(4), "7"]))
    write_chunk(job(run_id, max_attempts=1, fail=(1, 2)), chunk)
    assert inprocess.counts(run_id) == (2, 3)

    with SetWorkflowID(redrive_workflow_id(run_id, 1)):
        totals = integration.redrive_errors(run_id, Faults(frozenset({2})).as_dict(), 1)

    assert totals == {"run_id": run_id, "retried": 2, "tasks": 1, "errors": 1, "skipped": 0}
    assert inprocess.counts(run_id) == (3, 3)  # error rows are kept, for audit
    rows = inprocess.query("SELECT position, resolved_at IS NOT NULL, message FROM errors "
                           "WHERE run_id = :r ORDER BY position", r=run_id)
    assert [(p, resolved) for p, resolved, _ in rows] == [(1, True), (2, False), (4, False)]
    still = json.loads(rows[1][2])
    assert (still["attempts"], still["error_type"]) == (2, "InjectedFailure")
    assert still["first_error"] == "task 2 failed on purpose (--fail-task 2)"
    assert json.loads(rows[2][2])["attempts"] == 0  # NotAnObject: never transformed again

    with SetWorkflowID(redrive_workflow_id(run_id, 2)):
        again = integration.redrive_errors(run_id, {}, 1000)

    assert again == {"run_id": run_id, "retried": 1, "tasks": 1, "errors": 0, "skipped": 0}
    assert inprocess.query("SELECT count(*) FROM errors WHERE run_id = :r AND resolved_at IS NULL",
                           r=run_id)[0][0] == 1
    assert inprocess.counts(run_id) == (4, 3)


# -- store: the rows as they are stored ---------------------------------------------------------
def test_error_row_keeps_the_record_storable_by_jsonb():
    row = error_row("ingest-" + "0" * 20, "f" * 20, 7, "NulCharacter", NUL_REASON,
                          {"name": "a\x00b", "nested": ["\x00"]}, 0, True)

    assert (row["title"], row["source_key"], row["position"]) == ("task 7", "f" * 20 + ":7", 7)
    assert row["message"]["record"] == {"name": "a\ufffdb", "nested": ["\ufffd"]}
    assert row["message"]["permanent"] is True
    assert error_row("r", "f", 0, "T", "m", None, 1, False)["message"]["record"] is None


def test_a_bad_file_gets_one_errors_row_however_often_it_is_seen(inprocess):
    run_id = "ingest-" + "b" * 20
    row = bad_file_row(run_id, "broken.json", None, "broken.json: is empty")

    def write_once() -> int:
        return write_errors_once(app_db().sql_session(), [row])

    written = [app_db().run_tx_step(tx_options("bad_file"), write_once) for _ in range(2)]

    assert written == [1, 0]
    [message] = inprocess.messages(run_id)
    assert (message["error_type"], message["position"], message["path"]) == ("BadFile", -1, "broken.json")
    assert message["source_key"].startswith("path:")

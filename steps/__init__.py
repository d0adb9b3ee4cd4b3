"""The work behind the steps of ``integration``'s story, one module per kind of step. Each
function runs inside a DBOS step or datasource transaction that ``integration`` names; none
declares a workflow or a step of its own.

- ``claims``: a run claims its files' contents, so the same bytes load once;
- ``packing``: the claimed files' pieces into chunks of about ``chunk_size`` records;
- ``chunks``: a chunk's records read back, transformed and written in one transaction,
  and the retry rounds of those whose transform failed;
- ``outcomes``: a run's chunks awaited, a batch at a time, and their results added up;
- ``redrive``: ``ingest retry``, a run's ``errors`` rows through its transform again;
- ``faults``: the hidden test hooks (a slow chunk, a poison chunk, a parked chunk);
- ``load_options``: what a load is asked to do (``LoadOptions``), checked before any work;
- ``inputs``: a load's inputs found, fingerprinted and named, and the run they make (the
  command's and a schedule tick's);
- ``ticks``: a schedule's tick: the run it plans, and what it did, counted once;
- ``retention``: what ``ingest gc`` deletes of old finished runs, and in which order.

May import: ``transform``, ``sources``, ``store``, ``tables`` and the services and
foundation below them; never ``integration`` or anything above it.
"""

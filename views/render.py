"""How runs, chunks, files and error groups look on a terminal: the tables of ``ingest
status`` and ``ingest errors``, from the dicts ``views.runs`` returns."""

import time
from typing import Optional


def runs(runs: list, hint: Optional[str] = None) -> str:
    """The runs table; with no runs, how to start one (and ``hint``, where earlier runs are)."""
    if not runs:
        return "no runs yet; start one with: ingest load FILE" + (f"\n{hint}" if hint else "")
    header = (f"{'run id':<28} {'state':<11} {'files':>7} {'records':>9} {'tasks':>9} {'errors':>7} "
              f"{'started':<19} {'duration':>9} {'rec/s':>8}  {'table':<14} {'label':<12} dataset")
    lines = [header]
    for r in runs:
        started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(r["started_at"])) if r["started_at"] else "-"
        duration = f"{r['duration_s']:.1f} s" if r["duration_s"] is not None else "-"
        rate = f"{r['records_per_s']:,.0f}" if r["records_per_s"] is not None else "-"
        state = f"{r['state']} (gc)" if r.get("history_removed") else r["state"]
        lines.append(f"{r['run_id']:<28} {state:<11} {r['files']:>7} {r['records']:>9} "
                     f"{r['tasks']:>9} {r['errors']:>7} {started:<19} {duration:>9} {rate:>8}  "
                     f"{r.get('table') or 'tasks':<14} {label_of(r):<12} {r['dataset']}")
    if any(r.get("history_removed") for r in runs):
        lines.append("(gc): ingest gc removed its history; its counts are from its summary row")
    return "\n".join(lines)


def label_of(run: dict, none: str = "-") -> str:
    """Its label, else ``@SCHEDULE`` for a run a schedule started, else ``none``."""
    if run.get("label"):
        return run["label"]
    return f"@{run['schedule']['name']}" if run.get("schedule") else none


def detail(detail: dict, every_chunk: bool = False) -> str:
    """One run: its row, what it wrote where, then its chunks, summed up (or every one)."""
    lines = [runs([detail])]
    if detail.get("schedule"):
        lines.append(f"  started by schedule {detail['schedule']['name']}, tick "
                     f"{detail['schedule']['tick']} (ingest schedule list)")
    if detail.get("table", "tasks") != "tasks":
        lines.append(f"  into table {detail['table']} (its columns: ingest schema {detail['table']})")
    if detail.get("updated") or detail.get("skipped"):
        lines.append(f"  {detail.get('updated', 0)} record(s) updated a stored row, "
                     f"{detail.get('skipped', 0)} skipped (no row: the transform dropped them "
                     "or their key was already stored)")
    if detail.get("resolved"):
        lines.append(f"  {detail['resolved']} error row(s) resolved by ingest retry")
    if detail.get("pages"):
        lines.append(describe_pages(detail["pages"]))
    if detail.get("incremental"):
        lines.append(describe_incremental(detail["incremental"]))
    lines += landing(detail)
    if detail.get("history_removed"):
        return "\n".join(lines)  # no chunks are left to show
    lines += ["", *(chunk_rows(detail["chunks"]) if every_chunk
                    else chunk_summary(detail["chunk_summary"], detail["run_id"]))]
    if detail["files"] > 1 or detail.get("pages"):
        lines.append(f"\nits files and pages: ingest status {detail['run_id']} --files 1")
    if detail["state"] == "incomplete":
        lines.append(f"\nsome chunks were given up; once the cause is fixed: ingest resume {detail['run_id']}")
    return "\n".join(lines)


def chunk_rows(chunks: list) -> list:
    lines = [f"{'chunk':>6} {'records':<22} {'state':<31} {'tasks':>7} {'errors':>7} "
             f"{'recoveries':>10}  retry"]
    for c in chunks:
        lines.append(f"{c['chunk']:>6} {c['records']:<22} {c['state']:<31} {c['tasks']:>7} "
                     f"{c['errors']:>7} {c['recoveries']:>10}  {c['retry_state'] or '-'}")
    return lines


def chunk_summary(summary: dict, run_id: str) -> list:
    """A few lines however many chunks: counts by state, the slowest, the failed."""
    states = ", ".join(f"{state} {count:,}" for state, count in sorted(summary["by_state"].items()))
    lines = [f"chunks {summary['total']:,}" + (f": {states}" if states else "")]
    if summary["recoveries"]:
        lines.append(f"  recovered after a crash: {summary['recoveries']:,} time(s)")
    if summary["slowest"]:
        lines.append("  slowest: " + ", ".join(f"chunk {s['chunk']} ({s['seconds']:.2f} s)"
                                               for s in summary["slowest"]))
    for failed in summary["failed"]:
        lines.append(f"  failed: chunk {failed['chunk']} ({failed['state']}), "
                     f"records {failed['records']}")
    hidden = summary["failed_total"] - len(summary["failed"])
    if hidden:
        lines.append(f"  ... and {hidden:,} more failed chunk(s)")
    if summary["total"]:
        lines.append(f"every chunk: ingest status {run_id} --chunks")
    return lines


def landing(detail: dict) -> list:
    """Lines for held-back last lines and files rewritten since they were loaded."""
    lines = []
    if detail.get("held_back"):
        lines.append(f"  {detail['held_back']} incomplete last line(s) held back: they load "
                     "once complete")
    count = detail.get("files_changed_count", 0)
    if count:
        shown = detail["files_changed"]
        more = f" and {count - len(shown)} more" if count > len(shown) else ""
        left = detail.get("files_changed_skipped", 0)
        lines.append(f"  {count} file(s) rewritten since loaded: {', '.join(shown)}{more}")
        if left:
            lines.append(f"  {left} left alone (--changed skip)")
        if count > left:
            lines.append("  their records loaded as new content: without --key, those they "
                         "share with what was loaded are stored twice")
    return lines


def files(page: dict) -> str:
    lines = [f"files {page['first']}-{page['last']} of {page['total']} of {page['run_id']}",
             f"{'#':>7} {'state':<10} {'records':>8} {'tasks':>8} {'errors':>7}  file"]
    for f in page["files"]:
        note = f" (loaded by {f['loaded_by']})" if f["loaded_by"] else ""
        note = f" ({f['error']})" if f["error"] else note
        lines.append(f"{f['ordinal']:>7} {f['state']:<10} {f['records']:>8} {f['tasks']:>8} "
                     f"{f['errors']:>7}  {f['name']}{note}")
    if page["next_page"]:
        lines.append(f"next: ingest status {page['run_id']} --files {page['next_page']}")
    return "\n".join(lines)


def error_groups(groups: list, run_id=None) -> str:
    """``ingest errors``: a block per group: count, type and message; then where its sample is."""
    if not groups:
        return "no errors" + (f" in {run_id}" if run_id else "")
    lines = []
    for g in groups:
        lines.append(f"{g['count']:>7,}  {g['error_type']}: {g['error']}")
        lines.append(f"         e.g. {sample_of(g)}")
    return "\n".join(lines)


def sample_of(group: dict) -> str:
    """Where a group's sample is: ``file line N (run RUN_ID)``, or the URL of a page."""
    where = " ".join(part for part in (group["sample_file"], group["sample_where"]) if part)
    return f"{where or group['sample_title']} (run {group['sample_run']})"


def describe_incremental(values: dict) -> str:
    """Used: the value the run asked from; new: the one it left (None: not yet, or none)."""
    used = "the start (no value yet)" if values["used"] is None else values["used"]
    new = "-" if values["new"] is None else values["new"]
    return f"  incremental {values['field']}: asked from {used}; the next run asks from {new}"


def describe_pages(pages: dict) -> str:
    empty = f", {pages['empty']:,} empty" if pages.get("empty") else ""
    return (f"  pages: {pages['fetched']:,} fetched: {pages['new']:,} new, "
            f"{pages['already']:,} already loaded, {pages['failed']:,} failed{empty}"
            f" | http retries {pages['http_retries']:,}")


def schemas(tables: list) -> str:
    """``ingest schema``: each dataset table's columns, types and the run that added them."""
    if not tables:
        return "no dataset tables yet; make one with: ingest load FILE --table NAME"
    blocks = []
    for table in tables:
        key = f"key {table['key']} (column {table['key_column']})" if table["key"] \
            else "keyed by file and position (_source_key)"
        lines = [f"table {table['table']}: {table['rows']:,} rows, {key}, "
                 f"created by {table['created_by']}",
                 f"  {'column':<40} {'type':<10} {'added by':<28} field"]
        for column in table["columns"]:
            field = ".".join(column["path"])
            if column["variant_of"]:
                field += f" (values that don't fit {column['variant_of']})"
            elif column.get("hinted"):
                field += " (hinted: --column)"
            lines.append(f"  {column['name']:<40} {column['type']:<10} {column['added_by']:<28} "
                         f"{field}")
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)


def schedules(found: list) -> str:
    """The schedules table: a line each, then its last run."""
    if not found:
        return ("no schedules yet; add one with: ingest schedule add NAME 'CRON' INPUT... "
                "(then run `ingest worker`)")
    lines = [f"{'name':<20} {'cron':<16} {'tz':<10} {'state':<7} {'next tick':<26} "
             f"{'runs':>5} {'skipped':>7}  inputs"]
    for s in found:
        state = "paused" if s["paused"] else "active"
        lines.append(f"{s['name']:<20} {s['cron']:<16} {s['tz']:<10} {state:<7} "
                     f"{s['next_tick'] or '-':<26} {s['runs']:>5} {s['skipped']:>7}  "
                     f"{', '.join(s['inputs'])}")
        lines.append("    " + last_tick_line(s))
    return "\n".join(lines)


def last_tick_line(schedule: dict) -> str:
    run = schedule["last_run"]
    last = (f"last run {run['run_id']} {run['state']}" + (
        f": records {run['records']:,} | tasks {run['tasks']:,} | errors {run['errors']:,}"
        if run.get("records") is not None else "")) if run else "no run yet"
    if schedule["last_outcome"] and schedule["last_outcome"] != "started":
        last += f"; last tick {schedule['last_tick']}: {schedule['last_outcome']}" + (
            f" ({schedule['last_reason']})" if schedule["last_reason"] else "")
    return last

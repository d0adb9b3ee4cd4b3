"""How runs, chunks, files and error groups look on a terminal: the tables of ``ingest
status`` and ``ingest errors``, from the dicts ``views.runs`` returns."""

import time


def runs(runs: list) -> str:
    if not runs:
        return "no runs yet; start one with: ingest load FILE"
    header = (f"{'run id':<28} {'state':<11} {'files':>7} {'records':>9} {'tasks':>9} {'errors':>7} "
              f"{'started':<19} {'duration':>9} {'rec/s':>8}  dataset")
    lines = [header]
    for r in runs:
        started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(r["started_at"])) if r["started_at"] else "-"
        duration = f"{r['duration_s']:.1f} s" if r["duration_s"] is not None else "-"
        rate = f"{r['records_per_s']:,.0f}" if r["records_per_s"] is not None else "-"
        lines.append(f"{r['run_id']:<28} {r['state']:<11} {r['files']:>7} {r['records']:>9} "
                     f"{r['tasks']:>9} {r['errors']:>7} {started:<19} {duration:>9} {rate:>8}  "
                     f"{r['dataset']}")
    return "\n".join(lines)


def detail(detail: dict) -> str:
    lines = [runs([detail])]
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
    lines += ["", f"{'chunk':>6} {'records':<22} {'state':<31} {'tasks':>7} {'errors':>7} "
              f"{'recoveries':>10}  retry"]
    for c in detail["chunks"]:
        lines.append(f"{c['chunk']:>6} {c['records']:<22} {c['state']:<31} {c['tasks']:>7} "
                     f"{c['errors']:>7} {c['recovery_attempts'] or 0:>10}  {c['retry_state'] or '-'}")
    if detail["files"] > 1 or detail.get("pages"):
        lines.append(f"\nits files and pages: ingest status {detail['run_id']} --files 1")
    if detail["state"] == "incomplete":
        lines.append(f"\nsome chunks were given up; once the cause is fixed: ingest resume {detail['run_id']}")
    return "\n".join(lines)


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
            lines.append(f"  {column['name']:<40} {column['type']:<10} {column['added_by']:<28} "
                         f"{field}")
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)

"""``--records PATH``: where the records of a document or an API page are (issue 31, item 1):
nested lists of records streamed, what surrounds them not loaded, a document without the
path refused with the keys found where it stopped, and the path part of what names a run."""

import json
import sys

from conftest import REPO
from conftest import cli_load as load

sys.path.insert(0, str(REPO / "benchmarks"))
from page_server import PageServer  # noqa: E402

NESTED = {"meta": {"count": 3, "rows": [{"no": "not these"}]},
          "data": {"rows": [{"id": 1, "n": 1.5}, {"id": 2, "n": 10**30}, {"id": 3}], "next": None},
          "trailer": [{"id": "not a record"}]}


def test_records_at_a_nested_path_and_nothing_around_them(cli, backend, workdir):
    (workdir / "export.json").write_text(json.dumps(NESTED))

    summary = load(cli, backend, "export.json", "--records", "data.rows", "--table", "rows",
                   "--chunk-size", "2")

    assert (summary["records"], summary["tasks"], summary["chunks"]) == (3, 3, 2)
    rows = backend.query("SELECT id, _position FROM rows ORDER BY _position")
    assert [tuple(r) for r in rows] == [(1, 0), (2, 1), (3, 2)]
    again = cli("load", "export.json", "--records", "data.rows", "--table", "rows",
                env=backend.env())
    assert "already loaded by run " + summary["run_id"] in again.stdout


def test_the_same_bytes_read_at_another_path_are_another_dataset(cli, sqlite_backend, workdir):
    (workdir / "export.json").write_text(json.dumps(NESTED))

    whole = load(cli, sqlite_backend, "export.json")
    rows = load(cli, sqlite_backend, "export.json", "--records", "data.rows")

    assert (whole["records"], rows["records"]) == (1, 3)
    assert whole["run_id"] != rows["run_id"]


def test_a_document_without_the_path_names_it_and_the_keys_found(cli, sqlite_backend, workdir):
    (workdir / "export.json").write_text(json.dumps(NESTED))
    (workdir / "other.json").write_text(json.dumps({"data": {"rows": [{"id": 9}]}}))

    alone = cli("load", "export.json", "--records", "data.cols", env=sqlite_backend.env())
    both = cli("load", "other.json", "export.json", "--records", "data.cols.x",
               env=sqlite_backend.env())

    assert alone.exit_code == 3
    assert alone.stderr.strip() == ("Error: export.json: has no list of records at data.cols "
                                    "(--records): at data, the keys are rows, next")
    assert both.exit_code == 3, both.output
    assert "other.json: has no list of records at data.cols.x (--records): at data, the keys " \
           "are rows" in both.output


def test_records_must_be_a_path_and_a_document(cli, sqlite_backend, workdir):
    (workdir / "lines.ndjson").write_text('{"id": 1}\n{"id": 2}\n')

    for args, says in ((("--records", "a..b"), "--records 'a..b': give a dotted path of keys"),
                       (("--records", "data", "--format", "ndjson"),
                        "--records PATH reads a JSON document")):
        result = cli("load", "lines.ndjson", *args, env=sqlite_backend.env())
        assert result.exit_code == 2 and says in result.stderr, result.output
    (workdir / "array.json").write_text('[{"id": 1}]')
    not_object = cli("load", "array.json", "--records", "data", env=sqlite_backend.env())
    assert not_object.exit_code == 3
    assert "--records data reads an object's list of records, and this is not a JSON object" \
        in not_object.stderr


def test_pages_read_at_the_path(cli, sqlite_backend):
    with PageServer(pages=3, records=20) as server:
        read = load(cli, sqlite_backend, server.page_url, "--pages", "1-3", "--records", "results")
        missing = cli("load", server.page_url, "--pages", "1-3", "--records", "data", "--json",
                      env=sqlite_backend.env())

    assert (read["records"], read["pages"]["new"]) == (60, 3)
    assert missing.exit_code == 3
    summary = json.loads(missing.stdout.strip().splitlines()[-1])
    assert summary["pages"]["failed"] == 3 and summary["records"] == 0
    assert "has no list of records at data (--records): at the top, the keys are results, info" \
        in missing.stderr

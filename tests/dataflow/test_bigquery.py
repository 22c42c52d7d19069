"""BigQuery in and out, and Parquet prediction files. BigQuery itself cannot be reached from here (no emulator
installs from the registries this machine reaches), so its side is proven offline: the rows it gives Beam's
export read (Avro files, or JSON with Beam's own decoder) become the same records as JSON Lines; the rows the
load jobs receive, written by Beam's own temp-file writer, fit the declared schemas by BigQuery's documented
types; the job with table input and output compiles for Dataflow; bad table parameters stop it before it starts."""

from __future__ import annotations

import json
import math

import pytest

from bertqa.cli import run_command
from bertqa.demo import data
from bertqa.io.records import Reject

from conftest import write_jsonl

JOB = ["--max_seq_length=64", "--doc_stride=24", "--max_query_length=16", "--max_batch_size=16",
       "--max_dead_letter_fraction=1"]
COLUMNS = ["--id_column=qid", "--question_column=ask", "--context_column=passage", "--answers_column=gold"]


@pytest.fixture(scope="module")
def records() -> list[dict]:
    return list(data.generate(seed=5, passages=10))  # 40 labelled questions


def job(tmp_path, name, records, saved_model, vocab_path, *extra) -> dict:
    output = tmp_path / name
    write_jsonl(tmp_path / f"{name}.jsonl", records)
    assert run_command([f"--input={tmp_path}/{name}.jsonl", f"--output={output}", f"--model_path={saved_model()}",
                        f"--vocab_path={vocab_path}", *JOB, *extra]) == 0
    return {"summary": json.loads((output / "summary.json").read_text()),
            "predictions": json.loads((output / "predictions.json").read_text()), "dir": output}


def test_parquet_prediction_files_hold_the_rows_of_the_json_lines_ones(tmp_path, records, saved_model, vocab_path):
    import pyarrow.parquet

    from bertqa.io.bigquery import prediction_schema

    as_jsonl = job(tmp_path, "jsonl", records, saved_model, vocab_path, "--top_k=3")
    as_parquet = job(tmp_path, "parquet", records, saved_model, vocab_path, "--output_format=parquet", "--top_k=3")
    lines = {row["id"]: row for path in as_jsonl["dir"].glob("predictions-*.jsonl") for row in map(json.loads, open(path))}
    # Each row's candidates: up to 3 spans of distinct texts, best first, the answer's own first where it has one.
    for row in lines.values():
        texts = [candidate["answer"] for candidate in row["candidates"]]
        assert 1 <= len(texts) == len(set(texts)) <= 3 and (row["answer"] == "" or texts[0] == row["answer"])
        assert [c["score"] for c in row["candidates"]] == sorted((c["score"] for c in row["candidates"]), reverse=True)
    assert sum(len(row["candidates"]) == 3 for row in lines.values()) >= 0.9 * len(lines)
    assert [fits(row, prediction_schema(candidates=True)) for row in sink_rows(tmp_path, list(lines.values()))] == [
        []] * len(lines)
    shards = sorted(as_parquet["dir"].glob("predictions-*.parquet"))
    assert shards and not list(as_parquet["dir"].glob("predictions-*.jsonl"))
    rows = {row["id"]: row for path in shards for row in pyarrow.parquet.read_table(path).to_pylist()}
    assert rows == lines and len(rows) == len(records)
    assert as_parquet["predictions"] == as_jsonl["predictions"]
    assert {str(path) for path in shards} | {str(as_parquet["dir"] / "predictions.json")} <= set(
        as_parquet["summary"]["outputs"])
    schema = pyarrow.parquet.read_schema(shards[0])
    assert (str(schema.field("start_char").type), schema.field("start_char").nullable) == ("int64", True)
    assert (str(schema.field("score").type), schema.field("score").nullable) == ("double", False)
    assert "document_id" not in schema.names  # only in documents mode
    assert (str(schema.field("candidates").type), schema.field("candidates").nullable) == (
        "list<element: struct<answer: string not null, score: double not null, probability: double not null, "
        "start_char: int64 not null, end_char: int64 not null> not null>", False)


# BigQuery's Avro export: a NULLABLE column is a union with null, REPEATED a plain array, RECORD a record
# (https://cloud.google.com/bigquery/docs/exporting-data#avro_export_details).
EXPORT_SCHEMA = {"type": "record", "name": "Root", "fields": [
    {"name": "qid", "type": ["null", "long"]},
    {"name": "ask", "type": ["null", "string"]},
    {"name": "passage", "type": ["null", "string"]},
    {"name": "gold", "type": {"type": "array", "items": {"type": "record", "name": "gold", "fields": [
        {"name": "text", "type": ["null", "string"]}, {"name": "answer_start", "type": ["null", "long"]}]}}},
]}
TABLE_SCHEMA = {"fields": [{"name": "qid", "type": "INT64", "mode": "NULLABLE"},
                           {"name": "ask", "type": "STRING", "mode": "NULLABLE"},
                           {"name": "passage", "type": "STRING", "mode": "NULLABLE"},
                           {"name": "gold", "type": "RECORD", "mode": "REPEATED", "fields": [
                               {"name": "text", "type": "STRING", "mode": "NULLABLE"},
                               {"name": "answer_start", "type": "INT64", "mode": "NULLABLE"}]}]}


def table_rows(records):
    """The records as rows of a BigQuery table: integer ids, labels a repeated record, plus rows that do not
    fit (a NULL question, a NULL passage)."""
    rows = [{"qid": 1000 + n, "ask": r["question"], "passage": r["context"],
             "gold": [{"text": a["text"], "answer_start": a["answer_start"]} for a in r["answers"]]}
            for n, r in enumerate(records)]
    return rows + [{"qid": 1, "ask": None, "passage": "Text.", "gold": []},
                   {"qid": 2, "ask": "Who?", "passage": None, "gold": []}]


def parse_rows(source):
    """Every row Beam's reader of an export `source` gives, through ParseRows: (questions, dead letters)."""
    from apache_beam.io.source_test_utils import read_from_source

    from bertqa.job.read import ParseRows
    from bertqa.io.tables import Columns

    parse = ParseRows("bigquery:p:d.t", 100_000, Columns("qid", "ask", "passage", "gold"))
    parse.start_bundle()
    results = [result for row in read_from_source(source) for result in parse.process(row)]
    return ([(q.id, q.question, q.context, tuple(q.gold_answers or ())) for q in results if not hasattr(q, "tag")],
            [json.loads(letter.value) for letter in results if hasattr(letter, "tag")])


def expected(records):
    return sorted((str(1000 + n), r["question"], r["context"], tuple(a["text"] for a in r["answers"]) or ())
                  for n, r in enumerate(records))


def check_bad_rows(rejects):
    assert sorted((row["reason"], row["raw"]["qid"], row["source"]) for row in rejects) == [
        ("missing 'ask'", 1, "bigquery:p:d.t"), ("missing 'passage'", 2, "bigquery:p:d.t")]


def test_rows_of_a_bigquery_avro_export_are_the_records_they_hold(tmp_path, records):
    import fastavro
    from apache_beam.io.avroio import _create_avro_source

    path = tmp_path / "export-000000000000.avro"
    with open(path, "wb") as handle:
        fastavro.writer(handle, EXPORT_SCHEMA, table_rows(records))
    # The source ReadFromBigQuery's export method reads each exported file with (bigquery._create_source).
    questions, rejects = parse_rows(_create_avro_source(str(path)))
    assert sorted(questions) == expected(records)
    check_bad_rows(rejects)


def test_rows_of_a_bigquery_json_export_are_the_records_they_hold(tmp_path, records):
    from apache_beam.io.gcp.bigquery_read_internal import _JsonToDictCoder
    from apache_beam.io.gcp.internal.clients import bigquery as bq
    from apache_beam.io.filesystem import CompressionTypes
    from apache_beam.io.gcp.bigquery_tools import parse_table_schema_from_json
    from apache_beam.io.textio import _TextSource as TextSource

    # BigQuery's JSON export writes INT64 as a string; Beam's decoder turns it back by the table's schema.
    lines = [json.dumps({**row, "qid": str(row["qid"]), "gold": [{**g, "answer_start": str(g["answer_start"])}
                                                                 for g in row["gold"]]})
             for row in table_rows(records)]
    (tmp_path / "export.json").write_text("\n".join(lines) + "\n")
    schema = parse_table_schema_from_json(json.dumps(TABLE_SCHEMA))
    assert isinstance(schema, bq.TableSchema)
    coder = _JsonToDictCoder(schema)
    # The source ReadFromBigQuery reads a JSON export with (bigquery._create_source, use_json_exports=True).
    questions, rejects = parse_rows(TextSource(str(tmp_path / "export.json"), 0, CompressionTypes.UNCOMPRESSED,
                                               True, coder))
    assert sorted(questions) == expected(records)
    check_bad_rows(rejects)


def test_rows_sharing_an_id_keep_one_whatever_order_they_arrive_in():
    from bertqa.job.read import ParseRows
    from bertqa.io.tables import Columns

    rows = [{"id": "a", "question": "Who?", "context": "Anna."}, {"id": "a", "question": "Who?", "context": "Bo."},
            {"id": "a", "question": "Who?", "context": "Anna."}]

    def orders(sequence):
        parse = ParseRows("bigquery:p:d.t", 100_000, Columns())
        parse.start_bundle()
        return [question.order for row in sequence for question in parse.process(row)]

    forward, backward = orders(rows), orders(rows[::-1])
    assert len(set(forward)) == 3  # every row its own place, identical rows too
    # The first (the smallest order, which later_records keeps) is a row of the same content either way.
    assert min(forward)[1] == min(backward)[1] and min(forward)[1] in {order[1] for order in forward}


# BigQuery's documented value types for the JSON a load job reads
# (https://cloud.google.com/bigquery/docs/loading-data-cloud-storage-json#details_of_loading_json_data).
def fits(row: dict, schema: dict) -> list[str]:
    problems, columns = [], {column["name"]: column for column in schema["fields"]}
    problems += [f"{name}: not a column" for name in row if name not in columns]
    for name, column in columns.items():
        value = row.get(name)
        if column["mode"] == "REPEATED":  # of RECORDs, here: a list (never NULL) of rows of its fields
            problems += ([f"{name}[{index}].{problem}" for index, item in enumerate(value)
                          for problem in (fits(item, column) if isinstance(item, dict) else ["not a record"])]
                         if isinstance(value, list) else [f"{name}: {value!r} is not a list (REPEATED)"])
        elif value is None:
            if column["mode"] == "REQUIRED":
                problems.append(f"{name}: NULL in a REQUIRED column")
        elif column["type"] == "STRING" and not isinstance(value, str):
            problems.append(f"{name}: {value!r} is not a string")
        elif column["type"] == "INT64" and not (isinstance(value, int) and -2**63 <= value < 2**63):
            problems.append(f"{name}: {value!r} is not an INT64")
        elif column["type"] == "FLOAT64" and not (isinstance(value, (int, float)) and math.isfinite(value)):
            problems.append(f"{name}: {value!r} is not a finite FLOAT64")
    return problems


def sink_rows(tmp_path, rows) -> list[dict]:
    """`rows` as the load job reads them: written by the temp-file writer WriteToBigQuery's file loads use."""
    from apache_beam.io.gcp import bigquery_file_loads

    path, writer = bigquery_file_loads._make_new_file_writer(str(tmp_path / "bq_load"), "p:d.t", "NEWLINE_DELIMITED_JSON")
    for row in rows:
        writer.write(row)
    writer.close()
    data = open(path, "rb").read()
    data.decode("utf-8")  # BigQuery reads UTF-8 only
    return [json.loads(line) for line in data.splitlines()]


def test_prediction_and_dead_letter_rows_fit_their_tables(tmp_path, records, saved_model, vocab_path):
    from bertqa.io.bigquery import DEAD_LETTER_SCHEMA, dead_letter_row, prediction_schema

    lines = [json.dumps(record) for record in records[:8]] + [
        '{"id": 7, "question": "Who?", "context": "Anna."}', '"not an object"',
        json.dumps({**records[0], "question": "Again?"})]  # a duplicate id
    # Bytes that are not UTF-8: the dead letter keeps them (as lone surrogates), which BigQuery could not hold.
    (tmp_path / "in.jsonl").write_bytes("\n".join(lines).encode() + b'\n{"id": "b", "question": "Who?", '
                                        b'"context": "\xff"}\n')
    output = tmp_path / "out"
    assert run_command([f"--input={tmp_path}/in.jsonl", f"--output={output}", f"--model_path={saved_model()}",
                        f"--vocab_path={vocab_path}", *JOB]) == 0
    predictions = [json.loads(line) for path in output.glob("predictions-*.jsonl") for line in open(path)]
    letters = [line for path in (output / "dead_letter").glob("*.jsonl") for line in open(path)]
    assert len(predictions) == 8 and len(letters) == 4
    for row in sink_rows(tmp_path / "predictions", predictions):
        assert fits(row, prediction_schema(candidates=False)) == []  # no candidates column without --top_k
    dead = sink_rows(tmp_path / "dead", [dead_letter_row(line) for line in letters])
    assert [fits(row, DEAD_LETTER_SCHEMA) for row in dead] == [[]] * 4
    # raw_json is the record as read, as JSON: a line as its text; bytes that were not UTF-8 as their escapes.
    raws = [json.loads(row["raw_json"]) for row in dead]
    assert '"not an object"' in raws and any("\\udcff" in row["raw_json"] for row in dead)


def test_documents_mode_rows_fit_with_their_document_and_question(tmp_path):
    from bertqa.io.bigquery import arrow_schema, prediction_schema

    row = {"id": "d1\x1fq1", "document_id": "d1", "question_id": "q1", "answer": "", "score": -1.5,
           "probability": 0.9, "start_char": None, "end_char": None, "null_score_diff": 2.0,
           "raw_start_char": None, "raw_end_char": None}
    assert fits(sink_rows(tmp_path, [row])[0], prediction_schema(candidates=False)) == []
    for candidates in (False, True):
        schema = prediction_schema(candidates)
        assert arrow_schema(schema, documents=True).names == [c["name"] for c in schema["fields"]]


def dry_run(*extra):
    from test_packaging import TEMPLATE, dry_run as compile_job

    return compile_job(*extra, template=[arg for arg in TEMPLATE if not arg.startswith("--input=")])


def test_a_job_with_table_input_and_outputs_compiles_for_dataflow(tmp_path):
    (tmp_path / "questions.txt").write_text("Who are the parties?\nWhat is the governing law?\n")
    proto, _ = dry_run("--input_table=my-project:contracts.documents", "--output_table=my-project:qa.answers",
                       "--dead_letter_table=my-project.qa.dead_letters", "--table_write_disposition=append",
                       f"--questions_file={tmp_path}/questions.txt", "--id_column=doc_id", "--context_column=body",
                       "--top_k=3")  # the prediction table then has its REPEATED RECORD of candidates
    names = {transform.unique_name for transform in proto.components.transforms.values()}
    assert {"ReadQuestions/ReadBigQuery", "ReadQuestions/ParseRows", "WriteOutputs/WritePredictionTable",
            "WriteOutputs/WriteDeadLetterTable", "Summarize/WriteSummary",
            "WriteOutputs/WritePredictionTable/BigQueryBatchFileLoads/TriggerLoadJobsWithoutTempTables"} <= names
    assert not names & {"ReadQuestions/MatchInput", "WriteOutputs/WritePredictionRows", "WriteOutputs/WriteDeadLetter",
                        "WriteOutputs/WritePredictionsJson"}
    proto, _ = dry_run("--input_query=SELECT id, question, context FROM `my-project.qa.q`",
                       "--bigquery_read_method=direct_read", "--output_format=parquet", "--top_k=3")
    names = {transform.unique_name for transform in proto.components.transforms.values()}
    assert {"ReadQuestions/ReadBigQuery", "WriteOutputs/WritePredictionRows", "WriteOutputs/WriteDeadLetter"} <= names


def base_args(tmp_path, saved_model, vocab_path):
    return [f"--output={tmp_path}/out", f"--model_path={saved_model()}", f"--vocab_path={vocab_path}", *JOB]


@pytest.mark.parametrize("args, message", [
    ([], "give one of input (files), input_table or input_query (BigQuery), got none"),
    (["--input=x.jsonl", "--input_table=p1:d.t"], "got input, input_table"),
    (["--input_table=p:d.t"], "input_table=p:d.t: not a BigQuery table name"),
    (["--input_table=proj:d.t", "--output_table=proj.d.t"], "must be different tables"),
    (["--input_query=SELECT 1", "--output_table=proj:dataset"], "output_table=proj:dataset: not a BigQuery"),
    (["--input_query=SELECT 1", "--table_write_disposition=replace"], "table_write_disposition"),
    (["--input_table=proj:d.t"], "--input_table: BigQuery's export and load files are staged under "
                                 "--temp_location, which must be a gs:// path (got none)"),
    (["--input=IN", "--dead_letter_table=proj:d.dl", "--temp_location=/tmp/x"],
     "--dead_letter_table: BigQuery's export and load files are staged under --temp_location, which must be a "
     "gs:// path (got /tmp/x)"),
])
def test_bad_bigquery_parameters_stop_the_job_before_it_starts(tmp_path, saved_model, vocab_path, capsys, args,
                                                                message):
    write_jsonl(tmp_path / "in.jsonl", [{"id": "a", "question": "Who?", "context": "Anna."}])
    args = [arg.replace("IN", str(tmp_path / "in.jsonl")) for arg in args]
    assert run_command([*args, *base_args(tmp_path, saved_model, vocab_path)]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_settings_that_do_nothing_with_the_tables_chosen_are_named():
    from bertqa.dataflow.arguments import split_args

    params, _ = split_args(["--input_table=proj:d.t", "--output=o", "--model_path=m", "--vocab_path=v",
                            "--input_format=csv", "--output_table=proj:d.out", "--output_format=parquet"])
    assert params.ignored_settings() == [
        "--input_format has no effect with BigQuery input (its rows are read as a table's)",
        "--output_format has no effect with --output_table (the predictions go to the table)"]
    params, _ = split_args(["--input=i", "--output=o", "--model_path=m", "--vocab_path=v",
                            "--bigquery_read_method=direct_read", "--table_write_disposition=append"])
    assert params.ignored_settings() == [
        "--bigquery_read_method has no effect with --input (files; BigQuery input only)",
        "--table_write_disposition has no effect without --output_table or --dead_letter_table"]


def test_a_dead_letter_row_names_its_document_and_question():
    from bertqa.io.bigquery import dead_letter_row
    from bertqa.io.documents import name_pair

    line = name_pair(Reject("deduplicate", "duplicate id", "t#3", {"id": "d"}, "d\x1fq").to_json())
    assert dead_letter_row(line) == {"stage": "deduplicate", "reason": "duplicate id", "source": "t#3",
                                     "id": "d\x1fq", "document_id": "d", "question_id": "q",
                                     "raw_json": '{"id": "d"}'}


def test_a_launch_with_tables_passes_them_as_template_parameters(capsys):
    from google.cloud import dataflow_v1beta3 as dataflow

    from bertqa.cli import main as bertqa_main
    from test_packaging import LAUNCH, TEMPLATE

    template = [arg for arg in TEMPLATE if not arg.startswith("--input=")]
    tables = ["--input_query=SELECT id, question, context FROM `my-project.qa.q` WHERE day = '2026-12-01'",
              "--output_table=my-project:qa.answers", "--dead_letter_table=my-project.qa.dead",
              "--table_write_disposition=truncate", "--bigquery_read_method=direct_read"]
    assert bertqa_main(["launch", "--format=rest", *LAUNCH, *template, *tables]) == 0
    parameter = dataflow.LaunchFlexTemplateParameter.from_json(json.dumps(json.loads(
        capsys.readouterr().out)["launchParameter"]))
    assert dict(parameter.parameters) == {**dict(arg[2:].split("=", 1) for arg in template + tables)}
    # A malformed table name is refused here, before Dataflow would refuse the launch.
    assert bertqa_main(["launch", "--format=rest", *LAUNCH, *template, "--input_table=my-project:qa"]) == 2
    assert "input_table=my-project:qa: not a BigQuery table name" in capsys.readouterr().err


class BigQueryRest:
    """Answers the REST calls the checks make (tables.get, datasets.get, a query's dry run by jobs.insert) in
    the shapes BigQuery's v2 API reference documents, from the tables given: what the google-cloud-bigquery
    client parses. It stands in for BigQuery only to drive the checks' decisions; it is not BigQuery."""

    def __init__(self, tables: dict[str, dict]):
        import http.server
        import threading

        rest = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def reply(self, code, body):
                data = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):
                parts = self.path.split("?")[0].strip("/").split("/")  # bigquery v2 projects P datasets D [tables T]
                project, dataset = parts[3], parts[5]
                name = f"{project}.{dataset}" + (f".{parts[7]}" if len(parts) > 7 else "")
                known = rest.tables.get(name) or (name in {t.rsplit(".", 1)[0] for t in rest.tables} and {})
                if known is None or known is False:
                    return self.reply(404, {"error": {"code": 404, "message": f"Not found: {name}",
                                                      "status": "NOT_FOUND"}})
                reference = {"projectId": project, "datasetId": dataset}
                if len(parts) > 7:
                    return self.reply(200, {"tableReference": {**reference, "tableId": parts[7]}, **known})
                return self.reply(200, {"datasetReference": reference})

            def do_POST(self):
                job = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                query = job["configuration"]["query"]["query"]
                assert job["configuration"]["dryRun"] is True
                if "FROM" not in query:
                    message = "Syntax error: Unexpected end of script at [1:7]"
                    return self.reply(400, {"error": {"code": 400, "message": message, "status": "INVALID_ARGUMENT",
                                                      "errors": [{"message": message, "domain": "global",
                                                                  "reason": "invalidQuery", "location": "q"}]}})
                table = rest.tables[query.split("FROM ", 1)[1].strip("`")]
                return self.reply(200, {**job, "status": {"state": "DONE"},
                                        "statistics": {"query": {"schema": table["schema"]}}})

        self.tables = tables
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def client(self):
        from google.auth.credentials import AnonymousCredentials
        from google.cloud import bigquery as bq

        return bq.Client(project="my-project", credentials=AnonymousCredentials(), client_options={
            "api_endpoint": f"http://127.0.0.1:{self.server.server_address[1]}"})


def schema_of(*names):
    return {"fields": [{"name": name, "type": "STRING", "mode": "NULLABLE"} for name in names]}


def test_tables_are_checked_before_the_job_where_there_are_credentials(monkeypatch, tmp_path, saved_model,
                                                                       vocab_path):
    from bertqa.dataflow import bigquery_checks
    from bertqa.dataflow.arguments import split_args
    from bertqa.dataflow.preflight import check_parameters
    from bertqa.io import bigquery
    from bertqa.params import ParameterError

    rest = BigQueryRest({
        "my-project.qa.questions": {"schema": schema_of("id", "question", "context"), "numRows": "3"},
        "my-project.qa.documents": {"schema": schema_of("doc_id", "body"), "numRows": "3"},
        "my-project.qa.answers": {"schema": {"fields": bigquery.prediction_schema(False)["fields"]}, "numRows": "120"},
        "my-project.qa.old": {"schema": schema_of("id", "answer"), "numRows": "0"},
        "my-project.qa.dead": {"schema": {"fields": bigquery.DEAD_LETTER_SCHEMA["fields"]}, "numRows": "0"}})
    monkeypatch.setattr(bigquery_checks, "service_client", rest.client)

    def problems(*args) -> str:
        params, _ = split_args([f"--output={tmp_path}/out", f"--model_path={saved_model()}",
                                f"--vocab_path={vocab_path}", *JOB, *args])
        try:
            check_parameters(params)
        except ParameterError as error:
            return str(error)
        return ""

    assert problems("--input_table=my-project:qa.questions", "--output_table=my-project:qa.new",
                    "--dead_letter_table=my-project:qa.dead") == ""
    assert problems("--input_query=SELECT * FROM `my-project.qa.questions`") == ""
    found = problems("--input_table=my-project:qa.documents", "--output_table=my-project:qa.answers",
                     "--dead_letter_table=other-project:qa.dead")
    assert "--input_table=my-project:qa.documents: has no column 'id', 'context', 'question' (its columns: " \
           "doc_id, body)" in found
    assert "--output_table=my-project:qa.answers: holds 120 rows and --table_write_disposition=empty" in found
    assert "--dead_letter_table=other-project:qa.dead: its dataset other-project.qa does not exist" in found
    # The documents' own columns, and a table that fits with append.
    assert problems("--input_table=my-project:qa.documents", "--id_column=doc_id", "--context_column=body",
                    f"--questions_file={write_jsonl(tmp_path / 'q.jsonl', [{'id': 'q', 'question': 'Who?'}])}",
                    "--output_table=my-project:qa.answers", "--table_write_disposition=append") == ""
    found = problems("--input_query=SELECT 1", "--output_table=my-project:qa.old",
                     "--table_write_disposition=append")
    assert "--input_query=SELECT 1: BigQuery refuses the query: Syntax error: Unexpected end of script" in found
    assert "--output_table=my-project:qa.old: has no column id, document_id" not in found
    assert "--output_table=my-project:qa.old: has no column document_id, question_id, score" in found
    assert problems("--input_table=my-project:qa.gone") == (
        "bad template parameter(s):\n  --input_table=my-project:qa.gone: not found")


def test_without_credentials_the_tables_are_left_to_the_job(monkeypatch, tmp_path, saved_model, vocab_path, capsys):
    # No credentials file, no gcloud login, no metadata server (a closed port) to ask: a laptop's case.
    monkeypatch.delenv("GOOGLE_APPLICATION_CREDENTIALS", raising=False)
    monkeypatch.setenv("CLOUDSDK_CONFIG", str(tmp_path / "gcloud"))
    monkeypatch.setenv("GCE_METADATA_HOST", "127.0.0.1:9")
    monkeypatch.setenv("GCE_METADATA_IP", "127.0.0.1:9")
    from bertqa.dataflow.arguments import split_args
    from bertqa.dataflow.preflight import check_parameters

    params, _ = split_args([f"--output={tmp_path}/out", f"--model_path={saved_model()}", f"--vocab_path={vocab_path}",
                            "--input_table=my-project:qa.questions", "--output_table=my-project:qa.answers", *JOB])
    check_parameters(params)
    assert ("warning: --input_table, --output_table not checked before the job: no Google credentials with a "
            "project here") in capsys.readouterr().err

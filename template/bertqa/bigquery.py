"""BigQuery in and out, through Beam's own connectors: ReadFromBigQuery (an export job, or the Storage Read API)
for the records, WriteToBigQuery with load jobs for the prediction rows and the dead letters.

The tables' schemas are declared here, in BigQuery's own JSON form (the `schema` of tables.insert), so that a
table is created with them when missing and every row loaded fits them.
"""

from __future__ import annotations

import json

import apache_beam as beam

from bertqa.outputs import json_line
from bertqa.params import BigQueryReadMethod, TemplateParams, WriteDisposition


def _column(name: str, kind: str, mode: str, description: str) -> dict:
    return {"name": name, "type": kind, "mode": mode, "description": description}


_PAIR_COLUMNS = (
    _column("document_id", "STRING", "NULLABLE", "With --questions_file: the document's id."),
    _column("question_id", "STRING", "NULLABLE", "With --questions_file: the question's id."),
)
PREDICTION_SCHEMA = {"fields": [
    _column("id", "STRING", "REQUIRED", "The record's id (documents mode: document_id U+001F question_id)."),
    *_PAIR_COLUMNS,
    _column("answer", "STRING", "REQUIRED", "The answer's text; empty for no answer."),
    _column("score", "FLOAT64", "REQUIRED", "Start plus end logit of the chosen span (or the null score)."),
    _column("probability", "FLOAT64", "REQUIRED", "Softmax over the n-best candidates, no answer included."),
    _column("start_char", "INT64", "NULLABLE", "The answer's first character in the context; NULL: no answer."),
    _column("end_char", "INT64", "NULLABLE", "One past the answer's last character; NULL: no answer."),
    _column("null_score_diff", "FLOAT64", "NULLABLE", "Null score minus the best span's score."),
    _column("raw_start_char", "INT64", "NULLABLE", "The model's own span, before align_to_words widened it."),
    _column("raw_end_char", "INT64", "NULLABLE", "The model's own span's end, before align_to_words."),
]}
DEAD_LETTER_SCHEMA = {"fields": [
    _column("stage", "STRING", "REQUIRED", "Where the record was refused: read, parse, validate, ..."),
    _column("reason", "STRING", "REQUIRED", "Why, naming the field or column."),
    _column("source", "STRING", "NULLABLE", "Where the record came from: file:line, file#row, or the table."),
    _column("id", "STRING", "NULLABLE", "The record's id, where it had a readable one."),
    *_PAIR_COLUMNS,
    _column("raw_json", "STRING", "NULLABLE", "The record as read, as JSON text (a line as a JSON string)."),
]}


def arrow_schema(schema: dict, documents: bool):
    """A BigQuery schema as a pyarrow schema (for Parquet files of the same rows); the document and question
    columns only in documents mode."""
    import pyarrow

    types = {"STRING": pyarrow.string(), "FLOAT64": pyarrow.float64(), "INT64": pyarrow.int64()}
    pair_names = {column["name"] for column in _PAIR_COLUMNS}
    return pyarrow.schema([pyarrow.field(column["name"], types[column["type"]], column["mode"] != "REQUIRED")
                           for column in schema["fields"] if documents or column["name"] not in pair_names])


READ_METHODS = {BigQueryReadMethod.export.value: beam.io.ReadFromBigQuery.Method.EXPORT,
                BigQueryReadMethod.direct_read.value: beam.io.ReadFromBigQuery.Method.DIRECT_READ}
DISPOSITIONS = {WriteDisposition.empty.value: beam.io.BigQueryDisposition.WRITE_EMPTY,
                WriteDisposition.append.value: beam.io.BigQueryDisposition.WRITE_APPEND,
                WriteDisposition.truncate.value: beam.io.BigQueryDisposition.WRITE_TRUNCATE}


def input_source(params: TemplateParams) -> str:
    """The `source` of a BigQuery row's dead letter: the table, or the query."""
    return f"bigquery:{params.input_table}" if params.input_table else "bigquery:input_query"


def read_rows(params: TemplateParams) -> beam.PTransform:
    """The input table's rows, or the query's (GoogleSQL), as dicts."""
    where = {"table": params.input_table} if params.input_table else {"query": params.input_query,
                                                                       "use_standard_sql": True}
    return beam.io.ReadFromBigQuery(method=READ_METHODS[params.bigquery_read_method], **where)


def write_rows(table: str, schema: dict, disposition: str) -> beam.PTransform:
    """Rows into `table` by load jobs (batch), the table created with `schema` when missing."""
    return beam.io.WriteToBigQuery(
        table, schema=schema, method=beam.io.WriteToBigQuery.Method.FILE_LOADS,
        create_disposition=beam.io.BigQueryDisposition.CREATE_IF_NEEDED, write_disposition=DISPOSITIONS[disposition])


def _text(value):
    # BigQuery holds valid UTF-8 only: a lone surrogate (from a \ud800 escape in the input) is kept as its escape.
    return value.encode("utf-8", "backslashreplace").decode("utf-8") if isinstance(value, str) else value


def dead_letter_row(line: str) -> dict:
    """A dead-letter file's row (a JSON line) as DEAD_LETTER_SCHEMA's row."""
    letter = json.loads(line)
    row = {name: _text(letter.get(name)) for name in ("stage", "reason", "source", "id", "document_id",
                                                       "question_id")}
    return {**row, "raw_json": None if letter.get("raw") is None else json_line(letter["raw"])}


def service_client():
    """A BigQuery client with this machine's Google credentials (the Flex launcher's: the job's service
    account), or None where there are none (a laptop without `gcloud auth application-default login`)."""
    import google.auth
    from google.auth.exceptions import DefaultCredentialsError
    from google.cloud import bigquery as bq

    try:
        credentials, project = google.auth.default(scopes=["https://www.googleapis.com/auth/bigquery"])
    except DefaultCredentialsError:
        return None
    return bq.Client(project=project, credentials=credentials) if project else None


def _table_id(client, table: str) -> str:
    from apache_beam.io.gcp.bigquery_tools import parse_table_reference

    reference = parse_table_reference(table)
    return f"{reference.projectId or client.project}.{reference.datasetId}.{reference.tableId}"


def _missing_columns(schema, params: TemplateParams) -> str | None:
    needed = [params.id_column, params.context_column] + ([] if params.questions_file else [params.question_column])
    names = [field.name for field in schema]
    missing = [name for name in needed if name not in names]
    return (f"has no column {', '.join(repr(name) for name in missing)} (its columns: {', '.join(names)}); "
            "name the columns with --id_column, --question_column, --context_column") if missing else None


def input_problem(client, params: TemplateParams) -> str | None:
    """What is wrong with the BigQuery input: a table that is not there, a query BigQuery refuses (its dry run,
    which costs nothing), columns the *_column parameters name that the rows lack."""
    from google.api_core.exceptions import BadRequest, NotFound
    from google.cloud import bigquery as bq

    if params.input_table:
        try:
            schema = client.get_table(_table_id(client, params.input_table)).schema
        except NotFound:
            return "not found"
    else:
        try:
            schema = client.query(params.input_query, job_config=bq.QueryJobConfig(
                dry_run=True, use_query_cache=False)).schema
        except (BadRequest, NotFound) as error:  # BigQuery's own words, without the request's URL
            return f"BigQuery refuses the query: {error.errors[0]['message'] if error.errors else error.message}"
    return _missing_columns(schema, params)


def output_problem(client, table: str, schema: dict, disposition: str) -> str | None:
    """What is wrong with an output table: its dataset missing (a table is created, a dataset is not), rows in
    it while the disposition is empty (the load would fail after the model ran), columns it lacks."""
    from google.api_core.exceptions import NotFound

    table_id = _table_id(client, table)
    try:
        existing = client.get_table(table_id)
    except NotFound:
        try:
            client.get_dataset(table_id.rsplit(".", 1)[0])
        except NotFound:
            return f"its dataset {table_id.rsplit('.', 1)[0]} does not exist (a missing table is created, not a dataset)"
        return None
    if disposition == WriteDisposition.empty.value and existing.num_rows:
        return (f"holds {existing.num_rows:,} rows and --table_write_disposition=empty: the load would fail after "
                "the model ran; choose another table, or append or truncate")
    missing = [column["name"] for column in schema["fields"]
               if column["name"] not in {field.name for field in existing.schema}]
    if missing and disposition != WriteDisposition.truncate.value:
        return f"has no column {', '.join(missing)} of the template's rows (truncate replaces its schema)"
    return None

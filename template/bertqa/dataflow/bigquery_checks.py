"""BigQuery asked before a job starts (where the launcher has credentials): does the input table or query exist
and have the columns the *_column parameters name, can the output tables take the rows."""

from __future__ import annotations

from bertqa.io.bigquery import WriteDisposition
from bertqa.params import TemplateParams


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
    if disposition == WriteDisposition.empty and existing.num_rows:
        return (f"holds {existing.num_rows:,} rows and --table_write_disposition=empty: the load would fail after "
                "the model ran; choose another table, or append or truncate")
    missing = [column["name"] for column in schema["fields"]
               if column["name"] not in {field.name for field in existing.schema}]
    if missing and disposition != WriteDisposition.truncate:
        return f"has no column {', '.join(missing)} of the template's rows (truncate replaces its schema)"
    return None

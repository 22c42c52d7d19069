"""WriteOutputs: the prediction rows and the dead letters into their files (JSON Lines or Parquet, and
predictions.json) or BigQuery tables; what was written comes out, by name, once it is."""

from __future__ import annotations

import apache_beam as beam

from bertqa.io import bigquery
from bertqa.io.bigquery import WriteDisposition
from bertqa.io.outputs import DEAD_LETTER_ROWS, PREDICTION_ROWS, PREDICTIONS_JSON, json_line, write_predictions_json
from bertqa.job.answer import Prediction
from bertqa.params import OutputFormat, TemplateParams

DISPOSITIONS = {WriteDisposition.empty: beam.io.BigQueryDisposition.WRITE_EMPTY,
                WriteDisposition.append: beam.io.BigQueryDisposition.WRITE_APPEND,
                WriteDisposition.truncate: beam.io.BigQueryDisposition.WRITE_TRUNCATE}


def write_rows(table: str, schema: dict, disposition: str) -> beam.PTransform:
    """Rows into `table` by load jobs (batch), the table created with `schema` when missing."""
    return beam.io.WriteToBigQuery(
        table, schema=schema, method=beam.io.WriteToBigQuery.Method.FILE_LOADS,
        create_disposition=beam.io.BigQueryDisposition.CREATE_IF_NEEDED, write_disposition=DISPOSITIONS[disposition])


def write_dead_letters(rejects, params: TemplateParams) -> tuple:
    """The dead-letter rows into their files, or their table: what was written (names, once it is)."""
    if params.dead_letter_table:
        return _into_table(rejects | "DeadLetterRows" >> beam.Map(bigquery.dead_letter_row), "DeadLetter",
                           params.dead_letter_table, bigquery.DEAD_LETTER_SCHEMA, params.table_write_disposition)
    return (rejects | "WriteDeadLetter" >> beam.io.WriteToText(
        params.dead_letter_dir.rstrip("/") + "/" + DEAD_LETTER_ROWS, file_name_suffix=".jsonl"),)


def write_predictions(rows, params: TemplateParams) -> tuple:
    """The prediction rows into their files and predictions.json, or their table: what was written."""
    if params.output_table:
        return _into_table(rows, "Prediction", params.output_table, bigquery.prediction_schema(bool(params.top_k)),
                           params.table_write_disposition)
    output = params.output.rstrip("/")
    if params.output_format is OutputFormat.parquet:
        schema = bigquery.arrow_schema(bigquery.prediction_schema(bool(params.top_k)),
                                       documents=bool(params.questions_file))
        files = rows | "WritePredictionRows" >> beam.io.WriteToParquet(
            f"{output}/{PREDICTION_ROWS}", schema, file_name_suffix=".parquet")
    else:
        files = (rows
                 | "RowsAsJson" >> beam.Map(json_line)
                 | "WritePredictionRows" >> beam.io.WriteToText(f"{output}/{PREDICTION_ROWS}",
                                                                file_name_suffix=".jsonl"))
    # Streamed from the finished row shards: memory stays bounded however many questions the job has.
    predictions_json = (
        files
        | "PredictionShards" >> beam.combiners.ToList()
        | "WritePredictionsJson" >> beam.Map(write_predictions_json, f"{output}/{PREDICTIONS_JSON}")
    )
    return files, predictions_json


def _into_table(rows, name: str, table: str, schema: dict, disposition: str) -> tuple:
    # Load jobs are waited for before their ids come out: the summary, which waits for these, comes after them.
    result = rows | f"Write{name}Table" >> write_rows(table, schema, disposition)
    return tuple(jobs | f"{name}Table{kind}" >> beam.Map(lambda _, table=table: f"bigquery:{table}")
                 for kind, jobs in (("Loaded", result.destination_load_jobid_pairs),
                                    ("Copied", result.destination_copy_jobid_pairs)))




class WriteOutputs(beam.PTransform):
    """{"predictions": Predictions, "rejects": dead-letter rows} -> the names of what was written (a table once
    per load or copy job that filled it)."""

    def __init__(self, params: TemplateParams):
        super().__init__()
        self._params = params

    def expand(self, outputs: dict) -> beam.PCollection:
        documents = bool(self._params.questions_file)
        rows = outputs["predictions"] | "PredictionRows" >> beam.Map(Prediction.row, documents=documents,
                                                                     candidates=bool(self._params.top_k))
        return ((*write_dead_letters(outputs["rejects"], self._params), *write_predictions(rows, self._params))
                | "AllWritten" >> beam.Flatten())

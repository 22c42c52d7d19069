"""What the job writes and how: strict JSON lines, the files a run owns, and the summary that marks it done.

Every JSON line is valid RFC 8259 in UTF-8 whatever the strings hold: lone surrogates are written as
`\\udXXX` escapes (JSON readers give back the same string), and U+0085, U+2028 and U+2029 are escaped so
that readers splitting on any line break (Python's `splitlines`) still see one row per line.
"""

from __future__ import annotations

import contextlib
import glob
import io
import json
import os
from typing import Any, BinaryIO, Iterable, Iterator

from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems

# Line breaks that json.dumps(ensure_ascii=False) leaves raw; the control characters it escapes itself.
_LINE_BREAK_ESCAPES = {0x85: "\\u0085", 0x2028: "\\u2028", 0x2029: "\\u2029"}

SUMMARY = "summary.json"
PREDICTIONS_JSON = "predictions.json"
PREDICTION_ROWS = "predictions"  # predictions-SSSSS-of-NNNNN.jsonl
DEAD_LETTER_ROWS = "dead_letter"  # dead_letter-SSSSS-of-NNNNN.jsonl


def json_line(value: Any) -> str:
    """One line of strict JSON: raises ValueError on NaN or Infinity, never on string contents."""
    text = json.dumps(value, ensure_ascii=False, allow_nan=False).translate(_LINE_BREAK_ESCAPES)
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


@contextlib.contextmanager
def _whole_file(path: str) -> Iterator[BinaryIO]:
    """A file a reader never sees half written. Cloud Storage shows an object only once its upload is complete, so
    on gs:// it is written in place (a rename there is a full server-side copy); elsewhere to a temporary name,
    then renamed."""
    target = path if path.startswith("gs://") else path + ".partial"
    try:
        with FileSystems.create(target, mime_type="application/json") as handle:
            yield handle
    except BaseException:
        # Closing a Cloud Storage upload completes it: a write that failed halfway must not stay as the output.
        with contextlib.suppress(Exception):
            FileSystems.delete([target])
        raise
    if target != path:
        FileSystems.rename([target], [path])


def write_json(path: str, value: Any) -> str:
    """Writes `value` as JSON, whole or not at all (`_whole_file`)."""
    with _whole_file(path) as handle:
        text = json.dumps(value, indent=1, ensure_ascii=False, sort_keys=True, allow_nan=False)
        # As every output line: no line break inside a string (a path or a reason may hold U+2028).
        handle.write(text.translate(_LINE_BREAK_ESCAPES).encode("utf-8", "backslashreplace"))
    return path


def write_predictions_json(shards: Iterable[str], path: str) -> str:
    """predictions.json ({id: answer}) from the prediction rows' shards, one row at a time.

    Memory stays bounded however many questions the job answered: each row is read, its id and answer
    written, and dropped. Whole or not at all, like every output (`_whole_file`).
    """
    with _whole_file(path) as handle:
        separator = b"{\n"
        for shard in sorted(shards):
            with FileSystems.open(shard, compression_type=CompressionTypes.UNCOMPRESSED) as rows:
                for pair in (parquet_ids_and_answers(rows) if shard.endswith(".parquet") else
                             (id_and_answer(line) for line in io.TextIOWrapper(rows, encoding="utf-8") if line.strip())):
                    handle.write(separator + pair.encode("utf-8"))
                    separator = b",\n"
        handle.write(b"{}\n" if separator == b"{\n" else b"\n}\n")
    return path


def parquet_ids_and_answers(handle) -> Iterable[str]:
    """`"id": "answer"` of each row of a Parquet shard, read a batch of rows at a time."""
    import pyarrow.parquet

    for batch in pyarrow.parquet.ParquetFile(handle).iter_batches(columns=["id", "answer"]):
        for row_id, answer in zip(*(batch.column(name).to_pylist() for name in ("id", "answer"))):
            yield json_line(row_id) + ": " + json_line(answer)


def id_and_answer(row_line: str) -> str:
    """`"id": "answer"` of a prediction row, for predictions.json. A row begins with its id and answer
    (Prediction.row), so their JSON strings are copied as written, not decoded and encoded again (this
    runs once per question, in one process); a row in any other shape is parsed whole."""
    if row_line.startswith('{"id": "'):
        _, id_end = json.decoder.scanstring(row_line, len('{"id": "'))
        if row_line.startswith(', "answer": "', id_end):
            _, answer_end = json.decoder.scanstring(row_line, id_end + len(', "answer": "'))
            return row_line[len('{"id": '):id_end] + ": " + row_line[id_end + len(', "answer": '):answer_end]
    row = json.loads(row_line)
    return json_line(row["id"]) + ": " + json_line(row["answer"])


def output_patterns(output: str, dead_letter_dirs: list[str]) -> list[str]:
    """File patterns of everything a run writes: its outputs, then its temporary files (Beam's beam-temp-* folders of
    the row shards, the .partial files of the JSON ones), which an interrupted run leaves behind."""
    output = output.rstrip("/")
    return ([f"{output}/{SUMMARY}", f"{output}/{PREDICTIONS_JSON}", f"{output}/{PREDICTION_ROWS}-*.jsonl"]
            + [f"{directory.rstrip('/')}/{DEAD_LETTER_ROWS}-*.jsonl" for directory in dead_letter_dirs]
            + temporary_patterns(output, dead_letter_dirs))


def temporary_patterns(output: str, dead_letter_dirs: list[str]) -> list[str]:
    """The temporary files' patterns: the folders themselves too, since a local folder may be left empty (on gs://
    there are no folders, only the objects under them)."""
    output = output.rstrip("/")
    folders = [f"{output}/beam-temp-{PREDICTION_ROWS}-*"] + [
        f"{directory.rstrip('/')}/beam-temp-{DEAD_LETTER_ROWS}-*" for directory in dead_letter_dirs]
    return [f"{output}/{SUMMARY}.partial", f"{output}/{PREDICTIONS_JSON}.partial"] + [
        pattern for folder in folders for pattern in (f"{folder}/*", folder)]


def matching(patterns: list[str]) -> list[str]:
    """The files, and local folders, that the patterns match (Beam's match lists files only, and an interrupted
    local run may leave an empty temporary folder)."""
    found = set()
    for result in FileSystems.match(patterns):
        found.update(metadata.path for metadata in result.metadata_list)
    found.update(path for pattern in patterns if "://" not in pattern for path in glob.glob(pattern)
                 if os.path.isdir(path))
    return sorted(found)


def existing_outputs(output: str, dead_letter_dirs: list[str]) -> list[str]:
    """Files of an earlier run of this template under the output directories, finished or not."""
    return matching(output_patterns(output, dead_letter_dirs))


def remove_outputs(paths: list[str]) -> None:
    """Deletes an earlier run's files, summary.json first: a directory that still holds a summary is a finished run,
    and one interrupted while deleting must not look like one."""
    summaries = [path for path in paths if path.rsplit("/", 1)[-1] == SUMMARY]
    # Then the rest, a folder's files before the folder (a path sorts after its folder's).
    for batch in (summaries, sorted((path for path in paths if path not in summaries), reverse=True)):
        if batch:
            FileSystems.delete(batch)


def remove_temporary_outputs(output: str, dead_letter_dirs: list[str]) -> None:
    """Deletes the temporary files of an interrupted run (its partial shards), so that none outlives it."""
    remove_outputs(matching(temporary_patterns(output, dead_letter_dirs)))

"""Reading question files at scale: a SQuAD file is walked as a stream, in bounded memory."""

import json
import subprocess
import sys

import pytest

PARAGRAPHS = 60_000
QUESTIONS_PER_PARAGRAPH = 5
CONTEXT = ("The old bridge over the river was rebuilt in stone after the flood of 1832, and the market square "
           "beside it still holds a fair every autumn. ") * 25  # about 3.4 KB, like a long SQuAD passage

MEASURE = """
import resource, sys, time
from bertqa.io.inputs import squad_questions
from bertqa.io.records import Question
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
started = time.perf_counter()
questions = rejects = 0
for result in squad_questions(sys.argv[1], 100_000):
    if isinstance(result, Question):
        questions += 1
    else:
        rejects += 1
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before, time.perf_counter() - started, questions, rejects)
"""


def write_large_squad_file(path) -> int:
    """A SQuAD v2 file of about 200 MB; questions before their passage in half the paragraphs, as in dev-v2.0."""
    with open(path, "w", encoding="utf-8") as handle:
        handle.write('{"version": "v2.0", "data": [')
        for article in range(PARAGRAPHS // 100):
            handle.write(("," if article else "") + json.dumps({"title": f"article {article}"})[:-1] + ', "paragraphs": [')
            for paragraph in range(100):
                qas = [{"id": f"a{article}-p{paragraph}-q{n}", "question": f"What happened in {1800 + n}?",
                        "answers": [{"text": "the flood of 1832", "answer_start": 60}], "is_impossible": False}
                       for n in range(QUESTIONS_PER_PARAGRAPH)]
                fields = {"qas": qas, "context": CONTEXT} if paragraph % 2 else {"context": CONTEXT, "qas": qas}
                handle.write(("," if paragraph else "") + json.dumps(fields))
            handle.write("]}")
        handle.write("]}")
    return path.stat().st_size


def test_a_large_squad_file_is_read_in_memory_a_small_fraction_of_its_size(tmp_path):
    path = tmp_path / "large-v2.0.json"
    size = write_large_squad_file(path)
    done = subprocess.run([sys.executable, "-c", MEASURE, str(path)], capture_output=True, text=True, check=True)
    growth_kib, elapsed, questions, rejects = done.stdout.split()
    growth = int(growth_kib) * 1024
    print(f"\nSQuAD file of {size / 1e6:.0f} MB: {questions} questions in {float(elapsed):.1f} s, peak resident "
          f"memory grew {growth / 2**20:.1f} MiB ({growth / size:.1%} of the file)")
    assert int(questions) == PARAGRAPHS * QUESTIONS_PER_PARAGRAPH and rejects == "0"
    assert size > 150e6 and growth < size / 20


def jsonl_with_every_kind_of_line(path):
    """A JSONL file with what a reader must get right at any byte: a byte-order mark, CRLF and LF endings,
    blank lines, a line that is not UTF-8, a line longer than a part, a last line without its newline."""
    good = lambda n, extra="": json.dumps({"id": f"q{n}", "question": f"Who {n}?", "context": f"Anna {n}.{extra}"})
    lines = [b"\xef\xbb\xbf" + good(0).encode() + b"\r\n"]
    for n in range(1, 60):
        lines.append(good(n, " Long." * 80 if n == 17 else "").encode() + (b"\r\n" if n % 3 else b"\n"))
        if n % 11 == 0:
            lines.append(b"   \n")
        if n == 29:
            lines.append(b'{"id": "bad", "question": "\xff", "context": "x"}\n')
    lines.append(good(60).encode())
    path.write_bytes(b"".join(lines))
    return path


def parse_all(parts):
    from bertqa.job.read import ParseFile

    results = []
    for part in parts:
        for result in ParseFile("auto", 100_000).process(part):
            results.append((result.tag, result.value) if hasattr(result, "tag") else result)
    return results


@pytest.mark.parametrize("block_bytes", [7, 100, 1 << 22])
@pytest.mark.parametrize("part_bytes", [1, 150, 700])
def test_a_jsonl_file_read_in_parts_gives_every_record_once_with_its_line_number(tmp_path, monkeypatch,
                                                                                   block_bytes, part_bytes):
    from apache_beam.io import fileio
    from apache_beam.io.filesystems import FileSystems

    from bertqa.io import inputs

    path = jsonl_with_every_kind_of_line(tmp_path / "questions.jsonl")
    monkeypatch.setattr(inputs, "MIN_PART_BYTES", part_bytes)
    monkeypatch.setattr(inputs, "_BLOCK_BYTES", block_bytes)
    (metadata,) = FileSystems.match([str(path)])[0].metadata_list
    parts = list(inputs.file_parts(fileio.ReadableFile(metadata), "auto"))
    whole = parse_all([inputs.FilePart(str(path))])
    assert len(parts) > 3 and [part.start for part in parts] == sorted({part.start for part in parts})
    assert parse_all(parts) == whole
    assert len([r for r in whole if not isinstance(r, tuple)]) == 61 and len(whole) == 62
    content = path.read_bytes()
    for part in parts:  # each part starts at a line start, numbered as a reader from the top counts it
        assert part.start == 0 or content[part.start - 1:part.start] == b"\n"
        assert part.first_line == content[:part.start].count(b"\n") + 1
        assert part.end is None or part.end - part.start >= part_bytes


def test_small_compressed_and_squad_files_are_read_whole(tmp_path):
    import gzip

    from apache_beam.io import fileio
    from apache_beam.io.filesystems import FileSystems

    from bertqa.io import inputs

    big = jsonl_with_every_kind_of_line(tmp_path / "q.jsonl").read_bytes() * 2000  # about 9 MB
    for name, data in (("small.jsonl", big[:5000]), ("big.jsonl.gz", gzip.compress(big)), ("big.json", big),
                       ("big.jsonl", big)):
        (tmp_path / name).write_bytes(data)
        (metadata,) = FileSystems.match([str(tmp_path / name)])[0].metadata_list
        parts = list(inputs.file_parts(fileio.ReadableFile(metadata), "auto"))
        if name == "big.jsonl":
            assert len(parts) == -(-len(big) // inputs.MIN_PART_BYTES)  # the last one shorter
            assert {part.format for part in parts} == {"jsonl"}  # told once, for every part
        else:  # whole; a large one with the format its head told (small and compressed ones: when they are read)
            assert [(part.path, part.start, part.end) for part in parts] == [(str(tmp_path / name), 0, None)]
            assert parts[0].format == ("squad" if name == "big.json" else None)


def test_a_line_too_long_for_any_record_is_dead_lettered_without_being_read_whole(tmp_path, monkeypatch):
    import tracemalloc

    from apache_beam.io import fileio
    from apache_beam.io.filesystems import FileSystems

    from bertqa.io import inputs
    from bertqa.local.progress import count_records
    from bertqa.io.records import Question, max_record_size

    good = lambda n: json.dumps({"id": f"q{n}", "question": f"Who {n}?", "context": f"Anna {n}."}).encode()
    huge = b'{"id": "huge", "question": "Who?", "context": "' + b"\xc3\xa9" * (20 << 20) + b'"}'  # 40 MiB
    path = tmp_path / "q.jsonl"
    path.write_bytes(b"\n".join([good(1), huge, b" " * (3 << 20), good(4) + b"\r", good(5)]))
    assert len(huge) > max_record_size(100_000)

    tracemalloc.start()
    whole = parse_all([inputs.FilePart(str(path))])
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 12 << 20, f"{peak / 2**20:.1f} MiB held while reading a 40 MiB line"

    assert [(r.id, r.source) for r in whole if isinstance(r, Question)] == [
        ("q1", f"{path}:1"), ("q4", f"{path}:4"), ("q5", f"{path}:5")]
    ((tag, row),) = [r for r in whole if isinstance(r, tuple)]
    letter = json.loads(row)
    assert (tag, letter["stage"], letter["source"]) == ("rejects", "parse", f"{path}:2")
    assert letter["reason"] == (f"line of {len(huge):,} bytes, longer than any record with a 'context' within "
                                f"max_context_chars=100000 can be ({max_record_size(100_000):,} bytes); not read: "
                                "raw holds its first 1,023 bytes")
    assert letter["raw"] == huge[:1023].decode()  # where it was cut in the middle of a character, without it
    assert count_records(str(path)) == 4  # the long line is a record, the long blank line is not

    monkeypatch.setattr(inputs, "MIN_PART_BYTES", 1 << 20)  # parts begin inside both long lines
    (metadata,) = FileSystems.match([str(path)])[0].metadata_list
    parts = list(inputs.file_parts(fileio.ReadableFile(metadata), "auto"))
    assert len(parts) == 3 and parse_all(parts) == whole


SQUAD_DOCUMENT = {"version": "v2.0", "data": [{"title": "t", "paragraphs": [{"context": "Anna lives in Ulm.", "qas": [
    {"id": f"s{n}", "question": f"Where does Anna live {n}?", "answers": [{"text": "Ulm", "answer_start": 14}]}
    for n in range(3)]}]}]}
# Rows of Hugging Face's squad_v2, as Dataset.to_json writes them (JSON Lines, whatever the file's name).
HF_ROWS = "".join(json.dumps({"id": f"h{n}", "title": "t", "context": "Anna lives in Ulm.", "question": f"Where {n}?",
                              "answers": {"text": ["Ulm"], "answer_start": [14]}}) + "\n" for n in range(3))


def read_file(path, input_format="auto"):
    """(id, gold answers) of each question and (stage, reason) of each dead letter, through file_parts and
    ParseFile as the job reads the file."""
    from apache_beam.io import fileio
    from apache_beam.io.filesystems import FileSystems

    from bertqa.io.inputs import file_parts
    from bertqa.job.read import ParseFile

    (metadata,) = FileSystems.match([str(path)])[0].metadata_list
    found = []
    for part in file_parts(fileio.ReadableFile(metadata), input_format):
        for result in ParseFile(input_format, 100_000).process(part):
            if hasattr(result, "tag"):
                letter = json.loads(result.value)
                found.append((letter["stage"], letter["reason"]))
            else:
                found.append((result.id, result.gold_answers))
    return found


@pytest.mark.parametrize("name, text", [
    ("one-line.jsonl", json.dumps(SQUAD_DOCUMENT)),
    ("indented.jsonl", json.dumps(SQUAD_DOCUMENT, indent=2)),
    ("data-first.jsonl", "\n \n" + json.dumps({"data": SQUAD_DOCUMENT["data"], "version": "v2.0"})),
    ("indented.json", json.dumps(SQUAD_DOCUMENT, indent=2)),
])
def test_a_squad_document_is_read_as_squad_whatever_its_name(tmp_path, name, text):
    from bertqa.local.progress import count_records

    (tmp_path / name).write_text(text)
    assert read_file(tmp_path / name) == [(f"s{n}", ("Ulm",)) for n in range(3)]
    assert count_records(str(tmp_path / name)) is None  # its lines are not records: no total to show
    if name.endswith(".jsonl"):  # asked for JSON Lines, it is read as such: every non-blank line a dead letter
        assert {stage for stage, _ in read_file(tmp_path / name, "jsonl")} <= {"parse", "validate"}


@pytest.mark.parametrize("name", ["rows.json", "rows.json.gz", "rows.jsonl", "versioned.jsonl"])
def test_json_lines_are_read_as_json_lines_whatever_their_name(tmp_path, name):
    import gzip

    # versioned.jsonl: its first record's first key is "version", as a SQuAD document's is.
    data = (HF_ROWS.replace('{"id"', '{"version": 2, "id"', 1) if name.startswith("versioned") else HF_ROWS).encode()
    (tmp_path / name).write_bytes(gzip.compress(data) if name.endswith(".gz") else data)
    assert read_file(tmp_path / name) == [(f"h{n}", ("Ulm",)) for n in range(3)]
    if name.startswith("rows.json"):  # asked for SQuAD JSON: one dead letter that says what the file is
        ((stage, reason),) = read_file(tmp_path / name, "squad")
        assert stage == "parse" and "it starts with a record (a question or a document), as JSON Lines do" in reason
        assert "--input_format=jsonl" in reason


def test_a_large_squad_document_under_a_json_lines_name_is_not_cut_into_parts(tmp_path, monkeypatch):
    from apache_beam.io import fileio
    from apache_beam.io.filesystems import FileSystems

    from bertqa.io import inputs

    monkeypatch.setattr(inputs, "MIN_PART_BYTES", 100)  # parts of whole lines, had it been JSON Lines
    path = tmp_path / "dev.jsonl"
    path.write_text(json.dumps(SQUAD_DOCUMENT, indent=2))
    (metadata,) = FileSystems.match([str(path)])[0].metadata_list
    parts = list(inputs.file_parts(fileio.ReadableFile(metadata), "auto"))
    assert parts == [inputs.FilePart(str(path), format="squad")]
    assert len(list(inputs.file_parts(fileio.ReadableFile(metadata), "jsonl"))) > 3
    assert read_file(path) == [(f"s{n}", ("Ulm",)) for n in range(3)]


@pytest.mark.parametrize("encoding, named", [("utf-16", "UTF-16 LE"), ("utf-16-be", "UTF-16 BE"),
                                             ("utf-32", "UTF-32 LE"), ("utf-32-be", "UTF-32 BE")])
@pytest.mark.parametrize("name", ["rows.jsonl", "dev.json", "large.jsonl"])
def test_a_utf16_or_utf32_file_is_one_dead_letter_that_names_its_encoding(tmp_path, monkeypatch, encoding, named,
                                                                          name):
    """As Windows PowerShell's `>` writes a file: read as UTF-8, every line would be a dead letter of its own."""
    from bertqa.io import inputs

    monkeypatch.setattr(inputs, "MIN_PART_BYTES", 100)  # large.jsonl: would be cut into parts as UTF-8
    text = json.dumps(SQUAD_DOCUMENT) if name == "dev.json" else HF_ROWS * (20 if name == "large.jsonl" else 1)
    (tmp_path / name).write_bytes("\ufeff".encode(encoding) * encoding.endswith("-be") + text.encode(encoding))
    ((stage, reason),) = read_file(tmp_path / name)
    assert stage == "parse" and reason.startswith(f"the file is {named} text (it starts with the bytes ")
    assert f"not UTF-8 JSON text: convert it to UTF-8 first, e.g. iconv -f {named[:6]} -t UTF-8" in reason


def compressed_or_packed(kind: str, data: bytes, path) -> bytes:
    """`data` written by the library each kind of file comes from."""
    import bz2
    import gzip
    import lzma
    import zipfile

    import zstandard

    if kind == "zip":
        with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            archive.writestr("questions.jsonl", data)
        return path.read_bytes()
    if kind in ("Parquet", "Avro"):
        import fastavro
        import pyarrow
        import pyarrow.parquet

        rows = [json.loads(line) for line in data.decode().splitlines()]
        rows = [{key: row[key] for key in ("id", "question", "context")} for row in rows]
        if kind == "Parquet":
            pyarrow.parquet.write_table(pyarrow.Table.from_pylist(rows), path)
        else:
            schema = {"type": "record", "name": "Q", "fields": [
                {"name": key, "type": "string"} for key in ("id", "question", "context")]}
            with open(path, "wb") as handle:
                fastavro.writer(handle, schema, rows)
        return path.read_bytes()
    return {"gzip": gzip.compress, "bzip2": bz2.compress, "xz": lzma.compress,
            "Zstandard": zstandard.compress}[kind](data)


@pytest.mark.parametrize("kind, named, advice", [
    ("gzip", "a gzip file", "end its name in .gz (name.jsonl.gz) and it is decompressed"),
    ("bzip2", "a bzip2 file", "end its name in .bz2 (name.jsonl.bz2) and it is decompressed"),
    ("zip", "a zip archive", "unpack it, or compress it with gzip"),
    ("xz", "an xz file", "unpack it, or compress it with gzip"),
    ("Zstandard", "a Zstandard file", "unpack it, or compress it with gzip"),
])
@pytest.mark.parametrize("name", ["rows.jsonl", "rows.json", "large.jsonl", "double.jsonl.gz"])
def test_a_compressed_or_binary_file_under_a_text_name_is_one_dead_letter_that_says_what_it_is(
        tmp_path, monkeypatch, kind, named, advice, name):
    import gzip

    from bertqa.io import inputs

    monkeypatch.setattr(inputs, "MIN_PART_BYTES", 100)  # large.jsonl: would be cut into parts as text
    data = compressed_or_packed(kind, HF_ROWS.encode() * (50 if name == "large.jsonl" else 1), tmp_path / "packed")
    (tmp_path / name).write_bytes(gzip.compress(data) if name.endswith(".gz") else data)
    ((stage, reason),) = read_file(tmp_path / name)
    assert stage == "parse" and reason.startswith(f"the file is {named} (it starts with the bytes ")
    assert f"), not UTF-8 JSON text: {advice}" in reason
    if kind == "gzip":  # gs:// objects are read as stored, so an upload with `gcloud storage cp -Z` is gzip too
        assert "an object uploaded with `gcloud storage cp -Z` or `-z`, or gsutil's, is stored as gzip" in reason


def test_cloud_storage_objects_are_read_as_stored_not_decompressed_by_transcoding():
    # What the gzip advice above relies on: Beam's GCS reader asks for the raw bytes of a Content-Encoding: gzip
    # object (https://cloud.google.com/storage/docs/transcoding), so they reach the job compressed.
    import inspect

    from apache_beam.io.gcp.gcsio import BeamBlobReader

    assert inspect.signature(BeamBlobReader).parameters["raw_download"].default is True


@pytest.mark.parametrize("kind", ["Parquet", "Avro"])
@pytest.mark.parametrize("name", ["rows.jsonl", "rows.json", "large.jsonl", "double.jsonl.gz"])
def test_a_parquet_or_avro_file_under_a_text_name_is_read_as_the_table_it_is(tmp_path, monkeypatch, kind, name):
    import gzip

    from bertqa.io import inputs

    monkeypatch.setattr(inputs, "MIN_PART_BYTES", 100)  # large.jsonl: would be cut into parts as text
    data = compressed_or_packed(kind, HF_ROWS.encode() * (50 if name == "large.jsonl" else 1), tmp_path / "packed")
    (tmp_path / name).write_bytes(gzip.compress(data) if name.endswith(".gz") else data)
    found = read_file(tmp_path / name)
    assert found == [(f"h{n % 3}", None) for n in range(150 if name == "large.jsonl" else 3)]
    # Read as JSON Lines on purpose, it is one dead letter saying what it is and how to read it.
    ((stage, reason),) = read_file(tmp_path / name, "jsonl")
    assert stage == "parse" and reason.startswith(f"the file is a{'n' if kind == 'Avro' else ''} {kind} file")
    assert f"not UTF-8 JSON text: read it with --input_format={kind.lower()} (or auto" in reason


@pytest.mark.parametrize("name, given, head, expected", [
    ("q.jsonl", "auto", b'{"id": "a", "question": "Who?", "context": "x"}\n', "jsonl"),
    ("q.json", "auto", b'{"id": "a"}\n', "squad"),  # by the name (a first record makes it JSON Lines when parsed)
    ("dev.jsonl", "auto", b'\xef\xbb\xbf\n  {\n "version": "v2.0",', "squad"),  # by its first line
    ("q.txt", "auto", b'{"data": [', "squad"),
    ("t.csv.gz", "auto", None, "csv"), ("t.TSV", "csv", None, "tsv"), ("t.pq", "auto", None, "parquet"),
    ("rows.jsonl", "auto", b"PAR1\x15\x04", "parquet"),  # a table under another name, by its first bytes
    ("rows.json", "auto", b"Obj\x01\x04\x14", "avro"),
    ("utf16.jsonl", "auto", b"\xff\xfe{\x00", "jsonl"),  # not text: its reader says so
    ("q.json", "jsonl", None, "jsonl"), ("q.jsonl", "squad", None, "squad"), ("x.parquet", "avro", None, "avro"),
])
def test_the_format_is_told_in_one_place_reading_the_head_only_where_the_name_does_not_decide(name, given, head,
                                                                                            expected):
    from bertqa.io.inputs import detect_format

    def read():
        assert head is not None, "the name decides: the file must not be read"
        return head

    assert detect_format(name, given, read) == expected


def test_a_file_is_opened_once_to_tell_its_format_and_read_it(tmp_path, monkeypatch):
    # On Cloud Storage every open is a request: a small file whose name does not say its format was opened to read
    # its head, then again to read it.
    import gzip

    from bertqa.io import inputs
    from bertqa.io.inputs import FilePart, InputReader

    record = {"id": "q1", "question": "Who?", "context": "Anna lives here."}
    squad = {"version": "v2.0", "data": [{"paragraphs": [{"context": "Anna lives here.", "qas": [
        {"id": "s1", "question": "Who?", "answers": [], "is_impossible": True}]}]}]}
    (tmp_path / "q.jsonl").write_text(json.dumps(record) + "\n")
    (tmp_path / "q.txt").write_text(json.dumps(record) + "\n")
    (tmp_path / "dev.json").write_text(json.dumps(squad))
    (tmp_path / "records.json").write_text(json.dumps(record) + "\n")  # named SQuAD, holding a record
    (tmp_path / "q.csv").write_text("id,question,context\nc1,Who?,Anna lives here.\n")
    with gzip.open(tmp_path / "q.jsonl.gz", "wt") as handle:
        handle.write(json.dumps(record) + "\n")
    with gzip.open(tmp_path / "cut.jsonl.gz", "wb") as handle:
        handle.write((json.dumps(record) + "\n").encode() * 5000)
    (tmp_path / "cut.jsonl.gz").write_bytes((tmp_path / "cut.jsonl.gz").read_bytes()[:200])  # damaged
    opened = []
    open_input = inputs.open_input
    monkeypatch.setattr(inputs, "open_input", lambda path: opened.append(path) or open_input(path))
    reader = InputReader("auto", 10_000)

    def read(name):
        opened.clear()
        return [getattr(item, "id", None) or item.stage for item in reader.read_part(FilePart(str(tmp_path / name)))]

    for name, expected in (("q.jsonl", ["q1"]), ("q.txt", ["q1"]), ("dev.json", ["s1"]), ("q.csv", ["c1"]),
                           ("q.jsonl.gz", ["q1"])):
        assert read(name) == expected and len(opened) == 1, name
    assert read("records.json") == ["q1"] and len(opened) == 2  # read as SQuAD first: its name says so
    found = read("cut.jsonl.gz")  # the head read fails: the reading opens it again and says what is wrong
    assert found[-1] == "read" and found.count("q1") >= 1 and len(opened) == 2


@pytest.mark.parametrize("compress", ["gzip", "bzip2"])
def test_a_compressed_file_of_each_format_reads_as_the_file_itself(tmp_path, compress):
    import bz2
    import gzip

    table = "id,question,context\r\n" + "".join(f"c{n},Where {n}?,Anna lives in Ulm.\r\n" for n in range(3))
    suffix = {"gzip": ".gz", "bzip2": ".bz2"}[compress]
    for name, text in (("rows.jsonl", HF_ROWS), ("dev.json", json.dumps(SQUAD_DOCUMENT)), ("rows.csv", table),
                       ("rows.tsv", table.replace(",", "\t"))):
        (tmp_path / name).write_text(text, newline="")
        (tmp_path / (name + suffix)).write_bytes({"gzip": gzip.compress, "bzip2": bz2.compress}[compress](
            text.encode()))
        expected = read_file(tmp_path / name)
        assert len(expected) == 3 and all(not stage.startswith(("parse", "read")) for stage, _ in expected)
        assert read_file(tmp_path / (name + suffix)) == expected, name


def test_a_record_naming_a_field_twice_is_a_dead_letter_not_read_with_its_last_value(tmp_path):
    # json.loads keeps the last of two values under one name: which id or question is meant would be a guess.
    twice = "the record cannot be read: it holds a name twice in one object ('{}'), so which value is meant is unclear"
    (tmp_path / "q.jsonl").write_text('{"id": "a", "question": "Who?", "context": "Ann.", "id": "b"}\n'
                                      '{"id": "c", "question": "Who?", "context": "Ann.", "answers": '
                                      '[{"text": "Ann", "text": "A", "answer_start": 0}]}\n'
                                      '{"id": "d", "question": "Who?", "context": "Ann.", "meta": {"k": 1}}\n')
    assert read_file(tmp_path / "q.jsonl") == [("parse", twice.format("id")), ("parse", twice.format("text")),
                                               ("d", None)]
    squad = ('{"version": "v2.0", "data": [{"paragraphs": [{"context": "Anna lives in Ulm.", "qas": ['
             '{"id": "s1", "question": "Where?", "question": "Who?", "answers": []}, '
             '{"id": "s2", "question": "Where?", "answers": [{"text": "Ulm", "answer_start": 14}]}]}]}]}')
    (tmp_path / "dev.json").write_text(squad)
    (letter, kept) = read_file(tmp_path / "dev.json")
    assert letter[0] == "parse" and letter[1].startswith(
        "a question record that cannot be read: it holds a name twice in one object ('question')")
    assert kept == ("s2", ("Ulm",))
    # A paragraph naming its passage twice: which one its questions are asked of would be a guess. The file breaks
    # off there, the questions before it kept.
    (tmp_path / "dev.json").write_text(squad.replace('"answer_start": 14}]}]', '"answer_start": 14}]}], '
                                                     '"context": "Bob lives in Bonn."', 1))
    (first, second, letter) = read_file(tmp_path / "dev.json")
    assert second == ("s2", ("Ulm",)) and letter[0] == "parse"
    assert "a paragraph names 'context' twice, so which is meant is unclear" in letter[1]
    assert letter[1].endswith("the 2 question(s) before are kept")

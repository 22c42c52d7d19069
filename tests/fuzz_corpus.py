"""A hostile input corpus and its ledger: where every record must end up.

`write_corpus(directory, records)` writes JSONL, gzip, bzip2 and SQuAD files mixing valid records (CRLF,
byte-order mark, accents, CJK, RTL, emoji, zero-width characters, a 90,000-character passage) with
every kind of bad one (not JSON, not UTF-8, lone surrogates, deep nesting, Unicode-whitespace lines,
missing or mistyped fields, invisible-only text, a 5 MB line, NaN, duplicates within and across files)
and damaged files (not gzip, gzip corrupt after its first member, gzip or bzip2 cut short, SQuAD that is not
SQuAD, UTF-16, a zip archive), and files whose name says the other format. The ledger says, per record, "answer" (its id
must be predicted once) or the dead-letter stage expected at its source, and per damaged file the one
file-level row expected.
"""

from __future__ import annotations

import bz2
import dataclasses
import gzip
import json
import os
import zipfile
import zlib

UNICODE_BLANKS = ["\u00a0", "\u3000", "\u2028", "\u2029", "\u0085", "\x0b", "\x0c", "\x1c", " \u00a0 "]
JSON_BLANKS = ["", "   ", "\t", "\r"]  # not records: counted nowhere
INVISIBLE = ["\u200b\u200b", "\u00ad", "\u0301\u0301", "\u200b\u00ad\u200d"]


@dataclasses.dataclass
class Ledger:
    answers: list[str] = dataclasses.field(default_factory=list)  # ids to be predicted once each
    dead: dict[str, str] = dataclasses.field(default_factory=dict)  # source -> dead-letter stage
    behind_damage: int = 0  # records after the damage in damaged files (their file-level row covers them)

    def answer(self, record_id: str) -> None:
        self.answers.append(record_id)

    def reject(self, source: str, stage: str) -> None:
        assert source not in self.dead, source
        self.dead[source] = stage

    @property
    def records(self) -> int:
        """Records (and file-level rows) written, as the job must count them in records_read."""
        return len(self.answers) + len(self.dead)


class JsonlFile:
    """Lines written in order, each with the ledger entry it expects."""

    def __init__(self, directory: str, name: str, ledger: Ledger, line_ending: str = "\n", bom: bool = False):
        self.path = os.path.join(directory, name)
        self.ledger, self.line_ending, self.bom = ledger, line_ending, bom
        self.lines: list[bytes] = []

    def add(self, line: str | bytes, expect: str, record_id: str | None = None) -> None:
        """expect: 'answer', a dead-letter stage, or 'blank' (not a record)."""
        data = line if isinstance(line, bytes) else line.encode("utf-8", "surrogatepass")
        self.lines.append(data)
        source = f"{self.path}:{len(self.lines)}"
        if expect == "answer":
            self.ledger.answer(record_id)
        elif expect != "blank":
            self.ledger.reject(source, expect)

    def data(self) -> bytes:
        body = b"".join(line + self.line_ending.encode() for line in self.lines)
        return (b"\xef\xbb\xbf" if self.bom else b"") + body

    def write(self) -> None:
        with open(self.path, "wb") as handle:
            handle.write(self.data())


def record_line(record: dict, **changes) -> str:
    return json.dumps({**record, **changes}, ensure_ascii=False)


def write_corpus(directory: str, records: list[dict]) -> Ledger:
    """Writes the corpus; `records` are valid labelled records (at least 900) with unique ids."""
    ledger = Ledger()
    pool = iter(records)

    def valid(**changes) -> tuple[str, str]:
        record = {**next(pool), **changes}
        return record_line(record), record["id"]

    def compressed(name: str, count: int, compress) -> None:
        """`count` valid records in a file written through `compress`."""
        file = JsonlFile(directory, name, ledger)
        for _ in range(count):
            line, record_id = valid()
            file.add(line, "answer", record_id)
        with open(file.path, "wb") as handle:
            handle.write(compress(file.data()))

    def cut_short(name: str, count: int, compress, cut, decompressor) -> None:
        """`count` valid records compressed, then cut: the records whose line ends within what `decompressor`
        gets from the cut file are read, the others are behind the damage."""
        file = JsonlFile(directory, name, Ledger())
        for _ in range(count):
            file.add(valid()[0], "answer", "x")
        data = cut(compress(file.data()))
        readable = decompressor.decompress(data).count(b"\n")
        for line in file.lines[:readable]:
            ledger.answer(json.loads(line)["id"])
        ledger.behind_damage += len(file.lines) - readable
        with open(file.path, "wb") as handle:
            handle.write(data)
        ledger.reject(file.path, "read")

    # a.jsonl: plain valid records, blank lines, and every kind of bad record.
    a = JsonlFile(directory, "a.jsonl", ledger)
    for _ in range(400):
        line, record_id = valid()
        a.add(line, "answer", record_id)
    first = records[0]
    for blank in JSON_BLANKS:
        a.add(blank, "blank")
    for blank in UNICODE_BLANKS:
        a.add(blank, "parse")
    bad = {"id": "bad", "question": "Who?", "context": "Anna lives in Ulm."}
    for line, stage in [
        ("{not json", "parse"), ('{"id": "x", "question": "q"', "parse"), ("[" * 100_000, "parse"),
        ('{"id": "d", "question": "q?", "context": ' + "[" * 5000 + "]" * 5000 + "}", "parse"),
        ('{"id": "\\ud800", "question": "q?", "context": "c c"}', "validate"),
        ('{"id": "s1", "question": "Who \\udfff?", "context": "Anna lives here."}', "validate"),
        ('{"id": "s2", "question": "Who?", "context": "Anna \\ud83d lives here."}', "validate"),
        (json.dumps([1, 2]), "validate"), (json.dumps("text"), "validate"), ("null", "validate"),
        (record_line(bad, id=None), "validate"), (record_line(bad, id=7), "validate"),
        (record_line(bad, id=""), "validate"), (record_line(bad, question=""), "validate"),
        (record_line(bad, context=None), "validate"), (record_line(bad, context=["x"]), "validate"),
        (record_line(bad, question="\u00a0\u3000"), "validate"), (record_line(bad, answers="x"), "validate"),
        (record_line(bad, is_impossible="yes"), "validate"), ('{"id": "n", "question": "q?", "context": "c", '
                                                               '"answers": NaN}', "validate"),
        (record_line(bad, id="long", context="word " * 25_000), "validate"),  # over max_context_chars
        (record_line(bad, id="huge", context="word " * 1_000_000), "parse"),  # a 5 MB line: too long to read
    ]:
        a.add(line, stage)
    for index, invisible in enumerate(INVISIBLE):
        a.add(record_line(bad, id=f"inv-q{index}", question=invisible), "tokenize")
        a.add(record_line(bad, id=f"inv-c{index}", context=invisible), "tokenize")
    a.add(b'{"id": "bytes", "question": "Who\xff?", "context": "c"}', "parse")
    a.add(b"\xc3\x28\xa0\xa1 not utf-8", "parse")
    a.add(record_line(first, question="A later record with an id already used"), "deduplicate")
    a.write()

    # b.jsonl: CRLF line endings, a byte-order mark, every script, zero-width characters inside text.
    b = JsonlFile(directory, "b.jsonl", ledger, line_ending="\r\n", bom=True)
    decorations = ["Zoë Naroü ", "東京タワー ", "עברית ", "العربية ", "emoji 🙂🚀 ", "zero\u200bwidth ",
                   "soft\u00adhyphen ", "e\u0301 decomposed "]
    for index in range(200):
        record = next(pool)
        extra = decorations[index % len(decorations)]
        record = {**record, "context": extra + record["context"], "question": record["question"] + " " + extra}
        b.add(record_line(record), "answer", record["id"])
    long_record = next(pool)
    filler = " ".join(f"Tholfen{n} lies near the river." for n in range(4000))[:90_000 - 200]
    long_context = (long_record["context"] + " " + filler)[:90_000]
    b.add(record_line(long_record, context=long_context), "answer", long_record["id"])
    b.add(record_line(records[1], question="Duplicate across files"), "deduplicate")
    b.write()

    # c.jsonl.gz: a valid gzip file.
    compressed("c.jsonl.gz", 250, gzip.compress)

    # d.jsonl.gz: a good first gzip member, then bytes that are not gzip: damaged after its records.
    d = JsonlFile(directory, "d.jsonl.gz", ledger)
    for _ in range(50):
        line, record_id = valid()
        d.add(line, "answer", record_id)
    tail = JsonlFile(directory, "d-tail", Ledger())
    for _ in range(10):
        tail.add(valid()[0], "answer", "x")
    ledger.behind_damage += 10
    with open(d.path, "wb") as handle:
        handle.write(gzip.compress(d.data()) + b"NOT GZIP" + tail.data())
    ledger.reject(d.path, "read")

    # e.jsonl.gz: a gzip file cut short. Records whose line ends before the cut are read.
    cut_short("e.jsonl.gz", 60, gzip.compress, lambda data: data[: len(data) * 2 // 3], zlib.decompressobj(wbits=31))

    # f.jsonl.gz: not gzip at all.
    f = JsonlFile(directory, "f.jsonl.gz", Ledger())
    for _ in range(5):
        f.add(valid()[0], "answer", "x")
    f.write()
    ledger.behind_damage += 5
    ledger.reject(f.path, "read")

    # n.jsonl.bz2: a valid bzip2 file.
    compressed("n.jsonl.bz2", 40, bz2.compress)

    # o.jsonl.bz2: a bzip2 file cut short. bzip2 gives whole blocks (900 kB) only: the records of the block the cut
    # is in are behind the damage.
    cut_short("o.jsonl.bz2", 20, bz2.compress, lambda data: data[:-40], bz2.BZ2Decompressor())

    # g.json: SQuAD v2 with good and bad questions (NaN, surrogates, missing fields, duplicate ids).
    path = os.path.join(directory, "g.json")
    qas, number = [], 0
    for _ in range(100):
        record = next(pool)
        qas.append({"id": record["id"], "question": record["question"], "answers": record["answers"]})
        ledger.answer(record["id"])
        number += 1
    for qa in ({"id": "sq-nan", "question": "q?", "answers": float("nan")},
               {"id": "sq-sur", "question": "Who\udc80?", "answers": []},
               {"question": "no id?"}, {"id": "sq-noq"},
               {"id": records[2]["id"], "question": "Duplicate in SQuAD"}):
        qas.append(qa)
        stage = "deduplicate" if qa.get("id") == records[2]["id"] else "validate"
        ledger.reject(f"{path}#{number}", stage)
        number += 1
    document = {"version": "v2.0", "data": [{"title": "t", "paragraphs": [
        {"context": next(pool)["context"], "qas": qas}, {"context": "broken", "qas": "not a list"}]}]}
    ledger.reject(f"{path}#data[0].paragraphs[1]", "parse")
    with open(path, "w", encoding="utf-8", errors="surrogateescape") as handle:
        handle.write(json.dumps(document, ensure_ascii=False))

    # j.json: JSON Lines under a SQuAD name (as Hugging Face's Dataset.to_json writes them), with the answers
    # in Hugging Face's squad_v2 form: read as JSON Lines by their content.
    j = JsonlFile(directory, "j.json", ledger)
    for _ in range(20):
        record = next(pool)
        answers = {"text": [a["text"] for a in record["answers"]],
                   "answer_start": [a["answer_start"] for a in record["answers"]]}
        j.add(record_line(record, title="t", answers=answers), "answer", record["id"])
    j.write()

    # k.jsonl: a SQuAD document with indentation under a JSON Lines name: read as SQuAD by its first line.
    paragraphs = []
    for _ in range(20):
        record = next(pool)
        paragraphs.append({"context": record["context"], "qas": [
            {key: record[key] for key in ("id", "question", "answers")}]})
        ledger.answer(record["id"])
    with open(os.path.join(directory, "k.jsonl"), "w", encoding="utf-8") as handle:
        json.dump({"version": "v2.0", "data": [{"title": "t", "paragraphs": paragraphs}]}, handle, indent=1)

    # l.jsonl: UTF-16 text (as Windows PowerShell's `>` writes): one row for the file.
    l_path = os.path.join(directory, "l.jsonl")
    with open(l_path, "w", encoding="utf-16") as handle:
        handle.writelines(valid()[0] + "\n" for _ in range(5))
    ledger.behind_damage += 5
    ledger.reject(l_path, "parse")

    # m.zip: a zip archive of JSON Lines: one row for the file.
    m_path = os.path.join(directory, "m.zip")
    with zipfile.ZipFile(m_path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("questions.jsonl", "".join(valid()[0] + "\n" for _ in range(5)))
    ledger.behind_damage += 5
    ledger.reject(m_path, "parse")

    # h.json and i.json.gz: SQuAD files that are not SQuAD: one row each.
    for name, data in (("h.json", b"{\"data\": " + b"[" * 5000 + b"]" * 5000 + b"}"),
                       ("i.json.gz", b"plain text, not gzip")):
        with open(os.path.join(directory, name), "wb") as handle:
            handle.write(data)
        stage = "parse" if name == "h.json" else "read"
        ledger.reject(os.path.join(directory, name), stage)
    return ledger

"""Reading question files at scale: a SQuAD file is walked as a stream, in bounded memory."""

import json
import subprocess
import sys

PARAGRAPHS = 60_000
QUESTIONS_PER_PARAGRAPH = 5
CONTEXT = ("The old bridge over the river was rebuilt in stone after the flood of 1832, and the market square "
           "beside it still holds a fair every autumn. ") * 25  # about 3.4 KB, like a long SQuAD passage

MEASURE = """
import resource, sys, time
from bertqa.inputs import squad_questions
from bertqa.records import Question
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

"""Prints a few of the demo's questions with the job's answers, then the job's EM/F1."""

from __future__ import annotations

import json
import sys

from bertqa.io.files import read_text


def main(output_dir: str, questions_path: str, count: int = 8) -> None:
    answers = json.loads(read_text(f"{output_dir}/predictions.json"))
    records = [json.loads(line) for line in read_text(questions_path).split("\n") if line.strip()]
    # Show answerable and unanswerable ones, from short and long passages.
    shown = sorted(records, key=lambda r: (bool(r["answers"]), len(r["context"])))[:: max(1, len(records) // count)]
    for record in shown[:count]:
        gold = record["answers"][0]["text"] if record["answers"] else "(no answer)"
        print(f"Q: {record['question']}\n   answer: {answers.get(record['id']) or '(no answer)'}   expected: {gold}")
    metrics = json.loads(read_text(f"{output_dir}/summary.json")).get("metrics", {})
    print(f"\n{len(answers)} questions: EM {metrics.get('exact', 0):.1f}, F1 {metrics.get('f1', 0):.1f} "
          f"(has answer: EM {metrics.get('HasAns_exact', 0):.1f}; no answer: EM {metrics.get('NoAns_exact', 0):.1f})")
    if "best_f1" in metrics:
        print(f"best no-answer threshold for these questions: F1 {metrics['best_f1']:.1f} with "
              f"--null_score_diff_threshold={metrics['best_f1_thresh']!r} (summary.json: metrics.best_f1_thresh)")


if __name__ == "__main__":
    main(*sys.argv[1:3])

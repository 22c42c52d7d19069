import pytest

from bertqa.qa.metrics import MetricTotals, exact_match, f1_score, gold_texts, normalize_answer, score_question


def test_normalization_follows_the_official_script():
    assert normalize_answer("The  Cat!") == "cat"
    assert normalize_answer("an Apple, a pear") == "apple pear"
    assert normalize_answer("Thebes") == "thebes"  # articles only as whole words
    assert normalize_answer("Zoë's") == "zoës"


def test_f1_and_exact_on_hand_computed_cases():
    assert exact_match("The Eiffel Tower", "eiffel tower.") == 1
    assert f1_score("the quick brown fox", "quick fox jumps") == pytest.approx(2 / 3)
    # "a" is an article: gold is [b, c, d]; precision 1, recall 1/3
    assert f1_score("a b c d", "b") == pytest.approx(0.5)
    assert f1_score("red", "blue") == 0.0


def test_no_answer_scores_one_only_against_no_answer():
    assert score_question([], "").exact == 1 and score_question([], "").f1 == 1
    assert score_question([], "Paris").exact == 0 and score_question([], "Paris").f1 == 0
    assert score_question(["Paris"], "").f1 == 0
    # Gold answers that normalize to nothing leave "" as the only match, as in the official script...
    assert gold_texts(["the", "  "]) == [""]
    assert score_question(["the"], "").exact == 1 and score_question(["the"], "The").f1 == 1
    # ...but the question still has answers, so it counts in HasAns_ (`bool(qa['answers'])` there).
    assert score_question(["the"], "").has_answer is True
    assert score_question([], "").has_answer is False


def test_best_gold_answer_counts():
    score = score_question(["Paris", "the city of Paris"], "city of Paris")
    assert score.exact == 1 and score.f1 == 1


def test_totals_split_into_has_answer_and_no_answer():
    totals = MetricTotals()
    totals.add(score_question(["Paris"], "Paris"))  # 1, 1
    totals.add(score_question(["quick brown fox"], "quick fox"))  # 0, 0.8
    other = MetricTotals().add(score_question([], "")).add(score_question([], "x"))  # 1,1 and 0,0
    summary = totals.merge(other).summary()
    assert summary["total"] == 4 and summary["HasAns_total"] == 2 and summary["NoAns_total"] == 2
    assert summary["exact"] == pytest.approx(50.0)
    assert summary["f1"] == pytest.approx(100 * (1 + 0.8 + 1 + 0) / 4)
    assert summary["HasAns_f1"] == pytest.approx(90.0)
    assert summary["NoAns_exact"] == pytest.approx(50.0)


def test_no_questions_no_figures():
    assert MetricTotals().summary() == {}


def test_labelled_questions_without_a_prediction_count_as_wrong_only_in_the_all_labelled_figures():
    # Worked by hand from evaluate-v2.0.py's definitions:
    #   q1 gold ["Paris"], pred "Paris"         HasAns  exact 1, f1 1
    #   q2 gold ["The"], pred ""               HasAns  exact 1, f1 1 (gold normalizes to "", only "" matches)
    #   q3 gold ["Ulm", "the Ulm"], pred "Ulm town"  HasAns  exact 0, f1 2*(1/2*1)/(1/2+1) = 2/3
    #   q4 gold [], pred "x"                   NoAns   exact 0, f1 0
    #   q5 gold ["Bonn"], no prediction        HasAns  missing
    #   q6 gold [], no prediction              NoAns   missing
    totals = MetricTotals()
    for gold, prediction in ((["Paris"], "Paris"), (["The"], ""), (["Ulm", "the Ulm"], "Ulm town"), ([], "x"),
                             (["Bonn"], None), ([], None)):
        totals.add(score_question(gold, prediction))
    predicted = totals.summary()
    assert predicted["total"] == 4 and predicted["HasAns_total"] == 3 and predicted["NoAns_total"] == 1
    assert predicted["exact"] == pytest.approx(100 * 2 / 4)
    assert predicted["f1"] == pytest.approx(100 * (1 + 1 + 2 / 3 + 0) / 4)
    assert predicted["HasAns_f1"] == pytest.approx(100 * (2 + 2 / 3) / 3)
    assert predicted["NoAns_exact"] == 0.0
    everything = totals.summary(count_missing=True)
    assert everything["total"] == 6 and everything["HasAns_total"] == 4 and everything["NoAns_total"] == 2
    assert everything["exact"] == pytest.approx(100 * 2 / 6)
    assert everything["f1"] == pytest.approx(100 * (2 + 2 / 3) / 6)
    assert everything["HasAns_exact"] == pytest.approx(100 * 2 / 4)
    assert everything["NoAns_f1"] == 0.0
    assert totals.without_prediction == 2


def test_only_missing_predictions_give_all_labelled_figures_and_no_predicted_ones():
    totals = MetricTotals().add(score_question(["Bonn"], None))
    assert totals.summary() == {} and totals.without_prediction == 1
    assert totals.summary(count_missing=True) == {"exact": 0.0, "f1": 0.0, "total": 1, "HasAns_exact": 0.0,
                                                  "HasAns_f1": 0.0, "HasAns_total": 1}


def official_find_best_thresh(preds: dict, scores: dict, na_probs: dict, qid_to_has_ans: dict) -> tuple[float, float]:
    """evaluate-v2.0.py's find_best_thresh, written out: its best score (percent) and threshold, from predictions
    that answer every question with its best span and each question's na-prob (here the null score difference)."""
    num_no_ans = sum(1 for k in qid_to_has_ans if not qid_to_has_ans[k])
    cur_score = best_score = num_no_ans
    best_thresh = 0.0
    for qid in sorted(na_probs, key=lambda k: na_probs[k]):
        if qid not in scores:
            continue
        diff = scores[qid] if qid_to_has_ans[qid] else (-1 if preds[qid] else 0)
        cur_score += diff
        if cur_score > best_score:
            best_score, best_thresh = cur_score, na_probs[qid]
    return 100.0 * best_score / len(scores), best_thresh


def random_questions(seed: int, count: int) -> list[tuple[list[str], str, float]]:
    """(gold answers, best span, null score difference): a quarter unanswerable, spans right, partly right or
    wrong, differences distinct."""
    import random

    rng = random.Random(seed)
    words = ["Ulm", "river", "Anna Berg", "the old bridge", "1602", "north"]
    found = []
    for index in range(count):
        gold = [] if index % 4 == 0 else [rng.choice(words)]
        span = rng.choice([gold[0] if gold else rng.choice(words), rng.choice(words), f"{rng.choice(words)} town"])
        found.append((gold, span, rng.uniform(-8.0, 4.0) + index * 1e-9))
    return found


@pytest.mark.parametrize("seed", range(5))
def test_the_best_threshold_is_the_official_scripts_and_gives_its_score_when_applied(seed):
    questions = random_questions(seed, 300)
    totals = MetricTotals()
    for gold, span, diff in questions:  # the job's threshold 0: answered where the difference is at most 0
        totals.add(score_question(gold, span if diff <= 0 else "", span, diff))
    found = totals.summary()
    # evaluate-v2.0.py on predictions that answer every question with its span, its na-prob the difference.
    preds = {n: span for n, (_, span, _) in enumerate(questions)}
    for name in ("exact", "f1"):
        measure = exact_match if name == "exact" else f1_score
        scores = {n: max(measure(text, span) for text in gold_texts(gold))
                  for n, (gold, span, _) in enumerate(questions)}
        best, threshold = official_find_best_thresh(preds, scores, {n: d for n, (*_, d) in enumerate(questions)},
                                                    {n: bool(gold) for n, (gold, *_) in enumerate(questions)})
        assert threshold != 0.0, "answering some spans must beat answering none, or the official value is 0.0"
        assert (found[f"best_{name}"], found[f"best_{name}_thresh"]) == (pytest.approx(best), threshold)
        # The threshold applied gives the score reported.
        rerun = MetricTotals()
        for gold, span, diff in questions:
            rerun.add(score_question(gold, span if diff <= threshold else "", span, diff))
        assert rerun.summary()[name] == pytest.approx(found[f"best_{name}"])
    assert found["best_f1"] >= found["f1"] and found["best_exact"] >= found["exact"]


def test_the_best_threshold_counts_questions_without_a_span_and_is_below_all_where_no_answer_is_best():
    totals = MetricTotals()
    totals.add(score_question([], "", "Ulm", -1.0))  # answering its span loses a point
    totals.add(score_question([], "", "river", 2.0))
    totals.add(score_question(["Ulm"], ""))  # no span qualified: "" whatever the threshold, scored 0
    found = totals.summary()
    assert (found["best_exact"], found["best_exact_thresh"]) == (pytest.approx(200 / 3), -2.0)
    # Equal differences are answered together; without SQuAD v2 decoding (no differences) there is nothing to find.
    tied = MetricTotals().add(score_question(["Ulm"], "Ulm", "Ulm", 1.0)).add(score_question([], "x", "x", 1.0))
    assert tied.summary()["best_exact"] == 50.0
    assert "best_exact" not in MetricTotals().add(score_question(["Ulm"], "Ulm")).summary()
    assert "best_exact" not in tied.summary(count_missing=True)

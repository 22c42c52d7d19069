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

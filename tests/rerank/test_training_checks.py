"""Training data with nothing to learn is refused; validation never runs on a training query."""

import numpy as np
import pytest

from shoplens.common.errors import RankerError
from shoplens.rerank.training import RankerConfig, TrainingData
from shoplens.rerank.training_checks import check_config, check_known_products, split_for_validation


def data(labels_by_query: dict[str, list[int]]) -> TrainingData:
    labels, groups = [], []
    for group, labels_of_query in enumerate(labels_by_query.values()):
        labels += labels_of_query
        groups += [group] * len(labels_of_query)
    return TrainingData(np.zeros((len(labels), 3)), np.array(labels, np.float32), np.array(groups), list(labels_by_query))


def test_all_equal_grades_are_refused():
    with pytest.raises(RankerError, match="nothing to learn"):
        split_for_validation(data({"a": [0, 0, 0], "b": [0, 0]}), None, 0.2, 0)


def test_one_query_with_variation_cannot_be_split():
    with pytest.raises(RankerError, match="at least two"):
        split_for_validation(data({"a": [0, 2, 1], "b": [0, 0]}), None, 0.2, 0)


def test_the_split_is_disjoint_and_validation_has_variation():
    queries = {f"q{i}": ([0, 1, 2] if i % 3 == 0 else [0, 0]) for i in range(10)}
    train, validation = split_for_validation(data(queries), None, 0.2, 0)
    train_groups, val_groups = set(train.groups.tolist()), set(validation.groups.tolist())
    assert train_groups and val_groups and not train_groups & val_groups
    assert all(np.ptp(validation.labels[validation.groups == g]) > 0 for g in val_groups)


def test_validation_queries_that_are_training_queries_are_dropped():
    training = data({"a": [0, 1], "b": [2, 0]})
    with pytest.raises(RankerError, match="also a training query"):
        split_for_validation(training, data({"a": [0, 1]}), 0.2, 0)
    _, validation = split_for_validation(training, data({"a": [0, 1], "c": [1, 0]}), 0.2, 0)
    assert set(validation.groups.tolist()) == {1}


def test_judgments_naming_no_product_of_the_index_are_refused():
    with pytest.raises(RankerError, match="none of the 2 product ids"):
        check_known_products({"q": {"x": 1, "y": 0}}, {"a", "b"}, "judgments")
    check_known_products({"q": {"x": 1, "a": 0}}, {"a", "b"}, "judgments")


@pytest.mark.parametrize("changes", [{"depth": 0}, {"n_estimators": 0}, {"n_estimators": 10 ** 22},
                                     {"learning_rate": float("nan")}, {"depth": True}, {"gain": "log"}, {"gain": None}])
def test_bad_options_are_refused(changes):
    with pytest.raises(RankerError):
        check_config(RankerConfig(**changes))

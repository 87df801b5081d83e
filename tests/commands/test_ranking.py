"""The ranking commands' options (training and evaluation themselves are tested in tests/rerank, tests/engine)."""

import inspect


def test_the_stop_tolerance_option_says_what_training_defines():
    """The option's default is a literal (training is not imported to parse options)."""
    from shoplens.commands.ranking import train_ranker
    from shoplens.rerank.training import STOP_TOLERANCE

    option = inspect.signature(train_ranker).parameters["stop_tolerance"].default
    assert option.default == STOP_TOLERANCE

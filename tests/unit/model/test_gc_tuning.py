"""The querier's and rulers' garbage-collector thresholds: raised to THRESHOLDS, never lowered; the pause a
shard's recovery runs in."""

import gc

from shardmon.model.gc_tuning import THRESHOLDS, tune_for_queries


def test_thresholds_are_raised_and_never_lowered():
    before = gc.get_threshold()
    try:
        gc.set_threshold(700, 10, 10)
        tune_for_queries()
        assert gc.get_threshold() == THRESHOLDS
        gc.set_threshold(100_000, 5, 50)
        tune_for_queries()
        assert gc.get_threshold() == (100_000, THRESHOLDS[1], 50)
    finally:
        gc.set_threshold(*before)


def test_paused_turns_the_collector_off_for_the_block_only():
    from shardmon.model.gc_tuning import paused

    assert gc.isenabled()
    with paused():
        assert not gc.isenabled()
        with paused():
            assert not gc.isenabled()
        assert not gc.isenabled()  # the inner block leaves it as it found it
    assert gc.isenabled()
    try:
        with paused():
            raise KeyError
    except KeyError:
        pass
    assert gc.isenabled()

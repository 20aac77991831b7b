"""Walk-forward folds never overlap and always leave the gap."""

import pytest

from graphwiz_trader.research.walkforward import walk_forward_folds


def test_folds_roll_forward_with_the_gap_and_no_test_overlap():
    folds = walk_forward_folds(1000, train_len=300, test_len=100, stride=100, gap=5, label_horizon=5)
    assert len(folds) == 6  # last test ends at 500+305+100 = 905 <= 1000; one more would need 1005
    for f in folds:
        assert f.train_end - f.train_start == 300
        assert f.test_start - f.train_end == 5
        assert f.test_end - f.test_start == 100
    for a, b in zip(folds, folds[1:]):
        assert a.test_end <= b.test_start  # test windows never overlap
        assert b.train_start - a.train_start == 100


def test_expanding_training_starts_at_zero_and_embargo_widens_the_gap():
    folds = walk_forward_folds(1000, 200, 100, gap=2, embargo=3, label_horizon=2, expanding=True)
    assert all(f.train_start == 0 for f in folds)
    assert all(f.test_start - f.train_end == 5 for f in folds)


def test_a_gap_shorter_than_the_label_horizon_is_refused():
    with pytest.raises(ValueError, match=r"gap \(1 bars\) must be >= the label horizon \(24 bars\)"):
        walk_forward_folds(1000, 200, 100, gap=1, label_horizon=24)


def test_too_little_data_for_one_fold_names_both_lengths():
    with pytest.raises(ValueError, match=r"one fold needs 9481 bars \(train 8760 \+ gap 1 \+ embargo 0 \+ test 720\) but the data has 5000"):
        walk_forward_folds(5000, 8760, 720, gap=1)

"""Cross-validation folds, ensembles, ROC/PR curves and A/B tables (issue 18, items 2 and 7)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from unet_demo.config import DataConfig
from unet_demo.data.folds import image_groups, make_folds, too_close
from unet_demo.data.sources import fold_split_arrays, load_split_arrays, prepare_split
from unet_demo.errors import UNetDemoError
from unet_demo.evaluation.curves import compare_runs, comparison_summary, roc_pr_curves
from unet_demo.evaluation.ensemble import mean_probabilities


def _pool_ids(dataset: str) -> list[str]:
    return load_split_arrays(dataset, "train")[2] + load_split_arrays(dataset, "val")[2]


@pytest.mark.parametrize("dataset", ["brain_skullstrip", "nuclei", "synthetic_lesions"])
@pytest.mark.parametrize("k", [3, 5])
def test_folds_partition_the_pool_into_disjoint_groups_without_leaks(dataset, k):
    ids = _pool_ids(dataset)
    folds = make_folds(ids, k)
    groups = image_groups(ids)
    # Every image validates exactly once.
    assert sorted(int(i) for fold in folds for i in fold.val) == list(range(len(ids)))
    # No group is split across two validation folds.
    val_groups = [{groups[i] for i in fold.val} for fold in folds]
    for first, second in itertools.combinations(val_groups, 2):
        assert not first & second
    for fold in folds:
        train, val = set(fold.train.tolist()), set(fold.val.tolist())
        assert train and val and not train & val
        assert train | val | set(fold.dropped.tolist()) == set(range(len(ids)))
        # No training image is near a validation image (the split rule's spacing).
        assert not any(too_close(ids[t], ids[v]) for t in fold.train for v in fold.val)
    sizes = [len(fold.val) for fold in folds]
    assert max(sizes) <= 2.5 * min(sizes)  # roughly balanced


def test_slice_folds_follow_the_split_blocks_and_nothing_is_dropped():
    ids = _pool_ids("brain_skullstrip")
    folds = make_folds(ids, 5)
    assert all(len(fold.dropped) == 0 for fold in folds)  # blocks are >= 4 voxels apart
    # A fold never validates on a slice within 3 voxels of one of its training slices.
    numbers = {i: (i.split("_")[0], int(i.split("_")[1][1:])) for i in ids}
    for fold in folds:
        for t in fold.train:
            plane, number = numbers[ids[t]]
            assert all(numbers[ids[v]][0] != plane or abs(numbers[ids[v]][1] - number) >= 4
                       for v in fold.val)


def test_upload_style_groups_keep_a_patient_in_one_fold():
    ids = [f"p{p:02d}_s{s}" for p in range(6) for s in range(3)]
    folds = make_folds(ids, 3, group_separator="_")
    for fold in folds:
        patients = {ids[i].split("_")[0] for i in fold.val}
        assert all(ids[i].split("_")[0] not in patients for i in fold.train)
    with pytest.raises(UNetDemoError, match="at least 7 separate groups"):
        make_folds(ids, 7, group_separator="_")


def test_fold_configs_feed_training_and_refuse_bad_values():
    data = DataConfig(dataset="synthetic_lesions", image_size=32, folds=3, fold=1)
    _, _, val_ids = prepare_split(data, "val")
    _, _, train_ids = prepare_split(data, "train")
    assert not set(val_ids) & set(train_ids)
    assert len(val_ids) + len(train_ids) == 170  # 140 train + 30 val, the test split apart
    assert set(prepare_split(data, "test")[2]) == set(load_split_arrays(
        "synthetic_lesions", "test")[2])
    assert len(prepare_split(data.replace(max_train_images=5), "train")[2]) == 5
    with pytest.raises(UNetDemoError, match="folds must be between 2 and 20"):
        DataConfig(folds=1)
    with pytest.raises(UNetDemoError, match="fold must be between 0 and 2"):
        DataConfig(folds=3, fold=3)
    with pytest.raises(UNetDemoError, match="test split stays"):
        fold_split_arrays("nuclei", 3, 0, "test")


def test_mean_probabilities_is_the_pixelwise_mean_and_checks_shapes():
    rng = np.random.default_rng(0)
    outputs = [rng.random((2, 4, 4, 1), dtype=np.float32) for _ in range(3)]
    expected = (outputs[0] + outputs[1] + outputs[2]) / 3
    np.testing.assert_allclose(mean_probabilities(outputs), expected, rtol=1e-6)
    with pytest.raises(UNetDemoError, match="different shapes"):
        mean_probabilities([outputs[0], np.zeros((2, 4, 4, 2))])


def _brute_force(scores: np.ndarray, truth: np.ndarray) -> tuple[float, float]:
    """ROC AUC by comparing every foreground with every background pixel (ties count half),
    and average precision by recomputing precision and recall at every distinct threshold."""
    positive, negative = scores[truth == 1], scores[truth == 0]
    wins = (positive[:, None] > negative[None, :]).sum()
    ties = (positive[:, None] == negative[None, :]).sum()
    auc = (wins + 0.5 * ties) / (len(positive) * len(negative))
    ap, previous_recall = 0.0, 0.0
    for threshold in sorted(set(scores.tolist()), reverse=True):
        called = scores >= threshold
        tp = int((called & (truth == 1)).sum())
        precision, recall = tp / int(called.sum()), tp / len(positive)
        ap += (recall - previous_recall) * precision
        previous_recall = recall
    return float(auc), float(ap)


@pytest.mark.parametrize("seed", range(6))
def test_roc_auc_and_average_precision_match_a_brute_force_reference(seed):
    rng = np.random.default_rng(seed)
    truth = (rng.random(300) < rng.uniform(0.05, 0.5)).astype(int)
    truth[:2] = [0, 1]
    # Rounded scores make many ties, the case where shortcuts go wrong.
    scores = np.round(np.clip(0.3 * truth + rng.random(300) * 0.8, 0, 1), 1 + seed % 2)
    curves = roc_pr_curves(scores, truth)
    auc, ap = _brute_force(scores, truth)
    assert curves.roc_auc == pytest.approx(auc, abs=1e-12)
    assert curves.average_precision == pytest.approx(ap, abs=1e-12)
    assert curves.fpr[0] == 0 and curves.tpr[-1] == 1 and curves.fpr[-1] == 1
    assert np.all(np.diff(curves.fpr) >= 0) and np.all(np.diff(curves.recall) >= 0)


def test_curves_extremes_and_errors():
    perfect = roc_pr_curves(np.array([0.1, 0.2, 0.8, 0.9]), np.array([0, 0, 1, 1]))
    assert perfect.roc_auc == 1.0 and perfect.average_precision == 1.0
    reversed_ = roc_pr_curves(np.array([0.9, 0.8, 0.2, 0.1]), np.array([0, 0, 1, 1]))
    assert reversed_.roc_auc == 0.0
    long = roc_pr_curves(np.linspace(0, 1, 5000), np.arange(5000) % 3 == 0, max_points=100)
    assert len(long.fpr) <= 100 and len(long.recall) <= 101
    with pytest.raises(UNetDemoError, match="both foreground and background"):
        roc_pr_curves(np.ones(4), np.ones(4))
    with pytest.raises(UNetDemoError, match="pair up"):
        roc_pr_curves(np.ones(4), np.ones(3))


def test_compare_runs_pairs_images_by_id_and_sorts_by_gain():
    a = [{"id": "x", "dice": 0.9}, {"id": "y", "dice": 0.2}, {"id": "z", "dice": 0.5}]
    b = [{"id": "z", "dice": 0.505}, {"id": "y", "dice": 0.7}, {"id": "x", "dice": 0.6}]
    table = compare_runs(a, b)
    assert [(row["id"], row["verdict"]) for row in table] == [
        ("y", "B better"), ("z", "same"), ("x", "A better")]
    assert table[0]["change"] == pytest.approx(0.5)
    summary = comparison_summary(table)
    assert (summary["B better"], summary["A better"], summary["same"]) == (1, 1, 1)
    assert summary["mean change"] == pytest.approx((0.5 + 0.005 - 0.3) / 3, abs=1e-6)
    with pytest.raises(UNetDemoError, match="no image id in common"):
        compare_runs(a, [{"id": "w", "dice": 1.0}])

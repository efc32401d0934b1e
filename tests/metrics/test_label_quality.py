"""Score definitions on hand-made data: annotation quality, self-confidence, duplicates, uniqueness."""

from __future__ import annotations

import numpy as np
import pytest

from metrics import registry
from metrics.label_quality import (
    annotation_quality,
    embedding_near_duplicates,
    self_confidence,
    uniqueness,
)


def two_blobs(n_per: int = 40, d: int = 8, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    a = rng.normal(size=(n_per, d)) + 4.0 * np.eye(d)[0]
    b = rng.normal(size=(n_per, d)) - 4.0 * np.eye(d)[0]
    return np.vstack([a, b]).astype(np.float32), np.array([7] * n_per + [9] * n_per)


def test_annotation_quality_is_the_share_of_same_class_neighbours() -> None:
    labels = np.array(["cat", "cat", "dog", "cat", "dog"])
    neighbours = np.array([[1, 3, 2], [0, 3, 4], [4, 0, 1], [0, 1, -1], [-1, -1, -1]])
    scores = annotation_quality(labels, neighbours)
    np.testing.assert_allclose(scores[:4], [2 / 3, 2 / 3, 1 / 3, 1.0])
    assert np.isnan(scores[4])  # no neighbour: cannot be computed


def test_self_confidence_flags_the_flipped_label() -> None:
    x, labels = two_blobs()
    labels[3] = 9  # lies in blob 7
    result = self_confidence(x, labels, n_splits=5, seed=0)
    assert int(np.argmin(result.confidence)) == 3
    assert result.confidence[3] < 0.2
    assert result.suggested_class[3] == 7 and result.disagrees[3]
    assert result.suggested_probability[3] == pytest.approx(1 - result.confidence[3])
    others = np.delete(np.arange(len(labels)), 3)
    assert np.median(result.confidence[others]) > 0.7  # soft: LOGREG_C regularises strongly
    assert (result.suggested_class[others] == labels[others]).mean() > 0.95
    assert ((result.confidence >= 0) & (result.confidence <= 1)).all()


def test_self_confidence_small_and_single_member_classes() -> None:
    x, labels = two_blobs(n_per=20)
    labels = labels.astype(object)
    labels[:3] = "rare"  # 3 members < 5 splits: still estimated
    labels[25] = "alone"  # 1 member: cannot be learned from the others
    result = self_confidence(x, labels, n_splits=5, seed=0)
    assert np.isnan(result.confidence[25])
    assert np.isfinite(np.delete(result.confidence, 25)).all()
    assert set(result.suggested_class) <= {"rare", "alone", 7, 9}


def test_self_confidence_one_class_is_certain() -> None:
    x, _ = two_blobs(n_per=5)
    result = self_confidence(x, np.zeros(len(x), dtype=int))
    np.testing.assert_allclose(result.confidence, 1.0)
    assert not result.disagrees.any()


def test_near_duplicate_groups_are_transitive() -> None:
    base = np.eye(4, dtype=np.float32)
    chain_step = np.array([0.0, 0.15, 0, 0], dtype=np.float32)
    vectors = np.vstack([base[0], base[0] + chain_step, base[0] + 2 * chain_step, base[2], base[3], base[2]])
    # cos(v0, v1) = 0.989 and cos(v1, v2) = 0.990 link, cos(v0, v2) = 0.958 alone would not at radius 0.02
    groups = embedding_near_duplicates(vectors, radius=0.02)
    assert groups.tolist() == [0, 0, 0, 1, -1, 1]


def test_near_duplicates_none_when_all_differ() -> None:
    assert (embedding_near_duplicates(np.eye(5, dtype=np.float32), radius=0.1) == -1).all()


def test_uniqueness_is_one_minus_nearest_similarity() -> None:
    vectors = np.array([[1, 0, 0], [1, 0, 0], [0, 1, 0], [0, 1, 1]], dtype=np.float32)
    scores = uniqueness(vectors)
    np.testing.assert_allclose(scores, [0.0, 0.0, 1 - np.sqrt(0.5), 1 - np.sqrt(0.5)], atol=1e-6)
    np.testing.assert_allclose(
        uniqueness(knn_similarities=np.array([[0.25, 0.1], [-0.5, -0.6]])), [0.75, 1.0]
    )
    assert uniqueness(np.ones((1, 3), dtype=np.float32)).tolist() == [1.0]


def test_specs_registered_for_the_app() -> None:
    quality = registry.get("annotation_quality")
    assert (quality.level, quality.low, quality.high, quality.direction) == ("object", 0, 1, "higher_better")
    confidence = registry.get("label_confidence")
    assert (confidence.level, confidence.direction) == ("object", "higher_better")
    unique = registry.get("image_uniqueness")
    assert (unique.level, unique.low, unique.high, unique.direction) == ("image", 0, 1, "neutral")

"""Label-error scores from embeddings: which objects look like a different class than they carry.

Two complementary scores, both in [0, 1], higher = label more plausible:

* ``annotation_quality`` (Encord Active's definition): fraction of an object's k nearest neighbours
  in embedding space (itself excluded) that carry the same class. Cheap, local, no training.
* ``label_confidence`` (cleanlab's self-confidence): out-of-fold probability of the given class from
  a logistic regression cross-validated on the embeddings. Global: uses the whole class structure.

Plus two image-level helpers on embeddings: near-duplicate groups and uniqueness.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from metrics.registry import describe_score

DEFAULT_K = 10  # Encord Active's neighbourhood size for annotation quality
DEFAULT_SPLITS = 5
LOGREG_C = 0.1  # on standardised features; stronger regularisation ranked label errors better here
MAX_CV_DIMS = 256  # wider embeddings are PCA-reduced first: 5-fold fits stay seconds, not minutes
EMBEDDING_COSINE_RADIUS = 0.02  # cosine distance; augmented copies of one photo fall well inside

ANNOTATION_QUALITY = describe_score(
    "annotation_quality",
    "object",
    "label_quality",
    "higher_better",
    f"Share of the object's {DEFAULT_K} nearest neighbours (MobileNetV2 crop embeddings, cosine) that carry "
    "the same class; low values suggest a wrong label.",
)
LABEL_CONFIDENCE = describe_score(
    "label_confidence",
    "object",
    "label_quality",
    "higher_better",
    "Out-of-fold probability of the given class from a logistic regression cross-validated on crop "
    "embeddings (self-confidence); low values suggest a wrong label.",
)
IMAGE_UNIQUENESS = describe_score(
    "image_uniqueness",
    "image",
    "embeddings",
    "neutral",
    "1 − cosine similarity of the image's embedding to its most similar other image: near 0 for "
    "near duplicates, high for images unlike any other.",
)


def annotation_quality(labels: np.ndarray, knn_indices: np.ndarray) -> np.ndarray:
    """Fraction of each row's neighbours (``knn_indices``, self excluded, -1 = none) sharing its label.

    Rows without any neighbour get NaN (cannot be computed).
    """
    labels = np.asarray(labels)
    idx = np.asarray(knn_indices, dtype=np.int64)
    valid = idx >= 0
    same = (labels[np.where(valid, idx, 0)] == labels[:, None]) & valid
    counts = valid.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(counts > 0, same.sum(axis=1) / counts, np.nan)


@dataclass(frozen=True)
class LabelConfidence:
    """Per-object outcome of the cross-validated classifier (arrays aligned with the input)."""

    confidence: np.ndarray  # P(given class), NaN where the class has a single member
    suggested_class: np.ndarray  # most likely class (equals the given label when the model agrees)
    suggested_probability: np.ndarray  # P(suggested_class)
    probabilities: np.ndarray | None = None  # (rows, classes) out-of-fold, columns in ``classes`` order
    classes: np.ndarray | None = None

    @property
    def disagrees(self) -> np.ndarray:
        """True where the classifier prefers another class than the given one."""
        return self.suggested_probability > np.nan_to_num(self.confidence, nan=-1.0)


def _features_for_cv(embeddings: np.ndarray, seed: int) -> np.ndarray:
    from sklearn.decomposition import PCA
    from sklearn.preprocessing import StandardScaler

    x = np.asarray(embeddings, dtype=np.float32)
    if x.shape[1] > MAX_CV_DIMS and len(x) > MAX_CV_DIMS:
        # Unsupervised, so fitting it on all rows leaks no label into the out-of-fold estimate.
        x = PCA(n_components=MAX_CV_DIMS, random_state=seed).fit_transform(x)
    return StandardScaler().fit_transform(x).astype(np.float32)


def self_confidence(
    embeddings: np.ndarray, labels: np.ndarray, n_splits: int = DEFAULT_SPLITS, seed: int = 0
) -> LabelConfidence:
    """Out-of-fold predicted probability of each object's given class.

    Stratified folds keep every class with ≥ 2 members present in each training split as far as
    possible; a class with fewer than ``n_splits`` members is spread over fewer folds (sklearn warns,
    harmlessly). A class with one member cannot be learned from the others: its confidence is NaN.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold

    labels = np.asarray(labels)
    first_seen = dict.fromkeys(labels.tolist())  # any hashable labels, even mixed types
    code = {label: i for i, label in enumerate(first_seen)}
    y = np.fromiter((code[label] for label in labels.tolist()), dtype=np.int64, count=len(labels))
    classes = np.empty(len(code), dtype=labels.dtype)
    classes[:] = list(first_seen)
    n = len(y)
    probabilities = np.zeros((n, len(classes)), dtype=np.float64)
    if len(classes) < 2:
        probabilities[:, 0] = 1.0
    else:
        x = _features_for_cv(embeddings, seed)
        splits = max(2, min(n_splits, n))
        folds = StratifiedKFold(n_splits=splits, shuffle=True, random_state=seed)
        import warnings

        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="The least populated class")
            fold_list = list(folds.split(x, y))
        for train, test in fold_list:
            present = np.unique(y[train])
            if len(present) == 1:
                probabilities[np.ix_(test, present)] = 1.0
                continue
            model = LogisticRegression(C=LOGREG_C, max_iter=2000)
            model.fit(x[train], y[train])
            probabilities[np.ix_(test, model.classes_)] = model.predict_proba(x[test])
    rows = np.arange(n)
    confidence = probabilities[rows, y].astype(np.float64)
    class_sizes = np.bincount(y, minlength=len(classes))
    confidence[class_sizes[y] < 2] = np.nan
    best = probabilities.argmax(axis=1)
    return LabelConfidence(
        confidence=confidence,
        suggested_class=classes[best],
        suggested_probability=probabilities[rows, best],
        probabilities=probabilities,
        classes=classes,
    )


def _similar_pairs(vectors: np.ndarray, threshold: float, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Pairs (i, j) with cosine similarity ≥ threshold: all of them exactly below the kNN size limit,
    else those among each row's k approximate nearest neighbours."""
    from metrics.knn import BLOCK_BYTES, EXACT_MAX_ROWS, knn, normalise_rows

    n = len(vectors)
    if n > EXACT_MAX_ROWS:
        idx, sims = knn(vectors, k)
        rows, cols = np.nonzero(sims >= threshold)
        return rows, idx[rows, cols]
    x = normalise_rows(vectors)
    block = max(1, BLOCK_BYTES // (4 * max(n, 1)))
    firsts, seconds = [], []
    for start in range(0, n, block):
        sims = x[start : start + block] @ x.T
        rows, cols = np.nonzero(sims >= threshold)
        rows = rows + start
        keep = cols > rows
        firsts.append(rows[keep])
        seconds.append(cols[keep])
    if not firsts:
        return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.int64)
    return np.concatenate(firsts), np.concatenate(seconds)


def embedding_near_duplicates(
    vectors: np.ndarray, radius: float = EMBEDDING_COSINE_RADIUS, k: int = DEFAULT_K
) -> np.ndarray:
    """Group id per row (-1 = no near duplicate): rows linked by cosine similarity ≥ 1 − radius,
    joined transitively (connected components). Groups are numbered 0, 1, … in order of their first row."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    n = len(vectors)
    first, second = _similar_pairs(vectors, 1.0 - radius, k)
    graph = coo_matrix((np.ones(len(first), dtype=np.int8), (first, second)), shape=(n, n))
    _, component = connected_components(graph, directed=False)  # same partition as union-find
    sizes = np.bincount(component, minlength=n)
    groups = np.full(n, -1, dtype=np.int64)
    numbering: dict[int, int] = {}
    for i in np.nonzero(sizes[component] > 1)[0]:
        groups[i] = numbering.setdefault(int(component[i]), len(numbering))
    return groups


def uniqueness(vectors: np.ndarray | None = None, knn_similarities: np.ndarray | None = None) -> np.ndarray:
    """1 − cosine similarity to the most similar other row, clipped to [0, 1].

    Pass ``knn_similarities`` (from ``metrics.knn.knn``, best first) to reuse a neighbour search.
    A lone row (nothing to compare with) gets 1.
    """
    if knn_similarities is None:
        from metrics.knn import knn

        if vectors is None:
            raise ValueError("give vectors or knn_similarities")
        _, knn_similarities = knn(vectors, 1)
    sims = np.asarray(knn_similarities, dtype=np.float64)
    if sims.shape[1] == 0:
        return np.ones(len(sims))
    nearest = np.where(np.isfinite(sims[:, 0]), sims[:, 0], 0.0)
    return np.clip(1.0 - nearest, 0.0, 1.0)

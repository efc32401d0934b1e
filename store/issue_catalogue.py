"""The one list of issues cocolens detects: name, level, rule, threshold, direction, reason, help.

Every consumer derives from :data:`CATALOGUE` (as cleanvision keeps each issue type and its default
threshold in one issue manager): ``store.report.issue_counts`` counts them, ``store.gallery_queries``
and ``store.filters`` select their items through :func:`condition_sql`, and the Summary and
Filter & export pages list them. A new issue is one entry here; nothing else retypes its name.

Four kinds of rule, by where the evidence is stored:

* ``metric``: a stored metric past a fixed threshold (``direction`` says which side is the issue);
* ``duplicates``: membership in a group of the ``duplicates`` table of one ``kind``;
* ``status``: the image record's ``status`` (set at import);
* ``small_class``: objects of a class with fewer than :data:`SMALL_CLASS_OBJECTS` objects in its dataset.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

Level = Literal["image", "object"]
Rule = Literal["metric", "duplicates", "status", "small_class"]
Direction = Literal["below", "above"]

# Classes with fewer objects than this are under-represented: too few to learn or to evaluate a class
# (COCO's own rarest classes have hundreds; ten is where a per-class AP stops meaning anything).
SMALL_CLASS_OBJECTS = 10


@dataclass(frozen=True)
class Issue:
    """One detected problem: what it selects, how it is counted and why its threshold is where it is.

    ``value`` is the duplicates ``kind`` or the image ``status`` for those rules; ``metric``,
    ``threshold`` and ``direction`` are set for metric rules only (the issue is the metric strictly
    below / above the threshold). ``counts`` says what the Summary counts: the items, or for grouped
    duplicates the groups. ``page`` is the page that reviews it.
    """

    name: str
    level: Level
    rule: Rule
    reason: str  # why this rule and threshold (shown in the gallery banner of non-metric issues)
    help: str = ""  # the Summary tooltip of non-metric issues (metric ones explain their metric)
    metric: str | None = None
    threshold: float | None = None
    direction: Direction | None = None
    value: str | None = None
    counts: Literal["items", "groups"] = "items"
    page: str = "data_quality"

    @property
    def operator(self) -> str:
        """'<' when the issue is its metric falling below the threshold, '>' when rising above it."""
        return "<" if self.direction == "below" else ">"

    @property
    def gallery_link(self) -> dict[str, str]:
        """Query parameters of the page that reviews the issue: a metric issue's gallery opens on the
        metric it counts, the most extreme items first; the label-error queue takes none."""
        if self.page == "label_errors":
            return {}
        link = {"issue": self.name}
        if self.rule == "metric" and self.metric:
            order = "asc" if self.direction == "below" else "desc"
            link.update(metric=self.metric, sort=self.metric, order=order)
        return link

    @property
    def rule_text(self) -> str:
        """One line saying what the issue selects (shown above its gallery and in tooltips)."""
        if self.rule == "metric":
            return f"`{self.metric}` {self.direction} {self.threshold:g}"
        return self.reason


def _metric(
    name: str, level: Level, metric: str, direction: Direction, threshold: float, reason: str, page: str = ""
) -> Issue:
    """A metric issue; reviewed on Data quality (image) or Label quality (object) unless ``page`` says."""
    page = page or ("data_quality" if level == "image" else "label_quality")
    return Issue(name, level, "metric", reason, "", metric, threshold, direction, page=page)


CATALOGUE: tuple[Issue, ...] = (
    Issue(
        "exact_duplicate_images", "image", "duplicates", value="exact",
        reason="images whose decoded pixels equal another image's (grouped)",
        help="Images whose decoded pixels are identical to another image's.",
    ),
    Issue(
        "near_duplicate_groups", "image", "duplicates", value="near", counts="groups",
        reason="images in a near-duplicate group (perceptual hash), shown group by group",
        help="Groups of images whose perceptual hashes are within a small Hamming radius.",
    ),
    Issue(
        "embedding_near_duplicate_groups", "image", "duplicates", value="embedding", counts="groups",
        reason="images whose embeddings are nearly identical (cosine), shown group by group",
        help="Groups of images whose MobileNetV2 embeddings are within cosine distance {embedding_radius:g} "
        "(computed by `cocolens metrics --embeddings`).",
    ),
    Issue(
        "missing_images", "image", "status", value="missing",
        reason="image files not found at import",
        help="Images listed in the annotations but not found on disk; geometry metrics still computed.",
    ),
    Issue(
        "unreadable_images", "image", "status", value="unreadable",
        reason="image files that could not be decoded",
        help="Files that exist but could not be decoded (corrupt, truncated, unsupported).",
    ),
    # name, level, metric, direction, threshold, why the threshold is there
    _metric("dark_images", "image", "dark_score", "above", 0.5,
            "1 − the 99th brightness percentile above 0.5: at least 99 % of the pixels darker than mid-grey"),
    _metric("light_images", "image", "light_score", "above", 0.5,
            "the 5th brightness percentile above 0.5: at least 95 % of the pixels brighter than mid-grey"),
    _metric("blurry_images", "image", "sharpness", "below", 0.1, "bounded Laplacian variance below 0.1 ≈ visibly soft"),
    _metric("low_information_images", "image", "entropy", "below", 4.0, "under 4 bits of the 8 possible"),
    _metric("tiny_objects", "object", "object_area_relative", "below", 0.0001, "under 0.01 % of the image"),
    _metric("invalid_geometry_objects", "object", "invalid_geometry", "above", 0.5, "the flag is 1"),
    _metric("likely_label_errors", "object", "label_issue", "above", 0.5,
            "the learned label-error score: more likely wrong than not", page="label_errors"),
    _metric("images_missing_labels", "image", "missing_label", "above", 0.5,
            "an unlabelled object is more likely than not", page="label_errors"),
    Issue(
        "classes_under_10_objects", "object", "small_class", page="label_quality",
        reason=f"objects of classes with fewer than {SMALL_CLASS_OBJECTS} objects in their dataset",
        help=f"Classes with fewer than {SMALL_CLASS_OBJECTS} labelled objects: too few to learn or to evaluate.",
    ),
)  # fmt: skip

BY_NAME: dict[str, Issue] = {issue.name: issue for issue in CATALOGUE}
NAMES: tuple[str, ...] = tuple(BY_NAME)
IMAGE_ISSUES: frozenset[str] = frozenset(i.name for i in CATALOGUE if i.level == "image")
OBJECT_ISSUES: frozenset[str] = frozenset(i.name for i in CATALOGUE if i.level == "object")
SMALL_CLASS_ISSUE = next(i.name for i in CATALOGUE if i.rule == "small_class")


def get(name: str) -> Issue:
    """The issue called ``name``; KeyError naming it when there is none."""
    try:
        return BY_NAME[name]
    except KeyError:
        raise KeyError(f"unknown issue {name!r}") from None


def summary_help(issue: Issue) -> str:
    """The Summary tooltip: for a metric issue the rule counted and the metric's own meaning."""
    if issue.rule != "metric":
        from metrics.label_quality import EMBEDDING_COSINE_RADIUS

        return issue.help.format(embedding_radius=EMBEDDING_COSINE_RADIUS)
    from metrics import registry

    specs = registry.specs_by_name()
    meaning = specs[issue.metric].help_text() if issue.metric in specs else ""
    return f"Counted: `{issue.metric}` {issue.direction} {issue.threshold:g}. " + meaning


def condition_sql(issue: Issue, alias: str, metric_source: str = "metric_values") -> tuple[str, list[Any]]:
    """A SQL condition true for the issue's items, on ``alias`` (a row of ``images`` or ``objects``).

    Values are ``?`` parameters (returned in order); ``metric_source`` is any FROM-able source of
    metric rows (the ``metric_values`` view, or a ``read_parquet`` of the one metric's files).
    """
    if issue.rule == "status":
        return f"{alias}.status = ?", [issue.value]
    if issue.rule == "duplicates":
        return (
            f"EXISTS (SELECT 1 FROM duplicates d WHERE d.kind = ? AND d.dataset = {alias}.dataset"
            f" AND d.image_id = {alias}.image_id)",
            [issue.value],
        )
    if issue.rule == "small_class":
        return (
            f"({alias}.dataset, {alias}.category_id) IN (SELECT dataset, category_id FROM objects"
            " GROUP BY dataset, category_id HAVING count(*) < ?)",
            [SMALL_CLASS_OBJECTS],
        )
    object_cond = "m.object_id IS NULL" if issue.level == "image" else f"m.object_id = {alias}.object_id"
    return (
        f"EXISTS (SELECT 1 FROM {metric_source} m WHERE m.dataset = {alias}.dataset"
        f" AND m.image_id = {alias}.image_id AND {object_cond} AND m.metric = ? AND m.value {issue.operator} ?)",
        [issue.metric, float(issue.threshold or 0.0)],
    )

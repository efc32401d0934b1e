"""Model quality: the 12 COCO stats, PR curves, per-class table, confusion matrix, FP / FN reasons,
and one model against another on the same dataset. Everything threshold-dependent is looked up for
the chosen IoU threshold from what the predictions import stored.
"""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from metrics.error_reasons import FN_MEANINGS, FP_MEANINGS
from pages.gallery import DATASET_COLOURS
from pages.model_common import ModelChoice, pick_model
from pages.state import init_choice, init_state, reader, set_query
from store import model_queries as mq
from store.model_tables import compare_tables, per_class_table


def _stats_section(stats: dict[str, float]) -> None:
    st.subheader("COCO stats at a glance")
    for row in (mq.STATS[:6], mq.STATS[6:]):
        columns = st.columns(6)
        for column, name in zip(columns, row, strict=True):
            value = stats.get(name, -1)
            column.metric(
                name, "n/a" if value is None or value < 0 else f"{value:.3f}", help=mq.STAT_MEANINGS[name]
            )
            column.caption(mq.STAT_MEANINGS[name])
    st.caption(
        "COCO's 12 summary numbers, in [0, 1], higher is better; −1 / n/a: no labels of that size. "
        "AP and AR average over the IoU thresholds 0.50:0.05:0.95, so they do not follow the threshold picked above."
    )


def pr_figure(evaluation: dict, tag: str, classes: list[int], names: dict[int, str]) -> go.Figure:
    """Precision against recall (101 COCO recall points) at one IoU threshold: all classes and chosen ones."""
    curves = evaluation["pr_curves"][tag]
    recall = evaluation["recall_points"]
    fig = go.Figure()

    def clean(values: list[float]) -> list[float | None]:
        return [None if v is None or v < 0 else v for v in values]

    for index, cat in enumerate(classes):
        values = curves.get(str(cat))
        if values is None:
            continue
        fig.add_scatter(
            x=recall,
            y=clean(values),
            mode="lines",
            name=names.get(cat, str(cat)),
            line=dict(width=1.5, color=DATASET_COLOURS[index % len(DATASET_COLOURS)]),
        )
    fig.add_scatter(
        x=recall, y=clean(curves["all"]), mode="lines", name="all classes", line=dict(width=4, color="#222")
    )
    fig.update_layout(
        height=420,
        margin=dict(l=10, r=10, t=30, b=10),
        xaxis_title="recall",
        yaxis_title="precision (interpolated, COCO)",
        xaxis_range=[0, 1],
        yaxis_range=[0, 1.02],
        legend=dict(orientation="h", yanchor="bottom", y=1.02, x=0),
    )
    return fig


def confusion_figure(confusion: dict, normalise: bool) -> go.Figure:
    labels = confusion["labels"]
    counts = pd.DataFrame(confusion["counts"], index=labels, columns=labels)
    shown = counts.div(counts.sum(axis=1).where(lambda s: s > 0), axis=0) if normalise else counts
    fig = go.Figure(
        go.Heatmap(
            z=shown.to_numpy(),
            x=[f"pred: {c}" for c in labels],
            y=[f"label: {c}" for c in labels],
            colorscale="Blues",
            text=counts.to_numpy(),
            texttemplate="%{text}" if len(labels) <= 25 else None,
            customdata=counts.to_numpy(),
            hovertemplate="%{y} → %{x}<br>%{customdata} items<extra></extra>",
            colorbar_title="row share" if normalise else "count",
        )
    )
    side = min(900, 160 + 28 * len(labels))
    fig.update_layout(height=side, margin=dict(l=10, r=10, t=30, b=10), yaxis_autorange="reversed")
    return fig


def _reason_figure(counts: pd.DataFrame, meanings: dict[str, str], colour: str) -> go.Figure:
    fig = go.Figure(
        go.Bar(
            x=counts["count"],
            y=counts["reason"],
            orientation="h",
            marker_color=colour,
            text=counts["count"],
            customdata=[meanings[r] for r in counts["reason"]],
            hovertemplate="%{y}: %{x}<br>%{customdata}<extra></extra>",
        )
    )
    fig.update_layout(
        height=60 + 40 * len(counts),
        margin=dict(l=10, r=10, t=10, b=10),
        yaxis_autorange="reversed",
        xaxis_title="count",
    )
    return fig


def _reasons_section(choice: ModelChoice) -> None:
    project_reader = reader()
    left, right = st.columns(2)
    fp = mq.reason_counts(project_reader, choice.model, choice.iou_type, choice.tag, "fp")
    fn = mq.reason_counts(project_reader, choice.model, choice.iou_type, choice.tag, "fn")
    with left:
        st.markdown(f"**Why false positives** ({int(fp['count'].sum()):,} at IoU {choice.threshold:.2f})")
        st.plotly_chart(_reason_figure(fp, FP_MEANINGS, "#d62728"), key="mq_fp_reasons", width="stretch")
        st.caption(" · ".join(f"**{k}**: {v}" for k, v in FP_MEANINGS.items()))
    with right:
        st.markdown(f"**Why labels were missed** ({int(fn['count'].sum()):,} false negatives)")
        st.plotly_chart(_reason_figure(fn, FN_MEANINGS, "#9467bd"), key="mq_fn_reasons", width="stretch")
        st.caption(" · ".join(f"**{k}**: {v}" for k, v in FN_MEANINGS.items()))


def _compare_section(choice: ModelChoice, evaluation: dict) -> None:
    st.subheader("Model vs model")
    models = mq.models_table(reader())
    others = models[
        (models["dataset"] == choice.dataset)
        & (models["model"] != choice.model)
        & models["iou_types"].map(lambda types: choice.iou_type in types)
    ]["model"].tolist()
    if not others:
        st.info(f"Only one model on {choice.dataset} ({choice.iou_type}): import another one to compare.")
        return
    init_choice("mq_other", "vs", str, others, others[0])
    other = st.selectbox(
        f"Compare {choice.model} (A) with (B)", others, key="mq_other", help="Models on the same dataset."
    )
    set_query(vs=other)
    second = mq.load_eval(reader(), other)[choice.iou_type]
    stats, classes = compare_tables(evaluation, second)
    left, right = st.columns([1, 1])
    left.dataframe(
        stats[["stat", "A", "B", "B − A", "meaning"]].rename(
            columns={"A": f"A: {choice.model}", "B": f"B: {other}"}
        ),
        hide_index=True,
        width="stretch",
        height=38 + 35 * len(stats),
        column_config={
            f"A: {choice.model}": st.column_config.NumberColumn(format="%.3f"),
            f"B: {other}": st.column_config.NumberColumn(format="%.3f"),
            "B − A": st.column_config.NumberColumn(format="%+.3f"),
        },
    )
    fig = go.Figure(
        go.Bar(
            x=classes["ΔAP (B − A)"],
            y=classes["category"],
            orientation="h",
            marker_color=["#2ca02c" if v >= 0 else "#d62728" for v in classes["ΔAP (B − A)"].fillna(0)],
            hovertemplate="%{y}: ΔAP %{x:.3f}<extra></extra>",
        )
    )
    fig.update_layout(
        height=min(900, 80 + 24 * len(classes)),
        margin=dict(l=10, r=10, t=30, b=10),
        xaxis_title=f"AP of {other} − AP of {choice.model} (IoU 0.50:0.95)",
        yaxis_autorange="reversed",
    )
    right.plotly_chart(fig, key="mq_delta", width="stretch")
    right.dataframe(classes, hide_index=True, width="stretch")


def main() -> None:
    st.title("Model quality")
    choice = pick_model("mq")
    if choice is None:
        return
    project_reader = reader()
    evaluation = mq.load_eval(project_reader, choice.model)[choice.iou_type]
    _stats_section(evaluation["stats"])

    categories = mq.categories_of(project_reader, choice.dataset)
    names = dict(zip(categories["category_id"].astype(int), categories["name"], strict=True))
    outcomes = mq.class_outcomes(project_reader, choice.model, choice.iou_type, choice.tag)
    table = per_class_table(evaluation, outcomes)

    st.subheader(f"Precision–recall at IoU {choice.threshold:.2f}")
    by_objects = table.sort_values("objects", ascending=False)["category_id"].astype(int).tolist()
    init_state("mq_pr_classes", "pr", lambda raw: [int(v) for v in raw.split(",") if v], by_objects[:5])
    st.session_state["mq_pr_classes"] = [c for c in st.session_state["mq_pr_classes"] if c in names]
    chosen = st.multiselect(
        "Classes on the chart", by_objects, key="mq_pr_classes", format_func=lambda c: names.get(c, str(c))
    )
    set_query(pr=",".join(str(c) for c in chosen) if chosen else None)
    st.plotly_chart(pr_figure(evaluation, choice.tag, chosen, names), key="mq_pr", width="stretch")
    st.caption(
        "Precision (share of predictions that are right) against recall (share of labels found) as the score "
        "threshold falls; the area under a curve is that class's AP at this IoU. Bold: all classes."
    )

    st.subheader(f"Per class at IoU {choice.threshold:.2f}")
    total = table[["tp", "fp", "fn"]].sum()
    st.caption(
        f"{int(total['tp']):,} true positives, {int(total['fp']):,} false positives, {int(total['fn']):,} missed labels. "
        "AP / AP50 / AP75 / AR100 as in COCO (AP averaged over IoU 0.50:0.95); TP / FP / FN, precision and "
        "recall at the chosen threshold. Worst AP first."
    )
    st.dataframe(
        table,
        hide_index=True,
        width="stretch",
        column_config={
            name: st.column_config.NumberColumn(format="%.3f", help=mq.STAT_MEANINGS.get(name, name))
            for name in ("AP", "AP50", "AP75", "AR100", "precision", "recall")
        },
        key="mq_table",
    )

    st.subheader(f"Confusion matrix at IoU {choice.threshold:.2f}")
    normalise = st.toggle("Show row shares (of each label class)", key="mq_norm")
    st.plotly_chart(
        confusion_figure(evaluation["confusion"][choice.tag], normalise), key="mq_confusion", width="stretch"
    )
    st.caption(
        "Rows: the label's class; columns: the prediction's class. The diagonal holds true positives; "
        "the background column counts labels no prediction found, the background row predictions that match no label."
    )
    _reasons_section(choice)
    _compare_section(choice, evaluation)


main()

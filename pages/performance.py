"""Performance by metric: which image and object metrics go with the model's mistakes, and how
precision and the miss rate change across a metric's range.

Precision side, per prediction: is it a true positive (or IoU × TP). Recall side, per label: was it
missed. A prediction's image metrics are those of its image; its object metrics those of its
object — the label it matched, else the label behind its false-positive reason; background false
positives have none (see :mod:`store.model_queries`). Results are cached per model, IoU type,
threshold and the modification times of the model's and dataset's files.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import streamlit as st
from plotly.subplots import make_subplots

from metrics import registry
from metrics.importance import N_PERMUTATIONS, SIGNIFICANCE_LEVEL
from pages.gallery import init_state, metric_help
from pages.model_common import ModelChoice, pick_model
from pages.state import init_choice, reader, set_query
from store import model_queries as mq
from store import performance_tables as pt
from store.queries import ProjectReader

OUTCOMES = {
    "tp": "precision: the prediction is a true positive",
    "iou_tp": "precision: IoU × TP (also rewards tight boxes)",
    "missed": "recall: the label is missed",
}


@st.cache_data(show_spinner="Collecting predictions, labels and their metrics …", max_entries=16)
def frames(
    _reader: ProjectReader, root: str, model: str, iou_type: str, tag: str, signature: tuple
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(one row per prediction, one row per label) with their metric columns."""
    return (
        mq.prediction_frame(_reader, model, iou_type, tag),
        mq.object_frame(_reader, model, iou_type, tag),
    )


@st.cache_data(
    show_spinner="Ranking metrics (mutual information, Spearman, 200 permutations) …", max_entries=16
)
def importance(
    _reader: ProjectReader, root: str, model: str, iou_type: str, tag: str, signature: tuple
) -> dict[str, pd.DataFrame]:
    """store.performance_tables.importance_tables, cached per model, IoU type, threshold and file signature."""
    return pt.importance_tables(*frames(_reader, root, model, iou_type, tag, signature))


def _spec_text(name: str) -> str:
    spec = registry.specs_by_name().get(name)
    return f"{spec.range_text}; {spec.direction_text}" if spec else "custom metric"


SIGNIFICANCE_HELP = (
    f"**Significance.** A ranking alone shows noise as a ranking: a model whose errors are random still gets "
    f"an ordered list. So each metric is also tested against a permutation null: the outcome is shuffled "
    f"{N_PERMUTATIONS} times (seeded) and the metric's dependence on it (mutual information of the binned metric) "
    f"recomputed each time. The p-value is family-wise over all metrics of the chart (Westfall–Young max-T, with "
    f"the +1 correction: (1 + permutations at least as extreme) / (1 + {N_PERMUTATIONS}), never below "
    f"{1 / (1 + N_PERMUTATIONS):.3f}), so with random errors there is at most about a "
    f"{SIGNIFICANCE_LEVEL:.0%} chance that any bar is coloured. **Grey bars: p ≥ {SIGNIFICANCE_LEVEL} — not "
    f"distinguishable from noise; do not read their order.**"
)
NOT_SIGNIFICANT = "#c8c8c8"


def importance_figure(table: pd.DataFrame, outcome: str) -> go.Figure:
    """Metrics ranked by mutual information with the outcome; colour = Spearman (sign = direction) where the
    dependence is significant, grey where it is not (p ≥ SIGNIFICANCE_LEVEL)."""
    shown = table.dropna(subset=["mutual_information"]).sort_values("mutual_information")
    significant = shown["significant"].fillna(False).astype(bool).to_numpy()
    rho = shown["spearman"].fillna(0).to_numpy()
    labels = [
        (f"ρ {r:+.2f}" if pd.notna(r) else "") + ("" if sig else f" · n.s. (p {p:.2f})")
        for r, sig, p in zip(shown["spearman"], significant, shown["p_value"].fillna(1.0), strict=True)
    ]
    customdata = np.column_stack(
        [
            shown["spearman"].fillna(np.nan),
            shown["rows"],
            [
                registry.specs_by_name()[m].description if m in registry.specs_by_name() else ""
                for m in shown["metric"]
            ],
            [_spec_text(m) for m in shown["metric"]],
            shown["p_value"],
            np.where(significant, "significant", f"not significant (p ≥ {SIGNIFICANCE_LEVEL})"),
        ]
    )
    names = [f"{m} ({lvl})" for m, lvl in zip(shown["metric"], shown["level"], strict=True)]
    hover = (
        "%{y}<br>MI %{x:.4f} nats · Spearman %{customdata[0]:.3f} · %{customdata[1]} rows"
        "<br>p = %{customdata[4]:.3f}: %{customdata[5]}<br>%{customdata[2]}<br>%{customdata[3]}<extra></extra>"
    )
    fig = go.Figure()
    for keep, name in (
        (significant, "significant"),
        (~significant, f"not significant (p ≥ {SIGNIFICANCE_LEVEL})"),
    ):
        if not keep.any():
            continue
        marker = (
            dict(
                color=rho[keep],
                colorscale="RdBu",
                cmin=-1,
                cmax=1,
                colorbar=dict(title="Spearman", thickness=12),
            )
            if name == "significant"
            else dict(color=NOT_SIGNIFICANT)
        )
        fig.add_bar(
            x=shown["mutual_information"].to_numpy()[keep],
            y=np.asarray(names)[keep],
            orientation="h",
            name=name,
            marker=marker,
            text=np.asarray(labels)[keep],
            textposition="outside",
            textfont=dict(color="#222222" if name == "significant" else "#999999"),
            cliponaxis=False,
            customdata=customdata[keep],
            hovertemplate=hover,
        )
    fig.update_layout(
        height=max(300, 80 + 22 * len(shown)),
        margin=dict(l=10, r=40, t=30, b=10),
        xaxis_title=f"mutual information with '{outcome}' (nats, ≥ 0)",
        xaxis_range=[0, max(float(shown["mutual_information"].max()), 1e-3) * 1.6],  # room for the labels
        yaxis=dict(categoryorder="array", categoryarray=names),  # one ranking across both traces
        title=dict(text=OUTCOMES[outcome], font_size=14),
        showlegend=bool(significant.any() and (~significant).any()),
        legend=dict(orientation="h", yanchor="top", y=-0.12, x=0),
        barmode="overlay",
    )
    return fig


def _importance_section(choice: ModelChoice, tables: dict[str, pd.DataFrame]) -> None:
    st.subheader("Which metrics go with the mistakes", help=SIGNIFICANCE_HELP)
    st.caption(
        "Mutual information (any dependence, also U-shaped; in nats, ≥ 0, higher = the metric tells more about "
        "the outcome) ranks the metrics; the colour and label give Spearman's ρ in [−1, 1] (direction of a monotone "
        "trend). Precision side: ρ > 0 means higher metric values go with more true positives. Recall side: ρ > 0 "
        f"means higher metric values go with more missed labels. **Grey bars are not significant** (p ≥ "
        f"{SIGNIFICANCE_LEVEL} against {N_PERMUTATIONS} permutations of the outcome, family-wise): their order is "
        "noise. Hover a bar for its p-value, the metric's meaning and range; the (?) beside the heading explains the test."
    )
    left, right = st.columns(2)
    with left:
        init_choice("pf_side", "side", str, ("tp", "iou_tp"), "tp")
        side = st.radio(
            "Precision outcome",
            ["tp", "iou_tp"],
            key="pf_side",
            horizontal=True,
            format_func=lambda o: {"tp": "TP", "iou_tp": "IoU × TP"}[o],
        )
        st.plotly_chart(importance_figure(tables[side], side), key="pf_importance_precision", width="stretch")
    with right:
        st.markdown("&nbsp;", unsafe_allow_html=True)
        st.plotly_chart(
            importance_figure(tables["missed"], "missed"), key="pf_importance_recall", width="stretch"
        )
    for outcome in (side, "missed"):
        if not tables[outcome]["significant"].any():
            st.info(
                f"No metric is significantly related to **{OUTCOMES[outcome]}** (every p ≥ {SIGNIFICANCE_LEVEL}): "
                "as far as these metrics tell, those errors look random."
            )
    set_query(side=side)
    combined = pt.combined_importance(tables, side)
    combined["meaning"] = combined["metric"].map(metric_help)
    st.dataframe(
        combined,
        hide_index=True,
        width="stretch",
        key="pf_importance_table",
        column_config={
            name: st.column_config.NumberColumn(format="%.4f")
            for name in ("MI (precision)", "ρ (precision)", "MI (recall)", "ρ (missed)")
        }
        | {
            name: st.column_config.NumberColumn(format="%.3f", help=SIGNIFICANCE_HELP)
            for name in ("p (precision)", "p (recall)")
        }
        | {"meaning": st.column_config.TextColumn(width="large")},
    )


def bins_figure(precision: pd.DataFrame, misses: pd.DataFrame, metric: str) -> go.Figure:
    fig = make_subplots(specs=[[{"secondary_y": True}]])
    for table, name, colour in (
        (precision, "precision (TP share of predictions)", "#1f77b4"),
        (misses, "FN rate (missed share of labels)", "#d62728"),
    ):
        if table.empty:
            continue
        centre = (table["low"] + table["high"]) / 2
        fig.add_scatter(
            x=centre,
            y=table["rate"],
            mode="lines+markers",
            name=name,
            line=dict(color=colour),
            error_y=dict(
                type="data",
                symmetric=False,
                array=table["ci_high"] - table["rate"],
                arrayminus=table["rate"] - table["ci_low"],
            ),
            customdata=np.column_stack(
                [table["low"], table["high"], table["count"], table["ci_low"], table["ci_high"]]
            ),
            hovertemplate=f"{metric} %{{customdata[0]:.4g}} – %{{customdata[1]:.4g}}<br>{name}: %{{y:.3f}} "
            "(95%: %{customdata[3]:.3f} – %{customdata[4]:.3f})<br>%{customdata[2]} items<extra></extra>",
            secondary_y=False,
        )
        fig.add_bar(
            x=centre,
            y=table["count"],
            width=(table["high"] - table["low"]) * 0.9,
            name=f"count ({name.split(' ')[0]})",
            marker_color=colour,
            opacity=0.15,
            secondary_y=True,
            hoverinfo="skip",
        )
    fig.update_layout(
        height=420,
        margin=dict(l=10, r=10, t=30, b=10),
        barmode="overlay",
        legend=dict(orientation="h", yanchor="bottom", y=1.02, x=0),
        xaxis_title=f"{metric} (quantile bins; points at bin centres)",
    )
    fig.update_yaxes(title_text="rate", range=[0, 1.05], secondary_y=False)
    fig.update_yaxes(title_text="items per bin", secondary_y=True, showgrid=False)
    return fig


def _bins_section(choice: ModelChoice, predictions: pd.DataFrame, objects: pd.DataFrame) -> None:
    st.subheader("Performance by metric")
    columns = sorted(set(pt.metric_columns(predictions)) | set(pt.metric_columns(objects)))
    if not columns:
        st.info("No metrics stored for this dataset.")
        return
    default = "object:object_area" if "object:object_area" in columns else columns[0]
    init_choice("pf_metric", "metric", str, columns, default)
    categories = mq.categories_of(reader(), choice.dataset)
    names = dict(zip(categories["category_id"].astype(int), categories["name"], strict=True))
    init_state("pf_bins", "bins", int, 10)
    init_choice("pf_class", "cls", int, (0, *names), 0)
    left, middle, right = st.columns([3, 1, 2])
    column = left.selectbox(
        "Metric",
        columns,
        key="pf_metric",
        format_func=lambda c: f"{c.split(':', 1)[1]} ({c.split(':', 1)[0]})",
        help=metric_help(st.session_state["pf_metric"].split(":", 1)[1]),
    )
    n_bins = middle.slider("Bins", 3, 20, key="pf_bins", help="Quantile bins: about as many items in each.")
    category = right.selectbox(
        "Class", [0, *names], key="pf_class", format_func=lambda c: "(all classes)" if c == 0 else names[c]
    )
    set_query(metric=column, bins=n_bins if n_bins != 10 else None, cls=category or None)
    metric = column.split(":", 1)[1]
    st.caption(f"**{metric}** — {metric_help(metric)}")
    precision, misses = pt.bins_table(predictions, objects, column, int(n_bins), category or None)
    if precision.empty and misses.empty:
        st.info(f"No values of `{metric}` for these predictions and labels.")
        return
    st.plotly_chart(bins_figure(precision, misses, metric), key="pf_bins_chart", width="stretch")
    st.caption(
        f"At IoU {choice.threshold:.2f}. Blue: share of predictions in the bin that are true positives; red: share "
        "of labels in the bin that were missed. Whiskers: 95% Wilson intervals (wide = few items). "
        + (
            "Object metrics of background false positives are unknown: they are left out of the blue curve."
            if column.startswith("object:")
            else ""
        )
    )
    table = pd.concat(
        [precision.assign(outcome="precision"), misses.assign(outcome="FN rate")], ignore_index=True
    )[["outcome", "bin", "low", "high", "count", "rate", "ci_low", "ci_high"]]
    st.dataframe(table, hide_index=True, width="stretch", key="pf_bins_table")


def main() -> None:
    st.title("Performance by metric")
    choice = pick_model("pf")
    if choice is None:
        return
    project_reader = reader()
    root = str(project_reader.project.root)
    signature = mq.model_signature(project_reader, choice.model)
    predictions, objects = frames(project_reader, root, choice.model, choice.iou_type, choice.tag, signature)
    if predictions.empty and objects.empty:
        st.info("This model has no counted predictions or labels.")
        return
    if not pt.metric_columns(predictions) and not pt.metric_columns(objects):
        st.info("No metrics stored for this dataset: run `cocolens import coco` with metrics first.")
        return
    tables = importance(project_reader, root, choice.model, choice.iou_type, choice.tag, signature)
    _importance_section(choice, tables)
    _bins_section(choice, predictions, objects)


main()

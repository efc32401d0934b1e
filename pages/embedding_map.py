"""The Embeddings page's pure parts: the scattergl map figure, which points a selection picked, and the
``like`` URL value. Kept out of the page file so they can be tested without running the page."""

from __future__ import annotations

import html
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from pages.gallery import DATASET_COLOURS

NO_VALUE_COLOUR = "#c8c8c8"


def parse_like(raw: str | None) -> tuple[str, int, int | None] | None:
    """``DATASET|IMAGE_ID[|OBJECT_ID]`` → key, or None when absent or malformed."""
    if not raw:
        return None
    parts = raw.split("|")
    try:
        if len(parts) == 2:
            return parts[0], int(parts[1]), None
        if len(parts) == 3:
            return parts[0], int(parts[1]), int(parts[2])
    except ValueError:
        return None
    return None


def like_text(dataset: str, image_id: int, object_id: int | None) -> str:
    return f"{dataset}|{int(image_id)}" + ("" if object_id is None else f"|{int(object_id)}")


def selected_rows(event: Any, trace_rows: list[np.ndarray]) -> np.ndarray:
    """Rows of the map's points picked by a lasso, box or click (traces map back to point rows)."""
    selection = event.get("selection") if isinstance(event, dict) else getattr(event, "selection", None)
    if not selection:
        return np.empty(0, dtype=np.int64)
    rows = []
    for point in selection.get("points") or []:
        curve, index = point.get("curve_number"), point.get("point_index", point.get("point_number"))
        if curve is None or index is None or not 0 <= int(curve) < len(trace_rows):
            continue
        if 0 <= int(index) < len(trace_rows[int(curve)]):
            rows.append(int(trace_rows[int(curve)][int(index)]))
    return np.unique(np.asarray(rows, dtype=np.int64))


def map_figure(
    points: pd.DataFrame, colour: pd.Series, colour_name: str, colours: dict[str, str] | None = None
) -> tuple[go.Figure, list[np.ndarray]]:
    """Scattergl of the map; categorical colours get a trace (and legend entry) each (``colours``:
    label → colour, e.g. the class colours of the pictures), numbers a colour scale.

    Returns the figure and, per trace, the point rows it draws (selection events name trace + index).
    """
    figure = go.Figure()
    trace_rows: list[np.ndarray] = []
    hover = (
        points["dataset"].astype(str)
        + " · image "
        + points["image_id"].astype(str)
        + np.where(points["object_id"].isna(), "", " · object " + points["object_id"].astype(str))
    )
    numeric = pd.api.types.is_numeric_dtype(colour)
    if numeric:
        values = colour.to_numpy(dtype="float64")
        has = np.isfinite(values)
        groups = [("no value", np.flatnonzero(~has))] if (~has).any() else []
        rows = np.flatnonzero(has)
        figure.add_trace(
            go.Scattergl(
                x=points["x"].to_numpy()[rows],
                y=points["y"].to_numpy()[rows],
                mode="markers",
                name=colour_name,
                text=hover.to_numpy()[rows],
                marker=dict(
                    size=6,
                    color=values[rows],
                    colorscale="Viridis",
                    showscale=True,
                    colorbar=dict(title=colour_name, thickness=12),
                ),
                hovertemplate=f"%{{text}}<br>{colour_name} %{{marker.color:.4g}}<extra></extra>",
                showlegend=False,
            )
        )
        trace_rows.append(rows)
    else:
        labels = colour.astype(str)
        groups = [(name, np.flatnonzero(labels.to_numpy() == name)) for name in sorted(labels.unique())]
    palette = DATASET_COLOURS
    for index, (name, rows) in enumerate(groups):
        if numeric:
            colour_value = NO_VALUE_COLOUR
        else:
            colour_value = (colours or {}).get(str(name), palette[index % len(palette)])
        figure.add_trace(
            go.Scattergl(
                x=points["x"].to_numpy()[rows],
                y=points["y"].to_numpy()[rows],
                mode="markers",
                name=str(name),
                text=hover.to_numpy()[rows],
                marker=dict(size=6, color=colour_value, opacity=0.8),
                hovertemplate="%{text}<extra>" + html.escape(str(name)) + "</extra>",
            )
        )
        trace_rows.append(rows)
    figure.update_layout(
        height=560,
        margin=dict(l=10, r=10, t=30, b=10),
        dragmode="lasso",
        legend=dict(orientation="h", yanchor="bottom", y=1.02, x=0, title_text=f"{colour_name}: "),
        xaxis=dict(showticklabels=False, title=None, zeroline=False),
        yaxis=dict(showticklabels=False, title=None, zeroline=False),  # axes of a map carry no units
    )
    return figure, trace_rows

"""Data quality: any image metric's distribution with its outliers, and the images behind any range.

URL: ``?metric=brightness&lo=0.1&hi=0.3&sort=sharpness&order=desc&page=2&issue=dark_images&tag=review``
reproduces the view; ``&detail=DATASET|IMAGE_ID`` opens one image's detail.
"""

from __future__ import annotations

import streamlit as st

from pages import gallery
from pages.state import reader, require_datasets, write_url
from store import gallery_queries as gq

PREFIX = "dq"
DEFAULT_METRIC = "brightness"

st.title(":material/image: Data quality")
project_reader = reader()
datasets = require_datasets()
names = gq.metric_level_names(project_reader, "image")
if not names:
    st.info("No image metrics in this project yet.")
    st.stop()

issue = gallery.url_issue("image")
metric, chosen = gallery.metric_with_distribution(
    PREFIX, project_reader, names, DEFAULT_METRIC, "image", datasets, issue
)

st.divider()
st.subheader("Images")
root = str(project_reader.project.root)
sort_metric, descending = gallery.sort_controls(PREFIX, names, metric)
tag_name, tag_keys, tag_filter = gallery.tag_controls(PREFIX, root)
gallery_filter = gallery.range_filter("image", datasets, metric, chosen, issue, tag_keys)
notes = [
    f"`{metric}` in [{chosen[0]:.4g}, {chosen[1]:.4g}]" if chosen else "",
    issue or "",
    f"tag {tag_filter}" if tag_filter else "",
]
page, size = gallery.gallery_grid(
    PREFIX, project_reader, gallery_filter, notes, sort_metric, descending, tag_name
)
write_url(PREFIX, metric, chosen, sort_metric, descending, page, size, issue, tag_filter)
gallery.saved_views("pages/data_quality.py", PREFIX, root)
gallery.show_detail_from_url((gallery_filter, sort_metric, descending))

"""How a label-error finding reads and is decided, wherever it is shown: the Label errors queue and the
sample view. One wording of kinds and fixes, one set of accept / reject / undo buttons writing through
store.label_issue_queries (decisions are stored in the project and mirrored as tags)."""

from __future__ import annotations

import html
from collections.abc import Callable
from typing import Any

import pandas as pd
import streamlit as st

from store import label_issue_queries as lq
from store.queries import ProjectReader

KIND_TEXT = {
    "class": "wrong class",
    "location": "badly placed box",
    "spurious": "box on nothing",
    "duplicate": "duplicate label",
}
FIX_TEXT = {
    "relabel": "relabel as **{suggested}**",
    "replace_box": "replace the box by the model's box",
    "delete": "delete the label",
    "review": "look at it (no fix to suggest)",
}


def fix_text(row: Any) -> str:
    """The suggested fix in words (markdown), with the suggested class where there is one."""
    return FIX_TEXT.get(row.fix, str(row.fix)).format(suggested=html.escape(str(row.suggested_category)))


def _decide(
    project_reader: ProjectReader, row: pd.DataFrame, decision: str | None, finding: str
) -> Callable[[], None]:
    def act() -> None:
        if decision is None:
            lq.undo_rows(project_reader, row, finding)
        else:
            lq.decide_rows(project_reader, row, decision, finding)

    return act


def decision_buttons(
    project_reader: ProjectReader, row: Any, frame: pd.DataFrame, finding: str, key: str
) -> None:
    """Accept / Reject / Undo for the finding ``row`` (a row of ``frame`` from itertuples()); button keys
    are ``{prefix}_acc_…`` etc. with ``key`` = '{prefix}|{rest}'."""
    prefix, _, rest = key.partition("|")
    one = frame[frame.index == row.Index]
    accept, reject, undo = st.columns(3)
    can_accept = finding == "candidate" or row.fix != "review"
    accept.button("Accept", icon=":material/check:", key=f"{prefix}_acc_{rest}", width="stretch",
                  disabled=row.decision == "accepted" or not can_accept,
                  type="primary" if row.decision == "accepted" else "secondary",
                  on_click=_decide(project_reader, one, "accepted", finding),
                  help="Apply this fix on export (cocolens export coco --apply-fixes); tags the label.")  # fmt: skip
    reject.button("Reject", icon=":material/close:", key=f"{prefix}_rej_{rest}", width="stretch",
                  disabled=row.decision == "rejected",
                  type="primary" if row.decision == "rejected" else "secondary",
                  on_click=_decide(project_reader, one, "rejected", finding),
                  help="The label is right: keep it as it is.")  # fmt: skip
    undo.button("Undo", icon=":material/undo:", key=f"{prefix}_undo_{rest}", width="stretch",
                disabled=row.decision == "open", on_click=_decide(project_reader, one, None, finding),
                help="Forget the decision; the finding is open again.")  # fmt: skip

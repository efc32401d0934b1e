"""Two datasets compared on every stored metric: the table behind the Compare page.

Lives in the store (not the page) so ``cocolens import`` / ``cocolens metrics`` can pre-compute
the default pair into the summary cache (store/summary_cache.py) and a fresh server process
neither samples the metric files nor imports scipy to draw the page.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from metrics.distribution_compare import compare, rank, shared_histograms
from store.filters import metric_levels, sql_literal
from store.queries import ProjectReader

# Values per metric and dataset kept for the KS test and histograms: above this a seeded random
# sample is used. With 20,000 values a side, sampling moves KS by less than ~0.014 (the 95 % critical
# value 1.36·sqrt(2/20000)), far below the gaps worth ranking, and a 1M-object page stays under 2 s.
SAMPLE_LIMIT = 20_000


def sampled_values(reader: ProjectReader, a: str, b: str) -> dict[tuple[str, str], np.ndarray]:
    """(dataset, metric) → values, each capped near SAMPLE_LIMIT by a seeded Bernoulli sample of rows.

    Reads each metric file (``datasets/NAME/metrics/LEVEL__METRIC.parquet``) alone and only its value
    column: at 1M objects this costs a third of the CPU of a hash sample over the long view.
    """
    import pyarrow.parquet as pq

    out: dict[tuple[str, str], np.ndarray] = {}
    for dataset in (a, b):
        for path in sorted((reader.project.dataset_dir(dataset) / "metrics").glob("*__*.parquet")):
            metric = path.stem.partition("__")[2]
            rows = pq.ParquetFile(path).metadata.num_rows
            sample = (
                f" TABLESAMPLE {100.0 * SAMPLE_LIMIT / rows!r}% (bernoulli, 7)" if rows > SAMPLE_LIMIT else ""
            )
            cur = reader.cursor()
            try:
                values = cur.execute(
                    f"SELECT value FROM read_parquet({sql_literal(str(path))}){sample} WHERE value IS NOT NULL"
                ).fetchnumpy()["value"]
            finally:
                cur.close()
            if len(values):  # a metric with no values (pixels of missing images) has nothing to compare
                out[(dataset, metric)] = np.asarray(values, dtype=np.float64)
    return out


def comparison(reader: ProjectReader, a: str, b: str) -> pd.DataFrame:
    """Every metric of A against B, most different first: the KS ranking plus each metric's histograms.

    Columns: metric, level, n_a, n_b, mean_a, mean_b, median_a, median_b, ks, p_value (as
    :func:`metrics.distribution_compare.rank`), and edges / density_a / density_b (arrays of
    :func:`metrics.distribution_compare.shared_histograms`), so the page draws without the values.
    Empty when neither dataset has metric values.
    """
    levels = metric_levels(reader)
    groups = sampled_values(reader, a, b)
    empty = np.array([])
    metrics = sorted({metric for _, metric in groups})
    table = rank([compare(m, groups.get((a, m), empty), groups.get((b, m), empty)) for m in metrics])
    table.insert(1, "level", table["metric"].map(levels).fillna("image"))
    histograms = {m: shared_histograms(groups.get((a, m), empty), groups.get((b, m), empty)) for m in metrics}
    for index, column in enumerate(("edges", "density_a", "density_b")):
        table[column] = pd.Series(
            [np.asarray(histograms[m][index], dtype=np.float64) for m in table["metric"]],
            index=table.index,
            dtype=object,
        )
    return table

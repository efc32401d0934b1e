"""Columns and types of the store's tables, declared once as pyarrow schemas.

The code that writes a table and the readers that answer with an empty frame of it (no file yet, no
rows asked for) take its columns and types from here, so an empty answer has the same columns, in
the same order and with the same types, as a full one read back. A field with nullable=False never
holds a missing value.
"""

from __future__ import annotations

import pandas as pd
import pyarrow as pa

# datasets/NAME/duplicates.parquet: one row per image in a duplicate group; kind 'exact' (same bytes),
# 'near' (perceptual hash) or 'embedding' (cosine), group ids numbered within a dataset and kind.
DUPLICATES = pa.schema(
    [
        pa.field("dataset", pa.string(), nullable=False),
        pa.field("image_id", pa.int64(), nullable=False),
        pa.field("kind", pa.string(), nullable=False),
        pa.field("group_id", pa.int64(), nullable=False),
    ]
)

# tags.sqlite's label_decisions table (store.label_decisions): one accepted or rejected finding.
LABEL_DECISIONS = pa.schema(
    [
        pa.field("dataset", pa.string(), nullable=False),
        pa.field("finding", pa.string(), nullable=False),  # 'object' | 'candidate'
        pa.field("image_id", pa.int64(), nullable=False),
        pa.field("item_id", pa.int64(), nullable=False),  # object id, or the proposing prediction's id
        pa.field("decision", pa.string(), nullable=False),  # 'accepted' | 'rejected'
        pa.field("fix", pa.string(), nullable=False),
        pa.field("category_id", pa.int64()),
        pa.field("bbox_x", pa.float64()),
        pa.field("bbox_y", pa.float64()),
        pa.field("bbox_w", pa.float64()),
        pa.field("bbox_h", pa.float64()),
        pa.field("decided", pa.float64(), nullable=False),  # Unix seconds
    ]
)

# The embedding map (store.embedding_store.map_points): 2D coordinates of images or objects.
MAP_POINTS = pa.schema(
    [
        pa.field("dataset", pa.string(), nullable=False),
        pa.field("image_id", pa.int64(), nullable=False),
        pa.field("object_id", pa.int64()),  # missing on the image-level map
        pa.field("x", pa.float64(), nullable=False),
        pa.field("y", pa.float64(), nullable=False),
    ]
)

_PANDAS_DTYPES = {pa.string(): "string", pa.int64(): "int64", pa.float64(): "float64"}
_SQLITE_TYPES = {pa.string(): "TEXT", pa.int64(): "INTEGER", pa.float64(): "REAL"}


def column_names(schema: pa.Schema) -> list[str]:
    """The table's columns, in order."""
    return list(schema.names)


def pandas_dtypes(schema: pa.Schema) -> dict[str, str]:
    """column → the pandas dtype a writer pins before writing: "string", "int64" ("Int64" when
    nullable: a missing id stays an id, not a float) or "float64"."""
    return {
        field.name: "Int64"
        if field.nullable and pa.types.is_integer(field.type)
        else _PANDAS_DTYPES[field.type]
        for field in schema
    }


def empty_frame(schema: pa.Schema) -> pd.DataFrame:
    """The table with no rows, as pandas reads it back from Parquet or SQLite (strings as objects,
    numbers as int64 / float64): its columns in order."""
    return schema.empty_table().to_pandas()


def sqlite_columns(schema: pa.Schema) -> str:
    """The column list of a SQLite CREATE TABLE: 'name TYPE [NOT NULL]' each, comma-separated."""
    return ", ".join(
        f"{field.name} {_SQLITE_TYPES[field.type]}{'' if field.nullable else ' NOT NULL'}" for field in schema
    )

"""Reading user CSV tables strictly: one clear error for a malformed table instead of a silent wrong result.

Excel's UTF-8 files (with a byte-order mark) are accepted; short or long rows, missing columns, non-integer or
duplicate labels are refused with the row and the value.
"""

from __future__ import annotations

import csv
import os
from pathlib import Path

import numpy as np
import pandas as pd

__all__ = ["read_csv_rows", "read_feature_table", "MAX_CSV_BYTES"]

#: larger CSV files are refused (a feature table of 100,000 objects × 1,000 columns is ~1 GB)
MAX_CSV_BYTES = 2 * 1024**3


def read_csv_rows(
    path: str | os.PathLike, required: tuple[str, ...] = ()
) -> tuple[list[str], list[list[str]]]:
    """Header and rows of a CSV file, every row as long as the header.

    Parameters
    ----------
    path : path-like
        The CSV file (UTF-8, with or without a byte-order mark).
    required : tuple of str, optional
        Columns the header must have.

    Returns
    -------
    header : list of str
        Column names, stripped.
    rows : list of list of str
        The data rows (blank lines skipped).

    Raises
    ------
    ValueError
        Not a regular file, not UTF-8 text, too large, no header, a missing column, or a row with more or fewer
        fields than the header (its line number is given).
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path} is not a regular file")
    if path.stat().st_size > MAX_CSV_BYTES:
        raise ValueError(f"{path} is larger than {MAX_CSV_BYTES / 2**30:.0f} GiB")
    try:
        with open(path, newline="", encoding="utf-8-sig") as handle:
            lines = list(csv.reader(handle))
    except UnicodeDecodeError as error:
        raise ValueError(f"{path} is not UTF-8 text: {error.reason} at byte {error.start}") from None
    except csv.Error as error:
        raise ValueError(f"{path} is not a valid CSV file: {error}") from None
    numbered = [(number, line) for number, line in enumerate(lines, 1) if any(cell.strip() for cell in line)]
    if not numbered:
        raise ValueError(f"{path} is empty (no header row)")
    header = [cell.strip() for cell in numbered[0][1]]
    missing = [c for c in required if c not in header]
    if missing:
        raise ValueError(f"{path} lacks the column(s) {missing}; its header is {header[:12]}")
    rows = []
    for number, line in numbered[1:]:
        if len(line) != len(header):
            raise ValueError(f"{path}, line {number}: {len(line)} fields, the header has {len(header)}")
        rows.append(line)
    return header, rows


def read_feature_table(path: str | os.PathLike) -> pd.DataFrame:
    """A per-object feature table with a ``label`` column: integer labels ≥ 1, one row per label.

    Parameters
    ----------
    path : path-like
        CSV file with a ``label`` column (e.g. written by ``medimg features`` or the table dock).

    Returns
    -------
    pandas.DataFrame
        The table, ``label`` as int64, other columns as numbers where they parse as numbers.

    Raises
    ------
    ValueError
        Malformed CSV (see :func:`read_csv_rows`), a label that is empty, not an integer (``1.7``), below 1,
        or listed twice.
    """
    header, rows = read_csv_rows(path, required=("label",))
    if len(set(header)) != len(header):
        raise ValueError(f"{path} has duplicate column names")
    frame = pd.DataFrame(rows, columns=header)
    labels = []
    for number, text in enumerate(frame["label"], 2):
        text = text.strip()
        try:
            value = float(text)
        except ValueError:
            raise ValueError(f"{path}: label {text!r} (row {number}) is not a number") from None
        if not np.isfinite(value) or value != int(value) or value < 1:
            raise ValueError(f"{path}: label {text!r} (row {number}) is not an integer of 1 or more")
        labels.append(int(value))
    series = pd.Series(labels, dtype=np.int64)
    duplicated = sorted(set(series[series.duplicated()].tolist()))
    if duplicated:
        raise ValueError(
            f"{path} has several rows for label(s) {duplicated[:10]}; one row per object is expected"
        )
    for column in header:
        if column != "label":
            converted = pd.to_numeric(frame[column].str.strip().replace("", np.nan), errors="coerce")
            blank = frame[column].str.strip() == ""
            if converted[~blank].notna().all():
                frame[column] = converted.astype(float)
    frame["label"] = series
    return frame

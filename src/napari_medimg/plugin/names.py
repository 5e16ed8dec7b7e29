"""Layer names that stay distinct in napari's layer list.

napari elides long layer names in the middle, so two files whose names differ only there
(``sub-01_ses-01_acq-mprage_T1w`` and ``sub-01_ses-02_acq-mprage_T1w``) read the same in the list.  A new
layer whose name would elide like an existing one is named with the words that tell it apart first
(``ses-02 · sub-01_ses-02_acq-mprage_T1w``).
"""

from __future__ import annotations

import re

__all__ = ["distinct_name", "ELIDE_KEEP"]

#: characters napari's layer list keeps visible at each end of a long name (a narrow dock shows ~28)
ELIDE_KEEP = 12


def _words(name: str) -> list[str]:
    return [w for w in re.split(r"[_\s.]+", name) if w]


def _elided(name: str) -> str:
    return name if len(name) <= 2 * ELIDE_KEEP + 1 else f"{name[:ELIDE_KEEP]}…{name[-ELIDE_KEEP:]}"


def distinct_name(name: str, existing) -> str:
    """``name``, or ``name`` prefixed with the words that tell it apart from an existing name that would be
    elided to the same text in the layer list.

    Parameters
    ----------
    name : str
        The proposed layer name.
    existing : iterable of str
        Names of the layers already in the viewer.

    Returns
    -------
    str
        A name whose elided form differs from every existing name's.
    """
    for other in existing:
        if other != name and _elided(other) == _elided(name):
            own = [w for w in _words(name) if w not in set(_words(other))]
            if own:
                return f"{'_'.join(own)[: 2 * ELIDE_KEEP]} · {name}"
    return name

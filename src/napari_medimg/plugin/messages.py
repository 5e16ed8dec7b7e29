"""What the reader and the tools have to tell the user: shown as napari notifications and kept for later.

Reader warnings (gantry tilt resampled, missing slices, skipped files, assumed pixel spacing, obliquity
not applied …) travel in a layer's ``metadata["warnings"]`` (a list of strings).  :func:`announce_layers`
shows one notification per layer that has any and keeps every message in :data:`MESSAGES`, which the home
panel lists so the user can read them again after the notification has gone.
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass, field

from napari.utils.events import EventedList
from napari.utils.notifications import show_warning

from .layers import GEOMETRY_KEY

__all__ = ["Message", "MESSAGES", "layer_warnings", "announce", "announce_layers"]


@dataclass(frozen=True)
class Message:
    """One message: the layer (or tool) it is about and its text."""

    source: str
    text: str
    time: str = field(default_factory=lambda: _dt.datetime.now().strftime("%H:%M:%S"))

    def __str__(self) -> str:
        return f"{self.time}  {self.source}: {self.text}"


#: every message of this session, oldest first (the home panel shows them)
MESSAGES: EventedList = EventedList(basetype=Message)


def layer_warnings(metadata: dict) -> list[str]:
    """The warnings a layer's metadata carries, as a list of strings: ``metadata["warnings"]``, or the
    Volume's warnings kept under ``metadata["napari_medimg"]`` (see :func:`.layers.layer_data_tuple`)."""
    metadata = metadata or {}
    warnings = metadata.get("warnings") or (metadata.get(GEOMETRY_KEY) or {}).get("warnings") or []
    if isinstance(warnings, str):
        warnings = [warnings]
    return [str(w) for w in warnings if str(w).strip()]


def announce(source: str, texts: list[str]) -> None:
    """Keep ``texts`` about ``source`` in :data:`MESSAGES` and show them as one napari warning."""
    texts = [t for t in texts if t]
    if not texts:
        return
    for text in texts:
        MESSAGES.append(Message(source, text))
    more = f" (+{len(texts) - 1} more in the napari-medimg panel's messages)" if len(texts) > 1 else ""
    show_warning(f"{source}: {texts[0]}{more}")


def announce_layers(layer_data: list[tuple]) -> list[tuple]:
    """Announce the warnings of reader layer tuples ``(data, kwargs, type)`` and return them unchanged."""
    for _, kwargs, *_ in layer_data:
        announce(str(kwargs.get("name") or "image"), layer_warnings(kwargs.get("metadata", {})))
    return layer_data

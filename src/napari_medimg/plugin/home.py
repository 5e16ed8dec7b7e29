"""The plugin's one entry point: a compact home panel from which every tool opens, and the messages list.

The panel shows the tools as short, distinct buttons grouped by task (Data, Prepare, Segment, Measure,
Learn, View); the chosen tool appears below the buttons, inside a scroll area, so one dock holds any tool
and the window fits a 1,000 px-high screen however many tools the user has used.  Every widget the
manifest contributes is listed (new ones under *More* until they get a place here).  Below the tool, the
session's messages (reader warnings …, see :mod:`.messages`) can be read again.
"""

from __future__ import annotations

import contextlib
import importlib
from pathlib import Path
from typing import TYPE_CHECKING

from npe2 import PluginManifest
from qtpy.QtWidgets import (
    QGridLayout,
    QGroupBox,
    QLabel,
    QListWidget,
    QPushButton,
    QScrollArea,
    QSizePolicy,
    QStackedWidget,
    QVBoxLayout,
    QWidget,
)

from .messages import MESSAGES
from .units import keep_units_consistent

if TYPE_CHECKING:
    import napari

__all__ = ["HomeWidget", "TOOLS", "tool_entries", "command_of"]

#: command id → (group, short title); titles stay short and distinct so buttons and tabs never elide
TOOLS: dict[str, tuple[str, str]] = {
    "napari-medimg.dicom_browser": ("Data", "DICOM"),
    "napari-medimg.dicom_export": ("Data", "Export"),
    "napari-medimg.preprocess_widget": ("Prepare", "Filters"),
    "napari-medimg.threshold_widget": ("Segment", "Threshold"),
    "napari-medimg.region_growing_widget": ("Segment", "Grow"),
    "napari-medimg.label_edit_widget": ("Segment", "Edit labels"),
    "napari-medimg.fill_between_slices_widget": ("Segment", "Fill slices"),
    "napari-medimg.measure_widget": ("Measure", "Measure"),
    "napari-medimg.cnn_widget": ("Learn", "CNN"),
    "napari-medimg.object_classifier_widget": ("Learn", "Classify"),
    "napari-medimg.pixel_classifier_widget": ("Learn", "Pixels"),
    "napari-medimg.unet_widget": ("Learn", "U-Net"),
    "napari-medimg.segments_widget": ("Segment", "Segments"),
    "napari-medimg.orthogonal_views": ("View", "3 planes"),
    "napari-medimg.metadata_widget": ("View", "Header"),
    "napari-medimg.fusion_widget": ("View", "Fusion"),
    "napari-medimg.session_widget": ("Data", "Session"),
    "napari-medimg.recipe_widget": ("Replay", "Recipe"),
    "napari-medimg.batch_widget": ("Replay", "Batch"),
}
_GROUPS = ("Data", "Prepare", "Segment", "Measure", "Learn", "View", "Replay", "More")
_HOME_COMMAND = "napari-medimg.home_widget"
#: buttons per row in a group
_COLUMNS = 3


def _manifest() -> PluginManifest:
    return PluginManifest.from_file(Path(__file__).resolve().parents[1] / "napari.yaml")


def command_of(display_name: str) -> str:
    """The manifest command id of the widget shown in napari's menus as ``display_name``."""
    for widget in _manifest().contributions.widgets or []:
        if widget.display_name == display_name:
            return widget.command
    raise KeyError(f"napari-medimg has no widget called {display_name!r}")


def tool_entries() -> list[tuple[str, str, str, str]]:
    """``(group, short title, command id, python_name)`` of every widget in the plugin's manifest."""
    manifest = _manifest()
    commands = {c.id: c.python_name for c in manifest.contributions.commands or []}
    entries = []
    for widget in manifest.contributions.widgets or []:
        if widget.command == _HOME_COMMAND:
            continue
        group, title = TOOLS.get(widget.command, ("More", widget.display_name))
        entries.append((group, title, widget.command, commands[widget.command]))
    return sorted(entries, key=lambda e: _GROUPS.index(e[0]) if e[0] in _GROUPS else len(_GROUPS))


def _load(python_name: str):
    module, _, attribute = python_name.partition(":")
    return getattr(importlib.import_module(module), attribute)


class HomeWidget(QWidget):
    """Tool buttons by task, the chosen tool in a scroll area, and the session's messages."""

    def __init__(self, napari_viewer: napari.viewer.Viewer):
        super().__init__()
        self.viewer = napari_viewer
        keep_units_consistent(napari_viewer)
        self.tools: dict[str, object] = {}  # command id → tool widget (magicgui Container or QWidget)
        self._pages: dict[str, QWidget] = {}
        self.buttons: dict[str, QPushButton] = {}
        self._entries = {command: (title, name) for _, title, command, name in tool_entries()}

        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        groups: dict[str, QGridLayout] = {}
        for group, title, command, _ in tool_entries():
            if group not in groups:
                box = QGroupBox(group)
                groups[group] = QGridLayout(box)
                groups[group].setContentsMargins(4, 2, 4, 2)
                layout.addWidget(box)
            grid = groups[group]
            button = QPushButton(title)
            button.setCheckable(True)
            button.setToolTip(f"Open {title}")
            button.clicked.connect(lambda _=False, c=command: self.show_tool(c))
            count = grid.count()
            grid.addWidget(button, count // _COLUMNS, count % _COLUMNS)
            self.buttons[command] = button

        self.title = QLabel("Choose a tool above.")
        self.title.setStyleSheet("font-weight: bold")
        layout.addWidget(self.title)
        self.stack = QStackedWidget()
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setWidget(self.stack)
        scroll.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Expanding)
        scroll.setMinimumHeight(200)
        layout.addWidget(scroll, stretch=1)

        messages = QGroupBox("Messages")
        messages_layout = QVBoxLayout(messages)
        messages_layout.setContentsMargins(4, 2, 4, 2)
        self.messages = QListWidget()
        self.messages.setMaximumHeight(110)
        self.messages.setWordWrap(True)
        clear = QPushButton("Clear messages")
        clear.clicked.connect(self._clear_messages)
        messages_layout.addWidget(self.messages)
        messages_layout.addWidget(clear)
        layout.addWidget(messages)
        for message in MESSAGES:
            self._add_message(message)
        MESSAGES.events.inserted.connect(self._message_inserted)  # napari events hold methods weakly

    def show_tool(self, command: str):
        """Show the tool of manifest command ``command`` in the panel (created on first use); return it."""
        title, python_name = self._entries[command]
        if command not in self.tools:
            tool = _load(python_name)(self.viewer)
            page = getattr(tool, "native", tool)
            self.tools[command], self._pages[command] = tool, page
            self.stack.addWidget(page)
            if hasattr(tool, "reset_choices"):  # layer choices now that the tool sits under the viewer
                tool.reset_choices()
        self.stack.setCurrentWidget(self._pages[command])
        self.title.setText(title)
        for other, button in self.buttons.items():
            button.setChecked(other == command)
        return self.tools[command]

    def closeEvent(self, event) -> None:  # noqa: N802 (Qt API)
        """Closing the panel closes the tools in it (each disconnects from the viewer as its dock would)."""
        for page in self._pages.values():
            page.close()
            page.deleteLater()
        self.tools.clear()
        self._pages.clear()
        super().closeEvent(event)

    def _message_inserted(self, event) -> None:
        self._add_message(event.value)

    def _add_message(self, message) -> None:
        with contextlib.suppress(RuntimeError):  # the panel's Qt object may already be deleted
            self.messages.insertItem(0, str(message))

    def _clear_messages(self) -> None:
        MESSAGES.clear()
        self.messages.clear()

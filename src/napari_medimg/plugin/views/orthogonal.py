"""Orthogonal views dock: the two planes the main canvas is not showing, linked by one crosshair.

Built like napari's ``multiple_viewer_widget`` example: each extra view is a ``ViewerModel`` with its own
``QtViewer`` whose layers mirror the main viewer's (same data object, no copy).  The main viewer's
``dims.point`` is the one crosshair position: clicking in an extra view sets it, Shift+move in the main canvas
sets it, and every view follows it; a drag in an extra view sets it when the mouse rests or is released, the
canvases drawing the planes under the mouse from the arrays meanwhile (:meth:`OrthogonalViewsWidget.point`).
Handlers are connected once per mirrored layer and disconnected when the layer goes or the dock closes
(napari-orthogonal-views leaked them on hide/show); colormaps are copied only when they change.
"""

from __future__ import annotations

import contextlib
import weakref
from typing import TYPE_CHECKING

import numpy as np
from qtpy.QtCore import QSize, Qt, QTimer
from qtpy.QtGui import QPainter
from qtpy.QtWidgets import (
    QCheckBox,
    QComboBox,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSizePolicy,
    QSplitter,
    QVBoxLayout,
    QWidget,
)
from vispy.visuals import ImageVisual as _ImageVisual

from ...geometry import CANONICAL_DIRECTION, world_to_lps
from ...processing.windows import auto_window, presets_for
from ..layers import GEOMETRY_KEY, OBLIQUE_DISPLAY, layer_frame, set_oblique_display
from .readout import axis_letter, readout, readout_text

if TYPE_CHECKING:
    import napari

__all__ = ["OrthogonalViewsWidget", "PLANES", "plane_markers", "lps_of_point"]

#: plane name → (world axis it slices along, dims order, camera orientation2d)
PLANES = {
    "axial": (0, (0, 1, 2), ("down", "right")),
    "coronal": (1, (1, 0, 2), ("up", "right")),
    "sagittal": (2, (2, 0, 1), ("up", "right")),
}
_PLANE_OF_AXIS = {axis: name for name, (axis, _, _) in PLANES.items()}
#: layer attributes copied to the mirrors when they change
_SYNCED = (
    "colormap",
    "contrast_limits",
    "gamma",
    "opacity",
    "visible",
    "blending",
    "scale",
    "translate",
    "name",
)
_MIRRORED_TYPES = ("image", "labels", "points", "shapes")
#: the dtypes napari hands to OpenGL unchanged, and what it casts the other kinds to (napari._vispy.utils.gl)
_TEXTURE_DTYPES = (np.dtype(np.uint8), np.dtype(np.uint16), np.dtype(np.float32))
_TEXTURE_CAST = {"i": np.float32, "f": np.float32, "u": np.uint16, "b": np.uint8}


def plane_markers(plane: str, frame=None) -> dict[str, str]:
    """Orientation letters at the ``top``, ``bottom``, ``left`` and ``right`` edges of a plane's view.

    Parameters
    ----------
    plane : {"axial", "coronal", "sagittal"}
    frame : array_like, optional
        Display frame (default patient axes S, P, L).

    Returns
    -------
    dict
        Edge → letter, e.g. axial: top A, bottom P, left R, right L (radiological convention).
    """
    frame = CANONICAL_DIRECTION if frame is None else np.asarray(frame, float)
    _, order, (vertical, horizontal) = PLANES[plane]
    down_axis, right_axis = order[1], order[2]
    down = frame[:, down_axis] * (1 if vertical == "down" else -1)
    right = frame[:, right_axis] * (1 if horizontal == "right" else -1)
    return {
        "top": axis_letter(-down),
        "bottom": axis_letter(down),
        "left": axis_letter(-right),
        "right": axis_letter(right),
    }


def _slice_text(plane: str, value: float, frame) -> str:
    """``"coronal · P 40.4 mm"``: the plane and its position along the patient axis it cuts."""
    frame = CANONICAL_DIRECTION if frame is None else np.asarray(frame, float)
    axis = PLANES[plane][0]
    vector = frame[:, axis]
    letter = axis_letter(vector)
    lps_axis = int(np.argmax(np.abs(vector)))
    sign = 1 if vector[lps_axis] > 0 else -1
    signed = value * sign
    if signed < 0:
        letter = {"L": "R", "P": "A", "S": "I", "R": "L", "A": "P", "I": "S"}[letter]
    return f"{plane} · {letter} {abs(value):.1f} mm"


def _weak_callback(method):
    """A function calling the bound ``method`` through a weak reference (does nothing once it is gone)."""
    reference = weakref.WeakMethod(method)

    def call(*args, **kwargs):
        target = reference()
        return None if target is None else target(*args, **kwargs)

    return call


def _crosshair_line(canvas):
    """A yellow two-segment line drawn straight into a napari canvas's scene, above every layer.

    A napari Vectors layer would do, but napari rebuilds (and the GL driver recompiles) its shader program on
    every data change: about 6 ms per view and move with software OpenGL.  A vispy ``Line`` only re-uploads
    four vertices.
    """
    from vispy.scene.visuals import Line

    line = Line(
        pos=np.zeros((4, 2), np.float32),
        color="#ffcc00",
        width=1,
        connect="segments",
        method="gl",
        parent=canvas.view.scene,
    )
    line.order = 1_000_000  # napari orders its layers 0, 1, 2, …
    line.set_gl_state("translucent", depth_test=False)
    line.visible = False
    return line


def _set_crosshair_line(line, displayed, point, ranges) -> None:
    """Move a crosshair line to world ``point`` in a canvas showing world axes ``displayed`` (rows, columns).

    Parameters
    ----------
    line : vispy.scene.visuals.Line
    displayed : tuple of int
        The dims a canvas displays (napari's ``dims.displayed``: rows then columns).
    point : sequence of float
        World point (all dims).
    ranges : sequence of (start, stop, step)
        World ranges of all dims (napari's ``dims.range``).
    """
    rows, cols = displayed[-2:]
    y, x = float(point[rows]), float(point[cols])
    (y0, y1), (x0, x1) = (ranges[rows][:2], ranges[cols][:2])
    pos = np.array([[x0, y], [x1, y], [x, y0], [x, y1]], np.float32)  # vispy scene: x = columns, y = rows
    line.set_data(pos=pos)
    line.visible = True


def _draw_planes_directly(layers, dims, visuals, point) -> bool:
    """Draw the planes at world ``point`` of a canvas's layers straight from their arrays, if it can.

    napari's slicing of a layer (slice request, transforms, thumbnail, texture, status) costs more than the
    drawing while a drag moves the crosshair; the plane itself is one numpy index.  It is done only where it
    gives napari's pixels exactly: every visible layer an in-memory Image (cast as napari casts it for
    OpenGL), placed by scale and translate only, not multiscale, one slice thick (no slab projection), the
    plane inside the data and within the texture limit.  Anything else: False, nothing drawn, and the caller
    lets napari slice as usual.

    Parameters
    ----------
    layers : sequence of napari layers
        The canvas's layers.
    dims : napari.components.Dims
        Its dims (which axes are displayed).
    visuals : mapping
        Layer → its vispy layer (``QtViewer.layer_to_visual``).
    point : sequence of float
        World point (all dims).

    Returns
    -------
    bool
        Whether every visible layer was drawn.
    """
    displayed = list(dims.displayed)
    thick = any(dims.thickness[axis] > 0 for axis in dims.not_displayed)  # a slab: napari projects it
    planes = []
    for layer in layers:
        if not layer.visible:
            continue
        visual = visuals.get(layer)
        data = layer.data
        if (
            layer._type_string != "image"
            or visual is None
            or not isinstance(data, np.ndarray)
            or data.dtype.kind not in _TEXTURE_CAST
            or layer.multiscale
            or layer.rgb
            or (str(layer.projection_mode) != "none" and thick)
            or not np.allclose(layer.affine.affine_matrix, np.eye(layer.ndim + 1))
            or not np.allclose(layer.rotate, np.eye(layer.ndim))
            or not np.allclose(layer.shear, 0)
            or layer.ndim != dims.ndim
        ):
            return False
        index = np.round(np.asarray(layer.world_to_data(point), float))
        key = []
        for axis in range(layer.ndim):
            if axis in displayed:
                key.append(slice(None))
            elif 0 <= index[axis] < data.shape[axis]:
                key.append(int(index[axis]))
            else:
                return False
        plane = data[tuple(key)]
        if plane.dtype not in _TEXTURE_DTYPES:
            plane = plane.astype(_TEXTURE_CAST[plane.dtype.kind])
        if displayed[0] > displayed[1]:
            plane = plane.T
        limit = getattr(visual, "MAX_TEXTURE_SIZE_2D", None)
        node = getattr(visual, "node", None)
        if not isinstance(node, _ImageVisual) or (limit is not None and max(plane.shape) > limit):
            return False
        planes.append((node, plane))
    for node, plane in planes:
        node.set_data(plane)
        node.update()
    return True


class _SliceTitle(QWidget):
    """One line of text whose changes repaint only itself.

    A ``QLabel`` asks its layout to recompute on every ``setText``; in a dock that re-lays out the main window
    and every dock widget (animated) on each move of a drag: the whole right side repainted per move.  This
    title has a size that does not depend on its text (one line of the font, any width), so a new slice
    position is one small repaint.
    """

    def __init__(self, text: str = ""):
        super().__init__()
        self._text = text
        self.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Fixed)
        self.setFixedHeight(self.fontMetrics().height() + 2)

    def text(self) -> str:
        """The line shown."""
        return self._text

    def setText(self, text: str) -> None:  # noqa: N802 (QLabel's name: the title stands in for one)
        """Show ``text`` (repaints this widget only)."""
        if text != self._text:
            self._text = text
            self.update()

    def sizeHint(self) -> QSize:  # noqa: N802 (Qt override)
        return QSize(self.fontMetrics().horizontalAdvance(self._text or "sagittal"), self.height())

    def paintEvent(self, event) -> None:  # noqa: N802 (Qt override)
        painter = QPainter(self)
        painter.drawText(
            self.rect(), int(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter), self._text
        )
        painter.end()


class _View(QWidget):
    """One extra view: a QtViewer with orientation letters on its four edges and a title line."""

    def __init__(self, parent_widget: OrthogonalViewsWidget, plane: str):
        from napari.components import ViewerModel
        from napari.qt import QtViewer

        super().__init__()
        self.owner = parent_widget
        self.model = ViewerModel(title=plane)
        self.qt_viewer = QtViewer(self.model, show_welcome_screen=False)
        self.title = _SliceTitle(plane)
        self.title.setObjectName("slice")
        self.letters = {edge: QLabel("") for edge in ("top", "bottom", "left", "right")}
        for label in self.letters.values():
            label.setAlignment(Qt.AlignmentFlag.AlignCenter)
            label.setStyleSheet("font-weight: bold; color: #ffcc00;")
        grid = QGridLayout(self)
        grid.setContentsMargins(0, 0, 0, 0)
        grid.setSpacing(1)
        grid.addWidget(self.title, 0, 0, 1, 3)
        grid.addWidget(self.letters["top"], 1, 1)
        grid.addWidget(self.letters["left"], 2, 0)
        grid.addWidget(self.qt_viewer, 2, 1)
        grid.addWidget(self.letters["right"], 2, 2)
        grid.addWidget(self.letters["bottom"], 3, 1)
        self.plane = ""
        # the view follows the main viewer's crosshair: its own slider would only drift from it
        self.qt_viewer.dims.hide()
        self.crosshair = _crosshair_line(self.qt_viewer.canvas)
        self.model.mouse_drag_callbacks.append(_weak_callback(self._on_drag))
        self.set_plane(plane)

    def set_plane(self, plane: str) -> None:
        """Show ``plane`` (axial, coronal or sagittal)."""
        self.plane = plane
        _, order, orientation = PLANES[plane]
        if self.model.dims.ndim >= 3:
            self.model.dims.order = tuple(range(self.model.dims.ndim - 3)) + tuple(
                a + self.model.dims.ndim - 3 for a in order
            )
        self.model.scene.camera.orientation2d = orientation
        self.update_labels()

    def update_labels(self) -> None:
        """Orientation letters and slice position."""
        frame = self.owner.frame()
        for edge, letter in plane_markers(self.plane, frame).items():
            self.letters[edge].setText(letter)
        point = self.owner.point()
        if len(point) >= 3:
            axis = PLANES[self.plane][0] + len(point) - 3
            self.title.setText(_slice_text(self.plane, point[axis], frame))

    def preview_slice(self, point) -> bool:
        """Draw this view's planes at world ``point`` straight from the arrays, if it can (see
        :func:`_draw_planes_directly`).

        Parameters
        ----------
        point : sequence of float
            World point (all dims).

        Returns
        -------
        bool
            Whether every visible layer of the view was drawn.
        """
        return _draw_planes_directly(
            self.model.layers, self.model.dims, self.qt_viewer.layer_to_visual, point
        )

    def set_crosshair(self, point, ranges) -> None:
        """Draw the crosshair through world ``point`` across the view (``ranges``: the main dims' ranges)."""
        _set_crosshair_line(self.crosshair, self.model.dims.displayed, point, ranges)

    def _on_drag(self, model, event):
        """Click or drag: move the crosshair (and the other views) to the clicked point.

        The press and the release move at once; the moves in between are coalesced (only the latest position
        of an event-loop turn is shown), so a fast drag never queues stale slices.
        """
        axes = PLANES[self.plane][1][1:]
        self.owner.move_to(event.position, axes)
        yield
        while event.type == "mouse_move":
            self.owner.request_move(event.position, axes)
            yield
        self.owner.request_move(event.position, axes)
        self.owner.flush_move()


class OrthogonalViewsWidget(QWidget):
    """Two linked views of the planes the main canvas does not show, with a crosshair, orientation letters,
    slice positions in mm, a cursor readout, window/level presets and mouse-drag window/level, and the
    choice of how oblique series are displayed.

    Parameters
    ----------
    napari_viewer : napari.Viewer
        The main viewer.
    """

    def __init__(self, napari_viewer: napari.viewer.Viewer):
        super().__init__()
        self.viewer = napari_viewer
        self._mirrors: dict[int, list] = {}  # id(main layer) → [mirror per view]
        self._handlers: dict[int, list] = {}  # id(main layer) → [(emitter, callback)]
        self._syncing = False
        self._hidden = False  # a hidden dock does no work; it catches up when shown again
        self._wl_start = None
        self._pending_move = None  # the latest drag position not shown yet (see request_move)
        # while dragging, the crosshair point the canvases show before it is set as the main viewer's dims.point
        self._shown_point = None
        # after a drag's direct slices (see _View.preview_slice), napari's own slicing once the mouse rests
        self._settle_timer = QTimer(self)
        self._settle_timer.setSingleShot(True)
        self._settle_timer.setInterval(250)
        self._settle_timer.timeout.connect(_weak_callback(self._on_point))
        self.views = [_View(self, "coronal"), _View(self, "sagittal")]
        splitter = QSplitter(Qt.Orientation.Vertical)
        for view in self.views:
            splitter.addWidget(view)
        self.readout_label = QLabel("")
        self.readout_label.setWordWrap(True)
        self.readout_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.crosshair_box = QCheckBox("crosshair in the main view")
        self.crosshair_box.setChecked(False)
        self.crosshair_box.toggled.connect(self._toggle_main_crosshair)
        self.preset_combo = QComboBox()
        self.preset_combo.setToolTip("window/level presets of the selected image's modality (one table)")
        self.preset_button = QPushButton("Apply window")
        self.preset_button.clicked.connect(self.apply_preset)
        self.wl_drag = QCheckBox("drag window/level (left drag on the main canvas)")
        self.wl_drag.toggled.connect(self._toggle_wl_drag)
        self.oblique_combo = QComboBox()
        self.oblique_combo.addItems(["resample onto patient axes", "show in the series' own frame"])
        self.oblique_combo.setCurrentIndex(0 if OBLIQUE_DISPLAY["mode"] == "resample" else 1)
        self.oblique_combo.setToolTip("how series opened from now on are shown when oblique to the display")
        self.oblique_combo.currentIndexChanged.connect(
            lambda i: set_oblique_display("resample" if i == 0 else "frame")
        )
        self.display_label = QLabel("")
        self.display_label.setWordWrap(True)
        self.reshow_button = QPushButton("Show the selected series this way")
        self.reshow_button.setToolTip(
            "read the selected layer's DICOM/NIfTI source again and show it as chosen"
        )
        self.reshow_button.clicked.connect(self._on_reshow)  # a bound method: Qt keeps no strong reference
        window_row = QHBoxLayout()
        window_row.addWidget(QLabel("window"))
        window_row.addWidget(self.preset_combo, 1)
        window_row.addWidget(self.preset_button)
        layout = QVBoxLayout(self)
        layout.addWidget(splitter, 1)
        layout.addWidget(self.readout_label)
        layout.addLayout(window_row)
        layout.addWidget(self.wl_drag)
        layout.addWidget(self.crosshair_box)
        layout.addWidget(QLabel("oblique series:"))
        layout.addWidget(self.oblique_combo)
        layout.addWidget(self.reshow_button)
        layout.addWidget(self.display_label)
        self._main_crosshair = None
        for layer in self.viewer.layers:
            self._mirror(layer)
        self._connections = [
            (self.viewer.layers.events.inserted, self._on_inserted),
            (self.viewer.layers.events.removed, self._on_removed),
            (self.viewer.layers.events.moved, self._on_moved),
            (self.viewer.dims.events.point, self._on_point),
            (self.viewer.dims.events.order, self._on_order),
            (self.viewer.dims.events.ndim, self._on_point),
            (self.viewer.layers.selection.events.active, self._on_active),
        ]
        for emitter, callback in self._connections:
            emitter.connect(callback)
        # the viewer's callback lists hold strong references: give them weak ones, so a viewer closed without
        # closing the dock does not keep the dock (and its two QtViewers) alive
        self._move_callback = _weak_callback(self._on_main_move)
        self._drag_wl = _weak_callback(self._wl_callback)
        self.viewer.mouse_move_callbacks.append(self._move_callback)
        self._on_order()
        self._on_active()
        self._on_point()

    def sizeHint(self):  # noqa: N802 (Qt)
        """About a third of a 1600-pixel window: the main canvas stays the big one, as in Slicer's layouts."""
        from qtpy.QtCore import QSize

        return QSize(480, 900)

    # ---- state ---------------------------------------------------------------------------------------------
    def frame(self):
        """The display frame of the viewer's medical layers (None: patient axes)."""
        for layer in self.viewer.layers:
            frame = layer_frame(layer)
            if frame is not None:
                return frame
        return None

    def point(self) -> tuple:
        """The crosshair's world point as the canvases show it: during a drag it can be ahead of the main
        viewer's ``dims.point``, which follows when the mouse rests or is released."""
        return self._shown_point if self._shown_point is not None else tuple(self.viewer.dims.point)

    def move_to(self, position, axes=None, *, preview: bool = False) -> None:
        """Move the crosshair to world ``position`` (only along ``axes`` of the last three, default all).

        Parameters
        ----------
        position : sequence of float
            World position (all dimensions).
        axes : sequence of int, optional
            Which of the three spatial axes (0, 1, 2) to move.
        preview : bool
            While dragging: every canvas draws the new planes of its image layers straight from the arrays
            (the same pixels, without napari's slicing machinery, see :func:`_draw_planes_directly`), and the
            main viewer's ``dims.point`` (its slider, its slice text, napari's slicing of every view) follows
            250 ms after the last move and on release.  Where a canvas cannot be drawn that way (a Labels
            layer, a lazy image, ...) napari slices it at once, as without ``preview``.
        """
        ndim = self.viewer.dims.ndim
        if ndim < 3:
            return
        position = np.asarray(position, float)[-3:]
        axes = (0, 1, 2) if axes is None else tuple(axes)
        point = list(self.point())
        for axis in axes:
            point[axis + ndim - 3] = float(position[axis])
        if preview and self._preview_main(point):
            self._shown_point = tuple(point)
            self._on_point(preview=True)
            return
        self._shown_point = None
        # napari emits one point event per changed axis: sync the views once, after the last one
        self._syncing = True
        try:
            self.viewer.dims.set_point(list(range(ndim)), point)
        finally:
            self._syncing = False
        self._on_point(preview=preview)

    def _preview_main(self, point) -> bool:
        """Draw the main canvas at ``point`` from the arrays (True), or say it must be sliced by napari."""
        dims = self.viewer.dims
        shown = self.point()
        if all(shown[axis] == point[axis] for axis in dims.not_displayed):
            return True  # the main canvas shows the same planes: nothing to draw
        visuals = getattr(getattr(self.viewer.window, "_qt_viewer", None), "layer_to_visual", None)
        return visuals is not None and _draw_planes_directly(self.viewer.layers, dims, visuals, point)

    def _commit_point(self) -> None:
        """Make the point the canvases show the main viewer's ``dims.point`` (napari then slices exactly)."""
        point, self._shown_point = self._shown_point, None
        if point is None or len(point) != self.viewer.dims.ndim:
            return
        self._syncing = True
        try:
            self.viewer.dims.set_point(list(range(len(point))), point)
        finally:
            self._syncing = False

    def request_move(self, position, axes=None) -> None:
        """Move the crosshair like :meth:`move_to`, but at the next event-loop turn, once for all requests.

        A drag delivers mouse moves faster than software OpenGL draws three canvases: only the latest
        position of a turn is sliced and drawn, the ones it replaced are dropped.  ``position`` and ``axes``
        are those of :meth:`move_to`.
        """
        self._settle_timer.stop()  # the mouse is still moving
        first = self._pending_move is None
        self._pending_move = (tuple(position), None if axes is None else tuple(axes))
        if first:
            QTimer.singleShot(0, _weak_callback(self._show_pending))

    def _show_pending(self) -> None:
        self.flush_move(preview=True)

    def flush_move(self, *, preview: bool = False) -> None:
        """Show the position :meth:`request_move` left pending now (nothing when none is).

        Parameters
        ----------
        preview : bool
            As in :meth:`move_to`; the default (a release) is napari's exact slicing in every view.
        """
        pending, self._pending_move = self._pending_move, None
        if pending is not None:
            self.move_to(*pending, preview=preview)
        elif not preview:
            self._on_point()

    def planes(self) -> list[str]:
        """The two planes shown in the dock (those the main canvas is not showing)."""
        ndim = self.viewer.dims.ndim
        sliced = self.viewer.dims.order[0] - (ndim - 3) if ndim >= 3 else 0
        main = _PLANE_OF_AXIS.get(sliced, "axial")
        return [p for p in ("axial", "coronal", "sagittal") if p != main]

    # ---- layers ------------------------------------------------------------------------------------------
    def _mirror(self, layer) -> None:
        if layer._type_string not in _MIRRORED_TYPES or id(layer) in self._mirrors:
            return
        if layer is self._main_crosshair:
            return
        from napari.layers import Layer

        data, state, kind = layer.as_layer_data_tuple()
        mirrors = []
        for view in self.views:
            mirror = Layer.create(layer.data, dict(state), kind)
            view.model.layers.append(mirror)
            mirrors.append(mirror)
        self._mirrors[id(layer)] = mirrors
        handlers = []  # the closures capture the mirror list, not the dock (no reference cycle through layers)
        for name in _SYNCED:
            emitter = getattr(layer.events, name, None)
            if emitter is None:
                continue

            def copy(event=None, name=name, layer=layer, mirrors=mirrors):
                for mirror in mirrors:
                    value = getattr(layer, name)
                    with contextlib.suppress(ValueError, TypeError):
                        setattr(mirror, name, value)

            emitter.connect(copy)
            handlers.append((emitter, copy))
        # "data" (new array) and "paint" (Labels edits); not "set_data", which napari emits after every slice
        for name in ("data", "paint"):
            emitter = getattr(layer.events, name, None)
            if emitter is None:
                continue

            def refresh(event=None, layer=layer, name=name, mirrors=mirrors):
                for mirror in mirrors:
                    if name == "data" and mirror.data is not layer.data:
                        mirror.data = layer.data
                    else:
                        mirror.refresh()

            emitter.connect(refresh)
            handlers.append((emitter, refresh))
        self._handlers[id(layer)] = handlers
        for view in self.views:
            view.set_plane(view.plane)
        self._update_crosshair()

    def _unmirror(self, layer) -> None:
        for emitter, callback in self._handlers.pop(id(layer), []):
            emitter.disconnect(callback)
        for view, mirror in zip(self.views, self._mirrors.pop(id(layer), []), strict=False):
            if mirror in view.model.layers:
                view.model.layers.remove(mirror)

    def _on_inserted(self, event) -> None:
        self._mirror(event.value)
        self._on_active()
        self._on_point()

    def _on_removed(self, event) -> None:
        self._unmirror(event.value)

    def _on_moved(self, event=None) -> None:
        order = [id(layer) for layer in self.viewer.layers]
        for index, view in enumerate(self.views):
            wanted = [self._mirrors[i][index] for i in order if i in self._mirrors]
            for position, mirror in enumerate(wanted):
                current = view.model.layers.index(mirror)
                if current != position:
                    view.model.layers.move(current, position)

    # ---- crosshair and planes ----------------------------------------------------------------------------
    def _crosshair_vectors(self) -> np.ndarray:
        ndim = self.viewer.dims.ndim
        point = np.asarray(self.viewer.dims.point, float)[-3:]
        low = np.asarray([r.start for r in self.viewer.dims.range], float)[-3:]
        high = np.asarray([r.stop for r in self.viewer.dims.range], float)[-3:]
        vectors = np.zeros((3, 2, ndim))
        vectors[:, 0, :] = np.asarray(self.viewer.dims.point, float)
        for axis in range(3):
            vectors[axis, 0, ndim - 3 + axis] = low[axis]
            vectors[axis, 1, ndim - 3 + axis] = high[axis] - low[axis]
        del point
        return vectors

    def _update_crosshair(self) -> None:
        if self.viewer.dims.ndim < 3 or not self._mirrors:
            return
        point, ranges = self.point(), self.viewer.dims.range
        for view in self.views:
            if view.model.dims.ndim == len(point):
                view.set_crosshair(point, ranges)
        if self._main_crosshair is not None and self._main_crosshair in self.viewer.layers:
            self._main_crosshair.data = self._crosshair_vectors()

    def _units(self):
        """The units of the viewer's image/labels layers (mm), so the crosshair does not mix units."""
        for layer in self.viewer.layers:
            if layer._type_string in ("image", "labels"):
                return tuple(str(u) for u in layer.units)
        return None

    def _toggle_main_crosshair(self, on: bool) -> None:
        if on and self.viewer.dims.ndim >= 3:
            self._main_crosshair = self.viewer.add_vectors(
                self._crosshair_vectors(),
                name="crosshair",
                edge_color="#ffcc00",
                edge_width=0.6,
                vector_style="line",
                units=self._units(),
            )
        elif self._main_crosshair is not None:
            if self._main_crosshair in self.viewer.layers:
                self.viewer.layers.remove(self._main_crosshair)
            self._main_crosshair = None

    def _on_order(self, event=None) -> None:
        for view, plane in zip(self.views, self.planes(), strict=True):
            view.set_plane(plane)
        self._on_point()

    def _on_point(self, event=None, preview: bool = False) -> None:
        if self._syncing or self._hidden:
            return
        if event is not None:
            self._shown_point = None  # the viewer's point moved by itself (its slider): it is what is shown
        elif not preview:
            self._commit_point()  # the mouse rests or was released: napari slices every canvas exactly
        self._syncing = True
        try:
            point = self.point()
            for view in self.views:
                dims = view.model.dims
                if dims.ndim != len(point):
                    continue
                # only the axes a view slices along (its own and any leading volume axis) change what it shows:
                # one set_point per view, so each view re-slices once per crosshair move
                sliced = dims.not_displayed
                changed = [a for a in sliced if dims.point[a] != point[a]]
                # while dragging, drawn straight from the arrays; napari's own slice when the mouse rests
                if changed and not (preview and view.preview_slice(point)):
                    dims.set_point(changed, [point[a] for a in changed])
                view.update_labels()
            self._update_crosshair()
            if preview:
                # napari re-meshes the main canvas's text box on every change (a quarter of the main canvas's
                # drawing with software OpenGL): its slice text follows when the mouse rests, its slider at once
                self._settle_timer.start()
            else:
                self._settle_timer.stop()
                self._update_main_overlay()
        finally:
            self._syncing = False

    def _update_main_overlay(self) -> None:
        ndim = self.viewer.dims.ndim
        if ndim < 3 or not self._mirrors:
            return
        sliced = self.viewer.dims.order[0] - (ndim - 3)
        plane = _PLANE_OF_AXIS.get(sliced)
        if plane is None:
            return
        frame = self.frame()
        text = _slice_text(plane, self.viewer.dims.point[self.viewer.dims.order[0]], frame)
        overlay = self.viewer.canvas.overlays.text
        # napari re-places a text anchored right or bottom after it is drawn (a second frame per move): top left,
        # and no change when the text is the same.  (Its box stays: switching it off crashed vispy's text draw.)
        overlay.position = "top_left"
        if overlay.text != text:
            overlay.text = text
        overlay.visible = True

    # ---- readout, presets, window/level ------------------------------------------------------------------
    def _on_main_move(self, viewer, event) -> None:
        info = readout(viewer, event.position)
        self.readout_label.setText(readout_text(info))
        if "Shift" in {str(getattr(m, "name", m)) for m in event.modifiers}:
            self.move_to(event.position)

    def _image_layer(self):
        active = self.viewer.layers.selection.active
        if active is not None and active._type_string == "image":
            return active
        images = [layer for layer in self.viewer.layers if layer._type_string == "image"]
        return images[-1] if images else None

    def _on_active(self, event=None) -> None:
        layer = self._image_layer()
        self.preset_combo.clear()
        if layer is None:
            self.display_label.setText("")
            return
        stored = layer.metadata.get(GEOMETRY_KEY) or {}
        modality = stored.get("modality", "")
        names = list(presets_for(modality))
        self.preset_combo.addItems([*names, "auto (0.5–99.5 percentiles)"])
        display = stored.get("display") or {}
        if display:
            self.display_label.setText(
                f"{layer.name}: {display.get('mode')} in {display.get('frame')}; residual "
                f"{display.get('residual_degrees', 0):.2f}° ({display.get('residual_mm', 0):.2f} mm)"
                + (
                    f"; series obliquity {display['source_obliquity_degrees']:.2f}°"
                    if "source_obliquity_degrees" in display
                    else ""
                )
            )
        else:
            self.display_label.setText(f"{layer.name}: no medical geometry (shown with its scale/translate)")

    def _on_reshow(self, *_) -> None:
        self.reshow_selected()

    def reshow_selected(self) -> str:
        """Read the selected image layer's source again and show it with the current oblique-series choice.

        Returns
        -------
        str
            What was done (also shown in the dock).
        """
        layer = self._image_layer()
        stored = (layer.metadata.get(GEOMETRY_KEY) or {}) if layer is not None else {}
        source = stored.get("source_path")
        if layer is None or not source:
            message = "the selected layer was not opened from a DICOM or NIfTI file"
            self.display_label.setText(message)
            return message
        from ...io.volumes import read_volume
        from ..layers import layer_data_tuple

        volume = read_volume(source, series_uid=stored.get("series_uid"), stack=stored.get("stack") or None)
        others = [other for other in self.viewer.layers if other is not layer]
        frame = None
        if OBLIQUE_DISPLAY["mode"] == "frame":
            frame = next((layer_frame(o) for o in others if layer_frame(o) is not None), None)
        data, kwargs, kind = layer_data_tuple(volume, "image", name=layer.name, frame=frame)
        index = list(self.viewer.layers).index(layer)
        for key in ("colormap", "opacity", "blending", "gamma"):
            kwargs[key] = getattr(layer, key).name if key == "colormap" else getattr(layer, key)
        kwargs["contrast_limits"] = tuple(layer.contrast_limits)
        from napari.layers import Layer

        self.viewer.layers.remove(layer)
        new = Layer.create(data, kwargs, kind)
        self.viewer.layers.insert(index, new)
        self.viewer.layers.selection.active = new
        self._on_active()
        return self.display_label.text()

    def apply_preset(self, name: str | None = None) -> None:
        """Set the selected image layer's contrast to a window preset (or the automatic MR window).

        Parameters
        ----------
        name : str, optional
            Preset name; default the combo box's choice.
        """
        layer = self._image_layer()
        if layer is None:
            return
        name = name or self.preset_combo.currentText()
        stored = layer.metadata.get(GEOMETRY_KEY) or {}
        presets = presets_for(stored.get("modality", ""))
        if name in presets:
            level, width = presets[name]
        else:
            sample = np.asarray(layer.data[:: max(1, layer.data.shape[0] // 16)])
            level, width = auto_window(sample)
        layer.contrast_limits = (level - width / 2, level + width / 2)

    def _toggle_wl_drag(self, on: bool) -> None:
        if on and self._drag_wl not in self.viewer.mouse_drag_callbacks:
            self.viewer.mouse_drag_callbacks.append(self._drag_wl)
        elif not on and self._drag_wl in self.viewer.mouse_drag_callbacks:
            self.viewer.mouse_drag_callbacks.remove(self._drag_wl)
        for layer in self.viewer.layers:
            if layer._type_string == "image":
                layer.mouse_pan = not on

    def _wl_callback(self, viewer, event):
        layer = self._image_layer()
        if layer is None:
            return
        low, high = layer.contrast_limits
        start = np.asarray(event.pos, float)
        level, width = (low + high) / 2, high - low
        rng = layer.contrast_limits_range
        per_pixel = max((rng[1] - rng[0]) / 500.0, 1e-6)
        yield
        while event.type == "mouse_move":
            dx, dy = np.asarray(event.pos, float) - start
            new_width = max(width + dx * per_pixel, per_pixel)
            new_level = level - dy * per_pixel
            layer.contrast_limits = (new_level - new_width / 2, new_level + new_width / 2)
            yield

    # ---- teardown -----------------------------------------------------------------------------------------
    def close_views(self) -> None:
        """Disconnect every handler from the main viewer and close the extra views."""
        self._settle_timer.stop()
        self._pending_move = None
        self._commit_point()  # the main canvas shows the viewer's own point again
        for emitter, callback in getattr(self, "_connections", []):
            emitter.disconnect(callback)
        self._connections = []
        if self._move_callback in self.viewer.mouse_move_callbacks:
            self.viewer.mouse_move_callbacks.remove(self._move_callback)
        self._toggle_wl_drag(False)
        for layer in list(self.viewer.layers):
            self._unmirror(layer)
        for view in self.views:
            view.model.layers.clear()
            view.qt_viewer.close()

    def hideEvent(self, event) -> None:  # noqa: N802 (Qt)
        self._settle_timer.stop()
        self._commit_point()
        self._hidden = True
        super().hideEvent(event)

    def showEvent(self, event) -> None:  # noqa: N802 (Qt)
        super().showEvent(event)
        if self._hidden:
            self._hidden = False
            self._on_order()

    def closeEvent(self, event) -> None:  # noqa: N802 (Qt)
        self.close_views()
        super().closeEvent(event)


def lps_of_point(viewer: napari.Viewer) -> np.ndarray:
    """LPS mm of the crosshair (the main viewer's ``dims.point``), in the display frame of its layers.

    Parameters
    ----------
    viewer : napari.Viewer

    Returns
    -------
    numpy.ndarray
    """
    frame = None
    for layer in viewer.layers:
        frame = layer_frame(layer)
        if frame is not None:
            break
    return world_to_lps(np.asarray(viewer.dims.point, float)[-3:], frame)

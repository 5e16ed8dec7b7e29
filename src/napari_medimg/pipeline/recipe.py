"""Recipes: a versioned, human-readable list of registry operations that replays on any scan.

A recipe is JSON (or YAML) of this shape::

    {"version": 1,
     "name": "lung nodules",
     "steps": [
       {"op": "threshold", "params": {"method": "otsu"}},
       {"op": "islands", "params": {"operation": "remove_small", "min_size_mm3": 50}},
       {"op": "features", "params": {"groups": ["shape", "firstorder"], "bin_width": 25},
        "inputs": {"image": "input", "labels": "step2"}}
     ]}

``op`` is an operation name of :mod:`napari_medimg.ops` and ``params`` its core keyword parameters; both are
validated through the registry, so an unknown operation or parameter is refused with a message naming it and
the valid ones.

**Where a step's inputs come from.**  Every step has an id, ``"step1"``, ``"step2"`` … in order, or its own
``"id"``.  An operation declares its data inputs (``image``, ``mask``, ``labels``, ``seeds``, ``table`` …).  A
step may name the source of each one in ``"inputs"``: ``"input"`` (the scan the recipe runs on) or the id of
an earlier step.  An input it does not name is the *latest output of that kind* before the step: for
``image`` the latest image (the scan itself when no step made one), for ``mask`` the latest mask or labels,
for ``labels`` the latest labels or mask, for ``table`` the latest table.  Seeds, which no step produces, are
given in place as a list of points in mm (LPS ``x, y, z`` for 3D, ``y, x`` for 2D):
``"inputs": {"seeds": [[12.5, -40.0, 7.5]]}``.

The recipe hash (:attr:`Recipe.hash`) is the SHA-256 of the canonical JSON of the validated steps (defaults
filled in, inputs resolved), so two files that mean the same run have the same hash; names and descriptions
do not count.  Batch runs use it to resume.

>>> from napari_medimg.pipeline.recipe import load_recipe, run_recipe   # doctest: +SKIP
>>> result = run_recipe(load_recipe("recipe.json"), read_volume("ct.nii.gz"))   # doctest: +SKIP
>>> result.labels, result.features   # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import json
import os
import time
import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .. import ops
from ..geometry import Volume
from ..progress import ProgressCallback, report
from .steps import Step, json_safe, session_log

__all__ = [
    "RECIPE_VERSION",
    "INPUT",
    "RecipeError",
    "RecipeStep",
    "Recipe",
    "RecipeResult",
    "load_recipe",
    "save_recipe",
    "recipe_from_steps",
    "run_recipe",
    "run_step",
]

#: the recipe format version this code reads and writes
RECIPE_VERSION = 1
#: the reference to the scan a recipe runs on
INPUT = "input"
#: the column a classifier adds to a table; such a table is written as predictions.csv
PREDICTED_COLUMN = "predicted_class"

#: kinds of step outputs an input of each kind accepts, most specific first
_ACCEPTS = {
    "image": ("image",),
    "mask": ("mask", "labels"),
    "labels": ("labels", "mask"),
    "table": ("table",),
    "predictions": ("predictions",),
    "model": ("model",),
    "seeds": ("seeds",),
}
#: kinds that are images on the scan's voxel grid (wrapped into a Volume when an op returns an array)
_VOLUME_KINDS = ("image", "mask", "labels")
_RECIPE_KEYS = {"version", "name", "description", "steps"}
_STEP_KEYS = {"op", "params", "inputs", "id"}


class RecipeError(ValueError):
    """A recipe that cannot be read, validated or run (the message says which step and why)."""


@dataclass
class RecipeStep:
    """One recipe step: operation ``op`` with ``params``; ``inputs`` names sources by input name.

    Parameters
    ----------
    op : str
        Registry operation name.
    params : dict
        The operation's keyword parameters (core names; JSON values).
    inputs : dict
        Optional sources of the operation's data inputs: ``"input"``, an earlier step's id, or (for
        ``seeds``) a list of points in mm.  Inputs not named take the latest output of their kind.
    id : str, optional
        The step's id; ``"step<N>"`` (1-based position) when omitted.
    """

    op: str
    params: dict = field(default_factory=dict)
    inputs: dict = field(default_factory=dict)
    id: str | None = None

    def to_dict(self, step_id: str | None = None) -> dict:
        """This step as a JSON-ready dict (``id`` written only when it is not the default)."""
        data: dict = {"op": self.op, "params": json_safe(dict(self.params))}
        if self.inputs:
            data["inputs"] = json_safe(dict(self.inputs))
        if self.id is not None and self.id != step_id:
            data["id"] = self.id
        return data


@dataclass(frozen=True)
class PlannedStep:
    """A validated step: its id, operation, full parameters and resolved input sources."""

    id: str
    op: str
    params: dict
    inputs: tuple  # one source per operation input: "input", a step id, or a literal (seeds)
    output: str


@dataclass
class Recipe:
    """A versioned list of :class:`RecipeStep` values.

    Parameters
    ----------
    steps : list of RecipeStep
        The steps in run order.
    name, description : str, optional
        Free text (not part of the hash).
    version : int
        The format version; only :data:`RECIPE_VERSION` is read.

    Attributes
    ----------
    skipped : list of str
        Steps of a session log that :func:`recipe_from_steps` left out (not saved).
    """

    steps: list[RecipeStep] = field(default_factory=list)
    name: str | None = None
    description: str | None = None
    version: int = RECIPE_VERSION
    skipped: list[str] = field(default_factory=list, compare=False)

    # ---- identity and validation ------------------------------------------------------------------------
    def step_id(self, index: int) -> str:
        """The id of step ``index`` (0-based): its own ``id`` or ``"step<index + 1>"``."""
        step = self.steps[index]
        return step.id or f"step{index + 1}"

    def plan(self) -> list[PlannedStep]:
        """Validate every step through the registry and resolve its inputs.

        Returns
        -------
        list of PlannedStep
            One per step, parameters complete (defaults filled in), inputs resolved.

        Raises
        ------
        RecipeError
            An unknown operation or parameter, a bad input reference, or a kind that does not match; the
            message names the step and the valid choices.
        """
        if self.version != RECIPE_VERSION:
            raise RecipeError(f"recipe version {self.version!r} is not supported; this reads version 1")
        if not self.steps:
            raise RecipeError("the recipe has no steps")
        planned: list[PlannedStep] = []
        kinds: dict[str, str] = {INPUT: "image"}
        latest: dict[str, str] = {"image": INPUT}
        for index, step in enumerate(self.steps):
            step_id = self.step_id(index)
            where = f"step {index + 1} ({step.op!r})"
            if step_id in kinds:
                raise RecipeError(f"{where}: id {step_id!r} is used twice")
            try:
                operation = ops.get(step.op)
                params = operation.validate(step.params)
            except (ops.UnknownOperationError, ops.ParameterError) as error:
                raise RecipeError(f"{where}: {error}") from None
            unknown = sorted(set(step.inputs) - set(operation.inputs))
            if unknown:
                raise RecipeError(
                    f"{where}: operation {step.op!r} has no input(s) {', '.join(map(repr, unknown))}; "
                    f"valid: {', '.join(operation.inputs) or '(none)'}"
                )
            sources = []
            for name in operation.inputs:
                sources.append(self._source(where, name, step.inputs.get(name), kinds, latest))
            planned.append(PlannedStep(step_id, step.op, json_safe(params), tuple(sources), operation.output))
            kinds[step_id] = operation.output
            for kind, accepted in _ACCEPTS.items():
                if operation.output in accepted:
                    latest[kind] = step_id
        return planned

    @staticmethod
    def _source(where: str, name: str, given, kinds: dict, latest: dict):
        accepted = _ACCEPTS.get(name, (name,))
        if given is None:
            if name not in latest:
                if name == "seeds":
                    raise RecipeError(f'{where}: give the seed points in mm as "inputs": {{"seeds": [...]}}')
                raise RecipeError(f"{where}: no earlier step makes a {name!r} for this step")
            return latest[name]
        if name == "seeds" and isinstance(given, list):
            points = np.asarray(given, float)
            if points.ndim != 2 or points.shape[1] not in (2, 3) or not len(points):
                raise RecipeError(f"{where}: seeds are a list of [x, y, z] (or [y, x]) points in mm")
            return json_safe(points)
        if not isinstance(given, str):
            raise RecipeError(f"{where}: input {name!r} must name {INPUT!r} or an earlier step id")
        if given not in kinds:
            raise RecipeError(
                f"{where}: input {name!r} refers to {given!r}; valid: {', '.join(map(repr, kinds))}"
            )
        if kinds[given] not in accepted:
            raise RecipeError(
                f"{where}: input {name!r} needs a {' or '.join(accepted)}, but {given!r} makes a {kinds[given]}"
            )
        return given

    def validate(self) -> Recipe:
        """Raise :class:`RecipeError` when the recipe does not validate; return it otherwise."""
        self.plan()
        return self

    @property
    def hash(self) -> str:
        """SHA-256 (hex) of the canonical JSON of the validated, resolved steps."""
        canonical = [{"op": p.op, "params": p.params, "inputs": list(p.inputs)} for p in self.plan()]
        text = json.dumps(
            {"version": self.version, "steps": canonical}, sort_keys=True, separators=(",", ":")
        )
        return hashlib.sha256(text.encode()).hexdigest()

    # ---- editing ---------------------------------------------------------------------------------------
    def append(self, op: str, params: dict | None = None, inputs: dict | None = None) -> RecipeStep:
        """Append a step and return it (validate with :meth:`validate`)."""
        step = RecipeStep(op, dict(params or {}), dict(inputs or {}))
        self.steps.append(step)
        return step

    def remove(self, index: int) -> RecipeStep:
        """Remove and return step ``index``; later references to it are dropped (they fall back to the
        latest output of their kind)."""
        step_id = self.step_id(index)
        self._freeze_ids()
        removed = self.steps.pop(index)
        for step in self.steps:
            step.inputs = {k: v for k, v in step.inputs.items() if v != step_id}
        return removed

    def move(self, index: int, new_index: int) -> None:
        """Move step ``index`` to ``new_index``; ids are kept, so explicit references still point to the
        same steps (:meth:`validate` refuses an order where a step reads a later one)."""
        self._freeze_ids()
        self.steps.insert(new_index, self.steps.pop(index))
        self._default_ids()

    def _freeze_ids(self) -> None:
        referenced = {v for s in self.steps for v in s.inputs.values() if isinstance(v, str)}
        for index, step in enumerate(self.steps):
            if step.id is None and f"step{index + 1}" in referenced:
                step.id = f"step{index + 1}"

    def _default_ids(self) -> None:
        for index, step in enumerate(self.steps):
            if step.id == f"step{index + 1}":
                step.id = None

    def set_params(self, index: int, params: dict) -> None:
        """Replace step ``index``'s parameters (validated now: a bad name or value raises RecipeError)."""
        step = self.steps[index]
        try:
            ops.get(step.op).validate(params)
        except (ops.UnknownOperationError, ops.ParameterError) as error:
            raise RecipeError(f"step {index + 1} ({step.op!r}): {error}") from None
        step.params = json_safe(dict(params))

    # ---- serialisation ---------------------------------------------------------------------------------
    def to_dict(self) -> dict:
        """The recipe as a JSON-ready dict."""
        data: dict = {"version": self.version}
        if self.name:
            data["name"] = self.name
        if self.description:
            data["description"] = self.description
        data["steps"] = [s.to_dict(f"step{i + 1}") for i, s in enumerate(self.steps)]
        return data

    def to_json(self, indent: int | None = 2) -> str:
        """The recipe as JSON text."""
        return json.dumps(self.to_dict(), indent=indent)

    @classmethod
    def from_dict(cls, data) -> Recipe:
        """A recipe from its dict form (structure checked here; operations by :meth:`validate`).

        Raises
        ------
        RecipeError
            Not a recipe object, unknown keys, a wrong version or malformed steps.
        """
        if not isinstance(data, dict):
            raise RecipeError("a recipe is an object with 'version' and 'steps'")
        unknown = sorted(set(data) - _RECIPE_KEYS)
        if unknown:
            raise RecipeError(
                f"unknown recipe key(s) {', '.join(map(repr, unknown))}; valid: {', '.join(sorted(_RECIPE_KEYS))}"
            )
        if "version" not in data:
            raise RecipeError("the recipe has no 'version' (this reads version 1)")
        if data["version"] != RECIPE_VERSION:
            raise RecipeError(f"recipe version {data['version']!r} is not supported; this reads version 1")
        if not isinstance(data.get("steps"), list):
            raise RecipeError("the recipe needs a 'steps' list")
        steps = []
        for index, item in enumerate(data["steps"]):
            where = f"step {index + 1}"
            if not isinstance(item, dict) or not isinstance(item.get("op"), str):
                raise RecipeError(f"{where}: a step is an object with an 'op' name")
            unknown = sorted(set(item) - _STEP_KEYS)
            if unknown:
                raise RecipeError(
                    f"{where}: unknown key(s) {', '.join(map(repr, unknown))}; valid: {', '.join(sorted(_STEP_KEYS))}"
                )
            params, inputs = item.get("params", {}), item.get("inputs", {})
            if not isinstance(params, dict) or not isinstance(inputs, dict):
                raise RecipeError(f"{where}: 'params' and 'inputs' are objects")
            step_id = item.get("id")
            if step_id is not None and (not isinstance(step_id, str) or step_id == INPUT or not step_id):
                raise RecipeError(f"{where}: 'id' must be a non-empty string other than {INPUT!r}")
            steps.append(RecipeStep(item["op"], dict(params), dict(inputs), step_id))
        return cls(steps, data.get("name"), data.get("description"), data["version"])

    @classmethod
    def from_json(cls, text: str) -> Recipe:
        """A recipe from JSON text."""
        try:
            data = json.loads(text)
        except json.JSONDecodeError as error:
            raise RecipeError(f"not valid JSON: {error}") from None
        return cls.from_dict(data)


def load_recipe(path: str | os.PathLike, *, validate: bool = True) -> Recipe:
    """Read a recipe file (``.json``, or ``.yaml``/``.yml``) and validate it.

    Parameters
    ----------
    path : path-like
        The recipe file.
    validate : bool
        Validate through the registry now (default); otherwise only the structure is checked.

    Returns
    -------
    Recipe

    Raises
    ------
    RecipeError
        The file is not a valid recipe (the message names the file and the problem).
    FileNotFoundError
        The file does not exist.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"recipe {path} does not exist")
    text = path.read_text(encoding="utf-8")
    try:
        if path.suffix.lower() in (".yaml", ".yml"):
            import yaml

            try:
                data = yaml.safe_load(text)
            except yaml.YAMLError as error:
                raise RecipeError(f"not valid YAML: {error}") from None
            recipe = Recipe.from_dict(data)
        else:
            recipe = Recipe.from_json(text)
        if validate:
            recipe.validate()
    except RecipeError as error:
        raise RecipeError(f"recipe {path}: {error}") from None
    return recipe


def save_recipe(recipe: Recipe, path: str | os.PathLike, *, overwrite: bool = False) -> Path:
    """Validate ``recipe`` and write it atomically as JSON (or YAML for ``.yaml``/``.yml``).

    Parameters
    ----------
    recipe : Recipe
    path : path-like
    overwrite : bool
        Replace an existing file.

    Returns
    -------
    Path
        The written file.
    """
    from ..io.atomic import atomic_path

    recipe.validate()
    path = Path(path)
    if path.suffix.lower() in (".yaml", ".yml"):
        import yaml

        text = yaml.safe_dump(recipe.to_dict(), sort_keys=False)
    else:
        text = recipe.to_json() + "\n"
    with atomic_path(path, overwrite=overwrite) as temporary:
        Path(temporary).write_text(text, encoding="utf-8")
    return path


# -- from recorded steps -----------------------------------------------------------------------------------


def recipe_from_steps(
    steps: Iterable[Step] | None = None, *, name: str | None = None, skip_unknown: bool = True
) -> Recipe:
    """Turn recorded steps (by default :func:`~napari_medimg.pipeline.steps.session_log`) into a recipe.

    Step inputs and outputs are layer names.  A layer that no recorded step produced is the scan the recipe
    runs on (``"input"``); a layer a step produced is that step's output (the latest step, when a layer was
    edited in place several times).  An ``undo`` step drops the latest step that wrote its layer.  Explicit
    ``inputs`` are written only where the default rule (latest output of the kind) would pick another step.

    Parameters
    ----------
    steps : iterable of Step, optional
        Recorded steps; the session log when omitted.
    name : str, optional
        The recipe's name.
    skip_unknown : bool
        Leave out steps whose name is not a registered operation (listed in :attr:`Recipe.skipped`);
        with False they raise.

    Returns
    -------
    Recipe

    Raises
    ------
    RecipeError
        A step reads a second, different source image, or reads a mask/labels layer no step made.
    """
    steps = list(session_log() if steps is None else steps)
    entries: list[tuple[Step, ops.Operation]] = []
    skipped = []
    for step in steps:
        if step.name == "undo":
            target = step.output or (step.inputs[0] if step.inputs else None)
            for index in range(len(entries) - 1, -1, -1):
                if entries[index][0].output == target:
                    entries.pop(index)
                    break
            continue
        try:
            entries.append((step, ops.get(step.name)))
        except ops.UnknownOperationError:
            if not skip_unknown:
                raise RecipeError(f"recorded step {step.name!r} is not a registered operation") from None
            skipped.append(step.name)
    recipe = Recipe(name=name, skipped=skipped)
    producer: dict[str, str] = {}
    source: str | None = None
    for index, (step, operation) in enumerate(entries):
        step_id = f"step{index + 1}"
        refs = {}
        for kind, layer in zip(operation.inputs, step.inputs, strict=False):
            if layer in producer:
                refs[kind] = producer[layer]
            elif kind == "image":
                if source is not None and layer != source:
                    raise RecipeError(
                        f"recorded step {step.name!r} reads image {layer!r} but the recipe already runs on "
                        f"{source!r}; a recipe replays on one scan"
                    )
                source = layer
                refs[kind] = INPUT
            else:
                raise RecipeError(
                    f"recorded step {step.name!r} reads {kind} layer {layer!r} that no recorded step made"
                )
        recipe.steps.append(RecipeStep(step.name, dict(step.params), refs))
        if step.output:
            producer[step.output] = step_id
    if not recipe.steps:
        raise RecipeError("no recorded step is a registered operation; run a tool first")
    _drop_default_inputs(recipe)
    return recipe


def _drop_default_inputs(recipe: Recipe) -> None:
    """Remove explicit inputs equal to what the default rule resolves (keeps recipes short)."""
    for index, step in enumerate(recipe.steps):
        for name in list(step.inputs):
            ref = step.inputs.pop(name)
            try:
                position = ops.get(step.op).inputs.index(name)
                same = recipe.plan()[index].inputs[position] == ref
            except RecipeError:
                same = False
            if not same:
                step.inputs[name] = ref


# -- running -------------------------------------------------------------------------------------------------


@dataclass
class RecipeResult:
    """What :func:`run_recipe` returns: every step's output plus timings and warnings.

    Attributes
    ----------
    outputs : dict
        Step id → output (a :class:`~napari_medimg.geometry.Volume` for images, masks and labels; a
        DataFrame for tables; whatever the operation returns otherwise).
    kinds : dict
        Step id → output kind.
    timings : dict
        Step id → seconds.
    warnings : list of str
        Warnings the operations raised (``"step2 (islands): ..."``).
    """

    outputs: dict = field(default_factory=dict)
    kinds: dict = field(default_factory=dict)
    timings: dict = field(default_factory=dict)
    warnings: list = field(default_factory=list)

    def last(self, *kinds: str):
        """The latest output of one of ``kinds`` (None when no step made one)."""
        for step_id in reversed(list(self.outputs)):
            if self.kinds[step_id] in kinds:
                return self.outputs[step_id]
        return None

    @property
    def labels(self) -> Volume | None:
        """The last mask or labels volume."""
        return self.last("labels", "mask")

    def _tables(self, predictions: bool):
        for step_id in reversed(list(self.outputs)):
            output, kind = self.outputs[step_id], self.kinds[step_id]
            classified = kind == "predictions" or PREDICTED_COLUMN in getattr(output, "columns", ())
            if (kind in ("table", "predictions")) and classified == predictions:
                return output
        return None

    @property
    def features(self):
        """The last feature table (a DataFrame without predictions), or None."""
        return self._tables(predictions=False)

    @property
    def predictions(self):
        """The last predictions: an output of kind ``predictions`` or a table with a ``predicted_class``
        column (what the classifier operations return), or None."""
        return self._tables(predictions=True)


def _as_volume(value, like: Volume | None):
    if isinstance(value, Volume) or like is None:
        return value
    if hasattr(value, "shape") and hasattr(value, "ndim") and tuple(value.shape) == like.shape:
        return like.with_array(value)
    return value


def run_step(op: str, *inputs, progress: ProgressCallback | None = None, **params):
    """Run one registry operation on Volumes; an array result comes back as a Volume on the input's grid.

    Parameters
    ----------
    op : str
        Operation name.
    *inputs
        The operation's data inputs (Volumes, tables, seed points in mm).
    progress : callable, optional
        ``progress(done, total)``.
    **params
        The operation's parameters (validated).

    Returns
    -------
    Volume or object
        The operation's output.

    Example
    -------
    >>> mask = run_step("threshold", volume, method="otsu")   # doctest: +SKIP
    """
    operation = ops.get(op)
    like = next((v for v in inputs if isinstance(v, Volume)), None)
    result = operation(*inputs, progress=progress, **params)
    return _as_volume(result, like) if operation.output in _VOLUME_KINDS else result


def run_recipe(
    recipe: Recipe | dict | str | os.PathLike,
    volume: Volume,
    *,
    progress: ProgressCallback | None = None,
    on_step: Callable[[str, Any], None] | None = None,
) -> RecipeResult:
    """Run every step of ``recipe`` on ``volume``.

    Parameters
    ----------
    recipe : Recipe, dict or path
        The recipe (a path is read with :func:`load_recipe`).
    volume : Volume
        The scan (the ``"input"`` image).
    progress : callable, optional
        ``progress(done, total)`` with one unit per step; raising
        :class:`~napari_medimg.progress.Cancelled` stops between steps.
    on_step : callable, optional
        ``on_step(step_id, output)`` after each step.

    Returns
    -------
    RecipeResult

    Raises
    ------
    RecipeError
        The recipe does not validate, or a step fails (the message names the step).
    """
    recipe = _as_recipe(recipe)
    plan = recipe.plan()
    result = RecipeResult()
    values: dict[str, Any] = {INPUT: volume}
    total = len(plan)
    report(progress, 0, total)
    for done, step in enumerate(plan, 1):
        inputs = [values[s] if isinstance(s, str) else np.asarray(s, float) for s in step.inputs]
        started = time.perf_counter()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                output = run_step(step.op, *inputs, **step.params)
            except (ops.ParameterError, ValueError, TypeError) as error:
                raise RecipeError(f"{step.id} ({step.op}): {error}") from error
        result.timings[step.id] = time.perf_counter() - started
        result.warnings += [f"{step.id} ({step.op}): {w.message}" for w in caught]
        values[step.id] = output
        result.outputs[step.id] = output
        result.kinds[step.id] = step.output
        if on_step is not None:
            on_step(step.id, output)
        report(progress, done, total)
    return result


def _as_recipe(recipe) -> Recipe:
    if isinstance(recipe, Recipe):
        return recipe
    if isinstance(recipe, dict):
        return Recipe.from_dict(recipe)
    if isinstance(recipe, (str, os.PathLike)):
        return load_recipe(recipe)
    raise TypeError(f"a recipe is a Recipe, a dict or a path, not {type(recipe).__name__}")


def ops_used(recipe: Recipe) -> Sequence[str]:
    """The distinct operation names of ``recipe``, in order of first use."""
    return list(dict.fromkeys(step.op for step in recipe.steps))

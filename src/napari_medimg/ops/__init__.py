"""The operation registry: every named operation the widgets, the CLI, recipes and batch runs call.

An :class:`Operation` wraps one core function.  Its data inputs (``image``, ``mask``, ``labels``, ``seeds``,
``table`` …) are positional; its parameters are keyword-only, typed, unit-named (``radius_mm``,
``min_size_mm3``) and carry defaults.  The registry derives each parameter's JSON type, choices (from
``Literal`` annotations), unit (from the name's suffix) and description (from the function's numpydoc
``Parameters`` section), so the function's signature is the single source of truth.

Operations are declared in the modules of this package (one module per area, e.g. ``ops/segment.py``); the
registry imports them all the first time a name is looked up, as the CLI does with its commands.

>>> from napari_medimg import ops
>>> op = ops.get("threshold")            # doctest: +SKIP
>>> mask = ops.run("threshold", volume, method="otsu")   # doctest: +SKIP
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import re
import sys
import threading
import types
import typing
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = [
    "Operation",
    "Parameter",
    "register",
    "get",
    "names",
    "run",
    "catalogue",
    "UnknownOperationError",
    "ParameterError",
]

#: data kinds an operation takes or returns
DataKind = Literal["image", "mask", "labels", "seeds", "table", "predictions", "model"]

#: unit suffixes of parameter names and the unit they mean
_UNIT_SUFFIXES = (
    ("_mm3", "mm³"),
    ("_mm2", "mm²"),
    ("_mm", "mm"),
    ("_ml", "mL"),
    ("_hu", "HU"),
    ("_deg", "degree"),
    ("_s", "s"),
)


class UnknownOperationError(ValueError):
    """An operation name that is not in the registry."""


class ParameterError(ValueError):
    """Parameters an operation does not take, or values of the wrong type."""


@dataclass(frozen=True)
class Parameter:
    """One keyword parameter of an operation, described for forms, schemas and validation.

    Parameters
    ----------
    name : str
        The core function's parameter name (unit-suffixed for lengths: ``radius_mm``).
    kind : str
        JSON type: ``number``, ``integer``, ``boolean``, ``string``, ``array``, ``object`` or ``any``.
    default : object
        The default (``inspect.Parameter.empty`` when required).
    choices : tuple, optional
        Allowed values (from a ``Literal`` annotation).
    unit : str, optional
        Unit derived from the name's suffix (``mm``, ``mm³`` …).
    nullable : bool
        Whether None is allowed.
    item_kind : str, optional
        JSON type of an array's items.
    description : str
        First sentence of the parameter's numpydoc description.
    """

    name: str
    kind: str  # JSON type: number, integer, boolean, string, array, object, or "any"
    default: Any = inspect.Parameter.empty
    choices: tuple | None = None
    unit: str | None = None
    nullable: bool = False
    item_kind: str | None = None  # for arrays: the JSON type of the items
    description: str = ""

    @property
    def required(self) -> bool:
        """True when the parameter has no default."""
        return self.default is inspect.Parameter.empty

    def schema(self) -> dict:
        """This parameter as a JSON schema fragment.

        Returns
        -------
        dict
            ``type``, ``enum``, ``default``, ``unit`` and ``description`` as they apply.
        """
        schema: dict = {}
        if self.kind != "any":
            schema["type"] = [self.kind, "null"] if self.nullable else self.kind
        if self.kind == "array" and self.item_kind:
            schema["items"] = {"type": self.item_kind}
        if self.choices is not None:
            schema["enum"] = list(self.choices) + ([None] if self.nullable else [])
        if not self.required:
            schema["default"] = _json_default(self.default)
        if self.unit:
            schema["unit"] = self.unit
        if self.description:
            schema["description"] = self.description
        return schema

    def check(self, value: Any) -> Any:
        """``value`` converted to this parameter's type, or :class:`ParameterError` naming what is wrong.

        Parameters
        ----------
        value : object
            A JSON-like value.

        Returns
        -------
        object
            The value (ints become floats for numbers, sequences become lists).

        Raises
        ------
        ParameterError
            For a value of the wrong type, outside the choices, or None where not allowed.
        """
        if value is None:
            if self.nullable or self.default is None:
                return None
            raise ParameterError(f"parameter {self.name!r} may not be null")
        if self.choices is not None and value not in self.choices:
            raise ParameterError(
                f"parameter {self.name!r} is {value!r}; valid: {', '.join(map(repr, self.choices))}"
            )
        if self.kind == "number":
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ParameterError(f"parameter {self.name!r} must be a number, not {value!r}")
            return float(value)
        if self.kind == "integer":
            if isinstance(value, bool) or not (
                isinstance(value, int) or (isinstance(value, float) and value.is_integer())
            ):
                raise ParameterError(f"parameter {self.name!r} must be an integer, not {value!r}")
            return int(value)
        if self.kind == "boolean" and not isinstance(value, bool):
            raise ParameterError(f"parameter {self.name!r} must be true or false, not {value!r}")
        if self.kind == "string" and not isinstance(value, str):
            raise ParameterError(f"parameter {self.name!r} must be a string, not {value!r}")
        if self.kind == "array":
            if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
                raise ParameterError(f"parameter {self.name!r} must be a list, not {value!r}")
            return list(value)
        if self.kind == "object" and not isinstance(value, dict):
            raise ParameterError(f"parameter {self.name!r} must be an object, not {value!r}")
        return value


@dataclass(frozen=True)
class Operation:
    """A named core function with its data inputs, output kind and described parameters.

    Parameters
    ----------
    name : str
        Registry name.
    function : callable
        The core function: data inputs positional, parameters keyword-only.
    inputs : tuple of str
        Kinds of the data inputs (``image``, ``mask``, ``labels`` …), in order.
    output : str
        Kind of the result.
    description : str
        One sentence.
    parameters : tuple of Parameter
        The keyword parameters.
    takes_progress : bool
        Whether the function accepts ``progress``.
    """

    name: str
    function: Callable
    inputs: tuple[str, ...]
    output: str
    description: str
    parameters: tuple[Parameter, ...] = field(default_factory=tuple)
    takes_progress: bool = False

    def parameter(self, name: str) -> Parameter:
        """The parameter called ``name``.

        Parameters
        ----------
        name : str
            Parameter name.

        Returns
        -------
        Parameter
            Its description.

        Raises
        ------
        ParameterError
            When the operation has no such parameter.
        """
        for parameter in self.parameters:
            if parameter.name == name:
                return parameter
        raise ParameterError(
            f"operation {self.name!r} has no parameter {name!r}; valid: "
            f"{', '.join(p.name for p in self.parameters) or '(none)'}"
        )

    def validate(self, params: dict | None) -> dict:
        """All parameters with defaults filled in; unknown names or wrong types raise :class:`ParameterError`.

        Parameters
        ----------
        params : dict or None
            Parameter values by name.

        Returns
        -------
        dict
            Every parameter's checked value.

        Raises
        ------
        ParameterError
            For unknown names, missing required parameters or values of the wrong type.
        """
        params = dict(params or {})
        unknown = sorted(set(params) - {p.name for p in self.parameters})
        if unknown:
            raise ParameterError(
                f"operation {self.name!r} has no parameter(s) {', '.join(map(repr, unknown))}; valid: "
                f"{', '.join(p.name for p in self.parameters) or '(none)'}"
            )
        checked = {}
        for parameter in self.parameters:
            if parameter.name in params:
                checked[parameter.name] = parameter.check(params[parameter.name])
            elif parameter.required:
                raise ParameterError(f"operation {self.name!r} needs parameter {parameter.name!r}")
            else:
                checked[parameter.name] = parameter.default
        return checked

    def __call__(self, *inputs, progress=None, **params):
        if len(inputs) != len(self.inputs):
            raise ParameterError(
                f"operation {self.name!r} takes {len(self.inputs)} input(s) ({', '.join(self.inputs)}), "
                f"got {len(inputs)}"
            )
        checked = self.validate(params)
        if self.takes_progress:
            checked["progress"] = progress
        return self.function(*inputs, **checked)

    def schema(self) -> dict:
        """The parameters as a JSON schema (an object schema, no additional properties).

        Returns
        -------
        dict
            A JSON schema.
        """
        return {
            "type": "object",
            "properties": {p.name: p.schema() for p in self.parameters},
            "required": [p.name for p in self.parameters if p.required],
            "additionalProperties": False,
        }

    def describe(self) -> dict:
        """A JSON-ready description: name, inputs, output, description, parameters and schema.

        Returns
        -------
        dict
            What ``medimg ops --json`` prints per operation.
        """
        return {
            "name": self.name,
            "description": self.description,
            "inputs": list(self.inputs),
            "output": self.output,
            "parameters": [
                {
                    "name": p.name,
                    "type": p.kind,
                    "default": None if p.required else _json_default(p.default),
                    "required": p.required,
                    "unit": p.unit,
                    "choices": None if p.choices is None else list(p.choices),
                    "description": p.description,
                }
                for p in self.parameters
            ],
            "schema": self.schema(),
        }


_REGISTRY: dict[str, Operation] = {}
_LOADED = False
_LOAD_LOCK = threading.RLock()  # a worker thread may look an op up while another thread is still loading


class _Package(types.ModuleType):
    """This package's module type: a submodule named like an API function (``ops/register.py``) must not
    replace the function on the package when the import system binds submodules to their parent."""

    def __setattr__(self, name, value):
        if name in __all__ and isinstance(value, types.ModuleType):
            return
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package


def register(
    name: str, *, inputs: Sequence[str] = ("image",), output: str = "image", description: str | None = None
) -> Callable[[Callable], Callable]:
    """Decorator: register ``function`` as operation ``name``.

    Parameters
    ----------
    name : str
        Registry name, lowercase with underscores (``"remove_small"``); unique.
    inputs : sequence of str
        The data inputs the function takes positionally, in order (``"image"``, ``"mask"`` …).
    output : str
        What the function returns (``"image"``, ``"mask"``, ``"labels"``, ``"table"`` …).
    description : str, optional
        One line; the first line of the docstring when omitted.

    Returns
    -------
    callable
        A decorator returning the function unchanged.
    """
    if not re.fullmatch(r"[a-z][a-z0-9_]*", name):
        raise ValueError(f"operation name {name!r}: lowercase letters, digits and underscores only")

    def decorate(function: Callable) -> Callable:
        if name in _REGISTRY and _REGISTRY[name].function is not function:
            raise ValueError(f"operation {name!r} is registered twice")
        _REGISTRY[name] = _build(name, function, tuple(inputs), output, description)
        return function

    return decorate


def _load() -> None:
    global _LOADED
    if _LOADED:
        return
    with _LOAD_LOCK:  # every op module imported before any thread sees the registry as loaded
        if _LOADED:
            return
        for module in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
            if not module.name.startswith("_"):
                importlib.import_module(f"{__name__}.{module.name}")
        _LOADED = True


def get(name: str) -> Operation:
    """The operation registered as ``name``.

    Parameters
    ----------
    name : str
        Registry name.

    Returns
    -------
    Operation
        The operation.

    Raises
    ------
    UnknownOperationError
        Naming the valid operations.
    """
    _load()
    try:
        return _REGISTRY[name]
    except KeyError:
        raise UnknownOperationError(
            f"unknown operation {name!r}; valid: {', '.join(sorted(_REGISTRY))}"
        ) from None


def names() -> list[str]:
    """Every registered operation name, sorted.

    Returns
    -------
    list of str
        The names.
    """
    _load()
    return sorted(_REGISTRY)


def run(name: str, *inputs, progress=None, **params):
    """Validate ``params`` and run operation ``name`` on ``inputs``.

    Parameters
    ----------
    name : str
        Registry name.
    *inputs : Volume
        The data inputs, as many as the operation declares.
    progress : callable, optional
        ``progress(done, total)``, passed on when the operation takes it.
    **params
        The operation's keyword parameters (core names).

    Returns
    -------
    object
        The operation's result (usually a Volume).

    Raises
    ------
    UnknownOperationError
        For an unknown name.
    ParameterError
        For bad parameters or a wrong number of inputs.

    Examples
    --------
    >>> from napari_medimg import ops
    >>> from napari_medimg.geometry import Volume
    >>> import numpy as np
    >>> ops.run("threshold", Volume(np.arange(4.0).reshape(2, 2), (1.0, 1.0)), method="manual", low=2.0).array
    array([[0, 0],
           [1, 1]], dtype=uint8)
    """
    return get(name)(*inputs, progress=progress, **params)


def catalogue() -> list[dict]:
    """:meth:`Operation.describe` of every operation, sorted by name (what ``medimg ops --json`` prints).

    Returns
    -------
    list of dict
        One description per operation.
    """
    return [get(name).describe() for name in names()]


# -- building an Operation from a function's signature ------------------------------------------------


def _json_default(value):
    if isinstance(value, tuple):
        return [_json_default(v) for v in value]
    return value


def _unit(name: str) -> str | None:
    for suffix, unit in _UNIT_SUFFIXES:
        if name.endswith(suffix):
            return unit
    return None


def _parameter_docs(function: Callable) -> dict[str, str]:
    """Parameter descriptions from a numpydoc ``Parameters`` section (first sentence of each)."""
    doc = inspect.getdoc(function) or ""
    match = re.search(r"^Parameters\n-+\n(.*?)(?:^\S[^\n]*\n-+\n|\Z)", doc, flags=re.S | re.M)
    if not match:
        return {}
    described: dict[str, str] = {}
    current: list[str] = []
    for line in match.group(1).splitlines():
        header = re.match(r"^(\w+(?:\s*,\s*\w+)*)\s*:", line)
        if header and not line.startswith(" "):
            current = [name.strip() for name in header.group(1).split(",")]  # "low, high : float"
            described.update(dict.fromkeys(current, ""))
        elif current and line.strip() and not described[current[0]].endswith("."):
            text = (described[current[0]] + " " + line.strip()).strip()
            described.update(dict.fromkeys(current, text))
    return {key: value.split(". ")[0].rstrip(".") for key, value in described.items()}


def _summary(doc: str) -> str:
    """The first sentence of a docstring's first paragraph, on one line."""
    paragraph = " ".join(doc.strip().split("\n\n")[0].split())
    match = re.search(r"^(.*?[.!?])(?:\s|$)", paragraph)
    return match.group(1) if match else paragraph


def _kind(annotation) -> tuple[str, tuple | None, bool, str | None]:
    """JSON kind, choices, nullable and item kind of a type annotation."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        members = [a for a in typing.get_args(annotation) if a is not type(None)]
        nullable = len(members) < len(typing.get_args(annotation))
        if len(members) == 1:
            kind, choices, _, item = _kind(members[0])
            return kind, choices, nullable, item
        kinds = {_kind(m)[0] for m in members}
        if kinds <= {"number", "integer"}:
            return "number", None, nullable, None
        return "any", None, nullable, None
    if origin is Literal:
        choices = typing.get_args(annotation)
        if all(isinstance(c, str) for c in choices):
            kind = "string"
        elif all(isinstance(c, int) and not isinstance(c, bool) for c in choices):
            kind = "integer"
        else:
            kind = "any"
        return kind, tuple(choices), False, None
    if origin in (list, tuple, Sequence, typing.Sequence) or annotation in (list, tuple):
        args = [a for a in typing.get_args(annotation) if a is not Ellipsis]
        item = _kind(args[0])[0] if args else None
        return "array", None, False, item
    if origin is dict or annotation is dict:
        return "object", None, False, None
    simple = {bool: "boolean", int: "integer", float: "number", str: "string"}
    return simple.get(annotation, "any"), None, False, None


def _build(name, function, inputs, output, description) -> Operation:
    signature = inspect.signature(function)
    hints = typing.get_type_hints(function)
    docs = _parameter_docs(function)
    positional = [
        p
        for p in signature.parameters.values()
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) and p.default is p.empty
    ]
    if len(positional) != len(inputs):
        raise ValueError(
            f"operation {name!r}: {function.__qualname__} takes {len(positional)} data input(s) "
            f"({', '.join(p.name for p in positional)}) but {len(inputs)} are declared ({', '.join(inputs)})"
        )
    parameters = []
    takes_progress = False
    for parameter in signature.parameters.values():
        if parameter in positional or parameter.kind in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD):
            continue
        if parameter.name == "progress":
            takes_progress = True
            continue
        kind, choices, nullable, item = _kind(hints.get(parameter.name, Any))
        parameters.append(
            Parameter(
                name=parameter.name,
                kind=kind,
                default=parameter.default,
                choices=choices,
                unit=_unit(parameter.name),
                nullable=nullable or parameter.default is None,
                item_kind=item,
                description=docs.get(parameter.name, ""),
            )
        )
    summary = description or _summary(inspect.getdoc(function) or name)
    return Operation(name, function, inputs, output, summary, tuple(parameters), takes_progress)

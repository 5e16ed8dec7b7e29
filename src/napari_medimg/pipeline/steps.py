"""A record of the named steps the widgets and commands run, with their parameters, as JSON.

Each :class:`Step` names a core operation (``"denoise"``, ``"threshold"``, ``"islands"`` …), its parameters
(JSON values only: numbers, strings, booleans, lists, dicts, None), the input layer/file names and the output
name.  A :class:`StepLog` is an append-only list of steps that serialises to and from JSON; a recipe can
replay it.  :func:`session_log` is the log the plugin's widgets append to in one Python session.
"""

from __future__ import annotations

import datetime as _dt
import json
from dataclasses import asdict, dataclass, field

import numpy as np

__all__ = ["Step", "StepLog", "session_log", "record_step", "json_safe"]


def json_safe(value):
    """``value`` with numpy scalars/arrays and tuples turned into plain JSON values.

    Parameters
    ----------
    value : object
        Numbers, strings, booleans, None, lists, tuples, dicts, numpy scalars or arrays.

    Returns
    -------
    object
        The same value made of JSON types.

    Raises
    ------
    TypeError
        For a value with no JSON form.
    """
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, np.ndarray):
        return json_safe(value.tolist())
    if isinstance(value, np.generic):
        return value.item()
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise TypeError(f"step parameter {value!r} of type {type(value).__name__} is not JSON-serialisable")


@dataclass
class Step:
    """One operation: ``name`` with ``params``, reading ``inputs`` and writing ``output``.

    Parameters
    ----------
    name : str
        The registry operation's name (``"threshold"``).
    params : dict
        Its core parameters (JSON values).
    inputs : list of str
        Names of the input layers or files.
    output : str, optional
        Name of the output layer or file.
    time : str
        ISO 8601 UTC time of the step (now by default).
    """

    name: str
    params: dict = field(default_factory=dict)
    inputs: list = field(default_factory=list)
    output: str | None = None
    time: str = field(default_factory=lambda: _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"))

    def __post_init__(self):
        if not self.name:
            raise ValueError("a step needs a name")
        self.params = json_safe(dict(self.params))
        self.inputs = [str(i) for i in self.inputs]

    def to_dict(self) -> dict:
        """The step as a JSON-ready dict.

        Returns
        -------
        dict
            ``name``, ``params``, ``inputs``, ``output`` and ``time``.
        """
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> Step:
        """A step from :meth:`to_dict`'s form.

        Parameters
        ----------
        data : dict
            The step's fields.

        Returns
        -------
        Step
            The step.

        Raises
        ------
        ValueError
            For unknown fields.
        """
        unknown = set(data) - {"name", "params", "inputs", "output", "time"}
        if unknown:
            raise ValueError(f"unknown step fields {sorted(unknown)}")
        return cls(**data)


class StepLog:
    """An append-only list of :class:`Step` values with JSON round-trip.

    Parameters
    ----------
    steps : iterable of Step, optional
        The initial steps.
    """

    def __init__(self, steps=()):
        self.steps: list[Step] = list(steps)

    def __len__(self) -> int:
        return len(self.steps)

    def __iter__(self):
        return iter(self.steps)

    def __getitem__(self, index) -> Step:
        return self.steps[index]

    def record(self, name: str, params: dict | None = None, inputs=(), output: str | None = None) -> Step:
        """Append and return a new step.

        Parameters
        ----------
        name : str
            Registry operation name.
        params : dict, optional
            Core parameters.
        inputs : sequence of str
            Input names.
        output : str, optional
            Output name.

        Returns
        -------
        Step
            The recorded step.
        """
        step = Step(name, dict(params or {}), list(inputs), output)
        self.steps.append(step)
        return step

    def to_json(self, indent: int | None = 2) -> str:
        """The log as JSON ``{"steps": [...]}``.

        Parameters
        ----------
        indent : int, optional
            JSON indentation.

        Returns
        -------
        str
            The JSON text.
        """
        return json.dumps({"steps": [s.to_dict() for s in self.steps]}, indent=indent)

    @classmethod
    def from_json(cls, text: str) -> StepLog:
        """A log from :meth:`to_json`'s text.

        Parameters
        ----------
        text : str
            JSON ``{"steps": [...]}``.

        Returns
        -------
        StepLog
            The log.

        Raises
        ------
        ValueError
            For JSON of another shape or steps with unknown fields.
        """
        data = json.loads(text)
        if not isinstance(data, dict) or not isinstance(data.get("steps"), list):
            raise ValueError("a step log is a JSON object with a 'steps' list")
        return cls(Step.from_dict(s) for s in data["steps"])

    def clear(self) -> None:
        """Remove every step."""
        self.steps.clear()


_SESSION = StepLog()


def session_log() -> StepLog:
    """The log of this Python session (the widgets append to it).

    Returns
    -------
    StepLog
        The session's log.
    """
    return _SESSION


def record_step(name: str, params: dict | None = None, inputs=(), output: str | None = None) -> Step:
    """Append a step to :func:`session_log`.

    Parameters
    ----------
    name : str
        Registry operation name (core name, so that ``ops.run`` replays it).
    params : dict, optional
        Core parameters (``None`` for automatic values, never widget placeholders).
    inputs : sequence
        Input layer or file names.
    output : str, optional
        Output name.

    Returns
    -------
    Step
        The recorded step.
    """
    return _SESSION.record(name, params, inputs, output)

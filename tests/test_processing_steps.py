"""The step record: named steps with JSON parameters, round trip, session log."""

from __future__ import annotations

import json

import numpy as np
import pytest

from napari_medimg.pipeline.steps import Step, StepLog, json_safe, record_step, session_log


def test_step_log_round_trip_with_numpy_values():
    log = StepLog()
    log.record("denoise", {"method": "gaussian", "sigma_mm": np.float32(1.5)}, ["CT"], "CT denoised")
    log.record("threshold", {"low": np.int16(-200), "high": 300.0, "spacing": np.array([2.5, 0.7, 0.7])})
    text = log.to_json()
    data = json.loads(text)
    assert [s["name"] for s in data["steps"]] == ["denoise", "threshold"]
    assert data["steps"][1]["params"]["spacing"] == [2.5, 0.7, 0.7]
    again = StepLog.from_json(text)
    assert [s.to_dict() for s in again] == [s.to_dict() for s in log]
    assert again[0].inputs == ["CT"] and again[0].output == "CT denoised"


def test_rejects_what_json_cannot_hold():
    with pytest.raises(TypeError):
        Step("x", {"array": object()})
    with pytest.raises(ValueError):
        Step("", {})
    with pytest.raises(ValueError):
        StepLog.from_json('{"steps": [{"name": "x", "bogus": 1}]}')
    with pytest.raises(ValueError):
        StepLog.from_json("[]")
    assert json_safe({1: (np.uint8(3),)}) == {"1": [3]}


def test_session_log_appends():
    before = len(session_log())
    step = record_step("islands", {"operation": "keep_largest"})
    assert len(session_log()) == before + 1 and session_log()[-1] is step

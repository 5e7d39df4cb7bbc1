"""Tests for pellucid.simplify.quantize: int8 through torch.ao.quantization, the model untouched."""
from __future__ import annotations

import warnings

import pytest
import torch
from torch import nn

from pellucid.errors import InputError
from pellucid.simplify import QuantizeReport, quantize


def test_dynamic_int8_breast_cancer_mlp(model_state, breast_cancer):
    b = breast_cancer
    before = model_state.snapshot(b.model)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # torch's deprecation notices are silenced inside
        q, report = quantize(b.model, data=(b.x_test, b.y_test))
    model_state.assert_same(before, model_state.snapshot(b.model))
    assert isinstance(report, QuantizeReport) and report.mode == "dynamic"
    assert report.layers == ["0", "2", "4"]
    assert report.weight_bytes_before == 4 * (30 * 32 + 32 * 32 + 32 * 2)
    assert report.compression >= 3.0
    assert report.agreement >= 0.98
    assert abs(report.accuracy_drop) <= 0.02
    with torch.no_grad():  # the report's agreement is what the two models really do
        agree = float((q(b.x_test).argmax(1) == b.model(b.x_test).argmax(1)).float().mean())
    assert agree == report.agreement
    assert "DynamicQuantizedLinear" in repr(q) or "QuantizedLinear" in type(q[0]).__name__
    assert isinstance(b.model[0], nn.Linear)


def test_static_int8_demo_cnn_with_calibration_data(model_state, digits):
    model, info, d = digits
    before = model_state.snapshot(model)
    q, report = quantize(model, data=(d.x_test, d.y_test), calibration_rows=256)
    model_state.assert_same(before, model_state.snapshot(model))
    assert report.mode == "static" and len(report.layers) == 4  # two convs, two linears
    assert report.compression >= 3.0 and report.size_after < report.size_before / 2
    assert report.agreement >= 0.97
    assert report.accuracy_before == pytest.approx(info["test_accuracy"])
    assert q(d.x_test[:3]).shape == (3, 10)
    assert "static" in str(report) and len(report.plot().axes) == 1


def test_without_data_sizes_only_and_float16():
    net = nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 2))
    _, report = quantize(net)
    assert report.agreement is None and report.accuracy_before is None
    assert report.compression == pytest.approx(4.0)
    _, half = quantize(net, dtype="float16")
    assert half.compression == pytest.approx(2.0)


def test_clear_errors():
    net = nn.Linear(4, 2)
    with pytest.raises(InputError, match="dtype"):
        quantize(net, dtype="int4")
    with pytest.raises(InputError, match="calibration"):
        quantize(net, static=True)
    with pytest.raises(InputError, match="shape"):
        quantize(net, data=torch.rand(3, 5))

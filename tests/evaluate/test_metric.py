"""Metrics register themselves: one calling convention, metric(model, explanation, **options)."""
from __future__ import annotations

import inspect
import subprocess
import sys

import pytest
import torch

import pellucid
from pellucid import evaluate as ev
from pellucid.evaluate._metric import registered_name
from pellucid.registry import get_metric, metrics

EVERY = {
    "avg_sensitivity": {"samples": 2}, "max_sensitivity": {"samples": 2},
    "completeness": {}, "complexity": {}, "sparseness": {},
    "deletion": {"steps": 4}, "insertion": {"steps": 4}, "pixel_flipping": {"steps": 4},
    "region_perturbation": {"region": 4}, "faithfulness_correlation": {"subset_size": 4, "samples": 5},
    "infidelity": {"samples": 5}, "model_randomization": {}, "data_randomization": {},
    "pointing_game": {}, "relevance_mass": {}, "relevance_rank": {},
}


def test_importing_evaluate_does_not_import_matplotlib():
    code = "import sys, pellucid.evaluate; assert 'matplotlib' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_every_metric_is_registered_and_listed():
    assert ev.metrics() == metrics() == sorted(EVERY)
    assert get_metric("max_sensitivity").needs == {"method"}
    assert get_metric("pointing_game").needs == {"mask"}
    assert get_metric("data_randomization").needs == {"method", "shuffled_model"}
    assert get_metric("deletion").higher_is_better is False
    assert get_metric("insertion").summary.startswith("Insertion AUC")
    assert get_metric("sparseness").summary.startswith("Sparseness")


def test_every_registered_metric_is_called_one_way_and_agrees_with_its_function(cnn, images):
    e = pellucid.saliency(cnn, images)
    mask = torch.zeros_like(images, dtype=torch.bool)
    mask[..., :4, :4] = True
    needs = {"mask": mask, "shuffled_model": cnn}
    for name, options in EVERY.items():
        info = get_metric(name)
        given = {k: v for k, v in needs.items() if k in info.needs}
        seeded = {"seed": 0} if "seed" in inspect.signature(info.function).parameters else {}
        score = info.function(cnn, e, **options, **given, **seeded)
        assert isinstance(score, ev.Score), name
        assert len(score.values) == len(images) and score.meta["seconds"] >= 0, name
        public = getattr(ev, name)
        if name in ("pointing_game", "relevance_mass", "relevance_rank"):
            direct = public(e, mask, **options)
        elif name in ("sparseness", "complexity"):
            direct = public(e, **options)
        elif name == "data_randomization":
            direct = public(cnn, cnn, e, **options, **seeded)
        else:
            direct = public(cnn, e, **options, **seeded)
        assert torch.equal(score.values.nan_to_num(-9), direct.values.nan_to_num(-9)), name


def test_a_metric_function_is_found_behind_its_wrappers():
    assert registered_name(ev.deletion) == "deletion"
    assert registered_name(ev.sparseness) == "sparseness"
    assert registered_name(ev.model_randomization) == "model_randomization"  # behind @renamed
    assert registered_name(lambda model, explanation: None) is None


def test_the_model_free_metrics_keep_their_own_signature():
    a = torch.tensor([[[[0.0, 1.0], [3.0, 2.0]]]])
    m = torch.tensor([[[[0, 0], [1, 0]]]])
    assert ev.pointing_game(a, m).values.tolist() == [1.0]
    assert get_metric("pointing_game").function(None, a, mask=m).values.tolist() == [1.0]
    with pytest.raises(TypeError):
        get_metric("pointing_game").function(a, mask=m)  # the model comes first

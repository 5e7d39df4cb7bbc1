"""probe.counterfactual: Wachter et al. counterfactuals with DiCE diversity on tabular rows."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from pellucid.errors import InputError, TargetError
from pellucid.probe import Counterfactuals, counterfactual


@pytest.fixture(scope="module")
def cancer():
    sklearn = pytest.importorskip("sklearn.datasets")
    data = sklearn.load_breast_cancer()
    x = torch.tensor(data.data, dtype=torch.float32)
    y = torch.tensor(data.target, dtype=torch.long)
    with torch.random.fork_rng():
        torch.manual_seed(0)
        perm = torch.randperm(len(x))
        x, y = x[perm], y[perm]
        mu, sd = x[:400].mean(0), x[:400].std(0)
        x = (x - mu) / sd
        net = nn.Sequential(nn.Linear(30, 32), nn.ReLU(), nn.Linear(32, 2))
        opt = torch.optim.Adam(net.parameters(), lr=1e-2, weight_decay=1e-4)
        for _ in range(300):
            opt.zero_grad()
            nn.functional.cross_entropy(net(x[:400]), y[:400]).backward()
            opt.step()
        opt.zero_grad(set_to_none=True)
    net.eval()
    with torch.no_grad():
        acc = float((net(x[400:]).argmax(1) == y[400:]).float().mean())
    assert acc >= 0.95, acc
    return net, x[400:460]


def _other_class(net, x):
    with torch.no_grad():
        return (1 - net(x).argmax(1)).tolist()


def test_breast_cancer_reached_immutable_ranges(cancer):
    net, x = cancer
    state = {k: v.clone() for k, v in net.state_dict().items()}
    wanted = _other_class(net, x)
    ranges = {j: (float(x[:, j].min()) - 0.5, float(x[:, j].max()) + 0.5) for j in range(30)}
    r = counterfactual(net, x, target=wanted, immutable=[0, 3], ranges=ranges, seed=0, steps=300)
    assert isinstance(r, Counterfactuals)
    assert r.candidates.shape == (len(x), 1, 30)
    rate = r.reached_rate
    print(f"reached rate {rate:.3f} on {len(x)} rows, mean L1 {float(r.distance.mean()):.3f}, "
          f"mean changed {float(r.changed.sum(-1).float().mean()):.1f} features, steps {r.meta['steps_run']}")
    assert len(x) >= 40 and rate >= 0.95
    # the reported flag agrees with the model
    with torch.no_grad():
        pred = net(r.candidates[:, 0]).argmax(1)
    assert torch.equal(pred == r.target, r.reached[:, 0])
    # immutable features never change, exactly
    assert torch.equal(r.candidates[:, 0, 0], x[:, 0])
    assert torch.equal(r.candidates[:, 0, 3], x[:, 3])
    assert not r.changed[:, :, [0, 3]].any()
    lo = torch.tensor([ranges[j][0] for j in range(30)])
    hi = torch.tensor([ranges[j][1] for j in range(30)])
    assert bool(((r.candidates >= lo) & (r.candidates <= hi)).all())
    # the model is left as found
    assert not net.training
    for k, v in net.state_dict().items():
        assert torch.equal(v, state[k])
    assert all(p.grad is None for p in net.parameters())
    # the table lists the changed features of a row
    names = [f"f{j}" for j in range(30)]
    tab = r.table(names, row=1)
    assert len(tab) == int(r.changed[1, 0].sum())
    assert all(set(t) == {"feature", "original", "counterfactual"} for t in tab)


def test_tight_ranges_respected(cancer):
    net, x = cancer
    x = x[:20]
    rng = torch.stack([x.min(0).values - 0.2, x.max(0).values + 0.2], 1)
    r = counterfactual(net, x, target=_other_class(net, x), ranges=rng, seed=1, steps=200)
    assert bool(((r.candidates >= rng[:, 0]) & (r.candidates <= rng[:, 1])).all())


def test_k3_diverse(cancer):
    net, x = cancer
    x = x[:40]
    r = counterfactual(net, x, target=_other_class(net, x), k=3, seed=0, steps=300)
    assert r.candidates.shape == (40, 3, 30)
    c = r.candidates
    pair = (c[:, :, None] - c[:, None, :]).abs().sum(-1)
    off = pair[:, ~torch.eye(3, dtype=torch.bool)]
    print(f"k=3: all-reached rate {float(r.reached.all(1).float().mean()):.3f}, "
          f"min pairwise L1 {float(off.min()):.3f}")
    assert bool((off > 1e-3).all())
    assert float(r.reached.float().mean()) >= 0.9


def test_linear_minimal_l1_moves_most_efficient_feature():
    # z1 - z0 = 2 * (w . x + b) with w = (1.0, 0.04). Moving feature j by delta costs
    # |delta| / scale_j and gains w_j * delta in the logit, so the cheapest feature has the
    # largest |w_j| * scale_j. With unit scale (one row) that is feature 0: the minimal L1
    # counterfactual moves only it, to just past the boundary x0 + 0.04 * 0.2 = 0.5.
    lin = nn.Linear(2, 2)
    with torch.no_grad():
        lin.weight.copy_(torch.tensor([[-1.0, -0.04], [1.0, 0.04]]))
        lin.bias.copy_(torch.tensor([0.5, -0.5]))
    x = torch.tensor([[-0.5, 0.2]])
    r = counterfactual(lin, x, target=1, seed=0)
    assert bool(r.reached.all())
    assert r.changed[0, 0].tolist() == [True, False]
    assert torch.equal(r.candidates[0, 0, 1], x[0, 1])
    assert 0.492 < float(r.candidates[0, 0, 0]) < 0.6
    # a tiny scale makes feature 0 expensive: now only feature 1 moves
    with torch.no_grad():
        lin.weight.copy_(torch.tensor([[-1.0, -0.3], [1.0, 0.3]]))
    r2 = counterfactual(lin, x, target=1, seed=0, scale=[0.001, 1.0])
    assert bool(r2.reached.all())
    assert r2.changed[0, 0].tolist() == [False, True]
    # boundary: -0.5 + 0.3 * x1 - 0.5 = 0  ->  x1 = 3.33
    assert 3.33 < float(r2.candidates[0, 0, 1]) < 3.6
    assert r2.table() == [{"feature": 1, "original": pytest.approx(0.2),
                           "counterfactual": float(r2.candidates[0, 0, 1])}]


def test_seeded_deterministic(cancer):
    net, x = cancer
    x = x[:10]
    d = _other_class(net, x)
    a = counterfactual(net, x, target=d, k=2, seed=3, steps=100)
    b = counterfactual(net, x, target=d, k=2, seed=3, steps=100)
    assert torch.equal(a.candidates, b.candidates)
    c = counterfactual(net, x, target=d, k=2, seed=4, steps=100)
    assert not torch.equal(a.candidates, c.candidates)


def test_l2_distance(cancer):
    net, x = cancer
    x = x[:20]
    r = counterfactual(net, x, target=_other_class(net, x), distance="l2", seed=0, steps=200)
    assert r.reached_rate >= 0.95


def test_errors(cancer):
    net, x = cancer
    x = x[:3]
    with pytest.raises(TargetError, match="out of range"):
        counterfactual(net, x, target=2)
    with pytest.raises(TargetError, match="out of range"):
        counterfactual(net, x, target=[0, 1, 5])
    with pytest.raises(InputError, match="unknown immutable feature 30"):
        counterfactual(net, x, target=1, immutable=[30])
    with pytest.raises(InputError, match="ranges exclude the original value of feature 2"):
        counterfactual(net, x, target=1, ranges={2: (100.0, 200.0)})
    with pytest.raises(InputError, match="unknown feature 31 in ranges"):
        counterfactual(net, x, target=1, ranges={31: (0, 1)})
    with pytest.raises(InputError, match="distance must be one of"):
        counterfactual(net, x, target=1, distance="linf")
    with pytest.raises(InputError, match="k must be a positive integer"):
        counterfactual(net, x, target=1, k=0)
    with pytest.raises(InputError, match=r"shaped \(n, d\)"):
        counterfactual(net, x[:, None, :], target=1)


# -- gradient-free search (Growing Spheres) ---------------------------------------------------
def _blackbox(net):
    import pellucid

    m = pellucid.wrap(net)
    m.differentiable = False
    return m


def test_sampling_blackbox_reached_immutable_ranges(cancer):
    net, x = cancer
    m = _blackbox(net)
    wanted = _other_class(net, x)
    ranges = {j: (float(x[:, j].min()) - 0.5, float(x[:, j].max()) + 0.5) for j in range(30)}
    r = counterfactual(m, x, target=wanted, immutable=[0, 3], ranges=ranges, seed=0, steps=200)
    assert r.meta["search"] == "sampling"
    print(f"sampling: reached rate {r.reached_rate:.3f}, mean L1 {float(r.distance.mean()):.3f}, "
          f"mean changed {float(r.changed.sum(-1).float().mean()):.1f}, layers {r.meta['steps_run']}")
    assert r.reached_rate >= 0.9
    with torch.no_grad():
        pred = net(r.candidates[:, 0]).argmax(1)
    assert torch.equal(pred == r.target, r.reached[:, 0])
    assert torch.equal(r.candidates[:, 0, 0], x[:, 0])
    assert torch.equal(r.candidates[:, 0, 3], x[:, 3])
    lo = torch.tensor([ranges[j][0] for j in range(30)])
    hi = torch.tensor([ranges[j][1] for j in range(30)])
    assert bool(((r.candidates >= lo) & (r.candidates <= hi)).all())


def test_sampling_seeded_k2_distinct(cancer):
    net, x = cancer
    x = x[:10]
    m = _blackbox(net)
    d = _other_class(net, x)
    a = counterfactual(m, x, target=d, k=2, seed=3, samples=200)
    b = counterfactual(m, x, target=d, k=2, seed=3, samples=200)
    assert torch.equal(a.candidates, b.candidates)
    c = counterfactual(m, x, target=d, k=2, seed=4, samples=200)
    assert not torch.equal(a.candidates, c.candidates)
    assert float(a.reached.float().mean()) >= 0.9
    assert not bool((a.candidates[:, 0] == a.candidates[:, 1]).all(-1).any())
    # forcing sampling on a differentiable model works too
    e = counterfactual(net, x, target=d, seed=3, search="sampling", samples=200)
    assert e.meta["search"] == "sampling" and e.reached_rate >= 0.9
    with pytest.raises(InputError, match="search must be"):
        counterfactual(net, x, target=d, search="grid")


@pytest.mark.parametrize("distance", ["l1", "l2"])
def test_sampling_close_to_gradient_on_linear(distance):
    g = torch.Generator().manual_seed(0)
    lin = nn.Linear(6, 2)
    with torch.no_grad():
        lin.weight.copy_(torch.randn(2, 6, generator=g))
        lin.bias.zero_()
    x = torch.randn(20, 6, generator=g)
    with torch.no_grad():
        wanted = (1 - lin(x).argmax(1)).tolist()
    rg = counterfactual(lin, x, target=wanted, distance=distance, seed=0)
    rs = counterfactual(lin, x, target=wanted, distance=distance, seed=0, search="sampling")
    assert bool(rg.reached.all()) and bool(rs.reached.all())
    dg, ds = float(rg.distance.mean()), float(rs.distance.mean())
    print(f"linear {distance}: gradient {dg:.3f}, sampling {ds:.3f}, ratio {ds / dg:.2f}")
    assert ds <= 2 * dg


# -- categorical features ---------------------------------------------------------------------
class _CodeModel(nn.Module):
    """Class 1 needs the category code (feature 0, in {0, 1, 2}) to be 2; feature 1 barely helps."""

    def forward(self, x):
        z1 = 2.0 * x[:, 0] - 3.0 + 0.2 * x[:, 1] + 0.1 * x[:, 2]
        return torch.stack([torch.zeros_like(z1), z1], 1)


def _code_rows():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(12, 4, generator=g)
    x[:, 0] = torch.tensor([0.0, 1.0] * 6)          # codes that predict class 0
    x[:, 3] = torch.tensor([0.0, 1.0, 1.0] * 4)     # a binary flag
    return x


@pytest.mark.parametrize("search", ["gradient", "sampling"])
def test_categorical_allowed_and_reached_consistent(search):
    net, x = _CodeModel(), _code_rows()
    cat = {0: (0, 1, 2), 3: (0.0, 1.0)}
    if search == "gradient":
        r = counterfactual(net, x, target=1, k=2, categorical=cat, seed=0, steps=200)
    else:
        m = __import__("pellucid").wrap(net)
        m.differentiable = False
        r = counterfactual(m, x, target=1, k=2, categorical=cat, seed=0, steps=50, samples=200)
    assert r.meta["search"] == search
    c = r.candidates
    assert bool(torch.isin(c[..., 0], torch.tensor([0.0, 1.0, 2.0])).all())
    assert bool(torch.isin(c[..., 3], torch.tensor([0.0, 1.0])).all())
    with torch.no_grad():
        pred = net(c.reshape(-1, 4)).argmax(1).view(c.shape[:2])
    assert torch.equal(pred == 1, r.reached)
    assert torch.equal(pred, r.predictions)
    assert r.reached_rate == 1.0
    # the cheap way to class 1 is code 2: most candidates take it, exactly
    assert float((c[..., 0] == 2.0).float().mean()) >= 0.5


def test_categorical_immutable_wins_and_errors():
    net, x = _CodeModel(), _code_rows()
    # feature 0 immutable and categorical: it never changes, so class 1 is out of reach via code
    r = counterfactual(net, x[:2], target=1, immutable=[0], categorical={0: (0, 1, 2)}, seed=0,
                       steps=50)
    assert torch.equal(r.candidates[:, 0, 0], x[:2, 0])
    with pytest.raises(InputError, match="unknown feature 9 in categorical"):
        counterfactual(net, x, target=1, categorical={9: (0, 1)})
    with pytest.raises(InputError, match=r"categorical\[0\] is empty"):
        counterfactual(net, x, target=1, categorical={0: ()})
    with pytest.raises(InputError, match=r"does not allow the original value of feature 0 in row 1"):
        counterfactual(net, x, target=1, categorical={0: (0, 2)})
    with pytest.raises(InputError, match="categorical must be a dict"):
        counterfactual(net, x, target=1, categorical=[0, 1])


def test_old_keyword_and_field_names_warn_and_agree():
    lin = nn.Linear(3, 2)
    x = torch.randn(4, 3, generator=torch.Generator().manual_seed(0))
    new = counterfactual(lin, x, target=1, seed=0, steps=50)
    with pytest.warns(DeprecationWarning, match=r"counterfactual\(desired=...\) is deprecated.*target="):
        old = counterfactual(lin, x, desired=1, seed=0, steps=50)
    assert torch.equal(old.candidates, new.candidates)
    with pytest.warns(DeprecationWarning, match=r"counterfactual\(x=...\).*inputs="):
        old = counterfactual(lin, x=x, target=1, seed=0, steps=50)
    assert torch.equal(old.candidates, new.candidates)
    with pytest.warns(DeprecationWarning, match=r"Counterfactuals.desired is deprecated.*\.target"):
        assert torch.equal(new.desired, new.target)
    with pytest.warns(DeprecationWarning, match=r"Counterfactuals.x is deprecated.*\.inputs"):
        assert torch.equal(new.x, new.inputs)


def test_text_and_progress():
    lin = nn.Linear(2, 2)
    with torch.no_grad():
        lin.weight.copy_(torch.tensor([[1.0, 0.0], [-1.0, 0.0]]))
        lin.bias.zero_()
    x = torch.tensor([[1.0, 0.0], [2.0, 0.5]])
    r = counterfactual(lin, x, target=1, seed=0, progress=True)
    quiet = counterfactual(lin, x, target=1, seed=0, progress=False)
    assert torch.equal(r.candidates, quiet.candidates)
    text = str(r)
    assert text.startswith("counterfactuals: 2 row(s) x 1 candidate(s), reached rate 100.0%")
    assert text.splitlines()[1].split() == ["feature", "original", "counterfactual"]
    assert len(text.splitlines()) == 3 + len(r.table())

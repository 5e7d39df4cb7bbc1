"""pellucid.plot: figures of the right shape, colour scales centred on zero, no pyplot leaks."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

import pellucid  # noqa: E402
from pellucid import plot  # noqa: E402
from pellucid.errors import PellucidError  # noqa: E402


@pytest.fixture(autouse=True)
def no_open_figures():
    plt.close("all")
    yield
    assert plt.get_fignums() == [], "a plot left a figure open in pyplot"


@pytest.fixture
def ig(cnn, images):
    return pellucid.integrated_gradients(cnn, images, steps=8, progress=False)


@pytest.fixture
def cam(cnn, images):
    return pellucid.grad_cam(cnn, images, layer="features.2", progress=False)


@pytest.fixture
def linear():
    torch.manual_seed(0)
    return torch.nn.Linear(12, 3)


@pytest.fixture
def tabular(linear):
    return pellucid.gradient_x_input(linear, torch.randn(4, 12), progress=False)


def heat_image(fig: Figure):
    """The attribution layer of a one-panel image plot (the last image in the first axes)."""
    return fig.axes[0].images[-1]


def test_image_figure_and_axes(ig):
    fig = plot.image(ig, 2)
    assert isinstance(fig, Figure)
    assert len(fig.axes) == 2  # the picture and its colorbar
    assert len(fig.axes[0].images) == 2  # the input and the attribution over it
    assert "integrated_gradients" in fig.axes[0].get_title()
    assert len(plot.image(ig, colorbar=False).axes) == 1


def test_image_limits_symmetric_for_signed_values(ig):
    fig = plot.image(ig, 1, clip=99.0)
    vmin, vmax = heat_image(fig).get_clim()
    expected = np.percentile(np.abs(ig.values[1].sum(0).numpy()), 99.0)
    assert vmin == pytest.approx(-vmax) and vmax == pytest.approx(expected, rel=1e-6)
    assert heat_image(fig).get_cmap().name == "RdBu_r"
    # the colorbar reads the same scale
    assert fig.axes[1].get_ylim() == pytest.approx((vmin, vmax))


@pytest.mark.parametrize("sign, cmap", [("positive", "Reds"), ("negative", "Blues"),
                                        ("absolute", "Purples")])
def test_image_one_sided_signs_use_sequential_maps(ig, sign, cmap):
    image = heat_image(plot.image(ig, 0, sign=sign, clip=100.0))
    v = ig.values[0].sum(0).numpy()
    part = {"positive": np.clip(v, 0, None), "negative": np.clip(-v, 0, None),
            "absolute": np.abs(v)}[sign]
    assert image.get_clim() == pytest.approx((0.0, part.max()))
    assert image.get_cmap().name == cmap
    assert np.asarray(image.get_array()).min() >= 0


def test_image_sums_channels_and_draws_cams(cnn, images, cam):
    rgb = torch.rand(2, 3, 5, 6)
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(90, 2))
    e = pellucid.gradient_x_input(net, rgb, progress=False)
    fig = plot.image(e, 1)
    assert fig.axes[0].images[0].get_array().shape == (5, 6, 3)  # drawn in colour
    assert np.allclose(heat_image(fig).get_array(), e.values[1].sum(0).numpy())
    fig = plot.image(cam, 0)
    assert np.allclose(heat_image(fig).get_array(), cam.values[0, 0].numpy())
    coarse = pellucid.grad_cam(cnn, images, layer="features.4", upsample=False, progress=False)
    assert coarse.values.shape[2:] == (4, 4)
    image = heat_image(plot.image(coarse, 0))
    assert image.get_extent() == fig.axes[0].images[0].get_extent()  # stretched over the input


def test_image_into_given_axes_and_all_zero_map(ig):
    fig = Figure()
    ax = fig.add_subplot()
    assert plot.image(ig, 0, ax=ax, colorbar=False, title="mine") is fig
    assert ax.get_title() == "mine"
    zero = ig[:1]
    zero.values = torch.zeros_like(zero.values)
    vmin, vmax = heat_image(plot.image(zero)).get_clim()
    assert (vmin, vmax) == (-1.0, 1.0)


def test_image_rejects_bad_options(ig, tabular):
    with pytest.raises(ValueError, match="sign"):
        plot.image(ig, sign="both")
    with pytest.raises(ValueError, match="clip"):
        plot.image(ig, clip=0)
    with pytest.raises(PellucidError, match="tabular"):
        plot.image(tabular)


def test_images_row(ig):
    fig = plot.images(ig, [0, 2, 3], labels=["a", "b", "c"])
    assert len(fig.axes) == 3 + 1
    assert [ax.get_title() for ax in fig.axes[:3]] == ["a", "b", "c"]
    assert len(plot.images(ig, ncols=4, colorbar=False).axes) == len(ig)


def test_bars_sorted_with_names_and_rest(tabular):
    tabular.feature_names = [f"f{j}" for j in range(12)]
    fig = plot.bars(tabular, 1, top=5)
    assert isinstance(fig, Figure) and len(fig.axes) == 1
    ax = fig.axes[0]
    assert len(ax.patches) == 6  # five features and one bar for the other seven
    labels = [t.get_text() for t in ax.get_yticklabels()]
    v = tabular.values[1].numpy()
    order = np.argsort(-np.abs(v))[:5]
    # largest |value| first (at the top of the chart), each with the row's input value
    assert [lab.split(" = ")[0] for lab in labels[:5]] == [f"f{j}" for j in order]
    assert labels[0].endswith(f" = {tabular.inputs[1, order[0]].item():.3g}")
    assert labels[5] == "sum of 7 other features"
    widths = [p.get_width() for p in ax.patches]
    assert widths[:5] == pytest.approx(v[order]) and widths[5] == pytest.approx(np.delete(v, order).sum())
    assert len(plot.bars(tabular, top=50).axes[0].patches) == 12


def test_compare_grid(ig, cam, cnn, images):
    sal = pellucid.saliency(cnn, images, progress=False)
    fig = plot.compare([sal, ig, cam], indices=[0, 3])
    assert isinstance(fig, Figure)
    assert len(fig.axes) == 2 * (3 + 1) + 1  # input column, three methods, one colorbar
    titles = [ax.get_title() for ax in fig.axes[:4]]
    assert titles == ["input", "saliency", "integrated gradients", "grad cam"]
    assert len(plot.compare({"a": ig, "b": ig}, show_input=False, colorbar=False).axes) == 2 * len(ig)


def test_compare_tabular_and_mismatch(tabular, linear, ig, cnn):
    other = pellucid.saliency(linear, tabular.inputs, abs=False, progress=False)
    assert len(plot.compare([tabular, other], top=4).axes) == len(tabular) * 2
    elsewhere = pellucid.saliency(cnn, torch.rand(6, 1, 8, 8), progress=False)
    with pytest.raises(PellucidError, match="same inputs"):
        plot.compare([ig, elsewhere])
    with pytest.raises(PellucidError, match="same inputs"):
        plot.compare([ig, ig[:3]])


def test_explanation_dispatch(ig, tabular):
    assert len(ig.plot(1).axes) == 2
    assert len(plot.explanation(ig, sign="positive", colorbar=False).axes) == 1
    assert len(tabular.plot(0, top=3).axes[0].patches) == 4
    text = pellucid.Explanation(values=torch.rand(2, 5), inputs=torch.ones(2, 5, dtype=torch.long),
                                target=torch.zeros(2, dtype=torch.long), outputs=torch.zeros(2))
    assert text.kind == "text"
    assert len(text.plot().axes[0].texts) == 5  # one coloured box per token
    seq = pellucid.Explanation(values=torch.rand(2, 5, 3), inputs=torch.rand(2, 5, 3),
                               target=torch.zeros(2, dtype=torch.long), outputs=torch.zeros(2),
                               kind="sequence")
    with pytest.raises(PellucidError, match="no plot for 'sequence'"):
        seq.plot()


def test_figures_save_as_png(ig, tmp_path):
    path = tmp_path / "ig.png"
    plot.compare([ig]).savefig(path)
    image = matplotlib.image.imread(path)
    assert image.ndim == 3 and image.shape[0] > 50


def _pixels(fig: Figure) -> np.ndarray:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., :3]


def test_every_plot_kind_renders_non_blank(ig, cam, tabular, cnn, images):
    lin = torch.nn.Linear(6, 2)
    additive = pellucid.integrated_gradients(lin, torch.rand(2, 6), target=0, steps=4)
    text = pellucid.gradient_x_input(lin, torch.rand(2, 6), target=1)
    text.feature_names, text.kind = ["a", "good", "film", "##s", "!", "[PAD]"], "text"
    figures = [plot.image(ig), plot.images(ig), plot.image(cam), plot.bars(tabular),
               plot.waterfall(additive), plot.text(text), plot.compare([ig, cam])]
    for fig in figures:
        pixels = _pixels(fig)
        assert pixels.std() > 10, fig  # more than a blank canvas
        assert (pixels < 200).any(axis=-1).mean() > 0.01  # some ink


def test_overlay_zero_sits_at_the_colour_map_centre(ig):
    heat = heat_image(plot.image(ig, 0))
    cmap, norm = heat.get_cmap(), heat.norm
    assert norm(0.0) == pytest.approx(0.5)
    centre = np.array(cmap(0.5)[:3])
    np.testing.assert_allclose(cmap(norm(0.0))[:3], centre)
    assert np.all(centre > 0.9)  # RdBu_r's centre is near white: zero reads as "nothing"


def test_waterfall_steps_run_from_expected_output_to_output():
    torch.manual_seed(1)
    lin = torch.nn.Linear(8, 2)
    x = torch.rand(1, 8)
    e = pellucid.integrated_gradients(lin, x, target=1, baseline=0.5, steps=4)  # exact on a linear model
    ax = plot.waterfall(e, top=3).axes[0]
    bars = ax.patches
    assert len(bars) == 4  # three features and the sum of the other five; no gap step
    lefts = np.array([b.get_x() for b in bars])
    rights = lefts + np.array([b.get_width() for b in bars])
    assert lefts[0] == pytest.approx(float(e.baseline_outputs[0]))  # bottom bar starts at E[f]
    np.testing.assert_allclose(lefts[1:], rights[:-1])  # each step starts where the last ended
    assert rights[-1] == pytest.approx(float(e.outputs[0]), abs=1e-6)  # the top one ends at f(x)
    largest = np.sort(np.abs(e.values[0].numpy()))[-1]
    assert abs(bars[-1].get_width()) == pytest.approx(largest)


def test_waterfall_shows_the_unexplained_gap_and_needs_baseline_outputs(tabular, cnn, images):
    e = pellucid.integrated_gradients(cnn, images[:1], steps=2)  # 2 steps: far from complete
    labels = [t.get_text() for t in plot.waterfall(e, top=5).axes[0].get_yticklabels()]
    assert labels[0].startswith("not explained")
    with pytest.raises(PellucidError, match="baseline_outputs"):
        plot.waterfall(tabular)


def test_text_colours_tokens_and_escapes_html():
    lin = torch.nn.Linear(4, 2)
    with torch.no_grad():
        lin.weight.copy_(torch.tensor([[0.0, 0.0, 0.0, 0.0], [2.0, 0.0, -1.0, 1.0]]))
    e = pellucid.gradient_x_input(lin, torch.ones(1, 4), target=1)
    e.feature_names, e.kind = ["<script>alert(1)</script>", "plain", "bad", "##ly"], "text"
    html = plot.text_html(e)
    assert "<script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    from matplotlib import colormaps
    from matplotlib.colors import to_hex

    cmap = colormaps["RdBu_r"]
    assert f'background:{to_hex(cmap(1.0))}" title="+2"' in html  # the largest value: full red
    assert f'background:{to_hex(cmap(0.5))}" title="+0"' in html  # zero: the map's centre
    assert f'background:{to_hex(cmap(0.25))}" title="-1"' in html  # -1 of max 2: a quarter down
    assert "</span><span" in html  # "##ly" glued to "bad" with no space
    fig = plot.explanation(e)
    texts = [t.get_text() for t in fig.axes[0].texts]
    assert texts == ["<script>alert(1)</script>", "plain", "bad", "ly"]


def test_inspect_figures_take_the_result_objects():
    from pellucid.inspect import Monitor, weights

    net = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.ReLU(), torch.nn.Linear(3, 2))
    fig = plot.weight_histograms(weights(net, bins=8), columns=3)
    shown = [ax for ax in fig.axes if ax.get_visible()]
    assert [ax.get_title().split("\n")[0] for ax in shown] == ["0.weight", "0.bias", "2.weight", "2.bias"]
    assert sum(len(ax.patches) for ax in shown) == 4 * 8  # one bar per bin
    mon = Monitor(net, torch.rand(3, 4), methods=("saliency", "gradient_x_input"), every=1)
    for step in range(3):
        mon.step(step)
    strip = plot.monitor_strip(mon, "gradient_x_input", rows=2)
    assert len(strip.axes) == 2 * 3  # probe rows x recorded steps
    assert [ax.get_title() for ax in strip.axes[:3]] == ["step 0", "step 1", "step 2"]
    pixels = plot.figure_pixels(strip)
    assert pixels.dtype == np.uint8 and pixels.shape[2] == 3 and pixels.std() > 10

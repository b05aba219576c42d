import numpy as np
import pytest
from PIL import Image

pytest.importorskip("matplotlib")

from keras_icnn import plots  # noqa: E402


def _images(n, h=6, w=6, seed=0):
    return np.random.default_rng(seed).uniform(-20, 275, (n, h, w, 3))


def _png(path):
    assert path.exists()
    with Image.open(path) as im:
        assert im.format == "PNG"
        im.load()
        return np.asarray(im.convert("RGB"))


def test_plot_reconstructions_rows(tmp_path):
    orig, rec = _images(3), _images(3, seed=1)
    fig = plots.plot_reconstructions(orig, rec, titles=["a", "b", "c"], path=tmp_path / "r.png")
    axes = [ax for ax in fig.axes if ax.images]
    assert len(axes) == 6
    # the top row shows the originals clipped to uint8
    top_left = fig.axes[0].images[0].get_array()
    np.testing.assert_array_equal(top_left, np.uint8(np.clip(np.rint(orig[0]), 0, 255)))
    assert fig.axes[0].get_title() == "a"
    assert fig.axes[3].images[0].get_array().tolist() == \
        np.uint8(np.clip(np.rint(rec[0]), 0, 255)).tolist()
    px = _png(tmp_path / "r.png")
    assert px.shape[0] > 20 and px.shape[1] > 20 and px.std() > 0
    assert [p.name for p in tmp_path.iterdir()] == ["r.png"]


def test_plot_reconstructions_pairs_and_only_reconstructions(tmp_path):
    orig, rec = _images(5), _images(5, seed=1)
    fig = plots.plot_reconstructions(orig, rec, layout="pairs", ncols=2, path=tmp_path / "p.png")
    # 3 rows x 4 columns of axes, 10 of them with an image
    assert len(fig.axes) == 12 and sum(bool(ax.images) for ax in fig.axes) == 10
    _png(tmp_path / "p.png")
    fig = plots.plot_reconstructions(None, [rec[0], rec[1][:4]])  # different sizes, no originals
    assert sum(bool(ax.images) for ax in fig.axes) == 2


def test_plot_reconstructions_errors():
    with pytest.raises(ValueError, match="same number of images"):
        plots.plot_reconstructions(_images(2), _images(3))
    with pytest.raises(ValueError, match="titles"):
        plots.plot_reconstructions(_images(2), _images(2), titles=["x"])
    with pytest.raises(ValueError, match="layout"):
        plots.plot_reconstructions(_images(2), _images(2), layout="grid")
    with pytest.raises(ValueError, match="reconstructions: expected RGB"):
        plots.plot_reconstructions(None, np.zeros((2, 4, 4, 5)))


def test_plot_loss_dict_and_history(tmp_path):
    import keras

    hist = {"loss": [10.0, 5.0, 2.0], "conv1_loss": [6.0, 3.0, 1.0], "fc1_loss": [4.0, 2.0, 1.0],
            "lr": [1.0, 0.5, 0.1]}
    fig = plots.plot_loss(hist, path=tmp_path / "loss.png")
    ax = fig.axes[0]
    labels = sorted(line.get_label() for line in ax.get_lines())
    assert labels == ["conv1_loss", "fc1_loss", "loss"]  # 'lr' is not a loss
    assert ax.get_yscale() == "log"
    np.testing.assert_array_equal(ax.get_lines()[0].get_ydata(), hist["loss"])
    _png(tmp_path / "loss.png")

    h = keras.callbacks.History()
    h.history = {"loss": [3.0, 2.0]}
    assert plots.plot_loss(h, log=False).axes[0].get_yscale() == "linear"
    fig = plots.plot_loss(np.array([1.0, 0.5, 0.25]))
    assert [line.get_label() for line in fig.axes[0].get_lines()] == ["loss"]
    with pytest.warns(UserWarning, match="linear"):
        fig = plots.plot_loss([1.0, 0.0, -1.0])
    assert fig.axes[0].get_yscale() == "linear"


def test_plot_loss_errors(tmp_path):
    with pytest.raises(ValueError, match="no 'loss'"):
        plots.plot_loss({"lr": [1.0]})
    with pytest.raises(ValueError, match="1-D"):
        plots.plot_loss(np.zeros((2, 2)))
    with pytest.raises(ValueError, match="extension"):
        plots.plot_loss([1.0, 2.0], path=tmp_path / "loss.xyz")
    assert list(tmp_path.iterdir()) == []


def test_nan_images_are_refused_not_drawn_black():
    from keras_icnn import plots
    bad = np.full((1, 8, 8, 3), np.nan)
    with pytest.raises(ValueError, match="NaN or Inf"):
        plots.plot_reconstructions(None, bad)

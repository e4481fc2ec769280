"""The training curves that `dvc plots show` displays: one PNG per quantity, written by the train
stage and declared in dvc.yaml as image plots, so the page renders with no network (DVC's Vega-Lite
plots load their JavaScript from a CDN and are blank offline)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from ganpipe.plots import CURVE_COLOR, plot_training_curves
from ganpipe.training.trainer import Trainer
from tests.conftest import REPO_ROOT
from tests.support.fresh_clone import clean_env, run
from tests.support.training_data import tiny_params, train_paths


def curve_pixels(png: Path) -> int:
    """Pixels in the curves' colour: a blank image or page has none."""
    rgb = np.asarray(Image.open(png).convert("RGB")).astype(int)
    target = np.array([int(CURVE_COLOR[i:i + 2], 16) for i in (1, 3, 5)])
    return int((np.abs(rgb - target).sum(axis=-1) < 60).sum())


def test_one_png_per_quantity_on_its_own_axes(tmp_path):
    steps = np.arange(10, 110, 10)
    d = np.linspace(7.0, 3.0, 10)
    curve = pd.DataFrame({"step": steps, "d_adv": d, "d_loss": d, "g_mel_l1": np.linspace(2, 1, 10),
                          "g_loss": np.linspace(100, 60, 10), "lr_g": 2e-4 * 0.999 ** np.arange(10),
                          "g_ac": np.full(10, np.nan)})
    val = pd.DataFrame({"step": [0, 50, 100], "val_mel_l1": [1.9, 1.5, 1.3]})
    out = tmp_path / "train"
    out.mkdir()
    (out / "d_gp.png").write_bytes(b"a stale plot of another variant")
    written = plot_training_curves(out, curve.merge(val, on="step", how="outer").sort_values("step"))
    # totals first; d_adv (= d_loss here) and the all-NaN g_ac are left out; the stale file is gone
    assert [p.name for p in written] == ["g_loss.png", "d_loss.png", "val_mel_l1.png", "g_mel_l1.png", "lr_g.png"]
    assert sorted(p.name for p in out.iterdir()) == sorted(p.name for p in written)
    for png in written:
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert curve_pixels(png) > 300, png  # a drawn curve, not an empty axis


@pytest.fixture(scope="module")
def plots_page(demo_corpus, tmp_path_factory) -> Path:
    """A tiny training's plots in a DVC project with this repository's dvc.yaml; `dvc plots show`."""
    project = tmp_path_factory.mktemp("plots_project")
    out = project / "run"
    params = tiny_params("hifigan_v3", train={"steps": 4, "log_every": 1, "validate_every": 2})
    Trainer(params, train_paths(demo_corpus, out), progress=False).run()
    (project / "plots").mkdir()
    shutil.copytree(out / "train", project / "plots" / "train")  # TrainPaths: PNGs beside the CSV
    shutil.copy(out / "c.csv", project / "plots" / "train_loss.csv")
    shutil.copy(REPO_ROOT / "dvc.yaml", project / "dvc.yaml")
    shutil.copy(REPO_ROOT / "params.yaml", project / "params.yaml")  # dvc.yaml interpolates from it
    (project / ".dvc").mkdir()
    shutil.copy(REPO_ROOT / ".dvc" / "config", project / ".dvc" / "config")
    run(["git", "init", "-q"], project)
    out = run(["dvc", "plots", "show"], project, clean_env(DVC_NO_ANALYTICS="1"))
    page = project / "dvc_plots" / "index.html"
    assert page.is_file(), f"dvc plots show wrote no page:\n{out}"  # DVC exits 0 on a dvc.yaml it cannot parse
    return page


def test_dvc_plots_page_needs_no_network(plots_page: Path):
    project = plots_page.parent.parent
    names = sorted(p.name for p in (project / "plots" / "train").glob("*.png"))
    logged = set(pd.read_csv(project / "plots" / "train_loss.csv").columns) | {"val_mel_l1"}
    assert {"g_loss.png", "d_loss.png", "g_mel_l1.png", "lr_g.png", "val_mel_l1.png"} <= set(names)
    assert all(n.removesuffix(".png") in logged for n in names) and "d_adv.png" not in names  # (= d_loss)
    html = plots_page.read_text()
    assert not re.search(r"https?://", html), "the page loads something from the network"
    assert "<script" not in html and "train_loss.csv" not in html  # no Vega plot, no CSV-vs-row-index plot
    shown = re.findall(r'<img src="([^"]+)"', html)
    assert len(shown) == len(names)  # one plot per quantity
    for src in shown:
        image = plots_page.parent / src
        assert image.is_file() and curve_pixels(image) > 300, src


def test_dvc_plots_page_shows_curves_in_a_browser_offline(plots_page: Path):
    if not any(shutil.which(b) for b in ("chromium", "chromium-browser", "google-chrome")):
        pytest.skip("Chromium is not installed (apt-get install chromium): the browser rendering of "
                    "dvc_plots/index.html is not checked here; test_dvc_plots_page_needs_no_network checks the page")
    proc = subprocess.run([str(REPO_ROOT / "scripts" / "check_plots.sh"), str(plots_page)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"{len(list((plots_page.parents[1] / 'plots' / 'train').glob('*.png')))} image plot(s)" in proc.stdout

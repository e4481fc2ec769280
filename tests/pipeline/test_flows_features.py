"""The features flow under Prefect: threads (default) and a local Dask cluster give equal features."""

import numpy as np
import pandas as pd
import pytest

from tests.conftest import write_params
from tests.support.training_data import make_prepared

pytestmark = pytest.mark.slow


def test_threads_and_dask_produce_identical_features(tmp_path, lj_wavs, prefect_harness, monkeypatch):
    from flows.features import features_flow

    prepared = make_prepared(tmp_path, lj_wavs[:8], ["train"] * 6 + ["valid", "test"])
    results = {}
    for runner in ("threads", "dask"):
        params = write_params(tmp_path / f"params-{runner}.yaml",
                              {"features": {"task_runner": runner, "workers": 2, "shard_size": 2}})
        out = tmp_path / f"features-{runner}"
        summary = features_flow(params_path=str(params), prepared_dir=str(prepared), out_dir=str(out),
                                metrics_path=str(tmp_path / f"metrics-{runner}.json"))
        assert summary["utterances"] == 8
        results[runner] = out
    a, b = results["threads"], results["dask"]
    ia, ib = pd.read_csv(a / "index.csv"), pd.read_csv(b / "index.csv")
    pd.testing.assert_frame_equal(ia, ib)
    for rel in ia["mel"]:
        np.testing.assert_array_equal(np.load(a / rel), np.load(b / rel))
    sa, sb = np.load(a / "stats.npz"), np.load(b / "stats.npz")
    np.testing.assert_allclose(sa["mean"], sb["mean"], rtol=1e-6)

"""Partial MAESTRO under Prefect: the download flow fetches only the first performances of a zip served
by the local HTTP server, prepare cuts them into clips; a server without Range support stops the flow
with a clear error (not retried), or, with maestro_without_range: full, the whole archive is downloaded."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pandas as pd
import pytest

from ganpipe.datasets import corpora, remote_zip
from tests.conftest import write_params
from tests.support.http_server import FileServer
from tests.support.maestro_zip import ROOT, ZIP_PATH, build_zip

pytestmark = [pytest.mark.slow, pytest.mark.network]


@pytest.fixture(scope="module")
def maestro_zip() -> bytes:
    return build_zip()[0]


def _params(tmp_path: Path, url: str, **dataset) -> str:
    return str(write_params(tmp_path / "params.yaml", {
        "dataset": {"name": "maestro", "raw_dir": str(tmp_path / "raw"),
                    "download": {"retries": 2, "retry_delay_seconds": 0, "timeout_seconds": 10,
                                 "url_override": url}, **dataset},
        "audio": {"sample_rate": 16000, "clips": {"seconds": 2.0}},
        "split": {"valid_fraction": 0.0, "test_fraction": 0.0}}))


def test_partial_maestro_download_and_clips(tmp_path, maestro_zip, prefect_harness):
    from flows.download import download_flow
    from flows.prepare import prepare_flow

    with FileServer() as srv:
        url = srv.add(ZIP_PATH, maestro_zip)
        params = _params(tmp_path, url, maestro_max_files=2)
        summary = download_flow(params_path=params, cache_dir=str(tmp_path / "cache"))
        assert all(r.range for r in srv.requests_for(ZIP_PATH))
    src = summary["sources"][0]
    assert src["layout"] == "maestro" and src["partial"]["members"] == [
        f"{ROOT}/maestro-v3.0.0.csv", f"{ROOT}/2004/piece_a.wav", f"{ROOT}/2006/piece_c.wav"]
    raw_wavs = sorted(p.name for p in (tmp_path / "raw" / "maestro").rglob("*.wav"))
    assert raw_wavs == ["piece_a.wav", "piece_c.wav"]

    prepared = tmp_path / "prepared"
    psum = prepare_flow(params_path=params, out_dir=str(prepared), metrics_path=str(tmp_path / "m.json"))
    manifest = pd.read_csv(prepared / "manifest.csv")
    # 4 s performances -> clips of <= 2 s (audio.clips.enabled auto is on for maestro)
    longest_clip = manifest["duration"].max()  # audio seconds
    assert psum["clips"]["pieces"] == 2 and len(manifest) >= 4 and longest_clip <= 2.0
    assert set(manifest["utt_id"].str.split("__c").str[0]) == {"2004__piece_a", "2006__piece_c"}


def test_server_without_range(tmp_path, maestro_zip, prefect_harness, monkeypatch):
    from flows.download import download_flow

    with FileServer() as srv:
        url = srv.add(ZIP_PATH, maestro_zip, ignore_range=True)
        with pytest.raises(remote_zip.RangeNotSupportedError, match="maestro_without_range: full"):
            download_flow(params_path=_params(tmp_path, url, maestro_max_files=2),
                          cache_dir=str(tmp_path / "cache"))
        assert len(srv.requests_for(ZIP_PATH)) == 1  # not retried
        assert not (tmp_path / "raw" / "maestro" / "sources.json").exists()

        # configured to fall back: the whole archive, verified and extracted as without a limit
        spec = corpora.ArchiveSpec(url=url, filename="maestro-v3.0.0.zip", size_bytes=len(maestro_zip),
                                    checksum_algo="sha256", checksum=hashlib.sha256(maestro_zip).hexdigest(),
                                    extracted_root=ROOT)
        monkeypatch.setattr(corpora, "archives_for", lambda name, subsets=(): [spec])
        summary = download_flow(params_path=_params(tmp_path, url, maestro_max_files=2,
                                                    maestro_without_range="full"),
                                cache_dir=str(tmp_path / "cache"))
    assert "partial" not in summary["sources"][0]
    assert len(list((tmp_path / "raw" / "maestro").rglob("*.wav"))) == 6
    assert json.loads((tmp_path / "raw" / "maestro" / "sources.json").read_text()) == summary

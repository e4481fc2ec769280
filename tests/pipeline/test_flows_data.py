"""The data flows under Prefect, on real speech served by a real HTTP server on 127.0.0.1:
download (Prefect retries resume a broken transfer; a checksum mismatch is not retried) ->
prepare (a corrupt file is skipped and reported) -> features; plus the run artifacts."""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import tarfile
from pathlib import Path

import pandas as pd
import pytest

from ganpipe.datasets import corpora
from tests.conftest import write_params
from tests.support.http_server import FileServer

pytestmark = [pytest.mark.slow, pytest.mark.network]

URL_PATH = "/speech/LJSpeech-1.1.tar.bz2"
N_CLIPS = 6


def build_archive(ljspeech_mini: Path) -> bytes:
    """An LJSpeech-layout archive of a few real clips plus one corrupt wav listed in metadata."""
    rows = (ljspeech_mini / "metadata.csv").read_text(encoding="utf-8").splitlines()[:N_CLIPS]
    rows.append("LJ999-0001|broken file|broken file")
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:bz2", compresslevel=1) as tf:
        meta = ("\n".join(rows) + "\n").encode()
        info = tarfile.TarInfo("LJSpeech-1.1/metadata.csv")
        info.size = len(meta)
        tf.addfile(info, io.BytesIO(meta))
        for row in rows[:N_CLIPS]:
            utt = row.split("|")[0]
            tf.add(ljspeech_mini / "wavs" / f"{utt}.wav", arcname=f"LJSpeech-1.1/wavs/{utt}.wav")
        junk = b"RIFF\x00\x00\x00\x00WAVEjunkjunkjunk" * 50
        info = tarfile.TarInfo("LJSpeech-1.1/wavs/LJ999-0001.wav")
        info.size = len(junk)
        tf.addfile(info, io.BytesIO(junk))
    return buf.getvalue()


@pytest.fixture()
def served(ljspeech_mini, monkeypatch):
    data = build_archive(ljspeech_mini)
    with FileServer() as srv:
        url = srv.add(URL_PATH, data)
        spec = corpora.ArchiveSpec(url=url, filename="LJSpeech-1.1.tar.bz2", size_bytes=len(data),
                                    checksum_algo="sha256", checksum=hashlib.sha256(data).hexdigest(),
                                    extracted_root="LJSpeech-1.1")
        monkeypatch.setattr(corpora, "archives_for", lambda name, subsets=(): [spec])
        yield srv, data


def _params(tmp_path: Path, **dataset) -> Path:
    return write_params(tmp_path / "params.yaml", {
        "dataset": {"name": "ljspeech", "raw_dir": str(tmp_path / "raw"),
                    "download": {"retries": 2, "retry_delay_seconds": 0, "timeout_seconds": 10}, **dataset},
        "split": {"method": "seeded", "valid_fraction": 0.2, "test_fraction": 0.2}})  # fixed counts: every split present


def gets(srv) -> list:
    """The GETs of the archive (the download stage also sends a HEAD for the remote's validators)."""
    return [r for r in srv.requests_for(URL_PATH) if r.method == "GET"]


def test_download_prepare_features_flows(tmp_path, served, prefect_harness):
    from flows.download import download_flow
    from flows.features import features_flow
    from flows.prepare import prepare_flow

    srv, data = served
    srv.cut_next(URL_PATH, after_bytes=len(data) // 2)  # first attempt breaks mid-way
    params = str(_params(tmp_path))
    summary = download_flow(params_path=params, cache_dir=str(tmp_path / "cache"))
    reqs = gets(srv)
    assert len(reqs) == 2, reqs
    assert reqs[0].range is None and reqs[1].range == f"bytes={len(data) // 2}-"  # resumed, not restarted
    assert sum(r.bytes_sent for r in reqs) == len(data)
    assert (tmp_path / "cache" / "LJSpeech-1.1.tar.bz2").read_bytes() == data
    assert summary["sources"][0]["layout"] == "ljspeech"
    assert json.loads((tmp_path / "raw" / "ljspeech" / "sources.json").read_text()) == summary

    # idempotent: a second run verifies the cached archive and fetches nothing (one HEAD: has the remote changed?)
    heads = len(srv.requests_for(URL_PATH)) - len(gets(srv))
    download_flow(params_path=params, cache_dir=str(tmp_path / "cache"))
    assert len(gets(srv)) == 2 and len(srv.requests_for(URL_PATH)) - 2 == heads + 1

    prepared = tmp_path / "prepared"
    psum = prepare_flow(params_path=params, out_dir=str(prepared), metrics_path=str(tmp_path / "m1.json"))
    assert psum["utterances"] == N_CLIPS and psum["skipped"]["total"] == 1
    skipped = pd.read_csv(prepared / "skipped.csv")
    assert list(skipped["utt_id"]) == ["LJ999-0001"] and skipped["reason"][0] == "unreadable"
    manifest = pd.read_csv(prepared / "manifest.csv")
    assert set(manifest["split"]) == {"train", "valid", "test"}
    assert (manifest["sample_rate"] == 22050).all()

    fsum = features_flow(params_path=params, prepared_dir=str(prepared), out_dir=str(tmp_path / "features"),
                         metrics_path=str(tmp_path / "m2.json"))
    assert fsum["utterances"] == N_CLIPS
    assert json.loads((tmp_path / "m2.json").read_text())["utterances"] == N_CLIPS

    # each flow published its summary artifact
    from prefect.client.orchestration import get_client

    async def keys() -> set[str]:
        async with get_client() as client:
            return {a.key for a in await client.read_artifacts()}

    assert {"download-summary", "prepare-summary", "features-summary"} <= asyncio.run(keys())


def test_checksum_mismatch_fails_without_retrying(tmp_path, served, prefect_harness, monkeypatch):
    from flows.download import download_flow

    srv, data = served
    bad = corpora.ArchiveSpec(url=srv.url(URL_PATH), filename="LJSpeech-1.1.tar.bz2", size_bytes=len(data),
                               checksum_algo="sha256", checksum="0" * 64, extracted_root="LJSpeech-1.1")
    monkeypatch.setattr(corpora, "archives_for", lambda name, subsets=(): [bad])
    from ganpipe.datasets.download import ChecksumError

    with pytest.raises(ChecksumError, match="sha256 mismatch"):
        download_flow(params_path=str(_params(tmp_path)), cache_dir=str(tmp_path / "cache"))
    assert len(gets(srv)) == 1  # wrong bytes are not fetched again and again
    assert not (tmp_path / "cache" / "LJSpeech-1.1.tar.bz2").exists()
    assert not (tmp_path / "raw" / "ljspeech" / "sources.json").exists()

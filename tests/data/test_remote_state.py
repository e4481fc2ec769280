"""A corpus fetched from a URL is re-fetched (and the retrain re-runs) when the archive at its URL
was replaced, judged by the remote's HEAD validators; an unchanged or unreachable remote changes nothing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ganpipe.config import DatasetParams
from ganpipe.datasets import remote_state as R
from tests.support.http_server import FileServer


@pytest.mark.network  # a file server on 127.0.0.1
def test_validators_tell_a_replaced_archive_and_unreachable_remotes_change_nothing(tmp_path: Path) -> None:
    with FileServer() as server:
        url = server.add("/sc09.tar.gz", b"first archive")
        first = R.head(url)
        assert first is not None and first["content_length"] == "13" and first["etag"]
        assert R.head(url) == first
        server.add("/sc09.tar.gz", b"the replaced archive")
        second = R.head(url)
        assert R.differ(second, first) and not R.differ(second, second)
        assert R.head(server.url("/missing.tar.gz")) is None
    assert R.head(url, timeout=2) is None  # the server is gone: unknown, not changed
    assert not R.differ(None, first) and not R.differ(first, None)


@pytest.mark.network  # a file server on 127.0.0.1
def test_download_stage_drops_a_replaced_cached_archive_and_the_retrain_sees_it(tmp_path: Path) -> None:
    cache = tmp_path / "data" / "cache" / "downloads"
    cache.mkdir(parents=True)
    archive = cache / "sc09.tar.gz"
    with FileServer() as server:
        url = server.add("/sc09.tar.gz", b"first archive")
        ds = DatasetParams(name="sc09", download={"url_override": url})
        assert R.urls(ds) == [url] and R.urls(DatasetParams(name="demo")) == []
        # the download stage fetched it and recorded the validators (beside it and in sources.json)
        archive.write_bytes(b"first archive")
        (cache / "sc09.tar.gz.verified").write_text("{}")
        now = R.head(url)
        R.record(archive, url, now)
        raw = tmp_path / "data" / "raw" / "sc09"
        raw.mkdir(parents=True)
        (raw / "sources.json").write_text(json.dumps({"dataset": "sc09", "sources": [
            {"url": url, "archive": "sc09.tar.gz", "validators": now}]}))
        assert R.changed_urls(ds, tmp_path) == []  # unchanged: nothing to do
        assert not R.drop_if_replaced(archive, url, R.head(url)) and archive.exists()

        server.add("/sc09.tar.gz", b"the replaced archive")
        assert R.changed_urls(ds, tmp_path) == [url]  # the retrain re-runs the download stage
        assert R.drop_if_replaced(archive, url, R.head(url))  # which fetches it again
        assert not archive.exists() and not (cache / "sc09.tar.gz.verified").exists()

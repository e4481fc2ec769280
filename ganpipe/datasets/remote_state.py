"""Has a corpus fetched from a URL changed at its source? HEAD validators of its archives.

A downloaded archive is cached (``data/cache/downloads/``) and DVC sees only the download stage's
params and code, so an archive replaced at its URL (same name, new content; most likely where no
checksum is published, e.g. ``sc09``, or a ``dataset.download.url_override`` mirror) would never
re-run the pipeline. The remote's validators (``ETag``, ``Last-Modified``, ``Content-Length`` from
a ``HEAD`` request) tell:

* the download stage records them next to each cached archive (``<archive>.validators.json``) and
  in ``data/raw/<name>/sources.json``; when the remote's differ from the cached archive's, the
  cached copy is dropped and fetched again (:func:`drop_if_replaced`);
* the ``remote_validators`` stage of dvc.yaml (``always_changed``: a HEAD per archive, about a
  second) writes them to ``data/remote_validators.json`` (:func:`main`), a dependency of the
  download stage: plain ``dvc repro`` re-runs download -> prepare -> ... when an archive was
  replaced, and skips them when it was not (the file keeps its hash). ``dvc status`` always lists
  that stage as "always changed", whatever the remote says;
* the retrain flow asks :func:`changed_urls` before ``dvc status``: a remote whose validators
  differ from the recorded ones makes the cycle run ``dvc repro``; an unchanged remote (and a
  ``dvc status`` that lists nothing but that stage) ends the cycle as a no-op.

A remote that cannot be asked (no network, no HEAD support, no validator sent) counts as
unchanged: it never triggers a cycle by itself, and never drops a cached archive.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from ganpipe.atomic import write_json
from ganpipe.config import DatasetParams

log = logging.getLogger("ganpipe.datasets.remote_state")

FIELDS = {"ETag": "etag", "Last-Modified": "last_modified", "Content-Length": "content_length"}
LOCAL_DATASETS = ("demo", "demo_music", "local")


def head(url: str, timeout: float = 30.0) -> dict[str, str] | None:
    """The validators the server sends for ``url`` (None: it could not be asked, or sent none)."""
    import requests

    try:
        resp = requests.head(url, allow_redirects=True, timeout=timeout)
    except requests.RequestException as exc:
        log.warning("HEAD %s failed (%s): treated as unchanged", url, exc)
        return None
    if resp.status_code >= 400:
        log.warning("HEAD %s: HTTP %d: treated as unchanged", url, resp.status_code)
        return None
    got = {key: resp.headers[h] for h, key in FIELDS.items() if resp.headers.get(h)}
    return got or None


def urls(ds: DatasetParams) -> list[str]:
    """The archive URLs of a corpus fetched from the network ([] for demo, demo_music, local)."""
    if ds.name in LOCAL_DATASETS:
        return []
    from ganpipe.datasets import corpora

    return [ds.download.url_override or spec.url for spec in corpora.archives_for(ds.name, ds.libritts_subsets)]


def sidecar(archive: Path) -> Path:
    return archive.with_name(archive.name + ".validators.json")


def read_sidecar(archive: Path) -> dict[str, str] | None:
    try:
        data = json.loads(sidecar(archive).read_text())
    except (OSError, json.JSONDecodeError):
        return None
    return data.get("validators") if isinstance(data, dict) else None


def differ(now: dict[str, str] | None, before: dict[str, str] | None) -> bool:
    """Validators known on both sides that disagree (a missing side is no evidence of a change)."""
    if not now or not before:
        return False
    common = set(now) & set(before)
    return any(now[k] != before[k] for k in common)


def drop_if_replaced(archive: Path, url: str, now: dict[str, str] | None) -> bool:
    """The download stage, before fetching: when the remote's validators differ from the cached
    archive's, delete the archive (and its verification marker) so that it is fetched again."""
    before = read_sidecar(archive)
    if not archive.exists() or not differ(now, before):
        return False
    log.info("%s was replaced at its source (%s -> %s): fetching it again", url, before, now)
    for path in archive.parent.glob(archive.name + "*"):
        if path.is_file():
            path.unlink()
    return True


def record(archive: Path, url: str, now: dict[str, str] | None) -> None:
    """The download stage, after fetching: the validators of the archive now in the cache."""
    write_json(sidecar(archive), {"url": url, "validators": now})


def recorded(sources_json: Path) -> dict[str, dict[str, str]]:
    """``{url: validators}`` the last download stage recorded in ``data/raw/<name>/sources.json``."""
    try:
        data = json.loads(sources_json.read_text())
    except (OSError, json.JSONDecodeError):
        return {}
    return {s["url"]: s["validators"] for s in data.get("sources", [])
            if isinstance(s, dict) and s.get("url") and s.get("validators")}


def changed_urls(ds: DatasetParams, project: Path, timeout: float | None = None) -> list[str]:
    """The corpus' URLs whose validators now differ from what the download stage recorded."""
    before: dict[str, Any] = recorded(project / ds.raw_dir / ds.name / "sources.json")
    out = []
    for url in urls(ds):
        if differ(head(url, timeout or ds.download.timeout_seconds), before.get(url)):
            out.append(url)
    return out


def current(ds: DatasetParams, project: Path) -> dict[str, dict[str, str]]:
    """``{url: validators}`` the remote sends now; a remote that cannot be asked keeps the ones the
    last download recorded (unchanged), so it never re-runs the download stage by itself."""
    before = recorded(project / ds.raw_dir / ds.name / "sources.json")
    out = {}
    for url in urls(ds):
        now = head(url, ds.download.timeout_seconds) or before.get(url)
        if now:
            out[url] = dict(sorted(now.items()))
    return out


def main(argv: list[str] | None = None) -> None:
    """The ``remote_validators`` stage: ``python -m ganpipe.datasets.remote_state --out FILE``."""
    import argparse

    from ganpipe.config import load_params

    ap = argparse.ArgumentParser(description="Record the HEAD validators of the corpus' archives "
                                             "(empty for demo, demo_music and local corpora).")
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--out", default="data/remote_validators.json")
    a = ap.parse_args(argv)
    ds = load_params(a.params).dataset
    write_json(Path(a.out), {"dataset": ds.name, "validators": current(ds, Path("."))})


if __name__ == "__main__":
    main()

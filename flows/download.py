"""Download flow: fetch + verify + safely extract the configured corpus into data/raw/<name>/.

* real corpora: each archive is streamed (resumable, checksum-verified, retried by Prefect) into
  ``data/cache/downloads/`` (git-ignored, kept across runs so a re-run never re-downloads), then
  extracted into ``data/raw/<name>/<archive stem>/`` with path-traversal and link checks; the
  remote's HEAD validators (ETag, Last-Modified, Content-Length) are recorded beside the archive
  and in ``sources.json``, and an archive replaced at its URL is fetched again
  (ganpipe/datasets/remote_state.py; the retrain flow re-runs this stage when they change);
* ``maestro`` with ``dataset.maestro_max_files`` / ``maestro_max_hours``: only the CSV and the audio
  of the first performances of ``maestro_split``, read out of the remote zip with HTTP Range requests
  (ganpipe/datasets/remote_zip.py), each member CRC-32-checked and cached in ``data/cache/downloads/``;
* ``demo`` / ``demo_music``: the synthetic corpus is generated into ``data/raw/<name>/``;
* ``local``: nothing is copied; the folder is checked and inventoried by content: one hash per
  audio file in ``data/raw/local/files.tsv`` and one for the whole in ``sources.json`` (hashes are
  cached in ``data/cache/file-hashes.json`` by path, size, times and inode, so an unchanged corpus
  is only ``stat``-ed).

``data/raw/<name>/sources.json`` tells the prepare stage which folders to read and with which layout.
In ``dvc.yaml`` the stage depends on ``${dataset.local_dir}`` (DVC hashes that folder by content,
wherever it is), so an edited ``local`` file re-runs this stage, prepare and what follows, and a
no-op ``dvc repro`` runs nothing.
"""

from __future__ import annotations

from pathlib import Path

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE

from flows._runtime import cli_main, publish
from ganpipe.atomic import write_json
from ganpipe.audio import AUDIO_EXTENSIONS
from ganpipe.config import DatasetParams, load_params
from ganpipe.datasets import corpora, demo, demo_music, download, extract, inventory, remote_state, remote_zip

DOWNLOAD_CACHE = Path("data/cache/downloads")
HASH_CACHE = Path("data/cache/file-hashes.json")


def _retry_if_transient(task, task_run, state) -> bool:
    """Retry broken transfers (they resume); never retry wrong bytes (checksum/size mismatch) or a
    server without Range support (it will not grow it)."""
    exc = state.data if isinstance(state.data, BaseException) else None
    return not isinstance(exc, (download.IntegrityError, remote_zip.RangeNotSupportedError))


@task(name="fetch-archive", cache_policy=NO_CACHE, retry_condition_fn=_retry_if_transient)
def fetch_archive(spec: corpora.ArchiveSpec, dest: Path, url: str, chunk_bytes: int, timeout: float) -> Path:
    return download.fetch(url, dest, size_bytes=spec.size_bytes, checksum_algo=spec.checksum_algo,
                          checksum=spec.checksum, chunk_bytes=chunk_bytes, timeout=timeout)


@task(name="fetch-zip-members", cache_policy=NO_CACHE, retry_condition_fn=_retry_if_transient)
def fetch_maestro_members(url: str, cache: Path, ds: DatasetParams) -> remote_zip.MemberFetch:
    hours = ds.maestro_max_hours
    return remote_zip.fetch_members(
        url, cache, lambda zf: remote_zip.maestro_members(
            zf, ds.maestro_split, ds.maestro_max_files, hours * 3600.0 if hours else None),
        timeout=ds.download.timeout_seconds, readahead=ds.download.chunk_bytes)


@task(name="extract-archive", cache_policy=NO_CACHE)
def extract_archive(archive: Path, target: Path, checksum: str | None) -> Path:
    return extract.safe_extract(archive, target, checksum=checksum)


@task(name="generate-demo", cache_policy=NO_CACHE)
def generate_demo(out_dir: Path, ds: DatasetParams) -> list[Path]:
    return demo.generate(out_dir, ds.demo)


@task(name="generate-demo-music", cache_policy=NO_CACHE)
def generate_demo_music(out_dir: Path, ds: DatasetParams) -> list[Path]:
    return demo_music.generate(out_dir, ds.demo_music)


def _full_download(ds: DatasetParams, out: Path, cache_dir: Path) -> list[dict]:
    dl = ds.download
    archives = corpora.archives_for(ds.name, ds.libritts_subsets)
    if dl.url_override and len(archives) != 1:
        raise ValueError(f"dataset.download.url_override needs a single-archive dataset; "
                         f"{ds.name} has {len(archives)} archives here")
    fetch = fetch_archive.with_options(retries=dl.retries, retry_delay_seconds=dl.retry_delay_seconds)
    sources = []
    for spec in archives:
        url = dl.url_override or spec.url
        now = remote_state.head(url, dl.timeout_seconds)  # replaced at the source: fetched again
        remote_state.drop_if_replaced(cache_dir / spec.filename, url, now)
        archive = fetch(spec, cache_dir / spec.filename, url, dl.chunk_bytes, dl.timeout_seconds)
        remote_state.record(archive, url, now)
        target = out / spec.stem
        extract_archive(archive, target, spec.checksum)
        sources.append({"root": str(target), "layout": corpora.get_dataset(ds.name).layout,
                        "archive": spec.filename, "url": url, "checksum": spec.checksum, "validators": now})
    return sources


def _maestro_partial(ds: DatasetParams, out: Path, cache_dir: Path, logger) -> dict | None:
    """The first performances of ``dataset.maestro_split`` only, fetched from the zip with Range
    requests into ``<cache>/<zip>.members/`` (kept across runs: members already there with the zip's
    size and CRC-32 are not fetched again) and copied into ``data/raw/maestro/<stem>/``. None when
    the server ignores Range and ``maestro_without_range`` is ``full`` (the caller downloads it all)."""
    dl = ds.download
    spec = corpora.archives_for("maestro")[0]
    url = dl.url_override or spec.url
    cache = cache_dir / f"{spec.filename}.members"
    fetch = fetch_maestro_members.with_options(retries=dl.retries, retry_delay_seconds=dl.retry_delay_seconds)
    try:
        got = fetch(url, cache, ds)
    except remote_zip.RangeNotSupportedError as exc:
        if ds.maestro_without_range == "full":
            logger.warning("%s; dataset.maestro_without_range is 'full': downloading the whole archive", exc)
            return None
        raise remote_zip.RangeNotSupportedError(
            url, f"{str(exc).split(': ', 1)[-1]}; a partial MAESTRO (dataset.maestro_max_files / "
                 "maestro_max_hours) needs Range support. Set dataset.maestro_without_range: full to "
                 "download the whole archive instead, or use another mirror (dataset.download.url_override)"
        ) from None
    target = out / spec.stem
    remote_zip.publish_members(got.paths, cache, target)
    logger.info("maestro (partial): %d members from %s (%d fetched now, %.1f MB, %d requests; %d "
                "already cached)", len(got.paths), url, got.downloaded, got.bytes_downloaded / 1e6,
                got.requests, got.cached)
    return {"root": str(target), "layout": "maestro", "archive": spec.filename, "url": url,
            "checksum": None, "partial": {"split": ds.maestro_split, "max_files": ds.maestro_max_files,
                                          "max_hours": ds.maestro_max_hours,
                                          "members": [str(p.relative_to(cache)) for p in got.paths]}}


def _inventory(folder: Path) -> dict:
    files = [p for p in folder.rglob("*") if p.suffix.lower() in AUDIO_EXTENSIONS and p.is_file()]
    return {"files": len(files), "bytes": sum(p.stat().st_size for p in files)}


@flow(name="download", log_prints=True)
def download_flow(params_path: str = "params.yaml", cache_dir: str = str(DOWNLOAD_CACHE),
                  hash_cache: str = str(HASH_CACHE)) -> dict:
    params = load_params(params_path)
    ds = params.dataset
    logger = get_run_logger()
    out = Path(ds.raw_dir) / ds.name
    sources: list[dict] = []
    if ds.name == "demo":
        files = generate_demo(out, ds)
        sources.append({"root": str(out), "layout": "demo"})
        logger.info("demo corpus: %d files generated in %s", len(files), out)
    elif ds.name == "demo_music":
        files = generate_demo_music(out, ds)
        sources.append({"root": str(out), "layout": "demo"})
        logger.info("demo music corpus: %d pieces generated in %s", len(files), out)
    elif ds.name == "local":
        local = Path(ds.local_dir or "")
        if not local.is_dir():
            raise FileNotFoundError(f"dataset.local_dir: folder not found: {local}")
        entries, hashed = inventory.inventory(local, Path(hash_cache))
        inventory.write_listing(out / "files.tsv", entries)
        sources.append({"root": str(local.resolve()), "layout": "local", "files": len(entries),
                        "bytes": sum(e.size for e in entries), "content": inventory.corpus_digest(entries),
                        "content_hash": inventory.HASH_NAME})
        logger.info("local corpus %s: %d audio files (%d hashed, the rest unchanged since the last run)",
                    local, len(entries), hashed)
    else:
        partial = None
        if ds.name == "maestro" and (ds.maestro_max_files or ds.maestro_max_hours):
            partial = _maestro_partial(ds, out, Path(cache_dir), logger)
        if partial is not None:
            sources.append(partial)
        else:
            sources += _full_download(ds, out, Path(cache_dir))
    summary = {"dataset": ds.name, "sources": sources}
    write_json(out / "sources.json", summary)
    inv = [s if "files" in s else _inventory(Path(s["root"])) for s in sources]
    publish("download-summary", f"Download: {ds.name}", {
        "dataset": ds.name, "sources": len(sources),
        "audio files": sum(i["files"] for i in inv),
        "size (MB)": round(sum(i["bytes"] for i in inv) / 1e6, 1)})
    return summary


def main() -> None:
    cli_main(download_flow, "Fetch, verify and extract (or generate) the configured corpus into data/raw.")


if __name__ == "__main__":
    main()

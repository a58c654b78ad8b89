"""Decode a dataset once and keep the uint8 tensors on local disk.

Decoding 60,000 JPEGs takes minutes on 2 cores; loading the cached tensors takes a second. The
cache key includes the source folder and its modification times, so an edited image folder is
decoded again rather than served stale. A FileLock makes concurrent workers decode only once.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import torch
from filelock import FileLock

from deepnets.data.sources import RawDataset

FORMAT_VERSION = 1


def cache_dir() -> Path:
    env = os.environ.get("DEEPNETS_CACHE_DIR")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "deepnets"


def _fingerprint(folder: Path) -> str:
    """Cheap change detector: modification times of the folders two levels down (class folders
    of an image tree: adding or removing a file changes them) and sizes of the files there."""
    if not folder.is_dir():
        return "absent"
    stamps = [f"{p}:{p.stat().st_mtime_ns}" for p in sorted(folder.glob("*/*")) if p.is_dir()]
    stamps += [f"{p}:{p.stat().st_size}" for p in sorted(folder.glob("*/*")) if p.is_file()]
    return hashlib.sha1("\n".join(stamps).encode()).hexdigest()[:12]


def cache_path(dataset: str, source_dir: Path) -> Path:
    """`<name>-<source>-<contents>.pt`: one source folder keeps one entry, named by its contents."""
    source = f"v{FORMAT_VERSION}|{dataset}|{source_dir.resolve()}"
    source_digest = hashlib.sha1(source.encode()).hexdigest()[:10]
    contents_digest = hashlib.sha1(_fingerprint(source_dir).encode()).hexdigest()[:8]
    safe = "".join(c if c.isalnum() else "_" for c in dataset)[:40]
    return cache_dir() / "tensors" / f"{safe}-{source_digest}-{contents_digest}.pt"


def _entries_of_source(path: Path) -> list[Path]:
    """Every cache entry, of any contents, of the source folder that `path` is an entry of."""
    return list(path.parent.glob(f"{path.name.rsplit('-', 1)[0]}-*.pt"))


def _remove(entry: Path) -> None:
    entry.unlink(missing_ok=True)
    Path(f"{entry}.lock").unlink(missing_ok=True)


def forget(dataset: str, source_dir: Path) -> None:
    """Remove this source's cache entries (a dataset in a folder that is about to go)."""
    for entry in _entries_of_source(cache_path(dataset, source_dir)):
        _remove(entry)


def _save_atomically(raw: RawDataset, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    torch.save(vars(raw), tmp)
    os.replace(tmp, path)  # readers see the old file or the whole new one, never a partial one


def cached(dataset: str, source_dir: Path, read) -> RawDataset:
    """Return the decoded dataset from the cache, calling `read()` to decode it the first time."""
    path = cache_path(dataset, source_dir)
    if path.exists():
        return RawDataset(**torch.load(path, weights_only=True))
    path.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(f"{path}.lock"):
        if path.exists():  # another process decoded it while we waited
            return RawDataset(**torch.load(path, weights_only=True))
        raw = read()
        _save_atomically(raw, path)
    # An edited folder was decoded anew: its earlier contents' entry (CIFAR-10's is 184 MB)
    # would never be read again.
    for stale in _entries_of_source(path):
        if stale != path:
            _remove(stale)
    return raw

"""A Hugging Face Hub cache laid out by hand, as ``huggingface_hub`` lays it out when it downloads
(``<HF_HOME>/hub/models--<org>--<name>/``: ``blobs/<sha256>``, ``snapshots/<commit>/<file>`` links
to the blobs, ``refs/main`` naming the commit), so that tests load repos offline
(``HF_HUB_OFFLINE=1``) through the libraries' own loaders, and nothing is downloaded."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path


def lay_hub_repo(hf_home: Path, repo_id: str, files: dict[str, Path | bytes]) -> Path:
    """The ``files`` (name → a file to copy, or its bytes) of ``repo_id`` at its main revision in
    the cache of ``hf_home``; returns the snapshot dir. The commit is a hash of the contents."""
    repo = hf_home / "hub" / f"models--{repo_id.replace('/', '--')}"
    contents = {n: f if isinstance(f, bytes) else Path(f).read_bytes() for n, f in files.items()}
    commit = hashlib.sha1(repr(sorted(contents.items())).encode()).hexdigest()
    snapshot = repo / "snapshots" / commit
    (repo / "blobs").mkdir(parents=True, exist_ok=True)
    snapshot.mkdir(parents=True)
    for name, data in contents.items():
        blob = repo / "blobs" / hashlib.sha256(data).hexdigest()
        blob.write_bytes(data)
        (snapshot / name).symlink_to(os.path.relpath(blob, snapshot))
    (repo / "refs").mkdir(exist_ok=True)
    (repo / "refs" / "main").write_text(commit)
    return snapshot

"""The Hugging Face Hub without a network.

``lay_hub_repo``: a Hub cache laid out by hand, as ``huggingface_hub`` lays it out when it
downloads (``<HF_HOME>/hub/models--<org>--<name>/``: ``blobs/<sha256>``,
``snapshots/<commit>/<file>`` links to the blobs, ``refs/main`` naming the commit), so that tests
load repos offline (``HF_HUB_OFFLINE=1``) through the libraries' own loaders; nothing is
downloaded. ``FakeHfApi``: records what an upload would send; nothing is sent."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any, ClassVar


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


class FakeHfApi:
    """Stands in for ``huggingface_hub.HfApi``: records the calls (which repo, which files with
    which contents, which commit message) in ``calls``; sends nothing. ``whoami_error``: what
    ``whoami`` raises (no network, a refused token), else it answers."""

    calls: ClassVar[list[tuple[str, dict[str, Any]]]] = []
    whoami_error: ClassVar[Exception | None] = None

    def __init__(self, token: str | None = None) -> None:
        self.calls.append(("HfApi", {"token": token}))

    def whoami(self) -> dict[str, str]:
        self.calls.append(("whoami", {}))
        if self.whoami_error is not None:
            raise self.whoami_error
        return {"name": "someone"}

    def create_repo(self, repo_id: str, **options: Any) -> Any:
        from huggingface_hub import RepoUrl

        self.calls.append(("create_repo", {"repo_id": repo_id, **options}))
        return RepoUrl(f"https://huggingface.co/{repo_id}")

    def upload_folder(
        self, *, repo_id: str, folder_path: Path, commit_message: str, **options: Any
    ) -> str:
        files = {p.name: p.read_bytes() for p in Path(folder_path).iterdir()}
        record = {"repo_id": repo_id, "files": files, "message": commit_message, **options}
        self.calls.append(("upload_folder", record))
        return f"https://huggingface.co/{repo_id}/commit/0123abc"

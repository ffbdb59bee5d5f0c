"""The Hugging Face Hub (``pip install 'fastpixel[hub]'``): a saved model's two files, down and up.

    fastpixel.from_pretrained("hf://owner/repo")            # or hf://owner/repo@revision
    fastpixel.push_to_hub(model, "owner/repo")              # or model.push_to_hub("owner/repo")

``huggingface_hub`` is imported only when one of these runs; without it they raise ImportError
with the install line.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import torch

from fastpixel.saved_model import CONFIG_NAME, WEIGHTS_NAME, write_saved_model

HUB_PREFIX = "hf://"
HUB_INSTALL = "pip install 'fastpixel[hub]' (or pip install huggingface_hub)"


def hub_module():
    """``huggingface_hub``, or ImportError saying how to install it."""
    try:
        import huggingface_hub
    except ImportError:
        raise ImportError(f"the Hugging Face Hub needs the huggingface_hub package: {HUB_INSTALL}") from None
    return huggingface_hub


def is_hub_path(path_or_name: Any) -> bool:
    """Whether ``path_or_name`` names a Hub repository ("hf://owner/repo[@revision]")."""
    return isinstance(path_or_name, str) and path_or_name.startswith(HUB_PREFIX)


def download(spec: str) -> Path:
    """"[hf://]owner/repo[@revision]" -> the local snapshot folder holding config.json and model.safetensors
    (downloaded into the Hugging Face cache)."""
    spec = spec[len(HUB_PREFIX):] if is_hub_path(spec) else spec
    repo_id, _, revision = spec.partition("@")
    if repo_id.count("/") != 1 or not all(repo_id.split("/")):
        raise ValueError(f"{HUB_PREFIX}{spec}: expected {HUB_PREFIX}owner/repo or {HUB_PREFIX}owner/repo@revision")
    hub = hub_module()
    folder = hub.snapshot_download(repo_id=repo_id, revision=revision or None,
                                   allow_patterns=[CONFIG_NAME, WEIGHTS_NAME])
    return Path(folder)


def push_to_hub(
    model: torch.nn.Module, repo_id: str, *, info: dict[str, Any] | None = None, private: bool = False,
    token: str | None = None, commit_message: str = "Upload fastpixel model",
) -> str:
    """Upload ``model`` (the files of ``save_pretrained``) to the Hub repository ``repo_id``
    ("owner/repo", created if missing). Returns the commit URL. Load it back with
    ``from_pretrained("hf://owner/repo")``."""
    if not isinstance(repo_id, str) or repo_id.count("/") != 1 or not all(repo_id.split("/")):
        raise ValueError(f"repo_id must be 'owner/repo', got {repo_id!r}")
    hub = hub_module()
    api = hub.HfApi(token=token)
    with tempfile.TemporaryDirectory() as folder:
        write_saved_model(model, folder, info=info)
        api.create_repo(repo_id=repo_id, private=private, exist_ok=True)
        commit = api.upload_folder(repo_id=repo_id, folder_path=folder, commit_message=commit_message)
    return str(getattr(commit, "commit_url", commit))

"""Reaching a W&B server: its address, the credentials for it, W&B paths, and a check
that fails in seconds (not a hang) when the server cannot be used."""

from __future__ import annotations

import netrc
import os
import shutil
import socket
import sys
from pathlib import Path
from urllib.parse import urlparse

from srsweep.errors import UsageError

__all__ = ["WHAT_TO_SET", "base_url", "require_server", "parse_path", "wandb_exe"]

WHAT_TO_SET = (
    "set WANDB_API_KEY (or run `wandb login`), and WANDB_BASE_URL for a self-hosted server"
)


def base_url() -> str:
    """The server's address (``WANDB_BASE_URL``, else W&B's cloud), without secrets."""
    return os.environ.get("WANDB_BASE_URL", "https://api.wandb.ai").rstrip("/")


def _has_credentials(url: str) -> bool:
    if os.environ.get("WANDB_API_KEY"):
        return True
    host = urlparse(url).hostname or ""
    try:
        return netrc.netrc().authenticators(host) is not None
    except (OSError, netrc.NetrcParseError):
        return False


def require_server(timeout: float = 5.0) -> str:
    """Fail fast unless credentials exist and the server's port answers; its address.

    Raises:
        UsageError: no credentials, or the server cannot be reached; says what to set.
    """
    url = base_url()
    if not _has_credentials(url):
        raise UsageError(f"no W&B credentials for {url}: {WHAT_TO_SET}")
    parsed = urlparse(url)
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    try:
        with socket.create_connection((parsed.hostname or "", port), timeout=timeout):
            pass
    except OSError as e:
        raise UsageError(
            f"cannot reach the W&B server at {url} ({e}); check the network, "
            f"or {WHAT_TO_SET}; offline, use the local backend"
        ) from None
    return url


def parse_path(text: str) -> tuple[str, str, str] | None:
    """``ENTITY/PROJECT/ID`` -> its parts; None for anything else (a local sweep id)."""
    parts = text.split("/")
    if len(parts) != 3 or not all(parts):
        return None
    return parts[0], parts[1], parts[2]


def wandb_exe() -> str:
    """W&B's command line: on PATH, else beside this Python (an unactivated venv)."""
    return shutil.which("wandb") or str(Path(sys.executable).with_name("wandb"))

"""The W&B side: a backend over a W&B server's sweeps (``WandbBackend``), the offline
runs every trial also writes (read back, uploaded with ``sync``), and W&B's agent
mirrored for script sweeps run locally (``agent_trial``).

Nothing here imports wandb until it is used: ``import wandb`` takes seconds, and
commands that never talk to W&B (``create``, ``status``, ``kernels``) stay fast.
"""

from __future__ import annotations

from srsweep.backends.wandb.agent import agent_trial
from srsweep.backends.wandb.agent import finish_active_run
from srsweep.backends.wandb.agent import kill_delay
from srsweep.backends.wandb.agent import reset_session
from srsweep.backends.wandb.backend import COMMAND
from srsweep.backends.wandb.backend import WandbBackend
from srsweep.backends.wandb.backend import server_spec
from srsweep.backends.wandb.backend import to_record
from srsweep.backends.wandb.offline import OfflineRunReader
from srsweep.backends.wandb.offline import offline_dirs
from srsweep.backends.wandb.offline import read_offline_run
from srsweep.backends.wandb.offline import run_log
from srsweep.backends.wandb.offline import sync
from srsweep.backends.wandb.server import base_url
from srsweep.backends.wandb.server import parse_path
from srsweep.backends.wandb.server import require_server

__all__ = [
    "COMMAND",
    "OfflineRunReader",
    "WandbBackend",
    "agent_trial",
    "base_url",
    "finish_active_run",
    "kill_delay",
    "offline_dirs",
    "parse_path",
    "read_offline_run",
    "require_server",
    "reset_session",
    "run_log",
    "server_spec",
    "sync",
    "to_record",
]

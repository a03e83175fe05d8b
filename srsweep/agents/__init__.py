"""Agents: claim a trial, run its kernel (or script), record the outcome, repeat.

``loop`` is the claim loop and ``run_single``; ``trial`` one kernel trial's life (alone
or in a pack); ``packing`` which trials train together and on how many threads;
``signals`` the signal handling and the heartbeat thread; ``scripts`` the trials of a
sweep whose program is a script, each a process of its own; ``backup`` the copies of
an SQLite ledger an agent keeps (``--backup-every``).
"""

from __future__ import annotations

from srsweep.agents.backup import backup_target
from srsweep.agents.loop import AgentResult
from srsweep.agents.loop import agent_name
from srsweep.agents.loop import run_agent
from srsweep.agents.loop import run_single
from srsweep.agents.trial import execute

__all__ = ["AgentResult", "agent_name", "backup_target", "execute", "run_agent", "run_single"]

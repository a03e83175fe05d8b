"""W&B's agent (``wandb agent``), mirrored for script sweeps run by srsweep's own agent:
the command, environment and parameter files a trial starts with, and how long a
stopped trial gets before it is killed."""

from __future__ import annotations

import copy
import os
import platform
import sys
from pathlib import Path
from typing import Any

__all__ = ["agent_trial", "finish_active_run", "kill_delay", "reset_session"]


def agent_trial(
    command: list[Any] | None,
    params: dict[str, Any],
    *,
    program: str,
    sweep_id: str,
    run_id: str,
    env: dict[str, str],
) -> tuple[list[str], dict[str, str]]:
    """The argv and environment W&B's agent (``wandb agent``) would start a trial with,
    writing its parameter files as the agent does.

    Mirrors ``wandb.wandb_agent.Agent._command_run`` with wandb's own helpers, so every
    macro expands exactly as there: ``${envvar:NAME}`` from this process's environment,
    then each whole-item macro (``${args}``, ``${args_json}``, ...) from
    ``create_sweep_command_args``; an unknown macro expands to nothing. One deliberate
    difference: ``${interpreter}`` is this Python (the agent's is ``python`` on PATH).

    Args:
        command: the spec's ``command``; None or empty for W&B's default
            ``${env} ${interpreter} ${program} ${args}``.
        params: the trial's parameters (nested dicts for nested parameters).
        program: the spec's ``program``.
        sweep_id: set as ``WANDB_SWEEP_ID``.
        run_id: set as ``WANDB_RUN_ID``.
        env: the environment to start from; its ``WANDB_DIR`` (default: the current
            folder) holds ``wandb/sweep-<id>/config-<run>.yaml`` (``WANDB_SWEEP_PARAM_PATH``,
            which ``wandb.init`` loads as the run's config) and ``.json``.

    Returns:
        The argv and the full environment of the trial's process.
    """
    from wandb import env as wandb_env
    from wandb.sdk.launch.sweeps import utils
    from wandb.sdk.lib import config_util

    template = [str(c) for c in utils.create_sweep_command(copy.deepcopy(command or None))]
    args = {k: {"value": v} for k, v in params.items()}
    env = dict(env)
    env.setdefault(wandb_env.DIR, os.path.abspath(os.getcwd()))
    folder = os.path.join(env[wandb_env.DIR], "wandb", f"sweep-{sweep_id}")
    param_path = os.path.join(folder, f"config-{run_id}.yaml")
    json_path = os.path.join(folder, f"config-{run_id}.json")
    env[wandb_env.SWEEP_ID], env[wandb_env.RUN_ID] = sweep_id, run_id
    env[wandb_env.SWEEP_PARAM_PATH] = param_path
    env.pop(wandb_env.SERVICE, None)  # the child starts its own wandb service
    config_util.save_config_file_from_dict(param_path, args)  # type: ignore[no-untyped-call]
    values: dict[str, Any] = utils.create_sweep_command_args({"args": args})
    if "${args_json_file}" in template:
        Path(json_path).write_text(values["args_json"][0], encoding="utf-8")
    values.update(interpreter=[sys.executable], program=[program], args_json_file=[json_path])
    if platform.system() != "Windows":
        values["env"] = ["/usr/bin/env"]
    argv: list[str] = []
    for item in template:
        if item.startswith("${") and item.endswith("}"):
            argv += [str(v) for v in values.get(item[2:-1]) or []]
        else:
            argv.append(item)
    return argv, env


def kill_delay() -> float:
    """Seconds W&B's agent waits after SIGTERM before it SIGKILLs a stopped run
    (``WANDB_AGENT_KILL_DELAY``, default 30)."""
    from wandb import env as wandb_env
    from wandb.wandb_agent import Agent

    return float(wandb_env.get_agent_kill_delay(str(Agent.KILL_DELAY)) or Agent.KILL_DELAY)


def reset_session() -> None:
    """Forget wandb's settings, so the next ``wandb.init`` in this process reads the
    environment (the next trial's run id and parameter file) again, as W&B's Python
    agent does between the calls of a sweep's function."""
    import wandb

    wandb.teardown()


def finish_active_run(exit_code: int) -> None:
    """Finish the run a trial's function left open (W&B's agent does it for the user)."""
    import wandb

    if wandb.run is not None:
        wandb.run.finish(exit_code=exit_code)

"""Eight agents on two "nodes" over a PostgreSQL ledger, one of them killed mid-trial.

Starts a throw-away PostgreSQL server (Debian's binaries, ``srsweep.testing.postgres``),
creates a grid sweep of the test-only ``toy`` kernel, and starts agent processes, half
under one host name and half under another (a UTS namespace each, through ``unshare``,
so their ledger names are ``node-a-PID`` and ``node-b-PID`` as on two machines), each
node with a ``--results`` folder of its own. One agent is killed with SIGKILL while it
trains; its trial must run again elsewhere once its lease runs out. Prints the wall
time, points finished, duplicates (points finished more than once), lost points (never
finished) and who re-ran the killed trial; exits 1 if anything was duplicated or lost.
Skips, saying why, where no PostgreSQL server can be started.

    python benchmarks/bench_pg_agents.py [--points 500] [--agents 8] [--lease 3]
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
NODES = ("node-a", "node-b")


def _can_rename_host() -> list[str] | None:
    """The ``unshare`` prefix that gives a process a host name of its own, or None."""
    if shutil.which("unshare") is None:
        return None
    for prefix in (["unshare", "--uts"], ["unshare", "--map-root-user", "--uts"]):
        probe = subprocess.run(
            [*prefix, "sh", "-c", "hostname probe"], capture_output=True, timeout=10
        )
        if probe.returncode == 0:
            return prefix
    return None


def _agent(
    url: str, sid: str, node: str, results: Path, env: dict[str, str], unshare: list[str] | None
) -> subprocess.Popen[bytes]:
    cmd = [sys.executable, "-m", "srsweep.cli", "--results", str(results)]
    cmd += ["--ledger", url, "agent", sid]
    if unshare is not None:  # exec: the agent is the process we hold (and kill)
        cmd = [*unshare, "sh", "-c", f'hostname {node} && exec "$@"', "sh", *cmd]
    results.mkdir(parents=True, exist_ok=True)
    log = (results / "agent.log").open("ab")
    return subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)


def _of(run: Any, proc: subprocess.Popen[bytes]) -> bool:
    """Whether ``run`` is held by the agent process ``proc`` (its name ends in the pid)."""
    return run.agent is not None and run.agent.rsplit("-", 1)[-1] == str(proc.pid)


def _stop(procs: list[subprocess.Popen[bytes]]) -> None:
    """End the agents (a failed run of the benchmark leaves none behind)."""
    for p in procs:
        if p.poll() is None:
            p.kill()
        p.wait()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--points", type=int, default=500, help="grid points")
    ap.add_argument("--agents", type=int, default=8, help="agent processes, half per node")
    ap.add_argument("--lease", type=float, default=3.0, help="SRSWEEP_LEASE_TIMEOUT, seconds")
    ap.add_argument("--step-sleep", type=float, default=0.05, help="seconds per toy step")
    ap.add_argument("--steps", type=int, default=10, help="toy steps per trial")
    args = ap.parse_args()
    # the test-only kernel, here and in the agents (before srsweep reads its registry)
    os.environ["SRSWEEP_KERNELS"] = "toy=srsweep.testing.toy"

    from srsweep.testing import postgres

    why = postgres.unavailable()
    if why is None:
        try:
            import psycopg  # noqa: F401
        except ImportError:
            why = "no psycopg (pip install -e '.[postgres]')"
    if why is not None:
        print(f"bench_pg_agents: skipped: {why}")
        return 0

    from srsweep.backends.postgres import PostgresBackend
    from srsweep.spec import validate

    unshare = _can_rename_host()
    if unshare is None:
        print("note: unshare cannot give agents host names of their own here; one host name")
    env = dict(
        os.environ,
        SRSWEEP_LEASE_TIMEOUT=str(args.lease),
        WANDB_MODE="disabled",
        PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]).rstrip(":"),
    )
    with tempfile.TemporaryDirectory() as tmp, postgres.server() as pg:
        book = PostgresBackend(pg.url, lease_timeout=args.lease)
        spec = validate(
            {
                "program": "toy",
                "method": "grid",
                "parameters": {
                    "target": {"values": list(range(args.points))},
                    "steps": {"value": args.steps},
                    "sleep": {"value": args.step_sleep},
                },
            },
            "bench_pg_agents",
        )
        sid = book.create_sweep(spec)
        t0 = time.monotonic()
        procs = [
            _agent(
                pg.url,
                sid,
                NODES[i % 2],
                Path(tmp) / NODES[i % 2],
                env,
                unshare,
            )
            for i in range(args.agents)
        ]
        victim = procs[0]
        killed = None
        deadline = time.monotonic() + 60
        while killed is None and time.monotonic() < deadline:  # its trial, while it trains
            runs = book.runs(sid, history=False)
            if sum(r.state == "finished" for r in runs) >= args.agents:
                training = [r for r in runs if r.state == "running" and _of(r, victim)]
                # (started a while ago: its history is buffered, so rows come late)
                if training and time.time() - (training[0].started_at or 0) > 0.15:
                    victim.send_signal(signal.SIGKILL)
                    victim.wait()
                    # (it may have ended that trial meanwhile: the one it left running)
                    left = [r for r in book.runs(sid, history=False) if r.state == "running"]
                    killed = next((r for r in left if _of(r, victim)), None)
                    if killed is None:
                        _stop(procs)
                        raise SystemExit("the kill landed between two trials; run it again")
            time.sleep(0.05)
        if killed is None:
            for node in NODES:
                print(f"--- {node}:", (Path(tmp) / node / "agent.log").read_text()[-3000:])
            _stop(procs)
            raise SystemExit("the victim agent never trained a trial")
        print(f"killed {killed.agent} (kill -9) in {killed.name} ({killed.id})")
        codes = [p.wait(timeout=600) for p in procs]
        wall = time.monotonic() - t0
        runs = book.runs(sid, history=False)
        book.close()
    finished = Counter(r.params["target"] for r in runs if r.state == "finished")
    duplicates = sum(1 for n in finished.values() if n > 1)
    lost = args.points - len(finished)
    reran = [r for r in runs if r.retry_of == killed.id]
    hosts = Counter((r.agent or "?").rsplit("-", 1)[0] for r in runs if r.state == "finished")
    print(f"agents: {args.agents} on {len(NODES)} nodes, exit codes {codes}")
    print(f"wall time: {wall:.1f} s for {args.points} points")
    print(f"points finished: {len(finished)}; duplicates: {duplicates}; lost: {lost}")
    print("finished by host: " + ", ".join(f"{h} {n}" for h, n in sorted(hosts.items())))
    states = Counter(r.state for r in runs)
    print("runs by state: " + ", ".join(f"{s} {n}" for s, n in sorted(states.items())))
    if reran and reran[0].state == "finished":
        print(
            f"the killed trial re-ran: {reran[0].name} ({reran[0].id}) attempt "
            f"{reran[0].attempt}, finished by {reran[0].agent}, after a {args.lease:g} s lease"
        )
    else:
        print(f"the killed trial did NOT re-run: {[(r.id, r.state) for r in reran]}")
    ok = duplicates == 0 and lost == 0 and bool(reran) and reran[0].state == "finished"
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

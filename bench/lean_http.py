"""A minimal keep-alive HTTP/1.1 client for load generation.

httpx costs about a millisecond of Python per request; on a 2-core machine the
load generator shares cores with the server, so that cost would be measured as
server latency. This client writes a request and reads one `Content-Length`
response over a persistent connection: enough for our JSON API, nothing more.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any


class LeanConnection:
    def __init__(self, host: str, port: int, headers: dict[str, str]) -> None:
        self.host = host
        self.port = port
        self.extra = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def request(
        self, method: str, path: str, body: Any | None = None
    ) -> tuple[int, dict[str, Any] | None]:
        """(status, parsed JSON body or None); reconnects once if the server closed."""
        for attempt in (0, 1):
            try:
                return await self._once(method, path, body)
            except (ConnectionError, asyncio.IncompleteReadError):
                await self.close()
                if attempt:
                    raise
        raise AssertionError("unreachable")

    async def _once(
        self, method: str, path: str, body: Any | None
    ) -> tuple[int, dict[str, Any] | None]:
        if self._writer is None:
            self._reader, self._writer = await asyncio.open_connection(self.host, self.port)
        assert self._reader is not None
        payload = b"" if body is None else json.dumps(body).encode()
        head = (
            f"{method} {path} HTTP/1.1\r\nHost: {self.host}\r\n{self.extra}"
            f"Content-Type: application/json\r\nContent-Length: {len(payload)}\r\n\r\n"
        )
        self._writer.write(head.encode() + payload)
        status_line = await self._reader.readline()
        if not status_line:
            raise ConnectionError("server closed the connection")
        status = int(status_line.split()[1])
        length = 0
        while True:
            line = await self._reader.readline()
            if line in (b"\r\n", b""):
                break
            name, _, value = line.decode("latin-1").partition(":")
            if name.lower() == "content-length":
                length = int(value)
        data = await self._reader.readexactly(length) if length else b""
        return status, json.loads(data) if data else None

    async def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            with contextlib.suppress(ConnectionError):
                await self._writer.wait_closed()
        self._reader = self._writer = None

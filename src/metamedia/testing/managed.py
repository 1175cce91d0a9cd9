"""What every test server helper shares: `with Server(...) as s:` starts it and
always closes it (stops the process, removes what it owns)."""

from __future__ import annotations

from types import TracebackType
from typing import Self


class ManagedServer:
    """A `start()` / `close()` pair as a context manager."""

    def start(self) -> None:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        _type: type[BaseException] | None,
        _value: BaseException | None,
        _tb: TracebackType | None,
    ) -> None:
        self.close()

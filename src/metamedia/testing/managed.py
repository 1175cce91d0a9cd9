"""What every test server helper shares: `with Server(...) as s:` starts it and
always closes it (stops the process, removes what it owns)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from types import TracebackType
from typing import Self


class ManagedServer(ABC):
    """A `start()` / `close()` pair as a context manager."""

    @abstractmethod
    def start(self) -> None:
        """Start the server and wait until it answers."""

    @abstractmethod
    def close(self) -> None:
        """Stop the server and remove what it owns."""

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

"""Types of the C kernel `_halfdot.c` (mypy cannot read the compiled module).

The kernel takes any C-contiguous buffer and checks formats itself; numpy arrays are
what callers pass (numpy's stubs declare the buffer protocol only for Python 3.12+).
"""

from typing import Any

import numpy as np
import numpy.typing as npt

IMPLEMENTATION: str
"""'avx2' (AVX2 + F16C + FMA, chosen at import) or 'scalar'."""

def half_dot_at(
    rows: npt.NDArray[Any],
    positions: npt.NDArray[np.int64],
    query: npt.NDArray[np.float32],
    out: npt.NDArray[np.float32],
    /,
) -> None: ...
def half_dot_at_scalar(
    rows: npt.NDArray[Any],
    positions: npt.NDArray[np.int64],
    query: npt.NDArray[np.float32],
    out: npt.NDArray[np.float32],
    /,
) -> None: ...

"""One BLAS thread while the simulator runs.

The functional simulator multiplies one instruction's operands at a time: at most a few tens of
millions of multiply-adds per BLAS call, often far fewer. A second BLAS thread makes such a
product at most about 1.5x faster on an idle machine, and when another process keeps a core
busy it costs a great deal: the call waits for its worker to be scheduled. On a 2-core host
with a busy neighbour, a 512x128 @ 128x128 float32 product took 6 ms with OpenBLAS's two
threads and 0.25 ms with one, which made whole programs run 5-25 times slower. So a run pins
BLAS to one thread, and puts the previous count back after (the setting is the process's: BLAS
calls that other threads make meanwhile get one thread too).

The pinning goes through threadpoolctl (a dependency of tessel's); were it missing, the BLAS
would keep its own setting and the results would be the same, only slower on a busy machine.
"""

from __future__ import annotations

import contextlib
import functools
from typing import Any


@functools.cache
def _controller() -> Any:
    """threadpoolctl's view of the loaded BLAS libraries, or None; made once (it scans them)."""
    try:
        from threadpoolctl import ThreadpoolController
    except ImportError:
        return None
    return ThreadpoolController()


def one_blas_thread() -> contextlib.AbstractContextManager[Any]:
    """A context in which NumPy's BLAS uses a single thread."""
    controller = _controller()
    if controller is None:
        return contextlib.nullcontext()
    limit: contextlib.AbstractContextManager[Any] = controller.limit(limits=1, user_api="blas")
    return limit

"""B6's loop probe: loaded into the benchmark's triggerers only (``PYTHONPATH``), never shipped.

Airflow's triggerer says *that* its loop was blocked, and asyncio's debug mode names the task
step that did it; for a trigger that name is ``greenback_shim``, a step that Airflow's
per-trigger set-up and the trigger's own code share. This says *whose code* ran. Every
callback an event loop runs is timed; once one has run ``SAMPLE_AFTER``, a watchdog thread
samples that loop thread's stack every ``SAMPLE_EVERY`` until it ends. A callback longer than
``REPORT_OVER`` is appended to ``$B6_PROBE_LOG`` as one JSON line: its duration, the garbage
collection time inside it, and the distinct stacks sampled (none when a collection or C code
held the GIL throughout).
"""

from __future__ import annotations

import asyncio.events
import gc
import json
import os
import sys
import threading
import time
from typing import Any

LOG = os.environ.get("B6_PROBE_LOG")
SAMPLE_AFTER = 0.02
SAMPLE_EVERY = 0.01
REPORT_OVER = 0.1
#: Import-machinery functions whose ``name`` argument is the module being imported.
IMPORTING = frozenset({"_find_and_load", "import_module"})
#: Innermost frames kept per sampled stack (an import chain alone runs to dozens).
DEPTH = 200


class _Callback:
    __slots__ = ("began", "gc_began", "gc_seconds", "stacks")

    def __init__(self) -> None:
        self.began = time.perf_counter()
        self.gc_began = 0.0
        self.gc_seconds = 0.0
        self.stacks: list[list[str]] = []


#: Loop thread id -> the callback it is running.
_running: dict[int, _Callback] = {}
_watchdog_pid = 0


def _sample_forever() -> None:
    while True:
        time.sleep(SAMPLE_EVERY)
        now = time.perf_counter()
        frames = sys._current_frames()
        for thread_id, callback in list(_running.items()):
            frame = frames.get(thread_id)
            if frame is not None and now - callback.began >= SAMPLE_AFTER:
                stack = _stack(frame)
                if stack not in callback.stacks:
                    callback.stacks.append(stack)


def _stack(frame: Any) -> list[str]:
    """The innermost ``DEPTH`` frames, outermost first (no source lines read: the loop waits)."""
    frames: list[str] = []
    while frame is not None and len(frames) < DEPTH:
        code = frame.f_code
        if code.co_filename != __file__:  # the probe's own gc callback
            where = f"{code.co_filename}:{frame.f_lineno} {code.co_name}"
            if code.co_name in IMPORTING:  # which module: an import's frames do not say
                where += f" [{frame.f_locals.get('name')}]"
            frames.append(where)
        frame = frame.f_back
    return frames[::-1]


def _on_gc(phase: str, info: dict[str, Any]) -> None:
    callback = _running.get(threading.get_ident())
    if callback is None:
        return
    if phase == "start":
        callback.gc_began = time.perf_counter()
    elif callback.gc_began:
        callback.gc_seconds += time.perf_counter() - callback.gc_began


def _report(took: float, callback: _Callback, handle: asyncio.events.Handle) -> None:
    line = {
        "pid": os.getpid(),
        "at": time.time(),
        "took": took,
        "gc": callback.gc_seconds,
        "handle": repr(handle)[:300],
        "stacks": callback.stacks,
    }
    with open(LOG, "a") as out:  # type: ignore[arg-type]  # only installed with LOG set
        out.write(json.dumps(line) + "\n")


def _install() -> None:
    run = asyncio.events.Handle._run

    def timed_run(self: asyncio.events.Handle) -> None:
        global _watchdog_pid
        if _watchdog_pid != os.getpid():  # first callback in this process (triggerers fork)
            _watchdog_pid = os.getpid()
            threading.Thread(target=_sample_forever, name="b6-probe", daemon=True).start()
        thread_id = threading.get_ident()
        outer = _running.get(thread_id)  # a loop run inside a callback (rare, but not ours to break)
        callback = _running[thread_id] = _Callback()
        try:
            run(self)
        finally:
            if outer is None:
                del _running[thread_id]
            else:
                _running[thread_id] = outer
            took = time.perf_counter() - callback.began
            if took > REPORT_OVER:
                _report(took, callback, self)

    asyncio.events.Handle._run = timed_run  # type: ignore[method-assign]
    gc.callbacks.append(_on_gc)


if LOG:
    _install()

"""Which keys under a watched prefix are new: the state behind event-driven scheduling on COS.

COS has no change feed a trigger could resume from, and an event trigger's kwargs are fixed
for its life, so "new" needs state kept outside the trigger. :class:`Arrivals` is that state,
small and JSON-plain: a ``horizon`` (Unix seconds) and every key seen with a ``LastModified``
at or after it. A key is new when it is modified at or after the horizon and not yet seen at
that ``LastModified`` (a re-upload is new again). The horizon trails the clock by
``late_arrival_window``: a key that only shows up in listings more than that window after its
``LastModified`` (COS stamps the start of an upload; listings are eventually consistent) is
missed, and the state holds one window's worth of keys. Keys that exist when a watch first
starts are a baseline, never reported.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from airflow_provider_ci.cos_objects import epoch

log = logging.getLogger(__name__)

STATE_VERSION = 1
#: Default seconds a key may take from its LastModified to appearing in a listing.
DEFAULT_LATE_ARRIVAL_WINDOW = 3600.0


@dataclass
class Arrivals:
    horizon: float
    seen: dict[str, float] = field(default_factory=dict)

    @classmethod
    def baseline(cls, objects: Iterable[Mapping[str, Any]], now: float, window: float) -> Arrivals:
        """The state of a watch that starts now: everything already there counts as seen."""
        arrivals = cls(horizon=now - window)
        arrivals.record(objects, now, window)
        return arrivals

    def new(self, objects: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
        """Objects not seen before, oldest first (then by key), each once."""
        fresh = [obj for obj in objects if epoch(obj) >= self.horizon and self.seen.get(str(obj["Key"])) != epoch(obj)]
        return sorted(fresh, key=lambda obj: (epoch(obj), str(obj["Key"])))

    def record(self, objects: Iterable[Mapping[str, Any]], now: float, window: float) -> bool:
        """Mark ``objects`` seen and move the horizon to ``now - window``; True if the state changed
        in a way that must be saved (a key added or dropped)."""
        changed = False
        for obj in objects:
            if epoch(obj) >= self.horizon:
                self.seen[str(obj["Key"])] = epoch(obj)
                changed = True
        self.horizon = max(self.horizon, now - window)
        stale = [key for key, modified in self.seen.items() if modified < self.horizon]
        for key in stale:
            del self.seen[key]
        return changed or bool(stale)

    def to_json(self) -> dict[str, Any]:
        return {"version": STATE_VERSION, "horizon": self.horizon, "seen": dict(self.seen)}

    @classmethod
    def from_json(cls, value: Any) -> Arrivals | None:
        """The saved state, or ``None`` when there is none (or it is not one this code wrote)."""
        if not isinstance(value, Mapping) or value.get("version") != STATE_VERSION:
            if value is not None:
                log.warning("Ignoring saved COS watch state of an unknown shape; starting a new baseline")
            return None
        seen = value.get("seen") or {}
        return cls(horizon=float(value["horizon"]), seen={str(k): float(v) for k, v in seen.items()})


class StateStore:
    """Where a ``CosKeyEventTrigger`` keeps its :class:`Arrivals` between triggerer restarts.

    Airflow 3.3+ gives an event trigger the state store of the asset it watches
    (``asset_state_store``, kept in the metadata DB and cleared with the asset): state goes
    there under a key derived from the watch (bucket, prefix, pattern), so a changed watch
    starts a fresh baseline. Without one (Airflow 3.1/3.2, a trigger watching several assets,
    or run outside a triggerer) state is kept in memory only: a restart then starts a new
    baseline, so old keys are still never reported again, but keys that landed while the
    triggerer was down are not reported either.

    :param trigger: the event trigger whose state this is (its ``asset_state_store``, if Airflow
        injected one, and its logger).
    :param name: the key of this watch's state in the store.
    """

    def __init__(self, trigger: Any, name: str) -> None:
        self.trigger = trigger
        self.name = name
        self.memory: Any = None
        self.warned = False

    def _note_memory_only(self) -> None:
        if not self.warned:
            self.warned = True
            self.trigger.log.warning(
                "No asset state store for this watch (Airflow < 3.3, or several assets share the trigger): "
                "new-key state lives in memory only; after a triggerer restart, keys that landed meanwhile "
                "are not reported"
            )

    async def load(self) -> Arrivals | None:
        store = getattr(self.trigger, "asset_state_store", None)
        if store is not None:
            try:
                return Arrivals.from_json(await store.aget(self.name, None))
            except ValueError:  # the trigger watches several assets: no single place for the state
                pass
        self._note_memory_only()
        return Arrivals.from_json(self.memory)

    async def save(self, arrivals: Arrivals) -> None:
        self.memory = arrivals.to_json()
        if self.warned:
            return
        await self.trigger.asset_state_store.aset(self.name, self.memory)

"""Shopper events: checked, then appended in batches by a writer thread of this process (a burst of events never
waits on the database, nor slows the similar-items queries), deleted after EVENTS_RETENTION_DAYS by the sweep;
and the analytics over them: impressions, clicks, CTR by position, add-to-cart and purchase rates, by model
version and experiment arm, per day."""

from __future__ import annotations

import atexit
import logging
import math
import re
import threading
from collections import defaultdict, deque
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any, TypedDict

from marshmallow import ValidationError
from sqlalchemy import Engine, delete, func, insert, select

from backend.core.extensions import DbSession
from backend.core.metrics import EVENTS_RECORDED, EVENTS_REFUSED
from backend.db.models import EventKind, Product, ShopperEvent
from backend.domain.events import EventIn, EventsIn
from backend.errors import InvalidInput

log = logging.getLogger(__name__)

FLUSH_EVERY_S = 1.0
FLUSH_AT = 500  # rows: a burst is written as soon as this many wait
MAX_PENDING = 100_000  # rows held while the database is away; past it the oldest are dropped (and logged)
POSITION = re.compile(r"\[\d+\]")


def _first_field(messages: Any, path: str = "") -> tuple[str, str]:
    """The first field marshmallow names, as `events[2].product`, and its message."""
    if isinstance(messages, dict):
        key, inner = next(iter(messages.items()))
        name = f"{path}[{key}]" if isinstance(key, int) else (f"{path}.{key}" if path else str(key))
        return _first_field(inner, name)
    if isinstance(messages, list) and messages and not isinstance(messages[0], str):
        return _first_field(messages[0], path)
    text = "; ".join(str(m) for m in messages) if isinstance(messages, list) else str(messages)
    return path or "body", text


def _refuse(field: str, message: str) -> InvalidInput:
    EVENTS_REFUSED.labels(field=POSITION.sub("", field)).inc()
    return InvalidInput(field, message)


class EventRow(TypedDict):
    """A checked event, as the shopper_events table stores it."""

    kind: EventKind
    query_product_id: int
    product_id: int | None
    position: int | None
    shown: list[int]
    shown_count: int
    visitor: str
    model_version: str
    arm: str | None
    at: datetime


def check_events(*, session: DbSession, body: Any) -> list[EventRow]:
    """The rows of one body (an event, or {"events": [...]}), every one checked; InvalidInput naming the first
    field at fault, and nothing kept, when any is bad (a product that does not exist included)."""
    if not isinstance(body, dict):
        raise _refuse("body", 'a JSON object: one event, or {"events": [...]}')
    batch = "events" in body
    try:
        events = EventsIn().load(body)["events"] if batch else [EventIn().load(body)]
    except ValidationError as exc:
        raise _refuse(*_first_field(exc.messages)) from None
    named = {pid for e in events for pid in (e["query"], e["product"], *e["shown"]) if pid is not None}
    known = set(session.scalars(select(Product.id).where(Product.id.in_(named))))
    for n, event in enumerate(events):
        where = f"events[{n}]." if batch else ""
        for name, ids in (("query", [event["query"]]), ("product", [event["product"]]), ("shown", event["shown"])):
            unknown = [pid for pid in ids if pid is not None and pid not in known]
            if unknown:
                raise _refuse(where + name, f"no product {unknown[0]}")
    now = datetime.now(UTC)
    return [
        {
            "kind": EventKind(e["type"]),
            "query_product_id": e["query"],
            "product_id": e["product"],
            "position": e["position"],
            "shown": e["shown"],
            "shown_count": len(e["shown"]),
            "visitor": e["visitor"],
            "model_version": e["model_version"],
            "arm": e["arm"],
            "at": e["at"] or now,
        }
        for e in events
    ]


class EventWriter:
    """Rows appended by a daemon thread in one INSERT per batch, every FLUSH_EVERY_S or at FLUSH_AT rows, through
    the engine's own connections (never a request's session). At exit the rest is written."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.pending: deque[EventRow] = deque()
        self.wake = threading.Condition()
        self.lock = threading.Lock()  # one flush at a time
        threading.Thread(target=self._run, name="lookalike-events", daemon=True).start()
        atexit.register(self.flush)

    def add(self, rows: list[EventRow]) -> None:
        with self.wake:
            self.pending.extend(rows)
            dropped = len(self.pending) - MAX_PENDING
            for _ in range(max(0, dropped)):
                self.pending.popleft()
            if dropped > 0:
                log.warning("events: %d dropped, the database has been away too long", dropped)
            if len(self.pending) >= FLUSH_AT:
                self.wake.notify()
        for row in rows:
            EVENTS_RECORDED.labels(type=row["kind"].value).inc()

    def flush(self) -> int:
        """Write what waits; returns how many rows. On a database error the rows wait for the next flush."""
        with self.lock:
            with self.wake:
                rows = list(self.pending)
                self.pending.clear()
            if not rows:
                return 0
            try:
                with self.engine.begin() as connection:
                    connection.execute(insert(ShopperEvent), rows)
            except Exception:
                log.warning("events: %d not written yet", len(rows), exc_info=True)
                with self.wake:
                    self.pending.extendleft(reversed(rows))
                return 0
            return len(rows)

    def _run(self) -> None:
        while True:
            with self.wake:
                self.wake.wait(timeout=FLUSH_EVERY_S)
            self.flush()


_writers: dict[int, EventWriter] = {}
_writers_lock = threading.Lock()


def writer_for(engine: Engine) -> EventWriter:
    """This process's writer for an engine (one per app)."""
    with _writers_lock:
        writer = _writers.get(id(engine))
        if writer is None or writer.engine is not engine:
            writer = _writers[id(engine)] = EventWriter(engine)
        return writer


def record_events(*, session: DbSession, body: Any) -> int:
    """Check a body and hand its rows to the writer; returns how many events it held."""
    rows = check_events(session=session, body=body)
    writer_for(session.get_bind().engine).add(rows)
    return len(rows)


class EventOut(TypedDict):
    """An event as exported: the fields POST /api/v1/events takes."""

    type: str
    query: int
    product: int | None
    position: int | None
    shown: list[int]
    visitor: str
    model_version: str
    arm: str | None
    at: str


def export_events(*, session: DbSession, start: date | None = None, end: date | None = None) -> Iterator[EventOut]:
    """Every event of the period (UTC days, both included; default all) as a JSON-ready dict, oldest first, read
    in batches. This process's waiting events are written first."""
    writer_for(session.get_bind().engine).flush()
    query = select(ShopperEvent).order_by(ShopperEvent.at, ShopperEvent.id)
    if start is not None:
        query = query.where(ShopperEvent.at >= datetime(start.year, start.month, start.day, tzinfo=UTC))
    if end is not None:
        query = query.where(ShopperEvent.at < datetime(end.year, end.month, end.day, tzinfo=UTC) + timedelta(days=1))
    for event in session.scalars(query.execution_options(yield_per=1000)):
        yield {
            "type": event.kind.value,
            "query": event.query_product_id,
            "product": event.product_id,
            "position": event.position,
            "shown": event.shown,
            "visitor": event.visitor,
            "model_version": event.model_version,
            "arm": event.arm,
            "at": event.at.isoformat(),
        }


def prune_events(*, session: DbSession, retention_days: int) -> int:
    """Delete the events older than the retention; returns how many (the sweep's)."""
    before = datetime.now(UTC) - timedelta(days=retention_days)
    result = session.execute(delete(ShopperEvent).where(ShopperEvent.at < before))
    session.commit()
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


class Rates(TypedDict):
    model_version: str
    arm: str | None
    impressions: int
    clicks: int
    ctr: float | None
    add_to_cart: int
    add_to_cart_rate: float | None
    purchases: int
    purchase_rate: float | None


class DayRates(Rates):
    day: str


class ModelRates(Rates):
    ctr_by_position: dict[str, float]  # position (from 1) -> clicks there / impressions that showed it


class ArmComparison(TypedDict):
    """An experiment's CTR difference, variant minus control, in percentage points with its 95% interval."""

    control: str
    variant: str
    difference_points: float
    ci_low: float
    ci_high: float
    sentence: str


class Analytics(TypedDict):
    start: str
    end: str
    by_model: list[ModelRates]
    by_day: list[DayRates]
    experiment: list[ArmComparison]  # each arm against the first (by name), when events carry two or more


Z95 = 1.959964


def compare_ctr(control: Rates, variant: Rates) -> ArmComparison | None:
    """The two-proportion comparison of CTRs (clicks over impressions, at most 1), with a normal interval; None
    while either arm has no impression."""
    n1, n2 = control["impressions"], variant["impressions"]
    if not n1 or not n2:
        return None
    p1, p2 = min(1.0, control["clicks"] / n1), min(1.0, variant["clicks"] / n2)
    se = math.sqrt(p1 * (1 - p1) / n1 + p2 * (1 - p2) / n2)
    diff, low, high = (100 * x for x in (p2 - p1, p2 - p1 - Z95 * se, p2 - p1 + Z95 * se))
    a, b = control["arm"] or "control", variant["arm"] or "variant"
    span = f"95% CI {low:.1f} to {high:.1f}"
    if low > 0:
        sentence = f"{b} beats {a} by {diff:.1f} points, {span}"
    elif high < 0:
        sentence = f"{a} beats {b} by {-diff:.1f} points, {span} ({b} minus {a})"
    else:
        sentence = f"no clear difference yet: {b} minus {a} is {diff:.1f} points, {span}"
    return {
        "control": a,
        "variant": b,
        "difference_points": round(diff, 2),
        "ci_low": round(low, 2),
        "ci_high": round(high, 2),
        "sentence": sentence,
    }


@dataclass
class _Tally:
    impressions: int = 0
    clicks: int = 0
    add_to_cart: int = 0
    purchases: int = 0

    def rates(self, model_version: str, arm: str | None) -> Rates:
        per = (lambda n: round(n / self.impressions, 6)) if self.impressions else (lambda n: None)
        return {
            "model_version": model_version,
            "arm": arm,
            "impressions": self.impressions,
            "clicks": self.clicks,
            "ctr": per(self.clicks),
            "add_to_cart": self.add_to_cart,
            "add_to_cart_rate": per(self.add_to_cart),
            "purchases": self.purchases,
            "purchase_rate": per(self.purchases),
        }


FIELD_OF = {
    EventKind.impression: "impressions",
    EventKind.click: "clicks",
    EventKind.add_to_cart: "add_to_cart",
    EventKind.purchase: "purchases",
}


def analytics(*, session: DbSession, start: date, end: date) -> Analytics:
    """From `start` to `end` (UTC days, both included). This process's waiting events are written first."""
    if end < start:
        raise InvalidInput("to", "is before from")
    if (end - start).days > 366:
        raise InvalidInput("to", "at most 366 days after from")
    writer_for(session.get_bind().engine).flush()
    since = datetime(start.year, start.month, start.day, tzinfo=UTC)
    until = datetime(end.year, end.month, end.day, tzinfo=UTC) + timedelta(days=1)
    window = (ShopperEvent.at >= since, ShopperEvent.at < until)
    day = func.date(ShopperEvent.at)
    by_day: dict[tuple[str, str, str | None], _Tally] = defaultdict(_Tally)
    by_model: dict[tuple[str, str | None], _Tally] = defaultdict(_Tally)
    counted = session.execute(
        select(day, ShopperEvent.model_version, ShopperEvent.arm, ShopperEvent.kind, func.count())
        .where(*window)
        .group_by(day, ShopperEvent.model_version, ShopperEvent.arm, ShopperEvent.kind)
    )
    for when, version, arm, kind, n in counted:
        field = FIELD_OF[EventKind(kind)]
        for tally in (by_day[(str(when), version, arm)], by_model[(version, arm)]):
            setattr(tally, field, getattr(tally, field) + n)
    # CTR by position: clicks at p over the impressions that showed at least p look-alikes.
    shown = session.execute(
        select(ShopperEvent.model_version, ShopperEvent.arm, ShopperEvent.shown_count, func.count())
        .where(*window, ShopperEvent.kind == EventKind.impression)
        .group_by(ShopperEvent.model_version, ShopperEvent.arm, ShopperEvent.shown_count)
    ).all()
    clicked = session.execute(
        select(ShopperEvent.model_version, ShopperEvent.arm, ShopperEvent.position, func.count())
        .where(*window, ShopperEvent.kind == EventKind.click, ShopperEvent.position.is_not(None))
        .group_by(ShopperEvent.model_version, ShopperEvent.arm, ShopperEvent.position)
    ).all()
    models: list[ModelRates] = []
    for (version, arm), tally in sorted(by_model.items(), key=lambda kv: (kv[0][0], kv[0][1] or "")):
        reach = {count: n for v, a, count, n in shown if (v, a) == (version, arm)}
        positions = {}
        for v, a, position, n in sorted(clicked, key=lambda row: row[2] or 0):
            if (v, a) != (version, arm) or position is None:
                continue
            seen: int = sum(k for count, k in reach.items() if count >= position)
            if seen:
                positions[str(position)] = round(n / seen, 6)
        models.append({**tally.rates(version, arm), "ctr_by_position": positions})
    days: list[DayRates] = [
        {**tally.rates(version, arm), "day": when}
        for (when, version, arm), tally in sorted(by_day.items(), key=lambda kv: (kv[0][0], kv[0][1], kv[0][2] or ""))
    ]
    arms = sorted((m for m in models if m["arm"] is not None), key=lambda m: m["arm"] or "")
    compared = [compare_ctr(arms[0], other) for other in arms[1:]]
    return {
        "start": start.isoformat(),
        "end": end.isoformat(),
        "by_model": models,
        "by_day": days,
        "experiment": [c for c in compared if c is not None],
    }

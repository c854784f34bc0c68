"""docs/cost.md's budget-and-deadline definitions, computed in Python with exact arithmetic (Fractions), independently
of dashgen's SQL: the test oracle that tests/test_budget.py checks `dashgen.experiment_status` against.

None means unknown, as NULL does in the view, and never becomes a number: an unknown input makes every answer that
needs it unknown.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from decimal import Decimal
from fractions import Fraction

MINIMUM_S = 60  # EC2 Linux: per second, at least 60 s per start
PACE_WINDOW = dt.timedelta(hours=1)  # the recent pace: points of the last hour (and at least the two latest)
CENTURY_S = Fraction(36525 * 86400)  # 100 years of 365.25 days: an ETA further after the latest point is unknown
US = dt.timedelta(microseconds=1)


def seconds(delta: dt.timedelta) -> Fraction:
    return Fraction(delta // US, 1_000_000)


@dataclass
class Member:
    """An instance of the experiment: its price (None = unknown) and its runs (start, end or None = still going)."""

    price: Decimal | None
    runs: list[tuple[dt.datetime, dt.datetime | None]]

    def running(self) -> bool:
        return any(end is None for _, end in self.runs)

    def billed_s(self, now: dt.datetime) -> Fraction:
        """Billed seconds to date: each run from its start to its end (now while going), at least 60 s."""
        return sum((max(seconds((end or now) - start), Fraction(MINIMUM_S)) for start, end in self.runs),
                   Fraction(0))


@dataclass
class Experiment:
    name: str
    budget: Decimal
    deadline: dt.datetime
    members: list[Member] = field(default_factory=list)
    points: list[tuple[dt.datetime, Decimal]] = field(default_factory=list)  # progress, percent 0-100


@dataclass
class Status:
    instances: int
    running: int
    spent: Fraction | None
    budget_left: Fraction | None
    burn: Fraction | None  # USD per hour
    projected_at_deadline: Fraction | None
    progress: Fraction | None
    pace_per_hour: Fraction | None
    finished_at: dt.datetime | None
    eta_s: Fraction | None  # ETA as seconds after the latest point (finished: None)
    eta: dt.datetime | None
    projected_to_finish: Fraction | None
    fits_budget: bool | None
    makes_deadline: bool | None


def lsq_slope(xs: list[Fraction], ys: list[Fraction]) -> Fraction | None:
    """The least-squares slope of y on x; None with fewer than two points."""
    if len(xs) < 2:
        return None
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    sxx = sum((x - mx) ** 2 for x in xs)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sxx


def status(e: Experiment, now: dt.datetime) -> Status:
    # spend: unknown when an instance without a price ran; burn: unknown when one runs now
    priced = all(m.price is not None or m.billed_s(now) == 0 for m in e.members)
    spent = (sum((m.billed_s(now) * Fraction(m.price) / 3600 for m in e.members if m.price is not None), Fraction(0))
             if priced else None)
    running = [m for m in e.members if m.running()]
    burn = (sum((Fraction(m.price) for m in running), Fraction(0))
            if all(m.price is not None for m in running) else None)
    budget = Fraction(e.budget)
    hours_to_deadline = max(Fraction(0), seconds(e.deadline - now)) / 3600
    at_deadline = None if spent is None or burn is None else spent + burn * hours_to_deadline

    points = sorted(e.points)
    progress = pace = eta_s = None
    finished_at = eta = last_at = None
    if points:
        last_at, last = points[-1][0], Fraction(points[-1][1])
        progress = last
        window_from = min(last_at - PACE_WINDOW, points[-2][0]) if len(points) > 1 else last_at
        recent = [(seconds(at - last_at), Fraction(p)) for at, p in points if at >= window_from]
        pace = lsq_slope([x for x, _ in recent], [y for _, y in recent])  # percent per second
        if last >= 100:  # finished: when the final stretch at >= 100 % began
            below = max((at for at, p in points if p < 100), default=None)  # the last point below 100 %
            finished_at = min(at for at, p in points if p >= 100 and (below is None or at > below))
            eta = finished_at
        elif pace is not None and pace > 0 and (100 - last) / pace <= CENTURY_S:
            eta_s = (100 - last) / pace
            eta = last_at + dt.timedelta(microseconds=round(eta_s * 1_000_000))

    if finished_at is not None:
        to_finish = spent
    elif eta is not None and eta >= now:
        to_finish = None if spent is None or burn is None else spent + burn * seconds(eta - now) / 3600
    else:
        to_finish = None
    known_finish = finished_at is not None or (eta is not None and eta >= now)
    basis = to_finish if known_finish else at_deadline
    fits = None if basis is None else basis <= budget
    if eta is not None:
        makes = eta <= e.deadline
    elif last_at is not None and last_at > e.deadline:
        makes = False  # seen below 100 % after the deadline
    else:
        makes = None
    return Status(
        instances=len(e.members), running=len(running), spent=spent,
        budget_left=None if spent is None else budget - spent, burn=burn, projected_at_deadline=at_deadline,
        progress=progress, pace_per_hour=None if pace is None else pace * 3600, finished_at=finished_at,
        eta_s=eta_s, eta=eta, projected_to_finish=to_finish, fits_budget=fits, makes_deadline=makes,
    )

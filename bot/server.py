"""Wire the Teams server together: settings + profile -> store, adapter, alerts, handler, app."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import socket
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from aiohttp import web

from bot.app import create_app
from bot.clock import FileClock, utc_now
from bot.metrics import Metrics, watch_store
from bot.records.requests import RecordRequests
from bot.records.service import RecordsService
from bot.services.alerts import AlertService
from bot.services.delivery import SEND_TIMEOUT_SECONDS, phone_now
from bot.services.timekeeper import Timekeeper
from bot.services.worker import LoopThread, Wakeup
from bot.settings import UNSAFE_BIND_FLAG, Settings, is_loopback
from bot.store import Store, open_store
from bot.store.keys import load_codec
from bot.teams.adapter import APOLOGY_LEAD, create_adapter
from bot.teams.connector import TeamsConnector
from bot.teams.handler import SafeguardingBot
from flows.directory import SchoolDirectory
from flows.profile import SchoolProfile

logger = logging.getLogger(__name__)


@dataclass
class Server:
    """Everything one running bot is made of, for `serve` and for tests."""

    app: web.Application
    store: Store
    alerts: AlertService
    bot: SafeguardingBot
    timekeeper: Timekeeper
    metrics: Metrics


def open_database(
    settings: Settings, *, codec: Any, clock: Callable[[], datetime] = utc_now
) -> Store:
    """The database `serve` uses, opened and migrated: `migrate` and `doctor` open it here
    too, so all three always reach the same database with the same backend."""
    return open_store(settings.database, clock=clock, codec=codec)


def database_label(settings: Settings) -> str:
    """Where the database is, for people to read (never a password)."""
    return settings.database_label


def build_server(
    settings: Settings,
    served: SchoolDirectory | SchoolProfile,
    *,
    clock: Callable[[], datetime] = utc_now,
    default_service_url: str = "https://smba.trafficmanager.net/uk/",
    poll_seconds: float = 1.0,
    send_timeout: float = SEND_TIMEOUT_SECONDS,
) -> Server:
    # The key first: production without one refuses to start before anything is created.
    codec = load_codec(settings)
    store = open_database(settings, codec=codec, clock=clock)
    schools = SchoolDirectory.of(served)
    adapter = create_adapter(settings, apology=APOLOGY_LEAD + _phone_now(schools))
    messenger = TeamsConnector(adapter, settings.app_id)
    alerts = AlertService(
        store,
        messenger,
        schools,
        clock=clock,
        default_service_url=default_service_url,
        send_timeout=send_timeout,
        # Whose delivery leases these are: a restarted server reclaims its own unfinished
        # sends at once. Host AND port, so two replicas on one machine never take each
        # other's in-flight sends for their own (which would send an alert twice).
        owner=f"{socket.gethostname()}:{settings.port}",
    )
    timekeeper = Timekeeper(store, alerts, clock=clock)
    bot = SafeguardingBot(
        school=schools,
        store=store,
        alerts=alerts,
        clock=clock,
        timekeeper=timekeeper,
        records=RecordRequests(RecordsService(schools, store, clock)),
    )
    # One tenant guard: every tenant the profiles name (plus any the settings add).
    tenants = set(settings.allowed_tenant_ids) | schools.tenant_ids()
    metrics = Metrics()
    watch_store(metrics, store, clock)
    # The operator alarm: alerts Teams refused (4xx) and not yet posted to the DSL channel.
    metrics.gauge(
        "safeguarding_alerts_refused_by_teams",
        "Alerts Teams refused to post to the DSL channel (sent 1:1 instead), not yet posted.",
        store.refused_alerts,
    )
    app = create_app(
        settings,
        bot,
        store,
        adapter,
        allowed_tenant_ids=tenants,
        metrics=metrics,
        lanes=bot.lanes,
        started=alerts.names_read,
    )

    async def outbox_worker(_: web.Application):
        # The outbox and the timers run in the background for as long as the app runs, each
        # in its own store lane (thread and connection): chat traffic never delays an alert.
        # The outbox also has its own thread and event loop: however many turns the chat
        # loop is juggling, an alert's sends and store calls do not wait behind them; its
        # store calls run on that thread (inline), not handed to another and back.
        stop = asyncio.Event()
        await alerts.reclaim_unfinished()  # a crash's unfinished sends go again at once
        outbox = LoopThread("outbox")
        alerts.wakeup = Wakeup(outbox.loop)
        outbox_stop = Wakeup(outbox.loop)

        async def deliver() -> None:
            try:
                await alerts.run(outbox_stop, poll_seconds)
            finally:
                await adapter.close_connections()  # the outbox loop's own, before it closes

        tasks = [
            asyncio.create_task(outbox.run(deliver(), store.lane_context("outbox", inline=True))),
            asyncio.create_task(
                timekeeper.run(stop, poll_seconds), context=store.lane_context("timers")
            ),
            asyncio.create_task(
                maintain(store, settings, stop, clock, schools=schools),
                context=store.lane_context("maintenance"),
            ),
        ]
        yield
        stop.set()
        outbox_stop.set()
        alerts.wakeup.set()
        timekeeper.wakeup.set()
        await asyncio.gather(*tasks)
        outbox.close()
        store.close()

    app.cleanup_ctx.append(outbox_worker)
    return Server(app, store, alerts, bot, timekeeper, metrics)


def _phone_now(schools: SchoolDirectory) -> str:
    """What the apology for a failed turn tells a reporter to do. Several schools: the
    turn that failed may not have known whose, so the DSL in person and 999."""
    if schools.single is not None:
        return phone_now(schools.single)
    emergency = schools.schools[0].contact("emergency").number
    return (
        "If it is urgent, find your school's DSL or a deputy in person now; "
        f"{emergency} if a child is in immediate danger."
    )


PRUNE_EVERY_SECONDS = 3600


async def maintain(
    store: Store,
    settings: Settings,
    stop: asyncio.Event,
    clock: Callable[[], datetime],
    every_seconds: float = PRUNE_EVERY_SECONDS,
    *,
    schools: Any = None,
) -> None:
    """Hourly (and at start-up): prune what only grows, and apply each school's retention."""
    served = SchoolDirectory.of(schools).schools if schools is not None else ()
    keep = {school.id: retention_days(settings, school) for school in served}
    while not stop.is_set():
        try:
            done: dict[str, int] = {}
            for school_id, days in keep.items() or [(None, settings.closed_concern_retention_days)]:
                part = await store.prune(
                    clock(),
                    closed_concerns_for=timedelta(days=days) if days else None,
                    school_id=school_id,
                )
                for key, count in part.items():
                    done[key] = done.get(key, 0) + count
            logger.info("store pruned %s", " ".join(f"{k}={v}" for k, v in done.items()))
        except Exception as exc:  # the next pass tries again; nothing is lost by waiting
            logger.error("store prune failed: %s", type(exc).__name__)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), every_seconds)


def retention_days(settings: Settings, school: Any = None) -> int | None:
    """How long closed records are kept: the school profile's `closed_record_retention_days`
    (its records policy), else CLOSED_CONCERN_RETENTION_DAYS; None keeps them for ever. When
    both are set the LONGER wins: deleting a child's record cannot be undone."""
    rules = getattr(school, "rules", None)
    profile = getattr(rules, "closed_record_retention_days", None)
    env = settings.closed_concern_retention_days
    if profile and env and profile != env:
        logger.warning(
            "two retention settings (profile %d days, environment %d days): keeping %d",
            profile,
            env,
            max(profile, env),
        )
    found = [d for d in (profile, env) if d]
    return max(found) if found else None


def serve(
    settings: Settings, served: SchoolDirectory | SchoolProfile, clock_file: str | None = None
) -> None:
    schools = SchoolDirectory.of(served)
    server = build_server(settings, schools, clock=FileClock(clock_file) if clock_file else utc_now)
    if settings.local_development and not is_loopback(settings.host):
        logger.warning(
            "UNSAFE: serving UNAUTHENTICATED on %s (%s=1). Anyone who can reach this port can "
            "file reports and read replies. Never do this with real data.",
            settings.host,
            UNSAFE_BIND_FLAG,
        )
    logger.info(
        "serving schools=%s on http://%s:%d/api/messages database=%s",
        ",".join(s.id for s in schools.schools),
        settings.host,
        settings.port,
        settings.database_label,
    )
    freeze_startup_objects()
    web.run_app(server.app, host=settings.host, port=settings.port, print=None)


def freeze_startup_objects() -> None:
    """Everything built so far (the SDK, the flows, the profile) lives as long as the process:
    out of the collector's sight, a full collection under load takes ~15 ms, not ~60 ms - a
    pause every person waiting on a reply would feel (README, Performance)."""
    gc.collect()
    gc.freeze()

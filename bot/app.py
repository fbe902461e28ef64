"""The aiohttp application: /api/messages for Teams; /healthz, /readyz and /metrics for the
platform. Every refusal is one log line and one count, never a traceback."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Collection
from typing import Any

from aiohttp import web
from botbuilder.core import Bot

from bot.errors import ConfigError
from bot.metrics import CONTENT_TYPE, Metrics
from bot.settings import Settings
from bot.store import SENDS_LANE, Store
from bot.teams.adapter import SafeguardingAdapter, create_adapter
from bot.teams.edge import (
    MAX_BODY_BYTES,
    SUPPORTED_INVOKES,
    Refusal,
    check_activity,
    parse_body,
    safe_id,
)
from bot.teams.lanes import TurnLanes

logger = logging.getLogger(__name__)

MESSAGES_PATH = "/api/messages"
# /readyz's answer when the store cannot answer a cheap query in time (fixed: no error text).
NOT_READY = {"status": "not ready", "reason": "database unavailable"}
# ... and while start-up work that the first alert would otherwise wait for is not done.
STARTING = {"status": "not ready", "reason": "starting"}
READY_TIMEOUT_SECONDS = 3.0

SETTINGS_KEY = web.AppKey("settings", Settings)
STORE_KEY = web.AppKey("store", Store)
ADAPTER_KEY = web.AppKey("adapter", SafeguardingAdapter)
METRICS_KEY = web.AppKey("metrics", Metrics)

# Universal Actions' documented error response, for an invoke this bot does not handle.
UNKNOWN_INVOKE = {
    "statusCode": 400,
    "type": "application/vnd.microsoft.error",
    "value": {"code": "BadRequest", "message": "This app does not support that action."},
}


def activity_tenant_ids(activity: Any) -> set[str]:
    """Every tenant id an activity claims (conversation.tenantId, channelData.tenant.id)."""
    if not isinstance(activity, dict):
        return set()
    found = set()
    conversation = activity.get("conversation")
    if isinstance(conversation, dict) and conversation.get("tenantId"):
        found.add(str(conversation["tenantId"]))
    channel_data = activity.get("channelData")
    if isinstance(channel_data, dict):
        tenant = channel_data.get("tenant")
        if isinstance(tenant, dict) and tenant.get("id"):
            found.add(str(tenant["id"]))
    return found


def create_app(
    settings: Settings,
    bot: Bot,
    store: Store,
    adapter: SafeguardingAdapter | None = None,
    *,
    allowed_tenant_ids: Collection[str] | None = None,
    metrics: Metrics | None = None,
    lanes: TurnLanes | None = None,
    started: threading.Event | None = None,
) -> web.Application:
    """Build the web app. No globals: tests build as many as they like.

    `allowed_tenant_ids` defaults to the settings' (ALLOWED_TENANT_IDS, else APP_TENANTID).
    Production refuses to start without one; local development without one accepts any
    tenant, with a warning. `lanes` is the bot's turns lane (bot/teams/lanes.py): a turn
    that can send a report goes before the chat queued there. `started`: set once the
    server's start-up work is done (server.py: the child-name index read); until then
    /readyz answers 503, so a platform warm-up or load balancer waits for it.
    """
    lanes = lanes or TurnLanes()
    adapter = adapter or create_adapter(settings)
    tenants = frozenset(
        settings.allowed_tenant_ids if allowed_tenant_ids is None else allowed_tenant_ids
    )
    if not tenants:
        if not settings.local_development:
            raise ConfigError("Config 'ALLOWED_TENANT_IDS' is missing (or set APP_TENANTID).")
        logger.warning("LOCAL DEVELOPMENT: no allowed tenant ids, so activities from any tenant")

    metrics = metrics or Metrics()
    app = web.Application(client_max_size=MAX_BODY_BYTES)
    app[SETTINGS_KEY] = settings
    app[STORE_KEY] = store
    app[ADAPTER_KEY] = adapter
    app[METRICS_KEY] = metrics

    def refuse(refusal: Refusal, body: Any = None) -> web.Response:
        metrics.refused(refusal.status, refusal.code)
        logger.warning(
            "refused status=%d reason=%s activity_id=%s type=%s%s",
            refusal.status,
            refusal.code,
            safe_id(body.get("id")) if isinstance(body, dict) else None,
            safe_id(body.get("type")) if isinstance(body, dict) else None,
            f" detail={refusal.detail}" if refusal.detail else "",
        )
        headers = {"WWW-Authenticate": "Bearer"} if refusal.status == 401 else None
        return web.json_response({"error": refusal.reason}, status=refusal.status, headers=headers)

    async def messages(request: web.Request) -> web.StreamResponse:
        body: Any = None
        try:
            if "application/json" not in request.headers.get("Content-Type", ""):
                raise Refusal(415, "media_type", "send the activity as application/json")
            try:
                raw = await request.read()
            except web.HTTPRequestEntityTooLarge:
                raise Refusal(413, "too_large", f"body over {MAX_BODY_BYTES} bytes") from None
            body = parse_body(raw)
            activity = check_activity(body)
            # Who is speaking first (401), then from where (403): an unauthenticated caller
            # learns nothing about which tenant we serve.
            auth = await adapter.authenticate(request.headers.get("Authorization", ""), activity)
            claimed = activity_tenant_ids(body)
            if tenants and (not claimed or not claimed <= tenants):
                raise Refusal(403, "tenant", "tenant not allowed")
        except Refusal as refusal:
            return refuse(refusal, body)
        if body["type"] == "invoke" and body.get("name") not in SUPPORTED_INVOKES:
            # Teams' error envelope for an invoke (Universal Actions): HTTP 200, the status inside.
            metrics.refused(200, "unknown_invoke")
            logger.warning(
                "refused status=200 reason=unknown_invoke activity_id=%s", safe_id(body.get("id"))
            )
            return web.json_response(UNKNOWN_INVOKE)
        metrics.turn(body["type"])
        async with lanes.place(body) as jumped:
            # A turn that sends a report also has its own store lane (thread, connection,
            # and a writer that goes before chat turns): the alert leaves once it commits.
            with store.in_lane(SENDS_LANE) if jumped else contextlib.nullcontext():
                return await adapter.run(auth, activity, bot)

    async def healthz(_: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def readyz(_: web.Request) -> web.Response:
        if started is not None and not started.is_set():
            return web.json_response(STARTING, status=503)
        # A database that hangs is as unready as one that refuses: the probe must answer in
        # time for the load balancer to route around this replica.
        try:
            ready = await asyncio.wait_for(store.ready(), READY_TIMEOUT_SECONDS)
        except Exception as exc:  # TimeoutError, or a backend error ready() let through
            logger.warning("readyz: the database did not answer (%s)", type(exc).__name__)
            ready = False
        if not ready:
            return web.json_response(NOT_READY, status=503)
        # Still serving (200), but an operator must act: Teams refuses to post an alert.
        refused = await store.refused_alerts()
        if refused:
            return web.json_response({"status": "degraded", "alerts_refused_by_teams": refused})
        return web.json_response({"status": "ready"})

    async def metrics_page(_: web.Request) -> web.Response:
        return web.Response(
            body=(await metrics.render()).encode(), headers={"Content-Type": CONTENT_TYPE}
        )

    async def check_authentication(_: web.Application) -> None:
        await adapter.check_authentication()

    async def close_connections(_: web.Application) -> None:
        await adapter.close_connections()  # this loop's connections to the Bot Connector

    app.router.add_post(MESSAGES_PATH, messages)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics_page)
    app.on_startup.append(check_authentication)
    app.on_cleanup.append(close_connections)
    return app

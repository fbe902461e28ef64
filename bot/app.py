"""The aiohttp application: /api/messages for Teams, /healthz and /readyz for the platform."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Collection
from typing import Any

from aiohttp import web
from botbuilder.core import Bot

from bot.adapter import SafeguardingAdapter, create_adapter
from bot.errors import ConfigError
from bot.settings import Settings
from bot.store import SqliteStore

logger = logging.getLogger(__name__)

MESSAGES_PATH = "/api/messages"

SETTINGS_KEY = web.AppKey("settings", Settings)
STORE_KEY = web.AppKey("store", SqliteStore)
ADAPTER_KEY = web.AppKey("adapter", SafeguardingAdapter)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


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


def tenant_guard(allowed_tenant_ids: Collection[str]) -> Any:
    """Middleware: refuse (403) an activity from any tenant but ours, before the SDK sees it."""
    allowed = frozenset(allowed_tenant_ids)

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.method != "POST" or request.path != MESSAGES_PATH:
            return await handler(request)
        try:
            activity = await request.json()  # aiohttp caches the body for the adapter
        except ValueError:
            return web.json_response({"error": "body is not JSON"}, status=400)
        tenants = activity_tenant_ids(activity)
        if not tenants or not tenants <= allowed:
            logger.warning(
                "refused activity from tenant(s) %s (activity_id=%s)",
                sorted(tenants) or "none",
                activity.get("id") if isinstance(activity, dict) else None,
            )
            return web.json_response({"error": "tenant not allowed"}, status=403)
        return await handler(request)

    return middleware


def create_app(
    settings: Settings,
    bot: Bot,
    store: SqliteStore,
    adapter: SafeguardingAdapter | None = None,
    *,
    allowed_tenant_ids: Collection[str] | None = None,
) -> web.Application:
    """Build the web app. No globals: tests build as many as they like.

    `allowed_tenant_ids` defaults to the settings' (ALLOWED_TENANT_IDS, else APP_TENANTID).
    Production refuses to start without one; local development without one accepts any
    tenant, with a warning.
    """
    adapter = adapter or create_adapter(settings)
    tenants = frozenset(
        settings.allowed_tenant_ids if allowed_tenant_ids is None else allowed_tenant_ids
    )
    middlewares = []
    if tenants:
        middlewares.append(tenant_guard(tenants))
    elif settings.local_development:
        logger.warning("LOCAL DEVELOPMENT: no allowed tenant ids, so activities from any tenant")
    else:
        raise ConfigError("Config 'ALLOWED_TENANT_IDS' is missing (or set APP_TENANTID).")

    app = web.Application(middlewares=middlewares)
    app[SETTINGS_KEY] = settings
    app[STORE_KEY] = store
    app[ADAPTER_KEY] = adapter

    async def messages(request: web.Request) -> web.StreamResponse:
        return await adapter.process(request, bot)

    async def healthz(_: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def readyz(_: web.Request) -> web.Response:
        if await store.ready():
            return web.json_response({"status": "ready"})
        return web.json_response({"status": "not ready"}, status=503)

    async def check_authentication(_: web.Application) -> None:
        await adapter.check_authentication()

    app.router.add_post(MESSAGES_PATH, messages)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.on_startup.append(check_authentication)
    return app

"""The CloudAdapter subclass: authentication from settings, turn errors handled in one place."""

from __future__ import annotations

import logging
import traceback
from typing import Any

import requests
from aiohttp import web
from botbuilder.core import Bot, TurnContext, serializer_helper
from botbuilder.integration.aiohttp import (
    CloudAdapter,
    ConfigurationBotFrameworkAuthentication,
    ConfigurationServiceClientCredentialFactory,
)
from botbuilder.schema import Activity, ActivityEventNames, ActivityTypes
from botframework.connector.auth import AuthenticateRequestResult
from msrest.serialization import Model
from msrest.universal_http.requests import ClientRetryPolicy

from bot.errors import ConfigError
from bot.settings import Settings
from bot.teams.edge import Refusal, check_bearer
from bot.teams.sdk_costs import ConnectorClients, app_id_of, fix_json_copy_cost

logger = logging.getLogger(__name__)


def _fix_connector_client_cost() -> None:
    """msrest builds a retry policy for every ConnectorClient (two per turn under CloudAdapter)
    by testing 999 status codes against `safe_codes`, a 500-item *list*: ~5 ms of CPU each
    time, about 30 % of a turn. The same codes as a frozenset make it ~0.4 ms. Same policy,
    same codes; tests/test_adapter_cost.py fails if an SDK upgrade undoes this."""
    if not isinstance(ClientRetryPolicy.safe_codes, frozenset):
        ClientRetryPolicy.safe_codes = frozenset(ClientRetryPolicy.safe_codes)


_fix_connector_client_cost()
fix_json_copy_cost()

# True whatever failed: the turn may have failed before or after a report was saved.
APOLOGY_LEAD = (
    "Sorry, something went wrong on my side with that message. Type 'my reports' to see "
    "what has been sent. "
)
DEFAULT_APOLOGY = APOLOGY_LEAD + "If this is urgent, phone the Designated Safeguarding Lead now."

# The synthetic events CloudAdapter creates for proactive turns (no person is waiting).
_PROACTIVE_EVENTS = frozenset(
    {ActivityEventNames.continue_conversation.value, ActivityEventNames.create_conversation.value}
)


def _where(error: BaseException) -> str:
    """file:line of the innermost frames, without the exception's message (it may hold text)."""
    frames = traceback.extract_tb(error.__traceback__)[-3:]
    return " <- ".join(f"{f.filename.rsplit('/', 1)[-1]}:{f.lineno}" for f in reversed(frames))


def _is_proactive(activity: Activity | None) -> bool:
    return (
        activity is not None
        and activity.type == ActivityTypes.event
        and activity.name in _PROACTIVE_EVENTS
    )


def _json_body(body: Any) -> Any:
    """An invoke response body as plain JSON: msrest models serialised, dicts left alone."""
    if isinstance(body, Model):
        return serializer_helper(body)
    return body


class SafeguardingAdapter(CloudAdapter):
    """CloudAdapter with our turn-error policy and a safe invoke-response writer."""

    def __init__(
        self,
        auth: ConfigurationBotFrameworkAuthentication,
        *,
        credentials_factory: ConfigurationServiceClientCredentialFactory | None = None,
        local_development: bool = False,
        apology: str = DEFAULT_APOLOGY,
    ) -> None:
        super().__init__(auth)
        self._keep_clients(auth)
        self._credentials_factory = credentials_factory
        self.local_development = local_development
        self.apology = apology
        self.on_turn_error = self._on_turn_error

    def _keep_clients(self, auth: Any) -> None:
        """Connector and token clients built once per app id and service URL, not per turn
        (bot/teams/sdk_costs.py), for reactive turns (see authenticate) and proactive ones."""
        self.connector_clients = clients = ConnectorClients()
        build_factory = auth.create_connector_factory
        build_token_client = auth.create_user_token_client

        def create_connector_factory(claims: Any) -> Any:
            return clients.factory(build_factory(claims), claims)

        async def create_user_token_client(claims: Any) -> Any:
            key = ("token", app_id_of(claims))
            return await clients.get(key, lambda: build_token_client(claims))

        auth.create_connector_factory = create_connector_factory
        auth.create_user_token_client = create_user_token_client

    async def close_connections(self) -> None:
        """Close the calling event loop's HTTP connections to the Bot Connector (shutdown)."""
        await self.connector_clients.sender.close_here()

    async def _on_turn_error(self, context: TurnContext, error: Exception) -> None:
        activity = context.activity
        if _is_proactive(activity):
            # Outbox/scheduler turns: nobody to apologise to; the caller decides about retry.
            raise error
        logger.error(
            "turn failed: %s at %s (activity_id=%s type=%s)",
            type(error).__name__,
            _where(error),
            getattr(activity, "id", None),
            getattr(activity, "type", None),
        )
        if activity is None or activity.type not in (ActivityTypes.message, ActivityTypes.invoke):
            return
        try:
            await context.send_activity(self.apology)
        except Exception as send_error:  # the channel itself may be what failed
            logger.warning(
                "could not send the apology: %s (activity_id=%s)",
                type(send_error).__name__,
                activity.id,
            )

    async def authenticate(self, auth_header: str, activity: Activity) -> AuthenticateRequestResult:
        """The SDK's check of the caller; any failure is a 401 Refusal, never a traceback.

        In production the token's shape is checked first (RS256, a key id, no key URL of its
        own), so a forged token is refused before the SDK looks up any signing key. The SDK
        raises PermissionError, PyJWT errors, IndexError (unknown key id) or bare Exception
        for a bad token: all mean "not authenticated".
        """
        if not self.local_development:
            check_bearer(auth_header)
        try:
            result = await self.bot_framework_authentication.authenticate_request(
                activity, auth_header
            )
        except requests.RequestException as exc:  # the signing keys could not be fetched
            raise Refusal(
                503, "keys_unavailable", "cannot check the token now", type(exc).__name__
            ) from None
        except Exception as exc:
            raise Refusal(
                401, "unauthenticated", "the token was not accepted", type(exc).__name__
            ) from None
        result.connector_factory = self.connector_clients.factory(
            result.connector_factory, result.claims_identity
        )
        return result

    async def run(
        self, auth: AuthenticateRequestResult, activity: Activity, bot: Bot
    ) -> web.Response:
        """Run the turn for an authenticated activity and write its HTTP answer.

        As CloudAdapter.process, but writes dict invoke bodies instead of crashing: botbuilder
        4.17.1 runs `serializer_helper` over the invoke body, which only accepts msrest
        models; ActivityHandler has already serialised AdaptiveCardInvokeResponse to a dict,
        so every `adaptiveCard/action` reply crashes with AttributeError there.
        """
        invoke_response = await self.process_activity(auth, activity, bot.on_turn)
        if invoke_response:
            return web.json_response(
                _json_body(invoke_response.body), status=int(invoke_response.status)
            )
        return web.Response(status=201)

    async def process(
        self, request: web.Request, bot: Bot, ws_response: web.WebSocketResponse | None = None
    ) -> web.Response | None:
        """POST without the app's edge checks (for harnesses that mount the adapter alone)."""
        if request.method != "POST":
            return await super().process(request, bot, ws_response)
        if "application/json" not in request.headers.get("Content-Type", ""):
            raise web.HTTPUnsupportedMediaType()
        try:
            body = await request.json()
        except ValueError:
            raise web.HTTPBadRequest() from None
        activity = Activity().deserialize(body)
        if not activity.type:
            raise web.HTTPBadRequest()
        try:
            auth = await self.authenticate(request.headers.get("Authorization", ""), activity)
        except Refusal:
            raise web.HTTPUnauthorized() from None
        return await self.run(auth, activity, bot)

    async def check_authentication(self) -> None:
        """Confirm at startup that the SDK's auth mode matches the settings; warn loudly if off."""
        if self._credentials_factory is None:
            return
        disabled = await self._credentials_factory.is_authentication_disabled()
        if self.local_development:
            if not disabled:
                raise ConfigError("local development expected the SDK to run unauthenticated")
            logger.warning(
                "LOCAL DEVELOPMENT: no APP_ID, so requests to /api/messages are NOT authenticated."
                " Never expose this process to a network. Set APP_ID/APP_PASSWORD for Teams."
            )
        elif disabled:
            raise ConfigError("APP_ID is set but the SDK would accept unauthenticated requests")


def create_adapter(settings: Settings, *, apology: str = DEFAULT_APOLOGY) -> SafeguardingAdapter:
    """Build the adapter from settings (ConfigurationBotFrameworkAuthentication)."""
    config = settings.bot_framework_config()
    try:
        credentials = ConfigurationServiceClientCredentialFactory(config)
    except Exception as exc:  # the SDK raises bare Exception for missing properties
        raise ConfigError(f"Bot Framework credentials are incomplete ({exc})") from None
    auth = ConfigurationBotFrameworkAuthentication(config, credentials_factory=credentials)
    return SafeguardingAdapter(
        auth,
        credentials_factory=credentials,
        local_development=settings.local_development,
        apology=apology,
    )

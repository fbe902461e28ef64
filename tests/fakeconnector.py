"""A fake Bot Connector service on loopback that records what the bot sends and can fail on cue.

async with FakeConnector() as connector:
    activity = {..., "serviceUrl": connector.url}
    connector.fail_next(r"/v3/conversations$", statuses=[429, 500], retry_after=1)
    connector.fail_next(r"/v3/conversations$", statuses=[502], body="html")  # a proxy's page
    connector.fail_next(r"/v3/conversations$", statuses=[RESET])  # the connection is reset
    connector.fail_always(r"/v3/conversations$", 403, when=lambda json: ...)  # every time
    connector.hold_answer(r"/v3/conversations$")  # carry it out, keep the answer back
    connector.app_credentials["<app id>"] = "<secret>"  # its login endpoint issues tokens
    connector.add_team("19:team@thread.tacv2", channels=[...], members=[...])  # /v3/teams
    ...
    assert connector.sent_activities()[0]["text"] == "..."
"""

from __future__ import annotations

import asyncio
import itertools
import re
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestServer


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    json: Any
    headers: dict[str, str]
    status: int


RESET = 0  # a "status" that resets the connection instead of answering
NO_ANSWER = 999  # how a reset request is recorded (never counted as a success)


@dataclass
class _ScriptedFailure:
    pattern: re.Pattern[str]
    method: str | None
    statuses: list[int]
    retry_after: float | None
    body: str = "json"  # or "html": a proxy's error page
    always: bool = False
    when: Any = None  # a predicate on the request's JSON; None matches every request


@dataclass
class _Hold:
    pattern: re.Pattern[str]
    arrived: asyncio.Event = field(default_factory=asyncio.Event)
    release: asyncio.Event = field(default_factory=asyncio.Event)
    body: Any = None  # what was carried out
    client_port: int = 0  # the caller's end of the connection (which process sent it)


@dataclass
class FakeConversation:
    id: str
    is_group: bool
    channel_id: str | None
    tenant_id: str | None
    members: list[dict[str, Any]]
    activities: dict[str, dict[str, Any]] = field(default_factory=dict)


class FakeConnector:
    """The Bot Connector REST endpoints the SDK calls, in memory."""

    def __init__(self) -> None:
        self.requests: list[RecordedRequest] = []
        self.conversations: dict[str, FakeConversation] = {}
        # Members returned for any conversation that does not list its own.
        self.default_members: list[dict[str, Any]] = [
            {"id": "29:user-1", "name": "Test User", "aadObjectId": "aad-user-1"}
        ]
        self._failures: list[_ScriptedFailure] = []
        self._holds: list[tuple[re.Pattern[str], asyncio.Event]] = []
        self.held: list[str] = []  # paths of requests that arrived while held
        self.held_from: list[int] = []  # ... and the client port each came from
        # Files the bot uploaded (a file consent's upload URL, see upload_url): (name, bytes).
        self.uploads: list[tuple[str, bytes]] = []
        self._answer_holds: list[_Hold] = []
        self._ids = itertools.count(1_700_000_000_001)
        self._server: TestServer | None = None
        # The login endpoint (POST /{tenant}/oauth2/v2.0/token, as login.microsoftonline.com):
        # app id -> client secret it accepts; the tenants it knows (empty: any).
        self.app_credentials: dict[str, str] = {}
        self.tenants: set[str] = set()
        self.issued_tokens: set[str] = set()
        # App Service's managed-identity endpoint (GET /msi/token, as IDENTITY_ENDPOINT):
        # the X-IDENTITY-HEADER it wants, and the identities (client ids) attached.
        self.identity_header = "identity-header"
        self.managed_identities: set[str] = set()
        # Teams the bot is in: team id -> its channels (GET /v3/teams/{id}/conversations).
        self.teams: dict[str, list[dict[str, Any]]] = {}
        self.app = self._build_app()

    # -- lifecycle -----------------------------------------------------------------------

    async def start(self) -> FakeConnector:
        self._server = TestServer(self.app, host="127.0.0.1")
        await self._server.start_server()
        return self

    async def close(self) -> None:
        for _, release in self._holds:
            release.set()
        if self._server is not None:
            await self._server.close()
            self._server = None

    async def __aenter__(self) -> FakeConnector:
        return await self.start()

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    @property
    def url(self) -> str:
        """The serviceUrl to put on activities posted to the bot (ends with '/')."""
        if self._server is None:
            raise RuntimeError("FakeConnector is not started")
        return str(self._server.make_url("/"))

    def upload_url(self, name: str) -> str:
        """Stands in for the OneDrive upload URL Teams gives when someone accepts a file."""
        return f"{self.url}upload/{name}"

    # -- scripting and inspection --------------------------------------------------------

    def fail_next(
        self,
        path_regex: str,
        statuses: list[int] | tuple[int, ...] = (500,),
        *,
        retry_after: float | None = None,
        method: str | None = None,
        body: str = "json",
    ) -> None:
        """The next requests whose path matches answer with these statuses, one each, in order
        (`RESET` resets the connection; body="html" answers with an HTML error page)."""
        self._failures.append(
            _ScriptedFailure(re.compile(path_regex), method, list(statuses), retry_after, body)
        )

    def hold(self, path_regex: str) -> asyncio.Event:
        """Requests whose path matches get no answer until the returned event is set: the
        bot is caught mid-call (e.g. to SIGKILL it there). `held` lists what arrived."""
        release = asyncio.Event()
        self._holds.append((re.compile(path_regex), release))
        return release

    def fail_always(
        self, path_regex: str, status: int, *, when: Any = None, method: str | None = None
    ) -> _ScriptedFailure:
        """Every matching request (for which `when(json)` is true) fails until `stop_failing`."""
        failure = _ScriptedFailure(
            re.compile(path_regex), method, [status], None, always=True, when=when
        )
        self._failures.append(failure)
        return failure

    def stop_failing(self, failure: _ScriptedFailure) -> None:
        self._failures.remove(failure)

    def hold_answer(self, path_regex: str) -> _Hold:
        """The next matching request is carried out (the thread is created), but its answer
        is kept back until `release` is set: for killing the bot in between."""
        held = _Hold(re.compile(path_regex))
        self._answer_holds.append(held)
        return held

    def add_team(
        self,
        team_id: str,
        channels: list[dict[str, Any]],
        members: list[dict[str, Any]] | None = None,
    ) -> None:
        """The bot is in this team: its channels ({"id", "name"}) and its members' roster."""
        self.teams[team_id] = channels
        self.conversations[team_id] = FakeConversation(team_id, True, None, None, members or [])

    def requests_to(self, path_regex: str, method: str | None = None) -> list[RecordedRequest]:
        pattern = re.compile(path_regex)
        return [
            r
            for r in self.requests
            if pattern.search(r.path) and (method is None or r.method == method)
        ]

    def sent_activities(self, conversation_id: str | None = None) -> list[dict[str, Any]]:
        """Activities the bot posted successfully (created, sent or replied), in order."""
        found = []
        for r in self.requests:
            if r.method != "POST" or r.status >= 300 or not isinstance(r.json, dict):
                continue
            if r.path == "/v3/conversations":
                activity = r.json.get("activity")
                if activity and conversation_id is None:  # a new conversation is no other's
                    found.append(activity)
            elif re.fullmatch(r"/v3/conversations/[^/]+/activities(/[^/]+)?", r.path) and (
                conversation_id is None or r.path.split("/")[3] == conversation_id
            ):
                found.append(r.json)
        return found

    # -- the service ---------------------------------------------------------------------

    def _build_app(self) -> web.Application:
        app = web.Application(middlewares=[self._record_and_fail])
        conv = "/v3/conversations/{conversation_id}"
        app.router.add_post("/v3/conversations", self._create_conversation)
        app.router.add_post(conv + "/activities", self._send)
        app.router.add_post(conv + "/activities/{activity_id}", self._reply)
        app.router.add_put(conv + "/activities/{activity_id}", self._update)
        app.router.add_delete(conv + "/activities/{activity_id}", self._delete)
        app.router.add_get(conv + "/members", self._members)
        app.router.add_get(conv + "/pagedmembers", self._paged_members)
        app.router.add_get(conv + "/members/{user_id}", self._member)
        app.router.add_get("/v3/teams/{team_id}/conversations", self._team_channels)
        app.router.add_post("/{tenant}/oauth2/v2.0/token", self._token)
        app.router.add_get("/msi/token", self._managed_identity_token)
        app.router.add_put("/upload/{name}", self._upload)
        app.router.add_route("*", "/{tail:.*}", self._anything_else)
        return app

    @web.middleware
    async def _record_and_fail(self, request: web.Request, handler: Any) -> web.StreamResponse:
        body: Any = None
        if request.can_read_body:
            raw = await request.read()
            try:
                body = await request.json()
            except ValueError:
                body = raw.decode("utf-8", "replace")
        for pattern, release in list(self._holds):
            if pattern.search(request.path) and not release.is_set():
                self.held.append(request.path)
                peer = request.transport.get_extra_info("peername") if request.transport else None
                self.held_from.append(peer[1] if peer else 0)
                await release.wait()
        failure = self._take_failure(request, body)
        held = next((h for h in self._answer_holds if h.pattern.search(request.path)), None)
        if failure is not None:
            status, retry_after, kind = failure
            headers = {"Retry-After": _seconds(retry_after)} if retry_after is not None else {}
            if status == RESET:
                self.requests.append(
                    RecordedRequest(
                        request.method, request.path, body, dict(request.headers), NO_ANSWER
                    )
                )
                assert request.transport is not None
                request.transport.abort()  # no answer at all: the connection is reset
                raise ConnectionResetError("scripted reset")
            if kind == "html":
                response: web.StreamResponse = web.Response(
                    status=status,
                    text=f"<html><body><h1>{status} Bad Gateway</h1>nginx</body></html>",
                    content_type="text/html",
                    headers=headers,
                )
            else:
                response = web.json_response(
                    {"error": {"code": f"Http{status}", "message": "scripted failure"}},
                    status=status,
                    headers=headers,
                )
        else:
            try:
                response = await handler(request)
            except web.HTTPException as exc:
                response = exc
            if held is not None:
                self._answer_holds.remove(held)
                peer = request.transport.get_extra_info("peername") if request.transport else None
                held.body, held.client_port = body, peer[1] if peer else 0
                held.arrived.set()
                await held.release.wait()
        self.requests.append(
            RecordedRequest(
                request.method, request.path, body, dict(request.headers), response.status
            )
        )
        return response

    def _take_failure(
        self, request: web.Request, body: Any
    ) -> tuple[int, float | None, str] | None:
        for failure in self._failures:
            if failure.method and failure.method != request.method:
                continue
            if failure.when is not None and not failure.when(body):
                continue
            if failure.pattern.search(request.path):
                if failure.always:
                    return failure.statuses[0], failure.retry_after, failure.body
                status = failure.statuses.pop(0)
                if not failure.statuses:
                    self._failures.remove(failure)
                return status, failure.retry_after, failure.body
        return None

    def _new_id(self) -> str:
        return str(next(self._ids))

    def _conversation(self, request: web.Request) -> FakeConversation:
        conversation_id = request.match_info["conversation_id"]
        found = self.conversations.get(conversation_id)
        if found is None:  # incoming conversations the fake has not seen are fine
            found = FakeConversation(conversation_id, False, None, None, [])
            self.conversations[conversation_id] = found
        return found

    async def _create_conversation(self, request: web.Request) -> web.Response:
        params = await request.json()
        channel_data = params.get("channelData") or {}
        channel_id = (channel_data.get("channel") or {}).get("id")
        activity = params.get("activity")
        activity_id = self._new_id() if activity else None
        if channel_id:
            # Teams: a new channel thread is "<channel id>;messageid=<root message id>".
            conversation_id = f"{channel_id};messageid={activity_id or self._new_id()}"
        else:
            conversation_id = f"a:1{uuid.uuid4().hex}"
        conversation = FakeConversation(
            id=conversation_id,
            is_group=bool(params.get("isGroup")),
            channel_id=channel_id,
            # botbuilder 4.17.1 writes "tenantID"; other clients write "tenantId".
            tenant_id=params.get("tenantId") or params.get("tenantID"),
            members=list(params.get("members") or []),
        )
        if activity and activity_id:
            conversation.activities[activity_id] = activity
        self.conversations[conversation_id] = conversation
        body = {"id": conversation_id, "serviceUrl": self.url}
        if activity_id:
            body["activityId"] = activity_id
        return web.json_response(body, status=201)

    async def _send(self, request: web.Request) -> web.Response:
        activity_id = self._new_id()
        self._conversation(request).activities[activity_id] = await request.json()
        return web.json_response({"id": activity_id}, status=201)

    async def _reply(self, request: web.Request) -> web.Response:
        return await self._send(request)

    async def _update(self, request: web.Request) -> web.Response:
        conversation = self._conversation(request)
        activity_id = request.match_info["activity_id"]
        if activity_id not in conversation.activities:
            return _error(404, "NotFound", "activity not found")
        conversation.activities[activity_id] = await request.json()
        return web.json_response({"id": activity_id})

    async def _delete(self, request: web.Request) -> web.Response:
        conversation = self._conversation(request)
        if conversation.activities.pop(request.match_info["activity_id"], None) is None:
            return _error(404, "NotFound", "activity not found")
        return web.Response(status=200)

    def _roster(self, request: web.Request) -> list[dict[str, Any]]:
        return self._conversation(request).members or self.default_members

    async def _members(self, request: web.Request) -> web.Response:
        return web.json_response(self._roster(request))

    async def _paged_members(self, request: web.Request) -> web.Response:
        return web.json_response({"members": self._roster(request), "continuationToken": None})

    async def _member(self, request: web.Request) -> web.Response:
        user_id = request.match_info["user_id"]
        for member in self._roster(request):
            if user_id in (member.get("id"), member.get("aadObjectId")):
                return web.json_response(member)
        return _error(404, "MemberNotFoundInConversation", "member not found")

    async def _token(self, request: web.Request) -> web.Response:
        # Entra's client-credentials answers, with its AADSTS codes (and its habit of
        # echoing what it was sent in the description).
        form = await request.post()
        tenant = request.match_info["tenant"]
        client_id, secret = str(form.get("client_id", "")), str(form.get("client_secret", ""))

        def refuse(status: int, error: str, code: str, message: str) -> web.Response:
            description = f"{code}: {message} client_id={client_id} secret={secret!r}"
            return web.json_response(
                {"error": error, "error_description": description, "error_codes": [0]},
                status=status,
            )

        if self.tenants and tenant not in self.tenants:
            return refuse(400, "invalid_request", "AADSTS90002", f"Tenant '{tenant}' not found.")
        if form.get("grant_type") != "client_credentials":
            return refuse(400, "unsupported_grant_type", "AADSTS70003", "Unsupported grant.")
        if form.get("scope") != "https://api.botframework.com/.default":
            return refuse(400, "invalid_scope", "AADSTS70011", "The scope is not valid.")
        if client_id not in self.app_credentials:
            return refuse(400, "unauthorized_client", "AADSTS700016", "Application not found.")
        if self.app_credentials[client_id] != secret:
            return refuse(401, "invalid_client", "AADSTS7000215", "Invalid client secret.")
        token = f"token-{uuid.uuid4().hex}"
        self.issued_tokens.add(token)
        return web.json_response(
            {"token_type": "Bearer", "expires_in": 3599, "access_token": token}
        )

    async def _managed_identity_token(self, request: web.Request) -> web.Response:
        if request.headers.get("X-IDENTITY-HEADER") != self.identity_header:
            return web.json_response({"statusCode": 401, "message": "bad header"}, status=401)
        client_id = request.query.get("client_id", "")
        if client_id not in self.managed_identities:
            message = "No managed identity found for specified ClientId/ResourceId/PrincipalId."
            return web.json_response({"statusCode": 400, "message": message}, status=400)
        token = f"token-{uuid.uuid4().hex}"
        self.issued_tokens.add(token)
        return web.json_response(
            {
                "access_token": token,
                "expires_on": str(int(time.time()) + 3600),
                "resource": request.query.get("resource", ""),
                "token_type": "Bearer",
                "client_id": client_id,
            }
        )

    async def _team_channels(self, request: web.Request) -> web.Response:
        token = request.headers.get("Authorization", "").removeprefix("Bearer ")
        if token not in self.issued_tokens:
            return _error(401, "Unauthorized", "Authorization has been denied for this request.")
        channels = self.teams.get(request.match_info["team_id"])
        if channels is None:
            return _error(403, "BotNotInConversationRoster", "The bot is not part of the roster.")
        return web.json_response({"conversations": channels})

    async def _upload(self, request: web.Request) -> web.Response:
        data = await request.read()
        if request.headers.get("Content-Range") != f"bytes 0-{len(data) - 1}/{len(data)}":
            return _error(400, "BadRange", "Content-Range must cover the whole file")
        self.uploads.append((request.match_info["name"], data))
        return web.json_response(
            {"id": f"item-{len(self.uploads)}", "name": request.match_info["name"]}, status=201
        )

    async def _anything_else(self, request: web.Request) -> web.Response:
        # Recorded by the middleware, so a test can assert nothing like this happened.
        return _error(404, "NotFound", "the fake connector does not implement this")


def _error(status: int, code: str, message: str) -> web.Response:
    return web.json_response({"error": {"code": code, "message": message}}, status=status)


def _seconds(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)

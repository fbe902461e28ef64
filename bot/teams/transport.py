"""The connector clients' HTTP, sent with aiohttp on the event loop that asks (issue 8).

msrest (under botbuilder 4.17) sends every Bot Connector request with `requests`, in a thread
of asyncio's default pool: a hop to a thread and back for each reply, the pool capped at six
requests in flight on two cores, and ~2 ms of CPU a request in `requests` itself (its
environment and cookie handling) - about a fifth of a turn. This sender keeps msrest's
pipeline (user agent, credentials, response parsing, logging) and replaces only the last
step, with the same requests and the same retries as the stock one:

- headers: the request's own, plus the Authorization the credentials put on the context
  (`AppCredentials.signed_session` writes it there, as it would on a requests.Session);
- retries, as msrest configures urllib3 2.x: up to 3. A connection that could not be made
  is retried for any method (nothing was sent). An idempotent request (GET, PUT, DELETE...)
  is also retried on 408, on 5xx other than 501/505, on 413/429/503 that carry a
  Retry-After, and after a dropped connection; backoff 0, 1.6, 3.2 s, or the Retry-After.
  A POST (a new message) is never sent twice here: the outbox decides that, knowing what a
  repeat would mean;
- once retries are spent the last answer is returned (a status to classify), where urllib3
  raised a status-less RetryError;
- timeouts 100 s to connect and between reads (msrest's `connection.timeout`);
- proxies from HTTP(S)_PROXY/NO_PROXY, read once per origin (aiohttp's trust_env would read
  the environment and ~/.netrc in a thread for every request); no cookies kept between
  requests; TLS verified against certifi's bundle, or REQUESTS_CA_BUNDLE / CURL_CA_BUNDLE
  when set - the certificates `requests` would trust.

An aiohttp session belongs to one event loop, and the outbox has a loop of its own, so each
loop gets its session; `close_here` closes the calling loop's.
"""

from __future__ import annotations

import asyncio
import os
import ssl
from typing import Any

import aiohttp
import certifi
from aiohttp.helpers import get_env_proxy_for_url
from msrest.pipeline import AsyncHTTPSender, AsyncPipeline, Request, Response
from msrest.pipeline.async_requests import AsyncRequestsCredentialsPolicy
from msrest.pipeline.requests import RequestsContext
from msrest.pipeline.universal import RawDeserializer
from msrest.universal_http import ClientRequest
from msrest.universal_http.async_abc import AsyncClientResponse
from multidict import CIMultiDict
from yarl import URL

from bot.errors import retry_after_seconds

RETRIES = 3
BACKOFF_SECONDS = 0.8
# urllib3's Retry.DEFAULT_ALLOWED_METHODS: what may be sent twice without doing it twice.
IDEMPOTENT = frozenset({"DELETE", "GET", "HEAD", "OPTIONS", "PUT", "TRACE"})
RETRY_AFTER_STATUSES = frozenset({413, 429, 503})


def backoff(attempt: int) -> float:
    """urllib3's wait before retry number `attempt` (1-based): 0, then 0.8 * 2^(n-1)."""
    return 0.0 if attempt <= 1 else BACKOFF_SECONDS * 2 ** (attempt - 1)


def status_wait(status: int, headers: Any, attempt: int) -> float | None:
    """How long before retrying an idempotent request that got `status`; None: do not.

    urllib3's Retry as msrest's ClientRetryPolicy sets it: the server's Retry-After on
    413/429/503 when it sends one; else a backoff on 408 and on 500-998 but 501 and 505 (its
    retry list is range(999) less the "safe" codes)."""
    if status in RETRY_AFTER_STATUSES:
        after = retry_after_seconds(headers)
        if after is not None:
            return after
    if status == 408 or (500 <= status < 999 and status not in (501, 505)):
        return backoff(attempt)
    return None


class _Signed:
    """What AppCredentials.signed_session signs: anything with `headers` (one per request)."""

    def __init__(self) -> None:
        self.headers: dict[str, str] = {}


class _Answer(AsyncClientResponse):
    """An aiohttp answer, read whole, as msrest's deserialisers and errors read one."""

    def __init__(self, request: ClientRequest, response: aiohttp.ClientResponse, body: bytes):
        # msrest's errors expose `internal_response` as `.response`, and readers of those
        # (bot/errors.py) expect requests' shape - status_code, headers - which this has.
        super().__init__(request, self)
        self.status_code = response.status
        self.headers = CIMultiDict(response.headers)
        self.reason = response.reason
        self._body = body

    def body(self) -> bytes:
        return self._body


class AiohttpSender(AsyncHTTPSender):
    """The last step of a connector client's msrest pipeline (see the module's docstring)."""

    def __init__(self, timeout: float = 100.0, verify: bool | str = True) -> None:
        self._timeout = aiohttp.ClientTimeout(total=None, sock_connect=timeout, sock_read=timeout)
        self._verify = verify
        self._tls: ssl.SSLContext | None = None
        self._sessions: dict[asyncio.AbstractEventLoop, aiohttp.ClientSession] = {}
        self._proxies: dict[tuple[str, str | None, int | None], dict[str, Any]] = {}

    async def __aenter__(self) -> AiohttpSender:
        return self

    async def __aexit__(self, *exc_details: Any) -> None:
        return None

    def build_context(self) -> RequestsContext:
        return RequestsContext(session=_Signed())

    def _ssl(self) -> ssl.SSLContext | bool:
        if self._verify is False:
            return False
        if self._tls is None:  # made on the first https request: loading the bundle costs
            cafile = (
                self._verify
                if isinstance(self._verify, str)
                else os.environ.get("REQUESTS_CA_BUNDLE")
                or os.environ.get("CURL_CA_BUNDLE")
                or certifi.where()
            )
            self._tls = ssl.create_default_context(cafile=cafile)
        return self._tls

    def _proxy(self, url: URL) -> dict[str, Any]:
        """The environment's proxy for `url`'s origin (as `proxy=`/`proxy_auth=`), if any."""
        origin = (url.scheme, url.host, url.port)
        found = self._proxies.get(origin)
        if found is None:
            try:
                proxy, auth = get_env_proxy_for_url(url)
                found = {"proxy": proxy, "proxy_auth": auth}
            except LookupError:
                found = {}
            self._proxies[origin] = found
        return found

    def _session(self) -> aiohttp.ClientSession:
        loop = asyncio.get_running_loop()
        session = self._sessions.get(loop)
        if session is None or session.closed:
            session = aiohttp.ClientSession(
                timeout=self._timeout, cookie_jar=aiohttp.DummyCookieJar()
            )
            self._sessions[loop] = session
        return session

    async def close_here(self) -> None:
        """Close the calling event loop's session (each loop closes its own at shutdown)."""
        session = self._sessions.pop(asyncio.get_running_loop(), None)
        if session is not None:
            await session.close()

    async def send(self, request: Request, **config: Any) -> Response:
        http = request.http_request
        signed = getattr(request.context, "session", None)
        headers = {**getattr(signed, "headers", {}), **http.headers}
        headers.pop("Content-Length", None)  # msrest counts characters; aiohttp counts bytes
        data = http.data.encode() if isinstance(http.data, str) else http.data
        idempotent = http.method.upper() in IDEMPOTENT
        url = URL(http.url)
        tls = self._ssl() if url.scheme == "https" else None
        proxy = self._proxy(url)
        attempt = 0
        while True:
            attempt += 1
            try:
                async with self._session().request(
                    http.method, url, headers=headers, data=data, ssl=tls, **proxy
                ) as response:
                    answer = _Answer(http, response, await response.read())
            except aiohttp.ClientConnectorCertificateError:
                raise  # the same certificate next time
            except (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError):
                if attempt > RETRIES:  # no connection, nothing sent: any method may go again
                    raise
                wait = backoff(attempt)
            except (
                aiohttp.ClientOSError,
                aiohttp.ServerDisconnectedError,
                aiohttp.ClientPayloadError,
                TimeoutError,
            ):
                if not idempotent or attempt > RETRIES:  # it may have been carried out
                    raise
                wait = backoff(attempt)
            else:
                retry = status_wait(answer.status_code, answer.headers, attempt)
                if not idempotent or retry is None or attempt > RETRIES:
                    return Response(request, answer)
                wait = retry
            await asyncio.sleep(wait)


def use_aiohttp(client: Any, sender: AiohttpSender) -> Any:
    """Give a connector client msrest's own async pipeline with `sender` as its last step.

    Mirrors msrest's ServiceClientAsync._create_default_pipeline for credentials that are not
    a policy themselves (botframework's AppCredentials); tests/test_transport.py compares the
    two, so an SDK upgrade that changes the stock pipeline fails there, not in Teams."""
    config = client.config
    client.config.pipeline = AsyncPipeline(
        [
            config.user_agent_policy,
            AsyncRequestsCredentialsPolicy(config.credentials),
            RawDeserializer(),
            config.http_logger_policy,
        ],
        sender,
    )
    return client

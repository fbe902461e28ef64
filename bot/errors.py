"""The bot's own exceptions, and `map_exceptions` turning SDK and HTTP errors into them."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import aiohttp
from msrest.exceptions import ClientRequestError, HttpOperationError

__all__ = [
    "ConfigError",
    "ConflictError",
    "DeliveryError",
    "DeliveryRefused",
    "Failure",
    "SafeguardingBotError",
    "StoreError",
    "classify",
    "map_exceptions",
    "retry_after_seconds",
]


class SafeguardingBotError(Exception):
    """Base class for every error the bot raises on purpose."""


class ConfigError(SafeguardingBotError):
    """The bot's settings are missing or inconsistent; it must not start."""


class StoreError(SafeguardingBotError):
    """The durable store could not be opened, migrated or used."""


class ConflictError(StoreError):
    """A write carried a stale etag: someone else changed the item first."""


class DeliveryError(SafeguardingBotError):
    """A transient delivery failure (429, 5xx, network, timeout): try again later."""

    def __init__(
        self, message: str, *, status: int | None = None, retry_after: float | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.retry_after = retry_after


class DeliveryRefused(SafeguardingBotError):
    """The channel refused the request (4xx other than 408/429): retrying will not help."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


# Statuses worth retrying besides 5xx.
_TRANSIENT_4XX = frozenset({408, 429})


def retry_after_seconds(headers: Any) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or HTTP date), if present and sane."""
    if headers is None:
        return None
    value = headers.get("Retry-After")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def _from_status(status: int, headers: Any, operation: str) -> SafeguardingBotError:
    where = f"{operation}: " if operation else ""
    if status >= 500 or status in _TRANSIENT_4XX:
        return DeliveryError(
            f"{where}channel returned HTTP {status}",
            status=status,
            retry_after=retry_after_seconds(headers),
        )
    return DeliveryRefused(f"{where}channel refused with HTTP {status}", status=status)


@contextlib.contextmanager
def map_exceptions(operation: str = "") -> Iterator[None]:
    """Convert botbuilder/msrest/aiohttp errors raised inside the block into ours.

    The messages carry status codes and the operation name only: never a response body,
    which could echo what we sent.
    """
    where = f"{operation}: " if operation else ""
    try:
        yield
    except SafeguardingBotError:
        raise
    except HttpOperationError as exc:
        # botbuilder.schema.ErrorResponseException is a subclass; `.response` is the answer
        # the connector client received (bot/teams/transport.py), with requests' status_code.
        response = getattr(exc, "response", None)
        status = getattr(response, "status_code", None)
        if status is None:
            raise DeliveryError(f"{where}channel error without a status") from exc
        raise _from_status(int(status), getattr(response, "headers", None), operation) from exc
    except ClientRequestError as exc:
        # msrest wraps requests' connection errors, timeouts and exhausted urllib3 retries.
        inner = type(getattr(exc, "inner_exception", None) or exc).__name__
        raise DeliveryError(f"{where}network error ({inner})") from exc
    except aiohttp.ClientResponseError as exc:
        raise _from_status(exc.status, exc.headers, operation) from exc
    except aiohttp.ClientError as exc:
        raise DeliveryError(f"{where}network error ({type(exc).__name__})") from exc
    except TimeoutError as exc:  # asyncio.TimeoutError is TimeoutError since 3.11
        raise DeliveryError(f"{where}timed out") from exc


@dataclass(frozen=True)
class Failure:
    """What one failed send means, decided in ONE place for every kind of failure.

    refused: a permanent-looking refusal (a 4xx other than 408/429: an expired secret, the
        bot removed from the team). Still retried with backoff - never abandoned - but an
        alert switches to its fallback route at once and the operator is alarmed.
    outcome_unknown: the request may have been carried out (time-out, reset, 5xx, an
        unreadable answer): a re-sent alert says on its card that a copy may exist.
    """

    code: str  # for logs and the outbox row: "http_502", "timeout", "network", ...
    status: int | None = None
    retry_after: float | None = None
    refused: bool = False
    outcome_unknown: bool = False


def classify(exc: BaseException) -> Failure:
    """Every connector failure - any status, any body, any network error - as a Failure."""
    if isinstance(exc, DeliveryRefused):
        return Failure(f"refused_{exc.status}", exc.status, refused=exc.status is not None)
    if isinstance(exc, DeliveryError):
        status = exc.status
        unknown = status is None or status >= 500 or status == 408
        code = f"http_{status}" if status else "network"
        return Failure(code, status, exc.retry_after, outcome_unknown=unknown)
    if isinstance(exc, TimeoutError):
        return Failure("timeout", outcome_unknown=True)
    try:
        with map_exceptions():
            raise exc
    except (DeliveryError, DeliveryRefused) as mapped:
        return classify(mapped)
    except Exception:  # anything else: an answer we could not read
        # e.g. msrest's DeserializationError for a proxy's HTML error page: no status known.
        return Failure(f"unreadable_{type(exc).__name__}", outcome_unknown=True)

"""Files to a person the Teams way: a file consent card in their 1:1 chat with the bot, the
bytes PUT to the upload URL Teams gives when they accept (their OneDrive), then a file info
card. Teams sends files from bots to personal chats only, and only through this consent.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from botbuilder.schema import Activity, ActivityTypes, Attachment

logger = logging.getLogger(__name__)

FILE_CONSENT = "application/vnd.microsoft.teams.card.file.consent"
FILE_INFO = "application/vnd.microsoft.teams.card.file.info"
UPLOAD_TIMEOUT_SECONDS = 60


class UploadFailed(Exception):
    """The bytes did not reach the upload URL (nothing was delivered)."""


def consent_activity(
    name: str, size: int, description: str, context: Mapping[str, Any]
) -> Activity:
    """Asks the person to accept the file into their OneDrive; `context` comes back to the bot
    with their answer (ids only: it travels through Teams)."""
    card = {
        "description": description,
        "sizeInBytes": size,
        "acceptContext": dict(context),
        "declineContext": dict(context),
    }
    return Activity(
        type=ActivityTypes.message,
        attachments=[Attachment(content_type=FILE_CONSENT, name=name, content=card)],
    )


def file_info_activity(upload_info: Any, text: str) -> Activity:
    """The card Teams shows for a file the bot has put in the person's OneDrive."""
    return Activity(
        type=ActivityTypes.message,
        text=text,
        attachments=[
            Attachment(
                content_type=FILE_INFO,
                content_url=upload_info.content_url,
                name=upload_info.name,
                content={"uniqueId": upload_info.unique_id, "fileType": upload_info.file_type},
            )
        ],
    )


def upload_url_allowed(url: str | None) -> bool:
    """HTTPS only (Teams gives a OneDrive/SharePoint https URL); plain http to loopback is for
    tests and local development. A child's record is never sent in the clear."""
    if not url:
        return False
    parts = urlsplit(url)
    if parts.scheme == "https" and parts.hostname:
        return True
    if parts.scheme != "http" or not parts.hostname:
        return False
    try:
        return ipaddress.ip_address(parts.hostname).is_loopback
    except ValueError:
        return parts.hostname == "localhost"


async def upload(url: str, data: bytes, *, timeout: float = UPLOAD_TIMEOUT_SECONDS) -> None:
    """One PUT of the whole file, as Teams' file consent documentation describes."""
    if not upload_url_allowed(url):
        raise UploadFailed("upload URL refused (not https)")
    headers = {
        "Content-Length": str(len(data)),
        "Content-Range": f"bytes 0-{len(data) - 1}/{len(data)}",
    }
    try:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout)) as session,
            session.put(url, data=data, headers=headers) as response,
        ):
            if response.status not in (200, 201):
                raise UploadFailed(f"upload answered {response.status}")
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise UploadFailed(type(exc).__name__) from exc

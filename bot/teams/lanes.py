"""The turns lane: at most `size` chat turns run at once; a turn that can send a report jumps it.

Under a flood of chat every turn queues somewhere - the event loop, the store's turns thread,
the HTTP pool. Left alone, a "Send" waits behind everyone who arrived before it (seconds at
100 busy staff), and the alert only leaves once that turn has committed. Here ordinary turns
wait their place before any work is done for them, so the queues behind are short, and a turn
that can send a report - the person is at "Check your report", or pressed a Send button -
starts at once. A person's own turns never overtake each other: a turn jumps only when none
of that person's turns is waiting or running.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import OrderedDict
from collections.abc import AsyncIterator, Mapping
from typing import Any

# Enough turns in flight to keep both cores busy (store and HTTP waits overlap), few enough
# that a jumping turn finds short queues behind the lane (see README, Performance).
TURNS_AT_ONCE = 8
# Submits that send a report (the summary card's "Send now").
SENDING_ACTIONS = frozenset({"confirm"})
PEOPLE_REMEMBERED = 10_000


def person_key(channel_id: Any, sender_id: Any) -> str | None:
    """Who is speaking, as `channel/id`."""
    if not (isinstance(channel_id, str) and isinstance(sender_id, str) and sender_id):
        return None
    return f"{channel_id}/{sender_id}"


def person_of(activity: Mapping[str, Any]) -> str | None:
    """Who sent an activity (its JSON, as posted to /api/messages)."""
    sender = activity.get("from")
    sender_id = sender.get("id") if isinstance(sender, Mapping) else None
    return person_key(activity.get("channelId"), sender_id)


class TurnLanes:
    """The admission gate in front of chat turns, and what it knows about who can send."""

    def __init__(self, size: int = TURNS_AT_ONCE) -> None:
        self.size = size
        self._places = asyncio.Semaphore(size)
        self._in_flight: dict[str, int] = {}
        # People whose last turn left them able to send with their next (bounded: a hint only,
        # losing one costs that person priority, nothing else).
        self._can_send: OrderedDict[str, None] = OrderedDict()
        self.jumped = 0  # how many turns jumped the lane

    def can_send(self, person: str | None, yes: bool) -> None:
        """After a turn: note whether this person's next turn may send a report."""
        if not person:
            return
        if yes:
            self._can_send[person] = None
            self._can_send.move_to_end(person)
            while len(self._can_send) > PEOPLE_REMEMBERED:
                self._can_send.popitem(last=False)
        else:
            self._can_send.pop(person, None)

    def jumps(self, activity: Mapping[str, Any]) -> bool:
        """A turn that can send a report, from someone with no earlier turn still going."""
        person = person_of(activity)
        if person is None or self._in_flight.get(person):
            return False
        if person in self._can_send:
            return True
        value = activity.get("value")
        action = value.get("action") if isinstance(value, Mapping) else None
        return isinstance(action, str) and action in SENDING_ACTIONS

    @contextlib.asynccontextmanager
    async def place(self, activity: Mapping[str, Any]) -> AsyncIterator[bool]:
        """Hold a place in the lane for one turn (none when it jumps); yields whether it jumped."""
        person = person_of(activity)
        jump = self.jumps(activity)
        if person:
            self._in_flight[person] = self._in_flight.get(person, 0) + 1
        try:
            if jump:
                self.jumped += 1
                yield True
            else:
                async with self._places:
                    yield False
        finally:
            if person:
                left = self._in_flight[person] - 1
                if left:
                    self._in_flight[person] = left
                else:
                    del self._in_flight[person]

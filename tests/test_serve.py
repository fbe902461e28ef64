# `serve` hides what start-up built from the garbage collector before taking requests (issue 8:
# a full collection under load paused every turn ~60 ms; ~15 ms once start-up is frozen).
from __future__ import annotations

import gc
from pathlib import Path

from aiohttp import web

from bot import server
from bot.settings import Settings
from tests.e2e import SCHOOL


def test_serve_freezes_start_up_before_taking_requests(monkeypatch, tmp_path: Path):
    frozen_at_start: list[int] = []

    def run_app(app: web.Application, **_: object) -> None:
        frozen_at_start.append(gc.get_freeze_count())

    monkeypatch.setattr(server.web, "run_app", run_app)
    try:
        server.serve(Settings(data_dir=tmp_path), SCHOOL)
    finally:
        gc.unfreeze()
    assert frozen_at_start and frozen_at_start[0] > 10_000

# `serve` hides what start-up built from the garbage collector before taking requests (issue 8:
# a full collection under load paused every turn ~60 ms; ~15 ms once start-up is frozen).
from __future__ import annotations

import gc
import logging
from pathlib import Path

from aiohttp import web

from bot import server
from bot.cli import main
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


def test_serve_logs_no_line_per_flow_step(monkeypatch, tmp_path: Path):
    # transitions says at INFO, twice a step, that callbacks ran: noise on every turn's path.
    monkeypatch.setattr(server, "serve", lambda *args, **kwargs: None)
    root, steps = logging.getLogger(), logging.getLogger("transitions")
    levels = root.level, steps.level
    root.setLevel(logging.INFO)  # as `serve` configures it (pytest owns the handlers here)
    steps.setLevel(logging.NOTSET)
    try:
        assert main(["serve", "--data", str(tmp_path)]) == 0
        assert root.isEnabledFor(logging.INFO)
        assert not steps.isEnabledFor(logging.INFO)
        assert steps.isEnabledFor(logging.WARNING)
    finally:
        root.setLevel(levels[0])
        steps.setLevel(levels[1])

"""Where the steering folder lives: `shared/` beside the repository (as CI lays it out)."""

from __future__ import annotations

from pathlib import Path

_BESIDE = Path(__file__).resolve().parents[2] / "shared"
SHARED = _BESIDE if _BESIDE.is_dir() else Path("/work/shared")
SEEDS = SHARED / "seeds"

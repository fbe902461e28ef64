# The container recipe, checked without a Docker engine (there is none on the build machine):
# the Dockerfile is parsed, and the build context it copies is built into a wheel exactly as
# its first stage does, so a package or data file missing from the image fails here.
from __future__ import annotations

import fnmatch
import json
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SECRET_NAMES = re.compile(r"PASSWORD|SECRET|TOKEN|DATA_KEY|OLD_KEYS|CREDENTIAL|DATABASE_URL", re.I)


def instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) in order: comments dropped, continuation lines joined."""
    found, buffer = [], ""
    for raw in text.splitlines():
        if raw.lstrip().startswith("#") and not buffer:
            continue
        if raw.lstrip().startswith("#"):
            continue  # a comment inside a continued instruction
        buffer += raw.rstrip()
        if buffer.endswith("\\"):
            buffer = buffer[:-1] + " "
            continue
        if buffer.strip():
            keyword, _, rest = buffer.strip().partition(" ")
            found.append((keyword.upper(), rest.strip()))
        buffer = ""
    assert not buffer.strip(), "the Dockerfile ends inside a continued line"
    return found


def ignored_patterns() -> list[str]:
    lines = (ROOT / ".dockerignore").read_text("utf-8").splitlines()
    return [x.strip() for x in lines if x.strip() and not x.strip().startswith("#")]


def is_ignored(relative: str, patterns: list[str]) -> bool:
    parts = relative.split("/")
    for pattern in patterns:
        bare = pattern.removeprefix("**/")
        if fnmatch.fnmatch(relative, pattern) or any(fnmatch.fnmatch(p, bare) for p in parts):
            return True
        if any(fnmatch.fnmatch("/".join(parts[: i + 1]), pattern) for i in range(len(parts))):
            return True
    return False


@pytest.fixture(scope="module")
def dockerfile() -> list[tuple[str, str]]:
    return instructions((ROOT / "Dockerfile").read_text("utf-8"))


def final_stage(steps: list[tuple[str, str]]) -> list[tuple[str, str]]:
    starts = [i for i, (keyword, _) in enumerate(steps) if keyword == "FROM"]
    return steps[starts[-1] :]


def test_both_stages_are_python_3_11_slim(dockerfile) -> None:
    images = [args.split()[0] for keyword, args in dockerfile if keyword == "FROM"]
    assert images and all(image == "python:3.11-slim" for image in images)


def test_it_runs_as_a_non_root_user(dockerfile) -> None:
    users = [args for keyword, args in final_stage(dockerfile) if keyword == "USER"]
    assert users, "the image would run as root"
    user = users[-1].split(":")[0]
    assert user not in ("root", "0")
    # Nothing after the USER switches back.
    last_user = max(i for i, (k, _) in enumerate(dockerfile) if k == "USER")
    assert all(k != "USER" for k, _ in dockerfile[last_user + 1 :])


def test_serve_is_what_it_runs_and_the_other_commands_can_be_named(dockerfile) -> None:
    stage = dict(final_stage(dockerfile))
    entry, command = json.loads(stage["ENTRYPOINT"]), json.loads(stage["CMD"])
    assert entry + command == ["safeguarding-bot", "serve"]
    # `docker run IMAGE migrate` replaces CMD only: the entry point is the bot's command line.
    assert entry == ["safeguarding-bot"]


def test_the_health_check_asks_healthz_on_the_configured_port(dockerfile) -> None:
    (check,) = [args for keyword, args in dockerfile if keyword == "HEALTHCHECK"]
    assert "/healthz" in check and "PORT" in check


def test_no_secret_is_baked_in(dockerfile) -> None:
    for keyword, args in dockerfile:
        if keyword in ("ENV", "ARG", "LABEL"):
            assert not SECRET_NAMES.search(args), f"{keyword} {args}"
    environment = " ".join(args for keyword, args in dockerfile if keyword == "ENV")
    assert "PROFILE_PATH=" in environment and "HOST=0.0.0.0" in environment
    # ... and nothing secret can reach the build context.
    patterns = ignored_patterns()
    for path in (".env", "data/safeguarding.sqlite3", "data/data.key", "bot/x.sqlite3-wal"):
        assert is_ignored(path, patterns), path


def test_everything_it_copies_exists_and_is_not_ignored(dockerfile) -> None:
    patterns = ignored_patterns()
    copies = [args.split() for keyword, args in dockerfile if keyword == "COPY"]
    local = [args for args in copies if not args[0].startswith("--from")]
    assert local
    for *sources, _destination in local:
        for source in sources:
            assert (ROOT / source).exists(), source
            assert not is_ignored(source.rstrip("/"), patterns), source


def test_the_copied_context_builds_a_wheel_with_every_package_and_data_file(
    dockerfile, tmp_path
) -> None:
    # Exactly what the first stage has: the COPYed files, minus .dockerignore's.
    context = tmp_path / "context"
    patterns = ignored_patterns()
    for *sources, _ in (a.split() for k, a in dockerfile if k == "COPY"):
        if sources[0].startswith("--from"):
            continue
        for source in sources:
            origin = ROOT / source
            paths = [origin] if origin.is_file() else sorted(origin.rglob("*"))
            for path in paths:
                relative = path.relative_to(ROOT).as_posix()
                if path.is_file() and not is_ignored(relative, patterns):
                    (context / relative).parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(path, context / relative)
    wheels = tmp_path / "wheels"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(wheels), str(context)],
        check=True,
        capture_output=True,
    )
    (wheel,) = wheels.glob("safeguarding_bot-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    # Every Python package in the source is in the image (a new sub-package must be listed
    # in pyproject.toml, or the container would fail to import it).
    for top in ("bot", "dialogs", "flows"):
        for init in (ROOT / top).rglob("__init__.py"):
            assert init.relative_to(ROOT).as_posix() in names, init
        for module in (ROOT / top).rglob("*.py"):
            assert module.relative_to(ROOT).as_posix() in names, module
    for data in ("flows/definitions/*.yaml", "bot/teams/templates/*.j2", "profiles/*.yaml"):
        for path in ROOT.glob(data):
            assert path.relative_to(ROOT).as_posix() in names, path
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    assert "safeguarding-bot = bot.cli:main" in zipfile.ZipFile(wheel).read(entry_points).decode()

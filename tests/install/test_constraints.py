"""scripts/constraints.txt names every Python package the tests run with,
at the version installed: a dependency added without scripts/lock, or a
virtualenv set up without the file, fails here rather than letting a new
release upstream in unseen."""

from __future__ import annotations

from importlib import metadata
from pathlib import Path

from packaging.utils import canonicalize_name

REPO = Path(__file__).resolve().parents[2]
# Installed from this checkout, or the installer itself (scripts/setup upgrades pip first).
NOT_PINNED = {"yibao-verify", "yibao-client", "pip"}


def _pinned() -> dict[str, str]:
    pins: dict[str, str] = {}
    for n, line in enumerate((REPO / "scripts" / "constraints.txt").read_text().splitlines(), 1):
        if not line or line.startswith("#"):
            continue
        name, sep, version = line.partition("==")
        assert sep and name and version, f"scripts/constraints.txt line {n}: {line!r} is not NAME==VERSION"
        pins[canonicalize_name(name)] = version
    return pins


def test_every_installed_package_is_pinned_at_its_version() -> None:
    pins = _pinned()
    installed = {canonicalize_name(d.metadata["Name"]): d.version for d in metadata.distributions()}
    unpinned = sorted(set(installed) - set(pins) - NOT_PINNED)
    assert not unpinned, (f"installed but not in scripts/constraints.txt (a new dependency: run scripts/lock; "
                          f"a tool of your own: install it outside .venv): {unpinned}")
    other = {name: (installed[name], pins[name]) for name in installed.keys() & pins.keys() if installed[name] != pins[name]}
    assert not other, f"installed version differs from scripts/constraints.txt (installed, pinned): {other}"

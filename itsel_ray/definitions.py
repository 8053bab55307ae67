"""Where the shipped sweep and analysis definitions (the top-level `sweeps/` and `analysis/` YAML files) are found.

In a checkout or an editable install they are the checkout's own folders; a wheel or sdist carries copies inside the
package (`itsel_ray/definitions_data/`, mapped from the same folders at build time), so `--sweep paper` and the
analysis defaults resolve from any working directory.
"""

from __future__ import annotations

from pathlib import Path

KINDS = ("sweeps", "analysis")
_PACKAGE = Path(__file__).resolve().parent


def definitions_dir(kind: str) -> Path:
    """The folder of `kind` ("sweeps" or "analysis"): the packaged copy when installed, else the checkout's."""
    if kind not in KINDS:
        raise ValueError(f"unknown definitions kind {kind!r}; valid: {', '.join(KINDS)}")
    packaged = _PACKAGE / "definitions_data" / kind
    if packaged.is_dir():
        return packaged
    return _PACKAGE.parent / kind


def shipped(kind: str) -> list[str]:
    """Names of the shipped definitions of `kind` (defaults.yaml is a layer, not a sweep)."""
    folder = definitions_dir(kind)
    return sorted(p.stem for p in folder.glob("*.yaml") if p.stem != "defaults") if folder.is_dir() else []

"""Label vocabularies shared by the synthetic world, the models and the workers.

The 8-type taxonomy is the spec's (§2) and lives in worker_config.TAXONOMY; this module
adds the colour vocabulary of the spec's FBL array (§5) and the plate-format rules.
"""
from __future__ import annotations

import re

from ..worker_config import TAXONOMY

__all__ = [
    "TAXONOMY", "COLOR_BASES", "COLOR_FINISHES", "COLOR_LIGHTNESS", "COLOR_BGR",
    "PLATE_PATTERNS", "is_valid_plate", "normalize_plate",
]

# Base colour names (spec §5: {"finish": null|"Matte"|"Metallic", "base": "White",
# "lightness": "Light"|null, "conf": 0..1}).
COLOR_BASES: tuple[str, ...] = (
    "White", "Black", "Silver", "Gray", "Red", "Blue", "Green", "Yellow", "Orange", "Brown",
)
COLOR_FINISHES: tuple[None | str, ...] = (None, "Matte", "Metallic")
COLOR_LIGHTNESS: tuple[None | str, ...] = (None, "Light")

# Representative BGR value of each base colour (OpenCV order), used by the renderer and by
# the classical colour estimator's nearest-colour rule.
COLOR_BGR: dict[str, tuple[int, int, int]] = {
    "White": (240, 240, 240),
    "Black": (25, 25, 25),
    "Silver": (192, 192, 192),
    "Gray": (110, 110, 110),
    "Red": (30, 30, 200),
    "Blue": (190, 80, 30),
    "Green": (50, 140, 40),
    "Yellow": (30, 210, 230),
    "Orange": (20, 120, 240),
    "Brown": (30, 70, 120),
}

# Philippine LTO plate formats (2014 series and the older ones still on the road):
#   cars/trucks/buses: "ABC 1234" (also older "ABC 123"); motorcycles: "123 ABC" or "AB 12345".
PLATE_PATTERNS: tuple[re.Pattern[str], ...] = (
    re.compile(r"^[A-Z]{3} \d{3,4}$"),
    re.compile(r"^\d{3} [A-Z]{3}$"),
    re.compile(r"^[A-Z]{2} \d{5}$"),
)


def normalize_plate(text: str) -> str:
    """Upper-case, collapse whitespace, and put the single space between letters and digits."""
    t = re.sub(r"[^A-Z0-9]", "", text.upper())
    m = re.fullmatch(r"([A-Z]+)(\d+)|(\d+)([A-Z]+)", t)
    if not m:
        return t
    a, b = (m.group(1), m.group(2)) if m.group(1) else (m.group(3), m.group(4))
    return f"{a} {b}"


def is_valid_plate(text: str) -> bool:
    """True when ``text`` (already normalised) matches one of the plate formats."""
    return any(p.fullmatch(text) for p in PLATE_PATTERNS)

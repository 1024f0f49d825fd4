"""The synthetic vehicle catalogue: 8 types x 3 makes x 2 models, colours and plates.

Everything a renderer needs to draw one vehicle and everything a model must learn to tell
vehicles apart, as plain data:

* **Type** decides the silhouette and real-world size (metres): a sedan body, an SUV's tall
  box, a one-box van, a light truck's cab + cargo box, a pickup's open bed, a motorcycle with
  rider, a long bus with a row of windows, a jeepney's long roof and striped flank.
* **Make** (3 per type) decides a marking drawn on the flank: ``stripe`` (a contrasting
  horizontal band at mid-height), ``twotone`` (dark lower skirt) or ``emblem`` (a large ring
  badge on the door plus a roof-line stripe).
* **Model** (2 per make) decides proportions and one accessory: model 0 is the base body,
  model 1 is 12 % longer with a roof rack (motorcycles: a top box).

Make names are unique per type and model names unique per make, because the label hierarchy
(main_worker.decoding) maps each make to exactly one type and each model to one make.

Colours come from the spec's FBL vocabulary (``worker_utils.vocab``): a base name, a finish
(None, Matte, Metallic) and a lightness (None or Light; Light only for chromatic bases, where
it reads as a paler shade).  Plates follow Philippine LTO formats (``vocab.PLATE_PATTERNS``).
"""
from __future__ import annotations

import string
from dataclasses import dataclass
from typing import Optional

import numpy as np

from ..worker_utils.vocab import COLOR_BASES, COLOR_BGR, TAXONOMY

MAKE_STYLES: tuple[str, ...] = ("stripe", "twotone", "emblem")

# type -> ((make, (model0, model1)), ...) ; order within a make: model 0 base, model 1 long + rack.
CATALOGUE: dict[str, tuple[tuple[str, tuple[str, str]], ...]] = {
    "Car": (("Toyota", ("Vios", "Corolla")), ("Honda", ("City", "Civic")), ("Hyundai", ("Accent", "Elantra"))),
    "SUV": (("Ford", ("Everest", "Territory")), ("Mitsubishi", ("Montero", "Xpander")), ("Nissan", ("Terra", "Patrol"))),
    "Van": (("Kia", ("Carnival", "Pregio")), ("Foton", ("View", "Toano")), ("Maxus", ("V80", "G10"))),
    "LightTruck": (("Isuzu", ("Elf", "Traviz")), ("Hino", ("Dutro", "300 Series")), ("Fuso", ("Canter", "FE71"))),
    "Utility": (("Mazda", ("BT-50", "B2500")), ("Chevrolet", ("Colorado", "S10")), ("Tata", ("Xenon", "Yodha"))),
    "Motorcycle": (("Yamaha", ("NMAX", "Mio")), ("Kawasaki", ("Barako", "Rouser")), ("Suzuki", ("Raider", "Smash"))),
    "CarouselBus": (("Daewoo", ("BS106", "BV115")), ("Yutong", ("ZK6118", "E12")), ("King Long", ("XMQ6127", "XMQ6900"))),
    "E-Jeepney": (("Comet", ("Comet 16", "Comet 22")), ("Sarao", ("Sarao Classic", "Sarao Super")),
                  ("Francisco", ("FMC Modern", "FMC E-Jeep"))),
}

# Real-world size per type: (length m, height m).
TYPE_SIZE: dict[str, tuple[float, float]] = {
    "Car": (4.4, 1.45), "SUV": (4.7, 1.85), "Van": (5.0, 2.0), "LightTruck": (6.0, 2.7),
    "Utility": (5.2, 1.8), "Motorcycle": (2.0, 1.55), "CarouselBus": (11.0, 3.2), "E-Jeepney": (7.0, 2.7),
}

# Light shades exist only for chromatic bases (a "Light White" or "Light Silver" is not a colour).
LIGHT_OK = frozenset({"Red", "Blue", "Green", "Yellow", "Orange", "Brown"})


def makes_of(vtype: str) -> list[str]:
    return [m for m, _ in CATALOGUE[vtype]]


def all_labels() -> dict[str, list]:
    """Label maps in a fixed order: type (taxonomy order), make, model, colour heads."""
    makes, models = [], []
    for t in TAXONOMY:
        for make, mods in CATALOGUE[t]:
            makes.append(make)
            models.extend(mods)
    return {"type": list(TAXONOMY), "make": makes, "model": models, "color_base": list(COLOR_BASES),
            "finish": [None, "Matte", "Metallic"], "lightness": [None, "Light"]}


def hierarchy() -> dict[str, dict[str, str]]:
    """``{"make_type": {make: type}, "model_make": {model: make}}``."""
    make_type, model_make = {}, {}
    for t in TAXONOMY:
        for make, mods in CATALOGUE[t]:
            make_type[make] = t
            for m in mods:
                model_make[m] = make
    return {"make_type": make_type, "model_make": model_make}


@dataclass(frozen=True)
class Colour:
    base: str
    finish: Optional[str]  # None | "Matte" | "Metallic"
    lightness: Optional[str]  # None | "Light"

    def bgr(self) -> tuple[int, int, int]:
        b = np.array(COLOR_BGR[self.base], np.float64)
        if self.lightness == "Light":
            b = b + 0.45 * (255.0 - b)
        return tuple(int(round(v)) for v in b)  # type: ignore[return-value]

    def as_fbl(self) -> dict:
        return {"finish": self.finish, "base": self.base, "lightness": self.lightness}


@dataclass(frozen=True)
class VehicleSpec:
    """One vehicle's identity: what the ground truth says and what the renderer draws."""

    vtype: str
    make: str
    model: str
    make_index: int  # 0..2 -> MAKE_STYLES
    model_index: int  # 0..1
    colour: Colour
    plate: str
    length_m: float
    height_m: float

    @property
    def style(self) -> str:
        return MAKE_STYLES[self.make_index]

    def ground_truth(self) -> dict:
        return {"type": self.vtype, "make": self.make, "model": self.model, "color": self.colour.as_fbl(),
                "plate": self.plate}


def random_plate(rng: np.random.Generator, vtype: str) -> str:
    """A Philippine-style plate: ``ABC 1234`` (cars, trucks, buses) or ``123 ABC`` (motorcycles)."""
    letters = "".join(rng.choice(list(string.ascii_uppercase), 3))
    if vtype == "Motorcycle":
        return f"{rng.integers(100, 1000)} {letters}"
    return f"{letters} {rng.integers(1000, 10000)}"


def random_colour(rng: np.random.Generator, vtype: str) -> Colour:
    base = str(rng.choice(COLOR_BASES))
    finish = [None, "Matte", "Metallic"][int(rng.choice(3, p=[0.5, 0.2, 0.3]))]
    light = "Light" if base in LIGHT_OK and rng.random() < 0.3 else None
    return Colour(base, finish, light)


def random_vehicle(rng: np.random.Generator, vtype: Optional[str] = None,
                   type_weights: Optional[np.ndarray] = None) -> VehicleSpec:
    """Draw a vehicle; types uniform unless ``type_weights`` (8 numbers) says otherwise."""
    if vtype is None:
        p = None if type_weights is None else np.asarray(type_weights, np.float64) / np.sum(type_weights)
        vtype = TAXONOMY[int(rng.choice(len(TAXONOMY), p=p))]
    mi = int(rng.integers(0, 3))
    make, models = CATALOGUE[vtype][mi]
    mo = int(rng.integers(0, 2))
    length, height = TYPE_SIZE[vtype]
    length *= (1.12 if mo == 1 else 1.0) * float(rng.uniform(0.97, 1.03))
    height *= float(rng.uniform(0.97, 1.03))
    return VehicleSpec(vtype, make, models[mo], mi, mo, random_colour(rng, vtype), random_plate(rng, vtype),
                       length, height)

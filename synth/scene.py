"""A synthetic traffic camera: a road seen from the roadside, vehicles crossing the view.

Geometry (pinhole camera at ``camera_height_m`` above the road, tilted down by
``camera_tilt_deg``, horizontal field of view ``hfov_deg``): lanes run across the image at
depths ``z`` (metres along the optical axis); a ground point at depth ``z`` lands on row
``cy + f * tan(atan(h / z) - tilt)`` and a metre at that depth spans ``f / hypot(z, h)``
pixels.  The nearest lane is placed near the bottom of the frame whatever the height and
tilt, so height/tilt change the perspective (spacing and relative size of lanes) while every
lane stays in view.

Traffic: near lanes flow right, far lanes flow left.  Vehicles enter off-screen, follow their
leader (brake to keep a gap, stop behind a stopped vehicle), change their cruise speed now and
then, and some stop for a while in view (a stop line in the middle of the frame).  Nearer
lanes occlude farther ones; vehicles in one lane can touch while queueing.

Car park / low traffic (``parked > 0``, preset :func:`carpark_config`): ``parked`` vehicles
stand still for the whole clip in parking rows along the near kerb, between the camera and
the road (row 0 where the nearest lane would be; rows :data:`PARKING_ROW_M` apart, so a row's
vehicles barely overlap the row behind; the traffic lanes move back behind them).  They are
packed left to right with random gaps, fully inside the frame, and drawn from their own random
stream (they move the lanes back, so the traffic of a seed differs with and without them).  They are in the ground
truth like every other vehicle (``vehicle_table`` marks them ``"parked": true``).  With
``parked == 0`` (the default) nothing of this exists and clips are byte-identical to before.

Everything is deterministic in ``seed``.  ``Scene.frames()`` yields ``(frame, objects)`` per
frame, ``objects`` being the ground truth: one :class:`GtObject` per vehicle in view with its
full box (clipped to the frame) and visibility (visible pixels / pixels in the frame).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterator, Literal, Optional

import cv2
import numpy as np

from .catalogue import VehicleSpec, random_vehicle
from .sprite import Sprite, render_vehicle

Lighting = Literal["day", "dusk", "night"]


@dataclass(frozen=True)
class SceneConfig:
    width: int = 640
    height: int = 360
    fps: float = 12.5
    duration_s: float = 30.0
    seed: int = 0
    camera_height_m: float = 7.0
    camera_tilt_deg: float = 12.0
    hfov_deg: float = 75.0
    lanes: int = 4  # the nearer half flows right, the farther half left
    lane_width_m: float = 3.5
    vehicles_per_min: float = 10.0  # arrivals per lane per minute (Poisson)
    lighting: Lighting = "day"
    rain: bool = False
    noise_sigma: float = 0.0  # sensor noise, grey levels
    crf: int = 23  # H.264 quality (libx264 CRF; 18 = near lossless, 35 = blocky)
    stop_probability: float = 0.15  # chance a vehicle stops at the stop line for a while
    type_weights: Optional[tuple[float, ...]] = None  # 8 numbers (taxonomy order); None = uniform
    start_filled: bool = True  # vehicles already in view at t=0 (else the road starts empty)
    # Fields added later: write_clip leaves them out of NAME.json while they hold their default
    # (ADDED_FIELDS), so clips of older configurations stay byte-identical.
    parked: int = 0  # vehicles standing still for the whole clip in parking rows at the near kerb

    def __post_init__(self) -> None:
        if self.width % 2 or self.height % 2 or self.width < 64 or self.height < 64:
            raise ValueError("width and height must be even and at least 64 (H.264 with 4:2:0 chroma)")
        if not (0 < self.fps <= 120):
            raise ValueError("fps must be in (0, 120]")
        if self.lanes < 1:
            raise ValueError("lanes must be >= 1")
        if self.parked < 0:
            raise ValueError("parked must be >= 0")

    @property
    def frame_count(self) -> int:
        return int(round(self.duration_s * self.fps))


ADDED_FIELDS = ("parked",)  # SceneConfig fields that NAME.json carries only when not at their default

# Car park geometry (metres).  Rows 6.5 m apart (a bay and an aisle): at the default camera a
# tall vehicle in row 0 hides at most about half of one in row 1 (5 parked, seeds 0-59: every
# parked vehicle at least 53 % visible; 5.5 m left some at 27 %).
PARKING_ROW_M = 6.5
PARKING_MAX_ROWS = 3
PARKING_MARGIN_M = 0.4  # from the frame edge: parked vehicles lie fully inside the view
PARKING_GAP_M = (0.8, 2.5)  # gap between neighbours, uniform
# Parked types (taxonomy order): cars, SUVs, vans, light trucks, utility vehicles and
# motorcycles; buses and jeepneys do not park in a car park (and one would fill a row).
PARKED_TYPE_WEIGHTS = (3.0, 2.0, 1.0, 1.0, 1.0, 1.0, 0.0, 0.0)


def carpark_config(seed: int = 0, **changes) -> SceneConfig:
    """The car-park / low-traffic preset: 5 parked vehicles in two rows at the near kerb, a
    two-lane access road behind them with one arrival per lane every 30 s on average, an empty
    road at the start and no stop line.  Most processed frames show no motion at all, as on
    much real CCTV (seed 4245, 25 fps, 30 s: 3 movers, 58 % of the frames at stride 3 without a
    moving pixel against the previous one; a real CCTV clip measured 55 %).  ``changes``
    override any field (``duration_s``, ``fps``, ``parked`` ...)."""
    kw = dict(seed=seed, lanes=2, vehicles_per_min=2.0, parked=5, stop_probability=0.0, start_filled=False)
    kw.update(changes)
    return SceneConfig(**kw)


SCENES = {"road": SceneConfig, "carpark": carpark_config}  # preset name -> (seed, **changes) -> SceneConfig


def scene_config(scene: str = "road", seed: int = 0, **changes) -> SceneConfig:
    """The named preset's config (``road``: the plain SceneConfig defaults, ``carpark``:
    :func:`carpark_config`), with ``changes`` on top."""
    if scene not in SCENES:
        raise ValueError(f"unknown scene {scene!r}; one of {', '.join(SCENES)}")
    return SCENES[scene](seed=seed, **changes)


def pack_rows(lengths_m, gaps_m, row_lengths_m, margin_m: float = PARKING_MARGIN_M) -> list[tuple[int, float]]:
    """Pack vehicles left to right into rows, in order: ``(row, left)`` for each vehicle.

    ``lengths_m[i]`` is vehicle i's length and ``gaps_m[i]`` the free space before it (after the
    row's margin for the first of a row), metres; ``row_lengths_m[r]`` is the visible length of
    row r.  ``left`` is the vehicle's left end in metres from the row's left edge; every vehicle
    lies within ``[margin_m, row length - margin_m]``.  A vehicle that does not fit starts the
    next row.  Raises ValueError when the rows run out."""
    out: list[tuple[int, float]] = []
    row, end = 0, margin_m  # end: right end of the row's last vehicle (the margin while empty)
    for length, gap in zip(lengths_m, gaps_m):
        while row < len(row_lengths_m) and end + gap + length > row_lengths_m[row] - margin_m:
            row, end = row + 1, margin_m  # farther rows are longer: one may take it even alone
        if row >= len(row_lengths_m):
            raise ValueError(f"{len(lengths_m)} parked vehicles do not fit in {len(row_lengths_m)} parking rows "
                             "at this width and field of view; park fewer")
        out.append((row, end + gap))
        end += gap + length
    return out


@dataclass
class GtObject:
    vehicle_id: int  # 1-based within the clip
    box: tuple[float, float, float, float]  # x1, y1, x2, y2 (exclusive), clipped to the frame
    visibility: float  # 0..1: visible pixels / pixels inside the frame
    truncated: bool  # part of the vehicle lies outside the frame


@dataclass
class _Lane:
    index: int
    depth: float  # metres along the optical axis
    ground_y: float  # image row of the lane centre line
    px_per_m: float
    direction: int  # +1 right, -1 left
    half_width_m: float  # half the visible road length at this depth
    next_arrival: float = 0.0


@dataclass
class _Vehicle:
    vid: int
    spec: VehicleSpec
    lane: _Lane
    sprite: Sprite
    x: float  # position of the vehicle's rear along the direction of travel (metres, world X of the rear)
    speed: float  # m/s
    cruise: float
    stop_until: Optional[float] = None
    will_stop: bool = False
    stopped_once: bool = False
    first_frame: int = -1
    last_frame: int = -1
    parked: bool = False  # stands still in a parking row for the whole clip


class Camera:
    def __init__(self, cfg: SceneConfig):
        self.cfg = cfg
        self.cx, self.cy = cfg.width / 2.0, cfg.height / 2.0
        self.f = (cfg.width / 2.0) / math.tan(math.radians(cfg.hfov_deg) / 2.0)
        self.h = cfg.camera_height_m
        self.tilt = math.radians(cfg.camera_tilt_deg)

    def row_of_depth(self, z: float) -> float:
        return self.cy + self.f * math.tan(math.atan2(self.h, z) - self.tilt)

    def depth_of_row(self, y: float) -> float:
        ang = math.atan((y - self.cy) / self.f) + self.tilt
        return self.h / math.tan(max(ang, 1e-3))

    def px_per_m(self, z: float) -> float:
        return self.f / math.hypot(z, self.h)

    def col_of_x(self, x: float, z: float) -> float:
        return self.cx + self.f * x / z


class Scene:
    """One deterministic clip's worth of world; iterate :meth:`frames` once."""

    def __init__(self, cfg: SceneConfig):
        self.cfg = cfg
        self.rng = np.random.default_rng(cfg.seed)
        # Weather and noise draw from their own stream: the same seed gives the same traffic
        # whatever the lighting, rain or noise settings.
        self.fx_rng = np.random.default_rng([cfg.seed, 1])
        self.cam = Camera(cfg)
        self.vehicles: list[_Vehicle] = []
        self.by_id: dict[int, _Vehicle] = {}  # every vehicle ever spawned, by vehicle_id (spawn order)
        self._next_id = 1
        # Nearest lane's centre at 90 % of the frame height; the others behind it.  Parking rows
        # (car park) take that place instead, and the lanes start behind the last row.
        z0 = self.cam.depth_of_row(0.9 * cfg.height)
        self.parking_rows: list[float] = self._park(z0) if cfg.parked else []  # depths of the rows used
        if self.parking_rows:
            z0 = self.parking_rows[-1] + PARKING_ROW_M / 2 + cfg.lane_width_m / 2
        self.lanes: list[_Lane] = []
        for i in range(cfg.lanes):
            z = z0 + i * cfg.lane_width_m
            half = (cfg.width / 2.0) * z / self.cam.f
            direction = 1 if i < (cfg.lanes + 1) // 2 else -1
            self.lanes.append(_Lane(i, z, self.cam.row_of_depth(z), self.cam.px_per_m(z), direction, half))
        self.background = self._background()
        self.t = 0.0
        if cfg.start_filled:
            self._prefill()
        for lane in self.lanes:
            lane.next_arrival = self.t + float(self.rng.exponential(60.0 / cfg.vehicles_per_min))

    # --- world -------------------------------------------------------------------------
    def _park(self, z0: float) -> list[float]:
        """Place ``cfg.parked`` still vehicles in parking rows from depth ``z0`` (metres) back;
        returns the depths of the rows used.  Their own random stream (``[seed, 2]``), so the
        traffic's stream is the one it would be without them."""
        cfg, cam = self.cfg, self.cam
        rng = np.random.default_rng([cfg.seed, 2])
        specs = [random_vehicle(rng, type_weights=np.asarray(PARKED_TYPE_WEIGHTS)) for _ in range(cfg.parked)]
        gaps = rng.uniform(*PARKING_GAP_M, cfg.parked)
        facing_right = rng.random(cfg.parked) < 0.5
        depths = [z0 + r * PARKING_ROW_M for r in range(PARKING_MAX_ROWS)]
        halves = [(cfg.width / 2.0) * z / cam.f for z in depths]  # half the visible row length, metres
        places = pack_rows([sp.length_m for sp in specs], gaps, [2 * h for h in halves])
        for spec, (row, left), right in zip(specs, places, facing_right):
            z = depths[row]
            lane = _Lane(-1 - row, z, cam.row_of_depth(z), cam.px_per_m(z), 1 if right else -1, halves[row])
            x_left = -halves[row] + left  # world X of the vehicle's left end
            x_rear = x_left if right else -x_left - spec.length_m  # see _place
            sprite = render_vehicle(spec, lane.px_per_m, facing_right=bool(right))
            v = _Vehicle(self._next_id, spec, lane, sprite, x_rear, 0.0, 0.0, parked=True)
            self._next_id += 1
            self.vehicles.append(v)
            self.by_id[v.vid] = v
        return depths[:max(row for row, _ in places) + 1]

    def _spawn(self, lane: _Lane, x_rear: Optional[float] = None) -> Optional[_Vehicle]:
        spec = random_vehicle(self.rng, type_weights=None if self.cfg.type_weights is None
                              else np.asarray(self.cfg.type_weights))
        if x_rear is None:  # just outside the entry edge
            x_rear = -lane.half_width_m - spec.length_m - 0.5
        # Entry must keep a gap to the last vehicle in the lane.
        same = [v for v in self.vehicles if v.lane is lane]
        if same:
            last = min(same, key=lambda v: v.x)
            if last.x - (x_rear + spec.length_m) < 2.0:
                return None
        cruise = float(self.rng.uniform(7.0, 14.0)) * (1.25 if spec.vtype == "Motorcycle" else 1.0)
        sprite = render_vehicle(spec, lane.px_per_m, facing_right=lane.direction > 0)
        v = _Vehicle(self._next_id, spec, lane, sprite, x_rear, cruise, cruise,
                     will_stop=bool(self.rng.random() < self.cfg.stop_probability))
        self._next_id += 1
        self.vehicles.append(v)
        self.by_id[v.vid] = v
        return v

    def _prefill(self) -> None:
        for lane in self.lanes:
            x = -lane.half_width_m + float(self.rng.uniform(0, 8))
            while x < lane.half_width_m - 3:
                if self.rng.random() < 0.45:
                    v = self._spawn(lane, x)
                    if v is not None:
                        x += v.spec.length_m
                x += float(self.rng.uniform(8, 25))

    def _step(self, dt: float) -> None:
        cfg = self.cfg
        for lane in self.lanes:
            if self.t >= lane.next_arrival:
                self._spawn(lane)
                lane.next_arrival = self.t + float(self.rng.exponential(60.0 / cfg.vehicles_per_min))
        for lane in self.lanes:
            queue = sorted((v for v in self.vehicles if v.lane is lane), key=lambda v: -v.x)  # leader first
            for k, v in enumerate(queue):
                if self.rng.random() < 0.01:  # change cruise speed now and then
                    v.cruise = float(np.clip(v.cruise * self.rng.uniform(0.7, 1.3), 4.0, 17.0))
                target = v.cruise
                front = v.x + v.spec.length_m
                # Stop line: the middle of the view (x = 0 at the lane's depth).
                if v.will_stop and not v.stopped_once:
                    dist = -front
                    if 0 <= dist < 12:
                        target = min(target, max(0.0, dist - 0.5) * 1.2)
                        if dist < 1.0 and v.speed < 0.5:
                            v.stopped_once = True
                            v.stop_until = self.t + float(self.rng.uniform(1.5, 4.0))
                if v.stop_until is not None:
                    if self.t < v.stop_until:
                        target = 0.0
                    else:
                        v.stop_until = None
                if k > 0:
                    leader = queue[k - 1]
                    gap = leader.x - front
                    target = min(target, max(0.0, (gap - 1.5) * 0.9), leader.speed + max(0.0, gap - 6.0) * 0.5)
                accel = 4.0 if target > v.speed else 8.0
                v.speed += float(np.clip(target - v.speed, -accel * dt, accel * dt))
                v.x += v.speed * dt
        # Leave once fully past the exit edge.
        self.vehicles = [v for v in self.vehicles if v.x < v.lane.half_width_m + 1.0]
        self.t += dt

    # --- pictures -----------------------------------------------------------------------
    def _background(self) -> np.ndarray:
        cfg, cam, rng = self.cfg, self.cam, self.rng
        W, H = cfg.width, cfg.height
        img = np.zeros((H, W, 3), np.float32)
        horizon = int(np.clip(cam.row_of_depth(1e6), 0, H))
        sky_top, sky_bot = np.array([200, 160, 120], np.float32), np.array([235, 215, 195], np.float32)
        for y in range(horizon):
            a = y / max(1, horizon)
            img[y] = sky_top * (1 - a) + sky_bot * a
        img[horizon:] = (95, 110, 100)  # verge / far ground
        far_edge = self.lanes[-1].depth + self.cfg.lane_width_m / 2
        near_edge = self.lanes[0].depth - self.cfg.lane_width_m / 2
        if self.parking_rows:  # the car park's asphalt reaches to the front of its first row
            near_edge = self.parking_rows[0] - PARKING_ROW_M / 2
        y_far, y_near = int(cam.row_of_depth(far_edge)), int(cam.row_of_depth(near_edge))
        y_far_walk = int(cam.row_of_depth(far_edge + 3.0))
        # Buildings behind the far sidewalk.
        x = 0
        while x < W:
            bw = int(rng.integers(W // 16, W // 6))
            bh = int(rng.integers(H // 10, H // 3))
            tone = rng.integers(90, 190)
            col = (float(tone), float(tone * rng.uniform(0.85, 1.0)), float(tone * rng.uniform(0.8, 1.05)))
            top = max(0, y_far_walk - bh)
            img[top:y_far_walk, x:x + bw] = col
            for wy in range(top + 6, y_far_walk - 6, 14):  # windows
                for wx in range(x + 5, x + bw - 8, 12):
                    img[wy:wy + 6, wx:wx + 5] = (col[0] * 0.6, col[1] * 0.6, col[2] * 0.6)
            x += bw + int(rng.integers(0, W // 20))
        img[y_far_walk:y_far] = (150, 155, 160)  # far sidewalk
        img[y_far:y_near] = (78, 80, 82)  # asphalt
        img[y_near:] = (150, 155, 160)  # near sidewalk
        if y_near < H:
            img[min(H - 1, y_near + 6):] = (100, 120, 105)
        noise = rng.normal(0, 4.0, (H, W, 1)).astype(np.float32)
        img[y_far:y_near] += noise[y_far:y_near]
        # Lane markings: dashed white between lanes, double yellow between the two directions.
        n = len(self.lanes)
        split = (n + 1) // 2
        for k in range(1, n):
            z = self.lanes[0].depth + (k - 0.5) * self.cfg.lane_width_m
            y = int(round(cam.row_of_depth(z)))
            if k == split:
                img[max(0, y - 1):y + 1] = (40, 200, 230)
                img[y + 2:y + 3] = (40, 200, 230)
            else:
                dash = max(8, int(3.0 * cam.px_per_m(z)))
                for xs in range(0, W, 2 * dash):
                    img[max(0, y - 1):y + 1, xs:xs + dash] = (225, 225, 225)
        # Car park: a white line behind each row (the last one, the kerb to the road, thicker);
        # no random draws, so the rest of the picture is as it would be without a car park.
        for k, z in enumerate(self.parking_rows):
            y = int(round(cam.row_of_depth(z + PARKING_ROW_M / 2)))
            kerb = k == len(self.parking_rows) - 1
            img[max(0, y - (2 if kerb else 1)):max(0, y + 1)] = (225, 225, 225)
        # Poles on the far sidewalk (static clutter the detector must ignore).
        for _ in range(int(rng.integers(2, 5))):
            px = int(rng.integers(0, W))
            top = max(0, y_far_walk - int(6.0 * cam.px_per_m(far_edge + 2.0)))
            img[top:y_far_walk, px:px + 3] = (60, 60, 60)
        return np.clip(img, 0, 255).astype(np.uint8)

    def _place(self, v: _Vehicle) -> tuple[int, int]:
        """Top-left pixel of the sprite for the vehicle's current position."""
        lane, sp = v.lane, v.sprite
        if lane.direction > 0:
            x_left_m = v.x
        else:  # moving left: world X decreases; the rear is on the right
            x_left_m = -(v.x + v.spec.length_m)
        left = self.cam.col_of_x(x_left_m, lane.depth)
        pad = (sp.image.shape[1] - v.spec.length_m * lane.px_per_m) / 2.0
        return int(round(left - pad)), int(round(lane.ground_y - sp.ground_y))

    def render(self, frame_index: int) -> tuple[np.ndarray, list[GtObject]]:
        cfg = self.cfg
        W, H = cfg.width, cfg.height
        img = self.background.copy()
        owner = np.zeros((H, W), np.int32)
        placed = []
        for v in sorted(self.vehicles, key=lambda v: -v.lane.depth):  # far first: near ones occlude
            sp = v.sprite
            x0, y0 = self._place(v)
            h, w = sp.mask.shape
            fx1, fy1, fx2, fy2 = max(0, x0), max(0, y0), min(W, x0 + w), min(H, y0 + h)
            if fx1 >= fx2 or fy1 >= fy2:
                continue
            sub = sp.mask[fy1 - y0:fy2 - y0, fx1 - x0:fx2 - x0] > 0
            if not sub.any():
                continue
            img[fy1:fy2, fx1:fx2][sub] = sp.image[fy1 - y0:fy2 - y0, fx1 - x0:fx2 - x0][sub]
            owner[fy1:fy2, fx1:fx2][sub] = v.vid
            placed.append((v, x0, y0, (fx1, fy1, fx2, fy2), sub))
        objects = []
        for v, x0, y0, (fx1, fy1, fx2, fy2), sub in placed:
            ys, xs = np.nonzero(sub)
            box = (float(fx1 + xs.min()), float(fy1 + ys.min()), float(fx1 + xs.max() + 1), float(fy1 + ys.max() + 1))
            total = int(sub.sum())
            visible = int((owner[fy1:fy2, fx1:fx2] == v.vid).sum())  # only its own window can hold its id
            full = int((v.sprite.mask > 0).sum())
            objects.append(GtObject(v.vid, box, visible / max(1, total), total < full))
            if v.first_frame < 0:
                v.first_frame = frame_index
            v.last_frame = frame_index
        img = self._weather_and_light(img, placed)
        return img, objects

    def _weather_and_light(self, img: np.ndarray, placed: list) -> np.ndarray:
        cfg, rng = self.cfg, self.fx_rng
        if cfg.lighting == "day" and not cfg.rain and cfg.noise_sigma <= 0:
            return img
        out = img.astype(np.float32)
        if cfg.lighting != "day":
            gain, tint = (0.6, np.array([0.85, 0.95, 1.1], np.float32)) if cfg.lighting == "dusk" else \
                (0.32, np.array([1.1, 0.95, 0.85], np.float32))
            out *= gain * tint
            glow = np.zeros(img.shape[:2], np.float32)
            tails = []
            for v, x0, y0, _window, _sub in placed:
                if v.parked:  # lights off
                    continue
                hx, hy = v.sprite.head_lamp
                tx, ty = v.sprite.tail_lamp
                r = max(2, int(0.35 * v.lane.px_per_m))
                d = v.lane.direction
                cv2.ellipse(glow, (x0 + hx + d * 3 * r, y0 + hy), (4 * r, max(2, r)), 0, 0, 360, 1.0, -1)
                cv2.circle(glow, (x0 + hx, y0 + hy), r, 1.6, -1)
                tails.append(((x0 + tx, y0 + ty), max(1, r // 2)))
            glow = cv2.GaussianBlur(glow, (0, 0), 3)
            out += glow[..., None] * np.array([170, 210, 235], np.float32)
            for (cx, cy), r in tails:
                cv2.circle(out, (cx, cy), r, (40, 40, 230), -1)
        if cfg.rain:
            H, W = img.shape[:2]
            n = W * H // 1500
            xs = rng.integers(0, W, n)
            ys = rng.integers(0, H, n)
            streak = np.zeros(img.shape[:2], np.float32)
            for x, y in zip(xs, ys):
                cv2.line(streak, (int(x), int(y)), (int(x) - 2, int(y) + 9), 1.0, 1)
            out = out * 0.9 + streak[..., None] * 60.0
        if cfg.noise_sigma > 0:
            out += rng.normal(0, cfg.noise_sigma, out.shape).astype(np.float32)
        return np.clip(out, 0, 255).astype(np.uint8)

    def frames(self) -> Iterator[tuple[int, np.ndarray, list[GtObject]]]:
        """``(frame_index, BGR frame, ground truth)`` for every frame of the clip."""
        dt = 1.0 / self.cfg.fps
        for i in range(self.cfg.frame_count):
            img, objs = self.render(i)
            yield i, img, objs
            self._step(dt)

    def vehicle_table(self) -> dict[int, dict]:
        """Per-vehicle ground truth of every vehicle that appeared in a rendered frame."""
        out = {}
        for v in self.by_id.values():
            if v.first_frame < 0:
                continue
            out[v.vid] = {**v.spec.ground_truth(), "lane": v.lane.index,  # parking row r: lane -1 - r
                          "direction": "right" if v.lane.direction > 0 else "left",  # facing, when parked
                          "first_frame": v.first_frame, "last_frame": v.last_frame}
            if v.parked:  # only then: the tables of clips without a car park stay as they were
                out[v.vid]["parked"] = True
        return out

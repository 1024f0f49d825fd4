"""The one place for every knob of both workers.

Default mode is hard-coded: nothing here depends on an ``.env`` file, and the
constants below are exactly what the spec locks (region, bucket, queues, queue
attributes, snapshot size ...).

One switch turns on environment overrides:

* flip ``ENV_OVERRIDES_ENABLED`` below to ``True``, or
* set ``CVITX_ENV_OVERRIDES=1`` in the process environment (this is what the
  local stack's ``.stack/env`` does).

With overrides on, every field of :class:`Settings` can be set from
``CVITX_<FIELD_NAME_IN_UPPER_CASE>`` (for example ``CVITX_MAIN_MODE=compare``,
``CVITX_S3_ENDPOINT_URL=http://127.0.0.1:5000``).  A value that does not
validate, or a ``CVITX_`` name that is not a setting, stops start-up with a
:class:`ConfigError` naming the key and the allowed values.

This is the only module of the package that reads the environment.
"""
from __future__ import annotations

import json
import os
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal, Mapping, Optional, get_args, get_origin

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

# --- the one switch -------------------------------------------------------
ENV_OVERRIDES_ENABLED = False
ENV_PREFIX = "CVITX_"
ENV_SWITCH = ENV_PREFIX + "ENV_OVERRIDES"

PACKAGE_DIR = Path(__file__).resolve().parent

# Native libraries read these at load time: keep OpenCV's and FFmpeg's console chatter ("moov
# atom not found" ...) out of the workers' JSON logs and the CLI's one-line errors; the
# project reports those failures itself.  A value already set by the user wins.
os.environ.setdefault("OPENCV_LOG_LEVEL", "ERROR")
os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")

TAXONOMY: tuple[str, ...] = (
    "Car", "SUV", "Van", "LightTruck", "Utility", "Motorcycle", "CarouselBus", "E-Jeepney",
)

# A COCO-trained detector's vehicle classes mapped onto the taxonomy; every other
# COCO class is ignored.  A detector whose class names already are taxonomy names
# maps 1:1 (see yolo_worker).
COCO_TO_TAXONOMY: dict[str, str] = {
    "car": "Car",
    "truck": "LightTruck",
    "bus": "CarouselBus",
    "motorcycle": "Motorcycle",
}


class ConfigError(ValueError):
    """A setting (usually an environment override) is invalid; the message says which and why."""


class Settings(BaseModel):
    """Frozen, validated settings shared by both workers, the CLI and the tests."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    # --- AWS (spec §2, §6) -----------------------------------------------
    region: str = "ap-southeast-2"
    bucket: str = "cvitx-uploads-dev-jdfirme"
    user_prefix: str = "demo_user"
    s3_endpoint_url: Optional[str] = None  # None = AWS; set for moto_server / the local stack
    sqs_endpoint_url: Optional[str] = None

    # --- queues (spec §6; DLQ names are DESIGN.md's choice) --------------
    video_queue: str = "cvitx-video-tasks"
    video_dlq: str = "cvitx-video-tasks-dlq"
    snapshot_queue: str = "cvitx-snapshot-tasks"
    snapshot_dlq: str = "cvitx-snapshot-tasks-dlq"
    visibility_timeout_s: int = Field(300, ge=0, le=43200)
    message_retention_s: int = Field(1209600, ge=60, le=1209600)
    receive_wait_s: int = Field(10, ge=0, le=20)
    max_receive_count: int = Field(5, ge=1, le=1000)
    heartbeat_s: float = Field(60.0, gt=0)
    stop_timeout_s: float = Field(30.0, gt=0)  # SIGTERM grace before the message in hand is released
    transient_backoff_base_s: int = Field(5, ge=0, le=900)
    transient_backoff_max_s: int = Field(120, ge=0, le=43200)
    # A handler that makes no real progress (frames detected, a snapshot emitted, a batch step
    # done; never the heartbeat) for this long is stalled: its messages come back after a
    # backoff and the process exits non-zero for systemd to restart.  Well under the units'
    # WatchdogSec (180 s), above the slowest honest step (a YOLOv8m batch on a slow CPU).
    stall_timeout_s: float = Field(90.0, gt=0)
    # A dependency (database, S3, SQS) that cannot be reached pauses receiving; the messages in
    # hand are released and come back after outage_release_s.  A message is dead-lettered for
    # an outage only once the outage has lasted outage_budget_s (a failover takes minutes).
    outage_budget_s: float = Field(900.0, ge=0)
    outage_release_s: int = Field(10, ge=0, le=43200)
    outage_probe_max_s: float = Field(30.0, gt=0)  # cap of the probe backoff (1, 2, 4 ... s)
    # At start-up an unreachable dependency is waited for this long (systemd's TimeoutStartSec
    # is 180 s); a misconfiguration (missing table, queue or bucket) fails at once.
    startup_wait_s: float = Field(120.0, ge=0)

    # --- database ----------------------------------------------------------
    db_url: str = "postgresql://cvitx:cvitx@localhost:5432/cvitx"
    db_connect_timeout_s: int = Field(5, ge=1)

    # --- snapshots (spec §5) -------------------------------------------------
    snapshot_size: int = Field(640, ge=32)
    jpeg_quality: int = Field(90, ge=1, le=100)
    letterbox_pad_value: int = Field(114, ge=0, le=255)  # YOLO's grey, so padding reads as "nothing"
    crop_margin: float = Field(0.10, ge=0.0, le=1.0)  # fraction of the box added on each side
    snapshot_max_bytes: int = Field(2_000_000, ge=1024)

    # --- yolo_worker -----------------------------------------------------
    default_frame_stride: int = Field(3, ge=1)
    detector_path: str = "yolo_worker/bundle/demo/detector.pt"
    detector_class_map: Optional[dict[str, str]] = None  # None = taxonomy names 1:1, else COCO map
    detector_conf: float = Field(0.25, ge=0.0, le=1.0)  # a detection at least this sure can start a track
    # Detections from track_low_conf up to detector_conf only extend tracks already running
    # (ByteTrack's second association): a vehicle half hidden by a bus keeps its track instead of
    # being lost and counted twice.  Set it >= detector_conf to turn the second association off.
    track_low_conf: float = Field(0.1, ge=0.0, le=1.0)
    detector_iou: float = Field(0.5, ge=0.0, le=1.0)
    detector_imgsz: Optional[int] = Field(None, ge=32)  # None = the size the weights were trained at (else 640)
    # auto = .pt weights exported to ONNX (cached per weights and input size) and run by OpenVINO
    # on CPU (ONNX Runtime without the openvino package), PyTorch on CUDA; .onnx/.engine/OpenVINO
    # paths always load as they are.
    detector_runtime: Literal["auto", "torch", "onnx", "openvino"] = "auto"
    detector_cache_dir: Optional[str] = None  # None = $CACHE_DIRECTORY (systemd) or ~/.cache, + /cvitx-video-analysis/detector
    # frames per detector forward pass (GPU: 8-16 with fp16; CPU/ONNX Runtime gain nothing: 1)
    detector_batch: int = Field(1, ge=1, le=64)
    # The exported runtime's threads (NMS runs on 1).  None = measured once per host, model and input size:
    # every core this process may run on (at most 8) only where the detector alone ran >= 1.25x faster on them
    # than on 1 (detector_runtime.choose_threads; recorded beside the export), else 1.  A float32 detector on
    # an AVX2-only 2-core EPYC ran 1.5x faster on 2 threads; a small one in bfloat16 gained too little on 2
    # cores (Xeon AMX 1.17x alone, 0.97x end to end; EPYC AVX-512 BF16 0.87x alone).  1 also gives the most
    # cameras per core with one worker per core (README, Performance).
    detector_threads: Optional[int] = Field(None, ge=1, le=256)
    # FFmpeg's decoding threads.  None = 1 where the detector runs on the CPU: there the cores are the limit, and
    # FFmpeg's frame threads cost 1.5-2x the CPU a frame for the same wall time (640x360 0.55 vs 0.8-1.2 ms a
    # processed frame at stride 3 on a 2-core Xeon; end to end 7.5 -> 7.25 ms CPU a frame); beside a GPU
    # (device cuda[:N]) OpenCV's choice.  0 = OpenCV's choice (the usable cores, at most 16); n = n threads.
    decode_threads: Optional[int] = Field(None, ge=0, le=64)
    # auto = OpenVINO's own choice for the CPU (bfloat16 with AMX / AVX-512 BF16, else float32), or the
    # NNCF INT8 export where a timing at export showed it clearly faster on this CPU (>= 1.30x, the median
    # of 5 rounds; decided once per host and recorded) and its detections agree with float32's;
    # f32/f16/bf16 force OpenVINO's inference precision; int8 = the INT8 export always.
    detector_precision: Literal["auto", "f32", "f16", "bf16", "int8"] = "auto"
    # A folder of a team's own frames (JPEG/PNG) to calibrate the INT8 export on; None = generated scenes.
    detector_calibration_dir: Optional[str] = None
    # Motion gating: the detector runs only on frames where the picture changed since the last frame it
    # ran on; elsewhere the tracker gets that frame's detections again (parked and queued vehicles keep
    # their tracks).  The test: grey image motion_width px wide, pixels differing by more than
    # motion_pixel_threshold grey levels, more than motion_min_area of the image.
    motion_gating: bool = True
    motion_width: int = Field(320, ge=16, le=4096)
    motion_pixel_threshold: int = Field(15, ge=1, le=255)
    motion_min_area: float = Field(0.0005, ge=0.0, le=1.0)
    motion_max_carry: int = Field(50, ge=0)  # processed frames in a row carried over before a detection anyway; 0 = no limit
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    tracker: Literal["botsort", "bytetrack"] = "botsort"  # botsort uses ReID weights when present
    tracker_reid_path: str = "yolo_worker/bundle/deepsort.engine"
    track_max_age: int = Field(30, ge=1)  # processed frames a lost track is kept before it ends
    min_track_hits: int = Field(3, ge=1)  # shorter tracks are noise and emit nothing
    # A track that stood still (yolo_worker/selection.py: its centre within STATIC_SHIFT of its box
    # size for at least STATIC_MIN_S) is a parked vehicle or a static false positive (painted
    # arrows, a sign, one spot of a dense far queue): it emits only if its most confident detection
    # reached this.  Moving tracks are not affected.  0 turns the test off.
    static_min_conf: float = Field(0.4, ge=0.0, le=1.0)
    progress_interval_s: float = Field(5.0, gt=0)
    # Long videos (yolo_worker/segments.py): a video longer than segment_s is cut into segments of
    # that length that any workers process in parallel; each reads segment_warmup_s before its
    # start (its tracker then knows the vehicles already in view) and follows the vehicles it
    # owns up to segment_tail_s past its end.  0 = never segmented.
    segment_s: float = Field(600.0, ge=0)
    segment_warmup_s: float = Field(10.0, ge=0)
    segment_tail_s: float = Field(60.0, ge=0)
    # SQS caps a message's visibility at 12 h from its receive (the heartbeat cannot extend it past
    # that): work projected to run past 0.9 of this fails with the cap and the fix named instead of
    # starting again on another worker.  Lower only to test the rule.
    visibility_cap_s: float = Field(43200.0, gt=0)
    max_video_bytes: int = Field(4 * 1024**3, ge=1)
    max_video_duration_s: float = Field(4 * 3600.0, gt=0)
    max_video_pixels: int = Field(3840 * 2160, ge=1)

    # --- main_worker -----------------------------------------------------
    main_model_path: str = "main_worker/bundle/demo/main.pt"
    cmt_model_path: str = "main_worker/bundle/demo/cmt.pt"
    main_mode: Literal["single", "compare"] = "single"
    color_enabled: bool = True
    plate_enabled: bool = True
    # auto = RapidOCR's ONNX models compiled by OpenVINO when installed (bf16 where the CPU has it), else ONNX Runtime
    plate_runtime: Literal["auto", "openvino", "onnxruntime"] = "auto"
    main_batch_size: int = Field(10, ge=1, le=10)  # SQS returns at most 10 per receive
    topk: int = Field(3, ge=1, le=10)
    # auto = a CVITX bundle (.pt) exported once to ONNX and run by OpenVINO on CPU (cached beside the
    # detector's exports, keyed by the bundle's hash), PyTorch on CUDA or without the openvino package;
    # torch = always PyTorch.  Other formats (ONNX, IR, .pt2, TorchScript) run as they are.
    main_runtime: Literal["auto", "torch", "openvino"] = "auto"
    # Where the main model runs in OpenVINO (a CVITX bundle's export, an ONNX model or OpenVINO IR): auto =
    # OpenVINO's own choice (bfloat16 with AMX / AVX-512 BF16: 1.2x faster a snapshot on a Xeon, top-1 flipped
    # on 1 snapshot in 44 against float32), f32 = PyTorch's answers to 1e-6; f16/bf16 where the CPU has them.
    main_precision: Literal["auto", "f32", "f16", "bf16"] = "auto"

    # --- logging -------------------------------------------------------------
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

    @field_validator("bucket")
    @classmethod
    def _bucket_name(cls, v: str) -> str:
        import re

        if not re.fullmatch(r"[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9]", v):
            raise ValueError("must be a valid S3 bucket name (3-63 chars of a-z, 0-9, '.', '-')")
        return v

    @field_validator("user_prefix")
    @classmethod
    def _prefix(cls, v: str) -> str:
        if not v or "/" in v or v in (".", ".."):
            raise ValueError("must be one non-empty key segment without '/'")
        return v

    @model_validator(mode="after")
    def _cross_checks(self) -> "Settings":
        if self.heartbeat_s >= self.visibility_timeout_s > 0:
            raise ValueError(
                f"heartbeat_s ({self.heartbeat_s}) must be shorter than visibility_timeout_s "
                f"({self.visibility_timeout_s}) or messages reappear while being worked on"
            )
        if self.segment_s > 0 and self.segment_warmup_s >= self.segment_s:
            raise ValueError(f"segment_warmup_s ({self.segment_warmup_s}) must be shorter than segment_s "
                             f"({self.segment_s}): a segment's warm-up lies inside the segment before it")
        if self.detector_class_map is not None:
            bad = sorted(set(self.detector_class_map.values()) - set(TAXONOMY))
            if bad:
                raise ValueError(f"detector_class_map targets {bad} are not taxonomy names {list(TAXONOMY)}")
        return self

    # --- helpers -----------------------------------------------------------
    def resolve_path(self, path: str) -> Path:
        """A bundle path: absolute as given, relative ones against the package directory."""
        p = Path(path).expanduser()
        return p if p.is_absolute() else PACKAGE_DIR / p

    def detector_cache_path(self, environ: Optional[Mapping[str, str]] = None) -> Path:
        """Where exported detectors are cached: ``detector_cache_dir`` when set, else
        ``cvitx-video-analysis/detector`` under systemd's ``$CACHE_DIRECTORY`` (the units'
        CacheDirectory=, writable under ProtectSystem=strict), ``$XDG_CACHE_HOME`` or ``~/.cache``."""
        if self.detector_cache_dir:
            return self.resolve_path(self.detector_cache_dir)
        environ = os.environ if environ is None else environ
        base = (environ.get("CACHE_DIRECTORY", "").split(":")[0] or environ.get("XDG_CACHE_HOME")
                or str(Path(environ.get("HOME") or Path.home()) / ".cache"))
        return Path(base).expanduser() / "cvitx-video-analysis" / "detector"

    def replace(self, **changes: Any) -> "Settings":
        """A validated copy with some fields changed (tests, CLI flags)."""
        return Settings.model_validate({**self.model_dump(), **changes})


def _field_env_names() -> dict[str, str]:
    return {ENV_PREFIX + name.upper(): name for name in Settings.model_fields}


def _describe_allowed(field: str) -> str:
    """``one of 'single', 'compare'`` or ``int (ge 1, le 10)``: what a value of ``field`` may be."""
    info = Settings.model_fields[field]
    ann = info.annotation
    if get_origin(ann) is Literal:
        return "one of " + ", ".join(repr(a) for a in get_args(ann))
    text = getattr(ann, "__name__", None) or str(ann).replace("typing.", "")
    bounds = [repr(m) for m in info.metadata]  # e.g. Ge(ge=1), Le(le=10)
    return text + (f" ({', '.join(bounds)})" if bounds else "")


def overrides_from_env(environ: Mapping[str, str]) -> dict[str, Any]:
    """Raw ``CVITX_*`` overrides as field -> value; unknown names are a ConfigError."""
    names = _field_env_names()
    out: dict[str, Any] = {}
    for key, raw in environ.items():
        if not key.startswith(ENV_PREFIX) or key == ENV_SWITCH:
            continue
        field = names.get(key)
        if field is None:
            raise ConfigError(
                f"{key} is not a setting. Known keys: {', '.join(sorted(names))}. "
                "Fix the name or remove it from the environment."
            )
        value: Any = raw
        if field == "detector_class_map" and raw.strip():
            try:
                value = json.loads(raw)
            except json.JSONDecodeError as exc:
                raise ConfigError(f"{key} must be a JSON object like {{\"car\": \"Car\"}}: {exc}") from None
        elif raw.strip().lower() in ("", "none", "null") and Settings.model_fields[field].default is None:
            value = None
        out[field] = value
    return out


def build_settings(environ: Optional[Mapping[str, str]] = None, **changes: Any) -> Settings:
    """Settings from the hard-coded defaults, env overrides when switched on, then ``changes``."""
    environ = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    if env_overrides_enabled(environ):
        values.update(overrides_from_env(environ))
    values.update(changes)
    try:
        return Settings.model_validate(values)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            field = str(err["loc"][0]) if err["loc"] else ""
            if field not in Settings.model_fields:  # a cross-field rule
                problems.append(err["msg"].removeprefix("Value error, "))
                continue
            where = (ENV_PREFIX + field.upper()) if field in values and field not in changes else field
            shown = repr(values.get(field)) if field in values else "(default)"
            problems.append(f"{where}={shown}: {err['msg']}; allowed: {_describe_allowed(field)}")
        raise ConfigError("invalid configuration: " + " | ".join(problems)) from None


ONEDNN_ISA_VAR = "ONEDNN_MAX_CPU_ISA"  # oneDNN's own kernel cap (not a CVITX setting); OpenVINO's CPU plugin honours it


def onednn_isa_cap(environ: Optional[Mapping[str, str]] = None) -> Optional[str]:
    """oneDNN's kernel cap for this process (``ONEDNN_MAX_CPU_ISA``, upper case), or None.  Read
    here because OpenVINO's CPU plugin obeys it for its kernels but not for the capabilities it
    reports: under ``AVX2`` it still offers BF16, picks it by default and then finds no kernels
    (worker_utils/runtimes.py).  It is how the tests and ``bench --isa avx2`` stand in for an
    AVX2-only CPU."""
    environ = os.environ if environ is None else environ
    return (environ.get(ONEDNN_ISA_VAR) or "").strip().upper() or None


def env_overrides_enabled(environ: Mapping[str, str]) -> bool:
    """Whether the one switch is on: ``ENV_OVERRIDES_ENABLED`` or ``CVITX_ENV_OVERRIDES=1`` (true/yes/on)."""
    return ENV_OVERRIDES_ENABLED or environ.get(ENV_SWITCH, "").strip().lower() in ("1", "true", "yes", "on")


def ignored_env_overrides(environ: Optional[Mapping[str, str]] = None) -> list[str]:
    """The ``CVITX_*`` names set in the environment but ignored because the switch is off (sorted;
    empty when the switch is on).  Say so at start-up: a systemd ``EnvironmentFile`` without
    ``CVITX_ENV_OVERRIDES=1`` otherwise runs silently on the defaults (default database, real AWS)."""
    environ = os.environ if environ is None else environ
    if env_overrides_enabled(environ):
        return []
    return sorted(k for k in environ if k.startswith(ENV_PREFIX) and k != ENV_SWITCH)


def ignored_env_overrides_message(names: list[str]) -> str:
    """The one warning line for :func:`ignored_env_overrides`'s names."""
    return (f"environment overrides are off, so these are ignored: {', '.join(names)}; set {ENV_SWITCH}=1 "
            "(or ENV_OVERRIDES_ENABLED = True in worker_config.py) to apply them, or unset them")


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, built once."""
    return build_settings()


def env_file_lines(settings_changes: Mapping[str, Any]) -> list[str]:
    """Shell ``export`` lines that make :func:`build_settings` produce these changes."""
    lines = [f"export {ENV_SWITCH}=1"]
    for field, value in settings_changes.items():
        if field not in Settings.model_fields:
            raise ConfigError(f"{field} is not a setting")
        text = json.dumps(value) if isinstance(value, dict) else str(value)
        lines.append(f"export {ENV_PREFIX}{field.upper()}='{text}'")
    return lines


def env_overrides(settings: Settings) -> dict[str, str]:
    """The ``CVITX_*`` environment that makes :func:`build_settings` in a child process rebuild
    ``settings`` (only fields that differ from the defaults, plus the switch)."""
    defaults = Settings()
    env = {ENV_SWITCH: "1"}
    for field in Settings.model_fields:
        value = getattr(settings, field)
        if value != getattr(defaults, field):
            env[ENV_PREFIX + field.upper()] = (json.dumps(value) if isinstance(value, dict)
                                               else "none" if value is None else str(value))
    return env


def systemd_environment(environ: Optional[Mapping[str, str]] = None) -> tuple[Optional[str], Optional[float]]:
    """(NOTIFY_SOCKET, watchdog interval in seconds) as systemd passes them, or Nones."""
    environ = os.environ if environ is None else environ
    usec = environ.get("WATCHDOG_USEC")
    try:
        watchdog_s = int(usec) / 1e6 if usec else None
    except ValueError:
        watchdog_s = None
    return environ.get("NOTIFY_SOCKET") or None, watchdog_s

"""Honest demo weights: which weights each stage of a job uses, and the notice ``analyze`` gives
when the bundled demo weights meet a video the scene generator did not make.

The demo detector and main model were trained on generated traffic scenes only; on real footage
they mislabel vehicles and snapshot road markings.  ``analyze`` says so once, in the terminal and
at the top of the report, and the report names the weights of every stage."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

from ..worker_config import Settings

NOTICE = ("{stages}: these weights were trained on generated traffic scenes only, and on real footage they mislabel "
          "vehicles and snapshot things that are not vehicles; real footage needs the team's own weights "
          "(--detector, --main-model; README, 'Bring your own models')")
STAGES = (("detector", "detector_path"), ("main model", "main_model_path"), ("cmt model", "cmt_model_path"))


def stage_weights(settings: Settings) -> dict[str, str]:
    """``{stage: weights path}`` of the stages a job with these settings runs."""
    stages = [(name, field) for name, field in STAGES if name != "cmt model" or settings.main_mode == "compare"]
    return {name: str(settings.resolve_path(getattr(settings, field))) for name, field in stages}


def demo_stages(settings: Settings) -> list[str]:
    """The stages that run the bundled demo weights (the settings' defaults)."""
    default = Settings()
    return [name for name, field in STAGES if name in stage_weights(settings)
            and settings.resolve_path(getattr(settings, field)) == default.resolve_path(getattr(default, field))]


def is_generated_clip(video: Path, frame_count: int) -> bool:
    """True when ``video`` was written by the scene generator: its ``<stem>.json`` beside it holds
    the scene config and the same number of frames (synth/clip.py writes both)."""
    meta_path = video.with_suffix(".json")
    try:
        meta = json.loads(meta_path.read_text())
    except (OSError, ValueError):
        return False
    return isinstance(meta, dict) and "config" in meta and meta.get("frames") == frame_count


# The real default for real footage (issue 24): YOLOX-Nano trained on COCO, Apache-2.0, with its
# card, licence and provenance beside it.
COCO_DETECTOR = Path(__file__).resolve().parents[1] / "yolo_worker" / "bundle" / "coco" / "yolox_nano.onnx"


def detector_for_video(settings: Settings, video: Path, frame_count: int) -> Settings:
    """``settings`` with the shipped COCO detector (:data:`COCO_DETECTOR`) where they name the demo
    detector and ``video`` is not a generated clip (the demo weights know only generated scenes);
    else ``settings`` as they are: a generated clip keeps the demo detector, a team's own stays."""
    if "detector" in demo_stages(settings) and not is_generated_clip(video, frame_count) and COCO_DETECTOR.is_file():
        return settings.replace(detector_path=str(COCO_DETECTOR))
    return settings


def demo_classifier_on_real_footage(settings: Settings, video: Path, frame_count: int) -> bool:
    """True when the demo main model would classify a video the generator did not make: its
    answers are then not results, and the summary and report mark them as demo weights."""
    return "main model" in demo_stages(settings) and not is_generated_clip(video, frame_count)


def demo_weights_notice(settings: Settings, video: Path, frame_count: int) -> Optional[str]:
    """The notice for this job, or None (own weights everywhere, or a generated clip)."""
    stages = demo_stages(settings)
    if not stages or is_generated_clip(video, frame_count):
        return None
    return NOTICE.format(stages="the demo " + " and ".join(stages))

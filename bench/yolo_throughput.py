"""Benchmarks a and b: yolo_worker throughput end to end, against a detector-only loop and a
naive ultralytics ``model.track`` loop, on the same clip, weights and stride, in one run.

- **end to end**: the real ``YoloWorker.handle`` on a PROCESS_VIDEO taken from SQS (moto):
  S3 download, decode (own thread), detect, track, best-frame selection, letterbox + JPEG,
  S3 put, ``image_analyses`` insert, SNAPSHOT_READY send.  Run twice: with motion gating as
  configured (on by default: the detector skips frames where nothing moved) and with
  ``motion_gating=False`` (the detector on every processed frame).  Each run reports the
  frames detected and carried over, and its snapshot coverage against the clip's ground truth
  (``eval.scoring.score_analyses`` on the rows the run wrote: countable vehicles with exactly
  one snapshot); gating must not change it.
- **detector only**: the same ``Detector`` object (same runtime) over the same frames,
  decoded beforehand and held in memory: the ceiling the pipeline can approach *without*
  gating (with it, end to end can pass it: it detects fewer frames).
- **naive**: ``YOLO(weights).track(source, stream=True, vid_stride=stride)`` (PyTorch, the
  tracker ultralytics picks by default) feeding the same ``TrackBook`` selection and JPEG
  encoding, with no S3/SQS/SQL at all, which flatters it.

Clips: continuous traffic (``scene="road"``: figures a and b) and the static-camera case
(``scene="carpark"``: parked vehicles and occasional movers, figure
``static_end_to_end_vs_naive``).  :func:`bench_threads` runs the detector-only loop and the
ungated end-to-end run at ``detector_threads`` 1 and at every usable core side
by side: how much the decoder, tracker and detector overlap on this machine.

Each variant runs ``rounds`` times, alternating; the fastest round of each is reported
(the usual choice on a shared machine: noise only ever adds time).
"""
from __future__ import annotations

import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator

from ..eval.scoring import score_analyses
from ..synth.clip import load_ground_truth
from ..worker_utils.imaging import clamp_box, crop_with_margin, encode_jpeg, letterbox, sharpness
from ..worker_utils.measured import on_own_thread
from ..worker_utils.poller import HandlerContext
from ..worker_utils.repository import list_analyses
from ..worker_utils.sqs_queue import SqsQueues
from ..worker_utils.submit import submit_video
from ..yolo_worker.detector import Detector
from ..yolo_worker import detector_runtime as rt
from ..yolo_worker.detector_runtime import usable_cores
from ..yolo_worker.selection import TrackBook, make_candidate
from ..yolo_worker.video import FrameReader, probe
from .common import CARPARK_SEED, WORKSPACE, clip, local_stack, log, ratio

COVERAGE_KEYS = ("vehicles", "snapshots", "exactly_one", "more_than_one", "missed", "unmatched_snapshots",
                 "recall_exactly_one")


def detector_precision(detector: Any) -> str | None:
    """What the detector actually computed in: its loaded exported models' ``precision``
    (OpenVINO: ``bf16`` on AMX / AVX-512 BF16 CPUs unless told otherwise, ``f32`` elsewhere,
    ``int8`` for the quantised export; ONNX Runtime ``f32``), ``f16``/``f32`` for PyTorch on
    GPU/CPU; None before an exported model was loaded.  Not ``detector.precision``: that is the
    requested setting (``auto`` ...), which :func:`detector_record` reports beside it."""
    models = list(getattr(detector, "_exported", {}).values())
    if models:
        return "/".join(sorted({str(getattr(m, "precision", "f32")) for m in models}))
    if getattr(detector, "runtime", "torch") in ("torch", "native"):
        return "f16" if getattr(detector, "half", False) else "f32"
    return None


def detector_record(detector: Any) -> dict[str, Any]:
    """The detector's weights, runtime, input size, threads and precision (used, and requested
    by ``detector_precision`` where the detector has that setting), for a result group."""
    return {"weights": str(detector.path.name), "runtime": getattr(detector, "runtime", "torch"),
            "imgsz": detector.imgsz, "threads": getattr(detector, "threads", None),
            "precision": detector_precision(detector),
            "precision_requested": getattr(detector, "precision", None)}


@contextmanager
def torch_threads(n: int | None) -> Iterator[None]:
    """torch's intra-op threads set to ``n`` for the block (None: left as it is).  Loading an
    exported detector sets torch's (process-wide) thread count to 1 for its NMS, as the worker
    runs it; the naive loop and a PyTorch detector must not inherit that."""
    import torch

    before = torch.get_num_threads()
    if n:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def torch_runs(fn: Callable[[], dict[str, Any]], detector: Detector | None) -> Callable[[], dict[str, Any]]:
    """``fn`` with torch's threads as the worker would have them: a PyTorch detector's
    ``threads``; an exported one's NMS on 1 (what loading it set); None (the naive loop, plain
    ultralytics) every usable core."""
    n = usable_cores() if detector is None else (detector.threads if detector.runtime == "torch" else 1)

    def run() -> dict[str, Any]:
        with torch_threads(n):
            return fn()
    return run


def run_end_to_end(settings, worker, path: Path, stride: int, gt=None) -> dict[str, Any]:
    """One PROCESS_VIDEO through the real handler; seconds from receive to done, frames
    detected/carried over, and (with ``gt``, the clip's ground truth) snapshot coverage."""
    video_id = submit_video(settings, path, workspace_id=WORKSPACE, workspace_code="CTX1005", camera_code="CAM1",
                            frame_stride=stride)
    msg = SqsQueues(settings).receive(settings.video_queue, 1, wait_s=5)[0]
    ctx = HandlerContext(settings, threading.Event())
    t0, c0 = time.perf_counter(), time.process_time()
    worker.handle(msg, ctx)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    SqsQueues(settings).delete(settings.video_queue, msg.receipt_handle)
    st = worker.last_stats
    out = {"wall_s": wall, "cpu_s": cpu, "frames": st.frames_processed, "snapshots": st.tracks_emitted,
           # PipelineStats gained these with motion gating; None from a pipeline without it
           "frames_detected": getattr(st, "frames_detected", None),
           "frames_carried": getattr(st, "frames_carried", None)}
    if gt is not None:  # the rows the run wrote (bbox, detected_in_ms) against the ground truth
        scored = score_analyses(list_analyses(worker.db, video_id), gt, gt.config["fps"], stride)
        out["coverage"] = {k: scored["coverage"][k] for k in COVERAGE_KEYS}
    return out


def run_detector_only(detector: Detector, frames: list) -> dict[str, Any]:
    """``detector.detect`` over ``frames`` (held in memory), on a thread of its own as the
    pipeline runs it.  On the main thread the same loop ran at half the rate here (2 cores,
    OpenVINO on 2 threads: 117-147 vs 216-321 fps at 320 px): torch's NMS there runs on its
    OpenMP pool (set to the detector's thread count), whose spinning workers take the cores
    from OpenVINO's; with torch at 1 thread both ran alike (240-289 fps)."""
    def loop() -> dict[str, Any]:
        t0, c0 = time.perf_counter(), time.process_time()
        for img in frames:
            detector.detect(img)
        return {"wall_s": time.perf_counter() - t0, "cpu_s": time.process_time() - c0, "frames": len(frames)}

    return on_own_thread(loop)


def run_naive(settings, weights: Path, imgsz: int, path: Path, stride: int) -> dict[str, Any]:
    """The loop a first attempt would write with ultralytics alone."""
    from ultralytics import YOLO

    info = probe(path)
    model = YOLO(str(weights), task="detect")
    model.predict(str(path), imgsz=imgsz, device="cpu", verbose=False, stream=False, vid_stride=10**6)  # warm-up
    book = TrackBook(max_age=settings.track_max_age, min_hits=settings.min_track_hits,
                     static_min_conf=settings.static_min_conf)
    snapshots = frames = 0
    t0 = time.perf_counter()
    stream = model.track(source=str(path), stream=True, vid_stride=stride, imgsz=imgsz, conf=settings.detector_conf,
                         iou=settings.detector_iou, device="cpu", persist=True, verbose=False)
    for step, r in enumerate(stream, start=1):
        frames = step
        img = r.orig_img
        h, w = img.shape[:2]
        index = (step - 1) * stride
        if r.boxes is not None and r.boxes.id is not None:
            for box, conf, cls, tid in zip(r.boxes.xyxy.numpy(), r.boxes.conf.numpy(), r.boxes.cls.numpy(),
                                           r.boxes.id.numpy()):
                x1, y1, x2, y2 = clamp_box(box, w, h)
                cand = make_candidate(index, round(index * 1000 / info.fps), box, float(conf), int(cls),
                                      sharpness(img[y1:y2, x1:x2]), w, h)
                book.observe(step, cand, int(tid), lambda b, img=img: crop_with_margin(img, b, settings.crop_margin))
        for ft in book.expire(step):
            encode_jpeg(letterbox(ft.crop, settings.snapshot_size, settings.letterbox_pad_value)[0], settings.jpeg_quality)
            snapshots += 1
    for ft in book.flush():
        encode_jpeg(letterbox(ft.crop, settings.snapshot_size, settings.letterbox_pad_value)[0], settings.jpeg_quality)
        snapshots += 1
    return {"wall_s": time.perf_counter() - t0, "frames": frames, "snapshots": snapshots}


def fastest_of(variants: list[tuple[str, Callable[[], dict[str, Any]]]], rounds: int, stride: int,
               clip_fps: float) -> dict[str, dict[str, Any]]:
    """Run each ``(name, fn)`` ``rounds`` times, alternating; the fastest round of each, with
    fps, ms a frame and times realtime (``frames * stride / clip_fps / wall``) added."""
    best: dict[str, dict] = {}
    for r in range(rounds):
        for name, fn in variants:
            out = fn()
            out["fps"] = out["frames"] / out["wall_s"]
            carried = "" if out.get("frames_carried") is None else f" ({out['frames_carried']} carried over)"
            log(f"round {r + 1}: {name}: {out['frames']} frames{carried} in {out['wall_s']:.1f} s = {out['fps']:.1f} fps")
            if name not in best or out["wall_s"] < best[name]["wall_s"]:
                best[name] = out
    for v in best.values():
        if "cpu_s" in v:  # this process's CPU time, every thread: cores_busy 2.0 = both of 2 cores
            v["cpu_ms_per_frame"] = round(1000 * v["cpu_s"] / v["frames"], 2)
            v["cores_busy"] = round(v.pop("cpu_s") / v["wall_s"], 2)
        v["ms_per_frame"] = round(1000 * v["wall_s"] / v["frames"], 2)
        v["x_realtime"] = round(v["frames"] * stride / clip_fps / v["wall_s"], 2)
        v["wall_s"], v["fps"] = round(v["wall_s"], 2), round(v["fps"], 2)
    return best


def coverage_change(gated: dict[str, Any], ungated: dict[str, Any]) -> float | None:
    """recall_exactly_one with gating minus without (0.0 = unchanged; the target is >= 0)."""
    a, b = gated.get("coverage"), ungated.get("coverage")
    return None if a is None or b is None else round(a["recall_exactly_one"] - b["recall_exactly_one"], 4)


def bench_yolo(duration_s: float = 30.0, stride: int = 3, rounds: int = 2, naive: bool = True,
               runtime: str | None = None, imgsz: int | None = None, scene: str = "road", weights: str | None = None,
               video: str | None = None, threads: int | None = None, **clip_kw: Any) -> dict[str, Any]:
    """a and b on a ``scene`` clip (``road``: continuous traffic; ``carpark``: the static-camera
    case, seed :data:`CARPARK_SEED` unless ``clip_kw`` names one), or on ``video`` (a file of
    your own, real footage: no ground truth, so no coverage).  ``imgsz`` overrides the
    detector's input size (None: the size the weights were trained at); ``weights`` the detector
    file (None: the configured one, the demo detector), e.g. a team's ONNX export; ``threads`` the
    detector's (None: as measured)."""
    if scene == "carpark":
        clip_kw.setdefault("seed", CARPARK_SEED)
    path = Path(video) if video else clip(duration_s, scene=scene, **clip_kw)
    info, gt = probe(path), (None if video else load_ground_truth(path))
    changes: dict[str, Any] = {"device": "cpu", "plate_enabled": False, "detector_imgsz": imgsz}
    if weights:
        changes["detector_path"] = str(Path(weights).resolve())
    if runtime:
        changes["detector_runtime"] = runtime
    if threads:
        changes["detector_threads"] = threads
    with local_stack(**changes) as (s, _):
        from ..yolo_worker.worker import YoloWorker

        detector = Detector(s)
        frames = [f.image for f in FrameReader(path, stride)]
        detector.detect(frames[0])  # load / export / warm up outside the timings
        worker = YoloWorker(s, detector=detector)
        s_off = s.model_copy(update={"motion_gating": False})
        worker_off = YoloWorker(s_off, detector=detector)
        for w in (worker, worker_off):  # warm-up: first-video costs (clients, tracker imports)
            run_end_to_end(w.settings, w, path, stride)
        variants = [("end_to_end", lambda: run_end_to_end(s, worker, path, stride, gt)),
                    ("end_to_end_gating_off", lambda: run_end_to_end(s_off, worker_off, path, stride, gt)),
                    ("detector_only", lambda: run_detector_only(detector, frames))]
        if naive:
            variants.append(("naive_track_loop", lambda: run_naive(s, Path(s.resolve_path(s.detector_path)),
                                                                    detector.imgsz, path, stride)))
            # the naive loop is plain PyTorch: every usable core, as torch starts (not the 1 thread
            # an exported detector's NMS set); a PyTorch detector likewise gets its threads
        variants = [(name, torch_runs(fn, detector if name != "naive_track_loop" else None))
                    for name, fn in variants]
        best = fastest_of(variants, rounds, stride, info.fps)
        e2e, off, det = best["end_to_end"], best["end_to_end_gating_off"], best["detector_only"]
        result: dict[str, Any] = {
            "scene": "video" if video else scene,
            "clip": {"path": path.name, "width": info.width, "height": info.height, "fps": round(info.fps, 3),
                     "frames": info.frame_count, "frame_stride": stride,
                     "vehicles": None if gt is None else len(gt.vehicles),
                     "parked": None if gt is None else sum(1 for v in gt.vehicles.values() if v.get("parked"))},
            "detector": detector_record(detector),
            "motion_gating": bool(getattr(s, "motion_gating", False)),
            **best,
            "coverage_gated_minus_ungated": coverage_change(e2e, off),
        }
        if scene == "carpark":  # the static-camera figure: gated end to end against the naive loop
            if naive:
                result["static_end_to_end_vs_naive"] = ratio(e2e["fps"], best["naive_track_loop"]["fps"])
            result["static_end_to_end_vs_detector_only"] = ratio(e2e["fps"], det["fps"])
            result["static_ungated_end_to_end_vs_naive"] = (ratio(off["fps"], best["naive_track_loop"]["fps"])
                                                           if naive else None)
            return result
        # a: the pipeline against its own detector, every frame detected (gating off); with
        # gating on it may pass 1.0 (fewer frames detected), reported beside it.
        result["a_end_to_end_vs_detector_only"] = ratio(off["fps"], det["fps"])
        result["a_gated_end_to_end_vs_detector_only"] = ratio(e2e["fps"], det["fps"])
        if naive:
            result["b_end_to_end_vs_naive"] = ratio(e2e["fps"], best["naive_track_loop"]["fps"])
            result["b_ungated_end_to_end_vs_naive"] = ratio(off["fps"], best["naive_track_loop"]["fps"])
        return result


def bench_threads(duration_s: float = 30.0, stride: int = 3, rounds: int = 2, runtime: str | None = None,
                  imgsz: int | None = None, **clip_kw: Any) -> dict[str, Any]:
    """The detector-only loop and the ungated end-to-end run at ``detector_threads`` 1 and at
    the default (every usable core, at most 8), side by side on the traffic clip.  The end to
    end run decodes, tracks and writes beside the detector: ``overlap`` (end to end ÷ detector
    only, at each thread count) says how much of that the machine hides under detection."""
    path = clip(duration_s, **clip_kw)
    info = probe(path)
    changes: dict[str, Any] = {"device": "cpu", "plate_enabled": False, "detector_imgsz": imgsz,
                               "motion_gating": False}
    if runtime:
        changes["detector_runtime"] = runtime
    if threads:
        changes["detector_threads"] = threads
    with local_stack(**changes) as (s, _):
        from ..yolo_worker.worker import YoloWorker

        frames = [f.image for f in FrameReader(path, stride)]
        # Every usable core against one, each set explicitly: the default (detector_threads unset) is
        # whichever of the two the detector measured on this host, reported beside them.
        measured_default = Detector(s)
        measured_default.prepare(info.width, info.height)
        s_one = s.model_copy(update={"detector_threads": 1})
        s_all = s.model_copy(update={"detector_threads": rt.default_threads()})
        runs: dict[str, tuple[Detector, Any]] = {}
        for label, st in (("default", s_all), ("1", s_one)):
            det = Detector(st)
            det.detect(frames[0])  # load / export outside the timings
            worker = YoloWorker(st, detector=det)
            torch_runs(lambda st=st, worker=worker: run_end_to_end(st, worker, path, stride), det)()  # warm-up
            runs[label] = (det, worker)

        def timed(label: str, fn: Callable[[], dict[str, Any]]) -> Callable[[], dict[str, Any]]:
            return torch_runs(fn, runs[label][0])

        variants = []
        for label, st in (("1", s_one), ("default", s_all)):
            det, worker = runs[label]
            variants += [(f"detector_only_threads_{label}", timed(label, lambda det=det: run_detector_only(det, frames))),
                         (f"end_to_end_threads_{label}",
                          timed(label, lambda st=st, worker=worker: run_end_to_end(st, worker, path, stride)))]
        best = fastest_of(variants, rounds, stride, info.fps)
        default_threads = runs["default"][0].threads
        return {
            "clip": {"path": path.name, "frames": info.frame_count, "frame_stride": stride},
            "detector": {**detector_record(runs["default"][0]),
                         "threads": {"default": default_threads, "one": 1,
                                     "measured_choice": measured_default.threads},
                         "precision_threads_1": detector_precision(runs["1"][0])},
            "motion_gating": False,
            **best,
            "detector_only_default_vs_1_thread": ratio(best["detector_only_threads_default"]["fps"],
                                                       best["detector_only_threads_1"]["fps"]),
            "end_to_end_default_vs_1_thread": ratio(best["end_to_end_threads_default"]["fps"],
                                                    best["end_to_end_threads_1"]["fps"]),
            "overlap_threads_1": ratio(best["end_to_end_threads_1"]["fps"], best["detector_only_threads_1"]["fps"]),
            "overlap_threads_default": ratio(best["end_to_end_threads_default"]["fps"],
                                             best["detector_only_threads_default"]["fps"]),
        }

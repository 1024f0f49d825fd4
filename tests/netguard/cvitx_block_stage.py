"""Test-only fault: ``TESTS_BLOCK_STAGE=detector:N`` blocks the yolo_worker's detector after N
frames, ``TESTS_BLOCK_STAGE=main_model:0`` the main_worker's forward pass, for good (the call
never returns, as a wedged decoder or a native call would).  Loaded by sitecustomize.py in
processes the tests start; a deployed worker never has this directory on its path."""
import os
import threading

_kind, _, _after = os.environ["TESTS_BLOCK_STAGE"].partition(":")
_AFTER = int(_after or 0)
_calls = [0]
_never = threading.Event()


def _maybe_block() -> None:
    _calls[0] += 1
    if _calls[0] > _AFTER:
        with open(os.environ.get("TESTS_BLOCK_MARK", os.devnull), "a") as fh:
            fh.write("blocked\n")
        _never.wait()


if _kind == "detector":  # the network call: an exported runtime's infer, or PyTorch's detect
    from video_analysis.yolo_worker import detector_runtime as rt
    from video_analysis.yolo_worker.detector import Detector

    _detect, _net = Detector.detect, rt.OnnxModel.infer

    def detect(self, frame):
        if self.runtime not in rt.EXPORTED:  # exported: counted in infer (staged or not)
            _maybe_block()
        return _detect(self, frame)

    def infer(self, x):
        _maybe_block()
        return _net(self, x)

    Detector.detect, rt.OnnxModel.infer = detect, infer
elif _kind == "main_model":
    from video_analysis.main_worker.worker import MainWorker

    _infer = MainWorker._infer

    def _blocking_infer(self, *args):
        _maybe_block()
        return _infer(self, *args)

    MainWorker._infer = _blocking_infer
else:
    raise SystemExit(f"TESTS_BLOCK_STAGE: unknown stage {_kind!r}")

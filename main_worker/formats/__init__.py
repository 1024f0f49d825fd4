"""Main-model file formats, one small module each, behind one classifier interface.

Every loaded model offers ``model_name``, ``version``, ``labels``, ``hierarchy`` and
``predict(batch_bgr) -> {head: N x C probabilities}`` for ``N x 640 x 640 x 3`` BGR uint8
snapshots (the ``Classifier`` protocol of main_worker/worker.py), plus ``describe()``: what
check-model and the start-up log line say about it.

* :mod:`.bundle`: the CVITX bundle (TinyNet weights, ``torch.load(weights_only=True)``);
* :mod:`.bundle_export`: the same bundle run by OpenVINO from a cached ONNX export
  (``main_runtime``; the default on CPU);
* :mod:`.ultralytics_cls`: an ultralytics classify checkpoint with ``Type|Make|Model`` names;
* :mod:`.card`: the model card (``cvitx-model-card/1``) and the classifier built on it, which
  runs one of the runners of :mod:`.onnx`, :mod:`.openvino_ir`, :mod:`.torch_export` and
  :mod:`.torchscript`.

main_worker/model.py's ``load_bundle`` dispatches between them by what the file is
(worker_utils/model_files.py reads that without running anything in it).
"""

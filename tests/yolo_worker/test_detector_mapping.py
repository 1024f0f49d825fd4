import numpy as np
import pytest

from video_analysis.worker_config import TAXONOMY
from video_analysis.yolo_worker.detector import DetectorConfigError, class_lookup
from video_analysis.yolo_worker.pipeline import track_rows

COCO = {0: "person", 1: "bicycle", 2: "car", 3: "motorcycle", 5: "bus", 7: "truck", 9: "traffic light"}


def test_taxonomy_names_map_one_to_one():
    assert class_lookup(list(TAXONOMY), None).tolist() == list(range(8))


def test_coco_maps_vehicles_and_ignores_the_rest():
    lut = class_lookup(COCO, None)
    assert lut[2] == TAXONOMY.index("Car") and lut[3] == TAXONOMY.index("Motorcycle")
    assert lut[5] == TAXONOMY.index("CarouselBus") and lut[7] == TAXONOMY.index("LightTruck")
    assert lut[0] == lut[1] == lut[9] == -1


def test_explicit_map_wins():
    lut = class_lookup(COCO, {"truck": "Utility", "car": "SUV"})
    assert lut[7] == TAXONOMY.index("Utility") and lut[2] == TAXONOMY.index("SUV") and lut[3] == -1


def test_unmappable_detector_is_a_clear_error():
    with pytest.raises(DetectorConfigError, match="detector_class_map"):
        class_lookup({0: "cat", 1: "dog"}, None)


def test_track_rows_use_the_detector_boxes():
    dets = np.array([[10, 10, 50, 50, 0.9, 1], [100, 100, 150, 150, 0.8, 2]], np.float32)
    tracks = np.array([[12, 11, 52, 49, 5, 0.9, 1, 0], [99, 99, 149, 151, 6, 0.8, 2, 1], [0, 0, 1, 1, 9, 0.1, 0, 7]])
    rows = track_rows(dets, tracks)
    assert [(t, r.tolist()) for t, r in rows] == [(5, dets[0].tolist()), (6, dets[1].tolist())]

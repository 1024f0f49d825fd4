"""The car-park / low-traffic scene: parked vehicles that stand still, in the ground truth like
every other vehicle, and clips without a car park exactly as they were before it existed."""
from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest

from video_analysis.eval.metrics import iou_matrix
from video_analysis.synth.clip import config_record
from video_analysis.synth.scene import (PARKING_MARGIN_M, Scene, SceneConfig, carpark_config, pack_rows,
                                        scene_config)

SMALL = dict(width=320, height=180, fps=10)


@pytest.mark.parametrize("lengths,gaps,rows,expected", [
    ([4.0], [1.0], [20.0], [(0, PARKING_MARGIN_M + 1.0)]),
    # Three 4 m vehicles with 1 m gaps: 0.4+1 .. 5.4, 6.4 .. 10.4, 11.4 .. 15.4 (row of 16: 15.6 usable).
    ([4.0, 4.0, 4.0], [1.0, 1.0, 1.0], [16.0], [(0, 1.4), (0, 6.4), (0, 11.4)]),
    # The third does not fit in row 0 (ends at 16.4 > 15.6): it starts row 1 after its gap.
    ([4.0, 4.0, 5.0], [1.0, 1.0, 1.0], [16.0, 30.0], [(0, 1.4), (0, 6.4), (1, 1.4)]),
    # Too long for row 0 even alone: row 1, which is longer, takes it.
    ([12.0], [1.0], [10.0, 20.0], [(1, 1.4)]),
    ([], [], [10.0], []),
])
def test_pack_rows_places_left_to_right_and_wraps(lengths, gaps, rows, expected):
    out = pack_rows(lengths, gaps, rows)
    assert [(r, round(x, 6)) for r, x in out] == expected
    for (r, left), length in zip(out, lengths):  # inside the row's margins
        assert PARKING_MARGIN_M <= left and left + length <= rows[r] - PARKING_MARGIN_M


@pytest.mark.parametrize("lengths,rows", [([4.0] * 4, [10.0]), ([30.0], [10.0, 20.0])])
def test_pack_rows_refuses_what_does_not_fit(lengths, rows):
    with pytest.raises(ValueError, match="do not fit"):
        pack_rows(lengths, [1.0] * len(lengths), rows)


@pytest.mark.parametrize("kw,digest", [
    # sha256 of the ground truth (ids, boxes, visibility) of default-config scenes, recorded
    # before the car park existed: a scene without parked vehicles must not change at all.
    (dict(SMALL, duration_s=3, seed=3), "9d4de79e80ffab02"),
    (dict(SMALL, duration_s=3, seed=11, lanes=2, start_filled=False, stop_probability=0.5), "18d84ae2955329d7"),
])
def test_scenes_without_a_car_park_are_unchanged(kw, digest):
    h = hashlib.sha256()
    for _i, _img, objs in Scene(SceneConfig(**kw)).frames():
        h.update(repr([(o.vehicle_id, o.box, round(o.visibility, 4)) for o in objs]).encode())
    assert h.hexdigest()[:16] == digest


@pytest.mark.parametrize("seed", [0, 4245, 9, 31])
def test_parked_vehicles_stand_still_in_view_in_the_ground_truth(seed):
    cfg = carpark_config(seed, **SMALL, duration_s=2)
    scene = Scene(cfg)
    boxes: dict[int, set] = {}
    for _i, _img, objs in scene.frames():
        for o in objs:
            boxes.setdefault(o.vehicle_id, set()).add(o.box)
            if scene.by_id[o.vehicle_id].parked:
                assert not o.truncated and o.visibility >= 0.5, o
    table = scene.vehicle_table()
    parked = [vid for vid, v in table.items() if v.get("parked")]
    assert len(parked) == cfg.parked == 5 and parked == list(range(1, cfg.parked + 1))  # ids first
    for vid in parked:
        v = table[vid]
        assert len(boxes[vid]) == 1, "a parked vehicle never moves"
        assert (v["first_frame"], v["last_frame"]) == (0, cfg.frame_count - 1) and v["lane"] < 0
        assert v["type"] not in ("CarouselBus", "E-Jeepney")
    still = np.array([next(iter(boxes[vid])) for vid in parked])
    ious = iou_matrix(still, still)
    assert (ious[~np.eye(len(parked), dtype=bool)] < 0.1).all(), "parked vehicles must not overlap heavily"


@pytest.mark.parametrize("cfg,has_parked", [
    (SceneConfig(), False), (SceneConfig(seed=5, lanes=2), False), (carpark_config(3), True),
    (SceneConfig(parked=2), True),
])
def test_config_record_round_trips_and_omits_new_fields_at_default(cfg, has_parked):
    rec = config_record(cfg)
    assert ("parked" in rec) is has_parked
    assert SceneConfig(**rec) == cfg


@pytest.mark.parametrize("scene,changes,expected", [
    ("road", {}, SceneConfig(seed=7)),
    ("carpark", {}, carpark_config(7)),
    ("carpark", {"parked": 2, "fps": 25.0}, carpark_config(7, parked=2, fps=25.0)),
])
def test_scene_presets_by_name(scene, changes, expected):
    assert scene_config(scene, 7, **changes) == expected


@pytest.mark.parametrize("bad", [lambda: scene_config("harbour"), lambda: SceneConfig(parked=-1)])
def test_bad_scene_settings_are_refused(bad):
    with pytest.raises(ValueError):
        bad()


def test_synth_cli_carpark_preset_and_overrides(tmp_path):
    from video_analysis.synth.__main__ import main

    assert main(["--scene", "carpark", "--seed", "4", "--out", str(tmp_path), "--width", "320", "--height", "180",
                 "--duration", "1", "--parked", "3"]) == 0
    meta = json.loads((tmp_path / "carpark_4.json").read_text())
    assert meta["config"]["parked"] == 3 and meta["config"]["lanes"] == 2 and meta["config"]["start_filled"] is False
    assert sum(1 for v in meta["vehicles"].values() if v.get("parked")) == 3
    assert main(["--scene", "carpark", "--parked", "40", "--out", str(tmp_path), "--duration", "1"]) == 2  # no room

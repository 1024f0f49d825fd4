"""The synthetic world: catalogue, ground truth that matches the pixels, clips that decode right."""
from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from video_analysis.synth.catalogue import CATALOGUE, all_labels, hierarchy, random_vehicle
from video_analysis.synth.clip import fps_fraction, load_ground_truth, write_clip
from video_analysis.synth.scene import Scene, SceneConfig
from video_analysis.synth.sprite import render_vehicle
from video_analysis.worker_utils.vocab import TAXONOMY, is_valid_plate


def test_catalogue_covers_the_taxonomy_with_a_consistent_hierarchy():
    assert set(CATALOGUE) == set(TAXONOMY)
    lab, h = all_labels(), hierarchy()
    assert len(lab["make"]) == len(set(lab["make"])) == 24
    assert len(lab["model"]) == len(set(lab["model"])) == 48
    for model, make in h["model_make"].items():
        assert model in lab["model"] and h["make_type"][make] in TAXONOMY


@pytest.mark.parametrize("seed", range(40))
def test_random_vehicles_have_valid_plates_and_colours(seed):
    v = random_vehicle(np.random.default_rng(seed))
    assert is_valid_plate(v.plate), v.plate
    assert v.colour.base in all_labels()["color_base"]
    assert v.colour.lightness in (None, "Light") and v.colour.finish in (None, "Matte", "Metallic")
    assert hierarchy()["model_make"][v.model] == v.make and hierarchy()["make_type"][v.make] == v.vtype


@pytest.mark.parametrize("vtype", TAXONOMY)
@pytest.mark.parametrize("facing_right", [True, False])
def test_sprites_are_drawn_inside_their_mask(vtype, facing_right):
    v = random_vehicle(np.random.default_rng(1), vtype)
    sp = render_vehicle(v, 30.0, facing_right)
    assert sp.mask.any()
    assert not sp.image[sp.mask == 0].any()  # nothing drawn outside the vehicle
    ys, xs = np.nonzero(sp.mask)
    # The silhouette is about length x height at 30 px/m (roof racks and mirrors add a little).
    assert abs((xs.max() - xs.min() + 1) - v.length_m * 30) <= 0.1 * v.length_m * 30
    assert ys.max() <= sp.ground_y


@pytest.mark.parametrize("seed,lanes", [(3, 4), (11, 2), (29, 3)])
def test_ground_truth_boxes_cover_exactly_the_vehicle_pixels(seed, lanes):
    """Day, no noise: a pixel differs from the empty road only where a vehicle is drawn; every
    such pixel is inside some GT box, and every box is tight (its edges touch changed pixels)."""
    cfg = SceneConfig(width=320, height=180, fps=10, duration_s=12, seed=seed, lanes=lanes)
    scene = Scene(cfg)
    checked = 0
    for i, img, objs in scene.frames():
        if i % 5:
            continue
        changed = np.any(img != scene.background, axis=2)
        covered = np.zeros_like(changed)
        for o in objs:
            x1, y1, x2, y2 = (int(v) for v in o.box)
            covered[y1:y2, x1:x2] = True
            if o.visibility > 0.99:  # unoccluded: the box is tight on all four sides
                box = changed[y1:y2, x1:x2]
                assert box[0].any() and box[-1].any() and box[:, 0].any() and box[:, -1].any(), (i, o)
            checked += 1
        assert not (changed & ~covered).any(), f"frame {i}: drawn pixels outside every GT box"
    assert checked > 10


@pytest.mark.parametrize("fps", [12.5, 29.97])
def test_clip_opens_with_expected_frames_fps_and_timestamps(tmp_path, fps):
    cfg = SceneConfig(width=320, height=180, fps=fps, duration_s=4, seed=5)
    info = write_clip(cfg, tmp_path, "c")
    cap = cv2.VideoCapture(str(info.video))
    assert cap.isOpened()
    assert abs(cap.get(cv2.CAP_PROP_FPS) - float(fps_fraction(fps))) < 1e-3
    stamps = []
    while cap.grab():
        stamps.append(cap.get(cv2.CAP_PROP_POS_MSEC))
    cap.release()
    assert len(stamps) == cfg.frame_count == info.frames
    expected = np.arange(len(stamps)) * 1000.0 / float(fps_fraction(fps))
    assert np.allclose(stamps, expected, atol=1.0)
    gt = load_ground_truth(info.video)
    assert gt.frames == cfg.frame_count and gt.vehicles
    assert set(gt.boxes) <= set(range(cfg.frame_count))
    for rows in gt.boxes.values():
        for vid, (x1, y1, x2, y2), vis in rows:
            assert vid in gt.vehicles and 0 <= x1 < x2 <= 320 and 0 <= y1 < y2 <= 180 and 0 <= vis <= 1
    lines = info.gt.read_text().split()
    assert all(len(line.split(",")) == 9 for line in lines)  # MOTChallenge columns


def test_same_seed_same_clip_other_seed_other_clip():
    def first_frames(seed):
        sc = Scene(SceneConfig(width=320, height=180, fps=10, duration_s=2, seed=seed))
        return [(img.copy(), [(o.vehicle_id, o.box) for o in objs]) for _, img, objs in sc.frames()]

    a, b, c = first_frames(4), first_frames(4), first_frames(5)
    assert all(np.array_equal(x[0], y[0]) and x[1] == y[1] for x, y in zip(a, b))
    assert not all(np.array_equal(x[0], y[0]) for x, y in zip(a, c))


def test_night_rain_and_noise_change_the_picture_not_the_truth():
    base = dict(width=320, height=180, fps=10, duration_s=2, seed=8)
    day = Scene(SceneConfig(**base))
    night = Scene(SceneConfig(**base, lighting="night", rain=True, noise_sigma=4.0))
    for (_, a, oa), (_, b, ob) in zip(day.frames(), night.frames()):
        assert [o.box for o in oa] == [o.box for o in ob]
        assert b.mean() < a.mean() * 0.7  # night is darker


def test_vehicles_enter_leave_and_touch_the_frame_edge():
    sc = Scene(SceneConfig(width=320, height=180, fps=10, duration_s=40, seed=2, start_filled=False))
    edge, frames_seen = 0, {}
    for i, _img, objs in sc.frames():
        for o in objs:
            frames_seen.setdefault(o.vehicle_id, []).append(i)
            edge += o.box[0] <= 0 or o.box[2] >= 320
    table = sc.vehicle_table()
    assert len(table) >= 5 and edge > 0
    # Vehicles leave: some are gone before the clip ends.
    assert any(v["last_frame"] < 399 for v in table.values())


def test_synth_cli_writes_clip_and_truth(tmp_path):
    from video_analysis.synth.__main__ import main

    assert main(["--seed", "1", "--out", str(tmp_path), "--name", "x", "--width", "320", "--height", "180",
                 "--duration", "2", "--fps", "12.5"]) == 0
    meta = json.loads((tmp_path / "x.json").read_text())
    assert meta["frames"] == 25 and meta["config"]["fps"] == 12.5
    for v in meta["vehicles"].values():
        assert {"type", "make", "model", "color", "plate"} <= set(v)
    assert main(["--width", "321"]) == 2  # odd width: refused with a message

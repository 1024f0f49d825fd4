"""Container and part suppression (yolo_worker/containers.py): a box that holds a smaller, more
confident one goes, and so does a much less sure box of the same class inside a larger one;
everything else stays, in order."""
import numpy as np
import pytest

from video_analysis.yolo_worker.containers import drop_containers

CAR = [543, 318, 605, 366, 0.59, 0]          # the canersu car's own box
LOOSE = [529, 319, 606, 399, 0.28, 0]        # the loose box around it (IoU 0.47, 98 % of CAR inside)
CASES = [
    ("a loose, less sure box around a car goes", [LOOSE, CAR], [CAR]),
    ("order of the rows does not matter", [CAR, LOOSE], [CAR]),
    ("a more confident container of another class stays, and so does what it holds",
     [[529, 319, 606, 399, 0.8, 2], CAR], [[529, 319, 606, 399, 0.8, 2], CAR]),
    ("a much less sure part of the same class goes: a lorry's rear inside the lorry (4ku)",
     [[201, 317, 400, 469, 0.58, 3], [200, 344, 289, 473, 0.34, 3]], [[201, 317, 400, 469, 0.58, 3]]),
    ("a part only 0.1 less sure stays", [[201, 317, 400, 469, 0.44, 3], [200, 344, 289, 473, 0.34, 3]],
     [[201, 317, 400, 469, 0.44, 3], [200, 344, 289, 473, 0.34, 3]]),
    ("a motorcycle inside a light truck's box stays (another class)",
     [[171, 278, 371, 369, 0.97, 3], [159, 320, 239, 369, 0.15, 5]],
     [[171, 278, 371, 369, 0.97, 3], [159, 320, 239, 369, 0.15, 5]]),
    ("one box over two cars of a far queue goes, both cars stay",
     [[100, 100, 200, 140, 0.3, 0], [100, 102, 148, 138, 0.5, 0], [152, 101, 199, 139, 0.45, 0]],
     [[100, 102, 148, 138, 0.5, 0], [152, 101, 199, 139, 0.45, 0]]),
    ("half inside is not inside", [[0, 0, 100, 100, 0.2, 0], [50, 50, 150, 150, 0.9, 0]],
     [[0, 0, 100, 100, 0.2, 0], [50, 50, 150, 150, 0.9, 0]]),
    ("classes are not compared", [[529, 319, 606, 399, 0.28, 1], CAR], [CAR]),
    ("side by side, no overlap", [[0, 0, 10, 10, 0.3, 0], [20, 0, 30, 10, 0.9, 0]],
     [[0, 0, 10, 10, 0.3, 0], [20, 0, 30, 10, 0.9, 0]]),
    ("one box", [LOOSE], [LOOSE]),
]


@pytest.mark.parametrize("name,dets,kept", CASES, ids=[c[0] for c in CASES])
def test_drop_containers(name, dets, kept):
    out = drop_containers(np.array(dets, np.float32))
    np.testing.assert_allclose(out, np.array(kept, np.float32).reshape(-1, 6), err_msg=name)


def test_empty():
    assert drop_containers(np.zeros((0, 6), np.float32)).shape == (0, 6)

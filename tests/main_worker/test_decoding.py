import numpy as np
import pytest

from video_analysis.main_worker.decoding import Hierarchy, decode

TYPES = ["Car", "SUV", "LightTruck"]
MAKES = ["Toyota", "Honda", "Isuzu"]
MODELS = ["Vios", "Fortuner", "Civic", "Elf"]
MAKE_TYPE = {"Toyota": "Car", "Honda": "Car", "Isuzu": "LightTruck"}
MODEL_MAKE = {"Vios": "Toyota", "Fortuner": "Toyota", "Civic": "Honda", "Elf": "Isuzu"}
H = Hierarchy.build(TYPES, MAKES, MODELS, MAKE_TYPE, MODEL_MAKE)


def p(*v):
    a = np.array(v, float)
    return a / a.sum()


def test_independent_argmax_would_be_impossible_path_decoding_is_not():
    # argmaxes: type Car, make Isuzu, model Vios -> inconsistent
    dec = decode(H, p(0.5, 0.1, 0.4), p(0.3, 0.2, 0.5), p(0.4, 0.1, 0.1, 0.4))
    assert MAKE_TYPE[dec.make] == dec.type and MODEL_MAKE[dec.model] == dec.make
    # the best valid path: LightTruck/Isuzu/Elf = .4*.5*.4 = .08 beats Car/Toyota/Vios = .5*.3*.4 = .06
    assert (dec.type, dec.make, dec.model) == ("LightTruck", "Isuzu", "Elf")


@pytest.mark.parametrize("pt,pm,pmo", [
    (p(0.9, 0.05, 0.05), p(0.8, 0.1, 0.1), p(0.7, 0.1, 0.1, 0.1)),
    (p(0.3, 0.3, 0.4), p(0.3, 0.3, 0.4), p(0.25, 0.25, 0.25, 0.25)),
    (p(1, 1, 1), p(1, 1, 1), p(1, 2, 3, 4)),
])
def test_confidences_nest_and_alternatives_are_sorted(pt, pm, pmo):
    dec = decode(H, pt, pm, pmo, topk=3)
    assert dec.model_conf <= dec.make_conf + 1e-9 <= dec.type_conf + 2e-9 <= 1 + 1e-9
    confs = [a["conf"] for a in dec.alternatives]
    assert confs == sorted(confs, reverse=True) and len(confs) == 3
    assert (dec.alternatives[0]["make"], dec.alternatives[0]["model"]) == (dec.make, dec.model)


def test_clear_winner():
    dec = decode(H, p(0.98, 0.01, 0.01), p(0.01, 0.98, 0.01), p(0.01, 0.01, 0.97, 0.01))
    assert (dec.type, dec.make, dec.model) == ("Car", "Honda", "Civic") and dec.model_conf > 0.9


def test_type_only_bundle():
    dec = decode(H, p(0.1, 0.7, 0.2), None, None)
    assert dec.type in TYPES and dec.make is None and dec.model is None and dec.make_conf is None


def test_bad_hierarchy_is_rejected():
    with pytest.raises(ValueError, match="no make"):
        Hierarchy.build(TYPES, MAKES, ["X"], MAKE_TYPE, {})

import pytest

from video_analysis.worker_utils import keys

WID = "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"
VID = "50651c85-90ab-471b-8707-adc0ef16f91f"
SPEC_URI = (f"s3://cvitx-uploads-dev-jdfirme/demo_user/{WID}/{VID}/snapshots/CTX1005_CAM1_000305_002272.jpg")
SPEC_RAW = f"demo_user/{WID}/{VID}/raw/CCTV_Test1.mp4"

# The spec's §11 regexes verbatim: every name we build must still match them (≤ 6 digits).
SPEC_SNAPSHOT_RE = (r"^s3://cvitx-uploads-dev-jdfirme/demo_user/[0-9a-f-]{36}/[0-9a-f-]{36}/snapshots/"
                    r"CTX\d{4,}_CAM\d+_\d{6}_\d{6}\.jpg$")
SPEC_RAW_RE = r"^demo_user/[0-9a-f-]{36}/[0-9a-f-]{36}/raw/.+\.mp4$"


def test_spec_snapshot_example_round_trips():
    ref = keys.parse_snapshot_uri(SPEC_URI)
    assert (ref.workspace_id, ref.video_id, ref.workspace_code, ref.camera_code, ref.track_id, ref.offset_ms) == (
        WID, VID, "CTX1005", "CAM1", 305, 2272)
    key = keys.build_snapshot_key(WID, VID, "CTX1005", "CAM1", 305, 2272)
    assert keys.build_snapshot_uri("cvitx-uploads-dev-jdfirme", key) == SPEC_URI == ref.uri


def test_spec_raw_example_round_trips():
    raw = keys.parse_raw_key(SPEC_RAW)
    assert (raw.workspace_id, raw.video_id, raw.filename) == (WID, VID, "CCTV_Test1.mp4")
    assert keys.build_raw_key(WID, VID, "CCTV_Test1.mp4") == SPEC_RAW


@pytest.mark.parametrize("track,offset,name", [
    (1, 0, "CTX1005_CAM1_000001_000000.jpg"),
    (305, 2272, "CTX1005_CAM1_000305_002272.jpg"),
    (999999, 999999, "CTX1005_CAM1_999999_999999.jpg"),
    (12, 1_234_567, "CTX1005_CAM1_000012_1234567.jpg"),
    (1_000_000, 5, "CTX1005_CAM1_1000000_000005.jpg"),
])
def test_names_pad_to_at_least_six_digits(track, offset, name):
    key = keys.build_snapshot_key(WID, VID, "CTX1005", "CAM1", track, offset)
    assert key.endswith("/" + name)
    ref = keys.parse_snapshot_uri("s3://cvitx-uploads-dev-jdfirme/" + key)
    assert (ref.track_id, ref.offset_ms) == (track, offset)


def test_six_digit_names_match_the_spec_regex_verbatim():
    import re

    for track, offset in [(1, 0), (305, 2272), (999999, 999999)]:
        uri = "s3://cvitx-uploads-dev-jdfirme/" + keys.build_snapshot_key(WID, VID, "CTX1005", "CAM1", track, offset)
        assert re.match(SPEC_SNAPSHOT_RE, uri)
    assert re.match(SPEC_RAW_RE, SPEC_RAW)


@pytest.mark.parametrize("uri,needle", [
    (SPEC_URI.replace("cvitx-uploads-dev-jdfirme", "other-bucket"), "expected the configured bucket"),
    (SPEC_URI.replace("demo_user", "other_user"), "does not match"),
    (SPEC_URI.replace("_002272", "_02272"), "does not match"),
    (SPEC_URI.replace(".jpg", ".png"), "does not match"),
    (SPEC_URI.replace("https://", "").replace("s3://", "https://"), "full s3:// URI"),
    (SPEC_URI.replace("/snapshots/", "/snapshots/../"), "'..'"),
    (SPEC_URI.replace("/snapshots/", "//snapshots/"), "empty path segment"),
    (SPEC_URI.replace("CTX1005_", "CTX1005%5F"), "percent-encoding"),
])
def test_bad_snapshot_uris_say_why(uri, needle):
    with pytest.raises(ValueError) as e:
        keys.parse_snapshot_uri(uri)
    assert needle in str(e.value)


@pytest.mark.parametrize("key,needle", [
    (f"demo_user/{WID}/{VID}/raw/../../x.mp4", "'..'"),
    (f"demo_user/{WID}/{VID}//raw/x.mp4", "empty path segment"),
    (f"demo_user/{WID}/{VID}/raw/a%2Fb.mp4", "percent-encoding"),
    (f"/demo_user/{WID}/{VID}/raw/x.mp4", "leading '/'"),
    (f"demo_user/{WID}/{VID}/raw/x.mp4\n", "control characters"),
    (f"demo_user/{WID}/{VID}/raw/x.mov", "does not match"),
    (f"demo_user/{WID.upper()}/{VID}/raw/x.mp4", "does not match"),
    (f"demo_user/{WID}/{VID}/snapshots/x.mp4", "does not match"),
])
def test_bad_raw_keys_say_why(key, needle):
    with pytest.raises(ValueError) as e:
        keys.parse_raw_key(key)
    assert needle in str(e.value)


def test_builder_refuses_bad_parts():
    with pytest.raises(ValueError):
        keys.build_snapshot_key(WID, VID, "CTX10", "CAM1", 1, 1)
    with pytest.raises(ValueError):
        keys.build_snapshot_key(WID, VID, "CTX1005", "CAM1", -1, 1)
    with pytest.raises(ValueError):
        keys.build_snapshot_key("not-a-uuid", VID, "CTX1005", "CAM1", 1, 1)

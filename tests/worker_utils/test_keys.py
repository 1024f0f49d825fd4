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


RAW_DIR = f"demo_user/{WID}/{VID}/raw/"
SNAP_DIR = f"demo_user/{WID}/{VID}/snapshots/"
SNAP_NAME = "CTX1005_CAM1_000305_002272.jpg"
# Path tricks, each refused with a reason, in raw keys and in snapshot URIs alike (issue 8).
TRICKS = [
    ("dotdot", "../", "'..'"),
    ("dot", "./", "'.'"),
    ("double_slash", "/", "empty path segment"),
    ("percent_dot", "%2e%2e/", "percent-encoding"),
    ("percent_slash", "a%2F", "percent-encoding"),
    ("backslash", "..\\", "backslash"),
    ("nul", "a\x00", "control characters"),
    ("fullwidth_slash", "..\uff0f", "look-alike"),
    ("fullwidth_dots", "\uff0e\uff0e/", "look-alike"),
    ("two_dot_leader", "\u2025/", "look-alike"),
    ("one_dot_leader", "\u2024\u2024/", "look-alike"),
    ("division_slash", "..\u2215", "look-alike"),
    ("fraction_slash", "..\u2044", "look-alike"),
    ("fullwidth_backslash", "..\uff3c", "look-alike"),
    ("zero_width_space", "\u200b", "look-alike or invisible"),
    ("bidi_override", "\u202e", "look-alike or invisible"),
    ("nbsp", "\u00a0", "look-alike or invisible"),
    ("combining_solidus", "a\u0338", "look-alike"),
]


@pytest.mark.parametrize("name,insert,needle", TRICKS, ids=[t[0] for t in TRICKS])
def test_raw_key_path_tricks_are_refused(name, insert, needle):
    with pytest.raises(ValueError) as e:
        keys.parse_raw_key(RAW_DIR + insert + "clip.mp4")
    assert needle in str(e.value)


@pytest.mark.parametrize("name,insert,needle", TRICKS, ids=[t[0] for t in TRICKS])
def test_snapshot_uri_path_tricks_are_refused(name, insert, needle):
    with pytest.raises(ValueError) as e:
        keys.parse_snapshot_uri(f"s3://cvitx-uploads-dev-jdfirme/{SNAP_DIR}{insert}{SNAP_NAME}")
    assert needle in str(e.value)


@pytest.mark.parametrize("key", [
    f"demo_user/{WID.replace('a', 'а', 1)}/{VID}/raw/clip.mp4",  # Cyrillic 'а' in the workspace id
    f"demo_user/{WID}/{VID}/raw/clip.mp\u0664",  # Arabic-Indic digit 4
    f"demo_user/{WID}/{VID}/r\u0430w/clip.mp4",  # Cyrillic 'а' in 'raw'
    f"dem\u043e_user/{WID}/{VID}/raw/clip.mp4",  # Cyrillic 'о' in the prefix
    f"demo_user/{WID}/{VID}/raw/clip\u2024mp4",  # one-dot leader for the suffix dot
])
def test_raw_key_homoglyphs_never_parse(key):
    with pytest.raises(ValueError):
        keys.parse_raw_key(key)


@pytest.mark.parametrize("name", ["CTX\u0661\u0660\u0660\u0665_CAM1_000305_002272.jpg",  # Arabic-Indic digits
                                  "CTX1005_CAM1_\u0660\u0660\u0660305_002272.jpg",
                                  "CTX1005_CAM\uff11_000305_002272.jpg"])  # fullwidth 1
def test_snapshot_names_take_ascii_digits_only(name):
    with pytest.raises(ValueError):
        keys.parse_snapshot_uri(f"s3://cvitx-uploads-dev-jdfirme/{SNAP_DIR}{name}")
    wcode, ccode = name.split("_")[:2]
    if not (wcode.isascii() and ccode.isascii()):  # the builder refuses such codes too
        with pytest.raises(ValueError):
            keys.build_snapshot_key(WID, VID, wcode, ccode, 305, 2272)


@pytest.mark.parametrize("filename", ["CCTV Test 1.mp4", "Cámara_1.mp4", "日本語.mp4", "sub/dir/clip.mp4",
                                      "a.b.mp4"])
def test_plain_keys_with_non_ascii_names_stay_allowed(filename):
    assert keys.parse_raw_key(RAW_DIR + filename).filename == filename


@pytest.mark.parametrize("key,needle", [
    (f"demo_user/{WID}/{VID}/raw/clip.mp4/..", "'..'"),  # a trick after the suffix still counts
    (f"demo_user/{WID}/{VID}/raw/", "does not match"),
    (f"demo_user/{WID}/{VID}/raw", "does not match"),
    (f"demo_user/{WID}/raw/clip.mp4", "does not match"),  # ids missing
    (f"demo_user/{WID}/{VID}/{VID}/raw/clip.mp4", "does not match"),  # an extra level
    (f"other/{WID}/{VID}/raw/clip.mp4", "does not match demo_user/"),
])
def test_raw_keys_outside_the_raw_folder_are_refused(key, needle):
    with pytest.raises(ValueError) as e:
        keys.parse_raw_key(key)
    assert needle in str(e.value)

import pytest

from video_analysis import worker_config as wc
from video_analysis.worker_config import ConfigError, Settings, build_settings


def test_defaults_are_the_spec_constants():
    s = Settings()
    assert (s.region, s.bucket, s.user_prefix) == ("ap-southeast-2", "cvitx-uploads-dev-jdfirme", "demo_user")
    assert (s.video_queue, s.snapshot_queue) == ("cvitx-video-tasks", "cvitx-snapshot-tasks")
    assert (s.visibility_timeout_s, s.message_retention_s, s.receive_wait_s, s.max_receive_count) == (300, 1209600, 10, 5)
    assert s.heartbeat_s == 60 and s.snapshot_size == 640 and s.main_mode == "single"
    assert s.s3_endpoint_url is None and s.sqs_endpoint_url is None


def test_settings_are_frozen():
    with pytest.raises(Exception):
        Settings().bucket = "other"  # type: ignore[misc]


def test_env_is_ignored_unless_switched_on():
    assert build_settings({"CVITX_MAIN_MODE": "compare"}).main_mode == "single"
    assert build_settings({"CVITX_ENV_OVERRIDES": "1", "CVITX_MAIN_MODE": "compare"}).main_mode == "compare"


@pytest.mark.parametrize("key,value,expected", [
    ("CVITX_RECEIVE_WAIT_S", "1", 1),
    ("CVITX_HEARTBEAT_S", "1.5", 1.5),
    ("CVITX_COLOR_ENABLED", "false", False),
    ("CVITX_S3_ENDPOINT_URL", "http://127.0.0.1:5000", "http://127.0.0.1:5000"),
    ("CVITX_S3_ENDPOINT_URL", "none", None),
    ("CVITX_DETECTOR_CLASS_MAP", '{"car": "Car"}', {"car": "Car"}),
])
def test_overrides_parse(key, value, expected):
    s = build_settings({"CVITX_ENV_OVERRIDES": "1", key: value})
    assert getattr(s, key.removeprefix("CVITX_").lower()) == expected


@pytest.mark.parametrize("key,value,needle", [
    ("CVITX_MAIN_MODE", "triple", "one of 'single', 'compare'"),
    ("CVITX_MAIN_BATCH_SIZE", "11", "CVITX_MAIN_BATCH_SIZE='11'"),
    ("CVITX_FRAME_STRIDE", "3", "not a setting"),
    ("CVITX_JPEG_QUALITY", "high", "CVITX_JPEG_QUALITY"),
    ("CVITX_BUCKET", "Bad_Bucket", "bucket name"),
    ("CVITX_HEARTBEAT_S", "400", "heartbeat_s (400.0) must be shorter"),
    ("CVITX_DETECTOR_CLASS_MAP", '{"car": "Sedan"}', "not taxonomy names"),
    ("CVITX_DETECTOR_CLASS_MAP", "{car", "JSON object"),
])
def test_bad_override_names_key_and_allowed_values(key, value, needle):
    with pytest.raises(ConfigError) as e:
        build_settings({"CVITX_ENV_OVERRIDES": "1", key: value})
    assert needle in str(e.value)


def test_module_switch_enables_overrides(monkeypatch):
    monkeypatch.setattr(wc, "ENV_OVERRIDES_ENABLED", True)
    assert build_settings({"CVITX_TOPK": "5"}).topk == 5


def test_env_file_lines_round_trip():
    lines = wc.env_file_lines({"db_url": "postgresql://x@h/db", "main_mode": "compare"})
    env = dict(l.removeprefix("export ").replace("'", "").split("=", 1) for l in lines)
    s = build_settings(env)
    assert s.db_url == "postgresql://x@h/db" and s.main_mode == "compare"


def test_relative_bundle_paths_resolve_against_the_package():
    s = Settings()
    assert s.resolve_path(s.detector_path) == wc.PACKAGE_DIR / s.detector_path
    assert str(s.resolve_path("/abs/x.pt")) == "/abs/x.pt"


def test_systemd_environment():
    assert wc.systemd_environment({}) == (None, None)
    assert wc.systemd_environment({"NOTIFY_SOCKET": "@x", "WATCHDOG_USEC": "30000000"}) == ("@x", 30.0)


def test_env_overrides_rebuild_the_same_settings():
    s = build_settings({}, main_mode="compare", s3_endpoint_url="http://127.0.0.1:1", detector_class_map={"car": "Car"},
                       heartbeat_s=1.5, visibility_timeout_s=4)
    env = wc.env_overrides(s)
    assert "CVITX_BUCKET" not in env  # defaults are not repeated
    assert build_settings(env) == s
    assert build_settings(wc.env_overrides(Settings())) == Settings()


@pytest.mark.parametrize("key,value,field,expected", [
    ("CVITX_DETECTOR_RUNTIME", "torch", "detector_runtime", "torch"),
    ("CVITX_DETECTOR_RUNTIME", "onnx", "detector_runtime", "onnx"),
    ("CVITX_DETECTOR_CACHE_DIR", "/srv/cache", "detector_cache_dir", "/srv/cache"),
    ("CVITX_DETECTOR_CACHE_DIR", "none", "detector_cache_dir", None),
    ("CVITX_DETECTOR_THREADS", "4", "detector_threads", 4),
    ("CVITX_DETECTOR_THREADS", "none", "detector_threads", None),
])
def test_detector_runtime_overrides_parse(key, value, field, expected):
    assert getattr(build_settings({"CVITX_ENV_OVERRIDES": "1", key: value}), field) == expected


@pytest.mark.parametrize("key,value,needle", [
    ("CVITX_DETECTOR_RUNTIME", "tensorrt", "one of 'auto', 'torch', 'onnx'"),
    ("CVITX_DETECTOR_THREADS", "0", "CVITX_DETECTOR_THREADS='0'"),
])
def test_bad_detector_runtime_settings_are_refused(key, value, needle):
    with pytest.raises(ConfigError) as e:
        build_settings({"CVITX_ENV_OVERRIDES": "1", key: value})
    assert needle in str(e.value)


def test_detector_cache_path_defaults_to_a_writable_cache_not_beside_the_weights(tmp_path):
    s = Settings()
    assert s.detector_runtime == "auto" and s.detector_cache_dir is None and s.detector_threads is None
    sub = ("cvitx-video-analysis", "detector")
    # systemd's CacheDirectory= (the units' /var/cache/cvitx-yolo-video) wins, then XDG, then ~/.cache
    assert s.detector_cache_path({"CACHE_DIRECTORY": "/var/cache/cvitx-yolo-video", "HOME": "/h",
                                  "XDG_CACHE_HOME": "/x"}) == wc.Path("/var/cache/cvitx-yolo-video", *sub)
    assert s.detector_cache_path({"XDG_CACHE_HOME": "/x", "HOME": "/h"}) == wc.Path("/x", *sub)
    assert s.detector_cache_path({"HOME": "/var/cache/cvitx-yolo-video"}) == wc.Path(
        "/var/cache/cvitx-yolo-video/.cache", *sub)
    assert s.replace(detector_cache_dir=str(tmp_path)).detector_cache_path({"CACHE_DIRECTORY": "/c"}) == tmp_path
    assert s.replace(detector_cache_dir="cache/det").detector_cache_path({}) == wc.PACKAGE_DIR / "cache/det"

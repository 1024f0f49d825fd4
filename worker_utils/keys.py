"""S3 key patterns (spec §2, §11): builders and parsers for raw keys and snapshot keys/URIs.

Snapshot names are ``CTX####_CAM#_{track:06d}_{offsetMs:06d}.jpg``.  Both numbers are
zero-padded to *at least* 6 digits: a video longer than 999,999 ms (16m40s) yields 7-digit
offsets, so every regex here accepts ``\\d{6,}`` (all spec names still match).

The spec's regexes hard-code ``demo_user`` and the bucket; here they are built from the
configured prefix and bucket, which equal the spec's by default.
"""
from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache

UUID_RE = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
WORKSPACE_CODE_RE = r"CTX\d{4,}"
CAMERA_CODE_RE = r"CAM\d+"
SNAPSHOT_NAME_RE = rf"({WORKSPACE_CODE_RE})_({CAMERA_CODE_RE})_(\d{{6,}})_(\d{{6,}})\.jpg"

_UUID = re.compile(UUID_RE)
# Look-alikes of '/', '\\' and '.' that NFKC leaves alone (NFKC already folds the fullwidth and
# compatibility forms: U+FF0F, U+FF3C, U+FF0E, U+2024 '․', U+2025 '‥', ...).
_CONFUSABLES = {"\u2215", "\u2044", "\u29f8", "\u29f9", "\u2216", "\u244a", "\u3002", "\uff61", "\u0338"}


@lru_cache(maxsize=8)
def raw_key_regex(prefix: str = "demo_user") -> re.Pattern[str]:
    """The spec's raw-key regex (KEY only), with the ids captured: groups wid, vid, name."""
    return re.compile(rf"^{re.escape(prefix)}/({UUID_RE})/({UUID_RE})/raw/(.+\.mp4)$", re.ASCII)


@lru_cache(maxsize=8)
def snapshot_key_regex(prefix: str = "demo_user") -> re.Pattern[str]:
    """Snapshot object key: groups wid, vid, workspace_code, camera_code, track, offset."""
    return re.compile(rf"^{re.escape(prefix)}/({UUID_RE})/({UUID_RE})/snapshots/{SNAPSHOT_NAME_RE}$", re.ASCII)


@lru_cache(maxsize=8)
def snapshot_uri_regex(bucket: str = "cvitx-uploads-dev-jdfirme", prefix: str = "demo_user") -> re.Pattern[str]:
    """The spec's snapshot-URI regex (full ``s3://`` URI), offsets ``\\d{6,}``."""
    return re.compile(rf"^s3://{re.escape(bucket)}/{snapshot_key_regex(prefix).pattern[1:]}", re.ASCII)


def is_uuid(value: str) -> bool:
    return bool(_UUID.fullmatch(value))


@dataclass(frozen=True)
class RawKey:
    key: str
    workspace_id: str
    video_id: str
    filename: str


@dataclass(frozen=True)
class SnapshotRef:
    bucket: str
    key: str
    workspace_id: str
    video_id: str
    workspace_code: str
    camera_code: str
    track_id: int
    offset_ms: int

    @property
    def uri(self) -> str:
        return f"s3://{self.bucket}/{self.key}"


def unsafe_key_reason(key: str) -> str | None:
    """Why ``key`` is a path trick (``..``, ``.``, ``//``, percent-encoding, backslash, control
    characters, Unicode look-alikes of ``/``, ``\\`` and ``.`` or invisible format characters:
    anything NFKC normalisation would change), or None when it is a plain key.  Other
    non-ASCII file names (``Cámara 1.mp4``) stay allowed.  S3 treats keys literally, but the same key
    ends up in file names, logs and presigned URLs, where these tricks do bite."""
    if "%" in key:
        return "contains '%' (percent-encoding is not allowed in keys)"
    if "\\" in key:
        return "contains a backslash"
    if any(ord(c) < 32 or ord(c) == 127 for c in key):
        return "contains control characters"
    if unicodedata.normalize("NFKC", key) != key or any(
            c in _CONFUSABLES or unicodedata.category(c) in ("Cf", "Cc", "Zl", "Zp") for c in key):
        return ("contains Unicode look-alike or invisible characters (e.g. a fullwidth or division slash, "
                "a one-dot leader, a zero-width or bidi mark); use plain characters")
    if key.startswith("/") or "//" in key:
        return "contains an empty path segment ('//' or a leading '/')"
    if any(seg in (".", "..") for seg in key.split("/")):
        return "contains a '.' or '..' path segment"
    return None


def parse_raw_key(key: str, prefix: str = "demo_user") -> RawKey:
    """Parse ``<prefix>/<wid>/<vid>/raw/<name>.mp4``; ValueError says what is wrong."""
    trick = unsafe_key_reason(key)
    if trick:
        raise ValueError(f"s3_key_raw {key!r} {trick}")
    m = raw_key_regex(prefix).match(key)
    if not m:
        raise ValueError(
            f"s3_key_raw {key!r} does not match {prefix}/<workspace_id>/<video_id>/raw/<name>.mp4 "
            "(lower-case UUIDs, .mp4 suffix)"
        )
    return RawKey(key=key, workspace_id=m.group(1), video_id=m.group(2), filename=m.group(3))


def build_raw_key(workspace_id: str, video_id: str, filename: str, prefix: str = "demo_user") -> str:
    key = f"{prefix}/{workspace_id}/{video_id}/raw/{filename}"
    parse_raw_key(key, prefix)  # the builder never produces what the parser refuses
    return key


def snapshot_name(workspace_code: str, camera_code: str, track_id: int, offset_ms: int) -> str:
    """``CTX1005_CAM1_000305_002272.jpg``; numbers padded to at least 6 digits."""
    if track_id < 0 or offset_ms < 0:
        raise ValueError(f"track_id and offset_ms must be >= 0, got {track_id}, {offset_ms}")
    if (not re.fullmatch(WORKSPACE_CODE_RE, workspace_code, re.ASCII)
            or not re.fullmatch(CAMERA_CODE_RE, camera_code, re.ASCII)):
        raise ValueError(f"workspace_code {workspace_code!r} / camera_code {camera_code!r} must look like CTX1005 / CAM1")
    return f"{workspace_code}_{camera_code}_{int(track_id):06d}_{int(offset_ms):06d}.jpg"


def build_snapshot_key(workspace_id: str, video_id: str, workspace_code: str, camera_code: str,
                       track_id: int, offset_ms: int, prefix: str = "demo_user") -> str:
    """Deterministic snapshot key: the same track and offset always give the same key."""
    if not (is_uuid(workspace_id) and is_uuid(video_id)):
        raise ValueError(f"workspace_id {workspace_id!r} and video_id {video_id!r} must be lower-case UUIDs")
    return f"{prefix}/{workspace_id}/{video_id}/snapshots/" + snapshot_name(workspace_code, camera_code, track_id, offset_ms)


def build_snapshot_uri(bucket: str, key: str) -> str:
    return f"s3://{bucket}/{key}"


def parse_snapshot_uri(uri: str, bucket: str = "cvitx-uploads-dev-jdfirme", prefix: str = "demo_user") -> SnapshotRef:
    """Parse a full snapshot URI; ValueError names the mismatch (bucket, prefix or name)."""
    if not uri.startswith("s3://"):
        raise ValueError(f"snapshot_s3_key {uri!r} must be a full s3:// URI")
    got_bucket, _, key = uri[5:].partition("/")
    if got_bucket != bucket:
        raise ValueError(f"snapshot_s3_key {uri!r} is in bucket {got_bucket!r}, expected the configured bucket {bucket!r}")
    trick = unsafe_key_reason(key)
    if trick:
        raise ValueError(f"snapshot_s3_key {uri!r} {trick}")
    m = snapshot_key_regex(prefix).match(key)
    if not m:
        raise ValueError(
            f"snapshot_s3_key {uri!r} does not match s3://{bucket}/{prefix}/<wid>/<vid>/snapshots/"
            "CTX####_CAM#_<track 6+ digits>_<offset 6+ digits>.jpg"
        )
    wid, vid, wcode, ccode, track, offset = m.groups()
    return SnapshotRef(bucket=bucket, key=key, workspace_id=wid, video_id=vid, workspace_code=wcode,
                       camera_code=ccode, track_id=int(track), offset_ms=int(offset))

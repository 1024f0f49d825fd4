"""S3/SQS adapters against moto_server and the Postgres adapter against a real server."""
import socket

import psycopg2
import pytest

from video_analysis.worker_utils.db import Database, apply_migrations, translate_db_error
from video_analysis.worker_utils.errors import BadMedia, MissingObject, PermanentError, TransientError, ValidationFailed
from video_analysis.worker_utils.s3_store import S3Store
from video_analysis.worker_utils.sqs_queue import SqsQueues


def _unused_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_put_head_get_keeps_content_type(provisioned):
    s3 = S3Store(provisioned)
    s3.put_bytes("demo_user/x/snap.jpg", b"\xff\xd8\xff" + b"0" * 100, "image/jpeg")
    info = s3.head("demo_user/x/snap.jpg")
    assert (info.size, info.content_type) == (103, "image/jpeg")
    data, info2 = s3.get_bytes("demo_user/x/snap.jpg", max_bytes=1000)
    assert data.startswith(b"\xff\xd8\xff") and info2.content_type == "image/jpeg"
    with pytest.raises(BadMedia, match="over the 50-byte limit"):
        s3.get_bytes("demo_user/x/snap.jpg", max_bytes=50)


def test_streamed_download_to_temp_file(provisioned, tmp_path):
    s3 = S3Store(provisioned)
    payload = bytes(range(256)) * 9000  # > 2 chunks
    s3.put_bytes("demo_user/raw.mp4", payload, "video/mp4")
    path = s3.download_to_file("demo_user/raw.mp4", tmp_path, suffix=".mp4")
    assert path.read_bytes() == payload and path.suffix == ".mp4"
    with pytest.raises(BadMedia, match="max_video_bytes"):
        s3.download_to_file("demo_user/raw.mp4", tmp_path, max_bytes=1000)
    assert sorted(p.name for p in tmp_path.iterdir()) == [path.name]  # the refused one left nothing


def test_missing_object_is_permanent(provisioned):
    with pytest.raises(MissingObject, match="does not exist"):
        S3Store(provisioned).head("demo_user/nope.jpg")
    with pytest.raises(MissingObject):
        S3Store(provisioned).download_to_file("demo_user/nope.mp4")


def test_unreachable_endpoint_is_transient(settings):
    dead = f"http://127.0.0.1:{_unused_port()}"
    s = settings.replace(s3_endpoint_url=dead, sqs_endpoint_url=dead)
    with pytest.raises(TransientError, match="unreachable"):
        S3Store(s).head("demo_user/x.jpg")
    with pytest.raises(TransientError):
        SqsQueues(s).receive(s.video_queue, wait_s=0)


def test_missing_queue_says_run_setup(settings):
    with pytest.raises(PermanentError, match="run `python -m video_analysis setup`"):
        SqsQueues(settings).url("no-such-queue")


def test_delete_many_deletes_in_batches_of_ten_and_reports_refused_entries(provisioned):
    sqs, q = SqsQueues(provisioned), provisioned.video_dlq  # an empty queue of this test's own stack
    for i in range(13):
        sqs.send_raw(q, f"m{i}")
    got = []
    while len(got) < 13:
        batch = sqs.receive(q, 10, wait_s=1, visibility_s=60)
        assert batch, f"only {len(got)} of 13 messages came back"
        got += batch
    handles = [m.receipt_handle for m in got]
    assert sqs.delete_many(q, handles[:5] + ["not-a-receipt-handle"] + handles[5:]) == {5: "ReceiptHandleIsInvalid"}
    assert sqs.receive(q, 10, wait_s=0, visibility_s=0) == []  # all 13 gone, over two calls
    assert sqs.delete_many(q, []) == {}


def test_send_json_validates_before_sending(provisioned):
    sqs = SqsQueues(provisioned)
    with pytest.raises(ValidationFailed, match="snapshot_ready"):
        sqs.send_json(provisioned.snapshot_queue, {"event": "SNAPSHOT_READY"}, "snapshot_ready")
    assert sqs.receive(provisioned.snapshot_queue, wait_s=0) == []


def test_migrations_are_idempotent(db_url):
    db = Database(db_url)
    assert apply_migrations(db) == []  # the template already had them
    tables = {r["table_name"] for r in db.fetchall(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'")}
    assert {"videos", "image_analyses", "image_analysis_results", "schema_migrations"} <= tables


def test_fresh_database_gets_all_migrations(stack, unique):
    url = stack.pg.create_database(unique + "fresh")
    db = Database(url)
    assert apply_migrations(db) == ["0001_init", "0002_track_span", "0003_snapshot_box", "0004_video_segments"]
    assert apply_migrations(db) == []


@pytest.mark.parametrize("sql,kind", [
    ("INSERT INTO videos (id, workspace_id, workspace_code, camera_code, s3_key_raw, status) "
     "VALUES (gen_random_uuid(), gen_random_uuid(), 'CTX1005', 'CAM1', 'k', 'finished')", PermanentError),
    ("INSERT INTO videos (id, workspace_id, workspace_code, camera_code, s3_key_raw) "
     "VALUES (gen_random_uuid(), gen_random_uuid(), 'BAD', 'CAM1', 'k')", PermanentError),
    ("SELECT 1/0", PermanentError),
    ("SELECT * FROM no_such_table", TransientError),
])
def test_db_errors_are_typed(db_url, sql, kind):
    db = Database(db_url)
    with pytest.raises(kind) as e:
        db.execute(sql)
    assert type(e.value) is kind
    assert db.fetchone("SELECT 1 AS one") == {"one": 1}  # the connection is usable afterwards


def test_db_unreachable_is_transient():
    db = Database(f"postgresql://cvitx@127.0.0.1:{_unused_port()}/cvitx")
    with pytest.raises(TransientError, match="database unavailable"):
        db.fetchone("SELECT 1")


def test_db_reconnects_after_the_connection_dies(db_url):
    db = Database(db_url)
    pid = db.fetchone("SELECT pg_backend_pid() AS pid")["pid"]
    Database(db_url).fetchone("SELECT pg_terminate_backend(%s)", (pid,))
    with pytest.raises(TransientError):
        db.fetchone("SELECT 1")
    assert db.fetchone("SELECT 1 AS one") == {"one": 1}


def test_translate_unknown_error():
    err = translate_db_error(psycopg2.InterfaceError("connection already closed"), "DB x")
    assert isinstance(err, TransientError) and "DB x" in err.reason

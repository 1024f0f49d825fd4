"""`setup` against moto_server: the spec's queue attributes, redrive to the DLQ, idempotence."""
import json

from video_analysis.worker_config import Settings
from video_analysis.worker_utils.provision import run_setup
from video_analysis.worker_utils.sqs_queue import SqsQueues


def test_setup_creates_queues_with_spec_attributes_and_is_idempotent(settings):
    first = run_setup(settings)
    # bucket and 4 queues; the test database was cloned from an already-migrated template
    assert len(first.changed) == 5 and first.unchanged == ["database migrations"]
    sqs = SqsQueues(settings)
    for queue, dlq in ((settings.video_queue, settings.video_dlq), (settings.snapshot_queue, settings.snapshot_dlq)):
        attrs = sqs.attributes(queue)
        assert attrs["VisibilityTimeout"] == "300"
        assert attrs["MessageRetentionPeriod"] == "1209600"
        assert attrs["ReceiveMessageWaitTimeSeconds"] == "10"
        redrive = json.loads(attrs["RedrivePolicy"])
        assert int(redrive["maxReceiveCount"]) == 5
        assert redrive["deadLetterTargetArn"] == sqs.attributes(dlq)["QueueArn"]
        assert sqs.attributes(dlq)["MessageRetentionPeriod"] == "1209600"
    second = run_setup(settings)
    assert second.changed == [] and len(second.unchanged) == 6


def test_setup_brings_drifted_attributes_back(settings):
    run_setup(settings)
    sqs = SqsQueues(settings)
    sqs.client.set_queue_attributes(QueueUrl=sqs.url(settings.video_queue), Attributes={"VisibilityTimeout": "30"})
    report = run_setup(settings)
    assert report.changed == [f"queue {settings.video_queue}"]
    assert sqs.attributes(settings.video_queue)["VisibilityTimeout"] == "300"


def test_sqs_redrive_moves_to_dlq_after_max_receives(settings):
    """moto's own redrive (what protects us if a worker dies every time) after maxReceiveCount."""
    s = settings.replace(max_receive_count=2, visibility_timeout_s=0, heartbeat_s=0.5)
    run_setup(s, skip_db=True)
    sqs = SqsQueues(s)
    sqs.send_raw(s.video_queue, "poison")
    for _ in range(2):
        assert len(sqs.receive(s.video_queue, 1, wait_s=1)) == 1
    assert sqs.receive(s.video_queue, 1, wait_s=1) == []
    assert [m.body for m in sqs.receive(s.video_dlq, 1, wait_s=1)] == ["poison"]
    assert isinstance(s, Settings)

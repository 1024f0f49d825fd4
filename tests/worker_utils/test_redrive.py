from video_analysis.worker_utils.redrive import redrive
from video_analysis.worker_utils.sqs_queue import SqsQueues


def test_redrive_falls_back_to_copy_on_moto_and_moves_everything(provisioned):
    s = provisioned
    sqs = SqsQueues(s)
    bodies = {f'{{"n": {i}}}' for i in range(13)}
    for b in bodies:
        sqs.send_raw(s.video_dlq, b, {"cvitx_error_reason": "boom"})
    result = redrive(sqs, s.video_dlq, s.video_queue)
    assert result.method == "copy" and result.moved == 13
    got = []
    while True:
        batch = sqs.receive(s.video_queue, 10, wait_s=1)
        if not batch:
            break
        got += batch
        for m in batch:
            sqs.delete(s.video_queue, m.receipt_handle)
    assert {m.body for m in got} == bodies
    assert all("cvitx_error_reason" not in m.message_attributes for m in got)
    assert sqs.receive(s.video_dlq, 10, wait_s=0) == []


def test_redrive_max(provisioned):
    s = provisioned
    sqs = SqsQueues(s)
    for i in range(5):
        sqs.send_raw(s.snapshot_dlq, str(i))
    assert redrive(sqs, s.snapshot_dlq, s.snapshot_queue, max_messages=2, use_move_task=False).moved == 2
    assert redrive(sqs, s.snapshot_dlq, s.snapshot_queue, use_move_task=False).moved == 3

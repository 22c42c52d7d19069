"""Model calls through Beam's cross-process proxy are sent at once (TCP_NODELAY on both ends)."""

import socket
import threading
from multiprocessing.connection import Client, Listener

from bertqa.backends.sharing import send_without_delay


def no_delay(connection) -> bool:
    sock = socket.socket(fileno=connection.fileno())
    try:
        return bool(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
    finally:
        sock.detach()


def connected_pair():
    with Listener(("127.0.0.1", 0), authkey=b"k") as listener:
        accepted = []
        thread = threading.Thread(target=lambda: accepted.append(listener.accept()))
        thread.start()
        client = Client(listener.address, authkey=b"k")
        thread.join(timeout=10)
        return client, accepted[0]


def test_proxy_connections_send_each_message_at_once_in_both_directions():
    import multiprocessing.connection

    if not getattr(multiprocessing.connection.SocketClient, "_bertqa_no_delay", False):  # no job ran here yet
        client, server = connected_pair()
        assert not no_delay(client) and not no_delay(server)  # Python's default: Nagle's algorithm on
        client.close(), server.close()
    send_without_delay()
    send_without_delay()  # idempotent
    client, server = connected_pair()
    assert no_delay(client) and no_delay(server)
    payload = bytes(range(256)) * 1024  # over 16 KiB: sent as header and payload, the case that waited
    client.send_bytes(payload)
    assert server.recv_bytes() == payload
    client.close(), server.close()


def test_a_shared_model_whose_process_died_is_started_again_and_the_call_retried(tmp_path, onnx_model):
    import functools
    import os
    import signal
    import time
    import uuid

    import numpy as np

    from bertqa.backends.base import MachineModel, load_checked, sample_inputs

    from counting_model import CountingSpec

    log = tmp_path / "loads.txt"
    load = functools.partial(load_checked, CountingSpec(onnx_model(), log=str(log)), 2, 64)
    model = MachineModel(load, f"bertqa-test-{uuid.uuid4().hex}")
    inputs = sample_inputs(2, 64)
    first = model.predict(*inputs)
    (started,) = log.read_text().split()
    os.kill(int(started), signal.SIGKILL)  # as when the SDK process that started the model's process dies
    for _ in range(100):
        try:
            os.kill(int(started), 0)
            os.waitpid(int(started), os.WNOHANG)
            time.sleep(0.05)
        except (ProcessLookupError, ChildProcessError):
            break
    again = model.predict(*inputs)
    restarted = log.read_text().split()
    assert len(restarted) == 2 and restarted[1] != started
    for before, after in zip(first, again):
        np.testing.assert_allclose(before, after, atol=1e-6)


def test_a_shared_model_answers_all_the_calls_of_a_list_in_one_round_trip(onnx_model, vocab, sample_records):
    import functools
    import uuid

    import numpy as np

    from bertqa.backends.base import MachineModel, QAModelHandler, load_checked
    from bertqa.backends.onnxruntime import OnnxRuntimeModelSpec
    from bertqa.qa.windows import Featurizer, WindowSettings
    from bertqa.qa.tokenization import wordpiece

    featurizer = Featurizer(wordpiece(vocab, True), WindowSettings(64, 24, 16))
    questions = [featurizer.featurize(r, featurizer.question_ids(r["question"]),
                                      featurizer.tokenize_passage(r["context"])) for r in sample_records[:12]]
    spec = OnnxRuntimeModelSpec(onnx_model())
    handler = QAModelHandler(spec, max_seq_length=64, max_batch_size=4)
    alone = handler.infer_questions(questions, handler.load_model())
    asked = []

    class Counted(MachineModel):
        def _call(self, name, *args):
            asked.append(name)
            return super()._call(name, *args)

    shared = Counted(functools.partial(load_checked, spec, 4, 64), f"bertqa-test-{uuid.uuid4().hex}")
    result = handler.infer_questions(questions, shared)
    assert result.windows > 3 * 4, "the list needs several model calls"
    assert [name for name in asked if name.startswith("predict")] == ["predict_calls"]
    assert result.failures == alone.failures == [None] * len(questions) and min(result.model_seconds) > 0
    np.testing.assert_allclose(result.logits, alone.logits, atol=1e-6)


def test_runinference_model_loads_log_no_resource_module_noise(caplog):
    import logging

    from apache_beam.ml.inference import base as beam_inference

    import bertqa.backends.base  # noqa: F401  (installs the filter, as unpickling the handler does on workers)

    with caplog.at_level(logging.WARNING):
        beam_inference._get_current_process_memory_in_bytes()  # what RunInference calls around a load
    assert not [r for r in caplog.records if "Resource module" in r.getMessage()]

"""ONNX export, the ONNX Runtime backend, and the TensorRT backend's code through Polygraphy's ORT runner."""

import json
import threading

import numpy as np
import onnx
import pytest
import tensorflow as tf

from bertqa.backends.base import QAModelHandler
from bertqa.backends.onnxruntime import OnnxRuntimeModelSpec
from bertqa.backends.tensorrt import (EngineMismatch, EngineSettings, PolygraphyQAModel, TensorRTModelSpec,
                                      cache_key, check_identity, engine_identity, onnx_io, profile_shapes)
from bertqa.cli import main as bertqa_main
from bertqa.demo.tiny_bert import CONVENTIONS
from bertqa.windows import Featurizer, WindowSettings, pad_batch

from test_pipeline import WINDOW_ARGS, read_rows, run_job
from conftest import cached_by_arguments, write_jsonl


@pytest.fixture(scope="module")
def onnx_model(tmp_path_factory, saved_model):
    """The tiny model exported to ONNX with `bertqa export-onnx`, per convention."""

    def build(convention, **options):
        path = str(tmp_path_factory.mktemp("onnx") / f"{convention}.onnx")
        assert bertqa_main(["export-onnx", f"--saved_model={saved_model(convention, **options)}",
                            f"--output={path}"]) == 0
        return path

    return cached_by_arguments(build)


@pytest.fixture(scope="module")
def windows(vocab, sample_records):
    featurizer = Featurizer(vocab, True, WindowSettings(max_seq_length=64, doc_stride=24, max_query_length=16))
    return [w for r in sample_records[:8] for w in featurizer.windows(
        r["id"], r["question"], featurizer.tokenize_passage(r["context"]))]


def reference(tiny_model, window):
    return tiny_model.logits(*pad_batch([window], window.length)).numpy()[0]


@pytest.mark.parametrize("convention", sorted(CONVENTIONS))
def test_export_gives_dynamic_axes_opset_17_and_the_same_logits(convention, onnx_model, tiny_model, windows,
                                                               capsys):
    path = onnx_model(convention)
    model = onnx.load(path)
    assert max(o.version for o in model.opset_import if o.domain in ("", "ai.onnx")) >= 17
    inputs, _ = onnx_io(path)
    for name, (_, shape) in inputs.items():
        assert shape[0] is None and (len(shape) == 1 or shape[1] is None), (name, shape)
    handler = QAModelHandler(OnnxRuntimeModelSpec(path), max_seq_length=64, max_batch_size=8)
    results = handler.run_inference([windows[:5], windows[5:9]], handler.load_model())
    for window, (_, logits, _) in zip(windows, results):
        expected = reference(tiny_model, window)
        np.testing.assert_allclose(logits.start_logits, expected[:, 0], atol=1e-4)
        np.testing.assert_allclose(logits.end_logits, expected[:, 1], atol=1e-4)


def test_export_reports_its_check_and_refuses_old_opsets(saved_model, tmp_path, capsys):
    path = tmp_path / "m.onnx"
    assert bertqa_main(["export-onnx", f"--saved_model={saved_model()}", f"--output={path}"]) == 0
    assert "logits match TensorFlow within" in capsys.readouterr().out
    assert bertqa_main(["export-onnx", f"--saved_model={saved_model()}", f"--output={tmp_path / 'old.onnx'}",
                        "--opset=13"]) == 1
    assert "opset 13 is too old" in capsys.readouterr().err
    assert not (tmp_path / "old.onnx").exists()


def test_onnxruntime_pipeline_answers_exactly_as_tensorflow(tmp_path, saved_model, onnx_model, vocab_path,
                                                            sample_records):
    write_jsonl(tmp_path / "q.jsonl", sample_records)
    assert any(not r["answers"] for r in sample_records)
    answers = {}
    for backend, model in (("tensorflow", saved_model("ngc")), ("onnxruntime", onnx_model("ngc"))):
        output = run_job(tmp_path / backend, tmp_path / "q.jsonl", model, vocab_path, f"--backend={backend}")
        answers[backend] = json.loads((output / "predictions.json").read_text(encoding="utf-8"))
        rows = {row["id"]: row for row in read_rows(str(output / "predictions-*.jsonl"))}
        answers[backend + "_scores"] = {key: rows[key]["score"] for key in rows}
    assert answers["onnxruntime"] == answers["tensorflow"] and len(answers["tensorflow"]) == len(sample_records)
    for key, score in answers["tensorflow_scores"].items():
        assert answers["onnxruntime_scores"][key] == pytest.approx(score, abs=1e-3)


def polygraphy_model(path, **kwargs):
    from polygraphy.backend.onnxrt import OnnxrtRunner, SessionFromOnnx

    _, outputs = onnx_io(path)
    return PolygraphyQAModel(lambda: OnnxrtRunner(SessionFromOnnx(path)), outputs, kwargs)


def test_tensorrt_code_path_binds_inputs_by_name_and_reads_outputs_by_name(onnx_model, tiny_model, windows):
    # NGC order and names, int64 inputs, outputs reordered by the converter (end_logits first).
    path = onnx_model("ngc", dtype=tf.int64)
    model = polygraphy_model(path)
    assert [name for name, _ in model._inputs.items()] and model._inputs["input_ids"][0] == np.int64
    handler = QAModelHandler(TensorRTModelSpec(path, EngineSettings(8, 64)), max_seq_length=64, max_batch_size=8)
    (_, logits, _), = handler.run_inference([windows[:1]], model)
    np.testing.assert_allclose(logits.start_logits, reference(tiny_model, windows[0])[:, 0], atol=1e-4)
    model.close()


def test_tensorrt_code_path_gives_each_thread_its_own_runner(onnx_model, tiny_model, windows):
    model = polygraphy_model(onnx_model("huggingface"))
    handler = QAModelHandler(TensorRTModelSpec("x.onnx", EngineSettings(8, 64)), max_seq_length=64, max_batch_size=8)
    results, errors = {}, []
    barrier = threading.Barrier(4)

    def work(index):
        try:
            barrier.wait()
            for _ in range(3):
                results[index] = handler.run_inference([windows[index::4]], model)
        except Exception as error:  # surfaced below
            errors.append(error)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert len(model.runners) == 5  # the loading thread's and one per worker thread, none shared
    assert len({id(runner) for runner in model.runners}) == 5
    for index, outputs in results.items():
        for window, (_, logits, _) in zip(windows[index::4], outputs):
            np.testing.assert_allclose(logits.end_logits, reference(tiny_model, window)[:, 1], atol=1e-4)
    model.close()
    assert model.runners == []


def test_profile_covers_batch_sizes_and_sequence_buckets():
    inputs = {"input_ids": (np.int32, [None, None]), "attention_mask": (np.int32, [None, None]),
              "unique_ids": (np.int64, [None])}
    shapes = profile_shapes(inputs, EngineSettings(max_batch_size=32, max_seq_length=384))
    assert shapes["input_ids"] == ((1, 64), (32, 192), (32, 384))
    assert shapes["unique_ids"] == ((1,), (32,), (32,))
    fixed = profile_shapes({"input_ids": (np.int32, [None, 128])}, EngineSettings(16, 100))
    assert fixed["input_ids"] == ((1, 128), (16, 128), (16, 128))
    odd = profile_shapes({"input_ids": (np.int32, [None, None])}, EngineSettings(4, 100))
    assert odd["input_ids"][2] == (4, 128)  # windows pad to multiples of 64


def test_cache_keys_and_mismatch_detection():
    settings = EngineSettings(32, 384)
    base = engine_identity("NVIDIA L4", "8.9", "10.16.1.11", "abc", settings)
    assert cache_key(base) == cache_key(dict(base))
    variants = [engine_identity("Tesla T4", "7.5", "10.16.1.11", "abc", settings),
                engine_identity("NVIDIA L4", "8.9", "10.15.1.29", "abc", settings),
                engine_identity("NVIDIA L4", "8.9", "10.16.1.11", "abd", settings),
                engine_identity("NVIDIA L4", "8.9", "10.16.1.11", "abc", EngineSettings(32, 384, "fp32"))]
    assert len({cache_key(v) for v in [base, *variants]}) == 5
    check_identity(base, base)
    with pytest.raises(EngineMismatch, match=r"gpu_name: engine 'NVIDIA L4', here 'Tesla T4'.*tensorrt_version"):
        check_identity(base, {**variants[0], "tensorrt_version": "10.15.1.29"})


def test_tensorrt_backend_without_tensorrt_says_what_to_do(onnx_model):
    pytest.importorskip("polygraphy")
    try:
        import tensorrt  # noqa: F401
        pytest.skip("tensorrt is installed here: the GPU tests below cover it")
    except ImportError:
        pass
    with pytest.raises(RuntimeError, match="needs the tensorrt module .* use --backend=onnxruntime"):
        TensorRTModelSpec(onnx_model(), EngineSettings(8, 64)).load()


def test_tensorrt_engine_build_and_inference_on_a_gpu(onnx_model, tiny_model, windows, tmp_path):
    pytest.importorskip("tensorrt", reason="needs the tensorrt module and a GPU; run `make test` inside the GPU image")
    spec = TensorRTModelSpec(onnx_model(), EngineSettings(8, 64, precision="fp32"), cache_dir=str(tmp_path))
    model = QAModelHandler(spec, max_seq_length=64, max_batch_size=8).load_model()
    (_, logits, _), = QAModelHandler(spec, 64, 8).run_inference([windows[:1]], model)
    np.testing.assert_allclose(logits.start_logits, reference(tiny_model, windows[0])[:, 0], atol=1e-3)
    assert list(tmp_path.glob("bertqa-*.engine")) and list(tmp_path.glob("bertqa-*.engine.json"))


def test_a_gpu_worker_without_the_onnx_runtime_cuda_provider_fails_at_load(onnx_model):
    import onnxruntime

    from bertqa.backends.base import GpuUnavailableError, load_checked

    spec = OnnxRuntimeModelSpec(onnx_model())
    assert "CUDAExecutionProvider" not in onnxruntime.get_available_providers()  # the CPU package, as in CI
    with pytest.raises(GpuUnavailableError, match="has no CUDA execution provider"):
        load_checked(spec, 2, 64, require_gpu=True)

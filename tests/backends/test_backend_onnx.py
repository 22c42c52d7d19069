"""ONNX export, the ONNX Runtime backend, and the TensorRT backend's code through Polygraphy's ORT runner."""

import dataclasses
import json
import threading

import numpy as np
import onnx
import pytest
import tensorflow as tf

from bertqa.backends.base import QAModelHandler
from bertqa.backends.onnxruntime import OnnxRuntimeModelSpec
from bertqa.backends.accuracy import AccuracyGate
from bertqa.backends.engine_cache import EngineMismatch, check_identity
from bertqa.backends.tensorrt import (PolygraphyQAModel, TensorRTModelSpec, cache_key,
                                      check_profiles_cover, engine_identity, onnx_io, profile_shapes)
from bertqa.cli import main as bertqa_main
from bertqa.demo.tiny_bert import CONVENTIONS
from bertqa.qa.windows import Featurizer, WindowSettings, pad_batch
from bertqa.qa.tokenization import wordpiece
from bertqa.io.tokenizer_files import TokenizerSpec

from conftest import DECODE, engine_settings, read_rows, run_job, window_logits_of, write_jsonl


GATE = AccuracyGate(TokenizerSpec("vocab.txt"), WindowSettings(64, 24, 16), 8, DECODE, 0.02)  # only read when a build runs


@pytest.fixture(scope="module")
def windows(vocab, sample_records):
    featurizer = Featurizer(wordpiece(vocab, True), WindowSettings(max_seq_length=64, doc_stride=24, max_query_length=16))
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
    model = handler.load_model()
    results = window_logits_of(windows[:5], model) + window_logits_of(windows[5:9], model)
    for window, (start, end) in zip(windows[:9], results, strict=True):
        expected = reference(tiny_model, window)
        np.testing.assert_allclose(start, expected[:, 0], atol=1e-4)
        np.testing.assert_allclose(end, expected[:, 1], atol=1e-4)


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


def test_a_questions_packed_logits_equal_its_windows_own_and_survive_a_stage_boundary(onnx_model, vocab,
                                                                                       sample_records):
    import pickle

    from bertqa.io.records import Question

    featurizer = Featurizer(wordpiece(vocab, True), WindowSettings(max_seq_length=64, doc_stride=24, max_query_length=16))
    records = [Question(r["id"], r["question"], r["context"], f"q.jsonl:{n}", (n,)) for n, r in
               enumerate(sample_records[:10])]
    questions = [featurizer.featurize(r, featurizer.question_ids(r.question), featurizer.tokenize_passage(r.context))
                 for r in records]
    handler = QAModelHandler(OnnxRuntimeModelSpec(onnx_model()), max_seq_length=64, max_batch_size=8)
    model = handler.load_model()
    (result,) = handler.run_inference([questions], model)
    crossed = pickle.loads(pickle.dumps(result))  # as Beam's fallback coder does between stages
    contexts = sum(len(question.question.context) for question in questions)
    assert len(pickle.dumps(result)) < 2 * (result.logits.nbytes + contexts * 4)
    assert [q.question for q in crossed.questions] == [q.question for q in questions]
    assert crossed.failures == [None] * len(questions)
    for position, question in enumerate(questions):
        alone = question.windows()
        assert crossed.questions[position].spans == question.spans and len(alone) > 0
        for packed, window, (start, end) in zip(crossed.window_logits(position), alone,
                                                window_logits_of(alone, model), strict=True):
            assert (packed.index, packed.context_start, packed.doc_offset) == (window.index, window.context_start,
                                                                                window.doc_offset)
            assert packed.max_context.tolist() == window.max_context.tolist()
            np.testing.assert_allclose(packed.start_logits, start, atol=1e-6)
            np.testing.assert_allclose(packed.end_logits, end, atol=1e-6)
    assert crossed.windows == sum(len(question.spans) for question in questions)


def test_tensorrt_code_path_binds_inputs_by_name_and_reads_outputs_by_name(onnx_model, tiny_model, windows):
    # NGC order and names, int64 inputs, outputs reordered by the converter (end_logits first).
    path = onnx_model("ngc", dtype=tf.int64)
    model = polygraphy_model(path)
    assert [name for name, _ in model._inputs.items()] and model._inputs["input_ids"][0] == np.int64
    (start, _), = window_logits_of(windows[:1], model)
    np.testing.assert_allclose(start, reference(tiny_model, windows[0])[:, 0], atol=1e-4)
    model.close()


def test_tensorrt_code_path_bounds_contexts_whatever_the_number_of_threads(onnx_model, tiny_model, windows):
    made = []

    def make_runner():
        from polygraphy.backend.onnxrt import OnnxrtRunner, SessionFromOnnx

        made.append(OnnxrtRunner(SessionFromOnnx(onnx_model("huggingface"))))
        return made[-1]

    _, outputs = onnx_io(onnx_model("huggingface"))
    model = PolygraphyQAModel(make_runner, outputs, {}, contexts=2)
    results, errors = {}, []
    barrier = threading.Barrier(16)

    def work(index):
        try:
            barrier.wait()  # all 16 call at once, as Beam's harness threads may
            for _ in range(3):
                results[index] = window_logits_of(windows[index % 4::4], model)
        except Exception as error:  # surfaced below
            errors.append(error)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert len(made) == 2 and len(model.pool.runners) == 2  # never more contexts than the pool's size
    for index, outputs in results.items():
        for window, (_, end) in zip(windows[index % 4::4], outputs, strict=True):
            np.testing.assert_allclose(end, reference(tiny_model, window)[:, 1], atol=1e-4)
    model.close()
    assert model.pool.runners == [] and all(not runner.is_active for runner in made)


class ReusingRunner:
    """Polygraphy's ONNX-Runtime runner returning views of buffers its next call overwrites, as TrtRunner does."""

    def __init__(self, runner):
        self._runner = runner
        self._buffers = {}

    def __getattr__(self, name):
        return getattr(self._runner, name)

    def infer(self, feeds):
        views = {}
        for name, value in self._runner.infer(feeds).items():
            buffer = self._buffers.setdefault(name, np.empty(4096, dtype=value.dtype))
            buffer[: value.size] = value.ravel()
            views[name] = buffer[: value.size].reshape(value.shape)
        return views


def test_results_of_earlier_calls_survive_later_calls_on_the_same_context(onnx_model, tiny_model, windows):
    from polygraphy.backend.onnxrt import OnnxrtRunner, SessionFromOnnx

    path = onnx_model("huggingface")
    model = PolygraphyQAModel(lambda: ReusingRunner(OnnxrtRunner(SessionFromOnnx(path))), onnx_io(path)[1], {},
                              contexts=1)
    first = model.predict(*pad_batch(windows[:1], 64))
    model.predict(*pad_batch(windows[1:2], 64))  # the one context's buffers now hold the second window's
    np.testing.assert_allclose(first[0][0, : windows[0].length], reference(tiny_model, windows[0])[:, 0], atol=1e-4)
    model.close()


def test_profile_covers_batch_sizes_and_sequence_buckets():
    inputs = {"input_ids": (np.int32, [None, None]), "attention_mask": (np.int32, [None, None]),
              "unique_ids": (np.int64, [None])}
    shapes = profile_shapes(inputs, engine_settings(max_batch_size=32, max_seq_length=384))
    assert shapes["input_ids"] == ((1, 64), (32, 192), (32, 384))
    assert shapes["unique_ids"] == ((1,), (32,), (32,))
    fixed = profile_shapes({"input_ids": (np.int32, [None, 128])}, engine_settings(16, 100))
    assert fixed["input_ids"] == ((1, 128), (16, 128), (16, 128))
    odd = profile_shapes({"input_ids": (np.int32, [None, None])}, engine_settings(4, 100))
    assert odd["input_ids"][2] == (4, 128)  # windows pad to multiples of 64


def test_cache_keys_and_mismatch_detection():
    settings = engine_settings(32, 384)
    inputs = {"input_ids": (np.int32, [None, None])}
    profiles = profile_shapes(inputs, settings)
    base = engine_identity("NVIDIA L4", "8.9", "10.16.1.11", "abc", settings, profiles)
    assert cache_key(base) == cache_key(dict(base))
    assert base["format"] == 2 and base["builder"] == {"fp16": True, "normalization_compute": "fp32"}
    assert base["profiles"] == {"input_ids": [[1, 64], [32, 192], [32, 384]]}
    variants = [engine_identity("Tesla T4", "7.5", "10.16.1.11", "abc", settings, profiles),
                engine_identity("NVIDIA L4", "8.9", "10.15.1.29", "abc", settings, profiles),
                engine_identity("NVIDIA L4", "8.9", "10.16.1.11", "abd", settings, profiles),
                engine_identity("NVIDIA L4", "8.9", "10.16.1.11", "abc", engine_settings(32, 384, precision="fp32"),
                                profiles),
                engine_identity("NVIDIA L4", "8.9", "10.16.1.11", "abc", settings,
                                profile_shapes({"input_ids": (np.int32, [None, 128])}, settings)),
                {**base, "format": 1}]
    assert len({cache_key(v) for v in [base, *variants]}) == 7
    check_identity(base, base)
    with pytest.raises(EngineMismatch, match=r"gpu_name: engine 'NVIDIA L4', here 'Tesla T4'.*tensorrt_version"):
        check_identity(base, {**variants[0], "tensorrt_version": "10.15.1.29"})


def test_the_context_pool_is_cut_to_what_the_gpus_free_memory_holds(caplog):
    from bertqa.backends.tensorrt import GpuMemoryError, contexts_that_fit

    mib = 2**20
    assert contexts_that_fit(2, 1000 * mib, 16000 * mib) == 2
    assert contexts_that_fit(4, 3000 * mib, 8000 * mib) == 2  # 90% of 8000 MiB holds two of 3000
    assert "--tensorrt_contexts=4: 2 fit in the GPU's 8000 MiB free (3000 MiB each); using 2" in caplog.text
    with pytest.raises(GpuMemoryError, match="needs 5000 MiB .* the GPU has 4000 MiB free .* lower either"):
        contexts_that_fit(2, 5000 * mib, 4000 * mib)


def test_an_engine_whose_profile_covers_the_job_is_accepted():
    settings = engine_settings(64, 384)
    check_profiles_cover(profile_shapes({"input_ids": (np.int32, [None, None])}, settings), settings)
    check_profiles_cover({"input_ids": ((1, 32), (64, 256), (128, 512))}, settings)  # more than needed
    check_profiles_cover({"input_ids": ((1, 384), (64, 384), (64, 384))}, settings)  # fixed length: padded to it
    check_profiles_cover({"unique_ids": ((1,), (64,), (64,))}, settings)


@pytest.mark.parametrize("profile, settings, message", [
    ({"input_ids": ((1, 64), (64, 192), (64, 384))}, engine_settings(128, 384),
     r"--max_batch_size=128: input input_ids takes batches of 1 to 64 windows"),
    ({"input_ids": ((8, 64), (64, 192), (64, 384))}, engine_settings(64, 384),
     r"--max_batch_size=64: input input_ids takes batches of 8 to 64 windows"),
    ({"input_ids": ((1, 64), (64, 192), (64, 384))}, engine_settings(64, 512),
     r"--max_seq_length=512: input input_ids takes 64 to 384 tokens, the job sends windows padded to multiples "
     r"of 64 up to 512"),
    ({"input_ids": ((1, 128), (64, 192), (64, 384))}, engine_settings(64, 384),
     r"--max_seq_length=384: input input_ids takes 128 to 384 tokens"),
    ({"input_ids": ((1, 256), (64, 256), (64, 256))}, engine_settings(64, 384),
     r"--max_seq_length=384: input input_ids takes 256 to 256 tokens"),
])
def test_an_engine_whose_profile_does_not_cover_the_job_is_refused_naming_parameter_and_limits(profile, settings,
                                                                                             message):
    with pytest.raises(EngineMismatch, match="optimization profile does not cover this job: " + message):
        check_profiles_cover(profile, settings)


def test_tensorrt_backend_without_tensorrt_says_what_to_do(onnx_model):
    pytest.importorskip("polygraphy")
    try:
        import tensorrt  # noqa: F401
        pytest.skip("tensorrt is installed here: the GPU tests below cover it")
    except ImportError:
        pass
    with pytest.raises(RuntimeError, match="needs the tensorrt module .* use --backend=onnxruntime"):
        TensorRTModelSpec(onnx_model(), engine_settings(8, 64), GATE).load()


def test_build_engine_without_tensorrt_says_where_to_run_it(onnx_model, vocab_path, capsys):
    try:
        import tensorrt  # noqa: F401
        pytest.skip("tensorrt is installed here: the GPU test builds engines")
    except ImportError:
        pass
    assert bertqa_main(["build-engine", f"--onnx={onnx_model()}", "--output=x.engine",
                        f"--vocab_path={vocab_path}"]) == 2
    assert "needs TensorRT (the tensorrt module), which only the GPU image has" in capsys.readouterr().err


def test_build_engine_takes_the_job_parameters_and_refuses_what_bertqa_run_refuses(vocab_path, capsys):
    from bertqa.tools.build_engine import engine_params

    args, params = engine_params(["--onnx=m.onnx", "--output=m.engine", f"--vocab_path={vocab_path}",
                                  "--max_seq_length=128", "--doc_stride=48", "--max_query_length=32",
                                  "--max_changed_spans=0.01", "--n_best_size=5"])
    assert (args.onnx, args.output) == ("m.onnx", "m.engine")
    assert params.engine_settings == engine_settings(params.max_batch_size, 128, precision="fp16", workspace_mib=4096)  # auto: fp16 on a GPU
    assert params.accuracy_gate.max_changed_spans == 0.01 and params.accuracy_gate.decode_settings.n_best_size == 5
    assert params.accuracy_gate.window_settings == WindowSettings(128, 48, 32)
    for wrong, expected in ((["--doc_stride=1000"], "doc_stride=1000 is larger than the passage part of a window"),
                            (["--max_seq_length=70000"], "--max_seq_length=70000: Input should be less than"),
                            (["--precision=fp8"], "--precision=fp8"),
                            (["--input=q.jsonl"], "unrecognized arguments: --input=q.jsonl"),
                            ([], "no tokenizer: give --vocab_path")):
        tokenizer = [] if not wrong else [f"--vocab_path={vocab_path}"]
        with pytest.raises(SystemExit):
            engine_params(["--onnx=m.onnx", "--output=m.engine", *tokenizer, *wrong])
        assert expected in capsys.readouterr().err, wrong


def test_build_engines_false_serves_only_an_engine_cached_for_this_gpu_and_held_to_this_jobs_gate(
        onnx_model, vocab_path, tmp_path, monkeypatch):
    """All of a job's path to its engine but the build and the engine's own inference, which need TensorRT and a GPU
    (test_tensorrt_engine_build_and_inference_on_a_gpu): the cache entry of this GPU, TensorRT version, ONNX file and
    settings; with --build_engines=false a miss is refused and a hit served; a hit gated under a looser limit than
    this job's is refused."""
    from bertqa.backends import engine_cache, tensorrt
    from bertqa.backends.accuracy import AccuracyGateError, AccuracyReport

    builds = []

    def build(*args):
        builds.append(args)
        return b"engine", AccuracyReport(windows=100, max_start_logit_difference=0.1, max_end_logit_difference=0.1,
                                         changed_spans=1)

    monkeypatch.setattr(tensorrt, "local_gpu", lambda: ("NVIDIA L4", "8.9"))
    monkeypatch.setattr(tensorrt, "gated_engine", build)
    monkeypatch.setattr(engine_cache, "machine_cache_dir", lambda: str(tmp_path / "machine"))
    gate = dataclasses.replace(GATE, tokenizer=TokenizerSpec(vocab_path), max_changed_spans=0.02)
    cached_only = TensorRTModelSpec(onnx_model(), engine_settings(8, 64, precision="fp16"), gate,
                                    cache_dir=str(tmp_path / "shared"), build_engines=False)
    with pytest.raises(EngineMismatch, match=r"no cached engine for this GPU \(NVIDIA L4, sm 8.9\), TensorRT 10.16.1 "
                                             r"and these settings .* or .*shared, and --build_engines=false"):
        cached_only._engine_bytes("10.16.1")
    assert not builds

    assert dataclasses.replace(cached_only, build_engines=True)._engine_bytes("10.16.1") == b"engine"
    assert len(builds) == 1 and len(list((tmp_path / "shared").glob("bertqa-*.engine"))) == 1
    for entry in (tmp_path / "machine").glob("bertqa-*.engine*"):
        entry.unlink()  # a fresh worker: only the shared cache has it
    assert cached_only._engine_bytes("10.16.1") == b"engine" and len(builds) == 1  # served, not built
    stricter = dataclasses.replace(cached_only, gate=dataclasses.replace(gate, max_changed_spans=0.005))
    with pytest.raises(AccuracyGateError, match=r"changed in 1 of 100 windows \(1.0%\), more than "
                                                r"--max_changed_spans=0.005"):
        stricter._engine_bytes("10.16.1")
    with pytest.raises(EngineMismatch, match="TensorRT 10.17.0 .* --build_engines=false"):
        cached_only._engine_bytes("10.17.0")  # another TensorRT: another entry
    assert len(builds) == 1


def test_tensorrt_engine_build_and_inference_on_a_gpu(onnx_model, tiny_model, windows, vocab_path, tmp_path):
    pytest.importorskip("tensorrt", reason="needs the tensorrt module and a GPU; run `make test` inside the GPU image")
    from polygraphy.backend.trt import engine_from_bytes

    from bertqa.backends.tensorrt import engine_profiles

    settings = engine_settings(8, 64, precision="fp16")
    gate = dataclasses.replace(GATE, tokenizer=TokenizerSpec(vocab_path), max_changed_spans=1.0)  # random weights: flat logits
    spec = TensorRTModelSpec(onnx_model(), settings, gate, cache_dir=str(tmp_path))
    model = QAModelHandler(spec, max_seq_length=64, max_batch_size=8).load_model()
    (start, _), = window_logits_of(windows[:1], model)
    np.testing.assert_allclose(start, reference(tiny_model, windows[0])[:, 0], atol=2e-2)
    (engine,) = tmp_path.glob("bertqa-*.engine")
    profiles = engine_profiles(engine_from_bytes(engine.read_bytes()))
    assert profiles == profile_shapes(onnx_io(onnx_model())[0], settings)
    with pytest.raises(EngineMismatch, match="--max_batch_size=16: input .* takes batches of 1 to 8"):
        check_profiles_cover(profiles, engine_settings(16, 64))


def test_a_gpu_worker_without_the_onnx_runtime_cuda_provider_fails_at_load(onnx_model):
    import onnxruntime

    from bertqa.backends.base import GpuUnavailableError, load_checked

    spec = OnnxRuntimeModelSpec(onnx_model())
    assert "CUDAExecutionProvider" not in onnxruntime.get_available_providers()  # the CPU package, as in CI
    with pytest.raises(GpuUnavailableError, match="has no CUDA execution provider"):
        load_checked(spec, 2, 64, require_gpu=True)


def test_tf2onnx_runs_without_its_per_pass_graph_copies_and_the_setting_is_put_back(saved_model, tmp_path,
                                                                                 monkeypatch):
    import os

    import tf2onnx

    from bertqa.tools.export_onnx import export_onnx

    seen = []
    convert = tf2onnx.convert.from_function

    def recording(*args, **kwargs):
        seen.append(os.environ.get("TF2ONNX_CATCH_ERRORS"))
        return convert(*args, **kwargs)

    monkeypatch.setattr(tf2onnx.convert, "from_function", recording)
    monkeypatch.delenv("TF2ONNX_CATCH_ERRORS", raising=False)
    export_onnx(saved_model(), str(tmp_path / "lean.onnx"))
    assert seen == ["false"] and "TF2ONNX_CATCH_ERRORS" not in os.environ


@pytest.mark.parametrize("args, share, expected", [
    (["--runner=DataflowRunner"], False, 1),  # one SDK process per vCPU: one thread each
    (["--runner=DataflowRunner"], True, 0),  # the one shared model process keeps ONNX Runtime's default
    ([], False, 0),  # a local run in one process: every core
    (["--direct_num_workers=2", "--direct_running_mode=multi_processing"], False, "cores/2"),
    (["--direct_num_workers=0", "--direct_running_mode=multi_processing"], False, 1),  # 0 = a process per core
])
def test_each_process_gets_its_share_of_the_cores_for_onnx_runtime(args, share, expected, tmp_path):
    import os

    from apache_beam.options.pipeline_options import PipelineOptions

    from bertqa.job.answer import threads_per_process
    from bertqa.params import build_params

    gpu = {"gpu_type": "nvidia-l4"} if share else {}
    params = build_params({"input": "q.jsonl", "output": str(tmp_path), "model_path": "m.onnx",
                           "vocab_path": "v.txt", "backend": "onnxruntime", **gpu})
    if expected == "cores/2":
        expected = max(1, (os.cpu_count() or 1) // 2) if (os.cpu_count() or 1) > 1 else 1
    assert threads_per_process(params, PipelineOptions(args)) == expected


def test_the_onnx_session_runs_with_the_threads_it_was_given(onnx_model):
    from bertqa.backends.onnxruntime import OnnxRuntimeQAModel

    assert OnnxRuntimeQAModel(onnx_model(), {}, threads=1)._session.get_session_options().intra_op_num_threads == 1


@pytest.mark.timeout(90)
def test_a_dataflow_cpu_job_gives_its_model_one_thread_per_process(tmp_path, onnx_model, vocab_path):
    import apache_beam as beam
    from apache_beam.ml.inference.base import RunInference
    from apache_beam.options.pipeline_options import PipelineOptions

    from bertqa.job import pipeline
    from bertqa.params import build_params

    params = build_params({"input": str(tmp_path / "q.jsonl"), "output": str(tmp_path / "out"),
                           "model_path": onnx_model(), "vocab_path": vocab_path, "backend": "onnxruntime"})
    graph = beam.Pipeline(options=PipelineOptions([
        "--runner=DataflowRunner", "--dry_run=True", "--project=my-project", "--region=us-central1",
        "--temp_location=gs://qa-bucket/tmp", "--sdk_container_image=img:1"]))  # as test_packaging's dry_run
    pipeline.build(graph, params, 0.0)
    specs = [transform._model_handler._spec for transform in _transforms(graph) if isinstance(transform, RunInference)]
    assert [spec.threads for spec in specs] == [1]


def _transforms(graph):
    import apache_beam as beam

    found = []

    class Visitor(beam.pipeline.PipelineVisitor):
        def enter_composite_transform(self, node):
            found.append(node.transform)

        def visit_transform(self, node):
            found.append(node.transform)

    graph.visit(Visitor())
    return found


def two_input_model(path: str, extra: str | None = None) -> str:
    """An ONNX file with token ids and a mask only (as Optimum exports RoBERTa and DistilBERT), optionally with one
    more input: start logits are the ids, end logits the mask."""
    import onnx
    from onnx import TensorProto, helper

    names = ["input_ids", "attention_mask"] + ([extra] if extra else [])
    inputs = [helper.make_tensor_value_info(name, TensorProto.INT64, ["batch", "seq"]) for name in names]
    outputs = [helper.make_tensor_value_info(name, TensorProto.FLOAT, ["batch", "seq"])
               for name in ("start_logits", "end_logits")]
    nodes = [helper.make_node("Cast", ["input_ids"], ["start_logits"], to=TensorProto.FLOAT),
             helper.make_node("Cast", ["attention_mask"], ["end_logits"], to=TensorProto.FLOAT)]
    model = helper.make_model(helper.make_graph(nodes, "two", inputs, outputs),
                              opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    onnx.save(model, path)
    return path


def test_a_model_without_segment_ids_is_fed_none_but_an_unknown_input_is_still_refused(tmp_path):
    from bertqa.backends.named_io import SignatureError
    from bertqa.backends.onnxruntime import OnnxRuntimeQAModel

    model = OnnxRuntimeQAModel(two_input_model(str(tmp_path / "two.onnx")), {})
    ids = np.array([[7, 8, 9, 0]], np.int32)
    start, end = model.predict(ids, (ids > 0).astype(np.int32), np.ones_like(ids))
    assert start.tolist() == [[7, 8, 9, 0]] and end.tolist() == [[1, 1, 1, 0]]
    # A third input of an unknown name may be the segments under another name: asked for, not guessed.
    with pytest.raises(SignatureError, match="cannot find the token_type_ids input"):
        OnnxRuntimeQAModel(two_input_model(str(tmp_path / "three.onnx"), "segments_of_mine"), {})


def test_a_model_whose_outputs_are_not_a_logit_per_token_is_refused_at_load(tmp_path):
    import onnx
    from onnx import TensorProto, helper

    from bertqa.backends.base import ModelOutputError, load_checked
    from bertqa.backends.onnxruntime import OnnxRuntimeModelSpec

    # A pooled score per window (a classifier's head), not start and end logits per token.
    inputs = [helper.make_tensor_value_info(name, TensorProto.INT32, ["batch", "seq"])
              for name in ("input_ids", "attention_mask", "token_type_ids")]
    outputs = [helper.make_tensor_value_info(name, TensorProto.FLOAT, None) for name in ("start_logits", "end_logits")]
    nodes = [helper.make_node("Cast", ["input_ids"], ["ids"], to=TensorProto.FLOAT),
             helper.make_node("ReduceMean", ["ids"], ["start_logits"], axes=[1], keepdims=0),
             helper.make_node("Identity", ["start_logits"], ["end_logits"])]
    path = str(tmp_path / "pooled.onnx")
    onnx.save(helper.make_model(helper.make_graph(nodes, "pooled", inputs, outputs),
                                opset_imports=[helper.make_opsetid("", 17)], ir_version=8), path)
    with pytest.raises(ModelOutputError, match=r"shapes \[1, 1\] and \[1, 1\] for inputs of shape \[1, 64\]: not one "
                                               "start and one end logit per token"):
        load_checked(OnnxRuntimeModelSpec(path), 8, 64)

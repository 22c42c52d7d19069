import subprocess
import sys
from pathlib import Path

import pytest

from bertqa.dataflow.arguments import split_args
from bertqa.params import ParameterError, TemplateParams

ROOT = Path(__file__).resolve().parents[2]
REQUIRED = ["--input=in.jsonl", "--output=out", "--model_path=m", "--vocab_path=v.txt"]


def test_defaults_and_strings_as_the_launcher_passes_them():
    params, beam_args = split_args(REQUIRED + ["--max_seq_length=256", "--do_lower_case=false",
                                               "--null_score_diff_threshold=-1.5", "--runner=DataflowRunner",
                                               "--project=p"])
    assert params.max_seq_length == 256 and params.do_lower_case is False
    assert params.null_score_diff_threshold == -1.5 and params.doc_stride == 128
    assert params.backend == "tensorflow" and params.version_2_with_negative is True
    assert beam_args == ["--runner=DataflowRunner", "--project=p"]
    assert params.dead_letter_dir == "out/dead_letter"


@pytest.mark.parametrize(
    "arg, expected",
    [
        ("--max_seq_length=abc", "--max_seq_length=abc: Input should be a valid integer"),
        ("--max_seq_length=8", "--max_seq_length=8: Input should be greater than or equal to 16"),
        ("--backend=torch", "--backend=torch: Input should be 'tensorflow', 'onnxruntime', 'tensorrt' or 'pytorch' "
         "(accepted: one of tensorflow, onnxruntime, tensorrt, pytorch)"),
        ("--precision=fp8", "--precision=fp8: Input should be 'auto', 'fp32', 'fp16' or 'bf16'"),
        ("--do_lower_case=maybe", "--do_lower_case=maybe: Input should be a valid boolean"),
        ("--doc_stride=400", "doc_stride=400 is larger than the passage part of a window"),
        ("--input_names=ids=x", "--input_names=ids=x: String should match pattern"),
        ("--engine_cache=s3://b/engines", "--engine_cache=s3://b/engines: Value error, an engine cache is a gs:// "
         "location, or a local directory for local runs"),
        ("--max_changed_spans=5", "--max_changed_spans=5: Input should be less than or equal to 1"),
        ("--tensorrt_contexts=0", "--tensorrt_contexts=0: Input should be greater than or equal to 1"),
        ("--top_k=-1", "--top_k=-1: Input should be greater than or equal to 0"),
        ("--top_k=21", "top_k=21 is more than n_best_size=20, the spans a question's candidates come from: lower "
         "top_k or raise n_best_size"),
    ],
)
def test_a_bad_value_names_the_parameter_value_and_what_is_accepted(arg, expected):
    with pytest.raises(ParameterError) as error:
        split_args(REQUIRED + [arg])
    assert expected in str(error.value)


@pytest.mark.parametrize("windows", [["--max_seq_length=128"], ["--max_seq_length=128", "--doc_stride=100"],
                                     ["--max_seq_length=64", "--max_query_length=64"], ["--doc_stride=400"],
                                     ["--max_seq_length=16", "--max_query_length=8"]])
def test_window_settings_that_do_not_fit_are_answered_with_a_whole_set_that_does(windows):
    # One round: the settings the message gives are accepted together (no second error on another of them).
    with pytest.raises(ParameterError) as error:
        split_args(REQUIRED + windows)
    fitting = str(error.value).split("settings that fit together: ")[1].split()
    params, _ = split_args(REQUIRED + fitting)
    assert fitting[0] == f"--max_seq_length={windows[0].split('=')[1] if 'max_seq' in windows[0] else 384}"
    assert params.doc_stride >= 1 and params.max_query_length >= 1


def test_missing_required_parameters_are_all_named():
    with pytest.raises(ParameterError) as error:
        split_args(["--input=x"])
    for name in ("output", "model_path"):
        assert f"--{name}=<missing>: required" in str(error.value)


@pytest.mark.parametrize("args, expected", [
    ([], "no tokenizer: give --vocab_path (a WordPiece vocab.txt) or --tokenizer_path (a tokenizer.json"),
    (["--vocab_path=v.txt", "--tokenizer_path=t.json"], "give one tokenizer, a WordPiece vocab.txt or a tokenizer.json"),
    (["--vocab_path=v.txt", "--backend=tensorrt", "--precision=bf16"], "precision=bf16: TensorRT engines are built in "
     "fp16 or fp32"),
])
def test_the_tokenizer_and_precision_must_be_ones_the_job_can_use(args, expected):
    with pytest.raises(ParameterError) as error:
        split_args(["--input=in.jsonl", "--output=out", "--model_path=m", *args])
    assert expected in str(error.value)


def test_a_pytorch_checkpoint_brings_its_own_tokenizer():
    params, _ = split_args(["--input=in.jsonl", "--output=out", "--model_path=gs://b/ckpt", "--backend=pytorch"])
    assert params.tokenizer.file == "gs://b/ckpt/tokenizer.json" and not params.tokenizer.wordpiece
    params, _ = split_args(["--input=in.jsonl", "--output=out", "--model_path=m.onnx", "--backend=onnxruntime",
                            "--tokenizer_path=gs://b/tok/"])
    assert params.tokenizer.file == "gs://b/tok/tokenizer.json"
    params, _ = split_args(REQUIRED + ["--do_lower_case=false"])
    assert params.tokenizer.wordpiece and params.tokenizer.path == "v.txt" and not params.tokenizer.do_lower_case


def test_input_name_mapping():
    params, _ = split_args(REQUIRED + ["--input_names=input_ids=ids,token_type_ids=segments"])
    assert params.input_name_map == {"input_ids": "ids", "token_type_ids": "segments"}


def run_main(*args):
    return subprocess.run([sys.executable, str(ROOT / "template" / "main.py"), *args],
                          capture_output=True, text=True, timeout=120)


def test_main_fails_before_any_pipeline_with_one_clear_message():
    result = run_main(*REQUIRED, "--doc_stride=0")
    assert result.returncode == 2
    assert "--doc_stride=0: Input should be greater than or equal to 1" in result.stderr
    assert "Traceback" not in result.stderr


def test_main_rejects_inputs_that_do_not_exist(tmp_path):
    result = run_main(f"--input={tmp_path}/none-*.jsonl", f"--output={tmp_path}/out",
                      f"--model_path={tmp_path}/nomodel", f"--vocab_path={tmp_path}/vocab.txt")
    assert result.returncode == 2
    for text in ("--input=", "no file matches", "--model_path=", "not found", f"--vocab_path={tmp_path}/vocab.txt: not found"):
        assert text in result.stderr
    assert not (tmp_path / "out").exists()


def test_help_lists_every_template_parameter():
    result = run_main("--help")
    assert result.returncode == 0
    for name in TemplateParams.model_fields:
        assert f"--{name}" in result.stdout


def test_table_columns_must_differ_and_are_ignored_with_a_text_format_said_explicitly():
    with pytest.raises(ParameterError, match="must name different columns, got q, q, context, answers"):
        split_args(REQUIRED + ["--id_column=q", "--question_column=q"])
    with pytest.raises(ParameterError, match="--context_column= : String should match pattern"):
        split_args(REQUIRED + ["--context_column= "])
    params, _ = split_args(REQUIRED + ["--input_format=jsonl", "--id_column=qid"])
    assert params.ignored_settings() == ["--id_column has no effect with --input_format=jsonl (tables only)"]
    params, _ = split_args(REQUIRED + ["--id_column=qid", "--answers_column=gold"])  # auto: any file may be a table
    assert params.ignored_settings() == [] and params.columns.names() == {
        "id": "qid", "question": "question", "context": "context", "answers": "gold"}

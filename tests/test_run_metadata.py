"""The run metadata the dashboard and the command line share (rnn_core.run_metadata): written by
one function, read back as hostile input by one function."""
import pytest

from rnn_core.limits import MAX_LABEL_LENGTH, MAX_SAMPLE_LENGTH
from rnn_core.run_metadata import MAX_SAMPLES_KEPT, RunMetadata, read_run_metadata, write_run_metadata


class _Holder:
    metadata = {"other": 1}


def test_what_is_written_reads_back_with_other_keys_kept():
    holder = _Holder()
    samples = [(i, f"s{i}") for i in range(MAX_SAMPLES_KEPT + 5)]
    write_run_metadata(holder, {"hidden_size": 8}, "Hello", samples, timeline=[{"iteration": 0}])
    assert holder.metadata["other"] == 1
    meta = read_run_metadata(holder.metadata)
    assert meta.config == {"hidden_size": 8} and meta.corpus_label == "Hello"
    assert meta.samples == tuple(samples[-MAX_SAMPLES_KEPT:])            # the newest are kept
    assert meta.extra == {"timeline": [{"iteration": 0}]}


@pytest.mark.parametrize("metadata", [None, [], {"app": 3}, {"app": {"config": [1], "corpus_label": 7,
                                                                      "samples": {"a": 1}}},
                                      {"app": {"corpus_label": "   ", "samples": [[1], "x", [True, "s"], [1.5, "s"]]}}])
def test_fields_of_the_wrong_type_are_ignored(metadata):
    assert read_run_metadata(metadata) == RunMetadata()


@pytest.mark.parametrize("app, message", [
    ({"corpus_label": "x" * (MAX_LABEL_LENGTH + 1)}, f"at most {MAX_LABEL_LENGTH} are allowed"),
    ({"corpus_label": "two\nlines"}, "without control characters"),
    ({"samples": [[1, "s"]] * (MAX_SAMPLES_KEPT + 1)}, f"at most {MAX_SAMPLES_KEPT} are kept"),
    ({"samples": [[-1, "s"]]}, "a sample must have an iteration between 0"),
    ({"samples": [[1, "s" * (MAX_SAMPLE_LENGTH + 1)]]}, f"at most {MAX_SAMPLE_LENGTH} characters"),
])
def test_values_out_of_range_refuse_the_file(app, message):
    with pytest.raises(ValueError, match="not a valid checkpoint") as info:
        read_run_metadata({"app": app})
    assert message in str(info.value)


def test_the_command_line_refuses_a_resumed_file_with_a_bad_label_in_one_sentence(tmp_path, capsys):
    from playground.runs.run import Run, RunConfig
    from rnn_core import cli
    run = Run(RunConfig(corpus="custom", hidden_size=8, seq_length=5), "hello world " * 20, "x" * 300)
    path = tmp_path / "run.npz"
    path.write_bytes(run.to_bytes())
    assert cli.main(["train", "--resume", str(path), "--iters", "1", "--out", str(tmp_path / "o.npz")]) == 2
    err = capsys.readouterr().err
    assert "corpus label has 300 characters" in err and "Traceback" not in err

"""``--dask SPEC`` parsing, its errors (exit status 2, one line, before any work), and the
Python API's checks: no cluster needed (one test reaches for an address nobody listens on)."""
import builtins
import socket

import pytest

from keras_icnn.cli import main
from keras_icnn.distributed import RunReport, cluster
from keras_icnn.distributed.api import reconstruct_many, settings_argv

from test_cli import COMMON, feature_dir, one_line_error, true_features  # noqa: F401


def test_specs():
    assert cluster.parse_spec("local:3") == ("local", 3)
    assert cluster.parse_spec(" LOCAL:1 ") == ("local", 1)
    assert cluster.parse_spec("tcp://10.0.0.1:8786") == ("address", "tcp://10.0.0.1:8786")
    for bad in ("local:0", "local:x", "local:", "local:-1", "", "nowhere.json", None):
        with pytest.raises(ValueError, match="--dask"):
            cluster.parse_spec(bad)


def test_scheduler_file(tmp_path):
    f = tmp_path / "scheduler.json"
    f.write_text("{}")
    assert cluster.parse_spec(str(f)) == ("scheduler_file", str(f))


def test_worker_threads_share_the_cores():
    assert cluster.worker_threads(2, cores=2) == 1
    assert cluster.worker_threads(4, cores=16) == 4
    assert cluster.worker_threads(8, cores=2) == 1


@pytest.mark.parametrize("spec", ["local:0", "local:x", "somewhere"])
def test_bad_spec_exit_2_before_any_work(spec, feature_dir, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["reconstruct", str(feature_dir), "--out", str(out), *COMMON,
                 "--dask", spec]) == 2
    assert "--dask" in one_line_error(capsys.readouterr().err)
    assert not out.exists()


def test_unreachable_scheduler_exit_2(feature_dir, tmp_path, capsys, monkeypatch):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    real = cluster.connect
    monkeypatch.setattr("keras_icnn.distributed.command.connect",
                        lambda spec: real(spec, timeout=2))
    assert main(["reconstruct", str(feature_dir), "--out", str(tmp_path / "out"), *COMMON,
                 "--dask", f"tcp://127.0.0.1:{port}"]) == 2
    line = one_line_error(capsys.readouterr().err)
    assert "cannot reach the Dask scheduler" in line and str(port) in line


def test_without_distributed_says_how_to_install(feature_dir, tmp_path, capsys, monkeypatch):
    real_import = builtins.__import__

    def no_distributed(name, *args, **kwargs):
        if name == "distributed" or name.startswith("distributed."):
            raise ImportError("No module named 'distributed'")
        return real_import(name, *args, **kwargs)
    monkeypatch.setattr(builtins, "__import__", no_distributed)
    assert main(["reconstruct", str(feature_dir), "--out", str(tmp_path / "out"), *COMMON,
                 "--dask", "local:2"]) == 2
    assert 'pip install "keras-icnn[dask]"' in one_line_error(capsys.readouterr().err)


def test_dask_flag_is_no_setting_of_the_options_file():
    from keras_icnn.cli.options import SETTINGS
    from keras_icnn.cli.study import JOB_FLAGS
    assert "dask" not in SETTINGS and "dask" in JOB_FLAGS


def test_settings_become_the_command_line():
    argv = settings_argv(["a.mat", "dir"], "out", None,
                         {"layers": ["conv1_1", "conv2_1"], "iterations": 5, "quiet": True,
                          "overwrite": False, "seed": None})
    assert argv == ["a.mat", "dir", "--out", "out", "--layers", "conv1_1,conv2_1",
                    "--iterations", "5", "--quiet"]
    with pytest.raises(TypeError, match="unknown setting.*iteration"):
        settings_argv("a.mat", "out", None, {"iteration": 5})
    with pytest.raises(TypeError, match="dask"):
        settings_argv("a.mat", "out", None, {"dask": "local:2"})


def test_api_checks_its_input(feature_dir, tmp_path):
    with pytest.raises(TypeError, match="dask.distributed.Client"):
        reconstruct_many("tcp://somewhere", feature_dir, tmp_path)

    class FakeClient:  # enough to get past the type check: the settings are checked first
        submit = scheduler_info = None
    with pytest.raises(ValueError, match="reconstruct_many: argument --variant"):
        reconstruct_many(FakeClient(), feature_dir, tmp_path, variant="nope")
    with pytest.raises(ValueError, match="--iterations"):
        reconstruct_many(FakeClient(), feature_dir, tmp_path, iterations=0, weights="random")


def test_report_round_trip():
    report = RunReport(done=["a"], skipped=["b"], failed={"c": "NaN"}, seconds=1.5, workers=2)
    assert RunReport.from_config(report.get_config()) == report
    assert report.exit_status == 1 and RunReport(done=["a"]).exit_status == 0


def test_batches_hold_a_gpu_when_workers_advertise_one():
    class Client:
        def __init__(self, resources):
            self.info = {"workers": {f"tcp://w{i}": {"resources": r}
                                     for i, r in enumerate(resources)}}

        def scheduler_info(self):
            return self.info
    assert cluster.gpu_resources(Client([{}, {}])) is None
    assert cluster.gpu_resources(Client([{"GPU": 1}, {"GPU": 1}])) == {"GPU": 1}


def test_progress_over_targets(capsys):
    import io as stdio

    from keras_icnn.distributed.progress import Progress
    stream = stdio.StringIO()  # not a terminal: one line per finished batch
    progress = Progress(5, stream=stream)
    progress.note("wrote a.png\n")
    progress.advance(done=2)
    progress.advance(failed=3)
    progress.close()
    assert capsys.readouterr().out == "wrote a.png\n"
    lines = stream.getvalue().splitlines()
    assert lines[0].startswith("[" + "#" * 12 + "." * 18 + "] 2/5 target(s)")
    assert "5/5 target(s), 3 failed" in lines[1]
    quiet = stdio.StringIO()
    Progress(5, quiet=True, stream=quiet).advance(done=5)
    assert quiet.getvalue() == ""

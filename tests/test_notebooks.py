"""The notebooks run top to bottom in a real Jupyter kernel (nbclient) in quick mode
(``KERAS_ICNN_QUICK=1``: random weights, 64 px, a few iterations); any cell error fails."""
import json
import sys
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat", reason="pip install -e '.[test]' (nbformat)")
nbclient = pytest.importorskip("nbclient", reason="pip install -e '.[test]' (nbclient)")
pytest.importorskip("ipykernel", reason="pip install -e '.[test]' (ipykernel)")

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
NAMES = ["01_quickstart", "02_generator_prior", "03_decoded_features", "04_monitoring",
         "05_lab_study"]
COLAB = "https://colab.research.google.com/github/keras-icnn/keras-icnn/blob/main/notebooks/"

#: files each notebook must have written into its working directory
PRODUCES = {
    "01_quickstart": [],
    "02_generator_prior": ["act_range_standin.txt"],
    "03_decoded_features": ["decoded/stimulus_0.mat", "decoded/stimulus_1.mat",
                            "reference_std.mat", "recon/stimulus_1.png",
                            "recon/stimulus_1_options.json"],
    "04_monitoring": ["icnn_logs/astronaut_gd/train", "icnn_logs/astronaut_gd/images"],
    "05_lab_study": ["decoded/conv1_2/sub-01/V1/decoded_features/img01.mat",
                     "recon/sub-02/VC/recon_image-img03.tiff",
                     "recon/sub-02/VC/recon_image-img03.mat", "recon/quality.csv",
                     "recon/quality_summary.csv"],
}


def _read(name):
    return nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)


def test_the_notebooks_are_there():
    assert sorted(p.stem for p in NOTEBOOKS.glob("*.ipynb")) == NAMES


@pytest.mark.parametrize("name", NAMES)
def test_notebook_structure(name):
    """nbformat 4, valid; opens with its Colab badge and a guarded install cell; reads
    KERAS_ICNN_QUICK; committed without outputs."""
    raw = json.loads((NOTEBOOKS / f"{name}.ipynb").read_text())
    assert raw["nbformat"] == 4
    nb = _read(name)
    nbformat.validate(nb)
    first = nb.cells[0]
    assert first.cell_type == "markdown"
    assert f"({COLAB}{name}.ipynb)" in first.source and "colab-badge.svg" in first.source
    install = nb.cells[1]
    assert install.cell_type == "code"
    assert "import keras_icnn" in install.source and "except ImportError" in install.source
    assert "%pip install -q keras-icnn" in install.source
    code = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
    assert 'os.environ.get("KERAS_ICNN_QUICK")' in code
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None, \
                f"{name}: clear the outputs before committing"


@pytest.fixture(scope="module")
def kernel_dirs(tmp_path_factory):
    """A kernelspec that runs this interpreter (not whatever 'python' is on PATH)."""
    root = tmp_path_factory.mktemp("kernels")
    spec = root / "keras-icnn-test"
    spec.mkdir()
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "keras-icnn tests", "language": "python"}))
    return [str(root)]


@pytest.mark.parametrize("name", NAMES)
def test_notebook_runs(name, tmp_path, kernel_dirs, monkeypatch):
    from jupyter_client import KernelManager
    from jupyter_client.kernelspec import KernelSpecManager

    monkeypatch.setenv("KERAS_ICNN_QUICK", "1")
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "3")
    nb = _read(name)
    km = KernelManager(kernel_name="keras-icnn-test",
                       kernel_spec_manager=KernelSpecManager(kernel_dirs=kernel_dirs))
    client = nbclient.NotebookClient(nb, km=km, timeout=300, allow_errors=False,
                                     resources={"metadata": {"path": str(tmp_path)}})
    client.execute()  # raises CellExecutionError (with the cell and its traceback) on an error
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs
              if o.output_type == "error"]
    assert not errors
    text = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code"
                   for o in c.outputs if o.output_type == "stream")
    assert "quick mode: True" in text
    figures = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs
               if "image/png" in o.get("data", {})]
    assert len(figures) >= 2, "the notebook should show its figures"
    for rel in PRODUCES[name]:
        assert (tmp_path / rel).exists(), f"{name} did not write {rel}"

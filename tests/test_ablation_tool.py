"""tools/ablation.py: a failed render comparison costs that variant its rendered FLIP, not the run."""

import argparse
import importlib.util
from pathlib import Path

TOOL = Path(__file__).resolve().parents[1] / "tools" / "ablation.py"


def _ablation():
    spec = importlib.util.spec_from_file_location("ablation_tool", TOOL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_failed_comparison_is_left_out_with_one_line(tmp_path, capfd):
    ablation = _ablation()
    missing = tmp_path / "nothing.neumat"
    assert ablation.render_fidelity(missing, 0.1, argparse.Namespace(device=None)) is None
    err = capfd.readouterr().err
    assert "exited with 2" in err and "nothing.neumat" in err and "Traceback" not in err
    assert not (tmp_path / "nothing-fidelity").exists()

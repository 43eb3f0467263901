"""`neumat material validate|preview` as a user meets them: summaries, images, exit codes."""

import subprocess
import sys

import numpy as np

from neumat.renderer.images.io import read_image
from neumat.renderer.core.paths import ASSET_DIR

MATERIALS = sorted((ASSET_DIR / "materials").glob("*.toml"))


def neumat(*args):
    return subprocess.run([sys.executable, "-m", "neumat", *args], capture_output=True, text=True)


def test_validate_summarises_every_bundled_material():
    assert len(MATERIALS) >= 5
    result = neumat("material", "validate", *map(str, MATERIALS))
    assert result.returncode == 0, result.stderr
    for path in MATERIALS:
        assert f"file        {path}" in result.stdout or path.name in result.stdout
    assert result.stdout.count("floats per texel") == len(MATERIALS)


def test_validate_names_file_and_key_of_a_bad_value(tmp_path):
    bad = tmp_path / "brass.toml"
    bad.write_text('[material]\nname = "brass"\n[[layers]]\ntype = "conductor"\nf0 = [0.9, 0.8, 0.4]\nalpha = 0.2\n'
                   '[[layers]]\ntype = "dielectric"\nalpha = -0.1\n')
    result = neumat("material", "validate", str(bad))
    assert result.returncode == 2
    assert "brass.toml" in result.stderr and "layers[1].alpha" in result.stderr
    assert "Traceback" not in result.stderr


def test_preview_renders_a_lit_sphere(tmp_path):
    out = tmp_path / "ball.exr"
    result = neumat("material", "preview", str(ASSET_DIR / "materials" / "worn_plastic.toml"), "-o", str(out),
                    "--size", "48", "--spp", "4", "--resolution", "64")
    assert result.returncode == 0, result.stderr
    image = read_image(out)
    assert image.shape == (48, 48, 3) and np.isfinite(image).all()
    # The red plastic sphere fills the centre: redder than the grey studio behind it in the corners.
    centre, corner = image[18:30, 18:30].mean(axis=(0, 1)), image[:4, :4].mean(axis=(0, 1))
    assert centre[0] > 1.5 * centre[2] and abs(corner[0] - corner[2]) < 0.3 * corner.mean()


def test_preview_rejects_bad_output_before_rendering(tmp_path):
    result = neumat("material", "preview", str(MATERIALS[0]), "-o", str(tmp_path / "x.jpg"))
    assert result.returncode == 2 and "unknown image extension" in result.stderr

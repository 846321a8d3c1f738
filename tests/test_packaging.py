import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import tabpriv
from tabpriv.datasets import BUNDLED_DIR, adult_schema, bundled_adult_path

ROOT = Path(__file__).resolve().parents[1]
DATA_FILES = ("tabpriv/data/adult.csv", "tabpriv/data/adult.schema.json", "tabpriv/data/README.md")


def test_bundled_data_lives_inside_the_package() -> None:
    package = Path(tabpriv.__file__).resolve().parent
    assert package / "data" == BUNDLED_DIR
    assert bundled_adult_path().is_file()
    assert adult_schema().names[0] == "age"


def test_checkout_links_point_at_the_package_data() -> None:
    for name in ("adult.csv", "adult.schema.json"):
        link = ROOT / "datasets" / name
        assert link.resolve() == (BUNDLED_DIR / name).resolve()


def test_package_data_globs_cover_the_bundled_files() -> None:
    conf = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    globs = conf["tool"]["setuptools"]["package-data"]["tabpriv"]
    for f in DATA_FILES:
        rel = Path(f).relative_to("tabpriv")
        assert any(rel.match(g) for g in globs), (f, globs)


def test_built_wheel_holds_the_bundled_data(tmp_path) -> None:
    # Build from a copy, so the checkout gets no build/ or egg-info folder.
    src = tmp_path / "src"
    src.mkdir()
    shutil.copy(ROOT / "pyproject.toml", src)
    shutil.copy(ROOT / "README.md", src)
    shutil.copytree(ROOT / "tabpriv", src / "tabpriv", ignore=shutil.ignore_patterns("__pycache__"))
    cmd = [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation"]
    subprocess.run([*cmd, "-w", str(tmp_path / "dist"), str(src)], check=True, capture_output=True)
    (wheel,) = (tmp_path / "dist").glob("tabpriv-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for f in (*DATA_FILES, "tabpriv/acs_schemas/ACSIncome.schema.json", "tabpriv/accessor.py"):
        assert f in names, f
    with zipfile.ZipFile(wheel) as z:
        assert z.read("tabpriv/data/adult.csv") == bundled_adult_path().read_bytes()

import subprocess
import sys

import pytest


def _run(code: str) -> str:
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return out.stdout.strip()


@pytest.mark.parametrize("order", ["tabpriv first", "pandas first"])
def test_accessor_registered_by_import_tabpriv_without_torch(order: str) -> None:
    imports = "import tabpriv, pandas as pd" if order == "tabpriv first" else "import pandas as pd, tabpriv"
    code = (
        f"import sys, warnings; warnings.simplefilter('error'); {imports}; "
        "acc = pd.DataFrame({'a': [1, 2]}).tabpriv; "
        "print(type(acc).__name__, hasattr(acc, 'synthesize'), hasattr(acc, 'fit'), 'torch' in sys.modules)"
    )
    assert _run(code) == "TabprivAccessor True True False"


def test_import_tabpriv_leaves_pandas_unimported_and_hook_is_one_shot() -> None:
    code = (
        "import sys, tabpriv; before = 'pandas' in sys.modules; import pandas; "
        "from tabpriv.accessor import _PandasImportHook; "
        "print(before, any(isinstance(f, _PandasImportHook) for f in sys.meta_path))"
    )
    assert _run(code) == "False False"


def test_accessor_synthesizes(small_df) -> None:
    import tabpriv  # noqa: F401

    from .conftest import make_small_schema

    out = small_df.tabpriv.synthesize(epsilon=2.0, schema=make_small_schema(), n_rows=5, random_state=0)
    assert len(out) == 5 and list(out.columns) == list(small_df.columns)

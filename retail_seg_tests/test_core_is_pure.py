"""The core never imports dagster: it can be tested, benchmarked and reused on its own."""

import subprocess
import sys
from pathlib import Path

CORE = Path(__file__).resolve().parents[1] / "retail_seg" / "core"


def test_core_modules_import_without_dagster():
    modules = sorted(f"retail_seg.core.{p.stem}" for p in CORE.glob("*.py") if p.stem != "__init__")
    assert "retail_seg.core.cleaning" in modules
    code = "import sys\n" + "".join(f"import {m}\n" for m in modules) + "print('dagster' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"

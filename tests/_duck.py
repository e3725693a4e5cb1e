"""DuckDB with the ``delta`` extension, loaded offline from the ``duckdb-extension-delta`` package.

DuckDB would download the extension on first use; tests must not touch the network, so the
extension file shipped in the PyPI package is LOADed explicitly with auto-install and auto-load
off. Tests skip (with the reason) when duckdb or a matching extension file is missing.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest


def delta_extension_file() -> Path:
    """The bundled ``delta.duckdb_extension`` for the installed duckdb (skip if missing)."""
    duckdb = pytest.importorskip("duckdb")
    ext_pkg = pytest.importorskip("duckdb_extension_delta")
    ext_file = (
        Path(ext_pkg.__file__).parent
        / "extensions"
        / f"v{duckdb.__version__}"
        / "delta.duckdb_extension"
    )
    if not ext_file.exists():
        pytest.skip(f"no DuckDB delta extension for duckdb {duckdb.__version__} at {ext_file}")
    return ext_file


def duckdb_connection() -> Any:
    """An in-memory DuckDB connection with ``delta_scan`` available, without any download."""
    duckdb = pytest.importorskip("duckdb")
    ext_file = delta_extension_file()
    con = duckdb.connect(
        config={"autoinstall_known_extensions": False, "autoload_known_extensions": False}
    )
    con.execute(f"LOAD '{ext_file}'")
    return con

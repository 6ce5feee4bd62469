"""DuckDB extensions shipped as PyPI wheels (``duckdb-extension-<name>``), loaded from their files: a query
never downloads an extension at run time, and a wheel built for another DuckDB is a clear error."""

from __future__ import annotations

import importlib.metadata
import importlib.util
from pathlib import Path

import duckdb


def wheel_extension_path(name: str, error: type[Exception]) -> Path:
    """Path of ``<name>.duckdb_extension`` in the ``duckdb-extension-<name>`` wheel for the installed DuckDB.

    :param error: raised, with the ``pip install`` that fixes it, when the wheel is not installed or was built
        for another DuckDB version.
    """
    distribution = f"duckdb-extension-{name}"
    fix = f"pip install '{distribution}=={duckdb.__version__}'"
    spec = importlib.util.find_spec(distribution.replace("-", "_"))
    if spec is None or not spec.origin:
        raise error(f"the {distribution} wheel is not installed; run: {fix}")
    try:
        wheel_version = importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        wheel_version = None
    extensions = Path(spec.origin).parent / "extensions"
    path = extensions / f"v{duckdb.__version__}" / f"{name}.duckdb_extension"
    if (wheel_version and wheel_version != duckdb.__version__) or not path.is_file():
        built_for = sorted(p.name for p in extensions.glob("v*")) if extensions.is_dir() else []
        raise error(
            f"{distribution} {wheel_version or '?'} (extension built for {', '.join(built_for) or 'none'}) "
            f"does not match duckdb {duckdb.__version__}: no {path}; run: {fix}"
        )
    return path

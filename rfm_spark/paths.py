"""Table and model locations: one join that keeps URIs intact.

``pathlib`` collapses ``s3a://lake/rfm`` into ``s3a:/lake/rfm``; warehouses live on object stores
(``s3a://``, ``abfss://``, ``gs://``) as often as on local disks, so every location under the
warehouse is built here, as text.
"""

from __future__ import annotations

import re

_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")


def is_uri(path: str) -> bool:
    """True for ``scheme:...`` locations (``s3a://b/k``, ``file:/tmp/x``); False for plain paths
    (a Windows drive letter is one character, so ``C:\\x`` is a plain path)."""
    m = _SCHEME.match(path)
    return m is not None and len(m.group(0)) > 2


def join(base: str, *parts: str) -> str:
    """``base`` and ``parts`` joined with single slashes; the base's scheme and authority are
    kept as written (``join("s3a://lake/rfm/", "customer_segments")`` ->
    ``s3a://lake/rfm/customer_segments``)."""
    out = str(base)
    for part in parts:
        piece = str(part).strip("/")
        if piece:
            out = piece if not out else (out if out.endswith("/") else out + "/") + piece
    return out


def absolute(path: str) -> str:
    """``path`` as Spark should get it: a relative local path made absolute against this
    process's folder (Spark would take it relative to the driver's, or a Connect server's,
    and Delta's SQL takes only absolute paths); URIs and absolute paths as written, so a
    cluster's default file system still applies to ``/data/...``."""
    import os

    return path if is_uri(path) or os.path.isabs(path) else os.path.abspath(path)

"""What a query returned, as a short hash: equal hashes mean the same rows for the same parameters.

Rows are compared in order only when the query orders them (a top-level ORDER BY); otherwise as
a multiset, since a different plan may return the same rows in another order. Values are hashed
through their ``repr`` (UUIDs, timestamps, Decimals and JSON text all print exactly), so two
servers of the same major on the same data give the same hash.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from typing import Any


def result_hash(rows: Iterable[Iterable[Any]], ordered: bool) -> str:
    lines = [repr(tuple(row)) for row in rows]
    if not ordered:
        lines.sort()
    digest = hashlib.sha1(f"{len(lines)}\n".encode())
    for line in lines:
        digest.update(line.encode())
        digest.update(b"\n")
    return digest.hexdigest()[:16]

"""Bounded schemathesis run inside `make test`: every operation of S3's and S4's OpenAPI, a few
generated cases each, against the real services (real Redis, SQLite in tmp_path, S4 on the
in-process simulator). 0 responses 5xx, 0 responses outside the declared schema.

`make fuzz` runs the same harness with many more examples (tests/fuzz/run.py).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.fuzz.harness import fuzz_operations, serve

# Per operation; a fixed Hypothesis derandomisation keeps the run the same from run to run.
EXAMPLES = int(os.environ.get("FUZZ_TEST_EXAMPLES", "12"))


@pytest.mark.timeout(120)
@pytest.mark.parametrize("service", ["s3", "s4"])
def test_every_operation_answers_without_5xx_and_as_declared(
    service: str, redis_addresses: list[str], tmp_path: Path
) -> None:
    with serve(service, redis_addresses, tmp_path) as svc:
        results = fuzz_operations(svc, max_examples=EXAMPLES)
    assert len(results) >= 5, [r.label for r in results]  # the schema really was walked
    assert all(r.examples > 0 for r in results), [r.label for r in results if not r.examples]
    failures = [f"{r.label}: {r.error or ''}" + "\n".join(r.failures) for r in results if not r.ok]
    assert not failures, "\n\n".join(failures)

"""Kubernetes-safe names for per-test objects, so tests never collide with each other or with reruns."""

from __future__ import annotations

import random
import re
import string

MAX_DNS_LABEL = 63
_SUFFIX_LENGTH = 5


def namespace_for_test(test_name: str, rng: random.Random | None = None) -> str:
    """A fresh namespace name from a test name: DNS label, <= 63 chars, random suffix.

    `test_rollback[kubectl]` becomes e.g. `test-rollback-kubectl-x7k2q`.
    """
    base = re.sub(r"[^a-z0-9]+", "-", test_name.lower()).strip("-") or "test"
    base = base[: MAX_DNS_LABEL - _SUFFIX_LENGTH - 1].rstrip("-")
    chooser = rng or random.Random()
    suffix = "".join(chooser.choice(string.ascii_lowercase + string.digits) for _ in range(_SUFFIX_LENGTH))
    return f"{base}-{suffix}"

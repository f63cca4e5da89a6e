"""Integration fixtures: the CRDs installed once per session, and a cluster-backed helper set."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from localenv.controlplane import KubeCluster
from localenv.crds import install_crds


@pytest.fixture(scope="session")
def crds(kube_cluster: KubeCluster) -> Iterator[list[str]]:
    """The project's CRDs, installed (or updated) from crds/ and Established."""
    yield install_crds(kube_cluster.api)

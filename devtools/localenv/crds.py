"""Installing the project's CRDs (the generated YAML under crds/) into a cluster, idempotently."""

from __future__ import annotations

from pathlib import Path

import yaml
from kubernetes import client as k8s

from localenv.controlplane import repo_root
from localenv.procs import wait_until


def crd_manifests(directory: Path | None = None) -> list[dict[str, object]]:
    folder = directory or repo_root() / "crds"
    return [yaml.safe_load(p.read_text()) for p in sorted(folder.glob("*.yaml"))]


def install_crds(api: k8s.ApiClient, directory: Path | None = None, timeout: float = 60.0) -> list[str]:
    """Create or update every CRD and wait until each is Established; returns their names."""
    ext = k8s.ApiextensionsV1Api(api)
    names = []
    for manifest in crd_manifests(directory):
        name = manifest["metadata"]["name"]  # type: ignore[index]
        try:
            current = ext.read_custom_resource_definition(name)
        except k8s.ApiException as error:
            if error.status != 404:
                raise
            ext.create_custom_resource_definition(manifest)  # type: ignore[arg-type]  # the client sends dicts as they are
        else:
            version = current.metadata.resource_version if current.metadata else None
            manifest["metadata"]["resourceVersion"] = version  # type: ignore[index]
            ext.replace_custom_resource_definition(name, manifest)  # type: ignore[arg-type]
        names.append(str(name))

    def established() -> bool:
        for name in names:
            status = ext.read_custom_resource_definition(name).status
            conditions = (status.conditions if status else None) or []
            if not any(c.type == "Established" and c.status == "True" for c in conditions):
                return False
        return True

    wait_until(established, timeout=timeout, what="CRDs established")
    return names

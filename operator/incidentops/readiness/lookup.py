"""The readiness checks' questions (does it exist? does the Secret have that key?), asked of the apiserver."""

from __future__ import annotations

from incidentops.api.v1alpha1.resources import KIND_BY_NAME
from incidentops.kube import AsyncKube, Forbidden, NotFound
from incidentops.readiness.checks import SecretUnreadable


class ClusterLookup:
    """Lookup answered by the apiserver."""

    def __init__(self, kube: AsyncKube) -> None:
        self._kube = kube

    async def exists(self, kind: str, namespace: str, name: str) -> bool:
        try:
            await self._kube.get(KIND_BY_NAME[kind], namespace, name)
        except NotFound:
            return False
        return True

    async def secret_has_key(self, namespace: str, name: str, key: str) -> bool | None:
        try:
            return await self._kube.secret_value(namespace, name, key) is not None
        except NotFound:
            return None
        except Forbidden as error:
            raise SecretUnreadable(str(error)) from error

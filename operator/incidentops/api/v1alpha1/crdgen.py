"""Generate structural CRD manifests from the pydantic models (`make crds`).

pydantic emits JSON Schema with $refs, anyOf-for-Optional and titles; Kubernetes wants a
structural OpenAPI v3 schema: every node typed, references inlined, no nulls. This module does
that translation and nothing else, so the models stay the only source of truth.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path
from typing import Any

import yaml

from incidentops.api.v1alpha1.resources import KINDS, Kind

_DROP = {"title", "examples", "discriminator", "$defs"}

# The descriptions built-in kinds carry for apiVersion and kind (apimachinery's TypeMeta). metadata
# gets none: the apiserver refuses a CRD whose root metadata schema says more than its type, and
# publishes the standard ObjectMeta schema (description included) for it anyway.
_CONVENTIONS = "https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md"
API_VERSION_DESCRIPTION = (
    "APIVersion defines the versioned schema of this representation of an object. Servers should convert "
    "recognized schemas to the latest internal value, and may reject unrecognized values. "
    f"More info: {_CONVENTIONS}#resources"
)
KIND_DESCRIPTION = (
    "Kind is a string value representing the REST resource this object represents. Servers may infer this "
    "from the endpoint the client submits requests to. Cannot be updated. In CamelCase. "
    f"More info: {_CONVENTIONS}#types-kinds"
)


class NonStructuralSchemaError(ValueError):
    """The models produced something Kubernetes would refuse as non-structural."""


def _resolve(node: Any, defs: dict[str, Any]) -> Any:
    if isinstance(node, list):
        return [_resolve(item, defs) for item in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        target = defs[node["$ref"].split("/")[-1]]
        merged = {**target, **{k: v for k, v in node.items() if k != "$ref"}}
        return _resolve(merged, defs)
    node = {k: v for k, v in node.items() if k not in _DROP}
    if "anyOf" in node:
        branches = [b for b in node["anyOf"] if b != {"type": "null"}]
        if len(branches) != 1:
            raise NonStructuralSchemaError(f"cannot express union {node['anyOf']!r} structurally")
        rest = {k: v for k, v in node.items() if k != "anyOf"}
        node = {**branches[0], **rest}
        if rest.get("default", 0) is None:
            node.pop("default")
        return _resolve(node, defs)
    if "allOf" in node and len(node["allOf"]) == 1:
        rest = {k: v for k, v in node.items() if k != "allOf"}
        return _resolve({**node["allOf"][0], **rest}, defs)
    if "const" in node:
        node["enum"] = [node.pop("const")]
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key == "properties":
            out[key] = {name: _resolve(sub, defs) for name, sub in value.items()}
        elif key in ("items", "additionalProperties") and isinstance(value, dict):
            out[key] = _resolve(value, defs)
        else:
            out[key] = value
    if "enum" in out and "type" not in out:
        out["type"] = "string"
    # Kubernetes forbids additionalProperties: false; unknown fields are refused by strict field
    # validation (kubectl's default) and pruned otherwise.
    if out.get("additionalProperties") is False:
        del out["additionalProperties"]
    # Status models keep fields they do not know (a newer operator's): the apiserver must keep them too.
    if out.get("additionalProperties") is True:
        del out["additionalProperties"]
        out["x-kubernetes-preserve-unknown-fields"] = True
    # Scalar defaults are applied by the apiserver; container defaults would only add diff noise.
    if out.get("default") is None or isinstance(out.get("default"), dict | list):
        out.pop("default", None)
    return out


def _strip_defaults(node: Any) -> Any:
    """Status is written by the operator only; schema defaults there would just add noise."""
    if isinstance(node, list):
        return [_strip_defaults(n) for n in node]
    if isinstance(node, dict):
        return {k: _strip_defaults(v) for k, v in node.items() if k != "default"}
    return node


def _check_structural(node: dict[str, Any], path: str) -> None:
    if "type" not in node and not node.get("x-kubernetes-int-or-string"):
        raise NonStructuralSchemaError(f"{path}: no type")
    for name, sub in node.get("properties", {}).items():
        _check_structural(sub, f"{path}.{name}")
    if isinstance(node.get("items"), dict):
        _check_structural(node["items"], f"{path}[]")
    if isinstance(node.get("additionalProperties"), dict):
        _check_structural(node["additionalProperties"], f"{path}{{}}")


def model_schema(model: type[Any]) -> dict[str, Any]:
    """The structural OpenAPI v3 schema of one model."""
    raw = model.model_json_schema(by_alias=True, mode="validation")
    schema: dict[str, Any] = _resolve(raw, raw.get("$defs", {}))
    _check_structural(schema, model.__name__)
    return schema


def openapi_schema(kind: Kind) -> dict[str, Any]:
    """The whole object's schema: apiVersion, kind, metadata, spec, status."""
    spec = model_schema(kind.spec_model)
    status = _strip_defaults(model_schema(kind.status_model))
    return {
        "type": "object",
        "description": kind.description,
        "required": ["spec"],
        "properties": {
            "apiVersion": {"type": "string", "description": API_VERSION_DESCRIPTION},
            "kind": {"type": "string", "description": KIND_DESCRIPTION},
            "metadata": {"type": "object"},  # the apiserver refuses anything else here
            "spec": spec,
            "status": status,
        },
    }


def crd(kind: Kind) -> dict[str, Any]:
    """The CustomResourceDefinition manifest of one kind."""
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": kind.crd_name, "labels": {"app.kubernetes.io/part-of": "incidentops"}},
        "spec": {
            "group": kind.group,
            "scope": "Namespaced",
            "names": {
                "kind": kind.kind,
                "listKind": f"{kind.kind}List",
                "plural": kind.plural,
                "singular": kind.singular,
                "shortNames": list(kind.short_names),
                "categories": ["incidentops"],
            },
            "versions": [
                {
                    "name": kind.version,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": [c.wire() for c in kind.columns],
                    "schema": {"openAPIV3Schema": openapi_schema(kind)},
                }
            ],
        },
    }


def render(kind: Kind) -> str:
    """YAML text of the CRD, stable across runs so drift shows in git."""
    header = "# Generated from incidentops.api.v1alpha1 by `make crds`. Do not edit.\n"
    return header + yaml.safe_dump(crd(kind), sort_keys=False, width=100)


def file_name(kind: Kind) -> str:
    return f"{kind.crd_name}.yaml"


CHART_CRDS = Path("templates") / "crds"
_LABELS = "  labels:\n    app.kubernetes.io/part-of: incidentops\n"
_GO_DELIMITERS = re.compile(r"\{\{|\}\}")


def chart_template(kind: Kind) -> str:
    """The same CRD as a Helm template: rendered behind `crds.enabled`, kept on uninstall with `crds.keep`.

    Helm's `crds/` folder is install-only (never upgraded), so the chart renders CRDs as templates, the way
    cert-manager does. Text in descriptions that looks like a Go template (`{{ $labels.x }}`) is quoted.
    """
    body = _GO_DELIMITERS.sub(
        lambda m: '{{ "' + m.group() + '" }}', yaml.safe_dump(crd(kind), sort_keys=False, width=100)
    )
    if _LABELS not in body:
        raise ValueError(f"{kind.crd_name}: metadata.labels not where the chart template expects them")
    keep = "  {{- if .Values.crds.keep }}\n  annotations:\n    helm.sh/resource-policy: keep\n  {{- end }}\n"
    labels = _LABELS + '    {{- include "incidentops.labels" . | nindent 4 }}\n'
    body = body.replace(_LABELS, labels + keep, 1)
    header = "# Generated from incidentops.api.v1alpha1 by `make crds`. Do not edit.\n"
    return header + "{{- if .Values.crds.enabled }}\n" + body + "{{- end }}\n"


def outputs(crds_dir: Path, chart: Path | None) -> dict[Path, str]:
    """Every file the generator owns, with its text: crds/ and, given a chart, its CRD templates."""
    files = {crds_dir / file_name(kind): render(kind) for kind in KINDS}
    if chart is not None:
        files.update({chart / CHART_CRDS / file_name(kind): chart_template(kind) for kind in KINDS})
    return files


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Write the CRD manifests generated from the models.")
    parser.add_argument("--out", type=Path, default=Path("crds"))
    parser.add_argument("--chart", type=Path, default=None, help="also write the Helm chart's CRD templates")
    parser.add_argument("--check", action="store_true", help="fail if the committed files differ")
    args = parser.parse_args(argv)
    drift = []
    for path, text in outputs(args.out, args.chart).items():
        if args.check:
            if not path.exists() or path.read_text() != text:
                drift.append(str(path))
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
            print(f"wrote {path}")
    if drift:
        print("CRDs differ from the models; run `make crds`: " + ", ".join(drift), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

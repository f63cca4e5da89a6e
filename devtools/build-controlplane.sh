#!/usr/bin/env bash
# Builds the local test control plane from upstream sources through the Go module proxy:
# kube-apiserver, kube-controller-manager, kube-scheduler, kubectl (k8s.io/kubernetes), etcd and
# kwok/kwokctl, and helm (helm.sh/helm/v4, for the chart's tests). Output goes to a cache directory outside the repo, keyed by version, and a second
# run with everything present returns at once. Nothing built here is ever committed.
set -euo pipefail

K8S_VERSION="${K8S_VERSION:-v1.34.4}"
ETCD_VERSION="${ETCD_VERSION:-v3.6.16}"
KWOK_VERSION="${KWOK_VERSION:-v0.7.0}"
HELM_VERSION="${HELM_VERSION:-v4.3.2}"
# Only its CRDs (ServiceMonitor, PrometheusRule), to test the chart's monitoring objects on the apiserver.
PROMETHEUS_OPERATOR_VERSION="${PROMETHEUS_OPERATOR_VERSION:-v0.88.0}"
CACHE_ROOT="${INCIDENTOPS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/incidentops}"
BIN_DIR="$CACHE_ROOT/controlplane/k8s-${K8S_VERSION}_etcd-${ETCD_VERSION}_kwok-${KWOK_VERSION}/bin"
SRC_DIR="$CACHE_ROOT/controlplane/src"
# helm has its own version key: changing it must not rebuild Kubernetes.
HELM_DIR="$CACHE_ROOT/controlplane/helm-$HELM_VERSION/bin"
export CGO_ENABLED=0 GOFLAGS="${GOFLAGS:--buildvcs=false}"

say() { printf '[controlplane %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

if [ "${1:-}" = "--print-bin-dir" ]; then echo "$BIN_DIR"; exit 0; fi
if [ "${1:-}" = "--print-helm" ]; then echo "$HELM_DIR/helm"; exit 0; fi
if [ "${1:-}" = "--prometheus-operator-crds" ]; then
  # The module's source from the Go module proxy (cached in GOMODCACHE): nothing is built.
  dir=$(cd /tmp && GOFLAGS=-mod=mod go mod download -json "github.com/prometheus-operator/prometheus-operator@$PROMETHEUS_OPERATOR_VERSION" \
    | sed -n 's/.*"Dir": "\(.*\)".*/\1/p')
  [ -n "$dir" ] || { say "cannot download prometheus-operator $PROMETHEUS_OPERATOR_VERSION"; exit 1; }
  echo "$dir/example/prometheus-operator-crd"; exit 0
fi

need=(kube-apiserver kube-controller-manager kube-scheduler kubectl etcd kwok kwokctl)
missing=()
for b in "${need[@]}"; do [ -x "$BIN_DIR/$b" ] || missing+=("$b"); done
[ -x "$HELM_DIR/helm" ] || missing+=(helm)
if [ ${#missing[@]} -eq 0 ]; then say "cached binaries in $BIN_DIR and $HELM_DIR"; echo "$BIN_DIR"; exit 0; fi
command -v go >/dev/null || { say "the Go toolchain is required to build the control plane (https://go.dev/dl)"; exit 1; }
mkdir -p "$BIN_DIR" "$SRC_DIR" "$HELM_DIR"
start=$(date +%s)

build_kubernetes() {
  local dir="$SRC_DIR/kubernetes-$K8S_VERSION" minor staging gomod date_
  minor="${K8S_VERSION#v1.}"; staging="v0.${minor}"
  mkdir -p "$dir"; cd "$dir"
  say "kubernetes $K8S_VERSION: fetching module metadata"
  gomod=$(go mod download -json "k8s.io/kubernetes@$K8S_VERSION" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')
  {
    echo "module incidentops.dev/controlplane-kubernetes"
    echo; echo "go 1.24"; echo
    echo "require k8s.io/kubernetes $K8S_VERSION"; echo
    # every staging module the kubernetes go.mod replaces with ./staging becomes its published v0.X.Y
    sed -n 's#^[[:space:]]*\(k8s\.io/[a-z0-9-]*\) => \./staging/.*#replace \1 => \1 '"$staging"'#p' "$gomod"
  } > go.mod
  say "kubernetes: $(grep -c '^replace' go.mod) staging modules pinned to $staging; resolving dependencies (minutes on first run)"
  cat > tools.go <<'GO'
//go:build tools

package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
	_ "k8s.io/kubernetes/cmd/kubectl"
)
GO
  go mod tidy -e >/dev/null 2>tidy.log || { cat tidy.log >&2; return 1; }
  date_=$(date -u +%Y-%m-%dT%H:%M:%SZ)
  local ld="" pkg
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ld+=" -X $pkg.gitVersion=$K8S_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=${minor%%.*}"
    ld+=" -X $pkg.gitCommit=upstream-module-$K8S_VERSION -X $pkg.gitTreeState=clean -X $pkg.buildDate=$date_"
  done
  say "kubernetes: compiling kube-apiserver, kube-controller-manager, kube-scheduler, kubectl (the long part: 15-40 min on 2 cores)"
  go build -trimpath -ldflags "-s -w $ld" -o "$BIN_DIR/" \
    k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager \
    k8s.io/kubernetes/cmd/kube-scheduler k8s.io/kubernetes/cmd/kubectl
  say "kubernetes: done"
}

build_etcd() {
  local dir="$SRC_DIR/etcd-$ETCD_VERSION"
  mkdir -p "$dir"; cd "$dir"
  say "etcd $ETCD_VERSION: wrapper module (etcd's own replace lines stay out of the way)"
  cat > go.mod <<MOD
module incidentops.dev/controlplane-etcd

go 1.24

require go.etcd.io/etcd/server/v3 $ETCD_VERSION
MOD
  cat > main.go <<'GO'
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
GO
  go mod tidy >/dev/null 2>tidy.log || { cat tidy.log >&2; return 1; }
  go build -trimpath -ldflags "-s -w" -o "$BIN_DIR/etcd" .
  say "etcd: done"
}

build_kwok() {
  local dir="$SRC_DIR/kwok-$KWOK_VERSION"
  mkdir -p "$dir"; cd "$dir"
  say "kwok $KWOK_VERSION: building kwok and kwokctl"
  cat > go.mod <<MOD
module incidentops.dev/controlplane-kwok

go 1.24

require sigs.k8s.io/kwok $KWOK_VERSION
MOD
  cat > tools.go <<'GO'
//go:build tools

package tools

import (
	_ "sigs.k8s.io/kwok/cmd/kwok"
	_ "sigs.k8s.io/kwok/cmd/kwokctl"
)
GO
  go mod tidy -e >/dev/null 2>tidy.log || { cat tidy.log >&2; return 1; }
  go build -trimpath -ldflags "-s -w -X sigs.k8s.io/kwok/pkg/consts.Version=$KWOK_VERSION" -o "$BIN_DIR/" \
    sigs.k8s.io/kwok/cmd/kwok sigs.k8s.io/kwok/cmd/kwokctl
  say "kwok: done"
}

build_helm() {
  local dir="$SRC_DIR/helm-$HELM_VERSION"
  mkdir -p "$dir"; cd "$dir"
  say "helm $HELM_VERSION: building (a few minutes; its Kubernetes modules are shared with the control plane's)"
  cat > go.mod <<MOD
module incidentops.dev/controlplane-helm

go 1.24

require helm.sh/helm/v4 $HELM_VERSION
MOD
  cat > tools.go <<'GO'
//go:build tools

package tools

import _ "helm.sh/helm/v4/cmd/helm"
GO
  go mod tidy -e >/dev/null 2>tidy.log || { cat tidy.log >&2; return 1; }
  go build -trimpath -ldflags "-s -w -X helm.sh/helm/v4/internal/version.version=$HELM_VERSION -X helm.sh/helm/v4/internal/version.gitTreeState=clean" \
    -o "$HELM_DIR/helm" helm.sh/helm/v4/cmd/helm
  say "helm: done"
}

for b in "${missing[@]}"; do
  case "$b" in
    kube-*|kubectl) [ -n "${did_k8s:-}" ] || { (build_kubernetes); did_k8s=1; } ;;
    etcd) (build_etcd) ;;
    kwok|kwokctl) [ -n "${did_kwok:-}" ] || { (build_kwok); did_kwok=1; } ;;
    helm) (build_helm) ;;
  esac
done
say "control plane built in $(( $(date +%s) - start ))s into $BIN_DIR (helm in $HELM_DIR)"
echo "$BIN_DIR"

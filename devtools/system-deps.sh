#!/usr/bin/env bash
# Prometheus and Alertmanager come from Debian packages; install them when they are missing.
set -euo pipefail
missing=()
command -v prometheus >/dev/null || missing+=(prometheus)
command -v prometheus-alertmanager >/dev/null || missing+=(prometheus-alertmanager)
[ ${#missing[@]} -eq 0 ] && exit 0
echo "== installing ${missing[*]} from Debian packages"
if [ "$(id -u)" -eq 0 ]; then SUDO=(); elif command -v sudo >/dev/null; then SUDO=(sudo); else
  echo "error: need root or sudo to run: apt-get install ${missing[*]}" >&2; exit 1; fi
export DEBIAN_FRONTEND=noninteractive
"${SUDO[@]}" apt-get update -qq
"${SUDO[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
# Debian's packages try to start services; nothing here uses them (tests start their own).
"${SUDO[@]}" pkill -x prometheus 2>/dev/null || true
"${SUDO[@]}" pkill -x prometheus-alertmanager 2>/dev/null || true
echo "== installed: $(prometheus --version 2>&1 | head -1); $(prometheus-alertmanager --version 2>&1 | head -1)"

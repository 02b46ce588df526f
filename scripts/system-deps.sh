#!/usr/bin/env bash
# Installs the Debian packages the test suite needs (PostgreSQL for the catalog's second backend,
# npm for buf, kubectl for kustomize) when they are missing. Idempotent and quick when everything is there.
set -euo pipefail

missing=()
pg_bindir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
if [ -z "$pg_bindir" ] || [ ! -x "$pg_bindir/initdb" ]; then missing+=(postgresql); fi
command -v npm >/dev/null 2>&1 || missing+=(npm)
command -v kubectl >/dev/null 2>&1 || missing+=(kubectl)  # renders the Kubernetes overlays under test

if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "missing system packages: ${missing[*]}" >&2
  echo "install them with: sudo apt-get update && sudo apt-get install -y ${missing[*]}" >&2
  exit 1
fi
echo "installing system packages: ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null

#!/usr/bin/env bash
# Install the Debian packages the tests and the local stack run for real (Prometheus, promtool,
# Alertmanager, Redis, PostgreSQL) when they are missing.
#
# As root: apt-get install --no-install-recommends, waiting and retrying while another process
# holds the dpkg lock. Not as root: say which packages are missing and how to install them; the
# tests that need them skip locally and fail under CI=true.
set -euo pipefail

packages=("$@")
if [ ${#packages[@]} -eq 0 ]; then
  packages=(prometheus prometheus-alertmanager redis-server postgresql)
fi

missing=()
for pkg in "${packages[@]}"; do
  status=$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)
  [ "$status" = "install ok installed" ] || missing+=("$pkg")
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
  echo "system-deps: missing Debian packages: ${missing[*]}" >&2
  echo "system-deps: install them with: sudo apt-get install -y --no-install-recommends ${missing[*]}" >&2
  exit 0
fi

export DEBIAN_FRONTEND=noninteractive
apt_retry() {
  # DPkg::Lock::Timeout makes apt wait for the lock; the loop covers the other transient failures
  # (a lists lock, a mirror hiccup).
  local attempt
  for attempt in 1 2 3 4 5 6; do
    if apt-get -o DPkg::Lock::Timeout=300 -q "$@"; then
      return 0
    fi
    echo "system-deps: apt-get $1 failed (attempt $attempt); retrying in $((attempt * 5))s" >&2
    sleep $((attempt * 5))
  done
  return 1
}

echo "system-deps: installing ${missing[*]}"
apt_retry update
apt_retry install -y --no-install-recommends "${missing[@]}"

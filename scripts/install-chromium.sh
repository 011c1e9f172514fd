#!/usr/bin/env bash
# Debian's headless Chromium, for the e2e test of the audit's /report page.
# Installed once (it stays on the machine); needs root or sudo.
set -euo pipefail
if command -v chromium >/dev/null; then
  exit 0
fi
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
export DEBIAN_FRONTEND=noninteractive
as_root apt-get install -y -q chromium >/dev/null || {
  as_root apt-get update -q >/dev/null
  as_root apt-get install -y -q chromium >/dev/null
}
chromium --version

#!/usr/bin/env bash
# Build helm from its Go module into target/tools/helm (no binary downloads).
# Usage: scripts/install-helm.sh            # pinned version below
#        HELM_VERSION=v3.x.y scripts/install-helm.sh
# The build takes several minutes on a small machine; it is skipped when the
# binary already reports the wanted version.
set -euo pipefail

HELM_VERSION="${HELM_VERSION:-v3.22.0}"
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
TOOLS="$ROOT/target/tools"
mkdir -p "$TOOLS"

if [ -x "$TOOLS/helm" ] && "$TOOLS/helm" version --short 2>/dev/null | grep -q "^${HELM_VERSION%%+*}"; then
  echo "helm ${HELM_VERSION} already in $TOOLS"
  exit 0
fi

command -v go >/dev/null || { echo "go is required to build helm" >&2; exit 1; }
echo "building helm ${HELM_VERSION} into $TOOLS (slow)..."
# The version string helm prints comes from ldflags; set it so `helm version` is honest.
GOBIN="$TOOLS" CGO_ENABLED=0 go install \
  -ldflags "-s -w -X helm.sh/helm/v3/internal/version.version=${HELM_VERSION}" \
  "helm.sh/helm/v3/cmd/helm@${HELM_VERSION}"
"$TOOLS/helm" version --short

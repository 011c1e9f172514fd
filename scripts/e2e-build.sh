#!/usr/bin/env bash
# Build the real Kubernetes binaries the end-to-end tests run against:
# kube-apiserver from the module k8s.io/kubernetes (tests/e2e/k8s/go.mod) and
# etcd from go.etcd.io/etcd/server/v3 (tests/e2e/etcd/go.mod), both fetched
# through the Go module proxy (`go env GOPROXY`). No Kubernetes source is kept
# in this repository: the two go.mod/go.sum pairs are all there is.
#
# For the supply-chain tests: the CNCF distribution registry
# (tests/e2e/registry/go.mod), cosign and crane (tests/e2e/cosign/go.mod).
#
# Output: target/e2e-bin/{kube-apiserver,kube-controller-manager,etcd,registry,cosign,crane}
# (or $E2E_BIN_DIR). A binary
# that is already there is not rebuilt; delete it (or the directory) to force
# a rebuild. Prints how long each build took.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
out="${E2E_BIN_DIR:-$root/target/e2e-bin}"
mkdir -p "$out"

command -v go >/dev/null || { echo "e2e-build: go is required" >&2; exit 1; }
export GOFLAGS="${GOFLAGS:+$GOFLAGS }-mod=mod"
export CGO_ENABLED=0

k8s_version="$(sed -n 's/^\tk8s.io\/kubernetes v\([0-9.]*\).*/\1/p' "$root/tests/e2e/k8s/go.mod")"

# build NAME MODULE_DIR PACKAGE [extra go build flags...]
build() {
	local name="$1" dir="$2" pkg="$3"
	shift 3
	if [[ -x "$out/$name" ]]; then
		echo "e2e-build: $name already built ($out/$name), nothing to do"
		return 0
	fi
	echo "e2e-build: building $name from $pkg ($(go version | cut -d' ' -f3), GOPROXY=$(go env GOPROXY))"
	local start=$SECONDS
	# Build to a temporary name first so an interrupted build never counts as done.
	(cd "$dir" && go build -trimpath -o "$out/$name.tmp" "$@" "$pkg")
	mv "$out/$name.tmp" "$out/$name"
	echo "e2e-build: $name built in $((SECONDS - start))s"
}

total=$SECONDS
build etcd "$root/tests/e2e/etcd" go.etcd.io/etcd/server/v3 -ldflags "-s -w"
k8s_ldflags="-s -w -X k8s.io/component-base/version.gitVersion=v${k8s_version} -X k8s.io/component-base/version.gitTreeState=clean"
build kube-apiserver "$root/tests/e2e/k8s" k8s.io/kubernetes/cmd/kube-apiserver -ldflags "$k8s_ldflags"
# The controller-manager (deployment and replicaset controllers) for the
# rollout test: the same module, so the Go build cache shares most of it.
build kube-controller-manager "$root/tests/e2e/k8s" k8s.io/kubernetes/cmd/kube-controller-manager -ldflags "$k8s_ldflags"
# The supply-chain tests' real tools: an OCI registry, cosign, crane.
build registry "$root/tests/e2e/registry" github.com/distribution/distribution/v3/cmd/registry -ldflags "-s -w"
build cosign "$root/tests/e2e/cosign" github.com/sigstore/cosign/v3/cmd/cosign -ldflags "-s -w"
build crane "$root/tests/e2e/cosign" github.com/google/go-containerregistry/cmd/crane -ldflags "-s -w"
echo "e2e-build: done in $((SECONDS - total))s"
"$out/etcd" --version | sed -n 1p
"$out/kube-apiserver" --version
"$out/kube-controller-manager" --version
"$out/registry" --version
"$out/cosign" version 2>/dev/null | sed -n '/GitVersion/p'
"$out/crane" version

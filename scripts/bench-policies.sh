#!/usr/bin/env bash
# What the apiserver's own ValidatingAdmissionPolicy evaluator costs one
# request for tiergate's generated policies, without HTTP, etcd or other
# admission: the Go benchmark tests/e2e/k8s/vapbench/policy_bench_test.go,
# run inside a copy of k8s.io/apiserver at the version the e2e apiserver is
# built from (under target/bench-policies; the first run builds it, a few
# minutes). Not part of any test run: `make bench-policies`. In the same
# process, BenchmarkTiergateBindingSelectors: what parsing and matching the
# namespace selectors of every binding a Deployment write meets costs each
# write (the apiserver does it for every such write, judged or not).
#
#   scripts/bench-policies.sh [POLICIES.yaml ...]
#
# Each file is one sub-benchmark, alternated (-count), so two files give a
# before/after ratio in one process. Default: the hybrid component's
# policies. Environment: POLICY (tiergate-warn), TIER (1), MODE (warn),
# OBJECT (tests/data/web-deployment.json), COUNT (5), BENCHTIME (1s),
# BENCH (Tiergate(VAP|BindingSelectors): either, or both).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
k8s="$root/tests/e2e/k8s"
work="$root/target/bench-policies"
files=()
for f in "${@:-$root/deploy/components/admission-policies/admission-policies.yaml}"; do
	files+=("$(cd "$(dirname "$f")" && pwd)/$(basename "$f")")
done
src="$(cd "$k8s" && go mod download k8s.io/apiserver && go list -m -f '{{.Dir}}' k8s.io/apiserver)"
if [ ! -f "$work/.from" ] || [ "$(cat "$work/.from")" != "$src" ]; then
	rm -rf "$work"
	mkdir -p "$work"
	cp -r "$src" "$work/apiserver"
	chmod -R u+w "$work/apiserver"
	cp "$k8s/go.mod" "$k8s/go.sum" "$work/"
	# The copy stands in for the published module; no tool is built here.
	sed -i -e 's#^\(\tk8s.io/apiserver => \).*#\1./apiserver#' -e '/^tool /d' "$work/go.mod"
	echo "$src" > "$work/.from"
fi
pkg="$work/apiserver/pkg/admission/plugin/policy/validating"
# The package's own tests need modules the e2e build does not download.
rm -f "$pkg"/*_test.go
cp "$k8s/vapbench/policy_bench_test.go" "$pkg/"
object="$(realpath "${OBJECT:-$root/tests/data/web-deployment.json}")"
cd "$work"
TIERGATE_VAP="$(IFS=,; echo "${files[*]}")" \
	TIERGATE_POLICY="${POLICY:-tiergate-warn}" \
	TIERGATE_OBJECT="$object" \
	TIERGATE_NS_LABELS="tiergate.io/tier=${TIER:-1},tiergate.io/mode=${MODE:-warn}" \
	go test -mod=mod -tags tiergate_vapbench -run '^$' -bench "${BENCH:-Tiergate(VAP|BindingSelectors)}" \
	-benchtime "${BENCHTIME:-1s}" -count "${COUNT:-5}" \
	k8s.io/apiserver/pkg/admission/plugin/policy/validating

.PHONY: admission-policies build test run lint bench bench-load bench-load-smoke bench-load-big certs docs image helm deploy-check dev-certs e2e e2e-bin audit-scale bench-apiserver bench-apiserver-smoke bench-policies
build:
	cargo build --release
run:
	cargo run --release -- serve
test:
	cargo test --all-targets
lint:
	cargo fmt --all -- --check
	cargo clippy --all-targets -- -D warnings
bench:
	cargo bench --bench engine
# Load benchmark: tiergate serve vs a floor server (axum + rustls), table on
# stdout, JSON in target/bench-load.json. About 2 minutes.
bench-load:
	cargo bench --bench load
# The same for a few seconds (CI).
bench-load-smoke:
	cargo bench --bench load -- --smoke
# 64 concurrent 3 MiB reviews: peak RSS against the deploy memory limit.
bench-load-big:
	cargo bench --bench load -- --big
certs:
	cargo run --release -- certs --service tiergate --namespace tiergate-system --out certs
docs:
	cargo run --quiet -- rules -o markdown > docs/RULES.md
# The hybrid deployment's generated files (deploy/components/admission-policies
# and the chart's copies), from its config and deploy/base/webhooks.yaml.
admission-policies:
	cargo run --quiet -- export admission-policies \
		--config deploy/components/admission-policies/config.yaml \
		--webhooks deploy/base/webhooks.yaml --out deploy/components/admission-policies
	cp deploy/components/admission-policies/admission-policies.yaml \
		deploy/components/admission-policies/webhooks-hybrid.yaml deploy/helm/tiergate/files/
	cp deploy/components/admission-policies/webhooks-hybrid.yaml \
		deploy/components/admission-policies-managed/

# ---- Deployment (deploy/, Dockerfile) ----
IMAGE ?= ghcr.io/tiergate/tiergate
VERSION ?= $(shell sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)
# The one place the image is built. PUSH=1 pushes and prints the digest to pin
# in deploy/ (kustomize `images:` / Helm image.digest).
image:
	mkdir -p target
	docker buildx build --build-arg VERSION=$(VERSION) -t $(IMAGE):$(VERSION) \
		$(if $(filter 1,$(PUSH)),--push,--load) --metadata-file target/image-metadata.json .
	@sed -n 's/.*"containerimage.digest": *"\([^"]*\)".*/digest: \1/p' target/image-metadata.json
# helm, built from its Go module into target/tools (slow the first time).
helm:
	scripts/install-helm.sh
# Render both overlays and the chart, check them at tier 5, compare them.
deploy-check: helm
	TIERGATE_REQUIRE_HELM=1 cargo test --test deploy
# Self-signed serving certificate for deploy/overlays/dev.
dev-certs:
	cargo run --release -- certs --service tiergate --namespace tiergate-system --out deploy/overlays/dev/certs

# End-to-end: build kube-apiserver and etcd from the Go module proxy into
# target/e2e-bin/ (once; cached), then run tiergate against them.
E2E_THREADS ?= 4
e2e-bin:
	scripts/e2e-build.sh
e2e: e2e-bin
	@start=$$(date +%s); \
	cargo test --features e2e --test e2e -- --test-threads=$(E2E_THREADS); rc=$$?; \
	if [ $$rc -eq 0 ]; then \
	  cargo test --features e2e --test e2e -- --ignored --test-threads=1; rc=$$?; \
	fi; \
	echo "e2e: suite (build + run) took $$(( $$(date +%s) - start ))s"; exit $$rc
# The audit at 10,000 Deployments against the e2e apiserver: time and peak
# RSS against an empty namespace in the same run (figures, not a test of them).
audit-scale: e2e-bin
	E2E_SCALE=1 cargo test --release --features e2e --test e2e -- --ignored audit_at_scale_figures --nocapture
# What tiergate costs a write through the real kube-apiserver and etcd: no
# webhook, tiergate's webhooks as in deploy/, Pod Security Admission only,
# hybrid mode (admission policies + narrowed webhooks) at tiers 3 and 1, the
# policies alone, alternating; 1,000 writes per cell, 5 rounds (about 15 minutes). Table on
# stderr, JSON in target/bench-apiserver.json. Not part of make test.
bench-apiserver: e2e-bin
	E2E_BENCH=1 cargo test --release --features e2e --test e2e -- --ignored apiserver_write_cost --nocapture
# The same with 32 writes per cell and one round (CI: so it cannot rot).
bench-apiserver-smoke: e2e-bin
	E2E_BENCH=smoke cargo test --features e2e --test e2e -- --ignored apiserver_write_cost --nocapture
# The apiserver's own ValidatingAdmissionPolicy evaluator on the generated
# policies, per request, no HTTP or etcd (Go benchmark; POLICY, TIER, MODE,
# OBJECT: scripts/bench-policies.sh). Not part of make test.
bench-policies:
	scripts/bench-policies.sh

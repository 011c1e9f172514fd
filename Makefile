.PHONY: build test run lint bench certs e2e e2e-bin
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
certs:
	cargo run --release -- certs --service tiergate --namespace tiergate-system --out certs
# End-to-end: build kube-apiserver and etcd from the Go module proxy into
# target/e2e-bin/ (once; cached), then run tiergate against them.
E2E_THREADS ?= 4
e2e-bin:
	scripts/e2e-build.sh
e2e: e2e-bin
	@start=$$(date +%s); \
	cargo test --features e2e --test e2e -- --test-threads=$(E2E_THREADS); rc=$$?; \
	echo "e2e: suite (build + run) took $$(( $$(date +%s) - start ))s"; exit $$rc

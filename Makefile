.PHONY: build test run lint bench bench-load bench-load-smoke certs
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
certs:
	cargo run --release -- certs --service tiergate --namespace tiergate-system --out certs

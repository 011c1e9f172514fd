.PHONY: build test run lint bench certs docs
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
docs:
	cargo run --quiet -- rules -o markdown > docs/RULES.md

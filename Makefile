# rt-relay: the two commands a newcomer needs, plus checks.
.PHONY: test dev bench check-template lint

## Run every test (installs and starts RT and moto on 127.0.0.1 as needed).
test:
	bash scripts/test.sh

## Bring the whole product up locally: RT, moto, tables, the local gateway. Ctrl-C stops it.
dev:
	bash scripts/dev.sh

## Benchmarks (not part of test): one table of ratios, see docs/PERFORMANCE.md. Loopback only.
bench:
	bash scripts/bench.sh

## cfn-lint and sam validate on template.yaml, offline.
check-template:
	bash scripts/check-template.sh

## The lint gate CI runs before the tests: formatting and clippy with warnings as errors.
lint:
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings

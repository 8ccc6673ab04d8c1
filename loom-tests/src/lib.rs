//! Loom models of shmq live in `tests/`; run them with `RUSTFLAGS="--cfg loom" cargo test -p shmq-loom-tests --release`.

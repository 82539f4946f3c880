//! The XDP program lives in `main.rs` (built for the BPF target by `dataplane/build.rs`).
#![no_std]

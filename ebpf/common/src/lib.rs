//! Map layouts shared by the XDP program (`ebpf/`) and userspace (`dataplane/`, `control/`).
#![no_std]

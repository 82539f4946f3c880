//! Multipath bonding engine: policies, link quality, failover.
//!
//! Pure: no I/O and no clocks; time is a parameter. Spec: `shared/spec/zerotier-bonding.md`.
pub mod config;

//! ZeroTier 1.x (zerotier-one 1.14.1) wire protocol core.
//!
//! Pure: no I/O and no clocks; time is a parameter. Spec: `shared/spec/zerotier-protocol.md`.

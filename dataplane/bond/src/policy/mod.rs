//! Policy decisions over the bond's paths (bonding spec §6). Each function is pure over the path states;
//! the bond applies the result and publishes a new selection table.

pub mod active_backup;
pub mod balance;

//! `cargo xtask bench crypto` (owned by the crypto work; not yet written).
use anyhow::{Result, bail};

pub fn run(_args: &[String]) -> Result<()> {
    bail!("benchmark crypto is not implemented yet")
}

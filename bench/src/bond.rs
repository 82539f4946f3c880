//! `cargo xtask bench bond` (owned by the bond work; not yet written).
use anyhow::{Result, bail};

pub fn run(_args: &[String]) -> Result<()> {
    bail!("benchmark bond is not implemented yet")
}

//! `ztplanectl policy` (not yet written).
use anyhow::{Result, bail};
use std::process::ExitCode;

pub fn run(_args: &[String]) -> Result<ExitCode> {
    bail!("ztplanectl policy is not implemented yet")
}

//! Benchmarks: `cargo xtask bench NAME` runs `ztplane-bench NAME` in release mode.
//! Each prints a table with an in-run baseline and writes `target/bench/NAME.json`.
mod bond;
mod crypto;
mod handoff;
mod io;
mod overlay;
mod peers;
mod report;

use anyhow::{Result, bail};

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(name) = args.first() else {
        bail!("usage: ztplane-bench <io|handoff|crypto|bond|peers> [options]");
    };
    match name.as_str() {
        "crypto" => crypto::run(&args[1..]),
        "bond" => bond::run(&args[1..]),
        "io" => io::run(&args[1..]),
        "handoff" => handoff::run(&args[1..]),
        "peers" => peers::run(&args[1..]),
        "overlay" => overlay::run(&args[1..]),
        other => bail!("unknown benchmark {other:?} (known: io, handoff, crypto, bond, peers)"),
    }
}

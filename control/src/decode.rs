//! `ztplanectl decode --pcap FILE --identity PATH [--identity PATH ...]`
//!
//! Decodes a classic pcap of ZeroTier 1.x traffic with the given identities (`.secret` or
//! `.public` files; identities of other nodes are also learned from authenticated HELLOs) and
//! prints one JSON object per datagram, one per line, then the summary
//! object — the record and summary schema of `conformance/zt-1.14.1/README.md`.
use anyhow::{Context, Result};
use std::io::{BufWriter, Write};
use std::process::ExitCode;
use ztplane_protocol::Identity;
use ztplane_protocol::inspect::inspect_pcap;

#[derive(clap::Args, Debug)]
#[command(args_override_self = true)]
pub struct DecodeArgs {
    /// classic pcap of ZeroTier 1.x traffic
    #[arg(long, value_name = "FILE", required = true, allow_hyphen_values = true)]
    pub pcap: String,
    /// identity file (.secret or .public) to decrypt with; repeatable, at least one
    #[arg(long = "identity", value_name = "PATH", required = true, allow_hyphen_values = true)]
    pub identities: Vec<String>,
}

fn load_identity(path: &str) -> Result<Identity> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read identity file {path}"))?;
    text.trim().parse::<Identity>().map_err(|e| anyhow::anyhow!("bad identity file {path}: {e}"))
}

pub fn run(args: &DecodeArgs) -> Result<ExitCode> {
    let identities = args.identities.iter().map(|p| load_identity(p)).collect::<Result<Vec<_>>>()?;
    let pcap = std::fs::read(&args.pcap).with_context(|| format!("cannot read pcap file {}", args.pcap))?;
    let inspection = inspect_pcap(&pcap, identities).with_context(|| format!("bad pcap file {}", args.pcap))?;
    let stdout = std::io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    for record in &inspection.records {
        serde_json::to_writer(&mut out, record)?;
        out.write_all(b"\n")?;
    }
    serde_json::to_writer(&mut out, &inspection.summary)?;
    out.write_all(b"\n")?;
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

//! `ztplanectl`: the control process. Subcommands live one per module.
mod auth;
mod decode;
mod http_api;
mod metrics;
mod node;
mod policy;
mod serve;
mod xdp;

use anyhow::Result;
use std::process::ExitCode;

const USAGE: &str = "usage: ztplanectl <command> ...
  [-D DIR] [-j] info|listnetworks|listpeers|join NWID|leave NWID   (as zerotier-cli; DIR: /var/lib/zerotier-one)
  [-D DIR] serve [--listen ADDR:PORT] [--metrics ADDR:PORT|off]      (zerotier-one's local HTTP API + Prometheus)
  decode --pcap FILE --identity PATH [--identity PATH ...]
  policy simulate --config local.conf --scenario scenario.json
  policy check --config local.conf
  xdp stats [--instance NAME] [--bpffs PATH]
  xdp ports list|add PORT|remove PORT [--instance NAME] [--bpffs PATH]";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result: Result<ExitCode> = match args.first().map(String::as_str) {
        Some("decode") => decode::run(&args[1..]),
        Some("policy") => policy::run(&args[1..]),
        Some("xdp") => xdp::run(&args[1..]),
        _ if serve::handles(&args) => serve::run(&args),
        // zerotier-cli's commands, with its switches before or after the command word.
        _ if node::handles(&args) => node::run(&args),
        _ => {
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("ztplanectl: {err:#}");
            ExitCode::from(1)
        }
    }
}

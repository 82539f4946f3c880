//! `ztplanectl`: the control process. Subcommands live one per module; the command line is clap's
//! ([`Cli`]), except for zerotier-cli's commands (see [`main`]).
mod auth;
mod bond;
mod decode;
mod http_api;
mod metrics;
mod moon;
mod node;
mod policy;
mod serve;
mod xdp;

use anyhow::Result;
use clap::error::ErrorKind;
use clap::{Args, CommandFactory, Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

/// ztplane control: zerotier-cli's commands and zerotier-one's local HTTP API for a running
/// `ztplane node`, the packet decoder, bonding policies and XDP steering.
#[derive(Parser, Debug)]
#[command(
    name = "ztplanectl",
    version,
    subcommand_required = true,
    arg_required_else_help = true,
    args_override_self = true,
    after_help = "info, listnetworks, listpeers, join and leave work as zerotier-cli's: -D DIR (also -DDIR) and -j \
                  may come before or after the command word, and words after the command's argument are ignored."
)]
pub struct Cli {
    /// zerotier-one home directory, where the node's control socket is (default /var/lib/zerotier-one);
    /// for zerotier-cli's commands and serve
    #[arg(short = 'D', value_name = "DIR", allow_hyphen_values = true)]
    pub home: Option<PathBuf>,
    /// print the node's JSON answer (zerotier-cli's commands and bond only)
    #[arg(short = 'j')]
    pub json: bool,
    #[command(subcommand)]
    pub command: Cmd,
}

#[derive(Subcommand, Debug)]
pub enum Cmd {
    /// the node's address, version and ONLINE, OFFLINE or TUNNELED (as zerotier-cli)
    Info(ZtArgs),
    /// zerotier-cli's alias of info
    Status(ZtArgs),
    /// the networks joined (as zerotier-cli)
    Listnetworks(ZtArgs),
    /// the peers and their preferred paths (as zerotier-cli)
    Listpeers(ZtArgs),
    /// join a network (as zerotier-cli)
    Join(ZtNetworkArgs),
    /// leave a network (as zerotier-cli)
    Leave(ZtNetworkArgs),
    /// zerotier-one's local HTTP API (for zerotier-cli) and a Prometheus endpoint, for a running node
    Serve(serve::ServeCli),
    /// decode a pcap of ZeroTier 1.x traffic into one JSON object per datagram, then a summary
    Decode(decode::DecodeArgs),
    /// bonding policies: simulate one, check a local.conf
    #[command(subcommand)]
    Policy(policy::PolicyCmd),
    /// XDP steering of a running dataplane: counters, steered UDP ports
    Xdp(xdp::XdpArgs),
    /// bonded peers and the quality of their links (as zerotier-cli bond list / bond PEER show), rotate
    Bond(bond::BondArgs),
    /// make a node the root of its own site (a moon), as zerotier-idtool initmoon/genmoon
    #[command(subcommand)]
    Moon(moon::MoonCmd),
    /// print a shell completion script (e.g. `ztplanectl completions bash > /etc/bash_completion.d/ztplanectl`)
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

/// The switches of zerotier-cli's commands (parsed by `node::parse_args`; described here for
/// `--help` and completions).
#[derive(Args, Debug)]
#[command(args_override_self = true)]
pub struct ZtArgs {
    /// zerotier-one home directory (default /var/lib/zerotier-one); also -DDIR
    #[arg(short = 'D', value_name = "DIR", allow_hyphen_values = true)]
    pub home: Option<PathBuf>,
    /// print the node's JSON answer
    #[arg(short = 'j')]
    pub json: bool,
    /// ignored, as zerotier-cli does
    #[arg(hide = true)]
    pub ignored: Vec<String>,
}

/// [`ZtArgs`] and the network ID of join and leave.
#[derive(Args, Debug)]
#[command(args_override_self = true)]
pub struct ZtNetworkArgs {
    /// network ID: 16 hex digits
    #[arg(value_name = "NWID")]
    pub nwid: Option<String>,
    #[command(flatten)]
    pub switches: ZtArgs,
}

impl Cmd {
    fn is_zerotier_cli(&self) -> bool {
        matches!(
            self,
            Cmd::Info(_) | Cmd::Status(_) | Cmd::Listnetworks(_) | Cmd::Listpeers(_) | Cmd::Join(_) | Cmd::Leave(_)
        )
    }
}

/// Parses a command line (without the program name) with clap. `-D` before the command word is for
/// zerotier-cli's commands and serve, `-j` for zerotier-cli's commands only: elsewhere they are
/// usage errors, as they were before clap.
pub fn parse(args: &[String]) -> Result<Cli, clap::Error> {
    let cli = Cli::try_parse_from(std::iter::once("ztplanectl").chain(args.iter().map(String::as_str)))?;
    let zerotier_cli = cli.command.is_zerotier_cli();
    // `-j bond ...` too: zerotier-cli users type `zerotier-cli -j bond list`.
    let misplaced = if cli.json && !zerotier_cli && !matches!(cli.command, Cmd::Bond(_)) {
        Some("-j")
    } else if cli.home.is_some() && !zerotier_cli && !matches!(cli.command, Cmd::Serve(_)) {
        Some("-D")
    } else {
        None
    };
    if let Some(flag) = misplaced {
        let message =
            format!("{flag} is only for info, listnetworks, listpeers, join, leave (also -j for bond, -D for serve)");
        return Err(Cli::command().error(ErrorKind::ArgumentConflict, message));
    }
    Ok(cli)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    // zerotier-cli's commands keep zerotier-cli's own parser (`node::parse_args`): its switches go
    // before or after the command word, `-D/path` sticks to its value and words past the network ID
    // are ignored, exactly as zerotier-cli users type them. Only a request for help goes to clap.
    let wants_help = args.iter().any(|a| a == "-h" || a == "--help");
    if node::handles(&args) && !wants_help {
        return finish(node::run(&args));
    }
    let cli = match parse(&args) {
        Ok(cli) => cli,
        Err(err) => return ExitCode::from(ztplane_host::cli::clap_exit("ztplanectl", &err)),
    };
    let result: Result<ExitCode> = match cli.command {
        Cmd::Info(_) | Cmd::Status(_) | Cmd::Listnetworks(_) | Cmd::Listpeers(_) | Cmd::Join(_) | Cmd::Leave(_) => {
            node::run(&args)
        }
        Cmd::Serve(serve) => serve::run(serve.into_args(cli.home)),
        Cmd::Decode(decode) => decode::run(&decode),
        Cmd::Policy(policy) => policy::run(&policy),
        Cmd::Xdp(xdp) => xdp::run(&xdp),
        Cmd::Bond(bond) => bond::run(&bond, cli.json),
        Cmd::Moon(moon) => moon::run(&moon),
        Cmd::Completions { shell } => {
            clap_complete::generate(shell, &mut Cli::command(), "ztplanectl", &mut std::io::stdout());
            Ok(ExitCode::SUCCESS)
        }
    };
    finish(result)
}

fn finish(result: Result<ExitCode>) -> ExitCode {
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("ztplanectl: {err:#}");
            ExitCode::from(1)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(line: &str) -> Vec<String> {
        line.split_whitespace().map(str::to_string).collect()
    }

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn switches_of_zerotier_cli_only_where_they_apply() {
        assert!(parse(&args("-D /h serve")).is_ok());
        assert!(parse(&args("-D /h -j info")).is_ok());
        assert!(parse(&args("-D /h decode --pcap p --identity i")).is_err());
        assert!(parse(&args("-j serve")).is_err());
        assert!(parse(&args("-j policy check --config c")).is_err());
        assert!(parse(&args("-j bond list")).is_ok());
        assert!(parse(&args("bond show 0123456789 -j")).is_ok());
        assert!(parse(&args("-D /h bond list")).is_err());
        assert!(parse(&args("bond show 012345678")).is_err(), "9 digits");
        assert!(parse(&args("bond rotate 0123456789 --home /h")).is_ok());
    }
}

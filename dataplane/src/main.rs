//! `ztplane`: the dataplane binary.
use clap::{CommandFactory, Parser, Subcommand};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use ztplane::config::{FwdCli, FwdConfig};
use ztplane::node::args::{NodeArgs, NodeCli};

/// The ZeroTier node on XDP/AF_XDP workers.
#[derive(Parser, Debug)]
#[command(name = "ztplane", version, subcommand_required = true, arg_required_else_help = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// run a ZeroTier node: joins networks, carries frames between taps and peers on every core
    Node(NodeCli),
    /// forward steered UDP frames between two interfaces through the workers
    Fwd(FwdCli),
    /// print a shell completion script (e.g. `ztplane completions bash > /etc/bash_completion.d/ztplane`)
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) => return ExitCode::from(ztplane_host::cli::clap_exit("ztplane", &err)),
    };
    match cli.command {
        Command::Completions { shell } => {
            clap_complete::generate(shell, &mut Cli::command(), "ztplane", &mut std::io::stdout());
            ExitCode::SUCCESS
        }
        Command::Fwd(cli) => match cli.into_config() {
            Ok(config) => fwd(&config),
            Err(err) => usage_error(&err),
        },
        Command::Node(cli) => match cli.into_args() {
            Ok(args) => node(&args),
            Err(err) => usage_error(&err),
        },
    }
}

fn usage_error(err: &ztplane::error::DataplaneError) -> ExitCode {
    eprintln!("ztplane: {err}");
    ExitCode::from(2)
}

fn init_logging() {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info"))
        .format_timestamp_millis()
        .init();
}

fn fwd(config: &FwdConfig) -> ExitCode {
    init_logging();
    let Some(stop) = stop_on_signals() else { return ExitCode::from(1) };
    match ztplane::fwd::run(config, stop) {
        Ok(summary) => {
            let text = serde_json::to_string(&summary).expect("summary serialises");
            println!("{text}");
            if let Some(path) = &config.stats_json
                && let Err(err) = std::fs::write(path, format!("{text}\n"))
            {
                eprintln!("ztplane: writing {}: {err}", path.display());
                return ExitCode::from(1);
            }
            log::info!("stopped cleanly");
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("ztplane: {err}");
            ExitCode::from(1)
        }
    }
}

fn node(args: &NodeArgs) -> ExitCode {
    init_logging();
    let Some(stop) = stop_on_signals() else { return ExitCode::from(1) };
    match ztplane::node::run(args, stop) {
        Ok(()) => {
            log::info!("stopped cleanly");
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("ztplane: {err}");
            ExitCode::from(1)
        }
    }
}

/// A flag SIGINT and SIGTERM set (the run loops drain and clean up when they see it).
fn stop_on_signals() -> Option<Arc<AtomicBool>> {
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        if let Err(err) = signal_hook::flag::register(signal, stop.clone()) {
            eprintln!("ztplane: cannot install signal handler: {err}");
            return None;
        }
    }
    Some(stop)
}

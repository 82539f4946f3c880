//! `ztplane`: the dataplane binary.
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use ztplane::config::{FWD_USAGE, FwdConfig};

const USAGE: &str = "usage: ztplane <command> [options]
commands:
  node    run a ZeroTier node: joins networks, carries frames between taps and peers on every core
  fwd     forward steered UDP frames between two interfaces through the workers";

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info"))
        .format_timestamp_millis()
        .init();
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("fwd") if args.iter().any(|a| a == "--help" || a == "-h") => {
            println!("{FWD_USAGE}");
            ExitCode::SUCCESS
        }
        Some("fwd") => fwd(&args[1..]),
        Some("node") if args.iter().any(|a| a == "--help" || a == "-h") => {
            println!("{}", ztplane::node::args::NODE_USAGE);
            ExitCode::SUCCESS
        }
        Some("node") => node(&args[1..]),
        Some("--help" | "-h" | "help") => {
            println!("{USAGE}");
            ExitCode::SUCCESS
        }
        _ => {
            eprintln!("{USAGE}");
            ExitCode::from(2)
        }
    }
}

fn fwd(args: &[String]) -> ExitCode {
    let config = match FwdConfig::from_args(args) {
        Ok(config) => config,
        Err(err) => {
            eprintln!("ztplane: {err}");
            return ExitCode::from(2);
        }
    };
    let Some(stop) = stop_on_signals() else { return ExitCode::from(1) };
    match ztplane::fwd::run(&config, stop) {
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

fn node(args: &[String]) -> ExitCode {
    let config = match ztplane::node::args::NodeArgs::from_args(args) {
        Ok(config) => config,
        Err(err) => {
            eprintln!("ztplane: {err}");
            return ExitCode::from(2);
        }
    };
    let Some(stop) = stop_on_signals() else { return ExitCode::from(1) };
    match ztplane::node::run(&config, stop) {
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

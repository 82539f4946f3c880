//! `ztplanectl policy simulate --config local.conf --scenario scenario.json`: run the bonding engine on
//! both ends of a bond over simulated links (`ztplane_bond::sim`) and print one JSON result.
//!
//! `ztplanectl policy check --config local.conf`: validate a configuration before deploying it; print
//! its warnings and the bonding settings it resolves to (normalised JSON, defaults filled in).
//!
//! Exit codes: 0 success; 2 usage error, unreadable input, invalid configuration or scenario.

use anyhow::Result;
use std::process::ExitCode;

use ztplane_bond::config::parse_local_conf;
use ztplane_bond::config::{Policy, PolicySettings};
use ztplane_bond::sim::{self, Scenario};

const USAGE: &str = "usage: ztplanectl policy simulate --config local.conf --scenario scenario.json [--pretty]
       ztplanectl policy check --config local.conf";

/// A problem with what the user gave us: printed, exit code 2.
struct InputError(String);

pub fn run(args: &[String]) -> Result<ExitCode> {
    match args.first().map(String::as_str) {
        Some("simulate") => match simulate(&args[1..]) {
            Ok(json) => {
                println!("{json}");
                Ok(ExitCode::SUCCESS)
            }
            Err(InputError(message)) => {
                eprintln!("ztplanectl policy simulate: {message}");
                Ok(ExitCode::from(2))
            }
        },
        Some("check") => match check(&args[1..]) {
            Ok(json) => {
                println!("{json}");
                Ok(ExitCode::SUCCESS)
            }
            Err(InputError(message)) => {
                eprintln!("ztplanectl policy check: {message}");
                Ok(ExitCode::from(2))
            }
        },
        _ => {
            eprintln!("{USAGE}");
            Ok(ExitCode::from(2))
        }
    }
}

fn check(args: &[String]) -> Result<String, InputError> {
    let config_path = match args {
        [flag, path] if flag == "--config" => path,
        _ => return Err(InputError(format!("--config is required\n{USAGE}"))),
    };
    let text = std::fs::read_to_string(config_path)
        .map_err(|e| InputError(format!("cannot read config {config_path}: {e}")))?;
    let (config, warnings) =
        parse_local_conf(&text).map_err(|e| InputError(format!("invalid config {config_path}: {e}")))?;
    for w in &warnings {
        eprintln!("ztplanectl policy check: warning: {config_path}: {w}");
    }
    serde_json::to_string_pretty(&config.to_json()).map_err(|e| InputError(format!("cannot render: {e}")))
}

fn simulate(args: &[String]) -> Result<String, InputError> {
    let mut config_path = None;
    let mut scenario_path = None;
    let mut pretty = false;
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--config" => config_path = it.next().cloned(),
            "--scenario" => scenario_path = it.next().cloned(),
            "--pretty" => pretty = true,
            other => return Err(InputError(format!("unexpected argument {other:?}\n{USAGE}"))),
        }
    }
    let (Some(config_path), Some(scenario_path)) = (config_path, scenario_path) else {
        return Err(InputError(format!("--config and --scenario are required\n{USAGE}")));
    };
    let read = |path: &str, what: &str| {
        std::fs::read_to_string(path).map_err(|e| InputError(format!("cannot read {what} {path}: {e}")))
    };
    let config_text = read(&config_path, "config")?;
    let scenario_text = read(&scenario_path, "scenario")?;
    let (config, warnings) =
        parse_local_conf(&config_text).map_err(|e| InputError(format!("invalid config {config_path}: {e}")))?;
    for w in &warnings {
        eprintln!("ztplanectl policy simulate: warning: {config_path}: {w}");
    }
    let scenario = Scenario::from_json(&scenario_text).map_err(|e| InputError(format!("{scenario_path}: {e}")))?;
    let mut settings: PolicySettings = sim::policy_for(&scenario, &config);
    if settings.base == Policy::None {
        eprintln!(
            "ztplanectl policy simulate: note: {config_path} configures no bonding for this peer; simulating policy \"none\" (single best path)"
        );
        settings.name = Policy::None.name().to_string();
    }
    let result = sim::run_policy(&scenario, settings).map_err(|e| InputError(format!("{scenario_path}: {e}")))?;
    let text = if pretty { serde_json::to_string_pretty(&result) } else { serde_json::to_string(&result) };
    text.map_err(|e| InputError(format!("cannot render the result: {e}")))
}

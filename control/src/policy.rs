//! `ztplanectl policy simulate --config local.conf --scenario scenario.json`: run the bonding engine on
//! both ends of a bond over simulated links (`ztplane_bond::sim`) and print one JSON result.
//!
//! `ztplanectl policy check --config local.conf`: validate a configuration before deploying it; print
//! its warnings and the bonding settings it resolves to (normalised JSON, defaults filled in).
//!
//! `ztplanectl policy load --config local.conf [--home DIR]`: validate a configuration as `check` does,
//! then swap it into the running node over its control socket (`DIR/ztplane.sock`): bonds whose policy is
//! unchanged keep running, the others are rebuilt with their paths, traffic keeps flowing. The node's own
//! `DIR/local.conf` is not rewritten: copy the file there to keep the policy across restarts.
//!
//! Exit codes: 0 success; 1 the node cannot be reached; 2 usage error, unreadable input, invalid
//! configuration or scenario (nothing is sent to the node).

use anyhow::Result;
use std::process::ExitCode;

use ztplane_bond::config::parse_local_conf;
use ztplane_bond::config::{Policy, PolicySettings};
use ztplane_bond::sim::{self, Scenario};

#[derive(clap::Subcommand, Debug)]
pub enum PolicyCmd {
    /// run the bonding engine on both ends of a bond over simulated links; print one JSON result
    Simulate(SimulateArgs),
    /// validate a local.conf before deploying it: print its warnings and the bonding settings it
    /// resolves to (normalised JSON, defaults filled in)
    Check(CheckArgs),
    /// validate a local.conf and swap its bonding policies into the running node
    Load(LoadArgs),
}

/// `--config` is required, checked after parsing as for [`SimulateArgs`].
#[derive(clap::Args, Debug)]
pub struct LoadArgs {
    /// zerotier-one local.conf with the bonding policies to load (required)
    #[arg(long, value_name = "local.conf", allow_hyphen_values = true)]
    pub config: Option<Option<String>>,
    /// the node's home directory, where its control socket is (default /var/lib/zerotier-one)
    #[arg(long, value_name = "DIR", allow_hyphen_values = true)]
    pub home: Option<std::path::PathBuf>,
}

/// `--config` and `--scenario` are both required, checked after parsing: a missing one, or one given
/// without a value, is this module's "--config and --scenario are required" (exit 2) as before clap.
#[derive(clap::Args, Debug)]
#[command(args_override_self = true)]
pub struct SimulateArgs {
    /// zerotier-one local.conf with the bonding policy (required)
    #[arg(long, value_name = "local.conf", allow_hyphen_values = true)]
    pub config: Option<Option<String>>,
    /// the simulated links and events, JSON (required)
    #[arg(long, value_name = "scenario.json", allow_hyphen_values = true)]
    pub scenario: Option<Option<String>>,
    /// indent the JSON result
    #[arg(long)]
    pub pretty: bool,
}

/// `--config` is required, checked after parsing as for [`SimulateArgs`].
#[derive(clap::Args, Debug)]
pub struct CheckArgs {
    /// zerotier-one local.conf to check (required)
    #[arg(long, value_name = "local.conf", allow_hyphen_values = true)]
    pub config: Option<Option<String>>,
}

/// A problem with what the user gave us: printed, exit code 2.
struct InputError(String);

/// Why a command failed: bad input (exit 2) or a node that cannot be reached (exit 1).
enum Failure {
    Input(InputError),
    Unreachable(String),
}

impl From<InputError> for Failure {
    fn from(e: InputError) -> Self {
        Failure::Input(e)
    }
}

pub fn run(cmd: &PolicyCmd) -> Result<ExitCode> {
    let (name, result) = match cmd {
        PolicyCmd::Simulate(args) => ("simulate", simulate(args).map_err(Failure::from)),
        PolicyCmd::Check(args) => ("check", check(args).map_err(Failure::from)),
        PolicyCmd::Load(args) => ("load", load(args)),
    };
    match result {
        Ok(json) => {
            println!("{json}");
            Ok(ExitCode::SUCCESS)
        }
        Err(Failure::Input(InputError(message))) => {
            eprintln!("ztplanectl policy {name}: {message}");
            Ok(ExitCode::from(2))
        }
        Err(Failure::Unreachable(message)) => {
            eprintln!("ztplanectl policy {name}: {message}");
            Ok(ExitCode::from(1))
        }
    }
}

fn load(args: &LoadArgs) -> Result<String, Failure> {
    use ztplane_host::control_socket::{Request, SOCKET_NAME, request};
    let Some(Some(config_path)) = &args.config else {
        return Err(InputError(
            "--config is required (usage: ztplanectl policy load --config local.conf [--home DIR])".into(),
        )
        .into());
    };
    let text = std::fs::read_to_string(config_path)
        .map_err(|e| InputError(format!("cannot read config {config_path}: {e}")))?;
    // The same validation as `check`, here: a bad file never reaches the node.
    let (_, warnings) =
        parse_local_conf(&text).map_err(|e| InputError(format!("invalid config {config_path}: {e}")))?;
    for w in &warnings {
        eprintln!("ztplanectl policy load: warning: {config_path}: {w}");
    }
    let document: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| InputError(format!("invalid config {config_path}: {e}")))?;
    let home = args.home.clone().unwrap_or_else(|| crate::node::DEFAULT_HOME.into());
    let socket = home.join(SOCKET_NAME);
    let req = Request { method: "POST".into(), path: "/bond/policy".into(), body: Some(document) };
    let resp = request(&socket, &req, std::time::Duration::from_secs(10))
        .map_err(|e| Failure::Unreachable(format!("no node answers at {}: {e}", socket.display())))?;
    match resp.status {
        200 => serde_json::to_string_pretty(&resp.body).map_err(|e| InputError(format!("cannot render: {e}")).into()),
        400 => Err(InputError(format!(
            "the node refused {config_path}: {}",
            resp.body["error"].as_str().unwrap_or("invalid policy")
        ))
        .into()),
        status => Err(Failure::Unreachable(format!("the node answered {status}: {}", resp.body))),
    }
}

fn check(args: &CheckArgs) -> Result<String, InputError> {
    let Some(Some(config_path)) = &args.config else {
        return Err(InputError("--config is required (usage: ztplanectl policy check --config local.conf)".into()));
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

fn simulate(args: &SimulateArgs) -> Result<String, InputError> {
    let (Some(Some(config_path)), Some(Some(scenario_path))) = (&args.config, &args.scenario) else {
        return Err(InputError(
            "--config and --scenario are required (usage: ztplanectl policy simulate --config local.conf --scenario \
             scenario.json [--pretty])"
                .into(),
        ));
    };
    let pretty = args.pretty;
    let read = |path: &str, what: &str| {
        std::fs::read_to_string(path).map_err(|e| InputError(format!("cannot read {what} {path}: {e}")))
    };
    let config_text = read(config_path, "config")?;
    let scenario_text = read(scenario_path, "scenario")?;
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

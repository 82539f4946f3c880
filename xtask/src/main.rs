//! `cargo xtask <verb>`: the one entry point for setting up, running, testing, benchmarking and
//! fuzzing ztplane. `run` and `test` install what is missing first (see `setup`).
mod demo;
mod gateway_demo;
mod node_demo;
mod setup;

use anyhow::{Context, Result, bail};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

const USAGE: &str = "usage: cargo xtask <verb>
  setup                    install what is missing (apt packages, rust-src, bpf-linker, bpffs)
  run                      the embedded demo, nothing outside the project: a ztplane root and
                           controller, two ztplane gateways bridging a LAN each; ping, transfer
  run interop [--zerotier PATH]
                           two ztplane and two zerotier-one nodes on a zerotier-one moon/controller
  run -- NODE ARGS         `ztplane node ARGS` on real NICs
                           (e.g. -- --home /var/lib/zerotier-one --iface eth1 --join NWID)
  run -- fwd [FWD ARGS]    `ztplane fwd ARGS` on real NICs; no FWD ARGS: the forwarding demo
  test                     all tests, including root-only namespace/XDP tests
  bench NAME               io | handoff | crypto | bond | peers | overlay | bond-live | gateway:
                           figures beside an in-run baseline, written to target/bench/NAME.json
  fuzz NAME [--seconds N]  run a cargo-fuzz target of the protocol parsers";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("setup") => setup::run(),
        Some("run") => setup::run().and_then(|()| run(&args[1..])),
        Some("test") => setup::run().and_then(|()| test()),
        Some("bench") => setup::run().and_then(|()| bench(&args[1..])),
        Some("fuzz") => fuzz(&args[1..]),
        Some("-h" | "--help" | "help") => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        _ => {
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("xtask: {err:#}");
            ExitCode::FAILURE
        }
    }
}

pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("xtask lives in the workspace").to_path_buf()
}

fn cargo() -> Command {
    let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cmd.current_dir(workspace_root());
    cmd
}

fn status(cmd: &mut Command) -> Result<()> {
    let status = cmd.status().with_context(|| format!("running {cmd:?}"))?;
    if !status.success() {
        bail!("{cmd:?} failed ({status})");
    }
    Ok(())
}

/// Builds the release `ztplane` binary and returns its path.
pub fn build_ztplane() -> Result<PathBuf> {
    status(cargo().args(["build", "--release", "--quiet", "-p", "ztplane", "--bin", "ztplane"]))?;
    let target = std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| workspace_root().join("target"), PathBuf::from);
    Ok(target.join("release/ztplane"))
}

fn run(args: &[String]) -> Result<()> {
    let binary = build_ztplane()?;
    if let Some(dash) = args.iter().position(|a| a == "--") {
        let rest = &args[dash + 1..];
        return match rest.first().map(String::as_str) {
            Some("fwd") if rest.len() == 1 => demo::run(&binary),
            Some("fwd") => status(Command::new(binary).args(rest)),
            _ => status(Command::new(binary).arg("node").args(rest)),
        };
    }
    if args.is_empty() {
        status(cargo().args(["build", "--release", "--quiet", "-p", "ztplanectl"]))?;
        return gateway_demo::run(&binary, &binary.with_file_name("ztplanectl"));
    }
    let mut zerotier = None;
    let mut it = args.iter().skip(usize::from(args[0] == "interop"));
    while let Some(flag) = it.next() {
        match flag.as_str() {
            "--zerotier" => zerotier = Some(PathBuf::from(it.next().context("--zerotier needs a path")?)),
            other => bail!("unknown run option {other:?} (options for ztplane node go after --)"),
        }
    }
    node_demo::run(&binary, zerotier)
}

fn test() -> Result<()> {
    shared_present()?;
    // Release: the namespace tests push real traffic and the crypto tests real bytes.
    let mut child = cargo()
        .args(["test", "--release", "--workspace", "--exclude", "ztplane-ebpf"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .context("starting cargo test")?;
    // Pass the output through, adding up the per-binary results for one closing line.
    let mut totals = [0u64; 3];
    let stdout = child.stdout.take().context("cargo test stdout")?;
    for line in std::io::BufRead::lines(std::io::BufReader::new(stdout)) {
        let line = line?;
        println!("{line}");
        if let Some(rest) = line.strip_prefix("test result: ") {
            for (i, word) in ["passed;", "failed;", "ignored;"].iter().enumerate() {
                let words: Vec<&str> = rest.split_whitespace().collect();
                if let Some(pos) = words.iter().position(|w| w == word) {
                    totals[i] += pos.checked_sub(1).and_then(|p| words[p].parse().ok()).unwrap_or(0);
                }
            }
        }
    }
    let status = child.wait()?;
    println!("test: {} passed, {} failed, {} skipped", totals[0], totals[1], totals[2]);
    if !status.success() {
        bail!("cargo test failed ({status})");
    }
    Ok(())
}

fn shared_present() -> Result<()> {
    let shared = workspace_root().join("../shared");
    if !shared.join("conformance/zt-1.14.1").is_dir() {
        bail!("{} is missing: tests need the shared reference material beside the repository", shared.display());
    }
    Ok(())
}

fn bench(args: &[String]) -> Result<()> {
    let Some(name) = args.first() else {
        bail!("bench needs a NAME: io, handoff, crypto, bond, peers, overlay, bond-live or gateway")
    };
    let options = args[1..].iter().filter(|a| a.as_str() != "--");
    let mut cmd = cargo();
    cmd.args(["run", "--release", "--quiet", "-p", "ztplane-bench", "--", name]).args(options);
    if ["io", "overlay", "bond-live", "gateway"].contains(&name.as_str()) {
        cmd.env("ZTPLANE_BIN", build_ztplane()?);
    }
    status(&mut cmd)
}

fn fuzz(args: &[String]) -> Result<()> {
    let Some(name) = args.first() else { bail!("fuzz needs a target NAME (see dataplane/protocol/fuzz/fuzz_targets)") };
    let mut seconds = 60u64;
    let mut it = args[1..].iter();
    while let Some(flag) = it.next() {
        match flag.as_str() {
            "--seconds" => seconds = it.next().context("--seconds needs a value")?.parse().context("--seconds")?,
            other => bail!("unknown fuzz option {other:?}"),
        }
    }
    let fuzz_dir = workspace_root().join("dataplane/protocol/fuzz");
    if !fuzz_dir.join("fuzz_targets").join(format!("{name}.rs")).exists() {
        bail!("no fuzz target {name:?} in {}", fuzz_dir.display());
    }
    let have = Command::new("cargo").args(["fuzz", "--version"]).output().map(|o| o.status.success()).unwrap_or(false);
    if !have {
        eprintln!("fuzz: installing cargo-fuzz");
        status(Command::new("cargo").args(["install", "cargo-fuzz", "--locked"]))?;
    }
    status(
        Command::new("cargo")
            .current_dir(workspace_root())
            .args(["+nightly", "fuzz", "run", "--fuzz-dir"])
            .arg(&fuzz_dir)
            .arg(name)
            .arg("--")
            .arg(format!("-max_total_time={seconds}")),
    )
}

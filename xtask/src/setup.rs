//! `cargo xtask setup`: installs what this machine kind lacks, idempotently. Each step first
//! checks whether its job is already done, so a second run takes a second or two.
use anyhow::{Context, Result, bail};
use std::process::{Command, Stdio};

/// Debian packages: build (libbpf/libxdp via xsk-rs, LLVM 22 for bpf-linker, OpenSSL for the
/// crypto reference) and test and benchmark tools (iproute2, ethtool, ping, setpriv, nft, iperf3,
/// perf).
const PACKAGES: &[&str] = &[
    "clang",
    "llvm-22-dev",
    "libpolly-22-dev",
    "libelf-dev",
    "zlib1g-dev",
    "libpcap-dev",
    "m4",
    "pkg-config",
    "libssl-dev",
    "iproute2",
    "ethtool",
    "iputils-ping",
    "util-linux",
    "nftables",
    "tcpdump",
    "iperf3",
    "linux-perf",
];
pub const BPFFS: &str = "/run/ztplane/bpffs";
const BPF_LINKER_VERSION: &str = "0.13.0";

pub fn run() -> Result<()> {
    if unsafe_geteuid() != 0 {
        bail!("setup needs root (apt packages, bpffs mount); run as root");
    }
    apt_packages()?;
    rust_src()?;
    bpf_linker()?;
    bpffs()?;
    Ok(())
}

fn unsafe_geteuid() -> u32 {
    // The xtask has no libc dependency; `id -u` is enough here.
    Command::new("id")
        .arg("-u")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(1)
}

fn apt_packages() -> Result<()> {
    let missing: Vec<&str> = PACKAGES.iter().copied().filter(|p| !dpkg_installed(p)).collect();
    if missing.is_empty() {
        return Ok(());
    }
    eprintln!("setup: installing Debian packages: {}", missing.join(" "));
    let update =
        Command::new("apt-get").args(["update", "-q"]).stdout(Stdio::null()).status().context("apt-get update")?;
    if !update.success() {
        bail!("setup: `apt-get update` failed: cannot install {}", missing.join(" "));
    }
    let status = Command::new("apt-get")
        .args(["install", "-y", "-q"])
        .args(&missing)
        .env("DEBIAN_FRONTEND", "noninteractive")
        .stdout(Stdio::null())
        .status()
        .context("apt-get install")?;
    if !status.success() {
        bail!("setup: `apt-get install {}` failed (see its output above)", missing.join(" "));
    }
    Ok(())
}

fn dpkg_installed(package: &str) -> bool {
    Command::new("dpkg-query")
        .args(["-W", "-f=${Status}", package])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).contains("install ok installed"))
        .unwrap_or(false)
}

fn rust_src() -> Result<()> {
    let installed = Command::new("rustup")
        .args(["component", "list", "--toolchain", "nightly", "--installed"])
        .output()
        .context("rustup (is rustup installed?)")?;
    if !installed.status.success() {
        bail!("setup: the nightly toolchain is missing (`rustup toolchain list`); the XDP program needs it");
    }
    if String::from_utf8_lossy(&installed.stdout).lines().any(|l| l.starts_with("rust-src")) {
        return Ok(());
    }
    eprintln!("setup: adding rust-src to the nightly toolchain");
    let status = Command::new("rustup").args(["component", "add", "rust-src", "--toolchain", "nightly"]).status()?;
    if !status.success() {
        bail!("setup: `rustup component add rust-src --toolchain nightly` failed");
    }
    Ok(())
}

fn bpf_linker() -> Result<()> {
    let works = Command::new("bpf-linker").arg("--version").output().map(|o| o.status.success()).unwrap_or(false);
    if works {
        return Ok(());
    }
    eprintln!("setup: building bpf-linker {BPF_LINKER_VERSION} against LLVM 22 (about 3 minutes)");
    let status = Command::new("cargo")
        .args([
            "install",
            "bpf-linker",
            "--locked",
            "--version",
            BPF_LINKER_VERSION,
            "--no-default-features",
            "--features",
            "llvm-22",
        ])
        .env("LLVM_PREFIX", "/usr/lib/llvm-22")
        .env("LLVM_SYS_221_PREFIX", "/usr/lib/llvm-22")
        .status()
        .context("cargo install bpf-linker")?;
    if !status.success() {
        bail!("setup: `cargo install bpf-linker` failed (needs llvm-22-dev and libpolly-22-dev)");
    }
    Ok(())
}

fn bpffs() -> Result<()> {
    std::fs::create_dir_all(BPFFS).with_context(|| format!("creating {BPFFS}"))?;
    let mounted = Command::new("mountpoint").args(["-q", BPFFS]).status().map(|s| s.success()).unwrap_or(false);
    if mounted {
        return Ok(());
    }
    let status = Command::new("mount").args(["-t", "bpf", "bpf", BPFFS]).status().context("mount")?;
    if !status.success() {
        bail!("setup: cannot mount bpffs at {BPFFS}");
    }
    Ok(())
}

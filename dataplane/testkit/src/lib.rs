//! Test topologies for ztplane: network namespaces, multi-queue veth pairs, bridges and
//! addresses from 198.18.0.0/15, all removed when the [`Topology`] is dropped (also while a test
//! unwinds from a panic). Namespaces left behind by a killed process are swept the next time a
//! topology is created: their names carry the creating process id.
//!
//! Every integration test, the `cargo xtask run` demo and `cargo xtask bench io` build their
//! networks with this kit, so traffic never leaves namespaces the run created itself.
pub mod bed;
pub mod bond_bed;
pub mod crafted;
pub mod gateway_bed;
pub mod lan;
pub mod overlay;
pub mod pktgen;
pub mod traffic;
pub mod zerotier;
pub mod ztplane;

use anyhow::{Context, Result, bail};
use std::fs::File;
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

const PREFIX: &str = "ztk";
static NEXT_TOPOLOGY: AtomicU32 = AtomicU32::new(0);

/// A set of namespaces and links owned by this process.
pub struct Topology {
    tag: String,
    namespaces: Vec<String>,
}

/// A network namespace of a [`Topology`].
#[derive(Clone, Debug)]
pub struct Netns {
    pub name: String,
}

impl Topology {
    /// Starts an empty topology. Requires root (CAP_SYS_ADMIN, CAP_NET_ADMIN).
    pub fn new() -> Result<Self> {
        if unsafe { libc::geteuid() } != 0 {
            bail!("network-namespace tests need root (run `cargo xtask test` as root)");
        }
        sweep_stale();
        let n = NEXT_TOPOLOGY.fetch_add(1, Ordering::Relaxed);
        Ok(Topology { tag: format!("{PREFIX}{}x{n}", std::process::id()), namespaces: Vec::new() })
    }

    /// Creates namespace `<tag>-<label>` with loopback up.
    pub fn netns(&mut self, label: &str) -> Result<Netns> {
        let name = format!("{}-{label}", self.tag);
        run(Command::new("ip").args(["netns", "add", &name]))?;
        self.namespaces.push(name.clone());
        let ns = Netns { name };
        ns.ip(&["link", "set", "lo", "up"])?;
        Ok(ns)
    }

    /// Creates a veth pair `a_name` (in `a`) ↔ `b_name` (in `b`) with `queues` RX and TX queues
    /// on each end, both ends up.
    pub fn veth(&self, a: &Netns, a_name: &str, b: &Netns, b_name: &str, queues: u32) -> Result<()> {
        let q = queues.to_string();
        run(Command::new("ip").args([
            "link",
            "add",
            "name",
            a_name,
            "netns",
            &a.name,
            "numtxqueues",
            &q,
            "numrxqueues",
            &q,
            "type",
            "veth",
            "peer",
            "name",
            b_name,
            "netns",
            &b.name,
            "numtxqueues",
            &q,
            "numrxqueues",
            &q,
        ]))?;
        a.ip(&["link", "set", a_name, "up"])?;
        b.ip(&["link", "set", b_name, "up"])?;
        Ok(())
    }

    /// Names of the namespaces, for messages.
    pub fn namespaces(&self) -> &[String] {
        &self.namespaces
    }
}

impl Drop for Topology {
    fn drop(&mut self) {
        // Deleting a namespace destroys the veths and bridges inside it.
        for name in self.namespaces.drain(..).rev() {
            let _ = Command::new("ip").args(["netns", "del", &name]).stderr(Stdio::null()).status();
        }
    }
}

impl Netns {
    /// Runs `ip ARGS` inside the namespace.
    pub fn ip(&self, args: &[&str]) -> Result<Output> {
        run(Command::new("ip").arg("-n").arg(&self.name).args(args))
    }

    /// Adds `cidr` (must be inside 198.18.0.0/15) to `ifname`.
    pub fn addr(&self, ifname: &str, cidr: &str) -> Result<()> {
        let ip: std::net::Ipv4Addr = cidr.split('/').next().unwrap_or("").parse().context("address")?;
        if !is_benchmark_addr(ip) {
            bail!("{cidr} is outside 198.18.0.0/15: tests use only benchmark addresses");
        }
        self.ip(&["addr", "add", cidr, "dev", ifname])?;
        Ok(())
    }

    /// Creates bridge `name` enslaving `ports`, all up.
    pub fn bridge(&self, name: &str, ports: &[&str]) -> Result<()> {
        self.ip(&["link", "add", name, "type", "bridge"])?;
        for port in ports {
            self.ip(&["link", "set", port, "master", name])?;
        }
        self.ip(&["link", "set", name, "up"])?;
        Ok(())
    }

    /// Static neighbour entry, so traffic needs no ARP through a forwarder that does not pass it.
    pub fn neigh(&self, ifname: &str, ip: &str, mac: &str) -> Result<()> {
        self.ip(&["neigh", "replace", ip, "lladdr", mac, "dev", ifname, "nud", "permanent"])?;
        Ok(())
    }

    /// The MAC address of `ifname`.
    pub fn mac(&self, ifname: &str) -> Result<String> {
        let out = self.ip(&["-br", "link", "show", ifname])?;
        let text = String::from_utf8_lossy(&out.stdout);
        text.split_whitespace()
            .find(|w| w.len() == 17 && w.matches(':').count() == 5)
            .map(str::to_string)
            .with_context(|| format!("no MAC for {ifname} in {:?}", text.trim()))
    }

    /// A command that runs inside the namespace (`ip netns exec`).
    pub fn command(&self, program: &str) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.name, program]);
        cmd
    }

    /// Runs a command inside the namespace and fails on a non-zero exit.
    pub fn exec(&self, program: &str, args: &[&str]) -> Result<Output> {
        run(self.command(program).args(args))
    }

    /// Starts a command inside the namespace.
    pub fn spawn(&self, program: &str, args: &[&str]) -> Result<Child> {
        self.command(program).args(args).spawn().with_context(|| format!("starting {program} in {}", self.name))
    }

    /// Runs `f` on a new thread that has entered this namespace, and returns its result.
    pub fn run<R: Send + 'static>(&self, f: impl FnOnce() -> R + Send + 'static) -> Result<R> {
        let handle = self.thread(f)?;
        handle.join().map_err(|_| anyhow::anyhow!("thread in namespace {} panicked", self.name))
    }

    /// Starts `f` on a thread inside this namespace.
    pub fn thread<R: Send + 'static>(
        &self,
        f: impl FnOnce() -> R + Send + 'static,
    ) -> Result<std::thread::JoinHandle<R>> {
        let path = format!("/run/netns/{}", self.name);
        let file = File::open(&path).with_context(|| format!("opening {path}"))?;
        let (tx, rx) = std::sync::mpsc::channel();
        let handle = std::thread::spawn(move || {
            // setns affects only the calling thread: the rest of the process stays where it is.
            if unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
                let _ = tx.send(Err(std::io::Error::last_os_error()));
                panic!("setns failed");
            }
            let _ = tx.send(Ok(()));
            f()
        });
        rx.recv().context("namespace thread")?.context("entering namespace")?;
        Ok(handle)
    }

    /// `ethtool -K` inside the namespace (e.g. GRO on a veth end that receives AF_XDP TX).
    pub fn ethtool_k(&self, ifname: &str, feature: &str, on: bool) -> Result<()> {
        self.exec("ethtool", &["-K", ifname, feature, if on { "on" } else { "off" }])?;
        Ok(())
    }

    /// Reads an interface counter from /sys inside the namespace (e.g. `rx_packets`).
    pub fn link_counter(&self, ifname: &str, counter: &str) -> Result<u64> {
        let out = self.exec("cat", &[&format!("/sys/class/net/{ifname}/statistics/{counter}")])?;
        String::from_utf8_lossy(&out.stdout).trim().parse().context("counter value")
    }

    /// Whether any of `count` pings (0.2 s apart, each waiting up to 2 s) from this namespace to
    /// `target` (inside 198.18.0.0/15) is answered. An error, not `false`, when ping itself fails
    /// (exit status 2: no route, bad option), so that "no reply" means just that.
    pub fn ping(&self, target: &str, count: u32) -> Result<bool> {
        let ip: std::net::Ipv4Addr = target.parse().with_context(|| format!("ping target {target:?}"))?;
        if !is_benchmark_addr(ip) {
            bail!("refusing to ping {target}: outside 198.18.0.0/15");
        }
        let out = self
            .command("ping")
            .args(["-n", "-q", "-c", &count.to_string(), "-W", "2", "-i", "0.2", target])
            .output()
            .context("ping")?;
        match out.status.code() {
            Some(0) => Ok(true),
            Some(1) => Ok(false),
            _ => bail!("ping {target} in {}: {}", self.name, String::from_utf8_lossy(&out.stderr).trim()),
        }
    }

    /// The XDP program attached to `ifname`, if any (from `ip -d link`).
    pub fn xdp_attached(&self, ifname: &str) -> Result<bool> {
        let out = self.ip(&["-d", "link", "show", ifname])?;
        let text = String::from_utf8_lossy(&out.stdout);
        Ok(text.contains("prog/xdp")
            || text.contains(" xdp ")
            || text.contains("xdpgeneric")
            || text.contains("xdpdrv"))
    }
}

/// A directory for a test's pinned BPF maps under the bpffs ztplane uses
/// (`/run/ztplane/bpffs/<label>-<pid>`), removed with whatever is left in it when dropped. Drop
/// it after the programs whose maps it holds.
pub struct PinDir(pub std::path::PathBuf);

impl PinDir {
    pub fn new(label: &str) -> PinDir {
        PinDir(std::path::PathBuf::from(format!("/run/ztplane/bpffs/{label}-{}", std::process::id())))
    }
}

impl Drop for PinDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Makes a command's process get SIGKILL when the thread that spawns it ends, so a test killed
/// mid-run leaves nothing running in its namespaces. The signal follows the spawning *thread*:
/// spawn from one that outlives the process (a test's own thread, or main).
pub fn kill_with_parent(command: &mut Command) {
    // SAFETY: prctl is async-signal-safe.
    unsafe {
        command.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        })
    };
}

/// Waits until `child` creates `ready` (its `--ready-file`); kills it after `timeout`. If it
/// exits first, the error carries what it wrote on stderr.
pub fn wait_ready(child: &mut Child, ready: &std::path::Path, what: &str, timeout: std::time::Duration) -> Result<()> {
    use std::io::Read;
    let start = std::time::Instant::now();
    while !ready.exists() {
        if let Some(status) = child.try_wait()? {
            let mut err = String::new();
            if let Some(mut e) = child.stderr.take() {
                let _ = e.read_to_string(&mut err);
            }
            bail!("{what} exited early ({status}): {}", err.trim());
        }
        if start.elapsed() > timeout {
            let _ = child.kill();
            bail!("{what} not ready after {} s", timeout.as_secs());
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    Ok(())
}

/// Sends `signal` to `child` and waits (at most 20 s) for it to end; returns its status and
/// everything it wrote on stdout and stderr. `ip netns exec` execs the program, so the child's
/// pid is the program itself.
pub fn stop_child(mut child: Child, signal: i32) -> Result<(std::process::ExitStatus, String, String)> {
    use std::io::Read;
    // SAFETY: kill(2) on our own child's pid.
    unsafe { libc::kill(child.id() as i32, signal) };
    let start = std::time::Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if start.elapsed() > std::time::Duration::from_secs(20) {
            let _ = child.kill();
            bail!("process {} did not exit within 20 s of signal {signal}", child.id());
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    let mut stdout = String::new();
    let mut stderr = String::new();
    if let Some(mut s) = child.stdout.take() {
        let _ = s.read_to_string(&mut stdout);
    }
    if let Some(mut s) = child.stderr.take() {
        let _ = s.read_to_string(&mut stderr);
    }
    Ok((status, stdout, stderr))
}

/// 198.18.0.0/15, the block reserved for network benchmarks (RFC 2544).
pub fn is_benchmark_addr(ip: std::net::Ipv4Addr) -> bool {
    let o = ip.octets();
    o[0] == 198 && (o[1] == 18 || o[1] == 19)
}

fn run(cmd: &mut Command) -> Result<Output> {
    let out = cmd.output().with_context(|| format!("running {cmd:?}"))?;
    if !out.status.success() {
        bail!("{cmd:?} failed: {}", String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(out)
}

/// Deletes namespaces of this kit whose creating process is gone (killed tests).
fn sweep_stale() {
    let Ok(out) = Command::new("ip").args(["netns", "list"]).output() else { return };
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let name = line.split_whitespace().next().unwrap_or("");
        let Some(rest) = name.strip_prefix(PREFIX) else { continue };
        let Some(pid) = rest.split('x').next().and_then(|p| p.parse::<u32>().ok()) else { continue };
        if !std::path::Path::new(&format!("/proc/{pid}")).exists() {
            // Processes a killed test started there (a dataplane, say) would keep it alive.
            if let Ok(pids) = Command::new("ip").args(["netns", "pids", name]).output() {
                for pid in String::from_utf8_lossy(&pids.stdout).split_whitespace() {
                    if let Ok(pid) = pid.parse::<i32>() {
                        unsafe { libc::kill(pid, libc::SIGKILL) };
                    }
                }
            }
            let _ = Command::new("ip").args(["netns", "del", name]).status();
        }
    }
}

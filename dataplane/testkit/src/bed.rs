//! The forwarding test bed used by the fwd tests, the demo and `bench io`:
//!
//! ```text
//!  [sender] gen0 ──veth── a0 [dut] b0 ──veth── sink0 [sink]
//!  198.18.1.2        198.18.1.1                198.18.1.3
//! ```
//!
//! The dut forwards between a0 and b0 either with `ztplane fwd` or with a kernel bridge (the
//! baseline). sender and sink know each other's MAC statically, so no ARP has to cross ztplane
//! (which steers only UDP to its ports). Veth ends that feed AF_XDP send full checksums (TX
//! checksum offload off: AF_XDP copy mode loses the "checksum partial" state) and veth ends
//! that receive AF_XDP TX have GRO on (else veth drops redirected frames).
use crate::gateway_bed::parse_mac;
use crate::{Netns, Topology, kill_with_parent};
use anyhow::{Context, Result};
use std::net::{Ipv4Addr, SocketAddrV4};
use std::path::{Path, PathBuf};
use std::process::{Child, ExitStatus, Stdio};
use std::time::Duration;

pub const GEN_IP: Ipv4Addr = Ipv4Addr::new(198, 18, 1, 2);
pub const DUT_IP: Ipv4Addr = Ipv4Addr::new(198, 18, 1, 1);
pub const SINK_IP: Ipv4Addr = Ipv4Addr::new(198, 18, 1, 3);

pub struct FwdBed {
    pub sender: Netns,
    pub dut: Netns,
    pub sink: Netns,
    pub gen_mac: [u8; 6],
    pub sink_mac: [u8; 6],
    pub queues: u32,
    /// Last: namespaces go away after everything that runs in them.
    pub topo: Topology,
}

impl FwdBed {
    pub fn new(queues: u32) -> Result<Self> {
        let mut topo = Topology::new()?;
        let sender = topo.netns("gen")?;
        let dut = topo.netns("dut")?;
        let sink = topo.netns("sink")?;
        topo.veth(&sender, "gen0", &dut, "a0", queues)?;
        topo.veth(&dut, "b0", &sink, "sink0", queues)?;
        sender.addr("gen0", &format!("{GEN_IP}/24"))?;
        dut.addr("a0", &format!("{DUT_IP}/24"))?;
        sink.addr("sink0", &format!("{SINK_IP}/24"))?;
        let gen_mac = sender.mac("gen0")?;
        let sink_mac = sink.mac("sink0")?;
        sender.neigh("gen0", &SINK_IP.to_string(), &sink_mac)?;
        sink.neigh("sink0", &GEN_IP.to_string(), &gen_mac)?;
        for (ns, ifname) in [(&sender, "gen0"), (&sink, "sink0")] {
            ns.ethtool_k(ifname, "tx", false)?;
            ns.ethtool_k(ifname, "gro", true)?;
        }
        Ok(FwdBed { gen_mac: parse_mac(&gen_mac)?, sink_mac: parse_mac(&sink_mac)?, sender, dut, sink, queues, topo })
    }

    /// The kernel baseline: a bridge br0 over a0 and b0.
    pub fn bridge(&self) -> Result<()> {
        self.dut.bridge("br0", &["a0", "b0"])
    }

    pub fn sink_addr(&self, port: u16) -> SocketAddrV4 {
        SocketAddrV4::new(SINK_IP, port)
    }

    /// Starts `ztplane fwd --iface a0 --iface b0 ARGS` in the dut and waits until it forwards.
    /// The process is killed if the calling thread dies first (so call it from a thread that
    /// outlives it: a test's, or main).
    pub fn start_ztplane(&self, binary: &Path, args: &[&str]) -> Result<Dataplane> {
        let ready = std::env::temp_dir().join(format!("{}-ready", self.dut.name));
        let _ = std::fs::remove_file(&ready);
        let instance = self.dut.name.clone();
        let mut command = self.dut.command(binary.to_str().context("binary path")?);
        command
            .args(["fwd", "--iface", "a0", "--iface", "b0", "--instance", &instance, "--stats-interval", "0"])
            .arg("--ready-file")
            .arg(&ready)
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        // A test killed mid-run must not leave a dataplane running in its namespace.
        kill_with_parent(&mut command);
        let mut child = command.spawn().context("starting ztplane")?;
        crate::wait_ready(&mut child, &ready, "ztplane", Duration::from_secs(30))?;
        Ok(Dataplane { child: Some(child), ready, instance })
    }
}

/// A running `ztplane` process; killed on drop if still running.
pub struct Dataplane {
    child: Option<Child>,
    ready: PathBuf,
    instance: String,
}

/// Where ztplane keeps an instance's pid file and pinned maps (its defaults).
const RUN_DIR: &str = "/run/ztplane";

/// How a dataplane process ended.
pub struct Exit {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
    /// Pid file and pinned maps the process left behind (removed since).
    pub leftovers: Vec<PathBuf>,
}

impl Exit {
    /// The final statistics (the last JSON line on stdout).
    pub fn summary(&self) -> Result<serde_json::Value> {
        let line = self.stdout.lines().rev().find(|l| l.starts_with('{')).context("no JSON summary on stdout")?;
        serde_json::from_str(line).context("summary JSON")
    }
}

impl Dataplane {
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    /// Sends `signal` and waits (at most 20 s) for the process to end.
    pub fn stop_with(mut self, signal: i32) -> Result<Exit> {
        let child = self.child.take().context("already stopped")?;
        let (status, stdout, stderr) = crate::stop_child(child, signal)?;
        // Note, then remove, what the process left behind (a killed one cannot clean up).
        let leftovers = self.remove_leftovers();
        Ok(Exit { status, stdout, stderr, leftovers })
    }

    /// Removes the instance's pid file and pinned maps; returns those that existed.
    fn remove_leftovers(&self) -> Vec<PathBuf> {
        let paths = [
            Path::new(RUN_DIR).join(format!("{}.pid", self.instance)),
            Path::new(RUN_DIR).join("bpffs").join(&self.instance),
        ];
        let existed: Vec<PathBuf> = paths.iter().filter(|p| p.exists()).cloned().collect();
        let _ = std::fs::remove_file(&paths[0]);
        let _ = std::fs::remove_dir_all(&paths[1]);
        existed
    }

    pub fn stop(self) -> Result<Exit> {
        self.stop_with(libc::SIGTERM)
    }
}

impl Drop for Dataplane {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
            let _ = self.remove_leftovers();
        }
        let _ = std::fs::remove_file(&self.ready);
    }
}

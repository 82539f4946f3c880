//! A `ztplane node` process in a test namespace: started with a home directory (moons copied in
//! before start), waited for, asked through its control socket, stopped with a signal. The
//! process dies with the thread that started it, and [`ZtplaneNode::drop`] kills it and removes
//! what a killed node leaves (pid file, pins). Its stdout and stderr go to files, so a chatty
//! node never blocks on a full pipe and a test can quote its log while it runs.
use crate::{Netns, kill_with_parent};
use anyhow::{Context, Result, bail};
use serde_json::Value;
use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, ExitStatus};
use std::time::Duration;

/// The node's control socket in its home directory (`ztplane_host::control_socket::SOCKET_NAME`).
pub const CONTROL_SOCKET: &str = "ztplane.sock";
const RUN_DIR: &str = "/run/ztplane";

/// A running `ztplane node`.
pub struct ZtplaneNode {
    child: Option<Child>,
    pub home: PathBuf,
    pub netns: Netns,
    pub instance: String,
    ready: PathBuf,
    stdout: PathBuf,
    stderr: PathBuf,
}

/// How the process ended.
pub struct NodeExit {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl ZtplaneNode {
    /// Starts `binary node --home HOME --iface IF... ARGS` in `netns` and waits (≤ 60 s) until it
    /// runs. The home directory must exist (put moons in `moons.d/` first).
    pub fn start(binary: &Path, netns: &Netns, home: &Path, ifaces: &[&str], args: &[&str]) -> Result<ZtplaneNode> {
        let instance = format!("{}-{}", netns.name, home.file_name().and_then(|n| n.to_str()).unwrap_or("node"));
        let file = |ext: &str| std::env::temp_dir().join(format!("{instance}.{ext}"));
        let (ready, stdout, stderr) = (file("ready"), file("stdout"), file("stderr"));
        let _ = std::fs::remove_file(&ready);
        let mut command = netns.command(binary.to_str().context("binary path")?);
        command.arg("node").arg("--home").arg(home).args(["--instance", &instance]).arg("--ready-file").arg(&ready);
        for iface in ifaces {
            command.args(["--iface", iface]);
        }
        command.args(args).env("RUST_LOG", "info");
        command.stdout(File::create(&stdout).context("node stdout file")?);
        command.stderr(File::create(&stderr).context("node stderr file")?);
        kill_with_parent(&mut command);
        let child = command.spawn().context("starting ztplane node")?;
        let mut node = ZtplaneNode {
            child: Some(child),
            home: home.to_path_buf(),
            netns: netns.clone(),
            instance,
            ready,
            stdout,
            stderr,
        };
        let child = node.child.as_mut().context("just started")?;
        if let Err(e) = crate::wait_ready(child, &node.ready, "ztplane node", Duration::from_secs(60)) {
            bail!("{e:#}; log:\n{}", node.log_tail(20));
        }
        Ok(node)
    }

    /// What the node wrote on stderr so far (its log, `RUST_LOG=info`).
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    /// The last `lines` lines of [`ZtplaneNode::log`], for failure messages.
    pub fn log_tail(&self, lines: usize) -> String {
        let log = self.log();
        let all: Vec<&str> = log.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    /// The node's address, from `identity.public`.
    pub fn address(&self) -> Result<String> {
        let text = std::fs::read_to_string(self.home.join("identity.public")).context("identity.public")?;
        Ok(text.split(':').next().unwrap_or("").to_string())
    }

    /// One control request (zerotier-one local API shapes); the body of a 200, else an error.
    pub fn request(&self, method: &str, path: &str) -> Result<Value> {
        self.request_with(method, path, Value::Null)
    }

    /// [`ZtplaneNode::request`] with a JSON body (e.g. the controller API's POSTs).
    pub fn request_with(&self, method: &str, path: &str, body: Value) -> Result<Value> {
        let mut stream = UnixStream::connect(self.home.join(CONTROL_SOCKET)).context("control socket")?;
        stream.set_read_timeout(Some(Duration::from_secs(10)))?;
        let line = serde_json::json!({"method": method, "path": path, "body": body}).to_string();
        stream.write_all(line.as_bytes())?;
        stream.write_all(b"\n")?;
        let mut reply = String::new();
        BufReader::new(stream).read_line(&mut reply)?;
        let reply: Value = serde_json::from_str(&reply).with_context(|| format!("control reply {reply:?}"))?;
        if reply["status"] != 200 {
            bail!("{method} {path}: {reply}");
        }
        Ok(reply["body"].clone())
    }

    pub fn network(&self, nwid: u64) -> Result<Value> {
        self.request("GET", &format!("/network/{nwid:016x}"))
    }

    /// Waits until the network is OK with an assigned IPv4 address that is on the tap; returns it.
    pub fn wait_for_ip(&self, nwid: u64, timeout: Duration) -> Result<String> {
        crate::zerotier::wait_until("ztplane network address", timeout, || {
            let n = self.network(nwid).map_err(|e| e.to_string())?;
            let ip = n["assignedAddresses"]
                .as_array()
                .and_then(|a| a.iter().filter_map(Value::as_str).find(|a| !a.contains(':')))
                .map(|a| a.split('/').next().unwrap_or("").to_string());
            let (Some(ip), Some(dev)) = (ip, n["portDeviceName"].as_str()) else {
                return Err(format!("status {} addresses {}", n["status"], n["assignedAddresses"]));
            };
            let out = self.netns.ip(&["-4", "addr", "show", "dev", dev]).map_err(|e| e.to_string())?;
            if String::from_utf8_lossy(&out.stdout).contains(&format!("inet {ip}/")) {
                Ok(ip)
            } else {
                Err(format!("{ip} not yet on {dev}"))
            }
        })
    }

    /// Sends `signal` and waits (≤ 20 s) for the process to end.
    pub fn stop_with(mut self, signal: i32) -> Result<NodeExit> {
        let child = self.child.take().context("already stopped")?;
        let (status, _, _) = crate::stop_child(child, signal)?;
        let stdout = std::fs::read_to_string(&self.stdout).unwrap_or_default();
        let stderr = self.log();
        self.remove_leftovers();
        Ok(NodeExit { status, stdout, stderr })
    }

    fn remove_leftovers(&self) {
        let _ = std::fs::remove_file(Path::new(RUN_DIR).join(format!("{}.pid", self.instance)));
        let _ = std::fs::remove_dir_all(Path::new(RUN_DIR).join("bpffs").join(&self.instance));
        for file in [&self.ready, &self.stdout, &self.stderr] {
            let _ = std::fs::remove_file(file);
        }
    }
}

impl Drop for ZtplaneNode {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        self.remove_leftovers();
    }
}

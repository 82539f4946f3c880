//! A harness around the real zerotier-one 1.14.1 binary (`../shared/ref/zerotier-one`), the peer
//! that ztplane's interop tests and comparative benchmarks run against:
//!
//! ```text
//!              [switch] br0 (a `crate::lan::Lan`: host pairs can be cut, links impaired)
//!            sw1 /      sw2 |      \ sw3
//!     eth0 [moon]     eth0 [a]     eth0 [b]
//!     198.18.0.1      198.18.0.2   198.18.0.3      overlay: 198.19.0.0/24
//! ```
//!
//! * [`Moon`]: a moon (root) definition made with the binary's identity tool, to be put into every
//!   node's `moons.d/` before it starts (the built-in planet is unreachable: no route leaves the
//!   namespaces).
//! * [`ZeroTierNode`]: one daemon in a namespace with a private home directory, its local HTTP API,
//!   its CLI and, on the node that plays controller, the controller API.
//!
//! Processes and directories go away with their owners, also when a test panics, and a daemon
//! dies with the thread that started it. Drop the nodes before the [`Topology`](crate::Topology)
//! (declare them after it) so no daemon keeps a deleted namespace alive for its last
//! milliseconds.
use crate::{Netns, kill_with_parent};
use anyhow::{Context, Result, bail};
use serde_json::{Value, json};
use std::fs::File;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// The daemon's default UDP and local HTTP port (moon endpoints name it too).
pub const DEFAULT_PORT: u16 = 9993;
/// The overlay subnet networks of these tests route; pools and fixed member IPs come from it.
pub const OVERLAY_SUBNET: &str = "198.19.0.0/24";
pub const OVERLAY_POOL_START: &str = "198.19.0.10";
pub const OVERLAY_POOL_END: &str = "198.19.0.250";

/// How long a freshly started daemon may take to write its identity and answer its API (identity
/// generation is a memory-hard proof of work: about a second on an idle core, more on a busy one).
const START_TIMEOUT: Duration = Duration::from_secs(30);
const POLL_INTERVAL: Duration = Duration::from_millis(200);
const TEMP_PREFIX: &str = "ztk-zt-";
static NEXT_TEMP: AtomicU32 = AtomicU32::new(0);

/// Where the zerotier-one binary is.
pub struct ZeroTierBinary;

impl ZeroTierBinary {
    /// Environment variable that overrides the binary's location.
    pub const ENV: &'static str = "ZTPLANE_ZEROTIER";

    /// `$ZTPLANE_ZEROTIER` if set, else `<workspace>/../shared/ref/zerotier-one`.
    pub fn locate() -> Result<PathBuf> {
        let default = workspace_root().join("../shared/ref/zerotier-one");
        let path = match std::env::var_os(Self::ENV) {
            Some(path) => PathBuf::from(path),
            None => default.clone(),
        };
        if !path.is_file() {
            bail!(
                "zerotier-one not found at {}: set {} to the binary, or put it at {} (the reference peer)",
                path.display(),
                Self::ENV,
                default.display()
            );
        }
        // Canonical, so logs and process lists show /work/shared/..., not /work/main/../shared/...
        std::fs::canonicalize(&path).with_context(|| format!("resolving {}", path.display()))
    }
}

/// The workspace root: the nearest ancestor of this crate whose Cargo.toml declares `[workspace]`.
fn workspace_root() -> PathBuf {
    let manifest_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    for dir in manifest_dir.ancestors().skip(1) {
        let is_workspace = std::fs::read_to_string(dir.join("Cargo.toml"))
            .map(|text| text.lines().any(|line| line.trim() == "[workspace]"))
            .unwrap_or(false);
        if is_workspace {
            return dir.to_path_buf();
        }
    }
    // The crate sits at <workspace>/dataplane/testkit.
    manifest_dir.join("../..")
}

/// A ZeroTier identity as the identity tool writes it.
#[derive(Clone, Debug)]
pub struct Identity {
    /// Contents of `identity.secret` (`address:0:public:secret`).
    pub secret: String,
    /// Contents of `identity.public` (`address:0:public`).
    pub public: String,
}

impl Identity {
    /// A new identity from `zerotier-one -i generate` (about a second of proof of work).
    pub fn generate(binary: &Path) -> Result<Identity> {
        let dir = TempDir::new("id")?;
        let (secret, public) = (dir.path().join("identity.secret"), dir.path().join("identity.public"));
        run_tool(Command::new(binary).arg("-i").arg("generate").arg(&secret).arg(&public))?;
        let read = |p: &Path| std::fs::read_to_string(p).map(|s| s.trim().to_string());
        let identity = Identity {
            secret: read(&secret).context("reading generated identity.secret")?,
            public: read(&public).context("reading generated identity.public")?,
        };
        identity.check()?;
        Ok(identity)
    }

    /// The 10-hex-digit ZeroTier address.
    pub fn address(&self) -> &str {
        self.public.split(':').next().unwrap_or("")
    }

    fn check(&self) -> Result<()> {
        let addr = self.address();
        if addr.len() != 10 || !addr.bytes().all(|b| b.is_ascii_hexdigit()) || !self.secret.starts_with(addr) {
            bail!("malformed identity {:?}", self.public);
        }
        Ok(())
    }
}

/// A signed moon definition with one root.
#[derive(Clone, Debug)]
pub struct Moon {
    /// The root's identity: start the moon's node with it.
    pub identity: Identity,
    /// `000000<address>.moon`, the name nodes expect in `moons.d/`.
    pub file_name: String,
    pub bytes: Vec<u8>,
    /// `roots[0].stableEndpoints`, e.g. `198.18.0.1/9993`.
    pub endpoints: Vec<String>,
}

impl Moon {
    /// A moon whose single root is a new identity reachable at `ip`:9993.
    pub fn prepare(binary: &Path, ip: Ipv4Addr) -> Result<Moon> {
        Moon::prepare_with(binary, Identity::generate(binary)?, &[format!("{ip}/{DEFAULT_PORT}")])
    }

    /// A moon for `identity` with the given stable endpoints (`ip/port`).
    pub fn prepare_with(binary: &Path, identity: Identity, endpoints: &[String]) -> Result<Moon> {
        for endpoint in endpoints {
            let ip = endpoint.split('/').next().unwrap_or("");
            let ip: Ipv4Addr = ip.parse().with_context(|| format!("moon endpoint {endpoint:?}"))?;
            if !crate::is_benchmark_addr(ip) {
                bail!("moon endpoint {endpoint} is outside 198.18.0.0/15");
            }
        }
        let dir = TempDir::new("moon")?;
        let public = dir.path().join("identity.public");
        std::fs::write(&public, &identity.public).context("writing identity.public")?;
        let out = run_tool(Command::new(binary).arg("-i").arg("initmoon").arg(&public))?;
        let mut moon: Value = serde_json::from_slice(&out).context("initmoon output is not JSON")?;
        let root = moon
            .get_mut("roots")
            .and_then(|r| r.get_mut(0))
            .and_then(Value::as_object_mut)
            .with_context(|| format!("initmoon output has no roots[0]: {}", String::from_utf8_lossy(&out)))?;
        root.insert("stableEndpoints".into(), json!(endpoints));
        let json_path = dir.path().join("moon.json");
        std::fs::write(&json_path, serde_json::to_vec_pretty(&moon)?).context("writing moon.json")?;
        // genmoon writes the .moon file into the current directory.
        run_tool(Command::new(binary).arg("-i").arg("genmoon").arg(&json_path).current_dir(dir.path()))?;
        let file_name = format!("000000{}.moon", identity.address());
        let bytes = std::fs::read(dir.path().join(&file_name))
            .with_context(|| format!("genmoon did not write {file_name} in {}", dir.path().display()))?;
        Ok(Moon { identity, file_name, bytes, endpoints: endpoints.to_vec() })
    }

    /// The moon's address (also its world ID, for `orbit`).
    pub fn address(&self) -> &str {
        self.identity.address()
    }
}

/// What a [`ZeroTierNode`] starts with.
#[derive(Clone, Debug, Default)]
pub struct NodeConfig {
    /// Pre-seeded identity; else the daemon generates one.
    pub identity: Option<Identity>,
    /// Written to `moons.d/` before start.
    pub moons: Vec<Moon>,
    /// `local.conf`. Its `settings` are merged over [`default_settings`].
    pub local_conf: Option<Value>,
    /// UDP and HTTP port (default 9993).
    pub port: Option<u16>,
}

impl NodeConfig {
    /// A member that orbits `moon`.
    pub fn member(moon: &Moon) -> NodeConfig {
        NodeConfig { moons: vec![moon.clone()], ..NodeConfig::default() }
    }

    /// The moon's own node (also the controller): its identity, orbiting itself.
    pub fn moon(moon: &Moon) -> NodeConfig {
        NodeConfig { identity: Some(moon.identity.clone()), moons: vec![moon.clone()], ..NodeConfig::default() }
    }
}

/// `local.conf` settings every node gets unless told otherwise: no UPnP/NAT-PMP probing and no
/// TCP relay attempts (both would only ever target addresses outside the test's namespaces).
pub fn default_settings() -> Value {
    json!({ "portMappingEnabled": false, "allowTcpFallbackRelay": false })
}

/// A running zerotier-one daemon in a namespace; killed and reaped on drop, its home removed.
pub struct ZeroTierNode {
    netns: Netns,
    binary: PathBuf,
    child: Option<Child>,
    address: String,
    token: String,
    port: u16,
    home: PathBuf,
    log: PathBuf,
    /// Last: removed after the process is gone.
    _dir: TempDir,
}

impl ZeroTierNode {
    /// Starts `zerotier-one -U [-pPORT] HOME` in the foreground in `netns` and waits until its API
    /// answers. The daemon is killed if the calling thread ends first: start it from the test's
    /// own thread (not from a short-lived helper thread).
    pub fn start(binary: &Path, netns: &Netns, config: NodeConfig) -> Result<ZeroTierNode> {
        let dir = TempDir::new(&netns.name)?;
        let home = dir.path().join("home");
        let log = dir.path().join("zerotier-one.log");
        std::fs::create_dir_all(home.join("moons.d")).context("creating home")?;
        if let Some(identity) = &config.identity {
            identity.check()?;
            std::fs::write(home.join("identity.secret"), &identity.secret)?;
            std::fs::write(home.join("identity.public"), &identity.public)?;
        }
        for moon in &config.moons {
            std::fs::write(home.join("moons.d").join(&moon.file_name), &moon.bytes)?;
        }
        std::fs::write(home.join("local.conf"), serde_json::to_vec_pretty(&local_conf(config.local_conf.as_ref()))?)?;
        let port = config.port.unwrap_or(DEFAULT_PORT);

        let mut command = netns.command(binary.to_str().context("zerotier-one path is not UTF-8")?);
        command.arg("-U");
        if port != DEFAULT_PORT {
            command.arg(format!("-p{port}"));
        }
        let log_file = File::create(&log).context("creating daemon log")?;
        command.arg(&home).stdin(Stdio::null()).stdout(log_file.try_clone()?).stderr(log_file);
        kill_with_parent(&mut command);
        let child = command.spawn().with_context(|| format!("starting zerotier-one in {}", netns.name))?;
        let mut node = ZeroTierNode {
            netns: netns.clone(),
            binary: binary.to_path_buf(),
            child: Some(child),
            address: String::new(),
            token: String::new(),
            port,
            home,
            log,
            _dir: dir,
        };
        node.wait_started()?;
        Ok(node)
    }

    fn wait_started(&mut self) -> Result<()> {
        let start = Instant::now();
        loop {
            if let Some(child) = self.child.as_mut()
                && let Some(status) = child.try_wait()?
            {
                self.child = None;
                bail!("zerotier-one in {} exited early ({status}); log:\n{}", self.netns.name, self.log_tail());
            }
            let public = std::fs::read_to_string(self.home.join("identity.public"));
            let token = std::fs::read_to_string(self.home.join("authtoken.secret"));
            let last = match (public, token) {
                (Ok(public), Ok(token)) if !public.trim().is_empty() && !token.trim().is_empty() => {
                    self.address = public.split(':').next().unwrap_or("").to_string();
                    self.token = token.trim().to_string();
                    match self.api("GET", "/status", None) {
                        Ok(_) => return Ok(()),
                        Err(e) => format!("API: {e:#}"),
                    }
                }
                _ => "identity.public or authtoken.secret not written yet".to_string(),
            };
            if start.elapsed() > START_TIMEOUT {
                bail!(
                    "zerotier-one in {} not ready after {START_TIMEOUT:?}; last seen: {last}; log:\n{}",
                    self.netns.name,
                    self.log_tail()
                );
            }
            std::thread::sleep(POLL_INTERVAL);
        }
    }

    /// The node's 10-hex-digit ZeroTier address.
    pub fn address(&self) -> &str {
        &self.address
    }

    pub fn home(&self) -> &Path {
        &self.home
    }

    pub fn netns(&self) -> &Netns {
        &self.netns
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// The daemon's stdout and stderr so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn log_tail(&self) -> String {
        let log = self.log();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }

    /// One request to the local HTTP API. 2xx answers give their JSON body (`Null` when empty);
    /// anything else is an error with status and body.
    pub fn api(&self, method: &str, path: &str, body: Option<&Value>) -> Result<Value> {
        if !path.starts_with('/') {
            bail!("API path must start with '/': {path:?}");
        }
        let body = body.map(serde_json::to_vec).transpose()?;
        let (method_s, path_s, token, port) = (method.to_string(), path.to_string(), self.token.clone(), self.port);
        // The API listens on the namespace's loopback: connect from a thread inside it.
        let (status, reply) = self.netns.run(move || http(port, &token, &method_s, &path_s, body.as_deref()))??;
        let text = String::from_utf8_lossy(&reply);
        if !(200..300).contains(&status) {
            bail!("{method} {path} on {}: HTTP {status}: {}", self.netns.name, text.trim());
        }
        if text.trim().is_empty() {
            return Ok(Value::Null);
        }
        serde_json::from_str(&text).with_context(|| format!("{method} {path}: reply is not JSON: {text:?}"))
    }

    /// Runs the binary as zerotier-cli (`-q -D<home> ARGS`) in the node's namespace; its stdout.
    /// The CLI finds port and token in the home directory.
    pub fn cli(&self, args: &[&str]) -> Result<String> {
        let mut home_arg = std::ffi::OsString::from("-D");
        home_arg.push(&self.home);
        let mut command = self.netns.command(self.binary.to_str().context("zerotier-one path is not UTF-8")?);
        command.arg("-q").arg(home_arg).args(args);
        let out = command.output().with_context(|| format!("running zerotier-cli {args:?}"))?;
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        if !out.status.success() {
            bail!(
                "zerotier-cli {args:?} in {} failed ({}): {} {}",
                self.netns.name,
                out.status,
                stdout.trim(),
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(stdout)
    }

    /// `GET /status`.
    pub fn status(&self) -> Result<Value> {
        self.api("GET", "/status", None)
    }

    /// Joins a network (`POST /network/<nwid>`).
    pub fn join(&self, nwid: u64) -> Result<Value> {
        self.api("POST", &format!("/network/{}", nwid_hex(nwid)), Some(&json!({})))
    }

    /// Leaves a network (`DELETE /network/<nwid>`).
    pub fn leave(&self, nwid: u64) -> Result<Value> {
        self.api("DELETE", &format!("/network/{}", nwid_hex(nwid)), None)
    }

    /// `GET /network/<nwid>`.
    pub fn network(&self, nwid: u64) -> Result<Value> {
        self.api("GET", &format!("/network/{}", nwid_hex(nwid)), None)
    }

    /// `GET /peer`.
    pub fn peers(&self) -> Result<Value> {
        self.api("GET", "/peer", None)
    }

    /// Waits until the node reports itself online (an upstream, e.g. the moon, answered).
    pub fn wait_online(&self, timeout: Duration) -> Result<()> {
        wait_until(&format!("node {} online", self.address), timeout, || {
            let status = self.status().map_err(|e| format!("{e:#}"))?;
            if status["online"] == true { Ok(()) } else { Err(format!("online={}", status["online"])) }
        })
    }

    /// Waits until network `nwid` is `OK` with an assigned address that the kernel has put on the
    /// tap, and returns that address without prefix (the first IPv4 one if there are several).
    pub fn wait_for_ip(&self, nwid: u64, timeout: Duration) -> Result<String> {
        let what = format!("node {} ({}) address on network {}", self.address, self.netns.name, nwid_hex(nwid));
        wait_until(&what, timeout, || {
            let net = self.network(nwid).map_err(|e| format!("{e:#}"))?;
            let seen = format!(
                "status={} assignedAddresses={} portDeviceName={}",
                net["status"], net["assignedAddresses"], net["portDeviceName"]
            );
            let addrs: Vec<&str> = net["assignedAddresses"]
                .as_array()
                .map(|a| a.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            let Some(addr) = addrs.iter().find(|a| !a.contains(':')).or(addrs.first()) else { return Err(seen) };
            if net["status"] != "OK" {
                return Err(seen);
            }
            let ip = addr.split('/').next().unwrap_or(addr).to_string();
            // OneService adds the address by netlink a moment after the config arrives.
            let tap = net["portDeviceName"].as_str().unwrap_or("");
            let on_tap = !tap.is_empty()
                && self
                    .netns
                    .ip(&["-o", "addr", "show", "dev", tap])
                    .map(|o| String::from_utf8_lossy(&o.stdout).contains(&format!(" {ip}/")))
                    .unwrap_or(false);
            if on_tap { Ok(ip) } else { Err(format!("{seen}, not yet on the tap")) }
        })
    }

    /// The tap device of a joined network (`portDeviceName`).
    pub fn tap_name(&self, nwid: u64) -> Result<String> {
        let net = self.network(nwid)?;
        match net["portDeviceName"].as_str() {
            Some(name) if !name.is_empty() => Ok(name.to_string()),
            _ => bail!("network {} on {} has no tap yet: {net}", nwid_hex(nwid), self.address),
        }
    }

    /// Controller: creates a network with `config` (see the ref README) and returns its ID.
    pub fn create_network(&self, config: &Value) -> Result<u64> {
        let reply = self.api("POST", &format!("/controller/network/{}______", self.address), Some(config))?;
        let id = reply["id"].as_str().with_context(|| format!("create network: no id in {reply}"))?;
        u64::from_str_radix(id, 16).with_context(|| format!("create network: bad id {id:?}"))
    }

    /// Controller: a private network handing out addresses from 198.19.0.10-250, route 198.19.0.0/24.
    pub fn create_private_network(&self, name: &str) -> Result<u64> {
        self.create_network(&json!({
            "name": name,
            "private": true,
            "v4AssignMode": { "zt": true },
            "ipAssignmentPools": [{ "ipRangeStart": OVERLAY_POOL_START, "ipRangeEnd": OVERLAY_POOL_END }],
            "routes": [{ "target": OVERLAY_SUBNET }],
        }))
    }

    /// Controller: authorizes `member` on `nwid`, with a fixed IP if given. Works before the
    /// member has asked (pre-authorization), which saves it the 5 s config retry.
    pub fn authorize(&self, nwid: u64, member: &str, ip: Option<&str>) -> Result<Value> {
        let mut body = json!({ "authorized": true });
        if let Some(ip) = ip {
            let parsed: Ipv4Addr = ip.parse().with_context(|| format!("member IP {ip:?}"))?;
            if !crate::is_benchmark_addr(parsed) {
                bail!("member IP {ip} is outside 198.18.0.0/15");
            }
            body["ipAssignments"] = json!([ip]);
        }
        self.member_update(nwid, member, &body)
    }

    /// Controller: revokes `member`'s authorization on `nwid`.
    pub fn deauthorize(&self, nwid: u64, member: &str) -> Result<Value> {
        self.member_update(nwid, member, &json!({ "authorized": false }))
    }

    /// Controller: `POST /controller/network/<nwid>/member/<member>` with `body`.
    pub fn member_update(&self, nwid: u64, member: &str, body: &Value) -> Result<Value> {
        self.api("POST", &format!("/controller/network/{}/member/{member}", nwid_hex(nwid)), Some(body))
    }

    /// Controller: `GET /controller/network/<nwid>/member/<member>`.
    pub fn member(&self, nwid: u64, member: &str) -> Result<Value> {
        self.api("GET", &format!("/controller/network/{}/member/{member}", nwid_hex(nwid)), None)
    }

    /// Kills the daemon (SIGKILL) and reaps it; returns its log. The home directory stays until
    /// the node is dropped.
    pub fn kill(&mut self) -> String {
        if let Some(mut child) = self.child.take() {
            // SIGTERM is no good here: the daemon may take seconds to shut down.
            let _ = child.kill();
            let _ = child.wait();
        }
        self.log()
    }
}

impl Drop for ZeroTierNode {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A network ID as the API spells it (16 lower-case hex digits).
pub fn nwid_hex(nwid: u64) -> String {
    format!("{nwid:016x}")
}

/// `local.conf` = `given` with [`default_settings`] filled in where it says nothing.
fn local_conf(given: Option<&Value>) -> Value {
    let mut conf = given.cloned().unwrap_or_else(|| json!({}));
    if !conf.is_object() {
        conf = json!({});
    }
    if !conf["settings"].is_object() {
        conf["settings"] = json!({});
    }
    if let (Some(settings), Value::Object(defaults)) = (conf["settings"].as_object_mut(), default_settings()) {
        for (key, value) in defaults {
            settings.entry(key).or_insert(value);
        }
    }
    conf
}

/// Polls `probe` until it gives `Ok`; `Err` describes what it saw (quoted when time runs out).
pub fn wait_until<T>(what: &str, timeout: Duration, mut probe: impl FnMut() -> Result<T, String>) -> Result<T> {
    let start = Instant::now();
    loop {
        match probe() {
            Ok(value) => return Ok(value),
            Err(seen) if start.elapsed() >= timeout => bail!("{what}: not after {timeout:?}; last seen: {seen}"),
            Err(_) => std::thread::sleep(POLL_INTERVAL),
        }
    }
}

/// A minimal HTTP/1.1 exchange with 127.0.0.1:`port` (the daemon's API speaks nothing fancier):
/// returns status and body.
fn http(port: u16, token: &str, method: &str, path: &str, body: Option<&[u8]>) -> Result<(u16, Vec<u8>)> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).context("connecting to the API")?;
    stream.set_read_timeout(Some(Duration::from_secs(15)))?;
    stream.set_write_timeout(Some(Duration::from_secs(5)))?;
    let mut request =
        format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nX-ZT1-Auth: {token}\r\nConnection: close\r\n");
    if let Some(body) = body {
        request.push_str(&format!("Content-Type: application/json\r\nContent-Length: {}\r\n", body.len()));
    } else if method != "GET" {
        request.push_str("Content-Length: 0\r\n");
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes())?;
    if let Some(body) = body {
        stream.write_all(body)?;
    }
    // The server honours `Connection: close`, but stop at Content-Length anyway so a server that
    // keeps the connection open cannot stall us until its keep-alive timeout.
    let mut reply = Vec::new();
    let mut buf = [0u8; 16384];
    loop {
        let n = stream.read(&mut buf).context("reading the API reply")?;
        if n == 0 {
            break;
        }
        reply.extend_from_slice(&buf[..n]);
        if let Some((head_len, Some(len))) = parse_head(&reply)
            && reply.len() >= head_len + len
        {
            reply.truncate(head_len + len);
            break;
        }
    }
    let (head_len, _) = parse_head(&reply)
        .with_context(|| format!("incomplete HTTP reply to {method} {path}: {:?}", String::from_utf8_lossy(&reply)))?;
    let head = String::from_utf8_lossy(&reply[..head_len]);
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse::<u16>().ok())
        .with_context(|| format!("bad HTTP status line in {head:?}"))?;
    Ok((status, reply[head_len..].to_vec()))
}

/// Length of the header block (through the blank line) and the Content-Length, once complete.
fn parse_head(reply: &[u8]) -> Option<(usize, Option<usize>)> {
    let end = reply.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    let head = String::from_utf8_lossy(&reply[..end]);
    let len = head.lines().find_map(|line| {
        let (name, value) = line.split_once(':')?;
        name.trim().eq_ignore_ascii_case("content-length").then(|| value.trim().parse().ok()).flatten()
    });
    Some((end, len))
}

/// Runs the binary in a tool mode (`-i ...`) and returns its stdout.
fn run_tool(command: &mut Command) -> Result<Vec<u8>> {
    let out = command.output().with_context(|| format!("running {command:?}"))?;
    if !out.status.success() {
        bail!(
            "{command:?} failed ({}): {} {}",
            out.status,
            String::from_utf8_lossy(&out.stdout).trim(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(out.stdout)
}

/// A directory under the system temp dir, removed on drop. Its name carries the process id so
/// ones left by a killed test are swept by the next run.
pub(crate) struct TempDir(PathBuf);

impl TempDir {
    pub(crate) fn new(label: &str) -> Result<TempDir> {
        sweep_stale_temp();
        let n = NEXT_TEMP.fetch_add(1, Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!("{TEMP_PREFIX}{}x{n}-{label}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).with_context(|| format!("creating {}", path.display()))?;
        Ok(TempDir(path))
    }

    pub(crate) fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Removes temp dirs of this harness whose creating process is gone.
fn sweep_stale_temp() {
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else { return };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(rest) = name.to_str().and_then(|n| n.strip_prefix(TEMP_PREFIX)) else { continue };
        let Some(pid) = rest.split('x').next().and_then(|p| p.parse::<u32>().ok()) else { continue };
        if !Path::new(&format!("/proc/{pid}")).exists() {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_head_is_complete_only_with_the_blank_line() {
        assert_eq!(parse_head(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n"), None);
        let reply = b"HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 2\r\n\r\n{}";
        assert_eq!(parse_head(reply), Some((reply.len() - 2, Some(2))));
        assert_eq!(parse_head(b"HTTP/1.1 404 Not Found\r\n\r\n"), Some((26, None)));
    }

    #[test]
    fn local_conf_keeps_given_settings_and_fills_in_defaults() {
        let conf = local_conf(Some(&json!({ "settings": { "portMappingEnabled": true, "primaryPort": 9993 } })));
        assert_eq!(conf["settings"]["portMappingEnabled"], true);
        assert_eq!(conf["settings"]["allowTcpFallbackRelay"], false);
        assert_eq!(conf["settings"]["primaryPort"], 9993);
        assert_eq!(local_conf(None)["settings"], default_settings());
    }

    #[test]
    fn the_workspace_root_is_found() {
        let root = workspace_root();
        assert!(root.join("dataplane/testkit/Cargo.toml").is_file(), "{}", root.display());
    }
}

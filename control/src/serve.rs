//! `ztplanectl [-D DIR] serve [--listen ADDR:PORT] [--metrics ADDR:PORT|off]`: zerotier-one's local HTTP API (so
//! the real `zerotier-cli` works) and a Prometheus endpoint for a running `ztplane node`, in a process of its own.
//!
//! That includes zerotier-one's network controller API (`/controller/...`): the node is the controller of the
//! networks under its address, so scripts and tools written for zerotier-one's controller manage it unchanged.
//!
//! It holds no node state: every request becomes one request on the node's control socket (`DIR/ztplane.sock`), so
//! this process can stop, crash or restart without the node noticing, and a node restart only shows up as `503`s
//! until the node is back.
//!
//! As zerotier-one does at start-up: the API listens on TCP loopback with the node's UDP port number (`local.conf`
//! `settings.primaryPort`, else 9993), the port goes into `DIR/zerotier-one.port` (where zerotier-cli looks it up),
//! and `DIR/authtoken.secret` / `DIR/metricstoken.secret` are created if missing (never rewritten).
use crate::auth::{self, AUTHTOKEN_FILE, METRICSTOKEN_FILE};
use crate::http_api::{Api, Cidr, HttpRequest, HttpResponse};
use anyhow::{Context, Result, bail};
use serde_json::Value;
use std::io::{ErrorKind, Read};
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use ztplane_host::control_socket::{self, SOCKET_NAME};

/// zerotier-one's default port (UDP and local API).
pub const DEFAULT_PORT: u16 = 9993;
/// Default Prometheus listener: loopback only, one above zerotier-one's default port.
pub const DEFAULT_METRICS: &str = "127.0.0.1:9994";
/// How long one request waits for the node (zerotier-cli itself gives up after 60 s).
const NODE_TIMEOUT: Duration = Duration::from_secs(30);
/// Largest request body read (a join's settings object is tiny; a controller network with its rules is larger).
const MAX_BODY: u64 = 1024 * 1024;
/// How often the server threads look at the stop flag.
const POLL: Duration = Duration::from_millis(200);

#[derive(Debug, Clone, PartialEq)]
pub struct ServeArgs {
    pub home: PathBuf,
    /// `None`: loopback with the node's port from local.conf.
    pub listen: Option<SocketAddr>,
    /// `None`: no Prometheus listener.
    pub metrics: Option<SocketAddr>,
    /// The node's pinned link quality map (`<bpffs>/<instance>/link_quality`), for the link metrics.
    pub link_quality: PathBuf,
}

/// `serve`'s options as typed (`-D DIR` also goes before `serve`: [`crate::Cli::home`]).
#[derive(clap::Args, Debug, Clone, PartialEq)]
#[command(args_override_self = true)]
pub struct ServeCli {
    /// zerotier-one home directory: the node's control socket, local.conf, authtoken.secret (default
    /// /var/lib/zerotier-one); also before `serve`
    #[arg(short = 'D', value_name = "DIR", allow_hyphen_values = true)]
    pub home: Option<PathBuf>,
    /// zerotier-one's local HTTP API (default: loopback, port local.conf settings.primaryPort, else 9993)
    #[arg(long, value_name = "ADDR:PORT", value_parser = addr_arg, allow_hyphen_values = true)]
    pub listen: Option<SocketAddr>,
    /// Prometheus metrics, or off (default 127.0.0.1:9994)
    #[arg(long, value_name = "ADDR:PORT|off", value_parser = metrics_arg, allow_hyphen_values = true)]
    pub metrics: Option<::std::option::Option<SocketAddr>>,
    /// the node's instance name, for its link quality map (default "default")
    #[arg(long, value_name = "NAME", allow_hyphen_values = true)]
    pub instance: Option<String>,
    /// bpffs mount with the node's pinned maps (default /run/ztplane/bpffs)
    #[arg(long, value_name = "PATH", allow_hyphen_values = true)]
    pub bpffs: Option<PathBuf>,
}

impl ServeCli {
    /// The settings; `home` is `-D` given before `serve` (one given after it wins, as the last one typed).
    pub fn into_args(self, home: Option<PathBuf>) -> ServeArgs {
        ServeArgs {
            home: self.home.or(home).unwrap_or_else(|| PathBuf::from(crate::node::DEFAULT_HOME)),
            listen: self.listen,
            metrics: self.metrics.unwrap_or_else(|| Some(DEFAULT_METRICS.parse().expect("default metrics address"))),
            link_quality: crate::bond::pin_path(
                &self.bpffs.unwrap_or_else(|| PathBuf::from(crate::bond::DEFAULT_BPFFS)),
                self.instance.as_deref().unwrap_or(crate::bond::DEFAULT_INSTANCE),
            ),
        }
    }
}

fn addr_arg(value: &str) -> Result<SocketAddr, String> {
    value.parse().map_err(|_| "not an ADDR:PORT (e.g. 127.0.0.1:9993 or [::1]:9993)".to_string())
}

fn metrics_arg(value: &str) -> Result<Option<SocketAddr>, String> {
    if value == "off" { Ok(None) } else { addr_arg(value).map(Some) }
}

/// Parses a whole ztplanectl command line (without the program name) that must be `[-D DIR] serve ...`.
#[cfg(test)]
pub fn parse_args(args: &[String]) -> Result<ServeArgs, String> {
    let cli = crate::parse(args).map_err(|e| ztplane_host::cli::clap_error_line(&e))?;
    match cli.command {
        crate::Cmd::Serve(serve) => Ok(serve.into_args(cli.home)),
        _ => Err("missing command serve".into()),
    }
}

/// What serve needs from `local.conf`.
#[derive(Debug, Clone, PartialEq)]
pub struct LocalConf {
    pub primary_port: u16,
    pub allow_management_from: Vec<Cidr>,
}

/// Reads `home/local.conf` (a missing file is zerotier-one's defaults). Entries of `allowManagementFrom` that are
/// not `ip[/bits]` are reported and skipped.
pub fn read_local_conf(home: &Path) -> Result<LocalConf> {
    let path = home.join("local.conf");
    let conf: Value = match std::fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes).with_context(|| format!("{}: not valid JSON", path.display()))?,
        Err(e) if e.kind() == ErrorKind::NotFound => Value::Null,
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    let settings = &conf["settings"];
    let primary_port = settings["primaryPort"]
        .as_u64()
        .and_then(|p| u16::try_from(p).ok())
        .filter(|p| *p != 0)
        .unwrap_or(DEFAULT_PORT);
    let mut allow_management_from = Vec::new();
    for entry in settings["allowManagementFrom"].as_array().into_iter().flatten() {
        match entry.as_str().and_then(Cidr::parse) {
            Some(cidr) => allow_management_from.push(cidr),
            None => eprintln!("ztplanectl serve: {}: ignoring allowManagementFrom entry {entry}", path.display()),
        }
    }
    Ok(LocalConf { primary_port, allow_management_from })
}

fn bind(addr: SocketAddr, what: &str) -> Result<TcpListener> {
    TcpListener::bind(addr).map_err(|e| match e.kind() {
        ErrorKind::AddrInUse => anyhow::anyhow!(
            "{what} {addr}: address in use (is zerotier-one or another ztplanectl serve running? see --listen / \
             --metrics)"
        ),
        ErrorKind::AddrNotAvailable => anyhow::anyhow!("{what} {addr}: no local interface has this address"),
        _ => anyhow::Error::new(e).context(format!("{what} {addr}")),
    })
}

pub fn run(args: ServeArgs) -> Result<ExitCode> {
    let home = &args.home;
    std::fs::read_dir(home).with_context(|| format!("home directory {}", home.display()))?;
    let conf = read_local_conf(home)?;
    let auth_token = auth::load_or_create(home, AUTHTOKEN_FILE)?;
    let metrics_token = auth::load_or_create(home, METRICSTOKEN_FILE)?;

    let listen = args.listen.unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], conf.primary_port)));
    let api_listener = bind(listen, "--listen")?;
    let listen = api_listener.local_addr()?;
    let metrics_listener = args.metrics.map(|addr| bind(addr, "--metrics")).transpose()?;
    let port_file = home.join("zerotier-one.port");
    std::fs::write(&port_file, listen.port().to_string())
        .with_context(|| format!("writing {}", port_file.display()))?;

    let socket = home.join(SOCKET_NAME);
    let node_socket = socket.clone();
    let node = move |req: &control_socket::Request| control_socket::request(&node_socket, req, NODE_TIMEOUT);
    let api = Arc::new(
        Api::new(Box::new(node), auth_token, Some(metrics_token), conf.allow_management_from)
            .with_link_quality(args.link_quality.clone()),
    );

    // SIGINT/SIGTERM are taken synchronously by this thread; the server threads (spawned after this) inherit the mask.
    let signals = block_stop_signals()?;
    let stop = Arc::new(AtomicBool::new(false));
    let mut threads = Vec::new();
    let api_server =
        tiny_http::Server::from_listener(api_listener, None).map_err(|e| anyhow::anyhow!("--listen {listen}: {e}"))?;
    {
        let (api, stop) = (api.clone(), stop.clone());
        threads.push(std::thread::spawn(move || serve_loop(&api_server, &stop, |r| api.handle(r))));
    }
    let mut metrics_line = String::from("off");
    if let Some(listener) = metrics_listener {
        let addr = listener.local_addr()?;
        metrics_line = format!("http://{addr}/metrics");
        let server =
            tiny_http::Server::from_listener(listener, None).map_err(|e| anyhow::anyhow!("--metrics {addr}: {e}"))?;
        let (api, stop) = (api.clone(), stop.clone());
        threads.push(std::thread::spawn(move || serve_loop(&server, &stop, |r| metrics_only(&api, r))));
    }
    eprintln!(
        "ztplanectl serve: local API on http://{listen} (port in {}), metrics {metrics_line}, node control socket {}",
        port_file.display(),
        socket.display()
    );
    let signal = wait_for_stop(&signals, &threads);
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        let _ = t.join();
    }
    match signal {
        Some(sig) => {
            eprintln!("ztplanectl serve: stopped (signal {sig})");
            Ok(ExitCode::SUCCESS)
        }
        None => bail!("a server thread ended unexpectedly"),
    }
}

/// The dedicated Prometheus listener: `GET /metrics` without a token (it is loopback unless the operator says
/// otherwise), nothing else.
fn metrics_only(api: &Api, req: &HttpRequest) -> HttpResponse {
    let path = req.url.split('?').next().unwrap_or("");
    if req.method == "GET" && path == "/metrics" {
        api.metrics()
    } else {
        HttpResponse { status: 404, content_type: "text/plain", body: String::new() }
    }
}

/// Answers requests one at a time until `stop` is set.
fn serve_loop(server: &tiny_http::Server, stop: &AtomicBool, handle: impl Fn(&HttpRequest) -> HttpResponse) {
    while !stop.load(Ordering::Relaxed) {
        let mut request = match server.recv_timeout(POLL) {
            Ok(Some(r)) => r,
            Ok(None) => continue,
            Err(e) => {
                // accept(2) failures (EMFILE and the like): keep serving, without spinning.
                eprintln!("ztplanectl serve: {e}");
                std::thread::sleep(POLL);
                continue;
            }
        };
        let mut body = Vec::new();
        let _ = request.as_reader().take(MAX_BODY).read_to_end(&mut body);
        let header = |name: &'static str| {
            request.headers().iter().find(|h| h.field.equiv(name)).map(|h| h.value.as_str().to_string())
        };
        let (x_zt1_auth, authorization) = (header("X-ZT1-Auth"), header("Authorization"));
        let method = request.method().as_str().to_string();
        let response = handle(&HttpRequest {
            method: &method,
            url: request.url(),
            x_zt1_auth: x_zt1_auth.as_deref(),
            authorization: authorization.as_deref(),
            remote: request.remote_addr().map(SocketAddr::ip),
            body: &body,
        });
        let content_type = tiny_http::Header::from_bytes("Content-Type", response.content_type)
            .expect("static content type is a valid header");
        let reply =
            tiny_http::Response::from_string(response.body).with_status_code(response.status).with_header(content_type);
        // The client may have gone: nothing to do about it.
        let _ = request.respond(reply);
    }
}

/// Blocks SIGINT and SIGTERM in this thread (and the threads it starts) so that [`wait_for_stop`] takes them.
fn block_stop_signals() -> Result<libc::sigset_t> {
    // SAFETY: sigemptyset/sigaddset initialise and fill a sigset_t we own; pthread_sigmask only reads it.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGINT);
        libc::sigaddset(&mut set, libc::SIGTERM);
        let rc = libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        if rc != 0 {
            bail!("pthread_sigmask: {}", std::io::Error::from_raw_os_error(rc));
        }
        Ok(set)
    }
}

/// Waits for SIGINT/SIGTERM (returns it) or for a server thread to end on its own (`None`).
fn wait_for_stop(set: &libc::sigset_t, threads: &[std::thread::JoinHandle<()>]) -> Option<i32> {
    let timeout = libc::timespec { tv_sec: 0, tv_nsec: POLL.as_nanos() as libc::c_long };
    loop {
        // SAFETY: `set` is an initialised sigset_t, `timeout` a valid timespec, and a null siginfo is allowed.
        let sig = unsafe { libc::sigtimedwait(set, std::ptr::null_mut(), &timeout) };
        if sig > 0 {
            return Some(sig);
        }
        if threads.iter().any(|t| t.is_finished()) {
            return None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(words: &[&str]) -> Vec<String> {
        words.iter().map(|w| w.to_string()).collect()
    }

    #[test]
    fn arguments() {
        let a = parse_args(&args(&["-D/h", "serve", "--listen", "127.0.0.1:1"])).unwrap();
        assert_eq!((a.home, a.listen), ("/h".into(), Some("127.0.0.1:1".parse().unwrap())));
        assert!(parse_args(&args(&["-D", "serve", "info"])).is_err(), "-D takes the next word");
        // -D after serve, and the last of two.
        assert_eq!(parse_args(&args(&["serve", "-D", "/x"])).unwrap().home, PathBuf::from("/x"));
        assert_eq!(parse_args(&args(&["-D/a", "serve", "-D/b"])).unwrap().home, PathBuf::from("/b"));
        let a = parse_args(&args(&["serve", "--metrics", "off", "--metrics", "127.0.0.1:1"])).unwrap();
        assert_eq!(a.metrics, Some("127.0.0.1:1".parse().unwrap()));
        let a = parse_args(&args(&["-D", "/h", "serve"])).unwrap();
        let pin = PathBuf::from("/run/ztplane/bpffs/default/link_quality");
        let want = ServeArgs {
            home: "/h".into(),
            listen: None,
            metrics: Some(DEFAULT_METRICS.parse().unwrap()),
            link_quality: pin,
        };
        assert_eq!(a, want);
        let a = parse_args(&args(&["serve", "--instance", "gw", "--bpffs", "/b"])).unwrap();
        assert_eq!(a.link_quality, PathBuf::from("/b/gw/link_quality"));
        let a = parse_args(&args(&["serve", "--listen", "[::1]:9993", "--metrics", "off"])).unwrap();
        assert_eq!((a.listen, a.metrics), (Some("[::1]:9993".parse().unwrap()), None));
        let a = parse_args(&args(&["serve", "--metrics", "127.0.0.1:9100"])).unwrap();
        assert_eq!(a.metrics, Some("127.0.0.1:9100".parse().unwrap()));
        for bad in [
            &["serve", "--listen"][..],
            &["serve", "--listen", "localhost"],
            &["serve", "--listen", "1.2.3.4"],
            &["serve", "extra"],
            &["serve", "serve"],
            &["-j", "serve"],
            &["serve", "--metrics", "on"],
        ] {
            assert!(parse_args(&args(bad)).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn local_conf() {
        let dir = std::env::temp_dir().join(format!("ztplanectl-serve-conf-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        assert_eq!(read_local_conf(&dir).unwrap(), LocalConf { primary_port: 9993, allow_management_from: vec![] });
        std::fs::write(
            dir.join("local.conf"),
            r#"{"settings":{"primaryPort":9881,"allowManagementFrom":["198.18.0.0/15","bogus"]}}"#,
        )
        .unwrap();
        let conf = read_local_conf(&dir).unwrap();
        assert_eq!(conf.primary_port, 9881);
        assert_eq!(conf.allow_management_from, vec![Cidr::parse("198.18.0.0/15").unwrap()]);
        std::fs::write(dir.join("local.conf"), r#"{"settings":{"primaryPort":0}}"#).unwrap();
        assert_eq!(read_local_conf(&dir).unwrap().primary_port, 9993);
        std::fs::write(dir.join("local.conf"), "{").unwrap();
        assert!(read_local_conf(&dir).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn port_in_use_is_named() {
        let taken = TcpListener::bind("127.0.0.1:0").unwrap();
        let err = bind(taken.local_addr().unwrap(), "--listen").unwrap_err().to_string();
        assert!(err.contains("address in use"), "{err}");
    }
}

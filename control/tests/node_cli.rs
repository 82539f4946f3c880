//! `ztplanectl info|listnetworks|listpeers|join|leave` end to end: the built binary against a real control socket
//! (`ztplane_host::control_socket::ControlServer`) answering with the bodies recorded from zerotier-one, compared
//! with what the real zerotier-cli printed for them (`tests/data/zerotier-cli/cases.json`).
use serde_json::Value;
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use ztplane_host::control_socket::{ControlServer, Request, Response, SOCKET_NAME};

/// Their output depends on the clock (time since lastSend, SSO expiry); the unit tests check them with a frozen one.
const CLOCK_DEPENDENT: [&str; 4] = ["listpeers", "listpeers_moon", "listpeers_edge", "listnetworks_edge"];

struct TempDir(PathBuf);

/// Stops the server when the test body ends, also by a failed assertion (else the scope would wait forever).
struct StopOnDrop<'a>(&'a AtomicBool);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

impl TempDir {
    fn new(tag: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("ztplanectl-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir(&dir).unwrap();
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).unwrap();
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn ztplanectl(home: &Path, args: &[String]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ztplanectl")).arg("-D").arg(home).args(args).output().unwrap()
}

#[test]
fn prints_what_zerotier_cli_printed() {
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/zerotier-cli");
    let cases: Vec<Value> = serde_json::from_slice(&fs::read(data.join("cases.json")).unwrap()).unwrap();
    let home = TempDir::new("cases");
    let server = ControlServer::bind(&home.0.join(SOCKET_NAME)).unwrap();
    let answer: Mutex<Option<Response>> = Mutex::new(None);
    let seen: Mutex<Vec<Request>> = Mutex::new(Vec::new());
    let handler = |req: &Request| {
        seen.lock().unwrap().push(req.clone());
        answer.lock().unwrap().clone().expect("no answer set")
    };
    let stop = AtomicBool::new(false);
    let mut checked = 0;
    std::thread::scope(|s| {
        s.spawn(|| server.serve(&stop, &handler));
        let _stop = StopOnDrop(&stop);
        for case in &cases {
            let name = case["name"].as_str().unwrap();
            if CLOCK_DEPENDENT.contains(&name) {
                continue;
            }
            let args: Vec<String> =
                case["args"].as_array().unwrap().iter().map(|a| a.as_str().unwrap().to_string()).collect();
            *answer.lock().unwrap() = case["body"].as_str().map(|file| {
                let raw = fs::read(data.join(file)).unwrap();
                let body = if raw.is_empty() { Value::Null } else { serde_json::from_slice(&raw).unwrap() };
                Response::new(case["status"].as_u64().unwrap() as u16, body)
            });
            seen.lock().unwrap().clear();
            let out = ztplanectl(&home.0, &args);
            let expected = fs::read(data.join(case["stdout"].as_str().unwrap())).unwrap();
            assert_eq!(String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&expected), "{name}: stdout");
            assert_eq!(out.status.code(), Some(case["exit"].as_i64().unwrap() as i32), "{name}: exit code");
            assert!(out.stderr.is_empty(), "{name}: stderr {}", String::from_utf8_lossy(&out.stderr));
            let seen = seen.lock().unwrap();
            match case["request"].as_str() {
                None => assert!(seen.is_empty(), "{name}: asked the node"),
                Some(want) => {
                    assert_eq!(seen.len(), 1, "{name}");
                    assert_eq!(format!("{} {}", seen[0].method, seen[0].path), want, "{name}: request");
                    let want_body = (seen[0].method == "POST").then(|| serde_json::json!({}));
                    assert_eq!(seen[0].body, want_body, "{name}: request body");
                }
            }
            checked += 1;
        }
    });
    assert!(checked > 50);
}

#[test]
fn node_not_running() {
    let home = TempDir::new("down");
    let sock = home.0.join(SOCKET_NAME);
    let text = format!(
        "Error connecting to the ZeroTier service: connection failed\n\nPlease check that the service is running and \
         that the control socket {} can be contacted.\n",
        sock.display()
    );
    // No socket at all, then a socket file left by a node that died.
    for stale in [false, true] {
        if stale {
            drop(std::os::unix::net::UnixListener::bind(&sock).unwrap());
        }
        for cmd in ["info", "listnetworks", "listpeers"] {
            let out = ztplanectl(&home.0, &[cmd.to_string()]);
            assert_eq!(String::from_utf8_lossy(&out.stdout), text, "{cmd} stale={stale}");
            assert_eq!(out.status.code(), Some(1));
        }
        for cmd in ["join", "leave"] {
            let out = ztplanectl(&home.0, &[cmd.to_string(), "8056c2e21c000001".to_string()]);
            assert_eq!(String::from_utf8_lossy(&out.stdout), format!("0 {cmd} connection failed\n"));
            assert_eq!(out.status.code(), Some(1));
        }
    }
}

#[test]
fn non_root_is_told_to_be_root() {
    // /proc/self belongs to the effective uid.
    let root = fs::metadata("/proc/self").map(|m| m.uid() == 0).unwrap_or(false);
    if !root || Command::new("setpriv").arg("--version").output().is_err() {
        eprintln!("skipped: needs root and setpriv");
        return;
    }
    let home = TempDir::new("nobody");
    let sock = home.0.join(SOCKET_NAME);
    let _server = ControlServer::bind(&sock).unwrap();
    let out = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", env!("CARGO_BIN_EXE_ztplanectl"), "-D"])
        .arg(&home.0)
        .arg("info")
        .output()
        .unwrap();
    if out.status.code() == Some(127) || String::from_utf8_lossy(&out.stderr).contains("Permission denied (os error") {
        eprintln!("skipped: uid 65534 cannot run the test binary here");
        return;
    }
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        format!("ztplanectl: {} not accessible (try again as root)\n", sock.display())
    );
    assert!(out.stdout.is_empty());
    assert_eq!(out.status.code(), Some(2));
}

//! The node's local control socket: requests shaped like zerotier-one's local HTTP API (`GET /status`,
//! `POST /network/<nwid>`, ...) over a Unix stream socket in the node's home directory, usable by root only.
//!
//! Wire format, one JSON object per line each way and one request per connection:
//! `{"method":"GET","path":"/status","body":null}\n` then `{"status":200,"body":{...}}\n`.
//! `body` carries the document zerotier-one would send as its HTTP body, so `ztplanectl` can print what
//! zerotier-cli prints for it.
//!
//! Access control is twofold: the socket file is created with mode 0600 (so only root can connect), and every
//! accepted connection's peer uid is checked with `SO_PEERCRED` in case the mode is ever loosened; non-root peers
//! get `403 {}` (zerotier-one answers a bad token with `401 {}`).
use serde_json::{Map, Value};
use std::fs;
use std::io::{self, ErrorKind, Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// File name of the control socket inside the node's home directory.
pub const SOCKET_NAME: &str = "ztplane.sock";
/// Longest request line the server reads (bodies: a join's settings, a controller's network or member record).
pub const MAX_REQUEST_BYTES: usize = 1024 * 1024;
/// Longest response line the client reads; zerotier-cli accepts HTTP bodies up to the same 16 MiB.
pub const MAX_RESPONSE_BYTES: usize = 16 * 1024 * 1024;

/// How often `serve` wakes up to look at its stop flag, also while a connection is being read or written.
const POLL_INTERVAL: Duration = Duration::from_millis(100);
/// A client has this long to deliver its request line: a stuck client must not hold the node's control thread.
const REQUEST_DEADLINE: Duration = Duration::from_secs(2);
/// ... and this long to take the response (a peer list can be larger than the socket buffer).
const RESPONSE_DEADLINE: Duration = Duration::from_secs(5);

#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    /// `GET`, `POST` or `DELETE` (not checked here: the handler answers what it does not know).
    pub method: String,
    /// `/status`, `/network`, `/network/<nwid>`, `/peer`, ...
    pub path: String,
    pub body: Option<Value>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Response {
    /// HTTP status code, as zerotier-one would answer.
    pub status: u16,
    pub body: Value,
}

impl Request {
    pub fn new(method: &str, path: &str, body: Option<Value>) -> Self {
        Request { method: method.to_string(), path: path.to_string(), body }
    }

    fn to_line(&self) -> String {
        let mut obj = Map::new();
        obj.insert("method".into(), Value::String(self.method.clone()));
        obj.insert("path".into(), Value::String(self.path.clone()));
        obj.insert("body".into(), self.body.clone().unwrap_or(Value::Null));
        let mut line = Value::Object(obj).to_string();
        line.push('\n');
        line
    }

    fn from_line(line: &[u8]) -> Result<Self, String> {
        let value: Value = serde_json::from_slice(line).map_err(|e| format!("request is not JSON: {e}"))?;
        let obj = value.as_object().ok_or("request is not a JSON object")?;
        let method = obj.get("method").and_then(Value::as_str).ok_or("request has no string \"method\"")?;
        let path = obj.get("path").and_then(Value::as_str).ok_or("request has no string \"path\"")?;
        if !path.starts_with('/') {
            return Err("request \"path\" must start with '/'".into());
        }
        let body = obj.get("body").filter(|b| !b.is_null()).cloned();
        Ok(Request::new(method, path, body))
    }
}

impl Response {
    pub fn new(status: u16, body: Value) -> Self {
        Response { status, body }
    }

    /// An empty-object body, which is what zerotier-one sends with most of its errors.
    pub fn empty(status: u16) -> Self {
        Response::new(status, Value::Object(Map::new()))
    }

    fn error(status: u16, message: &str) -> Self {
        let mut obj = Map::new();
        obj.insert("error".into(), Value::String(message.to_string()));
        Response::new(status, Value::Object(obj))
    }

    fn to_line(&self) -> String {
        let mut obj = Map::new();
        obj.insert("status".into(), Value::from(self.status));
        obj.insert("body".into(), self.body.clone());
        let mut line = Value::Object(obj).to_string();
        line.push('\n');
        line
    }

    fn from_line(line: &[u8]) -> io::Result<Self> {
        let bad = |what: &str| io::Error::new(ErrorKind::InvalidData, format!("control socket response {what}"));
        let value: Value = serde_json::from_slice(line).map_err(|e| bad(&format!("is not JSON: {e}")))?;
        let obj = value.as_object().ok_or_else(|| bad("is not a JSON object"))?;
        let status = obj
            .get("status")
            .and_then(Value::as_u64)
            .and_then(|s| u16::try_from(s).ok())
            .ok_or_else(|| bad("has no numeric \"status\""))?;
        Ok(Response::new(status, obj.get("body").cloned().unwrap_or(Value::Null)))
    }
}

/// The listening side, owned by the node. Dropping it removes the socket file (if it is still ours).
pub struct ControlServer {
    listener: UnixListener,
    path: PathBuf,
    /// Device and inode of the socket file we created, so that `drop` never removes a successor's socket.
    ident: (u64, u64),
}

impl ControlServer {
    /// Creates the socket at `path` with mode 0600. A socket file nobody answers on (left by a node that died) is
    /// replaced; a socket a live node answers on, or a path that is not a socket, is an error
    /// (`AddrInUse` / `AlreadyExists`).
    pub fn bind(path: &Path) -> io::Result<Self> {
        remove_stale(path)?;
        // Bind under a temporary name, fix the mode, then hard-link into place: the final path never exists with the
        // umask's mode, and link(2), unlike rename(2), fails instead of replacing a socket another node just created.
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        static BINDS: AtomicUsize = AtomicUsize::new(0);
        let tmp = dir.join(format!(".ztplane-{}-{}.tmp", std::process::id(), BINDS.fetch_add(1, Ordering::Relaxed)));
        let _ = fs::remove_file(&tmp);
        let listener = UnixListener::bind(&tmp)?;
        let placed =
            fs::set_permissions(&tmp, fs::Permissions::from_mode(0o600)).and_then(|()| fs::hard_link(&tmp, path));
        let _ = fs::remove_file(&tmp);
        if let Err(e) = placed {
            if e.kind() == ErrorKind::AlreadyExists {
                return Err(in_use(path));
            }
            return Err(e);
        }
        listener.set_nonblocking(true)?;
        let meta = fs::symlink_metadata(path)?;
        Ok(ControlServer { listener, path: path.to_path_buf(), ident: (meta.dev(), meta.ino()) })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Answers requests, one per connection and one connection at a time, until `stop` is set (seen within about
    /// 100 ms, also in the middle of a slow connection). Each connection gets at most [`REQUEST_DEADLINE`] to send
    /// its request and [`RESPONSE_DEADLINE`] to take the response; a request longer than [`MAX_REQUEST_BYTES`] is
    /// answered 413, one that is not a request object 400, a non-root peer 403.
    pub fn serve(&self, stop: &AtomicBool, handler: &(dyn Fn(&Request) -> Response + Sync)) {
        while !stop.load(Ordering::Relaxed) {
            let mut pfd = libc::pollfd { fd: self.listener.as_raw_fd(), events: libc::POLLIN, revents: 0 };
            // SAFETY: `pfd` is one valid, initialised pollfd that outlives the call, and nfds is 1.
            let ready = unsafe { libc::poll(&mut pfd, 1, POLL_INTERVAL.as_millis() as libc::c_int) };
            if ready <= 0 {
                // 0 is the timeout; a failed poll (EINTR, or ENOMEM) is retried at the next interval.
                continue;
            }
            loop {
                match self.listener.accept() {
                    Ok((stream, _)) => serve_connection(stream, stop, handler),
                    Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                    Err(_) => {
                        // EMFILE and the like: back off rather than spin on a listener that stays readable.
                        std::thread::sleep(POLL_INTERVAL);
                        break;
                    }
                }
            }
        }
    }
}

impl Drop for ControlServer {
    fn drop(&mut self) {
        if let Ok(meta) = fs::symlink_metadata(&self.path)
            && (meta.dev(), meta.ino()) == self.ident
        {
            let _ = fs::remove_file(&self.path);
        }
    }
}

fn in_use(path: &Path) -> io::Error {
    io::Error::new(ErrorKind::AddrInUse, format!("{}: another node answers on this control socket", path.display()))
}

/// Removes `path` if it is a socket nobody listens on; fails if a live node answers there or it is not a socket.
fn remove_stale(path: &Path) -> io::Result<()> {
    let meta = match fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    if !meta.file_type().is_socket() {
        return Err(io::Error::new(
            ErrorKind::AlreadyExists,
            format!("{}: exists and is not a socket; not replacing it", path.display()),
        ));
    }
    match UnixStream::connect(path) {
        Ok(_) => Err(in_use(path)),
        Err(e) if e.kind() == ErrorKind::ConnectionRefused => match fs::remove_file(path) {
            Err(e) if e.kind() != ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        },
        Err(e) => Err(e),
    }
}

fn peer_uid(stream: &UnixStream) -> io::Result<libc::uid_t> {
    let mut cred = libc::ucred { pid: 0, uid: libc::uid_t::MAX, gid: libc::gid_t::MAX };
    let mut len = std::mem::size_of::<libc::ucred>() as libc::socklen_t;
    // SAFETY: `cred` is a writable ucred and `len` holds its exact size, as SO_PEERCRED requires; both outlive the
    // call and the fd is a connected Unix socket owned by `stream`.
    let rc = unsafe {
        libc::getsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_PEERCRED,
            (&mut cred as *mut libc::ucred).cast::<libc::c_void>(),
            &mut len,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    if len as usize != std::mem::size_of::<libc::ucred>() {
        return Err(io::Error::new(ErrorKind::InvalidData, "short SO_PEERCRED answer"));
    }
    Ok(cred.uid)
}

fn serve_connection(mut stream: UnixStream, stop: &AtomicBool, handler: &(dyn Fn(&Request) -> Response + Sync)) {
    // accept(2) does not pass O_NONBLOCK on, but say so: the timeouts below are what bound every call.
    if stream.set_nonblocking(false).is_err()
        || stream.set_read_timeout(Some(POLL_INTERVAL)).is_err()
        || stream.set_write_timeout(Some(POLL_INTERVAL)).is_err()
    {
        return;
    }
    let response = match peer_uid(&stream) {
        Ok(0) => match read_request(&mut stream, stop) {
            Ok(Some(line)) => match Request::from_line(&line) {
                Ok(request) => handler(&request),
                Err(msg) => Response::error(400, &msg),
            },
            Ok(None) => return,
            Err(response) => response,
        },
        // Refuse before reading anything: nothing a non-root peer sends is looked at.
        _ => Response::empty(403),
    };
    write_response(&mut stream, &response, stop);
}

/// Reads one request line. `Ok(None)`: the client went away, the deadline passed or the node is stopping;
/// `Err(response)`: the request is refused with that response.
fn read_request(stream: &mut UnixStream, stop: &AtomicBool) -> Result<Option<Vec<u8>>, Response> {
    let deadline = Instant::now() + REQUEST_DEADLINE;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let line_end = buf.iter().position(|&b| b == b'\n');
        if line_end.unwrap_or(buf.len()) > MAX_REQUEST_BYTES {
            return Err(Response::error(413, "request too large"));
        }
        if let Some(end) = line_end {
            buf.truncate(end);
            return Ok(Some(buf));
        }
        if stop.load(Ordering::Relaxed) || Instant::now() >= deadline {
            return Ok(None);
        }
        match stream.read(&mut chunk) {
            // A client that half-closes instead of ending its line has still sent a whole request.
            Ok(0) if buf.is_empty() => return Ok(None),
            Ok(0) if buf.len() > MAX_REQUEST_BYTES => return Err(Response::error(413, "request too large")),
            Ok(0) => return Ok(Some(buf)),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted) => {}
            Err(_) => return Ok(None),
        }
    }
}

fn write_response(stream: &mut UnixStream, response: &Response, stop: &AtomicBool) {
    let line = response.to_line();
    let deadline = Instant::now() + RESPONSE_DEADLINE;
    let mut rest = line.as_bytes();
    while !rest.is_empty() {
        if stop.load(Ordering::Relaxed) || Instant::now() >= deadline {
            return;
        }
        match stream.write(rest) {
            Ok(0) => return,
            Ok(n) => rest = &rest[n..],
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted) => {}
            Err(_) => return,
        }
    }
}

/// Client side: sends `req` to the node listening on `path` and waits at most `timeout` in all for its answer.
/// Connecting fails with the OS error (`NotFound`: no socket, `ConnectionRefused`: stale socket, `PermissionDenied`:
/// not root); running out of time is `TimedOut`; a reply that is not a response line is `InvalidData`.
pub fn request(path: &Path, req: &Request, timeout: Duration) -> io::Result<Response> {
    let deadline = Instant::now() + timeout;
    let mut stream = UnixStream::connect(path)?;
    let remaining = |deadline: Instant| {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() { Err(io::Error::new(ErrorKind::TimedOut, "timed out")) } else { Ok(left) }
    };
    stream.set_write_timeout(Some(remaining(deadline)?))?;
    match stream.write_all(req.to_line().as_bytes()) {
        Ok(()) => {}
        // The server may refuse (403, 413) and close before taking the whole request: its answer is still readable.
        Err(e) if matches!(e.kind(), ErrorKind::BrokenPipe | ErrorKind::ConnectionReset) => {}
        Err(e) if e.kind() == ErrorKind::WouldBlock => return Err(io::Error::new(ErrorKind::TimedOut, "timed out")),
        Err(e) => return Err(e),
    }
    let mut buf = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    loop {
        if let Some(end) = buf.iter().position(|&b| b == b'\n') {
            return Response::from_line(&buf[..end]);
        }
        if buf.len() > MAX_RESPONSE_BYTES {
            return Err(io::Error::new(ErrorKind::InvalidData, "control socket response too large"));
        }
        stream.set_read_timeout(Some(remaining(deadline)?))?;
        match stream.read(&mut chunk) {
            Ok(0) if buf.is_empty() => {
                return Err(io::Error::new(ErrorKind::UnexpectedEof, "control socket closed without answering"));
            }
            Ok(0) => return Response::from_line(&buf),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                return Err(io::Error::new(ErrorKind::TimedOut, "timed out"));
            }
            Err(e) => return Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::ffi::CString;
    use std::sync::Mutex;

    struct TempDir(PathBuf);

    impl TempDir {
        fn new(tag: &str) -> Self {
            static COUNTER: AtomicUsize = AtomicUsize::new(0);
            let n = COUNTER.fetch_add(1, Ordering::Relaxed);
            let dir = std::env::temp_dir().join(format!("ztplane-ctl-{tag}-{}-{n}", std::process::id()));
            let _ = fs::remove_dir_all(&dir);
            fs::create_dir(&dir).unwrap();
            // Traversable by everyone, so that the non-root test reaches the socket's own mode and SO_PEERCRED.
            fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).unwrap();
            TempDir(dir)
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    /// Runs `server` on a scoped thread with a handler that echoes the request, calls `client`, then stops it.
    fn with_server<R>(server: &ControlServer, client: impl FnOnce() -> R) -> (R, Vec<Request>) {
        let stop = AtomicBool::new(false);
        let seen = Mutex::new(Vec::new());
        let handler = |req: &Request| {
            seen.lock().unwrap().push(req.clone());
            match req.path.as_str() {
                "/status" => Response::new(200, json!({"address": "0123456789", "online": true})),
                _ => Response::new(200, json!({"echo": {"method": req.method, "path": req.path, "body": req.body}})),
            }
        };
        // Stops the server also when `client` panics, else the scope would wait for it forever.
        struct StopOnDrop<'a>(&'a AtomicBool);
        impl Drop for StopOnDrop<'_> {
            fn drop(&mut self) {
                self.0.store(true, Ordering::Relaxed);
            }
        }
        let result = std::thread::scope(|s| {
            let serving = s.spawn(|| server.serve(&stop, &handler));
            let guard = StopOnDrop(&stop);
            let result = client();
            drop(guard);
            let stopped_at = Instant::now();
            serving.join().unwrap();
            assert!(stopped_at.elapsed() < Duration::from_millis(500), "serve did not see stop promptly");
            result
        });
        (result, seen.into_inner().unwrap())
    }

    #[test]
    fn round_trip() {
        let dir = TempDir::new("rt");
        let path = dir.0.join(SOCKET_NAME);
        let server = ControlServer::bind(&path).unwrap();
        let meta = fs::symlink_metadata(&path).unwrap();
        assert!(meta.file_type().is_socket());
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
        assert_eq!(fs::read_dir(&dir.0).unwrap().count(), 1, "temporary bind name left behind");

        let ((status, join), seen) = with_server(&server, || {
            let t = Duration::from_secs(5);
            let status = request(&path, &Request::new("GET", "/status", None), t).unwrap();
            let join =
                request(&path, &Request::new("POST", "/network/8056c2e21c000001", Some(json!({"allowDNS": true}))), t)
                    .unwrap();
            (status, join)
        });
        assert_eq!(status, Response::new(200, json!({"address": "0123456789", "online": true})));
        assert_eq!(join.status, 200);
        assert_eq!(
            join.body,
            json!({"echo": {"method": "POST", "path": "/network/8056c2e21c000001", "body": {"allowDNS": true}}})
        );
        assert_eq!(seen.len(), 2);
        assert_eq!(seen[0], Request::new("GET", "/status", None));

        drop(server);
        assert!(fs::symlink_metadata(&path).is_err(), "drop must remove the socket file");
    }

    /// Sends raw bytes (no line protocol help from `request`) and returns the parsed answer.
    fn raw_exchange(path: &Path, bytes: &[u8]) -> Response {
        let mut s = UnixStream::connect(path).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        s.write_all(bytes).unwrap();
        // Up to the newline only: when the server closes with part of our request unread, Linux reports
        // ECONNRESET to us after the data it sent.
        let mut out = Vec::new();
        let mut byte = [0u8; 1];
        while out.last() != Some(&b'\n') {
            assert_eq!(s.read(&mut byte).unwrap(), 1, "connection closed before the response line ended");
            out.push(byte[0]);
        }
        Response::from_line(out.strip_suffix(b"\n").unwrap()).unwrap()
    }

    #[test]
    fn oversize_and_malformed_requests_rejected() {
        let dir = TempDir::new("big");
        let path = dir.0.join(SOCKET_NAME);
        let server = ControlServer::bind(&path).unwrap();
        let ((big, bad, half_closed, after), seen) = with_server(&server, || {
            let big = raw_exchange(&path, &vec![b'x'; MAX_REQUEST_BYTES + 5000]);
            let bad = raw_exchange(&path, b"{\"method\":\"GET\"}\n");
            // No newline but a half-close: still one complete request.
            let half_closed = {
                let mut s = UnixStream::connect(&path).unwrap();
                s.write_all(br#"{"method":"GET","path":"/status"}"#).unwrap();
                s.shutdown(std::net::Shutdown::Write).unwrap();
                let mut out = String::new();
                s.read_to_string(&mut out).unwrap();
                out
            };
            // The server still answers after refusing.
            let after = request(&path, &Request::new("GET", "/status", None), Duration::from_secs(5)).unwrap();
            (big, bad, half_closed, after)
        });
        assert_eq!(big.status, 413);
        assert_eq!(bad.status, 400);
        assert_eq!(half_closed, Response::new(200, json!({"address": "0123456789", "online": true})).to_line());
        assert_eq!(after.status, 200);
        assert_eq!(seen.len(), 2, "only the well-formed requests reach the handler");
    }

    #[test]
    fn stuck_client_does_not_block_stop_or_others() {
        let dir = TempDir::new("stuck");
        let path = dir.0.join(SOCKET_NAME);
        let server = ControlServer::bind(&path).unwrap();
        let (answer, _) = with_server(&server, || {
            // Connects and sends half a line, then sits there.
            let mut stuck = UnixStream::connect(&path).unwrap();
            stuck.write_all(b"{\"method\":").unwrap();
            let started = Instant::now();
            let answer = request(&path, &Request::new("GET", "/status", None), Duration::from_secs(10)).unwrap();
            assert!(started.elapsed() < REQUEST_DEADLINE + Duration::from_secs(1));
            drop(stuck);
            answer
        });
        assert_eq!(answer.status, 200);
    }

    #[test]
    fn stale_socket_replaced_live_one_refused() {
        let dir = TempDir::new("stale");
        let path = dir.0.join(SOCKET_NAME);
        // A node that died leaves its socket file behind.
        drop(UnixListener::bind(&path).unwrap());
        assert!(fs::symlink_metadata(&path).unwrap().file_type().is_socket());
        let server = ControlServer::bind(&path).unwrap();

        // A second node must not steal the live node's socket, nor remove it when it gives up.
        let err = ControlServer::bind(&path).err().expect("second bind must fail");
        assert_eq!(err.kind(), ErrorKind::AddrInUse);
        let (answer, _) =
            with_server(&server, || request(&path, &Request::new("GET", "/status", None), Duration::from_secs(5)));
        assert_eq!(answer.unwrap().status, 200);
        drop(server);

        // Not a socket: left alone.
        fs::write(&path, b"precious").unwrap();
        assert_eq!(ControlServer::bind(&path).err().unwrap().kind(), ErrorKind::AlreadyExists);
        assert_eq!(fs::read(&path).unwrap(), b"precious");
    }

    #[test]
    fn client_errors() {
        let dir = TempDir::new("client");
        let path = dir.0.join(SOCKET_NAME);
        let req = Request::new("GET", "/status", None);
        assert_eq!(request(&path, &req, Duration::from_secs(1)).unwrap_err().kind(), ErrorKind::NotFound);
        drop(UnixListener::bind(&path).unwrap());
        // Another test of this process may fork while the listener is open; the child holds a
        // copy of it until it execs. Wait that out: a stale socket must end up refused.
        let started = Instant::now();
        let kind = loop {
            let kind = request(&path, &req, Duration::from_secs(1)).unwrap_err().kind();
            if kind == ErrorKind::ConnectionRefused || started.elapsed() > Duration::from_secs(2) {
                break kind;
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        assert_eq!(kind, ErrorKind::ConnectionRefused);
        fs::remove_file(&path).unwrap();

        // A listener that never answers: the client gives up on time.
        let _silent = UnixListener::bind(&path).unwrap();
        let started = Instant::now();
        let err = request(&path, &req, Duration::from_millis(300)).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::TimedOut);
        assert!(started.elapsed() < Duration::from_secs(2));
    }

    /// What a child process running as uid/gid 65534 saw: the errno of its connect, or the bytes it read back.
    enum NobodyResult {
        ConnectFailed(i32),
        Answer(Vec<u8>),
    }

    /// Forks a child that drops to uid/gid 65534 and sends `request_line`. The child only makes raw system calls
    /// on memory prepared before the fork, which is all that is safe in the child of a multi-threaded process.
    fn as_nobody(path: &Path, request_line: &[u8]) -> NobodyResult {
        let cpath = CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: sockaddr_un is plain old data; all zeroes is a valid (empty) value.
        let mut addr: libc::sockaddr_un = unsafe { std::mem::zeroed() };
        addr.sun_family = libc::AF_UNIX as libc::sa_family_t;
        let bytes = cpath.as_bytes_with_nul();
        assert!(bytes.len() <= addr.sun_path.len());
        for (dst, &src) in addr.sun_path.iter_mut().zip(bytes) {
            *dst = src as libc::c_char;
        }
        let mut fds = [0 as libc::c_int; 2];
        // SAFETY: `fds` has room for the two descriptors pipe(2) writes.
        assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
        let (rd, wr) = (fds[0], fds[1]);
        let timeout = libc::timeval { tv_sec: 5, tv_usec: 0 };
        // SAFETY: fork(2) has no memory-safety preconditions; what the child may do is restricted below.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0, "fork failed");
        if pid == 0 {
            // SAFETY (whole child): only async-signal-safe system calls on stack memory and on buffers prepared
            // before the fork; no allocation, no locks, no unwinding; the child ends with _exit.
            unsafe {
                libc::close(rd);
                if libc::setgroups(0, std::ptr::null()) != 0 || libc::setgid(65534) != 0 || libc::setuid(65534) != 0 {
                    libc::_exit(10);
                }
                let fd = libc::socket(libc::AF_UNIX, libc::SOCK_STREAM, 0);
                if fd < 0 {
                    libc::_exit(11);
                }
                libc::setsockopt(
                    fd,
                    libc::SOL_SOCKET,
                    libc::SO_RCVTIMEO,
                    (&timeout as *const libc::timeval).cast(),
                    std::mem::size_of::<libc::timeval>() as libc::socklen_t,
                );
                let rc = libc::connect(
                    fd,
                    (&addr as *const libc::sockaddr_un).cast(),
                    std::mem::size_of::<libc::sockaddr_un>() as libc::socklen_t,
                );
                let status: i32 = if rc == 0 { 0 } else { *libc::__errno_location() };
                libc::write(wr, (&status as *const i32).cast(), 4);
                if rc == 0 {
                    libc::write(fd, request_line.as_ptr().cast(), request_line.len());
                    let mut buf = [0u8; 4096];
                    loop {
                        let n = libc::read(fd, buf.as_mut_ptr().cast(), buf.len());
                        if n <= 0 {
                            break;
                        }
                        libc::write(wr, buf.as_ptr().cast(), n as usize);
                    }
                }
                libc::_exit(0);
            }
        }
        // SAFETY: `wr` is our copy of the pipe's write end, not used again; `rd` is handed to a File that owns it.
        let mut reader = unsafe {
            libc::close(wr);
            <fs::File as std::os::fd::FromRawFd>::from_raw_fd(rd)
        };
        let mut out = Vec::new();
        reader.read_to_end(&mut out).unwrap();
        let mut wstatus = 0;
        // SAFETY: `pid` is our child; `wstatus` is a valid out-pointer.
        assert_eq!(unsafe { libc::waitpid(pid, &mut wstatus, 0) }, pid);
        assert!(libc::WIFEXITED(wstatus) && libc::WEXITSTATUS(wstatus) == 0, "child failed: {wstatus:#x}");
        let status = i32::from_ne_bytes(out[..4].try_into().unwrap());
        if status != 0 { NobodyResult::ConnectFailed(status) } else { NobodyResult::Answer(out[4..].to_vec()) }
    }

    #[test]
    fn non_root_client_refused() {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            eprintln!("skipped: needs root to switch a child to uid 65534");
            return;
        }
        let dir = TempDir::new("nobody");
        let path = dir.0.join(SOCKET_NAME);
        let server = ControlServer::bind(&path).unwrap();
        let line = Request::new("GET", "/status", None).to_line();
        let ((by_mode, by_cred), seen) = with_server(&server, || {
            let by_mode = as_nobody(&path, line.as_bytes());
            // Even if the mode is loosened, SO_PEERCRED keeps non-root out.
            fs::set_permissions(&path, fs::Permissions::from_mode(0o666)).unwrap();
            let by_cred = as_nobody(&path, line.as_bytes());
            (by_mode, by_cred)
        });
        match by_mode {
            NobodyResult::ConnectFailed(errno) => assert_eq!(errno, libc::EACCES),
            NobodyResult::Answer(a) => panic!("0600 socket answered uid 65534: {}", String::from_utf8_lossy(&a)),
        }
        match by_cred {
            NobodyResult::Answer(a) => {
                assert_eq!(Response::from_line(a.strip_suffix(b"\n").unwrap()).unwrap(), Response::empty(403))
            }
            NobodyResult::ConnectFailed(errno) => panic!("connect to a 0666 socket failed: errno {errno}"),
        }
        assert!(seen.is_empty(), "a non-root request reached the handler");
    }
}

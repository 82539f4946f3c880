//! `ztplanectl [-D DIR] [-j] info | listnetworks | listpeers | join NWID | leave NWID`: asks the running node over
//! its control socket (`DIR/ztplane.sock`, DIR defaulting to /var/lib/zerotier-one) and prints exactly what
//! zerotier-cli 1.14.1 prints for the same answer, byte for byte, exit code included (checked against the real
//! zerotier-cli in `tests/data/zerotier-cli/`).
//!
//! The node answers with zerotier-one's local API documents. What zerotier-cli reads of them, and so what the node
//! must fill in (every other field only shows up with `-j`):
//!
//! - `info` (also `status`): `GET /status`, an object. `address` (10 hex digits), `version` ("1.14.1"), `online`
//!   (bool) and `tcpFallbackActive` (bool): `TUNNELED` if tcpFallbackActive, else `ONLINE`/`OFFLINE` from online.
//!   zerotier-cli aborts if either bool is missing or not a bool, so both must always be sent.
//! - `listnetworks`: `GET /network`, an array of objects. `nwid` (not `id`), `name`, `mac`, `status`
//!   (`REQUESTING_CONFIGURATION`, `OK`, `ACCESS_DENIED`, `NOT_FOUND`, `PORT_ERROR`, `CLIENT_TOO_OLD`,
//!   `AUTHENTICATION_REQUIRED`), `type` (`PRIVATE`/`PUBLIC`), `portDeviceName`, `assignedAddresses` (array of
//!   "ip/bits" strings, joined with ','; "-" if empty). A missing field prints as "-"; an empty name prints as
//!   nothing (two spaces). Only if `ssoEnabled` is true: `authenticationExpiryTime` (ms since the epoch, required
//!   then) and `authenticationURL`, for an extra "    AUTH ..." line.
//! - `listpeers`: `GET /peer`, an array of objects. `address`, `latency` (ms, -1 if unknown), `versionMajor`,
//!   `versionMinor`, `versionRev` (numbers, -1 if unknown; `version` is NOT read), `role` (`LEAF`, `MOON`,
//!   `PLANET`), and `paths`: the first path with `preferred: true` is shown as `address;now-lastSend;now-lastReceive`
//!   (`address` "ip/port", `lastSend`/`lastReceive` ms since the epoch, 0 = never, printed as -1). zerotier-cli
//!   aborts unless every path has a bool `preferred` and every peer has numeric versionMajor/Minor/Rev.
//! - `join NWID`: `POST /network/<nwid>` with body `{}`; `leave NWID`: `DELETE /network/<nwid>`. Only the status
//!   is read (200 = OK); `-j` prints the body (zerotier-one: the network object; `{"result":true}` for a leave, `{}`
//!   for leaving a network not joined).
//!
//! Errors: any status but 200 prints `<status> <command> <body>` and exits 1 (zerotier-one sends `{}` with its
//! errors). A `null` body stands for an empty HTTP body, which zerotier-one sends for a path it has no route for
//! (e.g. `/network/<not 16 hex digits>`): printed as nothing, or as zerotier-cli's "invalid JSON" line where it
//! parses the body.
use anyhow::Result;
use serde_json::{Number, Value};
use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use ztplane_host::control_socket::{self, Request, Response, SOCKET_NAME};

pub const DEFAULT_HOME: &str = "/var/lib/zerotier-one";
/// zerotier-cli waits 60 s for the service, so a busy node is not reported as down sooner than it would be.
const TIMEOUT: Duration = Duration::from_secs(60);
const COMMANDS: [&str; 6] = ["info", "status", "listnetworks", "listpeers", "join", "leave"];

/// What nlohmann::json (zerotier-cli's parser) says about an empty body.
const EMPTY_BODY_PARSE_ERROR: &str = "[json.exception.parse_error.101] parse error at line 1, column 1: syntax error \
     while parsing value - unexpected end of input; expected '[', '{', or a literal";

/// A parsed command line. `command` is the word as typed (`status` is zerotier-cli's alias of `info`, and error
/// lines repeat the word as typed).
#[derive(Debug, Clone, PartialEq)]
pub struct Invocation {
    pub home: PathBuf,
    pub json: bool,
    pub command: String,
    pub arg: Option<String>,
}

/// What to print and the exit status.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Output {
    pub stdout: String,
    pub stderr: String,
    pub code: u8,
}

impl Output {
    fn stdout(text: String, code: u8) -> Self {
        Output { stdout: text, stderr: String::new(), code }
    }
}

/// True if `args` (everything after the program name) is a node command, options included.
pub fn handles(args: &[String]) -> bool {
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "-D" => {
                it.next();
            }
            a if a.starts_with('-') => {}
            a => return COMMANDS.contains(&a),
        }
    }
    false
}

/// Parses `[-D DIR | -DDIR] [-j]` anywhere on the line (zerotier-cli takes its switches after the command too),
/// then the command and its argument; words after that are ignored, as zerotier-cli does.
pub fn parse_args(args: &[String]) -> Result<Invocation, String> {
    let mut home = PathBuf::from(DEFAULT_HOME);
    let mut json = false;
    let mut words = Vec::new();
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "-j" => json = true,
            "-D" => home = PathBuf::from(it.next().ok_or("-D needs a directory")?),
            a if a.starts_with("-D") => home = PathBuf::from(&a[2..]),
            a if a.starts_with('-') => return Err(format!("unknown option {a}")),
            a => words.push(a.to_string()),
        }
    }
    let mut words = words.into_iter();
    let command = words.next().ok_or("missing command")?;
    if !COMMANDS.contains(&command.as_str()) {
        return Err(format!("unknown command {command}"));
    }
    Ok(Invocation { home, json, command, arg: words.next() })
}

/// The request for `inv`, or what zerotier-cli prints without asking (a network ID that is not 16 characters long:
/// it checks nothing else, the service answers 404 to non-hex IDs).
pub fn prepare(inv: &Invocation) -> Result<Request, Output> {
    let nwid_path = || match &inv.arg {
        Some(nwid) if nwid.len() == 16 => Ok(format!("/network/{nwid}")),
        _ => Err(Output::stdout("invalid network id\n".into(), 2)),
    };
    Ok(match inv.command.as_str() {
        "info" | "status" => Request::new("GET", "/status", None),
        "listnetworks" => Request::new("GET", "/network", None),
        "listpeers" => Request::new("GET", "/peer", None),
        // zerotier-cli posts an empty settings object, which leaves allowManaged & co. as they are.
        "join" => Request::new("POST", &nwid_path()?, Some(Value::Object(Default::default()))),
        "leave" => Request::new("DELETE", &nwid_path()?, None),
        other => unreachable!("parse_args let {other} through"),
    })
}

/// What zerotier-cli prints for the node's answer `resp`; `now_ms` is the clock listpeers and listnetworks compare
/// timestamps with.
pub fn render(inv: &Invocation, resp: &Response, now_ms: i64) -> Output {
    let cmd = inv.command.as_str();
    if matches!(cmd, "join" | "leave") {
        // zerotier-cli does not parse these bodies: it prints them as received.
        let raw = raw_body(&resp.body);
        return match (resp.status, inv.json) {
            (200, true) => Output::stdout(raw, 0),
            (200, false) => Output::stdout(format!("200 {cmd} OK\n"), 0),
            (status, _) => Output::stdout(format!("{status} {cmd} {raw}\n"), 1),
        };
    }
    let status = resp.status;
    if resp.body.is_null() {
        return Output::stdout(format!("{status} {cmd} invalid JSON response ({EMPTY_BODY_PARSE_ERROR})\n"), 1);
    }
    if status != 200 {
        return Output::stdout(format!("{status} {cmd} {}\n", raw_body(&resp.body)), 1);
    }
    if inv.json {
        return Output::stdout(format_json(&resp.body), 0);
    }
    let text = match cmd {
        "listnetworks" => format_listnetworks(&resp.body, now_ms),
        "listpeers" => format_listpeers(&resp.body, now_ms),
        _ => format_info(&resp.body),
    };
    Output::stdout(text, 0)
}

/// What zerotier-cli prints when it cannot get an answer at all. It names the TCP port it tried; this names the
/// socket. Not root is its "authtoken.secret not found or readable" case: on stderr, exit 2.
pub fn render_unreachable(inv: &Invocation, socket: &Path, err: &std::io::Error) -> Output {
    if err.kind() == ErrorKind::PermissionDenied {
        return Output {
            stdout: String::new(),
            stderr: format!("ztplanectl: {} not accessible (try again as root)\n", socket.display()),
            code: 2,
        };
    }
    let why = match err.kind() {
        ErrorKind::TimedOut | ErrorKind::WouldBlock => "timed out".to_string(),
        ErrorKind::NotFound | ErrorKind::ConnectionRefused | ErrorKind::ConnectionReset => {
            "connection failed".to_string()
        }
        _ => err.to_string(),
    };
    let cmd = inv.command.as_str();
    if matches!(cmd, "join" | "leave") {
        // zerotier-cli prints these as a response with status 0.
        return Output::stdout(format!("0 {cmd} {why}\n"), 1);
    }
    Output::stdout(
        format!(
            "Error connecting to the ZeroTier service: {why}\n\nPlease check that the service is running and that the \
             control socket {} can be contacted.\n",
            socket.display()
        ),
        1,
    )
}

pub fn run(args: &[String]) -> Result<ExitCode> {
    let inv = match parse_args(args) {
        Ok(inv) => inv,
        Err(msg) => {
            eprintln!(
                "ztplanectl: {msg}\nusage: ztplanectl [-D DIR] [-j] info|listnetworks|listpeers|join NWID|leave NWID"
            );
            return Ok(ExitCode::from(2));
        }
    };
    let socket = inv.home.join(SOCKET_NAME);
    let out = match prepare(&inv) {
        Err(out) => out,
        Ok(req) => match control_socket::request(&socket, &req, TIMEOUT) {
            Ok(resp) => render(&inv, &resp, now_ms()),
            Err(err) => render_unreachable(&inv, &socket, &err),
        },
    };
    // Raw bytes: join -j output has no trailing newline, and nothing is added or translated.
    std::io::stdout().write_all(out.stdout.as_bytes())?;
    std::io::stdout().flush()?;
    std::io::stderr().write_all(out.stderr.as_bytes())?;
    Ok(ExitCode::from(out.code))
}

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

/// `-j` output of info, listnetworks and listpeers: nlohmann's `dump(1)` (keys sorted, one-space indent) and a
/// newline.
pub fn format_json(body: &Value) -> String {
    let mut out = dump(body, Some(1));
    out.push('\n');
    out
}

/// The body as zerotier-one's HTTP body text (its `json::dump()`), or nothing for `null` (see the module comment).
fn raw_body(body: &Value) -> String {
    if body.is_null() { String::new() } else { dump(body, None) }
}

/// `200 info <address> <version> ONLINE|OFFLINE|TUNNELED`; nothing if `status` is not an object.
pub fn format_info(status: &Value) -> String {
    if !status.is_object() {
        return String::new();
    }
    let state = if is_true(&status["tcpFallbackActive"]) {
        "TUNNELED"
    } else if is_true(&status["online"]) {
        "ONLINE"
    } else {
        "OFFLINE"
    };
    format!("200 info {} {} {state}\n", json_string(&status["address"], "-"), json_string(&status["version"], "-"))
}

/// The header, one line per network object and, for SSO networks, an AUTH line.
pub fn format_listnetworks(networks: &Value, now_ms: i64) -> String {
    let mut out = String::from("200 listnetworks <nwid> <name> <mac> <status> <type> <dev> <ZT assigned ips>\n");
    for n in networks.as_array().into_iter().flatten().filter(|n| n.is_object()) {
        let ips: Vec<&str> =
            n["assignedAddresses"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
        let ips = if ips.is_empty() { "-".to_string() } else { ips.join(",") };
        let status = json_string(&n["status"], "-");
        out += &format!(
            "200 listnetworks {} {} {} {status} {} {} {ips}\n",
            json_string(&n["nwid"], "-"),
            json_string(&n["name"], "-"),
            json_string(&n["mac"], "-"),
            json_string(&n["type"], "-"),
            json_string(&n["portDeviceName"], "-"),
        );
        if json_bool(&n["ssoEnabled"], false) {
            let expiry = as_u64(&n["authenticationExpiryTime"]).unwrap_or(0);
            if status == "AUTHENTICATION_REQUIRED" {
                out += &format!("    AUTH EXPIRED, URL: {}\n", json_string(&n["authenticationURL"], "(null)"));
            } else if status == "OK" {
                let expires_in = (expiry as i64).wrapping_sub(now_ms) / 1000;
                if expires_in >= 0 {
                    out += &format!("    AUTH OK, expires in: {expires_in} seconds\n");
                }
            }
        }
    }
    out
}

/// The header and one line per peer: its first preferred path with the ms since the last send and receive.
pub fn format_listpeers(peers: &Value, now_ms: i64) -> String {
    let mut out = String::from("200 listpeers <ztaddr> <path> <latency> <version> <role>\n");
    for p in peers.as_array().into_iter().flatten() {
        let since = |t: &Value| match as_u64(t).unwrap_or(0) {
            0 => -1,
            t => (now_ms as u64).wrapping_sub(t) as i64,
        };
        let best_path = p["paths"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|path| is_true(&path["preferred"]))
            .map(|path| {
                format!(
                    "{};{};{}",
                    json_string(&path["address"], ""),
                    since(&path["lastSend"]),
                    since(&path["lastReceive"])
                )
            })
            .unwrap_or_else(|| "-".to_string());
        let major = as_i64(&p["versionMajor"]).unwrap_or(-1);
        let version = if major >= 0 {
            format!("{major}.{}.{}", as_i64(&p["versionMinor"]).unwrap_or(0), as_i64(&p["versionRev"]).unwrap_or(0))
        } else {
            "-".to_string()
        };
        out += &format!(
            "200 listpeers {} {best_path} {} {version} {}\n",
            json_string(&p["address"], "-"),
            json_int(&p["latency"], 0) as i32,
            json_string(&p["role"], "-"),
        );
    }
    out
}

// zerotier-cli's accessors (OSUtils::jsonString & co., nlohmann conversions), reproduced with their C casts. Where
// zerotier-cli would abort on a wrong type, these fall back to the default instead.

/// A conditional on a nlohmann value: only a real `true` counts (anything else makes zerotier-cli abort).
fn is_true(v: &Value) -> bool {
    v.as_bool() == Some(true)
}

/// `(uint64_t)number`: negative integers wrap, floats truncate (negative ones as x86-64 converts them).
fn number_as_u64(n: &Number) -> u64 {
    if let Some(u) = n.as_u64() {
        u
    } else if let Some(i) = n.as_i64() {
        i as u64
    } else {
        let f = n.as_f64().unwrap_or(0.0);
        if f < 0.0 { f as i64 as u64 } else { f as u64 }
    }
}

/// nlohmann `get<uint64_t>()`: numbers only.
fn as_u64(v: &Value) -> Option<u64> {
    v.as_number().map(number_as_u64)
}

/// nlohmann `get<int64_t>()`: numbers only.
fn as_i64(v: &Value) -> Option<i64> {
    let n = v.as_number()?;
    Some(n.as_i64().unwrap_or_else(|| n.as_u64().map_or_else(|| n.as_f64().unwrap_or(0.0) as i64, |u| u as i64)))
}

/// OSUtils::jsonString: strings as they are, numbers as `%llu` of their uint64_t cast, bools as 1/0.
fn json_string(v: &Value, dfl: &str) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Number(n) => number_as_u64(n).to_string(),
        Value::Bool(b) => if *b { "1" } else { "0" }.to_string(),
        _ => dfl.to_string(),
    }
}

/// OSUtils::jsonInt: numbers cast, strings through strtoull, bools as 1/0.
fn json_int(v: &Value, dfl: u64) -> u64 {
    match v {
        Value::Number(n) => number_as_u64(n),
        Value::String(s) => strtoull(s),
        Value::Bool(b) => u64::from(*b),
        _ => dfl,
    }
}

/// OSUtils::jsonBool: bools, numbers > 0, strings starting with t, T or 1.
fn json_bool(v: &Value, dfl: bool) -> bool {
    match v {
        Value::Bool(b) => *b,
        Value::Number(n) => number_as_u64(n) > 0,
        Value::String(s) => matches!(s.bytes().next(), Some(b't' | b'T' | b'1')),
        _ => dfl,
    }
}

/// C `strtoull(s, NULL, 10)`: leading space, a sign, then digits up to the first non-digit; overflow saturates and
/// a minus sign negates modulo 2^64.
fn strtoull(s: &str) -> u64 {
    let s = s.trim_start_matches([' ', '\t', '\n', '\r', '\x0b', '\x0c']);
    let (negative, digits) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    let mut value: u64 = 0;
    for d in digits.bytes().take_while(u8::is_ascii_digit) {
        match value.checked_mul(10).and_then(|v| v.checked_add(u64::from(d - b'0'))) {
            Some(v) => value = v,
            None => return u64::MAX,
        }
    }
    if negative { value.wrapping_neg() } else { value }
}

/// nlohmann::json::dump (3.10.2, as in zerotier-one 1.14.1): keys in byte order (its objects are std::maps; ours
/// may keep insertion order), `indent` spaces per level or compact, its number formatting and string escaping.
pub fn dump(v: &Value, indent: Option<usize>) -> String {
    let mut out = String::new();
    dump_into(&mut out, v, indent, 0);
    out
}

fn dump_into(out: &mut String, v: &Value, indent: Option<usize>, level: usize) {
    match v {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => dump_number(out, n),
        Value::String(s) => dump_string(out, s),
        Value::Array(items) if items.is_empty() => out.push_str("[]"),
        Value::Object(map) if map.is_empty() => out.push_str("{}"),
        Value::Array(items) => {
            let items: Vec<(Option<&String>, &Value)> = items.iter().map(|v| (None, v)).collect();
            dump_container(out, ('[', ']'), &items, indent, level);
        }
        Value::Object(map) => {
            let mut items: Vec<(Option<&String>, &Value)> = map.iter().map(|(k, v)| (Some(k), v)).collect();
            items.sort_by(|a, b| a.0.cmp(&b.0));
            dump_container(out, ('{', '}'), &items, indent, level);
        }
    }
}

fn dump_container(
    out: &mut String,
    (open, close): (char, char),
    items: &[(Option<&String>, &Value)],
    indent: Option<usize>,
    level: usize,
) {
    out.push(open);
    for (i, (key, value)) in items.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        if let Some(width) = indent {
            out.push('\n');
            out.extend(std::iter::repeat_n(' ', width * (level + 1)));
        }
        if let Some(key) = key {
            dump_string(out, key);
            out.push_str(if indent.is_some() { ": " } else { ":" });
        }
        dump_into(out, value, indent, level + 1);
    }
    if let Some(width) = indent {
        out.push('\n');
        out.extend(std::iter::repeat_n(' ', width * level));
    }
    out.push(close);
}

fn dump_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{08}' => out.push_str("\\b"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\u{0c}' => out.push_str("\\f"),
            '\r' => out.push_str("\\r"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}

fn dump_number(out: &mut String, n: &Number) {
    if let Some(u) = n.as_u64() {
        out.push_str(&u.to_string());
    } else if let Some(i) = n.as_i64() {
        out.push_str(&i.to_string());
    } else {
        dump_float(out, n.as_f64().unwrap_or(f64::NAN));
    }
}

/// nlohmann's to_chars: the shortest round-trip digits (its Grisu2; Rust's `{:e}` gives the same digits), fixed
/// notation for 1e-4 <= |x| < 1e15 with at least one decimal, else `d.ddde+XX` with a two-digit minimum exponent.
fn dump_float(out: &mut String, x: f64) {
    if !x.is_finite() {
        out.push_str("null");
        return;
    }
    if x.is_sign_negative() {
        out.push('-');
    }
    if x == 0.0 {
        out.push_str("0.0");
        return;
    }
    let sci = format!("{:e}", x.abs());
    let (mantissa, exp) = sci.split_once('e').expect("{:e} has an exponent");
    let digits: String = mantissa.chars().filter(|&c| c != '.').collect();
    let k = digits.len() as i32;
    // x = digits * 10^(n - k): n is where the decimal point goes, counted from the first digit.
    let n = exp.parse::<i32>().expect("{:e} exponent") + 1;
    const MIN_EXP: i32 = -4;
    const MAX_EXP: i32 = 15;
    if k <= n && n <= MAX_EXP {
        out.push_str(&digits);
        out.extend(std::iter::repeat_n('0', (n - k) as usize));
        out.push_str(".0");
    } else if 0 < n && n <= MAX_EXP {
        out.push_str(&digits[..n as usize]);
        out.push('.');
        out.push_str(&digits[n as usize..]);
    } else if MIN_EXP < n && n <= 0 {
        out.push_str("0.");
        out.extend(std::iter::repeat_n('0', (-n) as usize));
        out.push_str(&digits);
    } else {
        out.push_str(&digits[..1]);
        if k > 1 {
            out.push('.');
            out.push_str(&digits[1..]);
        }
        let e = n - 1;
        out.push_str(&format!("e{}{:02}", if e < 0 { '-' } else { '+' }, e.abs()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::fs;

    fn data_dir() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/zerotier-cli")
    }

    fn args(words: &[&str]) -> Vec<String> {
        words.iter().map(|w| w.to_string()).collect()
    }

    /// Every case recorded from the real zerotier-cli 1.14.1 (bodies captured from a real zerotier-one, plus
    /// hand-made edge cases, served to it with its clock frozen at `now_ms`): same request, same bytes, same code.
    #[test]
    fn matches_recorded_zerotier_cli_output() {
        let dir = data_dir();
        let cases: Vec<Value> = serde_json::from_slice(&fs::read(dir.join("cases.json")).unwrap()).unwrap();
        assert!(cases.len() > 50);
        for case in &cases {
            let name = case["name"].as_str().unwrap();
            let argv: Vec<String> =
                case["args"].as_array().unwrap().iter().map(|a| a.as_str().unwrap().to_string()).collect();
            let expected = String::from_utf8(fs::read(dir.join(case["stdout"].as_str().unwrap())).unwrap()).unwrap();
            let code = case["exit"].as_u64().unwrap() as u8;
            let inv = parse_args(&argv).unwrap_or_else(|e| panic!("{name}: {e}"));
            let out = match prepare(&inv) {
                Err(out) => {
                    assert!(case["request"].is_null(), "{name}: zerotier-cli made a request");
                    out
                }
                Ok(req) => {
                    assert_eq!(
                        format!("{} {}", req.method, req.path),
                        case["request"].as_str().unwrap(),
                        "{name}: request"
                    );
                    let raw = fs::read(dir.join(case["body"].as_str().unwrap())).unwrap();
                    let body = if raw.is_empty() { Value::Null } else { serde_json::from_slice(&raw).unwrap() };
                    let resp = Response::new(case["status"].as_u64().unwrap() as u16, body);
                    render(&inv, &resp, case["now_ms"].as_i64().unwrap())
                }
            };
            assert_eq!(out.stdout, expected, "{name}: stdout");
            assert_eq!(out.code, code, "{name}: exit code");
            assert_eq!(out.stderr, "", "{name}: stderr");
        }
    }

    #[test]
    fn dump_compact_equals_what_zerotier_one_sent() {
        // zerotier-one's HTTP bodies are its compact dump(); re-dumping the parsed body must give them back.
        for file in ["status.json", "networks.json", "peers.json", "join.json", "peers_moon.json"] {
            let raw = fs::read_to_string(data_dir().join(file)).unwrap();
            let body: Value = serde_json::from_str(&raw).unwrap();
            assert_eq!(dump(&body, None), raw, "{file}");
        }
    }

    #[test]
    fn dump_sorts_keys_whatever_the_map_order() {
        let mut map = serde_json::Map::new();
        map.insert("z".into(), json!(1));
        map.insert("a".into(), json!({"y": [], "b": {}}));
        assert_eq!(dump(&Value::Object(map), None), r#"{"a":{"b":{},"y":[]},"z":1}"#);
    }

    #[test]
    fn floats_as_nlohmann() {
        let cases = [
            (0.5, "0.5"),
            (2.0, "2.0"),
            (1e14, "100000000000000.0"),
            (123456789012345.6, "123456789012345.6"),
            (1e15, "1e+15"),
            (0.001, "0.001"),
            (0.000123, "0.000123"),
            (0.0000123, "1.23e-05"),
            (-3.25e-100, "-3.25e-100"),
            (-0.0, "-0.0"),
            (f64::NAN, "null"),
        ];
        for (x, want) in cases {
            let mut s = String::new();
            dump_float(&mut s, x);
            assert_eq!(s, want, "{x:e}");
        }
    }

    #[test]
    fn parse_args_like_zerotier_cli() {
        let inv = parse_args(&args(&["-D", "/tmp/x", "listpeers", "-j"])).unwrap();
        assert_eq!(inv, Invocation { home: "/tmp/x".into(), json: true, command: "listpeers".into(), arg: None });
        let inv = parse_args(&args(&["-D/tmp/y", "join", "8056c2e21c000001", "extra"])).unwrap();
        assert_eq!((inv.home, inv.arg), (PathBuf::from("/tmp/y"), Some("8056c2e21c000001".to_string())));
        assert_eq!(parse_args(&args(&["info"])).unwrap().home, PathBuf::from(DEFAULT_HOME));
        assert!(parse_args(&args(&["-D"])).is_err());
        assert!(parse_args(&args(&["-x", "info"])).is_err());
        assert!(parse_args(&args(&["-j"])).is_err());
        assert!(handles(&args(&["-D", "info", "-j", "status"])), "-D takes the next word");
        assert!(handles(&args(&["leave"])));
        assert!(!handles(&args(&["-D", "/d", "policy", "check"])));
    }

    #[test]
    fn unreachable_node() {
        let sock = Path::new("/var/lib/zerotier-one/ztplane.sock");
        let inv = |c: &str| parse_args(&args(&[c, "8056c2e21c000001"])).unwrap();
        let refused = std::io::Error::from(ErrorKind::ConnectionRefused);
        let missing = std::io::Error::from(ErrorKind::NotFound);
        let text = "Error connecting to the ZeroTier service: connection failed\n\nPlease check that the service is \
                    running and that the control socket /var/lib/zerotier-one/ztplane.sock can be contacted.\n";
        for err in [&refused, &missing] {
            assert_eq!(render_unreachable(&inv("info"), sock, err), Output::stdout(text.into(), 1));
            assert_eq!(
                render_unreachable(&inv("join"), sock, err),
                Output::stdout("0 join connection failed\n".into(), 1)
            );
        }
        let timed_out = std::io::Error::from(ErrorKind::TimedOut);
        assert_eq!(
            render_unreachable(&inv("leave"), sock, &timed_out),
            Output::stdout("0 leave timed out\n".into(), 1)
        );
        let denied = render_unreachable(&inv("listpeers"), sock, &std::io::Error::from(ErrorKind::PermissionDenied));
        assert_eq!(
            denied,
            Output {
                stdout: String::new(),
                stderr: "ztplanectl: /var/lib/zerotier-one/ztplane.sock not accessible (try again as root)\n".into(),
                code: 2
            }
        );
    }

    #[test]
    fn defaults_where_zerotier_cli_aborts() {
        assert_eq!(
            format_info(&json!({"address": "0123456789", "version": "1.14.1"})),
            "200 info 0123456789 1.14.1 OFFLINE\n"
        );
        let peers =
            json!([{"address": "aaaaaaaaaa", "latency": 1, "paths": [{"address": "1.2.3.4/5", "lastSend": 1}]}]);
        assert_eq!(
            format_listpeers(&peers, 10),
            "200 listpeers <ztaddr> <path> <latency> <version> <role>\n200 listpeers aaaaaaaaaa - 1 - -\n"
        );
    }

    #[test]
    fn c_conversions() {
        assert_eq!(strtoull("  42abc"), 42);
        assert_eq!(strtoull("-1"), u64::MAX);
        assert_eq!(strtoull("99999999999999999999999"), u64::MAX);
        assert_eq!(strtoull("x1"), 0);
        assert_eq!(json_string(&json!(-1.5), "-"), u64::MAX.to_string());
        assert_eq!(json_string(&json!(2.9), "-"), "2");
        assert_eq!(json_string(&json!(false), "-"), "0");
        assert_eq!(json_string(&Value::Null, "-"), "-");
        assert_eq!(json_int(&json!(3.9), 0) as i32, 3);
        assert_eq!(json_int(&json!(-1), 0) as i32, -1);
    }
}

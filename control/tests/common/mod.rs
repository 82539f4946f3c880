//! What the end-to-end tests of `ztplanectl` against a running `ztplane node` share.
#![allow(dead_code)] // each test binary uses its own part

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;
use ztplane_testkit::Netns;

pub fn ztplanectl() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_ztplanectl"))
}

/// The `ztplane` binary built beside `ztplanectl` (cargo xtask test builds the workspace).
pub fn ztplane() -> PathBuf {
    let path = ztplanectl().with_file_name("ztplane");
    assert!(path.exists(), "{} is missing: build the workspace (cargo xtask test does)", path.display());
    path
}

/// A directory removed on drop (also when the test fails).
pub struct TempDir(pub PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A command's stdout as text.
pub fn text(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).to_string()
}

/// One raw HTTP/1.1 request inside `ns`: (status, body).
pub fn http(ns: &Netns, addr: &str, method: &str, path: &str, headers: &[(&str, &str)], body: &str) -> (u16, String) {
    let mut request = format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n");
    for (k, v) in headers {
        request += &format!("{k}: {v}\r\n");
    }
    request += &format!("Content-Length: {}\r\n\r\n{body}", body.len());
    let addr = addr.to_string();
    let raw = ns
        .run(move || {
            let mut s = TcpStream::connect(&addr).unwrap();
            s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
            s.write_all(request.as_bytes()).unwrap();
            let mut raw = String::new();
            s.read_to_string(&mut raw).unwrap();
            raw
        })
        .unwrap();
    let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((&raw, ""));
    let status = head.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or_else(|| panic!("bad reply {raw:?}"));
    (status, body.to_string())
}

//! What the end-to-end tests of `ztplanectl` against a running `ztplane node` share.
#![allow(dead_code)] // each test binary uses its own part

use std::path::{Path, PathBuf};
use std::process::Output;

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

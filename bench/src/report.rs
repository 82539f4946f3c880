//! Where benchmark results go: `target/bench/NAME.json`.
use anyhow::{Context, Result};
use std::path::PathBuf;

/// Writes `records` as a JSON array to `<workspace>/target/bench/<name>.json` and returns the path.
pub fn write(name: &str, records: &[serde_json::Value]) -> Result<PathBuf> {
    let dir = workspace_target().join("bench");
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let path = dir.join(format!("{name}.json"));
    let text = serde_json::to_string_pretty(records)?;
    std::fs::write(&path, text + "\n").with_context(|| format!("writing {}", path.display()))?;
    Ok(path)
}

fn workspace_target() -> PathBuf {
    if let Ok(dir) = std::env::var("CARGO_TARGET_DIR") {
        return PathBuf::from(dir);
    }
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..").join("target")
}

//! Where benchmark results go: `target/bench/NAME.json`, and its chart `target/bench/NAME.svg`.
use crate::plot::{self, Figure};
use anyhow::{Context, Result};
use serde_json::Value;
use std::path::PathBuf;

/// Builds a benchmark's chart from its JSON records.
pub type FigureFn = fn(&[Value]) -> Result<Figure>;

/// Writes `records` as a JSON array to `<workspace>/target/bench/<name>.json` and returns the path.
pub fn write(name: &str, records: &[Value]) -> Result<PathBuf> {
    let path = bench_dir()?.join(format!("{name}.json"));
    let text = serde_json::to_string_pretty(records)?;
    std::fs::write(&path, text + "\n").with_context(|| format!("writing {}", path.display()))?;
    Ok(path)
}

/// Draws `records` (what [`write`] wrote) with `figure` into `<workspace>/target/bench/<name>.svg` and
/// returns the path. Call it after [`write`]: a failure here leaves the JSON in place and says so.
pub fn plot(name: &str, records: &[Value], figure: FigureFn) -> Result<PathBuf> {
    let dir = bench_dir()?;
    let path = dir.join(format!("{name}.svg"));
    figure(records).and_then(|f| plot::write(&f, &path)).with_context(|| {
        format!(
            "plotting {name} failed; the results are in {} (`ztplane-bench plot {name}` redraws from it)",
            dir.join(format!("{name}.json")).display()
        )
    })?;
    Ok(path)
}

/// `ztplane-bench plot NAME...`: redraws `target/bench/NAME.svg` from `target/bench/NAME.json`
/// without measuring again.
pub fn replot(names: &[String], figure_for: fn(&str) -> Option<FigureFn>) -> Result<()> {
    anyhow::ensure!(
        !names.is_empty(),
        "usage: ztplane-bench plot NAME... (redraws target/bench/NAME.svg from NAME.json)"
    );
    for name in names {
        let figure = figure_for(name).with_context(|| {
            format!(
                "no chart for benchmark {name:?} (known: crypto, bond, io, handoff, peers, overlay, bond-live, gateway)"
            )
        })?;
        let json = bench_dir()?.join(format!("{name}.json"));
        let text = std::fs::read_to_string(&json).with_context(|| format!("reading {}", json.display()))?;
        let records: Vec<Value> =
            serde_json::from_str(&text).with_context(|| format!("{} is not a JSON array", json.display()))?;
        let path = plot(name, &records, figure)?;
        println!("plot: {}", path.display());
    }
    Ok(())
}

fn bench_dir() -> Result<PathBuf> {
    let dir = workspace_target().join("bench");
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    Ok(dir)
}

fn workspace_target() -> PathBuf {
    if let Ok(dir) = std::env::var("CARGO_TARGET_DIR") {
        return PathBuf::from(dir);
    }
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..").join("target")
}

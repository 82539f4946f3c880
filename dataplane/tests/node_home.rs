//! `ztplane node` with bad home directories and bad options: one clear `ztplane: ...` line, a
//! non-zero exit, nothing attached, and never a silently new identity. Needs root.
use std::path::{Path, PathBuf};
use std::process::Output;
use ztplane_testkit::Topology;

fn ztplane() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_ztplane"))
}

struct Dir(PathBuf);

impl Dir {
    fn new(label: &str) -> Dir {
        let dir = std::env::temp_dir().join(format!("ztplane-badhome-{}-{label}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Dir(dir)
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn conformance(name: &str) -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/conformance/zt-1.14.1/nodes").join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Runs the node in `ns` with `home`; it must fail before doing anything.
fn fails(ns: &ztplane_testkit::Netns, home: &Path, extra: &[&str]) -> String {
    let out: Output = ns
        .command(ztplane().to_str().unwrap())
        .arg("node")
        .arg("--home")
        .arg(home)
        .args(["--iface", "v0", "--instance", &format!("badhome-{}", std::process::id()), "--duration", "5"])
        .args(extra)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(!out.status.success(), "ztplane node succeeded with a bad home: {stderr}");
    let lines: Vec<&str> = stderr.lines().filter(|l| l.starts_with("ztplane: ")).collect();
    assert_eq!(lines.len(), 1, "expected one `ztplane:` line, got {stderr:?}");
    assert!(!ns.xdp_attached("v0").unwrap(), "XDP attached by a node that refused to start");
    lines[0].to_string()
}

#[test]
fn bad_home_directories_are_refused_clearly() {
    let mut topo = Topology::new().unwrap();
    let ns = topo.netns("home").unwrap();
    let peer = topo.netns("homepeer").unwrap();
    topo.veth(&ns, "v0", &peer, "v1", 1).unwrap();

    // A corrupt identity: refused, and the file is left as it was (no new identity).
    let home = Dir::new("corrupt");
    let mut secret = conformance("a.identity.secret");
    secret.truncate(120);
    std::fs::write(home.0.join("identity.secret"), &secret).unwrap();
    let line = fails(&ns, &home.0, &[]);
    assert!(line.contains("identity.secret"), "{line}");
    assert_eq!(std::fs::read(home.0.join("identity.secret")).unwrap(), secret);
    assert!(!home.0.join("identity.public").exists());

    // identity.public of another node beside a's secret.
    let home = Dir::new("mismatch");
    std::fs::write(home.0.join("identity.secret"), conformance("a.identity.secret")).unwrap();
    std::fs::write(home.0.join("identity.public"), conformance("b.identity.public")).unwrap();
    let line = fails(&ns, &home.0, &[]);
    assert!(line.contains("identity.public"), "{line}");

    // An unreadable moon.
    let home = Dir::new("moon");
    std::fs::write(home.0.join("identity.secret"), conformance("a.identity.secret")).unwrap();
    std::fs::create_dir_all(home.0.join("moons.d")).unwrap();
    std::fs::write(home.0.join("moons.d/0000002c80d43748.moon"), b"not a moon").unwrap();
    let line = fails(&ns, &home.0, &[]);
    assert!(line.contains("0000002c80d43748.moon"), "{line}");

    // A malformed network file.
    let home = Dir::new("network");
    std::fs::write(home.0.join("identity.secret"), conformance("a.identity.secret")).unwrap();
    std::fs::create_dir_all(home.0.join("networks.d")).unwrap();
    std::fs::write(home.0.join("networks.d/2c80d4374849700f.conf"), [0u8, 1, 2, 3, 0xff, 0xfe]).unwrap();
    let line = fails(&ns, &home.0, &[]);
    assert!(line.contains("2c80d4374849700f.conf"), "{line}");

    // A damaged controller record (controller.d, zerotier-one's FileDB layout).
    let home = Dir::new("controller");
    std::fs::write(home.0.join("identity.secret"), conformance("a.identity.secret")).unwrap();
    std::fs::create_dir_all(home.0.join("controller.d/network")).unwrap();
    std::fs::write(home.0.join("controller.d/network/cfe2482597000001.json"), b"{\"id\": \"cfe24825").unwrap();
    let line = fails(&ns, &home.0, &[]);
    assert!(line.contains("controller.d/network/cfe2482597000001.json"), "{line}");

    // A bad local.conf and bad options.
    let home = Dir::new("localconf");
    std::fs::write(home.0.join("identity.secret"), conformance("a.identity.secret")).unwrap();
    std::fs::write(home.0.join("local.conf"), b"{\"settings\": {\"primaryPort\": 0}}").unwrap();
    let line = fails(&ns, &home.0, &[]);
    assert!(line.contains("local.conf"), "{line}");
    let line = fails(&ns, &home.0, &["--join", "12"]);
    assert!(line.contains("16 hex digits"), "{line}");
    std::fs::remove_file(home.0.join("local.conf")).unwrap();
    let line = fails(&ns, &home.0, &["--iface", "nosuch0"]);
    assert!(line.contains("nosuch0"), "{line}");
}

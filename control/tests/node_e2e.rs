//! `ztplanectl` against a running `ztplane node` (root, a namespace of its own): the zerotier-cli
//! commands, their JSON forms, and the refusal of non-root users.
//!
//! The node binary is the workspace's `ztplane`, next to `ztplanectl` in the same target
//! directory (`cargo xtask test` builds both).
mod common;

use common::{TempDir, text, ztplane, ztplanectl};
use std::path::Path;
use std::process::Output;
use std::time::Duration;
use ztplane_testkit::Topology;
use ztplane_testkit::zerotier::wait_until;
use ztplane_testkit::ztplane::ZtplaneNode;

const NETWORK: &str = "8056c2e21c000001";
const OTHER: &str = "2c80d4374849700f";

fn ctl(home: &Path, args: &[&str]) -> Output {
    std::process::Command::new(ztplanectl()).arg("-D").arg(home).args(args).output().unwrap()
}

#[test]
fn zerotier_cli_commands_against_a_running_node() {
    let mut topo = Topology::new().unwrap();
    let ns = topo.netns("ctl").unwrap();
    let peer = topo.netns("ctlpeer").unwrap();
    topo.veth(&ns, "v0", &peer, "v1", 1).unwrap();
    ns.addr("v0", "198.18.7.1/24").unwrap();
    let home = TempDir(std::env::temp_dir().join(format!("ztplanectl-e2e-{}", std::process::id())));
    let _ = std::fs::remove_dir_all(&home.0);
    std::fs::create_dir_all(&home.0).unwrap();
    let node = ZtplaneNode::start(&ztplane(), &ns, &home.0, &["v0"], &["--join", NETWORK]).unwrap();
    let address = node.address().unwrap();

    let info = ctl(&home.0, &["info"]);
    assert!(info.status.success(), "{info:?}");
    assert_eq!(text(&info), format!("200 info {address} 1.14.1 OFFLINE\n"));
    let info_json: serde_json::Value = serde_json::from_slice(&ctl(&home.0, &["-j", "info"]).stdout).unwrap();
    assert_eq!(info_json["address"], address.as_str());
    assert_eq!(info_json["online"], false);

    let list = text(&ctl(&home.0, &["listnetworks"]));
    let lines: Vec<&str> = list.lines().collect();
    assert_eq!(lines[0], "200 listnetworks <nwid> <name> <mac> <status> <type> <dev> <ZT assigned ips>");
    assert!(lines[1].starts_with(&format!("200 listnetworks {NETWORK}  ")), "{list}");
    assert!(lines[1].contains(" REQUESTING_CONFIGURATION PRIVATE zt"), "{list}");

    let joined = ctl(&home.0, &["join", OTHER]);
    assert_eq!(text(&joined), "200 join OK\n");
    let both: serde_json::Value = serde_json::from_slice(&ctl(&home.0, &["listnetworks", "-j"]).stdout).unwrap();
    let ids: Vec<&str> = both.as_array().unwrap().iter().filter_map(|n| n["nwid"].as_str()).collect();
    assert!(ids.contains(&NETWORK) && ids.contains(&OTHER), "{both}");
    // The joined network has its tap and is remembered for the next start.
    let dev = both.as_array().unwrap().iter().find(|n| n["nwid"] == OTHER).unwrap()["portDeviceName"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(ns.ip(&["link", "show", &dev]).is_ok(), "no tap {dev}");
    assert!(home.0.join(format!("networks.d/{OTHER}.conf")).exists());
    assert_eq!(text(&ctl(&home.0, &["leave", OTHER])), "200 leave OK\n");
    wait_until("tap removed after leave", Duration::from_secs(5), || {
        if ns.ip(&["link", "show", &dev]).is_err() { Ok(()) } else { Err("still there".into()) }
    })
    .unwrap();
    assert!(!home.0.join(format!("networks.d/{OTHER}.conf")).exists());

    let peers = text(&ctl(&home.0, &["listpeers"]));
    let lines: Vec<&str> = peers.lines().collect();
    assert_eq!(lines[0], "200 listpeers <ztaddr> <path> <latency> <version> <role>");
    // The built-in planet's four roots, unreachable from this namespace.
    assert_eq!(lines.iter().filter(|l| l.ends_with(" PLANET")).count(), 4, "{peers}");

    // Only root may use the control socket.
    let out = std::process::Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(ztplanectl())
        .arg("-D")
        .arg(&home.0)
        .arg("info")
        .output()
        .unwrap();
    assert!(!out.status.success(), "a non-root user got an answer: {}", text(&out));
    drop(node);
}

//! ztplane as the network controller for a real zerotier-one 1.14.1 member (`../shared/ref`), in
//! namespaces on one switch (198.18.0.0/24 underlay, 198.19.0.0/24 overlay): a zerotier-one moon
//! (so the member finds the controller without the Internet), a ztplane node managed through
//! `ztplanectl serve` with zerotier-one's controller API, a zerotier-one member and a ztplane
//! member. The zerotier-one member is denied until authorized through the API, then gets a pool
//! address and pings the controller's own address on the network; the ztplane member reaches it
//! too; the records are in `controller.d` as zerotier-one's FileDB keeps them.
//!
//! Needs root and the reference binary; without root it prints why and passes.
mod common;

use common::{TempDir, http, ztplane, ztplanectl};
use serde_json::{Value, json};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::Duration;
use ztplane_testkit::lan::Lan;
use ztplane_testkit::zerotier::{Moon, NodeConfig, ZeroTierBinary, ZeroTierNode, wait_until};
use ztplane_testkit::ztplane::ZtplaneNode;
use ztplane_testkit::{Netns, Topology, kill_with_parent};

/// The controller's own address on the network (a fixed assignment); members get pool addresses.
const CONTROLLER_IP: &str = "198.19.0.1";
const API: &str = "127.0.0.1:9993";

/// `ztplanectl -D HOME serve --metrics off` in a namespace; killed on drop.
struct Serve(Child);

impl Serve {
    fn start(ns: &Netns, home: &Path) -> Serve {
        let mut cmd = ns.command(ztplanectl().to_str().unwrap());
        cmd.arg("-D").arg(home).args(["serve", "--metrics", "off"]).stdout(Stdio::null()).stderr(Stdio::null());
        kill_with_parent(&mut cmd);
        let serve = Serve(cmd.spawn().unwrap());
        let ns2 = ns.clone();
        wait_until("ztplanectl serve listening", Duration::from_secs(20), || {
            let up = ns2.run(|| TcpStream::connect(API).is_ok()).map_err(|e| e.to_string())?;
            if up { Ok(()) } else { Err("not yet".into()) }
        })
        .unwrap();
        serve
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// One HTTP request to the local API in `ns` with the home's token: (status, body as JSON or null).
fn api(ns: &Netns, home: &Path, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
    let token = std::fs::read_to_string(home.join("authtoken.secret")).unwrap();
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let (status, text) = http(ns, API, method, path, &[("X-ZT1-Auth", token.trim())], &body);
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

fn ping(ns: &Netns, target: &str) -> bool {
    ns.command("ping").args(["-c", "1", "-W", "1", target]).output().map(|o| o.status.success()).unwrap_or(false)
}

#[test]
fn a_zerotier_one_member_joins_a_ztplane_controlled_network() {
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipped: needs root (network namespaces, taps)");
        return;
    }
    let binary = ZeroTierBinary::locate().expect("zerotier-one from ../shared/ref");
    let mut topo = Topology::new().unwrap();
    let lan = Lan::new(&mut topo, &["moon", "ctl", "zt", "zp"]).unwrap();
    let tmp = TempDir(std::env::temp_dir().join(format!("ztplane-controller-e2e-{}", std::process::id())));
    let _ = std::fs::remove_dir_all(&tmp.0);
    let (home, zp_home) = (tmp.0.join("home"), tmp.0.join("zp"));
    let moon = Moon::prepare(&binary, lan.host("moon").unwrap().ip).unwrap();
    for dir in [&home, &zp_home] {
        std::fs::create_dir_all(dir.join("moons.d")).unwrap();
        std::fs::write(dir.join("moons.d").join(&moon.file_name), &moon.bytes).unwrap();
    }
    let moon_node = ZeroTierNode::start(&binary, &lan.host("moon").unwrap().netns, NodeConfig::moon(&moon)).unwrap();

    let ns = lan.host("ctl").unwrap().netns.clone();
    let node = ZtplaneNode::start(&ztplane(), &ns, &home, &["eth0"], &[]).unwrap();
    let controller = node.address().unwrap();
    let _serve = Serve::start(&ns, &home);
    let api = |method: &str, path: &str, body: Option<Value>| api(&ns, &home, method, path, body);

    let (code, status) = api("GET", "/controller", None);
    assert_eq!((code, &status["controller"], &status["apiVersion"]), (200, &json!(true), &json!(4)), "{status}");
    // A network under our address, created as one is on zerotier-one's controller.
    let (code, network) = api(
        "POST",
        &format!("/controller/network/{controller}______"),
        Some(json!({"name": "ctl", "private": true, "v4AssignMode": {"zt": true},
            "ipAssignmentPools": [{"ipRangeStart": "198.19.0.10", "ipRangeEnd": "198.19.0.250"}],
            "routes": [{"target": "198.19.0.0/24"}]})),
    );
    assert_eq!(code, 200, "{network}");
    let nwid_hex = network["id"].as_str().unwrap().to_string();
    assert!(nwid_hex.starts_with(&controller), "{network}");
    let nwid = u64::from_str_radix(&nwid_hex, 16).unwrap();
    assert_eq!(api("GET", "/controller/network", None), (200, json!([nwid_hex])));
    let member_path = |address: &str| format!("/controller/network/{nwid_hex}/member/{address}");

    // The controller is a member of its own network, with a fixed address.
    let (code, _) =
        api("POST", &member_path(&controller), Some(json!({"authorized": true, "ipAssignments": [CONTROLLER_IP]})));
    assert_eq!(code, 200);
    assert_eq!(api("POST", &format!("/network/{nwid_hex}"), Some(json!({}))).0, 200);

    // A zerotier-one member asks and is refused until it is authorized.
    let member = ZeroTierNode::start(&binary, &lan.host("zt").unwrap().netns, NodeConfig::member(&moon)).unwrap();
    member.join(nwid).unwrap();
    wait_until("the member is refused", Duration::from_secs(30), || {
        let status = member.network(nwid).map_err(|e| e.to_string())?["status"].clone();
        if status == "ACCESS_DENIED" { Ok(()) } else { Err(status.to_string()) }
    })
    .unwrap();
    let (code, record) = api("GET", &member_path(member.address()), None);
    assert_eq!((code, &record["authorized"]), (200, &json!(false)), "{record}");
    assert!(record["identity"].as_str().unwrap().starts_with(member.address()), "{record}");
    let (code, record) = api("POST", &member_path(member.address()), Some(json!({"authorized": true})));
    assert_eq!((code, &record["authorized"]), (200, &json!(true)), "{record}");
    // And a ztplane member, authorized before it asks.
    let zp_ns = lan.host("zp").unwrap().netns.clone();
    let zp = ZtplaneNode::start(&ztplane(), &zp_ns, &zp_home, &["eth0"], &["--join", &nwid_hex]).unwrap();
    let zp_address = zp.address().unwrap();
    assert_eq!(api("POST", &member_path(&zp_address), Some(json!({"authorized": true}))).0, 200);

    let ip = member.wait_for_ip(nwid, Duration::from_secs(30)).unwrap();
    let (_, record) = api("GET", &member_path(member.address()), None);
    assert_eq!(record["ipAssignments"], json!([ip]), "the pool address is recorded");
    let octet: u8 = ip.rsplit('.').next().unwrap().parse().unwrap();
    assert!(ip.starts_with("198.19.0.") && (10..250).contains(&octet), "{ip}");
    assert_eq!(node.wait_for_ip(nwid, Duration::from_secs(20)).unwrap(), CONTROLLER_IP);

    // Over the overlay both ways: the member pings the controller's own address and back.
    let zt_ns = lan.host("zt").unwrap().netns.clone();
    wait_until("ping from the member to the controller", Duration::from_secs(20), || {
        if ping(&zt_ns, CONTROLLER_IP) { Ok(()) } else { Err("no reply".into()) }
    })
    .unwrap();
    assert!(ping(&ns, &ip), "no reply from the member");
    let zp_ip = zp.wait_for_ip(nwid, Duration::from_secs(30)).unwrap();
    assert_ne!(zp_ip, ip);
    wait_until("ping from the ztplane member to the zerotier-one member", Duration::from_secs(20), || {
        if ping(&zp_ns, &ip) { Ok(()) } else { Err("no reply".into()) }
    })
    .unwrap();
    assert!(ping(&zp_ns, CONTROLLER_IP), "no reply from the controller to the ztplane member");

    // The state is where zerotier-one keeps it.
    let db = home.join("controller.d/network");
    let stored: Value = serde_json::from_slice(&std::fs::read(db.join(format!("{nwid_hex}.json"))).unwrap()).unwrap();
    assert_eq!(stored["name"], "ctl");
    let file = db.join(&nwid_hex).join("member").join(format!("{}.json", member.address()));
    let stored: Value = serde_json::from_slice(&std::fs::read(file).unwrap()).unwrap();
    assert_eq!((&stored["authorized"], &stored["ipAssignments"]), (&json!(true), &json!([ip])));
    drop(member);
    drop(zp);
    drop(node);
    drop(moon_node);
}

/// A site without zerotier-one: a ztplane node is the root (its own moon, from `ztplanectl moon
/// create`), another ztplane node the controller; a zerotier-one member that knows only the moon
/// finds the controller through it, joins the ztplane-controlled network and pings a ztplane
/// member.
#[test]
fn a_zerotier_one_member_joins_through_a_ztplane_moon() {
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipped: needs root (network namespaces, taps)");
        return;
    }
    let binary = ZeroTierBinary::locate().expect("zerotier-one from ../shared/ref");
    let mut topo = Topology::new().unwrap();
    let lan = Lan::new(&mut topo, &["root", "ctl", "zt", "zp"]).unwrap();
    let tmp = TempDir(std::env::temp_dir().join(format!("ztplane-moon-e2e-{}", std::process::id())));
    let _ = std::fs::remove_dir_all(&tmp.0);
    let (root_home, home, zp_home) = (tmp.0.join("root"), tmp.0.join("ctl"), tmp.0.join("zp"));
    let handout = tmp.0.join("site.moon");
    std::fs::create_dir_all(&tmp.0).unwrap();

    // The root signs its moon; every other node gets the file.
    let endpoint = format!("{}/9993", lan.host("root").unwrap().ip);
    let out = std::process::Command::new(ztplanectl())
        .args(["moon", "create", "--home"])
        .arg(&root_home)
        .args(["--endpoint", &endpoint, "--out"])
        .arg(&handout)
        .output()
        .unwrap();
    assert!(out.status.success(), "moon create: {}", String::from_utf8_lossy(&out.stderr));
    let written = std::path::PathBuf::from(String::from_utf8_lossy(&out.stdout).trim().to_string());
    let file_name = written.file_name().unwrap().to_string_lossy().to_string();
    let bytes = std::fs::read(&handout).unwrap();
    for dir in [&home, &zp_home] {
        std::fs::create_dir_all(dir.join("moons.d")).unwrap();
        std::fs::write(dir.join("moons.d").join(&file_name), &bytes).unwrap();
    }
    let root_public = std::fs::read_to_string(root_home.join("identity.public")).unwrap().trim().to_string();
    let moon = Moon {
        identity: ztplane_testkit::zerotier::Identity { secret: String::new(), public: root_public },
        file_name,
        bytes,
        endpoints: vec![endpoint],
    };
    let root = ZtplaneNode::start(&ztplane(), &lan.host("root").unwrap().netns, &root_home, &["eth0"], &[]).unwrap();

    let ns = lan.host("ctl").unwrap().netns.clone();
    let node = ZtplaneNode::start(&ztplane(), &ns, &home, &["eth0"], &[]).unwrap();
    let controller = node.address().unwrap();
    let _serve = Serve::start(&ns, &home);
    let api = |method: &str, path: &str, body: Option<Value>| api(&ns, &home, method, path, body);
    let (code, network) = api(
        "POST",
        &format!("/controller/network/{controller}______"),
        Some(json!({"name": "site", "private": true, "v4AssignMode": {"zt": true},
            "ipAssignmentPools": [{"ipRangeStart": "198.19.0.10", "ipRangeEnd": "198.19.0.250"}],
            "routes": [{"target": "198.19.0.0/24"}]})),
    );
    assert_eq!(code, 200, "{network}");
    let nwid_hex = network["id"].as_str().unwrap().to_string();
    let nwid = u64::from_str_radix(&nwid_hex, 16).unwrap();
    let member_path = |address: &str| format!("/controller/network/{nwid_hex}/member/{address}");

    let member = ZeroTierNode::start(&binary, &lan.host("zt").unwrap().netns, NodeConfig::member(&moon)).unwrap();
    assert_eq!(api("POST", &member_path(member.address()), Some(json!({"authorized": true}))).0, 200);
    member.join(nwid).unwrap();
    let zp_ns = lan.host("zp").unwrap().netns.clone();
    let zp = ZtplaneNode::start(&ztplane(), &zp_ns, &zp_home, &["eth0"], &["--join", &nwid_hex]).unwrap();
    assert_eq!(api("POST", &member_path(&zp.address().unwrap()), Some(json!({"authorized": true}))).0, 200);

    // The member learned of the controller from the ztplane root only (its one upstream).
    let ip = member.wait_for_ip(nwid, Duration::from_secs(45)).unwrap();
    let peers = member.peers().unwrap();
    let root_role =
        peers.as_array().unwrap().iter().find(|p| p["address"] == moon.address()).map(|p| p["role"].clone());
    assert_eq!(root_role, Some(json!("MOON")), "the member does not use the ztplane root: {peers}");
    let zp_ip = zp.wait_for_ip(nwid, Duration::from_secs(30)).unwrap();
    let zt_ns = lan.host("zt").unwrap().netns.clone();
    wait_until("ping from the zerotier-one member to the ztplane member", Duration::from_secs(20), || {
        if ping(&zt_ns, &zp_ip) { Ok(()) } else { Err("no reply".into()) }
    })
    .unwrap();
    assert!(ping(&zp_ns, &ip), "no reply from the zerotier-one member");
    drop(member);
    drop(zp);
    drop(node);
    drop(root);
}

//! `ztplanectl serve` in front of a running `ztplane node`, driven by the REAL zerotier-cli 1.14.1
//! (`../shared/ref/zerotier-one` through a link named `zerotier-cli`), in namespaces: a zerotier-one
//! moon + controller and the ztplane node on one switch (198.18.0.0/24 underlay, 198.19.0.0/24
//! overlay). Also: the token is enforced, `/metrics` scrapes, and stopping the control process
//! leaves the node running.
//!
//! Needs root and the reference binary; without root it prints why and passes.
mod common;

use common::{TempDir, http, text, ztplane, ztplanectl};
use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Child, Output, Stdio};
use std::time::Duration;
use ztplane_testkit::lan::Lan;
use ztplane_testkit::zerotier::{Moon, NodeConfig, ZeroTierBinary, ZeroTierNode, wait_until};
use ztplane_testkit::ztplane::ZtplaneNode;
use ztplane_testkit::{Netns, Topology, kill_with_parent};

const MEMBER_IP: &str = "198.19.0.21";
/// Never created on the controller: a join with a bad token must not reach the node.
const OTHER: &str = "2c80d4374849700f";
/// The metrics listener's default address.
const METRICS: &str = "127.0.0.1:9994";

/// `ztplanectl -D HOME serve` in a namespace; killed on drop if the test did not stop it.
struct Serve(Option<Child>);

impl Serve {
    fn start(ns: &Netns, home: &Path) -> Serve {
        let mut cmd = ns.command(ztplanectl().to_str().unwrap());
        cmd.arg("-D").arg(home).arg("serve").stdout(Stdio::piped()).stderr(Stdio::piped());
        kill_with_parent(&mut cmd);
        let serve = Serve(Some(cmd.spawn().unwrap()));
        let ns2 = ns.clone();
        wait_until("ztplanectl serve listening", Duration::from_secs(20), || {
            let up = ns2.run(|| TcpStream::connect("127.0.0.1:9993").is_ok()).map_err(|e| e.to_string())?;
            if up { Ok(()) } else { Err("not yet".into()) }
        })
        .unwrap();
        serve
    }

    /// SIGTERM; returns the exit status and stderr.
    fn stop(mut self) -> (std::process::ExitStatus, String) {
        let (status, _, stderr) = ztplane_testkit::stop_child(self.0.take().unwrap(), libc::SIGTERM).unwrap();
        (status, stderr)
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The real zerotier-cli in `ns`: `-DHOME` (it takes its switches' values joined) and `args`.
fn cli(ns: &Netns, link: &Path, home: &Path, args: &[&str]) -> Output {
    ns.command(link.to_str().unwrap()).arg(format!("-D{}", home.display())).args(args).output().unwrap()
}

#[test]
fn zerotier_cli_against_ztplanectl_serve() {
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipped: needs root (network namespaces, taps)");
        return;
    }
    let binary = ZeroTierBinary::locate().expect("zerotier-one from ../shared/ref");
    let mut topo = Topology::new().unwrap();
    let lan = Lan::new(&mut topo, &["moon", "zp"]).unwrap();
    let tmp = TempDir(std::env::temp_dir().join(format!("ztplane-serve-e2e-{}", std::process::id())));
    let _ = std::fs::remove_dir_all(&tmp.0);
    let home = tmp.0.join("home");
    std::fs::create_dir_all(home.join("moons.d")).unwrap();
    // The real CLI, chosen by the name it is invoked under.
    let link = tmp.0.join("zerotier-cli");
    std::os::unix::fs::symlink(&binary, &link).unwrap();

    let moon = Moon::prepare(&binary, lan.host("moon").unwrap().ip).unwrap();
    std::fs::write(home.join("moons.d").join(&moon.file_name), &moon.bytes).unwrap();
    let moon_node = ZeroTierNode::start(&binary, &lan.host("moon").unwrap().netns, NodeConfig::moon(&moon)).unwrap();
    let nwid = moon_node.create_private_network("serve").unwrap();
    let nwid_hex = format!("{nwid:016x}");

    let ns = lan.host("zp").unwrap().netns.clone();
    let node = ZtplaneNode::start(&ztplane(), &ns, &home, &["eth0"], &[]).unwrap();
    let address = node.address().unwrap();
    moon_node.authorize(nwid, &address, Some(MEMBER_IP)).unwrap();

    let serve = Serve::start(&ns, &home);
    // As zerotier-one: the port file and a fresh 24-character token, readable by root only.
    assert_eq!(std::fs::read_to_string(home.join("zerotier-one.port")).unwrap(), "9993");
    let token = std::fs::read_to_string(home.join("authtoken.secret")).unwrap();
    assert_eq!(token.len(), 24, "{token:?}");
    assert!(token.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()), "{token:?}");
    let mode = std::fs::metadata(home.join("authtoken.secret")).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);

    // info: what the node reports, as zerotier-cli prints it, once the moon answers.
    let info = wait_until("zerotier-cli info ONLINE", Duration::from_secs(60), || {
        let out = text(&cli(&ns, &link, &home, &["info"]));
        if out.ends_with(" ONLINE\n") { Ok(out) } else { Err(out) }
    })
    .unwrap();
    let status = node.request("GET", "/status").unwrap();
    assert_eq!(info, format!("200 info {address} {} ONLINE\n", status["version"].as_str().unwrap()));
    let info_json: serde_json::Value = serde_json::from_slice(&cli(&ns, &link, &home, &["-j", "info"]).stdout).unwrap();
    assert_eq!(info_json["address"], address.as_str());
    assert_eq!(info_json["publicIdentity"], status["publicIdentity"]);
    assert_eq!(info_json["online"], true);
    // The config object zerotier-one adds: ports, home, the underlay address the node listens on.
    let settings = &info_json["config"]["settings"];
    assert_eq!(settings["primaryPort"], 9993, "{info_json}");
    let listening = format!("{}/9993", lan.host("zp").unwrap().ip);
    assert!(settings["listeningOn"].as_array().unwrap().iter().any(|a| a == listening.as_str()), "{settings}");
    assert_eq!(settings["homeDir"], home.display().to_string().as_str(), "{settings}");

    // join: the node joins, gets its address from the controller, zerotier-cli lists it.
    let joined = cli(&ns, &link, &home, &["join", &nwid_hex]);
    assert_eq!(text(&joined), "200 join OK\n");
    assert!(joined.status.success());
    assert_eq!(node.wait_for_ip(nwid, Duration::from_secs(60)).unwrap(), MEMBER_IP);
    let list = text(&cli(&ns, &link, &home, &["listnetworks"]));
    let lines: Vec<&str> = list.lines().collect();
    assert_eq!(lines[0], "200 listnetworks <nwid> <name> <mac> <status> <type> <dev> <ZT assigned ips>");
    assert!(lines[1].starts_with(&format!("200 listnetworks {nwid_hex} serve ")), "{list}");
    assert!(lines[1].contains(" OK PRIVATE zt") && lines[1].ends_with(&format!(" {MEMBER_IP}/24")), "{list}");

    // listpeers: the moon, with a path.
    let peers = text(&cli(&ns, &link, &home, &["listpeers"]));
    let moon_line = peers.lines().find(|l| l.contains(moon_node.address())).unwrap_or_else(|| panic!("{peers}"));
    // zerotier-one also listens on a random secondary port, which may be the preferred path.
    let moon_path = format!("200 listpeers {} {}/", moon_node.address(), lan.host("moon").unwrap().ip);
    assert!(moon_line.starts_with(&moon_path), "{moon_line}");
    assert!(moon_line.ends_with(" MOON"), "{moon_line}");

    // listmoons: the moon file in moons.d, as zerotier-one lists it.
    let moons = cli(&ns, &link, &home, &["listmoons"]);
    let moons: serde_json::Value = serde_json::from_slice(&moons.stdout)
        .unwrap_or_else(|e| panic!("listmoons: {e}: {}", String::from_utf8_lossy(&moons.stdout)));
    assert_eq!(moons[0]["id"], format!("000000{}", moon.address()), "{moons}");
    assert_eq!(moons[0]["roots"][0]["stableEndpoints"], serde_json::json!(moon.endpoints), "{moons}");
    assert!(moons[0]["roots"][0]["identity"].as_str().unwrap_or("").starts_with(moon.address()), "{moons}");

    // bond: no bonding on ztplane's data path yet, answered as zerotier-one without a bonding policy.
    let bonds = cli(&ns, &link, &home, &["bond", "list"]);
    assert_eq!(
        text(&bonds),
        "    <peer>                        <bondtype>     <links>\n      NONE\t\t\t\tNONE\t    NONE       NONE\n"
    );
    let show = cli(&ns, &link, &home, &["bond", moon_node.address(), "show"]);
    assert_eq!((text(&show).as_str(), show.status.code()), ("400 bond {}\n", Some(1)));

    // A wrong or missing token: 401, and nothing changes.
    let api = "127.0.0.1:9993";
    let bad = [("X-ZT1-Auth", "wrongwrongwrongwrongwron")];
    assert_eq!(http(&ns, api, "GET", "/status", &[], ""), (401, "{}".to_string()));
    assert_eq!(http(&ns, api, "POST", &format!("/network/{OTHER}"), &bad, "{}"), (401, "{}".to_string()));
    assert_eq!(http(&ns, api, "DELETE", &format!("/network/{nwid_hex}"), &bad, "").0, 401);
    let nets = node.request("GET", "/network").unwrap();
    let ids: Vec<&str> = nets.as_array().unwrap().iter().filter_map(|n| n["nwid"].as_str()).collect();
    assert_eq!(ids, [nwid_hex.as_str()], "a refused request changed the node's networks");
    // The right token in its other accepted forms.
    assert_eq!(http(&ns, api, "GET", &format!("/status?auth={token}"), &[], "").0, 200);
    let bearer = format!("Bearer {token}");
    assert_eq!(http(&ns, api, "GET", "/peer", &[("Authorization", &bearer)], "").0, 200);
    assert_eq!(http(&ns, api, "GET", "/nothing", &[("X-ZT1-Auth", &token)], ""), (404, String::new()));

    // Metrics: zerotier-one's names where ztplane has the figure, and ztplane's counters.
    let (code, metrics) = http(&ns, METRICS, "GET", "/metrics", &[], "");
    assert_eq!(code, 200);
    let has = |line: &str| metrics.lines().any(|l| l == line);
    assert!(has("zt_num_networks 1"), "{metrics}");
    let value = |prefix: &str| -> u64 {
        let line = metrics.lines().find(|l| l.starts_with(prefix)).unwrap_or_else(|| panic!("{prefix}: {metrics}"));
        line.rsplit(' ').next().unwrap().parse().unwrap()
    };
    // The moon is reached on its primary and maybe its secondary port.
    let moon_alive = format!("zt_peer_path_count{{node_id=\"{}\",status=\"alive\"}} ", moon_node.address());
    assert!(value(&moon_alive) >= 1, "{metrics}");
    assert!(metrics.contains(&format!("zt_network_multicast_groups_subscribed{{network_id=\"{nwid_hex}\"}} ")));
    assert!(has(&format!("ztplane_network_assigned_addresses{{network_id=\"{nwid_hex}\"}} 1")), "{metrics}");
    let rx: u64 = metrics
        .lines()
        .filter(|l| l.starts_with("ztplane_worker_rx_total{"))
        .map(|l| l.rsplit(' ').next().unwrap().parse::<u64>().unwrap())
        .sum();
    assert!(rx > 0, "the node received packets from the moon: {metrics}");
    // On the API port, /metrics wants a token, as zerotier-one's does (metricstoken.secret or authtoken.secret).
    assert_eq!(http(&ns, api, "GET", "/metrics", &[], "").0, 401);
    let metrics_token = std::fs::read_to_string(home.join("metricstoken.secret")).unwrap();
    assert_eq!(http(&ns, api, "GET", "/metrics", &[("X-ZT1-Auth", &metrics_token)], "").0, 200);

    // leave: gone from the node.
    assert_eq!(text(&cli(&ns, &link, &home, &["leave", &nwid_hex])), "200 leave OK\n");
    assert_eq!(node.request("GET", "/network").unwrap(), serde_json::json!([]));
    assert_eq!(text(&cli(&ns, &link, &home, &["listnetworks"])).lines().count(), 1);

    // Stopping the control process: clean exit, the node does not notice.
    let (exit, stderr) = serve.stop();
    assert!(exit.success(), "{exit}: {stderr}");
    assert!(stderr.contains("stopped"), "{stderr}");
    assert_eq!(node.request("GET", "/status").unwrap()["address"], address.as_str());
    let down = cli(&ns, &link, &home, &["info"]);
    assert!(text(&down).starts_with("Error connecting to the ZeroTier service"), "{}", text(&down));
    // Restarted: same token (never rewritten), and a node that is gone is a 503, not a hang.
    let serve = Serve::start(&ns, &home);
    assert_eq!(std::fs::read_to_string(home.join("authtoken.secret")).unwrap(), token);
    drop(node);
    let (code, body) = http(&ns, api, "GET", "/status", &[("X-ZT1-Auth", &token)], "");
    assert_eq!(code, 503, "{body}");
    let out = cli(&ns, &link, &home, &["info"]);
    assert!(text(&out).starts_with("503 info {\"error\":"), "{}", text(&out));
    drop(serve);
    drop(moon_node);
}

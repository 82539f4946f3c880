//! `ztplanectl` against two bonded ztplane nodes on two links, in namespaces (root only; the bed is
//! `ztplane_testkit::bond_bed`): `bond list` / `bond show` read the node's pinned link quality map
//! and agree with the node, and `policy load` swaps balance-xor for active-backup and back while a
//! TCP transfer runs — the connection survives and every byte arrives (zerotier-bonding.md §2;
//! ztplane applies a reload at once, zerotier-one only when no bond exists yet).
mod common;

use anyhow::{Context, Result, ensure};
use common::{TempDir, ztplanectl};
use serde_json::Value;
use std::path::Path;
use std::process::Output;
use std::time::Duration;
use ztplane_testkit::bond_bed::{BondBed, bond_show, ping_settled, standard_policy, ztplane_on_both_links};
use ztplane_testkit::traffic::tcp_transfer;
use ztplane_testkit::zerotier::{ZeroTierBinary, wait_until};
use ztplane_testkit::ztplane::ZtplaneNode;

const A_IP: &str = "198.19.0.21";
const B_IP: &str = "198.19.0.22";

fn ctl(args: &[&str]) -> Output {
    std::process::Command::new(ztplanectl()).args(args).output().expect("ztplanectl runs")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// `ztplanectl policy load` of `file` into `node`.
fn load(node: &ZtplaneNode, file: &Path) -> Output {
    let home = node.home.to_str().expect("UTF-8 home");
    ctl(&["policy", "load", "--config", file.to_str().expect("UTF-8 path"), "--home", home])
}

fn policy_of(node: &ZtplaneNode, peer: &str) -> Result<String> {
    Ok(bond_show(node, peer)?["bondingPolicyStr"].as_str().unwrap_or_default().to_string())
}

#[test]
fn bond_commands_read_the_map_and_policy_load_keeps_a_transfer_running() -> Result<()> {
    let rig = BondBed::start(&ZeroTierBinary::locate()?, &common::ztplane(), &["a", "b"])?;
    let xor = standard_policy("balance-xor");
    let a = rig.ztplane("a", A_IP, &xor)?;
    let b = rig.ztplane("b", B_IP, &xor)?;
    let (a_ns, b_ns) = (rig.netns("a")?, rig.netns("b")?);
    let (a_addr, b_addr) = (a.address()?, b.address()?);
    let logs = || format!("a log:\n{}\nb log:\n{}", a.log_tail(30), b.log_tail(30));
    ping_settled(a_ns, B_IP).with_context(logs)?;
    ztplane_on_both_links(&a, "a", &b_addr)?;
    ztplane_on_both_links(&b, "b", &a_addr)?;

    // `bond list` / `bond show` from the map (rewritten every 100 ms) agree with the node.
    let instance = a.instance.as_str();
    let list = wait_until("b in a's bond list with 2/2 links", Duration::from_secs(5), || {
        let out = ctl(&["bond", "list", "--instance", instance]);
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        if out.status.success() && text.contains(&b_addr) && text.contains("2/2") { Ok(text) } else { Err(text) }
    })?;
    ensure!(list.contains("balance-xor"), "bond list: {list}");
    let out = ctl(&["bond", "show", &b_addr, "-j", "--instance", instance]);
    ensure!(out.status.success(), "bond show: {}", stderr(&out));
    let shown: Value = serde_json::from_slice(&out.stdout)?;
    let node_view = bond_show(&a, &b_addr)?;
    ensure!(shown["bondingPolicyStr"] == node_view["bondingPolicyStr"], "map {shown}\nnode {node_view}");
    ensure!(shown["numTotalLinks"] == 2, "map {shown}");
    let links: Vec<&str> =
        shown["paths"].as_array().map(|p| p.iter().filter_map(|p| p["ifname"].as_str()).collect()).unwrap_or_default();
    ensure!(links.contains(&"eth0") && links.contains(&"eth1"), "map paths {shown}");

    // Slow both links toward b so that the transfer spans the reloads.
    rig.links.a.set_rate("b", Some(40))?;
    rig.links.b.set_rate("b", Some(40))?;
    let dir = TempDir(std::env::temp_dir().join(format!("ztplane-reload-{}", std::process::id())));
    std::fs::create_dir_all(&dir.0)?;
    let file = |name: &str, body: &Value| -> Result<std::path::PathBuf> {
        let path = dir.0.join(name);
        std::fs::write(&path, serde_json::to_vec(body)?)?;
        Ok(path)
    };
    let ab_conf = file("ab.conf", &standard_policy("active-backup"))?;
    let xor_conf = file("xor.conf", &xor)?;
    let bad_conf = dir.0.join("bad.conf");
    std::fs::write(&bad_conf, r#"{"settings": {"defaultBondingPolicy": "balance-nonsense"}}"#)?;

    let (took, steps) = std::thread::scope(|s| -> Result<(Duration, Vec<String>)> {
        let transfer = s.spawn(|| tcp_transfer(a_ns, b_ns, B_IP.parse().expect("IPv4"), 24 << 20));
        let mut steps = Vec::new();
        std::thread::sleep(Duration::from_millis(800));
        for node in [&a, &b] {
            let out = load(node, &ab_conf);
            ensure!(out.status.success(), "policy load (active-backup): {}", stderr(&out));
        }
        ensure!(policy_of(&a, &b_addr)? == "active-backup", "a did not switch: {}", bond_show(&a, &b_addr)?);
        steps.push("balance-xor → active-backup".to_string());
        std::thread::sleep(Duration::from_millis(800));
        // A bad file changes nothing: exit 2, the JSON path named, the policy as it was.
        let out = load(&a, &bad_conf);
        ensure!(out.status.code() == Some(2), "bad file: exit {:?} {}", out.status.code(), stderr(&out));
        ensure!(stderr(&out).contains("settings.defaultBondingPolicy"), "{}", stderr(&out));
        ensure!(policy_of(&a, &b_addr)? == "active-backup", "a bad file changed the policy");
        for node in [&a, &b] {
            let out = load(node, &xor_conf);
            ensure!(out.status.success(), "policy load (balance-xor): {}", stderr(&out));
        }
        steps.push("active-backup → balance-xor".to_string());
        let took = transfer.join().map_err(|_| anyhow::anyhow!("transfer thread panicked"))?.with_context(logs)?;
        Ok((took, steps))
    })?;
    eprintln!("24 MiB with {} during the transfer: {:.2} s, every byte checked", steps.join(", "), took.as_secs_f64());
    ensure!(took > Duration::from_millis(1600), "the transfer ended before the reloads ({took:?})");
    ensure!(policy_of(&a, &b_addr)? == "balance-xor", "{}", bond_show(&a, &b_addr)?);
    let show = bond_show(&a, &b_addr)?;
    ensure!(show["numTotalLinks"] == 2, "paths lost across the reloads: {show}");
    Ok(())
}

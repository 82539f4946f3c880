//! The two-link topology of the bonding tests and its per-link impairments (root only): each
//! impairment acts on its own link only, can be undone, and everything goes with the topology.
use std::net::Ipv4Addr;
use std::process::Command;
use std::time::Duration;
use ztplane_testkit::lan::TwoLinks;
use ztplane_testkit::traffic::tcp_transfer;
use ztplane_testkit::{Netns, Topology};

/// Echo replies out of `count` pings 2 ms apart.
fn replies(from: &Netns, to: Ipv4Addr, count: u32) -> u32 {
    let out = from
        .command("ping")
        .args(["-n", "-q", "-c", &count.to_string(), "-i", "0.002", "-W", "1", &to.to_string()])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    // "400 packets transmitted, 97 received, 75.75% packet loss, time 1000ms"
    text.split(", ")
        .find_map(|part| part.strip_suffix(" received"))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no ping summary in {text:?}"))
}

#[test]
fn impairments_act_on_one_link_and_go_with_the_topology() {
    let mut topo = Topology::new().unwrap();
    let links = TwoLinks::new(&mut topo, &["a", "b"], 2).unwrap();
    let (a, b) = (links.a.host("a").unwrap(), links.a.host("b").unwrap());
    let b_on_b = links.b.host("b").unwrap();
    assert_eq!(
        (a.ip, b.ip, b_on_b.ip),
        ("198.18.0.1".parse().unwrap(), "198.18.0.2".parse().unwrap(), "198.18.1.2".parse().unwrap())
    );
    assert_eq!(links.by_iface("eth1").unwrap().iface, "eth1");
    assert_eq!(links.other(&links.a).iface, "eth1");
    assert_eq!(replies(&a.netns, b.ip, 20), 20, "link A");
    assert_eq!(replies(&a.netns, b_on_b.ip, 20), 20, "link B");

    // A block on link A leaves link B alone.
    links.a.block("a", "b").unwrap();
    assert_eq!(replies(&a.netns, b.ip, 5), 0, "blocked link A");
    assert_eq!(replies(&a.netns, b_on_b.ip, 20), 20, "link B while A is blocked");
    links.a.unblock("a", "b").unwrap();
    assert_eq!(replies(&a.netns, b.ip, 20), 20, "link A unblocked");

    // 50 % each way: about a quarter of the round trips come back (σ ≈ 2 %).
    links.b.set_loss("a", "b", 50).unwrap();
    let got = replies(&a.netns, b_on_b.ip, 400);
    assert!((40..=180).contains(&got), "{got}/400 replies through 50 % loss each way");
    assert_eq!(replies(&a.netns, b.ip, 20), 20, "link A while B is lossy");
    links.b.set_loss("a", "b", 0).unwrap();
    assert_eq!(replies(&a.netns, b_on_b.ip, 50), 50, "link B without loss");

    // 50 Mbit/s towards b on link A: 2 MiB take at least 0.3 s there.
    links.a.set_rate("b", Some(50)).unwrap();
    let slow = tcp_transfer(&a.netns, &b.netns, b.ip, 2 << 20).unwrap();
    assert!(slow >= Duration::from_millis(300), "2 MiB through 50 Mbit/s in {slow:?}");
    links.a.set_rate("b", None).unwrap();
    let qdisc = links.a.switch.exec("tc", &["qdisc", "show", "dev", &b.switch_port]).unwrap();
    assert!(!String::from_utf8_lossy(&qdisc.stdout).contains("tbf"), "the rate limit stayed");

    let names = topo.namespaces().to_vec();
    drop(links);
    drop(topo);
    let left =
        String::from_utf8_lossy(&Command::new("ip").args(["netns", "list"]).output().unwrap().stdout).into_owned();
    for name in names {
        assert!(!left.contains(&name), "{name} survived the topology");
    }
}

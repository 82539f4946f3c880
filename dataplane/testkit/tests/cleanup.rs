//! The kit removes what it creates, also when the code using it panics (root only).
use std::process::Command;
use ztplane_testkit::Topology;

fn namespaces() -> String {
    String::from_utf8_lossy(&Command::new("ip").args(["netns", "list"]).output().unwrap().stdout).into_owned()
}

#[test]
fn namespaces_and_links_are_removed_on_drop_and_on_panic() {
    let names = std::thread::spawn(|| {
        let mut topo = Topology::new().unwrap();
        let a = topo.netns("a").unwrap();
        let b = topo.netns("b").unwrap();
        topo.veth(&a, "x0", &b, "y0", 4).unwrap();
        a.addr("x0", "198.18.9.1/24").unwrap();
        b.bridge("br9", &["y0"]).unwrap();
        let names = topo.namespaces().to_vec();
        for name in &names {
            assert!(namespaces().contains(name.as_str()));
        }
        let queues = a.exec("ls", &["/sys/class/net/x0/queues"]).unwrap();
        assert_eq!(String::from_utf8_lossy(&queues.stdout).matches("rx-").count(), 4);
        // Hand the names out through the panic payload, then unwind through `topo`'s drop.
        std::panic::panic_any(names)
    })
    .join()
    .unwrap_err()
    .downcast::<Vec<String>>()
    .unwrap();
    let left = namespaces();
    for name in names.iter() {
        assert!(!left.contains(name.as_str()), "{name} survived the panic");
    }
}

#[test]
fn addresses_outside_the_benchmark_block_are_refused() {
    let mut topo = Topology::new().unwrap();
    let a = topo.netns("a").unwrap();
    assert!(a.addr("lo", "10.1.2.3/8").is_err());
    assert!(a.addr("lo", "198.20.0.1/16").is_err());
    a.addr("lo", "198.19.255.1/32").unwrap();
}

//! `ztplane-bench pktgen`: the AF_XDP traffic generator of `ztplane_testkit::pktgen`, by hand,
//! between two local interfaces (two cabled NIC ports, or two ports of a DUT), in the current
//! network namespace. Prints the report as a table and as JSON and writes
//! `target/bench/pktgen.json`.
//!
//! The receiver is steered by ztplane's own XDP program with `--dst-port` as its only steered
//! port, so nothing else on the receiving interface is disturbed. `deploy/pktgen/` has the
//! kernel-pktgen equivalent with the same parameters.
use crate::report;
use anyhow::{Context, Result, bail};
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::time::Duration;
use ztplane::steering::{AttachMode, Steering};
use ztplane_testkit::pktgen::{self, Config, Mode, Steer, SteerRequest};

const USAGE: &str = "usage: ztplane-bench pktgen --tx-iface IF --rx-iface IF [--size 64..1518] [--flows N]
       [--rate PPS|max] [--seconds S] [--count N] [--src-mac MAC] [--dst-mac MAC] [--src-ip IP] [--dst-ip IP]
       [--src-port P] [--dst-port P] [--tx-queue Q] [--rx-queues Q,Q,...] [--zero-copy auto|on|off]
       [--xdp-mode auto|native|generic] [--bpffs DIR] [--verify]
  size: Ethernet frame incl. FCS (RFC 2544; 64 = 60-byte buffer, kernel pktgen pkt_size 60)
  flows: UDP source ports src-port .. src-port+flows-1; rate: packets/s (k/M suffixes) or max
  MACs default to the interfaces' own; IPs must be in 198.18.0.0/15 (defaults 198.18.0.1 -> 198.19.0.1)";

pub fn run(args: &[String]) -> Result<()> {
    let (config, xdp_mode, bpffs) = parse(args)?;
    ztplane::system::require_bpffs(&bpffs)?;
    let report = pktgen::run(&config, None, None, steering(xdp_mode, bpffs))?;
    println!("{}", report.table());
    let json = report.to_json();
    println!("{}", serde_json::to_string_pretty(&json)?);
    let path = report::write("pktgen", &[json])?;
    println!("wrote {}", path.display());
    Ok(())
}

/// Attaches ztplane's steering program to the receiving interface, steering the generator's
/// destination port to the receiver's sockets; pins go to `<bpffs>/pktgen-<pid>/`.
fn steering(mode: AttachMode, bpffs: PathBuf) -> Steer {
    Box::new(move |request: &SteerRequest| {
        let pins = PinDir(bpffs.join(format!("pktgen-{}", std::process::id())));
        let mut steering = Steering::attach(&request.ifname, mode, &[request.dst_port], &pins.0)?;
        for &(queue, fd) in &request.sockets {
            // SAFETY: the fd is the receiver's socket, open for the whole run.
            let fd = unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) };
            steering.register_socket(queue, &fd)?;
        }
        eprintln!("{}: XDP steering of UDP port {} in {} mode", request.ifname, request.dst_port, steering.mode());
        // Fields drop in order: the program and its pins first, then their directory.
        Ok(Box::new((steering, pins)) as Box<dyn std::any::Any>)
    })
}

/// The instance directory of the pins, removed once the steering has removed its own.
struct PinDir(PathBuf);

impl Drop for PinDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir(&self.0);
    }
}

fn parse(args: &[String]) -> Result<(Config, AttachMode, PathBuf)> {
    let mut tx_iface = None;
    let mut rx_iface = None;
    let mut config = Config::new("", "");
    let (mut src_mac, mut dst_mac) = (None, None);
    let mut xdp_mode = AttachMode::Auto;
    let mut bpffs = PathBuf::from(ztplane::config::DEFAULT_BPFFS);
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        if flag == "--verify" {
            config.verify = true;
            continue;
        }
        if flag == "-h" || flag == "--help" {
            println!("{USAGE}");
            std::process::exit(0);
        }
        let value = it.next().with_context(|| format!("{flag} needs a value\n{USAGE}"))?;
        let context = || format!("{flag} {value}");
        match flag.as_str() {
            "--tx-iface" => tx_iface = Some(value.clone()),
            "--rx-iface" => rx_iface = Some(value.clone()),
            "--size" => config.size = value.parse().with_context(context)?,
            "--flows" => config.flows = value.parse().with_context(context)?,
            "--rate" => config.rate = parse_rate(value).with_context(context)?,
            "--seconds" => config.duration = Duration::from_secs_f64(value.parse().with_context(context)?),
            "--count" => config.count = Some(value.parse().with_context(context)?),
            "--src-mac" => src_mac = Some(pktgen::parse_mac(value)?),
            "--dst-mac" => dst_mac = Some(pktgen::parse_mac(value)?),
            "--src-ip" => config.src_ip = value.parse::<Ipv4Addr>().with_context(context)?,
            "--dst-ip" => config.dst_ip = value.parse::<Ipv4Addr>().with_context(context)?,
            "--src-port" => config.src_port = value.parse().with_context(context)?,
            "--dst-port" => config.dst_port = value.parse().with_context(context)?,
            "--tx-queue" => config.tx_queue = value.parse().with_context(context)?,
            "--rx-queues" => {
                config.rx_queues =
                    value.split(',').map(|q| q.trim().parse()).collect::<Result<_, _>>().with_context(context)?
            }
            "--zero-copy" => {
                config.mode = match value.as_str() {
                    "auto" => Mode::Auto,
                    "on" => Mode::ZeroCopy,
                    "off" => Mode::Copy,
                    _ => bail!("--zero-copy {value}: auto, on or off"),
                }
            }
            "--xdp-mode" => xdp_mode = value.parse().map_err(anyhow::Error::msg)?,
            "--bpffs" => bpffs = PathBuf::from(value),
            other => bail!("unknown pktgen option {other:?}\n{USAGE}"),
        }
    }
    config.tx_iface = tx_iface.with_context(|| format!("--tx-iface is required\n{USAGE}"))?;
    config.rx_iface = rx_iface.with_context(|| format!("--rx-iface is required\n{USAGE}"))?;
    config.src_mac = match src_mac {
        Some(mac) => mac,
        None => pktgen::iface_mac(&config.tx_iface)?,
    };
    // Back to back, the receiving port is the destination; through a DUT, pass its MAC.
    config.dst_mac = match dst_mac {
        Some(mac) => mac,
        None => pktgen::iface_mac(&config.rx_iface)?,
    };
    config.validate()?;
    Ok((config, xdp_mode, bpffs))
}

/// `max`, or packets per second with an optional `k` or `M` suffix (`14.88M`).
fn parse_rate(text: &str) -> Result<Option<u64>> {
    if text == "max" {
        return Ok(None);
    }
    let (number, scale) = match text.strip_suffix(['k', 'K']) {
        Some(n) => (n, 1e3),
        None => match text.strip_suffix('M') {
            Some(n) => (n, 1e6),
            None => (text, 1.0),
        },
    };
    let pps = (number.parse::<f64>().context("a rate is PPS, e.g. 100000, 100k, 1.5M, or max")? * scale).round();
    anyhow::ensure!(pps >= 1.0, "rate must be at least 1 pps");
    Ok(Some(pps as u64))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(text: &str) -> Vec<String> {
        text.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn rates_parse() {
        assert_eq!(parse_rate("max").unwrap(), None);
        assert_eq!(parse_rate("100000").unwrap(), Some(100_000));
        assert_eq!(parse_rate("100k").unwrap(), Some(100_000));
        assert_eq!(parse_rate("14.88M").unwrap(), Some(14_880_000));
        assert!(parse_rate("0").is_err());
        assert!(parse_rate("fast").is_err());
    }

    #[test]
    fn options_fill_the_config() {
        let (c, mode, bpffs) = parse(&args(
            "--tx-iface a --rx-iface b --size 1518 --flows 8 --rate 1M --seconds 2.5 --count 99 \
             --src-mac 02:00:00:00:00:0a --dst-mac 02:00:00:00:00:0b --src-ip 198.18.1.1 --dst-ip 198.19.1.1 \
             --src-port 2000 --dst-port 9993 --rx-queues 0,1 --zero-copy off --xdp-mode generic --bpffs /x --verify",
        ))
        .unwrap();
        assert_eq!((c.tx_iface.as_str(), c.rx_iface.as_str(), c.size, c.flows), ("a", "b", 1518, 8));
        assert_eq!((c.rate, c.duration, c.count), (Some(1_000_000), Duration::from_millis(2500), Some(99)));
        assert_eq!((c.src_mac[5], c.dst_mac[5], c.src_port, c.dst_port), (10, 11, 2000, 9993));
        assert_eq!((c.src_ip, c.dst_ip), (Ipv4Addr::new(198, 18, 1, 1), Ipv4Addr::new(198, 19, 1, 1)));
        assert_eq!((c.rx_queues.as_slice(), c.mode, c.verify), (&[0, 1][..], Mode::Copy, true));
        assert_eq!((mode, bpffs), (AttachMode::Generic, PathBuf::from("/x")));
    }

    #[test]
    fn bad_options_are_refused() {
        let base = "--tx-iface a --rx-iface b --src-mac 02:00:00:00:00:0a --dst-mac 02:00:00:00:00:0b";
        for extra in ["--size 1519", "--dst-ip 10.0.0.1", "--rate 0", "--bogus 1", "--flows"] {
            assert!(parse(&args(&format!("{base} {extra}"))).is_err(), "{extra}");
        }
        assert!(parse(&args("--rx-iface b")).is_err(), "--tx-iface is required");
    }
}

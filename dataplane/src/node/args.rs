//! Command line of `ztplane node`, validated up front so that a bad value is one clear line.

use crate::config::{DEFAULT_BPFFS, WorkerOptions, number_arg};
use crate::error::DataplaneError;
use crate::port::ZeroCopy;
use crate::steering::AttachMode;
use std::path::PathBuf;
use std::time::Duration;
use ztplane_host::cli::clap_error_line;
use ztplane_node::NetworkId;

/// Default of `--home`: zerotier-one's home directory.
pub const DEFAULT_HOME: &str = "/var/lib/zerotier-one";

/// `ztplane node`'s command line as typed; [`NodeCli::into_args`] fills in the defaults and
/// validates the whole.
///
/// Every value option takes the next word as its value, even one that starts with `-` (as the
/// hand-written parser did), and a repeated option that is not repeatable keeps its last value.
#[derive(clap::Parser, Clone, Debug, Default)]
#[command(args_override_self = true)]
pub struct NodeCli {
    /// zerotier-one home directory (identity, planet, moons.d, networks.d, peers.d, local.conf);
    /// default /var/lib/zerotier-one
    #[arg(long, value_name = "DIR", allow_hyphen_values = true)]
    pub home: Option<PathBuf>,
    /// underlay interface; ZeroTier UDP on it goes to the workers (repeatable, at least one)
    #[arg(long = "iface", value_name = "IF", allow_hyphen_values = true)]
    pub ifaces: Vec<String>,
    /// join this network (16 hex digits) at start; repeatable
    #[arg(long, value_name = "NWID", value_parser = network_arg, allow_hyphen_values = true)]
    pub join: Vec<NetworkId>,
    /// UDP port (default: local.conf settings.primaryPort, else 9993)
    #[arg(long, value_name = "N", value_parser = number_arg::<u16>, allow_hyphen_values = true)]
    pub port: Option<u16>,
    #[command(flatten)]
    pub workers: WorkerOptions,
    /// on: the kernel hands over 64 KiB TCP segments and takes merged ones; split: segments
    /// only, frames written one by one; off: plain frames (default on)
    #[arg(long, value_name = "MODE", value_enum, hide_possible_values = true, allow_hyphen_values = true)]
    pub tap_offload: Option<TapOffload>,
    /// gateway mode: bridge LAN interface LANIF into network NWID (joined too); every frame on
    /// LANIF goes to the workers; the controller must mark this member activeBridge (repeatable)
    #[arg(long, value_name = "NWID=LANIF", value_parser = bridge_arg, allow_hyphen_values = true)]
    pub bridge: Vec<(NetworkId, String)>,
    /// frames on a LAN interface tagged with this VLAN ID go to the kernel, not the network
    /// (e.g. the management VLAN; repeatable)
    #[arg(long, value_name = "ID", value_parser = vlan_arg, allow_hyphen_values = true)]
    pub lan_pass_vlan: Vec<u16>,
}

/// Settings of `ztplane node`.
#[derive(Clone, Debug)]
pub struct NodeArgs {
    pub home: PathBuf,
    pub ifaces: Vec<String>,
    pub join: Vec<NetworkId>,
    pub port: Option<u16>,
    pub queues: Option<Vec<u32>>,
    pub cores: Option<Vec<usize>>,
    pub umem_frames: u32,
    pub ring_size: u32,
    pub xdp_mode: AttachMode,
    pub zero_copy: ZeroCopy,
    pub bpffs: PathBuf,
    pub instance: String,
    pub duration: Option<Duration>,
    pub ready_file: Option<PathBuf>,
    pub tap_offload: TapOffload,
    /// Gateway mode: (network, LAN interface) pairs.
    pub bridges: Vec<(NetworkId, String)>,
    /// VLAN IDs on LAN interfaces that stay with the kernel.
    pub lan_pass_vlans: Vec<u16>,
}

/// How the taps exchange frames with the kernel (tap-offloads.md).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum TapOffload {
    /// vnet header, TSO in, merged TCP segments out.
    On,
    /// vnet header and TSO in; frames written one by one (the kill switch for merging).
    Split,
    /// Plain frames both ways.
    Off,
}

impl NodeCli {
    /// The settings, defaults filled in, validated as a whole.
    pub fn into_args(self) -> Result<NodeArgs, DataplaneError> {
        let w = self.workers;
        let a = NodeArgs {
            home: self.home.unwrap_or_else(|| PathBuf::from(DEFAULT_HOME)),
            ifaces: self.ifaces,
            join: self.join,
            port: self.port.filter(|p| *p != 0),
            queues: w.queues,
            cores: w.cores,
            umem_frames: w.umem_frames.unwrap_or(4096),
            ring_size: w.ring_size.unwrap_or(2048),
            xdp_mode: w.xdp_mode.unwrap_or(AttachMode::Auto),
            zero_copy: w.zero_copy.unwrap_or(ZeroCopy::Auto),
            bpffs: w.bpffs.unwrap_or_else(|| PathBuf::from(DEFAULT_BPFFS)),
            instance: w.instance.unwrap_or_else(|| "default".to_string()),
            duration: w.duration,
            ready_file: w.ready_file,
            tap_offload: self.tap_offload.unwrap_or(TapOffload::On),
            bridges: self.bridge,
            lan_pass_vlans: self.lan_pass_vlan,
        };
        if a.ifaces.is_empty() {
            return Err(DataplaneError::Config("node needs at least one --iface (see `ztplane node --help`)".into()));
        }
        let mut seen = a.ifaces.clone();
        seen.sort();
        seen.dedup();
        if seen.len() != a.ifaces.len() {
            return Err(DataplaneError::Config("an --iface is given twice".into()));
        }
        for (i, (network, lan)) in a.bridges.iter().enumerate() {
            if a.ifaces.contains(lan) {
                return Err(DataplaneError::Config(format!(
                    "--bridge {network}={lan}: {lan} is an --iface (underlay)"
                )));
            }
            if a.bridges[..i].iter().any(|(n, l)| n == network || l == lan) {
                return Err(DataplaneError::Config(format!(
                    "--bridge {network}={lan}: one LAN interface per network, each LAN interface once"
                )));
            }
        }
        if a.umem_frames < 64 || !a.ring_size.is_power_of_two() {
            return Err(DataplaneError::Config(format!(
                "--umem-frames {} (at least 64) / --ring-size {} (a power of two)",
                a.umem_frames, a.ring_size
            )));
        }
        Ok(a)
    }
}

impl NodeArgs {
    /// Parses the words after `ztplane node` (the binary parses its whole command line with clap
    /// and calls [`NodeCli::into_args`]; this is the same for callers that hold the words).
    pub fn from_args(args: &[String]) -> Result<Self, DataplaneError> {
        use clap::Parser;
        let cli = NodeCli::try_parse_from(std::iter::once("ztplane node").chain(args.iter().map(String::as_str)))
            .map_err(|e| DataplaneError::Config(clap_error_line(&e)))?;
        cli.into_args()
    }
}

/// clap value parser: a network ID, see [`parse_network`].
fn network_arg(text: &str) -> Result<NetworkId, String> {
    parse_network(text).map_err(|e| match e {
        DataplaneError::Config(message) => message,
        other => other.to_string(),
    })
}

/// clap value parser: `NWID=LANIF`.
fn bridge_arg(text: &str) -> Result<(NetworkId, String), String> {
    let (network, lan) = text.split_once('=').ok_or_else(|| format!("{text:?} is not NWID=LANIF"))?;
    if lan.is_empty() || lan.len() > 15 || lan.contains(['/', ' ']) {
        return Err(format!("{lan:?} is not an interface name"));
    }
    Ok((network_arg(network)?, lan.to_string()))
}

/// clap value parser: an 802.1Q VLAN ID.
fn vlan_arg(text: &str) -> Result<u16, String> {
    match text.parse::<u16>() {
        Ok(v) if (1..=4094).contains(&v) => Ok(v),
        _ => Err(format!("{text:?} is not a VLAN ID (1..4094)")),
    }
}

/// A network ID as zerotier-cli takes it: 16 hex digits.
pub fn parse_network(text: &str) -> Result<NetworkId, DataplaneError> {
    if text.len() != 16 {
        return Err(DataplaneError::Config(format!("network ID {text:?} must be 16 hex digits")));
    }
    match u64::from_str_radix(text, 16) {
        Ok(0) | Err(_) => Err(DataplaneError::Config(format!("network ID {text:?} must be 16 hex digits, not 0"))),
        Ok(v) => Ok(NetworkId(v)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(str::to_string).collect()
    }

    #[test]
    fn parses_and_refuses_clearly() {
        let a = NodeArgs::from_args(&args("--home /tmp/h --iface a0 --join 2c80d4374849700f --port 9994")).unwrap();
        assert_eq!(a.join, vec![NetworkId(0x2c80d4374849700f)]);
        assert_eq!(a.port, Some(9994));
        assert_eq!(a.tap_offload, TapOffload::On);
        let a = NodeArgs::from_args(&args("--home /tmp/h --iface a0 --tap-offload split")).unwrap();
        assert_eq!(a.tap_offload, TapOffload::Split);
        let a = NodeArgs::from_args(&args("--iface a0 --bridge 2c80d4374849700f=lan0 --lan-pass-vlan 10")).unwrap();
        assert_eq!((a.bridges, a.lan_pass_vlans), (vec![(NetworkId(0x2c80d4374849700f), "lan0".into())], vec![10]));
        for bad in [
            "--home /tmp/h",
            "--iface a --iface a",
            "--iface a --join 12",
            "--iface a --join 0000000000000000",
            "--iface a --bogus 1",
            "--iface a --tap-offload maybe",
        ] {
            assert!(NodeArgs::from_args(&args(bad)).is_err(), "{bad}");
        }
    }

    #[test]
    fn defaults_and_errors_naming_the_flag() {
        let a = NodeArgs::from_args(&args("--iface a0")).unwrap();
        assert_eq!(a.home, PathBuf::from(DEFAULT_HOME));
        assert_eq!((a.port, a.queues, a.cores, a.duration, a.ready_file), (None, None, None, None, None));
        assert_eq!((a.umem_frames, a.ring_size, a.instance.as_str()), (4096, 2048, "default"));
        assert_eq!((a.xdp_mode, a.zero_copy, a.tap_offload), (AttachMode::Auto, ZeroCopy::Auto, TapOffload::On));
        assert_eq!(a.bpffs, PathBuf::from(DEFAULT_BPFFS));
        // --port 0: the port from local.conf; a repeated option keeps its last value.
        let a = NodeArgs::from_args(&args("--iface a0 --port 0 --home /a --home /b --xdp-mode drv")).unwrap();
        assert_eq!((a.port, a.home, a.xdp_mode), (None, PathBuf::from("/b"), AttachMode::Native));
        let a =
            NodeArgs::from_args(&args("--iface a --iface b --join 2c80d4374849700f --join 8056c2e21c000001")).unwrap();
        assert_eq!(a.ifaces, ["a", "b"]);
        assert_eq!(a.join, [NetworkId(0x2c80d4374849700f), NetworkId(0x8056c2e21c000001)]);
        for (line, needle) in [
            ("--home /tmp", "at least one --iface"),
            ("--iface a --ring-size 3", "--ring-size 3 (a power of two)"),
            ("--iface a --umem-frames 8", "--umem-frames 8 (at least 64)"),
            ("--iface a --join 12", "'--join <NWID>': network ID \"12\" must be 16 hex digits"),
            ("--iface a --port 70000", "'--port <N>': not a valid number"),
            ("--iface a --queues x", "'--queues <LIST>'"),
            ("--iface a --tap-offload maybe", "'--tap-offload <MODE>'"),
            ("--iface a --zero-copy maybe", "zero-copy"),
            ("--iface a --duration", "'--duration <SECS>'"),
            ("--iface a stray", "unexpected argument 'stray'"),
            ("--iface a --bridge 2c80d4374849700f", "is not NWID=LANIF"),
            ("--iface a --bridge 2c80d4374849700f=a", "a is an --iface"),
            ("--iface a --bridge 2c80d4374849700f=l --bridge 2c80d4374849700f=m", "one LAN interface per network"),
            ("--iface a --lan-pass-vlan 4095", "not a VLAN ID"),
        ] {
            let err = NodeArgs::from_args(&args(line)).unwrap_err().to_string();
            assert!(err.contains(needle), "{line:?} gave {err:?}");
            assert_eq!(err.lines().count(), 1, "{line:?} gave {err:?}");
        }
    }
}

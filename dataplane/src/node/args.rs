//! Command line of `ztplane node`, validated up front so that a bad value is one clear line.

use crate::config::{DEFAULT_BPFFS, parse_cores, parse_list, parse_num, parse_secs};
use crate::error::DataplaneError;
use crate::port::ZeroCopy;
use crate::steering::AttachMode;
use std::path::PathBuf;
use std::time::Duration;
use ztplane_node::NetworkId;

pub const NODE_USAGE: &str = "usage: ztplane node --home DIR --iface IF [--iface IF ...] [options]
  --home DIR           zerotier-one home directory (identity, planet, moons.d, networks.d,
                       peers.d, local.conf); default /var/lib/zerotier-one
  --iface IF           underlay interface; ZeroTier UDP on it goes to the workers (repeatable)
  --join NWID          join this network (16 hex digits) at start; repeatable
  --port N             UDP port (default: local.conf settings.primaryPort, else 9993)
  --queues LIST        RX queues to serve on every interface (default: all)
  --cores LIST         cores for the workers in order, one worker each (default: one per queue)
  --umem-frames N      frames per worker UMEM (default 4096)
  --ring-size N        AF_XDP ring size, power of two (default 2048)
  --xdp-mode MODE      auto, native, generic (default auto)
  --zero-copy MODE     auto, on, off (default auto)
  --bpffs PATH         bpffs mount for pinned maps (default /run/ztplane/bpffs)
  --instance NAME      name of this dataplane instance (default \"default\")
  --tap-offload MODE   on: the kernel hands over 64 KiB TCP segments and takes merged ones;
                       split: segments only, frames written one by one; off: plain frames
                       (default on)
  --duration SECS      stop after SECS seconds
  --ready-file PATH    create PATH once the node runs";

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
}

/// How the taps exchange frames with the kernel (tap-offloads.md).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TapOffload {
    /// vnet header, TSO in, merged TCP segments out.
    On,
    /// vnet header and TSO in; frames written one by one (the kill switch for merging).
    Split,
    /// Plain frames both ways.
    Off,
}

impl std::str::FromStr for TapOffload {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "on" => Ok(TapOffload::On),
            "split" => Ok(TapOffload::Split),
            "off" => Ok(TapOffload::Off),
            other => Err(format!("--tap-offload {other:?}: expected on, split or off")),
        }
    }
}

impl NodeArgs {
    pub fn from_args(args: &[String]) -> Result<Self, DataplaneError> {
        let mut a = NodeArgs {
            home: PathBuf::from("/var/lib/zerotier-one"),
            ifaces: Vec::new(),
            join: Vec::new(),
            port: None,
            queues: None,
            cores: None,
            umem_frames: 4096,
            ring_size: 2048,
            xdp_mode: AttachMode::Auto,
            zero_copy: ZeroCopy::Auto,
            bpffs: PathBuf::from(DEFAULT_BPFFS),
            instance: "default".to_string(),
            duration: None,
            ready_file: None,
            tap_offload: TapOffload::On,
        };
        let mut it = args.iter();
        while let Some(flag) = it.next() {
            let mut value =
                |name: &str| it.next().cloned().ok_or_else(|| DataplaneError::Config(format!("{name} needs a value")));
            match flag.as_str() {
                "--home" => a.home = PathBuf::from(value(flag)?),
                "--iface" => a.ifaces.push(value(flag)?),
                "--join" => a.join.push(parse_network(&value(flag)?)?),
                "--port" => a.port = Some(parse_num::<u16>(&value(flag)?, flag)?).filter(|p| *p != 0),
                "--queues" => a.queues = Some(parse_list(&value(flag)?, flag)?),
                "--cores" => a.cores = Some(parse_cores(&value(flag)?, flag)?),
                "--umem-frames" => a.umem_frames = parse_num(&value(flag)?, flag)?,
                "--ring-size" => a.ring_size = parse_num(&value(flag)?, flag)?,
                "--xdp-mode" => a.xdp_mode = value(flag)?.parse().map_err(DataplaneError::Config)?,
                "--zero-copy" => a.zero_copy = value(flag)?.parse().map_err(DataplaneError::Config)?,
                "--bpffs" => a.bpffs = PathBuf::from(value(flag)?),
                "--instance" => a.instance = value(flag)?,
                "--tap-offload" => a.tap_offload = value(flag)?.parse().map_err(DataplaneError::Config)?,
                "--duration" => a.duration = Some(parse_secs(&value(flag)?, flag)?),
                "--ready-file" => a.ready_file = Some(PathBuf::from(value(flag)?)),
                other => return Err(DataplaneError::Config(format!("unknown option {other:?}\n{NODE_USAGE}"))),
            }
        }
        if a.ifaces.is_empty() {
            return Err(DataplaneError::Config(format!("node needs at least one --iface\n{NODE_USAGE}")));
        }
        let mut seen = a.ifaces.clone();
        seen.sort();
        seen.dedup();
        if seen.len() != a.ifaces.len() {
            return Err(DataplaneError::Config("an --iface is given twice".into()));
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
}

//! Command-line configuration of the dataplane (`ztplane fwd ...`), validated up front so that a
//! bad value gives one clear line instead of a half-started dataplane.
use crate::error::DataplaneError;
use crate::port::ZeroCopy;
use crate::steering::AttachMode;
use std::path::PathBuf;
use std::time::Duration;

pub const DEFAULT_BPFFS: &str = "/run/ztplane/bpffs";

/// Settings of the forwarding mode.
#[derive(Clone, Debug)]
pub struct FwdConfig {
    /// Exactly two interfaces: frames steered on one leave on the other.
    pub ifaces: Vec<String>,
    /// RX queues to serve on both interfaces; `None` = all of them.
    pub queues: Option<Vec<u32>>,
    /// Cores for the worker threads, one worker each; `None` = one per queue.
    pub cores: Option<Vec<usize>>,
    pub umem_frames: u32,
    pub frame_size: u32,
    pub ring_size: u32,
    pub xdp_mode: AttachMode,
    pub zero_copy: ZeroCopy,
    pub ports: Vec<u16>,
    pub bpffs: PathBuf,
    pub instance: String,
    /// Stop by itself after this long (demo, tests); `None` = until a signal.
    pub duration: Option<Duration>,
    pub stats_interval: Duration,
    /// Where to write the final statistics as JSON (besides stdout).
    pub stats_json: Option<PathBuf>,
    /// Created once the workers run (for scripts and tests that wait for readiness).
    pub ready_file: Option<PathBuf>,
}

impl Default for FwdConfig {
    fn default() -> Self {
        FwdConfig {
            ifaces: Vec::new(),
            queues: None,
            cores: None,
            umem_frames: 4096,
            frame_size: 4096,
            ring_size: 2048,
            xdp_mode: AttachMode::Auto,
            zero_copy: ZeroCopy::Auto,
            ports: vec![ztplane_ebpf_common::DEFAULT_PORT],
            bpffs: PathBuf::from(DEFAULT_BPFFS),
            instance: "default".to_string(),
            duration: None,
            stats_interval: Duration::from_secs(1),
            stats_json: None,
            ready_file: None,
        }
    }
}

pub const FWD_USAGE: &str = "usage: ztplane fwd --iface A --iface B [options]
  --queues LIST        RX queues to serve, e.g. 0-3 or 0,2 (default: all)
  --cores LIST         cores for worker threads in order, one worker each; worker i serves
                       queues i, i+W, ... (default: one worker per queue)
  --umem-frames N      frames per worker UMEM (default 4096)
  --frame-size N       bytes per frame: 2048 or 4096 (default 4096)
  --ring-size N        AF_XDP ring size, power of two (default 2048)
  --xdp-mode MODE      auto (native, else generic), native, generic (default auto)
  --zero-copy MODE     auto, on, off (default auto)
  --port N             UDP port to steer; repeatable (default 9993)
  --bpffs PATH         bpffs mount for pinned maps (default /run/ztplane/bpffs)
  --instance NAME      name of this dataplane instance (default \"default\")
  --duration SECS      stop after SECS seconds
  --stats-interval S   seconds between rate lines (default 1; 0 = none)
  --stats-json PATH    also write the final statistics to PATH
  --ready-file PATH    create PATH once forwarding has started";

impl FwdConfig {
    pub fn from_args(args: &[String]) -> Result<Self, DataplaneError> {
        let mut config = FwdConfig::default();
        let mut ports = Vec::new();
        let mut it = args.iter();
        while let Some(flag) = it.next() {
            let mut value =
                |name: &str| it.next().cloned().ok_or_else(|| DataplaneError::Config(format!("{name} needs a value")));
            match flag.as_str() {
                "--iface" => config.ifaces.push(value(flag)?),
                "--queues" => config.queues = Some(parse_list(&value(flag)?, flag)?),
                "--cores" => config.cores = Some(parse_cores(&value(flag)?, flag)?),
                "--umem-frames" => config.umem_frames = parse_num(&value(flag)?, flag)?,
                "--frame-size" => config.frame_size = parse_num(&value(flag)?, flag)?,
                "--ring-size" => config.ring_size = parse_num(&value(flag)?, flag)?,
                "--xdp-mode" => config.xdp_mode = value(flag)?.parse().map_err(DataplaneError::Config)?,
                "--zero-copy" => config.zero_copy = value(flag)?.parse().map_err(DataplaneError::Config)?,
                "--port" => ports.push(parse_num::<u16>(&value(flag)?, flag)?),
                "--bpffs" => config.bpffs = PathBuf::from(value(flag)?),
                "--instance" => config.instance = value(flag)?,
                "--duration" => config.duration = Some(parse_secs(&value(flag)?, flag)?),
                "--stats-interval" => config.stats_interval = parse_secs(&value(flag)?, flag)?,
                "--stats-json" => config.stats_json = Some(PathBuf::from(value(flag)?)),
                "--ready-file" => config.ready_file = Some(PathBuf::from(value(flag)?)),
                other => return Err(DataplaneError::Config(format!("unknown option {other:?}\n{FWD_USAGE}"))),
            }
        }
        if !ports.is_empty() {
            config.ports = ports;
        }
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), DataplaneError> {
        let bad = |m: String| Err(DataplaneError::Config(m));
        if self.ifaces.len() != 2 {
            return bad(format!("fwd needs exactly two --iface (got {})", self.ifaces.len()));
        }
        if self.ifaces[0] == self.ifaces[1] {
            return bad("the two interfaces must differ".into());
        }
        if !matches!(self.frame_size, 2048 | 4096) {
            return bad(format!("--frame-size {} must be 2048 or 4096", self.frame_size));
        }
        if !self.ring_size.is_power_of_two() || !(64..=16384).contains(&self.ring_size) {
            return bad(format!("--ring-size {} must be a power of two in 64..=16384", self.ring_size));
        }
        if !(256..=1 << 22).contains(&self.umem_frames) {
            return bad(format!("--umem-frames {} must be in 256..=4194304", self.umem_frames));
        }
        if self.ports.contains(&0) || self.ports.len() > ztplane_ebpf_common::MAX_PORTS as usize {
            return bad("--port must be 1..=65535, at most 64 ports".into());
        }
        if self.instance.is_empty() || !self.instance.chars().all(|c| c.is_ascii_alphanumeric() || "-_".contains(c)) {
            return bad(format!("--instance {:?}: use letters, digits, - and _", self.instance));
        }
        if let Some(cores) = &self.cores
            && (cores.is_empty() || cores.len() > 64)
        {
            return bad("--cores must name 1 to 64 cores".into());
        }
        Ok(())
    }
}

pub(crate) fn parse_num<T: std::str::FromStr>(text: &str, flag: &str) -> Result<T, DataplaneError> {
    text.parse().map_err(|_| DataplaneError::Config(format!("{flag} {text:?} is not a valid number")))
}

pub(crate) fn parse_secs(text: &str, flag: &str) -> Result<Duration, DataplaneError> {
    let secs: f64 = parse_num(text, flag)?;
    if !(0.0..=1e7).contains(&secs) {
        return Err(DataplaneError::Config(format!("{flag} {text} out of range")));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// Parses a core list in the order given ("2-5", "1,0"): worker i runs on the i-th core and
/// serves queues i, i+W, i+2W... of the sorted queue list, so the order places queues on cores.
pub(crate) fn parse_cores(text: &str, flag: &str) -> Result<Vec<usize>, DataplaneError> {
    let mut cores: Vec<usize> = Vec::new();
    for part in text.split(',') {
        for core in parse_list(part, flag)? {
            if cores.contains(&(core as usize)) {
                return Err(DataplaneError::Config(format!("{flag} {text:?}: core {core} listed twice")));
            }
            cores.push(core as usize);
        }
    }
    Ok(cores)
}

/// Parses "0-3,5,7-8" into a sorted list without duplicates.
pub fn parse_list(text: &str, flag: &str) -> Result<Vec<u32>, DataplaneError> {
    let bad = || DataplaneError::Config(format!("{flag} {text:?}: expected a list like 0-3,5"));
    let mut out = Vec::new();
    for part in text.split(',') {
        let part = part.trim();
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b): (u32, u32) = (a.parse().map_err(|_| bad())?, b.parse().map_err(|_| bad())?);
                if a > b || b - a > 1024 {
                    return Err(bad());
                }
                out.extend(a..=b);
            }
            None => out.push(part.parse().map_err(|_| bad())?),
        }
    }
    out.sort_unstable();
    out.dedup();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn parses_a_full_command_line() {
        let c = FwdConfig::from_args(&args(
            "--iface a --iface b --queues 0-1 --cores 0,1 --port 9993 --port 9994 --xdp-mode generic --duration 2.5",
        ))
        .unwrap();
        assert_eq!(c.ifaces, ["a", "b"]);
        assert_eq!(c.queues, Some(vec![0, 1]));
        assert_eq!(c.cores, Some(vec![0, 1]));
        assert_eq!(c.ports, [9993, 9994]);
        assert_eq!(c.xdp_mode, AttachMode::Generic);
        assert_eq!(c.duration, Some(Duration::from_millis(2500)));
    }

    #[test]
    fn rejects_bad_values_with_the_flag_named() {
        for (line, needle) in [
            ("--iface a", "exactly two"),
            ("--iface a --iface a", "differ"),
            ("--iface a --iface b --queues 3-1", "--queues"),
            ("--iface a --iface b --frame-size 1000", "--frame-size"),
            ("--iface a --iface b --ring-size 100", "--ring-size"),
            ("--iface a --iface b --umem-frames 1", "--umem-frames"),
            ("--iface a --iface b --port 0", "--port"),
            ("--iface a --iface b --xdp-mode turbo", "XDP mode"),
            ("--iface a --iface b --bogus", "unknown option"),
            ("--iface a --iface b --instance ../x", "--instance"),
            ("--iface a --iface b --duration", "needs a value"),
        ] {
            let err = FwdConfig::from_args(&args(line)).unwrap_err().to_string();
            assert!(err.contains(needle), "{line:?} gave {err:?}");
        }
    }

    #[test]
    fn lists_expand_and_dedup() {
        assert_eq!(parse_list("0-2,2,5", "--q").unwrap(), [0, 1, 2, 5]);
        assert!(parse_list("a", "--q").is_err());
        assert_eq!(parse_cores("3,1-2", "--cores").unwrap(), [3, 1, 2]);
        assert!(parse_cores("1,1", "--cores").is_err());
    }
}

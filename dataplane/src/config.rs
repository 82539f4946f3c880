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

/// `ztplane fwd`'s command line as typed; [`FwdCli::into_config`] fills in the defaults of
/// [`FwdConfig::default`] and validates the whole.
///
/// Every value option takes the next word as its value, even one that starts with `-` (as the
/// hand-written parser did), and a repeated option that is not repeatable keeps its last value.
#[derive(clap::Parser, Clone, Debug, Default)]
#[command(args_override_self = true)]
pub struct FwdCli {
    /// interface to forward between; exactly two: frames steered on one leave on the other
    #[arg(long = "iface", value_name = "IF", allow_hyphen_values = true)]
    pub ifaces: Vec<String>,
    #[command(flatten)]
    pub workers: WorkerOptions,
    /// bytes per frame: 2048 or 4096 (default 4096)
    #[arg(long, value_name = "N", value_parser = number_arg::<u32>, allow_hyphen_values = true)]
    pub frame_size: Option<u32>,
    /// UDP port to steer; repeatable (default 9993)
    #[arg(long = "port", value_name = "N", value_parser = number_arg::<u16>, allow_hyphen_values = true)]
    pub ports: Vec<u16>,
    /// seconds between rate lines (default 1; 0 = none)
    #[arg(long, value_name = "S", value_parser = secs_arg, allow_hyphen_values = true)]
    pub stats_interval: Option<Duration>,
    /// also write the final statistics to PATH
    #[arg(long, value_name = "PATH", allow_hyphen_values = true)]
    pub stats_json: Option<PathBuf>,
}

/// The AF_XDP worker options `ztplane fwd` and `ztplane node` share (flattened into both).
#[derive(clap::Args, Clone, Debug, Default)]
pub struct WorkerOptions {
    /// RX queues to serve on every interface, e.g. 0-3 or 0,2 (default: all)
    #[arg(long, value_name = "LIST", value_parser = list_arg, allow_hyphen_values = true)]
    pub queues: Option<::std::vec::Vec<u32>>,
    /// cores for the workers in order, one worker each; worker i serves queues i, i+W, ...
    /// (default: one worker per queue)
    #[arg(long, value_name = "LIST", value_parser = cores_arg, allow_hyphen_values = true)]
    pub cores: Option<::std::vec::Vec<usize>>,
    /// frames per worker UMEM (default 4096)
    #[arg(long, value_name = "N", value_parser = number_arg::<u32>, allow_hyphen_values = true)]
    pub umem_frames: Option<u32>,
    /// AF_XDP ring size, power of two (default 2048)
    #[arg(long, value_name = "N", value_parser = number_arg::<u32>, allow_hyphen_values = true)]
    pub ring_size: Option<u32>,
    /// auto (native, else generic), native, generic (default auto)
    #[arg(long, value_name = "MODE", value_parser = xdp_mode_arg, allow_hyphen_values = true)]
    pub xdp_mode: Option<AttachMode>,
    /// auto, on, off (default auto)
    #[arg(long, value_name = "MODE", value_parser = zero_copy_arg, allow_hyphen_values = true)]
    pub zero_copy: Option<ZeroCopy>,
    /// bpffs mount for pinned maps (default /run/ztplane/bpffs)
    #[arg(long, value_name = "PATH", allow_hyphen_values = true)]
    pub bpffs: Option<PathBuf>,
    /// name of this dataplane instance (default "default")
    #[arg(long, value_name = "NAME", allow_hyphen_values = true)]
    pub instance: Option<String>,
    /// stop after SECS seconds
    #[arg(long, value_name = "SECS", value_parser = secs_arg, allow_hyphen_values = true)]
    pub duration: Option<Duration>,
    /// create PATH once running
    #[arg(long, value_name = "PATH", allow_hyphen_values = true)]
    pub ready_file: Option<PathBuf>,
}

impl FwdCli {
    /// The settings, defaults filled in, validated as a whole.
    pub fn into_config(self) -> Result<FwdConfig, DataplaneError> {
        let d = FwdConfig::default();
        let w = self.workers;
        let config = FwdConfig {
            ifaces: self.ifaces,
            queues: w.queues,
            cores: w.cores,
            umem_frames: w.umem_frames.unwrap_or(d.umem_frames),
            frame_size: self.frame_size.unwrap_or(d.frame_size),
            ring_size: w.ring_size.unwrap_or(d.ring_size),
            xdp_mode: w.xdp_mode.unwrap_or(d.xdp_mode),
            zero_copy: w.zero_copy.unwrap_or(d.zero_copy),
            ports: if self.ports.is_empty() { d.ports } else { self.ports },
            bpffs: w.bpffs.unwrap_or(d.bpffs),
            instance: w.instance.unwrap_or(d.instance),
            duration: w.duration,
            stats_interval: self.stats_interval.unwrap_or(d.stats_interval),
            stats_json: self.stats_json,
            ready_file: w.ready_file,
        };
        config.validate()?;
        Ok(config)
    }
}

impl FwdConfig {
    /// Parses the words after `ztplane fwd` (the binary parses its whole command line with clap
    /// and calls [`FwdCli::into_config`]; this is the same for callers that hold the words).
    pub fn from_args(args: &[String]) -> Result<Self, DataplaneError> {
        use clap::Parser;
        let cli = FwdCli::try_parse_from(std::iter::once("ztplane fwd").chain(args.iter().map(String::as_str)))
            .map_err(|e| DataplaneError::Config(ztplane_host::cli::clap_error_line(&e)))?;
        cli.into_config()
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

/// clap value parser: a number of type `T`.
pub(crate) fn number_arg<T: std::str::FromStr>(text: &str) -> Result<T, String> {
    text.parse().map_err(|_| "not a valid number".to_string())
}

/// clap value parser: seconds, fractions allowed, 0 to 10^7.
pub(crate) fn secs_arg(text: &str) -> Result<Duration, String> {
    let secs: f64 = number_arg(text)?;
    if !(0.0..=1e7).contains(&secs) {
        return Err("out of range (0 to 10000000 seconds)".into());
    }
    Ok(Duration::from_secs_f64(secs))
}

/// clap value parser: an XDP attach mode.
pub(crate) fn xdp_mode_arg(text: &str) -> Result<AttachMode, String> {
    text.parse()
}

/// clap value parser: a zero-copy setting.
pub(crate) fn zero_copy_arg(text: &str) -> Result<ZeroCopy, String> {
    text.parse()
}

/// clap value parser: a queue list, see [`parse_list`].
pub(crate) fn list_arg(text: &str) -> Result<Vec<u32>, String> {
    let bad = || "expected a list like 0-3,5".to_string();
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

/// clap value parser: a core list in the order given ("2-5", "1,0"): worker i runs on the i-th
/// core and serves queues i, i+W, i+2W... of the sorted queue list, so the order places queues on
/// cores.
pub(crate) fn cores_arg(text: &str) -> Result<Vec<usize>, String> {
    let mut cores: Vec<usize> = Vec::new();
    for part in text.split(',') {
        for core in list_arg(part)? {
            if cores.contains(&(core as usize)) {
                return Err(format!("core {core} listed twice"));
            }
            cores.push(core as usize);
        }
    }
    Ok(cores)
}

/// Parses "0-3,5,7-8" into a sorted list without duplicates.
pub fn parse_list(text: &str, flag: &str) -> Result<Vec<u32>, DataplaneError> {
    list_arg(text).map_err(|e| DataplaneError::Config(format!("{flag} {text:?}: {e}")))
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
            ("--iface a --iface b --bogus", "unexpected argument '--bogus'"),
            ("--iface a --iface b --port x", "--port"),
            ("--iface a --iface b --duration -1", "--duration"),
            ("--iface a --iface b --cores 1,1", "core 1 listed twice"),
            ("--iface a --iface b --instance ../x", "--instance"),
            ("--iface a --iface b --duration", "a value is required for '--duration <SECS>'"),
        ] {
            let err = FwdConfig::from_args(&args(line)).unwrap_err().to_string();
            assert!(err.contains(needle), "{line:?} gave {err:?}");
        }
    }

    #[test]
    fn lists_expand_and_dedup() {
        assert_eq!(parse_list("0-2,2,5", "--q").unwrap(), [0, 1, 2, 5]);
        assert!(parse_list("a", "--q").is_err());
        assert_eq!(cores_arg("3,1-2").unwrap(), [3, 1, 2]);
        assert!(cores_arg("1,1").is_err());
    }

    #[test]
    fn defaults_and_hand_parser_habits() {
        let c = FwdConfig::from_args(&args("--iface a --iface b")).unwrap();
        let d = FwdConfig::default();
        assert_eq!((c.umem_frames, c.frame_size, c.ring_size), (d.umem_frames, d.frame_size, d.ring_size));
        assert_eq!((c.ports, c.bpffs, c.instance), (d.ports, d.bpffs, d.instance));
        assert_eq!((c.xdp_mode, c.zero_copy, c.stats_interval), (d.xdp_mode, d.zero_copy, d.stats_interval));
        assert_eq!((c.queues, c.cores, c.duration), (None, None, None));
        // A repeated option keeps its last value; a value may start with '-'.
        let c = FwdConfig::from_args(&args("--iface a --iface b --instance x --instance y --xdp-mode skb")).unwrap();
        assert_eq!((c.instance.as_str(), c.xdp_mode), ("y", AttachMode::Generic));
        let c = FwdConfig::from_args(&args("--iface a --iface b --instance -x")).unwrap();
        assert_eq!(c.instance, "-x");
        let err = FwdConfig::from_args(&args("--iface a --iface b --duration --port")).unwrap_err().to_string();
        assert!(err.contains("'--duration <SECS>': not a valid number"), "{err}");
    }
}

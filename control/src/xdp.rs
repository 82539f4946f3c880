//! `ztplanectl xdp`: reads the steering counters and changes the steered UDP ports of a running
//! dataplane through the maps it pins under `<bpffs>/<instance>/<iface>/`.
use anyhow::{Context, Result, bail};
use aya::maps::{HashMap as BpfHashMap, Map, MapData, PerCpuArray};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use ztplane_ebpf_common::{COUNTERS_MAP, Counter, MAX_PORTS, PORTS_MAP};

const DEFAULT_BPFFS: &str = "/run/ztplane/bpffs";

#[derive(clap::Args, Debug)]
#[command(args_override_self = true)]
pub struct XdpArgs {
    #[command(subcommand)]
    pub command: XdpCmd,
    /// name of the dataplane instance (default "default")
    #[arg(long, global = true, value_name = "NAME", allow_hyphen_values = true)]
    pub instance: Option<String>,
    /// bpffs mount with the pinned maps (default /run/ztplane/bpffs)
    #[arg(long, global = true, value_name = "PATH", allow_hyphen_values = true)]
    pub bpffs: Option<PathBuf>,
}

#[derive(clap::Subcommand, Debug)]
pub enum XdpCmd {
    /// the steering counters of every interface, one JSON line each
    Stats,
    /// the steered UDP ports
    #[command(subcommand)]
    Ports(PortsCmd),
}

#[derive(clap::Subcommand, Debug)]
pub enum PortsCmd {
    /// the steered UDP ports of every interface, one JSON line each
    List,
    /// steer a UDP port on every interface
    Add {
        /// UDP port, 1 to 65535
        #[arg(value_name = "PORT", allow_hyphen_values = true)]
        port: String,
    },
    /// stop steering a UDP port on every interface
    Remove {
        /// UDP port, 1 to 65535
        #[arg(value_name = "PORT", allow_hyphen_values = true)]
        port: String,
    },
}

pub fn run(args: &XdpArgs) -> Result<ExitCode> {
    let instance = args.instance.clone().unwrap_or_else(|| "default".to_string());
    let bpffs = args.bpffs.clone().unwrap_or_else(|| PathBuf::from(DEFAULT_BPFFS));
    let dir = bpffs.join(&instance);
    let ifaces = interfaces(&dir)?;
    // The port is checked once the instance is found (a bad one is an error, exit 1, as before clap).
    match &args.command {
        XdpCmd::Stats => {
            for iface in &ifaces {
                let counters = read_counters(&dir.join(iface))?;
                let mut record = json!({"iface": iface});
                for counter in Counter::ALL {
                    record[counter.name()] = json!(counters[counter as usize]);
                }
                println!("{record}");
            }
        }
        XdpCmd::Ports(PortsCmd::List) => {
            for iface in &underlay(&dir, &ifaces) {
                let mut ports = ports_map(&dir.join(iface))?.keys().collect::<Result<Vec<u16>, _>>()?;
                ports.sort_unstable();
                println!("{}", json!({"iface": iface, "ports": ports}));
            }
        }
        XdpCmd::Ports(cmd @ (PortsCmd::Add { port } | PortsCmd::Remove { port })) => {
            let verb = if matches!(cmd, PortsCmd::Add { .. }) { "add" } else { "remove" };
            let port: u16 = port.parse().ok().filter(|&p| p != 0).with_context(|| format!("bad port {port:?}"))?;
            let ifaces = underlay(&dir, &ifaces);
            for iface in &ifaces {
                let mut map = ports_map(&dir.join(iface))?;
                if verb == "add" {
                    let present = map.get(&port, 0).is_ok();
                    if !present && map.keys().count() >= MAX_PORTS as usize {
                        bail!("{iface}: already {MAX_PORTS} ports steered");
                    }
                    map.insert(port, 1, 0).with_context(|| format!("{iface}: adding port {port}"))?;
                } else if map.remove(&port).is_err() {
                    bail!("{iface}: port {port} is not steered");
                }
            }
            eprintln!("ztplanectl: port {port} {}d on {}", verb, ifaces.join(", "));
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn interfaces(dir: &Path) -> Result<Vec<String>> {
    let entries = std::fs::read_dir(dir).with_context(|| {
        format!("no running instance at {} (is ztplane running? right --instance/--bpffs?)", dir.display())
    })?;
    // One directory per interface; files beside them are the node's own maps (link_quality).
    let mut names: Vec<String> = entries
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    if names.is_empty() {
        bail!("instance at {} has no interfaces", dir.display());
    }
    Ok(names)
}

/// The underlay interfaces among `ifaces`: a bridged LAN port (gateway mode) steers every frame
/// and has no port map.
fn underlay(dir: &Path, ifaces: &[String]) -> Vec<String> {
    ifaces.iter().filter(|i| dir.join(i).join(PORTS_MAP).exists()).cloned().collect()
}

fn pinned(path: &Path) -> Result<Map> {
    let data = MapData::from_pin(path).with_context(|| format!("opening pinned map {}", path.display()))?;
    Map::from_map_data(data).with_context(|| format!("map {}", path.display()))
}

fn ports_map(dir: &Path) -> Result<BpfHashMap<MapData, u16, u8>> {
    Ok(BpfHashMap::try_from(pinned(&dir.join(PORTS_MAP))?)?)
}

fn read_counters(dir: &Path) -> Result<[u64; 4]> {
    let map: PerCpuArray<MapData, u64> = PerCpuArray::try_from(pinned(&dir.join(COUNTERS_MAP))?)?;
    let mut out = [0u64; 4];
    for counter in Counter::ALL {
        out[counter as usize] = map.get(&(counter as u32), 0)?.iter().sum();
    }
    Ok(out)
}

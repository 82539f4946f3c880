//! `ztplanectl moon create`: makes a node a root of its own site (a moon), as `zerotier-idtool
//! initmoon` + `genmoon` do for zerotier-one (zerotier-protocol.md, worlds): a world of type moon
//! whose ID is the node's address and whose one root is the node itself at its stable endpoints,
//! signed with the node's key. It is written to the node's `moons.d/`, so the node orbits itself
//! and acts as a root (WHOIS, relaying, rendezvous, multicast gathering) from its next start; the
//! same file in a member's `moons.d/` (zerotier-one or ztplane) makes the member use it.

use anyhow::{Context, Result, bail, ensure};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use ztplane_host::home::Home;
use ztplane_protocol::world::{MAX_ENDPOINTS_PER_ROOT, Root, WORLD_TYPE_MOON, World};

#[derive(clap::Subcommand, Debug)]
pub enum MoonCmd {
    /// sign a moon with this node as its root; written to DIR/moons.d/ (and --out)
    Create {
        /// the node's home directory (its identity signs the moon; created if missing)
        #[arg(long, value_name = "DIR", allow_hyphen_values = true)]
        home: PathBuf,
        /// where members reach the root: IP/PORT as zerotier-one writes it (or IP:PORT); repeatable
        #[arg(long = "endpoint", value_name = "IP/PORT", required = true, allow_hyphen_values = true)]
        endpoints: Vec<String>,
        /// also write the moon file here (to hand to members)
        #[arg(long, value_name = "FILE", allow_hyphen_values = true)]
        out: Option<PathBuf>,
    },
}

pub fn run(cmd: &MoonCmd) -> Result<ExitCode> {
    match cmd {
        MoonCmd::Create { home, endpoints, out } => {
            let endpoints = endpoints.iter().map(|e| parse_endpoint(e)).collect::<Result<Vec<_>>>()?;
            let (path, id) = create(home, &endpoints, out.as_deref(), unix_ms())?;
            println!("{}", path.display());
            eprintln!(
                "ztplanectl: moon {id:016x} written; members orbit it with the file in their moons.d/ \
                 (restart this node to serve it)"
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Signs the moon of the node at `home` (its identity, created if missing) with `endpoints`,
/// timestamped `now_ms` (a newer moon replaces an older one at members, VL1 world updates);
/// writes `moons.d/<id>.moon` and `out`. Returns the file written in the home and the moon ID.
pub fn create(home: &Path, endpoints: &[SocketAddr], out: Option<&Path>, now_ms: u64) -> Result<(PathBuf, u64)> {
    ensure!(!endpoints.is_empty(), "a moon needs at least one --endpoint");
    ensure!(endpoints.len() <= MAX_ENDPOINTS_PER_ROOT, "at most {MAX_ENDPOINTS_PER_ROOT} endpoints per root");
    let home_dir = Home::open(home).with_context(|| format!("home {}", home.display()))?;
    let (identity, created) =
        home_dir.load_or_create_identity().with_context(|| format!("identity in {}", home.display()))?;
    if created {
        eprintln!("ztplanectl: generated a new identity {} in {}", identity.address(), home.display());
    }
    let id = identity.address().as_u64();
    let root = Root { identity: identity.to_public(), stable_endpoints: endpoints.to_vec() };
    let mut world = World::unsigned(WORLD_TYPE_MOON, id, vec![root]);
    world.timestamp = now_ms;
    world.sign(&identity).context("signing the moon")?;
    let bytes = world.encode();
    home_dir
        .save_world(WORLD_TYPE_MOON, id, &bytes)
        .with_context(|| format!("saving the moon in {}", home.display()))?;
    let path = home.join("moons.d").join(format!("{id:016x}.moon"));
    if let Some(out) = out {
        std::fs::write(out, &bytes).with_context(|| format!("writing {}", out.display()))?;
    }
    Ok((path, id))
}

/// `198.18.0.1/9993` (zerotier-one's notation) or `198.18.0.1:9993` / `[::1]:9993`.
fn parse_endpoint(text: &str) -> Result<SocketAddr> {
    if let Ok(a) = text.parse::<SocketAddr>() {
        return Ok(a);
    }
    let Some((ip, port)) = text.rsplit_once('/') else { bail!("endpoint {text:?} is not IP/PORT") };
    let ip: std::net::IpAddr = ip.parse().with_context(|| format!("endpoint {text:?}: bad IP"))?;
    let port: u16 = port.parse().ok().filter(|p| *p != 0).with_context(|| format!("endpoint {text:?}: bad port"))?;
    Ok(SocketAddr::new(ip, port))
}

fn unix_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signed_moon_of_the_node_itself_that_the_home_loads_back() {
        let dir = std::env::temp_dir().join(format!("ztplanectl-moon-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let out = dir.join("handout.moon");
        std::fs::create_dir_all(&dir).unwrap();
        let endpoints = [parse_endpoint("198.18.0.1/9993").unwrap(), parse_endpoint("198.18.1.1:9993").unwrap()];
        let (path, id) = create(&dir.join("home"), &endpoints, Some(&out), 1_800_000_000_000).unwrap();
        let home = Home::open(dir.join("home")).unwrap();
        let (identity, created) = home.load_or_create_identity().unwrap();
        assert!(!created);
        assert_eq!(id, identity.address().as_u64());
        let moons = home.load_moons().unwrap();
        assert_eq!(moons.len(), 1);
        let moon = &moons[0];
        assert!(moon.verify(), "the moon's signature does not verify");
        assert_eq!((moon.world_type, moon.id, moon.timestamp), (WORLD_TYPE_MOON, id, 1_800_000_000_000));
        assert_eq!(moon.roots[0].identity.address(), identity.address());
        assert_eq!(moon.roots[0].stable_endpoints, endpoints);
        assert_eq!(std::fs::read(&out).unwrap(), std::fs::read(&path).unwrap());
        assert!(parse_endpoint("198.18.0.1").is_err() && parse_endpoint("x/9993").is_err());
        assert!(create(&dir.join("home"), &[], None, 1).is_err());
        let _ = std::fs::remove_dir_all(&dir);
    }
}

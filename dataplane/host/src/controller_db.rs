//! The network controller's state in `DIR/controller.d`, laid out as zerotier-one 1.14.1's FileDB
//! lays it out, so either can take over the other's networks:
//!
//! | file | holds |
//! |---|---|
//! | `controller.d/network/<16 hex>.json` | a network record (compact JSON, keys in byte order) |
//! | `controller.d/network/<16 hex>/member/<10 hex>.json` | a member record |
//!
//! Loaded once at start into a [`NetworkController`]; afterwards every [`StoreChange`] it reports
//! is written through (temporary file + rename). Unlike upstream, which skips a record it cannot
//! read, a damaged record stops the node with a [`HomeError::ControllerRecordCorrupt`] naming the
//! file: skipping it would silently drop a network or a member's authorization. Other names in
//! these directories are ignored, as upstream does. `controller.d` is created (mode 0700) with the
//! first record.

use crate::home::{HomeError, list_dir, parse_hex_id, read_required, write_atomic};
use std::fs::{self, DirBuilder};
use std::io;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use ztplane_controller::{NetworkController, StoreChange};
use ztplane_crypto::Address;
use ztplane_protocol::network::NetworkId;

/// Largest record read (a network with thousands of rules is still far below).
const MAX_RECORD: u64 = 16 << 20;

/// `DIR/controller.d`.
#[derive(Debug, Clone)]
pub struct ControllerDb {
    pub dir: PathBuf,
}

/// How much was loaded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Loaded {
    pub networks: usize,
    pub members: usize,
}

impl ControllerDb {
    /// The database of the home directory `home`.
    pub fn new(home: &Path) -> Self {
        ControllerDb { dir: home.join("controller.d") }
    }

    fn networks_dir(&self) -> PathBuf {
        self.dir.join("network")
    }

    fn network_file(&self, id: NetworkId) -> PathBuf {
        self.networks_dir().join(format!("{:016x}.json", id.0))
    }

    fn members_dir(&self, id: NetworkId) -> PathBuf {
        self.networks_dir().join(format!("{:016x}", id.0)).join("member")
    }

    /// Gives `controller` every stored network and member.
    pub fn load_into(&self, controller: &mut NetworkController) -> Result<Loaded, HomeError> {
        let mut loaded = Loaded::default();
        for (name, path) in list_dir(&self.networks_dir())? {
            let Some(id) = name.strip_suffix(".json").and_then(|n| parse_hex_id(n, 16)) else { continue };
            if !path.is_file() {
                continue;
            }
            let corrupt = |reason: String| HomeError::ControllerRecordCorrupt { path: path.clone(), reason };
            let record = read_json(&path)?;
            let found = controller.load_network(record).map_err(|e| corrupt(e.to_string()))?;
            if found.0 != id {
                return Err(corrupt(format!("it holds network {found}, but its name says {id:016x}")));
            }
            loaded.networks += 1;
            for (name, path) in list_dir(&self.members_dir(found))? {
                let Some(address) = name.strip_suffix(".json").and_then(|n| parse_hex_id(n, 10)) else { continue };
                if !path.is_file() {
                    continue;
                }
                let corrupt = |reason: String| HomeError::ControllerRecordCorrupt { path: path.clone(), reason };
                let record = read_json(&path)?;
                let member = controller.load_member(found, record).map_err(|e| corrupt(e.to_string()))?;
                if member.as_u64() != address {
                    return Err(corrupt(format!("it holds member {member}, but its name says {address:010x}")));
                }
                loaded.members += 1;
            }
        }
        Ok(loaded)
    }

    /// Writes or removes what changed.
    pub fn apply(&self, change: &StoreChange) -> Result<(), HomeError> {
        match change {
            StoreChange::Network { id, record } => {
                self.ensure_dir(&self.networks_dir())?;
                write_atomic(&self.network_file(*id), &to_bytes(record), 0o644)
            }
            StoreChange::Member { network, address, record } => {
                let dir = self.members_dir(*network);
                self.ensure_dir(&dir)?;
                write_atomic(&member_file(&dir, *address), &to_bytes(record), 0o644)
            }
            StoreChange::NetworkDeleted { id } => {
                remove(&self.network_file(*id))?;
                let dir = self.networks_dir().join(format!("{:016x}", id.0));
                match fs::remove_dir_all(&dir) {
                    Ok(()) => Ok(()),
                    Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
                    Err(source) => Err(HomeError::Write { path: dir, source }),
                }
            }
            StoreChange::MemberDeleted { network, address } => {
                remove(&member_file(&self.members_dir(*network), *address))
            }
        }
    }

    /// Creates `dir` and its parents up to `controller.d`, all mode 0700 (upstream locks the
    /// database directory down the same way).
    fn ensure_dir(&self, dir: &Path) -> Result<(), HomeError> {
        match DirBuilder::new().recursive(true).mode(0o700).create(dir) {
            Ok(()) => Ok(()),
            Err(source) => Err(HomeError::Write { path: dir.to_path_buf(), source }),
        }
    }
}

fn member_file(dir: &Path, address: Address) -> PathBuf {
    dir.join(format!("{address}.json"))
}

fn read_json(path: &Path) -> Result<serde_json::Value, HomeError> {
    let bytes = read_required(path, MAX_RECORD)?;
    serde_json::from_slice(&bytes)
        .map_err(|e| HomeError::ControllerRecordCorrupt { path: path.to_path_buf(), reason: format!("not JSON: {e}") })
}

/// Compact JSON, as upstream's `jsonDump(record, -1)`; the records' keys are already in order.
fn to_bytes(record: &serde_json::Value) -> Vec<u8> {
    serde_json::to_vec(record).unwrap_or_default()
}

fn remove(path: &Path) -> Result<(), HomeError> {
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(HomeError::Write { path: path.to_path_buf(), source }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use ztplane_controller::api;
    use ztplane_node::Instant;

    struct Dir(PathBuf);
    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    fn controller() -> NetworkController {
        let nodes = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/conformance/zt-1.14.1/nodes");
        let text = fs::read_to_string(nodes.join("c.identity.secret")).unwrap();
        NetworkController::new(text.trim().parse().unwrap(), 1_790_000_000_000, 5)
    }

    fn drain(c: &mut NetworkController, db: &ControllerDb) {
        while let Some(change) = c.poll_store() {
            db.apply(&change).unwrap();
        }
    }

    #[test]
    fn records_round_trip_and_damage_is_named() {
        let dir = Dir(std::env::temp_dir().join(format!("ztplane-controller-db-{}", std::process::id())));
        let db = ControllerDb::new(&dir.0);
        let mut c = controller();
        let now = Instant::from_millis(10);
        let created = api::handle(&mut c, now, "POST", "/controller/network", Some(&json!({"name": "t"})));
        let nwid = created.body.unwrap()["id"].as_str().unwrap().to_string();
        let member = format!("/controller/network/{nwid}/member/cfe2482597");
        api::handle(&mut c, now, "POST", &member, Some(&json!({"authorized": true})));
        api::handle(&mut c, now, "POST", &format!("/controller/network/{nwid}/member/f2281a769d"), None);
        drain(&mut c, &db);
        let network_file = dir.0.join(format!("controller.d/network/{nwid}.json"));
        let text = fs::read_to_string(&network_file).unwrap();
        assert!(text.starts_with(r#"{"authTokens":[null],"authorizationEndpoint":"","#), "{text}");
        assert!(dir.0.join(format!("controller.d/network/{nwid}/member/cfe2482597.json")).is_file());

        let mut copy = controller();
        assert_eq!(db.load_into(&mut copy).unwrap(), Loaded { networks: 1, members: 2 });
        let get = |c: &mut NetworkController, path: &str| api::handle(c, now, "GET", path, None).body;
        for path in
            [format!("/controller/network/{nwid}"), member.clone(), format!("/controller/network/{nwid}/member")]
        {
            assert_eq!(get(&mut copy, &path), get(&mut c, &path), "{path}");
        }

        // Deleting a member and then the network removes their files and directory.
        api::handle(&mut c, now, "DELETE", &member, None);
        drain(&mut c, &db);
        assert!(!dir.0.join(format!("controller.d/network/{nwid}/member/cfe2482597.json")).exists());
        let mut copy = controller();
        assert_eq!(db.load_into(&mut copy).unwrap(), Loaded { networks: 1, members: 1 });

        // Damage: the error names the file.
        fs::write(&network_file, b"{\"id\":").unwrap();
        let err = db.load_into(&mut controller()).unwrap_err().to_string();
        assert!(err.contains(&network_file.display().to_string()) && err.contains("not JSON"), "{err}");
        fs::write(&network_file, b"{\"id\":\"0000000000000001\"}").unwrap();
        let err = db.load_into(&mut controller()).unwrap_err().to_string();
        assert!(err.contains("holds network 0000000000000001"), "{err}");

        api::handle(&mut c, now, "DELETE", &format!("/controller/network/{nwid}"), None);
        drain(&mut c, &db);
        assert!(!network_file.exists() && !dir.0.join(format!("controller.d/network/{nwid}")).exists());
        assert_eq!(db.load_into(&mut controller()).unwrap(), Loaded::default());
    }
}

//! The node's home directory, laid out exactly as zerotier-one 1.14.1 lays out its own so that an operator can
//! swap one for the other (zerotier-vl2.md §1.1 persistent state, §7.1 `devicemap`, §7.2 per-network policy):
//!
//! | file | here |
//! |---|---|
//! | `identity.secret`, `identity.public` | [`Home::load_or_create_identity`] |
//! | `planet` | [`Home::load_planet`], [`Home::save_world`] |
//! | `moons.d/<16 hex>.moon` | [`Home::load_moons`], [`Home::save_world`] |
//! | `peers.d/<10 hex>.peer` | [`Home::load_peers`], [`Home::save_peer`] |
//! | `networks.d/<16 hex>.conf` | [`Home::load_networks`], [`Home::save_network`], [`Home::delete_network`] |
//! | `networks.d/<16 hex>.local.conf` | [`Home::network_policy`], [`Home::save_network_policy`] |
//! | `devicemap` | [`Home::device_name_hint`], [`Home::remember_device_name`] |
//! | `local.conf` | [`Home::local_conf`], [`Home::primary_port`] |
//!
//! Where upstream is lenient in a way that loses state — it silently generates a new identity when
//! `identity.secret` does not parse, which changes the node's address and drops it from every network —
//! this module refuses to start instead and says which file is wrong and what to do about it. Every
//! [`HomeError`] message names the file and ends with the operator's next step.
//!
//! All writes go to a temporary file in the same directory and are renamed into place, so a crash leaves
//! either the old or the new content, never a torn file.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::net::IpAddr;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use serde_json::Value;
use ztplane_crypto::{Address, CryptoError, Identity};
use ztplane_node::NodeConfig;
use ztplane_protocol::dictionary::Dictionary;
use ztplane_protocol::network::NetworkId;
use ztplane_protocol::world::{WORLD_TYPE_MOON, WORLD_TYPE_PLANET, World};

/// `identity.secret` in its complete form: `address(10):0:public(128):private(128)`.
const SECRET_IDENTITY_LEN: usize = 10 + 3 + 128 + 1 + 128;
/// Peer cache files older than this are deleted at start-up (OneService cleans `peers.d` the same way).
pub const PEER_CACHE_MAX_AGE: Duration = Duration::from_secs(30 * 24 * 3600);
/// zerotier-one's default UDP port (VL1 §1).
pub const DEFAULT_PRIMARY_PORT: u16 = 9993;

/// Read caps: every file here is small; a huge one is junk and must not be slurped into memory.
const MAX_IDENTITY_FILE: u64 = 4096;
const MAX_WORLD_FILE: u64 = 64 * 1024;
const MAX_PEER_FILE: u64 = 64 * 1024;
const MAX_TEXT_FILE: u64 = 4 << 20;

/// Linux `IFNAMSIZ` minus the terminating NUL.
const MAX_IFNAME_LEN: usize = 15;

/// What went wrong with the home directory, phrased for the operator: each message names the file and ends
/// with what to do.
#[derive(Debug, thiserror::Error)]
pub enum HomeError {
    #[error(
        "home directory {path} exists but is not a directory: remove or rename it, or choose another home directory"
    )]
    NotADirectory { path: PathBuf },

    #[error(
        "home directory {path} is not writable ({source}): run the node as the directory's owner (root for \
         /var/lib/zerotier-one), fix its permissions, or choose another home directory"
    )]
    NotWritable { path: PathBuf, source: io::Error },

    #[error("cannot create home directory {path}: {source}: create it by hand (mode 0700) or choose another one")]
    CreateDir { path: PathBuf, source: io::Error },

    #[error("cannot read {path}: {source}: make it readable by the user the node runs as")]
    Read { path: PathBuf, source: io::Error },

    #[error("cannot write {path}: {source}: check free space and the permissions of its directory")]
    Write { path: PathBuf, source: io::Error },

    #[error(
        "{path} is corrupt: {reason}; restore it from a backup, or remove identity.secret AND identity.public to \
         create a new identity (the node then gets a new address and must be authorized again on its networks)"
    )]
    IdentityCorrupt { path: PathBuf, reason: String },

    #[error(
        "{path} is truncated ({len} bytes, a complete one is {SECRET_IDENTITY_LEN}; disk full or a crash while \
         writing?); restore it from a backup, or remove identity.secret AND identity.public to create a new \
         identity (the node then gets a new address)"
    )]
    IdentityTruncated { path: PathBuf, len: usize },

    #[error(
        "{path} holds only the public identity {address}, without its private key; put the real identity.secret \
         back from a backup, or remove identity.secret AND identity.public to create a new identity (the node then \
         gets a new address)"
    )]
    IdentityNoSecret { path: PathBuf, address: Address },

    #[error(
        "{path}: the key does not derive address {address} (the identity fails validation, so the file was \
         altered); restore it from a backup, or remove identity.secret AND identity.public to create a new identity"
    )]
    IdentityInvalid { path: PathBuf, address: Address },

    #[error(
        "{public} ({public_address}) does not match {secret} ({secret_address}): {reason}; put back the matching \
         pair, or, if identity.secret is the right identity, delete identity.public (it is re-written from \
         identity.secret at start)"
    )]
    IdentityMismatch {
        secret: PathBuf,
        public: PathBuf,
        secret_address: Address,
        public_address: Address,
        reason: &'static str,
    },

    #[error(
        "{path} is corrupt: {reason}; if identity.secret is the right identity, delete identity.public (it is \
         re-written from identity.secret at start), else restore both from a backup"
    )]
    PublicIdentityCorrupt { path: PathBuf, reason: String },

    #[error(
        "{secret} is missing but {public} exists ({address}): the node's private key was removed; restore \
         identity.secret from a backup, or also remove identity.public to create a new identity (the node then \
         gets a new address)"
    )]
    IdentitySecretMissing { secret: PathBuf, public: PathBuf, address: Address },

    #[error("cannot generate a new identity: {0}: check that the system's random source (getrandom) works")]
    GenerateIdentity(#[source] CryptoError),

    #[error("{path} is not a valid {expected} file: {reason}; replace it with a good copy or remove it")]
    WorldCorrupt { path: PathBuf, expected: &'static str, reason: String },

    #[error("{path} is a {found} file where a {expected} is expected; move it to the right place or remove it")]
    WrongWorldType { path: PathBuf, expected: &'static str, found: &'static str },

    #[error("{path} holds moon {id:016x}, but moons are found by file name; rename it to {id:016x}.moon")]
    MoonFileName { path: PathBuf, id: u64 },

    #[error("cannot save a world of type {0} (only 1 = planet and 127 = moon exist); this is a bug")]
    UnknownWorldType(u8),

    #[error(
        "{path} is not a network configuration: {reason}; replace its content with a single newline to stay \
         joined and fetch the configuration again, or remove it to leave the network"
    )]
    NetworkConfigCorrupt { path: PathBuf, reason: String },

    #[error("{path}: {reason}; fix the file (Dictionary text: key=value lines) or remove it to use the defaults")]
    NetworkPolicyInvalid { path: PathBuf, reason: String },

    #[error("{path} is not valid JSON: {source}; fix it or remove it to use the defaults")]
    LocalConfJson { path: PathBuf, source: serde_json::Error },

    #[error("{path}: {reason}; fix it or remove the setting to use the default")]
    LocalConfInvalid { path: PathBuf, reason: String },

    #[error("{name:?} is not a usable Linux interface name: {reason}")]
    InvalidDeviceName { name: String, reason: &'static str },

    #[error(
        "{path} is not a usable controller record: {reason}; fix it, restore it from a backup, or remove it (the \
         network or member it holds is then gone from the controller)"
    )]
    ControllerRecordCorrupt { path: PathBuf, reason: String },
}

/// Host policy for one network (§7.2), from `networks.d/<nwid>.local.conf`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkPolicy {
    /// Install managed addresses and routes at all (`allowManaged`, default on).
    pub allow_managed: bool,
    /// If not empty, only managed addresses/routes inside one of these prefixes (`allowManaged` given as a
    /// comma list of CIDRs).
    pub allow_managed_prefixes: Vec<(IpAddr, u8)>,
    /// Allow globally routable managed addresses and routes (`allowGlobal`, default off).
    pub allow_global: bool,
    /// Allow a managed default route (`allowDefault`, default off).
    pub allow_default: bool,
    /// Apply the network's DNS settings (`allowDNS`, default off).
    pub allow_dns: bool,
}

impl Default for NetworkPolicy {
    fn default() -> Self {
        NetworkPolicy {
            allow_managed: true,
            allow_managed_prefixes: Vec::new(),
            allow_global: false,
            allow_default: false,
            allow_dns: false,
        }
    }
}

impl NetworkPolicy {
    /// The `allowManaged` part of OneService's `checkIfManagedIsAllowed`: managed addresses are on and, when a
    /// prefix list is given, `ip/prefix_len` lies inside one of its prefixes and is not wider than it. The
    /// scope rules (loopback, link-local, multicast, `allowGlobal`, `allowDefault`) are the caller's.
    pub fn managed_prefix_allowed(&self, ip: IpAddr, prefix_len: u8) -> bool {
        self.allow_managed
            && (self.allow_managed_prefixes.is_empty()
                || self
                    .allow_managed_prefixes
                    .iter()
                    .any(|&(net, bits)| bits <= prefix_len && prefix_contains(net, bits, ip)))
    }
}

/// The home directory (for zerotier-one operators: `/var/lib/zerotier-one`).
#[derive(Debug, Clone)]
pub struct Home {
    pub dir: PathBuf,
}

impl Home {
    /// Opens `dir`, creating it (mode 0700) if it does not exist.
    pub fn open(dir: impl Into<PathBuf>) -> Result<Home, HomeError> {
        let dir = dir.into();
        match fs::metadata(&dir) {
            Ok(meta) if !meta.is_dir() => return Err(HomeError::NotADirectory { path: dir }),
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                fs::DirBuilder::new()
                    .recursive(true)
                    .mode(0o700)
                    .create(&dir)
                    .map_err(|source| HomeError::CreateDir { path: dir.clone(), source })?;
            }
            Err(source) => return Err(HomeError::Read { path: dir, source }),
        }
        // access(2) rather than a probe file: it also reports a read-only file system and leaves nothing behind.
        let c_path = std::ffi::CString::new(dir.as_os_str().as_bytes()).map_err(|_| HomeError::NotWritable {
            path: dir.clone(),
            source: io::Error::new(io::ErrorKind::InvalidInput, "path contains a NUL byte"),
        })?;
        // SAFETY: c_path is a valid NUL-terminated string that outlives the call.
        if unsafe { libc::access(c_path.as_ptr(), libc::W_OK | libc::X_OK) } != 0 {
            return Err(HomeError::NotWritable { path: dir, source: io::Error::last_os_error() });
        }
        Ok(Home { dir })
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    fn subdir(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    // ----- identity -----

    /// Loads `identity.secret` (checking it against `identity.public`), or creates a new identity if neither
    /// file exists. Returns the identity and whether it was just created.
    pub fn load_or_create_identity(&self) -> Result<(Identity, bool), HomeError> {
        let secret_path = self.path("identity.secret");
        let public_path = self.path("identity.public");
        let secret_bytes = read_optional(&secret_path, MAX_IDENTITY_FILE)?;
        let public_bytes = read_optional(&public_path, MAX_IDENTITY_FILE)?;

        let Some(secret_bytes) = secret_bytes else {
            if let Some(public_bytes) = public_bytes {
                // The address helps the operator find the right backup; if even that does not parse, say so.
                let public = parse_public(&public_path, &public_bytes)?;
                return Err(HomeError::IdentitySecretMissing {
                    secret: secret_path,
                    public: public_path,
                    address: public.address(),
                });
            }
            return self.create_identity(&secret_path, &public_path).map(|id| (id, true));
        };

        let identity = parse_secret(&secret_path, &secret_bytes)?;
        warn_if_exposed(&secret_path);
        match public_bytes {
            Some(public_bytes) => {
                let public = parse_public(&public_path, &public_bytes)?;
                if public.address() != identity.address() || public.public_key() != identity.public_key() {
                    return Err(HomeError::IdentityMismatch {
                        secret: secret_path,
                        public: public_path,
                        secret_address: identity.address(),
                        public_address: public.address(),
                        reason: if public.address() != identity.address() {
                            "they are different identities"
                        } else {
                            "same address but different public keys"
                        },
                    });
                }
                if public.has_secret() {
                    log::warn!(
                        "{} contains the private key; it is meant to be shareable: replace it with the public part \
                         only (delete it and it is re-written at start)",
                        public_path.display()
                    );
                }
            }
            None => {
                // A crash between writing the two files at creation, or an operator who deleted the public
                // half: it is derived from the secret, so re-writing it loses nothing (zerotier-one does too).
                log::info!("{} missing: re-writing it from identity.secret", public_path.display());
                write_atomic(&public_path, format!("{}\n", identity.to_public_string()).as_bytes(), 0o644)?;
            }
        }
        Ok((identity, false))
    }

    fn create_identity(&self, secret_path: &Path, public_path: &Path) -> Result<Identity, HomeError> {
        let identity = Identity::generate().map_err(HomeError::GenerateIdentity)?;
        log::info!("generated a new identity {} in {}", identity.address(), self.dir.display());
        // The secret first: if we crash before the public file is written, the next start re-derives it.
        // Mode 0600 from creation (never world-readable, even briefly); no-clobber, so an identity that
        // appeared meanwhile (a second instance) is never overwritten.
        write_new_file(secret_path, identity.to_string().as_bytes(), 0o600)?;
        write_atomic(public_path, format!("{}\n", identity.to_public_string()).as_bytes(), 0o644)?;
        Ok(identity)
    }

    // ----- worlds -----

    /// The `planet` file if present, else the built-in Earth.
    pub fn load_planet(&self) -> Result<World, HomeError> {
        let path = self.path("planet");
        match read_optional(&path, MAX_WORLD_FILE)? {
            Some(bytes) => parse_world(&path, &bytes, WORLD_TYPE_PLANET),
            None => Ok(NodeConfig::earth()),
        }
    }

    /// Every `moons.d/<16 hex id>.moon`, sorted by file name.
    pub fn load_moons(&self) -> Result<Vec<World>, HomeError> {
        let dir = self.subdir("moons.d");
        let mut moons = Vec::new();
        for (name, path) in list_dir(&dir)? {
            let Some(stem) = name.strip_suffix(".moon") else {
                continue;
            };
            let bytes = read_required(&path, MAX_WORLD_FILE)?;
            let moon = parse_world(&path, &bytes, WORLD_TYPE_MOON)?;
            // zerotier-one orbits the ID in the file name and then reads `<id>.moon`: a file under another name
            // would be ignored there and would end up duplicated by our next save.
            if parse_hex_id(stem, 16) != Some(moon.id) {
                return Err(HomeError::MoonFileName { path, id: moon.id });
            }
            moons.push(moon);
        }
        Ok(moons)
    }

    /// Persists a planet (to `planet`) or a moon (to `moons.d/<16 hex id>.moon`): [`ztplane_node::Event::SaveWorld`].
    pub fn save_world(&self, world_type: u8, id: u64, bytes: &[u8]) -> Result<(), HomeError> {
        match world_type {
            WORLD_TYPE_PLANET => write_atomic(&self.path("planet"), bytes, 0o644),
            WORLD_TYPE_MOON => {
                let dir = self.ensure_subdir("moons.d")?;
                write_atomic(&dir.join(format!("{id:016x}.moon")), bytes, 0o644)
            }
            other => Err(HomeError::UnknownWorldType(other)),
        }
    }

    // ----- peers -----

    /// Every `peers.d/*.peer`. This is a cache: unreadable files are skipped with a warning. Files older than
    /// [`PEER_CACHE_MAX_AGE`] are deleted instead of loaded.
    pub fn load_peers(&self) -> Vec<Vec<u8>> {
        let dir = self.subdir("peers.d");
        let entries = match list_dir(&dir) {
            Ok(entries) => entries,
            Err(e) => {
                log::warn!("peer cache not loaded: {e}");
                return Vec::new();
            }
        };
        let now = SystemTime::now();
        let mut peers = Vec::new();
        for (name, path) in entries {
            if !name.ends_with(".peer") {
                continue;
            }
            let modified = fs::metadata(&path).and_then(|m| m.modified());
            if let Ok(modified) = modified
                && now.duration_since(modified).is_ok_and(|age| age > PEER_CACHE_MAX_AGE)
            {
                if let Err(e) = fs::remove_file(&path) {
                    log::warn!("cannot delete stale peer cache {}: {e}", path.display());
                }
                continue;
            }
            match read_capped(&path, MAX_PEER_FILE) {
                Ok(bytes) if bytes.is_empty() => {}
                Ok(bytes) => peers.push(bytes),
                Err(e) => log::warn!("skipping peer cache {}: {e}", path.display()),
            }
        }
        peers
    }

    /// Persists `peers.d/<address>.peer`: [`ztplane_node::Event::SavePeer`].
    pub fn save_peer(&self, address: Address, cache: &[u8]) -> Result<(), HomeError> {
        let dir = self.ensure_subdir("peers.d")?;
        write_atomic(&dir.join(format!("{address}.peer")), cache, 0o644)
    }

    // ----- networks -----

    /// Every joined network: `networks.d/<16 hex>.conf` and its content (a lone `"\n"` = joined, no config
    /// yet), sorted by network ID. The content is handed to the node as is (it re-requests the config
    /// anyway); a file that is not Dictionary text at all is an error, since it means the file was damaged.
    pub fn load_networks(&self) -> Result<Vec<(NetworkId, Vec<u8>)>, HomeError> {
        let dir = self.subdir("networks.d");
        let mut networks = Vec::new();
        for (name, path) in list_dir(&dir)? {
            if name.ends_with(".local.conf") || !name.ends_with(".conf") {
                continue;
            }
            let stem = &name[..name.len() - ".conf".len()];
            let id = match parse_hex_id(stem, 16) {
                Some(0) => {
                    log::warn!("ignoring {}: network ID 0 does not exist", path.display());
                    continue;
                }
                Some(id) => id,
                None => {
                    // zerotier-one reads and writes the lower-case name only; a variant would never be updated.
                    log::warn!(
                        "ignoring {}: not a joined network (the name must be 16 lower-case hex digits + .conf)",
                        path.display()
                    );
                    continue;
                }
            };
            if !fs::metadata(&path).map(|m| m.is_file()).unwrap_or(false) {
                log::warn!("ignoring {}: not a regular file", path.display());
                continue;
            }
            let bytes = read_required(&path, MAX_TEXT_FILE)?;
            check_network_file(&bytes).map_err(|reason| HomeError::NetworkConfigCorrupt { path, reason })?;
            networks.push((NetworkId(id), bytes));
        }
        Ok(networks)
    }

    /// Persists `networks.d/<nwid>.conf`: [`ztplane_node::Event::SaveNetwork`].
    pub fn save_network(&self, network: NetworkId, dictionary: &[u8]) -> Result<(), HomeError> {
        let dir = self.ensure_subdir("networks.d")?;
        write_atomic(&dir.join(format!("{network}.conf")), dictionary, 0o644)
    }

    /// The network was left ([`ztplane_node::Event::NetworkLeft`]): removes its `.conf` and, as zerotier-one
    /// does, its `.local.conf`. Missing files are fine.
    pub fn delete_network(&self, network: NetworkId) -> Result<(), HomeError> {
        let dir = self.subdir("networks.d");
        for path in [dir.join(format!("{network}.conf")), dir.join(format!("{network}.local.conf"))] {
            match fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(source) => return Err(HomeError::Write { path, source }),
            }
        }
        Ok(())
    }

    /// The host policy of a network (§7.2) from `networks.d/<nwid>.local.conf`; defaults if absent.
    pub fn network_policy(&self, network: NetworkId) -> Result<NetworkPolicy, HomeError> {
        let path = self.subdir("networks.d").join(format!("{network}.local.conf"));
        let Some(bytes) = read_optional(&path, MAX_TEXT_FILE)? else {
            return Ok(NetworkPolicy::default());
        };
        let invalid = |reason: String| HomeError::NetworkPolicyInvalid { path: path.clone(), reason };
        let dict = Dictionary::parse(&bytes).map_err(|e| invalid(e.to_string()))?;
        let mut policy = NetworkPolicy::default();
        if let Some(value) = dict.get("allowManaged").filter(|v| !v.is_empty()) {
            // OneService's rule, kept for compatibility: up to 5 bytes is a boolean ("1", "true", "0", "no", ...),
            // anything longer a comma list of CIDRs.
            if value.len() <= 5 {
                policy.allow_managed = dict_bool(value);
            } else {
                let text = std::str::from_utf8(value).map_err(|_| invalid("allowManaged is not text".into()))?;
                for item in text.split(',').map(str::trim).filter(|s| !s.is_empty()) {
                    let prefix = parse_cidr(item).map_err(|reason| invalid(format!("allowManaged: {reason}")))?;
                    policy.allow_managed_prefixes.push(prefix);
                }
            }
        }
        let flag = |key: &str| dict.get(key).filter(|v| !v.is_empty()).map(dict_bool).unwrap_or(false);
        policy.allow_global = flag("allowGlobal");
        policy.allow_default = flag("allowDefault");
        policy.allow_dns = flag("allowDNS");
        Ok(policy)
    }

    /// Writes `networks.d/<nwid>.local.conf` in zerotier-one's form (booleans as 1/0).
    pub fn save_network_policy(&self, network: NetworkId, policy: &NetworkPolicy) -> Result<(), HomeError> {
        let bit = |b: bool| if b { "1" } else { "0" };
        let mut dict = Dictionary::new();
        if policy.allow_managed && !policy.allow_managed_prefixes.is_empty() {
            let list: Vec<String> =
                policy.allow_managed_prefixes.iter().map(|(ip, bits)| format!("{ip}/{bits}")).collect();
            dict.set("allowManaged", list.join(","));
        } else {
            dict.set("allowManaged", bit(policy.allow_managed));
        }
        dict.set("allowGlobal", bit(policy.allow_global));
        dict.set("allowDefault", bit(policy.allow_default));
        dict.set("allowDNS", bit(policy.allow_dns));
        let dir = self.ensure_subdir("networks.d")?;
        write_atomic(&dir.join(format!("{network}.local.conf")), &dict.encode(), 0o644)
    }

    // ----- devicemap -----

    /// The interface name this network had before (`devicemap` line `<16 hex nwid>=<name>`), if any and usable.
    /// The caller still checks the name is free (§7.1).
    pub fn device_name_hint(&self, network: NetworkId) -> Option<String> {
        let path = self.path("devicemap");
        let bytes = match read_optional(&path, MAX_TEXT_FILE) {
            Ok(Some(bytes)) => bytes,
            Ok(None) => return None,
            Err(e) => {
                log::warn!("{e}");
                return None;
            }
        };
        let text = String::from_utf8_lossy(&bytes);
        let key = network.to_string();
        // Later lines win, as with zerotier-one's map.
        let name = text
            .lines()
            .filter_map(|line| line.trim_end_matches('\r').split_once('='))
            .filter(|(k, _)| k.trim().eq_ignore_ascii_case(&key))
            .map(|(_, v)| v.trim().to_string())
            .next_back()?;
        match check_ifname(&name) {
            Ok(()) => Some(name),
            Err(reason) => {
                log::warn!("{}: ignoring name {name:?} for network {network}: {reason}", path.display());
                None
            }
        }
    }

    /// Records `network`'s interface name in `devicemap`, replacing its previous line; other lines are kept.
    pub fn remember_device_name(&self, network: NetworkId, name: &str) -> Result<(), HomeError> {
        check_ifname(name).map_err(|reason| HomeError::InvalidDeviceName { name: name.to_string(), reason })?;
        let path = self.path("devicemap");
        let old = read_optional(&path, MAX_TEXT_FILE)?.unwrap_or_default();
        let key = network.to_string();
        let mut out = String::new();
        let mut replaced = false;
        for line in String::from_utf8_lossy(&old).lines() {
            let is_ours = line.split_once('=').is_some_and(|(k, _)| k.trim().eq_ignore_ascii_case(&key));
            if is_ours {
                if !replaced {
                    out.push_str(&format!("{key}={name}\n"));
                    replaced = true;
                }
            } else if !line.trim().is_empty() {
                out.push_str(line);
                out.push('\n');
            }
        }
        if !replaced {
            out.push_str(&format!("{key}={name}\n"));
        }
        write_atomic(&path, out.as_bytes(), 0o644)
    }

    // ----- local.conf -----

    /// `local.conf` (JSON object) if present, else `{}`.
    pub fn local_conf(&self) -> Result<Value, HomeError> {
        let path = self.path("local.conf");
        let Some(bytes) = read_optional(&path, MAX_TEXT_FILE)? else {
            return Ok(Value::Object(Default::default()));
        };
        let value: Value =
            serde_json::from_slice(&bytes).map_err(|source| HomeError::LocalConfJson { path: path.clone(), source })?;
        if !value.is_object() {
            return Err(HomeError::LocalConfInvalid { path, reason: "the top level must be a JSON object".into() });
        }
        Ok(value)
    }

    /// `settings.primaryPort` of a [`Home::local_conf`] value (default 9993). Like zerotier-one, a number or a
    /// decimal string; it must be 1..=65535.
    pub fn primary_port(&self, local_conf: &Value) -> Result<u16, HomeError> {
        let invalid = |reason: String| HomeError::LocalConfInvalid { path: self.path("local.conf"), reason };
        let settings = match local_conf.get("settings") {
            None | Some(Value::Null) => return Ok(DEFAULT_PRIMARY_PORT),
            Some(settings @ Value::Object(_)) => settings,
            Some(other) => return Err(invalid(format!("\"settings\" must be an object, found {other}"))),
        };
        let port = match settings.get("primaryPort") {
            None | Some(Value::Null) => return Ok(DEFAULT_PRIMARY_PORT),
            Some(Value::Number(n)) => n.as_u64(),
            Some(Value::String(s)) => s.trim().parse::<u64>().ok(),
            Some(_) => None,
        };
        match port {
            Some(port @ 1..=65535) => Ok(port as u16),
            _ => Err(invalid(format!(
                "settings.primaryPort is {}, must be a port number 1..65535",
                settings["primaryPort"]
            ))),
        }
    }

    // ----- helpers -----

    fn ensure_subdir(&self, name: &str) -> Result<PathBuf, HomeError> {
        let dir = self.subdir(name);
        match fs::DirBuilder::new().mode(0o700).create(&dir) {
            Ok(()) => Ok(dir),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists && dir.is_dir() => Ok(dir),
            Err(source) => Err(HomeError::Write { path: dir, source }),
        }
    }
}

/// Parses `identity.secret`, telling a truncated file from a corrupt one and never echoing key material.
fn parse_secret(path: &Path, bytes: &[u8]) -> Result<Identity, HomeError> {
    let corrupt = |reason: String| HomeError::IdentityCorrupt { path: path.to_path_buf(), reason };
    let text = std::str::from_utf8(bytes).map_err(|_| corrupt("it is not text".into()))?;
    let trimmed = text.trim_end();
    let identity: Identity = match trimmed.parse() {
        Ok(identity) => identity,
        Err(_) if is_truncated_identity(trimmed) => {
            return Err(HomeError::IdentityTruncated { path: path.to_path_buf(), len: bytes.len() });
        }
        Err(e) => return Err(corrupt(describe_identity_error(&e))),
    };
    if !identity.has_secret() {
        return Err(HomeError::IdentityNoSecret { path: path.to_path_buf(), address: identity.address() });
    }
    if !identity.validate() {
        return Err(HomeError::IdentityInvalid { path: path.to_path_buf(), address: identity.address() });
    }
    Ok(identity)
}

fn parse_public(path: &Path, bytes: &[u8]) -> Result<Identity, HomeError> {
    let corrupt = |reason: String| HomeError::PublicIdentityCorrupt { path: path.to_path_buf(), reason };
    let text = std::str::from_utf8(bytes).map_err(|_| corrupt("it is not text".into()))?;
    text.trim_end().parse().map_err(|e| corrupt(describe_identity_error(&e)))
}

/// A prefix (possibly empty) of the complete secret identity's shape: what a write cut short leaves.
fn is_truncated_identity(text: &str) -> bool {
    let b = text.as_bytes();
    b.len() < SECRET_IDENTITY_LEN
        && b.iter().enumerate().all(|(i, &c)| match i {
            10 | 12 | 141 => c == b':',
            11 => c == b'0',
            _ => c.is_ascii_hexdigit(),
        })
}

/// The crypto error, minus the offending text: for the private key that text is the secret itself.
fn describe_identity_error(e: &CryptoError) -> String {
    match e {
        CryptoError::BadHex { field, expected_len, .. } => format!("the {field} is not {expected_len} hex digits"),
        other => other.to_string(),
    }
}

/// zerotier-one never checks; a world-readable private key deserves a line in the log.
fn warn_if_exposed(path: &Path) {
    if let Ok(meta) = fs::metadata(path)
        && meta.mode() & 0o077 != 0
    {
        log::warn!("{} is readable by other users (mode {:o}): chmod 600 it", path.display(), meta.mode() & 0o777);
    }
}

fn world_type_name(world_type: u8) -> &'static str {
    match world_type {
        WORLD_TYPE_PLANET => "planet",
        WORLD_TYPE_MOON => "moon",
        _ => "unknown world",
    }
}

fn parse_world(path: &Path, bytes: &[u8], expected: u8) -> Result<World, HomeError> {
    let world = World::parse(bytes).map_err(|e| HomeError::WorldCorrupt {
        path: path.to_path_buf(),
        expected: world_type_name(expected),
        reason: e.to_string(),
    })?;
    if world.world_type != expected {
        return Err(HomeError::WrongWorldType {
            path: path.to_path_buf(),
            expected: world_type_name(expected),
            found: world_type_name(world.world_type),
        });
    }
    Ok(world)
}

/// `Ok` for what zerotier-one may have written: a lone newline (joined, no config), an empty file, or
/// Dictionary text (optionally NUL-terminated). Anything else is damage, e.g. a file zeroed by a crash.
fn check_network_file(bytes: &[u8]) -> Result<(), String> {
    if bytes.is_empty() || bytes == b"\n" {
        return Ok(());
    }
    if let Some(nul) = bytes.iter().position(|&b| b == 0) {
        if nul == 0 {
            return Err("it starts with a NUL byte (zeroed or binary data)".into());
        }
        if bytes[nul..].iter().any(|&b| b != 0) {
            return Err(format!("binary data after a NUL byte at offset {nul}"));
        }
    }
    Dictionary::parse(bytes).map(|_| ()).map_err(|e| e.to_string())
}

/// Upstream's `Dictionary::getB`: true if the value starts with `1`, `t` or `T`.
fn dict_bool(value: &[u8]) -> bool {
    matches!(value.first(), Some(b'1' | b't' | b'T'))
}

/// `address/bits`. A bare address is refused: upstream reads it as `/0` (everything allowed), which is never
/// what someone writing one address means.
fn parse_cidr(text: &str) -> Result<(IpAddr, u8), String> {
    let (ip, bits) = text
        .split_once('/')
        .ok_or_else(|| format!("{text:?} has no prefix length (write it as a CIDR, e.g. {text}/32)"))?;
    let ip: IpAddr = ip.trim().parse().map_err(|_| format!("{text:?}: {ip:?} is not an IP address"))?;
    let max = if ip.is_ipv4() { 32 } else { 128 };
    match bits.trim().parse::<u8>() {
        Ok(bits) if bits <= max => Ok((ip, bits)),
        _ => Err(format!("{text:?}: the prefix length must be 0..{max}")),
    }
}

fn prefix_contains(net: IpAddr, bits: u8, ip: IpAddr) -> bool {
    let (a, b, width) = match (net, ip) {
        (IpAddr::V4(a), IpAddr::V4(b)) => (u32::from(a) as u128, u32::from(b) as u128, 32u32),
        (IpAddr::V6(a), IpAddr::V6(b)) => (u128::from(a), u128::from(b), 128u32),
        _ => return false,
    };
    let bits = u32::from(bits).min(width);
    if bits == 0 {
        return true;
    }
    let shift = width - bits;
    (a >> shift) == (b >> shift)
}

/// Linux `dev_valid_name`: 1..15 bytes, not `.`/`..`, no `/`, `:` or white space.
fn check_ifname(name: &str) -> Result<(), &'static str> {
    if name.is_empty() || name.len() > MAX_IFNAME_LEN {
        return Err("must be 1 to 15 bytes long");
    }
    if name == "." || name == ".." {
        return Err("must not be . or ..");
    }
    if name.bytes().any(|b| b == b'/' || b == b':' || b.is_ascii_whitespace() || b.is_ascii_control()) {
        return Err("must not contain '/', ':', white space or control characters");
    }
    Ok(())
}

/// Exactly `digits` lower-case hex digits (the names zerotier-one writes).
pub(crate) fn parse_hex_id(text: &str, digits: usize) -> Option<u64> {
    if text.len() != digits || !text.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
        return None;
    }
    u64::from_str_radix(text, 16).ok()
}

/// Entries of `dir` as (file name, path), sorted; a missing directory is empty. Hidden names (our temporary
/// files among them) and names that are not UTF-8 are skipped.
pub(crate) fn list_dir(dir: &Path) -> Result<Vec<(String, PathBuf)>, HomeError> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => return Err(HomeError::Read { path: dir.to_path_buf(), source }),
    };
    let mut out = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|source| HomeError::Read { path: dir.to_path_buf(), source })?;
        let Ok(name) = entry.file_name().into_string() else {
            log::warn!("ignoring {}: the name is not UTF-8", entry.path().display());
            continue;
        };
        if name.starts_with('.') {
            continue;
        }
        out.push((name, entry.path()));
    }
    out.sort();
    Ok(out)
}

fn read_capped(path: &Path, cap: u64) -> io::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    File::open(path)?.take(cap + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > cap {
        return Err(io::Error::new(io::ErrorKind::InvalidData, format!("larger than {cap} bytes")));
    }
    Ok(bytes)
}

fn read_optional(path: &Path, cap: u64) -> Result<Option<Vec<u8>>, HomeError> {
    match read_capped(path, cap) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(HomeError::Read { path: path.to_path_buf(), source }),
    }
}

pub(crate) fn read_required(path: &Path, cap: u64) -> Result<Vec<u8>, HomeError> {
    read_capped(path, cap).map_err(|source| HomeError::Read { path: path.to_path_buf(), source })
}

/// Writes `bytes` to a fresh temporary file beside `path` (created with `mode`, synced) and returns its name.
fn write_temp(path: &Path, bytes: &[u8], mode: u32) -> Result<PathBuf, HomeError> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = dir.join(format!(".{name}.{}.{}.tmp", std::process::id(), COUNTER.fetch_add(1, Ordering::Relaxed)));
    let result = (|| {
        let mut file = OpenOptions::new().write(true).create_new(true).mode(mode).open(&tmp)?;
        // The umask may have removed bits from `mode` (never added): set it exactly.
        file.set_permissions(fs::Permissions::from_mode(mode))?;
        file.write_all(bytes)?;
        file.sync_all()
    })();
    match result {
        Ok(()) => Ok(tmp),
        Err(source) => {
            let _ = fs::remove_file(&tmp);
            Err(HomeError::Write { path: path.to_path_buf(), source })
        }
    }
}

/// Atomic replace: temporary file + rename, then sync the directory so the rename survives a crash.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> Result<(), HomeError> {
    let tmp = write_temp(path, bytes, mode)?;
    if let Err(source) = fs::rename(&tmp, path) {
        let _ = fs::remove_file(&tmp);
        return Err(HomeError::Write { path: path.to_path_buf(), source });
    }
    sync_parent(path);
    Ok(())
}

/// Atomic create that never replaces an existing file (hard link of the temporary file).
fn write_new_file(path: &Path, bytes: &[u8], mode: u32) -> Result<(), HomeError> {
    let tmp = write_temp(path, bytes, mode)?;
    let result = match fs::hard_link(&tmp, path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Err(HomeError::Write {
            path: path.to_path_buf(),
            source: io::Error::new(
                io::ErrorKind::AlreadyExists,
                "it appeared while a new identity was being created (is another node using this home directory?)",
            ),
        }),
        // File systems without hard links: we checked the file was absent just before, so rename is the
        // next best thing.
        Err(_) => fs::rename(&tmp, path).map_err(|source| HomeError::Write { path: path.to_path_buf(), source }),
    };
    let _ = fs::remove_file(&tmp);
    result?;
    sync_parent(path);
    Ok(())
}

fn sync_parent(path: &Path) {
    if let Some(dir) = path.parent()
        && let Err(e) = File::open(dir).and_then(|d| d.sync_all())
    {
        log::warn!("cannot sync directory {}: {e}", dir.display());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    /// A fresh directory under the system temp dir, removed on drop.
    struct TempHome(PathBuf);

    impl TempHome {
        fn new(tag: &str) -> TempHome {
            static N: AtomicU64 = AtomicU64::new(0);
            let dir = std::env::temp_dir().join(format!(
                "ztplane-home-{tag}-{}-{}",
                std::process::id(),
                N.fetch_add(1, Ordering::Relaxed)
            ));
            let _ = fs::remove_dir_all(&dir);
            TempHome(dir)
        }
        fn home(&self) -> Home {
            Home::open(&self.0).unwrap()
        }
    }

    impl Drop for TempHome {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    fn nodes_dir() -> PathBuf {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/conformance/zt-1.14.1/nodes");
        assert!(dir.is_dir(), "reference material missing: {}", dir.display());
        dir
    }

    fn node_file(name: &str) -> Vec<u8> {
        fs::read(nodes_dir().join(name)).unwrap()
    }

    fn mode(path: &Path) -> u32 {
        fs::metadata(path).unwrap().mode() & 0o777
    }

    fn no_temp_files(dir: &Path) {
        for entry in fs::read_dir(dir).unwrap() {
            let name = entry.unwrap().file_name().into_string().unwrap();
            assert!(!name.ends_with(".tmp"), "leftover temporary file {name}");
        }
    }

    #[test]
    fn fresh_home_creates_identity_once() {
        let t = TempHome::new("fresh");
        let home = t.home();
        assert_eq!(mode(&t.0), 0o700);
        let (id, created) = home.load_or_create_identity().unwrap();
        assert!(created && id.has_secret());
        let secret = t.0.join("identity.secret");
        let public = t.0.join("identity.public");
        assert_eq!(mode(&secret), 0o600);
        assert_eq!(mode(&public), 0o644);
        assert_eq!(fs::read_to_string(&secret).unwrap(), id.to_string());
        assert_eq!(fs::read_to_string(&public).unwrap().trim_end(), id.to_public_string());

        // Second open: the same identity, nothing generated.
        let (again, created) = Home::open(&t.0).unwrap().load_or_create_identity().unwrap();
        assert!(!created);
        assert_eq!(again, id);
        assert_eq!(again.secret_key(), id.secret_key());

        // Losing the public half is repaired from the secret.
        fs::remove_file(&public).unwrap();
        let (again, created) = home.load_or_create_identity().unwrap();
        assert!(!created && again == id);
        assert_eq!(fs::read_to_string(&public).unwrap().trim_end(), id.to_public_string());
        no_temp_files(&t.0);
    }

    #[test]
    fn open_rejects_a_file() {
        let t = TempHome::new("notdir");
        fs::write(&t.0, b"x").unwrap();
        let err = Home::open(&t.0).unwrap_err();
        assert!(matches!(err, HomeError::NotADirectory { .. }), "{err}");
        assert!(err.to_string().contains(&t.0.display().to_string()));
        fs::remove_file(&t.0).unwrap();
    }

    #[test]
    fn open_creates_nested_dirs() {
        let t = TempHome::new("nested");
        let home = Home::open(t.0.join("a/b")).unwrap();
        assert!(home.dir.is_dir());
        assert_eq!(mode(&home.dir), 0o700);
    }

    #[test]
    fn conformance_node_files_load() {
        let t = TempHome::new("conf");
        let home = t.home();
        fs::write(t.0.join("identity.secret"), node_file("a.identity.secret")).unwrap();
        fs::set_permissions(t.0.join("identity.secret"), fs::Permissions::from_mode(0o600)).unwrap();
        fs::write(t.0.join("identity.public"), node_file("a.identity.public")).unwrap();
        fs::create_dir(t.0.join("moons.d")).unwrap();
        fs::write(t.0.join("moons.d/0000002c80d43748.moon"), node_file("0000002c80d43748.moon")).unwrap();

        let (id, created) = home.load_or_create_identity().unwrap();
        assert!(!created);
        assert_eq!(id.address().to_string(), "cfe2482597");
        let moons = home.load_moons().unwrap();
        assert_eq!(moons.len(), 1);
        assert_eq!(moons[0].id, 0x2c80d43748);
        assert_eq!(moons[0].world_type, WORLD_TYPE_MOON);
        // No planet file: the built-in Earth.
        assert_eq!(home.load_planet().unwrap().id, 149604618);
    }

    /// Each broken identity is its own error, names the file, leaks no key, and nothing is written.
    #[test]
    fn broken_identities_are_refused() {
        let a_secret = String::from_utf8(node_file("a.identity.secret")).unwrap();
        let a_public = String::from_utf8(node_file("a.identity.public")).unwrap();
        let b_public = String::from_utf8(node_file("b.identity.public")).unwrap();
        let private_hex = a_secret.trim_end().rsplit(':').next().unwrap().to_string();
        let mut tampered = a_secret.clone().into_bytes();
        tampered[20] = if tampered[20] == b'0' { b'1' } else { b'0' }; // a public-key digit
        let tampered = String::from_utf8(tampered).unwrap();

        type Check = fn(&HomeError) -> bool;
        let cases: Vec<(&str, Option<String>, Option<String>, Check)> = vec![
            ("corrupt", Some("this is not an identity\n".into()), Some(a_public.clone()), |e| {
                matches!(e, HomeError::IdentityCorrupt { .. })
            }),
            ("bad-private", Some(format!("{}:{}zz", a_public.trim_end(), &private_hex[..126])), None, |e| {
                matches!(e, HomeError::IdentityCorrupt { .. })
            }),
            ("truncated", Some(a_secret[..200].into()), Some(a_public.clone()), |e| {
                matches!(e, HomeError::IdentityTruncated { len: 200, .. })
            }),
            ("empty", Some(String::new()), Some(a_public.clone()), |e| {
                matches!(e, HomeError::IdentityTruncated { len: 0, .. })
            }),
            ("no-secret", Some(a_public.clone()), Some(a_public.clone()), |e| {
                matches!(e, HomeError::IdentityNoSecret { .. })
            }),
            ("invalid", Some(tampered), None, |e| matches!(e, HomeError::IdentityInvalid { .. })),
            (
                "public-only",
                None,
                Some(a_public.clone()),
                |e| matches!(e, HomeError::IdentitySecretMissing { address, .. } if address.to_string() == "cfe2482597"),
            ),
            ("mismatch", Some(a_secret.clone()), Some(b_public), |e| {
                matches!(e, HomeError::IdentityMismatch { reason: "they are different identities", .. })
            }),
            ("public-corrupt", Some(a_secret.clone()), Some("garbage".into()), |e| {
                matches!(e, HomeError::PublicIdentityCorrupt { .. })
            }),
        ];
        for (tag, secret, public, check) in cases {
            let t = TempHome::new(tag);
            let home = t.home();
            let secret_path = t.0.join("identity.secret");
            let public_path = t.0.join("identity.public");
            if let Some(s) = &secret {
                fs::write(&secret_path, s).unwrap();
            }
            if let Some(p) = &public {
                fs::write(&public_path, p).unwrap();
            }
            let err = home.load_or_create_identity().unwrap_err();
            let msg = err.to_string();
            assert!(check(&err), "{tag}: wrong error {err:?}");
            assert!(msg.contains("identity."), "{tag}: message names no file: {msg}");
            assert!(!msg.contains(&private_hex[..32]), "{tag}: message leaks the private key: {msg}");
            assert_eq!(fs::read_to_string(&secret_path).ok(), secret, "{tag}: identity.secret changed");
            assert_eq!(fs::read_to_string(&public_path).ok(), public, "{tag}: identity.public changed");
        }
    }

    #[test]
    fn world_files() {
        let t = TempHome::new("worlds");
        let home = t.home();
        let moon = node_file("0000002c80d43748.moon");

        fs::write(t.0.join("planet"), b"not a world").unwrap();
        let err = home.load_planet().unwrap_err();
        assert!(matches!(err, HomeError::WorldCorrupt { expected: "planet", .. }), "{err:?}");
        assert!(err.to_string().contains("planet"));

        fs::write(t.0.join("planet"), &moon).unwrap();
        let err = home.load_planet().unwrap_err();
        assert!(matches!(err, HomeError::WrongWorldType { found: "moon", .. }), "{err:?}");

        // A custom planet round-trips through save_world.
        let earth = NodeConfig::earth();
        home.save_world(WORLD_TYPE_PLANET, earth.id, &earth.encode()).unwrap();
        assert_eq!(home.load_planet().unwrap(), earth);

        let moons = t.0.join("moons.d");
        fs::create_dir(&moons).unwrap();
        fs::write(moons.join("0000002c80d43748.moon"), &moon[..moon.len() - 3]).unwrap();
        let err = home.load_moons().unwrap_err();
        assert!(matches!(err, HomeError::WorldCorrupt { expected: "moon", .. }), "{err:?}");
        assert!(err.to_string().contains("0000002c80d43748.moon"));

        fs::write(moons.join("0000002c80d43748.moon"), earth.encode()).unwrap();
        let err = home.load_moons().unwrap_err();
        assert!(matches!(err, HomeError::WrongWorldType { found: "planet", .. }), "{err:?}");

        fs::remove_file(moons.join("0000002c80d43748.moon")).unwrap();
        fs::write(moons.join("mymoon.moon"), &moon).unwrap();
        let err = home.load_moons().unwrap_err();
        assert!(matches!(err, HomeError::MoonFileName { id: 0x2c80d43748, .. }), "{err:?}");
        assert!(err.to_string().contains("rename it to 0000002c80d43748.moon"));
        fs::remove_file(moons.join("mymoon.moon")).unwrap();

        // save_world writes moons under their ID; other files in moons.d are ignored.
        fs::write(moons.join("README"), b"x").unwrap();
        home.save_world(WORLD_TYPE_MOON, 0x2c80d43748, &moon).unwrap();
        let loaded = home.load_moons().unwrap();
        assert_eq!(loaded.len(), 1);
        assert_eq!(loaded[0].encode(), moon);
        assert!(matches!(home.save_world(3, 1, &moon), Err(HomeError::UnknownWorldType(3))));
        no_temp_files(&moons);
    }

    #[test]
    fn network_files() {
        let t = TempHome::new("networks");
        let home = t.home();
        assert!(home.load_networks().unwrap().is_empty());
        let dir = t.0.join("networks.d");
        fs::create_dir(&dir).unwrap();
        let mut dict = Dictionary::new();
        dict.set_u64("nwid", 0x2c80d4374849700f);
        dict.set("n", "test");
        fs::write(dir.join("2c80d4374849700f.conf"), dict.encode()).unwrap();
        fs::write(dir.join("8056c2e21c000001.conf"), b"\n").unwrap();
        fs::write(dir.join("8056c2e21c000001.local.conf"), b"allowManaged=1\n").unwrap();
        fs::write(dir.join("junk.conf"), b"\n").unwrap();
        fs::write(dir.join("8056C2E21C000002.conf"), b"\n").unwrap();
        fs::write(dir.join("notes.txt"), b"hello").unwrap();
        let nets = home.load_networks().unwrap();
        assert_eq!(
            nets,
            vec![(NetworkId(0x2c80d4374849700f), dict.encode()), (NetworkId(0x8056c2e21c000001), b"\n".to_vec())]
        );

        // Damage: binary junk, a zeroed file.
        let bad = dir.join("1122334455667788.conf");
        fs::write(&bad, [0x9f, 0x00, 0xff, 0x13, 0x37, 0x0a, 0x01]).unwrap();
        let err = home.load_networks().unwrap_err();
        assert!(matches!(err, HomeError::NetworkConfigCorrupt { .. }), "{err:?}");
        assert!(err.to_string().contains("1122334455667788.conf"), "{err}");
        fs::write(&bad, [0u8; 64]).unwrap();
        assert!(matches!(home.load_networks(), Err(HomeError::NetworkConfigCorrupt { .. })));
        fs::write(&bad, b"\x01\x02\x03 binary without equals").unwrap();
        assert!(matches!(home.load_networks(), Err(HomeError::NetworkConfigCorrupt { .. })));
        // A NUL-terminated dictionary is what some versions write: fine.
        let mut terminated = dict.encode();
        terminated.push(0);
        fs::write(&bad, &terminated).unwrap();
        assert_eq!(home.load_networks().unwrap().len(), 3);
    }

    #[test]
    fn network_saves_round_trip() {
        let t = TempHome::new("netsave");
        let home = t.home();
        let nwid = NetworkId(0x8056c2e21c000001);
        home.save_network(nwid, b"\n").unwrap();
        assert_eq!(home.load_networks().unwrap(), vec![(nwid, b"\n".to_vec())]);
        home.save_network(nwid, b"nwid=8056c2e21c000001\n").unwrap();
        assert_eq!(home.load_networks().unwrap(), vec![(nwid, b"nwid=8056c2e21c000001\n".to_vec())]);
        let policy = NetworkPolicy { allow_dns: true, ..Default::default() };
        home.save_network_policy(nwid, &policy).unwrap();
        assert_eq!(home.network_policy(nwid).unwrap(), policy);
        no_temp_files(&t.0.join("networks.d"));
        home.delete_network(nwid).unwrap();
        assert!(home.load_networks().unwrap().is_empty());
        assert!(!t.0.join("networks.d/8056c2e21c000001.local.conf").exists());
        home.delete_network(nwid).unwrap(); // already gone: fine
    }

    #[test]
    fn network_policies() {
        let t = TempHome::new("policy");
        let home = t.home();
        let nwid = NetworkId(0x8056c2e21c000001);
        assert_eq!(home.network_policy(nwid).unwrap(), NetworkPolicy::default());
        let dir = t.0.join("networks.d");
        fs::create_dir(&dir).unwrap();
        let path = dir.join("8056c2e21c000001.local.conf");
        let policy = |text: &str| {
            fs::write(&path, text).unwrap();
            home.network_policy(nwid)
        };

        let p = policy("allowManaged=0\nallowGlobal=1\nallowDefault=true\nallowDNS=1\n").unwrap();
        assert_eq!(
            p,
            NetworkPolicy {
                allow_managed: false,
                allow_managed_prefixes: vec![],
                allow_global: true,
                allow_default: true,
                allow_dns: true
            }
        );
        assert!(!policy("allowManaged=false\n").unwrap().allow_managed);
        assert!(policy("allowManaged=\nallowGlobal=0\n").unwrap().allow_managed);
        let p = policy("allowManaged=10.0.0.0/8, fd00::/8\n").unwrap();
        assert!(p.allow_managed);
        assert_eq!(
            p.allow_managed_prefixes,
            vec![
                (IpAddr::V4(Ipv4Addr::new(10, 0, 0, 0)), 8),
                (IpAddr::V6(Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 0)), 8)
            ]
        );
        assert!(p.managed_prefix_allowed("10.1.2.3".parse().unwrap(), 24));
        assert!(!p.managed_prefix_allowed("10.0.0.0".parse().unwrap(), 7));
        assert!(!p.managed_prefix_allowed("192.168.1.1".parse().unwrap(), 24));
        assert!(p.managed_prefix_allowed("fd12::1".parse().unwrap(), 64));
        assert!(NetworkPolicy::default().managed_prefix_allowed("8.8.8.8".parse().unwrap(), 32));

        for bad in ["allowManaged=10.0.0.5,10.0.0.6\n", "allowManaged=10.0.0.0/33\n", "no equals sign\n"] {
            let err = policy(bad).unwrap_err();
            assert!(matches!(err, HomeError::NetworkPolicyInvalid { .. }), "{bad}: {err:?}");
            assert!(err.to_string().contains("8056c2e21c000001.local.conf"), "{err}");
        }
    }

    #[test]
    fn peer_cache() {
        let t = TempHome::new("peers");
        let home = t.home();
        assert!(home.load_peers().is_empty());
        let a: Address = "cfe2482597".parse().unwrap();
        let b: Address = "1122334455".parse().unwrap();
        home.save_peer(a, b"peer a").unwrap();
        home.save_peer(b, b"peer b").unwrap();
        home.save_peer(a, b"peer a v2").unwrap();
        assert!(t.0.join("peers.d/cfe2482597.peer").is_file());
        let mut peers = home.load_peers();
        peers.sort();
        assert_eq!(peers, vec![b"peer a v2".to_vec(), b"peer b".to_vec()]);
        no_temp_files(&t.0.join("peers.d"));

        // Stale entries are deleted, unreadable ones (here: a directory) skipped.
        let stale = t.0.join("peers.d/1122334455.peer");
        let old = SystemTime::now() - PEER_CACHE_MAX_AGE - Duration::from_secs(3600);
        File::options().write(true).open(&stale).unwrap().set_modified(old).unwrap();
        fs::create_dir(t.0.join("peers.d/0102030405.peer")).unwrap();
        assert_eq!(home.load_peers(), vec![b"peer a v2".to_vec()]);
        assert!(!stale.exists());
    }

    #[test]
    fn device_map() {
        let t = TempHome::new("devmap");
        let home = t.home();
        let n1 = NetworkId(0x2c80d4374849700f);
        let n2 = NetworkId(0x8056c2e21c000001);
        assert_eq!(home.device_name_hint(n1), None);
        home.remember_device_name(n1, "ztdpej2r2h").unwrap();
        assert_eq!(home.device_name_hint(n1).as_deref(), Some("ztdpej2r2h"));
        assert_eq!(home.device_name_hint(n2), None);
        home.remember_device_name(n2, "zt-office").unwrap();
        home.remember_device_name(n1, "ztlab").unwrap();
        assert_eq!(home.device_name_hint(n1).as_deref(), Some("ztlab"));
        assert_eq!(home.device_name_hint(n2).as_deref(), Some("zt-office"));
        assert_eq!(
            fs::read_to_string(t.0.join("devicemap")).unwrap(),
            "2c80d4374849700f=ztlab\n8056c2e21c000001=zt-office\n"
        );
        assert!(matches!(home.remember_device_name(n1, "a/b"), Err(HomeError::InvalidDeviceName { .. })));
        assert!(matches!(home.remember_device_name(n1, "sixteen-chars-xx"), Err(HomeError::InvalidDeviceName { .. })));
        // Hand-written files: CRLF, unknown lines kept, an unusable name ignored.
        fs::write(t.0.join("devicemap"), "# comment\r\n2c80d4374849700f=ztwin\r\n8056c2e21c000001=bad name\n").unwrap();
        assert_eq!(home.device_name_hint(n1).as_deref(), Some("ztwin"));
        assert_eq!(home.device_name_hint(n2), None);
        home.remember_device_name(n2, "zt0").unwrap();
        assert_eq!(
            fs::read_to_string(t.0.join("devicemap")).unwrap(),
            "# comment\n2c80d4374849700f=ztwin\n8056c2e21c000001=zt0\n"
        );
        no_temp_files(&t.0);
    }

    #[test]
    fn local_conf_and_port() {
        let t = TempHome::new("localconf");
        let home = t.home();
        let conf = home.local_conf().unwrap();
        assert_eq!(conf, serde_json::json!({}));
        assert_eq!(home.primary_port(&conf).unwrap(), 9993);
        let path = t.0.join("local.conf");

        fs::write(&path, r#"{ "settings": { "primaryPort": 9994, "allowTcpFallbackRelay": false } }"#).unwrap();
        assert_eq!(home.primary_port(&home.local_conf().unwrap()).unwrap(), 9994);
        fs::write(&path, r#"{ "settings": { "primaryPort": "29993" } }"#).unwrap();
        assert_eq!(home.primary_port(&home.local_conf().unwrap()).unwrap(), 29993);
        fs::write(&path, r#"{ "physical": {} }"#).unwrap();
        assert_eq!(home.primary_port(&home.local_conf().unwrap()).unwrap(), 9993);

        fs::write(&path, "{\n  \"settings\": {\n    \"primaryPort\": 9994,\n  }\n}\n").unwrap();
        let err = home.local_conf().unwrap_err();
        assert!(matches!(err, HomeError::LocalConfJson { .. }), "{err:?}");
        let msg = err.to_string();
        assert!(msg.contains("local.conf") && msg.contains("line 4"), "{msg}");

        fs::write(&path, "[1, 2]").unwrap();
        assert!(matches!(home.local_conf(), Err(HomeError::LocalConfInvalid { .. })));

        for bad in [
            r#"{"settings":{"primaryPort":0}}"#,
            r#"{"settings":{"primaryPort":65536}}"#,
            r#"{"settings":{"primaryPort":"x"}}"#,
            r#"{"settings":{"primaryPort":1.5}}"#,
            r#"{"settings":3}"#,
        ] {
            fs::write(&path, bad).unwrap();
            let err = home.primary_port(&home.local_conf().unwrap()).unwrap_err();
            assert!(matches!(err, HomeError::LocalConfInvalid { .. }), "{bad}: {err:?}");
            assert!(err.to_string().contains("local.conf"), "{err}");
        }
    }
}

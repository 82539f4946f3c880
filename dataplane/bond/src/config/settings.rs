//! Typed bonding settings: what a parsed `local.conf` means to the engine.
//!
//! Spec: `shared/spec/zerotier-bonding.md` §2 (schema), §3 (constants), §6 (policies), §10 (2020 → 1.14.1),
//! §11 (upstream quirks we deliberately do not copy). Plain data only; the parser lives in `parse.rs`.
//!
//! Defaults follow zerotier-one 1.14.1 (§3) so that a config means the same thing here as there, except
//! where §11 documents an upstream defect; each such difference is noted on the field.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use super::error::{ConfigError, ConfigErrorKind, TextPosition};

/// zerotier-one 1.14.1 default `failoverInterval` for every policy (§3).
pub const DEFAULT_FAILOVER_INTERVAL_MS: u64 = 5_000;
/// Smallest `failoverInterval` ztplane accepts. The engine detects a dead link from traffic in well under
/// 100 ms, so the timer is only a backstop; below 10 ms the ECHO probe interval (failoverInterval / 3, §3)
/// would fall to ~3 ms, inside ordinary scheduling and RTT jitter, and healthy links would be declared dead.
/// Smaller values are an out-of-range error, not silently raised as zerotier-one does (to 500 ms).
pub const MIN_FAILOVER_INTERVAL_MS: u64 = 10;
/// Largest `failoverInterval` (and `upDelay`/`downDelay`) accepted: beyond the 600 s path-expiry period (§3)
/// a path is forgotten before it could fail over, so larger values can only be typos.
pub const MAX_INTERVAL_MS: u64 = 600_000;
/// zerotier-one's balance-rr default turn length (§3, §11.1: upstream never applies the configured value).
pub const DEFAULT_PACKETS_PER_LINK: u32 = 64;
/// Largest accepted `packetsPerLink` (the 2020 guide's 16-bit range).
pub const MAX_PACKETS_PER_LINK: u32 = 65_535;
/// Weights must sum to 1 within this tolerance (zerotier-one accepts 0.99..=1.01, §2).
pub const WEIGHT_SUM_TOLERANCE: f64 = 0.01;
/// Smallest per-link MTU (`bond setmtu` range, §8).
pub const MIN_LINK_MTU: u16 = 68;
/// Largest link `capacity`: zerotier-one stores it as uint32 (§2).
pub const MAX_LINK_CAPACITY: u64 = u32::MAX as u64;
/// Bounds on what one configuration may hold, so that a valid but hostile file is refused with a
/// clear error instead of costing memory and time on every bond created from it.
pub const MAX_POLICIES: usize = 256;
pub const MAX_PEER_SPECIFIC_BONDS: usize = 65_536;

/// A standard bonding policy (§6); custom policies are built on one of these (`basePolicy`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub enum Policy {
    /// No bond: classic single best path (§6.1).
    #[default]
    None,
    ActiveBackup,
    Broadcast,
    BalanceRr,
    BalanceXor,
    BalanceAware,
}

impl Policy {
    /// Every policy, in `bondingPolicyCode` order.
    pub const ALL: [Policy; 6] = [
        Policy::None,
        Policy::ActiveBackup,
        Policy::Broadcast,
        Policy::BalanceRr,
        Policy::BalanceXor,
        Policy::BalanceAware,
    ];

    /// The name used in `local.conf` and shown by `zerotier-cli bond` (`bondingPolicyStr`).
    pub fn name(self) -> &'static str {
        match self {
            Policy::None => "none",
            Policy::ActiveBackup => "active-backup",
            Policy::Broadcast => "broadcast",
            Policy::BalanceRr => "balance-rr",
            Policy::BalanceXor => "balance-xor",
            Policy::BalanceAware => "balance-aware",
        }
    }

    /// `bondingPolicyCode` in the peer JSON (§9): 0 none … 5 balance-aware.
    pub fn code(self) -> u8 {
        match self {
            Policy::None => 0,
            Policy::ActiveBackup => 1,
            Policy::Broadcast => 2,
            Policy::BalanceRr => 3,
            Policy::BalanceXor => 4,
            Policy::BalanceAware => 5,
        }
    }

    /// The policy whose `local.conf` name is `name` (exact, case-sensitive like zerotier-one).
    pub fn from_name(name: &str) -> Option<Policy> {
        Policy::ALL.into_iter().find(|p| p.name() == name)
    }
}

impl fmt::Display for Policy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Policy {
    type Err = ConfigError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Policy::from_name(s).ok_or_else(|| {
            ConfigError::new(
                ConfigErrorKind::UnknownPolicy,
                "",
                format!("unknown policy {s:?} (expected one of {})", quoted_list(Policy::ALL.map(Policy::name))),
            )
        })
    }
}

/// Active-backup reselection method (`activeReselect`, §6.2 step 6).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum LinkSelectMethod {
    /// Return to a primary link whenever one is usable (zerotier-one 1.14.1 default).
    #[default]
    Always,
    /// Return to a primary link only if it scores better than the active one.
    Better,
    /// Change the active link only when it fails.
    Failure,
    /// Move to the best-scoring link (with hold-down).
    Optimize,
}

impl LinkSelectMethod {
    pub const ALL: [LinkSelectMethod; 4] =
        [LinkSelectMethod::Always, LinkSelectMethod::Better, LinkSelectMethod::Failure, LinkSelectMethod::Optimize];

    pub fn name(self) -> &'static str {
        match self {
            LinkSelectMethod::Always => "always",
            LinkSelectMethod::Better => "better",
            LinkSelectMethod::Failure => "failure",
            LinkSelectMethod::Optimize => "optimize",
        }
    }

    pub fn from_name(name: &str) -> Option<LinkSelectMethod> {
        LinkSelectMethod::ALL.into_iter().find(|m| m.name() == name)
    }
}

impl fmt::Display for LinkSelectMethod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for LinkSelectMethod {
    type Err = ConfigError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        LinkSelectMethod::from_name(s).ok_or_else(|| {
            ConfigError::new(
                ConfigErrorKind::OutOfRange,
                "",
                format!(
                    "unknown link select method {s:?} (expected one of {})",
                    quoted_list(LinkSelectMethod::ALL.map(LinkSelectMethod::name))
                ),
            )
        })
    }
}

/// How balance-aware spreads traffic (`balancePolicy`, 2020 guide; never implemented by zerotier-one).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum BalanceMode {
    /// Flows placed by target allocation and periodically rebalanced (2020 default).
    #[default]
    FlowDynamic,
    /// Flows placed by target allocation, moved only when their link fails or is avoided.
    FlowStatic,
    /// Per-packet placement by allocation, reordering allowed.
    Packet,
}

impl BalanceMode {
    pub const ALL: [BalanceMode; 3] = [BalanceMode::FlowDynamic, BalanceMode::FlowStatic, BalanceMode::Packet];

    pub fn name(self) -> &'static str {
        match self {
            BalanceMode::FlowDynamic => "flow-dynamic",
            BalanceMode::FlowStatic => "flow-static",
            BalanceMode::Packet => "packet",
        }
    }

    pub fn from_name(name: &str) -> Option<BalanceMode> {
        BalanceMode::ALL.into_iter().find(|m| m.name() == name)
    }
}

impl fmt::Display for BalanceMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for BalanceMode {
    type Err = ConfigError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        BalanceMode::from_name(s).ok_or_else(|| {
            ConfigError::new(
                ConfigErrorKind::OutOfRange,
                "",
                format!(
                    "unknown balance policy {s:?} (expected one of {})",
                    quoted_list(BalanceMode::ALL.map(BalanceMode::name))
                ),
            )
        })
    }
}

/// Relative importance of each link-quality metric (§5); the four weights sum to 1.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct QualityWeights {
    pub lat: f64,
    pub pdv: f64,
    pub plr: f64,
    pub per: f64,
}

impl QualityWeights {
    pub fn sum(&self) -> f64 {
        self.lat + self.pdv + self.plr + self.per
    }
}

impl Default for QualityWeights {
    /// zerotier-one 1.14.1: all four weights 0.25 (§3).
    fn default() -> Self {
        QualityWeights { lat: 0.25, pdv: 0.25, plr: 0.25, per: 0.25 }
    }
}

/// `linkQuality`: the per-metric "acceptable maximum" and the weights used to score links (§5). A link
/// exceeding any maximum is avoided by balance-aware.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LinkQualitySpec {
    /// Latency (ms) at which a link is considered unacceptable; > 0.
    pub lat_max_ms: f64,
    /// Packet delay variation (ms) at which a link is considered unacceptable; > 0.
    pub pdv_max_ms: f64,
    /// Packet loss ratio in (0, 1].
    pub plr_max: f64,
    /// Packet error ratio in (0, 1].
    pub per_max: f64,
    pub weights: QualityWeights,
}

impl Default for LinkQualitySpec {
    /// zerotier-one 1.14.1 defaults (§3): 500 ms, 100 ms, 0.001, 0.0001, weights 0.25 each.
    fn default() -> Self {
        LinkQualitySpec {
            lat_max_ms: 500.0,
            pdv_max_ms: 100.0,
            plr_max: 0.001,
            per_max: 0.0001,
            weights: QualityWeights::default(),
        }
    }
}

/// Whether a link carries traffic normally or only when primaries are unusable (§2 `link.mode`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum LinkMode {
    /// Implicit links (policy lists none) are primary, as in zerotier-one.
    #[default]
    Primary,
    Spare,
}

impl LinkMode {
    pub fn name(self) -> &'static str {
        match self {
            LinkMode::Primary => "primary",
            LinkMode::Spare => "spare",
        }
    }

    pub fn from_name(name: &str) -> Option<LinkMode> {
        match name {
            "primary" => Some(LinkMode::Primary),
            "spare" => Some(LinkMode::Spare),
            _ => None,
        }
    }
}

impl fmt::Display for LinkMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// IP version preference for paths on a link (`ipvPref`, §2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum IpvPref {
    /// 0: any address family.
    #[default]
    Any,
    /// 4: IPv4 paths only.
    V4,
    /// 6: IPv6 paths only.
    V6,
    /// 46: both, IPv4 preferred.
    V4ThenV6,
    /// 64: both, IPv6 preferred.
    V6ThenV4,
}

impl IpvPref {
    /// The numeric `local.conf` value.
    pub fn code(self) -> u8 {
        match self {
            IpvPref::Any => 0,
            IpvPref::V4 => 4,
            IpvPref::V6 => 6,
            IpvPref::V4ThenV6 => 46,
            IpvPref::V6ThenV4 => 64,
        }
    }

    pub fn from_code(code: u64) -> Option<IpvPref> {
        match code {
            0 => Some(IpvPref::Any),
            4 => Some(IpvPref::V4),
            6 => Some(IpvPref::V6),
            46 => Some(IpvPref::V4ThenV6),
            64 => Some(IpvPref::V6ThenV4),
            _ => None,
        }
    }

    /// Whether a path of this address family may be used on the link at all.
    pub fn allows(self, is_ipv6: bool) -> bool {
        match self {
            IpvPref::V4 => !is_ipv6,
            IpvPref::V6 => is_ipv6,
            IpvPref::Any | IpvPref::V4ThenV6 | IpvPref::V6ThenV4 => true,
        }
    }

    /// Whether a path of this address family is the preferred one on the link (§2).
    pub fn prefers(self, is_ipv6: bool) -> bool {
        match self {
            IpvPref::Any => true,
            IpvPref::V4 | IpvPref::V4ThenV6 => !is_ipv6,
            IpvPref::V6 | IpvPref::V6ThenV4 => is_ipv6,
        }
    }
}

/// One user-listed link (local interface) of a policy (§2 `policy.links`).
#[derive(Clone, Debug, PartialEq)]
pub struct LinkSettings {
    /// OS interface name (the `links` object key).
    pub name: String,
    /// Parsed default when `mode` is absent: spare if another link of the policy is explicitly primary
    /// (zerotier-one's default), primary otherwise (zerotier-one would make every link spare, §11.4).
    pub mode: LinkMode,
    /// Link to fail over to when this one fails (active-backup); always names a link of the same policy.
    pub failover_to: Option<String>,
    pub ipv_pref: IpvPref,
    /// Relative capacity (arbitrary units, e.g. Mbit/s); `None` when not configured (zerotier-one's 0).
    pub capacity: Option<u64>,
    /// Target share of the bond's traffic in [0, 1]; when set on a policy's links they sum to 1.
    pub alloc: Option<f64>,
    /// `false` keeps the link out of the bond (zerotier-one stores but ignores this, §11.5).
    pub enabled: bool,
    /// MTU overriding the physical one for paths on this link (§8); `None` = physical MTU.
    pub mtu: Option<u16>,
}

impl LinkSettings {
    /// A link with every option at its default (primary, any IP version, enabled).
    pub fn new(name: impl Into<String>) -> Self {
        LinkSettings {
            name: name.into(),
            mode: LinkMode::Primary,
            failover_to: None,
            ipv_pref: IpvPref::Any,
            capacity: None,
            alloc: None,
            enabled: true,
            mtu: None,
        }
    }
}

/// A fully resolved policy: a standard policy with defaults, or a custom template (§2 `policies`).
#[derive(Clone, Debug, PartialEq)]
pub struct PolicySettings {
    /// Custom policy name, or the standard policy's name.
    pub name: String,
    pub base: Policy,
    /// Failure-detection backstop; ECHO probes every `failover_interval_ms / 3` (§3, §4.1).
    pub failover_interval_ms: u64,
    /// How long a path must be alive again before it rejoins the bond.
    pub up_delay_ms: u64,
    /// How long a silent path stays in the bond before it is dropped.
    pub down_delay_ms: u64,
    pub link_select: LinkSelectMethod,
    /// balance-rr: packets sent on a link before moving to the next; 0 = a random link per packet.
    /// Applied as configured (zerotier-one ignores it and sends 65 per turn, §11.1).
    pub packets_per_link: u32,
    pub balance: BalanceMode,
    pub quality: LinkQualitySpec,
    /// User-listed links in config order; empty = every interface is eligible (as an implicit primary).
    pub links: Vec<LinkSettings>,
}

impl PolicySettings {
    /// A standard policy with every setting at its default.
    pub fn standard(base: Policy) -> Self {
        PolicySettings {
            name: base.name().to_string(),
            base,
            failover_interval_ms: DEFAULT_FAILOVER_INTERVAL_MS,
            up_delay_ms: 0,
            down_delay_ms: 0,
            link_select: LinkSelectMethod::default(),
            packets_per_link: DEFAULT_PACKETS_PER_LINK,
            balance: BalanceMode::default(),
            quality: LinkQualitySpec::default(),
            links: Vec::new(),
        }
    }

    /// ECHO probe interval for healthy paths (failoverInterval / 3, §3).
    pub fn monitor_interval_ms(&self) -> u64 {
        self.failover_interval_ms / 3
    }

    /// The user-listed link named `name`, if any.
    pub fn link(&self, name: &str) -> Option<&LinkSettings> {
        self.links.iter().find(|l| l.name == name)
    }

    /// Whether paths on interface `name` may join bonds of this policy (§1.1: listed links only, if any).
    pub fn allows_interface(&self, name: &str) -> bool {
        self.links.is_empty() || self.link(name).is_some_and(|l| l.enabled)
    }
}

impl Default for PolicySettings {
    /// No bonding.
    fn default() -> Self {
        PolicySettings::standard(Policy::None)
    }
}

/// A reference to a policy by name: a standard policy or a custom one from `settings.policies`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PolicyRef {
    Standard(Policy),
    Custom(String),
}

impl PolicyRef {
    /// Classify a name: standard names win (custom policies may not use them).
    pub fn from_name(name: &str) -> PolicyRef {
        match Policy::from_name(name) {
            Some(p) => PolicyRef::Standard(p),
            None => PolicyRef::Custom(name.to_string()),
        }
    }

    pub fn name(&self) -> &str {
        match self {
            PolicyRef::Standard(p) => p.name(),
            PolicyRef::Custom(n) => n,
        }
    }
}

impl fmt::Display for PolicyRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The bonding part of `local.conf` (§2), validated.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct BondingConfig {
    /// `defaultBondingPolicy`; `None` when absent (no bonding unless a peer-specific bond applies).
    pub default_policy: Option<PolicyRef>,
    /// Custom policies (`settings.policies`) by name; never named like a standard policy.
    pub policies: BTreeMap<String, PolicySettings>,
    /// 2020-style tuning of a standard policy placed directly under `settings` (e.g.
    /// `settings["active-backup"]`); applies wherever that standard policy is used. zerotier-one 1.14.1
    /// ignores these objects; ztplane applies them (with a warning at parse time).
    pub standard_overrides: BTreeMap<Policy, PolicySettings>,
    /// `peerSpecificBonds`: 40-bit ZeroTier address → policy.
    pub peer_specific: BTreeMap<u64, PolicyRef>,
}

impl BondingConfig {
    /// Whether any bonding is configured (zerotier-one §1.1: a standard default other than none, or at
    /// least one custom policy).
    pub fn bonding_in_use(&self) -> bool {
        matches!(&self.default_policy, Some(PolicyRef::Standard(p)) if *p != Policy::None)
            || matches!(&self.default_policy, Some(PolicyRef::Custom(_)))
            || !self.policies.is_empty()
            || self.peer_specific.values().any(|r| !matches!(r, PolicyRef::Standard(Policy::None)))
    }

    /// The settings of a policy reference: a custom template, an overridden standard policy, or a
    /// standard policy with defaults. An unknown custom name (only possible for hand-built configs;
    /// the parser rejects it) resolves to no bonding.
    pub fn resolve(&self, policy: &PolicyRef) -> PolicySettings {
        match policy {
            PolicyRef::Standard(p) => {
                self.standard_overrides.get(p).cloned().unwrap_or_else(|| PolicySettings::standard(*p))
            }
            PolicyRef::Custom(name) => self.policies.get(name).cloned().unwrap_or_default(),
        }
    }

    /// The policy a bond with `peer` (40-bit address) uses: its `peerSpecificBonds` entry, else
    /// `defaultBondingPolicy`, else none (§1.1).
    pub fn policy_for_peer(&self, peer: u64) -> PolicySettings {
        match self.peer_specific.get(&peer).or(self.default_policy.as_ref()) {
            Some(r) => self.resolve(r),
            None => PolicySettings::standard(Policy::None),
        }
    }
}

/// Something accepted but worth telling the user: a 2020-era key, an ignored setting, a setting whose
/// meaning differs from zerotier-one's.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigWarning {
    /// JSON path of the key concerned (same syntax as [`ConfigError::path`]).
    pub path: String,
    pub message: String,
    /// Where that key is in the text (set by `parse_local_conf` only).
    pub position: Option<TextPosition>,
}

impl fmt::Display for ConfigWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

pub(crate) fn quoted_list<const N: usize>(names: [&str; N]) -> String {
    names.iter().map(|n| format!("\"{n}\"")).collect::<Vec<_>>().join(", ")
}

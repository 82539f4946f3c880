//! Shared helpers for the simulator tests (included with `mod sim_common;`).
#![allow(dead_code)]

use ztplane_bond::config::{LinkMode, LinkSelectMethod, LinkSettings, Policy, PolicySettings};
use ztplane_bond::sim::{self, Scenario, SimResult};

pub fn scenario(json: &str) -> Scenario {
    Scenario::from_json(json).expect("test scenario is valid")
}

pub fn policy(base: Policy) -> PolicySettings {
    PolicySettings::standard(base)
}

pub fn link(name: &str, mode: LinkMode) -> LinkSettings {
    LinkSettings { mode, ..LinkSettings::new(name) }
}

/// active-backup with eth0 primary, eth1 spare and the given reselection method.
pub fn active_backup(method: LinkSelectMethod) -> PolicySettings {
    PolicySettings {
        link_select: method,
        links: vec![link("eth0", LinkMode::Primary), link("eth1", LinkMode::Spare)],
        ..policy(Policy::ActiveBackup)
    }
}

pub fn run(json: &str, settings: PolicySettings) -> SimResult {
    sim::run_policy(&scenario(json), settings).expect("simulation runs")
}

pub fn link_index(r: &SimResult, name: &str) -> usize {
    r.links.iter().position(|l| l.name == name).expect("link exists")
}

//! zerotier-one 1.14.1's network controller, as a pure state machine: ztplane is the controller
//! of the networks whose ID starts with its address (`zerotier-vl2.md` §2.3–§2.5, §3.6, §3.7,
//! §6.3), managed through the same API paths and stored in the same files.
//!
//! * [`NetworkController`] — networks and members in zerotier-one's controller JSON, config
//!   requests answered (it implements the node's [`ztplane_node::Controller`]: the node signs,
//!   chunks and sends), pushes and revocations after changes, records to persist.
//! * [`api`] — the `/controller/...` paths: status codes and bodies as upstream answers them.
//! * [`records`] — record defaults and the normalisation of POST bodies; [`rules_json`] — rules
//!   between JSON and the wire; [`assign`] — managed addresses and IP pools; [`netconf`] — the
//!   config dictionary and its credentials.
//!
//! No I/O, no clock: time comes in as the node's [`ztplane_node::Instant`] and the host says which
//! Unix time its origin is; the host reads and writes `controller.d` (FileDB's layout).
#![forbid(unsafe_code)]

pub mod api;
pub mod assign;
mod controller;
pub mod error;
pub mod inet;
pub mod json;
pub mod netconf;
pub mod records;
pub mod rules_json;

pub use controller::{API_VERSION, MIN_REQUEST_PERIOD_MS, NetworkController, ONLINE_MS, StoreChange};
pub use error::ControllerError;

//! Why a stored record was refused when the controller's state was loaded.

use ztplane_protocol::network::NetworkId;

/// A record from `controller.d` that cannot be used; the host adds the file's path.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ControllerError {
    #[error("not a JSON object")]
    NotAnObject,
    #[error("field `{field}` is {found}, not a {digits}-digit hex ID")]
    BadId { field: &'static str, digits: usize, found: String },
    #[error("the record is for network {found}, but it is stored under network {expected}")]
    WrongNetwork { expected: NetworkId, found: String },
    #[error("no network {0} is loaded for this member")]
    NoSuchNetwork(NetworkId),
}

//! Errors of the host side, sorted by what a caller can do about them.
//!
//! Every variant carries `what`: the operation and the interface or address it concerned (e.g.
//! `add address 198.19.0.5/24 on zt3jq5xyz0`), so a log line is enough to find the culprit. The OS
//! error, where there was one, is kept as the source.

use std::io;

/// Result of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// An error from the tap device, netlink or /proc.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The process lacks CAP_NET_ADMIN (EPERM, EACCES): run as root or grant the capability.
    #[error("{what}: permission denied (needs CAP_NET_ADMIN)")]
    Permission {
        what: String,
        #[source]
        source: io::Error,
    },
    /// The interface does not exist (ENODEV, ENXIO), or not in this network namespace.
    #[error("{what}: no such device")]
    NoSuchDevice {
        what: String,
        #[source]
        source: Option<io::Error>,
    },
    /// The interface, address or route is already there (EEXIST, EBUSY for an exclusive tap).
    #[error("{what}: already exists")]
    Exists {
        what: String,
        #[source]
        source: Option<io::Error>,
    },
    /// The entry to remove or look up is not there (ESRCH, ENOENT, EADDRNOTAVAIL).
    #[error("{what}: not found")]
    NotFound {
        what: String,
        #[source]
        source: Option<io::Error>,
    },
    /// No route to the destination (ENETUNREACH, EHOSTUNREACH), or the route has no usable source.
    #[error("{what}: unreachable")]
    Unreachable {
        what: String,
        #[source]
        source: Option<io::Error>,
    },
    /// A bad name, prefix length, MTU or option combination (EINVAL, ERANGE, …), caught here or by
    /// the kernel.
    #[error("{what}: invalid argument{}", detail.as_deref().map(|d| format!(" ({d})")).unwrap_or_default())]
    InvalidArgument {
        what: String,
        detail: Option<String>,
        #[source]
        source: Option<io::Error>,
    },
    /// A feature this crate does not implement yet (e.g. `TapOptions::vnet_hdr`).
    #[error("{what}: not supported")]
    Unsupported { what: String },
    /// Any other OS or protocol error.
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: io::Error,
    },
}

impl Error {
    /// Sorts an OS error by errno into the variant a caller can act on.
    pub fn from_io(what: impl Into<String>, source: io::Error) -> Error {
        let what = what.into();
        match source.raw_os_error() {
            Some(libc::EPERM | libc::EACCES) => Error::Permission { what, source },
            Some(libc::ENODEV | libc::ENXIO) => Error::NoSuchDevice { what, source: Some(source) },
            Some(libc::EEXIST | libc::EBUSY) => Error::Exists { what, source: Some(source) },
            Some(libc::ESRCH | libc::ENOENT | libc::EADDRNOTAVAIL) => Error::NotFound { what, source: Some(source) },
            Some(libc::ENETUNREACH | libc::EHOSTUNREACH) => Error::Unreachable { what, source: Some(source) },
            Some(libc::EINVAL | libc::ERANGE | libc::EAFNOSUPPORT | libc::EOPNOTSUPP) => {
                Error::InvalidArgument { what, detail: None, source: Some(source) }
            }
            _ => Error::Io { what, source },
        }
    }

    /// The last OS error (errno), sorted.
    pub(crate) fn last_os(what: impl Into<String>) -> Error {
        Error::from_io(what, io::Error::last_os_error())
    }

    /// An argument rejected before it reached the kernel.
    pub(crate) fn invalid(what: impl Into<String>, detail: impl Into<String>) -> Error {
        Error::InvalidArgument { what: what.into(), detail: Some(detail.into()), source: None }
    }

    /// The operation and object the error concerns.
    pub fn what(&self) -> &str {
        match self {
            Error::Permission { what, .. }
            | Error::NoSuchDevice { what, .. }
            | Error::Exists { what, .. }
            | Error::NotFound { what, .. }
            | Error::Unreachable { what, .. }
            | Error::InvalidArgument { what, .. }
            | Error::Unsupported { what }
            | Error::Io { what, .. } => what,
        }
    }

    /// The errno behind the error, if the OS reported one.
    pub fn raw_os_error(&self) -> Option<i32> {
        let source = match self {
            Error::Permission { source, .. } | Error::Io { source, .. } => Some(source),
            Error::NoSuchDevice { source, .. }
            | Error::Exists { source, .. }
            | Error::NotFound { source, .. }
            | Error::Unreachable { source, .. }
            | Error::InvalidArgument { source, .. } => source.as_ref(),
            Error::Unsupported { .. } => None,
        };
        source.and_then(io::Error::raw_os_error)
    }
}

impl From<Error> for io::Error {
    /// For callers that speak `io::Error`: keeps the errno where there is one.
    fn from(e: Error) -> io::Error {
        let kind = match &e {
            Error::Permission { .. } => io::ErrorKind::PermissionDenied,
            Error::NoSuchDevice { .. } | Error::NotFound { .. } => io::ErrorKind::NotFound,
            Error::Exists { .. } => io::ErrorKind::AlreadyExists,
            Error::Unreachable { .. } => io::ErrorKind::HostUnreachable,
            Error::InvalidArgument { .. } => io::ErrorKind::InvalidInput,
            Error::Unsupported { .. } => io::ErrorKind::Unsupported,
            Error::Io { source, .. } => source.kind(),
        };
        io::Error::new(kind, e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errno_sorting_and_messages() {
        let e = Error::from_io("add address 198.19.0.5/24 on zt0", io::Error::from_raw_os_error(libc::EEXIST));
        assert!(matches!(e, Error::Exists { .. }));
        assert_eq!(e.to_string(), "add address 198.19.0.5/24 on zt0: already exists");
        assert_eq!(e.raw_os_error(), Some(libc::EEXIST));
        let e = Error::from_io("open tap zt0", io::Error::from_raw_os_error(libc::EPERM));
        assert!(matches!(e, Error::Permission { .. }));
        assert!(e.to_string().contains("zt0"));
        let e = Error::from_io("route get 198.18.9.9", io::Error::from_raw_os_error(libc::ENETUNREACH));
        assert!(matches!(e, Error::Unreachable { .. }));
        let e = Error::invalid("set MTU of zt0", "MTU 70000 > 65535");
        assert_eq!(e.to_string(), "set MTU of zt0: invalid argument (MTU 70000 > 65535)");
        let e = Error::from_io("x", io::Error::from_raw_os_error(libc::ENOBUFS));
        assert!(matches!(e, Error::Io { .. }));
        assert_eq!(io::Error::from(e).raw_os_error(), None);
    }
}

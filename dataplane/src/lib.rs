//! ztplane dataplane.

//! Bonding configuration in zerotier-one's `local.conf` schema.

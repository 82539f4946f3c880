//! ZeroTier 1.x identities, key agreement and packet armor (cipher suites 0, 1, 3).

//! The version of every machine-readable output ([`super::SCHEMAS`]): a
//! leaf, so the types that write those outputs can carry it without
//! importing the registry, which imports them.

/// It changes when a field is removed or changes meaning, not when one is
/// added.
pub const SCHEMA_VERSION: u32 = 1;

//! lab
pub mod report;

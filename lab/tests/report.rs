//! Report tests (placeholder replaced below).
fn main() {}

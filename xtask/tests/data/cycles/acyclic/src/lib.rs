//! Fixture: declares and re-exports children; defines an item they use.
pub mod leaf;
pub mod user;

pub use leaf::Leaf;

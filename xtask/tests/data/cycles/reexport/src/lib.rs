//! Defines an error type and re-exports the child.
mod child;

pub use child::Thing;

pub struct Error;

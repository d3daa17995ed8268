//! A leaf: refers to nothing in the crate.
pub struct Leaf;

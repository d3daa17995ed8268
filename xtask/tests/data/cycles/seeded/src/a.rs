//! a -> b by a `use` line.
use crate::b::B;

pub struct A(pub B);

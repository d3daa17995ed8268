//! Fixture: three modules in a cycle; the parent's `mod` lines are not edges.
mod a;
mod b;
mod c;

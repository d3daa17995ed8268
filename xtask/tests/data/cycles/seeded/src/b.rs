//! b -> c by an inline `super::` path.
pub struct B;

impl B {
    pub fn go(&self) -> u32 {
        super::c::helper()
    }
}

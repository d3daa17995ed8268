//! Uses the parent's item.
pub struct Thing;

pub fn fail() -> Result<Thing, super::Error> {
    Err(super::Error)
}

//! c -> a by an inline `crate::` path inside a macro's arguments.
pub fn helper() -> u32 {
    let s = format!("{}", std::mem::size_of::<crate::a::A>());
    s.len() as u32
}

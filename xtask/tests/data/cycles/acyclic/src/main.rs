//! The binary names the library by its crate name.
fn main() {
    let _ = acyclic_fixture::user::make();
}

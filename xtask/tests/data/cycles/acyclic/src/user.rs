//! Uses the leaf through the parent's re-export, inline.
pub fn make() -> crate::Leaf {
    crate::Leaf
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn makes() {
        let _ = make();
    }
}

//! Prints docs/FIGURES.md as the figure registry generates it
//! (`lab::report::figures::markdown`). `cargo xtask figures-doc` runs this and
//! writes the file; the lab test `figures_documented` fails when it differs.

fn main() {
    print!("{}", lab::report::figures::markdown());
}

//! `cargo xtask figures-doc [--check]`: writes docs/FIGURES.md from the figure
//! registry, or with `--check` fails when the file is not current. The text
//! comes from `cargo run -p lab --example figures_doc` (so that xtask does not
//! link the lab); the lab test `figures_documented` checks the same.

use std::path::Path;
use std::process::Command;

use anyhow::Context;

#[derive(clap::Args)]
pub struct FiguresDocArgs {
    /// Do not write: fail when docs/FIGURES.md differs from the registry.
    #[arg(long)]
    check: bool,
}

pub fn run(args: FiguresDocArgs) -> anyhow::Result<()> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .context("xtask has no parent directory")?;
    let path = root.join("docs/FIGURES.md");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let out = Command::new(cargo)
        .args(["run", "--quiet", "-p", "lab", "--example", "figures_doc"])
        .current_dir(root)
        .output()
        .context("cannot run cargo")?;
    if !out.status.success() {
        anyhow::bail!(
            "`cargo run -p lab --example figures_doc` failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let want = String::from_utf8(out.stdout).context("the registry's markdown is not UTF-8")?;
    if args.check {
        let have = std::fs::read_to_string(&path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        if have != want {
            anyhow::bail!(
                "{} is not current with the figure registry; run `cargo xtask figures-doc`",
                path.display()
            );
        }
        println!("{} is current", path.display());
        return Ok(());
    }
    std::fs::write(&path, want).with_context(|| format!("cannot write {}", path.display()))?;
    println!("wrote {}", path.display());
    Ok(())
}

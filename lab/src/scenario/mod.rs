//! Scenario files (docs/SCENARIOS.md): parse in two stages, raw serde structs
//! with `deny_unknown_fields` ([`raw`]) then validated domain types
//! ([`model`]); errors carry file, line, column, field and a hint
//! ([`error`]); `--set KEY=VALUE` overrides ([`apply_overrides`]). The small
//! enums live in the leaf [`kinds`] (the owning crates' types), so `raw`
//! depends only on `kinds` and `model` on `raw` and `kinds`: no cycle.

pub mod error;
pub mod kinds;
pub mod model;
pub mod raw;

use std::path::Path;

pub use error::{Diagnostic, ScenarioError};
pub use kinds::*;
pub use model::*;

/// A scenario as written (text) and as resolved (validated, with defaults).
#[derive(Debug, Clone)]
pub struct Loaded {
    /// The file name used in error messages.
    pub file: String,
    /// The text as written.
    pub text: String,
    /// The `--set` overrides applied, in order.
    pub overrides: Vec<String>,
    /// The text after overrides (equal to `text` without overrides).
    pub effective_text: String,
    /// The validated scenario.
    pub scenario: Scenario,
}

/// Parses and validates scenario text; `file` labels error messages.
pub fn parse(file: &str, src: &str) -> Result<Scenario, ScenarioError> {
    let raw: raw::RawScenario = toml::from_str(src)
        .map_err(|e| ScenarioError::Invalid(Box::new(error::from_toml(file, src, &e))))?;
    model::validate(raw, 0..src.len()).map_err(|inv| {
        ScenarioError::Invalid(Box::new(error::locate(
            file,
            src,
            inv.span,
            inv.field,
            inv.message,
            inv.hint,
        )))
    })
}

/// Reads, overrides and validates a scenario file.
pub fn load(path: &Path, overrides: &[String]) -> Result<Loaded, ScenarioError> {
    let file = path.display().to_string();
    let bytes = std::fs::read(path).map_err(|e| ScenarioError::Read {
        file: file.clone(),
        message: e.to_string(),
    })?;
    let text = String::from_utf8(bytes).map_err(|e| ScenarioError::Read {
        file: file.clone(),
        message: format!(
            "not UTF-8 (byte {}): save it as UTF-8",
            e.utf8_error().valid_up_to()
        ),
    })?;
    // Validate the file as written first, so that errors point into it.
    let mut scenario = parse(&file, &text)?;
    let mut effective_text = text.clone();
    if !overrides.is_empty() {
        effective_text = apply_overrides(&text, overrides)?;
        scenario = parse(&format!("{file} (after --set)"), &effective_text)?;
    }
    Ok(Loaded {
        file,
        text,
        overrides: overrides.to_vec(),
        effective_text,
        scenario,
    })
}

/// Applies `KEY=VALUE` overrides to scenario text. KEY is a dotted path
/// (`node.refnode.synced_commit`, `phase.1.duration_s` for the second
/// phase); VALUE is a TOML value (`true`, `42`, `"text"`), or a bare string.
/// Returns the re-serialised document (comments are not kept).
pub fn apply_overrides(src: &str, overrides: &[String]) -> Result<String, ScenarioError> {
    let mut doc: toml::Table = toml::from_str(src).map_err(|e| ScenarioError::Override {
        arg: overrides.join(" "),
        message: format!("the scenario is not valid TOML: {}", e.message()),
    })?;
    for arg in overrides {
        let err = |message: String| ScenarioError::Override {
            arg: arg.clone(),
            message,
        };
        let (key, value) = arg.split_once('=').ok_or_else(|| {
            err("expected KEY=VALUE, e.g. node.refnode.synced_commit=true".into())
        })?;
        let value = parse_value(value.trim());
        let parts: Vec<&str> = key.trim().split('.').collect();
        if parts.iter().any(|p| p.is_empty()) {
            return Err(err(format!("empty segment in key {key:?}")));
        }
        set_path(&mut doc, &parts, value).map_err(err)?;
    }
    toml::to_string(&doc).map_err(|e| ScenarioError::Override {
        arg: overrides.join(" "),
        message: e.to_string(),
    })
}

fn parse_value(s: &str) -> toml::Value {
    toml::from_str::<toml::Table>(&format!("v = {s}"))
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| toml::Value::String(s.to_string()))
}

fn set_path(table: &mut toml::Table, parts: &[&str], value: toml::Value) -> Result<(), String> {
    let (first, rest) = parts.split_first().ok_or("empty key")?;
    if rest.is_empty() {
        table.insert((*first).to_string(), value);
        return Ok(());
    }
    let entry = table
        .entry((*first).to_string())
        .or_insert_with(|| toml::Value::Table(Default::default()));
    set_in_value(entry, first, rest, value)
}

fn set_in_value(
    v: &mut toml::Value,
    name: &str,
    rest: &[&str],
    value: toml::Value,
) -> Result<(), String> {
    match v {
        toml::Value::Table(t) => set_path(t, rest, value),
        toml::Value::Array(a) => {
            let i: usize = rest[0].parse().map_err(|_| {
                format!("`{name}` is a list: follow it with an index, e.g. {name}.0")
            })?;
            let len = a.len();
            let item = a
                .get_mut(i)
                .ok_or(format!("`{name}` has {len} entries, no index {i}"))?;
            if rest.len() == 1 {
                *item = value;
                Ok(())
            } else {
                set_in_value(item, rest[0], &rest[1..], value)
            }
        }
        _ => Err(format!("`{name}` is a value, not a table")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINI: &str = "name = \"m\"\nseed = 1\n[[phase]]\nname = \"a\"\nduration_s = 1\n";

    #[test]
    fn defaults_fill_in() {
        let s = parse("m.toml", MINI).unwrap();
        assert!(matches!(s.target, TargetSpec::Local));
        assert_eq!(s.node.kind, NodeKind::Refnode);
        assert_eq!(s.probes.enable.len(), 5);
        assert_eq!(s.bundle.dir, DEFAULT_BUNDLE_DIR);
    }

    /// Issue 12: `[probes] unwind` picks the user-stack unwinder.
    #[test]
    fn probes_unwind_key() {
        assert_eq!(parse("m.toml", MINI).unwrap().probes.unwind, UnwindMode::Fp);
        let s = parse("m.toml", &format!("{MINI}[probes]\nunwind = \"dwarf\"\n")).unwrap();
        assert_eq!(s.probes.unwind, UnwindMode::Dwarf);
        let e = parse("m.toml", &format!("{MINI}[probes]\nunwind = \"lbr\"\n"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("unwind") || e.contains("lbr"), "{e}");
    }

    /// `[probes] ustack_bytes`: whole pages up to the probe's limit (it
    /// reaches qfc-probe as `--ustack-bytes`: `probe::tests::probe_command_line`);
    /// anything else names the line and field.
    #[test]
    fn probes_ustack_bytes_key() {
        let s = parse("m.toml", MINI).unwrap();
        assert_eq!(s.probes.ustack_bytes, probes::session::DEFAULT_USTACK_BYTES);
        let s = parse(
            "m.toml",
            &format!("{MINI}[probes]\nunwind = \"auto\"\nustack_bytes = 32768\n"),
        )
        .unwrap();
        assert_eq!(s.probes.ustack_bytes, 32768);
        let over = (probes_common::ustack::USTACK_MAX + 4096).to_string();
        for bad in ["0", "1000", over.as_str()] {
            let e = parse("m.toml", &format!("{MINI}[probes]\nustack_bytes = {bad}\n"))
                .unwrap_err()
                .to_string();
            assert!(
                e.contains("probes.ustack_bytes") && e.contains("m.toml:7"),
                "{bad}: {e}"
            );
        }
    }

    /// Issue 15: `[[expect]] stat` is optional, one of median | all | ci, and
    /// fine without `[run] repeat` (one run is judged on its value).
    #[test]
    fn expect_stat_key() {
        let e = "[[expect]]\nfigure = \"node.blocks\"\nop = \">=\"\nvalue = 1\n";
        let s = parse("m.toml", &format!("{MINI}{e}")).unwrap();
        assert_eq!(s.expects[0].stat, None);
        let s = parse("m.toml", &format!("{MINI}{e}stat = \"ci\"\n")).unwrap();
        assert_eq!(s.expects[0].stat, Some(crate::report::spec::Stat::Ci));
        assert_eq!(s.repeat, 1);
        let err = parse("m.toml", &format!("{MINI}{e}stat = \"mean\"\n"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("expect[0].stat") && err.contains("\"median\", \"all\", \"ci\""),
            "{err}"
        );
    }

    #[test]
    fn override_sets_nested_key_and_phase_index() {
        let src = format!("{MINI}[node.refnode]\nsynced_commit = false\n");
        let out = apply_overrides(
            &src,
            &[
                "node.refnode.synced_commit=true".into(),
                "phase.0.duration_s=7".into(),
            ],
        )
        .unwrap();
        let s = parse("x", &out).unwrap();
        assert!(s.node.refnode.unwrap().synced_commit);
        assert_eq!(s.phases[0].duration_s, 7);
    }

    #[test]
    fn override_errors_name_the_problem() {
        let e = apply_overrides(MINI, &["phase.x.name=b".into()])
            .unwrap_err()
            .to_string();
        assert!(e.contains("follow it with an index"), "{e}");
        let e = apply_overrides(MINI, &["nokey".into()])
            .unwrap_err()
            .to_string();
        assert!(e.contains("KEY=VALUE"), "{e}");
    }

    #[test]
    fn field_path_indexes_arrays_of_tables() {
        let src =
            "[[phase]]\nname = \"a\"\n[[phase]]\nname = \"b\"\n[phase.load.rpc]\nrate_per_s = -1\n";
        let off = src.find("rate_per_s").unwrap();
        assert_eq!(
            error::field_path_at(src, off),
            "phase[1].load.rpc.rate_per_s"
        );
    }

    /// Issue 14: the scenario holds `loadgen::PhaseLoad` itself (no
    /// field-by-field converter), with the scenario's defaults.
    #[test]
    fn phase_load_is_loadgens_own_type() {
        let src = "name = \"c\"\nseed = 1\n[[phase]]\nname = \"a\"\nduration_s = 1\n\
                   [phase.load.rpc]\nrate_per_s = 5\nmix = { eth_syncing = 2 }\n\
                   [phase.load.tx]\nrate_per_s = 7\naccounts = 3\ntimeout_ms = 900\n\
                   [phase.load.sync]\npeers = 2\nrequest = \"mixed\"\n\
                   [phase.load.compaction]\nmethod = \"write_flood\"\nflood_mib = 9\n";
        let s = parse("c.toml", src).unwrap();
        let l: &loadgen::PhaseLoad = &s.phases[0].load;
        let rpc = l.rpc.as_ref().unwrap();
        assert_eq!(rpc.mix[&loadgen::RpcMethod::EthSyncing], 2);
        assert_eq!((rpc.concurrency, rpc.timeout_ms), (16, 5000));
        assert_eq!(l.tx.as_ref().unwrap().timeout_ms, 900);
        assert_eq!(
            l.sync.as_ref().unwrap().request,
            loadgen::SyncRequestKind::Mixed
        );
        let c = l.compaction.as_ref().unwrap();
        assert_eq!(
            (c.method, c.flood_mib),
            (loadgen::CompactionMethod::WriteFlood, 9)
        );
        l.validate().unwrap();
    }

    /// Issue 14: loadgen's one validator decides, its field errors land on
    /// the line and column where the value was written: a limit that only
    /// loadgen used to check (concurrency <= 10000) and one that only lab
    /// checked (steps with a closed loop).
    #[test]
    fn loadgen_validator_errors_are_located() {
        let src = format!("{MINI}[phase.load.rpc]\nmodel = \"closed\"\nconcurrency = 20000\n");
        let ScenarioError::Invalid(d) = parse("f.toml", &src).unwrap_err() else {
            panic!("not located")
        };
        assert_eq!(
            (d.line, d.column, d.field.as_str()),
            (8, 15, "phase[0].load.rpc.concurrency"),
            "{d}"
        );
        assert!(d.message.contains("1..=10000"), "{d}");
        let src = format!(
            "{MINI}[phase.load.rpc]\nmodel = \"closed\"\nsteps = [{{ duration_s = 1, rate_per_s = 5 }}]\n"
        );
        let ScenarioError::Invalid(d) = parse("f.toml", &src).unwrap_err() else {
            panic!("not located")
        };
        assert_eq!(
            (d.line, d.field.as_str()),
            (8, "phase[0].load.rpc.steps"),
            "{d}"
        );
        assert!(d.hint.unwrap().contains("open-loop"));
        let src = format!(
            "{MINI}[phase.load.rpc]\nsteps = [{{ duration_s = 1, rate_per_s = 5 }}, {{ duration_s = 0, rate_per_s = 5 }}]\n"
        );
        let ScenarioError::Invalid(d) = parse("f.toml", &src).unwrap_err() else {
            panic!("not located")
        };
        assert_eq!(d.field, "phase[0].load.rpc.steps[1].duration_s", "{d}");
        assert_eq!(d.column, 61, "{d}");
        let src = format!("{MINI}[phase.load.rpc]\nmix = {{ eth_chainId = 0 }}\n");
        let ScenarioError::Invalid(d) = parse("f.toml", &src).unwrap_err() else {
            panic!("not located")
        };
        assert_eq!(
            (d.line, d.field.as_str()),
            (7, "phase[0].load.rpc.mix"),
            "{d}"
        );
    }

    #[test]
    fn qfc_node_rejects_refnode_knobs() {
        let src = format!(
            "{MINI}[node]\nkind = \"qfc-node\"\nbinary = \"/x\"\n[node.refnode]\nadmin = true\n"
        );
        let e = parse("f.toml", &src).unwrap_err().to_string();
        assert!(e.contains("node.refnode"), "{e}");
    }
}

//! tracefs: mounting it when missing, and reading tracepoint field offsets
//! from `format` files so that one eBPF object runs on any kernel.
use std::path::{Path, PathBuf};

use crate::error::ProbeError;

/// Where tracefs is expected.
pub const TRACEFS: &str = "/sys/kernel/tracing";

/// Mounts tracefs at [`TRACEFS`] unless it is already there.
pub fn ensure_mounted() -> Result<(), ProbeError> {
    let events = Path::new(TRACEFS).join("events");
    if events.is_dir() {
        return Ok(());
    }
    tracing::info!(path = TRACEFS, "mounting tracefs");
    nix::mount::mount(
        Some("tracefs"),
        TRACEFS,
        Some("tracefs"),
        nix::mount::MsFlags::empty(),
        None::<&str>,
    )
    .map_err(|e| ProbeError::Tracefs(e.to_string()))?;
    if events.is_dir() {
        Ok(())
    } else {
        Err(ProbeError::Tracefs(
            "mounted, but events/ is missing".into(),
        ))
    }
}

/// Field offsets of one tracepoint, parsed from its `format` file.
#[derive(Debug, Clone)]
pub struct Format {
    tracepoint: String,
    path: PathBuf,
    fields: Vec<(String, u32)>,
}

impl Format {
    /// Reads `events/<category>/<name>/format`.
    pub fn read(category: &str, name: &str) -> Result<Self, ProbeError> {
        let path = Path::new(TRACEFS)
            .join("events")
            .join(category)
            .join(name)
            .join("format");
        let text = std::fs::read_to_string(&path)
            .map_err(|e| ProbeError::io("reading tracepoint format", &path, e))?;
        Ok(Self::parse(&format!("{category}/{name}"), path, &text))
    }

    /// Parses the text of a format file.
    pub fn parse(tracepoint: &str, path: PathBuf, text: &str) -> Self {
        let mut fields = Vec::new();
        for line in text.lines() {
            let line = line.trim();
            let Some(rest) = line.strip_prefix("field:") else {
                continue;
            };
            let mut decl = None;
            let mut offset = None;
            for part in rest.split(';') {
                let part = part.trim();
                if let Some(o) = part.strip_prefix("offset:") {
                    offset = o.trim().parse::<u32>().ok();
                } else if decl.is_none() && !part.is_empty() && !part.contains(':') {
                    decl = Some(part.to_owned());
                }
            }
            // The declaration is the first part ("char prev_comm[16]").
            let decl =
                decl.unwrap_or_else(|| rest.split(';').next().unwrap_or("").trim().to_owned());
            let name = decl
                .split_whitespace()
                .last()
                .unwrap_or("")
                .split('[')
                .next()
                .unwrap_or("")
                .to_owned();
            if let (false, Some(off)) = (name.is_empty(), offset) {
                fields.push((name, off));
            }
        }
        Self {
            tracepoint: tracepoint.to_owned(),
            path,
            fields,
        }
    }

    /// The offset of `field`.
    pub fn offset(&self, field: &str) -> Result<u32, ProbeError> {
        self.fields
            .iter()
            .find(|(n, _)| n == field)
            .map(|(_, o)| *o)
            .ok_or_else(|| ProbeError::Format {
                tracepoint: self.tracepoint.clone(),
                field: field.to_owned(),
                path: self.path.clone(),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SWITCH: &str = "name: sched_switch\nID: 316\nformat:\n\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;\n\tfield:char prev_comm[16];\toffset:8;\tsize:16;\tsigned:0;\n\tfield:pid_t prev_pid;\toffset:24;\tsize:4;\tsigned:1;\n\tfield:long prev_state;\toffset:32;\tsize:8;\tsigned:1;\n\tfield:pid_t next_pid;\toffset:56;\tsize:4;\tsigned:1;\n\tfield:__data_loc char[] cmd;\toffset:60;\tsize:4;\tsigned:0;\n";

    #[test]
    fn parses_offsets() {
        let f = Format::parse("sched/sched_switch", PathBuf::from("x"), SWITCH);
        assert_eq!(f.offset("prev_comm").unwrap(), 8);
        assert_eq!(f.offset("prev_pid").unwrap(), 24);
        assert_eq!(f.offset("prev_state").unwrap(), 32);
        assert_eq!(f.offset("next_pid").unwrap(), 56);
        assert_eq!(f.offset("cmd").unwrap(), 60);
        let err = f.offset("nope").unwrap_err().to_string();
        assert!(
            err.contains("sched/sched_switch") && err.contains("nope"),
            "{err}"
        );
    }
}

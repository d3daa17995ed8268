//! Pictures: flame graphs (inferno, deterministic colours) and the run's timeline chart
//! (plotters, SVG): load throughput and p99 per second, WAL syncs per second, L0 files,
//! pending compaction bytes and stall time from the metrics series, phase boundaries marked.

use plotters::prelude::*;
use std::str::FromStr;

use super::evidence::{Bundle, MetricsWindow};

/// A flame graph SVG from folded text; `None` when there is nothing to draw.
pub fn flame_svg(folded: &str, title: &str, count_name: &str, offcpu: bool) -> Option<String> {
    if folded.trim().is_empty() {
        return None;
    }
    let mut opt = inferno::flamegraph::Options::default();
    opt.deterministic = true;
    opt.title = title.to_string();
    opt.count_name = count_name.to_string();
    if offcpu {
        if let Ok(p) = inferno::flamegraph::color::Palette::from_str("io") {
            opt.colors = p;
        }
    }
    let mut out = Vec::new();
    inferno::flamegraph::from_lines(&mut opt, folded.lines(), &mut out).ok()?;
    String::from_utf8(out).ok()
}

/// A differential flame graph (inferno's diff-folded): colours show growth (red) and
/// shrinkage (blue) from `before` to `after`, widths are `after`.
pub fn diff_flame_svg(before: &str, after: &str, title: &str, count_name: &str) -> Option<String> {
    if before.trim().is_empty() && after.trim().is_empty() {
        return None;
    }
    let mut diff = Vec::new();
    inferno::differential::from_readers(
        inferno::differential::Options::default(),
        before.as_bytes(),
        after.as_bytes(),
        &mut diff,
    )
    .ok()?;
    let text = String::from_utf8(diff).ok()?;
    let mut opt = inferno::flamegraph::Options::default();
    opt.deterministic = true;
    opt.title = title.to_string();
    opt.count_name = count_name.to_string();
    let mut out = Vec::new();
    inferno::flamegraph::from_lines(&mut opt, text.lines(), &mut out).ok()?;
    String::from_utf8(out).ok()
}

/// Title, points, metric name.
type MetricPanel<'a> = (&'a str, Vec<(f64, f64)>, &'a str);

/// One panel of the timeline: a title and its lines (label, points).
struct Panel {
    title: String,
    lines: Vec<(String, Vec<(f64, f64)>)>,
}

/// Per-second rate of a counter (summed over labels) from the metrics series.
fn rate(series: &[(f64, std::collections::BTreeMap<String, f64>)], name: &str) -> Vec<(f64, f64)> {
    let pts: Vec<(f64, f64)> = series
        .iter()
        .filter_map(|(t, s)| MetricsWindow::sum(s, name).map(|v| (*t, v)))
        .collect();
    // scrapes closer than half a second (e.g. a phase-boundary scrape next to a periodic
    // one) would make noisy rates: measure from the last point at least 0.5 s before
    let mut out = Vec::new();
    let mut last: Option<(f64, f64)> = None;
    for (t, v) in pts {
        match last {
            None => last = Some((t, v)),
            Some((t0, v0)) if t - t0 >= 0.5 => {
                out.push((t, ((v - v0) / (t - t0)).max(0.0)));
                last = Some((t, v));
            }
            Some(_) => {}
        }
    }
    out
}

fn gauge(
    series: &[(f64, std::collections::BTreeMap<String, f64>)],
    name: &str,
    f: fn(&std::collections::BTreeMap<String, f64>, &str) -> Option<f64>,
) -> Vec<(f64, f64)> {
    series
        .iter()
        .filter_map(|(t, s)| f(s, name).map(|v| (*t, v)))
        .collect()
}

/// The timeline SVG, or `None` when there is no time series at all (the report then says
/// so). Also returns the names of the series that were absent.
pub fn timeline_svg(b: &Bundle) -> (Option<String>, Vec<String>) {
    let (panels, absent) = timeline_panels(b);
    if panels.is_empty() {
        return (None, absent);
    }
    (draw_panels(&panels, &b.boundaries), absent)
}

/// The timeline's panels, top to bottom (load, RocksDB metrics, probes' fsync
/// rate), and a description of each series that is absent.
fn timeline_panels(b: &Bundle) -> (Vec<Panel>, Vec<String>) {
    let mut absent = Vec::new();
    let mut panels = Vec::new();
    // load
    let mut thr = Vec::new();
    let mut p99 = Vec::new();
    let mut workloads: Vec<String> = b
        .phases
        .iter()
        .filter_map(|p| p.load.as_ref())
        .flat_map(|l| l.keys().cloned())
        .collect();
    workloads.sort();
    workloads.dedup();
    for w in &workloads {
        let mut t = Vec::new();
        let mut q = Vec::new();
        for p in &b.phases {
            if let Some(d) = p.load.as_ref().and_then(|l| l.get(w)) {
                for (ts, ok, p99v) in &d.series {
                    if let Some(v) = ok {
                        t.push((*ts, *v));
                    }
                    if let Some(v) = p99v {
                        q.push((*ts, *v));
                    }
                }
            }
        }
        if !t.is_empty() {
            thr.push((w.clone(), t));
        }
        if !q.is_empty() {
            p99.push((w.clone(), q));
        }
    }
    if thr.is_empty() {
        absent.push("load throughput per second (load/<phase>/series.json)".into());
    } else {
        panels.push(Panel {
            title: "load: answered requests per second".into(),
            lines: thr,
        });
    }
    if p99.is_empty() {
        absent.push("load p99 per second (load/<phase>/series.json)".into());
    } else {
        panels.push(Panel {
            title: "load: p99 latency per second (ms)".into(),
            lines: p99,
        });
    }
    let s = &b.metrics_series;
    let metric_panels: [MetricPanel; 4] = [
        (
            "RocksDB WAL syncs per second (metrics)",
            rate(s, "qfc_rocksdb_wal_syncs_total"),
            "qfc_rocksdb_wal_syncs_total",
        ),
        (
            "RocksDB L0 files (largest column family)",
            gauge(s, "qfc_rocksdb_l0_files", MetricsWindow::max_label),
            "qfc_rocksdb_l0_files",
        ),
        (
            "RocksDB pending compaction (MiB, all column families)",
            gauge(
                s,
                "qfc_rocksdb_pending_compaction_bytes",
                MetricsWindow::sum,
            )
            .into_iter()
            .map(|(t, v)| (t, v / 1048576.0))
            .collect(),
            "qfc_rocksdb_pending_compaction_bytes",
        ),
        (
            "RocksDB write stall (ms per second)",
            rate(s, "qfc_rocksdb_stall_micros_total")
                .into_iter()
                .map(|(t, v)| (t, v / 1000.0))
                .collect(),
            "qfc_rocksdb_stall_micros_total",
        ),
    ];
    for (title, pts, metric) in metric_panels {
        if pts.is_empty() {
            absent.push(format!("{metric} (metrics/series.jsonl)"));
        } else {
            panels.push(Panel {
                title: title.into(),
                lines: vec![(metric.into(), pts)],
            });
        }
    }
    // probes' fsync rate per phase, as a step
    let mut steps = Vec::new();
    for p in &b.phases {
        if let (Some(f), Some((a, z))) = (&p.fsync, p.span_s) {
            if z > a {
                let n: u64 = f.calls_by_comm.values().sum();
                let r = n as f64 / (z - a);
                steps.push((a, r));
                steps.push((z, r));
            }
        }
    }
    if !steps.is_empty() {
        panels.push(Panel {
            title: "fsync + fdatasync per second (probes, phase average)".into(),
            lines: vec![("probes".into(), steps)],
        });
    } else {
        absent.push("probe fsync rate per phase (probes/<phase>/fsync + timeline.json)".into());
    }
    (panels, absent)
}

/// Draws stacked panels sharing one time axis, with the phase boundaries; `None`
/// when the SVG backend fails.
fn draw_panels(panels: &[Panel], boundaries: &[(String, f64, f64)]) -> Option<String> {
    let x_max = panels
        .iter()
        .flat_map(|p| p.lines.iter().flat_map(|l| l.1.iter().map(|x| x.0)))
        .chain(boundaries.iter().map(|x| x.2))
        .fold(1.0f64, f64::max);
    let h_panel = 170u32;
    let height = h_panel * panels.len() as u32 + 20;
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (960, height)).into_drawing_area();
        if root.fill(&WHITE).is_err() {
            return None;
        }
        let areas = root.split_evenly((panels.len(), 1));
        let colors = [BLUE, RED, GREEN, MAGENTA, CYAN, BLACK];
        let last = panels.len() - 1;
        for (i_panel, (area, panel)) in areas.iter().zip(panels).enumerate() {
            let y_max = panel
                .lines
                .iter()
                .flat_map(|l| l.1.iter().map(|x| x.1))
                .fold(0.0f64, f64::max);
            let y_max = if y_max > 0.0 { y_max * 1.1 } else { 1.0 };
            let Ok(mut chart) = ChartBuilder::on(area)
                .caption(&panel.title, ("sans-serif", 14))
                .margin(6)
                .margin_right(16)
                .x_label_area_size(if i_panel == last { 36 } else { 20 })
                .y_label_area_size(60)
                .build_cartesian_2d(0f64..x_max, 0f64..y_max)
            else {
                continue;
            };
            let mut mesh = chart.configure_mesh();
            mesh.disable_x_mesh().disable_y_mesh();
            if i_panel == last {
                mesh.x_desc("seconds since the first phase started");
            }
            let _ = mesh.draw();
            for (name, a, _) in boundaries {
                let _ = chart.draw_series(LineSeries::new(
                    vec![(*a, 0.0), (*a, y_max)],
                    BLACK.mix(0.4),
                ));
                let _ = chart.draw_series(std::iter::once(Text::new(
                    name.clone(),
                    (*a, y_max * 0.97),
                    ("sans-serif", 11),
                )));
            }
            for (i, (label, pts)) in panel.lines.iter().enumerate() {
                let c = colors[i % colors.len()];
                if let Ok(s) =
                    chart.draw_series(LineSeries::new(pts.iter().copied(), c.stroke_width(2)))
                {
                    s.label(label.clone()).legend(move |(x, y)| {
                        PathElement::new(vec![(x, y), (x + 14, y)], c.stroke_width(2))
                    });
                }
            }
            if panel.lines.len() > 1 {
                let _ = chart
                    .configure_series_labels()
                    .background_style(WHITE.mix(0.8))
                    .border_style(BLACK)
                    .draw();
            }
        }
        if root.present().is_err() {
            return None;
        }
    }
    Some(svg)
}

//! The correction for comparing many figures at once: Benjamini-Hochberg
//! adjusted p-values (step-up, false discovery rate). When no figure truly
//! changed, a false discovery rate of 5% is a 5% chance of flagging any
//! figure at all, which is what a same-vs-same diff needs; when some did,
//! it keeps more power than Holm at 5 repetitions (docs/STATISTICS.md).

/// Adjusted p-values, same order as `p`: `min_{j >= i} (m / j) p_(j)`,
/// capped at 1.
pub fn benjamini_hochberg(p: &[f64]) -> Vec<f64> {
    let m = p.len();
    let mut idx: Vec<usize> = (0..m).collect();
    idx.sort_by(|&i, &j| p[i].total_cmp(&p[j]));
    let mut adj = vec![0.0; m];
    let mut running = 1.0f64;
    for rank in (0..m).rev() {
        let i = idx[rank];
        running = running.min(p[i] * m as f64 / (rank + 1) as f64);
        adj[i] = running.min(1.0);
    }
    adj
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_answer() {
        // R: p.adjust(c(0.01, 0.04, 0.03, 0.20), "BH") = 0.04 0.0533 0.0533 0.20
        let a = benjamini_hochberg(&[0.01, 0.04, 0.03, 0.20]);
        let want = [0.04, 0.04 * 4.0 / 3.0, 0.04 * 4.0 / 3.0, 0.20];
        for (x, w) in a.iter().zip(want) {
            assert!((x - w).abs() < 1e-12, "{a:?}");
        }
        assert_eq!(benjamini_hochberg(&[0.5]), vec![0.5]);
        assert!(benjamini_hochberg(&[]).is_empty());
    }
}

//! Scores of a probe: accuracy, majority baseline, Pearson, Spearman,
//! Matthews correlation and macro F1.
//!
//! Degenerate inputs (empty, constant) give 0.0 rather than NaN, matching the
//! method's "NaN -> 0" convention, so threshold comparisons stay meaningful.

/// Fraction of positions where `pred == gold` (0.0 for empty input).
///
/// Panics if the lengths differ (a caller bug).
pub fn accuracy(pred: &[u32], gold: &[u32]) -> f64 {
    assert_eq!(pred.len(), gold.len(), "accuracy: length mismatch");
    if gold.is_empty() {
        return 0.0;
    }
    let hits = pred.iter().zip(gold).filter(|(p, g)| p == g).count();
    hits as f64 / gold.len() as f64
}

/// The most frequent class of `labels` (ties: lowest index, like numpy's
/// argmax of bincount); `None` when empty.
pub fn majority_class(labels: &[u32]) -> Option<u32> {
    let max = *labels.iter().max()? as usize;
    let mut counts = vec![0usize; max + 1];
    labels.iter().for_each(|&l| counts[l as usize] += 1);
    let mut best = 0;
    for (c, &n) in counts.iter().enumerate() {
        if n > counts[best] {
            best = c;
        }
    }
    Some(best as u32)
}

/// Accuracy on `eval_labels` of always predicting the most frequent TRAIN
/// class: the floor every probe must clear to mean anything.
pub fn majority_baseline(train_labels: &[u32], eval_labels: &[u32]) -> f64 {
    match majority_class(train_labels) {
        Some(c) => accuracy(&vec![c; eval_labels.len()], eval_labels),
        None => 0.0,
    }
}

/// Pearson correlation in f64 (0.0 if either side is constant or empty).
pub fn pearson(x: &[f32], y: &[f32]) -> f64 {
    let xs: Vec<f64> = x.iter().map(|&v| v as f64).collect();
    let ys: Vec<f64> = y.iter().map(|&v| v as f64).collect();
    pearson_f64(&xs, &ys)
}

fn pearson_f64(x: &[f64], y: &[f64]) -> f64 {
    assert_eq!(x.len(), y.len(), "correlation: length mismatch");
    let n = x.len() as f64;
    if x.is_empty() {
        return 0.0;
    }
    let (mx, my) = (x.iter().sum::<f64>() / n, y.iter().sum::<f64>() / n);
    let (mut sxy, mut sxx, mut syy) = (0.0, 0.0, 0.0);
    for (&a, &b) in x.iter().zip(y) {
        let (da, db) = (a - mx, b - my);
        sxy += da * db;
        sxx += da * da;
        syy += db * db;
    }
    if sxx == 0.0 || syy == 0.0 {
        return 0.0;
    }
    sxy / (sxx * syy).sqrt()
}

/// Spearman rank correlation: Pearson of the ranks, ties get their average
/// rank (scipy's default).
pub fn spearman(x: &[f32], y: &[f32]) -> f64 {
    pearson_f64(&average_ranks(x), &average_ranks(y))
}

/// 1-based ranks with ties averaged; NaN sorts last (total order).
fn average_ranks(v: &[f32]) -> Vec<f64> {
    let mut idx: Vec<usize> = (0..v.len()).collect();
    idx.sort_by(|&a, &b| v[a].total_cmp(&v[b]));
    let mut ranks = vec![0.0; v.len()];
    let mut i = 0;
    while i < idx.len() {
        let mut j = i;
        while j + 1 < idx.len() && v[idx[j + 1]] == v[idx[i]] {
            j += 1;
        }
        let rank = (i + j) as f64 / 2.0 + 1.0;
        idx[i..=j].iter().for_each(|&k| ranks[k] = rank);
        i = j + 1;
    }
    ranks
}

/// Confusion matrix [gold][pred] over `num_classes` (labels beyond are
/// counted in an enlarged matrix so nothing is silently dropped).
fn confusion(pred: &[u32], gold: &[u32], num_classes: usize) -> Vec<Vec<u64>> {
    assert_eq!(pred.len(), gold.len(), "confusion: length mismatch");
    let top = pred
        .iter()
        .chain(gold)
        .map(|&c| c as usize + 1)
        .max()
        .unwrap_or(0);
    let k = num_classes.max(top);
    let mut m = vec![vec![0u64; k]; k];
    for (&p, &g) in pred.iter().zip(gold) {
        m[g as usize][p as usize] += 1;
    }
    m
}

/// Multiclass Matthews correlation coefficient (Gorodkin's R_K, as in
/// scikit-learn); 0.0 when undefined.
pub fn matthews(pred: &[u32], gold: &[u32], num_classes: usize) -> f64 {
    let m = confusion(pred, gold, num_classes);
    let k = m.len();
    let t: Vec<f64> = (0..k).map(|i| m[i].iter().sum::<u64>() as f64).collect();
    let p: Vec<f64> = (0..k)
        .map(|j| m.iter().map(|r| r[j]).sum::<u64>() as f64)
        .collect();
    let c: f64 = (0..k).map(|i| m[i][i] as f64).sum();
    let s = pred.len() as f64;
    let tp: f64 = t.iter().zip(&p).map(|(a, b)| a * b).sum();
    let cov_yy = s * s - p.iter().map(|v| v * v).sum::<f64>();
    let cov_xx = s * s - t.iter().map(|v| v * v).sum::<f64>();
    if cov_yy == 0.0 || cov_xx == 0.0 {
        return 0.0;
    }
    (c * s - tp) / (cov_xx * cov_yy).sqrt()
}

/// Macro-averaged F1 over the classes that occur in gold or pred (a class
/// with no support and no prediction is skipped, as scikit-learn's labels=None).
pub fn macro_f1(pred: &[u32], gold: &[u32], num_classes: usize) -> f64 {
    let m = confusion(pred, gold, num_classes);
    let k = m.len();
    let mut sum = 0.0;
    let mut present = 0;
    for c in 0..k {
        let tp = m[c][c] as f64;
        let support: u64 = m[c].iter().sum();
        let predicted: u64 = m.iter().map(|r| r[c]).sum();
        if support == 0 && predicted == 0 {
            continue;
        }
        present += 1;
        let denom = (support + predicted) as f64;
        sum += 2.0 * tp / denom;
    }
    if present == 0 {
        0.0
    } else {
        sum / present as f64
    }
}

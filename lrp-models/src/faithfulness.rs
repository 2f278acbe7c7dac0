//! Are the explanations right? The measures of Arras et al. (2017, word
//! deletion), Arras et al. (2019, a toy task whose relevant positions are
//! known) and DeYoung et al. (2020, ERASER's comprehensiveness and
//! sufficiency), written over plain relevance vectors so that any method
//! and any model can be compared.

/// The order in which positions are deleted: by relevance, most relevant
/// first (or least relevant first), ties broken by position (earlier
/// first), so that the order is deterministic.
pub fn deletion_order(relevance: &[f64], most_relevant_first: bool) -> Vec<usize> {
    let mut order: Vec<usize> = (0..relevance.len()).collect();
    order.sort_by(|&a, &b| {
        let by_value = relevance[a].total_cmp(&relevance[b]);
        let by_value = if most_relevant_first {
            by_value.reverse()
        } else {
            by_value
        };
        by_value.then(a.cmp(&b))
    });
    order
}

use crate::Error;

/// The longest deletion curve: 1,000 deletions (curves are meant for the
/// first few words; each point is one forward pass per sentence).
pub const MAX_DELETIONS: usize = 1_000;

/// Checks a number of deletions against [`MAX_DELETIONS`], before anything
/// is allocated for the curve.
pub fn check_deletions(deletions: usize) -> Result<(), Error> {
    if deletions > MAX_DELETIONS {
        return Err(Error::DeletionsOutOfRange {
            deletions,
            max: MAX_DELETIONS,
        });
    }
    Ok(())
}

/// The inputs of a deletion curve: `x` `[E, T]` with the first `d`
/// positions of `order` replaced by the zero vector, for `d = 0..=k_max`,
/// stopping once every position is deleted (`min(k_max, T) + 1` inputs;
/// further deletions change nothing, so a curve repeats its last value).
///
/// Made one at a time as the iterator is read, so that a caller can run
/// them in batches and hold a few copies of `x`, not `T`. An error for
/// more than [`MAX_DELETIONS`] deletions or a position of `order` outside
/// `x`.
pub fn deletion_variants<'a, T: lrp_core::Float>(
    x: &'a nalgebra::DMatrix<T>,
    order: &'a [usize],
    k_max: usize,
) -> Result<impl Iterator<Item = nalgebra::DMatrix<T>> + 'a, Error> {
    check_deletions(k_max)?;
    if let Some(&position) = order.iter().find(|&&t| t >= x.ncols()) {
        return Err(Error::PositionOutOfRange {
            position,
            len: x.ncols(),
        });
    }
    Ok((0..=k_max.min(order.len())).map(move |d| {
        let mut variant = x.clone();
        for &t in order.iter().take(d) {
            variant.column_mut(t).fill(T::zero());
        }
        variant
    }))
}

/// Accuracy after each number of deletions over a set of sentences:
/// `kept[s][d]` says whether sentence `s` is still classified as its true
/// class after `d` deletions (a sentence whose record is shorter counts
/// as not kept past its end). Empty sets give zeros.
pub fn accuracy_curve(kept: &[&[bool]]) -> Vec<f64> {
    let steps = kept.iter().map(|k| k.len()).max().unwrap_or(0);
    (0..steps)
        .map(|d| kept.iter().filter(|k| k.get(d) == Some(&true)).count() as f64 / kept.len().max(1) as f64)
        .collect()
}

/// SplitMix64 (Steele et al. 2014): a tiny, fast, seeded generator for
/// the random baseline and for seeded test and benchmark data, so the same
/// seed gives the same numbers everywhere, with no extra dependency.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SplitMix64(pub u64);

impl SplitMix64 {
    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// The next value, uniform in `[-1, 1)`.
    pub fn next_signed(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0
    }
}

/// A seeded random order of `len` positions (Fisher-Yates over
/// [`SplitMix64`]), the baseline every method must beat.
pub fn random_order(len: usize, seed: u64) -> Vec<usize> {
    let mut rng = SplitMix64(seed);
    let mut order: Vec<usize> = (0..len).collect();
    for k in (1..len).rev() {
        let j = (rng.next_u64() % (k as u64 + 1)) as usize;
        order.swap(k, j);
    }
    order
}

/// Area over the perturbation curve (Samek et al. 2017), for a curve of
/// accuracies after 0..K deletions: the mean change from the start,
/// `1/(K+1) sum_k (acc_0 - acc_k)` when deleting should lower the accuracy
/// (`falling`), `1/(K+1) sum_k (acc_k - acc_0)` when it should raise it.
/// Larger is better in both directions.
pub fn aopc(curve: &[f64], falling: bool) -> f64 {
    let Some(&start) = curve.first() else { return 0.0 };
    let sign = if falling { 1.0 } else { -1.0 };
    curve.iter().map(|&a| sign * (start - a)).sum::<f64>() / curve.len() as f64
}

/// The fractions of tokens ERASER's comprehensiveness and sufficiency are
/// taken at (DeYoung et al. 2020, "ERASER: A benchmark to evaluate
/// rationalized NLP models", section 4.2): 1, 5, 10, 20 and 50%.
pub const ERASER_FRACTIONS: [f64; 5] = [0.01, 0.05, 0.10, 0.20, 0.50];

/// How many of `len` positions make the top `fraction`: `ceil(fraction
/// len)`, at least one (of a non-empty sequence), at most `len`. The
/// rationale is that many positions from the front of an order such as
/// [`deletion_order`]`(relevance, true)`.
pub fn rationale_size(len: usize, fraction: f64) -> usize {
    ((fraction * len as f64).ceil() as usize).clamp(1.min(len), len)
}

/// The columns of `x` `[E, T]` at the positions `keep` says, in position
/// order: `[E, T']`. ERASER's comprehensiveness reads the input without
/// the rationale, its sufficiency the rationale alone; both remove
/// tokens rather than blank them.
pub fn select_positions<T: lrp_core::Float>(
    x: &nalgebra::DMatrix<T>,
    keep: impl Fn(usize) -> bool,
) -> nalgebra::DMatrix<T> {
    let kept: Vec<usize> = (0..x.ncols()).filter(|&t| keep(t)).collect();
    nalgebra::DMatrix::from_fn(x.nrows(), kept.len(), |r, c| x[(r, kept[c])])
}

/// The probability the scores give `class`: `softmax(scores)[class]`. An
/// error ([`Error::TargetOutOfRange`]) for a class past the end of
/// `scores` (and so for no scores at all).
pub fn probability(scores: &[f64], class: usize) -> Result<f64, Error> {
    let Some(&score) = scores.get(class) else {
        return Err(Error::TargetOutOfRange {
            target: class,
            classes: scores.len(),
        });
    };
    let max = scores.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let total: f64 = scores.iter().map(|s| (s - max).exp()).sum();
    Ok((score - max).exp() / total)
}

/// Whether the two most relevant positions (ties by position) are exactly
/// the two `marked` ones.
pub fn top_two_hit(relevance: &[f64], marked: [usize; 2]) -> bool {
    let order = deletion_order(relevance, true);
    order.len() >= 2 && {
        let mut top = [order[0], order[1]];
        let mut want = marked;
        top.sort_unstable();
        want.sort_unstable();
        top == want
    }
}

/// The position of the strictly largest relevance: `None` when positions
/// tie for it (a pointing game counts a tie as no hit) or there are none.
pub fn most_relevant(relevance: &[f64]) -> Option<usize> {
    let best = relevance.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let mut at = relevance.iter().enumerate().filter(|(_, &r)| r == best).map(|(t, _)| t);
    match (at.next(), at.next()) {
        (Some(t), None) => Some(t),
        _ => None,
    }
}

/// The net relevance of the positions in `span` as a share of all the
/// relevance: `|sum_{t in span} r_t| / sum_t |r_t|`, 0 for no relevance at
/// all. A span that does not matter (a balanced prefix) should be near 0.
/// An error ([`Error::SpanOutOfRange`]) for a span that is not within
/// `relevance` (past its end, or ending before it starts).
pub fn net_share(relevance: &[f64], span: std::ops::Range<usize>) -> Result<f64, Error> {
    let Some(inside) = relevance.get(span.clone()) else {
        return Err(Error::SpanOutOfRange {
            start: span.start,
            end: span.end,
            len: relevance.len(),
        });
    };
    let total: f64 = relevance.iter().map(|r| r.abs()).sum();
    if total == 0.0 {
        return Ok(0.0);
    }
    Ok(inside.iter().sum::<f64>().abs() / total)
}

/// Pearson correlation of two equally long samples (NaN when either is constant).
pub fn pearson(xs: &[f64], ys: &[f64]) -> f64 {
    let n = xs.len() as f64;
    let (mx, my) = (xs.iter().sum::<f64>() / n, ys.iter().sum::<f64>() / n);
    let (mut sxy, mut sxx, mut syy) = (0.0, 0.0, 0.0);
    for (&x, &y) in xs.iter().zip(ys) {
        sxy += (x - mx) * (y - my);
        sxx += (x - mx) * (x - mx);
        syy += (y - my) * (y - my);
    }
    sxy / (sxx * syy).sqrt()
}

/// The fractions of the saliency mass at which Ismail et al. (2020,
/// "Benchmarking deep learning interpretability in time series
/// predictions", section 4) take the most salient cells: 10%, 20%, ...,
/// 90%. Their precision and recall curves and their masked-accuracy curve
/// are read at these.
pub const SALIENCY_MASS_FRACTIONS: [f64; 9] = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9];

/// Saliency as Ismail et al. (2020) compare it: the absolute relevance
/// `|r_i|` min-max scaled over the one map to `[0, 1]`, `(|r_i| - min) /
/// (max - min)`; all 0 when every `|r_i|` is the same.
///
/// ```
/// use lrp_models::faithfulness::rescaled_saliency;
/// assert_eq!(rescaled_saliency(&[-2.0, 1.0, 3.0]), [0.5, 0.0, 1.0]);
/// assert_eq!(rescaled_saliency(&[1.0, -1.0]), [0.0, 0.0]);
/// ```
pub fn rescaled_saliency(relevance: &[f64]) -> Vec<f64> {
    let magnitudes: Vec<f64> = relevance.iter().map(|r| r.abs()).collect();
    let min = magnitudes.iter().copied().fold(f64::INFINITY, f64::min);
    let max = magnitudes.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let range = max - min;
    magnitudes
        .iter()
        .map(|m| if range > 0.0 { (m - min) / range } else { 0.0 })
        .collect()
}

/// The most salient cells that hold `fraction` of the saliency mass: the
/// fewest cells from the front of [`deletion_order`]`(saliency, true)`
/// (ties by index) whose saliency sums to at least `fraction * sum_i
/// saliency_i`. No cells when the total is 0 (nothing is salient). The
/// saliency is non-negative ([`rescaled_saliency`]).
///
/// ```
/// use lrp_models::faithfulness::top_by_mass;
/// // Total 10: 50% is reached by the 4 alone, 60% needs the 4 and a 3.
/// let s = [1.0, 3.0, 4.0, 0.0, 2.0];
/// assert_eq!(top_by_mass(&s, 0.4), [2]);
/// assert_eq!(top_by_mass(&s, 0.6), [2, 1]);
/// assert_eq!(top_by_mass(&s, 1.0), [2, 1, 4, 0]);
/// ```
pub fn top_by_mass(saliency: &[f64], fraction: f64) -> Vec<usize> {
    let total: f64 = saliency.iter().sum();
    if total <= 0.0 {
        return Vec::new();
    }
    let goal = fraction * total;
    let mut taken = Vec::new();
    let mut sum = 0.0;
    for i in deletion_order(saliency, true) {
        if sum >= goal {
            break;
        }
        sum += saliency[i];
        taken.push(i);
    }
    taken
}

/// Saliency-weighted precision and recall of the `selected` cells against
/// the cells `inside` the ground-truth box (Ismail et al. 2020): with
/// `TP` the saliency of the selected cells inside, `FP` that of the
/// selected cells outside and `FN` that of the cells inside left out,
/// `(TP / (TP + FP), TP / (TP + FN))`, each 0 when its denominator is 0.
///
/// ```
/// use lrp_models::faithfulness::weighted_precision_recall;
/// let saliency = [0.5, 1.0, 0.25, 0.0];
/// let inside = [true, false, true, true];
/// // Selected: cells 1 (outside, 1.0) and 0 (inside, 0.5); left out inside: 0.25 + 0.
/// assert_eq!(weighted_precision_recall(&saliency, &inside, &[1, 0]), (0.5 / 1.5, 0.5 / 0.75));
/// ```
pub fn weighted_precision_recall(saliency: &[f64], inside: &[bool], selected: &[usize]) -> (f64, f64) {
    let mut chosen = vec![false; saliency.len()];
    for &i in selected {
        chosen[i] = true;
    }
    let (mut tp, mut fp, mut fn_) = (0.0, 0.0, 0.0);
    for ((&s, &is_in), &is_chosen) in saliency.iter().zip(inside).zip(&chosen) {
        match (is_in, is_chosen) {
            (true, true) => tp += s,
            (false, true) => fp += s,
            (true, false) => fn_ += s,
            (false, false) => {}
        }
    }
    let ratio = |a: f64, b: f64| if a + b > 0.0 { a / (a + b) } else { 0.0 };
    (ratio(tp, fp), ratio(tp, fn_))
}

/// The trapezoidal area under the points `(xs[i], ys[i])`, taken in the
/// order given: `sum_i (xs[i+1] - xs[i]) (ys[i] + ys[i+1]) / 2` (0 for
/// fewer than two points; the shorter slice sets the count).
///
/// ```
/// use lrp_models::faithfulness::trapezoid;
/// assert_eq!(trapezoid(&[0.0, 0.5, 1.0], &[0.0, 1.0, 1.0]), 0.75);
/// ```
pub fn trapezoid(xs: &[f64], ys: &[f64]) -> f64 {
    let n = xs.len().min(ys.len());
    (1..n).map(|i| (xs[i] - xs[i - 1]) * (ys[i] + ys[i - 1]) / 2.0).sum()
}

/// The areas of Ismail et al. (2020) from a precision and a recall curve
/// read at [`SALIENCY_MASS_FRACTIONS`] (one value per fraction): AUP, the
/// trapezoidal area under precision over the fractions; AUR, that under
/// recall; and AUPR, the area under precision over recall, the points
/// sorted by recall (ties keep the fractions' order).
pub fn precision_recall_areas(precision: &[f64], recall: &[f64]) -> (f64, f64, f64) {
    let aup = trapezoid(&SALIENCY_MASS_FRACTIONS, precision);
    let aur = trapezoid(&SALIENCY_MASS_FRACTIONS, recall);
    let mut by_recall: Vec<usize> = (0..precision.len().min(recall.len())).collect();
    by_recall.sort_by(|&a, &b| recall[a].total_cmp(&recall[b]).then(a.cmp(&b)));
    let r: Vec<f64> = by_recall.iter().map(|&i| recall[i]).collect();
    let p: Vec<f64> = by_recall.iter().map(|&i| precision[i]).collect();
    (aup, aur, trapezoid(&r, &p))
}

/// The area under the ROC curve of `scores` telling the cells `inside` from
/// the others: the share of (inside, outside) pairs whose inside cell
/// scores higher, ties counting one half, i.e. the Mann-Whitney `U` of the
/// inside cells over `n_in n_out`, computed from the mid-ranks of all
/// scores. `None` when either group is empty.
///
/// ```
/// use lrp_models::faithfulness::roc_auc;
/// // Pairs (inside, outside): (3, 1) and (3, 2) won, (0.5, 1), (0.5, 2) lost.
/// assert_eq!(roc_auc(&[3.0, 1.0, 0.5, 2.0], &[true, false, true, false]), Some(0.5));
/// assert_eq!(roc_auc(&[1.0, 2.0], &[true, true]), None);
/// ```
pub fn roc_auc(scores: &[f64], inside: &[bool]) -> Option<f64> {
    let n = scores.len().min(inside.len());
    let n_in = inside[..n].iter().filter(|&&i| i).count();
    let n_out = n - n_in;
    if n_in == 0 || n_out == 0 {
        return None;
    }
    let order = deletion_order(&scores[..n], false);
    // Mid-ranks (1-based): a run of equal scores shares the mean of its ranks.
    let mut rank = vec![0.0; n];
    let mut start = 0;
    while start < n {
        let mut end = start + 1;
        while end < n && scores[order[end]] == scores[order[start]] {
            end += 1;
        }
        let mid = (start + 1 + end) as f64 / 2.0;
        for &i in &order[start..end] {
            rank[i] = mid;
        }
        start = end;
    }
    let rank_sum: f64 = (0..n).filter(|&i| inside[i]).map(|i| rank[i]).sum();
    let u = rank_sum - (n_in * (n_in + 1)) as f64 / 2.0;
    Some(u / (n_in * n_out) as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The ROC area by its definition: every (inside, outside) pair, a win
    /// 1, a tie 1/2.
    fn auc_by_pairs(scores: &[f64], inside: &[bool]) -> f64 {
        let (mut wins, mut pairs) = (0.0, 0.0);
        for (a, &sa) in scores.iter().enumerate() {
            for (b, &sb) in scores.iter().enumerate() {
                if inside[a] && !inside[b] {
                    pairs += 1.0;
                    wins += if sa > sb {
                        1.0
                    } else if sa == sb {
                        0.5
                    } else {
                        0.0
                    };
                }
            }
        }
        wins / pairs
    }

    #[test]
    fn roc_auc_is_the_mann_whitney_u_over_all_pairs_ties_counting_half() {
        // Ties inside, outside and across the groups.
        let scores = [0.3, 0.9, 0.3, 0.1, 0.9, 0.5, 0.3, 0.0];
        let inside = [true, true, false, false, true, false, true, false];
        // By hand: inside 0.3, 0.9, 0.9, 0.3 against outside 0.3, 0.1, 0.5, 0.0:
        // 0.3 beats 0.1 and 0.0, ties 0.3: 2.5 each; 0.9 beats all four: 4 each.
        let by_hand = (2.5 + 4.0 + 4.0 + 2.5) / 16.0;
        assert_eq!(auc_by_pairs(&scores, &inside), by_hand);
        assert_eq!(roc_auc(&scores, &inside), Some(by_hand));
        let mut rng = SplitMix64(7);
        for _ in 0..20 {
            let scores: Vec<f64> = (0..30).map(|_| (rng.next_u64() % 5) as f64).collect();
            let inside: Vec<bool> = (0..30).map(|_| rng.next_u64() % 3 == 0).collect();
            let found = roc_auc(&scores, &inside).expect("both groups");
            assert!((found - auc_by_pairs(&scores, &inside)).abs() < 1e-12);
        }
    }

    #[test]
    fn precision_recall_areas_on_five_cells_by_hand() {
        // Five cells, the first two inside the box.
        let relevance = [-4.0, 2.0, 3.0, 0.0, 1.4];
        let saliency = rescaled_saliency(&relevance);
        assert_eq!(saliency, [1.0, 0.5, 0.75, 0.0, 0.35]);
        let inside = [true, true, false, false, false];
        // Mass 2.6, most salient first: cell 0 holds 38%, with cell 2 67%,
        // with cell 1 87%, with cell 4 all.
        let sizes: Vec<usize> = SALIENCY_MASS_FRACTIONS
            .iter()
            .map(|&f| top_by_mass(&saliency, f).len())
            .collect();
        assert_eq!(sizes, [1, 1, 1, 2, 2, 2, 3, 3, 4]);
        let (p, r): (Vec<f64>, Vec<f64>) = SALIENCY_MASS_FRACTIONS
            .iter()
            .map(|&f| weighted_precision_recall(&saliency, &inside, &top_by_mass(&saliency, f)))
            .unzip();
        // TP, FP, FN: one cell 1, 0, 0.5; two 1, 0.75, 0.5; three 1.5, 0.75, 0;
        // four 1.5, 1.1, 0.
        let (p1, p2, p3, p4) = (1.0, 1.0 / 1.75, 1.5 / 2.25, 1.5 / 2.6);
        let (r1, r3) = (1.0 / 1.5, 1.0);
        let close = |a: f64, b: f64| (a - b).abs() < 1e-12;
        let p_hand = [p1, p1, p1, p2, p2, p2, p3, p3, p4];
        let r_hand = [r1, r1, r1, r1, r1, r1, r3, r3, r3];
        assert!(p.iter().zip(&p_hand).all(|(&a, &b)| close(a, b)), "{p:?}");
        assert!(r.iter().zip(&r_hand).all(|(&a, &b)| close(a, b)), "{r:?}");
        let (aup, aur, aupr) = precision_recall_areas(&p, &r);
        // Trapezoids of width 0.1: the end points count half.
        let aup_hand = 0.1 * (p1 / 2.0 + 2.0 * p1 + 3.0 * p2 + 2.0 * p3 + p4 / 2.0);
        let aur_hand = 0.1 * (r1 / 2.0 + 5.0 * r1 + 2.0 * r3 + r3 / 2.0);
        assert!(close(aup, aup_hand), "{aup} {aup_hand}");
        assert!(close(aur, aur_hand), "{aur} {aur_hand}");
        // Over recall the points at one recall add nothing; the one step is
        // from (r1, p2), the last point at recall r1, to (r3, p3).
        let aupr_hand = (r3 - r1) * (p2 + p3) / 2.0;
        assert!(close(aupr, aupr_hand), "{aupr} {aupr_hand}");
        assert_eq!(top_by_mass(&[0.0, 0.0], 0.5), Vec::<usize>::new());
        assert_eq!(weighted_precision_recall(&[0.0, 0.0], &[true, false], &[]), (0.0, 0.0));
    }

    #[test]
    fn the_most_relevant_position_is_unique_or_none_and_net_shares_cancel() {
        assert_eq!(most_relevant(&[0.1, 0.7, -2.0, 0.3]), Some(1));
        assert_eq!(most_relevant(&[0.7, 0.1, 0.7]), None, "a tie is no hit");
        assert_eq!(most_relevant(&[]), None);
        // +1 and -1 cancel in the span; the total is 1 + 1 + 2.
        assert_eq!(net_share(&[1.0, -1.0, 2.0], 0..2), Ok(0.0));
        assert_eq!(net_share(&[1.0, -1.0, 2.0], 1..3), Ok(0.25));
        assert_eq!(net_share(&[0.0, 0.0], 0..1), Ok(0.0));
    }

    #[test]
    fn eraser_rationales_take_the_top_fraction_and_select_keeps_position_order() {
        assert_eq!(
            [0.01, 0.05, 0.10, 0.20, 0.50].map(|f| rationale_size(12, f)),
            [1, 1, 2, 3, 6]
        );
        assert_eq!(
            (rationale_size(0, 0.5), rationale_size(1, 0.01), rationale_size(3, 1.0)),
            (0, 1, 3)
        );
        // Ties by position: 2.0 at positions 1 and 3.
        let relevance = [0.5, 2.0, -1.0, 2.0, 0.1];
        let order = deletion_order(&relevance, true);
        assert_eq!(order[..rationale_size(relevance.len(), 0.5)], [1, 3, 0]);
        let x = nalgebra::DMatrix::from_fn(2, 5, |r, t| (10 * r + t) as f64);
        let without = select_positions(&x, |t| ![1, 3].contains(&t));
        assert_eq!(without.as_slice(), &[0.0, 10.0, 2.0, 12.0, 4.0, 14.0]);
        assert_eq!(select_positions(&x, |_| false).ncols(), 0);
        let p = probability(&[1.0, 3.0, 1.0], 1).unwrap();
        assert!((p - 3f64.exp() / (2.0 * 1f64.exp() + 3f64.exp())).abs() < 1e-15);
        assert_eq!(probability(&[1e308, -1e308], 0), Ok(1.0), "no overflow");
    }

    #[test]
    fn orders_break_ties_by_position() {
        let r = [0.5, -1.0, 0.5, 2.0, 0.0];
        assert_eq!(deletion_order(&r, true), vec![3, 0, 2, 4, 1]);
        assert_eq!(deletion_order(&r, false), vec![1, 4, 0, 2, 3]);
        let mut shuffled = random_order(10, 7);
        assert_eq!(random_order(10, 7), shuffled, "seeded");
        assert_ne!(random_order(10, 8), shuffled);
        shuffled.sort_unstable();
        assert_eq!(shuffled, (0..10).collect::<Vec<_>>());
    }

    #[test]
    fn deletion_bookkeeping() {
        let x = nalgebra::DMatrix::from_fn(2, 4, |e, t| (10 * t + e + 1) as f64);
        let order = deletion_order(&[0.3, 0.9, 0.3, -0.5], true);
        assert_eq!(order, vec![1, 0, 2, 3]);
        let variants: Vec<_> = deletion_variants(&x, &order, 6).unwrap().collect();
        assert_eq!(variants.len(), 5, "nothing is left to delete after 4");
        assert_eq!(variants[0], x);
        let zeroed = |v: &nalgebra::DMatrix<f64>| {
            (0..4)
                .filter(|&t| v.column(t).iter().all(|&a| a == 0.0))
                .collect::<Vec<_>>()
        };
        assert_eq!(zeroed(&variants[1]), vec![1]);
        assert_eq!(zeroed(&variants[2]), vec![0, 1]);
        assert_eq!(zeroed(&variants[3]), vec![0, 1, 2]);
        assert_eq!(zeroed(&variants[4]), vec![0, 1, 2, 3]);
        assert_eq!(
            variants[2].column(2),
            x.column(2),
            "untouched positions keep their vectors"
        );
        assert_eq!(
            deletion_variants(&x, &order, MAX_DELETIONS + 1).err(),
            Some(Error::DeletionsOutOfRange {
                deletions: MAX_DELETIONS + 1,
                max: MAX_DELETIONS
            })
        );
        assert_eq!(
            deletion_variants(&x, &[4], 1).err(),
            Some(Error::PositionOutOfRange { position: 4, len: 4 })
        );
        let curve = accuracy_curve(&[&[true, true, false], &[true, false, false]]);
        assert_eq!(curve, vec![1.0, 0.5, 0.0]);
        assert_eq!(accuracy_curve(&[]), Vec::<f64>::new());
    }

    #[test]
    fn metrics() {
        assert!((aopc(&[1.0, 0.5, 0.25], true) - 1.25 / 3.0).abs() < 1e-15);
        assert!((aopc(&[0.0, 0.5, 1.0], false) - 0.5).abs() < 1e-15);
        assert!(top_two_hit(&[0.1, 3.0, -1.0, 2.0], [3, 1]));
        assert!(!top_two_hit(&[0.1, 3.0, -1.0, 2.0], [0, 1]));
        assert!(!top_two_hit(&[1.0], [0, 1]));
        assert!((pearson(&[1.0, 2.0, 3.0], &[2.0, 4.0, 6.5]) - 0.997_948_715_788_673_3).abs() < 1e-12);
    }
}

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

#[cfg(test)]
mod tests {
    use super::*;

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

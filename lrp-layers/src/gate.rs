//! Rules for element-wise products `y = gate * signal` (Arras et al. 2019,
//! "Explaining and interpreting LSTMs", sec. 3.3, compare these). Every rule
//! here conserves: `R(gate) + R(signal) = R(y)` element by element (prop's
//! stabiliser included: its share goes to the signal).

use lrp_core::{Error, Float, GateRule};

/// Signal-take-all (LRP-all; Arras et al. 2017, sec. 3): the signal receives
/// all of `R(y)` and the gate nothing. The gate only modulates how much of
/// the signal passes; it is not itself evidence. The default.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SignalTakeAll;

impl<T: Float> GateRule<T> for SignalTakeAll {
    fn split(&self, _gate: &[T], _signal: &[T], relevance: &[T], to_gate: &mut [T], to_signal: &mut [T]) {
        to_gate.fill(T::zero());
        to_signal.copy_from_slice(relevance);
    }

    fn gate_receives_relevance(&self) -> bool {
        false
    }

    fn name(&self) -> &str {
        "signal-take-all"
    }
}

/// LRP-prop (Arras et al. 2019) with a stabiliser: in proportion to the
/// factors' values, with a sign-matched stabiliser on the denominator in
/// the manner of the epsilon rule, scaled by how much the factors cancel:
///
/// ```text
/// d    = g + s + eps * sign(g + s) * (|g| + |s| - |g + s|)     (sign(0) = +1)
/// R(g) = g / d * R(y)
/// R(s) = R(y) - R(g)
/// ```
///
/// Unstabilised (`eps = 0`, Arras et al.'s rule) the shares are
/// `g / (g + s)` and `s / (g + s)`. Where gate and signal have the same
/// sign these lie in [0, 1]; where they have opposite signs (a negative
/// signal: gates are positive) they have opposite signs and exceed 1 in
/// size, so the product *amplifies* relevance, without bound as `g + s`
/// nears 0, and over a sequence the amplifications compound (relevance
/// that reaches a gate goes on through the gate's projection into
/// `h_{t-1}` and meets the next products): on small random models the
/// input relevance reaches 1e7 to 1e19 times the score. An absolute
/// stabiliser as epsilon's does not stop this (the factors are not small;
/// they cancel), so the stabiliser here is `|g| + |s| - |g + s|`, twice
/// the smaller factor's size where the signs differ and 0 where they
/// agree: same-sign splits are exactly Arras et al.'s, and only the
/// cancelling ones change. With `eps >= 1/2`, `|d| >= max(|g|, |s|)`, so
/// `|R(g)| <= |R(y)|` and `|R(s)| <= 2 |R(y)|`; at `eps = 1`, `|d| = |g| +
/// |s|`, the `abs` rule's denominator. The default is `eps = 1`
/// ([`Proportional::DEFAULT_EPS`]).
///
/// The stabiliser's share is counted with the signal, so the split still
/// conserves exactly, `R(g) + R(s) = R(y)`: nothing is absorbed and no
/// relevance shows as unexplained on its account (unlike the epsilon
/// rule's stabiliser, whose share a linear step absorbs). Where `d = 0`
/// (`eps = 0` and `g + s = 0`, or both factors 0) the halves are equal.
///
/// ```
/// use lrp_core::GateRule;
/// use lrp_layers::Proportional;
///
/// let rule = Proportional::new(1.0)?;
/// let (mut to_gate, mut to_signal) = ([0.0; 2], [0.0; 2]);
/// // Same signs: Arras et al.'s split. Opposite signs that nearly cancel
/// // (unstabilised, the gate would get 5e11 times R(y)): bounded.
/// let (gate, signal) = ([0.25, 0.5], [0.75, -0.5 + 1e-12]);
/// GateRule::<f64>::split(&rule, &gate, &signal, &[2.0, 2.0], &mut to_gate, &mut to_signal);
/// assert_eq!(to_gate[0], 0.25 / 1.0 * 2.0);
/// assert!((to_gate[1] - 0.5 / 1.0 * 2.0).abs() < 1e-9);
/// assert_eq!((to_gate[0] + to_signal[0], to_gate[1] + to_signal[1]), (2.0, 2.0));
/// # Ok::<(), lrp_core::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Proportional {
    eps: f64,
}

impl Proportional {
    /// The default stabiliser, 1 (see the type's documentation).
    pub const DEFAULT_EPS: f64 = 1.0;

    /// The rule with stabiliser `eps >= 0` (0 is the unstabilised rule of
    /// Arras et al. 2019). The CLI passes `--prop-eps`.
    pub fn new(eps: f64) -> Result<Self, Error> {
        // Finite as f32 too, the narrowest precision the rule runs in.
        if !(eps >= 0.0 && (eps as f32).is_finite()) {
            return Err(Error::InvalidParameter {
                name: "prop eps",
                value: eps,
                reason: "must be a number >= 0, finite in this precision",
            });
        }
        Ok(Self { eps })
    }

    /// The stabiliser.
    pub fn eps(&self) -> f64 {
        self.eps
    }
}

impl Default for Proportional {
    /// The rule with [`Proportional::DEFAULT_EPS`].
    fn default() -> Self {
        Self { eps: Self::DEFAULT_EPS }
    }
}

impl<T: Float> GateRule<T> for Proportional {
    fn split(&self, gate: &[T], signal: &[T], relevance: &[T], to_gate: &mut [T], to_signal: &mut [T]) {
        let eps = T::of_f64(self.eps);
        for k in 0..relevance.len() {
            let (g, s) = (gate[k], signal[k]);
            let total = g + s;
            let cancelled = g.abs() + s.abs() - total.abs();
            let d = total + eps * cancelled * total.sign_or_one();
            to_gate[k] = if d == T::zero() {
                T::of_f64(0.5) * relevance[k]
            } else {
                g / d * relevance[k]
            };
            // The remainder, so the two shares add up to R(y) up to one rounding.
            to_signal[k] = relevance[k] - to_gate[k];
        }
    }

    fn name(&self) -> &str {
        "prop"
    }
}

/// LRP-abs (Arras et al. 2019): in proportion to the factors' magnitudes,
/// `R(g) = |g| / (|g| + |s|) R(y)`; where both are zero the halves are equal.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Absolute;

impl<T: Float> GateRule<T> for Absolute {
    fn split(&self, gate: &[T], signal: &[T], relevance: &[T], to_gate: &mut [T], to_signal: &mut [T]) {
        split_by(gate, signal, relevance, to_gate, to_signal, |v| v.abs());
    }

    fn name(&self) -> &str {
        "abs"
    }
}

/// The uniform split: each of the product's factors gets an equal share,
/// `R(g) = R(s) = R(y) / 2`. For our two-factor products this is LRP-half of
/// Arras et al. (2019); the CLI accepts both names.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Uniform;

impl<T: Float> GateRule<T> for Uniform {
    fn split(&self, _gate: &[T], _signal: &[T], relevance: &[T], to_gate: &mut [T], to_signal: &mut [T]) {
        let half = T::of_f64(0.5);
        for ((g, s), &r) in to_gate.iter_mut().zip(to_signal.iter_mut()).zip(relevance) {
            *g = half * r;
            *s = r - *g;
        }
    }

    fn name(&self) -> &str {
        "half"
    }
}

/// Splits in proportion to `weight(g)` and `weight(s)`; equal halves when both weigh zero.
fn split_by<T: Float>(
    gate: &[T],
    signal: &[T],
    relevance: &[T],
    to_gate: &mut [T],
    to_signal: &mut [T],
    weight: impl Fn(T) -> T,
) {
    let half = T::of_f64(0.5);
    for k in 0..relevance.len() {
        let (wg, ws) = (weight(gate[k]), weight(signal[k]));
        let total = wg + ws;
        let share = if total == T::zero() { half } else { wg / total };
        to_gate[k] = share * relevance[k];
        // The remainder, so the two shares add up to R(y) up to one rounding.
        to_signal[k] = relevance[k] - to_gate[k];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each rule from its formula, element by element.
    fn by_formula(rule: &str, g: f64, s: f64, r: f64) -> (f64, f64) {
        match rule {
            "all" => (0.0, r),
            "prop" if g + s != 0.0 => (g / (g + s) * r, s / (g + s) * r),
            "abs" if g.abs() + s.abs() != 0.0 => (g.abs() / (g.abs() + s.abs()) * r, s.abs() / (g.abs() + s.abs()) * r),
            _ => (r / 2.0, r / 2.0),
        }
    }

    #[test]
    fn every_gate_rule_matches_its_formula_and_conserves() {
        let gate = [0.1, 0.5, 0.9, 0.3, 0.0, 0.7];
        let signal = [1.0, -2.0, 3.0, -0.3, 0.0, 0.0];
        let relevance = [0.3, -0.2, 0.0, 1.5, 2.0, -1.0];
        let rules: [(&str, &dyn GateRule<f64>); 4] = [
            ("all", &SignalTakeAll),
            ("prop", &Proportional::new(0.0).unwrap()),
            ("abs", &Absolute),
            ("half", &Uniform),
        ];
        for (name, rule) in rules {
            let (mut to_gate, mut to_signal) = (vec![9.0; 6], vec![9.0; 6]);
            rule.split(&gate, &signal, &relevance, &mut to_gate, &mut to_signal);
            for k in 0..6 {
                let (wg, ws) = by_formula(name, gate[k], signal[k], relevance[k]);
                assert!(
                    (to_gate[k] - wg).abs() < 1e-12 && (to_signal[k] - ws).abs() < 1e-12,
                    "{name} [{k}]"
                );
                assert!(
                    (to_gate[k] + to_signal[k] - relevance[k]).abs() <= 1e-15,
                    "{name} [{k}] conserves"
                );
            }
        }
        assert!(!GateRule::<f64>::gate_receives_relevance(&SignalTakeAll));
        assert!(GateRule::<f64>::gate_receives_relevance(&Proportional::default()));
    }

    /// The stabilised prop rule against a direct reimplementation of its
    /// equation, where `g + s` is positive, negative, zero and nearly zero
    /// (where the unstabilised rule blows up), with the signs of `g` and
    /// `s` equal and opposite; and its bounds for `eps >= 1/2`.
    #[test]
    fn stabilised_prop_matches_its_equation() {
        let gate = [0.1, 0.5, 0.9, 0.3, 0.0, 0.7, 0.25, 0.6, -0.4];
        let signal = [1.0, -2.0, 3.0, -0.3, 0.0, 0.0, -0.25 + 1e-13, -0.6 - 1e-14, -0.1];
        let relevance = [0.3, -0.2, 0.0, 1.5, 2.0, -1.0, 1.0, -3.0, 0.7];
        for eps in [0.0, 0.5, 1.0, 3.0] {
            let rule = Proportional::new(eps).unwrap();
            let (mut to_gate, mut to_signal) = (vec![9.0; 9], vec![9.0; 9]);
            rule.split(&gate, &signal, &relevance, &mut to_gate, &mut to_signal);
            for k in 0..9 {
                let (g, s, r): (f64, f64, f64) = (gate[k], signal[k], relevance[k]);
                let sign = if g + s >= 0.0 { 1.0 } else { -1.0 };
                let d = g + s + eps * sign * (g.abs() + s.abs() - (g + s).abs());
                let (wg, ws) = if d == 0.0 {
                    (r / 2.0, r / 2.0)
                } else {
                    (g / d * r, r - g / d * r)
                };
                let close = |a: f64, b: f64| (a - b).abs() <= 1e-12 * (1.0 + b.abs());
                assert!(close(to_gate[k], wg) && close(to_signal[k], ws), "eps {eps} [{k}]");
                assert!(
                    (to_gate[k] + to_signal[k] - r).abs() <= 1e-15,
                    "eps {eps} [{k}] conserves"
                );
                if g * s >= 0.0 {
                    // Same signs: Arras et al.'s split, whatever eps.
                    assert_eq!(
                        to_gate[k],
                        if g + s == 0.0 { r / 2.0 } else { g / (g + s) * r },
                        "[{k}]"
                    );
                }
                if eps >= 0.5 {
                    assert!(to_gate[k].abs() <= r.abs() * (1.0 + 1e-12), "eps {eps} [{k}]");
                    assert!(to_signal[k].abs() <= 2.0 * r.abs() * (1.0 + 1e-12), "eps {eps} [{k}]");
                }
            }
            let (mut to_gate, mut to_signal) = ([0f32; 1], [0f32; 1]);
            rule.split(&[0.25f32], &[-0.75f32], &[1.0f32], &mut to_gate, &mut to_signal);
            let d = -0.5 - eps * 0.5;
            assert!((f64::from(to_gate[0]) - 0.25 / d).abs() <= 1e-6, "f32 eps {eps}");
        }
        assert!(Proportional::new(-1.0).is_err());
        assert!(Proportional::new(f64::NAN).is_err());
        assert!(Proportional::new(1e39).is_err(), "infinite as f32");
        assert_eq!(Proportional::default().eps(), 1.0);
    }
}

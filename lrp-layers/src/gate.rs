//! Rules for element-wise products `y = gate * signal` (Arras et al. 2019,
//! "Explaining and interpreting LSTMs", sec. 3.3, compare these). Every rule
//! here conserves: `R(gate) + R(signal) = R(y)` element by element.

use lrp_core::{Float, GateRule};

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

/// LRP-prop (Arras et al. 2019): in proportion to the factors' values,
/// `R(g) = g / (g + s) R(y)`, `R(s) = s / (g + s) R(y)`; where `g + s = 0`
/// the two halves are equal.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Proportional;

impl<T: Float> GateRule<T> for Proportional {
    fn split(&self, gate: &[T], signal: &[T], relevance: &[T], to_gate: &mut [T], to_signal: &mut [T]) {
        split_by(gate, signal, relevance, to_gate, to_signal, |v| v);
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
            ("prop", &Proportional),
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
        assert!(GateRule::<f64>::gate_receives_relevance(&Proportional));
    }
}

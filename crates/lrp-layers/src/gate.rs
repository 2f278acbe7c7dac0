use lrp_core::{Float, GateRule};

/// Signal-take-all (LRP-all; Arras et al. 2017, sec. 3): in `y = gate *
/// signal` the signal receives all of `R(y)` and the gate nothing. The gate
/// only modulates how much of the signal passes; it is not itself evidence.
///
/// Conserves relevance exactly.
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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signal_takes_everything() {
        let (mut g, mut s) = (vec![9.0; 3], vec![9.0; 3]);
        SignalTakeAll.split(&[0.1, 0.5, 0.9], &[1.0, -2.0, 3.0], &[0.3, -0.2, 0.0], &mut g, &mut s);
        assert_eq!(g, vec![0.0; 3]);
        assert_eq!(s, vec![0.3, -0.2, 0.0]);
        assert!(!GateRule::<f64>::gate_receives_relevance(&SignalTakeAll));
    }
}

use lrp_core::{Error, Float, GateRule, LinearRule};

use crate::{Epsilon, SignalTakeAll};

/// The roles a linear step can play in a recurrent model; a [`Composite`]
/// assigns a rule to each.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// A gate or candidate pre-activation reading `x_t` and `h_{t-1}`
    /// (LSTM `g`, GRU `n`; the gates too when a gate rule feeds them).
    Projection,
    /// An element-wise sum of gated terms: LSTM `c_t`, GRU `h_t`.
    Accumulation,
    /// Attention pooling `c = sum_t a_t h_t`.
    Attention,
    /// The linear head producing the class scores.
    Head,
}

/// A rule for every role of a recurrent model, plus the rule for gate x
/// signal products.
pub struct Composite<T: Float> {
    projection: Box<dyn LinearRule<T>>,
    accumulation: Box<dyn LinearRule<T>>,
    attention: Box<dyn LinearRule<T>>,
    head: Box<dyn LinearRule<T>>,
    gate: Box<dyn GateRule<T>>,
}

impl<T: Float> Composite<T> {
    /// The rule set of Arras et al. (2017) and `LRP_SPEC.md`: epsilon with
    /// the given stabiliser and bias factor on every linear step,
    /// signal-take-all on every product.
    pub fn epsilon(eps: f64, bias_factor: f64) -> Result<Self, Error> {
        let rule = Epsilon::<T>::new(eps, bias_factor)?;
        Ok(Self {
            projection: Box::new(rule),
            accumulation: Box::new(rule),
            attention: Box::new(rule),
            head: Box::new(rule),
            gate: Box::new(SignalTakeAll),
        })
    }

    /// Replaces the rule of one role.
    pub fn with_rule(mut self, role: Role, rule: impl LinearRule<T> + 'static) -> Self {
        let slot = match role {
            Role::Projection => &mut self.projection,
            Role::Accumulation => &mut self.accumulation,
            Role::Attention => &mut self.attention,
            Role::Head => &mut self.head,
        };
        *slot = Box::new(rule);
        self
    }

    /// Replaces the rule for gate x signal products.
    pub fn with_gate_rule(mut self, rule: impl GateRule<T> + 'static) -> Self {
        self.gate = Box::new(rule);
        self
    }

    /// The rule of a role.
    pub fn rule(&self, role: Role) -> &dyn LinearRule<T> {
        match role {
            Role::Projection => self.projection.as_ref(),
            Role::Accumulation => self.accumulation.as_ref(),
            Role::Attention => self.attention.as_ref(),
            Role::Head => self.head.as_ref(),
        }
    }

    /// The rule for gate x signal products.
    pub fn gate_rule(&self) -> &dyn GateRule<T> {
        self.gate.as_ref()
    }
}

impl<T: Float> std::fmt::Debug for Composite<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Composite").finish_non_exhaustive()
    }
}

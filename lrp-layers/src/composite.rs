//! Composites: which rule each part of a recurrent model gets (zennit's
//! composites), with named presets and rules by name for the CLI.

use lrp_core::{Error, Float, GateRule, LinearRule};

use crate::{Absolute, AlphaBeta, Epsilon, Flat, Gamma, Proportional, SignalTakeAll, Uniform, WSquare, ZPlus};

/// The roles a linear step can play in a recurrent model; a [`Composite`]
/// assigns a rule to each.
///
/// A gate's pre-activation reads `x_t` and `h_{t-1}` in one step (the
/// spec's `N = E + H`), so the input and recurrent weights of a layer share
/// a role; the bottom layer's steps, which read the model's input, have a
/// role of their own for input-layer rules (flat, w-square).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Role {
    /// Gate and candidate pre-activations of the bottom layer (reading the
    /// model input `x_t` and `h_{t-1}`).
    InputProjection,
    /// Gate and candidate pre-activations of the layers above.
    Projection,
    /// Element-wise sums of gated terms: LSTM `c_t`, GRU `h_t`.
    Accumulation,
    /// Attention pooling `c = sum_t a_t h_t`.
    Attention,
    /// The linear head producing the class scores.
    Head,
}

impl Role {
    /// Every role, bottom to top.
    pub const ALL: [Role; 5] = [
        Role::InputProjection,
        Role::Projection,
        Role::Accumulation,
        Role::Attention,
        Role::Head,
    ];
}

/// The parameters rules are built from by name.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RuleParameters {
    /// Epsilon's stabiliser (default 0.001).
    pub eps: f64,
    /// Epsilon's bias factor (default 0).
    pub bias_factor: f64,
    /// Gamma's `gamma` (default 0.25).
    pub gamma: f64,
    /// Alpha-beta's `alpha` (default 2; `beta = alpha - 1`).
    pub alpha: f64,
}

impl Default for RuleParameters {
    fn default() -> Self {
        Self {
            eps: 0.001,
            bias_factor: 0.0,
            gamma: 0.25,
            alpha: 2.0,
        }
    }
}

/// Names of the linear rules [`linear_rule`] builds.
pub const LINEAR_RULES: [&str; 6] = ["epsilon", "zplus", "gamma", "alpha-beta", "wsquare", "flat"];
/// Names of the gate rules [`gate_rule`] builds (`all` is signal-take-all,
/// `half` and `uniform` are the same rule).
pub const GATE_RULES: [&str; 6] = ["signal-take-all", "all", "prop", "abs", "half", "uniform"];
/// Names of the presets [`Composite::preset`] builds.
pub const PRESETS: [&str; 6] = [
    "epsilon",
    "epsilon-flat",
    "epsilon-wsquare",
    "zplus",
    "alpha2-beta1",
    "gamma",
];

/// A linear rule by name (one of [`LINEAR_RULES`]).
pub fn linear_rule<T: Float>(name: &str, p: &RuleParameters) -> Result<Box<dyn LinearRule<T>>, Error> {
    Ok(match name {
        "epsilon" => Box::new(Epsilon::<T>::new(p.eps, p.bias_factor)?),
        "zplus" => Box::new(ZPlus),
        "gamma" => Box::new(Gamma::<T>::new(p.gamma)?),
        "alpha-beta" => Box::new(AlphaBeta::<T>::new(p.alpha, p.alpha - 1.0)?),
        "wsquare" => Box::new(WSquare),
        "flat" => Box::new(Flat),
        _ => return Err(unknown("rule", name, &LINEAR_RULES)),
    })
}

/// A gate rule by name (one of [`GATE_RULES`]).
pub fn gate_rule<T: Float>(name: &str) -> Result<Box<dyn GateRule<T>>, Error> {
    Ok(match name {
        "signal-take-all" | "all" => Box::new(SignalTakeAll),
        "prop" => Box::new(Proportional),
        "abs" => Box::new(Absolute),
        "half" | "uniform" => Box::new(Uniform),
        _ => return Err(unknown("gate rule", name, &GATE_RULES)),
    })
}

fn unknown(what: &'static str, name: &str, known: &[&str]) -> Error {
    Error::UnknownName {
        what,
        name: name.to_string(),
        known: known.join(", "),
    }
}

/// The rules one recurrent layer uses, taken from a [`Composite`].
#[derive(Clone, Copy)]
pub struct LayerRules<'a, T: Float> {
    /// For the gate and candidate pre-activations.
    pub projection: &'a dyn LinearRule<T>,
    /// For the cell sum (LSTM `c_t`) or state update (GRU `h_t`).
    pub accumulation: &'a dyn LinearRule<T>,
    /// For every gate x signal product.
    pub gate: &'a dyn GateRule<T>,
}

/// A rule for every [`Role`] of a recurrent model, plus the rule for gate x
/// signal products.
pub struct Composite<T: Float> {
    rules: [Box<dyn LinearRule<T>>; 5],
    gate: Box<dyn GateRule<T>>,
}

impl<T: Float> Composite<T> {
    /// The same linear rule for every role and signal-take-all for products.
    pub fn uniform(rule: impl LinearRule<T> + Clone + 'static) -> Self {
        Self {
            rules: std::array::from_fn(|_| Box::new(rule.clone()) as Box<dyn LinearRule<T>>),
            gate: Box::new(SignalTakeAll),
        }
    }

    /// The rule set of Arras et al. (2017) and `docs/rules.md`: epsilon with
    /// the given stabiliser and bias factor on every linear step,
    /// signal-take-all on every product.
    pub fn epsilon(eps: f64, bias_factor: f64) -> Result<Self, Error> {
        Ok(Self::uniform(Epsilon::<T>::new(eps, bias_factor)?))
    }

    /// One named linear rule (one of [`LINEAR_RULES`]) for every role,
    /// signal-take-all for products.
    pub fn with_every_rule(name: &str, p: &RuleParameters) -> Result<Self, Error> {
        let mut rules = Vec::with_capacity(Role::ALL.len());
        for _ in Role::ALL {
            rules.push(linear_rule(name, p)?);
        }
        let rules: [Box<dyn LinearRule<T>>; 5] = rules.try_into().unwrap_or_else(|_| unreachable!("one rule per role"));
        Ok(Self {
            rules,
            gate: Box::new(SignalTakeAll),
        })
    }

    /// A named preset (one of [`PRESETS`]); epsilon rules take `eps` and
    /// `bias_factor` from `p`:
    ///
    /// | preset | input projection | projection, head | sums, attention |
    /// |---|---|---|---|
    /// | `epsilon` | epsilon | epsilon | epsilon |
    /// | `epsilon-flat` | flat | epsilon | epsilon |
    /// | `epsilon-wsquare` | w-square | epsilon | epsilon |
    /// | `zplus` | z+ | z+ | epsilon |
    /// | `alpha2-beta1` | alpha-beta (2, 1) | alpha-beta (2, 1) | epsilon |
    /// | `gamma` | gamma | gamma | epsilon |
    ///
    /// Sums and the attention pooling keep epsilon in every preset: their
    /// inputs are signed states, not evidence for or against.
    pub fn preset(name: &str, p: &RuleParameters) -> Result<Self, Error> {
        let base = Self::uniform(Epsilon::<T>::new(p.eps, p.bias_factor)?);
        let fixed_alpha = RuleParameters { alpha: 2.0, ..*p };
        let (input, rest, p) = match name {
            "epsilon" => return Ok(base),
            "epsilon-flat" => ("flat", "epsilon", p),
            "epsilon-wsquare" => ("wsquare", "epsilon", p),
            "zplus" => ("zplus", "zplus", p),
            "alpha2-beta1" => ("alpha-beta", "alpha-beta", &fixed_alpha),
            "gamma" => ("gamma", "gamma", p),
            _ => return Err(unknown("composite", name, &PRESETS)),
        };
        Ok(base
            .with_boxed_rule(Role::InputProjection, linear_rule(input, p)?)
            .with_boxed_rule(Role::Projection, linear_rule(rest, p)?)
            .with_boxed_rule(Role::Head, linear_rule(rest, p)?))
    }

    /// Replaces the rule of one role.
    pub fn with_rule(self, role: Role, rule: impl LinearRule<T> + 'static) -> Self {
        self.with_boxed_rule(role, Box::new(rule))
    }

    /// Replaces the rule of one role with a boxed rule.
    pub fn with_boxed_rule(mut self, role: Role, rule: Box<dyn LinearRule<T>>) -> Self {
        self.rules[role as usize] = rule;
        self
    }

    /// Replaces the rule for gate x signal products.
    pub fn with_gate_rule(self, rule: impl GateRule<T> + 'static) -> Self {
        self.with_boxed_gate_rule(Box::new(rule))
    }

    /// Replaces the rule for gate x signal products with a boxed rule.
    pub fn with_boxed_gate_rule(mut self, rule: Box<dyn GateRule<T>>) -> Self {
        self.gate = rule;
        self
    }

    /// The rule of a role.
    pub fn rule(&self, role: Role) -> &dyn LinearRule<T> {
        self.rules[role as usize].as_ref()
    }

    /// The rule for gate x signal products.
    pub fn gate_rule(&self) -> &dyn GateRule<T> {
        self.gate.as_ref()
    }

    /// The rules of recurrent layer `k` (0 is the bottom layer).
    pub fn layer(&self, k: usize) -> LayerRules<'_, T> {
        LayerRules {
            projection: self.rule(if k == 0 {
                Role::InputProjection
            } else {
                Role::Projection
            }),
            accumulation: self.rule(Role::Accumulation),
            gate: self.gate_rule(),
        }
    }
}

impl<T: Float> std::fmt::Debug for Composite<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Composite").finish_non_exhaustive()
    }
}

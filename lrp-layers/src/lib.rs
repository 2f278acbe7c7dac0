//! The LRP rules themselves, and composites that say which rule each part of
//! a recurrent model gets.
//!
//! Rules implement the traits of `lrp-core`. For linear steps: [`Epsilon`]
//! (Bach et al. 2015, with the bias-factor convention of Arras et al. 2017;
//! the default), [`ZPlus`], [`Gamma`], [`AlphaBeta`], [`WSquare`] and
//! [`Flat`]. For gate x signal products: [`SignalTakeAll`] (Arras et al.
//! 2017; the default), [`Proportional`], [`Absolute`] and [`Uniform`]
//! (Arras et al. 2019 compare them). A [`Composite`] holds one rule per
//! layer [`Role`], the way zennit's composites do, so models never name a
//! rule: they ask the composite for the rule of a role. Element-wise
//! nonlinearities need no rule: relevance passes them unchanged.
#![deny(missing_docs)]

mod composite;
mod gate;
mod linear;

pub use composite::{
    gate_rule, linear_rule, Composite, LayerRules, Role, RuleParameters, GATE_RULES, LINEAR_RULES, PRESETS,
};
pub use gate::{Absolute, Proportional, SignalTakeAll, Uniform};
pub use linear::{AlphaBeta, Epsilon, Flat, Gamma, WSquare, ZPlus};

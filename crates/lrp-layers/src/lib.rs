//! The LRP rules themselves, and composites that say which rule each part of
//! a recurrent model gets.
//!
//! Rules implement the traits of `lrp-core`: [`Epsilon`] for linear steps
//! (Bach et al. 2015, with the bias-factor convention of Arras et al. 2017),
//! [`SignalTakeAll`] for gate x signal products (Arras et al. 2017). A
//! [`Composite`] holds one rule per layer role, the way zennit's composites
//! do, so that models never name a rule: they ask the composite for the rule
//! of a role. Element-wise nonlinearities need no rule: relevance passes them
//! unchanged.
#![deny(missing_docs)]

mod composite;
mod gate;
mod linear;

pub use composite::{Composite, Role};
pub use gate::SignalTakeAll;
pub use linear::Epsilon;

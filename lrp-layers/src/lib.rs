//! The LRP rules themselves, and composites that say which rule each part of
//! a recurrent model gets.
//!
//! Rules implement the traits of `lrp-core`. For linear steps: [`Epsilon`]
//! (Bach et al. 2015, with the bias-factor convention of Arras et al. 2017;
//! the default), [`ZPlus`], [`Gamma`], [`AlphaBeta`], [`WSquare`] and
//! [`Flat`]. For gate x signal products: [`SignalTakeAll`] (Arras et al.
//! 2017; the default), [`Proportional`], [`Absolute`] and [`Uniform`]
//! (Arras et al. 2019 compare them). A [`Composite`] is a rule map addressed
//! by [`Site`] (stage, layer, direction, operation), the way zennit's
//! composites are, so models never name a rule: they ask the composite for
//! the rule of a site. [`SitePattern`]s, [`Role`]s or closures select sites;
//! [`Presets`] holds named composites, built-in and registered;
//! [`RuleSpec`] reads the CLI's `--rules` syntax. A new proportional rule is
//! one call of [`redistribute_proportionally`] (and, for blocks of
//! sequences, one of [`redistribute_proportionally_block`]). Element-wise
//! nonlinearities need no rule: relevance passes them unchanged.
//!
//! Rules by site, in code and in the `--rules` syntax, and presets of your own:
//!
//! ```
//! use lrp_layers::{Composite, Direction, Operation, Presets, RuleParameters, Site, SitePattern, ZPlus};
//!
//! let p = RuleParameters::default();
//! // z+ on layer 1's backward direction, epsilon everywhere else.
//! let rules = Composite::<f64>::epsilon(p.eps, p.bias_factor)?
//!     .with_rule(SitePattern::parse("layer1.backward")?, ZPlus);
//! let g = |layer, direction| Site::encoder(layer, direction, Operation::Projection("g"));
//! assert_eq!(rules.rule_at(&g(1, Direction::Backward)).name(), "zplus");
//! assert_eq!(rules.rule_at(&g(1, Direction::Forward)).name(), "epsilon");
//!
//! // The same in the --rules syntax, with a gate rule for layer 0's products.
//! let rules = Composite::<f64>::preset("epsilon", &p)?.with_rules("layer1.backward=zplus,layer0=abs", &p)?;
//! assert_eq!(rules.rule_at(&g(1, Direction::Backward)).name(), "zplus");
//! let product = Site::encoder(0, Direction::Forward, Operation::Product("f"));
//! assert_eq!(rules.gate_rule_at(&product).name(), "abs");
//!
//! // Presets of your own, beside the built-in ones.
//! let mut presets = Presets::<f64>::builtin();
//! presets.register_rules("flat-input-zplus-head", "input=flat,head=zplus")?;
//! presets.register("zplus-sums", |p: &RuleParameters| {
//!     Ok(Composite::epsilon(p.eps, p.bias_factor)?.with_rule(|s: &Site| s.operation == Operation::Accumulation, ZPlus))
//! });
//! let mine = presets.build("flat-input-zplus-head", &p)?;
//! assert_eq!(mine.rule_at(&g(0, Direction::Forward)).name(), "flat");
//! assert_eq!(mine.rule_at(&Site::head()).name(), "zplus");
//! assert!(presets.build("zplus", &p).is_ok());
//! # Ok::<(), lrp_core::Error>(())
//! ```
#![deny(missing_docs)]

mod composite;
mod gate;
mod linear;
mod site;

pub use composite::{
    gate_rule, linear_rule, Composite, LayerRules, PresetBuilder, Presets, Role, RuleParameters, RuleSpec, GATE_RULES,
    LINEAR_RULES, MAX_RULE_ENTRIES, MAX_RULE_SPEC_BYTES, PRESETS,
};
pub use gate::{Absolute, Proportional, SignalTakeAll, Uniform};
pub use linear::{
    redistribute_proportionally, redistribute_proportionally_block, AlphaBeta, Epsilon, Flat, Gamma, Share, WSquare,
    ZPlus,
};
pub use site::{
    Direction, Operation, OperationPattern, Site, SiteMatcher, SitePattern, ATTENTION, CONV, ENCODER, HEAD,
    MAX_PATTERN_LAYER,
};

//! The options of an explanation as plain values: which method, which LRP
//! rules, which precision. Front ends fill them from their own arguments
//! (`lrp explain`'s flags, `Model.explain`'s keywords); the defaults here
//! are the flags' defaults.

use lrp_core::Float;
use lrp_layers::{gate_rule, Composite, RuleParameters, RuleSpec, Site};
use lrp_models::Model;

use crate::Error;

/// An option with a fixed set of values, each known by a short name
/// (`lrp`, `f64`): what a front end reads from a string.
pub trait Choice: Copy + 'static {
    /// Every value, in the order the names are listed.
    const ALL: &'static [Self];

    /// The value's short name.
    fn name(self) -> &'static str;

    /// The value named `value`; for any other, [`Error::Choice`] naming
    /// the `option` and the names it takes.
    ///
    /// ```
    /// use lrp_app::{Choice, MethodName};
    /// assert_eq!(MethodName::parse("method", "ig").unwrap(), MethodName::Ig);
    /// let e = MethodName::parse("method", "shap").unwrap_err();
    /// assert_eq!(e.to_string(), "invalid value 'shap' for method [possible values: lrp, sa, gi, occlusion, ig]");
    /// ```
    fn parse(option: &str, value: &str) -> Result<Self, Error> {
        Self::ALL
            .iter()
            .copied()
            .find(|v| v.name() == value)
            .ok_or_else(|| Error::Choice {
                option: option.to_string(),
                value: lrp_io::printable(value, 200),
                possible: Self::ALL.iter().map(|v| v.name()).collect::<Vec<_>>().join(", "),
            })
    }
}

/// How to attribute the score.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum MethodName {
    /// Layer-wise Relevance Propagation under the rules of [`RuleOptions`].
    #[default]
    Lrp,
    /// Sensitivity analysis: ||d s / d x_t||^2 per position.
    Sa,
    /// Gradient x input: sum_e x_te d s / d x_te per position.
    Gi,
    /// Occlusion: s(x) - s(x with x_t = 0) per position.
    Occlusion,
    /// Integrated gradients from the zero baseline.
    Ig,
}

impl MethodName {
    /// The method with these LRP `rules` (used by `lrp`) and `steps` (by
    /// `ig`).
    pub fn method<T: Float>(self, rules: &Composite<T>, steps: usize) -> lrp_models::Method<'_, T> {
        match self {
            MethodName::Lrp => lrp_models::Method::Lrp(rules),
            MethodName::Sa => lrp_models::Method::Sensitivity,
            MethodName::Gi => lrp_models::Method::GradientTimesInput,
            MethodName::Occlusion => lrp_models::Method::Occlusion,
            MethodName::Ig => lrp_models::Method::IntegratedGradients { steps },
        }
    }

    /// [`MethodName::method`], checked as `lrp explain` checks it before
    /// explaining anything with `model`: an output `position` needs a
    /// per-step head, and the method's parameters must be valid
    /// ([`lrp_models::Method::validate`]). Every front end that explains a
    /// classifier's input calls this, so that all refuse the same requests
    /// with the same words.
    pub fn checked_method<'r, T: Float>(
        self,
        model: &Model<T>,
        rules: &'r Composite<T>,
        steps: usize,
        position: Option<usize>,
    ) -> Result<lrp_models::Method<'r, T>, Error> {
        let method = self.method(rules, steps);
        if position.is_some() && !model.is_per_step() {
            return Err(lrp_models::Error::NotPerStep.into());
        }
        method.validate()?;
        Ok(method)
    }
}

impl Choice for MethodName {
    const ALL: &'static [Self] = &[
        MethodName::Lrp,
        MethodName::Sa,
        MethodName::Gi,
        MethodName::Occlusion,
        MethodName::Ig,
    ];

    fn name(self) -> &'static str {
        match self {
            MethodName::Lrp => "lrp",
            MethodName::Sa => "sa",
            MethodName::Gi => "gi",
            MethodName::Occlusion => "occlusion",
            MethodName::Ig => "ig",
        }
    }
}

/// Arithmetic precision.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Precision {
    /// 64-bit floats (exact checks).
    #[default]
    F64,
    /// 32-bit floats (throughput).
    F32,
}

impl Choice for Precision {
    const ALL: &'static [Self] = &[Precision::F64, Precision::F32];

    fn name(self) -> &'static str {
        match self {
            Precision::F64 => "f64",
            Precision::F32 => "f32",
        }
    }
}

/// The options that choose the LRP rules (`docs/rules.md`): a preset, or
/// one rule for every linear step, the gate rule, their parameters, and
/// rules by site over them.
#[derive(Debug, Clone, PartialEq)]
pub struct RuleOptions {
    /// The rule preset: epsilon, epsilon-flat, epsilon-wsquare, zplus,
    /// alpha2-beta1, gamma (ignored when `rule` is given).
    pub composite: String,
    /// One rule for every linear step: epsilon, zplus, gamma, alpha-beta,
    /// wsquare, flat.
    pub rule: Option<String>,
    /// The rule for gate x signal products: signal-take-all, prop, abs, half.
    pub gate_rule: String,
    /// Gamma of the gamma rule (>= 0).
    pub gamma: f64,
    /// Alpha of the alpha-beta rule (beta = alpha - 1).
    pub alpha: f64,
    /// Epsilon stabiliser of the LRP rule (>= 0).
    pub eps: f64,
    /// Stabiliser of the prop gate rule (>= 0; 0 is the unstabilised rule).
    pub prop_eps: f64,
    /// Bias factor: 0 (explanation) or 1 (conservation check).
    pub bias_factor: f64,
    /// Rules by site over the preset or rule, first match wins:
    /// `KEY=RULE[:N],...`, e.g. `input=flat,head=gamma:0.5,*=epsilon`.
    pub rules: Option<String>,
}

impl Default for RuleOptions {
    /// The `epsilon` preset and `signal-take-all`, with the parameters'
    /// defaults ([`RuleParameters::default`]: eps 0.001, bias factor 0,
    /// gamma 0.25, alpha 2, prop's stabiliser 1).
    fn default() -> Self {
        let p = RuleParameters::default();
        Self {
            composite: "epsilon".into(),
            rule: None,
            gate_rule: "signal-take-all".into(),
            gamma: p.gamma,
            alpha: p.alpha,
            eps: p.eps,
            prop_eps: p.prop_eps,
            bias_factor: p.bias_factor,
            rules: None,
        }
    }
}

impl RuleOptions {
    /// The LRP rules these options ask for: a preset, or one rule
    /// everywhere, plus the gate rule, refined by the rules by site.
    pub fn composite<T: Float>(&self) -> Result<Composite<T>, Error> {
        let p = self.parameters();
        let rules = match &self.rule {
            Some(name) => Composite::with_every_rule(name, &p)?,
            None => Composite::preset(&self.composite, &p)?,
        };
        let rules = rules.with_boxed_gate_rule(gate_rule(&self.gate_rule, &p)?);
        Ok(match &self.rules {
            Some(spec) => rules.with_rules(spec, &p)?,
            None => rules,
        })
    }

    /// [`RuleOptions::composite`] for a model with these `sites`, after
    /// [`RuleOptions::check_sites`]: what `lrp explain` builds.
    pub fn composite_for<T: Float>(&self, sites: &[Site]) -> Result<Composite<T>, Error> {
        self.check_sites(sites)?;
        self.composite()
    }

    /// The parameters the rules are built with.
    pub fn parameters(&self) -> RuleParameters {
        RuleParameters {
            eps: self.eps,
            bias_factor: self.bias_factor,
            gamma: self.gamma,
            alpha: self.alpha,
            prop_eps: self.prop_eps,
        }
    }

    /// Refuses a rules-by-site entry that can never apply to a model with
    /// these `sites` (`Model::sites`, `Seq2Seq::sites`): one that selects
    /// none of them, or whose sites earlier entries all take (see
    /// `RuleSpec::check`).
    pub fn check_sites(&self, sites: &[Site]) -> Result<(), Error> {
        if let Some(spec) = &self.rules {
            RuleSpec::parse(spec)?.check(sites)?;
        }
        Ok(())
    }
}

/// A class index given as text (`--target`, a Python int's digits): a
/// whole number from 0.
pub fn class_index(value: &str) -> Result<usize, String> {
    match value.trim().parse::<i128>() {
        Ok(k) if k < 0 => Err("the target must be a class index >= 0".into()),
        Ok(k) => usize::try_from(k).map_err(|_| "the target is not a class index of any model".into()),
        Err(_) => Err("the target must be a class index (a whole number >= 0)".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn choices_parse_their_names_only() {
        for &m in MethodName::ALL {
            assert_eq!(MethodName::parse("method", m.name()).unwrap(), m);
        }
        assert_eq!(Precision::parse("precision", "f32").unwrap(), Precision::F32);
        let e = Precision::parse("precision", "F32\n").unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid value 'F32\\n' for precision [possible values: f64, f32]"
        );
    }

    #[test]
    fn the_default_rules_are_the_epsilon_preset_with_signal_take_all() {
        let options = RuleOptions::default();
        assert_eq!((options.eps, options.bias_factor, options.prop_eps), (0.001, 0.0, 1.0));
        let rules = options.composite::<f64>().unwrap();
        let p = RuleParameters::default();
        let preset = Composite::<f64>::preset("epsilon", &p)
            .unwrap()
            .with_boxed_gate_rule(gate_rule("signal-take-all", &p).unwrap());
        assert_eq!(format!("{rules:?}"), format!("{preset:?}"));
        let bad = RuleOptions {
            gate_rule: "maybe".into(),
            ..RuleOptions::default()
        };
        assert!(bad.composite::<f64>().is_err());
    }

    #[test]
    fn class_indices_are_whole_numbers_from_zero() {
        assert_eq!(class_index(" 3 "), Ok(3));
        assert_eq!(class_index("-1"), Err("the target must be a class index >= 0".into()));
        assert_eq!(
            class_index("999999999999999999999999999"),
            Err("the target is not a class index of any model".into())
        );
        assert!(class_index("1.5").is_err());
    }
}

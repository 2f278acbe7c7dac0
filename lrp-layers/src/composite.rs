//! Composites: which rule each site of a recurrent model gets (zennit's
//! composites), with named presets and rules by name for the CLI.

use lrp_core::{Error, Float, GateRule, LinearRule};

use crate::site::{Direction, Operation, Site, SiteMatcher, SitePattern};

use crate::{Absolute, AlphaBeta, Epsilon, Flat, Gamma, Proportional, SignalTakeAll, Uniform, WSquare, ZPlus};

/// The roles a linear step can play in a recurrent model: coarse groups of
/// [`Site`]s, the ones the built-in presets assign rules to. A role is a
/// [`SiteMatcher`], so `composite.with_rule(Role::Head, rule)` works.
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
    /// The prop gate rule's stabiliser (default [`Proportional::DEFAULT_EPS`], 1).
    pub prop_eps: f64,
}

impl Default for RuleParameters {
    fn default() -> Self {
        Self {
            eps: 0.001,
            bias_factor: 0.0,
            gamma: 0.25,
            alpha: 2.0,
            prop_eps: Proportional::DEFAULT_EPS,
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

/// A gate rule by name (one of [`GATE_RULES`]); `prop` takes its
/// stabiliser from `p.prop_eps`.
pub fn gate_rule<T: Float>(name: &str, p: &RuleParameters) -> Result<Box<dyn GateRule<T>>, Error> {
    Ok(match name {
        "signal-take-all" | "all" => Box::new(SignalTakeAll),
        "prop" => Box::new(Proportional::new(p.prop_eps)?),
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

/// The rules of one cell: the [`Composite`] seen from the sites of one
/// direction of one recurrent layer, `(encoder, layer, direction, ...)`, or
/// of a stage that runs a cell of its own, such as a decoder, `(stage,
/// ...)`. A cell asks it for the rule of each of its operations.
#[derive(Clone, Copy)]
pub struct LayerRules<'a, T: Float> {
    composite: &'a Composite<T>,
    stage: &'static str,
    layer: Option<usize>,
    direction: Option<Direction>,
}

impl<'a, T: Float> LayerRules<'a, T> {
    /// The site of `operation` of this cell.
    pub fn site(&self, operation: Operation) -> Site {
        match (self.layer, self.direction) {
            (Some(layer), Some(direction)) => Site::encoder(layer, direction, operation),
            _ => Site::new(self.stage, operation),
        }
    }

    /// The rule for the pre-activation of gate or candidate `gate`.
    pub fn projection(&self, gate: &'static str) -> &'a dyn LinearRule<T> {
        self.composite.rule_at(&self.site(Operation::Projection(gate)))
    }

    /// The rule for the pre-activation of the candidate `name` (LSTM `g`,
    /// GRU `n`).
    pub fn candidate(&self, name: &'static str) -> &'a dyn LinearRule<T> {
        self.composite.rule_at(&self.site(Operation::Candidate(name)))
    }

    /// The rule for the cell sum (LSTM `c_t`) or state update (GRU `h_t`).
    pub fn accumulation(&self) -> &'a dyn LinearRule<T> {
        self.composite.rule_at(&self.site(Operation::Accumulation))
    }

    /// The rule for the product gated by `gate`.
    pub fn product(&self, gate: &'static str) -> &'a dyn GateRule<T> {
        self.composite.gate_rule_at(&self.site(Operation::Product(gate)))
    }
}

/// A rule chosen for the sites a matcher selects.
struct SiteRule<R: ?Sized> {
    matcher: Box<dyn SiteMatcher>,
    rule: Box<R>,
}

/// A rule map: which rule each site of a recurrent model gets (zennit's
/// composites), for linear steps and for gate x signal products.
///
/// A composite is a list of rules by site, `(matcher, rule)` entries (each
/// matcher a [`SitePattern`], a [`Role`] or a closure over the [`Site`]),
/// over a base: a preset's rules by role, or one rule everywhere. **The
/// first entry whose matcher selects a site wins**, in the order the
/// entries were added, as the first entry of a `--rules` specification
/// does ([`RuleSpec`]): `with_rule(a, r1).with_rule(b, r2)` reads as
/// `a=r1,b=r2`, like the arms of a `match`. Sites no entry selects get the
/// base's rule. So a rule added to a preset overrides the preset where it
/// applies and nowhere else, and [`Composite::into_base`] makes a
/// composite of your own a base in the same way. Models look rules up
/// once per layer and direction, outside their time loops.
///
/// ```
/// use lrp_layers::{Composite, Direction, Operation, Site, SitePattern, ZPlus};
///
/// // z+ for the backward direction of layer 1, epsilon everywhere else.
/// let rules = Composite::<f64>::epsilon(0.001, 0.0)?
///     .with_rule(SitePattern::default().layer(1).direction(Direction::Backward), ZPlus);
/// let at = |site: Site| rules.rule_at(&site).name().to_string();
/// assert_eq!(at(Site::encoder(1, Direction::Backward, Operation::Projection("g"))), "zplus");
/// assert_eq!(at(Site::encoder(1, Direction::Forward, Operation::Projection("g"))), "epsilon");
/// assert_eq!(at(Site::head()), "epsilon");
///
/// // A closure selects sites too: every sum above the bottom layer.
/// let sum = |layer| Site::encoder(layer, Direction::Forward, Operation::Accumulation);
/// assert_eq!(at(sum(2)), "epsilon");
/// let rules = rules.with_rule(
///     |site: &Site| site.operation == Operation::Accumulation && site.layer > Some(0),
///     ZPlus,
/// );
/// assert_eq!(rules.rule_at(&sum(2)).name(), "zplus");
/// assert_eq!(rules.rule_at(&sum(0)).name(), "epsilon");
///
/// // The first entry that selects a site wins: Flat on layer 1's backward
/// // direction, z+ on the rest of layer 1.
/// let rules = Composite::<f64>::epsilon(0.001, 0.0)?
///     .with_rule(SitePattern::default().layer(1).direction(Direction::Backward), lrp_layers::Flat)
///     .with_rule(SitePattern::default().layer(1), ZPlus);
/// let g = |direction| Site::encoder(1, direction, Operation::Projection("g"));
/// assert_eq!(rules.rule_at(&g(Direction::Backward)).name(), "flat");
/// assert_eq!(rules.rule_at(&g(Direction::Forward)).name(), "zplus");
/// # Ok::<(), lrp_core::Error>(())
/// ```
pub struct Composite<T: Float> {
    /// Rules by site for linear steps, first match wins.
    linear: Vec<SiteRule<dyn LinearRule<T>>>,
    /// Rules by site for products, first match wins.
    gate: Vec<SiteRule<dyn GateRule<T>>>,
    /// The base's linear rules by site (a preset's roles), below `linear`.
    linear_base: Vec<SiteRule<dyn LinearRule<T>>>,
    /// The base's gate rules by site, below `gate`.
    gate_base: Vec<SiteRule<dyn GateRule<T>>>,
    linear_fallback: Box<dyn LinearRule<T>>,
    gate_fallback: Box<dyn GateRule<T>>,
}

impl<T: Float> Composite<T> {
    /// The same linear rule for every linear step and signal-take-all for
    /// products.
    pub fn uniform(rule: impl LinearRule<T> + 'static) -> Self {
        Self::with_fallback(Box::new(rule))
    }

    fn with_fallback(rule: Box<dyn LinearRule<T>>) -> Self {
        Self {
            linear: Vec::new(),
            gate: Vec::new(),
            linear_base: Vec::new(),
            gate_base: Vec::new(),
            linear_fallback: rule,
            gate_fallback: Box::new(SignalTakeAll),
        }
    }

    /// The rule set of Arras et al. (2017) and `docs/rules.md`: epsilon with
    /// the given stabiliser and bias factor on every linear step,
    /// signal-take-all on every product.
    pub fn epsilon(eps: f64, bias_factor: f64) -> Result<Self, Error> {
        Ok(Self::uniform(Epsilon::<T>::new(eps, bias_factor)?))
    }

    /// One named linear rule (one of [`LINEAR_RULES`]) for every linear
    /// step, signal-take-all for products.
    pub fn with_every_rule(name: &str, p: &RuleParameters) -> Result<Self, Error> {
        Ok(Self::with_fallback(linear_rule(name, p)?))
    }

    /// A built-in preset (one of [`PRESETS`]); epsilon rules take `eps` and
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
    /// inputs are signed states, not evidence for or against. Each preset is
    /// a base ([`Composite::into_base`]): the epsilon fallback plus one rule
    /// per [`Role`] it changes, under any rules by site added to it. For
    /// presets of your own, see [`Presets`].
    pub fn preset(name: &str, p: &RuleParameters) -> Result<Self, Error> {
        let base = Self::epsilon(p.eps, p.bias_factor)?;
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
            .with_boxed_rule(Role::Head, linear_rule(rest, p)?)
            .into_base())
    }

    /// This composite as a base: its rules by site move under any added
    /// afterwards, which then override them where they apply (as `--rules`
    /// overrides `--composite`). The built-in presets and
    /// [`Presets::build`] return bases.
    ///
    /// ```
    /// use lrp_layers::{Composite, Flat, Role, Site, ZPlus};
    ///
    /// let mine = Composite::<f64>::epsilon(0.001, 0.0)?.with_rule(Role::Head, ZPlus);
    /// // Still rules by site: an entry added after it comes second.
    /// assert_eq!(mine.with_rule(Role::Head, Flat).rule_at(&Site::head()).name(), "zplus");
    /// let mine = Composite::<f64>::epsilon(0.001, 0.0)?.with_rule(Role::Head, ZPlus).into_base();
    /// // A base: the entry added after it wins.
    /// assert_eq!(mine.with_rule(Role::Head, Flat).rule_at(&Site::head()).name(), "flat");
    /// # Ok::<(), lrp_core::Error>(())
    /// ```
    pub fn into_base(mut self) -> Self {
        self.linear.append(&mut self.linear_base);
        self.linear_base = std::mem::take(&mut self.linear);
        self.gate.append(&mut self.gate_base);
        self.gate_base = std::mem::take(&mut self.gate);
        self
    }

    /// Gives `rule` to every linear step `matcher` selects (a [`Role`], a
    /// [`SitePattern`] or a closure `Fn(&Site) -> bool`) that no entry
    /// added before selects, over the base's rule.
    pub fn with_rule(self, matcher: impl SiteMatcher + 'static, rule: impl LinearRule<T> + 'static) -> Self {
        self.with_boxed_rule(matcher, Box::new(rule))
    }

    /// [`Composite::with_rule`] with a boxed rule.
    pub fn with_boxed_rule(mut self, matcher: impl SiteMatcher + 'static, rule: Box<dyn LinearRule<T>>) -> Self {
        self.linear.push(SiteRule {
            matcher: Box::new(matcher),
            rule,
        });
        self
    }

    /// Gives `rule` to every gate x signal product (replacing all gate rules
    /// given so far, the base's included).
    pub fn with_gate_rule(self, rule: impl GateRule<T> + 'static) -> Self {
        self.with_boxed_gate_rule(Box::new(rule))
    }

    /// [`Composite::with_gate_rule`] with a boxed rule.
    pub fn with_boxed_gate_rule(mut self, rule: Box<dyn GateRule<T>>) -> Self {
        self.gate.clear();
        self.gate_base.clear();
        self.gate_fallback = rule;
        self
    }

    /// Gives `rule` to the gate x signal products `matcher` selects that no
    /// gate entry added before selects, over the base's rule.
    pub fn with_gate_rule_at(self, matcher: impl SiteMatcher + 'static, rule: impl GateRule<T> + 'static) -> Self {
        self.with_boxed_gate_rule_at(matcher, Box::new(rule))
    }

    /// [`Composite::with_gate_rule_at`] with a boxed rule.
    pub fn with_boxed_gate_rule_at(mut self, matcher: impl SiteMatcher + 'static, rule: Box<dyn GateRule<T>>) -> Self {
        self.gate.push(SiteRule {
            matcher: Box::new(matcher),
            rule,
        });
        self
    }

    /// Refines the composite with rules in the `--rules` syntax (see
    /// [`RuleSpec::parse`]): the entries are added in their order, as
    /// [`Composite::with_rule`] adds one, so the first entry that selects a
    /// site wins, and they apply over the base.
    ///
    /// ```
    /// use lrp_layers::{Composite, Direction, Operation, RuleParameters, Site};
    ///
    /// let p = RuleParameters::default();
    /// let rules = Composite::<f64>::preset("epsilon", &p)?.with_rules("input=flat,head=gamma:0.5,*=zplus", &p)?;
    /// let at = |site: Site| rules.rule_at(&site).name().to_string();
    /// assert_eq!(at(Site::encoder(0, Direction::Forward, Operation::Projection("i"))), "flat");
    /// assert_eq!(at(Site::encoder(1, Direction::Forward, Operation::Projection("i"))), "zplus");
    /// assert_eq!(at(Site::head()), "gamma");
    /// assert_eq!(at(Site::attention()), "zplus");
    /// # Ok::<(), lrp_core::Error>(())
    /// ```
    pub fn with_rules(self, spec: &str, p: &RuleParameters) -> Result<Self, Error> {
        RuleSpec::parse(spec)?.apply(self, p)
    }

    /// [`Composite::with_rules`] for a model with these `sites`
    /// (`lrp_models::Model::sites`): refuses entries that select no site or
    /// that earlier entries leave nothing to ([`RuleSpec::check`]).
    ///
    /// ```
    /// use lrp_layers::{Composite, RuleParameters, Site};
    ///
    /// let p = RuleParameters::default();
    /// let sites = [Site::attention(), Site::head()];
    /// let rules = Composite::<f64>::preset("epsilon", &p)?.with_rules_checked("head=zplus", &p, &sites)?;
    /// assert_eq!(rules.rule_at(&Site::head()).name(), "zplus");
    /// let base = Composite::<f64>::preset("epsilon", &p)?;
    /// assert!(base.with_rules_checked("layer99=zplus", &p, &sites).is_err());
    /// # Ok::<(), lrp_core::Error>(())
    /// ```
    pub fn with_rules_checked(self, spec: &str, p: &RuleParameters, sites: &[Site]) -> Result<Self, Error> {
        let spec = RuleSpec::parse(spec)?;
        spec.check(sites)?;
        spec.apply(self, p)
    }

    /// The linear rule of `site`.
    pub fn rule_at(&self, site: &Site) -> &dyn LinearRule<T> {
        self.linear
            .iter()
            .chain(&self.linear_base)
            .find(|entry| entry.matcher.matches(site))
            .map_or(self.linear_fallback.as_ref(), |entry| entry.rule.as_ref())
    }

    /// The gate rule of the product at `site`.
    pub fn gate_rule_at(&self, site: &Site) -> &dyn GateRule<T> {
        self.gate
            .iter()
            .chain(&self.gate_base)
            .find(|entry| entry.matcher.matches(site))
            .map_or(self.gate_fallback.as_ref(), |entry| entry.rule.as_ref())
    }

    /// The rules of direction `direction` of recurrent layer `layer` (0 is
    /// the bottom layer).
    pub fn layer(&self, layer: usize, direction: Direction) -> LayerRules<'_, T> {
        LayerRules {
            composite: self,
            stage: crate::site::ENCODER,
            layer: Some(layer),
            direction: Some(direction),
        }
    }

    /// The rules of the cell of stage `stage` (a decoder's cell): its
    /// sites are `Site::new(stage, operation)`.
    pub fn cell_of(&self, stage: &'static str) -> LayerRules<'_, T> {
        LayerRules {
            composite: self,
            stage,
            layer: None,
            direction: None,
        }
    }
}

impl<T: Float> std::fmt::Debug for Composite<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Composite")
            .field("linear_entries", &self.linear.len())
            .field("gate_entries", &self.gate.len())
            .field("linear_base_entries", &self.linear_base.len())
            .field("gate_base_entries", &self.gate_base.len())
            .field("linear_fallback", &self.linear_fallback.name())
            .field("gate_fallback", &self.gate_fallback.name())
            .finish()
    }
}

/// The most entries a [`RuleSpec`] may have.
pub const MAX_RULE_ENTRIES: usize = 64;
/// The longest [`RuleSpec`] text, in bytes.
pub const MAX_RULE_SPEC_BYTES: usize = 4096;

/// What one entry of a [`RuleSpec`] gives its sites.
#[derive(Debug, Clone, PartialEq)]
enum RuleChoice {
    /// A linear rule by name, with its one parameter if given.
    Linear(String, Option<f64>),
    /// A gate rule by name, with its one parameter if given.
    Gate(String, Option<f64>),
}

/// Rules by site in the `--rules` syntax, parsed and checked:
///
/// ```text
/// spec  := entry (',' entry)*
/// entry := key '=' rule
/// key   := '*' | part ('.' part)*        (see SitePattern::parse)
/// rule  := name [':' number]
/// ```
///
/// A rule is a linear rule of [`LINEAR_RULES`], which applies to the
/// linear steps the key selects, or a gate rule of [`GATE_RULES`], which
/// applies to the products it selects. The number is the rule's one
/// parameter: `epsilon:E` (the stabiliser; the bias factor stays the
/// composite's), `gamma:G`, `alpha-beta:A` (`beta = A - 1`); without it the
/// rule takes [`RuleParameters`]. Of the gate rules only `prop:E` takes
/// one, its stabiliser. **The first entry whose key selects a
/// site wins**, reading left to right (the order of a [`Composite`]'s
/// entries in code too), so `*` belongs last; an entry after
/// a `*` of its kind could never apply and is an error. Errors name the
/// entry or part that is wrong.
///
/// ```
/// use lrp_layers::RuleSpec;
///
/// assert!(RuleSpec::parse("layer0=flat, layer1.backward=zplus, attention=epsilon:0.01, *=gamma").is_ok());
/// assert!(RuleSpec::parse("layer1.products=prop").is_ok());
/// let error = RuleSpec::parse("layer0=flat,head=magic").unwrap_err();
/// assert!(error.to_string().contains("\"magic\""), "{error}");
/// let error = RuleSpec::parse("*=zplus,head=epsilon").unwrap_err();
/// assert!(error.to_string().contains("\"head=epsilon\""), "{error}");
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct RuleSpec {
    entries: Vec<SpecEntry>,
}

/// One `key=rule` entry of a [`RuleSpec`].
#[derive(Debug, Clone, PartialEq)]
struct SpecEntry {
    /// The entry as given (trimmed), for messages.
    text: String,
    pattern: SitePattern,
    choice: RuleChoice,
}

impl SpecEntry {
    /// Whether the entry's rule can apply at `site`: a linear rule at a
    /// linear step its key selects, a gate rule at a product.
    fn applies_to(&self, site: &Site) -> bool {
        self.is_of_its_kind(site) && self.pattern.matches(site)
    }

    /// Whether `site` takes the entry's kind of rule: a product a gate
    /// rule, any other site a linear rule.
    fn is_of_its_kind(&self, site: &Site) -> bool {
        matches!(site.operation, Operation::Product(_)) == matches!(self.choice, RuleChoice::Gate(..))
    }
}

/// The most sites an error message lists.
const LISTED_SITES: usize = 8;

/// `sites` comma-separated, at most [`LISTED_SITES`] of them and a count of
/// the rest.
fn site_list<'a>(sites: impl ExactSizeIterator<Item = &'a Site>) -> String {
    let more = sites.len().saturating_sub(LISTED_SITES);
    let mut list: Vec<String> = sites.take(LISTED_SITES).map(Site::to_string).collect();
    if more > 0 {
        list.push(format!("and {more} more"));
    }
    list.join(", ")
}

impl RuleSpec {
    /// Parses and checks a specification (names, parameter syntax, keys;
    /// parameter ranges are checked when the rules are built).
    pub fn parse(spec: &str) -> Result<Self, Error> {
        let bad = |part: &str, reason: &'static str| Error::BadRuleSpec {
            part: part.to_string(),
            reason,
        };
        if spec.len() > MAX_RULE_SPEC_BYTES {
            let start: String = spec.chars().take(32).collect();
            return Err(bad(&format!("{start}..."), "longer than 4096 bytes"));
        }
        if spec.trim().is_empty() {
            return Err(bad(spec, "no rules given; write key=rule, e.g. layer0=flat,*=epsilon"));
        }
        let mut entries = Vec::new();
        let (mut linear_catch_all, mut gate_catch_all) = (false, false);
        for entry in spec.split(',') {
            let entry = entry.trim();
            if entries.len() == MAX_RULE_ENTRIES {
                return Err(bad(entry, "too many entries (at most 64)"));
            }
            let Some((key, rule)) = entry.split_once('=') else {
                return Err(bad(entry, "an entry is key=rule"));
            };
            let pattern = SitePattern::parse(key)?;
            let (name, parameter) = match rule.trim().split_once(':') {
                Some((name, number)) => {
                    let value = number
                        .trim()
                        .parse::<f64>()
                        .ok()
                        .filter(|v| v.is_finite())
                        .ok_or_else(|| bad(number, "a rule's parameter is a finite number"))?;
                    (name.trim(), Some(value))
                }
                None => (rule.trim(), None),
            };
            let choice = if LINEAR_RULES.contains(&name) {
                if parameter.is_some() && !matches!(name, "epsilon" | "gamma" | "alpha-beta") {
                    return Err(bad(rule, "only epsilon, gamma and alpha-beta take a parameter"));
                }
                if !pattern.can_select_linear_steps() {
                    return Err(bad(
                        entry,
                        "a linear rule needs a key that selects linear steps, not products",
                    ));
                }
                if linear_catch_all {
                    return Err(bad(entry, "never applies: an earlier * entry selects every site"));
                }
                linear_catch_all = pattern.is_everything();
                RuleChoice::Linear(name.to_string(), parameter)
            } else if GATE_RULES.contains(&name) {
                if parameter.is_some() && name != "prop" {
                    return Err(bad(rule, "of the gate rules only prop takes a parameter"));
                }
                if !pattern.can_select_products() {
                    return Err(bad(entry, "a gate rule needs a key that selects products"));
                }
                if gate_catch_all {
                    return Err(bad(entry, "never applies: an earlier * entry selects every site"));
                }
                gate_catch_all = pattern.is_everything();
                RuleChoice::Gate(name.to_string(), parameter)
            } else {
                let mut known: Vec<&str> = LINEAR_RULES.to_vec();
                known.extend(GATE_RULES);
                return Err(unknown("rule", name, &known));
            };
            entries.push(SpecEntry {
                text: entry.to_string(),
                pattern,
                choice,
            });
        }
        Ok(Self { entries })
    }

    /// Checks the specification against the sites of a model (as
    /// `lrp_models::Model::sites` lists them): every entry must select at
    /// least one site of its kind (a linear step for a linear rule, a
    /// product for a gate rule), and at least one site that no earlier
    /// entry of its kind selects, since the first entry that selects a site
    /// wins. An entry that fails is named, with the model's sites or the
    /// earlier entries that take its sites.
    ///
    /// ```
    /// use lrp_layers::{Direction, Operation, RuleSpec, Site};
    ///
    /// // One forward layer, an LSTM cell reduced to one projection and one product, and a head.
    /// let sites = [
    ///     Site::encoder(0, Direction::Forward, Operation::Projection("g")),
    ///     Site::encoder(0, Direction::Forward, Operation::Product("i")),
    ///     Site::head(),
    /// ];
    /// assert!(RuleSpec::parse("layer0=flat,head=zplus,products=prop")?.check(&sites).is_ok());
    /// let error = RuleSpec::parse("layer1=zplus")?.check(&sites).unwrap_err();
    /// assert!(error.to_string().contains("\"layer1=zplus\" selects no site"), "{error}");
    /// let error = RuleSpec::parse("head=zplus,head=flat")?.check(&sites).unwrap_err();
    /// assert!(error.to_string().contains("\"head=flat\" never applies: \"head=zplus\""), "{error}");
    /// # Ok::<(), lrp_core::Error>(())
    /// ```
    pub fn check(&self, sites: &[Site]) -> Result<(), Error> {
        for (k, entry) in self.entries.iter().enumerate() {
            let selected: Vec<&Site> = sites.iter().filter(|site| entry.applies_to(site)).collect();
            if selected.is_empty() {
                let of_kind: Vec<&Site> = sites.iter().filter(|site| entry.is_of_its_kind(site)).collect();
                return Err(Error::RuleSelectsNoSite {
                    entry: entry.text.clone(),
                    sites: site_list(of_kind.into_iter()),
                });
            }
            let earlier = &self.entries[..k];
            let taken = |site: &&Site| earlier.iter().any(|e| e.applies_to(site));
            if selected.iter().all(taken) {
                let takers: Vec<String> = earlier
                    .iter()
                    .filter(|e| selected.iter().any(|site| e.applies_to(site)))
                    .map(|e| format!("{:?}", e.text))
                    .collect();
                return Err(Error::RuleNeverApplies {
                    entry: entry.text.clone(),
                    earlier: takers.join(", "),
                    sites: site_list(selected.into_iter()),
                });
            }
        }
        Ok(())
    }

    /// Builds the rules and adds them to `composite` in their order, as
    /// [`Composite::with_rule`] does (each built with `p`, its parameter
    /// replaced by the entry's number if given).
    pub fn apply<T: Float>(&self, composite: Composite<T>, p: &RuleParameters) -> Result<Composite<T>, Error> {
        let mut composite = composite;
        for SpecEntry { pattern, choice, .. } in &self.entries {
            composite = match choice {
                RuleChoice::Linear(name, parameter) => {
                    let mut p = *p;
                    match (name.as_str(), parameter) {
                        ("epsilon", Some(v)) => p.eps = *v,
                        ("gamma", Some(v)) => p.gamma = *v,
                        ("alpha-beta", Some(v)) => p.alpha = *v,
                        _ => {}
                    }
                    composite.with_boxed_rule(pattern.clone(), linear_rule(name, &p)?)
                }
                RuleChoice::Gate(name, parameter) => {
                    let p = RuleParameters {
                        prop_eps: parameter.unwrap_or(p.prop_eps),
                        ..*p
                    };
                    composite.with_boxed_gate_rule_at(pattern.clone(), gate_rule(name, &p)?)
                }
            };
        }
        Ok(composite)
    }
}

/// A function that builds a preset from the rule parameters.
pub type PresetBuilder<T> = dyn Fn(&RuleParameters) -> Result<Composite<T>, Error> + Send + Sync;

/// Named presets: the built-in ones and any a program registers. A value,
/// not global state: a program builds one, registers its presets, and
/// looks names up in it.
///
/// ```
/// use lrp_layers::{Composite, Presets, RuleParameters, Site, ZPlus};
///
/// let mut presets = Presets::<f64>::builtin();
/// // A preset from code...
/// presets.register("zplus-head", |p: &RuleParameters| {
///     Ok(Composite::epsilon(p.eps, p.bias_factor)?.with_rule(|s: &Site| s.stage == "head", ZPlus))
/// });
/// // ...or in the --rules syntax, over the epsilon preset.
/// presets.register_rules("flat-input", "input=flat")?;
///
/// let p = RuleParameters::default();
/// assert_eq!(presets.build("zplus-head", &p)?.rule_at(&Site::head()).name(), "zplus");
/// assert_eq!(presets.build("flat-input", &p)?.rule_at(&Site::head()).name(), "epsilon");
/// assert!(presets.names().any(|name| name == "gamma"));
/// assert!(presets.build("nonesuch", &p).is_err());
/// # Ok::<(), lrp_core::Error>(())
/// ```
pub struct Presets<T: Float> {
    entries: Vec<(String, Box<PresetBuilder<T>>)>,
}

impl<T: Float> Presets<T> {
    /// No presets at all.
    pub fn empty() -> Self {
        Self { entries: Vec::new() }
    }

    /// The built-in presets, [`PRESETS`] (see [`Composite::preset`]).
    pub fn builtin() -> Self {
        let mut presets = Self::empty();
        for name in PRESETS {
            presets.register(name, move |p: &RuleParameters| Composite::preset(name, p));
        }
        presets
    }

    /// Registers `builder` under `name`; a preset already of that name is
    /// replaced (and keeps its place in [`Presets::names`]).
    pub fn register(
        &mut self,
        name: impl Into<String>,
        builder: impl Fn(&RuleParameters) -> Result<Composite<T>, Error> + Send + Sync + 'static,
    ) -> &mut Self {
        let name = name.into();
        match self.entries.iter_mut().find(|(known, _)| *known == name) {
            Some((_, old)) => *old = Box::new(builder),
            None => self.entries.push((name, Box::new(builder))),
        }
        self
    }

    /// Registers a preset written in the `--rules` syntax ([`RuleSpec`]),
    /// over the `epsilon` preset; the specification is checked now.
    pub fn register_rules(&mut self, name: impl Into<String>, spec: &str) -> Result<&mut Self, Error> {
        let spec = RuleSpec::parse(spec)?;
        Ok(self.register(name, move |p: &RuleParameters| {
            spec.apply(Composite::epsilon(p.eps, p.bias_factor)?, p)
        }))
    }

    /// Builds the preset `name` with parameters `p`, as a base
    /// ([`Composite::into_base`]) that rules added to it override.
    pub fn build(&self, name: &str, p: &RuleParameters) -> Result<Composite<T>, Error> {
        match self.entries.iter().find(|(known, _)| known == name) {
            Some((_, builder)) => builder(p).map(Composite::into_base),
            None => {
                let known: Vec<&str> = self.names().collect();
                Err(unknown("composite", name, &known))
            }
        }
    }

    /// The names of the presets, in the order they were registered.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.entries.iter().map(|(name, _)| name.as_str())
    }
}

impl<T: Float> std::fmt::Debug for Presets<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.names()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A cell's projection `gate`, its candidate when `gate` is an LSTM's
    /// `g` or a GRU's `n`.
    fn projection(gate: &'static str) -> Operation {
        if matches!(gate, "g" | "n") {
            Operation::Candidate(gate)
        } else {
            Operation::Projection(gate)
        }
    }

    fn sites() -> Vec<Site> {
        let mut sites = vec![Site::attention(), Site::head()];
        for layer in 0..3 {
            for direction in [Direction::Forward, Direction::Backward] {
                for gate in ["i", "f", "g", "o", "z", "n"] {
                    sites.push(Site::encoder(layer, direction, projection(gate)));
                }
                sites.push(Site::encoder(layer, direction, Operation::Accumulation));
            }
        }
        sites
    }

    /// The linear rule's name at every site, and the gate rule's at every
    /// product.
    fn names(rules: &Composite<f64>) -> Vec<String> {
        let mut names: Vec<String> = sites().iter().map(|s| rules.rule_at(s).name().to_string()).collect();
        for layer in 0..3 {
            for gate in ["o", "f", "i", "1-z", "z"] {
                let site = Site::encoder(layer, Direction::Backward, Operation::Product(gate));
                names.push(rules.gate_rule_at(&site).name().to_string());
            }
        }
        names
    }

    #[test]
    fn presets_give_each_role_its_rule() {
        let p = RuleParameters::default();
        for (preset, input, projection, head) in [
            ("epsilon", "epsilon", "epsilon", "epsilon"),
            ("epsilon-flat", "flat", "epsilon", "epsilon"),
            ("epsilon-wsquare", "wsquare", "epsilon", "epsilon"),
            ("zplus", "zplus", "zplus", "zplus"),
            ("alpha2-beta1", "alpha-beta", "alpha-beta", "alpha-beta"),
            ("gamma", "gamma", "gamma", "gamma"),
        ] {
            let rules = Composite::<f64>::preset(preset, &p).unwrap();
            for site in sites() {
                let want = match site.role() {
                    Some(Role::InputProjection) => input,
                    Some(Role::Projection) => projection,
                    Some(Role::Head) => head,
                    _ => "epsilon",
                };
                assert_eq!(rules.rule_at(&site).name(), want, "{preset} at {site}");
            }
        }
    }

    #[test]
    fn the_first_entry_wins_in_code_as_in_a_spec() {
        let p = RuleParameters::default();
        // The same entries in the same order: code reads as the spec.
        let by_code = Composite::<f64>::epsilon(0.001, 0.0)
            .unwrap()
            .with_rule(
                SitePattern::default().layer(1).direction(Direction::Backward),
                crate::WSquare,
            )
            .with_rule(SitePattern::default().layer(1), crate::Flat)
            .with_rule(SitePattern::default(), crate::ZPlus);
        let by_spec = Composite::<f64>::epsilon(0.001, 0.0)
            .unwrap()
            .with_rules("layer1.backward=wsquare, layer1=flat, *=zplus", &p)
            .unwrap();
        assert_eq!(names(&by_code), names(&by_spec));
        let projection = |layer, direction| Site::encoder(layer, direction, Operation::Projection("g"));
        assert_eq!(by_spec.rule_at(&projection(1, Direction::Backward)).name(), "wsquare");
        assert_eq!(by_spec.rule_at(&projection(1, Direction::Forward)).name(), "flat");
        assert_eq!(by_spec.rule_at(&projection(0, Direction::Backward)).name(), "zplus");
        assert_eq!(by_spec.rule_at(&Site::head()).name(), "zplus");
        // An entry added after the spec's `*` comes second, as it would in
        // the spec (where it is refused as never applying)...
        let after = by_spec.with_rule(Role::Head, crate::Flat);
        assert_eq!(after.rule_at(&Site::head()).name(), "zplus");
        // ...and entries override a base (a preset) wherever they apply.
        let over = after.into_base().with_rule(Role::Head, crate::Flat);
        assert_eq!(over.rule_at(&Site::head()).name(), "flat");
        let preset = Composite::<f64>::preset("zplus", &p)
            .unwrap()
            .with_rule(Role::Head, crate::Flat);
        assert_eq!(preset.rule_at(&Site::head()).name(), "flat");
        assert_eq!(preset.rule_at(&projection(1, Direction::Forward)).name(), "zplus");
        // A gate entry added first wins over a later one too.
        let gates = Composite::<f64>::epsilon(0.001, 0.0)
            .unwrap()
            .with_gate_rule_at(SitePattern::default().layer(1), crate::Absolute)
            .with_gate_rule_at(SitePattern::default(), crate::Uniform);
        let product = |layer| Site::encoder(layer, Direction::Forward, Operation::Product("f"));
        assert_eq!(gates.gate_rule_at(&product(1)).name(), "abs");
        assert_eq!(gates.gate_rule_at(&product(0)).name(), "half");
    }

    #[test]
    fn gate_rules_by_site_and_for_every_product() {
        let p = RuleParameters::default();
        let rules = Composite::<f64>::epsilon(0.001, 0.0)
            .unwrap()
            .with_rules("layer1.products=prop,layer2.backward=abs", &p)
            .unwrap();
        let product = |layer, direction| Site::encoder(layer, direction, Operation::Product("f"));
        let at = |site| rules.gate_rule_at(&site).name().to_string();
        assert_eq!(at(product(1, Direction::Forward)), "prop");
        assert_eq!(at(product(2, Direction::Backward)), "abs");
        assert_eq!(at(product(2, Direction::Forward)), "signal-take-all");
        assert_eq!(at(product(0, Direction::Backward)), "signal-take-all");
        // Gate names did not touch the linear rules.
        assert!(sites().iter().all(|s| rules.rule_at(s).name() == "epsilon"));
        // One gate rule for every product replaces the gate rules by site.
        let rules = rules.with_gate_rule(crate::Uniform);
        assert_eq!(rules.gate_rule_at(&product(1, Direction::Forward)).name(), "half");
    }

    #[test]
    fn parameters_of_a_spec_replace_the_defaults() {
        let p = RuleParameters::default();
        let with = |spec: &str| Composite::<f64>::epsilon(0.001, 0.0).unwrap().with_rules(spec, &p);
        assert!(with("head=gamma:0.5").is_ok());
        assert!(with("head=gamma:-1").is_err(), "gamma >= 0");
        assert!(with("head=alpha-beta:0.5").is_err(), "alpha >= 1");
        assert!(with("head=epsilon:-0.1").is_err(), "eps >= 0");
        assert!(with("head=alpha-beta:3").is_ok());
    }

    #[test]
    fn bad_specs_name_the_bad_part() {
        let long = "head=zplus,".repeat(400);
        let too_many = vec!["head=zplus"; MAX_RULE_ENTRIES + 1].join(",");
        for (spec, part) in [
            ("", ""),
            ("  ", "  "),
            ("layer0", "layer0"),
            ("layer0=", ""),
            ("layer0=magic", "magic"),
            ("layerx=flat", "layerx"),
            ("head=flat:1", "flat:1"),
            ("head=gamma:lots", "lots"),
            ("head=gamma:inf", "inf"),
            ("layer0=abs:1", "abs:1"),
            ("*=zplus,head=epsilon", "head=epsilon"),
            ("*=prop,layer0=abs", "layer0=abs"),
            ("head=prop", "head=prop"),
            ("input=prop", "input=prop"),
            ("layer0.products=zplus", "layer0.products=zplus"),
            ("head=zplus,,", ""),
            (too_many.as_str(), "head=zplus"),
        ] {
            match RuleSpec::parse(spec) {
                Err(Error::BadRuleSpec { part: found, .. }) => assert_eq!(found, part, "{spec}"),
                Err(Error::UnknownName { name, .. }) => assert_eq!(name, part, "{spec}"),
                other => panic!("{spec}: {other:?}"),
            }
        }
        assert!(matches!(RuleSpec::parse(&long), Err(Error::BadRuleSpec { reason, .. }) if reason.contains("4096")));
        // A * of one kind does not hide entries of the other kind.
        assert!(RuleSpec::parse("*=zplus,layer0=prop").is_ok());
    }

    /// The sites of a model with `layers` unidirectional LSTM layers and a
    /// head (no attention).
    fn lstm_sites(layers: usize) -> Vec<Site> {
        let mut sites = Vec::new();
        for layer in 0..layers {
            for gate in ["i", "f", "g", "o"] {
                sites.push(Site::encoder(layer, Direction::Forward, projection(gate)));
            }
            sites.push(Site::encoder(layer, Direction::Forward, Operation::Accumulation));
            for gate in ["o", "f", "i"] {
                sites.push(Site::encoder(layer, Direction::Forward, Operation::Product(gate)));
            }
        }
        sites.push(Site::head());
        sites
    }

    fn check(spec: &str, sites: &[Site]) -> Result<(), Error> {
        RuleSpec::parse(spec).unwrap().check(sites)
    }

    #[test]
    fn entries_that_select_no_site_of_the_model_are_refused() {
        let one = lstm_sites(1);
        for spec in [
            "layer99=zplus",
            "layer1=flat",
            "backward=zplus",
            "attention=epsilon",
            "head=zplus,layer1.products=prop",
        ] {
            match check(spec, &one) {
                Err(Error::RuleSelectsNoSite { entry, sites }) => {
                    assert!(spec.ends_with(&entry), "{spec}: {entry}");
                    // The model's sites of the entry's kind.
                    let products = sites.contains("product");
                    assert_eq!(products, entry.ends_with("prop"), "{spec}: {sites}");
                    assert_eq!(products, !sites.contains("head"), "{spec}: {sites}");
                }
                other => panic!("{spec}: {other:?}"),
            }
        }
        let message = check("layer99=zplus", &one).unwrap_err().to_string();
        assert!(
            message.starts_with("rule entry \"layer99=zplus\" selects no site of this model; its sites: encoder layer 0 forward projection i,"),
            "{message}"
        );
        // Capped: two layers and the head have 11 linear sites, 8 are listed.
        match check("layer2=zplus", &lstm_sites(2)) {
            Err(Error::RuleSelectsNoSite { sites, .. }) => {
                assert_eq!(sites.matches(", ").count(), 8, "{sites}");
                assert!(sites.ends_with(", and 3 more"), "{sites}");
            }
            other => panic!("{other:?}"),
        }
        for spec in [
            "layer0=zplus",
            "head=flat",
            "products=prop",
            "layer0.forward.gates=gamma",
            "*=zplus,*=abs",
        ] {
            assert!(check(spec, &one).is_ok(), "{spec}");
        }
    }

    #[test]
    fn entries_whose_sites_earlier_entries_all_take_are_refused() {
        let (one, two) = (lstm_sites(1), lstm_sites(2));
        for (spec, sites, entry, earlier) in [
            ("head=zplus,head=flat", &one, "head=flat", "\"head=zplus\""),
            ("layer0=zplus,encoder=flat", &one, "encoder=flat", "\"layer0=zplus\""),
            ("layer0=zplus,forward=flat", &one, "forward=flat", "\"layer0=zplus\""),
            (
                "layer0=zplus,layer1=gamma,encoder=flat",
                &two,
                "encoder=flat",
                "\"layer0=zplus\", \"layer1=gamma\"",
            ),
            (
                "products=prop,layer1.products=abs",
                &two,
                "layer1.products=abs",
                "\"products=prop\"",
            ),
            (
                "gates=zplus,candidate=flat,projections=gamma",
                &one,
                "projections=gamma",
                "\"gates=zplus\", \"candidate=flat\"",
            ),
        ] {
            match check(spec, sites) {
                Err(Error::RuleNeverApplies {
                    entry: e, earlier: by, ..
                }) => {
                    assert_eq!((e.as_str(), by.as_str()), (entry, earlier), "{spec}")
                }
                other => panic!("{spec}: {other:?}"),
            }
        }
        // The first entry wins: a narrower entry after a wider one never
        // applies, a wider one after a narrower one still does somewhere.
        assert!(check("layer0=zplus,head=zplus", &one).is_ok());
        assert!(check("layer1=zplus,encoder=flat", &two).is_ok());
        assert!(check("head=zplus,*=flat", &one).is_ok());
        // Linear and gate entries do not take each other's sites.
        assert!(check("layer0=zplus,layer0=prop", &one).is_ok());
        assert!(check("*=zplus,products=abs", &one).is_ok());
    }

    #[test]
    fn a_checked_composite_is_the_unchecked_one_where_the_check_passes() {
        let p = RuleParameters::default();
        let sites = lstm_sites(2);
        let spec = "layer1=zplus,head=gamma:0.5,products=prop:0.25";
        let base = || Composite::<f64>::preset("epsilon", &p).unwrap();
        let checked = base().with_rules_checked(spec, &p, &sites).unwrap();
        assert_eq!(names(&checked), names(&base().with_rules(spec, &p).unwrap()));
        assert!(base().with_rules_checked("layer2=zplus", &p, &sites).is_err());
    }

    #[test]
    fn presets_register_replace_and_list() {
        let p = RuleParameters::default();
        let mut presets = Presets::<f64>::builtin();
        assert_eq!(presets.names().collect::<Vec<_>>(), PRESETS);
        presets
            .register_rules("mine", "input=flat,head=zplus")
            .unwrap()
            .register("epsilon", |_: &RuleParameters| Ok(Composite::uniform(crate::Flat)));
        assert_eq!(presets.names().filter(|n| *n == "epsilon").count(), 1);
        assert_eq!(
            presets.build("epsilon", &p).unwrap().rule_at(&Site::head()).name(),
            "flat"
        );
        let mine = presets.build("mine", &p).unwrap();
        assert_eq!(mine.rule_at(&Site::head()).name(), "zplus");
        assert_eq!(mine.rule_at(&Site::attention()).name(), "epsilon");
        // The built-in presets built through the registry are the presets.
        let builtin = Presets::<f64>::builtin();
        for name in PRESETS {
            assert_eq!(
                names(&builtin.build(name, &p).unwrap()),
                names(&Composite::preset(name, &p).unwrap())
            );
        }
        match presets.build("theirs", &p) {
            Err(Error::UnknownName { name, known, .. }) => {
                assert_eq!(name, "theirs");
                assert!(known.ends_with("gamma, mine"), "{known}");
            }
            other => panic!("{other:?}"),
        }
        assert!(presets.register_rules("bad", "head=magic").is_err());
    }
}

//! Sites: the places of a recurrent model where a rule applies, and the
//! patterns that select them.

use std::fmt;

use lrp_core::Error;

use crate::Role;

/// The stage of the encoder (the stack of recurrent layers).
pub const ENCODER: &str = "encoder";
/// The stage of the attention pooling.
pub const ATTENTION: &str = "attention";
/// The stage of the linear head.
pub const HEAD: &str = "head";
/// The stage of the 1-D convolutions in front of the encoder (one site
/// for all of them: their unfolded products).
pub const CONV: &str = "conv";

/// Which way a recurrent direction reads the sequence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// From the first position to the last (the only direction of a
    /// unidirectional layer).
    Forward,
    /// From the last position to the first (the second direction of a
    /// bidirectional layer).
    Backward,
}

impl Direction {
    /// The direction of `layers[k][d]` in a model: 0 forward, 1 backward.
    pub fn of_index(d: usize) -> Self {
        if d == 0 {
            Direction::Forward
        } else {
            Direction::Backward
        }
    }
}

/// What happens at a site: which operation of its stage.
///
/// Gate names are the cell's own: `"i"`, `"f"`, `"g"`, `"o"` for an LSTM
/// (`g` is the candidate), `"z"`, `"n"` for a GRU (`n` is the candidate;
/// the reset gate `r` is folded into `n`'s weights and has no site), and
/// `"r"`, `"z"`, `"n"` for the GRU that resets before its product, whose
/// reset product `r * h_{t-1}` is the product site `"r"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Operation {
    /// The pre-activation of one gate or candidate, a linear step over
    /// `x_t` and `h_{t-1}` (a linear rule).
    Projection(&'static str),
    /// The pre-activation of the cell's candidate (LSTM `g`, GRU `n`): a
    /// projection like the others, which the `candidate` key selects and
    /// `gates` does not. A cell says which of its projections it is.
    Candidate(&'static str),
    /// The element-wise sum of gated terms: LSTM `c_t = f c_{t-1} + i g`,
    /// GRU `h_t = (1 - z) n + z h_{t-1}` (a linear rule).
    Accumulation,
    /// One gate x signal product, named by its gate (a gate rule): LSTM
    /// `"o"` (`o * tanh(c_t)`), `"f"` (`f * c_{t-1}`), `"i"` (`i * g`); GRU
    /// `"1-z"` (`(1 - z) * n`) and `"z"` (`z * h_{t-1}`), and for the GRU
    /// that resets before its product also `"r"` (`r * h_{t-1}`).
    Product(&'static str),
    /// Attention pooling `c = sum_t a_t h_t` (a linear rule).
    Pooling,
    /// The linear head producing the class scores (a linear rule).
    Head,
}

impl Operation {
    /// Whether this is a gate's or the candidate's pre-activation.
    pub fn is_projection(&self) -> bool {
        matches!(self, Operation::Projection(_) | Operation::Candidate(_))
    }
}

/// One place of a model where a rule applies: a stage, and within the
/// encoder a layer (0 is the bottom layer) and a direction, and the
/// operation.
///
/// Models ask a [`Composite`](crate::Composite) for the rule of a site; a
/// [`SitePattern`] or any `Fn(&Site) -> bool` selects sites.
///
/// ```
/// use lrp_layers::{Direction, Operation, Site};
///
/// let site = Site::encoder(1, Direction::Backward, Operation::Projection("f"));
/// assert_eq!(site.layer, Some(1));
/// assert_eq!(site.to_string(), "encoder layer 1 backward projection f");
/// assert!(!site.is_input_projection());
/// assert_eq!(Site::head().stage, "head");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct Site {
    /// The stage: [`ENCODER`], [`ATTENTION`], [`HEAD`], or the name of a
    /// stage a model adds.
    pub stage: &'static str,
    /// The recurrent layer, 0 at the bottom; `None` outside the encoder.
    pub layer: Option<usize>,
    /// The direction; `None` outside the encoder.
    pub direction: Option<Direction>,
    /// The operation.
    pub operation: Operation,
}

impl Site {
    /// A site of a stage without layers or directions.
    pub fn new(stage: &'static str, operation: Operation) -> Self {
        Self {
            stage,
            layer: None,
            direction: None,
            operation,
        }
    }

    /// A site of direction `direction` of recurrent layer `layer`.
    pub fn encoder(layer: usize, direction: Direction, operation: Operation) -> Self {
        Self {
            stage: ENCODER,
            layer: Some(layer),
            direction: Some(direction),
            operation,
        }
    }

    /// The attention pooling.
    pub fn attention() -> Self {
        Self::new(ATTENTION, Operation::Pooling)
    }

    /// The head.
    pub fn head() -> Self {
        Self::new(HEAD, Operation::Head)
    }

    /// Whether this is a projection of the bottom layer, the steps that read
    /// the model's input `x_t` (where input-layer rules such as flat and
    /// w-square belong).
    pub fn is_input_projection(&self) -> bool {
        self.layer == Some(0) && self.operation.is_projection()
    }

    /// The [`Role`] this site plays: how the presets, which assign rules by
    /// role, see it. Products have no role (`None`): they take gate rules.
    pub fn role(&self) -> Option<Role> {
        Some(match self.operation {
            Operation::Projection(_) | Operation::Candidate(_) if self.layer == Some(0) => Role::InputProjection,
            Operation::Projection(_) | Operation::Candidate(_) => Role::Projection,
            Operation::Accumulation => Role::Accumulation,
            Operation::Pooling => Role::Attention,
            Operation::Head => Role::Head,
            Operation::Product(_) => return None,
        })
    }
}

impl fmt::Display for Site {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.stage)?;
        if let Some(layer) = self.layer {
            write!(f, " layer {layer}")?;
        }
        match self.direction {
            Some(Direction::Forward) => f.write_str(" forward")?,
            Some(Direction::Backward) => f.write_str(" backward")?,
            None => {}
        }
        match self.operation {
            Operation::Projection(gate) | Operation::Candidate(gate) => write!(f, " projection {gate}"),
            Operation::Accumulation => f.write_str(" sum"),
            Operation::Product(gate) => write!(f, " product {gate}"),
            Operation::Pooling => f.write_str(" pooling"),
            Operation::Head => Ok(()),
        }
    }
}

/// Selects sites: a [`SitePattern`], a [`Role`], or any closure
/// `Fn(&Site) -> bool`.
pub trait SiteMatcher: Send + Sync {
    /// Whether `site` is selected.
    fn matches(&self, site: &Site) -> bool;
}

impl<F: Fn(&Site) -> bool + Send + Sync> SiteMatcher for F {
    fn matches(&self, site: &Site) -> bool {
        self(site)
    }
}

impl SiteMatcher for Role {
    fn matches(&self, site: &Site) -> bool {
        site.role() == Some(*self)
    }
}

/// Which operations a [`SitePattern`] selects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum OperationPattern {
    /// Every projection (gates and candidates).
    Projections,
    /// The projections of the gates only, not of the candidate (`g` of an
    /// LSTM, `n` of a GRU). They receive relevance only under a gate rule
    /// that feeds gates.
    Gates,
    /// The projection of the candidate only (`g`, `n`).
    Candidate,
    /// The element-wise sums.
    Sums,
    /// Every gate x signal product.
    Products,
    /// Exactly this operation.
    Exactly(Operation),
}

impl OperationPattern {
    fn matches(&self, operation: &Operation) -> bool {
        match (self, operation) {
            (Self::Projections, found) => found.is_projection(),
            (Self::Gates, Operation::Projection(_)) => true,
            (Self::Candidate, Operation::Candidate(_)) => true,
            (Self::Sums, Operation::Accumulation) => true,
            (Self::Products, Operation::Product(_)) => true,
            (Self::Exactly(wanted), found) => wanted == found,
            _ => false,
        }
    }
}

/// A pattern over sites: every field that is set must match, an unset
/// field matches anything (so the default pattern selects every site).
///
/// Its text form is the key syntax of `--rules` (see [`SitePattern::parse`]).
///
/// ```
/// use lrp_layers::{Direction, Operation, Site, SiteMatcher, SitePattern};
///
/// let pattern = SitePattern::parse("layer1.backward").unwrap();
/// let f = Operation::Projection("f");
/// assert!(pattern.matches(&Site::encoder(1, Direction::Backward, f)));
/// assert!(!pattern.matches(&Site::encoder(1, Direction::Forward, f)));
/// assert!(!pattern.matches(&Site::head()));
/// assert_eq!(pattern, SitePattern::default().layer(1).direction(Direction::Backward));
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct SitePattern {
    stage: Option<&'static str>,
    layer: Option<usize>,
    direction: Option<Direction>,
    operation: Option<OperationPattern>,
    input: bool,
}

/// The most layers a pattern can name (`layer0` to `layer1023`).
pub const MAX_PATTERN_LAYER: usize = 1023;

impl SitePattern {
    /// Only sites of this stage.
    pub fn stage(self, stage: &'static str) -> Self {
        Self {
            stage: Some(stage),
            ..self
        }
    }

    /// Only sites of recurrent layer `layer` (0 at the bottom).
    pub fn layer(self, layer: usize) -> Self {
        Self {
            layer: Some(layer),
            ..self
        }
    }

    /// Only sites of this direction.
    pub fn direction(self, direction: Direction) -> Self {
        Self {
            direction: Some(direction),
            ..self
        }
    }

    /// Only these operations.
    pub fn operation(self, operation: OperationPattern) -> Self {
        Self {
            operation: Some(operation),
            ..self
        }
    }

    /// Only the projections of the bottom layer ([`Site::is_input_projection`]).
    pub fn input(self) -> Self {
        Self { input: true, ..self }
    }

    /// Whether the pattern selects every site (`*`).
    pub(crate) fn is_everything(&self) -> bool {
        *self == Self::default()
    }

    /// Whether the pattern can select a gate x signal product.
    pub(crate) fn can_select_products(&self) -> bool {
        self.stage.is_none_or(|stage| stage == ENCODER)
            && !self.input
            && match self.operation {
                None | Some(OperationPattern::Products) => true,
                Some(OperationPattern::Exactly(operation)) => matches!(operation, Operation::Product(_)),
                Some(_) => false,
            }
    }

    /// Whether the pattern can select a linear step (anything but a product).
    pub(crate) fn can_select_linear_steps(&self) -> bool {
        match self.operation {
            Some(OperationPattern::Products) => false,
            Some(OperationPattern::Exactly(operation)) => !matches!(operation, Operation::Product(_)),
            _ => true,
        }
    }

    /// Parses a key of the `--rules` syntax: `*` (every site) or parts
    /// joined by `.`, each narrowing the selection:
    ///
    /// | part | selects |
    /// |---|---|
    /// | `layer<K>` | recurrent layer `K` (0 is the bottom layer) |
    /// | `forward`, `backward` | one direction |
    /// | `input` | the projections of layer 0, which read the model input |
    /// | `projections` | every gate and candidate pre-activation |
    /// | `gates` | the gates' pre-activations (not the candidate's) |
    /// | `candidate` | the candidate's pre-activation (LSTM `g`, GRU `n`) |
    /// | `sums`, `cell` | the element-wise sums (LSTM `c_t`, GRU `h_t`) |
    /// | `products` | the gate x signal products (for gate rules) |
    /// | `encoder` | every site of the recurrent layers |
    /// | `attention` | the attention pooling |
    /// | `head` | the head |
    /// | `conv` | the 1-D convolutions in front of the encoder |
    ///
    /// An error names the part that is not understood.
    pub fn parse(key: &str) -> Result<Self, Error> {
        let key = key.trim();
        let mut pattern = Self::default();
        if key == "*" {
            return Ok(pattern);
        }
        for part in key.split('.') {
            let part = part.trim();
            let bad = |reason: &'static str| Error::BadRuleSpec {
                part: part.to_string(),
                reason,
            };
            let set_operation = |pattern: &mut Self, operation| {
                if pattern.operation.replace(operation).is_some() {
                    return Err(bad("a key names at most one operation"));
                }
                Ok(())
            };
            match part {
                "forward" | "backward" => {
                    let direction = if part == "forward" {
                        Direction::Forward
                    } else {
                        Direction::Backward
                    };
                    if pattern.direction.replace(direction).is_some() {
                        return Err(bad("a key names at most one direction"));
                    }
                }
                "input" => pattern.input = true,
                "projections" => set_operation(&mut pattern, OperationPattern::Projections)?,
                "gates" => set_operation(&mut pattern, OperationPattern::Gates)?,
                "candidate" => set_operation(&mut pattern, OperationPattern::Candidate)?,
                "sums" | "cell" => set_operation(&mut pattern, OperationPattern::Sums)?,
                "products" => set_operation(&mut pattern, OperationPattern::Products)?,
                "encoder" | "attention" | "head" | "conv" => {
                    let stage = match part {
                        "encoder" => ENCODER,
                        "attention" => ATTENTION,
                        "conv" => CONV,
                        _ => HEAD,
                    };
                    if pattern.stage.replace(stage).is_some() {
                        return Err(bad("a key names at most one stage"));
                    }
                }
                _ => {
                    let Some(digits) = part.strip_prefix("layer") else {
                        return Err(bad(
                            "not a site; use layer<K>, forward, backward, input, projections, gates, candidate, sums, cell, products, encoder, attention, head, conv or *",
                        ));
                    };
                    let layer = digits
                        .parse::<usize>()
                        .ok()
                        .filter(|&k| k <= MAX_PATTERN_LAYER && !digits.starts_with('+'))
                        .ok_or_else(|| bad("a layer is layer0 to layer1023"))?;
                    if pattern.layer.replace(layer).is_some() {
                        return Err(bad("a key names at most one layer"));
                    }
                }
            }
        }
        Ok(pattern)
    }
}

impl SiteMatcher for SitePattern {
    fn matches(&self, site: &Site) -> bool {
        self.stage.is_none_or(|stage| stage == site.stage)
            && self.layer.is_none_or(|layer| site.layer == Some(layer))
            && self.direction.is_none_or(|direction| site.direction == Some(direction))
            && self
                .operation
                .is_none_or(|operation| operation.matches(&site.operation))
            && (!self.input || site.is_input_projection())
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

    /// Every site of a two-layer bidirectional LSTM with attention.
    fn sites() -> Vec<Site> {
        let mut sites = vec![Site::attention(), Site::head()];
        for layer in 0..2 {
            for direction in [Direction::Forward, Direction::Backward] {
                for gate in ["i", "f", "g", "o"] {
                    sites.push(Site::encoder(layer, direction, projection(gate)));
                }
                for gate in ["i", "f", "o"] {
                    sites.push(Site::encoder(layer, direction, Operation::Product(gate)));
                }
                sites.push(Site::encoder(layer, direction, Operation::Accumulation));
            }
        }
        sites
    }

    fn selected(key: &str) -> Vec<String> {
        let pattern = SitePattern::parse(key).unwrap();
        sites()
            .iter()
            .filter(|s| pattern.matches(s))
            .map(|s| s.to_string())
            .collect()
    }

    #[test]
    fn keys_select_exactly_their_sites() {
        assert_eq!(selected("*").len(), sites().len());
        assert_eq!(selected("head"), ["head"]);
        assert_eq!(selected("attention"), ["attention pooling"]);
        assert_eq!(selected("layer1.backward.sums"), ["encoder layer 1 backward sum"]);
        assert_eq!(
            selected("input.forward"),
            [
                "encoder layer 0 forward projection i",
                "encoder layer 0 forward projection f",
                "encoder layer 0 forward projection g",
                "encoder layer 0 forward projection o"
            ]
        );
        assert_eq!(
            selected("layer1.forward.gates"),
            [
                "encoder layer 1 forward projection i",
                "encoder layer 1 forward projection f",
                "encoder layer 1 forward projection o"
            ]
        );
        assert_eq!(selected("candidate").len(), 4);
        assert_eq!(selected("cell"), selected("sums"));
        // A layer selects its products too (gate rules look them up).
        assert_eq!(selected("layer0").len(), 2 * 8);
        assert_eq!(selected("encoder").len(), 2 * 2 * 8);
    }

    #[test]
    fn bad_keys_name_the_bad_part() {
        for (key, part) in [
            ("layer", "layer"),
            ("layerx", "layerx"),
            ("layer+1", "layer+1"),
            ("layer1024", "layer1024"),
            ("layer0.sideways", "sideways"),
            ("layer0.layer1", "layer1"),
            ("forward.backward", "backward"),
            ("gates.sums", "sums"),
            ("head.attention", "attention"),
            ("", ""),
        ] {
            match SitePattern::parse(key) {
                Err(Error::BadRuleSpec { part: found, .. }) => assert_eq!(found, part, "{key}"),
                other => panic!("{key}: {other:?}"),
            }
        }
    }

    #[test]
    fn roles_are_sites_seen_by_presets() {
        let input = Site::encoder(0, Direction::Backward, Operation::Projection("g"));
        assert_eq!(input.role(), Some(Role::InputProjection));
        assert!(Role::InputProjection.matches(&input));
        let above = Site::encoder(3, Direction::Forward, Operation::Projection("i"));
        assert!(Role::Projection.matches(&above) && !Role::InputProjection.matches(&above));
        let product = Site::encoder(0, Direction::Forward, Operation::Product("o"));
        assert!(Role::ALL.iter().all(|role| !role.matches(&product)));
    }
}

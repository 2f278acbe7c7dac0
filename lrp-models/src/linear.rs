use lrp_core::{Connection, Float, InputGroup, LinearRule, LinearStep, Workspace};
use nalgebra::{DMatrix, DVector};

use crate::tensors::{Manifest, Ordered};
use crate::Error;

/// A fully connected layer `y = W x + b`.
///
/// ## Parameters
/// - `weight`: `[out, in]`
/// - `bias`: `[out]`, or `None`
#[derive(Debug, Clone, PartialEq)]
pub struct Linear<T: Float> {
    /// `W`, `[out, in]`.
    pub weight: DMatrix<T>,
    /// `b`, `[out]`.
    pub bias: Option<DVector<T>>,
}

impl<T: Float> Linear<T> {
    /// The tensors of a PyTorch `nn.Linear` called `name` (`{name}.weight`
    /// `[out, in]`, and `{name}.bias` `[out]` when it has one), in the
    /// order the model reads them.
    pub fn pytorch_tensors(name: &str, outputs: usize, inputs: usize, bias: bool) -> Manifest {
        let mut names = vec![(format!("{name}.weight"), vec![outputs, inputs])];
        if bias {
            names.push((format!("{name}.bias"), vec![outputs]));
        }
        names
    }

    /// The layer from its [`Linear::pytorch_tensors`], checked and in order.
    pub(crate) fn from_pytorch(tensors: &mut Ordered, bias: bool) -> Result<Self, Error> {
        Ok(Linear {
            weight: tensors.matrix()?,
            bias: if bias { Some(tensors.vector()?) } else { None },
        })
    }

    /// `y = W x + b`; `x` is `[in]`, the result `[out]`.
    pub fn forward(&self, x: &DVector<T>) -> DVector<T> {
        let mut y = match &self.bias {
            Some(b) => b.clone(),
            None => DVector::zeros(self.weight.nrows()),
        };
        y.gemv(T::one(), &self.weight, x, T::one());
        y
    }

    /// The LRP step of this layer for input `x` and output `y`: splits
    /// `relevance_out` `[out]` over `x`, adding into `relevance_in` `[in]`.
    /// Returns the unexplained relevance.
    pub fn redistribute(
        &self,
        rule: &dyn LinearRule<T>,
        x: &[T],
        y: &[T],
        relevance_out: &[T],
        relevance_in: &mut [T],
        workspace: &mut Workspace<T>,
    ) -> T {
        let groups = [InputGroup {
            input: x,
            connection: Connection::Dense(self.weight.as_view()),
        }];
        let step = LinearStep {
            groups: &groups,
            bias: self.bias.as_ref().map(|b| b.as_slice()),
            output: y,
        };
        rule.redistribute(&step, relevance_out, &mut [relevance_in], workspace)
    }
}

use lrp_core::{Connection, Float, InputGroup, LinearRule, LinearStep, Workspace};
use nalgebra::{DMatrix, DVector};

use crate::tensors::{Manifest, Ordered};
use crate::Error;

/// A fully connected layer `y = W x + b`.
///
/// ## Parameters
/// - `weight`: `[out, in]`
/// - `bias`: `[out]`, or `None`
///
/// The parts are private so that the bias always has one value per
/// output: build one with [`Linear::new`], read it with [`Linear::weight`]
/// and [`Linear::bias`].
///
/// ```
/// use lrp_models::Linear;
/// use nalgebra::{DMatrix, DVector};
/// let head = Linear::new(DMatrix::from_row_slice(2, 3, &[1.0, 0.0, 0.0, 0.0, 1.0, 1.0]), Some(DVector::from_vec(vec![0.5, -0.5])))?;
/// assert_eq!(head.forward(&DVector::from_vec(vec![1.0, 2.0, 3.0])).as_slice(), &[1.5, 4.5]);
/// // A bias of another length than the weight's rows is an error, not a panic later.
/// let wrong = Linear::new(DMatrix::<f64>::zeros(2, 3), Some(DVector::zeros(5))).unwrap_err();
/// assert_eq!(wrong.to_string(), "shape: the bias of a linear layer of weight [2, 3] is [5]; it must be [2]");
/// # Ok::<(), lrp_models::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Linear<T: Float> {
    /// `W`, `[out, in]`. Visible to the crate only, whose stages read it
    /// in their products.
    pub(crate) weight: DMatrix<T>,
    /// `b`, `[out]`.
    pub(crate) bias: Option<DVector<T>>,
}

impl<T: Float> Linear<T> {
    /// The layer `y = W x + b` of `weight` `[out, in]` and `bias` `[out]`
    /// (or none); an error when the bias has another length than `out`.
    pub fn new(weight: DMatrix<T>, bias: Option<DVector<T>>) -> Result<Self, Error> {
        if let Some(b) = &bias {
            if b.len() != weight.nrows() {
                return Err(Error::PartShape {
                    part: format!(
                        "the bias of a linear layer of weight [{}, {}]",
                        weight.nrows(),
                        weight.ncols()
                    ),
                    expected: vec![weight.nrows()],
                    found: vec![b.len()],
                });
            }
        }
        Ok(Linear { weight, bias })
    }

    /// `W`, `[out, in]`.
    pub fn weight(&self) -> &DMatrix<T> {
        &self.weight
    }

    /// `b`, `[out]`, if the layer has one.
    pub fn bias(&self) -> Option<&DVector<T>> {
        self.bias.as_ref()
    }

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
        Linear::new(tensors.matrix()?, if bias { Some(tensors.vector()?) } else { None })
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

//! The graph's values as arrays of symbols: what `lrp import` runs the
//! graph on instead of numbers.
//!
//! Each element of a value is either a number known without the input (a
//! constant, a shape, an index, a zero initial state) or the symbol of
//! what it is in the model: element `p` of the input, component `e` of the
//! embedding of input element `p`, unit `u` of direction `d` of recurrent
//! layer `k`'s state after position `t` of sequence `b`, ... The shape
//! operators exporters put around the recurrent nodes (`Transpose`,
//! `Reshape`, `Gather`, `Slice`, `Concat`, ...) only move elements, so
//! running them on symbols says exactly which states the head reads, and
//! running them on numbers evaluates the shape and index computations and
//! the initial states, however they are built.
//!
//! The graph's input is given a concrete shape (each symbolic dimension
//! [`SYMBOLIC_DIM`]); every value is limited to [`MAX_ELEMENTS`] elements.

/// The size given to each symbolic dimension of the graph's input: more
/// than one, so that the first and last positions differ.
pub(crate) const SYMBOLIC_DIM: usize = 3;

/// The most elements one value may have.
pub(crate) const MAX_ELEMENTS: usize = 1 << 22;

/// One element of a value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Element {
    /// A number known without the input.
    Number(f64),
    /// Component `component` of the graph input's element `position`
    /// (`position` counts the input's elements without its last axis for
    /// vectors, all of them for token ids, whose `component` is 0).
    Input { position: u32, component: u32 },
    /// Component `component` of the embedding of input element `position`.
    Embedded { position: u32, component: u32 },
    /// Unit `unit` of direction `dir` of recurrent layer `layer`'s state
    /// after position `t` of sequence `b` (positions in the layer's own
    /// frame; the backward direction's final state is its state at `t = 0`).
    State {
        layer: u16,
        dir: u8,
        t: u32,
        b: u32,
        unit: u32,
    },
    /// An LSTM's final cell state (`Y_c`).
    Cell { layer: u16, dir: u8, b: u32, unit: u32 },
    /// Class `class` of the head's product on its input row `row`, before
    /// the bias.
    Product { row: u32, class: u32 },
    /// Class `class` of the head's scores on its input row `row`.
    Score { row: u32, class: u32 },
}

impl Element {
    pub(crate) fn number(&self) -> Option<f64> {
        match self {
            Element::Number(v) => Some(*v),
            _ => None,
        }
    }
}

/// A value: its shape and its elements in row-major order.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Value {
    pub shape: Vec<usize>,
    pub elements: Vec<Element>,
}

/// The number of elements of `shape`, if at most [`MAX_ELEMENTS`].
pub(crate) fn count(shape: &[usize]) -> Result<usize, String> {
    shape
        .iter()
        .try_fold(1usize, |n, &d| n.checked_mul(d))
        .filter(|&n| n <= MAX_ELEMENTS)
        .ok_or_else(|| format!("a value of shape {shape:?} is larger than the {MAX_ELEMENTS} elements followed"))
}

fn strides(shape: &[usize]) -> Vec<usize> {
    let mut strides = vec![1; shape.len()];
    for k in (0..shape.len().saturating_sub(1)).rev() {
        strides[k] = strides[k + 1] * shape[k + 1];
    }
    strides
}

/// The multi-index of flat index `flat` in `shape`.
fn unravel(mut flat: usize, shape: &[usize]) -> Vec<usize> {
    let mut index = vec![0; shape.len()];
    for k in (0..shape.len()).rev() {
        if shape[k] > 0 {
            index[k] = flat % shape[k];
            flat /= shape[k];
        }
    }
    index
}

/// An axis from ONNX's `-rank..rank`.
pub(crate) fn axis(a: i64, rank: usize) -> Result<usize, String> {
    let r = rank as i64;
    if (-r..r).contains(&a) {
        Ok(a.rem_euclid(r.max(1)) as usize)
    } else {
        Err(format!("axis {a} of a rank-{rank} value"))
    }
}

impl Value {
    pub(crate) fn new(shape: Vec<usize>, elements: Vec<Element>) -> Result<Self, String> {
        if count(&shape)? != elements.len() {
            return Err(format!("shape {shape:?} for {} elements", elements.len()));
        }
        Ok(Self { shape, elements })
    }

    pub(crate) fn numbers(shape: Vec<usize>, values: impl IntoIterator<Item = f64>) -> Result<Self, String> {
        Self::new(shape, values.into_iter().map(Element::Number).collect())
    }

    /// Whether every element is a number.
    pub(crate) fn is_constant(&self) -> bool {
        self.elements.iter().all(|e| e.number().is_some())
    }

    /// The elements as integers (indices, shapes, axes), if all are
    /// whole numbers. Past 2^53 a number held as `f64` is not exact: it is
    /// read saturated (exporters write `i64::MAX` for "to the end").
    pub(crate) fn integers(&self) -> Result<Vec<i64>, String> {
        self.elements
            .iter()
            .map(|e| match e.number() {
                Some(v) if v.fract() == 0.0 => Ok(v as i64),
                Some(v) => Err(format!("{v} is not an integer")),
                None => Err("an index computed from the input".to_string()),
            })
            .collect()
    }

    /// `f(output index) -> input flat index`, over a new shape.
    fn map(&self, shape: Vec<usize>, source: impl Fn(&[usize]) -> usize) -> Result<Self, String> {
        let n = count(&shape)?;
        let mut elements = Vec::with_capacity(n);
        for flat in 0..n {
            elements.push(self.elements[source(&unravel(flat, &shape))]);
        }
        Self::new(shape, elements)
    }

    pub(crate) fn transpose(&self, perm: Option<Vec<i64>>) -> Result<Self, String> {
        let rank = self.shape.len();
        let perm: Vec<usize> = match perm {
            Some(p) => p.iter().map(|&a| axis(a, rank)).collect::<Result<_, _>>()?,
            None => (0..rank).rev().collect(),
        };
        let mut seen = vec![false; rank];
        if perm.len() != rank || perm.iter().any(|&a| std::mem::replace(&mut seen[a], true)) {
            return Err(format!("perm {perm:?} for rank {rank}"));
        }
        let from = strides(&self.shape);
        let shape = perm.iter().map(|&a| self.shape[a]).collect();
        self.map(shape, |index| index.iter().zip(&perm).map(|(i, &a)| i * from[a]).sum())
    }

    /// The same elements in a new shape (`Reshape`'s 0 copies the
    /// dimension unless `allow_zero`, -1 is inferred).
    pub(crate) fn reshape(&self, target: &[i64], allow_zero: bool) -> Result<Self, String> {
        let mut shape = Vec::with_capacity(target.len());
        let mut inferred = None;
        for (k, &d) in target.iter().enumerate() {
            match d {
                -1 if inferred.is_none() => {
                    inferred = Some(k);
                    shape.push(1);
                }
                0 if !allow_zero => shape.push(
                    *self
                        .shape
                        .get(k)
                        .ok_or_else(|| format!("reshape to {target:?}: no dimension {k} to copy"))?,
                ),
                d if d >= 0 => shape.push(d as usize),
                _ => return Err(format!("reshape to {target:?}")),
            }
        }
        if let Some(k) = inferred {
            let rest = count(&shape)?;
            if rest == 0 || self.elements.len() % rest != 0 {
                return Err(format!("reshape of {:?} to {target:?}", self.shape));
            }
            shape[k] = self.elements.len() / rest;
        }
        if count(&shape)? != self.elements.len() {
            return Err(format!("reshape of {:?} to {target:?}", self.shape));
        }
        Self::new(shape, self.elements.clone())
    }

    pub(crate) fn flatten(&self, axis_attr: i64) -> Result<Self, String> {
        let rank = self.shape.len();
        let a = if axis_attr == rank as i64 {
            rank
        } else {
            axis(axis_attr, rank)?
        };
        let outer: usize = self.shape[..a].iter().product();
        let inner: usize = self.shape[a..].iter().product();
        Self::new(vec![outer, inner], self.elements.clone())
    }

    pub(crate) fn squeeze(&self, axes: Option<Vec<i64>>) -> Result<Self, String> {
        let rank = self.shape.len();
        let axes: Vec<usize> = match axes {
            Some(axes) => axes.iter().map(|&a| axis(a, rank)).collect::<Result<_, _>>()?,
            None => (0..rank).filter(|&a| self.shape[a] == 1).collect(),
        };
        if axes.iter().any(|&a| self.shape[a] != 1) {
            return Err(format!("squeeze of axes {axes:?} of shape {:?}", self.shape));
        }
        let shape = (0..rank).filter(|a| !axes.contains(a)).map(|a| self.shape[a]).collect();
        Self::new(shape, self.elements.clone())
    }

    pub(crate) fn unsqueeze(&self, axes: &[i64]) -> Result<Self, String> {
        let rank = self.shape.len() + axes.len();
        let axes: Vec<usize> = axes.iter().map(|&a| axis(a, rank)).collect::<Result<_, _>>()?;
        let mut rest = self.shape.iter();
        let mut shape = Vec::with_capacity(rank);
        for a in 0..rank {
            if axes.contains(&a) {
                shape.push(1);
            } else {
                shape.push(*rest.next().ok_or("unsqueeze with repeated axes")?);
            }
        }
        Self::new(shape, self.elements.clone())
    }

    pub(crate) fn concat(values: &[&Value], axis_attr: i64) -> Result<Self, String> {
        let first = values.first().ok_or("concat of nothing")?;
        let rank = first.shape.len();
        let a = axis(axis_attr, rank)?;
        let mut shape = first.shape.clone();
        shape[a] = 0;
        for v in values {
            let same = v.shape.len() == rank && (0..rank).all(|k| k == a || v.shape[k] == first.shape[k]);
            if !same {
                return Err(format!(
                    "concat of shapes {:?} and {:?} on axis {a}",
                    first.shape, v.shape
                ));
            }
            shape[a] += v.shape[a];
        }
        let outer: usize = shape[..a].iter().product();
        let mut elements = Vec::with_capacity(count(&shape)?);
        for o in 0..outer {
            for v in values {
                let run: usize = v.shape[a..].iter().product();
                elements.extend_from_slice(&v.elements[o * run..(o + 1) * run]);
            }
        }
        Self::new(shape, elements)
    }

    /// ONNX `Slice` (opset 10 and later: starts, ends, axes and steps as
    /// inputs).
    pub(crate) fn slice(
        &self,
        starts: &[i64],
        ends: &[i64],
        axes: Option<Vec<i64>>,
        steps: Option<Vec<i64>>,
    ) -> Result<Self, String> {
        let rank = self.shape.len();
        let axes: Vec<usize> = match axes {
            Some(axes) => axes.iter().map(|&a| axis(a, rank)).collect::<Result<_, _>>()?,
            None => (0..starts.len()).collect(),
        };
        let steps = steps.unwrap_or_else(|| vec![1; starts.len()]);
        if ends.len() != starts.len() || axes.len() != starts.len() || steps.len() != starts.len() {
            return Err("slice with lists of different lengths".into());
        }
        // Per axis: the first index taken, the step, and how many.
        let mut take: Vec<(i64, i64, usize)> = self.shape.iter().map(|&d| (0, 1, d)).collect();
        for k in 0..starts.len() {
            let (d, step) = (self.shape[axes[k]] as i64, steps[k]);
            if step == 0 {
                return Err("slice with step 0".into());
            }
            if d == 0 {
                take[axes[k]] = (0, 1, 0);
                continue;
            }
            let clamp = |v: i64, low: i64, high: i64| {
                let v = if v < 0 { v.saturating_add(d) } else { v };
                v.clamp(low, high)
            };
            let (start, end) = if step > 0 {
                (clamp(starts[k], 0, d), clamp(ends[k], 0, d))
            } else {
                (clamp(starts[k], 0, d - 1), clamp(ends[k], -1, d - 1))
            };
            // Steps of |step| over a span of |end - start|, rounded up.
            let (span, stride) = if step > 0 {
                (end - start, step)
            } else {
                (start - end, -step)
            };
            let n = if span > 0 { (span - 1) / stride + 1 } else { 0 };
            take[axes[k]] = (start, step, n as usize);
        }
        let from = strides(&self.shape);
        let shape = take.iter().map(|t| t.2).collect();
        self.map(shape, |index| {
            index
                .iter()
                .zip(&take)
                .zip(&from)
                .map(|((&i, &(start, step, _)), &s)| (start + i as i64 * step) as usize * s)
                .sum()
        })
    }

    pub(crate) fn gather(&self, indices: &Value, axis_attr: i64) -> Result<Self, String> {
        let rank = self.shape.len();
        let a = axis(axis_attr, rank)?;
        let d = self.shape[a] as i64;
        let picks: Vec<usize> = indices
            .integers()?
            .into_iter()
            .map(|i| {
                let i = if i < 0 { i + d } else { i };
                if (0..d).contains(&i) {
                    Ok(i as usize)
                } else {
                    Err(format!("index {i} of a dimension of {d}"))
                }
            })
            .collect::<Result<_, _>>()?;
        let shape: Vec<usize> = self.shape[..a]
            .iter()
            .chain(&indices.shape)
            .chain(&self.shape[a + 1..])
            .copied()
            .collect();
        let from = strides(&self.shape);
        let q = indices.shape.len();
        self.map(shape, |index| {
            let inner = &index[a..a + q];
            let flat = unravel_inverse(inner, &indices.shape);
            let mut at = picks[flat] * from[a];
            for (k, &i) in index[..a].iter().enumerate() {
                at += i * from[k];
            }
            for (k, &i) in index[a + q..].iter().enumerate() {
                at += i * from[a + 1 + k];
            }
            at
        })
    }

    /// Broadcast to `target` (numpy's rules, as `Expand`: the result has
    /// the larger rank and, per axis, the larger of two compatible sizes).
    pub(crate) fn expand(&self, target: &[i64]) -> Result<Self, String> {
        let target: Vec<usize> = target
            .iter()
            .map(|&d| usize::try_from(d).map_err(|_| format!("expand to {target:?}")))
            .collect::<Result<_, _>>()?;
        let shape = broadcast_shape(&self.shape, &target)?;
        self.broadcast_to(&shape)
    }

    fn broadcast_to(&self, shape: &[usize]) -> Result<Self, String> {
        let offset = shape.len() - self.shape.len();
        let from = strides(&self.shape);
        self.map(shape.to_vec(), |index| {
            (0..self.shape.len())
                .map(|k| {
                    if self.shape[k] == 1 {
                        0
                    } else {
                        index[offset + k] * from[k]
                    }
                })
                .sum()
        })
    }

    pub(crate) fn tile(&self, repeats: &[i64]) -> Result<Self, String> {
        if repeats.len() != self.shape.len() || repeats.iter().any(|&r| r < 0) {
            return Err(format!("tile of {:?} by {repeats:?}", self.shape));
        }
        let shape: Vec<usize> = self
            .shape
            .iter()
            .zip(repeats)
            .map(|(&d, &r)| d.checked_mul(r as usize))
            .collect::<Option<_>>()
            .ok_or_else(|| format!("tile of {:?} by {repeats:?}", self.shape))?;
        let from = strides(&self.shape);
        self.map(shape, |index| {
            index
                .iter()
                .zip(&self.shape)
                .zip(&from)
                .map(|((&i, &d), &s)| (i % d.max(1)) * s)
                .sum()
        })
    }

    /// An elementwise operation on numbers, broadcast.
    pub(crate) fn elementwise(values: &[&Value], f: impl Fn(&[f64]) -> f64) -> Result<Self, String> {
        let mut shape: Vec<usize> = Vec::new();
        for v in values {
            shape = broadcast_shape(&shape, &v.shape)?;
        }
        let spread: Vec<Value> = values
            .iter()
            .map(|v| v.broadcast_to(&shape))
            .collect::<Result<_, _>>()?;
        let mut args = vec![0.0; values.len()];
        let mut elements = Vec::with_capacity(count(&shape)?);
        for k in 0..count(&shape)? {
            for (arg, v) in args.iter_mut().zip(&spread) {
                *arg = v.elements[k].number().ok_or("arithmetic on the data")?;
            }
            elements.push(Element::Number(f(&args)));
        }
        Self::new(shape, elements)
    }
}

/// The flat index of multi-index `index` in `shape`.
fn unravel_inverse(index: &[usize], shape: &[usize]) -> usize {
    index.iter().zip(shape).fold(0, |flat, (&i, &d)| flat * d + i)
}

/// numpy's broadcast of two shapes.
fn broadcast_shape(a: &[usize], b: &[usize]) -> Result<Vec<usize>, String> {
    let rank = a.len().max(b.len());
    let at = |s: &[usize], k: usize| if k + s.len() >= rank { s[k + s.len() - rank] } else { 1 };
    (0..rank)
        .map(|k| match (at(a, k), at(b, k)) {
            (x, y) if x == y || y == 1 => Ok(x),
            (1, y) => Ok(y),
            _ => Err(format!("shapes {a:?} and {b:?} do not broadcast")),
        })
        .collect()
}

/// The multi-index of input element `position` in the input's shape
/// (without its component axis), for the bottom layer's check.
pub(crate) fn input_coordinates(position: usize, shape: &[usize]) -> Vec<usize> {
    unravel(position, shape)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn iota(shape: &[usize]) -> Value {
        Value::numbers(shape.to_vec(), (0..count(shape).unwrap()).map(|v| v as f64)).unwrap()
    }

    fn numbers(v: &Value) -> Vec<f64> {
        v.elements.iter().map(|e| e.number().unwrap()).collect()
    }

    #[test]
    fn shape_operators_move_elements_as_numpy_does() {
        let x = iota(&[2, 3]);
        assert_eq!(numbers(&x.transpose(None).unwrap()), [0., 3., 1., 4., 2., 5.]);
        assert_eq!(x.reshape(&[0, -1], false).unwrap().shape, [2, 3]);
        assert_eq!(x.reshape(&[-1], false).unwrap().shape, [6]);
        assert_eq!(
            numbers(&x.gather(&Value::numbers(vec![], [-1.0]).unwrap(), 1).unwrap()),
            [2., 5.]
        );
        assert_eq!(
            x.gather(&Value::numbers(vec![], [-1.0]).unwrap(), 1).unwrap().shape,
            [2]
        );
        assert_eq!(
            numbers(&x.slice(&[1], &[i64::MAX], Some(vec![1]), None).unwrap()),
            [1., 2., 4., 5.]
        );
        assert_eq!(
            numbers(&x.slice(&[-1], &[i64::MIN], Some(vec![1]), Some(vec![-1])).unwrap()),
            [2., 1., 0., 5., 4., 3.]
        );
        let c = Value::concat(&[&x, &iota(&[2, 1])], 1).unwrap();
        assert_eq!(numbers(&c), [0., 1., 2., 0., 3., 4., 5., 1.]);
        assert_eq!(x.unsqueeze(&[0, -1]).unwrap().shape, [1, 2, 3, 1]);
        assert_eq!(x.unsqueeze(&[0]).unwrap().squeeze(None).unwrap().shape, [2, 3]);
        assert_eq!(numbers(&iota(&[1, 2]).expand(&[2, 1]).unwrap()), [0., 1., 0., 1.]);
        assert_eq!(numbers(&iota(&[2]).tile(&[2]).unwrap()), [0., 1., 0., 1.]);
        let sum = Value::elementwise(&[&x, &iota(&[3])], |a| a[0] + a[1]).unwrap();
        assert_eq!(numbers(&sum), [0., 2., 4., 3., 5., 7.]);
    }

    #[test]
    fn a_value_past_the_limit_is_refused_before_it_is_made() {
        let x = iota(&[1]);
        assert!(x.expand(&[1 << 12, 1 << 12]).unwrap_err().contains("larger than"));
        assert!(x.tile(&[i64::MAX]).is_err());
    }
}

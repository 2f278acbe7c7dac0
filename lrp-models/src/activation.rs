//! The element-wise activations of the cells, written so the compiler can
//! vectorise them: `σ` and `tanh` through one `expm1` each, computed by
//! range reduction and a polynomial instead of a call into libm per element
//! (those calls were a quarter of the forward pass).
//!
//! Accuracy: within a few ulps of libm (the tests check 1e-15 relative over
//! a sweep; seen: 5e-16), far below what LRP's comparisons can see.

use lrp_core::Float;

use crate::config::RecurrentActivation;

/// `e^x - 1` for `x` in `[-708, 708]` (callers clamp), to a few ulps.
///
/// `x = k ln 2 + r` with `|r| <= ln 2 / 2`; `e^r - 1` by its Taylor series
/// to degree 13 (remainder below 1e-17); then `e^x - 1 = 2^k (1 + p) - 1`,
/// which for `k = 0` is `p` itself, so small `x` keep full relative precision.
#[inline(always)]
fn expm1(x: f64) -> f64 {
    // ln 2 split so that k * LN2_HI is exact for |k| < 2^11 (fdlibm's split).
    const LN2_HI: f64 = f64::from_bits(0x3FE6_2E42_FEE0_0000);
    const LN2_LO: f64 = f64::from_bits(0x3DEA_39EF_3579_3C76);
    const INV_LN2: f64 = std::f64::consts::LOG2_E;
    // Round to nearest by adding and removing 1.5 * 2^52 (exact for
    // |x / ln 2| < 2^51): no libm call, so the loop vectorises.
    const ROUNDER: f64 = 6_755_399_441_055_744.0;
    let k = (x * INV_LN2 + ROUNDER) - ROUNDER;
    let r = (x - k * LN2_HI) - k * LN2_LO;
    // p = r + r^2/2! + ... + r^13/13!, Horner form.
    let mut p = 1.0 / 6_227_020_800.0;
    for c in [
        1.0 / 479_001_600.0,
        1.0 / 39_916_800.0,
        1.0 / 3_628_800.0,
        1.0 / 362_880.0,
        1.0 / 40_320.0,
        1.0 / 5_040.0,
        1.0 / 720.0,
        1.0 / 120.0,
        1.0 / 24.0,
        1.0 / 6.0,
        1.0 / 2.0,
        1.0,
    ] {
        p = p * r + c;
    }
    let p = p * r;
    let scale = f64::from_bits(((k as i64 + 1023) as u64) << 52);
    if k == 0.0 {
        p
    } else {
        scale * p + (scale - 1.0)
    }
}

/// `e^x - 1` in f32 for `x` in `[-87, 87]` (callers clamp), to a few ulps:
/// the same reduction as [`expm1`], with f32's split of `ln 2` and the
/// Taylor series to degree 8 (remainder below 2e-8 relative).
#[inline(always)]
fn expm1_f32(x: f32) -> f32 {
    const LN2_HI: f32 = f32::from_bits(0x3F31_7200);
    const LN2_LO: f32 = f32::from_bits(0x35BF_BE8E);
    const INV_LN2: f32 = std::f32::consts::LOG2_E;
    // 1.5 * 2^23: adding and removing it rounds to the nearest integer.
    const ROUNDER: f32 = 12_582_912.0;
    let k = (x * INV_LN2 + ROUNDER) - ROUNDER;
    let r = (x - k * LN2_HI) - k * LN2_LO;
    let mut p = 1.0 / 40_320.0;
    for c in [
        1.0 / 5_040.0,
        1.0 / 720.0,
        1.0 / 120.0,
        1.0 / 24.0,
        1.0 / 6.0,
        1.0 / 2.0,
        1.0,
    ] {
        p = p * r + c;
    }
    let p = p * r;
    let scale = f32::from_bits(((k as i32 + 127) as u32) << 23);
    if k == 0.0 {
        p
    } else {
        scale * p + (scale - 1.0)
    }
}

/// Whether `T` is `f32`: the activations then compute in f32 (a constant
/// after monomorphisation, and the conversions through `f64` fold away).
#[inline(always)]
fn is_f32<T: Float>() -> bool {
    std::any::TypeId::of::<T>() == std::any::TypeId::of::<f32>()
}

/// `σ(x) = 1 / (1 + e^{-x}) = 1 / (2 + expm1(-x))`, in `T`'s own
/// precision. Below `x = -708` (f32: `-87`) it is under the smallest
/// normal number, and 0 is returned.
#[inline(always)]
pub fn sigmoid<T: Float>(x: T) -> T {
    if is_f32::<T>() {
        let x = x.as_f64() as f32;
        let s = 1.0 / (2.0 + expm1_f32(-x.clamp(-87.0, 87.0)));
        return T::of_f64(f64::from(if x < -87.0 { 0.0 } else { s }));
    }
    let x = x.as_f64();
    let s = 1.0 / (2.0 + expm1(-x.clamp(-708.0, 708.0)));
    T::of_f64(if x < -708.0 { 0.0 } else { s })
}

/// `tanh(x) = -expm1(-2x) / (2 + expm1(-2x))`, in `T`'s own precision;
/// beyond `|x| = 20` (f32: `9`) tanh is ±1 to that precision, so the
/// argument is clamped there.
#[inline(always)]
pub fn tanh<T: Float>(x: T) -> T {
    if is_f32::<T>() {
        let m = expm1_f32(-2.0 * (x.as_f64() as f32).clamp(-9.0, 9.0));
        return T::of_f64(f64::from(-m / (2.0 + m)));
    }
    let m = expm1(-2.0 * x.as_f64().clamp(-20.0, 20.0));
    T::of_f64(-m / (2.0 + m))
}

impl RecurrentActivation {
    /// The gate value `a(x)`:
    /// - `Sigmoid`: `σ(x)` ([`sigmoid`]);
    /// - `HardSigmoidKeras2`: `clip(0.2 x + 0.5, 0, 1)`;
    /// - `HardSigmoidKeras3`: `relu6(x + 3) / 6 = clip(x + 3, 0, 6) / 6`.
    ///
    /// All three satisfy `1 - a(x) = a(-x)`, which the GRU's LRP relies on
    /// (the share of `1 - z` goes through `z`'s pre-activation).
    #[inline(always)]
    pub fn apply<T: Float>(self, x: T) -> T {
        match self {
            RecurrentActivation::Sigmoid => sigmoid(x),
            RecurrentActivation::HardSigmoidKeras2 => hard_sigmoid_keras2(x),
            RecurrentActivation::HardSigmoidKeras3 => hard_sigmoid_keras3(x),
        }
    }

    /// `a(x)` for a whole block, `out[k] = a(pre[k])`: the match is taken
    /// once, so each arm's loop vectorises.
    #[inline(always)]
    pub(crate) fn apply_all<T: Float>(self, pre: &[T], out: &mut [T]) {
        match self {
            RecurrentActivation::Sigmoid => {
                for (g, &p) in out.iter_mut().zip(pre) {
                    *g = sigmoid(p);
                }
            }
            RecurrentActivation::HardSigmoidKeras2 => {
                for (g, &p) in out.iter_mut().zip(pre) {
                    *g = hard_sigmoid_keras2(p);
                }
            }
            RecurrentActivation::HardSigmoidKeras3 => {
                for (g, &p) in out.iter_mut().zip(pre) {
                    *g = hard_sigmoid_keras3(p);
                }
            }
        }
    }

    /// The derivative `a'(x)`, given the pre-activation `x` and the value
    /// `a = a(x)`: `a (1 - a)` for the sigmoid; for the hard sigmoids their
    /// slope (0.2, 1/6) strictly inside the linear part and 0 where they
    /// are clipped (and at the two kinks, where a subgradient must be
    /// chosen: 0, the clipped side's).
    #[inline(always)]
    pub fn derivative<T: Float>(self, x: T, a: T) -> T {
        match self {
            RecurrentActivation::Sigmoid => a * (T::one() - a),
            RecurrentActivation::HardSigmoidKeras2 => {
                let edge = T::of_f64(2.5);
                if x > -edge && x < edge {
                    T::of_f64(0.2)
                } else {
                    T::zero()
                }
            }
            RecurrentActivation::HardSigmoidKeras3 => {
                let edge = T::of_f64(3.0);
                if x > -edge && x < edge {
                    T::one() / T::of_f64(6.0)
                } else {
                    T::zero()
                }
            }
        }
    }
}

/// Keras 2's `hard_sigmoid`: `clip(0.2 x + 0.5, 0, 1)`.
#[inline(always)]
pub fn hard_sigmoid_keras2<T: Float>(x: T) -> T {
    let y = T::of_f64(0.2) * x + T::of_f64(0.5);
    // Comparisons rather than `clamp`: a NaN fails both and passes through,
    // so an overflow still shows in the trace's finiteness check.
    if y < T::zero() {
        T::zero()
    } else if y > T::one() {
        T::one()
    } else {
        y
    }
}

/// Keras 3's `hard_sigmoid` (PyTorch's `hardsigmoid`): `relu6(x + 3) / 6`.
#[inline(always)]
pub fn hard_sigmoid_keras3<T: Float>(x: T) -> T {
    let six = T::of_f64(6.0);
    let y = x + T::of_f64(3.0);
    let clipped = if y < T::zero() {
        T::zero()
    } else if y > six {
        six
    } else {
        y
    };
    clipped / six
}

#[cfg(test)]
mod tests {
    use super::*;

    fn relative(got: f64, want: f64) -> f64 {
        if want == 0.0 {
            got.abs()
        } else {
            ((got - want) / want).abs()
        }
    }

    #[test]
    fn activations_match_libm_to_a_few_ulps() {
        let mut worst = (0.0f64, 0.0f64, 0.0f64);
        let mut x = -50.0f64;
        while x <= 50.0 {
            for v in [x, x * 1e-3, x * 1e-9] {
                let s = relative(sigmoid(v), 1.0 / (1.0 + (-v).exp()));
                let t = relative(tanh(v), v.tanh());
                let e = relative(expm1(v.clamp(-708.0, 708.0)), v.exp_m1());
                worst = (worst.0.max(s), worst.1.max(t), worst.2.max(e));
            }
            x += 0.000_731;
        }
        assert!(
            worst.0 < 1e-15 && worst.1 < 1e-15 && worst.2 < 1e-15,
            "worst relative errors {worst:?}"
        );
        assert_eq!(
            (sigmoid(1e6), sigmoid(-1e6), tanh(1e6), tanh(-1e6)),
            (1.0, 0.0, 1.0, -1.0)
        );
        assert_eq!((sigmoid(0.0), tanh(0.0)), (0.5, 0.0));
        assert!(sigmoid(f64::MAX).is_finite() && tanh(f64::MIN).is_finite());
    }

    /// f32 runs compute the activations in f32: within a few f32 ulps
    /// (6e-8 each) of the exact values, computed in f64.
    #[test]
    fn f32_activations_match_libm_to_a_few_f32_ulps() {
        let mut worst = (0.0f64, 0.0f64);
        let mut x = -30.0f32;
        while x <= 30.0 {
            for v in [x, x * 1e-3, x * 1e-6] {
                let exact = f64::from(v);
                // Relative to the value, or absolute near zero (f32's
                // tanh(1e-8) keeps its absolute error, not its relative one).
                let s = (f64::from(sigmoid(v)) - 1.0 / (1.0 + (-exact).exp())).abs() / (1.0 / (1.0 + (-exact).exp()));
                let t = (f64::from(tanh(v)) - exact.tanh()).abs() / exact.tanh().abs().max(1e-30);
                worst = (worst.0.max(s), worst.1.max(t));
            }
            x += 0.000_731;
        }
        assert!(worst.0 < 4e-7 && worst.1 < 4e-7, "worst relative errors {worst:?}");
        assert_eq!(
            (sigmoid(1e30f32), sigmoid(-1e30f32), tanh(1e30f32), tanh(-1e30f32)),
            (1.0, 0.0, 1.0, -1.0)
        );
        assert_eq!((sigmoid(0.0f32), tanh(0.0f32)), (0.5, 0.0));
    }

    /// Both hard sigmoids at their defining points: the kinks, the centre,
    /// a point of each linear part and each clipped side, in f64 and f32,
    /// and their derivatives (the slope inside, 0 where clipped).
    #[test]
    fn hard_sigmoids_follow_their_formulas() {
        let k2 = RecurrentActivation::HardSigmoidKeras2;
        let k3 = RecurrentActivation::HardSigmoidKeras3;
        // clip(0.2 x + 0.5, 0, 1): 0 up to -2.5, 1 from 2.5.
        for (x, want, slope) in [
            (-10.0f64, 0.0f64, 0.0f64),
            (-2.5, 0.0, 0.0),
            (-1.0, 0.3, 0.2),
            (0.0, 0.5, 0.2),
            (1.5, 0.8, 0.2),
            (2.5, 1.0, 0.0),
            (7.0, 1.0, 0.0),
        ] {
            assert!((k2.apply(x) - want).abs() < 1e-15, "keras2({x}) = {}", k2.apply(x));
            assert!((k2.apply(x as f32) - want as f32).abs() < 1e-7f32);
            assert_eq!(k2.derivative(x, k2.apply(x)), slope, "keras2'({x})");
        }
        // relu6(x + 3) / 6: 0 up to -3, 1 from 3.
        for (x, want, slope) in [
            (-10.0f64, 0.0f64, 0.0f64),
            (-3.0, 0.0, 0.0),
            (-1.5, 0.25, 1.0 / 6.0),
            (0.0, 0.5, 1.0 / 6.0),
            (2.0, 5.0 / 6.0, 1.0 / 6.0),
            (3.0, 1.0, 0.0),
            (9.0, 1.0, 0.0),
        ] {
            assert!((k3.apply(x) - want).abs() < 1e-15, "keras3({x}) = {}", k3.apply(x));
            assert!((k3.apply(x as f32) - want as f32).abs() < 1e-7f32);
            assert_eq!(k3.derivative(x, k3.apply(x)), slope, "keras3'({x})");
        }
        // 1 - a(x) = a(-x), which the GRU's LRP relies on.
        for act in [RecurrentActivation::Sigmoid, k2, k3] {
            for x in [-4.0f64, -2.7, -0.3, 0.0, 1.1, 2.6, 5.0] {
                assert!((1.0 - act.apply(x) - act.apply(-x)).abs() < 1e-15, "{act:?} at {x}");
            }
        }
        assert!(k2.apply(f64::NAN).is_nan() && k3.apply(f64::NAN).is_nan());
    }
}

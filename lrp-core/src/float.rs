use nalgebra::RealField;

/// The floating-point types lrp computes in: `f64` (exact checks, the
/// default) and `f32` (throughput).
///
/// A thin layer over nalgebra's [`RealField`] with lossless-enough
/// conversions to and from `f64`, which is what files and JSON carry.
pub trait Float: RealField + Copy + Send + Sync + std::fmt::Debug + std::fmt::Display + 'static {
    /// Converts from `f64` (rounding to nearest for `f32`).
    fn of_f64(value: f64) -> Self;
    /// Converts to `f64` (exact for both `f32` and `f64`).
    fn as_f64(self) -> f64;
    /// `+1` when `self >= 0`, else `-1`: the sign convention of the epsilon
    /// stabiliser (a zero output counts as positive, as in the reference).
    #[inline]
    fn sign_or_one(self) -> Self {
        if self >= Self::zero() {
            Self::one()
        } else {
            -Self::one()
        }
    }
}

impl Float for f64 {
    #[inline]
    fn of_f64(value: f64) -> Self {
        value
    }
    #[inline]
    fn as_f64(self) -> f64 {
        self
    }
}

impl Float for f32 {
    #[inline]
    fn of_f64(value: f64) -> Self {
        value as f32
    }
    #[inline]
    fn as_f64(self) -> f64 {
        f64::from(self)
    }
}

//! Wider vectors where the CPU has them, chosen at run time.
//!
//! The default build targets every x86-64 CPU, so the compiler may only use
//! 128-bit SSE2 vectors: two f64 or four f32 per instruction. The element-wise
//! work of the cells (activations, state updates) runs twice as wide with
//! AVX2, which nearly every x86-64 CPU of the last decade has. [`wide`] runs a
//! closure compiled for AVX2 and FMA when the CPU has them, and as built
//! otherwise, so `cargo install` gives fast code without `target-cpu` flags.
//! Floating-point results are the same either way: Rust never fuses a
//! multiply and an add on its own, so FMA only widens what already exists.

/// Runs `f`, compiled for AVX2 and FMA when the CPU has both.
///
/// `f` should be a closure that calls `#[inline(always)]` code: what is
/// inlined into it is compiled with the wider instructions.
#[inline(always)]
pub fn wide<R>(f: impl FnOnce() -> R) -> R {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
            // SAFETY: the CPU has both features, checked just above.
            return unsafe { with_avx2(f) };
        }
    }
    f()
}

/// `f()` compiled with AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn with_avx2<R>(f: impl FnOnce() -> R) -> R {
    f()
}

//! The C math functions the embedded Lua calls, for the tuned daemon (the `tuned` feature,
//! `tools/build-tuned`) to define itself so that it does not map libm at every start.
//!
//! Lua's `^` is C's `pow` and its float hashing uses `frexp`; the `math` library that hooks
//! and gates see calls `sin`, `cos`, `tan`, `asin`, `acos`, `atan2`, `exp`, `log`, `log2`,
//! `log10`, `ldexp` and (Lua 5.2's, kept) `sinh`, `cosh`, `tanh`; nothing else in uprise
//! needs libm. Linked normally, the daemon maps libm (glibc's `libm.so.6`) from its first
//! instruction, which costs every system about 170 KiB of its init's resident memory
//! (measured with 1,000 services: libm's text is mapped in 64 KiB blocks around the few
//! pages the loader touches). `src/bin/uprise.rs` exports `pow` and `frexp` as C symbols
//! that call these, the linker then needs no libm, and libm is loaded only if a Lua chunk
//! raises to a power:
//! - [`frexp`] is exact bit arithmetic, as in any C library;
//! - [`pow`] is libm's own `pow`, found with `dlopen` on first use. A correctly rounded
//!   `pow` is a large piece of numerical code and not worth a copy. Should libm not load,
//!   an integral exponent is still computed (by repeated squaring) and anything else gives
//!   NaN.
//! - the `math` library's functions are libm's own too, each found on first use
//!   ([`unary`], [`atan2`], [`ldexp`]); should libm not load, they give NaN.
//!
//! A plain build of the daemon, and every other binary (`uprisectl`, the tests), links
//! libm's own functions as usual.

use std::sync::atomic::{AtomicUsize, Ordering};

/// Splits `x` into a fraction in [0.5, 1) (with `x`'s sign) and a power of two:
/// `x = fraction * 2^exponent`. Zero, infinities and NaN come back unchanged, with exponent
/// 0. C's `frexp`.
pub fn frexp(x: f64) -> (f64, i32) {
    const EXPONENT_MASK: u64 = 0x7ff << 52;
    if x == 0.0 || !x.is_finite() {
        return (x, 0);
    }
    let bits = x.to_bits();
    let biased = ((bits & EXPONENT_MASK) >> 52) as i32;
    if biased == 0 {
        // subnormal: scale into the normal range first (exactly: a power of two)
        let (fraction, exponent) = frexp(x * 2f64.powi(64));
        return (fraction, exponent - 64);
    }
    // keep sign and mantissa, set the exponent of [0.5, 1)
    (f64::from_bits((bits & !EXPONENT_MASK) | (1022 << 52)), biased - 1022)
}

/// `x` raised to `y`, C's `pow`: libm's, loaded on first use.
pub fn pow(x: f64, y: f64) -> f64 {
    match libm_pow() {
        Some(pow) => pow(x, y),
        None => pow_without_libm(x, y),
    }
}

type PowFn = extern "C" fn(f64, f64) -> f64;

/// libm's `pow`, or `None` when libm cannot be loaded. Looked up once.
fn libm_pow() -> Option<PowFn> {
    static POW: AtomicUsize = AtomicUsize::new(0);
    let address = cached(&POW, c"pow")?;
    // SAFETY: the address is libm's `pow`, whose C type is `double pow(double, double)`;
    // libm stays loaded (its handle is never closed).
    Some(unsafe { std::mem::transmute::<usize, PowFn>(address) })
}

/// A function of libm by name, loading libm the first time (its handle is kept for the
/// life of the process).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn libm_symbol(name: &std::ffi::CStr) -> Option<usize> {
    // SAFETY: dlopen and dlsym with NUL-terminated names; libm has no initialisers with
    // preconditions. Opening it again only counts a reference.
    unsafe {
        let handle = libc::dlopen(c"libm.so.6".as_ptr(), libc::RTLD_NOW | libc::RTLD_LOCAL);
        if handle.is_null() {
            return None;
        }
        let symbol = libc::dlsym(handle, name.as_ptr());
        (!symbol.is_null()).then_some(symbol as usize)
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn libm_symbol(_name: &std::ffi::CStr) -> Option<usize> {
    None
}

/// The address of a libm function, looked up once into `slot`.
fn cached(slot: &AtomicUsize, name: &std::ffi::CStr) -> Option<usize> {
    const UNTRIED: usize = 0;
    const MISSING: usize = 1;
    let mut address = slot.load(Ordering::Acquire);
    if address == UNTRIED {
        address = libm_symbol(name).unwrap_or(MISSING);
        slot.store(address, Ordering::Release);
    }
    (address != MISSING).then_some(address)
}

/// A libm function of one `double`, by name: `sin`, `log`, … NaN when libm cannot load.
pub fn unary(slot: &AtomicUsize, name: &std::ffi::CStr, x: f64) -> f64 {
    match cached(slot, name) {
        // SAFETY: the address is the named libm function, of C type `double f(double)`.
        Some(address) => unsafe { std::mem::transmute::<usize, extern "C" fn(f64) -> f64>(address)(x) },
        None => f64::NAN,
    }
}

/// libm's `atan2`; NaN when libm cannot load.
pub fn atan2(y: f64, x: f64) -> f64 {
    static ATAN2: AtomicUsize = AtomicUsize::new(0);
    match cached(&ATAN2, c"atan2") {
        // SAFETY: libm's `double atan2(double, double)`.
        Some(address) => unsafe { std::mem::transmute::<usize, extern "C" fn(f64, f64) -> f64>(address)(y, x) },
        None => f64::NAN,
    }
}

/// libm's `ldexp`; NaN when libm cannot load.
pub fn ldexp(x: f64, exponent: i32) -> f64 {
    static LDEXP: AtomicUsize = AtomicUsize::new(0);
    match cached(&LDEXP, c"ldexp") {
        // SAFETY: libm's `double ldexp(double, int)`.
        Some(address) => unsafe {
            std::mem::transmute::<usize, extern "C" fn(f64, std::ffi::c_int) -> f64>(address)(x, exponent)
        },
        None => f64::NAN,
    }
}

/// `pow` for an integral exponent, by repeated squaring; NaN for any other.
fn pow_without_libm(x: f64, y: f64) -> f64 {
    if y.fract() != 0.0 || !y.is_finite() || y.abs() > f64::from(i32::MAX) {
        return f64::NAN;
    }
    x.powi(y as i32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frexp_splits_into_a_fraction_and_a_power_of_two() {
        let cases = [
            (1.0, 0.5, 1),
            (8.0, 0.5, 4),
            (-3.0, -0.75, 2),
            (0.1, 0.8, -3),
            (f64::MAX, f64::MAX / 2f64.powi(1023) / 2.0, 1024),
            (f64::MIN_POSITIVE, 0.5, -1021),
            (5e-324, 0.5, -1073),
            (-5e-324, -0.5, -1073),
        ];
        for (x, fraction, exponent) in cases {
            assert_eq!(frexp(x), (fraction, exponent), "frexp({x:e})");
        }
        for x in [0.0, -0.0, f64::INFINITY, f64::NEG_INFINITY] {
            let (fraction, exponent) = frexp(x);
            assert_eq!((fraction.to_bits(), exponent), (x.to_bits(), 0), "frexp({x})");
        }
        assert!(frexp(f64::NAN).0.is_nan());
    }

    #[test]
    fn frexp_recomposes_every_kind_of_number() {
        // normal and subnormal numbers over the whole range, both signs
        let mut x = 4.9e-324_f64;
        while x.is_finite() {
            for value in [x, -x, x * 1.37, -x * 0.61] {
                if value == 0.0 || !value.is_finite() {
                    continue;
                }
                let (fraction, exponent) = frexp(value);
                assert!(
                    (0.5..1.0).contains(&fraction.abs()),
                    "fraction of {value:e}: {fraction}"
                );
                // exact: scale in two steps so that neither overflows nor underflows
                let half = exponent / 2;
                assert_eq!(fraction * 2f64.powi(half) * 2f64.powi(exponent - half), value);
            }
            x *= 3.7;
        }
    }

    #[test]
    fn pow_is_libms() {
        assert_eq!(pow(2.0, 10.0), 1024.0);
        assert_eq!(pow(2.0, 0.5), std::f64::consts::SQRT_2);
        assert_eq!(pow(10.0, -2.0), 0.01);
        assert_eq!(pow(0.0, -1.0), f64::INFINITY);
        assert_eq!(pow(-8.0, 3.0), -512.0);
        assert!(pow(-8.0, 1.0 / 3.0).is_nan());
        assert_eq!(pow(f64::NAN, 0.0), 1.0);
        if cfg!(target_env = "gnu") {
            assert!(libm_pow().is_some(), "libm.so.6 loads");
        }
    }

    #[test]
    fn the_math_library_is_libms() {
        static SIN: AtomicUsize = AtomicUsize::new(0);
        static LOG2: AtomicUsize = AtomicUsize::new(0);
        if !cfg!(target_env = "gnu") {
            return;
        }
        assert_eq!(unary(&SIN, c"sin", 0.0), 0.0);
        assert_eq!(unary(&LOG2, c"log2", 8.0), 3.0);
        assert_eq!(atan2(1.0, 1.0), std::f64::consts::FRAC_PI_4);
        assert_eq!(ldexp(0.75, 4), 12.0);
        assert_eq!(ldexp(1.0, -1074), 5e-324);
    }

    #[test]
    fn without_libm_integral_exponents_still_work() {
        assert_eq!(pow_without_libm(2.0, 10.0), 1024.0);
        assert_eq!(pow_without_libm(2.0, -2.0), 0.25);
        assert_eq!(pow_without_libm(-3.0, 3.0), -27.0);
        assert!(pow_without_libm(2.0, 0.5).is_nan());
        assert!(pow_without_libm(2.0, 1e300).is_nan());
    }
}

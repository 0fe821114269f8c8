//! System calls made directly: each returns the kernel's result, `-errno` on failure, and
//! writes no `errno`. For code that cannot use glibc's wrappers: a cloned child that shares
//! the daemon's memory and thread (`spawn`), and `uprisectl`'s `status` path, which runs
//! before glibc has started.

use std::ffi::c_long;

/// Makes system call `number` with up to six arguments; the kernel's result, `-errno` on
/// failure.
///
/// # Safety
/// The arguments must be what the system call expects.
#[inline(always)]
pub unsafe fn call<const N: usize>(number: c_long, args: [usize; N]) -> isize {
    const { assert!(N <= 6, "a system call takes six arguments at most") };
    let arg = |i: usize| args.get(i).copied().unwrap_or(0);
    // SAFETY: as the caller promises.
    unsafe { call6(number, arg(0), arg(1), arg(2), arg(3), arg(4), arg(5)) }
}

/// Makes system call `number`; the kernel's result, `-errno` on failure. Scalars only, and
/// nothing but the instruction: it may run before glibc has started.
///
/// # Safety
/// The arguments must be what the system call expects.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
pub unsafe fn call6(number: c_long, a: usize, b: usize, c: usize, d: usize, e: usize, f: usize) -> isize {
    let result: isize;
    // SAFETY: the Linux x86-64 system call convention; the kernel clobbers rcx and r11.
    // Memory is not marked untouched: calls such as execve and rt_sigaction read it.
    unsafe {
        std::arch::asm!(
            "syscall",
            inlateout("rax") number as isize => result,
            in("rdi") a,
            in("rsi") b,
            in("rdx") c,
            in("r10") d,
            in("r8") e,
            in("r9") f,
            lateout("rcx") _,
            lateout("r11") _,
            options(nostack),
        );
    }
    result
}

/// Makes system call `number`; the kernel's result, `-errno` on failure.
///
/// # Safety
/// The arguments must be what the system call expects.
#[cfg(target_arch = "aarch64")]
#[inline(always)]
pub unsafe fn call6(number: c_long, a: usize, b: usize, c: usize, d: usize, e: usize, f: usize) -> isize {
    let result: isize;
    // SAFETY: the Linux AArch64 system call convention (number in x8, result in x0).
    unsafe {
        std::arch::asm!(
            "svc 0",
            in("x8") number,
            inlateout("x0") a as isize => result,
            in("x1") b,
            in("x2") c,
            in("x3") d,
            in("x4") e,
            in("x5") f,
            options(nostack),
        );
    }
    result
}

/// Elsewhere through glibc's `syscall`, which writes `errno`: the spawning parent then sleeps
/// until its child has exec'd (`spawn`'s `PIPELINED` is false), so `errno` is the child's alone.
///
/// # Safety
/// The arguments must be what the system call expects.
#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
pub unsafe fn call6(number: c_long, a: usize, b: usize, c: usize, d: usize, e: usize, f: usize) -> isize {
    // SAFETY: as the caller promises.
    let result = unsafe { libc::syscall(number, a, b, c, d, e, f) };
    if result < 0 {
        -(std::io::Error::last_os_error().raw_os_error().unwrap_or(libc::EIO) as isize)
    } else {
        result as isize
    }
}

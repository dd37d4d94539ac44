//! Raw system calls that rustix 1.1 does not wrap yet: `getxattrat(2)` (Linux 6.13+), used to
//! read an xattr of a directory entry by name relative to the directory's fd without path
//! re-resolution or `/proc`.
//!
//! Must never be called with a path of more than one component, and must always pass
//! `AT_SYMLINK_NOFOLLOW`. Returns `None` when the kernel lacks the call (the caller falls
//! back to a `/proc/self/fd` path).

use std::ffi::CStr;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::sync::atomic::{AtomicBool, Ordering};

use rustix::io::Errno;

/// `struct xattr_args` of the `*xattrat` system calls.
#[repr(C)]
struct XattrArgs {
    value: u64,
    size: u32,
    flags: u32,
}

#[cfg(target_arch = "x86_64")]
const SYS_GETXATTRAT: libc::c_long = 464;
#[cfg(target_arch = "aarch64")]
const SYS_GETXATTRAT: libc::c_long = 464;

static MISSING: AtomicBool = AtomicBool::new(false);

/// `getxattrat(dir, name, AT_SYMLINK_NOFOLLOW, attr)` into the spare capacity of `buf`
/// (its length is set to the value's size). `None`: not supported by this kernel.
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
pub(crate) fn getxattrat_nofollow(
    dir: BorrowedFd<'_>,
    name: &CStr,
    attr: &CStr,
    buf: &mut Vec<u8>,
) -> Option<rustix::io::Result<usize>> {
    if MISSING.load(Ordering::Relaxed) {
        return None;
    }
    buf.clear();
    let mut args = XattrArgs {
        value: buf.as_mut_ptr() as u64,
        size: u32::try_from(buf.capacity()).unwrap_or(u32::MAX),
        flags: 0,
    };
    // SAFETY: all pointers are valid for the call: `name` and `attr` are NUL-terminated,
    // `args.value` points to `args.size` writable bytes of `buf`'s allocation, and `args`
    // lives across the call; the kernel writes at most `args.size` bytes.
    let r = unsafe {
        libc::syscall(
            SYS_GETXATTRAT,
            dir.as_raw_fd() as libc::c_long,
            name.as_ptr(),
            libc::AT_SYMLINK_NOFOLLOW as libc::c_long,
            attr.as_ptr(),
            &mut args as *mut XattrArgs,
            std::mem::size_of::<XattrArgs>(),
        )
    };
    if r < 0 {
        let e = Errno::from_raw_os_error(
            std::io::Error::last_os_error()
                .raw_os_error()
                .unwrap_or(libc::EIO),
        );
        // ENOSYS: a kernel before 6.13. EPERM: a seccomp filter that does not
        // know the call answers EPERM instead (systemd 252's
        // SystemCallFilter= with SystemCallErrorNumber=EPERM, as in
        // goguardd.service; getxattr itself never fails with EPERM). Either
        // way the call is gone for this process's lifetime: fall back.
        if e == Errno::NOSYS || e == Errno::PERM {
            MISSING.store(true, Ordering::Relaxed);
            return None;
        }
        return Some(Err(e));
    }
    let n = r as usize;
    // SAFETY: the kernel initialized `n <= capacity` bytes.
    unsafe { buf.set_len(n.min(buf.capacity())) };
    Some(Ok(n))
}

/// Other architectures: always fall back.
#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
pub(crate) fn getxattrat_nofollow(
    _dir: BorrowedFd<'_>,
    _name: &CStr,
    _attr: &CStr,
    _buf: &mut Vec<u8>,
) -> Option<rustix::io::Result<usize>> {
    None
}

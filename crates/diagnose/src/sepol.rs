//! The binary SELinux policy through libsepol (FFI), and audit2why's analysis of one access
//! against it ([`Policy::verdict`] → [`PolicyVerdict`]).
//!
//! This is the crate's only `unsafe` code: hand-written `extern "C"` declarations for the
//! libsepol 3.x calls libselinux's `audit2why.c` makes, and [`Policy`], a safe owner of one
//! loaded policydb and its SID table. The analysis follows `audit2why.c` step by step:
//! `sepol_context_to_sid` for both contexts (BADSCON/BADTCON), the class and permissions by
//! name (BADTCLASS/BADPERM), `sepol_compute_av_reason_buffer`; no reason → allowed; a TE
//! reason → each boolean is flipped in turn and the access recomputed (those that allow it
//! make a boolean verdict, else dontaudit when a requested permission is not audited, else a
//! missing allow rule); then constraint (with libsepol's explanation text), RBAC, bounds.
//!
//! libsepol's service functions work on a process-wide policydb and SID table
//! (`sepol_set_policydb`, `sepol_set_sidtab`), so every computation takes one global lock and
//! points libsepol at this policy first; policies can coexist, computations are serialized.
//! libsepol's messages are silenced. The policy is read from memory: no file or kernel
//! access (the caller reads `--policy PATH` or `/sys/fs/selinux/policy`). Never panics on a
//! bad policy or bad strings: those are errors or [`UnknownReason`]s.

use std::ffi::{CStr, CString, c_char, c_int, c_uint, c_void};
use std::ptr;
use std::sync::Mutex;

use crate::verdict::{BooleanFix, PolicyVerdict, UnknownReason};

/// Raw libsepol declarations (`<sepol/policydb.h>`, `<sepol/policydb/services.h>`,
/// `<sepol/booleans.h>`, `<sepol/boolean_record.h>`, `<sepol/debug.h>`).
mod ffi {
    use std::ffi::{c_char, c_int, c_uint, c_void};

    #[repr(C)]
    pub struct Handle {
        _private: [u8; 0],
    }
    #[repr(C)]
    pub struct PolicyFile {
        _private: [u8; 0],
    }
    /// `sepol_policydb_t`: `struct sepol_policydb { struct policydb p; }`, so a pointer to
    /// it is also a pointer to its `policydb_t` (what `sepol_set_policydb` takes).
    #[repr(C)]
    pub struct PolicyDb {
        _private: [u8; 0],
    }
    #[repr(C)]
    pub struct Bool {
        _private: [u8; 0],
    }
    #[repr(C)]
    pub struct BoolKey {
        _private: [u8; 0],
    }

    /// `sidtab_t` from `<sepol/policydb/sidtab.h>` (layout copied; initialized by
    /// `sepol_sidtab_init`).
    #[repr(C)]
    pub struct SidTab {
        pub htable: *mut c_void,
        pub nel: c_uint,
        pub next_sid: c_uint,
        pub shutdown: u8,
    }

    /// `struct sepol_av_decision`.
    #[repr(C)]
    #[derive(Default)]
    pub struct AvDecision {
        pub allowed: u32,
        pub decided: u32,
        pub auditallow: u32,
        pub auditdeny: u32,
        pub seqno: u32,
    }

    pub const COMPUTEAV_TE: c_uint = 0x1;
    pub const COMPUTEAV_CONS: c_uint = 0x2;
    pub const COMPUTEAV_RBAC: c_uint = 0x4;
    pub const COMPUTEAV_BOUNDS: c_uint = 0x8;

    pub type BoolIterFn = unsafe extern "C" fn(boolean: *const Bool, arg: *mut c_void) -> c_int;

    unsafe extern "C" {
        pub fn sepol_handle_create() -> *mut Handle;
        pub fn sepol_handle_destroy(h: *mut Handle);
        pub fn sepol_msg_set_callback(
            h: *mut Handle,
            cb: Option<unsafe extern "C" fn(*mut c_void, *mut Handle, *const c_char, ...)>,
            arg: *mut c_void,
        );
        pub fn sepol_debug(on: c_int);

        pub fn sepol_policy_file_create(pf: *mut *mut PolicyFile) -> c_int;
        pub fn sepol_policy_file_free(pf: *mut PolicyFile);
        pub fn sepol_policy_file_set_mem(pf: *mut PolicyFile, data: *mut c_char, len: usize);
        pub fn sepol_policy_file_set_handle(pf: *mut PolicyFile, h: *mut Handle);
        pub fn sepol_policydb_create(p: *mut *mut PolicyDb) -> c_int;
        pub fn sepol_policydb_free(p: *mut PolicyDb);
        pub fn sepol_policydb_read(p: *mut PolicyDb, pf: *mut PolicyFile) -> c_int;
        pub fn sepol_policydb_mls_enabled(p: *const PolicyDb) -> c_int;

        pub fn sepol_set_policydb(p: *mut PolicyDb) -> c_int;
        pub fn sepol_set_sidtab(s: *mut SidTab) -> c_int;
        pub fn sepol_sidtab_init(s: *mut SidTab) -> c_int;
        pub fn sepol_sidtab_shutdown(s: *mut SidTab);
        pub fn sepol_sidtab_destroy(s: *mut SidTab);

        pub fn sepol_context_to_sid(ctx: *const c_char, len: usize, sid: *mut u32) -> c_int;
        pub fn sepol_string_to_security_class(name: *const c_char, class: *mut u16) -> c_int;
        pub fn sepol_string_to_av_perm(class: u16, name: *const c_char, av: *mut u32) -> c_int;
        pub fn sepol_compute_av_reason_buffer(
            ssid: u32,
            tsid: u32,
            class: u16,
            requested: u32,
            avd: *mut AvDecision,
            reason: *mut c_uint,
            reason_buf: *mut *mut c_char,
            flags: c_uint,
        ) -> c_int;

        pub fn sepol_bool_count(h: *mut Handle, p: *const PolicyDb, count: *mut c_uint) -> c_int;
        pub fn sepol_bool_iterate(
            h: *mut Handle,
            p: *const PolicyDb,
            f: BoolIterFn,
            arg: *mut c_void,
        ) -> c_int;
        pub fn sepol_bool_get_name(b: *const Bool) -> *const c_char;
        pub fn sepol_bool_get_value(b: *const Bool) -> c_int;
        pub fn sepol_bool_set_value(b: *mut Bool, value: c_int);
        pub fn sepol_bool_key_create(
            h: *mut Handle,
            name: *const c_char,
            key: *mut *mut BoolKey,
        ) -> c_int;
        pub fn sepol_bool_key_free(key: *mut BoolKey);
        pub fn sepol_bool_query(
            h: *mut Handle,
            p: *const PolicyDb,
            key: *const BoolKey,
            out: *mut *mut Bool,
        ) -> c_int;
        pub fn sepol_bool_set(
            h: *mut Handle,
            p: *mut PolicyDb,
            key: *const BoolKey,
            data: *const Bool,
        ) -> c_int;
        pub fn sepol_bool_free(b: *mut Bool);
    }

    unsafe extern "C" {
        /// libc's `free(3)`, for libsepol's reason buffer.
        pub fn free(p: *mut c_void);
    }
}

/// Why a policy could not be loaded or queried.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    #[error("libsepol: out of memory creating {0}")]
    Create(&'static str),
    #[error("not a valid binary policy ({len} bytes)")]
    Invalid { len: usize },
    #[error("libsepol: could not {0}")]
    Query(&'static str),
}

/// Serializes every use of libsepol's process-wide service state.
static SEPOL: Mutex<()> = Mutex::new(());

/// A binary policy loaded into libsepol, with its own SID table.
pub struct Policy {
    handle: *mut ffi::Handle,
    db: *mut ffi::PolicyDb,
    sidtab: Box<ffi::SidTab>,
    /// Boolean names and their values as loaded, in policy order.
    booleans: Vec<(CString, bool)>,
    mls: bool,
}

// SAFETY: the raw pointers are owned exclusively by this value and only dereferenced by
// libsepol calls made while holding `SEPOL`, which serializes all access (including to
// libsepol's global service state).
unsafe impl Send for Policy {}
// SAFETY: as above; `&self` methods take `SEPOL` before touching libsepol.
unsafe impl Sync for Policy {}

impl std::fmt::Debug for Policy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Policy")
            .field("booleans", &self.booleans.len())
            .field("mls", &self.mls)
            .finish()
    }
}

fn lock() -> std::sync::MutexGuard<'static, ()> {
    SEPOL.lock().unwrap_or_else(|e| e.into_inner())
}

unsafe extern "C" fn collect_bool(b: *const ffi::Bool, arg: *mut c_void) -> c_int {
    // SAFETY: libsepol passes a valid boolean record; `arg` is the `Vec` passed to
    // `sepol_bool_iterate` below, alive and exclusively borrowed for the iteration.
    unsafe {
        let out = &mut *(arg as *mut Vec<(CString, bool)>);
        let name = ffi::sepol_bool_get_name(b);
        if name.is_null() {
            return -1;
        }
        out.push((
            CStr::from_ptr(name).to_owned(),
            ffi::sepol_bool_get_value(b) != 0,
        ));
    }
    0
}

impl Policy {
    /// Loads a kernel binary policy (`policy.33`, `/sys/fs/selinux/policy`) from memory.
    pub fn from_bytes(bytes: &[u8]) -> Result<Policy, PolicyError> {
        let _g = lock();
        // SAFETY: plain constructor calls; every pointer is checked before use and freed on
        // each error path. `bytes` outlives `sepol_policydb_read`, the only call that reads
        // it (libsepol copies what it keeps), and is never written through although the C
        // signature takes `char *`.
        unsafe {
            ffi::sepol_debug(0);
            let handle = ffi::sepol_handle_create();
            if handle.is_null() {
                return Err(PolicyError::Create("handle"));
            }
            ffi::sepol_msg_set_callback(handle, None, ptr::null_mut());
            let mut pf = ptr::null_mut();
            if ffi::sepol_policy_file_create(&mut pf) != 0 {
                ffi::sepol_handle_destroy(handle);
                return Err(PolicyError::Create("policy file"));
            }
            let mut db = ptr::null_mut();
            if ffi::sepol_policydb_create(&mut db) != 0 {
                ffi::sepol_policy_file_free(pf);
                ffi::sepol_handle_destroy(handle);
                return Err(PolicyError::Create("policydb"));
            }
            ffi::sepol_policy_file_set_mem(pf, bytes.as_ptr() as *mut c_char, bytes.len());
            ffi::sepol_policy_file_set_handle(pf, handle);
            let rc = ffi::sepol_policydb_read(db, pf);
            ffi::sepol_policy_file_free(pf);
            if rc != 0 {
                ffi::sepol_policydb_free(db);
                ffi::sepol_handle_destroy(handle);
                return Err(PolicyError::Invalid { len: bytes.len() });
            }
            let mut sidtab = Box::new(ffi::SidTab {
                htable: ptr::null_mut(),
                nel: 0,
                next_sid: 0,
                shutdown: 0,
            });
            if ffi::sepol_sidtab_init(&mut *sidtab) != 0 {
                ffi::sepol_policydb_free(db);
                ffi::sepol_handle_destroy(handle);
                return Err(PolicyError::Create("sidtab"));
            }
            let mut policy = Policy {
                handle,
                db,
                sidtab,
                booleans: Vec::new(),
                mls: ffi::sepol_policydb_mls_enabled(db) == 1,
            };
            let mut count: c_uint = 0;
            if ffi::sepol_bool_count(handle, db, &mut count) < 0 {
                return Err(PolicyError::Query("count booleans"));
            }
            let mut names: Vec<(CString, bool)> = Vec::with_capacity(count as usize);
            if ffi::sepol_bool_iterate(
                handle,
                db,
                collect_bool,
                &mut names as *mut Vec<(CString, bool)> as *mut c_void,
            ) < 0
            {
                return Err(PolicyError::Query("list booleans"));
            }
            policy.booleans = names;
            Ok(policy)
        }
    }

    /// True when the policy has MLS/MCS (levels in contexts are then required).
    pub fn mls_enabled(&self) -> bool {
        self.mls
    }

    /// Boolean names and their default values, as loaded, in policy order.
    pub fn booleans(&self) -> Vec<(String, bool)> {
        self.booleans
            .iter()
            .map(|(n, v)| (n.to_string_lossy().into_owned(), *v))
            .collect()
    }

    /// [`verdict`](Self::verdict) for an AVC's contexts, class and permissions; `None` when
    /// the AVC lacks one of them. Callers analysing many AVCs should cache by
    /// (scontext, tcontext, class, permissions), as sepolgen does: a TE denial flips every
    /// boolean of the policy once.
    pub fn verdict_for(&self, avc: &goguard_audit::Avc) -> Option<PolicyVerdict> {
        Some(self.verdict(
            avc.scontext.as_deref()?,
            avc.tcontext.as_deref()?,
            avc.tclass.as_deref()?,
            &avc.permissions,
        ))
    }

    /// audit2why's analysis of `permissions` on `class` from `scontext` to `tcontext`.
    pub fn verdict(
        &self,
        scontext: &str,
        tcontext: &str,
        class: &str,
        permissions: &[impl AsRef<str>],
    ) -> PolicyVerdict {
        let cstr = |s: &str| CString::new(s).ok();
        let Some(scon) = cstr(scontext) else {
            return PolicyVerdict::Unknown(UnknownReason::SourceContext);
        };
        let Some(tcon) = cstr(tcontext) else {
            return PolicyVerdict::Unknown(UnknownReason::TargetContext);
        };
        let _g = lock();
        // SAFETY: `self.db` and `self.sidtab` are valid for the life of `self`; libsepol's
        // global service state is pointed at them under `SEPOL`, and every string passed is
        // a NUL-terminated `CString` that outlives the call. The reason buffer is freed with
        // `free(3)` as libsepol documents.
        unsafe {
            ffi::sepol_set_policydb(self.db);
            ffi::sepol_set_sidtab(&*self.sidtab as *const ffi::SidTab as *mut ffi::SidTab);
            let mut ssid = 0u32;
            if ffi::sepol_context_to_sid(scon.as_ptr(), scon.as_bytes_with_nul().len(), &mut ssid)
                < 0
            {
                return PolicyVerdict::Unknown(UnknownReason::SourceContext);
            }
            let mut tsid = 0u32;
            if ffi::sepol_context_to_sid(tcon.as_ptr(), tcon.as_bytes_with_nul().len(), &mut tsid)
                < 0
            {
                return PolicyVerdict::Unknown(UnknownReason::TargetContext);
            }
            let Some(cclass) = cstr(class) else {
                return PolicyVerdict::Unknown(UnknownReason::Class);
            };
            let mut tclass = 0u16;
            if ffi::sepol_string_to_security_class(cclass.as_ptr(), &mut tclass) < 0 {
                return PolicyVerdict::Unknown(UnknownReason::Class);
            }
            let mut av = 0u32;
            for p in permissions {
                let p = p.as_ref();
                let mut bit = 0u32;
                let ok = match cstr(p) {
                    Some(cp) => ffi::sepol_string_to_av_perm(tclass, cp.as_ptr(), &mut bit) >= 0,
                    None => false,
                };
                if !ok {
                    return PolicyVerdict::Unknown(UnknownReason::Permission(p.to_owned()));
                }
                av |= bit;
            }
            let Some((avd, reason, text)) = compute(ssid, tsid, tclass, av) else {
                return PolicyVerdict::Unknown(UnknownReason::Computation);
            };
            if reason == 0 {
                return PolicyVerdict::Allowed;
            }
            if reason & ffi::COMPUTEAV_TE != 0 {
                let bools = match self.booleans_allowing(ssid, tsid, tclass, av) {
                    Some(b) => b,
                    None => return PolicyVerdict::Unknown(UnknownReason::Computation),
                };
                if !bools.is_empty() {
                    return PolicyVerdict::Boolean(bools);
                }
                return if av & !avd.auditdeny != 0 {
                    PolicyVerdict::DontAudit
                } else {
                    PolicyVerdict::MissingAllow
                };
            }
            if reason & ffi::COMPUTEAV_CONS != 0 {
                return PolicyVerdict::Constraint(text.unwrap_or_default());
            }
            if reason & ffi::COMPUTEAV_RBAC != 0 {
                return PolicyVerdict::Rbac;
            }
            if reason & ffi::COMPUTEAV_BOUNDS != 0 {
                return PolicyVerdict::Bounds;
            }
            PolicyVerdict::Unknown(UnknownReason::Computation)
        }
    }

    /// Flips each boolean in turn (audit2why's `check_booleans`) and returns those whose
    /// flipped value allows the access; the policy is restored after each. `None` when
    /// libsepol fails. Must be called with `SEPOL` held and the globals set to `self`.
    unsafe fn booleans_allowing(
        &self,
        ssid: u32,
        tsid: u32,
        tclass: u16,
        av: u32,
    ) -> Option<Vec<BooleanFix>> {
        let mut found = Vec::new();
        for (name, active) in &self.booleans {
            // SAFETY: the caller holds `SEPOL` and set libsepol's globals to this policy;
            // key and record are created, used and freed here, on every path.
            unsafe {
                let mut key = ptr::null_mut();
                if ffi::sepol_bool_key_create(self.handle, name.as_ptr(), &mut key) < 0 {
                    return None;
                }
                let mut record = ptr::null_mut();
                if ffi::sepol_bool_query(self.handle, self.db, key, &mut record) < 0
                    || record.is_null()
                {
                    ffi::sepol_bool_key_free(key);
                    return None;
                }
                let set = |value: bool| {
                    ffi::sepol_bool_set_value(record, c_int::from(value));
                    ffi::sepol_bool_set(self.handle, self.db, key, record) >= 0
                };
                let mut ok = set(!active);
                let allows = ok && matches!(compute(ssid, tsid, tclass, av), Some((_, 0, _)));
                ok &= set(*active);
                ffi::sepol_bool_free(record);
                ffi::sepol_bool_key_free(key);
                if !ok {
                    return None;
                }
                if allows {
                    found.push(BooleanFix {
                        name: name.to_string_lossy().into_owned(),
                        value: !active,
                    });
                }
            }
        }
        Some(found)
    }
}

/// One `sepol_compute_av_reason_buffer` call: (decision, reason bits, constraint text).
/// Must be called with `SEPOL` held and the globals set.
unsafe fn compute(
    ssid: u32,
    tsid: u32,
    tclass: u16,
    av: u32,
) -> Option<(ffi::AvDecision, c_uint, Option<String>)> {
    let mut avd = ffi::AvDecision::default();
    let mut reason: c_uint = 0;
    let mut buf: *mut c_char = ptr::null_mut();
    // SAFETY: out-pointers are valid locals; the buffer libsepol may allocate is copied and
    // released with `free(3)`.
    unsafe {
        let rc = ffi::sepol_compute_av_reason_buffer(
            ssid,
            tsid,
            tclass,
            av,
            &mut avd,
            &mut reason,
            &mut buf,
            0,
        );
        let text = (!buf.is_null()).then(|| CStr::from_ptr(buf).to_string_lossy().into_owned());
        if !buf.is_null() {
            ffi::free(buf as *mut c_void);
        }
        (rc >= 0).then_some((avd, reason, text))
    }
}

impl Drop for Policy {
    fn drop(&mut self) {
        let _g = lock();
        // SAFETY: the pointers were created by libsepol in `from_bytes` and are freed once.
        // libsepol's global service pointers may still name this policy; every later use
        // sets them first, under the same lock.
        unsafe {
            ffi::sepol_sidtab_shutdown(&mut *self.sidtab);
            ffi::sepol_sidtab_destroy(&mut *self.sidtab);
            ffi::sepol_policydb_free(self.db);
            ffi::sepol_handle_destroy(self.handle);
        }
    }
}

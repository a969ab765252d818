//! Authorization: what an authenticated principal may do.
//!
//! The first form is the Atlas UI's per-data-source access level
//! ([`AccessLevel`]), enforced on every action.

mod access;

pub(crate) use access::check_access;
pub use access::AccessLevel;

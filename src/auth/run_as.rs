//! Run-as modes (spec §5.4): who a request without credentials runs as.

use std::fmt;
use std::sync::Arc;

use http::request::Parts;

use super::Principal;

/// Who a request without credentials runs as — what App Services'
/// `run_as_user_id`, `run_as_system` and `run_as_user_id_script_source` chose.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunAs {
    /// The user with this id (a `normal` user of provider `run-as`).
    User(String),
    /// The system user: bypasses every rule.
    System,
    /// Nobody: the request needs credentials after all (400, as without a
    /// run-as mode).
    Nobody,
}

/// A function choosing the run-as user from the request head.
pub type RunAsFn = dyn Fn(&Parts) -> RunAs + Send + Sync;

/// The configured run-as mode.
#[derive(Clone)]
pub(crate) enum RunAsMode {
    Fixed(RunAs),
    Function(Arc<RunAsFn>),
}

impl fmt::Debug for RunAsMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RunAsMode::Fixed(run_as) => f.debug_tuple("Fixed").field(run_as).finish(),
            RunAsMode::Function(_) => f.write_str("Function(..)"),
        }
    }
}

/// The provider name run-as users carry.
pub const RUN_AS: &str = "run-as";

impl RunAsMode {
    /// The principal for a request without credentials, if any.
    pub(crate) fn principal(&self, parts: &Parts) -> Option<Principal> {
        let choice = match self {
            RunAsMode::Fixed(run_as) => run_as.clone(),
            RunAsMode::Function(choose) => choose(parts),
        };
        match choice {
            RunAs::User(id) if !id.is_empty() => Some(Principal::user(id, RUN_AS)),
            RunAs::System => Some(Principal::system()),
            RunAs::User(_) | RunAs::Nobody => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_choose_principals() {
        let (parts, ()) = http::Request::get("/x")
            .header("x-tenant", "t1")
            .body(())
            .unwrap()
            .into_parts();
        assert_eq!(
            RunAsMode::Fixed(RunAs::User("u".into()))
                .principal(&parts)
                .unwrap()
                .id,
            "u"
        );
        assert!(RunAsMode::Fixed(RunAs::System)
            .principal(&parts)
            .unwrap()
            .is_system());
        assert!(RunAsMode::Fixed(RunAs::User(String::new()))
            .principal(&parts)
            .is_none());
        let by_header = RunAsMode::Function(Arc::new(|parts: &Parts| {
            match parts.headers.get("x-tenant").and_then(|v| v.to_str().ok()) {
                Some(tenant) => RunAs::User(format!("tenant-{tenant}")),
                None => RunAs::Nobody,
            }
        }));
        assert_eq!(by_header.principal(&parts).unwrap().id, "tenant-t1");
        let (bare, ()) = http::Request::get("/x").body(()).unwrap().into_parts();
        assert!(by_header.principal(&bare).is_none());
        assert_eq!(format!("{by_header:?}"), "Function(..)");
    }
}

//! `%function`: Rust closures that rule expressions call by name.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use bson::{Bson, Document};

/// What a rule function receives: its arguments, already expanded, and the
/// `%%user` and `%%request` documents.
#[derive(Debug, Clone, Copy)]
pub struct FunctionCall<'a> {
    /// The `arguments` of `{"%function": {"name": ..., "arguments": [...]}}`.
    pub arguments: &'a [Bson],
    /// `%%user`: `id`, `type`, `name`, `data`, `custom_data`, `identities`.
    pub user: &'a Document,
    /// `%%request`: `httpMethod`, `action`, `service`, `requestHeaders`, ….
    pub request: &'a Document,
}

/// A rule function: takes the call, returns the value the expression compares.
pub type RuleFunction = Arc<dyn Fn(&FunctionCall<'_>) -> Bson + Send + Sync>;

/// The registered rule functions, by name.
#[derive(Clone, Default)]
pub struct Functions {
    by_name: HashMap<String, RuleFunction>,
}

impl Functions {
    /// Registers `function` as `name`.
    #[must_use]
    pub fn with(
        mut self,
        name: impl Into<String>,
        function: impl Fn(&FunctionCall<'_>) -> Bson + Send + Sync + 'static,
    ) -> Self {
        self.by_name.insert(name.into(), Arc::new(function));
        self
    }

    /// Registers `function` as `name` in place.
    pub fn insert(&mut self, name: impl Into<String>, function: RuleFunction) {
        self.by_name.insert(name.into(), function);
    }

    /// Whether a function `name` is registered.
    pub fn contains(&self, name: &str) -> bool {
        self.by_name.contains_key(name)
    }

    /// Calls `name`; an unknown name is an error (the build checks names).
    #[cfg(feature = "memory")]
    pub(crate) fn call(&self, name: &str, call: &FunctionCall<'_>) -> Result<Bson, String> {
        self.by_name
            .get(name)
            .map(|function| function(call))
            .ok_or_else(|| format!("no rule function '{name}'"))
    }
}

impl fmt::Debug for Functions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut names: Vec<_> = self.by_name.keys().collect();
        names.sort();
        f.debug_struct("Functions").field("names", &names).finish()
    }
}

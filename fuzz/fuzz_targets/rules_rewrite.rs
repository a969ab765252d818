//! `[action, body, document, …]`: the request body for the action (its
//! index in `Action::ALL`, or its name) rewritten under a fixed rule set
//! for a fixed user, the documents passed through the reply guard.
#![no_main]

use bson::Bson;
use libfuzzer_sys::fuzz_target;
use tower_data_api::{fuzzing, Action};

fuzz_target!(|data: &[u8]| {
    let Some(values) = fuzzing::values(data) else {
        return;
    };
    let action = match values.first() {
        Some(Bson::String(name)) => Action::ALL.into_iter().find(|a| a.name() == name),
        Some(Bson::Int32(n)) => usize::try_from(*n)
            .ok()
            .and_then(|i| Action::ALL.get(i).copied()),
        Some(Bson::Int64(n)) => usize::try_from(*n)
            .ok()
            .and_then(|i| Action::ALL.get(i).copied()),
        _ => None,
    };
    let (Some(action), Some(Bson::Document(body))) = (action, values.get(1)) else {
        return;
    };
    let docs = fuzzing::documents(&values[2..]);
    let _ = fuzzing::rules_rewrite(action, body, &docs);
});

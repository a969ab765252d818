//! `[projection, document, filter?]`: the projection parsed and applied
//! (with the array index the optional filter matched, for `$`).
#![no_main]

use libfuzzer_sys::fuzz_target;
use tower_data_api::fuzzing;

fuzz_target!(|data: &[u8]| {
    let Some(values) = fuzzing::values(data) else {
        return;
    };
    let docs = fuzzing::documents(&values);
    let (Some(projection), Some(doc)) = (docs.first(), docs.get(1)) else {
        return;
    };
    let _ = fuzzing::projection(projection, doc, docs.get(2));
});

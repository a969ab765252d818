//! `[filter, document]`: the filter parsed and evaluated against the document.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tower_data_api::fuzzing;

fuzz_target!(|data: &[u8]| {
    let Some(values) = fuzzing::values(data) else {
        return;
    };
    let docs = fuzzing::documents(&values);
    let (Some(filter), Some(doc)) = (docs.first(), docs.get(1)) else {
        return;
    };
    let _ = fuzzing::filter(filter, doc);
});

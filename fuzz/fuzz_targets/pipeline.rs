//! `[[stage, …], document, …]`: the pipeline parsed and run over the
//! documents (which every collection it names holds too).
#![no_main]

use libfuzzer_sys::fuzz_target;
use tower_data_api::fuzzing;

fuzz_target!(|data: &[u8]| {
    let Some(values) = fuzzing::values(data) else {
        return;
    };
    let Some(bson::Bson::Array(stages)) = values.first() else {
        return;
    };
    let stages = fuzzing::documents(stages);
    let docs = fuzzing::documents(&values[1..]);
    let _ = fuzzing::pipeline(&stages, &docs);
});

//! `[update, document, filter?, arrayFilters?]`: an operator update, a
//! pipeline update (an array) or a replacement applied to the document, and
//! as an upsert to the document the filter seeds.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tower_data_api::fuzzing;

fuzz_target!(|data: &[u8]| {
    let Some(values) = fuzzing::values(data) else {
        return;
    };
    let (Some(update), Some(bson::Bson::Document(doc))) = (values.first(), values.get(1)) else {
        return;
    };
    let filter = values.get(2).and_then(|v| v.as_document());
    let array_filters = values
        .get(3)
        .and_then(|v| v.as_array())
        .map(|items| fuzzing::documents(items));
    let _ = fuzzing::update(update, doc, filter, array_filters.as_deref());
});

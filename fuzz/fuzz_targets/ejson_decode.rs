//! A request body, as bytes, decoded for every action.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = tower_data_api::fuzzing::decode_request(data);
});

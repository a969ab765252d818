//! [`RequestId`]: the id of one request, an ObjectId's 24 hex digits.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

use bson::oid::ObjectId;

/// A request's id, as ObjectIds are made: the second the request arrived, a
/// random value per process and a counter. Kept on the stack; the clock is
/// the one already read for the request's log entry.
#[derive(Clone, Copy)]
pub(crate) struct RequestId {
    hex: [u8; 24],
}

impl RequestId {
    /// The id of a request that arrived at `at`.
    pub(crate) fn new(at: SystemTime) -> Self {
        static PROCESS: OnceLock<[u8; 5]> = OnceLock::new();
        static COUNTER: OnceLock<AtomicU32> = OnceLock::new();
        let process = *PROCESS.get_or_init(rand::random);
        let count = COUNTER
            .get_or_init(|| AtomicU32::new(rand::random()))
            .fetch_add(1, Ordering::Relaxed)
            .to_be_bytes();
        let seconds = at
            .duration_since(UNIX_EPOCH)
            .map_or(0, |since| since.as_secs() as u32);
        let oid = ObjectId::from_parts(seconds, process, [count[1], count[2], count[3]]);
        let mut hex = [0u8; 24];
        hex::encode_to_slice(oid.bytes(), &mut hex).expect("12 bytes are 24 hex digits");
        Self { hex }
    }

    /// The 24 lowercase hex digits.
    pub(crate) fn as_str(&self) -> &str {
        std::str::from_utf8(&self.hex).expect("hex digits are ASCII")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn ids_are_object_ids_of_the_arrival_second_and_differ() {
        let at = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let (a, b) = (RequestId::new(at), RequestId::new(at));
        assert_ne!(a.as_str(), b.as_str());
        for id in [a, b] {
            let oid = ObjectId::parse_str(id.as_str()).expect("an ObjectId");
            assert_eq!(oid.timestamp().timestamp_millis(), 1_700_000_000_000);
            assert_eq!(id.as_str(), oid.to_hex());
        }
    }
}

use super::*;
use bson::doc;
use mongodb::error::{CommandError, InsertManyError, WriteError};

fn command_error(code: i32, name: &str, message: &str) -> Error {
    let e: CommandError =
        bson::from_document(doc! { "code": code, "codeName": name, "errmsg": message })
            .expect("a CommandError deserializes");
    Error::from(ErrorKind::Command(e))
}

fn write_error(code: i32, message: &str) -> Error {
    let e: WriteError = bson::from_document(doc! { "code": code, "errmsg": message })
        .expect("a WriteError deserializes");
    Error::from(ErrorKind::Write(WriteFailure::WriteError(e)))
}

#[test]
fn duplicate_key_keeps_the_server_message() {
    let msg = "E11000 duplicate key error collection: db.c index: _id_ dup key: { _id: 1 }";
    let mapped = map_error(&write_error(11000, msg));
    assert_eq!(mapped.kind, BackendErrorKind::DuplicateKey);
    assert_eq!(mapped.message, msg);
    let mapped = map_error(&command_error(11000, "DuplicateKey", msg));
    assert_eq!(mapped.kind, BackendErrorKind::DuplicateKey);
}

#[test]
fn request_errors_are_invalid_with_the_server_message() {
    for (code, name) in [
        (2, "BadValue"),
        (9, "FailedToParse"),
        (14, "TypeMismatch"),
        (40, "ConflictingUpdateOperators"),
        (66, "ImmutableField"),
        (72, "InvalidOptions"),
        (40324, "Location40324"),
        (15952, "Location15952"),
    ] {
        let mapped = map_error(&command_error(code, name, "unknown operator: $foo"));
        assert_eq!(mapped.kind, BackendErrorKind::InvalidRequest, "code {code}");
        assert_eq!(mapped.message, "unknown operator: $foo");
    }
}

#[test]
fn unknown_write_error_codes_are_about_the_request() {
    let mapped = map_error(&write_error(4242, "bad update"));
    assert_eq!(mapped, BackendError::invalid("bad update"));
}

#[test]
fn empty_server_message_names_the_code() {
    let mapped = map_error(&command_error(2, "BadValue", ""));
    assert_eq!(
        mapped.message,
        "the data source rejected the request (BadValue)"
    );
}

#[test]
fn validation_failure() {
    let mapped = map_error(&write_error(121, "Document failed validation"));
    assert_eq!(mapped.kind, BackendErrorKind::DocumentValidation);
    assert_eq!(mapped.message, "Document failed validation");
}

#[test]
fn time_limits_are_timeouts_with_a_generic_message() {
    let mapped = map_error(&command_error(
        50,
        "MaxTimeMSExpired",
        "operation exceeded time limit",
    ));
    assert_eq!(
        mapped,
        BackendError::new(BackendErrorKind::Timeout, TIMEOUT)
    );
    let io = Error::from(ErrorKind::from(std::io::Error::from(
        std::io::ErrorKind::TimedOut,
    )));
    assert_eq!(map_error(&io).kind, BackendErrorKind::Timeout);
}

#[test]
fn deployment_failures_are_unavailable_and_generic() {
    let e = command_error(
        10107,
        "NotWritablePrimary",
        "not primary on db0.example.net:27017",
    );
    assert_eq!(
        map_error(&e),
        BackendError::new(BackendErrorKind::Unavailable, UNAVAILABLE)
    );
    let io = Error::from(ErrorKind::from(std::io::Error::new(
        std::io::ErrorKind::ConnectionRefused,
        "connection refused to db0.example.net:27017",
    )));
    assert_eq!(
        map_error(&io),
        BackendError::new(BackendErrorKind::Unavailable, UNAVAILABLE)
    );
    let auth = command_error(18, "AuthenticationFailed", "Authentication failed.");
    assert_eq!(map_error(&auth).kind, BackendErrorKind::Unavailable);
}

#[test]
fn unsupported_commands() {
    let mapped = map_error(&command_error(
        59,
        "CommandNotFound",
        "no such command: 'x'",
    ));
    assert_eq!(mapped.kind, BackendErrorKind::Unsupported);
    assert_eq!(mapped.message, "no such command: 'x'");
}

#[test]
fn unknown_command_errors_are_internal_and_generic() {
    let mapped = map_error(&command_error(1, "InternalError", "boom on host db0:27017"));
    assert_eq!(
        mapped,
        BackendError::new(BackendErrorKind::Internal, INTERNAL)
    );
    let mapped = map_error(&command_error(13, "Unauthorized", "not authorized"));
    assert_eq!(mapped.kind, BackendErrorKind::Internal);
}

#[test]
fn insert_many_uses_the_first_failing_document() {
    let e: InsertManyError = bson::from_document(doc! {
        "writeErrors": [
            { "index": 3, "code": 2, "errmsg": "later" },
            { "index": 2, "code": 11000, "errmsg": "E11000 first" },
        ],
    })
    .expect("an InsertManyError deserializes");
    let mapped = map_error(&Error::from(ErrorKind::InsertMany(e)));
    assert_eq!(mapped.kind, BackendErrorKind::DuplicateKey);
    assert_eq!(mapped.message, "E11000 first");
}

#[test]
fn write_concern_failures() {
    let wc: WriteConcernError = bson::from_document(doc! {
        "code": 64, "codeName": "WriteConcernFailed", "errmsg": "waiting for replication timed out",
        "errInfo": { "wtimeout": true },
    })
    .expect("a WriteConcernError deserializes");
    let e = Error::from(ErrorKind::Write(WriteFailure::WriteConcernError(wc)));
    assert_eq!(map_error(&e).kind, BackendErrorKind::Timeout);
}

#[test]
fn redaction_removes_user_information() {
    let uri = "mongodb://alice:s%40cret@db0.example.net:27017/?tls=true";
    let text = "bad thing near alice:s%40cret and s@cret and s%40cret";
    let out = redact_userinfo(text, uri);
    assert!(!out.contains("cret"), "{out}");
    assert_eq!(
        redact_userinfo("nothing here", "mongodb://h:1"),
        "nothing here"
    );
    assert_eq!(percent_decode("a%2Fb%zz%4"), "a/b%zz%4");
    // Unescaped '/' and '?' in the password.
    let uri = "mongodb://alice:pa/ss?wd@db0.example.net/";
    let out = redact_userinfo("saw pa/ss?wd and ss?wd", uri);
    assert!(!out.contains("pa/ss?wd"), "{out}");
}

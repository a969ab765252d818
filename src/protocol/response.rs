//! Response encoding: an action's result → the Data API's wrapper object in
//! the chosen format, and errors → `{"error", "error_code", "link"}`.

use std::convert::Infallible;

use bson::Bson;
use bytes::Bytes;
use http::{HeaderName, HeaderValue, Response, StatusCode};
use http_body_util::{combinators::BoxBody, BodyExt, Full};

use crate::action::Reply;
use crate::protocol::{ApiError, Format};

/// The body type of every response the service builds.
pub type ResponseBody = BoxBody<Bytes, Infallible>;

/// The header carrying the request id (a constant name: nothing is
/// allocated for it per response).
pub(crate) const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

impl Reply {
    /// The response body bytes, or [`ApiError::response_too_large`] as soon
    /// as they pass `max_bytes` (the rest is never encoded).
    pub(crate) fn render(self, format: Format, max_bytes: usize) -> Result<Vec<u8>, ApiError> {
        let too_large = |out: &Vec<u8>| out.len() > max_bytes;
        let mut out = Vec::with_capacity(256);
        match self {
            Reply::Document(doc) => {
                out.extend_from_slice(b"{\"document\":");
                match doc {
                    Some(doc) => format.write_document(&doc, &mut out),
                    None => out.extend_from_slice(b"null"),
                }
                out.push(b'}');
            }
            Reply::Documents(docs) => {
                out.extend_from_slice(b"{\"documents\":[");
                for (i, doc) in docs.iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    format.write_document(doc, &mut out);
                    if too_large(&out) {
                        return Err(ApiError::response_too_large(max_bytes));
                    }
                }
                out.extend_from_slice(b"]}");
            }
            Reply::InsertedId(id) => format.write_fields(&[("insertedId", &id)], &mut out),
            Reply::InsertedIds(ids) => {
                format.write_fields(&[("insertedIds", &Bson::Array(ids))], &mut out);
            }
            Reply::Updated(outcome) => {
                let matched = ("matchedCount", &count(outcome.matched_count));
                let modified = ("modifiedCount", &count(outcome.modified_count));
                match &outcome.upserted_id {
                    Some(id) => {
                        format.write_fields(&[matched, modified, ("upsertedId", id)], &mut out);
                    }
                    None => format.write_fields(&[matched, modified], &mut out),
                }
            }
            Reply::Deleted(deleted) => {
                format.write_fields(&[("deletedCount", &count(deleted))], &mut out);
            }
        }
        if too_large(&out) {
            return Err(ApiError::response_too_large(max_bytes));
        }
        Ok(out)
    }
}

/// Counts are int32 on the wire (`{"$numberInt": "1"}` in EJSON), int64 past that.
fn count(n: u64) -> Bson {
    match i32::try_from(n) {
        Ok(small) => Bson::Int32(small),
        Err(_) => Bson::Int64(i64::try_from(n).unwrap_or(i64::MAX)),
    }
}

/// A response with a body, a content type and the request id.
pub(crate) fn response(
    status: StatusCode,
    content_type: &'static str,
    body: Vec<u8>,
    request_id: &str,
) -> Response<ResponseBody> {
    let mut response = Response::new(Full::new(Bytes::from(body)).boxed());
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static(content_type),
    );
    if let Ok(id) = HeaderValue::from_str(request_id) {
        headers.insert(REQUEST_ID, id);
    }
    response
}

/// A response without a body (a 204), so without a content type.
pub(crate) fn empty_response(status: StatusCode, request_id: &str) -> Response<ResponseBody> {
    let mut response = response(status, "", Vec::new(), request_id);
    response.headers_mut().remove(http::header::CONTENT_TYPE);
    response
}

/// The error response: JSON whatever the requested format.
pub(crate) fn error_response(
    error: &ApiError,
    link: &str,
    request_id: &str,
) -> Response<ResponseBody> {
    let mut response = response(
        error.status(),
        "application/json",
        error.to_json(link),
        request_id,
    );
    if let Some((name, value)) = error.header() {
        response.headers_mut().insert(name.clone(), value.clone());
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::action::UpdateOutcome;
    use bson::{doc, oid::ObjectId};

    fn text(reply: Reply, format: Format) -> String {
        String::from_utf8(reply.render(format, usize::MAX).unwrap()).unwrap()
    }

    #[test]
    fn wrappers_in_both_formats() {
        let oid = ObjectId::parse_str("64224f3cd79f54ad342dd9b1").unwrap();
        assert_eq!(
            text(Reply::Document(None), Format::Json),
            r#"{"document":null}"#
        );
        assert_eq!(
            text(
                Reply::Documents(vec![doc! {"_id": oid, "n": 1}]),
                Format::Json
            ),
            r#"{"documents":[{"_id":"64224f3cd79f54ad342dd9b1","n":1}]}"#
        );
        assert_eq!(
            text(Reply::InsertedId(Bson::ObjectId(oid)), Format::Ejson),
            r#"{"insertedId":{"$oid":"64224f3cd79f54ad342dd9b1"}}"#
        );
        assert_eq!(
            text(
                Reply::InsertedIds(vec![Bson::ObjectId(oid), Bson::Int32(2)]),
                Format::Json
            ),
            r#"{"insertedIds":["64224f3cd79f54ad342dd9b1",2]}"#
        );
        let updated = UpdateOutcome {
            matched_count: 1,
            modified_count: 1,
            upserted_id: None,
        };
        assert_eq!(
            text(Reply::Updated(updated.clone()), Format::Json),
            r#"{"matchedCount":1,"modifiedCount":1}"#
        );
        assert_eq!(
            text(Reply::Updated(updated), Format::Ejson),
            r#"{"matchedCount":{"$numberInt":"1"},"modifiedCount":{"$numberInt":"1"}}"#
        );
        let upserted = UpdateOutcome {
            matched_count: 0,
            modified_count: 0,
            upserted_id: Some(Bson::ObjectId(oid)),
        };
        assert_eq!(
            text(Reply::Updated(upserted), Format::Json),
            r#"{"matchedCount":0,"modifiedCount":0,"upsertedId":"64224f3cd79f54ad342dd9b1"}"#
        );
        assert_eq!(
            text(Reply::Deleted(3), Format::Ejson),
            r#"{"deletedCount":{"$numberInt":"3"}}"#
        );
    }
}

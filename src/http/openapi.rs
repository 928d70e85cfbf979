//! `GET /openapi.json`: the OpenAPI 3.0 description of every route.
//!
//! The description is hand-written in `openapi.json` beside this file and served byte for byte.
//! The integration test `tests/api/openapi.rs` keeps it honest: it calls every route, checks each
//! answer's status, headers and body against it, and checks that the router and the description
//! list the same routes.

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::{Response, StatusCode};

use super::util::Resp;

/// The description, as served.
pub const DESCRIPTION: &str = include_str!("openapi.json");

/// The description, as is.
pub fn serve() -> Resp {
    let mut resp = Response::new(Full::new(Bytes::from_static(DESCRIPTION.as_bytes())));
    *resp.status_mut() = StatusCode::OK;
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_description_is_openapi_3_json_of_this_version() {
        let doc: serde_json::Value =
            serde_json::from_str(DESCRIPTION).expect("openapi.json is valid JSON");
        assert_eq!(doc["openapi"], "3.0.3");
        assert_eq!(
            doc["info"]["version"],
            env!("CARGO_PKG_VERSION"),
            "bump info.version in openapi.json with the crate"
        );
        assert!(doc["paths"].as_object().is_some_and(|p| !p.is_empty()));
    }
}

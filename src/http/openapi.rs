//! `GET /openapi.json`: an OpenAPI 3 description of every route.
//!
//! (Skeleton: the description is filled in separately.)

use hyper::StatusCode;
use serde_json::json;

use super::util::{json_response, Resp};

/// The description, as served.
pub fn serve() -> Resp {
    json_response(
        StatusCode::OK,
        &json!({"openapi": "3.0.3", "info": {"title": "supasaasy", "version": env!("CARGO_PKG_VERSION")}, "paths": {}}),
    )
}

//! Stripe's error answers: a status and `{"error": {"type", "message", "code"?, "param"?}}`.
//!
//! Every refusal of the fake goes through [`ApiError`], so clients see the same shape (and the same
//! wording, where Stripe's is known) as from the real API.

use bytes::Bytes;
use serde_json::{json, Map, Value};

/// One error answer, before it is rendered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ApiError {
    /// HTTP status.
    pub status: u16,
    /// Stripe's `type`: `invalid_request_error`, `api_error`...
    pub kind: &'static str,
    /// Stripe's machine-readable `code`, when it has one.
    pub code: Option<&'static str>,
    /// The request parameter at fault, when one is.
    pub param: Option<String>,
    /// The human message.
    pub message: String,
}

impl ApiError {
    /// A 400 about one parameter.
    pub fn invalid(param: &str, message: impl Into<String>) -> Self {
        ApiError {
            status: 400,
            kind: "invalid_request_error",
            code: Some("parameter_invalid"),
            param: Some(param.to_owned()),
            message: message.into(),
        }
    }

    /// A parameter Stripe does not know for this endpoint.
    pub fn unknown_param(param: &str) -> Self {
        ApiError {
            code: Some("parameter_unknown"),
            ..Self::invalid(param, format!("Received unknown parameter: {param}"))
        }
    }

    /// A required parameter that is absent.
    pub fn missing_param(param: &str) -> Self {
        ApiError {
            code: Some("parameter_missing"),
            ..Self::invalid(param, format!("Missing required param: {param}."))
        }
    }

    /// `No such customer: 'cus_x'`, with the given status (404 for a retrieve, 400 for a cursor).
    pub fn no_such(status: u16, object: &str, id: &str, param: &str) -> Self {
        ApiError {
            status,
            kind: "invalid_request_error",
            code: Some("resource_missing"),
            param: Some(param.to_owned()),
            message: format!("No such {object}: '{id}'"),
        }
    }

    /// A parameter a Stripe-compatible fake does not take, in localstripe's words
    /// (`Unexpected created`): no code, no param.
    pub fn unexpected(param: &str) -> Self {
        ApiError {
            status: 400,
            kind: "invalid_request_error",
            code: None,
            param: None,
            message: format!("Unexpected {param}"),
        }
    }

    /// A 401 with Stripe's wording.
    pub fn unauthorized(message: String) -> Self {
        ApiError {
            status: 401,
            kind: "invalid_request_error",
            code: None,
            param: None,
            message,
        }
    }

    /// A 403 for a `Stripe-Account` the platform's key cannot reach (never connected, or
    /// disconnected), in Stripe's words; `masked_key` is the key as Stripe echoes it.
    pub fn no_access(masked_key: &str, account: &str) -> Self {
        ApiError {
            status: 403,
            kind: "invalid_request_error",
            code: Some("account_invalid"),
            param: None,
            message: format!(
                "The provided key '{masked_key}' does not have access to account '{account}' \
                 (or that account does not exist). Application access may have been revoked."
            ),
        }
    }

    /// A 403 for a connected account asking for accounts (`/v1/accounts`): only the platform
    /// reaches connected accounts. The message is the one Stripe gives a connected account's key.
    pub fn not_a_platform() -> Self {
        ApiError {
            status: 403,
            kind: "invalid_request_error",
            code: None,
            param: None,
            message: "You cannot access the connected accounts of your Platform's connected \
                      accounts."
                .to_owned(),
        }
    }

    /// A 404 for a route the fake does not serve.
    pub fn unrecognized(method: &str, path: &str) -> Self {
        ApiError {
            status: 404,
            kind: "invalid_request_error",
            code: None,
            param: None,
            message: format!(
                "Unrecognized request URL ({method}: {path}). Please see https://stripe.com/docs \
                 or we can help at https://support.stripe.com/."
            ),
        }
    }

    /// The answer to an injected fault with this status.
    pub fn injected(status: u16) -> Self {
        match status {
            429 => ApiError {
                status,
                kind: "invalid_request_error",
                code: Some("rate_limit"),
                param: None,
                message: "Request rate limit exceeded. Learn more about rate limits here \
                          https://stripe.com/docs/rate-limits."
                    .to_owned(),
            },
            s if s >= 500 => ApiError {
                status,
                kind: "api_error",
                code: None,
                param: None,
                message: "An unknown error occurred".to_owned(),
            },
            s => ApiError {
                status: s,
                kind: "invalid_request_error",
                code: None,
                param: None,
                message: format!("Injected failure with status {s}"),
            },
        }
    }

    /// The JSON body.
    pub fn body(&self) -> Bytes {
        let mut error = Map::new();
        error.insert("type".into(), Value::from(self.kind));
        error.insert("message".into(), Value::from(self.message.as_str()));
        if let Some(code) = self.code {
            error.insert("code".into(), Value::from(code));
        }
        if let Some(param) = &self.param {
            error.insert("param".into(), Value::from(param.as_str()));
        }
        Bytes::from(json!({ "error": error }).to_string())
    }
}

//! Intercom's error answers: a status and `{"type": "error.list", "request_id", "errors": [{"code",
//! "message"}]}`.
//!
//! Every refusal of the fake goes through [`ApiError`], so clients see the codes and wording of the
//! examples in Intercom's API description wherever it documents them. The `request_id` is filled in
//! when the answer is rendered, from the request's number.

use bytes::Bytes;
use serde_json::json;

/// One error answer, before it is rendered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ApiError {
    /// HTTP status.
    pub status: u16,
    /// Intercom's machine-readable `code` (`unauthorized`, `not_found`...).
    pub code: &'static str,
    /// The human message.
    pub message: String,
}

impl ApiError {
    fn new(status: u16, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
        }
    }

    /// 401, as every operation of the API description shows it.
    pub fn unauthorized() -> Self {
        Self::new(401, "unauthorized", "Access Token Invalid")
    }

    /// 429 from the rate limiter.
    pub fn rate_limited() -> Self {
        Self::new(429, "rate_limit_exceeded", "Exceeded rate limit")
    }

    /// 400 about a request parameter or a part of a search body.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(400, "parameter_invalid", message)
    }

    /// 404 for a route the fake does not serve, or a conversation it does not hold.
    pub fn resource_not_found() -> Self {
        Self::new(404, "not_found", "Resource Not Found")
    }

    /// 404 for a contact (Intercom calls contacts users in this message).
    pub fn user_not_found() -> Self {
        Self::new(404, "not_found", "User Not Found")
    }

    /// 404 for a company.
    pub fn company_not_found() -> Self {
        Self::new(404, "company_not_found", "Company Not Found")
    }

    /// 404 for an admin.
    pub fn admin_not_found() -> Self {
        Self::new(404, "admin_not_found", "Admin not found")
    }

    /// 400: a scroll is already open for the workspace.
    pub fn scroll_exists() -> Self {
        Self::new(
            400,
            "scroll_exists",
            "scroll already exists for this workspace",
        )
    }

    /// 404: a `scroll_param` that is unknown, finished or expired.
    pub fn scroll_not_found() -> Self {
        Self::new(404, "not_found", "scroll parameter not found")
    }

    /// The 500 a scroll answers when it breaks; the client must start the scroll again.
    pub fn scroll_broken() -> Self {
        Self::new(
            500,
            "server_error",
            "Request failed due to an internal network error. Please restart the scroll \
             operation.",
        )
    }

    /// The answer to an injected fault with this status.
    pub fn injected(status: u16) -> Self {
        match status {
            401 => Self::unauthorized(),
            404 => Self::resource_not_found(),
            429 => Self::rate_limited(),
            s if s >= 500 => Self::new(s, "server_error", "Server Error"),
            s => Self::new(
                s,
                "bad_request",
                format!("Injected failure with status {s}"),
            ),
        }
    }

    /// The JSON body, naming the request it answers.
    pub fn body(&self, request_id: &str) -> Bytes {
        let body = json!({
            "type": "error.list",
            "request_id": request_id,
            "errors": [{"code": self.code, "message": self.message}],
        });
        Bytes::from(body.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_an_error_list() {
        let body: serde_json::Value =
            serde_json::from_slice(&ApiError::unauthorized().body("r-1")).unwrap();
        assert_eq!(
            body,
            json!({"type": "error.list", "request_id": "r-1",
                   "errors": [{"code": "unauthorized", "message": "Access Token Invalid"}]})
        );
        assert_eq!(ApiError::injected(503).status, 503);
        assert_eq!(ApiError::injected(429).code, "rate_limit_exceeded");
    }
}

//! The providers this build knows: one line per connector crate. Config validation, the webhook
//! route and its request log, the integration events' services and `openapi.json`'s enums all
//! follow this list, so a new provider is its crate and one line here.

use supasaasy_connector::Provider;

/// Every provider, in the order messages list them.
pub static PROVIDERS: &[&Provider] = &[&supasaasy_stripe::PROVIDER, &supasaasy_intercom::PROVIDER];

/// The provider named `name` in `connector = "..."`.
///
/// # Errors
///
/// A message naming the known providers, for an unknown name.
pub fn named(name: &str) -> Result<&'static Provider, String> {
    PROVIDERS
        .iter()
        .copied()
        .find(|p| p.name == name)
        .ok_or_else(|| format!("unknown connector {name:?} (known: {})", names().join(", ")))
}

/// The providers' names.
pub fn names() -> Vec<&'static str> {
    PROVIDERS.iter().map(|p| p.name).collect()
}

/// The `service` names of the integration events: the providers', then the daemon's own.
pub fn services() -> Vec<&'static str> {
    let mut services: Vec<&str> = PROVIDERS.iter().map(|p| p.service).collect();
    services.extend(["slack", "teams", "supasaasy"]);
    services
}

/// Every provider's webhook signature headers (lower case).
pub fn signature_headers() -> impl Iterator<Item = &'static str> {
    PROVIDERS
        .iter()
        .flat_map(|p| p.signature_headers.iter().copied())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn providers_are_found_by_name_and_unknown_ones_name_the_known() {
        assert_eq!(named("stripe").map(|p| p.name), Ok("stripe"));
        assert_eq!(named("intercom").map(|p| p.service), Ok("intercom"));
        let err = named("paypal").unwrap_err();
        assert!(
            err.contains("\"paypal\"") && err.contains("stripe, intercom"),
            "{err}"
        );
        assert_eq!(
            services(),
            ["stripe", "intercom", "slack", "teams", "supasaasy"]
        );
        assert!(signature_headers().any(|h| h == "stripe-signature"));
    }
}

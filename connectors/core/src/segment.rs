//! An object id as one segment of a request path: the provider's ids are what it says they are
//! (Stripe let accounts before 2018 give plans and coupons ids with spaces or dots, and still lets
//! them use `-`), so an id is escaped rather than refused, and never reaches another path.

/// The longest id put in a path, in bytes.
const MAX_ID_BYTES: usize = 255;

/// `id` percent-encoded as one path segment: every byte but letters, digits and `-._~` escaped
/// (`/`, `?`, `#` and `%` included), so no id can leave its segment. `None` for an id no path
/// can hold: empty, `.` or `..` (which a URL resolves away), or longer than 255 bytes.
pub fn path_segment(id: &str) -> Option<String> {
    if id.is_empty() || id == "." || id == ".." || id.len() > MAX_ID_BYTES {
        return None;
    }
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut out = String::with_capacity(id.len());
    for &byte in id.as_bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push('%');
            out.push(char::from(HEX[usize::from(byte >> 4)]));
            out.push(char::from(HEX[usize::from(byte & 0x0f)]));
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_stay_in_their_segment() {
        assert_eq!(
            path_segment("cus_NffrFeUfNV2Hib").as_deref(),
            Some("cus_NffrFeUfNV2Hib")
        );
        assert_eq!(
            path_segment("free-1-month").as_deref(),
            Some("free-1-month")
        );
        assert_eq!(
            path_segment("Gold Plan.v1").as_deref(),
            Some("Gold%20Plan.v1")
        );
        assert_eq!(
            path_segment("../../v1/accounts?x=1#y").as_deref(),
            Some("..%2F..%2Fv1%2Faccounts%3Fx%3D1%23y")
        );
        assert_eq!(path_segment("100%").as_deref(), Some("100%25"));
        assert_eq!(path_segment("é").as_deref(), Some("%C3%A9"));
        for refused in ["", ".", "..", &"a".repeat(256)] {
            assert_eq!(path_segment(refused), None, "{refused:?}");
        }
        assert!(path_segment(&"a".repeat(255)).is_some());
    }
}

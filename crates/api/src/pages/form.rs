//! The bodies hosted pages accept: form fields of the manage page and the RFC 8058 one-click
//! body. Anything else (another type, garbage, no body) is simply not one of those; the pages
//! never answer a body with an error except the manage page's missing `action`.

use plunk_domain::list_unsubscribe::ONE_CLICK;

/// The first value of the form field `name` in an `application/x-www-form-urlencoded` body.
pub fn field(body: &[u8], name: &str) -> Option<String> {
    form_urlencoded::parse(body)
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

/// Whether a POST body is the one-click unsubscription of RFC 8058: the field
/// `List-Unsubscribe=One-Click`, urlencoded or (as RFC 8058 also allows) multipart.
pub fn is_one_click(content_type: Option<&str>, body: &[u8]) -> bool {
    let (name, value) = ONE_CLICK.split_once('=').unwrap_or((ONE_CLICK, ""));
    let multipart = content_type.is_some_and(|ct| {
        ct.trim_start()
            .to_ascii_lowercase()
            .starts_with("multipart/form-data")
    });
    if multipart {
        // A field named List-Unsubscribe whose value is One-Click; a light check is enough,
        // since the only effect is which source the event names.
        let text = String::from_utf8_lossy(body);
        return text.contains(&format!("name=\"{name}\"")) && text.contains(value);
    }
    field(body, name).is_some_and(|v| v.trim() == value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_percent_and_plus_decoded() {
        assert_eq!(
            field(b"a=1&action=unsubscribe", "action").as_deref(),
            Some("unsubscribe")
        );
        assert_eq!(
            field(b"action=un%73ubscribe", "action").as_deref(),
            Some("unsubscribe")
        );
        assert_eq!(field(b"x=a+b", "x").as_deref(), Some("a b"));
        assert_eq!(field(b"action=", "action").as_deref(), Some(""));
        assert_eq!(field(b"", "action"), None);
        assert_eq!(field(b"\xff\xfe", "action"), None);
    }

    #[test]
    fn the_one_click_body_is_recognised_in_both_encodings() {
        let urlencoded = Some("application/x-www-form-urlencoded");
        assert!(is_one_click(urlencoded, b"List-Unsubscribe=One-Click"));
        assert!(is_one_click(None, b"List-Unsubscribe=One-Click"));
        assert!(is_one_click(urlencoded, b"List-Unsubscribe=One-Click\r\n"));
        assert!(!is_one_click(urlencoded, b""));
        assert!(!is_one_click(urlencoded, b"List-Unsubscribe=Other"));
        assert!(!is_one_click(urlencoded, b"action=unsubscribe"));
        let multipart = "--b\r\nContent-Disposition: form-data; name=\"List-Unsubscribe\"\r\n\r\nOne-Click\r\n--b--\r\n";
        assert!(is_one_click(
            Some("multipart/form-data; boundary=b"),
            multipart.as_bytes()
        ));
        assert!(!is_one_click(
            Some("multipart/form-data; boundary=b"),
            b"--b--"
        ));
    }
}

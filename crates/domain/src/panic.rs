//! Reading a caught panic, so a failure contained to one request or one email can say why.

use std::any::Any;

/// The text of a panic's payload (what `panic!` was given), or `"unknown panic"`.
pub fn message(payload: &(dyn Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".to_owned())
}

#[cfg(test)]
mod tests {
    #[test]
    fn static_and_formatted_messages_are_read() {
        let caught = std::panic::catch_unwind(|| panic!("static")).unwrap_err();
        assert_eq!(super::message(caught.as_ref()), "static");
        let n = 3;
        let caught = std::panic::catch_unwind(|| panic!("formatted {n}")).unwrap_err();
        assert_eq!(super::message(caught.as_ref()), "formatted 3");
        let caught = std::panic::catch_unwind(|| std::panic::panic_any(7u8)).unwrap_err();
        assert_eq!(super::message(caught.as_ref()), "unknown panic");
    }
}

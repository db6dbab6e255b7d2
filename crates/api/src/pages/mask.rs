//! The partially masked address a hosted page shows: enough for the reader to recognise their
//! address, not enough to harvest it from a forwarded link.

/// `ada@example.org` → `a***@example.org`: the first character of the local part, three stars,
/// and the domain. Something without `@` shows as `***`.
pub fn mask_address(address: &str) -> String {
    match address.rsplit_once('@') {
        Some((local, domain)) => {
            let first: String = local.chars().take(1).collect();
            format!("{first}***@{domain}")
        }
        None => "***".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_first_character_of_the_local_part_stays() {
        assert_eq!(mask_address("ada@example.org"), "a***@example.org");
        assert_eq!(mask_address("a@example.org"), "a***@example.org");
        assert_eq!(
            mask_address("\"odd@name\"@example.org"),
            "\"***@example.org"
        );
        assert_eq!(mask_address("zoë@b.co"), "z***@b.co");
        assert_eq!(mask_address("nothing"), "***");
    }
}

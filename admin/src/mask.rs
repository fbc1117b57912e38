//! Masking of card, phone and account numbers: everyone but the requisite's owner (and the
//! payer on the payment page) sees only the first 6 and last 4 digits of a card, and the last
//! 4 characters of a phone or account number.

/// The parts kept for masking: (first 6 for cards, last 4).
pub fn visible_parts(kind: &str, number: &str) -> (Option<String>, String) {
    let chars: Vec<char> = number.chars().collect();
    let last4: String = chars[chars.len().saturating_sub(4)..].iter().collect();
    let first6 = (kind == "card").then(|| chars.iter().take(6).collect());
    (first6, last4)
}

/// The masked form shown to everyone but the owner.
pub fn masked(kind: &str, first6: Option<&str>, last4: &str) -> String {
    match (kind, first6) {
        ("card", Some(first6)) => format!("{first6}******{last4}"),
        _ => format!("****{last4}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cards_keep_first_six_and_last_four() {
        let (first6, last4) = visible_parts("card", "4276550012345678");
        assert_eq!(
            masked("card", first6.as_deref(), &last4),
            "427655******5678"
        );
    }

    #[test]
    fn phones_and_accounts_keep_last_four() {
        let (first6, last4) = visible_parts("phone", "+79001234567");
        assert_eq!(first6, None);
        assert_eq!(masked("phone", None, &last4), "****4567");
        let (_, last4) = visible_parts("account", "40817810099910004312");
        assert_eq!(masked("account", None, &last4), "****4312");
    }
}

//! Field checks shared by the management API and the gateway. Each refuses with a
//! [`FieldError`] that names the field and the rule, before anything is written; the HTTP
//! edges answer it as 422 `validation_failed` (see `jivapay_platform::http::error`).

use rust_decimal::Decimal;

/// A field that breaks its rule; the message names the field and the rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct FieldError(pub String);

impl FieldError {
    fn new(message: impl Into<String>) -> Self {
        Self(message.into())
    }
}

/// Upper bound of any single fiat amount or limit (an "absurd" value is refused, not stored).
pub fn max_fiat() -> Decimal {
    Decimal::from(1_000_000_000_i64)
}

pub fn text(field: &str, value: &str, max_chars: usize) -> Result<String, FieldError> {
    let trimmed = value.trim();
    if trimmed.is_empty() || trimmed.chars().count() > max_chars {
        return Err(FieldError::new(format!(
            "{field} must be 1 to {max_chars} characters"
        )));
    }
    if trimmed.chars().any(char::is_control) {
        return Err(FieldError::new(format!(
            "{field} must not contain control characters"
        )));
    }
    Ok(trimmed.to_owned())
}

/// A positive fiat amount with at most 2 places, not above [`max_fiat`].
pub fn fiat(field: &str, value: Decimal) -> Result<Decimal, FieldError> {
    if value <= Decimal::ZERO || value > max_fiat() {
        return Err(FieldError::new(format!(
            "{field} must be greater than 0 and at most {}",
            max_fiat()
        )));
    }
    jivapay_domain::money::at_scale(value, 2)
        .map_err(|_| FieldError::new(format!("{field} must have at most 2 decimal places")))
}

pub fn int_range(field: &str, value: i64, min: i64, max: i64) -> Result<i32, FieldError> {
    if value < min || value > max {
        return Err(FieldError::new(format!(
            "{field} must be between {min} and {max}"
        )));
    }
    Ok(value as i32)
}

/// A percentage from 0 to 100 with at most 4 places.
pub fn percent(field: &str, value: Decimal) -> Result<Decimal, FieldError> {
    if value < Decimal::ZERO || value > Decimal::from(100) {
        return Err(FieldError::new(format!(
            "{field} must be between 0 and 100"
        )));
    }
    jivapay_domain::money::at_scale(value, 4)
        .map_err(|_| FieldError::new(format!("{field} must have at most 4 decimal places")))
}

/// An http(s) URL without credentials, at most 2048 characters.
pub fn url(field: &str, value: &str) -> Result<String, FieldError> {
    let value = value.trim();
    let scheme_ok = value.starts_with("https://") || value.starts_with("http://");
    let host = value
        .split("://")
        .nth(1)
        .unwrap_or("")
        .split(['/', '?', '#'])
        .next()
        .unwrap_or("");
    if !scheme_ok
        || host.is_empty()
        || host.contains('@')
        || value.len() > 2048
        || value.contains(char::is_whitespace)
    {
        return Err(FieldError::new(format!(
            "{field} must be an http(s) URL without credentials"
        )));
    }
    Ok(value.to_owned())
}

/// Luhn checksum of a card number (digits only).
pub fn luhn(digits: &str) -> bool {
    let mut sum = 0;
    for (i, c) in digits.chars().rev().enumerate() {
        let Some(mut d) = c.to_digit(10) else {
            return false;
        };
        if i % 2 == 1 {
            d *= 2;
            if d > 9 {
                d -= 9;
            }
        }
        sum += d;
    }
    sum % 10 == 0
}

/// Normalises and checks a requisite number for its kind.
pub fn requisite_number(kind: &str, number: &str) -> Result<String, FieldError> {
    let compact: String = number.chars().filter(|c| !matches!(c, ' ' | '-')).collect();
    let ok = match kind {
        "card" => {
            (12..=19).contains(&compact.len())
                && compact.chars().all(|c| c.is_ascii_digit())
                && luhn(&compact)
        }
        "phone" => {
            let digits = compact.strip_prefix('+').unwrap_or(&compact);
            (10..=15).contains(&digits.len()) && digits.chars().all(|c| c.is_ascii_digit())
        }
        "account" => {
            (8..=34).contains(&compact.len()) && compact.chars().all(|c| c.is_ascii_alphanumeric())
        }
        _ => return Err(FieldError::new("kind must be card, phone or account")),
    };
    if !ok {
        return Err(FieldError::new(match kind {
            "card" => "number must be a valid card number (12 to 19 digits, Luhn checksum)",
            "phone" => "number must be a phone number of 10 to 15 digits",
            _ => "number must be an account number of 8 to 34 letters and digits",
        }));
    }
    Ok(compact)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn card_numbers_need_a_valid_checksum() {
        assert!(requisite_number("card", "4276 5500 1234 5678").is_err());
        assert_eq!(
            requisite_number("card", "4111 1111 1111 1111").unwrap(),
            "4111111111111111"
        );
        assert!(requisite_number("phone", "+7 900 123-45-67").is_ok());
        assert!(requisite_number("phone", "12345").is_err());
        assert!(requisite_number("account", "40817810099910004312").is_ok());
        assert!(requisite_number("iban", "x").is_err());
    }

    #[test]
    fn amounts_are_positive_bounded_and_at_scale() {
        assert!(fiat("x", Decimal::new(-1, 0)).is_err());
        assert!(fiat("x", Decimal::new(1, 3)).is_err());
        assert!(fiat("x", Decimal::from(2_000_000_000_i64)).is_err());
        assert_eq!(fiat("x", Decimal::new(15, 1)).unwrap().to_string(), "1.50");
    }

    #[test]
    fn urls_are_http_without_credentials() {
        assert!(url("u", "https://shop.example/cb").is_ok());
        assert!(url("u", "ftp://shop.example").is_err());
        assert!(url("u", "https://user:pw@shop.example").is_err());
        assert!(url("u", "https://").is_err());
    }
}

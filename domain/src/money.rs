//! Money is decimal, never floating point. Fiat amounts carry 2 decimal places, USDT 6; a value
//! with more places is refused rather than silently rounded (rounding is always explicit).

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

/// Decimal places of every fiat amount.
pub const FIAT_SCALE: u32 = 2;
/// Decimal places of every USDT amount.
pub const USDT_SCALE: u32 = 6;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MoneyError {
    #[error("amount {0} has more than {1} decimal places")]
    TooPrecise(Decimal, u32),
    #[error("amount {0} must be greater than zero")]
    NotPositive(Decimal),
    #[error("currency code {0:?} must be 3 to 5 upper-case ASCII letters")]
    BadCurrency(String),
}

/// Why a text is no amount.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseAmountError {
    #[error("not a decimal number")]
    NotDecimal,
    #[error(transparent)]
    Money(#[from] MoneyError),
}

/// Gives `amount` exactly `scale` decimal places, refusing any that would be lost.
pub fn at_scale(amount: Decimal, scale: u32) -> Result<Decimal, MoneyError> {
    let mut exact = amount.normalize();
    if exact.scale() > scale {
        return Err(MoneyError::TooPrecise(amount, scale));
    }
    exact.rescale(scale);
    Ok(exact)
}

macro_rules! amount {
    ($(#[$doc:meta])* $name:ident, $scale:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(try_from = "Decimal", into = "Decimal")]
        pub struct $name(Decimal);

        impl $name {
            pub const SCALE: u32 = $scale;

            /// An amount with at most `SCALE` places (zero and negatives allowed: balances
            /// and ledger legs use them).
            pub fn new(amount: Decimal) -> Result<Self, MoneyError> {
                at_scale(amount, $scale).map(Self)
            }

            /// An amount an order may carry: strictly positive.
            pub fn positive(amount: Decimal) -> Result<Self, MoneyError> {
                if amount <= Decimal::ZERO {
                    return Err(MoneyError::NotPositive(amount));
                }
                Self::new(amount)
            }

            pub fn value(&self) -> Decimal {
                self.0
            }

            pub const ZERO: Self = Self(Decimal::from_parts(0, 0, 0, false, $scale));

            /// `amount` rounded to `SCALE` places, half away from zero: the one rounding rule
            /// of every computed amount (rates, commissions).
            pub fn rounded(amount: Decimal) -> Self {
                let mut exact = amount.round_dp_with_strategy(
                    $scale,
                    rust_decimal::RoundingStrategy::MidpointAwayFromZero,
                );
                exact.rescale($scale);
                Self(exact)
            }
        }

        /// Zero at `SCALE` places.
        impl Default for $name {
            fn default() -> Self {
                Self::ZERO
            }
        }

        // Sums and differences of amounts at one scale keep that scale.
        impl std::ops::Add for $name {
            type Output = Self;
            fn add(self, other: Self) -> Self {
                Self(self.0 + other.0)
            }
        }

        impl std::ops::Sub for $name {
            type Output = Self;
            fn sub(self, other: Self) -> Self {
                Self(self.0 - other.0)
            }
        }

        impl std::ops::AddAssign for $name {
            fn add_assign(&mut self, other: Self) {
                self.0 += other.0;
            }
        }

        impl std::ops::SubAssign for $name {
            fn sub_assign(&mut self, other: Self) {
                self.0 -= other.0;
            }
        }

        impl std::ops::Neg for $name {
            type Output = Self;
            fn neg(self) -> Self {
                Self(-self.0)
            }
        }

        impl std::iter::Sum for $name {
            fn sum<I: Iterator<Item = Self>>(amounts: I) -> Self {
                amounts.fold(Self::ZERO, |total, amount| total + amount)
            }
        }

        impl<'a> std::iter::Sum<&'a $name> for $name {
            fn sum<I: Iterator<Item = &'a Self>>(amounts: I) -> Self {
                amounts.copied().sum()
            }
        }

        impl TryFrom<Decimal> for $name {
            type Error = MoneyError;
            fn try_from(amount: Decimal) -> Result<Self, Self::Error> {
                Self::new(amount)
            }
        }

        impl From<$name> for Decimal {
            fn from(amount: $name) -> Decimal {
                amount.0
            }
        }

        /// Parses a decimal string with at most `SCALE` places.
        impl std::str::FromStr for $name {
            type Err = ParseAmountError;
            fn from_str(text: &str) -> Result<Self, Self::Err> {
                let amount: Decimal = text.parse().map_err(|_| ParseAmountError::NotDecimal)?;
                Ok(Self::new(amount)?)
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                self.0.fmt(f)
            }
        }

        #[cfg(feature = "sqlx")]
        impl sqlx::Type<sqlx::Postgres> for $name {
            fn type_info() -> sqlx::postgres::PgTypeInfo {
                <Decimal as sqlx::Type<sqlx::Postgres>>::type_info()
            }
        }

        #[cfg(feature = "sqlx")]
        impl sqlx::postgres::PgHasArrayType for $name {
            fn array_type_info() -> sqlx::postgres::PgTypeInfo {
                <Decimal as sqlx::postgres::PgHasArrayType>::array_type_info()
            }
        }

        #[cfg(feature = "sqlx")]
        impl<'q> sqlx::Encode<'q, sqlx::Postgres> for $name {
            fn encode_by_ref(
                &self,
                buf: &mut sqlx::postgres::PgArgumentBuffer,
            ) -> Result<sqlx::encode::IsNull, sqlx::error::BoxDynError> {
                <Decimal as sqlx::Encode<sqlx::Postgres>>::encode_by_ref(&self.0, buf)
            }
        }

        /// Read back through [`Self::new`]: a stored value with too many places is an error.
        #[cfg(feature = "sqlx")]
        impl<'r> sqlx::Decode<'r, sqlx::Postgres> for $name {
            fn decode(
                value: sqlx::postgres::PgValueRef<'r>,
            ) -> Result<Self, sqlx::error::BoxDynError> {
                let amount = <Decimal as sqlx::Decode<sqlx::Postgres>>::decode(value)?;
                Ok(Self::new(amount)?)
            }
        }
    };
}

amount!(
    /// A fiat amount (RUB, KZT, …) with exactly 2 decimal places.
    FiatAmount,
    FIAT_SCALE
);
amount!(
    /// A USDT amount with exactly 6 decimal places.
    UsdtAmount,
    USDT_SCALE
);

/// An ISO-4217-like currency code (`RUB`, `KZT`, `USDT`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Currency(String);

impl Currency {
    pub fn parse(code: &str) -> Result<Self, MoneyError> {
        let valid = (3..=5).contains(&code.len()) && code.bytes().all(|b| b.is_ascii_uppercase());
        if !valid {
            return Err(MoneyError::BadCurrency(code.to_owned()));
        }
        Ok(Self(code.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Currency {
    type Error = MoneyError;
    fn try_from(code: String) -> Result<Self, Self::Error> {
        Self::parse(&code)
    }
}

impl From<Currency> for String {
    fn from(currency: Currency) -> String {
        currency.0
    }
}

impl std::fmt::Display for Currency {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    fn d(s: &str) -> Decimal {
        Decimal::from_str(s).unwrap()
    }

    #[test]
    fn amounts_take_their_scale_exactly() {
        assert_eq!(
            FiatAmount::new(d("5000")).unwrap().value().to_string(),
            "5000.00"
        );
        assert_eq!(
            UsdtAmount::new(d("1.5")).unwrap().value().to_string(),
            "1.500000"
        );
        assert_eq!(
            FiatAmount::new(d("1.230")).unwrap().value().to_string(),
            "1.23"
        );
    }

    #[test]
    fn extra_places_are_refused_not_rounded() {
        assert_eq!(
            FiatAmount::new(d("1.005")),
            Err(MoneyError::TooPrecise(d("1.005"), 2))
        );
        assert!(UsdtAmount::new(d("0.0000001")).is_err());
    }

    #[test]
    fn order_amounts_are_positive() {
        assert!(FiatAmount::positive(d("0")).is_err());
        assert!(FiatAmount::positive(d("-1")).is_err());
        assert!(FiatAmount::positive(d("0.01")).is_ok());
    }

    #[test]
    fn currency_codes_are_validated() {
        assert!(Currency::parse("RUB").is_ok());
        assert!(Currency::parse("USDT").is_ok());
        assert!(Currency::parse("rub").is_err());
        assert!(Currency::parse("R").is_err());
        assert!(Currency::parse("RUBLES").is_err());
    }
}

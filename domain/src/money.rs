//! Money: exact decimals with at most two places, never floats.

use std::fmt;
use std::str::FromStr;

use rust_decimal::Decimal;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The largest amount the system accepts for one price or booking total.
const MAX_AMOUNT: Decimal = Decimal::from_parts(1_000_000_000, 0, 0, false, 0);

/// A non-negative amount with at most two decimal places.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Money(Decimal);

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum MoneyError {
    #[error("must be a decimal number")]
    NotANumber,
    #[error("must have at most two decimal places")]
    TooPrecise,
    #[error("must not be negative")]
    Negative,
    #[error("must be at most 1000000000")]
    TooLarge,
}

impl Money {
    pub const ZERO: Money = Money(Decimal::ZERO);

    pub fn new(amount: Decimal) -> Result<Self, MoneyError> {
        if amount.is_sign_negative() && !amount.is_zero() {
            return Err(MoneyError::Negative);
        }
        if amount.normalize().scale() > 2 {
            return Err(MoneyError::TooPrecise);
        }
        if amount > MAX_AMOUNT {
            return Err(MoneyError::TooLarge);
        }
        let mut amount = amount.abs();
        amount.rescale(2);
        Ok(Self(amount))
    }

    /// A JSON number as the client wrote it: Rust prints a float as the shortest text that reads
    /// back to the same float, which is the client's own digits for any realistic price.
    pub fn from_json_number(value: f64) -> Result<Self, MoneyError> {
        if !value.is_finite() {
            return Err(MoneyError::NotANumber);
        }
        value.to_string().parse()
    }

    pub fn amount(self) -> Decimal {
        self.0
    }

    /// The price of `quantity` items; `None` past the largest amount accepted.
    pub fn times(self, quantity: u32) -> Option<Money> {
        let total = self.0.checked_mul(Decimal::from(quantity))?;
        (total <= MAX_AMOUNT).then_some(Money(total))
    }
}

impl FromStr for Money {
    type Err = MoneyError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let valid_chars = !text.is_empty()
            && text
                .chars()
                .all(|c| c.is_ascii_digit() || matches!(c, '.' | '-' | '+'));
        if !valid_chars {
            return Err(MoneyError::NotANumber);
        }
        let amount = Decimal::from_str_exact(text).map_err(|_| MoneyError::NotANumber)?;
        Money::new(amount)
    }
}

/// Always two places (`10.00`): the form stored in Redis and used in request fingerprints.
impl fmt::Display for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A JSON number, which is what browsers and most clients expect of a price. Two-place decimals
/// survive the trip through `f64` text exactly.
impl Serialize for Money {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        rust_decimal::serde::float::serialize(&self.0, serializer)
    }
}

/// A JSON number or a decimal string, read from the digits written (JSON numbers keep their text:
/// the workspace's `serde_json` has `arbitrary_precision`).
impl<'de> Deserialize<'de> for Money {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        match serde_json::Value::deserialize(deserializer)? {
            serde_json::Value::Number(number) => number.to_string().parse(),
            serde_json::Value::String(text) => text.parse(),
            _ => Err(MoneyError::NotANumber),
        }
        .map_err(serde::de::Error::custom)
    }
}

impl utoipa::PartialSchema for Money {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::Schema> {
        use utoipa::openapi::schema::{ObjectBuilder, SchemaType, Type};
        ObjectBuilder::new()
            .schema_type(SchemaType::Type(Type::Number))
            .minimum(Some(0))
            .maximum(Some(1_000_000_000))
            .description(Some(
                "An amount in dollars with at most two decimal places, compared exactly.",
            ))
            .examples([serde_json::json!(20.5)])
            .into()
    }
}
impl utoipa::ToSchema for Money {}

/// The one currency sold today; an enum so adding one is a compile error everywhere it matters.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
pub enum Currency {
    #[serde(rename = "USD")]
    Usd,
}

impl Currency {
    pub fn code(self) -> &'static str {
        match self {
            Currency::Usd => "USD",
        }
    }
}

impl FromStr for Currency {
    type Err = &'static str;

    fn from_str(code: &str) -> Result<Self, Self::Err> {
        match code {
            "USD" => Ok(Currency::Usd),
            _ => Err("must be \"USD\""),
        }
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn money(text: &str) -> Result<Money, MoneyError> {
        text.parse()
    }

    #[test]
    fn parses_exact_two_place_amounts() {
        assert_eq!(money("10").map(|m| m.to_string()), Ok("10.00".into()));
        assert_eq!(money("0.1").map(|m| m.to_string()), Ok("0.10".into()));
        assert_eq!(money("99.99").map(|m| m.to_string()), Ok("99.99".into()));
        assert_eq!(money("1.500").map(|m| m.to_string()), Ok("1.50".into()));
    }

    #[test]
    fn refuses_what_is_not_money() {
        assert_eq!(money("1.001"), Err(MoneyError::TooPrecise));
        assert_eq!(money("-1"), Err(MoneyError::Negative));
        assert_eq!(money("1e3"), Err(MoneyError::NotANumber));
        assert_eq!(money(""), Err(MoneyError::NotANumber));
        assert_eq!(money("NaN"), Err(MoneyError::NotANumber));
        assert_eq!(money("1000000000.01"), Err(MoneyError::TooLarge));
    }

    #[test]
    fn json_numbers_keep_the_digits_the_client_wrote() {
        assert_eq!(
            Money::from_json_number(0.1).map(|m| m.to_string()),
            Ok("0.10".into())
        );
        assert_eq!(
            Money::from_json_number(300.3).map(|m| m.to_string()),
            Ok("300.30".into())
        );
        assert_eq!(Money::from_json_number(0.105), Err(MoneyError::TooPrecise));
        assert_eq!(
            Money::from_json_number(f64::NAN),
            Err(MoneyError::NotANumber)
        );
    }

    #[test]
    fn multiplication_is_exact() {
        let price = money("0.10").expect("valid");
        assert_eq!(price.times(3).map(|m| m.to_string()), Some("0.30".into()));
        assert_eq!(money("1000000000").expect("valid").times(2), None);
    }
}

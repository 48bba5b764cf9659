//! Numbers as the databases answer them: D1 sends every number as a float,
//! SQLite sends integers. These read either.

use serde::{Deserialize, Deserializer};

fn to_i64(v: &serde_json::Value) -> Option<i64> {
    v.as_i64().or_else(|| {
        v.as_f64()
            .filter(|f| f.fract() == 0.0 && f.abs() < 9.007_199_254_740_992e15)
            .map(|f| f as i64)
    })
}

/// An integer (or an instant), from a JSON integer or an integral float
/// (D1 answers numbers as floats; SQLite as integers).
pub fn int<'de, D: Deserializer<'de>, T: From<i64>>(d: D) -> Result<T, D::Error> {
    let v = serde_json::Value::deserialize(d)?;
    to_i64(&v)
        .map(T::from)
        .ok_or_else(|| serde::de::Error::custom(format!("expected an integer, got {v}")))
}

/// A non-negative integer that fits `T` (checkpoint counters).
pub fn uint<'de, D: Deserializer<'de>, T: TryFrom<i64>>(d: D) -> Result<T, D::Error> {
    let n: i64 = int(d)?;
    T::try_from(n).map_err(|_| serde::de::Error::custom(format!("{n} is out of range")))
}

/// An integer, or 0 for null.
pub fn int_or_zero<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    Ok(opt_int(d)?.unwrap_or(0))
}

/// An integer, or `None` for null.
pub fn opt_int<'de, D: Deserializer<'de>, T: From<i64>>(d: D) -> Result<Option<T>, D::Error> {
    let v = serde_json::Value::deserialize(d)?;
    if v.is_null() {
        return Ok(None);
    }
    to_i64(&v)
        .map(|n| Some(T::from(n)))
        .ok_or_else(|| serde::de::Error::custom(format!("expected an integer, got {v}")))
}

//! One value parser per kind of value on the command line: seconds,
//! rates, fractions, counts and backend names. Each says what it wants when
//! it refuses.

use std::str::FromStr;

/// A number of seconds, 0 or more (fractions allowed).
pub fn secs(s: &str) -> Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(x) if (0.0..1e9).contains(&x) => Ok(x),
        _ => Err(format!(
            "{s:?} is not a number of seconds (0 or more, e.g. 0.5)"
        )),
    }
}

/// A number of seconds greater than 0.
pub fn positive_secs(s: &str) -> Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(x) if x > 0.0 && x < 1e9 => Ok(x),
        _ => Err(format!(
            "{s:?} is not a number of seconds greater than 0 (e.g. 0.5)"
        )),
    }
}

/// A rate, per second, greater than 0 (fractions allowed).
pub fn rate(s: &str) -> Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(x) if x > 0.0 && x.is_finite() => Ok(x),
        _ => Err(format!("{s:?} is not a rate per second greater than 0")),
    }
}

/// A fraction above 0, at most 1.
pub fn fraction(s: &str) -> Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(x) if x > 0.0 && x <= 1.0 => Ok(x),
        _ => Err(format!(
            "{s:?} is not a fraction above 0, at most 1 (e.g. 0.02)"
        )),
    }
}

/// A whole number, at least 1.
pub fn count<T>(s: &str) -> Result<T, String>
where
    T: FromStr + PartialEq + From<u8>,
{
    match s.trim().parse::<T>() {
        Ok(n) if n != T::from(0) => Ok(n),
        Ok(_) => Err("must be at least 1".into()),
        Err(_) => Err(format!("{s:?} is not a whole number (at least 1)")),
    }
}

/// A backend name this OS has, listed for help and shell completion.
pub fn backend() -> impl clap::builder::TypedValueParser<Value = selector::BackendKind> {
    use clap::builder::TypedValueParser as _;
    clap::builder::PossibleValuesParser::new(selector::BackendKind::NAMES)
        .try_map(|s| s.parse::<selector::BackendKind>())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_kind_refuses_what_it_cannot_hold() {
        assert_eq!(secs("0"), Ok(0.0));
        assert!(secs("-1").is_err() && secs("x").is_err());
        assert_eq!(positive_secs("0.5"), Ok(0.5));
        assert!(positive_secs("0").is_err());
        assert_eq!(rate("2.5"), Ok(2.5));
        assert!(rate("0").is_err() && rate("inf").is_err());
        assert_eq!(fraction("0.02"), Ok(0.02));
        assert!(fraction("1.5").is_err() && fraction("0").is_err());
        assert_eq!(fraction("1"), Ok(1.0));
        assert_eq!(count::<u64>("3"), Ok(3));
        assert!(count::<usize>("0").is_err() && count::<usize>("1.5").is_err());
    }
}

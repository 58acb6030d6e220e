//! Resource quantities (`100m`, `1.5`, `64Mi`, `1G`, `1e3`): the fixed-point numbers used for
//! CPU, memory and every other resource. A quantity is a decimal mantissa times a power of ten or
//! of 1024, never a float; the apiserver stores it in *canonical form* (`0.5` → `500m`,
//! `1.5Gi` → `1536Mi`). Read `defaults.rs` (canonicalization) and `validation/pod.rs` (requests ≤ limits).

use std::cmp::Ordering;

/// The real error text for a quantity that does not parse (client-go `ErrFormatWrong`).
pub const FORMAT_WRONG: &str =
    "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'";

/// Why a string is not a quantity.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QuantityError {
    /// The number or suffix does not match the quantity grammar.
    #[error("{}", FORMAT_WRONG)]
    FormatWrong,
    /// The suffix is not one of the known SI, binary or exponent suffixes.
    #[error("unable to parse quantity's suffix")]
    Suffix,
    /// The value is too large to represent.
    #[error("unable to parse numeric part of quantity")]
    Numeric,
}

/// How the quantity was written; canonical output keeps the same family of suffix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `m`, ``, `k`, `M`, `G`, `T`, `P`, `E` (powers of 1000).
    DecimalSI,
    /// `Ki`, `Mi`, `Gi`, `Ti`, `Pi`, `Ei` (powers of 1024).
    BinarySI,
    /// `1e3`, `5E-3`.
    DecimalExponent,
}

/// A parsed quantity: `mantissa × 10^exponent`, exact.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quantity {
    pub mantissa: i128,
    pub exponent: i32,
    pub format: Format,
}

const BINARY: [(&str, u32); 6] = [
    ("Ki", 1),
    ("Mi", 2),
    ("Gi", 3),
    ("Ti", 4),
    ("Pi", 5),
    ("Ei", 6),
];
const DECIMAL: [(&str, i32); 10] = [
    ("n", -9),
    ("u", -6),
    ("m", -3),
    ("", 0),
    ("k", 3),
    ("M", 6),
    ("G", 9),
    ("T", 12),
    ("P", 15),
    ("E", 18),
];

/// Parses a quantity with the grammar of `resource.ParseQuantity`.
pub fn parse(input: &str) -> Result<Quantity, QuantityError> {
    let s = input.trim_end_matches(' ');
    if s.is_empty() {
        return Err(QuantityError::FormatWrong);
    }
    let bytes = s.as_bytes();
    let mut i = 0;
    let negative = match bytes[0] {
        b'-' => {
            i = 1;
            true
        }
        b'+' => {
            i = 1;
            false
        }
        _ => false,
    };
    let mut digits = String::new();
    let mut frac_len: i32 = 0;
    let mut seen_dot = false;
    while i < bytes.len() && (bytes[i].is_ascii_digit() || bytes[i] == b'.') {
        if bytes[i] == b'.' {
            if seen_dot {
                return Err(QuantityError::FormatWrong);
            }
            seen_dot = true;
        } else {
            digits.push(bytes[i] as char);
            if seen_dot {
                frac_len += 1;
            }
        }
        i += 1;
    }
    if digits.is_empty() {
        return Err(QuantityError::FormatWrong);
    }
    let suffix = &s[i..];
    let trimmed = digits.trim_start_matches('0');
    if trimmed.len() > 36 {
        return Err(QuantityError::Numeric);
    }
    let mut mantissa: i128 = if trimmed.is_empty() {
        0
    } else {
        trimmed.parse().map_err(|_| QuantityError::Numeric)?
    };
    if negative {
        mantissa = -mantissa;
    }
    let mut exponent = -frac_len;
    let format;
    if let Some((_, power)) = BINARY.iter().find(|(sfx, _)| *sfx == suffix) {
        format = Format::BinarySI;
        for _ in 0..*power {
            mantissa = mantissa.checked_mul(1024).ok_or(QuantityError::Numeric)?;
        }
    } else if let Some((_, exp)) = DECIMAL.iter().find(|(sfx, _)| *sfx == suffix) {
        format = Format::DecimalSI;
        exponent += exp;
    } else if let Some(rest) = suffix.strip_prefix(['e', 'E']) {
        let valid = !rest.is_empty()
            && rest.trim_start_matches(['+', '-']).len() + 1 >= rest.len()
            && rest
                .trim_start_matches(['+', '-'])
                .bytes()
                .all(|b| b.is_ascii_digit())
            && !rest.trim_start_matches(['+', '-']).is_empty();
        if !valid {
            return Err(QuantityError::FormatWrong);
        }
        let exp: i32 = rest.parse().map_err(|_| QuantityError::Numeric)?;
        format = Format::DecimalExponent;
        exponent += exp;
    } else if suffix
        .bytes()
        .all(|b| b"eEinumkKMGTP+-0123456789".contains(&b))
    {
        return Err(QuantityError::Suffix);
    } else {
        return Err(QuantityError::FormatWrong);
    }
    Ok(Quantity {
        mantissa,
        exponent,
        format,
    }
    .normalized())
}

impl Quantity {
    /// Strips trailing zeros of the mantissa into the exponent (same value).
    fn normalized(mut self) -> Self {
        if self.mantissa == 0 {
            self.exponent = 0;
            return self;
        }
        while self.mantissa % 10 == 0 {
            self.mantissa /= 10;
            self.exponent += 1;
        }
        self
    }

    /// True for a negative amount.
    pub fn is_negative(&self) -> bool {
        self.mantissa < 0
    }

    /// The value in thousandths, rounded up (what `MilliValue` gives), saturating.
    pub fn milli_value(&self) -> i128 {
        let exp = self.exponent + 3;
        if exp >= 0 {
            scale_up(self.mantissa, exp as u32).unwrap_or(if self.mantissa < 0 {
                i128::MIN
            } else {
                i128::MAX
            })
        } else {
            let div = pow10((-exp) as u32).unwrap_or(i128::MAX);
            let q = self.mantissa / div;
            if self.mantissa % div > 0 {
                q + 1
            } else {
                q
            }
        }
    }

    /// Rounds up to milli precision (`SetDefaults_ResourceList` does this to every request and limit).
    pub fn round_up_milli(self) -> Self {
        if self.exponent >= -3 {
            return self;
        }
        Quantity {
            mantissa: self.milli_value(),
            exponent: -3,
            format: self.format,
        }
        .normalized()
    }

    /// The canonical string, as the apiserver serializes it.
    pub fn canonical(&self) -> String {
        let mut format = self.format;
        if format == Format::BinarySI {
            let integral = self.exponent >= 0;
            let small =
                self.cmp_int(-1024) == Ordering::Greater && self.cmp_int(1024) == Ordering::Less;
            if small || !integral {
                format = Format::DecimalSI;
            }
        }
        match format {
            Format::BinarySI => {
                let Some(mut value) = scale_up(self.mantissa, self.exponent as u32) else {
                    return self.decimal_string(Format::DecimalExponent);
                };
                let mut power = 0;
                while power < 6 && value != 0 && value % 1024 == 0 {
                    value /= 1024;
                    power += 1;
                }
                let suffix = if power == 0 { "" } else { BINARY[power - 1].0 };
                format!("{value}{suffix}")
            }
            other => self.decimal_string(other),
        }
    }

    fn decimal_string(&self, format: Format) -> String {
        if self.mantissa == 0 {
            return "0".to_string();
        }
        // Largest exponent that is a multiple of 3 and keeps the mantissa integral.
        let exp3 = self.exponent.div_euclid(3) * 3;
        let mantissa =
            scale_up(self.mantissa, (self.exponent - exp3) as u32).unwrap_or(self.mantissa);
        match format {
            Format::DecimalExponent => {
                if exp3 == 0 {
                    format!("{mantissa}")
                } else {
                    format!("{mantissa}e{exp3}")
                }
            }
            _ => match DECIMAL.iter().find(|(_, e)| *e == exp3) {
                Some((sfx, _)) => format!("{mantissa}{sfx}"),
                None if exp3 > 18 => {
                    let m = scale_up(mantissa, (exp3 - 18) as u32).map(|m| format!("{m}E"));
                    m.unwrap_or_else(|| format!("{mantissa}e{exp3}"))
                }
                None => format!("{mantissa}e{exp3}"),
            },
        }
    }

    fn cmp_int(&self, other: i128) -> Ordering {
        self.compare(&Quantity {
            mantissa: other,
            exponent: 0,
            format: Format::DecimalSI,
        })
    }

    /// Compares two amounts exactly (`Quantity.Cmp`).
    pub fn compare(&self, other: &Quantity) -> Ordering {
        let exp = self.exponent.min(other.exponent);
        let a = scale_up(self.mantissa, (self.exponent - exp) as u32);
        let b = scale_up(other.mantissa, (other.exponent - exp) as u32);
        match (a, b) {
            (Some(a), Some(b)) => a.cmp(&b),
            // Overflow only happens with huge magnitude differences: compare as floats.
            _ => {
                let fa = self.mantissa as f64 * 10f64.powi(self.exponent);
                let fb = other.mantissa as f64 * 10f64.powi(other.exponent);
                fa.partial_cmp(&fb).unwrap_or(Ordering::Equal)
            }
        }
    }
}

fn pow10(n: u32) -> Option<i128> {
    10i128.checked_pow(n)
}

fn scale_up(m: i128, by: u32) -> Option<i128> {
    pow10(by).and_then(|p| m.checked_mul(p))
}

/// Parses and re-emits a quantity in canonical form, rounded up to milli precision.
pub fn canonicalize(input: &str) -> Result<String, QuantityError> {
    Ok(parse(input)?.round_up_milli().canonical())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_real_syntax() {
        for ok in [
            "100m", "1.5", "64Mi", "1G", "1e3", "0", "+1", "-2", ".5", "5.", "1E-3", "100n", "2Ki",
        ] {
            assert!(parse(ok).is_ok(), "{ok}");
        }
        for bad in ["", "abc", "1.2.3", "1Mo", "1e", "m", "1 Gi"] {
            assert!(parse(bad).is_err(), "{bad}");
        }
        assert_eq!(parse("1x").unwrap_err().to_string(), FORMAT_WRONG);
    }

    #[test]
    fn canonical_form_matches_apimachinery() {
        let cases = [
            ("0.5", "500m"),
            ("1.5", "1500m"),
            ("1000m", "1"),
            ("1000", "1k"),
            ("1.5Gi", "1536Mi"),
            ("1024Mi", "1Gi"),
            ("1e3", "1e3"),
            ("64Mi", "64Mi"),
            ("100m", "100m"),
            ("0.1m", "1m"),
            ("512", "512"),
            ("1G", "1G"),
            ("2000Ki", "2000Ki"),
            ("0", "0"),
            ("100n", "1m"),
        ];
        for (input, want) in cases {
            assert_eq!(canonicalize(input).unwrap(), want, "{input}");
        }
    }

    #[test]
    fn compares_across_suffixes() {
        assert_eq!(
            parse("1").unwrap().compare(&parse("1000m").unwrap()),
            Ordering::Equal
        );
        assert_eq!(
            parse("1Gi").unwrap().compare(&parse("1G").unwrap()),
            Ordering::Greater
        );
        assert_eq!(
            parse("500m").unwrap().compare(&parse("0.6").unwrap()),
            Ordering::Less
        );
        assert_eq!(parse("1.5").unwrap().milli_value(), 1500);
    }
}

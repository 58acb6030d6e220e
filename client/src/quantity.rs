//! Resource quantities (`500m`, `2`, `1.5Gi`, `128M`, `1e3`): the fixed-point numbers Kubernetes
//! uses for CPU, memory, pod counts and every other resource, parsed and printed exactly as
//! `resource.Quantity` in k8s.io/apimachinery does.
//!
//! A quantity is a signed decimal number and a suffix: decimal SI (`n u m "" k M G T P E`, powers
//! of 1000), binary SI (`Ki Mi Gi Ti Pi Ei`, powers of 1024) or a decimal exponent (`e3`, `E-6`).
//! It is never a float: `0.1` is one tenth exactly, held here as `mantissa × 10^exponent` in
//! integers. Parsing rounds anything finer than a nano (10⁻⁹) up, away from zero, and caps a
//! binary quantity at 2⁶³−1; reading a value (`millis()` for CPU, `value()` for bytes and
//! counts) rounds up the same way, as `MilliValue` and `Value` do. `canonical()` is the form the
//! apiserver stores (`0.5` → `500m`, `1.5Gi` → `1536Mi`). Every component uses this one parser:
//! the apiserver to default and validate, the scheduler to add up requests, the kubelet to set
//! cgroup limits. Read next: `scheduler/src/resources.rs`, a caller.

use std::cmp::Ordering;
use std::fmt;
use std::str::FromStr;

use k8s_openapi::apimachinery::pkg::api::resource::Quantity as ApiQuantity;

/// The error text for a string that is not a quantity (apimachinery's `ErrFormatWrong`).
pub const FORMAT_WRONG: &str =
    "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'";

/// Why a string is not a quantity; the messages are apimachinery's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QuantityError {
    /// The string is empty, or characters follow the number that no suffix can hold.
    #[error("{}", FORMAT_WRONG)]
    FormatWrong,
    /// The suffix is none of the SI, binary or exponent suffixes (`1Zi`, `1e`).
    #[error("unable to parse quantity's suffix")]
    Suffix,
    /// The number cannot be held: more significant digits than 128 bits carry (Kubernetes
    /// keeps those in arbitrary precision), or a number without digits where Kubernetes
    /// refuses one (see [`Quantity::from_str`]).
    #[error("unable to parse numeric part of quantity")]
    Numeric,
}

/// How a quantity was written; its canonical form keeps the same family of suffix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `n`, `u`, `m`, ``, `k`, `M`, `G`, `T`, `P`, `E` (powers of 1000).
    DecimalSI,
    /// `Ki`, `Mi`, `Gi`, `Ti`, `Pi`, `Ei` (powers of 1024).
    BinarySI,
    /// `1e3`, `5E-3`.
    DecimalExponent,
}

/// An exact quantity: `mantissa × 10^exponent`, with no trailing zeros in the mantissa (zero
/// is `0 × 10^0`), so equal amounts have equal fields; `==` also compares the format, while
/// [`Quantity::compare`] compares amounts only.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quantity {
    mantissa: i128,
    exponent: i32,
    format: Format,
}

/// The decimal SI suffixes and their powers of ten.
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

/// The binary SI suffixes and their powers of two.
const BINARY: [(&str, u32); 6] = [
    ("Ki", 10),
    ("Mi", 20),
    ("Gi", 30),
    ("Ti", 40),
    ("Pi", 50),
    ("Ei", 60),
];

/// Parsing rounds up to this power of ten (nano).
const NANO: i64 = -9;

/// The largest binary quantity (apimachinery's `maxAllowed`, 2⁶³−1).
const MAX_BINARY: i128 = i64::MAX as i128;

/// What a suffix multiplies the number by.
#[derive(Debug, Clone, Copy)]
enum Scale {
    /// × 10^n.
    Decimal(i64),
    /// × 2^n.
    Binary(u32),
}

impl FromStr for Quantity {
    type Err = QuantityError;

    /// `resource.ParseQuantity`: no surrounding whitespace (see the `TryFrom<&ApiQuantity>`
    /// impl for what JSON decoding accepts). A number without digits (`.`, `-`, `m`) is
    /// zero wherever apimachinery's fast path reads it (a suffix from `n` up to `Ti`) and
    /// [`QuantityError::Numeric`] elsewhere, as there.
    fn from_str(s: &str) -> Result<Quantity, QuantityError> {
        let (negative, unsigned) = match s.as_bytes().first() {
            None => return Err(QuantityError::FormatWrong),
            Some(b'-') => (true, &s[1..]),
            Some(b'+') => (false, &s[1..]),
            Some(_) => (false, s),
        };
        let (integer, rest) = split_digits(unsigned);
        let (fraction, suffix) = match rest.strip_prefix('.') {
            Some(after_dot) => split_digits(after_dot),
            None => ("", rest),
        };
        check_suffix_shape(suffix)?;
        let (scale, format) = interpret(suffix).ok_or(QuantityError::Suffix)?;
        if integer.is_empty() && fraction.is_empty() {
            let fast_path = match scale {
                Scale::Decimal(power) => power >= NANO,
                Scale::Binary(power) => power <= 40,
            };
            return if fast_path {
                Ok(Quantity::zero(format))
            } else {
                Err(QuantityError::Numeric)
            };
        }
        let (magnitude, exponent) = exact_magnitude(integer, fraction, scale)?;
        let mantissa = if negative { -magnitude } else { magnitude };
        Quantity::from_parts(mantissa, exponent, format)
    }
}

/// Splits `s` after its leading ASCII digits.
fn split_digits(s: &str) -> (&str, &str) {
    s.split_at(s.bytes().take_while(u8::is_ascii_digit).count())
}

/// A suffix is suffix letters, then an optional sign, then digits (the grammar's
/// `[eEinumkKMGTP]*[-+]?[0-9]*`); anything else is [`QuantityError::FormatWrong`].
fn check_suffix_shape(suffix: &str) -> Result<(), QuantityError> {
    let rest = suffix.trim_start_matches(|c| "eEinumkKMGTP".contains(c));
    let rest = rest.strip_prefix(['+', '-']).unwrap_or(rest);
    if rest.bytes().all(|b| b.is_ascii_digit()) {
        Ok(())
    } else {
        Err(QuantityError::FormatWrong)
    }
}

/// The multiplier and format a suffix stands for; `None` for an unknown one. A decimal
/// exponent must fit an `int32` and its negation (apimachinery's bound).
fn interpret(suffix: &str) -> Option<(Scale, Format)> {
    if let Some((_, power)) = DECIMAL.iter().find(|(s, _)| *s == suffix) {
        return Some((Scale::Decimal(i64::from(*power)), Format::DecimalSI));
    }
    if let Some((_, power)) = BINARY.iter().find(|(s, _)| *s == suffix) {
        return Some((Scale::Binary(*power), Format::BinarySI));
    }
    let digits = suffix.strip_prefix(['e', 'E']).filter(|d| !d.is_empty())?;
    let power: i32 = digits.parse().ok().filter(|p| *p != i32::MIN)?;
    Some((Scale::Decimal(i64::from(power)), Format::DecimalExponent))
}

/// The unsigned value of `integer.fraction × scale` as `(mantissa, exponent)`, rounded up to
/// a nano. Digits below the nano only decide whether to round up, so a long tail of them is
/// never multiplied out.
fn exact_magnitude(
    integer: &str,
    fraction: &str,
    scale: Scale,
) -> Result<(i128, i64), QuantityError> {
    let digits = format!("{integer}{fraction}");
    let digits = digits.trim_start_matches('0');
    let fraction_len = fraction.len() as i64;
    let (mut kept, mut exponent, mut round_up) = (digits, -fraction_len, false);
    if let Scale::Decimal(power) = scale {
        exponent += power;
        if exponent < NANO {
            let dropped = usize::try_from(NANO - exponent).unwrap_or(usize::MAX);
            let split = digits.len().saturating_sub(dropped);
            round_up = digits[split..].bytes().any(|b| b != b'0');
            kept = &digits[..split];
            exponent = NANO;
        }
    }
    let mut mantissa: i128 = match kept {
        "" => 0,
        d => d.parse().map_err(|_| QuantityError::Numeric)?,
    };
    if let Scale::Binary(power) = scale {
        mantissa = mantissa
            .checked_mul(1i128 << power)
            .ok_or(QuantityError::Numeric)?;
        if exponent < NANO {
            mantissa = div_away_from_zero(mantissa, NANO - exponent);
            exponent = NANO;
        }
    }
    if round_up {
        mantissa += 1;
    }
    Ok((mantissa, exponent))
}

impl TryFrom<&ApiQuantity> for Quantity {
    type Error = QuantityError;

    /// A quantity from an API object: surrounding whitespace is ignored, as apimachinery's
    /// JSON decoding trims it before parsing.
    fn try_from(q: &ApiQuantity) -> Result<Quantity, QuantityError> {
        q.0.trim().parse()
    }
}

impl Quantity {
    /// `mantissa × 10^exponent` in `format` (apimachinery's `NewScaledQuantity` and friends:
    /// `Quantity::new(1500, -3, Format::DecimalSI)` is `1500m`).
    pub fn new(mantissa: i128, exponent: i32, format: Format) -> Quantity {
        Quantity {
            mantissa,
            exponent,
            format,
        }
        .normalized()
    }

    /// Zero in `format`.
    fn zero(format: Format) -> Quantity {
        Quantity::new(0, 0, format)
    }

    /// A parsed amount: a binary one capped at 2⁶³−1, and a binary fraction of one below 1
    /// written as decimal SI, as apimachinery does.
    fn from_parts(
        mantissa: i128,
        exponent: i64,
        format: Format,
    ) -> Result<Quantity, QuantityError> {
        let exponent = i32::try_from(exponent).map_err(|_| QuantityError::Numeric)?;
        let mut q = Quantity::new(mantissa, exponent, format);
        if format == Format::BinarySI {
            let cap = Quantity::new(MAX_BINARY, 0, format);
            if q.magnitude().compare(&cap) == Ordering::Greater {
                q = Quantity::new(MAX_BINARY * mantissa.signum(), 0, format);
            }
            let one = Quantity::new(1, 0, format);
            if q.mantissa != 0 && q.magnitude().compare(&one) == Ordering::Less {
                q.format = Format::DecimalSI;
            }
        }
        Ok(q)
    }

    /// Moves trailing zeros of the mantissa into the exponent (same amount).
    fn normalized(mut self) -> Quantity {
        if self.mantissa == 0 {
            self.exponent = 0;
            return self;
        }
        while self.mantissa % 10 == 0 && self.exponent < i32::MAX {
            self.mantissa /= 10;
            self.exponent += 1;
        }
        self
    }

    /// The absolute amount.
    fn magnitude(&self) -> Quantity {
        Quantity {
            mantissa: self.mantissa.abs(),
            ..*self
        }
    }

    /// How the quantity was written.
    pub fn format(&self) -> Format {
        self.format
    }

    /// True for zero.
    pub fn is_zero(&self) -> bool {
        self.mantissa == 0
    }

    /// True for a negative amount.
    pub fn is_negative(&self) -> bool {
        self.mantissa < 0
    }

    /// The amount in units of 10^`scale`, rounded away from zero (`ScaledValue`); saturates
    /// at the bounds of `i64`, where apimachinery's result is undefined.
    pub fn scaled_value(&self, scale: i32) -> i64 {
        let shift = i64::from(self.exponent) - i64::from(scale);
        let value = if shift >= 0 {
            pow10(shift).and_then(|p| self.mantissa.checked_mul(p))
        } else {
            Some(div_away_from_zero(self.mantissa, -shift))
        };
        let saturated = if self.is_negative() {
            i64::MIN
        } else {
            i64::MAX
        };
        value
            .and_then(|v| i64::try_from(v).ok())
            .unwrap_or(saturated)
    }

    /// The amount in whole units (cores, bytes, pods), rounded away from zero (`Value`).
    pub fn value(&self) -> i64 {
        self.scaled_value(0)
    }

    /// The amount in thousandths (millicores for CPU), rounded away from zero (`MilliValue`).
    pub fn millis(&self) -> i64 {
        self.scaled_value(-3)
    }

    /// The amount rounded away from zero to a multiple of 10^`scale` (`RoundUp`); the
    /// apiserver rounds every request and limit to milli precision (`round_up(-3)`).
    pub fn round_up(&self, scale: i32) -> Quantity {
        if self.exponent >= scale {
            return *self;
        }
        let shift = i64::from(scale) - i64::from(self.exponent);
        Quantity::new(div_away_from_zero(self.mantissa, shift), scale, self.format)
    }

    /// Compares two amounts exactly, whatever their suffixes (`Cmp`).
    pub fn compare(&self, other: &Quantity) -> Ordering {
        let (a, b) = (self.mantissa.signum(), other.mantissa.signum());
        if a != b || a == 0 {
            return a.cmp(&b);
        }
        let by_magnitude = compare_magnitudes(
            (self.mantissa.unsigned_abs(), self.exponent),
            (other.mantissa.unsigned_abs(), other.exponent),
        );
        if a < 0 {
            by_magnitude.reverse()
        } else {
            by_magnitude
        }
    }

    /// The canonical string (`String`): the largest suffix of the quantity's family that
    /// leaves an integer, `0` for zero. A binary amount below 1024 or with a fraction is
    /// written in decimal SI; an amount past the largest suffix in exponent notation.
    pub fn canonical(&self) -> String {
        if self.mantissa == 0 {
            return "0".to_string();
        }
        let mut format = self.format;
        if format == Format::BinarySI {
            let small = self
                .magnitude()
                .compare(&Quantity::new(1024, 0, format))
                .is_lt();
            if small || self.exponent < 0 {
                format = Format::DecimalSI;
            }
        }
        match format {
            Format::BinarySI => self.binary_string(),
            Format::DecimalSI | Format::DecimalExponent => self.decimal_string(format),
        }
    }

    /// An integral binary amount as `<n><Ki…Ei>`, in exponent notation past `Ei`.
    fn binary_string(&self) -> String {
        let Some(mut value) =
            pow10(i64::from(self.exponent)).and_then(|p| self.mantissa.checked_mul(p))
        else {
            return self.decimal_string(Format::DecimalExponent);
        };
        let mut power = 0;
        while value % 1024 == 0 {
            value /= 1024;
            power += 1;
        }
        match power {
            0 => value.to_string(),
            p if p <= BINARY.len() => format!("{value}{}", BINARY[p - 1].0),
            _ => self.decimal_string(Format::DecimalExponent),
        }
    }

    /// The amount with an exponent that is a multiple of three, the mantissa an integer, and
    /// the exponent written as an SI suffix (`DecimalSI`, where one exists) or as `e<n>`.
    fn decimal_string(&self, format: Format) -> String {
        let exponent3 = self.exponent.div_euclid(3) * 3;
        let extra = i64::from(self.exponent - exponent3);
        let Some(mantissa) = pow10(extra).and_then(|p| self.mantissa.checked_mul(p)) else {
            return format!("{}e{}", self.mantissa, self.exponent);
        };
        let suffix = DECIMAL.iter().find(|(_, p)| *p == exponent3);
        match (format, suffix) {
            (Format::DecimalSI, Some((s, _))) => format!("{mantissa}{s}"),
            _ if exponent3 == 0 => mantissa.to_string(),
            _ => format!("{mantissa}e{exponent3}"),
        }
    }
}

impl fmt::Display for Quantity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.canonical())
    }
}

/// 10^`n`, if it fits.
fn pow10(n: i64) -> Option<i128> {
    10i128.checked_pow(u32::try_from(n).ok()?)
}

/// `m / 10^shift` rounded away from zero (`shift > 0`); a divisor too large to hold leaves
/// the smallest non-zero step, ±1.
fn div_away_from_zero(m: i128, shift: i64) -> i128 {
    let Some(divisor) = pow10(shift) else {
        return m.signum();
    };
    let (q, r) = (m / divisor, m % divisor);
    q + r.signum()
}

/// Orders `a × 10^ea` and `b × 10^eb` (unsigned): first by their number of integer digits,
/// then, at equal length, digit by digit after aligning the exponents.
fn compare_magnitudes((a, ea): (u128, i32), (b, eb): (u128, i32)) -> Ordering {
    let length = |m: u128, e: i32| i64::from(m.checked_ilog10().unwrap_or(0)) + i64::from(e);
    match length(a, ea).cmp(&length(b, eb)) {
        Ordering::Equal => {}
        unequal => return unequal,
    }
    // Same length: the exponents differ by fewer digits than a u128 holds.
    let scale = |m: u128, by: i32| {
        u32::try_from(by)
            .ok()
            .and_then(|by| 10u128.checked_pow(by))
            .and_then(|p| m.checked_mul(p))
    };
    match ea.cmp(&eb) {
        Ordering::Greater => scale(a, ea - eb).map_or(Ordering::Greater, |a| a.cmp(&b)),
        Ordering::Less => scale(b, eb - ea).map_or(Ordering::Less, |b| a.cmp(&b)),
        Ordering::Equal => a.cmp(&b),
    }
}

#[cfg(test)]
mod tests;

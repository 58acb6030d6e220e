//! The cases of apimachinery's `quantity_test.go` (parse, canonical strings, rounding,
//! comparison), so the parser keeps Kubernetes' answers.

use super::*;
use Format::{BinarySI, DecimalExponent, DecimalSI};

fn q(s: &str) -> Quantity {
    s.parse()
        .unwrap_or_else(|e| panic!("{s:?} does not parse: {e}"))
}

fn dec(mantissa: i128, exponent: i32, format: Format) -> Quantity {
    Quantity::new(mantissa, exponent, format)
}

/// `TestQuantityParse`: input → amount and format.
const PARSE: &[(&str, i128, i32, Format)] = &[
    ("0", 0, 0, DecimalSI),
    ("0n", 0, 0, DecimalSI),
    ("0u", 0, 0, DecimalSI),
    ("0m", 0, 0, DecimalSI),
    ("0Ki", 0, 0, BinarySI),
    ("0k", 0, 0, DecimalSI),
    ("0Mi", 0, 0, BinarySI),
    ("0M", 0, 0, DecimalSI),
    ("0Gi", 0, 0, BinarySI),
    ("0G", 0, 0, DecimalSI),
    ("0Ti", 0, 0, BinarySI),
    ("0T", 0, 0, DecimalSI),
    ("1", 1, 0, DecimalSI),
    ("1Ki", 1 << 10, 0, BinarySI),
    ("8Ki", 8 << 10, 0, BinarySI),
    ("7Mi", 7 << 20, 0, BinarySI),
    ("6Gi", 6 << 30, 0, BinarySI),
    ("5Ti", 5 << 40, 0, BinarySI),
    ("4Pi", 4 << 50, 0, BinarySI),
    ("3Ei", 3 << 60, 0, BinarySI),
    ("10Ti", 10 << 40, 0, BinarySI),
    ("100Ti", 100 << 40, 0, BinarySI),
    ("5n", 5, -9, DecimalSI),
    ("4u", 4, -6, DecimalSI),
    ("3m", 3, -3, DecimalSI),
    ("9", 9, 0, DecimalSI),
    ("8k", 8, 3, DecimalSI),
    ("50k", 5, 4, DecimalSI),
    ("7M", 7, 6, DecimalSI),
    ("6G", 6, 9, DecimalSI),
    ("5T", 5, 12, DecimalSI),
    ("40T", 4, 13, DecimalSI),
    ("300T", 3, 14, DecimalSI),
    ("2P", 2, 15, DecimalSI),
    ("1E", 1, 18, DecimalSI),
    ("1E-3", 1, -3, DecimalExponent),
    ("1e3", 1, 3, DecimalExponent),
    ("1E6", 1, 6, DecimalExponent),
    ("1e9", 1, 9, DecimalExponent),
    ("1E12", 1, 12, DecimalExponent),
    ("1e15", 1, 15, DecimalExponent),
    ("1E18", 1, 18, DecimalExponent),
    ("1e14", 1, 14, DecimalExponent),
    ("1e13", 1, 13, DecimalExponent),
    ("100.035k", 100035, 0, DecimalSI),
    ("0.001", 1, -3, DecimalSI),
    ("0.0005k", 5, -1, DecimalSI),
    ("0.005", 5, -3, DecimalSI),
    ("0.05", 5, -2, DecimalSI),
    ("0.5", 5, -1, DecimalSI),
    ("0.00050k", 5, -1, DecimalSI),
    ("0.00500", 5, -3, DecimalSI),
    ("0.05000", 5, -2, DecimalSI),
    ("0.50000", 5, -1, DecimalSI),
    ("0.5e0", 5, -1, DecimalExponent),
    ("0.5e-1", 5, -2, DecimalExponent),
    ("0.5e-2", 5, -3, DecimalExponent),
    ("10.035M", 10035, 3, DecimalSI),
    ("1.2e3", 12, 2, DecimalExponent),
    ("1.3E+6", 13, 5, DecimalExponent),
    ("1.40e9", 14, 8, DecimalExponent),
    ("1.53E12", 153, 10, DecimalExponent),
    ("1.6e15", 16, 14, DecimalExponent),
    ("1.7E18", 17, 17, DecimalExponent),
    ("9.01", 901, -2, DecimalSI),
    ("8.1k", 81, 2, DecimalSI),
    ("7.123456M", 7123456, 0, DecimalSI),
    ("6.987654321G", 6987654321, 0, DecimalSI),
    ("5.444T", 5444, 9, DecimalSI),
    ("40.1T", 401, 11, DecimalSI),
    ("300.2T", 3002, 11, DecimalSI),
    ("2.5P", 25, 14, DecimalSI),
    ("1.01E", 101, 16, DecimalSI),
    // rounded up to a nano, capped at 2^63-1
    ("3.001n", 4, -9, DecimalSI),
    ("1.1E-9", 2, -9, DecimalExponent),
    ("0.0000000001", 1, -9, DecimalSI),
    ("0.0000000005", 1, -9, DecimalSI),
    ("0.00000000050", 1, -9, DecimalSI),
    ("0.5e-9", 1, -9, DecimalExponent),
    ("0.9n", 1, -9, DecimalSI),
    ("0.00000012345", 124, -9, DecimalSI),
    ("0.00000012354", 124, -9, DecimalSI),
    ("9Ei", i64::MAX as i128, 0, BinarySI),
    ("9223372036854775807Ki", i64::MAX as i128, 0, BinarySI),
    ("12E", 12, 18, DecimalSI),
    // binary fractions
    ("100.035Ki", 10243584, -2, BinarySI),
    ("0.5Mi", 512 * 1024, 0, BinarySI),
    ("0.05Gi", 536870912, -1, BinarySI),
    ("0.025Ti", 274877906944, -1, BinarySI),
    // written by trolls
    ("0.000000000001Ki", 2, -9, DecimalSI),
    (".001", 1, -3, DecimalSI),
    (".0001k", 100, -3, DecimalSI),
    ("1.", 1, 0, DecimalSI),
    ("1.G", 1, 9, DecimalSI),
];

#[test]
fn parses_like_parse_quantity_with_either_sign() {
    for &(input, mantissa, exponent, format) in PARSE {
        let want = dec(mantissa, exponent, format);
        for (prefix, want) in [
            ("", want),
            ("+", want),
            ("-", dec(-mantissa, exponent, format)),
        ] {
            let text = format!("{prefix}{input}");
            let got = q(&text);
            assert_eq!(
                got.compare(&want),
                Ordering::Equal,
                "{text}: got {got}, want {want}"
            );
            assert_eq!(got.format(), format, "{text}");
        }
    }
}

#[test]
fn refuses_what_parse_quantity_refuses() {
    let invalid = [
        "",
        "1.1.M",
        "1+1.0M",
        "0.1mi",
        "0.1am",
        "aoeu",
        ".5i",
        "1i",
        "-3.01i",
        "-3.01e-",
        "1e4294967297",
        " 1",
        "1 ",
        "1x",
        "1Zi",
        "1e",
        "1 Gi",
    ];
    for input in invalid {
        assert!(input.parse::<Quantity>().is_err(), "{input:?} parsed");
    }
    assert_eq!("1x".parse::<Quantity>(), Err(QuantityError::FormatWrong));
    assert_eq!("".parse::<Quantity>(), Err(QuantityError::FormatWrong));
    assert_eq!("1Zi".parse::<Quantity>(), Err(QuantityError::FormatWrong));
    assert_eq!("0.1mi".parse::<Quantity>(), Err(QuantityError::Suffix));
    assert_eq!("1e".parse::<Quantity>(), Err(QuantityError::Suffix));
    assert_eq!(QuantityError::FormatWrong.to_string(), FORMAT_WRONG);
}

#[test]
fn exponents_are_bounded_by_int32() {
    assert_eq!(q("1E2147483647"), dec(1, i32::MAX, DecimalExponent));
    assert_eq!(q("1E-2147483647"), dec(1, -9, DecimalExponent));
    for bad in [
        "1E2147483648",
        "1E-2147483648",
        "1E4294967297",
        "1E9223372036854775808",
    ] {
        assert_eq!(bad.parse::<Quantity>(), Err(QuantityError::Suffix), "{bad}");
    }
}

#[test]
fn numbers_without_digits() {
    // `TestParseQuantityString`: "." and "-." are zero.
    for zero in [".", "-.", "+", "-", "m", "Ki", "Ti", "e3", "n"] {
        assert!(q(zero).is_zero(), "{zero}");
    }
    // Where apimachinery has to read the digits, it finds none.
    for bad in ["Pi", "Ei", "-.Ei", "e-10"] {
        assert_eq!(
            bad.parse::<Quantity>(),
            Err(QuantityError::Numeric),
            "{bad}"
        );
    }
}

#[test]
fn api_objects_may_carry_whitespace() {
    for (json, want) in [(" 1", "1"), ("1 ", "1"), (" -1", "-1"), ("\t10\n", "10")] {
        let api = ApiQuantity(json.to_string());
        assert_eq!(
            Quantity::try_from(&api).unwrap().canonical(),
            want,
            "{json:?}"
        );
    }
}

/// `TestQuantityString`: amount → canonical string, and another spelling of it.
const CANONICAL: &[(i128, i32, Format, &str, &str)] = &[
    (1 << 30, 0, BinarySI, "1Gi", "1024Mi"),
    (300 << 20, 0, BinarySI, "300Mi", "307200Ki"),
    (6 << 10, 0, BinarySI, "6Ki", ""),
    (1001 << 30, 0, BinarySI, "1001Gi", "1025024Mi"),
    (1 << 40, 0, BinarySI, "1Ti", "1024Gi"),
    (5, 0, BinarySI, "5", "5000m"),
    (500, -3, BinarySI, "500m", "0.5"),
    (1, 9, DecimalSI, "1G", "1000M"),
    (1000, 6, DecimalSI, "1G", "0.001T"),
    (1000000, 3, DecimalSI, "1G", ""),
    (1000000000, 0, DecimalSI, "1G", ""),
    (1, -3, DecimalSI, "1m", "1000u"),
    (80, -3, DecimalSI, "80m", ""),
    (1080, -3, DecimalSI, "1080m", "1.08"),
    (108, -2, DecimalSI, "1080m", "1080000000n"),
    (10800, -4, DecimalSI, "1080m", ""),
    (300, 6, DecimalSI, "300M", ""),
    (1, 12, DecimalSI, "1T", ""),
    (1, 18, DecimalSI, "1E", ""),
    (1, 21, DecimalSI, "1e21", "1000E"),
    (5, 21, DecimalSI, "5e21", "5000E"),
    (1, 24, DecimalSI, "1e24", "1000000E"),
    (1, 70, BinarySI, "10e69", ""),
    (2, 70, BinarySI, "20e69", ""),
    (1, 72, BinarySI, "1e72", ""),
    (1234567, 6, DecimalSI, "1234567M", ""),
    (1234567, -3, BinarySI, "1234567m", ""),
    (3, 3, DecimalSI, "3k", ""),
    (1025, 0, BinarySI, "1025", ""),
    (0, 0, DecimalSI, "0", ""),
    (0, 0, BinarySI, "0", ""),
    (1, 9, DecimalExponent, "1e9", ".001e12"),
    (1, -3, DecimalExponent, "1e-3", "0.001e0"),
    (1, -9, DecimalExponent, "1e-9", "1000e-12"),
    (80, -3, DecimalExponent, "80e-3", ""),
    (300, 6, DecimalExponent, "300e6", ""),
    (1, 12, DecimalExponent, "1e12", ""),
    (1, 3, DecimalExponent, "1e3", ""),
    (3, 3, DecimalExponent, "3e3", ""),
    (0, 0, DecimalExponent, "0", "00"),
    (1, -9, DecimalSI, "1n", ""),
    (80, -9, DecimalSI, "80n", ""),
    (1080, -9, DecimalSI, "1080n", ""),
    (108, -8, DecimalSI, "1080n", ""),
    (10800, -10, DecimalSI, "1080n", ""),
    (1, -6, DecimalSI, "1u", ""),
    (80, -6, DecimalSI, "80u", ""),
    (1080, -6, DecimalSI, "1080u", ""),
];

#[test]
fn canonical_strings_match_apimachinery() {
    for &(mantissa, exponent, format, want, alternate) in CANONICAL {
        let amount = dec(mantissa, exponent, format);
        assert_eq!(amount.canonical(), want, "{mantissa}e{exponent} {format:?}");
        assert_eq!(q(want).canonical(), want, "{want} parses back to itself");
        if !alternate.is_empty() {
            assert_eq!(q(alternate).canonical(), want, "{alternate}");
        }
        if mantissa != 0 {
            let negative = dec(-mantissa, exponent, format);
            assert_eq!(negative.canonical(), format!("-{want}"));
        }
    }
    // Below nano a decimal amount has no suffix either (`TestQuantityStringBelowNano`).
    assert_eq!(dec(1, -12, DecimalSI).canonical(), "1e-12");
    assert_eq!(dec(1, -10, DecimalSI).canonical(), "100e-12");
    // 2^70 has no binary suffix and no trailing zeros.
    assert_eq!(
        dec(1 << 70, 0, BinarySI).canonical(),
        "1180591620717411303424"
    );
    assert_eq!(dec(2000, 0, BinarySI).canonical(), "2000");
    assert_eq!(dec(-2000, 0, BinarySI).canonical(), "-2000");
}

#[test]
fn parse_then_print() {
    // `TestQuantityParseEmit`, and the apiserver's own defaults.
    let cases = [
        ("1Ki", "1Ki"),
        ("1Mi", "1Mi"),
        ("1Gi", "1Gi"),
        ("1024Mi", "1Gi"),
        ("1000M", "1G"),
        (".001Ki", "1024m"),
        (".000001Ki", "1024u"),
        (".000000001Ki", "1024n"),
        (".000000000001Ki", "2n"),
        ("0.5", "500m"),
        ("1.5", "1500m"),
        ("1000m", "1"),
        ("1000", "1k"),
        ("1.5Gi", "1536Mi"),
        ("2000Ki", "2000Ki"),
    ];
    for (input, want) in cases {
        assert_eq!(q(input).to_string(), want, "{input}");
        assert_eq!(
            q(&format!("-{input}")).to_string(),
            format!("-{want}"),
            "-{input}"
        );
    }
}

#[test]
fn constructors_print_like_new_quantity() {
    // `TestMilliNewSet`, `TestNewSet`, `TestNewScaledSet`.
    assert_eq!(dec(1, -3, DecimalSI).canonical(), "1m");
    assert_eq!(dec(1000, -3, DecimalSI).canonical(), "1");
    assert_eq!(dec(1234000, -3, DecimalSI).canonical(), "1234");
    assert_eq!(dec(1024, -3, BinarySI).canonical(), "1024m");
    assert_eq!(dec(1000000, -3, DecimalExponent).canonical(), "1e3");
    assert_eq!(dec(1024 * 1024, -3, BinarySI).canonical(), "1048576m");
    assert_eq!(dec(1000, 0, DecimalSI).canonical(), "1k");
    assert_eq!(dec(1234000, 0, DecimalSI).canonical(), "1234k");
    assert_eq!(dec(1024, 0, BinarySI).canonical(), "1Ki");
    assert_eq!(dec(1000000, 0, DecimalExponent).canonical(), "1e6");
    assert_eq!(dec(1024 * 1024, 0, BinarySI).canonical(), "1Mi");
    assert_eq!(dec(1000, -9, DecimalSI).canonical(), "1u");
    assert_eq!(dec(1000, -6, DecimalSI).canonical(), "1m");
    assert_eq!(dec(0, -9, DecimalSI).canonical(), "0");
}

#[test]
fn values_round_away_from_zero() {
    // `TestNegativeValueRoundsAwayFromZero`: input → Value, MilliValue.
    let cases = [
        ("-.484785E-7466", -1, -1),
        (".484785E-7466", 1, 1),
        ("-.484785E-1", -1, -49),
        (".484785E-1", 1, 49),
        ("-0.0005", -1, -1),
        ("0.0005", 1, 1),
        ("-1500m", -2, -1500),
        ("1500m", 2, 1500),
        ("-9.5000000001Gi", -10200547329, -10200547328108),
        ("9.5000000001Gi", 10200547329, 10200547328108),
        ("-1", -1, -1000),
        ("1", 1, 1000),
        ("0", 0, 0),
        ("0.1", 1, 100),
        ("256Gi", 256 << 30, 256_000 << 30),
    ];
    for (input, value, millis) in cases {
        assert_eq!(q(input).value(), value, "{input}");
        assert_eq!(q(input).millis(), millis, "{input}");
    }
    assert_eq!(q("1e30").value(), i64::MAX, "saturates");
    assert_eq!(q("-1e30").millis(), i64::MIN, "saturates");
}

#[test]
fn scaled_values() {
    // `TestScaledValue`: 1 × 10^from in units of 10^to.
    let cases = [
        (-9, -9, 1),
        (-9, -6, 1),
        (-9, -3, 1),
        (-9, 0, 1),
        (-6, -9, 1000),
        (-6, -6, 1),
        (-6, -3, 1),
        (-6, 0, 1),
        (-3, -9, 1000 * 1000),
        (-3, -6, 1000),
        (-3, -3, 1),
        (-3, 0, 1),
        (0, -9, 1000 * 1000 * 1000),
        (0, -6, 1000 * 1000),
        (0, -3, 1000),
        (0, 0, 1),
        (2, -2, 100 * 100),
    ];
    for (from, to, want) in cases {
        assert_eq!(
            dec(1, from, DecimalSI).scaled_value(to),
            want,
            "{from} → {to}"
        );
    }
}

#[test]
fn round_up_to_a_scale() {
    // `TestQuantityRoundUp`.
    let cases = [
        ("9.01", -3, 901, -2),
        ("9.01", -2, 901, -2),
        ("9.01", -1, 91, -1),
        ("9.01", 0, 10, 0),
        ("9.01", 1, 10, 0),
        ("9.01", 2, 100, 0),
    ];
    for (input, scale, mantissa, exponent) in cases {
        let up = q(input).round_up(scale);
        assert_eq!(
            up.compare(&dec(mantissa, exponent, DecimalSI)),
            Ordering::Equal
        );
        let down = q(&format!("-{input}")).round_up(scale);
        assert_eq!(
            down.compare(&dec(-mantissa, exponent, DecimalSI)),
            Ordering::Equal
        );
    }
    assert_eq!(q("0.1m").round_up(-3).canonical(), "1m");
    assert_eq!(q("100n").round_up(-3).canonical(), "1m");
}

#[test]
fn compares_amounts_exactly() {
    // `TestQuantityCmp` and `TestQuantityCmpInt64AndDec`.
    let parsed = [
        ("0", "0", Ordering::Equal),
        ("100m", "50m", Ordering::Greater),
        ("50m", "100m", Ordering::Less),
        ("10000T", "100Gi", Ordering::Greater),
        ("1", "1000m", Ordering::Equal),
        ("1Gi", "1G", Ordering::Greater),
        ("500m", "0.6", Ordering::Less),
        ("1e100", "1e99", Ordering::Greater),
        ("-1e100", "1n", Ordering::Less),
    ];
    for (a, b, want) in parsed {
        assert_eq!(q(a).compare(&q(b)), want, "{a} vs {b}");
        assert_eq!(q(b).compare(&q(a)), want.reverse(), "{b} vs {a}");
    }
    let max = i64::MAX as i128;
    let min = i64::MIN as i128;
    let e18 = 1_000_000_000_000_000_000i128;
    let amounts = [
        ((901, -2), (901, -2), Ordering::Equal),
        ((90, -1), (901, -2), Ordering::Less),
        ((901, -2), (900, -2), Ordering::Greater),
        ((0, 1), (0, -1), Ordering::Equal),
        ((800, -3), (1, 0), Ordering::Less),
        ((800, -3), (79, -2), Ordering::Greater),
        ((max, 0), (1, -1), Ordering::Greater),
        ((max, 1), (1, 0), Ordering::Greater),
        ((max, -16), (1, 3), Ordering::Less),
        ((min, 0), (0, 0), Ordering::Less),
        ((min, -18), (-1, 0), Ordering::Less),
        ((min, -19), (-1, 0), Ordering::Greater),
        ((e18, -17), (1, 1), Ordering::Equal),
        ((e18, -17), (-10, 0), Ordering::Greater),
        ((-e18, -17), (-10, 0), Ordering::Equal),
        ((e18 + 1, -17), (1, 1), Ordering::Greater),
        ((e18 - 1, -17), (1, 1), Ordering::Less),
    ];
    for ((ma, ea), (mb, eb), want) in amounts {
        let (a, b) = (dec(ma, ea, DecimalSI), dec(mb, eb, DecimalSI));
        assert_eq!(a.compare(&b), want, "{a} vs {b}");
        assert_eq!(b.compare(&a), want.reverse(), "{b} vs {a}");
    }
}

//! Label selectors, parsed as `labels.Parse` does: comma-separated requirements that must all
//! hold, each `key=value`, `key==value`, `key!=value`, `key in (a,b)`, `key notin (a,b)`,
//! `key` (exists), `!key` (does not exist), or `key>1` / `key<1`. A missing label satisfies
//! `!=` and `notin`. Keys are qualified names (`example.com/name`), values label values.

use std::collections::BTreeMap;
use std::fmt;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector as MetaLabelSelector;

use super::SelectorError;

/// How a requirement compares a label.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Operator {
    /// `key=value`.
    Equals,
    /// `key==value`.
    DoubleEquals,
    /// `key!=value` (true when the label is absent).
    NotEquals,
    /// `key in (a,b)`.
    In,
    /// `key notin (a,b)` (true when the label is absent).
    NotIn,
    /// `key`.
    Exists,
    /// `!key`.
    DoesNotExist,
    /// `key>N` (integers).
    GreaterThan,
    /// `key<N` (integers).
    LessThan,
}

/// One `key op values` term of a selector.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Requirement {
    /// The label key.
    pub key: String,
    /// The comparison.
    pub operator: Operator,
    /// The values, sorted and deduplicated.
    pub values: Vec<String>,
}

/// A parsed label selector: all requirements must match. Empty selects everything.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LabelSelector {
    requirements: Vec<Requirement>,
}

impl LabelSelector {
    /// Parse the `labelSelector` query parameter.
    pub fn parse(s: &str) -> Result<Self, SelectorError> {
        let tokens = lex(s);
        let mut p = Parser { tokens, pos: 0 };
        let mut requirements = p.parse().map_err(SelectorError::ParseLabelSelector)?;
        requirements.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(LabelSelector { requirements })
    }

    /// The selector of a `metav1.LabelSelector` (matchLabels and matchExpressions), as
    /// `LabelSelectorAsSelector` builds it.
    pub fn from_label_selector(sel: &MetaLabelSelector) -> Result<Self, SelectorError> {
        let mut requirements = Vec::new();
        for (k, v) in sel.match_labels.iter().flatten() {
            requirements.push(
                Requirement::new(k, Operator::Equals, vec![v.clone()])
                    .map_err(SelectorError::ParseLabelSelector)?,
            );
        }
        for e in sel.match_expressions.iter().flatten() {
            let op = match e.operator.as_str() {
                "In" => Operator::In,
                "NotIn" => Operator::NotIn,
                "Exists" => Operator::Exists,
                "DoesNotExist" => Operator::DoesNotExist,
                other => {
                    return Err(SelectorError::InvalidLabelSelectorOperator {
                        operator: other.to_string(),
                    })
                }
            };
            let values = e.values.clone().unwrap_or_default();
            requirements.push(
                Requirement::new(&e.key, op, values).map_err(SelectorError::ParseLabelSelector)?,
            );
        }
        requirements.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(LabelSelector { requirements })
    }

    /// Whether an object with these labels is selected.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.requirements.iter().all(|r| r.matches(labels))
    }

    /// Whether the selector selects everything.
    pub fn is_empty(&self) -> bool {
        self.requirements.is_empty()
    }

    /// The requirements, sorted by key.
    pub fn requirements(&self) -> &[Requirement] {
        &self.requirements
    }
}

impl Requirement {
    /// Build and validate a requirement (key a qualified name, values label values, the
    /// number of values right for the operator).
    pub fn new(
        key: &str,
        operator: Operator,
        mut values: Vec<String>,
    ) -> Result<Requirement, String> {
        validate_key(key)?;
        match operator {
            Operator::In | Operator::NotIn if values.is_empty() => {
                return Err("for 'in', 'notin' operators, values set can't be empty".into());
            }
            Operator::Equals | Operator::DoubleEquals | Operator::NotEquals
                if values.len() != 1 =>
            {
                return Err("exact-match compatibility requires one single value".into());
            }
            Operator::Exists | Operator::DoesNotExist if !values.is_empty() => {
                return Err("values set must be empty for exists and does not exist".into());
            }
            Operator::GreaterThan | Operator::LessThan => {
                if values.len() != 1 {
                    return Err("for 'Gt', 'Lt' operators, exactly one value is required".into());
                }
                if values[0].parse::<i64>().is_err() {
                    return Err("for 'Gt', 'Lt' operators, the value must be an integer".into());
                }
            }
            _ => {}
        }
        for (i, v) in values.iter().enumerate() {
            validate_value(v).map_err(|e| format!("values[{i}]: Invalid value: {v:?}: {e}"))?;
        }
        values.sort();
        values.dedup();
        Ok(Requirement {
            key: key.to_string(),
            operator,
            values,
        })
    }

    /// Whether the labels satisfy this requirement.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        let value = labels.get(&self.key);
        let listed = |v: &String| self.values.iter().any(|x| x == v);
        let as_int = |v: &String| v.parse::<i64>().ok();
        let bound = self.values.first().and_then(as_int);
        match self.operator {
            Operator::Equals | Operator::DoubleEquals | Operator::In => value.is_some_and(listed),
            Operator::NotEquals | Operator::NotIn => !value.is_some_and(listed),
            Operator::Exists => value.is_some(),
            Operator::DoesNotExist => value.is_none(),
            Operator::GreaterThan => {
                matches!((value.and_then(as_int), bound), (Some(v), Some(b)) if v > b)
            }
            Operator::LessThan => {
                matches!((value.and_then(as_int), bound), (Some(v), Some(b)) if v < b)
            }
        }
    }
}

impl fmt::Display for Requirement {
    /// The canonical form: `a=b`, `a!=b`, `a in (x,y)`, `a`, `!a`, `a>1`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let values = self.values.join(",");
        match self.operator {
            Operator::Equals => write!(f, "{}={values}", self.key),
            Operator::DoubleEquals => write!(f, "{}=={values}", self.key),
            Operator::NotEquals => write!(f, "{}!={values}", self.key),
            Operator::In => write!(f, "{} in ({values})", self.key),
            Operator::NotIn => write!(f, "{} notin ({values})", self.key),
            Operator::Exists => write!(f, "{}", self.key),
            Operator::DoesNotExist => write!(f, "!{}", self.key),
            Operator::GreaterThan => write!(f, "{}>{values}", self.key),
            Operator::LessThan => write!(f, "{}<{values}", self.key),
        }
    }
}

impl fmt::Display for LabelSelector {
    /// The canonical string (what `Scale.status.selector` carries), requirements by key.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self.requirements.iter().map(|r| r.to_string()).collect();
        f.write_str(&parts.join(","))
    }
}

// ---- lexer and parser (k8s.io/apimachinery/pkg/labels/selector.go) ----

#[derive(Clone, Debug, PartialEq, Eq)]
enum Token {
    Identifier(String),
    In,
    NotIn,
    Bang,
    NotEquals,
    Equals,
    DoubleEquals,
    Greater,
    Less,
    Comma,
    Open,
    Close,
    End,
}

impl Token {
    fn literal(&self) -> &str {
        match self {
            Token::Identifier(s) => s,
            Token::In => "in",
            Token::NotIn => "notin",
            Token::Bang => "!",
            Token::NotEquals => "!=",
            Token::Equals => "=",
            Token::DoubleEquals => "==",
            Token::Greater => ">",
            Token::Less => "<",
            Token::Comma => ",",
            Token::Open => "(",
            Token::Close => ")",
            Token::End => "",
        }
    }

    /// In value position `in` and `notin` are plain identifiers.
    fn into_value(self) -> Token {
        match self {
            Token::In | Token::NotIn => Token::Identifier(self.literal().to_string()),
            t => t,
        }
    }
}

fn is_special(c: char) -> bool {
    matches!(c, '=' | '!' | '(' | ')' | ',' | '>' | '<')
}

fn lex(s: &str) -> Vec<Token> {
    let chars: Vec<char> = s.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
        } else if is_special(c) {
            let next = chars.get(i + 1).copied();
            let (tok, len) = match (c, next) {
                ('!', Some('=')) => (Token::NotEquals, 2),
                ('=', Some('=')) => (Token::DoubleEquals, 2),
                ('!', _) => (Token::Bang, 1),
                ('=', _) => (Token::Equals, 1),
                ('>', _) => (Token::Greater, 1),
                ('<', _) => (Token::Less, 1),
                (',', _) => (Token::Comma, 1),
                ('(', _) => (Token::Open, 1),
                _ => (Token::Close, 1),
            };
            out.push(tok);
            i += len;
        } else {
            let start = i;
            while i < chars.len() && !chars[i].is_whitespace() && !is_special(chars[i]) {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            out.push(match word.as_str() {
                "in" => Token::In,
                "notin" => Token::NotIn,
                _ => Token::Identifier(word),
            });
        }
    }
    out.push(Token::End);
    out
}

struct Parser {
    tokens: Vec<Token>,
    pos: usize,
}

impl Parser {
    fn peek(&self) -> Token {
        self.tokens.get(self.pos).cloned().unwrap_or(Token::End)
    }

    fn next(&mut self) -> Token {
        let t = self.peek();
        self.pos += 1;
        t
    }

    fn parse(&mut self) -> Result<Vec<Requirement>, String> {
        let mut out = Vec::new();
        loop {
            match self.peek() {
                Token::Identifier(_) | Token::Bang | Token::In | Token::NotIn => {
                    out.push(
                        self.requirement()
                            .map_err(|e| format!("unable to parse requirement: {e}"))?,
                    );
                    match self.next() {
                        Token::End => return Ok(out),
                        Token::Comma => match self.peek() {
                            Token::Identifier(_) | Token::Bang | Token::In | Token::NotIn => {}
                            t => {
                                return Err(format!(
                                    "found '{}', expected: identifier after ','",
                                    t.literal()
                                ))
                            }
                        },
                        t => {
                            return Err(format!(
                                "found '{}', expected: ',' or 'end of string'",
                                t.literal()
                            ))
                        }
                    }
                }
                Token::End => return Ok(out),
                t => {
                    return Err(format!(
                        "found '{}', expected: !, identifier, or 'end of string'",
                        t.literal()
                    ))
                }
            }
        }
    }

    fn requirement(&mut self) -> Result<Requirement, String> {
        let mut tok = self.next().into_value();
        let negated = tok == Token::Bang;
        if negated {
            tok = self.next().into_value();
        }
        let Token::Identifier(key) = tok else {
            return Err(format!("found '{}', expected: identifier", tok.literal()));
        };
        validate_key(&key)?;
        if negated {
            return Requirement::new(&key, Operator::DoesNotExist, Vec::new());
        }
        if matches!(self.peek(), Token::End | Token::Comma) {
            return Requirement::new(&key, Operator::Exists, Vec::new());
        }
        let op = match self.next() {
            Token::In => Operator::In,
            Token::NotIn => Operator::NotIn,
            Token::Equals => Operator::Equals,
            Token::DoubleEquals => Operator::DoubleEquals,
            Token::NotEquals => Operator::NotEquals,
            Token::Greater => Operator::GreaterThan,
            Token::Less => Operator::LessThan,
            t => {
                return Err(format!(
                    "found '{}', expected: in, notin, =, ==, !=, gt, lt",
                    t.literal()
                ))
            }
        };
        let values = match op {
            Operator::In | Operator::NotIn => self.value_set()?,
            _ => self.exact_value()?,
        };
        Requirement::new(&key, op, values)
    }

    fn value_set(&mut self) -> Result<Vec<String>, String> {
        let t = self.next().into_value();
        if t != Token::Open {
            return Err(format!("found '{}' expected: '('", t.literal()));
        }
        match self.peek().into_value() {
            Token::Close => {
                self.next();
                Ok(vec![String::new()])
            }
            Token::Identifier(_) | Token::Comma => {
                let values = self.identifiers()?;
                match self.next() {
                    Token::Close => Ok(values),
                    t => Err(format!("found '{}', expected: ')'", t.literal())),
                }
            }
            t => Err(format!(
                "found '{}', expected: ',', ')' or identifier",
                t.literal()
            )),
        }
    }

    /// The inside of `( ... )`; empty items (`(a,,b)`, `(,a)`) are the empty value.
    fn identifiers(&mut self) -> Result<Vec<String>, String> {
        let mut out: Vec<String> = Vec::new();
        loop {
            match self.next().into_value() {
                Token::Identifier(v) => {
                    out.push(v);
                    match self.peek().into_value() {
                        Token::Comma => {}
                        Token::Close => return Ok(out),
                        t => return Err(format!("found '{}', expected: ',' or ')'", t.literal())),
                    }
                }
                Token::Comma => {
                    if out.is_empty() {
                        out.push(String::new());
                    }
                    match self.peek().into_value() {
                        Token::Close => {
                            out.push(String::new());
                            return Ok(out);
                        }
                        Token::Comma => {
                            self.next();
                            out.push(String::new());
                        }
                        _ => {}
                    }
                }
                t => {
                    return Err(format!(
                        "found '{}', expected: ',', or identifier",
                        t.literal()
                    ))
                }
            }
        }
    }

    fn exact_value(&mut self) -> Result<Vec<String>, String> {
        match self.peek() {
            Token::End | Token::Comma => Ok(vec![String::new()]),
            _ => match self.next().into_value() {
                Token::Identifier(v) => Ok(vec![v]),
                t => Err(format!("found '{}', expected: identifier", t.literal())),
            },
        }
    }
}

// ---- validation (k8s.io/apimachinery/pkg/util/validation) ----

const NAME_MSG: &str = "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')";
const DNS_MSG: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";
const VALUE_MSG: &str = "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')";

/// `([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]`, non-empty.
fn is_qualified_name_part(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
}

fn is_dns1123_subdomain(s: &str) -> bool {
    s.len() <= 253
        && s.split('.').all(|l| {
            let b = l.as_bytes();
            !b.is_empty()
                && b[0].is_ascii_alphanumeric()
                && b[b.len() - 1].is_ascii_alphanumeric()
                && b.iter()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        })
}

/// A label key: `[prefix/]name` (`IsQualifiedName`), as `key: Invalid value: ...`.
fn validate_key(key: &str) -> Result<(), String> {
    let parts: Vec<&str> = key.split('/').collect();
    let mut errs: Vec<String> = Vec::new();
    let name = match parts.as_slice() {
        [name] => *name,
        [prefix, name] => {
            if prefix.is_empty() {
                errs.push("prefix part must be non-empty".into());
            } else if !is_dns1123_subdomain(prefix) {
                errs.push(format!("prefix part {DNS_MSG}"));
            }
            name
        }
        _ => {
            errs.push(format!("a qualified name {NAME_MSG} with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')"));
            ""
        }
    };
    if parts.len() <= 2 {
        if name.is_empty() {
            errs.push("name part must be non-empty".into());
        } else if name.len() > 63 {
            errs.push("name part must be no more than 63 characters".into());
        }
        if !name.is_empty() && !is_qualified_name_part(name) {
            errs.push(format!("name part {NAME_MSG}"));
        }
    }
    if errs.is_empty() {
        Ok(())
    } else {
        Err(format!("key: Invalid value: {key:?}: {}", errs.join("; ")))
    }
}

/// A label value: empty, or at most 63 characters of the qualified-name alphabet.
fn validate_value(v: &str) -> Result<(), String> {
    let mut errs = Vec::new();
    if v.len() > 63 {
        errs.push("must be no more than 63 characters".to_string());
    }
    if !v.is_empty() && !is_qualified_name_part(v) {
        errs.push(VALUE_MSG.to_string());
    }
    if errs.is_empty() {
        Ok(())
    } else {
        Err(errs.join("; "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelectorRequirement;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn set_based_and_negated_existence() {
        let sel = LabelSelector::parse("env in (a,b),!tier").unwrap();
        assert!(sel.matches(&labels(&[("env", "a")])));
        assert!(sel.matches(&labels(&[("env", "b"), ("app", "x")])));
        assert!(!sel.matches(&labels(&[("env", "a"), ("tier", "fe")])));
        assert!(!sel.matches(&labels(&[("env", "c")])));
        assert!(!sel.matches(&labels(&[])));
        assert_eq!(sel.to_string(), "env in (a,b),!tier");
    }

    #[test]
    fn equality_and_inequality() {
        let sel = LabelSelector::parse("app=web, tier == fe ,track!=canary").unwrap();
        assert!(sel.matches(&labels(&[("app", "web"), ("tier", "fe")])));
        assert!(!sel.matches(&labels(&[
            ("app", "web"),
            ("tier", "fe"),
            ("track", "canary")
        ])));
        assert!(!sel.matches(&labels(&[("app", "web")])));
        assert_eq!(sel.to_string(), "app=web,tier==fe,track!=canary");
        // A missing label satisfies != and notin.
        assert!(LabelSelector::parse("x notin (a)")
            .unwrap()
            .matches(&labels(&[])));
        // Empty values are allowed.
        assert!(LabelSelector::parse("a=")
            .unwrap()
            .matches(&labels(&[("a", "")])));
        assert!(LabelSelector::parse("a in (,b)")
            .unwrap()
            .matches(&labels(&[("a", "")])));
    }

    #[test]
    fn existence_gt_lt_and_empty() {
        let sel = LabelSelector::parse("example.com/team").unwrap();
        assert!(sel.matches(&labels(&[("example.com/team", "")])));
        assert!(!sel.matches(&labels(&[("team", "x")])));
        let sel = LabelSelector::parse("n>3,n<10").unwrap();
        assert!(sel.matches(&labels(&[("n", "5")])));
        assert!(!sel.matches(&labels(&[("n", "3")])));
        let empty = LabelSelector::parse("  ").unwrap();
        assert!(empty.is_empty() && empty.matches(&labels(&[])));
    }

    #[test]
    fn errors_read_like_labels_parse() {
        let err = |s: &str| LabelSelector::parse(s).unwrap_err().to_string();
        assert_eq!(
            err("a b"),
            "unable to parse requirement: found 'b', expected: in, notin, =, ==, !=, gt, lt"
        );
        assert_eq!(err("a=b,"), "found '', expected: identifier after ','");
        assert_eq!(
            err("a in (b"),
            "unable to parse requirement: found '', expected: ',' or ')'"
        );
        assert_eq!(err("a=b c"), "found 'c', expected: ',' or 'end of string'");
        assert_eq!(err("!a=b"), "found '=', expected: ',' or 'end of string'");
        assert_eq!(
            err("=a"),
            "found '=', expected: !, identifier, or 'end of string'"
        );
        assert!(err("-bad=x").starts_with("unable to parse requirement: key: Invalid value: \"-bad\": name part must consist of"), "{}", err("-bad=x"));
        assert!(err("a=-b").starts_with(
            "unable to parse requirement: values[0]: Invalid value: \"-b\": a valid label must be"
        ));
        assert!(err("Example.com/a=b").contains("prefix part a lowercase RFC 1123 subdomain"));
        assert_eq!(
            err("n>x"),
            "unable to parse requirement: for 'Gt', 'Lt' operators, the value must be an integer"
        );
    }

    #[test]
    fn from_meta_label_selector() {
        let sel = MetaLabelSelector {
            match_labels: Some([("app".to_string(), "web".to_string())].into()),
            match_expressions: Some(vec![LabelSelectorRequirement {
                key: "tier".into(),
                operator: "In".into(),
                values: Some(vec!["fe".into(), "be".into()]),
            }]),
        };
        let s = LabelSelector::from_label_selector(&sel).unwrap();
        assert_eq!(s.to_string(), "app=web,tier in (be,fe)");
        assert!(s.matches(&labels(&[("app", "web"), ("tier", "be")])));
        assert!(
            LabelSelector::from_label_selector(&MetaLabelSelector::default())
                .unwrap()
                .is_empty()
        );
        let bad = MetaLabelSelector {
            match_expressions: Some(vec![LabelSelectorRequirement {
                key: "a".into(),
                operator: "Gt".into(),
                values: None,
            }]),
            ..Default::default()
        };
        assert_eq!(
            LabelSelector::from_label_selector(&bad)
                .unwrap_err()
                .to_string(),
            "\"Gt\" is not a valid label selector operator"
        );
    }
}

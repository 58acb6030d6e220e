//! `-o jsonpath=TEMPLATE`: kubectl's JSONPath templates.
//!
//! A template is text with expressions in braces: `{.metadata.name}` prints a field,
//! `{.items[*].metadata.name}` every match separated by spaces, `{"\n"}` a literal, and
//! `{range .items[*]}...{end}` repeats its body for each match, with paths inside relative to
//! it. The path language itself is JSONPath (RFC 9535), evaluated by the `jsonpath-rust`
//! crate; this file only parses kubectl's template around it. Read next: `../commands/get.rs`.

use std::str::FromStr;

use jsonpath_rust::JsonPath;
use serde_json::Value;

/// Why a template was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum JsonPathError {
    #[error("error parsing jsonpath {template}, unclosed action")]
    Unclosed { template: String },
    #[error("error parsing jsonpath {template}, not in range, nothing to end")]
    UnexpectedEnd { template: String },
    #[error("error parsing jsonpath {template}, {{range}} without {{end}}")]
    MissingEnd { template: String },
    #[error("error parsing jsonpath {template}, bad literal {literal}")]
    BadLiteral { template: String, literal: String },
    #[error("error parsing jsonpath {template}, {reason}")]
    BadPath { template: String, reason: String },
}

/// One piece of a template.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Node {
    /// Text printed as it is (outside braces, or a `{"..."}` literal).
    Text(String),
    /// A path; its matches are printed separated by spaces.
    Path(String),
    /// `{range PATH}...{end}`: the body once per match.
    Range(String, Vec<Node>),
}

/// A parsed template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    nodes: Vec<Node>,
}

impl FromStr for Template {
    type Err = JsonPathError;

    fn from_str(template: &str) -> Result<Self, Self::Err> {
        let mut stack: Vec<(String, Vec<Node>)> = vec![(String::new(), Vec::new())];
        let mut rest = template;
        while !rest.is_empty() {
            let Some(open) = rest.find('{') else {
                push(&mut stack, Node::Text(rest.to_string()));
                break;
            };
            if open > 0 {
                push(&mut stack, Node::Text(rest[..open].to_string()));
            }
            let close = action_end(&rest[open..]).ok_or_else(|| JsonPathError::Unclosed {
                template: template.to_string(),
            })?;
            let action = rest[open + 1..open + close].trim();
            rest = &rest[open + close + 1..];
            parse_action(action, template, &mut stack)?;
        }
        if stack.len() != 1 {
            return Err(JsonPathError::MissingEnd {
                template: template.to_string(),
            });
        }
        let (_, nodes) = stack.pop().unwrap_or_default();
        Ok(Template { nodes })
    }
}

impl Template {
    /// The template applied to `value`.
    pub fn render(&self, value: &Value) -> String {
        let mut out = String::new();
        render_nodes(&self.nodes, value, &mut out);
        out
    }
}

fn push(stack: &mut [(String, Vec<Node>)], node: Node) {
    if let Some((_, nodes)) = stack.last_mut() {
        nodes.push(node);
    }
}

/// The index of the `}` closing the action that starts at `s[0] == '{'`, skipping quoted text.
fn action_end(s: &str) -> Option<usize> {
    let mut in_quote = false;
    let mut escaped = false;
    for (i, c) in s.char_indices().skip(1) {
        match c {
            _ if escaped => escaped = false,
            '\\' if in_quote => escaped = true,
            '"' => in_quote = !in_quote,
            '}' if !in_quote => return Some(i),
            _ => {}
        }
    }
    None
}

fn parse_action(
    action: &str,
    template: &str,
    stack: &mut Vec<(String, Vec<Node>)>,
) -> Result<(), JsonPathError> {
    if let Some(path) = action.strip_prefix("range ") {
        let path = checked_path(path.trim(), template)?;
        stack.push((path, Vec::new()));
    } else if action == "end" {
        if stack.len() < 2 {
            return Err(JsonPathError::UnexpectedEnd {
                template: template.to_string(),
            });
        }
        let (path, body) = stack.pop().unwrap_or_default();
        push(stack, Node::Range(path, body));
    } else if action.starts_with('"') {
        let text: String = serde_json::from_str(action).map_err(|_| JsonPathError::BadLiteral {
            template: template.to_string(),
            literal: action.to_string(),
        })?;
        push(stack, Node::Text(text));
    } else {
        let path = checked_path(action, template)?;
        push(stack, Node::Path(path));
    }
    Ok(())
}

/// kubectl's path (`.a.b`, `@.a`, `$.a`) as RFC 9535 JSONPath, checked for syntax.
fn checked_path(path: &str, template: &str) -> Result<String, JsonPathError> {
    let path = if let Some(rest) = path.strip_prefix('@') {
        format!("${rest}")
    } else if path.starts_with('$') {
        path.to_string()
    } else {
        format!("${path}")
    };
    Value::Null
        .query(&path)
        .map_err(|e| JsonPathError::BadPath {
            template: template.to_string(),
            reason: e.to_string(),
        })?;
    Ok(path)
}

fn render_nodes(nodes: &[Node], value: &Value, out: &mut String) {
    for node in nodes {
        match node {
            Node::Text(t) => out.push_str(t),
            Node::Path(p) => {
                let texts: Vec<String> = matches(p, value).into_iter().map(text).collect();
                out.push_str(&texts.join(" "));
            }
            Node::Range(p, body) => {
                for item in matches(p, value) {
                    render_nodes(body, item, out);
                }
            }
        }
    }
}

fn matches<'a>(path: &str, value: &'a Value) -> Vec<&'a Value> {
    value.query(path).unwrap_or_default()
}

/// A match as kubectl prints it: strings bare, everything else as JSON.
fn text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn render(t: &str, v: &Value) -> String {
        t.parse::<Template>().unwrap().render(v)
    }

    #[test]
    fn fields_lists_literals_and_ranges() {
        let list = json!({"items": [
            {"metadata": {"name": "a"}, "status": {"conditions": [{"type": "Ready", "status": "True"}]}},
            {"metadata": {"name": "b"}, "status": {"conditions": [{"type": "Ready", "status": "False"}]}},
        ]});
        assert_eq!(render("{.items[0].metadata.name}", &list), "a");
        assert_eq!(render("{.items[*].metadata.name}", &list), "a b");
        assert_eq!(
            render("{range .items[*]}{.metadata.name}{\"\\n\"}{end}", &list),
            "a\nb\n"
        );
        assert_eq!(
            render(
                "{.items[*].status.conditions[?(@.type==\"Ready\")].status}",
                &list
            ),
            "True False"
        );
        assert_eq!(render("name={.items[1].metadata.name}!", &list), "name=b!");
    }

    #[test]
    fn bad_templates_are_refused() {
        assert!(matches!(
            "{.a".parse::<Template>(),
            Err(JsonPathError::Unclosed { .. })
        ));
        assert!(matches!(
            "{end}".parse::<Template>(),
            Err(JsonPathError::UnexpectedEnd { .. })
        ));
        assert!(matches!(
            "{range .a}x".parse::<Template>(),
            Err(JsonPathError::MissingEnd { .. })
        ));
    }
}

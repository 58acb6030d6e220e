//! Printing what the server answers, in the formats of kubectl's `-o`.
//!
//! The default is a table the *server* renders (`Accept: application/json;as=Table;...`): the
//! server knows a pod's STATUS and AGE better than any client, so kubectl only aligns the
//! columns (`table.rs`). The other formats print the objects themselves: YAML, JSON, their
//! names (`pod/web`), or a JSONPath template (`jsonpath.rs`).
//! Read next: `table.rs`.

pub mod jsonpath;
pub mod style;
pub mod table;
pub mod tabwriter;

use std::io::Write;
use std::str::FromStr;

use serde_json::Value;

/// `-o`: how objects are printed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OutputFormat {
    /// The server's table, columns of priority 0 only (no `-o`).
    Table,
    /// The server's table with every column (`-o wide`).
    Wide,
    Yaml,
    Json,
    /// `kind.group/name`, one per line (`-o name`).
    Name,
    /// `-o jsonpath=TEMPLATE`.
    JsonPath(jsonpath::Template),
}

impl OutputFormat {
    /// Is this a table (printed from `as=Table` responses)?
    pub fn is_table(&self) -> bool {
        matches!(self, OutputFormat::Table | OutputFormat::Wide)
    }
}

/// Why an `-o` value was refused.
#[derive(Debug, thiserror::Error)]
pub enum FormatError {
    #[error("unable to match a printer suitable for the output format \"{0}\", allowed formats are: json,jsonpath,name,wide,yaml")]
    Unknown(String),
    #[error(transparent)]
    JsonPath(#[from] jsonpath::JsonPathError),
}

impl FromStr for OutputFormat {
    type Err = FormatError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if let Some(t) = s.strip_prefix("jsonpath=") {
            return Ok(OutputFormat::JsonPath(t.parse()?));
        }
        match s {
            "wide" => Ok(OutputFormat::Wide),
            "yaml" => Ok(OutputFormat::Yaml),
            "json" => Ok(OutputFormat::Json),
            "name" => Ok(OutputFormat::Name),
            other => Err(FormatError::Unknown(other.to_string())),
        }
    }
}

/// Print `value` (an object or a `List`) in one of the object formats.
pub fn format_object(value: &Value, format: &OutputFormat) -> String {
    match format {
        OutputFormat::Yaml => serde_yaml::to_string(value).unwrap_or_default(),
        OutputFormat::JsonPath(t) => t.render(value),
        _ => {
            let mut s = serde_json::to_string_pretty(value).unwrap_or_default();
            s.push('\n');
            s
        }
    }
}

/// `pod/web`: the `-o name` form of an object of resource `qualified_kind`.
pub fn name_line(qualified_kind: &str, object: &Value) -> String {
    let name = object["metadata"]["name"].as_str().unwrap_or_default();
    format!("{qualified_kind}/{name}")
}

/// Write `text` to stdout at once; a closed pipe (`| head`) is an error the caller stops on.
pub fn emit(text: &str) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())?;
    out.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_parse_and_unknown_ones_are_refused() {
        assert_eq!("wide".parse::<OutputFormat>().unwrap(), OutputFormat::Wide);
        assert_eq!("name".parse::<OutputFormat>().unwrap(), OutputFormat::Name);
        assert!(matches!(
            "jsonpath={.metadata.name}".parse::<OutputFormat>().unwrap(),
            OutputFormat::JsonPath(_)
        ));
        let err = "xml".parse::<OutputFormat>().unwrap_err().to_string();
        assert!(err.contains("\"xml\""), "{err}");
    }

    #[test]
    fn names_are_kind_slash_name() {
        let pod = serde_json::json!({"metadata": {"name": "web"}});
        assert_eq!(name_line("pod", &pod), "pod/web");
    }
}

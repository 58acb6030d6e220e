//! Server-side tables, aligned the way kubectl aligns them.
//!
//! A `meta.k8s.io/v1 Table` has `columnDefinitions` (name, type, priority: 0 for the default
//! view, more for `-o wide`) and `rows`, each with `cells` and, when asked for with
//! `includeObject=Metadata`, the row's object metadata (where `-A` finds the NAMESPACE).
//! kubectl writes the cells through Go's tabwriter (minimum width 6, padding 3), so a column is
//! as wide as its widest cell plus three spaces, and the last column is not padded.
//! Read next: `jsonpath.rs`.

use serde_json::Value;

/// tabwriter's minimum cell width and padding, as kubectl configures them.
const MIN_WIDTH: usize = 6;
const PADDING: usize = 3;

/// What to take from a table.
#[derive(Debug, Clone, Default)]
pub struct TableOptions {
    /// Every column, not only priority 0 (`-o wide`).
    pub wide: bool,
    /// A NAMESPACE column first, from each row's object (`-A`).
    pub namespace_column: bool,
    /// `pod/` before every name, when several types are printed together.
    pub name_prefix: Option<String>,
}

/// Headers and text cells, ready to align.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Grid {
    pub headers: Vec<String>,
    pub rows: Vec<Vec<String>>,
}

impl Grid {
    /// The columns and rows of a server `Table` as text.
    pub fn from_table(table: &Value, opts: &TableOptions) -> Grid {
        let columns: Vec<(usize, &Value)> = table["columnDefinitions"]
            .as_array()
            .map(|c| c.iter().enumerate().collect())
            .unwrap_or_default();
        let shown: Vec<(usize, &Value)> = columns
            .into_iter()
            .filter(|(_, c)| opts.wide || c["priority"].as_i64().unwrap_or(0) == 0)
            .collect();
        let mut headers: Vec<String> = shown
            .iter()
            .map(|(_, c)| c["name"].as_str().unwrap_or_default().to_uppercase())
            .collect();
        if opts.namespace_column {
            headers.insert(0, "NAMESPACE".into());
        }
        let rows = table["rows"]
            .as_array()
            .map(|rows| rows.iter().map(|r| row_cells(r, &shown, opts)).collect())
            .unwrap_or_default();
        Grid { headers, rows }
    }

    /// Append another table's rows (same resource, another name).
    pub fn extend(&mut self, other: Grid) {
        if self.headers.is_empty() {
            self.headers = other.headers;
        }
        self.rows.extend(other.rows);
    }

    /// Column widths: the widest cell (and header, unless omitted) plus padding.
    pub fn widths(&self, headers: bool) -> Vec<usize> {
        let mut widths = vec![0; self.headers.len()];
        let lines = headers.then_some(&self.headers).into_iter();
        for line in lines.chain(self.rows.iter()) {
            grow(&mut widths, line);
        }
        widths
    }

    /// The aligned text: a header line (unless `no_headers`), then one line per row.
    pub fn render(&self, no_headers: bool) -> String {
        let widths = self.widths(!no_headers);
        let mut out = String::new();
        if !no_headers {
            out.push_str(&line(&self.headers, &widths));
        }
        for row in &self.rows {
            out.push_str(&line(row, &widths));
        }
        out
    }
}

/// Make `widths` fit `cells`.
pub fn grow(widths: &mut Vec<usize>, cells: &[String]) {
    if widths.len() < cells.len() {
        widths.resize(cells.len(), 0);
    }
    for (w, c) in widths.iter_mut().zip(cells) {
        *w = (*w).max((c.chars().count() + PADDING).max(MIN_WIDTH));
    }
}

/// One line, every cell but the last padded to its column's width.
pub fn line(cells: &[String], widths: &[usize]) -> String {
    let mut out = String::new();
    for (i, cell) in cells.iter().enumerate() {
        if i + 1 == cells.len() {
            out.push_str(cell);
        } else {
            let width = widths.get(i).copied().unwrap_or(0);
            out.push_str(&format!("{cell:<width$}"));
        }
    }
    out.push('\n');
    out
}

fn row_cells(row: &Value, shown: &[(usize, &Value)], opts: &TableOptions) -> Vec<String> {
    let mut cells: Vec<String> = shown
        .iter()
        .map(|(i, col)| {
            let text = cell_text(&row["cells"][*i]);
            match &opts.name_prefix {
                Some(p) if col["name"] == "Name" => format!("{p}/{text}"),
                _ => text,
            }
        })
        .collect();
    if opts.namespace_column {
        let ns = row["object"]["metadata"]["namespace"]
            .as_str()
            .unwrap_or_default();
        cells.insert(0, ns.to_string());
    }
    cells
}

/// A cell as kubectl prints it: strings bare, numbers as numbers, nothing as `<none>`.
fn cell_text(cell: &Value) -> String {
    match cell {
        Value::Null => "<none>".into(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn table() -> Value {
        json!({
            "columnDefinitions": [
                {"name": "Name", "type": "string", "priority": 0},
                {"name": "Ready", "type": "string", "priority": 0},
                {"name": "IP", "type": "string", "priority": 1},
            ],
            "rows": [
                {"cells": ["web", "1/1", "10.0.0.1"], "object": {"metadata": {"namespace": "default"}}},
                {"cells": ["a-much-longer-name", "0/1", null], "object": {"metadata": {"namespace": "kube-system"}}},
            ]
        })
    }

    #[test]
    fn columns_align_like_kubectls_tabwriter() {
        let grid = Grid::from_table(&table(), &TableOptions::default());
        assert_eq!(
            grid.render(false),
            "NAME                 READY\n\
             web                  1/1\n\
             a-much-longer-name   0/1\n"
        );
        assert_eq!(grid.render(true).lines().count(), 2);
    }

    #[test]
    fn wide_namespace_and_prefix() {
        let opts = TableOptions {
            wide: true,
            namespace_column: true,
            name_prefix: Some("pod".into()),
        };
        let grid = Grid::from_table(&table(), &opts);
        assert_eq!(grid.headers, ["NAMESPACE", "NAME", "READY", "IP"]);
        assert_eq!(
            grid.rows[1],
            ["kube-system", "pod/a-much-longer-name", "0/1", "<none>"]
        );
    }
}

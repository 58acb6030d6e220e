//! Go's `text/tabwriter`, the aligner behind `kubectl describe`: text whose cells end in tabs
//! comes out as columns padded with spaces.
//!
//! A *cell* is text ended by a tab; the text after a line's last tab is not a cell and is never
//! padded. A *column block* is a run of consecutive lines that all have a cell in that column:
//! the block is as wide as its widest cell plus the padding, and a line without that cell ends
//! the block, so `Name:` and `Labels:` line up with each other but not with the indented lines
//! of a table further down. Columns to the right are aligned within each block on their own,
//! recursively, exactly as Go's `Writer.format` does. Widths count characters, not bytes.
//! Read next: `../commands/describe/text.rs`, which writes describe's cells.

/// Align `text` as Go's `tabwriter.NewWriter(out, minwidth, 8, padding, ' ', 0)` would.
pub fn align(text: &str, minwidth: usize, padding: usize) -> String {
    let lines: Vec<Vec<&str>> = text.split('\n').map(|l| l.split('\t').collect()).collect();
    let mut aligner = Aligner {
        lines: &lines,
        minwidth,
        padding,
        out: String::with_capacity(text.len() * 2),
    };
    let mut widths = Vec::new();
    aligner.format(0, lines.len(), &mut widths);
    aligner.out
}

/// The lines (each split at its tabs) and the text written so far.
struct Aligner<'a> {
    lines: &'a [Vec<&'a str>],
    minwidth: usize,
    padding: usize,
    out: String,
}

impl Aligner<'_> {
    /// Does line `i` have a tab-terminated cell in `column`?
    fn has_cell(&self, i: usize, column: usize) -> bool {
        column + 1 < self.lines[i].len()
    }

    /// Lay out lines `line0..line1`, whose columns left of `widths.len()` are known.
    fn format(&mut self, mut line0: usize, line1: usize, widths: &mut Vec<usize>) {
        let column = widths.len();
        let mut this = line0;
        while this < line1 {
            if !self.has_cell(this, column) {
                this += 1;
                continue;
            }
            self.write_lines(line0, this, widths);
            line0 = this;
            let mut width = self.minwidth;
            while this < line1 && self.has_cell(this, column) {
                width = width.max(self.lines[this][column].chars().count() + self.padding);
                this += 1;
            }
            widths.push(width);
            self.format(line0, this, widths);
            widths.pop();
            line0 = this;
        }
        self.write_lines(line0, line1, widths);
    }

    /// Write lines `from..to`, each cell padded to its column's width.
    fn write_lines(&mut self, from: usize, to: usize, widths: &[usize]) {
        for i in from..to {
            for (j, cell) in self.lines[i].iter().enumerate() {
                self.out.push_str(cell);
                if let Some(w) = widths.get(j) {
                    let pad = w.saturating_sub(cell.chars().count());
                    self.out.extend(std::iter::repeat_n(' ', pad));
                }
            }
            if i + 1 < self.lines.len() {
                self.out.push('\n');
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn consecutive_lines_share_a_column() {
        let text = "Name:\tweb\nNamespace:\tdefault\nContainers:\n  c:\n    Image:\tbusybox\n";
        assert_eq!(
            align(text, 0, 2),
            "Name:       web\nNamespace:  default\nContainers:\n  c:\n    Image:  busybox\n"
        );
    }

    #[test]
    fn blocks_nest_and_empty_cells_take_the_padding() {
        let text = "  A\tB\t\tC\n  aaaa\tb\t\tc\nx:\ty\n";
        assert_eq!(
            align(text, 0, 2),
            "  A     B    C\n  aaaa  b    c\nx:      y\n"
        );
    }

    #[test]
    fn the_last_cell_is_never_padded() {
        assert_eq!(align("a\tb\t\n", 0, 2), "a  b  \n");
        assert_eq!(align("no tabs", 0, 2), "no tabs");
    }
}

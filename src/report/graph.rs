//! The edges as a picture (`--graph FILE.dot` or `FILE.svg`), like Kiali's
//! graph with its padlocks: a closed padlock and a green edge where every
//! flow was mTLS (dashed when some are unknown), an open padlock where TLS carried no client
//! certificate, a red edge where anything went in clear.
//!
//! This file owns the Graphviz DOT text of an `EdgeTable` and the hand-off
//! to Graphviz's `dot` for SVG. It must not count anything (the table did)
//! and never runs `dot` for a `.dot` file. Invariants: node and edge order
//! follow the table's sorted order, so the file is the same for any
//! `--threads`; every string from the wire is a quoted, escaped DOT string.

use std::fmt::Write as _;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use crate::report::edges::{EdgeStats, EdgeTable, Peer};
use crate::report::escape::is_hostile;
use crate::verdict::Class;

/// Closed and open padlocks (U+1F512, U+1F513).
const LOCKED: &str = "\u{1f512}";
const UNLOCKED: &str = "\u{1f513}";

/// How the file is written, from its name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GraphFormat {
    Dot,
    /// DOT piped through `dot -Tsvg`.
    Svg,
}

impl GraphFormat {
    /// The form a file name asks for: `.svg`, else DOT (`.dot`, `.gv`, or
    /// any other name once `known` has accepted it).
    pub fn of(path: &Path) -> GraphFormat {
        match path.extension().and_then(|e| e.to_str()) {
            Some(e) if e.eq_ignore_ascii_case("svg") => GraphFormat::Svg,
            _ => GraphFormat::Dot,
        }
    }

    /// Whether the file name says what it will hold: `.dot`, `.gv` or
    /// `.svg`. A `.png` would silently get DOT text (issue 16 §3).
    pub fn known(path: &Path) -> bool {
        path.extension().and_then(|e| e.to_str()).is_some_and(|e| {
            ["dot", "gv", "svg"]
                .iter()
                .any(|k| e.eq_ignore_ascii_case(k))
        })
    }
}

/// A DOT quoted string: `"` and `\` escaped, line breaks as `\n`, other
/// C0 controls dropped; DEL, C1, U+2028/U+2029 and the bidi controls
/// (`escape::is_hostile`) shown as the visible text `\u{hex}`.
fn quoted(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c if is_hostile(c) => {
                let _ = write!(out, "\\\\u{{{:x}}}", u32::from(c));
            }
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Label and style of one edge.
fn edge_attributes(e: &EdgeStats) -> String {
    let (mtls, tls, plain, unknown) = (
        e.count(Class::Mtls),
        e.count(Class::Tls),
        e.count(Class::Plaintext),
        e.count(Class::Unknown),
    );
    let mut lines = Vec::new();
    if mtls > 0 {
        lines.push(format!("{LOCKED} mtls {mtls}"));
    }
    if tls > 0 {
        lines.push(format!("{UNLOCKED} tls {tls}"));
    }
    if plain > 0 {
        lines.push(format!("plaintext {plain}"));
    }
    if unknown > 0 {
        lines.push(format!("? unknown {unknown}"));
    }
    if e.rejected > 0 {
        lines.push(format!("refused {}", e.rejected));
    }
    // The edge's identities (certificates, hints): the nodes are addresses.
    lines.extend(e.identities.iter().cloned());
    let (color, style) = if plain > 0 {
        ("red", "solid")
    } else if tls > 0 {
        ("orange", "solid")
    } else if mtls > 0 && unknown == 0 {
        ("darkgreen", "solid")
    } else if mtls > 0 {
        // Some flows are unknown: not proof the edge is secured (SECURED
        // says `all-decided`).
        ("darkgreen", "dashed")
    } else {
        ("gray", "dashed")
    };
    format!(
        "label={}, color={color}, fontcolor={color}, style={style}, penwidth={}",
        quoted(&lines.join("\n")),
        if plain > 0 { 2 } else { 1 }
    )
}

/// The DOT text of the table.
pub fn to_dot(table: &EdgeTable) -> String {
    let mut nodes: Vec<&Peer> = Vec::new();
    for (c, s, _) in table.edges() {
        nodes.push(c);
        nodes.push(s);
    }
    nodes.sort();
    nodes.dedup();
    let id = |p: &Peer| nodes.binary_search(&p).map_or(0, |i| i);
    let mut s = String::from(
        "digraph mtlsniff {\n  rankdir=LR;\n  node [shape=box, style=rounded, fontname=\"Helvetica\"];\n  edge [fontname=\"Helvetica\", fontsize=10];\n",
    );
    for (i, p) in nodes.iter().enumerate() {
        s.push_str(&format!("  n{i} [label={}];\n", quoted(&p.0)));
    }
    for (c, srv, e) in table.edges() {
        s.push_str(&format!(
            "  n{} -> n{} [{}];\n",
            id(c),
            id(srv),
            edge_attributes(e)
        ));
    }
    if let Some(o) = table.other() {
        s.push_str(&format!(
            "  other [label={}, style=dashed];\n",
            quoted(&format!(
                "{} more flows on edges not remembered (table full)",
                o.flows()
            ))
        ));
    }
    s.push_str("}\n");
    s
}

/// Is Graphviz's `dot` there (for `--graph FILE.svg`)?
pub fn dot_available() -> bool {
    Command::new("dot")
        .arg("-V")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Write the graph to `path`: DOT, or SVG through `dot -Tsvg`.
pub fn write(table: &EdgeTable, path: &Path) -> Result<(), String> {
    let dot = to_dot(table);
    match GraphFormat::of(path) {
        GraphFormat::Dot => std::fs::write(path, dot)
            .map_err(|e| format!("--graph: cannot write {}: {e}", path.display())),
        GraphFormat::Svg => {
            let mut child = Command::new("dot")
                .arg("-Tsvg")
                .arg("-o")
                .arg(path)
                .stdin(Stdio::piped())
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .map_err(|e| {
                    format!("--graph: cannot run Graphviz's dot ({e}): install graphviz, or write a .dot file")
                })?;
            if let Some(mut stdin) = child.stdin.take() {
                stdin
                    .write_all(dot.as_bytes())
                    .map_err(|e| format!("--graph: cannot feed dot: {e}"))?;
            }
            let out = child
                .wait_with_output()
                .map_err(|e| format!("--graph: dot failed: {e}"))?;
            if out.status.success() {
                Ok(())
            } else {
                Err(format!(
                    "--graph: dot failed: {}",
                    String::from_utf8_lossy(&out.stderr).trim()
                ))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_escapes_what_dot_would_misread() {
        assert_eq!(quoted(r#"a"b\c"#), r#""a\"b\\c""#);
        assert_eq!(quoted("x\ny\u{7}"), r#""x\ny""#);
        assert_eq!(GraphFormat::of(Path::new("e.SVG")), GraphFormat::Svg);
        assert_eq!(GraphFormat::of(Path::new("e.dot")), GraphFormat::Dot);
        assert_eq!(GraphFormat::of(Path::new("e")), GraphFormat::Dot);
    }
}

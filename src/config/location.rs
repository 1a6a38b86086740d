//! Maps a YAML path such as `tenants[0].upstream.address` to the line and column where that
//! node starts, so validation errors can point into the file. serde gives positions only for
//! its own errors; this index covers the semantic checks done after deserialisation.

use saphyr_parser::{Event, Parser};
use std::collections::HashMap;

/// A 1-based line and column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    /// Line, from 1.
    pub line: usize,
    /// Column, from 1.
    pub column: usize,
}

enum Frame {
    Map { path: String, key: Option<String> },
    Seq { path: String, next: usize },
}

/// Positions of every node in one YAML document, by path.
#[derive(Debug, Default)]
pub struct LocationIndex {
    positions: HashMap<String, Position>,
}

impl LocationIndex {
    /// Indexes `source`; a document that does not parse yields an empty index (serde reports
    /// the syntax error with its own position).
    pub fn build(source: &str) -> Self {
        let mut index = Self::default();
        let mut stack: Vec<Frame> = Vec::new();
        let mut parser = Parser::new_from_str(source);
        while let Some(Ok((event, span))) = parser.next_event() {
            let pos = Position {
                line: span.start.line(),
                column: span.start.col() + 1,
            };
            match event {
                Event::Scalar(value, ..) => {
                    if let Some(Frame::Map { path, key }) = stack.last_mut() {
                        if key.is_none() {
                            let child = join(path, &value);
                            index.positions.insert(child, pos);
                            *key = Some(value.into_owned());
                            continue;
                        }
                    }
                    let child = child_path(&mut stack);
                    index.positions.insert(child, pos);
                }
                Event::Alias(_) => {
                    let child = child_path(&mut stack);
                    index.positions.insert(child, pos);
                }
                Event::MappingStart(..) | Event::SequenceStart(..) => {
                    let child = child_path(&mut stack);
                    index.positions.entry(child.clone()).or_insert(pos);
                    stack.push(if matches!(event, Event::MappingStart(..)) {
                        Frame::Map {
                            path: child,
                            key: None,
                        }
                    } else {
                        Frame::Seq {
                            path: child,
                            next: 0,
                        }
                    });
                }
                Event::MappingEnd | Event::SequenceEnd => {
                    stack.pop();
                }
                _ => {}
            }
        }
        index
    }

    /// Where `path` starts, or where its nearest existing ancestor starts (a missing key is
    /// reported at the mapping that lacks it).
    pub fn locate(&self, path: &str) -> Option<Position> {
        let mut current = path;
        loop {
            if let Some(pos) = self.positions.get(current) {
                return Some(*pos);
            }
            let cut = current.rfind(['.', '['])?;
            current = &current[..cut];
            if current.is_empty() {
                return self.positions.get("").copied();
            }
        }
    }
}

fn join(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_owned()
    } else {
        format!("{parent}.{key}")
    }
}

/// The path of the value about to be read in the current container, advancing it.
fn child_path(stack: &mut [Frame]) -> String {
    match stack.last_mut() {
        None => String::new(),
        Some(Frame::Map { path, key }) => {
            let key = key.take().unwrap_or_default();
            join(path, &key)
        }
        Some(Frame::Seq { path, next }) => {
            let p = format!("{path}[{next}]");
            *next += 1;
            p
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locates_nested_values_in_block_and_flow_style() {
        let yaml = "listeners:\n  - address: 1.2.3.4:80\n  - address: x\n    tls: { cert: a.crt, key: b.key }\ntenants:\n  - name: t\n";
        let idx = LocationIndex::build(yaml);
        assert_eq!(
            idx.locate("listeners[1].address"),
            Some(Position {
                line: 3,
                column: 14
            })
        );
        assert_eq!(
            idx.locate("listeners[1].tls.key"),
            Some(Position {
                line: 4,
                column: 30
            })
        );
        assert_eq!(idx.locate("tenants[0].name").unwrap().line, 6);
        // A missing key points at its parent.
        assert_eq!(idx.locate("tenants[0].upstream").unwrap().line, 6);
    }
}

//! Where a key sits in the spec's text.
//!
//! Plugin parameters are kept as JSON maps (they are passed through to the
//! plugin as they are), so they carry no positions. To point a plugin's
//! "parameter `strid`" error at the spec's line, the spec text is read a
//! second time into a tree of keys with their positions (serde-saphyr's
//! `Spanned`), flow style (`params: {strid: 3}`) included.

use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_saphyr::Spanned;

/// A YAML node reduced to what locating needs: a mapping's keys (with
/// their positions) and values, or a sequence's items; scalars are empty.
#[derive(Debug, Default)]
pub struct KeyTree {
    entries: Vec<(Spanned<String>, KeyTree)>,
    items: Vec<Spanned<KeyTree>>,
}

/// A 1-based line and column in the spec.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    pub line: u64,
    pub column: u64,
}

impl Position {
    fn of<T>(spanned: &Spanned<T>) -> Self {
        Position {
            line: spanned.referenced.line(),
            column: spanned.referenced.column(),
        }
    }
}

impl KeyTree {
    /// The tree of a spec's text; `None` when it cannot be read this way
    /// (the caller then reports without a position).
    pub fn parse(text: &str) -> Option<KeyTree> {
        serde_saphyr::from_str(text).ok()
    }

    /// The position of the key at `path` (mapping keys, or item numbers
    /// for sequences), e.g. `["selection", "ranking", "params", "strid"]`.
    pub fn locate(&self, path: &[&str]) -> Option<Position> {
        let (first, rest) = path.split_first()?;
        if let Ok(index) = first.parse::<usize>() {
            if !self.items.is_empty() {
                let item = self.items.get(index)?;
                return match rest {
                    [] => Some(Position::of(item)),
                    _ => item.value.locate(rest),
                };
            }
        }
        let (key, value) = self.entries.iter().find(|(key, _)| key.value == *first)?;
        match rest {
            [] => Some(Position::of(key)),
            _ => value.locate(rest),
        }
    }

    /// The position of the longest prefix of `path` that exists, with the
    /// number of segments found: a nested parameter the tree cannot follow
    /// still gets the line of its outermost key.
    pub fn locate_nearest(&self, path: &[&str]) -> Option<(Position, usize)> {
        (1..=path.len())
            .rev()
            .find_map(|n| self.locate(&path[..n]).map(|p| (p, n)))
    }
}

impl<'de> Deserialize<'de> for KeyTree {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(TreeVisitor)
    }
}

struct TreeVisitor;

/// Scalars of every type become an empty node.
macro_rules! scalar {
    ($($method:ident: $type:ty),*) => {
        $(fn $method<E: serde::de::Error>(self, _: $type) -> Result<KeyTree, E> {
            Ok(KeyTree::default())
        })*
    };
}

impl<'de> Visitor<'de> for TreeVisitor {
    type Value = KeyTree;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("any YAML value")
    }

    scalar!(visit_bool: bool, visit_i64: i64, visit_u64: u64, visit_i128: i128,
            visit_u128: u128, visit_f64: f64, visit_str: &str, visit_bytes: &[u8]);

    fn visit_unit<E: serde::de::Error>(self) -> Result<KeyTree, E> {
        Ok(KeyTree::default())
    }

    fn visit_none<E: serde::de::Error>(self) -> Result<KeyTree, E> {
        Ok(KeyTree::default())
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<KeyTree, D::Error> {
        KeyTree::deserialize(deserializer)
    }

    fn visit_newtype_struct<D: Deserializer<'de>>(
        self,
        deserializer: D,
    ) -> Result<KeyTree, D::Error> {
        KeyTree::deserialize(deserializer)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<KeyTree, A::Error> {
        let mut tree = KeyTree::default();
        while let Some(key) = map.next_key::<Spanned<String>>()? {
            let value = map.next_value::<KeyTree>()?;
            tree.entries.push((key, value));
        }
        Ok(tree)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<KeyTree, A::Error> {
        let mut tree = KeyTree::default();
        while let Some(item) = seq.next_element::<Spanned<KeyTree>>()? {
            tree.items.push(item);
        }
        Ok(tree)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPEC: &str = "\
output: run
model:
  backend: candle
  params: {max_lenght: 64}
selection:
  ranking:
    selector: elastic-net
    params:
      strid: 3
  compare:
    - {selector: random}
    - selector: lasso
      params:
        l1: \"0.3\"
";

    fn at(line: u64, column: u64) -> Option<Position> {
        Some(Position { line, column })
    }

    #[test]
    fn block_and_flow_keys_are_found_with_their_line() {
        let tree = KeyTree::parse(SPEC).expect("tree");
        let ranking = ["selection", "ranking", "params", "strid"];
        assert_eq!(tree.locate(&ranking), at(9, 7));
        assert_eq!(tree.locate(&["model", "params", "max_lenght"]), at(4, 12));
        let compare = ["selection", "compare", "1", "params", "l1"];
        assert_eq!(tree.locate(&compare), at(14, 9));
    }

    #[test]
    fn a_missing_key_falls_back_to_its_nearest_parent() {
        let tree = KeyTree::parse(SPEC).expect("tree");
        let path = ["selection", "compare", "0", "params", "seed"];
        assert_eq!(tree.locate(&path), None);
        let (position, found) = tree.locate_nearest(&path).expect("parent");
        assert_eq!((position.line, found), (11, 3));
    }
}

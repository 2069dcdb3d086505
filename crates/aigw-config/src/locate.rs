//! Finds the line and column of a field path in YAML text.
//!
//! figment and the validator know *which* field is wrong but not *where* it is: figment's
//! values carry no positions. serde_yaml does know positions, and stamps the position of
//! the node being read onto any error raised while reading it. So we walk the document
//! with a seed that follows the path and raises an error once it stands on the target
//! node (or on the deepest node of the path that exists); that error's location is the
//! answer.

use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

use crate::Location;
use crate::path::{FieldPath, Seg};

/// The position of `path` in `yaml`, or of its deepest existing ancestor when the path
/// itself is absent (a missing field points at the mapping that should hold it).
pub(crate) fn locate(yaml: &str, path: &FieldPath) -> Option<Location> {
    run(yaml, path, false)
}

/// Like [`locate`], but when the path ends in a key, the position of the key itself
/// rather than of its value: for "this key should not be here".
pub(crate) fn locate_key(yaml: &str, path: &FieldPath) -> Option<Location> {
    run(yaml, path, true)
}

fn run(yaml: &str, path: &FieldPath, at_key: bool) -> Option<Location> {
    let de = serde_yaml::Deserializer::from_str(yaml);
    let nav = Nav {
        segs: path.segs(),
        at_key,
    };
    match nav.deserialize(de) {
        Ok(()) => None,
        Err(err) => err.location().map(from_yaml),
    }
}

pub(crate) fn from_yaml(loc: serde_yaml::Location) -> Location {
    Location {
        line: loc.line(),
        column: loc.column(),
    }
}

/// Walks one step of the path; always ends in an error, which is how it reports.
struct Nav<'a> {
    segs: &'a [Seg],
    at_key: bool,
}

const HERE: &str = "aigw-config: located";

impl<'de> DeserializeSeed<'de> for Nav<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, de: D) -> Result<(), D::Error> {
        de.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Nav<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Every node type ends the walk; serde's default for the scalar visits is an error,
        // which serde_yaml stamps with this node's position, exactly what we want.
        f.write_str(HERE)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let Some((first, rest)) = self.segs.split_first() else {
            return Err(de::Error::custom(HERE));
        };
        let wanted = match first {
            Seg::Key(key) => key.clone(),
            Seg::Index(index) => index.to_string(),
        };
        let stop_at_key = self.at_key && rest.is_empty();
        while let Some(key) = map.next_key_seed(KeySeed {
            wanted: &wanted,
            stop: stop_at_key,
        })? {
            if key.0.as_deref() == Some(wanted.as_str()) {
                return map.next_value_seed(Nav {
                    segs: rest,
                    at_key: self.at_key,
                });
            }
            map.next_value::<IgnoredAny>()?;
        }
        Err(de::Error::custom(HERE))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let Some((Seg::Index(wanted), rest)) = self.segs.split_first() else {
            return Err(de::Error::custom(HERE));
        };
        for _ in 0..*wanted {
            if seq.next_element::<IgnoredAny>()?.is_none() {
                return Err(de::Error::custom(HERE));
            }
        }
        match seq.next_element_seed(Nav {
            segs: rest,
            at_key: self.at_key,
        })? {
            Some(()) => Ok(()),
            None => Err(de::Error::custom(HERE)),
        }
    }
}

/// A mapping key read as text whatever its YAML type (`200:` and `"200":` both match).
struct AnyKey(Option<String>);

impl<'de> de::Deserialize<'de> for AnyKey {
    fn deserialize<D: Deserializer<'de>>(de: D) -> Result<Self, D::Error> {
        de.deserialize_any(AnyKeyVisitor)
    }
}

/// Reads a key; with `stop`, raises the report while standing on the wanted key, so that
/// the key's own position is reported.
struct KeySeed<'a> {
    wanted: &'a str,
    stop: bool,
}

impl<'de> DeserializeSeed<'de> for KeySeed<'_> {
    type Value = AnyKey;

    fn deserialize<D: Deserializer<'de>>(self, de: D) -> Result<AnyKey, D::Error> {
        de.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for KeySeed<'_> {
    type Value = AnyKey;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a mapping key")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<AnyKey, E> {
        if self.stop && v == self.wanted {
            return Err(E::custom(HERE));
        }
        Ok(AnyKey(Some(v.to_owned())))
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<AnyKey, E> {
        AnyKeyVisitor.visit_bool(v)
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<AnyKey, E> {
        AnyKeyVisitor.visit_i64(v)
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<AnyKey, E> {
        AnyKeyVisitor.visit_u64(v)
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<AnyKey, E> {
        AnyKeyVisitor.visit_f64(v)
    }

    fn visit_unit<E: de::Error>(self) -> Result<AnyKey, E> {
        AnyKeyVisitor.visit_unit()
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<AnyKey, A::Error> {
        AnyKeyVisitor.visit_map(map)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<AnyKey, A::Error> {
        AnyKeyVisitor.visit_seq(seq)
    }
}

struct AnyKeyVisitor;

impl<'de> Visitor<'de> for AnyKeyVisitor {
    type Value = AnyKey;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a mapping key")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<AnyKey, E> {
        Ok(AnyKey(Some(v.to_owned())))
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<AnyKey, E> {
        Ok(AnyKey(Some(v.to_string())))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<AnyKey, E> {
        Ok(AnyKey(Some(v.to_string())))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<AnyKey, E> {
        Ok(AnyKey(Some(v.to_string())))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<AnyKey, E> {
        Ok(AnyKey(Some(v.to_string())))
    }

    fn visit_unit<E: de::Error>(self) -> Result<AnyKey, E> {
        Ok(AnyKey(None))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<AnyKey, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(AnyKey(None))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<AnyKey, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(AnyKey(None))
    }
}

/// What the document's root is, as far as [`check_document`] cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Root {
    Empty,
    Mapping,
    Other(&'static str),
}

/// A structural problem found by [`check_document`].
pub(crate) enum DocumentError {
    /// Not YAML; serde_yaml's error carries the position.
    Syntax(serde_yaml::Error),
    /// A mapping repeats a key; the path ends in that key.
    DuplicateKey(FieldPath, Option<Location>),
}

/// Reads the whole document once for what figment cannot see: syntax errors with their
/// position, and duplicate keys (figment keeps the last silently; Kong rejects them).
pub(crate) fn check_document(yaml: &str) -> Result<Root, DocumentError> {
    let duplicate = std::cell::RefCell::new(None);
    let de = serde_yaml::Deserializer::from_str(yaml);
    let checker = Checker {
        path: FieldPath::root(),
        duplicate: &duplicate,
    };
    match checker.deserialize(de) {
        Ok(root) => Ok(root),
        Err(err) => match duplicate.into_inner() {
            Some(path) => Err(DocumentError::DuplicateKey(
                path,
                err.location().map(from_yaml),
            )),
            None => Err(DocumentError::Syntax(err)),
        },
    }
}

/// Walks every node, tracking its path, and fails on the first repeated key while standing
/// on it, so that the error's position is the repeated key's.
struct Checker<'a> {
    path: FieldPath,
    duplicate: &'a std::cell::RefCell<Option<FieldPath>>,
}

impl<'de> DeserializeSeed<'de> for Checker<'_> {
    type Value = Root;

    fn deserialize<D: Deserializer<'de>>(self, de: D) -> Result<Root, D::Error> {
        de.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Checker<'_> {
    type Value = Root;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any YAML value")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Root, A::Error> {
        let mut seen = std::collections::HashSet::new();
        while let Some(key) = map.next_key_seed(UniqueKey {
            seen: &mut seen,
            path: &self.path,
            duplicate: self.duplicate,
        })? {
            let path = match key {
                Some(key) => self.path.key(&key),
                None => self.path.key("?"),
            };
            map.next_value_seed(Checker {
                path,
                duplicate: self.duplicate,
            })?;
        }
        Ok(Root::Mapping)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Root, A::Error> {
        let mut index = 0;
        while seq
            .next_element_seed(Checker {
                path: self.path.index(index),
                duplicate: self.duplicate,
            })?
            .is_some()
        {
            index += 1;
        }
        Ok(Root::Other("a sequence"))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Root, E> {
        Ok(Root::Empty)
    }

    fn visit_none<E: de::Error>(self) -> Result<Root, E> {
        Ok(Root::Empty)
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Root, E> {
        Ok(Root::Other("a boolean"))
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Root, E> {
        Ok(Root::Other("a number"))
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Root, E> {
        Ok(Root::Other("a number"))
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Root, E> {
        Ok(Root::Other("a number"))
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<Root, E> {
        Ok(Root::Other("a string"))
    }

    fn visit_enum<A: de::EnumAccess<'de>>(self, data: A) -> Result<Root, A::Error> {
        // A `!tag value`: the tag is skipped, the value checked like any other.
        let (IgnoredAny, variant) = data.variant::<IgnoredAny>()?;
        let checker = Checker {
            path: self.path,
            duplicate: self.duplicate,
        };
        de::VariantAccess::newtype_variant_seed(variant, checker)?;
        Ok(Root::Other("a tagged value"))
    }
}

/// Reads one key and fails if the mapping already had it.
struct UniqueKey<'a, 'p> {
    seen: &'a mut std::collections::HashSet<String>,
    path: &'p FieldPath,
    duplicate: &'p std::cell::RefCell<Option<FieldPath>>,
}

impl UniqueKey<'_, '_> {
    fn check<E: de::Error>(self, key: String) -> Result<Option<String>, E> {
        if self.seen.insert(key.clone()) {
            return Ok(Some(key));
        }
        *self.duplicate.borrow_mut() = Some(self.path.key(&key));
        Err(E::custom(format!("duplicate key {key:?}")))
    }
}

impl<'de> DeserializeSeed<'de> for UniqueKey<'_, '_> {
    type Value = Option<String>;

    fn deserialize<D: Deserializer<'de>>(self, de: D) -> Result<Option<String>, D::Error> {
        de.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for UniqueKey<'_, '_> {
    type Value = Option<String>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a mapping key")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Option<String>, E> {
        self.check(v.to_owned())
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Option<String>, E> {
        self.check(v.to_string())
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Option<String>, E> {
        self.check(v.to_string())
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Option<String>, E> {
        self.check(v.to_string())
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Option<String>, E> {
        self.check(v.to_string())
    }

    fn visit_unit<E: de::Error>(self) -> Result<Option<String>, E> {
        self.check("~".to_owned())
    }

    // Complex keys are legal YAML but never appear in decK files; not compared.
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Option<String>, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(None)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Option<String>, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str = "\
a:
  b:
  - x: 1
  - x: 2
    y: [10, 20]
  c: hello
";

    fn at(path: &FieldPath) -> (usize, usize) {
        let loc = locate(DOC, path).expect("located");
        (loc.line, loc.column)
    }

    #[test]
    fn finds_scalars_mappings_and_sequence_items() {
        let root = FieldPath::root();
        assert_eq!(at(&root.key("a").key("c")), (6, 6));
        assert_eq!(at(&root.key("a").key("b").index(1).key("x")), (4, 8));
        assert_eq!(at(&root.key("a").key("b").index(1)), (4, 5));
        assert_eq!(
            at(&root.key("a").key("b").index(1).key("y").index(1)),
            (5, 13)
        );
    }

    #[test]
    fn missing_steps_point_at_the_deepest_existing_node() {
        let root = FieldPath::root();
        assert_eq!(at(&root.key("a").key("b").index(0).key("zzz")), (3, 5));
        assert_eq!(at(&root.key("a").key("b").index(7)), (3, 3));
        assert_eq!(at(&root.key("a").key("c").key("deeper")), (6, 6));
    }
}

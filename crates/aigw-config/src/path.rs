//! Field paths in Kong's notation (`services[0].routes[0].plugins[0].config`).

use std::fmt;

/// One step of a [`FieldPath`]: a mapping key or a sequence index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Seg {
    Key(String),
    Index(usize),
}

/// Where a value sits in the decK file; displays as `a[0].b.c`, the form Kong and decK
/// print in their own errors.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct FieldPath(Vec<Seg>);

impl FieldPath {
    pub(crate) fn root() -> Self {
        Self::default()
    }

    pub(crate) fn key(&self, key: &str) -> Self {
        let mut segs = self.0.clone();
        segs.push(Seg::Key(key.to_owned()));
        Self(segs)
    }

    pub(crate) fn index(&self, index: usize) -> Self {
        let mut segs = self.0.clone();
        segs.push(Seg::Index(index));
        Self(segs)
    }

    pub(crate) fn segs(&self) -> &[Seg] {
        &self.0
    }

    /// Appends a path reported by figment, whose steps are all strings: our types have no
    /// mappings keyed by numbers, so an all-digit step is a sequence index.
    pub(crate) fn join_figment(&self, steps: &[String]) -> Self {
        let mut segs = self.0.clone();
        segs.extend(steps.iter().map(|step| match step.parse::<usize>() {
            Ok(index) => Seg::Index(index),
            Err(_) => Seg::Key(step.clone()),
        }));
        Self(segs)
    }
}

impl fmt::Display for FieldPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, seg) in self.0.iter().enumerate() {
            match seg {
                Seg::Index(index) => write!(f, "[{index}]")?,
                Seg::Key(key) if i == 0 => f.write_str(key)?,
                Seg::Key(key) => write!(f, ".{key}")?,
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn displays_like_kong() {
        let path = FieldPath::root()
            .key("services")
            .index(0)
            .key("routes")
            .index(1)
            .key("paths");
        assert_eq!(path.to_string(), "services[0].routes[1].paths");
        let joined = FieldPath::root().key("plugins").join_figment(&[
            "3".to_owned(),
            "config".to_owned(),
            "targets".to_owned(),
            "0".to_owned(),
        ]);
        assert_eq!(joined.to_string(), "plugins[3].config.targets[0]");
    }
}
